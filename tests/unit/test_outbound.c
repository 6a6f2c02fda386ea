/*
 * test_outbound.c — the outbound call policy (gateway/net/outbound.h): the
 * strict URL parser, allowlist patterns, the address classification, and
 * outbound_check() on IP literals and `localhost` (resolved from /etc/hosts,
 * no network needed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/outbound.h"

/* ------------------------------------------------------------------------
 * URLs
 * ------------------------------------------------------------------------ */

static void accept_url(const char *url, bool https, const char *host, int family, unsigned port,
                       const char *target)
{
    outbound_url u;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = outbound_url_parse(url, &u, &err);
    if (rc != TSG_OK) fail_msg("'%s' refused: %s", url, err.message);
    assert_int_equal(u.https, https);
    assert_string_equal(u.host, host);
    assert_int_equal(u.ip_family, family);
    assert_int_equal(u.port, port);
    assert_string_equal(u.target, target);
    /* the canonical form parses to the same URL */
    char again[OUTBOUND_URL_MAX + 64];
    assert_true(outbound_url_format(&u, again, sizeof again));
    outbound_url v;
    assert_int_equal(outbound_url_parse(again, &v, &err), TSG_OK);
    assert_memory_equal(&u, &v, sizeof u);
}

static void test_url_accepted(void **state)
{
    (void)state;
    accept_url("https://fhir.example.jp/webhook?x=1&y=%E3%81%82", true, "fhir.example.jp", 0, 443,
               "/webhook?x=1&y=%E3%81%82");
    accept_url("HTTPS://FHIR.Example.JP:8443", true, "fhir.example.jp", 0, 8443, "/");
    accept_url("http://127.0.0.1:8080/a%20b/c", false, "127.0.0.1", AF_INET, 8080, "/a%20b/c");
    accept_url("https://[2001:DB8:0::1]:8443/x", true, "2001:db8::1", AF_INET6, 8443, "/x");
    accept_url("https://[::ffff:127.0.0.1]/", true, "::ffff:127.0.0.1", AF_INET6, 443, "/");
    accept_url("https://xn--wgv71a119e.jp/", true, "xn--wgv71a119e.jp", 0, 443, "/");
    accept_url("https://host?q=1", true, "host", 0, 443, "/?q=1");
    accept_url("https://a-b.c0.example.jp:65535/p;x=1/@:!$&'()*+,=~", true, "a-b.c0.example.jp", 0,
               65535, "/p;x=1/@:!$&'()*+,=~");
    accept_url("https://8.8.8.8", true, "8.8.8.8", AF_INET, 443, "/");
    accept_url("https://1.example.jp/", true, "1.example.jp", 0, 443, "/");

    char out[16];
    outbound_url u;
    assert_int_equal(outbound_url_parse("https://example.jp/long", &u, NULL), TSG_OK);
    assert_false(outbound_url_format(&u, out, sizeof out));
    assert_string_equal(out, "");
}

static void test_url_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "ftp://example.jp/",
        "https:/example.jp/",
        "https:example.jp",
        "//example.jp/",
        "https://user@example.jp/",
        "https://user:pw@example.jp/",
        "https://example.jp@evil.jp/",
        "https://ho%73t.jp/",
        "https://exa mple.jp/",
        "https://\xe4\xbe\x8b\xe3\x81\x88.jp/", /* 例え.jp: Unicode host */
        "https://example\xef\xbc\x8ejp/",       /* fullwidth dot */
        "https://example.jp/\xe3\x81\x82",      /* raw UTF-8 in the path */
        "https://a.jp\\@b.jp/",
        "https://a.jp\\b",
        "https://a.jp/#frag",
        "https://127.1/",
        "https://0x7f000001/",
        "https://0x7f.0.0.1/",
        "https://2130706433/",
        "https://0177.0.0.1/",
        "https://127.0.0.01/",
        "https://1.2.3/",
        "https://1.2.3.4.5/",
        "https://256.1.1.1/",
        "https://[fe80::1%25eth0]/",
        "https://[::1/",
        "https://[1.2.3.4]/",
        "https://[v1.x]/",
        "https://[::1]x/",
        "https://[::1]:/",
        "https://::1/",
        "https://::1:443/",
        "https://example.jp:/",
        "https://example.jp:0/",
        "https://example.jp:65536/",
        "https://example.jp:+80/",
        "https://example.jp:123456/",
        "https://example.jp:8a/",
        "https://example.jp./",
        "https://.example.jp/",
        "https://a..jp/",
        "https://-a.jp/",
        "https://a-.jp/",
        "https://a_b.jp/",
        "https:///path",
        "https://?q",
        "https://example.jp/%zz",
        "https://example.jp/%4",
        "https://example.jp/a%",
        "https://example.jp/a b",
        "https://example.jp/<x>",
        "https://example.jp/{x}",
        "https://example.jp/a|b",
        "https://example.jp/a\"b",
        "https://example.jp/a^b",
        "https://example.jp/a`b",
        "https://example.jp/[x]",
        "https://example.jp/\x7f",
        "https://example.jp/\t",
        "https://example.123/",
        "https://0x1.example.0x2/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        outbound_url u;
        tsg_error err;
        tsg_error_clear(&err);
        tsg_rc rc = outbound_url_parse(bad[i], &u, &err);
        if (rc != TSG_EINVAL) fail_msg("'%s' was not refused (rc %d)", bad[i], rc);
        assert_true(err.message[0] != '\0');
    }
    /* a label of 63 bytes is fine, 64 is not; a host of 253 bytes is fine, 254 not */
    char url[600];
    char label[70];
    memset(label, 'a', 64);
    label[64] = '\0';
    snprintf(url, sizeof url, "https://%s.jp/", label);
    assert_int_equal(outbound_url_parse(url, &(outbound_url){0}, NULL), TSG_EINVAL);
    label[63] = '\0';
    snprintf(url, sizeof url, "https://%s.jp/", label);
    assert_int_equal(outbound_url_parse(url, &(outbound_url){0}, NULL), TSG_OK);
    char host[300];
    size_t n = 0;
    while (n + 64 <= 253) {
        memcpy(host + n, label, 63);
        host[n + 63] = '.';
        n += 64;
    }
    memset(host + n, 'b', 253 - n); /* 192 + 61 = 253 */
    host[253] = '\0';
    snprintf(url, sizeof url, "https://%s/", host);
    assert_int_equal(outbound_url_parse(url, &(outbound_url){0}, NULL), TSG_OK);
    host[253] = 'b';
    host[254] = '\0';
    snprintf(url, sizeof url, "https://%s/", host);
    assert_int_equal(outbound_url_parse(url, &(outbound_url){0}, NULL), TSG_EINVAL);
    /* the length cap */
    char *big = malloc(OUTBOUND_URL_MAX + 2);
    assert_non_null(big);
    memcpy(big, "https://example.jp/", 19);
    memset(big + 19, 'a', OUTBOUND_URL_MAX + 1 - 19);
    big[OUTBOUND_URL_MAX + 1] = '\0';
    tsg_error err;
    assert_int_equal(outbound_url_parse(big, &(outbound_url){0}, &err), TSG_ELIMIT);
    big[OUTBOUND_URL_MAX] = '\0';
    assert_int_equal(outbound_url_parse(big, &(outbound_url){0}, &err), TSG_OK);
    free(big);
}

/* ------------------------------------------------------------------------
 * The policy
 * ------------------------------------------------------------------------ */

static void test_policy_parse(void **state)
{
    (void)state;
    outbound_policy p;
    tsg_error err;
    tsg_error_clear(&err);
    assert_int_equal(outbound_policy_parse(&p,
                                           " fhir.Example.jp, *.clinic.example.jp ,10.0.0.5,"
                                           "[FD00::5],fd00:0::6",
                                           "on", "off", &err),
                     TSG_OK);
    assert_int_equal(p.n_allow, 5);
    assert_string_equal(p.allow[0], "fhir.example.jp");
    assert_string_equal(p.allow[1], "*.clinic.example.jp");
    assert_string_equal(p.allow[2], "10.0.0.5");
    assert_string_equal(p.allow[3], "fd00::5");
    assert_string_equal(p.allow[4], "fd00::6");
    assert_true(p.allow_private);
    assert_false(p.allow_http);

    assert_int_equal(outbound_policy_parse(&p, NULL, NULL, NULL, &err), TSG_OK);
    assert_int_equal(p.n_allow, 0);
    assert_false(p.allow_private);
    assert_false(p.allow_http);
    assert_int_equal(outbound_policy_parse(&p, "  ", "off", "on", &err), TSG_OK);
    assert_int_equal(p.n_allow, 0);
    assert_true(p.allow_http);

    static const char *const bad[] = {
        "*",          "*.jp",   "*.",    "*x.example.jp", "*.*.jp",     "*.1.2.3.4", "*.[::1]",
        "a.jp,,b.jp", ",",      "a.jp,", "a b.jp",        "[1.2.3.4]",  "127.1",     "https://a.jp",
        "a.jp:443",   "a.jp/x", "a.jp.", "user@a.jp",     "*.example.", "[::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsg_error_clear(&err);
        if (outbound_policy_parse(&p, bad[i], "off", "off", &err) != TSG_EINVAL)
            fail_msg("pattern '%s' was not refused", bad[i]);
        assert_non_null(strstr(err.message, "outbound_allow"));
    }
    assert_int_equal(outbound_policy_parse(&p, "a.jp", "yes", "off", &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "outbound_allow_private"));
    assert_int_equal(outbound_policy_parse(&p, "a.jp", "off", "ON", &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "outbound_allow_http"));

    char many[OUTBOUND_ALLOW_MAX * 16];
    size_t n = 0;
    for (int i = 0; i <= OUTBOUND_ALLOW_MAX; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%sh%d.jp", i ? "," : "", i);
    assert_int_equal(outbound_policy_parse(&p, many, "off", "off", &err), TSG_ELIMIT);
    *strrchr(many, ',') = '\0';
    assert_int_equal(outbound_policy_parse(&p, many, "off", "off", &err), TSG_OK);
    assert_int_equal(p.n_allow, OUTBOUND_ALLOW_MAX);
}

static void test_host_allowed(void **state)
{
    (void)state;
    outbound_policy p;
    assert_int_equal(
        outbound_policy_parse(&p, "fhir.example.jp,*.clinic.example.jp,[::1]", "off", "off", NULL),
        TSG_OK);
    assert_true(outbound_host_allowed(&p, "fhir.example.jp"));
    assert_true(outbound_host_allowed(&p, "a.clinic.example.jp"));
    assert_true(outbound_host_allowed(&p, "a.b.clinic.example.jp"));
    assert_true(outbound_host_allowed(&p, "::1"));
    assert_false(outbound_host_allowed(&p, "clinic.example.jp"));     /* the apex */
    assert_false(outbound_host_allowed(&p, "evilclinic.example.jp")); /* not a label boundary */
    assert_false(outbound_host_allowed(&p, "x.fhir.example.jp"));     /* exact means exact */
    assert_false(outbound_host_allowed(&p, "fhir.example.jp.evil.jp"));
    assert_false(outbound_host_allowed(&p, "example.jp"));
    outbound_policy none;
    assert_int_equal(outbound_policy_parse(&none, "", "on", "on", NULL), TSG_OK);
    assert_false(outbound_host_allowed(&none, "fhir.example.jp")); /* deny by default */
}

/* ------------------------------------------------------------------------
 * Addresses
 * ------------------------------------------------------------------------ */

static outbound_addr_class classify_text(const char *text)
{
    unsigned char b[16];
    int family = strchr(text, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, text, b) != 1) fail_msg("bad test address %s", text);
    return outbound_addr_classify(family, b);
}

static void test_classify(void **state)
{
    (void)state;
    static const struct {
        const char *addr;
        outbound_addr_class c;
    } cases[] = {
        {"0.0.0.0", OUTBOUND_ADDR_UNSPECIFIED},
        {"0.1.2.3", OUTBOUND_ADDR_UNSPECIFIED},
        {"10.1.2.3", OUTBOUND_ADDR_PRIVATE},
        {"100.63.255.255", OUTBOUND_ADDR_PUBLIC},
        {"100.64.0.1", OUTBOUND_ADDR_CGNAT},
        {"100.127.255.255", OUTBOUND_ADDR_CGNAT},
        {"100.128.0.1", OUTBOUND_ADDR_PUBLIC},
        {"127.0.0.1", OUTBOUND_ADDR_LOOPBACK},
        {"127.255.255.254", OUTBOUND_ADDR_LOOPBACK},
        {"169.254.169.254", OUTBOUND_ADDR_LINK_LOCAL},
        {"169.255.0.1", OUTBOUND_ADDR_PUBLIC},
        {"172.15.255.255", OUTBOUND_ADDR_PUBLIC},
        {"172.16.0.1", OUTBOUND_ADDR_PRIVATE},
        {"172.31.255.255", OUTBOUND_ADDR_PRIVATE},
        {"172.32.0.1", OUTBOUND_ADDR_PUBLIC},
        {"192.0.0.8", OUTBOUND_ADDR_RESERVED},
        {"192.0.2.1", OUTBOUND_ADDR_RESERVED},
        {"192.88.99.1", OUTBOUND_ADDR_RESERVED},
        {"192.168.1.1", OUTBOUND_ADDR_PRIVATE},
        {"192.169.0.1", OUTBOUND_ADDR_PUBLIC},
        {"198.18.0.1", OUTBOUND_ADDR_RESERVED},
        {"198.19.255.255", OUTBOUND_ADDR_RESERVED},
        {"198.20.0.1", OUTBOUND_ADDR_PUBLIC},
        {"198.51.100.7", OUTBOUND_ADDR_RESERVED},
        {"203.0.113.9", OUTBOUND_ADDR_RESERVED},
        {"224.0.0.1", OUTBOUND_ADDR_MULTICAST},
        {"239.255.255.255", OUTBOUND_ADDR_MULTICAST},
        {"240.0.0.1", OUTBOUND_ADDR_RESERVED},
        {"255.255.255.255", OUTBOUND_ADDR_RESERVED},
        {"8.8.8.8", OUTBOUND_ADDR_PUBLIC},
        {"1.1.1.1", OUTBOUND_ADDR_PUBLIC},
        {"133.242.0.1", OUTBOUND_ADDR_PUBLIC},
        {"::", OUTBOUND_ADDR_UNSPECIFIED},
        {"::1", OUTBOUND_ADDR_LOOPBACK},
        {"::2", OUTBOUND_ADDR_RESERVED},
        {"::127.0.0.1", OUTBOUND_ADDR_RESERVED},
        {"::ffff:127.0.0.1", OUTBOUND_ADDR_LOOPBACK},
        {"::ffff:10.0.0.1", OUTBOUND_ADDR_PRIVATE},
        {"::ffff:169.254.169.254", OUTBOUND_ADDR_LINK_LOCAL},
        {"::ffff:0.0.0.0", OUTBOUND_ADDR_UNSPECIFIED},
        {"::ffff:8.8.8.8", OUTBOUND_ADDR_PUBLIC},
        {"64:ff9b::7f00:1", OUTBOUND_ADDR_LOOPBACK},
        {"64:ff9b::a9fe:a9fe", OUTBOUND_ADDR_LINK_LOCAL},
        {"64:ff9b::808:808", OUTBOUND_ADDR_PUBLIC},
        {"64:ff9b:1::1", OUTBOUND_ADDR_PRIVATE},
        {"100::1", OUTBOUND_ADDR_RESERVED},
        {"fe80::1", OUTBOUND_ADDR_LINK_LOCAL},
        {"febf::1", OUTBOUND_ADDR_LINK_LOCAL},
        {"fec0::1", OUTBOUND_ADDR_PRIVATE},
        {"fc00::1", OUTBOUND_ADDR_PRIVATE},
        {"fd12:3456::1", OUTBOUND_ADDR_PRIVATE},
        {"ff02::1", OUTBOUND_ADDR_MULTICAST},
        {"ff0e::1", OUTBOUND_ADDR_MULTICAST},
        {"2001:db8::1", OUTBOUND_ADDR_RESERVED},
        {"2001::1", OUTBOUND_ADDR_RESERVED},
        {"2001:1ff::1", OUTBOUND_ADDR_RESERVED},
        {"2001:200::1", OUTBOUND_ADDR_PUBLIC},
        {"2002:7f00:1::1", OUTBOUND_ADDR_RESERVED},
        {"3fff::1", OUTBOUND_ADDR_RESERVED},
        {"3fff:1000::1", OUTBOUND_ADDR_PUBLIC},
        {"2606:4700:4700::1111", OUTBOUND_ADDR_PUBLIC},
        {"2400:cb00::1", OUTBOUND_ADDR_PUBLIC},
        {"4000::1", OUTBOUND_ADDR_RESERVED},
        {"1000::1", OUTBOUND_ADDR_RESERVED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outbound_addr_class c = classify_text(cases[i].addr);
        if (c != cases[i].c)
            fail_msg("%s: %s, expected %s", cases[i].addr, outbound_addr_class_name(c),
                     outbound_addr_class_name(cases[i].c));
    }
    unsigned char b[16] = {0};
    assert_int_equal(outbound_addr_classify(AF_UNIX, b), OUTBOUND_ADDR_RESERVED);

    outbound_policy pub, priv;
    assert_int_equal(outbound_policy_parse(&pub, "", "off", "off", NULL), TSG_OK);
    assert_int_equal(outbound_policy_parse(&priv, "", "on", "off", NULL), TSG_OK);
    for (int c = OUTBOUND_ADDR_PUBLIC; c <= OUTBOUND_ADDR_RESERVED; c++) {
        assert_int_equal(outbound_addr_allowed(&pub, (outbound_addr_class)c),
                         c == OUTBOUND_ADDR_PUBLIC);
        assert_int_equal(outbound_addr_allowed(&priv, (outbound_addr_class)c),
                         c <= OUTBOUND_ADDR_CGNAT);
        assert_true(strlen(outbound_addr_class_name((outbound_addr_class)c)) > 0);
    }
}

/* ------------------------------------------------------------------------
 * The check
 * ------------------------------------------------------------------------ */

static void expect_refused(const outbound_policy *p, const char *url, tsg_rc want,
                           const char *in_message)
{
    outbound_target t;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = outbound_check(p, url, &t, &err);
    if (rc != want) fail_msg("%s: rc %d (%s), expected %d", url, rc, err.message, want);
    if (!strstr(err.message, in_message))
        fail_msg("%s: message '%s' lacks '%s'", url, err.message, in_message);
    assert_int_equal(t.n_addrs, 0);
}

static void test_check(void **state)
{
    (void)state;
    outbound_policy tests; /* what the integration tests use: http to 127.0.0.1 */
    assert_int_equal(outbound_policy_parse(&tests, "127.0.0.1,[::1]", "on", "on", NULL), TSG_OK);
    outbound_target t;
    tsg_error err;
    tsg_error_clear(&err);
    assert_int_equal(outbound_check(&tests, "http://127.0.0.1:8080/hook", &t, &err), TSG_OK);
    assert_int_equal(t.n_addrs, 1);
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)(const void *)&t.addrs[0];
    assert_int_equal(a4->sin_family, AF_INET);
    assert_int_equal(ntohs(a4->sin_port), 8080);
    assert_int_equal(ntohl(a4->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(t.addr_lens[0], sizeof(struct sockaddr_in));
    assert_string_equal(t.url.target, "/hook");
    assert_int_equal(outbound_check(&tests, "https://[::1]/", &t, &err), TSG_OK);
    assert_int_equal(t.n_addrs, 1);
    assert_int_equal(t.addrs[0].ss_family, AF_INET6);
    assert_int_equal(ntohs(((const struct sockaddr_in6 *)(const void *)&t.addrs[0])->sin6_port),
                     443);

    outbound_policy strict; /* the defaults, with an allowlist */
    assert_int_equal(outbound_policy_parse(&strict,
                                           "127.0.0.1,localhost,0.0.0.0,[::ffff:127.0.0.1],"
                                           "8.8.8.8,169.254.169.254",
                                           "off", "off", NULL),
                     TSG_OK);
    expect_refused(&strict, "http://8.8.8.8/", TSG_EINVAL, "only https");
    expect_refused(&strict, "https://1.1.1.1/", TSG_EINVAL, "not in the allowlist");
    expect_refused(&strict, "https://127.0.0.1/", TSG_EINVAL, "a loopback address");
    expect_refused(&strict, "https://127.0.0.1/", TSG_EINVAL, "outbound_allow_private is off");
    expect_refused(&strict, "https://[::ffff:127.0.0.1]/", TSG_EINVAL, "loopback");
    expect_refused(&strict, "https://169.254.169.254/latest/meta-data/", TSG_EINVAL, "link-local");
    expect_refused(&strict, "https://0.0.0.0/", TSG_EINVAL, "unspecified");
    /* localhost comes from /etc/hosts: a name that resolves to loopback */
    expect_refused(&strict, "https://localhost/", TSG_EINVAL, "loopback");
    expect_refused(&strict, "https://user@8.8.8.8/", TSG_EINVAL, "user information");
    /* a public literal passes without DNS */
    assert_int_equal(outbound_check(&strict, "https://8.8.8.8:8443/x", &t, &err), TSG_OK);
    assert_int_equal(t.n_addrs, 1);
    assert_int_equal(t.url.port, 8443);

    outbound_policy priv; /* allow_private never allows unspecified or multicast */
    assert_int_equal(outbound_policy_parse(&priv, "0.0.0.0,224.0.0.1,localhost", "on", "off", NULL),
                     TSG_OK);
    expect_refused(&priv, "https://0.0.0.0/", TSG_EINVAL, "unspecified");
    expect_refused(&priv, "https://224.0.0.1/", TSG_EINVAL, "multicast");
    tsg_error_clear(&err);
    assert_int_equal(outbound_check(&priv, "https://localhost:9443/", &t, &err), TSG_OK);
    assert_true(t.n_addrs >= 1);
    for (size_t i = 0; i < t.n_addrs; i++) {
        uint16_t port = t.addrs[i].ss_family == AF_INET6
                            ? ((const struct sockaddr_in6 *)(const void *)&t.addrs[i])->sin6_port
                            : ((const struct sockaddr_in *)(const void *)&t.addrs[i])->sin_port;
        assert_int_equal(ntohs(port), 9443);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_accepted), cmocka_unit_test(test_url_refused),
        cmocka_unit_test(test_policy_parse), cmocka_unit_test(test_host_allowed),
        cmocka_unit_test(test_classify),     cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
