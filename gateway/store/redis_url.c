/*
 * redis_url.c — Redis targets: parsing redis:// and unix:// URLs, describing a
 * target without its password. See redis.h.
 */
#include "redis.h"

#include <stdio.h>
#include <string.h>

/* Copies s[0..n) into out (size cap) after %-decoding; 0 on success, -1 when a
 * %-escape is malformed, -2 when it does not fit, -3 on a NUL byte. */
static int url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '%') {
            int v = 0;
            for (int k = 1; k <= 2; k++) {
                if (i + (size_t)k >= n) return -1;
                char h = s[i + (size_t)k];
                int d = (h >= '0' && h <= '9')   ? h - '0'
                        : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                 : -1;
                if (d < 0) return -1;
                v = v * 16 + d;
            }
            if (v == 0) return -3;
            ch = (unsigned char)v;
            i += 2;
        }
        if (o + 1 >= cap) return -2;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

/* Parses a decimal number s[0..n) in [lo, hi]; 0 on success. */
static int parse_uint(const char *s, size_t n, long lo, long hi, long *v)
{
    if (n == 0 || n > 9) return -1;
    long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    if (x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

static tsg_rc url_fail(redis_target *out, tsg_error *err, tsg_rc rc, const char *what)
{
    memset(out, 0, sizeof *out);
    return tsg_error_set(err, rc, "invalid", "invalid Redis URL: %s", what);
}

/* Parses the userinfo part (`user:password` or `:password`). */
static tsg_rc parse_userinfo(const char *s, size_t n, redis_target *out, tsg_error *err)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return url_fail(out, err, TSG_EINVAL,
                        "the credentials need a colon (:password@ or user:password@)");
    const char *pw = s;
    size_t pwn = n;
    {
        size_t un = (size_t)(colon - s);
        int r = url_decode(s, un, out->username, sizeof out->username);
        if (r == -2) return url_fail(out, err, TSG_EINVAL, "the user name is too long");
        if (r != 0) return url_fail(out, err, TSG_EINVAL, "bad %-escape in the user name");
        pw = colon + 1;
        pwn = n - un - 1;
    }
    int r = url_decode(pw, pwn, out->password, sizeof out->password);
    if (r == -2) return url_fail(out, err, TSG_EINVAL, "the password is too long");
    if (r != 0) return url_fail(out, err, TSG_EINVAL, "bad %-escape in the password");
    if (out->username[0] && !out->password[0])
        return url_fail(out, err, TSG_EINVAL, "a user name without a password");
    return TSG_OK;
}

/* Parses `db=N&password=P` of a unix:// URL. */
static tsg_rc parse_query(const char *q, size_t n, redis_target *out, tsg_error *err)
{
    size_t i = 0;
    while (i < n) {
        const char *amp = memchr(q + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - q) : n;
        const char *item = q + i;
        size_t len = end - i;
        if (len > 3 && memcmp(item, "db=", 3) == 0) {
            long v;
            if (parse_uint(item + 3, len - 3, 0, REDIS_DB_MAX, &v) != 0)
                return url_fail(out, err, TSG_EINVAL,
                                "the database (?db=) is not a number from 0 to 1000000");
            out->db = (int)v;
        } else if (len >= 9 && memcmp(item, "password=", 9) == 0) {
            int r = url_decode(item + 9, len - 9, out->password, sizeof out->password);
            if (r == -2) return url_fail(out, err, TSG_EINVAL, "the password is too long");
            if (r != 0) return url_fail(out, err, TSG_EINVAL, "bad %-escape in the password");
        } else if (len > 0) {
            return url_fail(out, err, TSG_EINVAL,
                            "unknown query parameter (only db= and password= are known)");
        }
        i = end + 1;
    }
    return TSG_OK;
}

static tsg_rc parse_unix(const char *s, size_t n, redis_target *out, tsg_error *err)
{
    out->kind = REDIS_TARGET_UNIX;
    /* optional userinfo before the path: unix://:pw@/path */
    const char *slash = memchr(s, '/', n);
    if (!slash) return url_fail(out, err, TSG_EINVAL, "unix:// needs an absolute socket path");
    if (slash > s) {
        if (slash[-1] != '@')
            return url_fail(out, err, TSG_EINVAL,
                            "unix:// takes no host (write unix:///path, three slashes)");
        tsg_rc rc = parse_userinfo(s, (size_t)(slash - s) - 1, out, err);
        if (rc != TSG_OK) return rc;
    }
    size_t rest = n - (size_t)(slash - s);
    const char *q = memchr(slash, '?', rest);
    size_t pathn = q ? (size_t)(q - slash) : rest;
    if (pathn < 2) return url_fail(out, err, TSG_EINVAL, "unix:// needs a socket path");
    int r = url_decode(slash, pathn, out->path, sizeof out->path);
    if (r == -2)
        return url_fail(out, err, TSG_EINVAL, "the socket path is too long (max 107 bytes)");
    if (r != 0) return url_fail(out, err, TSG_EINVAL, "bad %-escape in the socket path");
    if (q) return parse_query(q + 1, rest - pathn - 1, out, err);
    return TSG_OK;
}

static tsg_rc parse_tcp(const char *s, size_t n, redis_target *out, tsg_error *err)
{
    out->kind = REDIS_TARGET_TCP;
    out->port = 6379;
    /* authority ends at '/' (the database) */
    const char *slash = memchr(s, '/', n);
    size_t an = slash ? (size_t)(slash - s) : n;
    const char *at = NULL;
    for (size_t i = an; i > 0; i--)
        if (s[i - 1] == '@') {
            at = s + i - 1;
            break;
        }
    const char *host = s;
    if (at) {
        tsg_rc rc = parse_userinfo(s, (size_t)(at - s), out, err);
        if (rc != TSG_OK) return rc;
        host = at + 1;
    }
    size_t hn = an - (size_t)(host - s);
    const char *portp = NULL;
    size_t portn = 0;
    if (hn > 0 && host[0] == '[') { /* [IPv6] */
        const char *close = memchr(host, ']', hn);
        if (!close) return url_fail(out, err, TSG_EINVAL, "unclosed '[' in the host");
        size_t after = hn - (size_t)(close - host) - 1;
        if (after > 0) {
            if (close[1] != ':')
                return url_fail(out, err, TSG_EINVAL, "garbage after the IPv6 address");
            portp = close + 2;
            portn = after - 1;
        }
        host++;
        hn = (size_t)(close - host);
        for (size_t i = 0; i < hn; i++) {
            char ch = host[i];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                  (ch >= 'A' && ch <= 'F') || ch == ':' || ch == '.'))
                return url_fail(out, err, TSG_EINVAL, "bad character in the IPv6 address");
        }
    } else {
        const char *colon = memchr(host, ':', hn);
        if (colon) {
            portp = colon + 1;
            portn = hn - (size_t)(colon - host) - 1;
            hn = (size_t)(colon - host);
        }
        for (size_t i = 0; i < hn; i++) {
            char ch = host[i];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == '-' || ch == '_'))
                return url_fail(out, err, TSG_EINVAL,
                                "bad character in the host (letters, digits, '.', '-', '_')");
        }
    }
    if (hn == 0) return url_fail(out, err, TSG_EINVAL, "the host is missing");
    if (hn >= sizeof out->host) return url_fail(out, err, TSG_EINVAL, "the host is too long");
    memcpy(out->host, host, hn);
    out->host[hn] = '\0';
    if (portp) {
        long v;
        if (parse_uint(portp, portn, 1, 65535, &v) != 0)
            return url_fail(out, err, TSG_EINVAL, "the port is not a number from 1 to 65535");
        out->port = (int)v;
    }
    if (slash) {
        size_t dn = n - an - 1;
        if (dn > 0) {
            long v;
            if (parse_uint(slash + 1, dn, 0, REDIS_DB_MAX, &v) != 0)
                return url_fail(out, err, TSG_EINVAL,
                                "the database (/db) is not a number from 0 to 1000000");
            out->db = (int)v;
        }
    }
    return TSG_OK;
}

tsg_rc redis_target_parse(const char *url, redis_target *out, tsg_error *err)
{
    memset(out, 0, sizeof *out);
    if (!url || !url[0]) return url_fail(out, err, TSG_EINVAL, "empty");
    size_t n = strnlen(url, REDIS_URL_MAX + 1);
    if (n > REDIS_URL_MAX) return url_fail(out, err, TSG_EINVAL, "longer than 2048 bytes");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= ' ' || ch >= 0x7f)
            return url_fail(out, err, TSG_EINVAL,
                            "spaces, control characters and non-ASCII must be %-encoded");
    }
    if (n >= 8 && strncmp(url, "redis://", 8) == 0) return parse_tcp(url + 8, n - 8, out, err);
    if (n >= 7 && strncmp(url, "unix://", 7) == 0) return parse_unix(url + 7, n - 7, out, err);
    if (n >= 9 && strncmp(url, "rediss://", 9) == 0)
        return url_fail(out, err, TSG_ENOTSUP, "rediss:// (TLS) is not supported by this build");
    return url_fail(out, err, TSG_EINVAL, "the scheme must be redis:// or unix://");
}

tsg_rc redis_target_unix(const char *path, redis_target *out, tsg_error *err)
{
    memset(out, 0, sizeof *out);
    out->kind = REDIS_TARGET_UNIX;
    size_t n = path ? strlen(path) : 0;
    if (n == 0) return tsg_error_set(err, TSG_EINVAL, "invalid", "empty Redis socket path");
    if (n >= sizeof out->path)
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "Redis socket path too long (max %zu bytes): %s", sizeof out->path - 1,
                             path);
    memcpy(out->path, path, n + 1);
    return TSG_OK;
}

char *redis_target_describe(const redis_target *t, char *buf, size_t n)
{
    if (n == 0) return buf;
    const char *pw = t->password[0] ? "***" : "";
    const char *sep = t->password[0] ? "@" : "";
    if (t->kind == REDIS_TARGET_UNIX) {
        if (t->password[0])
            snprintf(buf, n, "unix://%s:***@%s?db=%d", t->username, t->path, t->db);
        else
            snprintf(buf, n, "unix://%s?db=%d", t->path, t->db);
    } else {
        const char *lb = strchr(t->host, ':') ? "[" : "";
        const char *rb = strchr(t->host, ':') ? "]" : "";
        snprintf(buf, n, "redis://%s%s%s%s%s%s%s:%d/%d", t->username, t->password[0] ? ":" : "", pw,
                 sep, lb, t->host, rb, t->port, t->db);
    }
    return buf;
}
