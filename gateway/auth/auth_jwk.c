/*
 * auth_jwk.c — JSON Web Keys ⇄ OpenSSL keys (EVP_PKEY_fromdata with
 * OSSL_PARAM, no deprecated EC_KEY/RSA calls), RFC 7638 thumbprints, and the
 * gateway's P-256 key generation (auth.h).
 */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

/* Decodes the base64url string member `name` of jwk into buf; its length,
 * or 0 with err set. */
static size_t jwk_bytes(const json_t *jwk, const char *name, unsigned char *buf, size_t cap,
                        tsg_error *err)
{
    json_t *v = json_object_get(jwk, name);
    size_t n = 0;
    if (!json_is_string(v) ||
        auth_b64url_decode(json_string_value(v), json_string_length(v), buf, cap, &n) || !n) {
        tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: \"%s\" is missing or not base64url", name);
        return 0;
    }
    return n;
}

tsg_rc auth_jwk_to_pkey(const json_t *jwk, bool private_ok, EVP_PKEY **out, tsg_error *err)
{
    *out = NULL;
    if (!json_is_object(jwk))
        return tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: not a JSON object");
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty) return tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: no kty");
    bool priv = private_ok && json_object_get(jwk, "d");
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    BIGNUM *b1 = NULL, *b2 = NULL;
    tsg_rc rc = TSG_OK;
    const char *type;
    unsigned char pt[1 + 2 * 66], x[72], y[72], big[1100];
    if (!bld) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    if (!strcmp(kty, "EC")) {
        type = "EC";
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        size_t coord = crv && !strcmp(crv, "P-256") ? 32 : crv && !strcmp(crv, "P-384") ? 48 : 0;
        if (!coord) {
            rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                               "JWK: crv must be P-256 or P-384 for kty EC");
            goto done;
        }
        size_t xl = jwk_bytes(jwk, "x", x, sizeof x, err);
        size_t yl = xl ? jwk_bytes(jwk, "y", y, sizeof y, err) : 0;
        if (!xl || !yl) {
            rc = TSG_EINVAL;
            goto done;
        }
        if (xl != coord || yl != coord) {
            rc = tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: x and y must be %zu bytes for %s",
                               coord, crv);
            goto done;
        }
        pt[0] = 4;
        memcpy(pt + 1, x, coord);
        memcpy(pt + 1 + coord, y, coord);
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                             coord == 32 ? "prime256v1" : "secp384r1", 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * coord)) {
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
            goto done;
        }
        if (priv) {
            size_t dl = jwk_bytes(jwk, "d", x, sizeof x, err);
            if (!dl) {
                rc = TSG_EINVAL;
                goto done;
            }
            b1 = BN_bin2bn(x, (int)dl, NULL);
            if (!b1 || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, b1)) {
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
                goto done;
            }
        }
    } else if (!strcmp(kty, "RSA")) {
        type = "RSA";
        priv = false; /* we never hold clients' private keys */
        size_t nl = jwk_bytes(jwk, "n", big, sizeof big, err);
        if (!nl) {
            rc = TSG_EINVAL;
            goto done;
        }
        b1 = BN_bin2bn(big, (int)nl, NULL);
        size_t el = jwk_bytes(jwk, "e", big, 16, err);
        if (!el) {
            rc = TSG_EINVAL;
            goto done;
        }
        b2 = BN_bin2bn(big, (int)el, NULL);
        if (!b1 || !b2) {
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
            goto done;
        }
        if (BN_num_bits(b1) < AUTH_RSA_MIN_BITS) {
            rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                               "JWK: the RSA modulus has %d bits (at least %d)", BN_num_bits(b1),
                               AUTH_RSA_MIN_BITS);
            goto done;
        }
        if (!BN_is_odd(b2) || BN_num_bits(b2) < 2) {
            rc = tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: bad RSA exponent e");
            goto done;
        }
        if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, b1) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, b2)) {
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
            goto done;
        }
    } else {
        rc = tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: kty %.16s is not EC or RSA", kty);
        goto done;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, out, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1) {
        rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                           "JWK: not a valid %s key (a point not on the curve?)", type);
        goto done;
    }
    check = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
    if (!check || EVP_PKEY_public_check(check) != 1 ||
        (priv && EVP_PKEY_pairwise_check(check) != 1)) {
        rc = tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: the %s key fails its checks", type);
        goto done;
    }
done:
    if (rc != TSG_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    ERR_clear_error();
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(b1);
    BN_free(b2);
    return rc;
}

/* Sets jwk[name] = base64url of bn padded to pad bytes (0 = minimal). */
static bool put_bn(json_t *jwk, const char *name, const BIGNUM *bn, int pad)
{
    unsigned char buf[1100];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    if (n <= 0 || n > (int)sizeof buf) return false;
    char txt[AUTH_B64URL_LEN(1100) + 1];
    auth_b64url_encode(buf, (size_t)n, txt, sizeof txt);
    return json_object_set_new(jwk, name, json_string(txt)) == 0;
}

json_t *auth_pkey_to_jwk(EVP_PKEY *key, bool with_private)
{
    json_t *jwk = json_object();
    BIGNUM *a = NULL, *b = NULL, *d = NULL;
    bool ok = jwk != NULL;
    if (ok && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        char grp[64];
        size_t gl;
        ok = EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof grp, &gl);
        int coord = ok && !strcmp(grp, "prime256v1")  ? 32
                    : ok && !strcmp(grp, "secp384r1") ? 48
                                                      : 0;
        ok = coord && EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a) &&
             EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b);
        ok = ok && !json_object_set_new(jwk, "kty", json_string("EC")) &&
             !json_object_set_new(jwk, "crv", json_string(coord == 32 ? "P-256" : "P-384")) &&
             put_bn(jwk, "x", a, coord) && put_bn(jwk, "y", b, coord);
        if (ok && with_private)
            ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) &&
                 put_bn(jwk, "d", d, coord);
    } else if (ok && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA && !with_private) {
        ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a) &&
             EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b) &&
             !json_object_set_new(jwk, "kty", json_string("RSA")) && put_bn(jwk, "n", a, 0) &&
             put_bn(jwk, "e", b, 0);
    } else {
        ok = false;
    }
    BN_free(a);
    BN_free(b);
    BN_clear_free(d);
    ERR_clear_error();
    if (!ok) {
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}

tsg_rc auth_jwk_thumbprint(const json_t *jwk, char out[48], tsg_error *err)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    char canon[2400];
    int n;
    if (kty && !strcmp(kty, "EC")) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        const char *x = json_string_value(json_object_get(jwk, "x"));
        const char *y = json_string_value(json_object_get(jwk, "y"));
        if (!crv || !x || !y)
            return tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: EC key without crv, x, y");
        n = snprintf(canon, sizeof canon,
                     "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", crv, x, y);
    } else if (kty && !strcmp(kty, "RSA")) {
        const char *e = json_string_value(json_object_get(jwk, "e"));
        const char *nn = json_string_value(json_object_get(jwk, "n"));
        if (!e || !nn)
            return tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: RSA key without n, e");
        n = snprintf(canon, sizeof canon, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, nn);
    } else {
        return tsg_error_set(err, TSG_EINVAL, "invalid", "JWK: kty must be EC or RSA");
    }
    if (n < 0 || (size_t)n >= sizeof canon)
        return tsg_error_set(err, TSG_ELIMIT, "invalid", "JWK: too large for a thumbprint");
    unsigned char md[32];
    unsigned int ml = 0;
    if (EVP_Digest(canon, (size_t)n, md, &ml, EVP_sha256(), NULL) != 1 || ml != 32)
        return tsg_error_set(err, TSG_EINTERNAL, "exception", "SHA-256 failed");
    auth_b64url_encode(md, 32, out, 48);
    return TSG_OK;
}

EVP_PKEY *auth_key_generate_p256(void)
{
    EVP_PKEY *k = EVP_EC_gen("prime256v1");
    ERR_clear_error();
    return k;
}
