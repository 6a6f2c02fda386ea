/*
 * store.c — resources in Redis: writes (MULTI … EXEC), reads and history (the
 * key layout is in store.h).
 */
#include "store.h"

#include "redis.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
    redis_client *client;
};

/* ------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------ */

tsg_rc store_new(redis_client *client, store **out, tsg_error *err)
{
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    s->client = client;
    *out = s;
    return TSG_OK;
}

void store_free(store *s)
{
    free(s);
}

redis_client *store_client(store *s)
{
    return s->client;
}

void store_resource_clear(store_resource *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

/* Parses a decimal reply string into *v; 0 when absent or malformed. */
static long long reply_ll(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING || !r->len || r->len > 20) return 0;
    char buf[24];
    memcpy(buf, r->str, r->len);
    buf[r->len] = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return *end ? 0 : v;
}

/* Copies n bytes into a fresh NUL-terminated malloc'd string (NULL: ENOMEM). */
static char *dup_bytes(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* Fills r from the reply of HMGET tsg:r:<ref> v lu del body c. */
static tsg_rc current_from_reply(const redisReply *rep, store_resource *r, tsg_error *err)
{
    memset(r, 0, sizeof *r);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 5)
        return tsg_error_set(err, TSG_EINTERNAL, "exception", "store: unexpected reply to HMGET");
    long long v = reply_ll(rep->element[0]);
    if (v <= 0) return TSG_OK;
    r->found = 1;
    r->version = (long)v;
    r->lu_ms = reply_ll(rep->element[1]);
    const redisReply *del = rep->element[2];
    r->deleted = del->type == REDIS_REPLY_STRING && del->len == 1 && del->str[0] == '1';
    const redisReply *body = rep->element[3];
    if (!r->deleted && body->type == REDIS_REPLY_STRING) {
        if (!(r->body = dup_bytes(body->str, body->len)))
            return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        r->body_len = body->len;
    }
    const redisReply *c = rep->element[4];
    if (c->type == REDIS_REPLY_STRING && c->len <= STORE_LIMIT_ID) {
        memcpy(r->compartment, c->str, c->len);
        r->compartment[c->len] = 0;
    }
    return TSG_OK;
}

/* Fills r from a history value "<lu>\n<body>" of version v. */
static tsg_rc version_from_value(const char *p, size_t n, long v, store_resource *r, tsg_error *err)
{
    memset(r, 0, sizeof *r);
    const char *nl = memchr(p, '\n', n);
    if (!nl) return tsg_error_set(err, TSG_EINTERNAL, "exception", "store: malformed history");
    char buf[24];
    size_t k = (size_t)(nl - p) < sizeof buf - 1 ? (size_t)(nl - p) : sizeof buf - 1;
    memcpy(buf, p, k);
    buf[k] = 0;
    r->found = 1;
    r->version = v;
    r->lu_ms = strtoll(buf, NULL, 10);
    size_t blen = n - (size_t)(nl + 1 - p);
    if (!blen) {
        r->deleted = 1;
        return TSG_OK;
    }
    if (!(r->body = dup_bytes(nl + 1, blen)))
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    r->body_len = blen;
    return TSG_OK;
}

/*
 * Version v of a resource from the replies of HGET tsg:h:<ref> v and HMGET
 * tsg:r:<ref> v lu del body c: the history hash holds every version except a
 * live current one, whose body is only in tsg:r (written once). r->found 0
 * when neither has it.
 */
static tsg_rc version_from_replies(const redisReply *h, const redisReply *cur, long v,
                                   store_resource *r, tsg_error *err)
{
    if (h && h->type == REDIS_REPLY_STRING) return version_from_value(h->str, h->len, v, r, err);
    tsg_rc rc = current_from_reply(cur, r, err);
    if (rc) return rc;
    if (r->found && r->version == v && !r->deleted) return TSG_OK;
    store_resource_clear(r);
    return TSG_OK;
}

tsg_rc store_read(store *s, const char *type, const char *id, long version, store_resource *r,
                  tsg_error *err)
{
    memset(r, 0, sizeof *r);
    char key[160], field[24];
    redisReply *rep = NULL;
    tsg_rc rc;
    if (version <= 0) {
        snprintf(key, sizeof key, "tsg:r:%s/%s", type, id);
        const char *argv[] = {"HMGET", key, "v", "lu", "del", "body", "c"};
        rc = redis_command_argv(s->client, 7, argv, NULL, &rep, err);
        if (!rc) rc = current_from_reply(rep, r, err);
    } else {
        char rkey[160];
        snprintf(key, sizeof key, "tsg:h:%s/%s", type, id);
        snprintf(rkey, sizeof rkey, "tsg:r:%s/%s", type, id);
        snprintf(field, sizeof field, "%ld", version);
        const char *hget[] = {"HGET", key, field};
        const char *cur[] = {"HMGET", rkey, "v", "lu", "del", "body", "c"};
        redis_cmd cmds[2] = {{3, hget, NULL}, {7, cur, NULL}};
        redisReply *reps[2] = {NULL, NULL};
        rc = redis_pipeline(s->client, 2, cmds, reps, err);
        if (!rc) rc = version_from_replies(reps[0], reps[1], version, r, err);
        freeReplyObject(reps[0]);
        freeReplyObject(reps[1]);
    }
    freeReplyObject(rep);
    if (rc) store_resource_clear(r);
    return rc;
}

tsg_rc store_read_many(store *s, size_t n, const char *const *refs, store_resource *r,
                       tsg_error *err)
{
    if (!n) return TSG_OK;
    memset(r, 0, n * sizeof *r);
    tsg_rc rc = TSG_ENOMEM;
    char **keys = calloc(n, sizeof *keys);
    const char **argvs = calloc(n * 7, sizeof *argvs);
    redis_cmd *cmds = calloc(n, sizeof *cmds);
    redisReply **reps = calloc(n, sizeof *reps);
    if (!keys || !argvs || !cmds || !reps) goto done;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(refs[i]) + 7;
        if (!(keys[i] = malloc(len))) goto done;
        snprintf(keys[i], len, "tsg:r:%s", refs[i]);
        const char **a = argvs + i * 7;
        a[0] = "HMGET", a[1] = keys[i], a[2] = "v", a[3] = "lu", a[4] = "del", a[5] = "body",
        a[6] = "c";
        cmds[i] = (redis_cmd){7, a, NULL};
    }
    rc = redis_pipeline(s->client, n, cmds, reps, err);
    for (size_t i = 0; i < n && !rc; i++) rc = current_from_reply(reps[i], &r[i], err);
done:
    if (rc == TSG_ENOMEM && !keys) tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (reps) freeReplyObject(reps[i]);
        if (keys) free(keys[i]);
        if (rc) store_resource_clear(&r[i]);
    }
    free(keys);
    free(argvs);
    free(cmds);
    free(reps);
    return rc;
}

/* ------------------------------------------------------------------------
 * Writing
 *
 * One write set is one MULTI … EXEC sent in one pipeline. Writes that must
 * check the current state (updates, deletes, creates with a client id,
 * conditional creates' claims) first WATCH their keys and read them (one
 * round trip); the transaction is then built from what was read (old index
 * entries to remove, the old body to move to history) and EXEC fails as a
 * whole if any watched key changed meanwhile, in which case the reads are
 * repeated. A create with an id the gateway just drew (store_write.fresh)
 * needs no check: the write set of a Bundle of such creates is one round
 * trip. Measured on the Synthea ingest: Redis spends about 50 µs per resource
 * on this against 80–90 µs for the same writes through a Lua script, whose
 * argument copies into Lua and back and per-call overhead cost more than the
 * writes themselves.
 * ------------------------------------------------------------------------ */

/* Attempts of a checked write set whose watched keys keep changing. */
#define STORE_WATCH_ATTEMPTS 8

/* Commands of one pipeline, their arguments in an arena. */
typedef struct cmdbuf {
    tsg_arena *a;
    redis_cmd *c;
    size_t n, cap;
    const char **argv; /* the command being built */
    size_t *lens;
    int argc, argcap;
    int oom;
} cmdbuf;

/* Starts a command of at most cap arguments. */
static void cb_begin(cmdbuf *b, int cap)
{
    b->argc = 0;
    b->argcap = cap;
    b->argv = tsg_arena_alloc(b->a, (size_t)cap * sizeof *b->argv);
    b->lens = tsg_arena_alloc(b->a, (size_t)cap * sizeof *b->lens);
    if (!b->argv || !b->lens) b->oom = 1;
}

static void cb_arg(cmdbuf *b, const char *p, size_t n)
{
    if (b->oom) return;
    if (b->argc == b->argcap) { /* a caller's cap is exact; this is a bug guard */
        b->oom = 1;
        return;
    }
    b->argv[b->argc] = p;
    b->lens[b->argc++] = n;
}

static void cb_str(cmdbuf *b, const char *p)
{
    cb_arg(b, p, strlen(p));
}

/* An argument formatted into the arena. */
static void cb_fmt(cmdbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cb_fmt(cmdbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    char *p = n >= 0 && (size_t)n < sizeof tmp ? tsg_arena_strndup(b->a, tmp, (size_t)n) : NULL;
    if (!p) {
        b->oom = 1;
        return;
    }
    cb_arg(b, p, (size_t)n);
}

/* A score as Redis reads it back exactly: integers (dates in ms, most
 * values) as digits, others as %.17g. */
static void cb_score(cmdbuf *b, double v)
{
    if (b->oom) return;
    char tmp[40];
    int n;
    if (v == v && v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(long long)v)
        n = (int)tsg_fmt_ll(tmp, (long long)v);
    else
        n = snprintf(tmp, sizeof tmp, "%.17g", v);
    char *p = tsg_arena_strndup(b->a, tmp, (size_t)n);
    if (!p) {
        b->oom = 1;
        return;
    }
    cb_arg(b, p, (size_t)n);
}

static void cb_end(cmdbuf *b)
{
    if (b->oom) return;
    if (b->n == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 64;
        redis_cmd *c = tsg_arena_alloc(b->a, nc * sizeof *c);
        if (!c) {
            b->oom = 1;
            return;
        }
        if (b->n) memcpy(c, b->c, b->n * sizeof *c);
        b->c = c;
        b->cap = nc;
    }
    b->c[b->n++] = (redis_cmd){b->argc, b->argv, b->lens};
}

/* A key "<prefix><x>[/<y>]" in the arena. */
static char *akey(tsg_arena *a, const char *prefix, const char *x, const char *y)
{
    size_t pl = strlen(prefix), xl = strlen(x), yl = y ? strlen(y) : 0;
    char *k = tsg_arena_alloc(a, pl + xl + (y ? yl + 1 : 0) + 1);
    if (!k) return NULL;
    memcpy(k, prefix, pl);
    memcpy(k + pl, x, xl);
    size_t n = pl + xl;
    if (y) {
        k[n++] = '/';
        memcpy(k + n, y, yl);
        n += yl;
    }
    k[n] = 0;
    return k;
}

/* What a checked write read of its resource's current state. */
typedef struct cur_state {
    long v;
    int del;
    const redisReply *c, *lu, *x, *body; /* strings or nil, owned by the read replies */
} cur_state;

static int str_reply(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING;
}

/* How a member is packed: against the resource id (see store.h). */
static char member_how(const store_index_entry *e, const char *id, size_t il, size_t *skip)
{
    *skip = 0;
    if (e->member_len == il && !memcmp(e->member, id, il)) {
        *skip = il;
        return '=';
    }
    if (e->member_len > il && !memcmp(e->member, id, il) && e->member[il] == 0) {
        *skip = il;
        return '<';
    }
    if (e->member_len > il && !memcmp(e->member + e->member_len - il, id, il) &&
        e->member[e->member_len - il - 1] == 0) {
        *skip = il;
        return '>';
    }
    return '.';
}

/* Packs w's index entries into the arena (store.h, "Packed entries"). */
static tsg_rc pack_entries(tsg_arena *a, const store_write *w, const char **out, size_t *out_len,
                           tsg_error *err)
{
    size_t tl = strlen(w->type), il = strlen(w->id), pl = 7 + tl + 1;
    size_t n = 1;
    for (size_t j = 0; j < w->nindex; j++)
        if (w->index[j].kind != STORE_IX_DIR) n += w->index[j].key_len + w->index[j].member_len + 4;
    char *p = tsg_arena_alloc(a, n);
    if (!p) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    size_t k = 0;
    p[k++] = STORE_X_SEP;
    for (size_t j = 0; j < w->nindex; j++) {
        const store_index_entry *e = &w->index[j];
        if (e->kind == STORE_IX_DIR) continue; /* never removed: not listed */
        if (memchr(e->key, STORE_X_SEP, e->key_len) ||
            memchr(e->member, STORE_X_SEP, e->member_len) || e->key_len <= pl ||
            memcmp(e->key, "tsg:ix:", 7) || memcmp(e->key + 7, w->type, tl) ||
            e->key[7 + tl] != ':')
            return tsg_error_set(err, TSG_EINTERNAL, "exception",
                                 "store: index entry %zu of %s/%s cannot be packed", j, w->type,
                                 w->id);
        memcpy(p + k, e->key + pl, e->key_len - pl);
        k += e->key_len - pl;
        p[k++] = STORE_X_SEP;
        p[k++] = (char)e->kind;
        size_t skip;
        char how = member_how(e, w->id, il, &skip);
        p[k++] = how;
        const char *rest = how == '<' ? e->member + il : e->member;
        size_t rl = e->member_len - skip;
        memcpy(p + k, rest, rl);
        k += rl;
        p[k++] = STORE_X_SEP;
    }
    *out = p;
    *out_len = k;
    return TSG_OK;
}

/* Whether w must read and watch the current state before writing. */
static int is_checked(const store_write *w)
{
    return !(w->op == STORE_PUT && w->fresh && !w->claim);
}

/*
 * Adds grouped by key: every index entry of a write set (and its tsg:t,
 * tsg:hist, compartment members) goes into one SADD/ZADD/GEOADD per key, in
 * the order the keys were first seen; repeated members of a SET key are sent
 * once. A hash table over (kind, key), not a sort: sorting the entries of a
 * Bundle was 7 % of the gateway's ingest work.
 */
typedef struct grouper {
    tsg_arena *a;
    const store_index_entry **e; /* entries as added */
    size_t *next;                /* next entry of the same group, or SIZE_MAX */
    size_t n, cap;
    size_t *slot_group; /* hash slot → group + 1 (0 empty) */
    size_t mask;
    size_t *head, *tail, ng; /* per group: first and last entry */
    int oom;
} grouper;

static int grouper_init(grouper *g, tsg_arena *a, size_t cap)
{
    memset(g, 0, sizeof *g);
    g->a = a;
    g->cap = cap ? cap : 1;
    size_t slots = 16;
    while (slots < 2 * g->cap) slots *= 2;
    g->mask = slots - 1;
    g->e = tsg_arena_alloc(a, g->cap * sizeof *g->e);
    g->next = tsg_arena_alloc(a, g->cap * sizeof *g->next);
    g->slot_group = tsg_arena_zalloc(a, slots * sizeof *g->slot_group);
    g->head = tsg_arena_alloc(a, g->cap * sizeof *g->head);
    g->tail = tsg_arena_alloc(a, g->cap * sizeof *g->tail);
    return g->e && g->next && g->slot_group && g->head && g->tail ? 0 : -1;
}

static void grouper_add(grouper *g, const store_index_entry *e)
{
    if (g->oom || g->n == g->cap) {
        g->oom = 1;
        return;
    }
    uint64_t h = 1469598103934665603ull ^ (unsigned char)e->kind;
    for (size_t i = 0; i < e->key_len; i++) h = (h ^ (unsigned char)e->key[i]) * 1099511628211ull;
    size_t i = (size_t)h & g->mask;
    size_t k = g->n++;
    g->e[k] = e;
    g->next[k] = SIZE_MAX;
    for (;; i = (i + 1) & g->mask) {
        size_t gi = g->slot_group[i];
        if (!gi) {
            g->slot_group[i] = g->ng + 1;
            g->head[g->ng] = g->tail[g->ng] = k;
            g->ng++;
            return;
        }
        const store_index_entry *f = g->e[g->head[gi - 1]];
        if (f->kind == e->kind && f->key_len == e->key_len && !memcmp(f->key, e->key, e->key_len)) {
            g->next[g->tail[gi - 1]] = k;
            g->tail[gi - 1] = k;
            return;
        }
    }
}

/* An entry made here (tsg:t, history, compartment members). */
static void grouper_add_new(grouper *g, store_index_kind kind, const char *key, const char *member,
                            double score)
{
    store_index_entry *e = tsg_arena_alloc(g->a, sizeof *e);
    if (!e) {
        g->oom = 1;
        return;
    }
    *e = (store_index_entry){kind, key, strlen(key), member, strlen(member), score, 0};
    grouper_add(g, e);
}

/* One command per group. */
static void grouper_emit(const grouper *g, cmdbuf *b)
{
    for (size_t gi = 0; gi < g->ng && !b->oom; gi++) {
        size_t head = g->head[gi], cnt = 0;
        for (size_t q = head; q != SIZE_MAX; q = g->next[q]) cnt++;
        const store_index_entry *e = g->e[head];
        int set = e->kind == STORE_IX_SET || e->kind == STORE_IX_DIR;
        int per = set ? 1 : e->kind == STORE_IX_GEO ? 3 : 2;
        /* a directory's members repeat on every resource: each is sent once (its
         * distinct members are few); an id repeats only when one resource has a
         * value twice, which SADD takes as it is */
        const store_index_entry **dist = NULL;
        size_t nd = 0;
        if (e->kind == STORE_IX_DIR && !(dist = tsg_arena_alloc(g->a, cnt * sizeof *dist))) {
            b->oom = 1;
            return;
        }
        cb_begin(b, 2 + per * (int)cnt);
        cb_str(b, set ? "SADD" : e->kind == STORE_IX_GEO ? "GEOADD" : "ZADD");
        cb_arg(b, e->key, e->key_len);
        for (size_t q = head; q != SIZE_MAX; q = g->next[q]) {
            const store_index_entry *y = g->e[q];
            if (dist) {
                size_t d = 0;
                while (d < nd && !(dist[d]->member_len == y->member_len &&
                                   !memcmp(dist[d]->member, y->member, y->member_len)))
                    d++;
                if (d < nd) continue;
                dist[nd++] = y;
            }
            if (y->kind == STORE_IX_SCORE) {
                cb_score(b, y->score);
            } else if (y->kind == STORE_IX_GEO) {
                cb_score(b, y->score);
                cb_score(b, y->score2);
            } else if (y->kind == STORE_IX_LEX)
                cb_str(b, "0");
            cb_arg(b, y->member, y->member_len);
        }
        cb_end(b);
    }
}

/* The old index entries of Type/id (its packed field x) removed. */
static void remove_entries(cmdbuf *b, const char *type, const char *id, const redisReply *x)
{
    if (!str_reply(x)) return;
    size_t tl = strlen(type), il = strlen(id), pos = 0;
    store_x_entry e;
    while (store_entries_next(x->str, x->len, &pos, &e)) {
        if (e.kind == STORE_IX_LIST) continue;
        size_t kl = 7 + tl + 1 + e.suffix_len;
        size_t ml = e.rest_len + (e.how == '.' ? 0 : il);
        char *key = tsg_arena_alloc(b->a, kl + 1), *mem = tsg_arena_alloc(b->a, ml + 1);
        if (!key || !mem) {
            b->oom = 1;
            return;
        }
        memcpy(key, "tsg:ix:", 7);
        memcpy(key + 7, type, tl);
        key[7 + tl] = ':';
        memcpy(key + 8 + tl, e.suffix, e.suffix_len);
        if (e.how == '=' || e.how == '<') {
            memcpy(mem, id, il);
            memcpy(mem + il, e.rest, e.rest_len);
        } else if (e.how == '>') {
            memcpy(mem, e.rest, e.rest_len);
            memcpy(mem + e.rest_len, id, il);
        } else {
            memcpy(mem, e.rest, e.rest_len);
        }
        cb_begin(b, 3);
        cb_str(b, e.kind == STORE_IX_SET ? "SREM" : "ZREM");
        cb_arg(b, key, kl);
        cb_arg(b, mem, ml);
        cb_end(b);
    }
}

/* Starts "HSET <rk> v <nv> lu <now> del <del>" of argc arguments in all. */
static void hset_head(cmdbuf *b, int argc, const char *rk, const char *nv, const char *now,
                      const char *del)
{
    cb_begin(b, argc);
    cb_str(b, "HSET");
    cb_str(b, rk);
    cb_str(b, "v");
    cb_str(b, nv);
    cb_str(b, "lu");
    cb_str(b, now);
    cb_str(b, "del");
    cb_str(b, del);
}

/*
 * Builds MULTI … EXEC for w[0..n) given the current states cur (checked
 * writes; others are new). Returns the index of the EXEC command, or -1.
 */
static long build_tx(cmdbuf *b, const store_write *w, size_t n, const cur_state *cur,
                     long long now_ms, const store_append *rec, tsg_error *err)
{
    tsg_arena *a = b->a;
    char now[24];
    tsg_fmt_ll(now, now_ms);
    const char *nows = tsg_arena_strndup(a, now, strlen(now));
    size_t nix = 0;
    for (size_t i = 0; i < n; i++)
        if (w[i].op == STORE_PUT) nix += w[i].nindex;
    grouper g; /* the index entries, then tsg:t, hist:<T>, hist and compartment members */
    if (!nows || grouper_init(&g, a, nix + 4 * n)) {
        tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        return -1;
    }
    cb_begin(b, 1);
    cb_str(b, "MULTI");
    cb_end(b);
    for (size_t i = 0; i < n; i++) {
        const store_write *x = &w[i];
        const cur_state *c = &cur[i];
        if (x->op == STORE_DELETE && (c->v == 0 || c->del)) continue; /* idempotent delete */
        const char *ref = akey(a, "", x->type, x->id);
        const char *rk = akey(a, "tsg:r:", x->type, x->id);
        const char *hk = akey(a, "tsg:h:", x->type, x->id);
        const char *tk = akey(a, "tsg:t:", x->type, NULL);
        const char *htk = akey(a, "tsg:hist:", x->type, NULL);
        char nv[24];
        tsg_fmt_ll(nv, c->v + 1);
        const char *nvs = tsg_arena_strndup(a, nv, strlen(nv));
        const char *idv = ref ? akey(a, "", x->id, nv) : NULL;
        const char *refv = ref ? akey(a, "", ref, nv) : NULL;
        if (!ref || !rk || !hk || !tk || !htk || !nvs || !idv || !refv) b->oom = 1;
        if (b->oom) break;
        if (c->v > 0) {
            if (!c->del && str_reply(c->body)) { /* the old body goes to history */
                size_t lul = str_reply(c->lu) ? c->lu->len : 0;
                char *hv = tsg_arena_alloc(a, lul + 1 + c->body->len);
                if (!hv) {
                    b->oom = 1;
                    break;
                }
                if (lul) memcpy(hv, c->lu->str, lul);
                hv[lul] = '\n';
                memcpy(hv + lul + 1, c->body->str, c->body->len);
                cb_begin(b, 4);
                cb_str(b, "HSET");
                cb_str(b, hk);
                cb_fmt(b, "%ld", c->v);
                cb_arg(b, hv, lul + 1 + c->body->len);
                cb_end(b);
            }
            remove_entries(b, x->type, x->id, c->x);
            if (str_reply(c->c) && c->c->len) {
                cb_begin(b, 3);
                cb_str(b, "SREM");
                cb_fmt(b, "tsg:{%.*s}:comp", (int)c->c->len, c->c->str);
                cb_str(b, ref);
                cb_end(b);
            }
        }
        const char *comp_id = x->op == STORE_PUT && x->compartment ? x->compartment : "";
        if (x->op == STORE_PUT) {
            const char *packed = NULL;
            size_t packed_len = 0;
            if (pack_entries(a, x, &packed, &packed_len, err)) return -1;
            hset_head(b, 14, rk, nvs, nows, "0");
            cb_str(b, "body");
            cb_arg(b, x->body, x->body_len);
            cb_str(b, "c");
            cb_str(b, comp_id);
            cb_str(b, "x");
            cb_arg(b, packed, packed_len);
            cb_end(b);
            grouper_add_new(&g, STORE_IX_SCORE, tk, x->id, (double)now_ms);
            if (*comp_id) {
                size_t cl = strlen(comp_id);
                char *ck = tsg_arena_alloc(a, cl + 12);
                if (!ck) {
                    b->oom = 1;
                    break;
                }
                memcpy(ck, "tsg:{", 5);
                memcpy(ck + 5, comp_id, cl);
                memcpy(ck + 5 + cl, "}:comp", 7);
                grouper_add_new(&g, STORE_IX_SET, ck, ref, 0);
            }
            for (size_t j = 0; j < x->nindex; j++)
                if (x->index[j].kind != STORE_IX_LIST) grouper_add(&g, &x->index[j]);
        } else {
            /* the compartment c stays: who may see the deletion (and the history) */
            hset_head(b, 8, rk, nvs, nows, "1");
            cb_end(b);
            cb_begin(b, 4);
            cb_str(b, "HDEL");
            cb_str(b, rk);
            cb_str(b, "body");
            cb_str(b, "x");
            cb_end(b);
            cb_begin(b, 3);
            cb_str(b, "ZREM");
            cb_str(b, tk);
            cb_str(b, x->id);
            cb_end(b);
            cb_begin(b, 4);
            cb_str(b, "HSET");
            cb_str(b, hk);
            cb_str(b, nvs);
            cb_fmt(b, "%s\n", now);
            cb_end(b);
        }
        grouper_add_new(&g, STORE_IX_SCORE, htk, idv, (double)now_ms);
        grouper_add_new(&g, STORE_IX_SCORE, "tsg:hist", refv, (double)now_ms);
        cb_begin(b, 15);
        cb_str(b, "XADD");
        cb_str(b, "tsg:outbox");
        cb_str(b, "*");
        cb_str(b, "i");
        cb_str(b, x->interaction);
        cb_str(b, "t");
        cb_str(b, x->type);
        cb_str(b, "id");
        cb_str(b, x->id);
        cb_str(b, "v");
        cb_str(b, nvs);
        cb_str(b, "p");
        cb_str(b, comp_id);
        cb_str(b, "ts");
        cb_str(b, nows);
        cb_end(b);
        if (x->bump) {
            cb_begin(b, 2);
            cb_str(b, "INCR");
            cb_str(b, x->bump);
            cb_end(b);
        }
        if (x->claim) {
            cb_begin(b, 5);
            cb_str(b, "SET");
            cb_str(b, x->claim);
            cb_str(b, ref);
            cb_str(b, "PX");
            cb_str(b, STORE_CLAIM_MS);
            cb_end(b);
        }
    }
    if (g.oom) b->oom = 1;
    grouper_emit(&g, b);
    if (rec) { /* the request's record, with the writes (store_commit_with) */
        cb_begin(b, 3 + (int)rec->nargs);
        cb_str(b, "XADD");
        cb_str(b, rec->stream);
        cb_str(b, "*");
        for (size_t i = 0; i < rec->nargs; i++) cb_arg(b, rec->args[i], rec->lens[i]);
        cb_end(b);
    }
    cb_begin(b, 1);
    cb_str(b, "EXEC");
    cb_end(b);
    if (b->oom) {
        tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        return -1;
    }
    return (long)b->n - 1;
}

static void free_replies(redisReply **r, size_t n)
{
    if (!r) return;
    for (size_t i = 0; i < n; i++) freeReplyObject(r[i]);
}

/*
 * WATCHes the keys of the checked writes and reads their state into cur
 * (replies kept in *reads, n_reads of them). *conflict = i when w[i] is not at
 * its expected version or its claim is taken (then nothing is watched any more).
 */
static tsg_rc read_checked(store *s, tsg_arena *a, const store_write *w, size_t n, cur_state *cur,
                           redisReply ***reads, size_t *n_reads, int *conflict, tsg_error *err)
{
    cmdbuf b = {.a = a};
    size_t nkeys = 0;
    for (size_t i = 0; i < n; i++)
        if (is_checked(&w[i])) nkeys += 1 + (w[i].claim != NULL);
    cb_begin(&b, 1 + (int)nkeys);
    cb_str(&b, "WATCH");
    for (size_t i = 0; i < n; i++) {
        if (!is_checked(&w[i])) continue;
        const char *rk = akey(a, "tsg:r:", w[i].type, w[i].id);
        if (!rk)
            b.oom = 1;
        else
            cb_str(&b, rk);
        if (w[i].claim) cb_str(&b, w[i].claim);
    }
    cb_end(&b);
    for (size_t i = 0; i < n; i++) {
        if (!is_checked(&w[i])) continue;
        const char *rk = akey(a, "tsg:r:", w[i].type, w[i].id);
        if (!rk) {
            b.oom = 1;
            break;
        }
        cb_begin(&b, 8);
        cb_str(&b, "HMGET");
        cb_str(&b, rk);
        cb_str(&b, "v");
        cb_str(&b, "del");
        cb_str(&b, "c");
        cb_str(&b, "lu");
        cb_str(&b, "x");
        cb_str(&b, "body");
        cb_end(&b);
        if (w[i].claim) {
            cb_begin(&b, 2);
            cb_str(&b, "EXISTS");
            cb_str(&b, w[i].claim);
            cb_end(&b);
        }
    }
    if (b.oom) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    redisReply **reps = calloc(b.n, sizeof *reps);
    if (!reps) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    *reads = reps;
    *n_reads = b.n;
    tsg_rc rc = redis_pipeline(s->client, b.n, b.c, reps, err);
    if (rc) return rc;
    size_t k = 1;
    for (size_t i = 0; i < n; i++) {
        cur[i] = (cur_state){0};
        if (!is_checked(&w[i])) continue;
        const redisReply *h = reps[k++];
        if (h->type != REDIS_REPLY_ARRAY || h->elements != 6)
            return tsg_error_set(err, TSG_EINTERNAL, "exception", "store: unexpected HMGET reply");
        cur[i].v = str_reply(h->element[0]) ? strtol(h->element[0]->str, NULL, 10) : 0;
        cur[i].del =
            str_reply(h->element[1]) && h->element[1]->len == 1 && h->element[1]->str[0] == '1';
        cur[i].c = h->element[2];
        cur[i].lu = h->element[3];
        cur[i].x = h->element[4];
        cur[i].body = h->element[5];
        int taken = 0;
        if (w[i].claim) {
            const redisReply *e = reps[k++];
            taken = e->type == REDIS_REPLY_INTEGER && e->integer > 0;
        }
        if (*conflict < 0 && (cur[i].v != w[i].expect_version || taken)) *conflict = (int)i;
    }
    if (*conflict >= 0) {
        const char *unwatch[] = {"UNWATCH"};
        redisReply *u = NULL;
        rc = redis_command_argv(s->client, 1, unwatch, NULL, &u, err);
        freeReplyObject(u);
    }
    return rc;
}

tsg_rc store_commit(store *s, const store_write *w, size_t n, long long now_ms, int *conflict,
                    tsg_error *err)
{
    return store_commit_with(s, w, n, now_ms, NULL, conflict, err);
}

tsg_rc store_commit_with(store *s, const store_write *w, size_t n, long long now_ms,
                         const store_append *rec, int *conflict, tsg_error *err)
{
    *conflict = -1;
    if (rec && (rec->nargs % 2 || rec->nargs > 64 || !rec->stream))
        return tsg_error_set(err, TSG_EINVAL, "exception",
                             "store: a stream entry needs field/value pairs (at most 32)");
    if (n > STORE_LIMIT_WRITES)
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "a write set of %zu resources exceeds STORE_LIMIT_WRITES (%u)", n,
                             STORE_LIMIT_WRITES);
    if (!n) return TSG_OK;
    size_t nchecked = 0;
    for (size_t i = 0; i < n; i++) nchecked += is_checked(&w[i]);
    tsg_rc rc = TSG_OK;
    for (int attempt = 0; attempt < STORE_WATCH_ATTEMPTS; attempt++) {
        tsg_arena *a = tsg_arena_new(0);
        cur_state *cur = a ? tsg_arena_zalloc(a, n * sizeof *cur) : NULL;
        if (!cur) {
            tsg_arena_free(a);
            return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        }
        redisReply **reads = NULL, **reps = NULL;
        size_t n_reads = 0, n_reps = 0;
        int retry = 0;
        if (nchecked) rc = read_checked(s, a, w, n, cur, &reads, &n_reads, conflict, err);
        if (!rc && *conflict < 0) {
            cmdbuf b = {.a = a};
            long exec = build_tx(&b, w, n, cur, now_ms, rec, err);
            if (exec < 0) {
                rc = err->rc ? err->rc : TSG_ENOMEM;
                if (nchecked) { /* release the watches */
                    const char *unwatch[] = {"UNWATCH"};
                    redisReply *u = NULL;
                    tsg_error e2;
                    redis_command_argv(s->client, 1, unwatch, NULL, &u, &e2);
                    freeReplyObject(u);
                }
            } else if (!(reps = calloc(b.n, sizeof *reps))) {
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
            } else {
                n_reps = b.n;
                rc = redis_pipeline(s->client, b.n, b.c, reps, err);
                const redisReply *ex = reps[exec];
                if (!rc && ex && ex->type == REDIS_REPLY_NIL) {
                    retry = nchecked > 0; /* a watched key changed: read again */
                    if (!retry)
                        rc = tsg_error_set(err, TSG_EIO, "exception",
                                           "redis: EXEC aborted with nothing watched");
                } else if (!rc && (!ex || ex->type != REDIS_REPLY_ARRAY)) {
                    rc = tsg_error_set(err, TSG_EINTERNAL, "exception",
                                       "store: unexpected EXEC reply");
                } else if (!rc) {
                    for (size_t i = 0; i < ex->elements && !rc; i++)
                        if (ex->element[i]->type == REDIS_REPLY_ERROR)
                            rc = tsg_error_set(
                                err, TSG_EIO, "exception", "redis: %s%s%s%s", ex->element[i]->str,
                                rec && i + 1 == ex->elements ? " (appending to " : "",
                                rec && i + 1 == ex->elements ? rec->stream : "",
                                rec && i + 1 == ex->elements ? ")" : "");
                }
            }
        }
        free_replies(reads, n_reads);
        free(reads);
        free_replies(reps, n_reps);
        free(reps);
        tsg_arena_free(a);
        if (!retry) return rc;
    }
    /* The watched keys changed on every attempt: report the first checked write. */
    for (size_t i = 0; i < n; i++)
        if (is_checked(&w[i])) {
            *conflict = (int)i;
            break;
        }
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * History
 * ------------------------------------------------------------------------ */

/* Copies the NUL-terminated src into dst[cap]; 0 when it does not fit. */
static int copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) return 0;
    memcpy(dst, src, n + 1);
    return 1;
}

/* Sorts history entries newest first: by lastUpdated, then version. */
static int hist_cmp(const void *a, const void *b)
{
    const store_history_entry *x = a, *y = b;
    if (x->res.lu_ms != y->res.lu_ms) return x->res.lu_ms < y->res.lu_ms ? 1 : -1;
    return x->res.version < y->res.version ? 1 : x->res.version > y->res.version ? -1 : 0;
}

/* The history of one resource: every version from its history hash. */
static tsg_rc history_instance(store *s, const char *type, const char *id, long long since_ms,
                               size_t offset, size_t max, store_history_entry **out, size_t *n,
                               size_t *total, tsg_error *err)
{
    char key[160], rkey[160];
    snprintf(key, sizeof key, "tsg:h:%s/%s", type, id);
    snprintf(rkey, sizeof rkey, "tsg:r:%s/%s", type, id);
    const char *argv[] = {"HGETALL", key};
    const char *cur[] = {"HMGET", rkey, "v", "lu", "del", "body", "c"};
    redis_cmd cmds[2] = {{2, argv, NULL}, {7, cur, NULL}};
    redisReply *reps[2] = {NULL, NULL};
    tsg_rc rc = redis_pipeline(s->client, 2, cmds, reps, err);
    if (rc) {
        freeReplyObject(reps[0]);
        freeReplyObject(reps[1]);
        return rc;
    }
    redisReply *rep = reps[0];
    size_t nv = rep->type == REDIS_REPLY_ARRAY ? rep->elements / 2 : 0;
    store_history_entry *all = calloc(nv + 1, sizeof *all);
    if (!all) {
        freeReplyObject(rep);
        freeReplyObject(reps[1]);
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    size_t kept = 0;
    /* the current version, when live, is only in tsg:r */
    rc = current_from_reply(reps[1], &all[0].res, err);
    freeReplyObject(reps[1]);
    if (!rc && all[0].res.found && !all[0].res.deleted && all[0].res.lu_ms >= since_ms) {
        snprintf(all[0].type, sizeof all[0].type, "%s", type);
        snprintf(all[0].id, sizeof all[0].id, "%s", id);
        kept = 1;
    } else {
        store_resource_clear(&all[0].res);
    }
    for (size_t i = 0; i < nv && !rc; i++) {
        const redisReply *f = rep->element[2 * i], *v = rep->element[2 * i + 1];
        store_history_entry *h = &all[kept];
        if (kept && all[0].res.version == (long)reply_ll(f)) continue; /* cannot happen */
        rc = version_from_value(v->str, v->len, (long)reply_ll(f), &h->res, err);
        if (rc) break;
        if (h->res.lu_ms < since_ms) {
            store_resource_clear(&h->res);
            continue;
        }
        snprintf(h->type, sizeof h->type, "%s", type);
        snprintf(h->id, sizeof h->id, "%s", id);
        kept++;
    }
    freeReplyObject(rep);
    if (rc) {
        for (size_t i = 0; i <= kept && i < nv + 1; i++) store_resource_clear(&all[i].res);
        free(all);
        return rc;
    }
    qsort(all, kept, sizeof *all, hist_cmp);
    *total = kept;
    size_t from = offset < kept ? offset : kept;
    size_t cnt = kept - from < max ? kept - from : max;
    for (size_t i = 0; i < from; i++) store_resource_clear(&all[i].res);
    for (size_t i = from + cnt; i < kept; i++) store_resource_clear(&all[i].res);
    memmove(all, all + from, cnt * sizeof *all);
    *out = all;
    *n = cnt;
    return TSG_OK;
}

/* Reads the history entries named by members mem[0..k) ("<id>/<v>" of type,
 * or "<Type>/<id>/<v>" when type is NULL) into *out (malloc'd, k entries). */
static tsg_rc history_fetch(store *s, const char *type, const char *const *mem, const size_t *mlen,
                            size_t k, store_history_entry **out, tsg_error *err)
{
    tsg_rc rc = TSG_OK;
    store_history_entry *hs = calloc(k, sizeof *hs);
    char(*hkeys)[160] = calloc(2 * k, sizeof *hkeys);
    char(*fields)[24] = calloc(k, sizeof *fields);
    const char **argvs = calloc(10 * k, sizeof *argvs);
    redis_cmd *gets = calloc(2 * k, sizeof *gets);
    redisReply **vals = calloc(2 * k, sizeof *vals);
    if (!hs || !hkeys || !fields || !argvs || !gets || !vals) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    } else {
        for (size_t i = 0; i < k; i++) {
            char buf[200];
            snprintf(buf, sizeof buf, "%.*s", (int)mlen[i], mem[i]);
            char *vs = strrchr(buf, '/');
            if (!vs) {
                rc = tsg_error_set(err, TSG_EINTERNAL, "exception", "store: malformed history");
                break;
            }
            *vs++ = 0;
            char *idp = buf;
            if (type) {
                snprintf(hs[i].type, sizeof hs[i].type, "%s", type);
            } else {
                char *sl = strchr(buf, '/');
                if (!sl) {
                    rc = tsg_error_set(err, TSG_EINTERNAL, "exception", "store: malformed history");
                    break;
                }
                *sl = 0;
                if (!copy_name(hs[i].type, sizeof hs[i].type, buf)) {
                    rc = tsg_error_set(err, TSG_EINTERNAL, "exception", "store: malformed history");
                    break;
                }
                idp = sl + 1;
            }
            if (!copy_name(hs[i].id, sizeof hs[i].id, idp)) {
                rc = tsg_error_set(err, TSG_EINTERNAL, "exception", "store: malformed history");
                break;
            }
            snprintf(fields[i], sizeof fields[i], "%s", vs);
            snprintf(hkeys[2 * i], sizeof hkeys[2 * i], "tsg:h:%s/%s", hs[i].type, hs[i].id);
            snprintf(hkeys[2 * i + 1], sizeof hkeys[2 * i + 1], "tsg:r:%s/%s", hs[i].type,
                     hs[i].id);
            const char **a = argvs + 10 * i;
            a[0] = "HGET", a[1] = hkeys[2 * i], a[2] = fields[i];
            a[3] = "HMGET", a[4] = hkeys[2 * i + 1], a[5] = "v", a[6] = "lu", a[7] = "del",
            a[8] = "body", a[9] = "c";
            gets[2 * i] = (redis_cmd){3, a, NULL};
            gets[2 * i + 1] = (redis_cmd){7, a + 3, NULL};
        }
        if (!rc) rc = redis_pipeline(s->client, 2 * k, gets, vals, err);
        for (size_t i = 0; i < k && !rc; i++) {
            long v = strtol(fields[i], NULL, 10);
            rc = version_from_replies(vals[2 * i], vals[2 * i + 1], v, &hs[i].res, err);
            if (!rc && !hs[i].res.found)
                rc = tsg_error_set(err, TSG_EINTERNAL, "exception", "store: history entry missing");
        }
        if (!rc) {
            *out = hs;
            hs = NULL;
        }
    }
    if (hs)
        for (size_t i = 0; i < k; i++) store_resource_clear(&hs[i].res);
    for (size_t i = 0; vals && i < 2 * k; i++) freeReplyObject(vals[i]);
    free(hs);
    free(hkeys);
    free(fields);
    free(argvs);
    free(gets);
    free(vals);
    return rc;
}

/* The history of a type or the system, only the entries visible() keeps:
 * every entry since since_ms is looked at (its resource's compartment c). */
static tsg_rc history_visible(store *s, const char *type, const char *key, const char *min,
                              size_t offset, size_t max, const store_history_filter *f,
                              store_history_entry **out, size_t *n, size_t *total, tsg_error *err)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%u", STORE_LIMIT_HISTORY_SCAN + 1);
    const char *range[] = {"ZREVRANGEBYSCORE", key, "+inf", min, "LIMIT", "0", lim};
    redisReply *all = NULL;
    tsg_rc rc = redis_command_argv(s->client, 7, range, NULL, &all, err);
    if (rc) return rc;
    size_t k = all && all->type == REDIS_REPLY_ARRAY ? all->elements : 0;
    if (k > STORE_LIMIT_HISTORY_SCAN) {
        freeReplyObject(all);
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "this history has more than %u entries to look through; narrow it "
                             "with _since",
                             STORE_LIMIT_HISTORY_SCAN);
    }
    char(*rk)[160] = calloc(k ? k : 1, sizeof *rk);
    char(*tp)[64] = calloc(k ? k : 1, sizeof *tp);
    const char **argv = calloc(3 * (k ? k : 1), sizeof *argv);
    redis_cmd *cmds = calloc(k ? k : 1, sizeof *cmds);
    redisReply **cs = calloc(k ? k : 1, sizeof *cs);
    const char **mem = calloc(k ? k : 1, sizeof *mem);
    size_t *mlen = calloc(k ? k : 1, sizeof *mlen);
    if (!rk || !tp || !argv || !cmds || !cs || !mem || !mlen) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < k; i++) {
        const redisReply *m = all->element[i];
        /* "<id>/<v>" or "<Type>/<id>/<v>": the resource is everything before the last '/' */
        const char *slash = m->str ? memrchr(m->str, '/', m->len) : NULL;
        size_t rl = slash ? (size_t)(slash - m->str) : 0;
        if (type)
            snprintf(rk[i], sizeof rk[i], "tsg:r:%s/%.*s", type, (int)rl, m->str);
        else
            snprintf(rk[i], sizeof rk[i], "tsg:r:%.*s", (int)rl, m->str);
        const char *t = type;
        if (!type) {
            const char *s1 = m->str ? memchr(m->str, '/', rl) : NULL;
            snprintf(tp[i], sizeof tp[i], "%.*s", s1 ? (int)(s1 - m->str) : 0, m->str);
        } else {
            snprintf(tp[i], sizeof tp[i], "%s", t);
        }
        argv[3 * i] = "HGET", argv[3 * i + 1] = rk[i], argv[3 * i + 2] = "c";
        cmds[i] = (redis_cmd){3, argv + 3 * i, NULL};
    }
    if (k) rc = redis_pipeline(s->client, k, cmds, cs, err);
    if (rc) goto done;
    size_t kept = 0;
    for (size_t i = 0; i < k; i++) {
        const char *c = cs[i] && cs[i]->type == REDIS_REPLY_STRING ? cs[i]->str : "";
        if (!f->visible(f->user_data, tp[i], c)) continue;
        if (kept >= offset && kept - offset < max) {
            mem[kept - offset] = all->element[i]->str;
            mlen[kept - offset] = all->element[i]->len;
        }
        kept++;
    }
    *total = kept;
    size_t page = kept > offset ? kept - offset : 0;
    if (page > max) page = max;
    if (page) rc = history_fetch(s, type, mem, mlen, page, out, err);
    if (!rc) *n = page;
done:
    for (size_t i = 0; cs && i < k; i++) freeReplyObject(cs[i]);
    freeReplyObject(all);
    free(rk);
    free(tp);
    free(argv);
    free(cmds);
    free(cs);
    free(mem);
    free(mlen);
    return rc;
}

tsg_rc store_history(store *s, const char *type, const char *id, long long since_ms, size_t offset,
                     size_t max, const store_history_filter *f, store_history_entry **out,
                     size_t *n, size_t *total, tsg_error *err)
{
    *out = NULL;
    *n = *total = 0;
    if (max > STORE_LIMIT_HISTORY) max = STORE_LIMIT_HISTORY;
    if (type && id) return history_instance(s, type, id, since_ms, offset, max, out, n, total, err);

    char key[96], min[32], off[24], cnt[24];
    if (type)
        snprintf(key, sizeof key, "tsg:hist:%s", type);
    else
        snprintf(key, sizeof key, "tsg:hist");
    if (since_ms == LLONG_MIN)
        snprintf(min, sizeof min, "-inf");
    else
        snprintf(min, sizeof min, "%lld", since_ms);
    if (f) return history_visible(s, type, key, min, offset, max, f, out, n, total, err);
    snprintf(off, sizeof off, "%zu", offset);
    snprintf(cnt, sizeof cnt, "%zu", max);
    const char *range[] = {"ZREVRANGEBYSCORE", key, "+inf", min, "LIMIT", off, cnt};
    const char *count[] = {"ZCOUNT", key, min, "+inf"};
    redis_cmd cmds[2] = {{7, range, NULL}, {4, count, NULL}};
    redisReply *reps[2] = {NULL, NULL};
    tsg_rc rc = redis_pipeline(s->client, 2, cmds, reps, err);
    if (rc) goto done;
    *total = (size_t)reps[1]->integer;
    size_t k = reps[0]->type == REDIS_REPLY_ARRAY ? reps[0]->elements : 0;
    if (!k) goto done;
    const char **mem = calloc(k, sizeof *mem);
    size_t *mlen = calloc(k, sizeof *mlen);
    if (!mem || !mlen) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    } else {
        for (size_t i = 0; i < k; i++) {
            mem[i] = reps[0]->element[i]->str;
            mlen[i] = reps[0]->element[i]->len;
        }
        rc = history_fetch(s, type, mem, mlen, k, out, err);
        if (!rc) *n = k;
    }
    free(mem);
    free(mlen);
done:
    freeReplyObject(reps[0]);
    freeReplyObject(reps[1]);
    return rc;
}

/* ------------------------------------------------------------------------
 * Format
 * ------------------------------------------------------------------------ */

tsg_rc store_format_check(store *s, tsg_error *err)
{
    /* data of the first format has an outbox but no tsg:format */
    const char *get[] = {"GET", "tsg:format"}, *ex[] = {"EXISTS", "tsg:outbox"};
    redis_cmd cmds[2] = {{2, get, NULL}, {2, ex, NULL}};
    redisReply *r[2] = {NULL, NULL};
    tsg_rc rc = redis_pipeline(s->client, 2, cmds, r, err);
    if (!rc) {
        if (r[0]->type == REDIS_REPLY_STRING) {
            if (strcmp(r[0]->str, STORE_FORMAT))
                rc = tsg_error_set(err, TSG_EINVAL, "exception",
                                   "the Redis data is in format %.20s, this tsunagu reads format "
                                   "%s: load the data into an empty database",
                                   r[0]->str, STORE_FORMAT);
        } else if (r[1]->type == REDIS_REPLY_INTEGER && r[1]->integer > 0) {
            rc = tsg_error_set(err, TSG_EINVAL, "exception",
                               "the Redis data was written by an earlier tsunagu (format 1), this "
                               "one reads format %s: load the data into an empty database",
                               STORE_FORMAT);
        } else {
            const char *set[] = {"SET", "tsg:format", STORE_FORMAT, "NX"};
            redisReply *x = NULL;
            rc = redis_command_argv(s->client, 4, set, NULL, &x, err);
            freeReplyObject(x);
        }
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return rc;
}

/* ------------------------------------------------------------------------
 * Packed entries
 * ------------------------------------------------------------------------ */

int store_entries_next(const char *x, size_t n, size_t *pos, store_x_entry *e)
{
    size_t p = *pos ? *pos : 1;
    if (!x || !n || x[0] != STORE_X_SEP || p >= n) return 0;
    const char *a = memchr(x + p, STORE_X_SEP, n - p);
    if (!a || (size_t)(a - x) + 3 > n) return 0;
    size_t ka = (size_t)(a - x) + 1; /* the kind, then how */
    const char *b = memchr(x + ka, STORE_X_SEP, n - ka);
    if (!b || (size_t)(b - x) < ka + 2) return 0;
    char how = x[ka + 1];
    if (how != '=' && how != '<' && how != '>' && how != '.') return 0;
    *e = (store_x_entry){(store_index_kind)x[ka], x + p, (size_t)(a - x) - p, how, x + ka + 2,
                         (size_t)(b - x) - ka - 2};
    *pos = (size_t)(b - x) + 1;
    return 1;
}
