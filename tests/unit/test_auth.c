/*
 * test_auth.c — the auth module without Redis: base64url, the JWT parser and
 * every token rejection (alg none, HS*, algorithm confusion, parts, size,
 * syntax, signature, times, audience), JWKs and RFC 7638 thumbprints, SMART
 * scopes, client secrets, and which permission each FHIR interaction needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>

#include "auth/auth.h"

/* ------------------------------------------------------------------------
 * Helpers: tokens with any header, signed by any key
 * ------------------------------------------------------------------------ */

static char *b64(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(AUTH_B64URL_LEN(n) + 1);
    auth_b64url_encode((const unsigned char *)s, n, o, AUTH_B64URL_LEN(n) + 1);
    return o;
}

/* "<b64 header>.<b64 payload>.<b64 signature>"; key NULL = the signature is
 * the bytes "sig"; md/coord as for the alg (coord 0 = RSA PKCS#1). */
static char *make_token(const char *header, const char *payload, EVP_PKEY *key, const EVP_MD *md,
                        int coord)
{
    char *h = b64(header), *p = b64(payload);
    size_t in_len = strlen(h) + strlen(p) + 1;
    char *input = malloc(in_len + 1);
    snprintf(input, in_len + 1, "%s.%s", h, p);
    unsigned char sig[1024];
    size_t sl = 3;
    memcpy(sig, "sig", 3);
    if (key) {
        unsigned char der[1024];
        size_t dl = sizeof der;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, key), 1);
        assert_int_equal(EVP_DigestSign(ctx, der, &dl, (unsigned char *)input, in_len), 1);
        EVP_MD_CTX_free(ctx);
        if (coord) {
            const unsigned char *dp = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, coord);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + coord, coord);
            ECDSA_SIG_free(es);
            sl = 2 * (size_t)coord;
        } else {
            memcpy(sig, der, dl);
            sl = dl;
        }
    }
    size_t cap = in_len + AUTH_B64URL_LEN(sl) + 2;
    char *tok = malloc(cap);
    size_t o = (size_t)snprintf(tok, cap, "%s.", input);
    auth_b64url_encode(sig, sl, tok + o, cap - o);
    free(h);
    free(p);
    free(input);
    return tok;
}

static EVP_PKEY *p384(void)
{
    return EVP_EC_gen("secp384r1");
}

static EVP_PKEY *rsa2048(void)
{
    return EVP_RSA_gen(2048);
}

static long long now_s(void)
{
    return (long long)time(NULL);
}

/* A payload valid now for aud "https://gw/fhir". */
static char *payload_now(long long exp_delta)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"iss\":\"c1\",\"sub\":\"c1\",\"aud\":\"https://gw/fhir\",\"iat\":%lld,\"exp\":%lld,"
             "\"jti\":\"j1\"}",
             now_s(), now_s() + exp_delta);
    return buf;
}

/* Parses tok with algs and returns the rc; the message into msg. */
static tsg_rc parse(const char *tok, unsigned algs, char *msg, size_t cap)
{
    auth_jwt j;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = auth_jwt_parse(tok, strlen(tok), algs, &j, &err);
    snprintf(msg, cap, "%s", err.message);
    auth_jwt_clear(&j);
    return rc;
}

/* ------------------------------------------------------------------------
 * base64url
 * ------------------------------------------------------------------------ */

static void test_b64url(void **state)
{
    (void)state;
    unsigned char out[64];
    size_t n;
    char enc[64];
    /* RFC 4648 test vectors, url alphabet, no padding */
    const char *v[][2] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        auth_b64url_encode((const unsigned char *)v[i][0], strlen(v[i][0]), enc, sizeof enc);
        assert_string_equal(enc, v[i][1]);
        assert_int_equal(auth_b64url_decode(v[i][1], strlen(v[i][1]), out, sizeof out, &n), TSG_OK);
        assert_int_equal(n, strlen(v[i][0]));
        assert_memory_equal(out, v[i][0], n);
    }
    unsigned char bin[] = {0xfb, 0xff, 0xfe};
    auth_b64url_encode(bin, 3, enc, sizeof enc);
    assert_string_equal(enc, "-__-");
    /* refusals: padding, the standard alphabet, whitespace, a lone char, extra bits */
    assert_int_equal(auth_b64url_decode("Zg==", 4, out, sizeof out, &n), TSG_EINVAL);
    assert_int_equal(auth_b64url_decode("+/+/", 4, out, sizeof out, &n), TSG_EINVAL);
    assert_int_equal(auth_b64url_decode("Zm 9", 4, out, sizeof out, &n), TSG_EINVAL);
    assert_int_equal(auth_b64url_decode("Zm9vY", 5, out, sizeof out, &n), TSG_EINVAL);
    assert_int_equal(auth_b64url_decode("Zh", 2, out, sizeof out, &n), TSG_EINVAL);
    assert_int_equal(auth_b64url_decode("Zm8", 3, out, sizeof out, &n), TSG_OK);
    assert_int_equal(auth_b64url_decode("Zm9", 3, out, sizeof out, &n), TSG_EINVAL);
    assert_int_equal(auth_b64url_decode("Zm-", 3, out, sizeof out, &n), TSG_EINVAL);
    /* too small an output */
    assert_int_equal(auth_b64url_decode("Zm9vYmFy", 8, out, 5, &n), TSG_ELIMIT);
    assert_int_equal(auth_b64url_encode((const unsigned char *)"foo", 3, enc, 4), 0);
}

/* ------------------------------------------------------------------------
 * JWT: parse and verify
 * ------------------------------------------------------------------------ */

static void test_jwt_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *k = auth_key_generate_p256();
    assert_non_null(k);
    json_t *claims = json_loads(payload_now(300), 0, NULL);
    char *tok = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    assert_int_equal(auth_jwt_sign_es256(k, "kid-1", claims, &tok, &err), TSG_OK);
    auth_jwt j;
    assert_int_equal(auth_jwt_parse(tok, strlen(tok), AUTH_ALG_ES256, &j, &err), TSG_OK);
    assert_int_equal(j.alg, AUTH_ALG_ES256);
    assert_string_equal(j.kid, "kid-1");
    assert_int_equal(auth_jwt_verify(&j, k, &err), TSG_OK);
    long long exp = 0;
    assert_int_equal(auth_jwt_check_times(j.payload, now_s(), 60, 0, &exp, &err), TSG_OK);
    assert_true(exp > now_s());
    assert_true(auth_jwt_aud_ok(j.payload, "https://gw/fhir"));
    assert_false(auth_jwt_aud_ok(j.payload, "https://other/fhir"));
    /* another P-256 key does not verify it */
    EVP_PKEY *k2 = auth_key_generate_p256();
    assert_int_equal(auth_jwt_verify(&j, k2, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "bad signature"));
    auth_jwt_clear(&j);

    /* a changed payload breaks the signature */
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    char *forged_payload = b64("{\"sub\":\"admin\",\"exp\":9999999999}");
    size_t fl = strlen(forged_payload) + strlen(tok) + 4;
    char *forged = malloc(fl);
    snprintf(forged, fl, "%.*s.%s%s", (int)(d1 - tok), tok, forged_payload, d2);
    assert_int_equal(auth_jwt_parse(forged, strlen(forged), AUTH_ALG_ES256, &j, &err), TSG_OK);
    assert_int_equal(auth_jwt_verify(&j, k, &err), TSG_EINVAL);
    auth_jwt_clear(&j);
    free(forged);
    free(forged_payload);
    free(tok);
    json_decref(claims);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

static void test_jwt_es384_rs384(void **state)
{
    (void)state;
    EVP_PKEY *ec = p384(), *rsa = rsa2048();
    tsg_error err;
    auth_jwt j;
    char *t1 =
        make_token("{\"alg\":\"ES384\",\"kid\":\"a\"}", payload_now(200), ec, EVP_sha384(), 48);
    assert_int_equal(auth_jwt_parse(t1, strlen(t1), AUTH_ALG_ES384 | AUTH_ALG_RS384, &j, &err),
                     TSG_OK);
    assert_int_equal(auth_jwt_verify(&j, ec, &err), TSG_OK);
    /* algorithm confusion: the ES384 token against the RSA key */
    assert_int_equal(auth_jwt_verify(&j, rsa, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "algorithm confusion"));
    auth_jwt_clear(&j);
    char *t2 = make_token("{\"alg\":\"RS384\"}", payload_now(200), rsa, EVP_sha384(), 0);
    assert_int_equal(auth_jwt_parse(t2, strlen(t2), AUTH_ALG_ES384 | AUTH_ALG_RS384, &j, &err),
                     TSG_OK);
    assert_int_equal(auth_jwt_verify(&j, rsa, &err), TSG_OK);
    assert_int_equal(auth_jwt_verify(&j, ec, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "algorithm confusion"));
    auth_jwt_clear(&j);
    /* an ES256 header on a P-384 signature: the key's curve decides, not the header */
    char *t3 = make_token("{\"alg\":\"ES256\"}", payload_now(200), ec, EVP_sha384(), 48);
    assert_int_equal(auth_jwt_parse(t3, strlen(t3), AUTH_ALG_ES256, &j, &err), TSG_OK);
    assert_int_equal(auth_jwt_verify(&j, ec, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "algorithm confusion"));
    auth_jwt_clear(&j);
    /* ES384 is not allowed where only ES256 is (access tokens) */
    char msg[600];
    assert_int_equal(parse(t1, AUTH_ALG_ES256, msg, sizeof msg), TSG_EINVAL);
    assert_non_null(strstr(msg, "not allowed"));
    free(t1);
    free(t2);
    free(t3);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
}

static void test_jwt_rejections(void **state)
{
    (void)state;
    char msg[600];
    const unsigned all = AUTH_ALG_ES256 | AUTH_ALG_ES384 | AUTH_ALG_RS384;
    const char *pl = payload_now(100);
    struct {
        const char *header;
        const char *want;
    } bad_headers[] = {
        {"{\"alg\":\"none\"}", "unsigned tokens are refused"},
        {"{\"alg\":\"None\"}", "unsigned tokens are refused"},
        {"{\"alg\":\"HS256\"}", "not allowed"},
        {"{\"alg\":\"HS384\"}", "not allowed"},
        {"{\"alg\":\"RS256\"}", "not allowed"},
        {"{\"alg\":\"PS384\"}", "not allowed"},
        {"{\"typ\":\"JWT\"}", "no alg"},
        {"{\"alg\":384}", "no alg"},
        {"{\"alg\":\"ES256\",\"crit\":[\"b64\"]}", "crit"},
        {"{\"alg\":\"ES256\",\"kid\":7}", "kid"},
        {"{\"alg\":\"ES256\",\"kid\":\"\"}", "kid"},
        {"[\"alg\",\"ES256\"]", "not a JSON object"},
        {"{\"alg\":\"ES256\",\"alg\":\"none\"}", "not JSON"},
        {"{alg:ES256}", "not JSON"},
        {"{\"alg\":\"ES256\",\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}", "nests deeper"},
    };
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        char *t = make_token(bad_headers[i].header, pl, NULL, NULL, 0);
        tsg_rc rc = parse(t, all, msg, sizeof msg);
        if (rc == TSG_OK || !strstr(msg, bad_headers[i].want))
            fail_msg("header %s: rc %d, message '%s' (wanted '%s')", bad_headers[i].header, rc, msg,
                     bad_headers[i].want);
        free(t);
    }
    char longkid[300] = "{\"alg\":\"ES256\",\"kid\":\"";
    size_t n = strlen(longkid);
    memset(longkid + n, 'k', 200);
    snprintf(longkid + n + 200, sizeof longkid - n - 200, "\"}");
    char *t = make_token(longkid, pl, NULL, NULL, 0);
    assert_int_equal(parse(t, all, msg, sizeof msg), TSG_EINVAL);
    free(t);

    /* structure */
    const char *bad[] = {"",
                         "abc",
                         "a.b",
                         "a.b.c.d",
                         "eyJhbGciOiJFUzI1NiJ9..c2ln",
                         ".eyJ4IjoxfQ.c2ln",
                         "eyJhbGciOiJFUzI1NiJ9.eyJ4IjoxfQ.",
                         "eyJhbGciOiJFUzI1NiJ9.eyJ4IjoxfQ.c2ln=",
                         "eyJhbGciOiJFUzI1NiJ9.eyJ4IjoxfQ.c2l+",
                         "eyJhbGciOiJFUzI1NiJ9=.eyJ4IjoxfQ.c2ln",
                         "eyJhbGciOiJFUzI1NiJ9.W10.c2ln",
                         "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], all, msg, sizeof msg) == TSG_OK) fail_msg("accepted '%s'", bad[i]);
        assert_true(msg[0] != '\0');
    }
    assert_int_equal(parse("eyJhbGciOiJFUzI1NiJ9.eyJ4IjoxfQ.c2ln", all, msg, sizeof msg), TSG_OK);

    /* oversized */
    size_t big = AUTH_TOKEN_MAX_BYTES + 1;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[10] = '.';
    huge[20] = '.';
    huge[big] = '\0';
    auth_jwt j;
    tsg_error err;
    assert_int_equal(auth_jwt_parse(huge, big, all, &j, &err), TSG_ELIMIT);
    assert_non_null(strstr(err.message, "oversized"));
    free(huge);

    /* a wrong-length ECDSA signature */
    EVP_PKEY *k = auth_key_generate_p256();
    t = make_token("{\"alg\":\"ES256\"}", pl, NULL, NULL, 0);
    assert_int_equal(auth_jwt_parse(t, strlen(t), all, &j, &err), TSG_OK);
    assert_int_equal(auth_jwt_verify(&j, k, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "bad signature"));
    assert_int_equal(auth_jwt_verify(&j, NULL, &err), TSG_EINVAL);
    auth_jwt_clear(&j);
    free(t);
    EVP_PKEY_free(k);
}

static void test_jwt_times(void **state)
{
    (void)state;
    tsg_error err;
    long long now = now_s(), exp;
    char buf[256];
#define TIMES(json, life)                                                                          \
    (snprintf(buf, sizeof buf, "%s", json),                                                        \
     auth_jwt_check_times(json_loads(buf, 0, NULL), now, 60, life, &exp, &err))
    json_t *p;
    struct {
        const char *fmt;
        long long a, b;
        int life;
        tsg_rc want;
        const char *msg;
    } cases[] = {
        {"{\"exp\":%lld}", 100, 0, 0, TSG_OK, ""},
        {"{\"exp\":%lld}", -61, 0, 0, TSG_EINVAL, "expired"},
        {"{\"exp\":%lld}", -30, 0, 0, TSG_OK, ""}, /* within the skew */
        {"{\"exp\":%lld,\"nbf\":%lld}", 300, 120, 0, TSG_EINVAL, "not yet valid"},
        {"{\"exp\":%lld,\"iat\":%lld}", 300, 120, 0, TSG_EINVAL, "not yet valid"},
        {"{\"exp\":%lld,\"iat\":%lld}", 300, 30, 0, TSG_OK, ""},
        {"{\"exp\":%lld}", 1000, 0, 300, TSG_EINVAL, "too far ahead"},
        {"{\"exp\":%lld}", 300, 0, 300, TSG_OK, ""},
        {"{\"iat\":%lld}", 0, 0, 0, TSG_EINVAL, "no exp"},
        {"{\"exp\":\"%lld\"}", 100, 0, 0, TSG_EINVAL, "not an integer"},
        {"{\"exp\":%lld.5}", 100, 0, 0, TSG_EINVAL, "not an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(buf, sizeof buf, cases[i].fmt, now + cases[i].a, now + cases[i].b);
        p = json_loads(buf, 0, NULL);
        assert_non_null(p);
        tsg_error_clear(&err);
        tsg_rc rc = auth_jwt_check_times(p, now, 60, cases[i].life, &exp, &err);
        if (rc != cases[i].want || !strstr(err.message, cases[i].msg))
            fail_msg("case %zu (%s): rc %d '%s'", i, buf, rc, err.message);
        json_decref(p);
    }
#undef TIMES
    p = json_loads("{\"aud\":[\"x\",\"https://gw/fhir\"]}", 0, NULL);
    assert_true(auth_jwt_aud_ok(p, "https://gw/fhir"));
    assert_false(auth_jwt_aud_ok(p, "y"));
    json_decref(p);
    p = json_loads("{\"aud\":5}", 0, NULL);
    assert_false(auth_jwt_aud_ok(p, "5"));
    json_decref(p);
    p = json_loads("{}", 0, NULL);
    assert_false(auth_jwt_aud_ok(p, ""));
    json_decref(p);
}

/* ------------------------------------------------------------------------
 * JWK
 * ------------------------------------------------------------------------ */

static void test_jwk(void **state)
{
    (void)state;
    tsg_error err;
    /* RFC 7638 §3.1 */
    json_t *rfc = json_loads(
        "{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zw"
        "u1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w"
        "6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpb"
        "ISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8aw"
        "apJzKnqDKgw\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}",
        0, NULL);
    assert_non_null(rfc);
    char tp[48];
    assert_int_equal(auth_jwk_thumbprint(rfc, tp, &err), TSG_OK);
    assert_string_equal(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    EVP_PKEY *pk = NULL;
    assert_int_equal(auth_jwk_to_pkey(rfc, false, &pk, &err), TSG_OK);
    assert_int_equal(EVP_PKEY_get_bits(pk), 2048);
    EVP_PKEY_free(pk);
    json_decref(rfc);

    /* EC round trip, private and public */
    EVP_PKEY *k = auth_key_generate_p256();
    json_t *priv = auth_pkey_to_jwk(k, true), *pub = auth_pkey_to_jwk(k, false);
    assert_non_null(json_object_get(priv, "d"));
    assert_null(json_object_get(pub, "d"));
    assert_string_equal(json_string_value(json_object_get(pub, "crv")), "P-256");
    EVP_PKEY *back = NULL;
    assert_int_equal(auth_jwk_to_pkey(priv, true, &back, &err), TSG_OK);
    json_t *claims = json_loads("{\"exp\":1}", 0, NULL);
    char *tok;
    assert_int_equal(auth_jwt_sign_es256(back, "k", claims, &tok, &err), TSG_OK);
    auth_jwt j;
    assert_int_equal(auth_jwt_parse(tok, strlen(tok), AUTH_ALG_ES256, &j, &err), TSG_OK);
    assert_int_equal(auth_jwt_verify(&j, k, &err), TSG_OK);
    auth_jwt_clear(&j);
    free(tok);
    /* a public key cannot sign */
    EVP_PKEY *pubk = NULL;
    assert_int_equal(auth_jwk_to_pkey(pub, false, &pubk, &err), TSG_OK);
    char a[48], b[48];
    assert_int_equal(auth_jwk_thumbprint(pub, a, &err), TSG_OK);
    assert_int_equal(auth_jwk_thumbprint(priv, b, &err), TSG_OK);
    assert_string_equal(a, b); /* d is not part of the thumbprint */

    /* a point off the curve */
    json_t *off = json_deep_copy(pub);
    const char *y = json_string_value(json_object_get(off, "y"));
    char y2[64];
    snprintf(y2, sizeof y2, "%s", y);
    y2[5] = y2[5] == 'A' ? 'B' : 'A';
    json_object_set_new(off, "y", json_string(y2));
    EVP_PKEY *bad = NULL;
    assert_int_equal(auth_jwk_to_pkey(off, false, &bad, &err), TSG_EINVAL);
    assert_null(bad);
    json_decref(off);

    /* refusals */
    const char *refused[] = {
        "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\"}",
        "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", /* tiny modulus */
        "{\"crv\":\"P-256\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        json_t *x = json_loads(refused[i], 0, NULL);
        EVP_PKEY *r = NULL;
        if (auth_jwk_to_pkey(x, false, &r, &err) == TSG_OK) fail_msg("accepted %s", refused[i]);
        assert_null(r);
        json_decref(x);
    }
    EVP_PKEY *rk = rsa2048();
    json_t *rj = auth_pkey_to_jwk(rk, false);
    assert_string_equal(json_string_value(json_object_get(rj, "kty")), "RSA");
    assert_int_equal(auth_jwk_to_pkey(rj, false, &pk, &err), TSG_OK);
    EVP_PKEY_free(pk);
    json_decref(rj);
    EVP_PKEY_free(rk);
    json_decref(claims);
    json_decref(priv);
    json_decref(pub);
    EVP_PKEY_free(k);
    EVP_PKEY_free(back);
    EVP_PKEY_free(pubk);
}

/* ------------------------------------------------------------------------
 * Scopes
 * ------------------------------------------------------------------------ */

static void test_scopes(void **state)
{
    (void)state;
    auth_scopes s;
    tsg_error err;
    assert_int_equal(auth_scopes_parse("system/Patient.rs  system/Observation.cruds", &s, &err),
                     TSG_OK);
    assert_int_equal(s.n, 2);
    assert_true(auth_scopes_allow(&s, "Patient", AUTH_PERM_R));
    assert_true(auth_scopes_allow(&s, "Patient", AUTH_PERM_S));
    assert_false(auth_scopes_allow(&s, "Patient", AUTH_PERM_C));
    assert_false(auth_scopes_allow(&s, "Patient", AUTH_PERM_R | AUTH_PERM_U));
    assert_true(auth_scopes_allow(&s, "Observation", AUTH_PERM_ALL));
    assert_false(auth_scopes_allow(&s, "Encounter", AUTH_PERM_R));
    assert_false(auth_scopes_allow(&s, "*", AUTH_PERM_S));
    assert_false(auth_scopes_allow(&s, "Patient", 0));
    char out[256];
    assert_int_equal(auth_scopes_format(&s, out, sizeof out), TSG_OK);
    assert_string_equal(out, "system/Patient.rs system/Observation.cruds");

    /* v1 forms */
    assert_int_equal(auth_scopes_parse("system/*.read system/Patient.write", &s, &err), TSG_OK);
    assert_true(auth_scopes_allow(&s, "Encounter", AUTH_PERM_R | AUTH_PERM_S));
    assert_false(auth_scopes_allow(&s, "Encounter", AUTH_PERM_C));
    assert_true(auth_scopes_allow(&s, "Patient", AUTH_PERM_C | AUTH_PERM_U | AUTH_PERM_D));
    assert_true(auth_scopes_allow(&s, "*", AUTH_PERM_S));
    assert_int_equal(auth_scopes_parse("system/*.*", &s, &err), TSG_OK);
    assert_true(auth_scopes_allow(&s, "Patient", AUTH_PERM_ALL));
    assert_int_equal(auth_scopes_format(&s, out, sizeof out), TSG_OK);
    assert_string_equal(out, "system/*.cruds");
    /* merged */
    assert_int_equal(auth_scopes_parse("system/Patient.r system/Patient.s", &s, &err), TSG_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.s[0].perms, AUTH_PERM_R | AUTH_PERM_S);
    assert_int_equal(auth_scopes_parse("", &s, &err), TSG_OK);
    assert_int_equal(s.n, 0);

    const char *bad[] = {"patient/Patient.rs",
                         "user/*.read",
                         "system/Patient.sr",
                         "system/Patient.rr",
                         "system/Patient.",
                         "system/.rs",
                         "system/Foo.rs",
                         "system/Patient.rsx",
                         "system/Patient.rs?name=x",
                         "launch",
                         "openid",
                         "system/Patient"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (auth_scopes_parse(bad[i], &s, &err) == TSG_OK) fail_msg("accepted '%s'", bad[i]);
    char many[AUTH_SCOPE_TEXT_MAX + 10];
    memset(many, 'x', sizeof many - 1);
    many[sizeof many - 1] = '\0';
    assert_int_equal(auth_scopes_parse(many, &s, &err), TSG_ELIMIT);

    /* subset */
    auth_scopes have, want;
    auth_scopes_parse("system/Patient.rs system/Observation.cruds", &have, &err);
    auth_scopes_parse("system/Patient.r", &want, &err);
    assert_true(auth_scopes_subset(&want, &have));
    auth_scopes_parse("system/Patient.rs system/Observation.c", &want, &err);
    assert_true(auth_scopes_subset(&want, &have));
    auth_scopes_parse("system/Patient.c", &want, &err);
    assert_false(auth_scopes_subset(&want, &have));
    auth_scopes_parse("system/*.r", &want, &err);
    assert_false(auth_scopes_subset(&want, &have));
    auth_scopes_parse("system/*.cruds", &have, &err);
    auth_scopes_parse("system/*.rs system/Encounter.d", &want, &err);
    assert_true(auth_scopes_subset(&want, &have));
}

/* ------------------------------------------------------------------------
 * Secrets
 * ------------------------------------------------------------------------ */

static void test_secrets(void **state)
{
    (void)state;
    tsg_error err;
    char s1[64], s2[64], h1[AUTH_SECRET_HASH_MAX], h2[AUTH_SECRET_HASH_MAX];
    assert_int_equal(auth_secret_new(s1, &err), TSG_OK);
    assert_int_equal(auth_secret_new(s2, &err), TSG_OK);
    assert_int_equal(strlen(s1), 43);
    assert_string_not_equal(s1, s2);
    assert_int_equal(auth_secret_hash(s1, 1000, h1, &err), TSG_OK);
    assert_int_equal(auth_secret_hash(s1, 1000, h2, &err), TSG_OK);
    assert_string_not_equal(h1, h2); /* per-hash salt */
    assert_non_null(strstr(h1, "pbkdf2-sha256$1000$"));
    assert_null(strstr(h1, s1));
    assert_true(auth_secret_verify(s1, strlen(s1), h1));
    assert_true(auth_secret_verify(s1, strlen(s1), h2));
    assert_false(auth_secret_verify(s2, strlen(s2), h1));
    assert_false(auth_secret_verify(s1, strlen(s1) - 1, h1));
    assert_false(auth_secret_verify("", 0, h1));
    assert_false(auth_secret_verify(s1, strlen(s1), "plain"));
    assert_false(auth_secret_verify(s1, strlen(s1), "pbkdf2-sha256$10$AAAA$AAAA"));
    assert_false(auth_secret_verify(s1, strlen(s1), "pbkdf2-sha256$1000$AAAA"));
    assert_false(auth_secret_verify(s1, strlen(s1), NULL));
    /* the default iteration count is what the header promises (and ≥ 100k) */
    assert_int_equal(auth_secret_hash(s1, 0, h1, &err), TSG_OK);
    char want[64];
    snprintf(want, sizeof want, "pbkdf2-sha256$%u$", AUTH_PBKDF2_ITERATIONS);
    assert_non_null(strstr(h1, want));
    assert_true(AUTH_PBKDF2_ITERATIONS >= 100000);
    assert_true(auth_secret_verify(s1, strlen(s1), h1));
}

/* ------------------------------------------------------------------------
 * Interactions → permissions
 * ------------------------------------------------------------------------ */

enum { GET = 1, POST = 4, PUT = 8, DELETE = 16, PATCH = 32 };

static unsigned need(unsigned m, const char *a, const char *b, const char *c, const char *d,
                     const char **type, bool *every)
{
    const char *segs[4] = {a, b, c, d};
    size_t n = 0;
    while (n < 4 && segs[n]) n++;
    unsigned perms = 0;
    bool pub, bundle;
    if (!auth_fhir_requirement(segs, n, m, false, type, &perms, every, &pub, &bundle)) return 0;
    return perms;
}

static void test_requirements(void **state)
{
    (void)state;
    const char *t;
    bool every;
    assert_int_equal(need(GET, "Patient", "1", NULL, NULL, &t, &every), AUTH_PERM_R);
    assert_string_equal(t, "Patient");
    assert_int_equal(need(GET, "Patient", NULL, NULL, NULL, &t, &every), AUTH_PERM_S);
    assert_int_equal(need(POST, "Patient", "_search", NULL, NULL, &t, &every), AUTH_PERM_S);
    assert_int_equal(need(POST, "Patient", NULL, NULL, NULL, &t, &every), AUTH_PERM_C);
    assert_int_equal(need(PUT, "Patient", "1", NULL, NULL, &t, &every), AUTH_PERM_U);
    assert_int_equal(need(PATCH, "Patient", "1", NULL, NULL, &t, &every), AUTH_PERM_U);
    assert_int_equal(need(DELETE, "Patient", "1", NULL, NULL, &t, &every), AUTH_PERM_D);
    assert_int_equal(need(PUT, "Patient", NULL, NULL, NULL, &t, &every),
                     AUTH_PERM_U | AUTH_PERM_C | AUTH_PERM_S);
    assert_int_equal(need(DELETE, "Patient", NULL, NULL, NULL, &t, &every),
                     AUTH_PERM_D | AUTH_PERM_S);
    assert_int_equal(need(GET, "Patient", "1", "_history", NULL, &t, &every), AUTH_PERM_R);
    assert_int_equal(need(GET, "Patient", "1", "_history", "2", &t, &every), AUTH_PERM_R);
    assert_int_equal(need(GET, "Patient", "_history", NULL, NULL, &t, &every), AUTH_PERM_S);
    assert_int_equal(need(GET, "_history", NULL, NULL, NULL, &t, &every), AUTH_PERM_S);
    assert_string_equal(t, "*");
    assert_int_equal(need(GET, "Patient", "1", "$everything", NULL, &t, &every), AUTH_PERM_R);
    assert_true(every);
    assert_int_equal(need(GET, "Foo", "1", NULL, NULL, &t, &every), 0);
    const char *segs[] = {"metadata"};
    unsigned perms;
    bool pub, bundle;
    assert_true(auth_fhir_requirement(segs, 1, GET, false, &t, &perms, &every, &pub, &bundle));
    assert_true(pub);
    assert_true(auth_fhir_requirement(NULL, 0, POST, false, &t, &perms, &every, &pub, &bundle));
    assert_true(bundle);
    assert_true(auth_fhir_requirement(NULL, 0, GET, true, &t, &perms, &every, &pub, &bundle));
    assert_int_equal(perms, AUTH_PERM_S);

    /* transactions: each entry */
    auth_scopes s;
    tsg_error err;
    auth_scopes_parse("system/Patient.cru system/Observation.rs", &s, &err);
    const char *ok = "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
                     "{\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
                     "{\"request\":{\"method\":\"PUT\",\"url\":\"Patient/1\"}},"
                     "{\"request\":{\"method\":\"GET\",\"url\":\"Observation?code=x\"}}]}";
    assert_true(auth_bundle_allowed(&s, ok, strlen(ok), true, &err));
    const char *no = "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":["
                     "{\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
                     "{\"request\":{\"method\":\"DELETE\",\"url\":\"Patient/1\"}}]}";
    tsg_error_clear(&err);
    assert_false(auth_bundle_allowed(&s, no, strlen(no), true, &err));
    assert_string_equal(err.location, "Bundle.entry[1]");
    const char *cond = "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":["
                       "{\"request\":{\"method\":\"POST\",\"url\":\"Observation\","
                       "\"ifNoneExist\":\"code=x\"}}]}";
    assert_false(auth_bundle_allowed(&s, cond, strlen(cond), true, &err));
    const char *abs = "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":["
                      "{\"request\":{\"method\":\"GET\",\"url\":\"http://x/fhir/Patient/1\"}}]}";
    assert_false(auth_bundle_allowed(&s, abs, strlen(abs), true, &err));
    const char *noreq = "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{}]}";
    assert_false(auth_bundle_allowed(&s, noreq, strlen(noreq), true, &err));
    assert_false(auth_bundle_allowed(&s, "{\"n\":1e999999}", 14, true, &err));
    assert_false(auth_bundle_allowed(&s, "<Bundle/>", 9, false, &err));
    auth_scopes_parse("system/*.cruds", &s, &err);
    assert_true(auth_bundle_allowed(&s, "<Bundle/>", 9, false, &err));
    assert_true(auth_bundle_allowed(&s, no, strlen(no), true, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),          cmocka_unit_test(test_jwt_roundtrip),
        cmocka_unit_test(test_jwt_es384_rs384), cmocka_unit_test(test_jwt_rejections),
        cmocka_unit_test(test_jwt_times),       cmocka_unit_test(test_jwk),
        cmocka_unit_test(test_scopes),          cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_requirements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
