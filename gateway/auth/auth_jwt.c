/*
 * auth_jwt.c — base64url, JWS compact parsing, signature checks and ES256
 * signing with OpenSSL 3's EVP API (auth.h: the rules of the token parser).
 */
#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

/* ------------------------------------------------------------------------
 * base64url
 * ------------------------------------------------------------------------ */

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t auth_b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    size_t need = AUTH_B64URL_LEN(n);
    if (cap < need + 1) return 0;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64URL[v >> 18];
        out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63];
        out[o++] = B64URL[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = B64URL[v >> 18];
        out[o++] = B64URL[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = B64URL[v >> 18];
        out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

tsg_rc auth_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *out_len)
{
    if (n % 4 == 1) return TSG_EINVAL;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > cap) return TSG_ELIMIT;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]),
            c = b64val((unsigned char)s[i + 2]), d = b64val((unsigned char)s[i + 3]);
        if ((a | b | c | d) < 0) return TSG_EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    size_t rest = n - i;
    if (rest) {
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]);
        int c = rest == 3 ? b64val((unsigned char)s[i + 2]) : 0;
        if ((a | b | c) < 0) return TSG_EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        /* canonical: the bits below the last byte must be zero */
        if (rest == 2 && (v & 0xffff)) return TSG_EINVAL;
        if (rest == 3 && (v & 0xff)) return TSG_EINVAL;
        out[o++] = (unsigned char)(v >> 16);
        if (rest == 3) out[o++] = (unsigned char)(v >> 8);
    }
    *out_len = o;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

/* Nesting depth of a JSON value (bounded recursion: jansson has already
 * bounded it by its own limit, 2048). */
static unsigned json_depth(const json_t *v, unsigned limit)
{
    if (limit == 0) return 1;
    unsigned best = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            unsigned d = json_depth(x, limit - 1);
            if (d > best) best = d;
        }
        return best + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            unsigned d = json_depth(x, limit - 1);
            if (d > best) best = d;
        }
        return best + 1;
    }
    return 0;
}

/* Decodes one base64url part holding a JSON object into *out. */
static tsg_rc decode_json_part(const char *s, size_t n, const char *what, json_t **out,
                               tsg_error *err)
{
    unsigned char buf[AUTH_TOKEN_MAX_BYTES];
    size_t len;
    if (auth_b64url_decode(s, n, buf, sizeof buf, &len))
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "malformed token: the %s is not base64url", what);
    json_error_t je;
    json_t *v = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "malformed token: the %s is not JSON (%s)", what, je.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "malformed token: the %s is not a JSON object", what);
    }
    if (json_depth(v, AUTH_JSON_MAX_DEPTH + 1) > AUTH_JSON_MAX_DEPTH) {
        json_decref(v);
        return tsg_error_set(err, TSG_ELIMIT, "security",
                             "malformed token: the %s nests deeper than %u", what,
                             AUTH_JSON_MAX_DEPTH);
    }
    *out = v;
    return TSG_OK;
}

void auth_jwt_clear(auth_jwt *j)
{
    if (!j) return;
    json_decref(j->header);
    json_decref(j->payload);
    memset(j, 0, sizeof *j);
}

tsg_rc auth_jwt_parse(const char *token, size_t n, unsigned algs, auth_jwt *out, tsg_error *err)
{
    memset(out, 0, sizeof *out);
    if (!token || n == 0)
        return tsg_error_set(err, TSG_EINVAL, "security", "malformed token: empty");
    if (n > AUTH_TOKEN_MAX_BYTES)
        return tsg_error_set(err, TSG_ELIMIT, "security",
                             "oversized token: %zu bytes (the limit is %u)", n,
                             AUTH_TOKEN_MAX_BYTES);
    const char *d1 = memchr(token, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(token + n - d1 - 1)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', (size_t)(token + n - d2 - 1)))
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "malformed token: a JWS has exactly three parts");
    size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1), sl = (size_t)(token + n - d2 - 1);
    if (!hl || !pl)
        return tsg_error_set(err, TSG_EINVAL, "security", "malformed token: an empty part");
    tsg_rc rc = decode_json_part(token, hl, "header", &out->header, err);
    if (rc) goto fail;
    json_t *alg = json_object_get(out->header, "alg");
    if (!json_is_string(alg)) {
        rc = tsg_error_set(err, TSG_EINVAL, "security", "malformed token: no alg in the header");
        goto fail;
    }
    const char *a = json_string_value(alg);
    if (!strcmp(a, "ES256"))
        out->alg = AUTH_ALG_ES256;
    else if (!strcmp(a, "ES384"))
        out->alg = AUTH_ALG_ES384;
    else if (!strcmp(a, "RS384"))
        out->alg = AUTH_ALG_RS384;
    if (!out->alg || !(algs & out->alg)) {
        rc = tsg_error_set(err, TSG_EINVAL, "security", "alg %.32s is not allowed%s", a,
                           !strcasecmp(a, "none") ? " (unsigned tokens are refused)" : "");
        goto fail;
    }
    if (json_object_get(out->header, "crit")) {
        rc = tsg_error_set(err, TSG_EINVAL, "security",
                           "the header's crit names extensions this server does not know");
        goto fail;
    }
    json_t *kid = json_object_get(out->header, "kid");
    if (kid) {
        if (!json_is_string(kid) || json_string_length(kid) == 0 ||
            json_string_length(kid) >= AUTH_KID_MAX) {
            rc = tsg_error_set(err, TSG_EINVAL, "security",
                               "malformed token: kid must be a string of 1-%u bytes",
                               AUTH_KID_MAX - 1);
            goto fail;
        }
        memcpy(out->kid, json_string_value(kid), json_string_length(kid) + 1);
    }
    rc = decode_json_part(d1 + 1, pl, "payload", &out->payload, err);
    if (rc) goto fail;
    if (auth_b64url_decode(d2 + 1, sl, out->sig, sizeof out->sig, &out->sig_len) || !out->sig_len) {
        rc = tsg_error_set(err, TSG_EINVAL, "security",
                           "malformed token: the signature is missing or not base64url");
        goto fail;
    }
    out->signing_input = token;
    out->signing_input_len = (size_t)(d2 - token);
    return TSG_OK;
fail:
    auth_jwt_clear(out);
    return rc;
}

/* ------------------------------------------------------------------------
 * Signatures
 * ------------------------------------------------------------------------ */

/* The EC curve's group name of key ("prime256v1", "secp384r1"), "" when not EC. */
static void ec_group(EVP_PKEY *key, char *out, size_t cap)
{
    out[0] = '\0';
    size_t len = 0;
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, out, cap, &len))
        out[0] = '\0';
}

/* Whether key may be used with alg; *coord is the byte size of an ECDSA
 * coordinate (0 for RSA), *md the digest. */
static bool key_fits(EVP_PKEY *key, auth_alg alg, size_t *coord, const EVP_MD **md)
{
    char grp[64];
    switch (alg) {
    case AUTH_ALG_ES256:
        ec_group(key, grp, sizeof grp);
        *coord = 32;
        *md = EVP_sha256();
        return !strcmp(grp, "prime256v1") || !strcmp(grp, "P-256");
    case AUTH_ALG_ES384:
        ec_group(key, grp, sizeof grp);
        *coord = 48;
        *md = EVP_sha384();
        return !strcmp(grp, "secp384r1") || !strcmp(grp, "P-384");
    case AUTH_ALG_RS384:
        *coord = 0;
        *md = EVP_sha384();
        return EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA &&
               EVP_PKEY_get_bits(key) >= AUTH_RSA_MIN_BITS;
    }
    return false;
}

tsg_rc auth_jwt_verify(const auth_jwt *j, EVP_PKEY *key, tsg_error *err)
{
    size_t coord;
    const EVP_MD *md;
    if (!key || !key_fits(key, j->alg, &coord, &md))
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "the token's alg does not match the key (algorithm confusion)");
    unsigned char der[AUTH_SIG_MAX + 16];
    const unsigned char *sig = j->sig;
    size_t sig_len = j->sig_len;
    if (coord) {
        /* JWS ECDSA signatures are r||s of fixed size; OpenSSL wants DER */
        if (j->sig_len != 2 * coord)
            return tsg_error_set(err, TSG_EINVAL, "security",
                                 "bad signature: %zu bytes, expected %zu", j->sig_len, 2 * coord);
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(j->sig, (int)coord, NULL);
        BIGNUM *s = BN_bin2bn(j->sig + coord, (int)coord, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(s);
            return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        }
        unsigned char *p = der;
        int dl = i2d_ECDSA_SIG(es, NULL);
        if (dl <= 0 || (size_t)dl > sizeof der) {
            ECDSA_SIG_free(es);
            return tsg_error_set(err, TSG_EINTERNAL, "exception", "cannot encode the signature");
        }
        i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        sig = der;
        sig_len = (size_t)dl;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key) == 1;
    if (ok && !coord) ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    ok = ok && EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)j->signing_input,
                                j->signing_input_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    if (!ok) return tsg_error_set(err, TSG_EINVAL, "security", "bad signature");
    return TSG_OK;
}

static bool claim_int(const json_t *payload, const char *name, long long *v, bool *present,
                      tsg_error *err)
{
    json_t *x = json_object_get(payload, name);
    *present = x != NULL;
    if (!x) return true;
    if (!json_is_integer(x)) {
        tsg_error_set(err, TSG_EINVAL, "security", "the %s claim is not an integer", name);
        return false;
    }
    *v = (long long)json_integer_value(x);
    return true;
}

tsg_rc auth_jwt_check_times(const json_t *payload, long long now, int skew, int max_lifetime_s,
                            long long *exp_out, tsg_error *err)
{
    long long exp = 0, nbf = 0, iat = 0;
    bool has_exp, has_nbf, has_iat;
    if (!claim_int(payload, "exp", &exp, &has_exp, err) ||
        !claim_int(payload, "nbf", &nbf, &has_nbf, err) ||
        !claim_int(payload, "iat", &iat, &has_iat, err))
        return TSG_EINVAL;
    if (!has_exp) return tsg_error_set(err, TSG_EINVAL, "security", "the token has no exp");
    if (now >= exp + skew) return tsg_error_set(err, TSG_EINVAL, "security", "the token expired");
    if (has_nbf && nbf > now + skew)
        return tsg_error_set(err, TSG_EINVAL, "security", "the token is not yet valid (nbf)");
    if (has_iat && iat > now + skew)
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "the token is not yet valid (iat in the future)");
    if (max_lifetime_s > 0 && exp > now + max_lifetime_s + skew)
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "exp is too far ahead (at most %d s from now)", max_lifetime_s);
    if (exp_out) *exp_out = exp;
    return TSG_OK;
}

bool auth_jwt_aud_ok(const json_t *payload, const char *want)
{
    json_t *aud = json_object_get(payload, "aud");
    if (json_is_string(aud)) return !strcmp(json_string_value(aud), want);
    if (json_is_array(aud)) {
        size_t i;
        json_t *x;
        json_array_foreach(aud, i, x) if (json_is_string(x) &&
                                          !strcmp(json_string_value(x), want)) return true;
    }
    return false;
}

tsg_rc auth_jwt_sign_es256(EVP_PKEY *key, const char *kid, const json_t *payload, char **out,
                           tsg_error *err)
{
    *out = NULL;
    size_t coord;
    const EVP_MD *md;
    if (!key_fits(key, AUTH_ALG_ES256, &coord, &md))
        return tsg_error_set(err, TSG_EINVAL, "exception", "the signing key is not P-256");
    json_t *hdr = json_pack("{s:s,s:s}", "alg", "ES256", "kid", kid);
    char *h = hdr ? json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *p = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(hdr);
    tsg_rc rc = TSG_OK;
    char *tok = NULL;
    EVP_MD_CTX *ctx = NULL;
    ECDSA_SIG *es = NULL;
    if (!h || !p) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        goto done;
    }
    size_t hl = strlen(h), pl = strlen(p);
    size_t cap = AUTH_B64URL_LEN(hl) + AUTH_B64URL_LEN(pl) + AUTH_B64URL_LEN(2 * coord) + 4;
    tok = malloc(cap);
    if (!tok) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        goto done;
    }
    size_t o = auth_b64url_encode((const unsigned char *)h, hl, tok, cap);
    tok[o++] = '.';
    o += auth_b64url_encode((const unsigned char *)p, pl, tok + o, cap - o);
    unsigned char der[160];
    size_t dl = sizeof der;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1 ||
        EVP_DigestSign(ctx, der, &dl, (const unsigned char *)tok, o) != 1) {
        rc = tsg_error_set(err, TSG_EINTERNAL, "exception", "signing failed (OpenSSL)");
        goto done;
    }
    const unsigned char *dp = der;
    es = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
    unsigned char rs[64];
    if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32) != 32) {
        rc = tsg_error_set(err, TSG_EINTERNAL, "exception", "signing failed (DER)");
        goto done;
    }
    tok[o++] = '.';
    auth_b64url_encode(rs, 64, tok + o, cap - o);
    *out = tok;
    tok = NULL;
done:
    ERR_clear_error();
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(ctx);
    free(tok);
    free(h);
    free(p);
    return rc;
}
