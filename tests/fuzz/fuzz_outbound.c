/*
 * fuzz_outbound.c — libFuzzer target for the outbound call policy
 * (gateway/net/outbound.h): the strict URL parser, the allowlist parser and
 * the address classification. No DNS: outbound_check()'s getaddrinfo() is
 * not called; what it adds to these is the loop over the resolved addresses.
 *
 * Properties: an accepted URL is canonical (lower-case host of [a-z0-9.-:],
 * port set, target starting with '/'), formats to a URL that parses to the
 * same thing, and a policy of exactly its host allows it; an accepted
 * allowlist holds only canonical patterns that parse again to themselves;
 * an IPv4 address and its IPv4-mapped IPv6 form are of the same class.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/outbound.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_outbound: broken property: %s\n", what);
        abort();
    }
}

static void url_properties(const char *s)
{
    outbound_url u;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = outbound_url_parse(s, &u, &err);
    if (rc != TSG_OK) {
        check(rc == TSG_EINVAL || rc == TSG_ELIMIT, "a refusal is EINVAL or ELIMIT");
        check(err.message[0] != 0, "a refused URL has a message");
        return;
    }
    check(u.host[0] != 0, "an accepted URL has a host");
    for (const char *p = u.host; *p; p++)
        check((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
                  *p == ':',
              "the host is canonical");
    check(u.port != 0, "the port is set");
    check(u.target[0] == '/', "the target starts with '/'");
    if (u.ip_family) {
        unsigned char b[16];
        check(inet_pton(u.ip_family, u.host, b) == 1, "an IP host is an address");
        check(outbound_addr_class_name(outbound_addr_classify(u.ip_family, b)) != NULL,
              "every address has a class");
    }
    char again[OUTBOUND_URL_MAX + 64];
    check(outbound_url_format(&u, again, sizeof again), "the canonical URL fits");
    outbound_url v;
    check(outbound_url_parse(again, &v, &err) == TSG_OK, "the canonical URL parses");
    check(memcmp(&u, &v, sizeof u) == 0, "the canonical URL parses to the same URL");

    outbound_policy p;
    char pattern[OUTBOUND_HOST_MAX + 3];
    snprintf(pattern, sizeof pattern, u.ip_family == AF_INET6 ? "[%s]" : "%s", u.host);
    check(outbound_policy_parse(&p, pattern, "off", "off", &err) == TSG_OK,
          "a URL's host is a valid pattern");
    check(outbound_host_allowed(&p, u.host), "a policy of exactly the host allows it");
}

static void policy_properties(const char *s)
{
    outbound_policy p;
    tsg_error err;
    tsg_error_clear(&err);
    if (outbound_policy_parse(&p, s, "on", "off", &err) != TSG_OK) {
        check(err.message[0] != 0, "a refused allowlist has a message");
        return;
    }
    check(p.n_allow <= OUTBOUND_ALLOW_MAX, "at most OUTBOUND_ALLOW_MAX patterns");
    for (size_t i = 0; i < p.n_allow; i++) {
        const char *pat = p.allow[i];
        outbound_policy q;
        char again[OUTBOUND_HOST_MAX + 8];
        snprintf(again, sizeof again, strchr(pat, ':') ? "[%s]" : "%s", pat);
        check(outbound_policy_parse(&q, again, "off", "off", &err) == TSG_OK,
              "a canonical pattern parses again");
        check(q.n_allow == 1 && strcmp(q.allow[0], pat) == 0, "a canonical pattern is stable");
        if (pat[0] != '*') check(outbound_host_allowed(&p, pat), "an exact pattern allows itself");
    }
}

static void classify_properties(const uint8_t *data, size_t size)
{
    if (size < 4) return;
    outbound_addr_class c4 = outbound_addr_classify(AF_INET, data);
    unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(mapped + 12, data, 4);
    check(outbound_addr_classify(AF_INET6, mapped) == c4, "IPv4-mapped is the IPv4 class");
    if (size >= 16) {
        outbound_addr_class c6 = outbound_addr_classify(AF_INET6, data);
        check(c6 <= OUTBOUND_ADDR_RESERVED, "a known class");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    url_properties(s);
    policy_properties(s);
    classify_properties(data, size);
    free(s);
    return 0;
}
