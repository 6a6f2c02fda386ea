/*
 * outbound.c — the outbound call policy (outbound.h): the strict URL parser,
 * host patterns, the address classification and the check with DNS.
 *
 * The parser accepts a subset of RFC 3986 on purpose: whatever another
 * parser (libcurl, a proxy, the resolver) could read differently — user
 * info, backslashes, percent-escapes or Unicode in the host, IPv4 in the
 * inet_aton() forms (`127.1`, `0x7f000001`), zone ids — is refused rather
 * than interpreted.
 */
#include "outbound.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------
 * Hosts
 * ------------------------------------------------------------------------ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* A label inet_aton() would read as a number: decimal, octal or 0x-hex. */
static bool numeric_label(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (size_t i = 2; i < n; i++)
            if (!is_hex(s[i])) return false;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i])) return false;
    return n > 0;
}

/*
 * Canonicalises the host s[0..n) (no brackets) into out (OUTBOUND_HOST_MAX+1
 * bytes): an IPv6 literal (it has a ':'; *family AF_INET6, inet_ntop form),
 * a dotted-quad IPv4 (*family AF_INET), or a host name of RFC 1123 labels
 * (lower-cased, *family 0). what names the thing in messages.
 */
static tsg_rc host_canon(const char *s, size_t n, char *out, int *family, const char *what,
                         tsg_error *err)
{
    *family = 0;
    if (n == 0) return tsg_error_set(err, TSG_EINVAL, "invalid", "%s: the host is empty", what);
    if (n > OUTBOUND_HOST_MAX)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "%s: the host is longer than %d bytes",
                             what, OUTBOUND_HOST_MAX);
    char tmp[OUTBOUND_HOST_MAX + 1];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (memchr(s, ':', n)) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "%s: '%.*s' is not an IPv6 address (zones are not allowed)", what,
                                 (int)n, s);
        if (!inet_ntop(AF_INET6, &a6, out, OUTBOUND_HOST_MAX + 1))
            return tsg_error_set(err, TSG_EINTERNAL, "exception", "inet_ntop failed");
        *family = AF_INET6;
        return TSG_OK;
    }
    /* every label numeric: only four decimal octets are an address */
    bool all_numeric = true;
    size_t last_start = 0;
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i < n && s[i] != '.') continue;
        if (!numeric_label(s + start, i - start)) all_numeric = false;
        last_start = start;
        start = i + 1;
    }
    if (all_numeric) {
        struct in_addr a4;
        if (inet_pton(AF_INET, tmp, &a4) != 1)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "%s: '%.*s' is not an IPv4 address of four decimal octets", what,
                                 (int)n, s);
        if (!inet_ntop(AF_INET, &a4, out, OUTBOUND_HOST_MAX + 1))
            return tsg_error_set(err, TSG_EINTERNAL, "exception", "inet_ntop failed");
        if (strcmp(out, tmp) != 0)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "%s: '%.*s' is not an IPv4 address in canonical form", what,
                                 (int)n, s);
        *family = AF_INET;
        return TSG_OK;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "%s: '%.*s' has an empty label or one that ends in '-' "
                                     "(a trailing dot is not allowed either)",
                                     what, (int)n, s);
            label = 0;
            out[i] = '.';
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-';
        if (!ok)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "%s: the host may hold only letters, digits, '-' and '.' "
                                 "(IDN hosts in their xn-- form), not '%c'",
                                 what, c);
        if (label == 0 && c == '-')
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "%s: a label of '%.*s' starts with '-'", what, (int)n, s);
        if (++label > 63)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "%s: a label of '%.*s' is longer than 63 bytes", what, (int)n, s);
        out[i] = lower(c);
    }
    out[n] = '\0';
    if (label == 0 || s[n - 1] == '-')
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "%s: '%.*s' has an empty label or one that ends in '-' "
                             "(a trailing dot is not allowed either)",
                             what, (int)n, s);
    if (numeric_label(s + last_start, n - last_start))
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "%s: '%.*s' is neither a host name (its last label is numeric) nor "
                             "an IPv4 address",
                             what, (int)n, s);
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * URLs
 * ------------------------------------------------------------------------ */

/* RFC 3986 pchar and '/' '?' (gen-delims other than those, and everything
 * outside the unreserved and sub-delims sets, must be escaped). */
static bool target_char(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@/?", c) != NULL;
}

tsg_rc outbound_url_parse(const char *url, outbound_url *out, tsg_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = strnlen(url, OUTBOUND_URL_MAX + 1);
    if (n > OUTBOUND_URL_MAX)
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "outbound URL: longer than %d bytes (OUTBOUND_URL_MAX)",
                             OUTBOUND_URL_MAX);
    if (n == 0) return tsg_error_set(err, TSG_EINVAL, "invalid", "outbound URL: empty");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: byte %zu is a blank, a control character or not "
                                 "ASCII (IDN hosts are written in their xn-- form, other "
                                 "characters %%-escaped)",
                                 i);
        if (c == '\\')
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: a backslash is not allowed");
        if (c == '#')
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: a fragment ('#') is not allowed");
    }
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        out->https = true;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        out->https = false;
        p = url + 7;
    } else {
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "outbound URL: must start with https:// (or http://)");
    }
    size_t alen = strcspn(p, "/?");
    const char *auth = p, *aend = p + alen;
    if (memchr(auth, '@', alen))
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "outbound URL: user information ('user@host') is not allowed");
    if (memchr(auth, '%', alen))
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "outbound URL: a %%-escape in the host is not allowed");
    const char *hs, *he, *colon;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: an IPv6 address without its closing ']'");
        hs = auth + 1;
        he = close;
        if (close + 1 < aend && close[1] != ':')
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: only ':port' may follow an IPv6 address");
        colon = close + 1 < aend ? close + 1 : NULL;
        if (!memchr(hs, ':', (size_t)(he - hs)))
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: brackets hold only an IPv6 address");
    } else {
        if (memchr(auth, '[', alen) || memchr(auth, ']', alen))
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: '[' or ']' outside an IPv6 address");
        colon = memchr(auth, ':', alen);
        if (colon && memchr(colon + 1, ':', (size_t)(aend - colon - 1)))
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: an IPv6 address needs brackets");
        hs = auth;
        he = colon ? colon : aend;
    }
    tsg_rc rc = host_canon(hs, (size_t)(he - hs), out->host, &out->ip_family, "outbound URL", err);
    if (rc != TSG_OK) return rc;
    out->port = out->https ? 443 : 80;
    if (colon) {
        const char *ps = colon + 1;
        size_t pn = (size_t)(aend - ps);
        unsigned long v = 0;
        if (pn == 0 || pn > 5)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: the port must be a number 1-65535");
        for (size_t i = 0; i < pn; i++) {
            if (!is_digit(ps[i]))
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "outbound URL: the port must be a number 1-65535");
            v = v * 10 + (unsigned long)(ps[i] - '0');
        }
        if (v == 0 || v > 65535)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: the port must be a number 1-65535");
        out->port = (uint16_t)v;
    }
    const char *t = aend;
    size_t tn = n - (size_t)(t - url);
    for (size_t i = 0; i < tn; i++) {
        char c = t[i];
        if (c == '%') {
            if (i + 2 >= tn || !is_hex(t[i + 1]) || !is_hex(t[i + 2]))
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "outbound URL: a malformed %%-escape in the path or query");
            i += 2;
            continue;
        }
        if (!target_char(c))
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "outbound URL: '%c' must be %%-escaped in the path or query", c);
    }
    size_t o = 0;
    if (tn == 0 || t[0] == '?') out->target[o++] = '/';
    memcpy(out->target + o, t, tn);
    out->target[o + tn] = '\0';
    /* the canonical form (a '/' added before a query, an explicit port) must
     * keep within the cap too, or it would not parse again */
    char canon[OUTBOUND_URL_MAX + 1];
    if (!outbound_url_format(out, canon, sizeof canon))
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "outbound URL: longer than %d bytes (OUTBOUND_URL_MAX) once "
                             "written canonically",
                             OUTBOUND_URL_MAX);
    return TSG_OK;
}

bool outbound_url_format(const outbound_url *u, char *out, size_t size)
{
    char port[8] = "";
    if (u->port != (u->https ? 443 : 80)) snprintf(port, sizeof port, ":%u", (unsigned)u->port);
    bool v6 = u->ip_family == AF_INET6;
    int w = snprintf(out, size, "%s://%s%s%s%s%s", u->https ? "https" : "http", v6 ? "[" : "",
                     u->host, v6 ? "]" : "", port, u->target);
    if (w < 0 || (size_t)w >= size) {
        if (size) out[0] = '\0';
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * The policy
 * ------------------------------------------------------------------------ */

static tsg_rc on_off(const char *v, const char *name, bool *out, tsg_error *err)
{
    if (!v || !strcmp(v, "off")) {
        *out = false;
        return TSG_OK;
    }
    if (!strcmp(v, "on")) {
        *out = true;
        return TSG_OK;
    }
    return tsg_error_set(err, TSG_EINVAL, "invalid", "%s must be \"on\" or \"off\", not '%.40s'",
                         name, v);
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

tsg_rc outbound_policy_parse(outbound_policy *p, const char *allow, const char *allow_private,
                             const char *allow_http, tsg_error *err)
{
    memset(p, 0, sizeof *p);
    tsg_rc rc = on_off(allow_private, "outbound_allow_private", &p->allow_private, err);
    if (rc == TSG_OK) rc = on_off(allow_http, "outbound_allow_http", &p->allow_http, err);
    if (rc != TSG_OK) return rc;
    if (!allow) return TSG_OK;
    const char *s = allow;
    while (blank(*s)) s++;
    if (!*s) return TSG_OK;
    const char *what = "outbound_allow";
    for (;;) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        size_t a = 0;
        while (a < n && blank(s[a])) a++;
        while (n > a && blank(s[n - 1])) n--;
        const char *pat = s + a;
        size_t pn = n - a;
        if (pn == 0)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "%s: an empty pattern (check the commas)", what);
        if (p->n_allow >= OUTBOUND_ALLOW_MAX)
            return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                                 "%s: more than %d patterns (OUTBOUND_ALLOW_MAX)", what,
                                 OUTBOUND_ALLOW_MAX);
        char *dst = p->allow[p->n_allow];
        int family = 0;
        if (pn >= 1 && pat[0] == '*') {
            if (pn < 3 || pat[1] != '.')
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "%s: '%.*s': a wildcard is written *.suffix (a '*' alone "
                                     "would allow every host)",
                                     what, (int)pn, pat);
            rc = host_canon(pat + 2, pn - 2, dst + 2, &family, what, err);
            if (rc != TSG_OK) return rc;
            if (family || !strchr(dst + 2, '.'))
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "%s: '%.*s': the suffix of a wildcard must be a domain of "
                                     "two or more labels",
                                     what, (int)pn, pat);
            dst[0] = '*';
            dst[1] = '.';
        } else if (pn >= 2 && pat[0] == '[' && pat[pn - 1] == ']') {
            rc = host_canon(pat + 1, pn - 2, dst, &family, what, err);
            if (rc != TSG_OK) return rc;
            if (family != AF_INET6)
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "%s: '%.*s': brackets hold only an IPv6 address", what,
                                     (int)pn, pat);
        } else {
            rc = host_canon(pat, pn, dst, &family, what, err);
            if (rc != TSG_OK) return rc;
        }
        p->n_allow++;
        if (!e) break;
        s = e + 1;
    }
    return TSG_OK;
}

bool outbound_host_allowed(const outbound_policy *p, const char *host)
{
    size_t hn = strlen(host);
    for (size_t i = 0; i < p->n_allow; i++) {
        const char *pat = p->allow[i];
        if (pat[0] == '*') {
            const char *suffix = pat + 1; /* ".example.jp" */
            size_t sn = strlen(suffix);
            if (hn > sn && memcmp(host + hn - sn, suffix, sn) == 0) return true;
        } else if (strcmp(host, pat) == 0) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------
 * Addresses
 * ------------------------------------------------------------------------ */

static outbound_addr_class classify4(const unsigned char *a)
{
    if (a[0] == 0) return OUTBOUND_ADDR_UNSPECIFIED;
    if (a[0] == 10) return OUTBOUND_ADDR_PRIVATE;
    if (a[0] == 100 && (a[1] & 0xc0) == 64) return OUTBOUND_ADDR_CGNAT;
    if (a[0] == 127) return OUTBOUND_ADDR_LOOPBACK;
    if (a[0] == 169 && a[1] == 254) return OUTBOUND_ADDR_LINK_LOCAL;
    if (a[0] == 172 && (a[1] & 0xf0) == 16) return OUTBOUND_ADDR_PRIVATE;
    if (a[0] == 192 && a[1] == 168) return OUTBOUND_ADDR_PRIVATE;
    if (a[0] == 192 && a[1] == 0 && a[2] == 0) return OUTBOUND_ADDR_RESERVED;    /* IETF */
    if (a[0] == 192 && a[1] == 0 && a[2] == 2) return OUTBOUND_ADDR_RESERVED;    /* TEST-NET-1 */
    if (a[0] == 192 && a[1] == 88 && a[2] == 99) return OUTBOUND_ADDR_RESERVED;  /* 6to4 relay */
    if (a[0] == 198 && (a[1] & 0xfe) == 18) return OUTBOUND_ADDR_RESERVED;       /* benchmarks */
    if (a[0] == 198 && a[1] == 51 && a[2] == 100) return OUTBOUND_ADDR_RESERVED; /* TEST-NET-2 */
    if (a[0] == 203 && a[1] == 0 && a[2] == 113) return OUTBOUND_ADDR_RESERVED;  /* TEST-NET-3 */
    if (a[0] >= 224 && a[0] < 240) return OUTBOUND_ADDR_MULTICAST;
    if (a[0] >= 240) return OUTBOUND_ADDR_RESERVED; /* 240/4 and the broadcast address */
    return OUTBOUND_ADDR_PUBLIC;
}

static bool all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

static outbound_addr_class classify6(const unsigned char *b)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 0x01};
    if (all_zero(b, 16)) return OUTBOUND_ADDR_UNSPECIFIED;
    if (all_zero(b, 15) && b[15] == 1) return OUTBOUND_ADDR_LOOPBACK;
    if (memcmp(b, mapped, 12) == 0) return classify4(b + 12);
    if (all_zero(b, 12)) return OUTBOUND_ADDR_RESERVED; /* IPv4-compatible, deprecated */
    if (memcmp(b, nat64, 12) == 0) return classify4(b + 12);
    if (memcmp(b, nat64_local, 6) == 0) return OUTBOUND_ADDR_PRIVATE;
    if (b[0] == 0xff) return OUTBOUND_ADDR_MULTICAST;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return OUTBOUND_ADDR_LINK_LOCAL;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return OUTBOUND_ADDR_PRIVATE; /* site-local */
    if ((b[0] & 0xfe) == 0xfc) return OUTBOUND_ADDR_PRIVATE;                 /* unique local */
    if ((b[0] & 0xe0) != 0x20) return OUTBOUND_ADDR_RESERVED; /* not global unicast */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return OUTBOUND_ADDR_RESERVED; /* 2001:db8::/32 documentation */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02)
        return OUTBOUND_ADDR_RESERVED; /* 2001::/23 IETF: Teredo, ORCHID, … */
    if (b[0] == 0x20 && b[1] == 0x02) return OUTBOUND_ADDR_RESERVED; /* 6to4 */
    if (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0)
        return OUTBOUND_ADDR_RESERVED; /* 3fff::/20 documentation */
    return OUTBOUND_ADDR_PUBLIC;
}

outbound_addr_class outbound_addr_classify(int family, const unsigned char *addr)
{
    if (family == AF_INET) return classify4(addr);
    if (family == AF_INET6) return classify6(addr);
    return OUTBOUND_ADDR_RESERVED;
}

const char *outbound_addr_class_name(outbound_addr_class c)
{
    switch (c) {
    case OUTBOUND_ADDR_PUBLIC:
        return "public";
    case OUTBOUND_ADDR_LOOPBACK:
        return "loopback";
    case OUTBOUND_ADDR_PRIVATE:
        return "private";
    case OUTBOUND_ADDR_LINK_LOCAL:
        return "link-local";
    case OUTBOUND_ADDR_CGNAT:
        return "shared (CGNAT)";
    case OUTBOUND_ADDR_UNSPECIFIED:
        return "unspecified";
    case OUTBOUND_ADDR_MULTICAST:
        return "multicast";
    case OUTBOUND_ADDR_RESERVED:
        return "reserved";
    }
    return "reserved";
}

bool outbound_addr_allowed(const outbound_policy *p, outbound_addr_class c)
{
    if (c == OUTBOUND_ADDR_PUBLIC) return true;
    return p->allow_private && c <= OUTBOUND_ADDR_CGNAT;
}

/* ------------------------------------------------------------------------
 * The check
 * ------------------------------------------------------------------------ */

tsg_rc outbound_check(const outbound_policy *p, const char *url, outbound_target *out,
                      tsg_error *err)
{
    memset(out, 0, sizeof *out);
    tsg_rc rc = outbound_url_parse(url, &out->url, err);
    if (rc != TSG_OK) return rc;
    const outbound_url *u = &out->url;
    if (!u->https && !p->allow_http)
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "outbound URL: only https is allowed (outbound_allow_http is off)");
    if (!outbound_host_allowed(p, u->host))
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "outbound URL: host '%s' is not in the allowlist (outbound_allow)",
                             u->host);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (u->ip_family ? AI_NUMERICHOST : 0);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)u->port);
    struct addrinfo *res = NULL;
    int g = getaddrinfo(u->host, port, &hints, &res);
    if (g != 0)
        return tsg_error_set(err, TSG_EIO, "transient", "outbound URL: cannot resolve '%s': %s",
                             u->host, g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
    rc = TSG_OK;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        const unsigned char *bytes;
        if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in))
            bytes = (const unsigned char *)&((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr;
        else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6))
            bytes = (const unsigned char *)&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
        else
            continue;
        outbound_addr_class c = outbound_addr_classify(ai->ai_family, bytes);
        if (!outbound_addr_allowed(p, c)) {
            char text[INET6_ADDRSTRLEN];
            if (!inet_ntop(ai->ai_family, bytes, text, sizeof text))
                snprintf(text, sizeof text, "?");
            rc = tsg_error_set(err, TSG_EINVAL, "security",
                               "outbound URL: '%s' resolves to %s, a %s address%s", u->host, text,
                               outbound_addr_class_name(c),
                               c <= OUTBOUND_ADDR_CGNAT ? " (outbound_allow_private is off)" : "");
            break;
        }
        bool seen = false;
        for (size_t i = 0; i < out->n_addrs && !seen; i++)
            seen = out->addr_lens[i] == ai->ai_addrlen &&
                   memcmp(&out->addrs[i], ai->ai_addr, ai->ai_addrlen) == 0;
        if (seen || out->n_addrs >= OUTBOUND_ADDRS_MAX) continue;
        memset(&out->addrs[out->n_addrs], 0, sizeof out->addrs[0]);
        memcpy(&out->addrs[out->n_addrs], ai->ai_addr, ai->ai_addrlen);
        out->addr_lens[out->n_addrs] = ai->ai_addrlen;
        out->n_addrs++;
    }
    freeaddrinfo(res);
    if (rc == TSG_OK && out->n_addrs == 0)
        rc = tsg_error_set(err, TSG_EIO, "transient",
                           "outbound URL: '%s' resolves to no IPv4 or IPv6 address", u->host);
    if (rc != TSG_OK) out->n_addrs = 0;
    return rc;
}
