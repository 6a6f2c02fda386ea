/*
 * store.c — resources in Redis: the write script, reads and history (the key
 * layout is in store.h).
 */
#include "store.h"

#include "redis.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
    redis_client *client;
};

/* ------------------------------------------------------------------------
 * The write script
 *
 * ARGV: now_ms, n (writes), g (index groups); then per write: op (P|D),
 * type, id, expect, body, compartment, interaction, claim ("" none), nx, and nx × (kind, key,
 * member) — the resource's index entries, kept as its tsg:x list; then per
 * group: kind, key, count, and count members (s), count × (score, member)
 * (z, and l with score 0) or count × (longitude, latitude, member) (g) — every entry of the write
 * set, grouped by key so that one SADD/ZADD adds all of a key's members (a Bundle of Observations
 * shares most of its index keys). Members go straight from ARGV to the
 * command with unpack(), in chunks of 3,000 (Lua 5.1 unpack() stops near 8,000).
 * Returns {"ok"} or {"conflict", i (0-based), current version}.
 * ------------------------------------------------------------------------ */

static redis_script commit_script = REDIS_SCRIPT(
    "store_commit",
    "local CLAIM_MS = " STORE_CLAIM_MS "\n"
    "local now = ARGV[1]\n"
    "local n = tonumber(ARGV[2])\n"
    "local ng = tonumber(ARGV[3])\n"
    "local pos = 4\n"
    "local ops = {}\n"
    "for i = 1, n do\n"
    "  local o = {op = ARGV[pos], type = ARGV[pos + 1], id = ARGV[pos + 2],\n"
    "    expect = tonumber(ARGV[pos + 3]), body = ARGV[pos + 4], comp = "
    "ARGV[pos + 5],\n"
    "    inter = ARGV[pos + 6], claim = ARGV[pos + 7], nx = tonumber(ARGV[pos "
    "+ 8]),\n"
    "    xs = pos + 9}\n"
    "  pos = pos + 9 + 3 * o.nx\n"
    "  o.ref = o.type .. '/' .. o.id\n"
    "  local cur = redis.call('HMGET', 'tsg:r:' .. o.ref, 'v', 'del', 'c', "
    "'lu')\n"
    "  o.v = tonumber(cur[1] or '0')\n"
    "  if o.v ~= o.expect then return {'conflict', i - 1, o.v} end\n"
    "  o.del = cur[2] == '1'\n"
    "  o.oldc = cur[3] or ''\n"
    "  o.oldlu = cur[4] or ''\n"
    "  ops[i] = o\n"
    "end\n"
    "local zq, zkeys = {}, {}\n"
    "local function zadd(key, member)\n"
    "  local q = zq[key]\n"
    "  if not q then q = {} zq[key] = q zkeys[#zkeys + 1] = key end\n"
    "  q[#q + 1] = now\n"
    "  q[#q + 1] = member\n"
    "end\n"
    "local claimed = {}\n"
    "for i = 1, n do\n"
    "  local o = ops[i]\n"
    "  if o.claim ~= '' then\n"
    "    if not redis.call('SET', o.claim, o.ref, 'NX', 'PX', CLAIM_MS) then\n"
    "      for _, k in ipairs(claimed) do redis.call('DEL', k) end\n"
    "      return {'conflict', i - 1, o.v}\n"
    "    end\n"
    "    claimed[#claimed + 1] = o.claim\n"
    "  end\n"
    "end\n"
    "for i = 1, n do\n"
    "  local o = ops[i]\n"
    "  if not (o.op == 'D' and (o.v == 0 or o.del)) then\n"
    "    local rk = 'tsg:r:' .. o.ref\n"
    "    local xk = 'tsg:x:' .. o.ref\n"
    "    local nv = o.v + 1\n"
    "    if o.v > 0 then\n"
    "      if not o.del then\n"
    "        local ob = redis.call('HGET', rk, 'body')\n"
    "        if ob then redis.call('HSET', 'tsg:h:' .. o.ref, o.v, o.oldlu .. "
    "'\\n' .. ob) end\n"
    "      end\n"
    "      local old = redis.call('LRANGE', xk, 0, -1)\n"
    "      for j = 1, #old, 3 do\n"
    "        if old[j] == 's' then redis.call('SREM', old[j + 1], old[j + 2])\n"
    "        elseif old[j] ~= 'n' then redis.call('ZREM', old[j + 1], old[j + 2]) end\n"
    "      end\n"
    "      redis.call('DEL', xk)\n"
    "      if o.oldc ~= '' then redis.call('SREM', 'tsg:{' .. o.oldc .. "
    "'}:comp', o.ref) end\n"
    "    end\n"
    "    if o.op == 'P' then\n"
    "      redis.call('HSET', rk, 'v', nv, 'lu', now, 'del', '0', 'body', "
    "o.body, 'c', o.comp)\n"
    "      local last = o.xs + 3 * o.nx - 1\n"
    "      for j = o.xs, last, 3000 do\n"
    "        redis.call('RPUSH', xk, unpack(ARGV, j, math.min(j + 2999, "
    "last)))\n"
    "      end\n"
    "      zadd('tsg:t:' .. o.type, o.id)\n"
    "      if o.comp ~= '' then redis.call('SADD', 'tsg:{' .. o.comp .. "
    "'}:comp', o.ref) end\n"
    "    else\n"
    "      redis.call('HSET', rk, 'v', nv, 'lu', now, 'del', '1', 'c', '')\n"
    "      redis.call('HDEL', rk, 'body')\n"
    "      redis.call('ZREM', 'tsg:t:' .. o.type, o.id)\n"
    "      redis.call('HSET', 'tsg:h:' .. o.ref, nv, now .. '\\n')\n"
    "    end\n"
    "    zadd('tsg:hist:' .. o.type, o.id .. '/' .. nv)\n"
    "    zadd('tsg:hist', o.ref .. '/' .. nv)\n"
    "    redis.call('XADD', 'tsg:outbox', '*', 'i', o.inter, 't', o.type, "
    "'id', o.id,\n"
    "      'v', nv, 'p', o.comp, 'ts', now)\n"
    "  end\n"
    "end\n"
    "for _, key in ipairs(zkeys) do\n"
    "  local q = zq[key]\n"
    "  for j = 1, #q, 3000 do\n"
    "    redis.call('ZADD', key, unpack(q, j, math.min(j + 2999, #q)))\n"
    "  end\n"
    "end\n"
    "for g = 1, ng do\n"
    "  local kind, key, cnt = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + "
    "2])\n"
    "  pos = pos + 3\n"
    "  local w = kind == 's' and 1 or (kind == 'g' and 3 or 2)\n"
    "  local last = pos + w * cnt - 1\n"
    "  for j = pos, last, 3000 do\n"
    "    local e = math.min(j + 2999, last)\n"
    "    if kind == 's' then redis.call('SADD', key, unpack(ARGV, j, e))\n"
    "    elseif kind == 'g' then redis.call('GEOADD', key, unpack(ARGV, j, "
    "e))\n"
    "    else redis.call('ZADD', key, unpack(ARGV, j, e)) end\n"
    "  end\n"
    "  pos = last + 1\n"
    "end\n"
    "return {'ok'}\n");

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
 * ------------------------------------------------------------------------ */

/* An index entry of a write set, for grouping by key. */
typedef struct ix_ref {
    const store_index_entry *e;
} ix_ref;

static int ix_ref_cmp(const void *a, const void *b)
{
    const store_index_entry *x = ((const ix_ref *)a)->e, *y = ((const ix_ref *)b)->e;
    if (x->kind != y->kind) return (int)x->kind - (int)y->kind;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static const char *kind_text(store_index_kind k)
{
    return k == STORE_IX_SET     ? "s"
           : k == STORE_IX_SCORE ? "z"
           : k == STORE_IX_GEO   ? "g"
           : k == STORE_IX_LIST  ? "n"
                                 : "l";
}

tsg_rc store_commit(store *s, const store_write *w, size_t n, long long now_ms, int *conflict,
                    tsg_error *err)
{
    *conflict = -1;
    if (n > STORE_LIMIT_WRITES)
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "a write set of %zu resources exceeds STORE_LIMIT_WRITES (%u)", n,
                             STORE_LIMIT_WRITES);
    if (!n) return TSG_OK;
    size_t nix = 0;
    for (size_t i = 0; i < n; i++)
        if (w[i].op == STORE_PUT) nix += w[i].nindex;
    /* arguments: 3 + per write 9 + 3 per entry; per group at most 3 + 3 per entry */
    size_t nargs = 3 + 9 * n + 3 * nix + 6 * nix;
    const char **args = malloc(nargs * sizeof *args);
    size_t *lens = malloc(nargs * sizeof *lens);
    /* number texts: now, n, g, per write expect + nx, per group a count, per scored entry */
    size_t nnum = 3 + 2 * n + 3 * nix;
    char(*num)[32] = malloc(nnum * sizeof *num);
    ix_ref *refs = malloc((nix ? nix : 1) * sizeof *refs);
    tsg_rc rc = TSG_OK;
    if (!args || !lens || !num || !refs) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        goto done;
    }
    size_t k = 0, m = 0, r = 0;
#define ARG(p, l) (args[k] = (p), lens[k] = (l), k++)
#define NUM(...)  (snprintf(num[m], sizeof num[m], __VA_ARGS__), ARG(num[m], strlen(num[m])), m++)
    NUM("%lld", now_ms);
    NUM("%zu", n);
    size_t g_at = k;
    ARG("0", 1); /* the group count, set below */
    for (size_t i = 0; i < n; i++) {
        const store_write *x = &w[i];
        size_t nx = x->op == STORE_PUT ? x->nindex : 0;
        ARG(x->op == STORE_PUT ? "P" : "D", 1);
        ARG(x->type, strlen(x->type));
        ARG(x->id, strlen(x->id));
        NUM("%ld", x->expect_version);
        ARG(x->op == STORE_PUT ? x->body : "", x->op == STORE_PUT ? x->body_len : 0);
        ARG(x->compartment ? x->compartment : "", x->compartment ? strlen(x->compartment) : 0);
        ARG(x->interaction, strlen(x->interaction));
        ARG(x->claim ? x->claim : "", x->claim ? strlen(x->claim) : 0);
        NUM("%zu", nx);
        for (size_t j = 0; j < nx; j++) {
            const store_index_entry *e = &x->index[j];
            ARG(kind_text(e->kind), 1);
            ARG(e->key, e->key_len);
            ARG(e->member, e->member_len);
            if (e->kind != STORE_IX_LIST) refs[r++].e = e; /* LIST: no index key to add to */
        }
    }
    qsort(refs, r, sizeof *refs, ix_ref_cmp);
    size_t ngroups = 0;
    for (size_t i = 0; i < r;) {
        size_t j = i + 1;
        while (j < r && !ix_ref_cmp(&refs[i], &refs[j])) j++;
        const store_index_entry *e = refs[i].e;
        ARG(kind_text(e->kind), 1);
        ARG(e->key, e->key_len);
        NUM("%zu", j - i);
        for (size_t q = i; q < j; q++) {
            const store_index_entry *x = refs[q].e;
            if (x->kind == STORE_IX_SCORE) {
                NUM("%.17g", x->score);
            } else if (x->kind == STORE_IX_GEO) {
                NUM("%.17g", x->score);
                NUM("%.17g", x->score2);
            } else if (x->kind == STORE_IX_LEX)
                ARG("0", 1);
            ARG(x->member, x->member_len);
        }
        ngroups++;
        i = j;
    }
    snprintf(num[m], sizeof num[m], "%zu", ngroups);
    args[g_at] = num[m];
    lens[g_at] = strlen(num[m]);
    m++;
#undef ARG
#undef NUM
    redisReply *rep = NULL;
    rc = redis_eval_script(s->client, &commit_script, 0, NULL, NULL, (int)k, args, lens, &rep, err);
    if (!rc) {
        if (rep->type != REDIS_REPLY_ARRAY || !rep->elements ||
            rep->element[0]->type != REDIS_REPLY_STRING)
            rc = tsg_error_set(err, TSG_EINTERNAL, "exception", "store: unexpected script reply");
        else if (!strcmp(rep->element[0]->str, "conflict") && rep->elements == 3)
            *conflict = (int)rep->element[1]->integer;
    }
    freeReplyObject(rep);
done:
    free(args);
    free(lens);
    free(num);
    free(refs);
    return rc;
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

tsg_rc store_history(store *s, const char *type, const char *id, long long since_ms, size_t offset,
                     size_t max, store_history_entry **out, size_t *n, size_t *total,
                     tsg_error *err)
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
            /* member: "<id>/<v>" (type history) or "<Type>/<id>/<v>" */
            const redisReply *mem = reps[0]->element[i];
            char buf[200];
            snprintf(buf, sizeof buf, "%.*s", (int)mem->len, mem->str);
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
            *n = k;
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
done:
    freeReplyObject(reps[0]);
    freeReplyObject(reps[1]);
    return rc;
}
