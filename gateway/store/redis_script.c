/*
 * redis_script.c — Lua scripts by EVALSHA: the SHA1 Redis names a script by
 * (computed here, FIPS 180-4), and EVALSHA with NOSCRIPT recovery. See redis.h.
 */
#include "redis.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * SHA1
 * ------------------------------------------------------------------------ */

static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* Writes the SHA1 of data[0..n) as 40 lowercase hex digits and a NUL. */
static void sha1_hex(const char *data, size_t n, char out[41])
{
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    const unsigned char *p = (const unsigned char *)data;
    size_t full = n / 64 * 64;
    for (size_t i = 0; i < full; i += 64) sha1_block(h, p + i);
    unsigned char tail[128];
    size_t rest = n - full;
    memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    size_t tn = rest + 1 + 8 <= 64 ? 64 : 128;
    memset(tail + rest + 1, 0, tn - rest - 1);
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) tail[tn - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < tn; i += 64) sha1_block(h, tail + i);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 20; i++) {
        unsigned char byte = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[40] = '\0';
}

static pthread_mutex_t script_mu = PTHREAD_MUTEX_INITIALIZER;

const char *redis_script_sha1(redis_script *s)
{
    if (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&script_mu);
        if (!s->ready) {
            sha1_hex(s->source, strlen(s->source), s->sha1);
            __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&script_mu);
    }
    return s->sha1;
}

/* ------------------------------------------------------------------------
 * EVALSHA
 * ------------------------------------------------------------------------ */

/* SCRIPT LOAD s; checks that the server names it as we do. */
static tsg_rc script_load(redis_client *c, redis_script *s, tsg_error *err)
{
    const char *argv[] = {"SCRIPT", "LOAD", s->source};
    redisReply *r = NULL;
    tsg_rc rc = redis_command_argv(c, 3, argv, NULL, &r, err);
    if (rc == TSG_OK && (r->type != REDIS_REPLY_STRING || strcmp(r->str, s->sha1) != 0))
        rc = tsg_error_set(err, TSG_EINTERNAL, "exception",
                           "SCRIPT LOAD of %s answered another SHA1 than %s", s->name, s->sha1);
    else if (rc != TSG_OK && r) {
        char msg[TSG_ERR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", err ? err->message : "");
        rc = tsg_error_set(err, rc, "exception", "loading script %s: %s", s->name, msg);
    }
    freeReplyObject(r);
    return rc;
}

tsg_rc redis_eval_script(redis_client *c, redis_script *s, int nkeys, const char **keys,
                         const size_t *keylens, int nargs, const char **args, const size_t *arglens,
                         redisReply **reply, tsg_error *err)
{
    *reply = NULL;
    if (nkeys < 0 || nargs < 0 || nkeys > 1000000 || nargs > 1000000)
        return tsg_error_set(err, TSG_EINVAL, "exception", "bad key/argument count for script %s",
                             s->name);
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = redis_script_sha1(s);
    argv[2] = nk;
    for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
    for (int i = 0; i < nkeys; i++) {
        argv[3 + i] = keys[i];
        lens[3 + i] = keylens ? keylens[i] : strlen(keys[i]);
    }
    for (int i = 0; i < nargs; i++) {
        argv[3 + nkeys + i] = args[i];
        lens[3 + nkeys + i] = arglens ? arglens[i] : strlen(args[i]);
    }
    tsg_rc rc = redis_command_argv(c, argc, argv, lens, reply, err);
    if (rc != TSG_OK && *reply && (*reply)->type == REDIS_REPLY_ERROR &&
        strncmp((*reply)->str, "NOSCRIPT", 8) == 0) {
        /* the server lost its script cache (restart, SCRIPT FLUSH): once more */
        freeReplyObject(*reply);
        *reply = NULL;
        rc = script_load(c, s, err);
        if (rc == TSG_OK) rc = redis_command_argv(c, argc, argv, lens, reply, err);
    }
    free(argv);
    free(lens);
    return rc;
}
