/*
 * fuzz_jwt.c — libFuzzer target for the token parser (gateway/auth/auth.h):
 * auth_jwt_parse with every algorithm allowed, then what the gate does with
 * a parsed token (signature check against a fixed P-256 key, time claims,
 * audience), the base64url decoder on the raw bytes, and the scope parser.
 *
 * Properties: no crash or leak on any input; a refused token has a message;
 * an accepted one has three parts whose signing input ends where the
 * signature starts and an alg among those allowed; a token the fuzzer did
 * not sign never verifies with the fixed key.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_jwt: broken property: %s\n", what);
        abort();
    }
}

static EVP_PKEY *fixed_key(void)
{
    static EVP_PKEY *k;
    if (!k) {
        /* a constant key: the fuzzer cannot find its private half */
        json_t *jwk = json_loads("{\"kty\":\"EC\",\"crv\":\"P-256\","
                                 "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                                 "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}",
                                 0, NULL);
        tsg_error err;
        if (auth_jwk_to_pkey(jwk, false, &k, &err) != TSG_OK) abort();
        json_decref(jwk);
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *tok = (const char *)data;
    const unsigned all = AUTH_ALG_ES256 | AUTH_ALG_ES384 | AUTH_ALG_RS384;
    auth_jwt j;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = auth_jwt_parse(tok, size, all, &j, &err);
    if (rc != TSG_OK) {
        check(err.message[0] != 0, "a refused token has a message");
        check(j.header == NULL && j.payload == NULL, "a refused token keeps nothing");
    } else {
        check(size <= AUTH_TOKEN_MAX_BYTES, "accepted tokens are within the size cap");
        check((j.alg & all) != 0, "the alg is one of the allowed");
        check(j.signing_input == tok && j.signing_input_len < size &&
                  tok[j.signing_input_len] == '.',
              "the signing input ends at the second dot");
        check(json_is_object(j.header) && json_is_object(j.payload), "header and payload");
        tsg_error e2;
        check(auth_jwt_verify(&j, fixed_key(), &e2) != TSG_OK,
              "a token the fuzzer made does not verify");
        long long exp;
        (void)auth_jwt_check_times(j.payload, 1700000000, 60, 300, &exp, &e2);
        (void)auth_jwt_aud_ok(j.payload, "https://gw/fhir");
        json_t *jwk = json_object_get(j.header, "jwk");
        if (jwk) { /* a key embedded in a header is parsed (never trusted) without harm */
            EVP_PKEY *pk = NULL;
            char tp[48];
            if (auth_jwk_to_pkey(jwk, false, &pk, &e2) == TSG_OK) EVP_PKEY_free(pk);
            (void)auth_jwk_thumbprint(jwk, tp, &e2);
        }
        const char *scope = json_string_value(json_object_get(j.payload, "scope"));
        if (scope) {
            auth_scopes s;
            if (auth_scopes_parse(scope, &s, &e2) == TSG_OK) {
                char out[AUTH_SCOPE_TEXT_MAX * 2];
                check(auth_scopes_format(&s, out, sizeof out) == TSG_OK, "scopes format back");
            }
        }
        auth_jwt_clear(&j);
    }
    unsigned char buf[4096];
    size_t n;
    if (size <= 4096 && auth_b64url_decode(tok, size, buf, sizeof buf, &n) == TSG_OK) {
        char again[6000];
        auth_b64url_encode(buf, n, again, sizeof again);
        check(strlen(again) == size && memcmp(again, tok, size) == 0,
              "base64url decodes only canonical text");
    }
    return 0;
}
