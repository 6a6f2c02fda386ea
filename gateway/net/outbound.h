/*
 * outbound.h — the policy for every connection the gateway opens to another
 * system (issue 5, item 5): webhooks, FHIR REST push, any later adapter that
 * calls out. The module `net` has no dependency on the server; its only
 * system call is getaddrinfo() in outbound_check().
 *
 * ## The policy
 *
 * A URL may be called only when all of these hold:
 *
 *   1. it parses strictly (outbound_url_parse): `https://host[:port][/path][?query]`,
 *      at most OUTBOUND_URL_MAX bytes of printable ASCII; no user info
 *      (`user@`), no fragment, no backslash, no percent-escape or non-ASCII
 *      byte in the host (IDN hosts are written in their ASCII `xn--` form),
 *      host names of RFC 1123 labels without a trailing dot, IPv4 only as
 *      four decimal octets (`127.1`, `0x7f.0.0.1`, `2130706433` are refused),
 *      IPv6 in brackets without a zone; well-formed %XX escapes in the path;
 *   2. its scheme is `https` — `http` only with outbound_allow_http on;
 *   3. its host matches the allowlist (outbound_allow): a pattern is an exact
 *      host (`fhir.clinic.example.jp`, an IPv4 literal, an IPv6 literal with or
 *      without brackets) or `*.suffix`, which matches any host that ends in `.suffix` and has at
 *      least one more label (`*.example.jp` matches `a.example.jp`, not
 *      `example.jp`). An empty allowlist allows nothing: deny by default;
 *   4. every address the host resolves to is public: none is loopback,
 *      private (RFC 1918, fc00::/7, fec0::/10), link-local (169.254/16,
 *      fe80::/10), shared CGNAT space (100.64/10), "this network" (0/8, ::),
 *      multicast, broadcast, documentation, benchmarking or otherwise
 *      reserved (outside 2000::/3 for IPv6), nor an IPv4-mapped,
 *      IPv4-compatible, 6to4 or NAT64 address of such a one. With
 *      outbound_allow_private on, loopback, private, link-local and CGNAT
 *      addresses are allowed (a gateway in a closed regional network; the
 *      tests); the rest never is.
 *
 * Configuration (gateway/rest/http.h loads it; a bad value stops `serve`):
 *
 *   JSON key                  environment                      default
 *   "outbound_allow"          TSUNAGU_OUTBOUND_ALLOW           "" (nothing allowed):
 *                                                              comma-separated patterns
 *   "outbound_allow_private"  TSUNAGU_OUTBOUND_ALLOW_PRIVATE   "off" | "on"
 *   "outbound_allow_http"     TSUNAGU_OUTBOUND_ALLOW_HTTP      "off" | "on"
 *
 * ## How a caller (webhook, FHIR push) must use it
 *
 *     outbound_target t;
 *     if (outbound_check(&policy, url, &t, &err) != TSG_OK) -> the delivery fails
 *         with err.message (a permanent failure unless err.rc == TSG_EIO: DNS)
 *     connect to t.addrs[0..t.n_addrs) ONLY, on t.url.port, e.g. with libcurl:
 *         CURLOPT_RESOLVE "host:port:addr1,addr2", or CURLOPT_OPENSOCKETFUNCTION
 *     send `Host: t.url.host[:port]`, use t.url.host for SNI and verify the
 *         server certificate against it (CURLOPT_SSL_VERIFYPEER/HOST on)
 *     never follow redirects (CURLOPT_FOLLOWLOCATION 0): a Location is a new
 *         URL and would need its own check
 *     no proxy from the environment (CURLOPT_PROXY ""), since a proxy
 *         resolves the name again itself
 *
 * Call outbound_check() before every attempt, not once when the endpoint is
 * registered: DNS answers change. Connecting to exactly the checked addresses
 * is what defeats DNS rebinding (a name that answers a public address to the
 * check and 127.0.0.1 to the connect). outbound_check() blocks in
 * getaddrinfo() (up to the resolver's timeout): call it from delivery
 * workers, never on an HTTP request thread.
 */
#ifndef TSG_NET_OUTBOUND_H
#define TSG_NET_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../util/util.h"

#define OUTBOUND_URL_MAX   2048 /* bytes of a URL */
#define OUTBOUND_HOST_MAX  253  /* bytes of a host name (RFC 1035) */
#define OUTBOUND_ALLOW_MAX 64   /* patterns in the allowlist */
#define OUTBOUND_ADDRS_MAX 16   /* addresses kept per host (all of them are checked) */

/* The policy, built by outbound_policy_parse(). Plain data: share it between
 * threads read-only. */
typedef struct outbound_policy {
    char allow[OUTBOUND_ALLOW_MAX][OUTBOUND_HOST_MAX + 3]; /* canonical: lower case,
                                                              "*." prefix kept, IPv6
                                                              without brackets */
    size_t n_allow;
    bool allow_private; /* loopback, private, link-local, CGNAT addresses allowed */
    bool allow_http;    /* http:// allowed besides https:// */
} outbound_policy;

/*
 * Builds a policy: allow is the comma-separated pattern list (blanks around a
 * pattern are ignored; NULL or "" = nothing allowed), allow_private and
 * allow_http "on" or "off" (NULL = "off"). Returns TSG_OK, TSG_EINVAL for a
 * malformed pattern (an empty one, `*` alone, `*.` before an IP or a single
 * label like `*.jp`, a bad host) or an on/off value, or TSG_ELIMIT for more
 * than OUTBOUND_ALLOW_MAX patterns; err names the setting and the pattern.
 */
tsg_rc outbound_policy_parse(outbound_policy *p, const char *allow, const char *allow_private,
                             const char *allow_http, tsg_error *err);

/* A URL as outbound_url_parse() accepted it, in canonical form. */
typedef struct outbound_url {
    bool https;                        /* false: http */
    char host[OUTBOUND_HOST_MAX + 1];  /* lower case; an IPv6 literal without brackets
                                          in inet_ntop() form */
    int ip_family;                     /* AF_INET / AF_INET6 for an IP literal, else 0 */
    uint16_t port;                     /* as given, else 443 (https) or 80 (http) */
    char target[OUTBOUND_URL_MAX + 1]; /* path and query as given, "/" when empty */
} outbound_url;

/*
 * Parses url (NUL-terminated) by rule 1 above into *out. The scheme is
 * case-insensitive and so is the host (lower-cased); nothing else is
 * rewritten. Returns TSG_OK, TSG_EINVAL (err says what is wrong) or
 * TSG_ELIMIT (longer than OUTBOUND_URL_MAX). Pure: no DNS, no allocation.
 */
tsg_rc outbound_url_parse(const char *url, outbound_url *out, tsg_error *err);

/* Writes the canonical form of u ("https://host[:port]/target"; the port
 * only when not the scheme's default; IPv6 in brackets) into out. Returns
 * false when it does not fit in size bytes (out is then ""). The result
 * parses again to the same outbound_url. */
bool outbound_url_format(const outbound_url *u, char *out, size_t size);

/* Whether host (canonical, as in outbound_url.host) matches a pattern of p. */
bool outbound_host_allowed(const outbound_policy *p, const char *host);

/* What an address is, for rule 4. Only OUTBOUND_ADDR_PUBLIC is always allowed;
 * the classes up to OUTBOUND_ADDR_CGNAT with allow_private. */
typedef enum outbound_addr_class {
    OUTBOUND_ADDR_PUBLIC = 0,
    OUTBOUND_ADDR_LOOPBACK,    /* 127/8, ::1 */
    OUTBOUND_ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10,
                                  64:ff9b:1::/48 */
    OUTBOUND_ADDR_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
    OUTBOUND_ADDR_CGNAT,       /* 100.64/10 (shared address space, RFC 6598) */
    OUTBOUND_ADDR_UNSPECIFIED, /* 0/8 ("this network"), :: */
    OUTBOUND_ADDR_MULTICAST,   /* 224/4, ff00::/8 */
    OUTBOUND_ADDR_RESERVED     /* broadcast, 240/4, documentation, benchmarking,
                                  192.0.0/24, 6to4, Teredo, ::/96 (IPv4-compatible),
                                  everything of IPv6 outside 2000::/3, … */
} outbound_addr_class;

/*
 * Classifies an IPv4 (family AF_INET, 4 bytes in network order) or IPv6
 * (AF_INET6, 16 bytes) address. IPv4-mapped (::ffff:0:0/96) and NAT64
 * (64:ff9b::/96) addresses are the class of the IPv4 address they carry.
 * Any other family is OUTBOUND_ADDR_RESERVED. Pure.
 */
outbound_addr_class outbound_addr_classify(int family, const unsigned char *addr);

/* The class as a word for messages ("loopback", "private", …). */
const char *outbound_addr_class_name(outbound_addr_class c);

/* Whether an address of class c may be called under p. */
bool outbound_addr_allowed(const outbound_policy *p, outbound_addr_class c);

/* A URL that passed the policy, with the addresses to connect to. */
typedef struct outbound_target {
    outbound_url url;
    struct sockaddr_storage addrs[OUTBOUND_ADDRS_MAX]; /* port set to url.port */
    socklen_t addr_lens[OUTBOUND_ADDRS_MAX];
    size_t n_addrs; /* >= 1; the first OUTBOUND_ADDRS_MAX distinct ones, in the
                       resolver's order */
} outbound_target;

/*
 * Applies the whole policy to url: parse (rule 1), scheme (2), allowlist (3),
 * then resolves the host (an IP literal is not looked up) and checks every
 * address (4). On TSG_OK *out holds the URL and the addresses to connect to.
 * Fails with TSG_EINVAL (malformed URL, scheme, host not allowed, an address
 * not allowed — err names the address and its class), TSG_ELIMIT (too long)
 * or TSG_EIO (the name does not resolve; err has the resolver's reason).
 * Blocks in getaddrinfo(); thread-safe.
 */
tsg_rc outbound_check(const outbound_policy *p, const char *url, outbound_target *out,
                      tsg_error *err);

#endif
