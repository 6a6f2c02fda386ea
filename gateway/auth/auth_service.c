/*
 * auth_service.c — the gateway's signing keys, client records in Redis, the
 * token endpoint, bearer-token checks with a verified-token cache, and the
 * per-client rate limit (auth.h: keys, flow, decisions).
 */
#include "auth.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "../store/redis.h"

#define KEYS_KEY    "tsg:auth:keys"
#define CURRENT_KEY "tsg:auth:key:current"
#define CLIENTS_KEY "tsg:auth:clients"
#define CACHE_LOCKS 64u

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs a command of up to 16 string arguments (NULL-terminated list). */
static tsg_rc cmd(redis_client *c, redisReply **reply, tsg_error *err, const char *a0, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 16; a = va_arg(ap, const char *)) argv[argc++] = a;
    va_end(ap);
    return redis_command_argv(c, argc, argv, NULL, reply, err);
}

static void random_id(char out[AUTH_ID_MAX], size_t bytes)
{
    unsigned char raw[24];
    if (bytes > sizeof raw) bytes = sizeof raw;
    if (RAND_bytes(raw, (int)bytes) != 1) {
        /* RAND_bytes does not fail on Linux with getrandom(); if it ever does,
         * an id from the clock is still unique, and ids are not secrets */
        long long t = now_ms();
        memset(raw, 0, sizeof raw);
        memcpy(raw, &t, sizeof t);
    }
    auth_b64url_encode(raw, bytes, out, AUTH_ID_MAX);
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n >= AUTH_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * The service
 * ------------------------------------------------------------------------ */

typedef struct gw_key {
    char kid[48];
    EVP_PKEY *pk;
    json_t *pub; /* the public JWK with kid, use, alg */
    long long created_ms;
    long long retired_ms; /* 0 = not retired */
} gw_key;

typedef struct cache_slot {
    bool used;
    size_t token_len;
    char token[AUTH_CACHE_TOKEN_MAX]; /* the verified token (not NUL-terminated) */
    char aud[AUTH_CACHE_AUD_MAX];     /* the audience it was verified for */
    auth_principal p;
} cache_slot;

typedef struct client_state {
    char id[AUTH_ID_MAX];
    bool revoked;
    long long checked_ms;       /* when Redis last answered for this client */
    unsigned lease;             /* requests left of the last lease from its bucket */
    long long limited_until_ms; /* refused without asking Redis until then */
    bool refreshing;            /* a thread is asking Redis for the next lease … */
    unsigned borrowed;          /* … and this many requests were admitted meanwhile */
} client_state;

#define STATE_SLOTS 256u

struct auth_service {
    redis_client *rc;
    auth_config cfg;
    pthread_rwlock_t lock; /* keys */
    gw_key keys[AUTH_GATEWAY_KEYS_MAX];
    size_t n_keys;
    char current[48];
    _Atomic long long last_reload_ms;
    pthread_mutex_t cache_lock[CACHE_LOCKS];
    cache_slot *cache; /* AUTH_CACHE_SLOTS */
    pthread_mutex_t state_locks[CACHE_LOCKS];
    client_state states[STATE_SLOTS];
    unsigned long long serial; /* this service among all made (thread_memo) */
};

/*
 * Per thread: the last token this thread found valid, and a few requests of
 * its client's lease. A busy client's requests are spread over every HTTP
 * thread, and each took the same two locks (the token's cache slot, the
 * client's state), passing their cache lines between the cores on every
 * request (perf: the locks were a sixth of what auth added to a read). What
 * a thread keeps is what the shared cache and lease would have answered: the
 * token until its exp, the lease requests only while the client's state is
 * trusted (AUTH_REVOCATION_CACHE_MS after Redis answered), taken off the
 * shared lease (so none is admitted twice; what a thread holds when it goes
 * idle is lost, at most LEASE_CHUNK_DIV-th of a lease per thread).
 */
#define LEASE_CHUNK_DIV 64u
typedef struct thread_memo {
    unsigned long long svc; /* auth_service.serial of the token; 0: none */
    size_t token_len;
    char token[AUTH_CACHE_TOKEN_MAX];
    char aud[AUTH_CACHE_AUD_MAX];
    auth_principal p;
    unsigned long long lease_svc; /* … of the lease requests */
    char lease_id[AUTH_ID_MAX];
    long long lease_checked_ms;
    unsigned lease_left;
} thread_memo;
static _Thread_local thread_memo memo;
static _Atomic unsigned long long services_made;

/* *dst = *src, copying only the scopes src has (a principal is ~4 KB, most of
 * it room for scopes). */
static void principal_copy(auth_principal *dst, const auth_principal *src)
{
    memcpy(dst, src, offsetof(auth_principal, scopes));
    dst->scopes.n = src->scopes.n;
    memcpy(dst->scopes.s, src->scopes.s, src->scopes.n * sizeof src->scopes.s[0]);
}

static void keys_clear(auth_service *svc)
{
    for (size_t i = 0; i < svc->n_keys; i++) {
        EVP_PKEY_free(svc->keys[i].pk);
        json_decref(svc->keys[i].pub);
    }
    svc->n_keys = 0;
    svc->current[0] = '\0';
}

/* Parses one stored key record into *k. */
static tsg_rc key_from_record(const char *kid, const char *text, size_t len, gw_key *k,
                              tsg_error *err)
{
    memset(k, 0, sizeof *k);
    json_error_t je;
    json_t *rec = json_loadb(text, len, 0, &je);
    json_t *jwk = rec ? json_object_get(rec, "jwk") : NULL;
    tsg_rc rc = TSG_OK;
    if (!jwk) {
        rc = tsg_error_set(err, TSG_EINVAL, "exception", "gateway key %s: broken record", kid);
        goto done;
    }
    rc = auth_jwk_to_pkey(jwk, true, &k->pk, err);
    if (rc) goto done;
    k->pub = auth_pkey_to_jwk(k->pk, false);
    if (!k->pub) {
        rc = tsg_error_set(err, TSG_EINVAL, "exception", "gateway key %s: not P-256", kid);
        goto done;
    }
    snprintf(k->kid, sizeof k->kid, "%s", kid);
    json_object_set_new(k->pub, "kid", json_string(kid));
    json_object_set_new(k->pub, "use", json_string("sig"));
    json_object_set_new(k->pub, "alg", json_string("ES256"));
    k->created_ms = (long long)json_integer_value(json_object_get(rec, "created"));
    k->retired_ms = (long long)json_integer_value(json_object_get(rec, "retired"));
done:
    if (rc) {
        EVP_PKEY_free(k->pk);
        json_decref(k->pub);
        memset(k, 0, sizeof *k);
    }
    json_decref(rec);
    return rc;
}

/* The stored record of a new key: {"jwk": private JWK, "created": ms, "retired": 0}. */
static char *key_record(EVP_PKEY *pk, long long created, long long retired)
{
    json_t *jwk = auth_pkey_to_jwk(pk, true);
    if (!jwk) return NULL;
    json_t *rec = json_pack("{s:o,s:I,s:I}", "jwk", jwk, "created", (json_int_t)created, "retired",
                            (json_int_t)retired);
    char *s = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return s;
}

/* Creates a new P-256 key; *kid gets the first 16 characters of its
 * thumbprint (auth.h: every token carries it), *rec its record. */
static tsg_rc key_new(char kid[48], char **rec, tsg_error *err)
{
    EVP_PKEY *pk = auth_key_generate_p256();
    if (!pk) return tsg_error_set(err, TSG_EINTERNAL, "exception", "cannot generate a P-256 key");
    json_t *pub = auth_pkey_to_jwk(pk, false);
    tsg_rc rc = pub ? auth_jwk_thumbprint(pub, kid, err)
                    : tsg_error_set(err, TSG_EINTERNAL, "exception", "cannot export the key");
    json_decref(pub);
    if (!rc) {
        kid[16] = '\0';
        *rec = key_record(pk, now_ms(), 0);
        if (!*rec) rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    EVP_PKEY_free(pk);
    return rc;
}

/* Loads every key from Redis into the ring (write lock taken here). When
 * create is set and there is no current key, makes one. */
static tsg_rc keys_load(auth_service *svc, bool create, tsg_error *err)
{
    redisReply *cur = NULL, *all = NULL;
    tsg_rc rc = cmd(svc->rc, &cur, err, "GET", CURRENT_KEY, NULL);
    if (rc) goto done;
    if (cur->type != REDIS_REPLY_STRING) {
        if (!create) {
            rc = tsg_error_set(err, TSG_EIO, "exception", "no gateway signing key in Redis");
            goto done;
        }
        char kid[48], *rec = NULL;
        rc = key_new(kid, &rec, err);
        if (rc) goto done;
        redisReply *r = NULL;
        rc = cmd(svc->rc, &r, err, "HSETNX", KEYS_KEY, kid, rec, NULL);
        freeReplyObject(r);
        OPENSSL_cleanse(rec, strlen(rec));
        free(rec);
        if (!rc) rc = cmd(svc->rc, &r, err, "SET", CURRENT_KEY, kid, "NX", NULL);
        if (!rc) freeReplyObject(r);
        if (rc) goto done;
        freeReplyObject(cur);
        cur = NULL;
        rc = cmd(svc->rc, &cur, err, "GET", CURRENT_KEY, NULL);
        if (rc) goto done;
        if (cur->type != REDIS_REPLY_STRING) {
            rc = tsg_error_set(err, TSG_EIO, "exception", "the gateway key vanished from Redis");
            goto done;
        }
    }
    rc = cmd(svc->rc, &all, err, "HGETALL", KEYS_KEY, NULL);
    if (rc) goto done;
    gw_key fresh[AUTH_GATEWAY_KEYS_MAX];
    size_t nf = 0;
    long long now = now_ms();
    bool have_current = false;
    for (size_t i = 0; all->type == REDIS_REPLY_ARRAY && i + 1 < all->elements; i += 2) {
        const char *kid = all->element[i]->str;
        gw_key k;
        rc = key_from_record(kid, all->element[i + 1]->str, all->element[i + 1]->len, &k, err);
        if (rc) break;
        bool is_current = !strcmp(kid, cur->str);
        /* retired keys are kept until their last token expired */
        bool live = is_current || !k.retired_ms ||
                    now < k.retired_ms + (AUTH_TOKEN_LIFETIME_MAX_S + AUTH_CLOCK_SKEW_S) * 1000LL;
        if (!live || nf >= AUTH_GATEWAY_KEYS_MAX) {
            EVP_PKEY_free(k.pk);
            json_decref(k.pub);
            continue;
        }
        have_current |= is_current;
        fresh[nf++] = k;
    }
    if (!rc && !have_current)
        rc = tsg_error_set(err, TSG_EIO, "exception", "the current gateway key %s is not stored",
                           cur->str);
    if (rc) {
        for (size_t i = 0; i < nf; i++) {
            EVP_PKEY_free(fresh[i].pk);
            json_decref(fresh[i].pub);
        }
        goto done;
    }
    pthread_rwlock_wrlock(&svc->lock);
    keys_clear(svc);
    memcpy(svc->keys, fresh, nf * sizeof fresh[0]);
    svc->n_keys = nf;
    snprintf(svc->current, sizeof svc->current, "%s", cur->str);
    pthread_rwlock_unlock(&svc->lock);
    atomic_store(&svc->last_reload_ms, now_ms());
done:
    freeReplyObject(cur);
    freeReplyObject(all);
    return rc;
}

tsg_rc auth_service_new(redis_client *client, const auth_config *cfg, auth_service **out,
                        tsg_error *err)
{
    *out = NULL;
    auth_service *svc = calloc(1, sizeof *svc);
    cache_slot *cache = calloc(AUTH_CACHE_SLOTS, sizeof *cache);
    if (!svc || !cache) {
        free(svc);
        free(cache);
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    svc->rc = client;
    svc->cfg = *cfg;
    svc->cache = cache;
    svc->serial = atomic_fetch_add(&services_made, 1) + 1;
    pthread_rwlock_init(&svc->lock, NULL);
    for (unsigned i = 0; i < CACHE_LOCKS; i++) {
        tsg_mutex_init_adaptive(&svc->cache_lock[i]);
        tsg_mutex_init_adaptive(&svc->state_locks[i]);
    }
    tsg_rc rc = keys_load(svc, true, err);
    if (rc == TSG_EIO) {
        /* Redis is not reachable yet (an external one may come later: serve
         * starts anyway and /readyz tells): the keys are loaded at the first
         * token request or token check */
        fprintf(stderr, "tsunagu auth: the signing keys are not loaded yet: %s\n",
                err ? err->message : "redis");
        rc = TSG_OK;
    }
    if (rc) {
        auth_service_free(svc);
        return rc;
    }
    *out = svc;
    return TSG_OK;
}

void auth_service_free(auth_service *svc)
{
    if (!svc) return;
    keys_clear(svc);
    pthread_rwlock_destroy(&svc->lock);
    for (unsigned i = 0; i < CACHE_LOCKS; i++) {
        pthread_mutex_destroy(&svc->cache_lock[i]);
        pthread_mutex_destroy(&svc->state_locks[i]);
    }
    OPENSSL_cleanse(svc->cache, AUTH_CACHE_SLOTS * sizeof *svc->cache);
    free(svc->cache);
    free(svc);
}

/* Reloads the keys when the last load is older than a second. */
static void keys_maybe_reload(auth_service *svc)
{
    long long last = atomic_load(&svc->last_reload_ms);
    if (now_ms() - last < 1000) return;
    if (!atomic_compare_exchange_strong(&svc->last_reload_ms, &last, now_ms())) return;
    tsg_error e;
    tsg_error_clear(&e);
    if (keys_load(svc, false, &e))
        fprintf(stderr, "tsunagu auth: reloading the signing keys: %s\n", e.message);
}

char *auth_jwks_json(auth_service *svc)
{
    json_t *keys = json_array();
    pthread_rwlock_rdlock(&svc->lock);
    for (size_t i = 0; i < svc->n_keys; i++) json_array_append(keys, svc->keys[i].pub);
    pthread_rwlock_unlock(&svc->lock);
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return s;
}

tsg_rc auth_key_rotate(redis_client *c, char kid_out[48], tsg_error *err)
{
    char *rec = NULL;
    tsg_rc rc = key_new(kid_out, &rec, err);
    if (rc) return rc;
    redisReply *cur = NULL, *old = NULL, *r = NULL;
    rc = cmd(c, &cur, err, "GET", CURRENT_KEY, NULL);
    if (!rc && cur->type == REDIS_REPLY_STRING) {
        rc = cmd(c, &old, err, "HGET", KEYS_KEY, cur->str, NULL);
        if (!rc && old->type == REDIS_REPLY_STRING) {
            json_t *o = json_loadb(old->str, old->len, 0, NULL);
            if (o) {
                json_object_set_new(o, "retired", json_integer(now_ms()));
                char *s = json_dumps(o, JSON_COMPACT);
                if (s) {
                    rc = cmd(c, &r, err, "HSET", KEYS_KEY, cur->str, s, NULL);
                    freeReplyObject(r);
                    r = NULL;
                    OPENSSL_cleanse(s, strlen(s));
                    free(s);
                }
                json_decref(o);
            }
        }
    }
    if (!rc) rc = cmd(c, &r, err, "HSET", KEYS_KEY, kid_out, rec, NULL);
    freeReplyObject(r);
    r = NULL;
    if (!rc) rc = cmd(c, &r, err, "SET", CURRENT_KEY, kid_out, NULL);
    freeReplyObject(r);
    freeReplyObject(cur);
    freeReplyObject(old);
    OPENSSL_cleanse(rec, strlen(rec));
    free(rec);
    return rc;
}

/* ------------------------------------------------------------------------
 * Clients
 * ------------------------------------------------------------------------ */

static const char *const CLIENT_FIELDS[] = {"org",  "name",   "scope",   "role",   "area",
                                            "jwks", "secret", "revoked", "created"};
#define N_CLIENT_FIELDS (sizeof CLIENT_FIELDS / sizeof CLIENT_FIELDS[0])

/* A client as loaded: every field of CLIENT_FIELDS (NULL when absent). */
typedef struct client_rec {
    redisReply *r;
    const char *f[N_CLIENT_FIELDS];
} client_rec;

enum { F_ORG, F_NAME, F_SCOPE, F_ROLE, F_AREA, F_JWKS, F_SECRET, F_REVOKED, F_CREATED };

/* Loads client id: TSG_OK with rec->r NULL when there is none. */
static tsg_rc client_load(redis_client *c, const char *id, client_rec *rec, tsg_error *err)
{
    memset(rec, 0, sizeof *rec);
    if (!id_ok(id)) return TSG_OK;
    char key[AUTH_ID_MAX + 32];
    snprintf(key, sizeof key, "tsg:auth:client:%s", id);
    const char *argv[2 + N_CLIENT_FIELDS] = {"HMGET", key};
    for (size_t i = 0; i < N_CLIENT_FIELDS; i++) argv[2 + i] = CLIENT_FIELDS[i];
    redisReply *r = NULL;
    tsg_rc rc = redis_command_argv(c, (int)(2 + N_CLIENT_FIELDS), argv, NULL, &r, err);
    if (rc) {
        freeReplyObject(r);
        return rc;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != N_CLIENT_FIELDS ||
        r->element[F_ORG]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return TSG_OK;
    }
    rec->r = r;
    for (size_t i = 0; i < N_CLIENT_FIELDS; i++)
        rec->f[i] = r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
    return TSG_OK;
}

static void client_rec_free(client_rec *rec)
{
    freeReplyObject(rec->r);
    memset(rec, 0, sizeof *rec);
}

/* Checks a JWKS document: an object with "keys", 1..AUTH_JWKS_MAX_KEYS keys,
 * each usable. */
static tsg_rc jwks_check(const char *text, tsg_error *err)
{
    if (strlen(text) > AUTH_JWKS_MAX_BYTES)
        return tsg_error_set(err, TSG_ELIMIT, "invalid", "the JWKS is larger than %u bytes",
                             AUTH_JWKS_MAX_BYTES);
    json_error_t je;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!doc) return tsg_error_set(err, TSG_EINVAL, "invalid", "the JWKS is not JSON: %s", je.text);
    json_t *keys = json_object_get(doc, "keys");
    tsg_rc rc = TSG_OK;
    if (!json_is_array(keys) || json_array_size(keys) == 0 ||
        json_array_size(keys) > AUTH_JWKS_MAX_KEYS) {
        rc = tsg_error_set(err, TSG_EINVAL, "invalid", "the JWKS needs \"keys\": 1-%u keys",
                           AUTH_JWKS_MAX_KEYS);
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (rc) break;
        if (json_object_get(k, "d")) {
            rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                               "the JWKS holds a private key (keys[%zu].d): register public keys",
                               i);
            break;
        }
        EVP_PKEY *pk = NULL;
        rc = auth_jwk_to_pkey(k, false, &pk, err);
        EVP_PKEY_free(pk);
        if (rc) {
            char m[TSG_ERR_MESSAGE_MAX];
            snprintf(m, sizeof m, "%s", err ? err->message : "");
            rc = tsg_error_set(err, rc, "invalid", "keys[%zu]: %s", i, m);
        }
    }
    json_decref(doc);
    return rc;
}

tsg_rc auth_client_create(redis_client *c, const auth_client_info *in, const char *jwks_json,
                          char id_out[AUTH_ID_MAX], char secret_out[64], tsg_error *err)
{
    if (strncmp(in->org, "Organization/", 13) || !in->org[13] || strchr(in->org + 13, '/'))
        return tsg_error_set(err, TSG_EINVAL, "invalid", "--org must be Organization/<id>");
    if (strcmp(in->role, "member") && strcmp(in->role, "admin"))
        return tsg_error_set(err, TSG_EINVAL, "invalid", "--role must be member or admin");
    if (!in->name[0]) return tsg_error_set(err, TSG_EINVAL, "invalid", "--name must not be empty");
    auth_scopes sc;
    tsg_rc rc = auth_scopes_parse(in->scope, &sc, err);
    if (rc) return rc;
    if (!sc.n) return tsg_error_set(err, TSG_EINVAL, "invalid", "--scope must grant something");
    if (jwks_json && (rc = jwks_check(jwks_json, err))) return rc;
    char hash[AUTH_SECRET_HASH_MAX];
    if ((rc = auth_secret_new(secret_out, err)) ||
        (rc = auth_secret_hash(secret_out, 0, hash, err)))
        return rc;
    random_id(id_out, 16);
    char key[AUTH_ID_MAX + 32], created[32];
    snprintf(key, sizeof key, "tsg:auth:client:%s", id_out);
    snprintf(created, sizeof created, "%lld", now_ms());
    const char *hset[] = {
        "HSET",    key,    "org",     in->org, "name",    in->name, "scope",
        in->scope, "role", in->role,  "area",  in->area,  "jwks",   jwks_json ? jwks_json : "",
        "secret",  hash,   "revoked", "0",     "created", created};
    const char *sadd[] = {"SADD", CLIENTS_KEY, id_out};
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    redis_cmd cmds[] = {{1, multi, NULL},
                        {(int)(sizeof hset / sizeof hset[0]), hset, NULL},
                        {3, sadd, NULL},
                        {1, exec, NULL}};
    redisReply *rep[4] = {0};
    rc = redis_pipeline(c, 4, cmds, rep, err);
    for (int i = 0; i < 4; i++) freeReplyObject(rep[i]);
    return rc;
}

tsg_rc auth_client_list(redis_client *c, auth_client_info **out, size_t *n, tsg_error *err)
{
    *out = NULL;
    *n = 0;
    redisReply *ids = NULL;
    tsg_rc rc = cmd(c, &ids, err, "SMEMBERS", CLIENTS_KEY, NULL);
    if (rc) {
        freeReplyObject(ids);
        return rc;
    }
    auth_client_info *a = calloc(ids->elements ? ids->elements : 1, sizeof *a);
    if (!a) {
        freeReplyObject(ids);
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < ids->elements; i++) {
        client_rec rec;
        rc = client_load(c, ids->element[i]->str, &rec, err);
        if (rc) break;
        if (!rec.r) continue;
        auth_client_info *ci = &a[k++];
        snprintf(ci->id, sizeof ci->id, "%s", ids->element[i]->str);
        snprintf(ci->org, sizeof ci->org, "%s", rec.f[F_ORG] ? rec.f[F_ORG] : "");
        snprintf(ci->name, sizeof ci->name, "%s", rec.f[F_NAME] ? rec.f[F_NAME] : "");
        snprintf(ci->scope, sizeof ci->scope, "%s", rec.f[F_SCOPE] ? rec.f[F_SCOPE] : "");
        snprintf(ci->role, sizeof ci->role, "%s", rec.f[F_ROLE] ? rec.f[F_ROLE] : "");
        snprintf(ci->area, sizeof ci->area, "%s", rec.f[F_AREA] ? rec.f[F_AREA] : "");
        ci->has_jwks = rec.f[F_JWKS] && rec.f[F_JWKS][0];
        ci->revoked = rec.f[F_REVOKED] && !strcmp(rec.f[F_REVOKED], "1");
        ci->created_ms = rec.f[F_CREATED] ? strtoll(rec.f[F_CREATED], NULL, 10) : 0;
        client_rec_free(&rec);
    }
    freeReplyObject(ids);
    if (rc) {
        free(a);
        return rc;
    }
    *out = a;
    *n = k;
    return TSG_OK;
}

static tsg_rc client_must_exist(redis_client *c, const char *id, tsg_error *err)
{
    client_rec rec;
    tsg_rc rc = client_load(c, id, &rec, err);
    if (rc) return rc;
    bool found = rec.r != NULL;
    client_rec_free(&rec);
    return found ? TSG_OK : tsg_error_set(err, TSG_EINVAL, "not-found", "no client %.64s", id);
}

tsg_rc auth_client_revoke(redis_client *c, const char *id, tsg_error *err)
{
    tsg_rc rc = client_must_exist(c, id, err);
    if (rc) return rc;
    char key[AUTH_ID_MAX + 32];
    snprintf(key, sizeof key, "tsg:auth:client:%s", id);
    redisReply *r = NULL;
    rc = cmd(c, &r, err, "HSET", key, "revoked", "1", NULL);
    freeReplyObject(r);
    return rc;
}

tsg_rc auth_client_rotate(redis_client *c, const char *id, char secret_out[64], tsg_error *err)
{
    tsg_rc rc = client_must_exist(c, id, err);
    if (rc) return rc;
    char hash[AUTH_SECRET_HASH_MAX], key[AUTH_ID_MAX + 32], ts[32];
    if ((rc = auth_secret_new(secret_out, err)) ||
        (rc = auth_secret_hash(secret_out, 0, hash, err)))
        return rc;
    snprintf(key, sizeof key, "tsg:auth:client:%s", id);
    snprintf(ts, sizeof ts, "%lld", now_ms());
    redisReply *r = NULL;
    rc = cmd(c, &r, err, "HSET", key, "secret", hash, "rotated", ts, NULL);
    freeReplyObject(r);
    return rc;
}

/* ------------------------------------------------------------------------
 * The token endpoint
 * ------------------------------------------------------------------------ */

/* Sets ans to an RFC 6749 §5.2 error. */
static void oauth_error(auth_answer *ans, int status, const char *code, const char *desc)
{
    ans->status = status;
    json_t *o = json_pack("{s:s,s:s}", "error", code, "error_description", desc);
    ans->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (status == 401) ans->www_authenticate = true;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Form-decodes s[0..n) into out (cap, NUL-terminated). false on a bad escape,
 * a NUL byte or when it does not fit. */
static bool form_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n) return false;
            int h = hexv(s[i + 1]), l = hexv(s[i + 2]);
            if (h < 0 || l < 0) return false;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return tsg_utf8_valid_prefix(out, o) == o;
}

typedef struct token_form {
    char grant_type[64];
    char scope[AUTH_SCOPE_TEXT_MAX];
    bool has_scope;
    char assertion_type[128];
    char assertion[AUTH_TOKEN_MAX_BYTES + 1];
    char client_id[AUTH_TEXT_MAX];
    bool has_secret;
} token_form;

/* Parses the form body; false with *why on a malformed or repeated field. */
static bool form_parse(const char *body, size_t n, token_form *f, const char **why)
{
    memset(f, 0, sizeof *f);
    if (n > AUTH_FORM_MAX_BYTES) {
        *why = "the form is too large";
        return false;
    }
    unsigned seen = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && body[j] != '&') j++;
        const char *eq = memchr(body + i, '=', j - i);
        if (j > i) {
            if (!eq) {
                *why = "a form field without '='";
                return false;
            }
            size_t kl = (size_t)(eq - body - i);
            const char *v = eq + 1;
            size_t vl = (size_t)(body + j - v);
            char name[64];
            if (!form_decode(body + i, kl, name, sizeof name)) {
                *why = "a form field name is malformed";
                return false;
            }
            struct {
                const char *name;
                char *dst;
                size_t cap;
                unsigned bit;
            } fields[] = {
                {"grant_type", f->grant_type, sizeof f->grant_type, 1},
                {"scope", f->scope, sizeof f->scope, 2},
                {"client_assertion_type", f->assertion_type, sizeof f->assertion_type, 4},
                {"client_assertion", f->assertion, sizeof f->assertion, 8},
                {"client_id", f->client_id, sizeof f->client_id, 16},
            };
            bool known = false;
            for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
                if (strcmp(name, fields[k].name)) continue;
                known = true;
                if (seen & fields[k].bit) {
                    *why = "a form field is repeated";
                    return false;
                }
                seen |= fields[k].bit;
                if (!form_decode(v, vl, fields[k].dst, fields[k].cap)) {
                    *why = "a form field value is malformed or too long";
                    return false;
                }
                if (fields[k].bit == 2) f->has_scope = true;
            }
            if (!known && !strcmp(name, "client_secret")) f->has_secret = true;
        }
        i = j + 1;
    }
    return true;
}

/* Decodes standard base64 (with padding) for HTTP Basic. */
static bool b64std_decode(const char *s, size_t n, char *out, size_t cap)
{
    char tmp[1024];
    if (n % 4 || n >= sizeof tmp) return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+')
            c = '-';
        else if (c == '/')
            c = '_';
        else if (c == '=') {
            if (i + 2 < n || (i + 1 < n && s[i + 1] != '=')) return false;
            continue;
        }
        tmp[k++] = c;
    }
    size_t len;
    if (auth_b64url_decode(tmp, k, (unsigned char *)out, cap - 1, &len)) return false;
    out[len] = '\0';
    return strlen(out) == len;
}

/* Finds the client's JWKS key for assertion j; NULL when none verifies. */
static tsg_rc verify_with_jwks(const auth_jwt *j, const char *jwks, tsg_error *err)
{
    json_t *doc = json_loads(jwks, 0, NULL);
    json_t *keys = json_object_get(doc, "keys");
    tsg_rc rc = tsg_error_set(err, TSG_EINVAL, "security",
                              "no key of the client's JWKS fits the assertion (kid '%s')", j->kid);
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *kid = json_string_value(json_object_get(k, "kid"));
        if (j->kid[0] && (!kid || strcmp(kid, j->kid))) continue;
        EVP_PKEY *pk = NULL;
        if (auth_jwk_to_pkey(k, false, &pk, NULL)) continue;
        rc = auth_jwt_verify(j, pk, err);
        EVP_PKEY_free(pk);
        if (!rc) break;
    }
    json_decref(doc);
    return rc;
}

/* The client id of an HTTP Basic header, checking its secret: TSG_OK with
 * *rec loaded, else ans is filled. */
/* Failed client authentications (tsg:auth:fail:<who>, counted for
 * AUTH_TOKEN_FAILURE_WINDOW_S): 1 when who has failed AUTH_TOKEN_FAILURES_MAX
 * times in the window, with *retry_s the rest of it; 0 otherwise (also when
 * Redis does not answer: the request then fails on its own calls). */
static int failures_exceeded(auth_service *svc, const char *who, long long *retry_s)
{
    char key[AUTH_TEXT_MAX + 32];
    snprintf(key, sizeof key, "tsg:auth:fail:%s", who);
    const char *get[] = {"GET", key}, *ttl[] = {"TTL", key};
    redis_cmd cmds[2] = {{2, get, NULL}, {2, ttl, NULL}};
    redisReply *r[2] = {NULL, NULL};
    tsg_error err;
    int over = 0;
    if (!redis_pipeline(svc->rc, 2, cmds, r, &err) && r[0]->type == REDIS_REPLY_STRING &&
        strtoll(r[0]->str, NULL, 10) >= AUTH_TOKEN_FAILURES_MAX) {
        over = 1;
        *retry_s = r[1]->type == REDIS_REPLY_INTEGER && r[1]->integer > 0 ? r[1]->integer : 1;
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return over;
}

/* Counts a failed client authentication of who. */
static void failure_count(auth_service *svc, const char *who)
{
    char key[AUTH_TEXT_MAX + 32], win[16];
    snprintf(key, sizeof key, "tsg:auth:fail:%s", who);
    snprintf(win, sizeof win, "%d", AUTH_TOKEN_FAILURE_WINDOW_S);
    const char *incr[] = {"INCR", key}, *exp[] = {"EXPIRE", key, win, "NX"};
    redis_cmd cmds[2] = {{2, incr, NULL}, {4, exp, NULL}};
    redisReply *r[2] = {NULL, NULL};
    tsg_error err;
    if (redis_pipeline(svc->rc, 2, cmds, r, &err))
        fprintf(stderr, "tsunagu auth: counting a failed login: %s\n", err.message);
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
}

static void too_many_failures(auth_answer *ans, long long retry_s)
{
    oauth_error(ans, 429, "invalid_request",
                "too many failed client authentications; try again later");
    snprintf(ans->retry_after, sizeof ans->retry_after, "%lld", retry_s);
}

static bool auth_basic(auth_service *svc, const char *authz, char *id, client_rec *rec,
                       auth_answer *ans)
{
    const char *p = authz + 6;
    while (*p == ' ') p++;
    char raw[800];
    if (!b64std_decode(p, strlen(p), raw, sizeof raw)) {
        oauth_error(ans, 401, "invalid_client", "the Basic credentials are not base64");
        return false;
    }
    char *colon = strchr(raw, ':');
    char secret[512];
    if (!colon || !form_decode(raw, (size_t)(colon - raw), id, AUTH_ID_MAX) ||
        !form_decode(colon + 1, strlen(colon + 1), secret, sizeof secret)) {
        id[0] = '\0'; /* form_decode may have stopped half way */
        oauth_error(ans, 401, "invalid_client", "the Basic credentials are malformed");
        return false;
    }
    char ck[AUTH_ID_MAX + 4];
    snprintf(ck, sizeof ck, "c:%s", id);
    long long retry_s;
    if (failures_exceeded(svc, ck, &retry_s)) {
        OPENSSL_cleanse(secret, sizeof secret);
        too_many_failures(ans, retry_s);
        return false;
    }
    tsg_error err;
    tsg_error_clear(&err);
    if (client_load(svc->rc, id, rec, &err)) {
        oauth_error(ans, 503, "temporarily_unavailable", err.message);
        return false;
    }
    /* an unknown client costs the same PBKDF2 as a known one: the time of the
     * answer must not tell which client ids exist */
    static const char dummy[] = "pbkdf2-sha256$120000$AAAAAAAAAAAAAAAAAAAAAA$"
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    bool known = rec->r && rec->f[F_SECRET];
    bool ok = auth_secret_verify(secret, strlen(secret), known ? rec->f[F_SECRET] : dummy) && known;
    OPENSSL_cleanse(secret, sizeof secret);
    if (!ok) {
        client_rec_free(rec);
        oauth_error(ans, 401, "invalid_client", "unknown client or wrong secret");
        return false;
    }
    return true;
}

static bool auth_assertion(auth_service *svc, const token_form *f, const char *token_url, char *id,
                           client_rec *rec, auth_answer *ans)
{
    if (strcmp(f->assertion_type, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")) {
        oauth_error(ans, 400, "invalid_request",
                    "client_assertion_type must be "
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        return false;
    }
    tsg_error err;
    tsg_error_clear(&err);
    auth_jwt j;
    char desc[TSG_ERR_MESSAGE_MAX + 64];
    if (auth_jwt_parse(f->assertion, strlen(f->assertion), AUTH_ALG_ES384 | AUTH_ALG_RS384, &j,
                       &err)) {
        snprintf(desc, sizeof desc, "client_assertion: %s", err.message);
        oauth_error(ans, 401, "invalid_client", desc);
        return false;
    }
    bool ok = false;
    const char *iss = json_string_value(json_object_get(j.payload, "iss"));
    const char *sub = json_string_value(json_object_get(j.payload, "sub"));
    json_t *jti = json_object_get(j.payload, "jti");
    long long exp = 0, now = now_ms() / 1000;
    if (!iss || !sub || strcmp(iss, sub) || strlen(sub) >= AUTH_ID_MAX) {
        oauth_error(ans, 401, "invalid_client",
                    "client_assertion: iss and sub must be the client id");
        goto done;
    }
    if (f->client_id[0] && strcmp(f->client_id, sub)) {
        oauth_error(ans, 401, "invalid_client", "client_assertion: sub is not client_id");
        goto done;
    }
    snprintf(id, AUTH_ID_MAX, "%s", sub);
    if (client_load(svc->rc, id, rec, &err)) {
        oauth_error(ans, 503, "temporarily_unavailable", err.message);
        goto done;
    }
    if (!rec->r || !rec->f[F_JWKS] || !rec->f[F_JWKS][0]) {
        oauth_error(ans, 401, "invalid_client", "unknown client, or it has no registered JWKS");
        goto done;
    }
    if (verify_with_jwks(&j, rec->f[F_JWKS], &err) ||
        auth_jwt_check_times(j.payload, now, AUTH_CLOCK_SKEW_S, AUTH_ASSERTION_MAX_LIFETIME_S, &exp,
                             &err)) {
        snprintf(desc, sizeof desc, "client_assertion: %s", err.message);
        oauth_error(ans, 401, "invalid_client", desc);
        goto done;
    }
    if (!auth_jwt_aud_ok(j.payload, token_url)) {
        snprintf(desc, sizeof desc, "client_assertion: aud must be %.400s", token_url);
        oauth_error(ans, 401, "invalid_client", desc);
        goto done;
    }
    if (!json_is_string(jti) || !json_string_length(jti) ||
        json_string_length(jti) >= AUTH_TEXT_MAX) {
        oauth_error(ans, 401, "invalid_client", "client_assertion: jti is required");
        goto done;
    }
    /* replay protection: the jti is remembered until the assertion expired */
    char key[AUTH_ID_MAX + AUTH_TEXT_MAX + 32], ttl[32];
    snprintf(key, sizeof key, "tsg:auth:jti:%s:%s", id, json_string_value(jti));
    long long keep = exp - now + AUTH_CLOCK_SKEW_S;
    snprintf(ttl, sizeof ttl, "%lld", keep > 1 ? keep : 1);
    redisReply *r = NULL;
    if (cmd(svc->rc, &r, &err, "SET", key, "1", "NX", "EX", ttl, NULL)) {
        freeReplyObject(r);
        oauth_error(ans, 503, "temporarily_unavailable", err.message);
        goto done;
    }
    bool fresh = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!fresh) {
        oauth_error(ans, 401, "invalid_client", "client_assertion: this jti was used already");
        goto done;
    }
    ok = true;
done:
    if (!ok) client_rec_free(rec);
    auth_jwt_clear(&j);
    return ok;
}

void auth_token_request(auth_service *svc, const char *form, size_t n, const char *authorization,
                        const char *token_url, const char *issuer, const char *addr,
                        auth_answer *ans)
{
    memset(ans, 0, sizeof *ans);
    char addr_key[AUTH_TEXT_MAX + 8] = "";
    if (addr && *addr) snprintf(addr_key, sizeof addr_key, "a:%s", addr);
    long long retry_s = 0;
    if (addr_key[0] && failures_exceeded(svc, addr_key, &retry_s)) {
        too_many_failures(ans, retry_s);
        return;
    }
    token_form *f = calloc(1, sizeof *f);
    if (!f) {
        oauth_error(ans, 500, "server_error", "out of memory");
        return;
    }
    const char *why = NULL;
    client_rec rec = {0};
    char id[AUTH_ID_MAX] = "";
    if (!form_parse(form ? form : "", form ? n : 0, f, &why)) {
        oauth_error(ans, 400, "invalid_request", why);
        goto done;
    }
    if (!f->grant_type[0]) {
        oauth_error(ans, 400, "invalid_request", "grant_type is required");
        goto done;
    }
    if (strcmp(f->grant_type, "client_credentials")) {
        oauth_error(ans, 400, "unsupported_grant_type", "only client_credentials is supported");
        goto done;
    }
    if (f->has_secret) {
        oauth_error(ans, 400, "invalid_request",
                    "send the client secret by HTTP Basic, not in the form");
        goto done;
    }
    bool basic = authorization && !strncasecmp(authorization, "Basic ", 6);
    bool assertion = f->assertion[0] || f->assertion_type[0];
    if (basic && assertion) {
        oauth_error(ans, 400, "invalid_request", "use one client authentication method, not two");
        goto done;
    }
    if (!basic && !assertion) {
        oauth_error(ans, 401, "invalid_client",
                    "client authentication is required (HTTP Basic or client_assertion)");
        goto done;
    }
    bool authenticated = basic ? auth_basic(svc, authorization, id, &rec, ans)
                               : auth_assertion(svc, f, token_url, id, &rec, ans);
    /* the client id as claimed, for the audit record of a failed login too */
    snprintf(ans->client_id, sizeof ans->client_id, "%s", id);
    if (!authenticated) {
        if (ans->status == 401) { /* each failure costs a PBKDF2 or a signature check */
            if (addr_key[0]) failure_count(svc, addr_key);
            if (id[0]) {
                char ck[AUTH_ID_MAX + 4];
                snprintf(ck, sizeof ck, "c:%s", id);
                failure_count(svc, ck);
            }
        }
        goto done;
    }
    if (rec.f[F_REVOKED] && !strcmp(rec.f[F_REVOKED], "1")) {
        oauth_error(ans, 401, "invalid_client", "the client is revoked");
        goto done;
    }
    auth_scopes have, want;
    tsg_error err;
    tsg_error_clear(&err);
    if (auth_scopes_parse(rec.f[F_SCOPE] ? rec.f[F_SCOPE] : "", &have, &err)) {
        oauth_error(ans, 500, "server_error", "the client's registered scopes do not parse");
        goto done;
    }
    if (f->has_scope) {
        if (auth_scopes_parse(f->scope, &want, &err)) {
            oauth_error(ans, 400, "invalid_scope", err.message);
            goto done;
        }
        if (!want.n) {
            oauth_error(ans, 400, "invalid_scope", "scope is empty");
            goto done;
        }
        if (!auth_scopes_subset(&want, &have)) {
            oauth_error(ans, 400, "invalid_scope", "the requested scope exceeds what was granted");
            goto done;
        }
    } else {
        want = have;
    }
    char scope[AUTH_SCOPE_TEXT_MAX * 2];
    if (auth_scopes_format(&want, scope, sizeof scope)) {
        oauth_error(ans, 400, "invalid_scope", "the scope is too long");
        goto done;
    }
    /* sign with the current key (a rotation by the admin command is seen here;
     * the first key is made here when Redis was down at start) */
    redisReply *cur = NULL;
    if (!cmd(svc->rc, &cur, &err, "GET", CURRENT_KEY, NULL)) {
        pthread_rwlock_rdlock(&svc->lock);
        bool same = cur->type == REDIS_REPLY_STRING && !strcmp(cur->str, svc->current);
        pthread_rwlock_unlock(&svc->lock);
        if (!same) keys_load(svc, true, &err);
    }
    freeReplyObject(cur);
    long long now = now_ms() / 1000;
    char jti[AUTH_ID_MAX];
    random_id(jti, 12); /* 96 bits: unique among every token ever issued */
    json_t *claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:s}", "iss", issuer, "sub", id, "aud",
                               issuer, "exp", (json_int_t)(now + svc->cfg.token_lifetime_s), "iat",
                               (json_int_t)now, "jti", jti, "scope", scope, "org", rec.f[F_ORG]);
    /* (every request carries the token: an empty area is left out, and so is
     * role "member", which a token without role means) */
    if (claims && rec.f[F_ROLE] && !strcmp(rec.f[F_ROLE], "admin"))
        json_object_set_new(claims, "role", json_string("admin"));
    if (claims && rec.f[F_AREA] && *rec.f[F_AREA])
        json_object_set_new(claims, "area", json_string(rec.f[F_AREA]));
    char *tok = NULL;
    pthread_rwlock_rdlock(&svc->lock);
    EVP_PKEY *pk = NULL;
    for (size_t i = 0; i < svc->n_keys; i++)
        if (!strcmp(svc->keys[i].kid, svc->current)) pk = svc->keys[i].pk;
    tsg_rc rc =
        claims && pk ? auth_jwt_sign_es256(pk, svc->current, claims, &tok, &err) : TSG_EINTERNAL;
    pthread_rwlock_unlock(&svc->lock);
    json_decref(claims);
    if (rc) {
        oauth_error(ans, 500, "server_error", "cannot sign the token");
        goto done;
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "access_token", tok, "token_type", "Bearer",
                          "expires_in", (json_int_t)svc->cfg.token_lifetime_s, "scope", scope);
    free(tok);
    ans->status = 200;
    ans->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!ans->body) oauth_error(ans, 500, "server_error", "out of memory");
done:
    client_rec_free(&rec);
    OPENSSL_cleanse(f, sizeof *f);
    free(f);
}

/* ------------------------------------------------------------------------
 * Bearer tokens
 * ------------------------------------------------------------------------ */

/*
 * The client's state and rate bucket in one step. KEYS[1] the client hash,
 * KEYS[2] its bucket; ARGV rate (per s), burst, want (a lease: how many
 * requests this gateway may admit before it asks again). Returns {0, n}
 * allowed n requests (1 ≤ n ≤ want), {1, 0} revoked or unknown, {2, ms}
 * limited (retry after ms). The bucket lives in tokens × 1000 and is not
 * written to the AOF or replicas (REPL_NONE): it is ephemeral, and a write per
 * request would make every read wait for an fsync.
 */
static redis_script rate_script = REDIS_SCRIPT(
    "auth_rate", "local r = redis.call('HGET', KEYS[1], 'revoked')\n"
                 "if r ~= '0' then return {1, 0} end\n"
                 "local rate = tonumber(ARGV[1])\n"
                 "local burst = tonumber(ARGV[2]) * 1000\n"
                 "local want = tonumber(ARGV[3])\n"
                 "local t = redis.call('TIME')\n"
                 "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                 "redis.set_repl(redis.REPL_NONE)\n"
                 "local b = redis.call('HMGET', KEYS[2], 't', 'ts')\n"
                 "local tokens = tonumber(b[1]) or burst\n"
                 "local ts = tonumber(b[2]) or now\n"
                 "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end\n"
                 "local keep = math.ceil(burst / rate) + 1000\n"
                 "local n = math.min(want, math.floor(tokens / 1000))\n"
                 "if n < 1 then\n"
                 "  redis.call('HSET', KEYS[2], 't', tokens, 'ts', now)\n"
                 "  redis.call('PEXPIRE', KEYS[2], keep)\n"
                 "  return {2, math.ceil((1000 - tokens) / rate)}\n"
                 "end\n"
                 "redis.call('HSET', KEYS[2], 't', tokens - n * 1000, 'ts', now)\n"
                 "redis.call('PEXPIRE', KEYS[2], keep)\n"
                 "return {0, n}\n");

/*
 * Admits one request of client id: not revoked, within its rate. What Redis
 * said last is trusted for AUTH_REVOCATION_CACHE_MS: the revoked flag, and a
 * lease of requests taken from the client's bucket at once (up to a tenth of
 * the burst, at most AUTH_RATE_LEASE_MAX) so that a busy client costs one
 * script call per lease, not one per request; a refusal is remembered until
 * its retry time. So revocation takes effect within that time, and a gateway
 * admits at most one lease more than the bucket held.
 */
/* Requests taken from a client's bucket at once: a tenth of the burst, 1..AUTH_RATE_LEASE_MAX. */
static unsigned lease_size(unsigned burst)
{
    unsigned lease = burst / 10;
    return lease < 1 ? 1 : lease > AUTH_RATE_LEASE_MAX ? AUTH_RATE_LEASE_MAX : lease;
}

static auth_verdict client_admit(auth_service *svc, const char *id, unsigned *retry_after_s,
                                 tsg_error *err)
{
    uint32_t hash = 2166136261u; /* FNV-1a: ids are random, no need for more */
    for (const char *p = id; *p; p++) hash = (hash ^ (unsigned char)*p) * 16777619u;
    unsigned idx = hash % STATE_SLOTS;
    client_state *s = &svc->states[idx];
    pthread_mutex_t *lk = &svc->state_locks[idx % CACHE_LOCKS];
    long long now = now_ms();
    unsigned rate = svc->cfg.rate_per_s;
    unsigned burst = svc->cfg.rate_burst ? svc->cfg.rate_burst : 2 * rate;
    if (memo.lease_svc == svc->serial && memo.lease_left > 0 &&
        now - memo.lease_checked_ms < AUTH_REVOCATION_CACHE_MS && !strcmp(memo.lease_id, id)) {
        memo.lease_left--;
        return AUTH_OK;
    }
    pthread_mutex_lock(lk);
    if (!strcmp(s->id, id) && now - s->checked_ms < AUTH_REVOCATION_CACHE_MS) {
        if (s->revoked) {
            pthread_mutex_unlock(lk);
            tsg_error_set(err, TSG_EINVAL, "security", "the client of this token is revoked");
            return AUTH_BAD_TOKEN;
        }
        if (!rate) { /* no limit: only the revocation, trusted as long */
            memo.lease_svc = svc->serial;
            snprintf(memo.lease_id, sizeof memo.lease_id, "%s", id);
            memo.lease_checked_ms = s->checked_ms;
            memo.lease_left = UINT_MAX;
            pthread_mutex_unlock(lk);
            return AUTH_OK;
        }
        if (s->limited_until_ms > now) {
            long long wait = s->limited_until_ms - now;
            pthread_mutex_unlock(lk);
            *retry_after_s = (unsigned)((wait + 999) / 1000);
            tsg_error_set(err, TSG_ELIMIT, "throttled",
                          "the client's rate limit (%u requests/s) is exhausted", rate);
            return AUTH_RATE_LIMITED;
        }
        if (s->lease > 0) {
            /* this one, and a few more for this thread's next requests */
            unsigned take = lease_size(burst) / LEASE_CHUNK_DIV;
            take = take < 1 ? 1 : take > s->lease ? s->lease : take;
            s->lease -= take;
            memo.lease_svc = svc->serial;
            snprintf(memo.lease_id, sizeof memo.lease_id, "%s", id);
            memo.lease_checked_ms = s->checked_ms;
            memo.lease_left = take - 1;
            pthread_mutex_unlock(lk);
            return AUTH_OK;
        }
        /* One thread asks Redis for the next lease; the others admit on it in
         * the meantime (at most a lease, settled when it comes) instead of all
         * running the script at once, which cost busy clients a fifth of
         * their reads. */
        if (rate && s->refreshing && s->borrowed < lease_size(burst)) {
            s->borrowed++;
            pthread_mutex_unlock(lk);
            return AUTH_OK;
        }
        if (rate) s->refreshing = true;
    }
    pthread_mutex_unlock(lk);

    char k1[AUTH_ID_MAX + 32];
    snprintf(k1, sizeof k1, "tsg:auth:client:%s", id);
    long long state = -1, val = 0;
    redisReply *r = NULL;
    if (rate) {
        char k2[AUTH_ID_MAX + 32], a1[16], a2[16], a3[16];
        unsigned lease = lease_size(burst);
        snprintf(k2, sizeof k2, "tsg:auth:rl:%s", id);
        snprintf(a1, sizeof a1, "%u", rate);
        snprintf(a2, sizeof a2, "%u", burst);
        snprintf(a3, sizeof a3, "%u", lease);
        const char *keys[] = {k1, k2}, *args[] = {a1, a2, a3};
        if (redis_eval_script(svc->rc, &rate_script, 2, keys, NULL, 3, args, NULL, &r, err)) {
            freeReplyObject(r);
            pthread_mutex_lock(lk);
            if (!strcmp(s->id, id)) s->refreshing = false;
            pthread_mutex_unlock(lk);
            return AUTH_UNAVAILABLE;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[1]->type == REDIS_REPLY_INTEGER) {
            state = r->element[0]->integer;
            val = r->element[1]->integer;
        }
    } else {
        if (cmd(svc->rc, &r, err, "HGET", k1, "revoked", NULL)) {
            freeReplyObject(r);
            return AUTH_UNAVAILABLE;
        }
        state = r->type == REDIS_REPLY_STRING && !strcmp(r->str, "0") ? 0 : 1;
        val = 1;
    }
    freeReplyObject(r);
    pthread_mutex_lock(lk);
    unsigned borrowed = !strcmp(s->id, id) ? s->borrowed : 0;
    s->refreshing = false;
    s->borrowed = 0;
    if (state < 0 || state > 2 || (state == 0 && val < 1)) {
        pthread_mutex_unlock(lk);
        tsg_error_set(err, TSG_EIO, "exception", "the rate limit script answered oddly");
        return AUTH_UNAVAILABLE;
    }
    snprintf(s->id, sizeof s->id, "%s", id);
    s->checked_ms = now;
    s->revoked = state == 1;
    /* what was admitted on credit while Redis was asked comes off the new lease */
    s->lease = state == 0 && (unsigned)(val - 1) > borrowed ? (unsigned)(val - 1) - borrowed : 0;
    s->limited_until_ms = state == 2 ? now + val : 0;
    pthread_mutex_unlock(lk);
    if (state == 1) {
        tsg_error_set(err, TSG_EINVAL, "security", "the client of this token is revoked");
        return AUTH_BAD_TOKEN;
    }
    if (state == 2) {
        *retry_after_s = (unsigned)((val + 999) / 1000);
        if (!*retry_after_s) *retry_after_s = 1;
        tsg_error_set(err, TSG_ELIMIT, "throttled",
                      "the client's rate limit (%u requests/s) is exhausted", rate);
        return AUTH_RATE_LIMITED;
    }
    return AUTH_OK;
}

/* Verifies a token not in the cache and fills *who. */
static auth_verdict verify_token(auth_service *svc, const char *tok, size_t n, const char *audience,
                                 auth_principal *who, tsg_error *err)
{
    auth_jwt j;
    if (auth_jwt_parse(tok, n, AUTH_ALG_ES256, &j, err)) return AUTH_BAD_TOKEN;
    auth_verdict v = AUTH_BAD_TOKEN;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_rwlock_rdlock(&svc->lock);
        EVP_PKEY *pk = NULL;
        for (size_t i = 0; i < svc->n_keys; i++)
            if (!strcmp(svc->keys[i].kid, j.kid)) pk = svc->keys[i].pk;
        if (pk) {
            EVP_PKEY_up_ref(pk);
        }
        pthread_rwlock_unlock(&svc->lock);
        if (!pk) {
            if (attempt == 0 && j.kid[0]) {
                keys_maybe_reload(svc); /* a key made by another gateway? */
                continue;
            }
            tsg_error_set(err, TSG_EINVAL, "security",
                          "the token's kid is not a key of this server");
            goto done;
        }
        tsg_rc rc = auth_jwt_verify(&j, pk, err);
        EVP_PKEY_free(pk);
        if (rc) goto done;
        break;
    }
    long long exp;
    if (auth_jwt_check_times(j.payload, now_ms() / 1000, AUTH_CLOCK_SKEW_S,
                             AUTH_TOKEN_LIFETIME_MAX_S, &exp, err))
        goto done;
    if (!auth_jwt_aud_ok(j.payload, audience)) {
        tsg_error_set(err, TSG_EINVAL, "security", "the token is for another audience");
        goto done;
    }
    const char *sub = json_string_value(json_object_get(j.payload, "sub"));
    const char *scope = json_string_value(json_object_get(j.payload, "scope"));
    const char *org = json_string_value(json_object_get(j.payload, "org"));
    const json_t *role_j = json_object_get(j.payload, "role"); /* absent: "member" */
    const char *role = json_string_value(role_j);
    const char *area = json_string_value(json_object_get(j.payload, "area"));
    if (!sub || !id_ok(sub) || !scope || !org || (role_j && !role) ||
        strlen(org) >= AUTH_TEXT_MAX || (area && strlen(area) >= AUTH_TEXT_MAX)) {
        tsg_error_set(err, TSG_EINVAL, "security",
                      "the token lacks sub, scope or org, or its role is not text");
        goto done;
    }
    memset(who, 0, sizeof *who);
    if (auth_scopes_parse(scope, &who->scopes, err)) goto done;
    snprintf(who->client_id, sizeof who->client_id, "%s", sub);
    snprintf(who->org, sizeof who->org, "%s", org);
    snprintf(who->area, sizeof who->area, "%s", area ? area : "");
    who->admin = role && !strcmp(role, "admin");
    who->exp = exp;
    v = AUTH_OK;
done:
    auth_jwt_clear(&j);
    return v;
}

auth_verdict auth_check_bearer(auth_service *svc, const char *authorization, const char *audience,
                               auth_principal *who, unsigned *retry_after_s, tsg_error *err)
{
    if (!authorization || !*authorization) {
        tsg_error_set(err, TSG_EINVAL, "login", "this request needs Authorization: Bearer <token>");
        return AUTH_NO_TOKEN;
    }
    if (strncasecmp(authorization, "Bearer ", 7)) {
        tsg_error_set(err, TSG_EINVAL, "login", "the Authorization header is not a Bearer token");
        return AUTH_NO_TOKEN;
    }
    const char *tok = authorization + 7;
    while (*tok == ' ') tok++;
    size_t n = strlen(tok);
    while (n && tok[n - 1] == ' ') n--;
    if (n > AUTH_TOKEN_MAX_BYTES) {
        tsg_error_set(err, TSG_ELIMIT, "security", "oversized token: more than %u bytes",
                      AUTH_TOKEN_MAX_BYTES);
        return AUTH_BAD_TOKEN;
    }
    /* The cache holds the token and the audience themselves (a fast hash picks
     * the slot, the bytes decide), so a hit needs no cryptography. Tokens or
     * audiences too long for a slot are verified every time. */
    size_t al = strlen(audience);
    bool cacheable = n <= AUTH_CACHE_TOKEN_MAX && al < AUTH_CACHE_AUD_MAX;
    long long now = now_ms() / 1000;
    if (cacheable && memo.svc == svc->serial && memo.token_len == n &&
        now < memo.p.exp + AUTH_CLOCK_SKEW_S && !memcmp(memo.token, tok, n) &&
        !strcmp(memo.aud, audience)) {
        principal_copy(who, &memo.p);
        return client_admit(svc, who->client_id, retry_after_s, err);
    }
    /* FNV-1a over the token's last 64 bytes (its signature: random), its length
     * and the audience's length; the comparison below decides */
    uint64_t hash = 1469598103934665603ull ^ (uint64_t)n ^ ((uint64_t)al << 32);
    for (size_t i = n > 64 ? n - 64 : 0; i < n; i++)
        hash = (hash ^ (unsigned char)tok[i]) * 1099511628211ull;
    unsigned slot = (unsigned)(hash % AUTH_CACHE_SLOTS);
    pthread_mutex_t *lk = &svc->cache_lock[slot % CACHE_LOCKS];
    bool hit = false;
    cache_slot *cs = &svc->cache[slot];
    if (cacheable) {
        pthread_mutex_lock(lk);
        if (cs->used && cs->token_len == n && !memcmp(cs->token, tok, n) &&
            !strcmp(cs->aud, audience) && now < cs->p.exp + AUTH_CLOCK_SKEW_S) {
            principal_copy(who, &cs->p);
            hit = true;
        }
        pthread_mutex_unlock(lk);
    }
    if (!hit) {
        auth_verdict v = verify_token(svc, tok, n, audience, who, err);
        if (v != AUTH_OK) return v;
        if (cacheable) {
            pthread_mutex_lock(lk);
            memcpy(cs->token, tok, n);
            cs->token_len = n;
            memcpy(cs->aud, audience, al + 1);
            principal_copy(&cs->p, who);
            cs->used = true;
            pthread_mutex_unlock(lk);
        }
    }
    if (cacheable) { /* this thread's next request with it takes no lock */
        memo.svc = svc->serial;
        memo.token_len = n;
        memcpy(memo.token, tok, n);
        memcpy(memo.aud, audience, al + 1);
        principal_copy(&memo.p, who);
    }
    /* the client: not revoked, within its rate */
    return client_admit(svc, who->client_id, retry_after_s, err);
}
