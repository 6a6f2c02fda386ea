/*
 * auth_scope.c — SMART v2 system scopes (with the v1 forms) and client
 * secrets hashed with PBKDF2-HMAC-SHA256 (auth.h).
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "../model/model.h"

/* ------------------------------------------------------------------------
 * Scopes
 * ------------------------------------------------------------------------ */

static const char PERM_LETTERS[] = "cruds";

/* Parses one scope s[0..n) into *out. */
static tsg_rc scope_parse_one(const char *s, size_t n, auth_scope *out, tsg_error *err)
{
    if (n < 8 || memcmp(s, "system/", 7) != 0)
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "scope '%.*s': only system/ scopes are supported",
                             (int)(n > 80 ? 80 : n), s);
    const char *t = s + 7;
    const char *dot = memchr(t, '.', (size_t)(s + n - t));
    if (!dot || dot == t)
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "scope '%.*s': expected system/<Type|*>.<permissions>",
                             (int)(n > 80 ? 80 : n), s);
    size_t tl = (size_t)(dot - t);
    if (tl >= sizeof out->type || !((tl == 1 && *t == '*') || model_resource_find(t, tl) != NULL))
        return tsg_error_set(err, TSG_EINVAL, "security",
                             "scope '%.*s': '%.*s' is not a resource type", (int)(n > 80 ? 80 : n),
                             s, (int)(tl > 64 ? 64 : tl), t);
    memcpy(out->type, t, tl);
    out->type[tl] = '\0';
    const char *p = dot + 1;
    size_t pl = (size_t)(s + n - p);
    if (pl == 4 && !memcmp(p, "read", 4))
        out->perms = AUTH_PERM_R | AUTH_PERM_S;
    else if (pl == 5 && !memcmp(p, "write", 5))
        out->perms = AUTH_PERM_C | AUTH_PERM_U | AUTH_PERM_D;
    else if (pl == 1 && *p == '*')
        out->perms = AUTH_PERM_ALL;
    else {
        /* v2: letters of "cruds" in that order, each at most once */
        unsigned perms = 0;
        size_t li = 0;
        for (size_t i = 0; i < pl; i++) {
            while (li < 5 && PERM_LETTERS[li] != p[i]) li++;
            if (li == 5) {
                if (memchr(p, '?', pl))
                    return tsg_error_set(err, TSG_EINVAL, "security",
                                         "scope '%.*s': ?parameter restrictions are not supported",
                                         (int)(n > 80 ? 80 : n), s);
                return tsg_error_set(err, TSG_EINVAL, "security",
                                     "scope '%.*s': permissions must be letters of 'cruds' in "
                                     "that order, or read, write, *",
                                     (int)(n > 80 ? 80 : n), s);
            }
            perms |= 1u << li;
            li++;
        }
        if (!perms)
            return tsg_error_set(err, TSG_EINVAL, "security", "scope '%.*s': no permissions",
                                 (int)(n > 80 ? 80 : n), s);
        out->perms = perms;
    }
    return TSG_OK;
}

tsg_rc auth_scopes_parse(const char *text, auth_scopes *out, tsg_error *err)
{
    out->n = 0;
    size_t len = strlen(text);
    if (len >= AUTH_SCOPE_TEXT_MAX)
        return tsg_error_set(err, TSG_ELIMIT, "security", "the scope list is longer than %u bytes",
                             AUTH_SCOPE_TEXT_MAX - 1);
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ' ') e++;
        if (out->n >= AUTH_SCOPES_MAX)
            return tsg_error_set(err, TSG_ELIMIT, "security", "more than %u scopes",
                                 AUTH_SCOPES_MAX);
        auth_scope sc;
        tsg_rc rc = scope_parse_one(p, (size_t)(e - p), &sc, err);
        if (rc) return rc;
        /* merge with a scope of the same type */
        size_t i = 0;
        while (i < out->n && strcmp(out->s[i].type, sc.type)) i++;
        if (i < out->n)
            out->s[i].perms |= sc.perms;
        else
            out->s[out->n++] = sc;
        p = e;
    }
    return TSG_OK;
}

/* The permissions granted on type (its own scope and the wildcard's). */
static unsigned granted(const auth_scopes *s, const char *type)
{
    unsigned g = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->s[i].type, "*") || !strcmp(s->s[i].type, type)) g |= s->s[i].perms;
    return g;
}

bool auth_scopes_allow(const auth_scopes *s, const char *type, unsigned perms)
{
    return perms && (granted(s, type) & perms) == perms;
}

bool auth_scopes_subset(const auth_scopes *want, const auth_scopes *have)
{
    for (size_t i = 0; i < want->n; i++) {
        const auth_scope *w = &want->s[i];
        /* a wildcard asks for every type: only a wildcard grants it */
        unsigned g = 0;
        if (!strcmp(w->type, "*")) {
            for (size_t j = 0; j < have->n; j++)
                if (!strcmp(have->s[j].type, "*")) g |= have->s[j].perms;
        } else {
            g = granted(have, w->type);
        }
        if ((g & w->perms) != w->perms) return false;
    }
    return true;
}

tsg_rc auth_scopes_format(const auth_scopes *s, char *out, size_t cap)
{
    size_t o = 0;
    if (cap) out[0] = '\0';
    for (size_t i = 0; i < s->n; i++) {
        char perms[6];
        size_t k = 0;
        for (int b = 0; b < 5; b++)
            if (s->s[i].perms & (1u << b)) perms[k++] = PERM_LETTERS[b];
        perms[k] = '\0';
        int w = snprintf(out + o, cap - o, "%ssystem/%s.%s", o ? " " : "", s->s[i].type, perms);
        if (w < 0 || (size_t)w >= cap - o) return TSG_ELIMIT;
        o += (size_t)w;
    }
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Secrets
 * ------------------------------------------------------------------------ */

tsg_rc auth_secret_new(char out[64], tsg_error *err)
{
    unsigned char raw[AUTH_SECRET_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return tsg_error_set(err, TSG_EINTERNAL, "exception", "no random bytes (OpenSSL)");
    auth_b64url_encode(raw, sizeof raw, out, 64);
    OPENSSL_cleanse(raw, sizeof raw);
    return TSG_OK;
}

static bool pbkdf2(const char *secret, size_t n, const unsigned char *salt, size_t sl,
                   unsigned iter, unsigned char out[32])
{
    return PKCS5_PBKDF2_HMAC(secret, (int)n, salt, (int)sl, (int)iter, EVP_sha256(), 32, out) == 1;
}

tsg_rc auth_secret_hash(const char *secret, unsigned iterations, char out[AUTH_SECRET_HASH_MAX],
                        tsg_error *err)
{
    if (!iterations) iterations = AUTH_PBKDF2_ITERATIONS;
    unsigned char salt[AUTH_SALT_BYTES], h[32];
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        !pbkdf2(secret, strlen(secret), salt, sizeof salt, iterations, h))
        return tsg_error_set(err, TSG_EINTERNAL, "exception", "PBKDF2 failed (OpenSSL)");
    char s64[32], h64[48];
    auth_b64url_encode(salt, sizeof salt, s64, sizeof s64);
    auth_b64url_encode(h, sizeof h, h64, sizeof h64);
    snprintf(out, AUTH_SECRET_HASH_MAX, "pbkdf2-sha256$%u$%s$%s", iterations, s64, h64);
    OPENSSL_cleanse(h, sizeof h);
    return TSG_OK;
}

bool auth_secret_verify(const char *secret, size_t secret_len, const char *stored)
{
    static const char pre[] = "pbkdf2-sha256$";
    if (!stored || strncmp(stored, pre, sizeof pre - 1)) return false;
    const char *p = stored + sizeof pre - 1;
    char *end;
    unsigned long iter = strtoul(p, &end, 10);
    if (end == p || *end != '$' || iter < 1000 || iter > 10000000) return false;
    const char *s = end + 1;
    const char *d = strchr(s, '$');
    if (!d) return false;
    unsigned char salt[64], want[64], got[32];
    size_t sl, wl;
    if (auth_b64url_decode(s, (size_t)(d - s), salt, sizeof salt, &sl) ||
        auth_b64url_decode(d + 1, strlen(d + 1), want, sizeof want, &wl) || wl != 32 || !sl)
        return false;
    if (!pbkdf2(secret, secret_len, salt, sl, (unsigned)iter, got)) return false;
    bool ok = CRYPTO_memcmp(got, want, 32) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}
