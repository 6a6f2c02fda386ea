/*
 * fhir_search.c — FHIR search on the Redis indexes (issue 4, item 4):
 * GET /fhir/<type>?…, POST /fhir/<type>/_search, paging through snapshots
 * (GET /fhir?_getpages=…), conditional create/update/delete/patch and
 * Patient/<id>/$everything.
 *
 * ## How a search runs
 *
 * search_query_parse() gives the clauses (AND) and their values (OR). Each
 * value becomes one or two Redis reads of the index keys documented at the top
 * of fhir_index.c (SMEMBERS of a SET, ZRANGEBYLEX of a LEX zset, ZRANGEBYSCORE
 * of a SCORE zset); all reads of a query go out in one pipeline. The answers
 * are turned into sorted arrays of ids in C: OR is a union, AND an
 * intersection, `:not` and `:missing=true` the difference with all live ids of
 * the type (tsg:t:<Type>) — each O(n log n). A date `eq`/`ap` needs both
 * range ends of the same value, so its two reads are intersected on the
 * member ("<id>\0<n>") before the ids are taken.
 *
 * Three rare forms have no index of their own, to keep writes cheap, and scan
 * the type's index-entry lists in one script instead: `:missing`, token
 * `:text` and `system|`. `_lastUpdated` reads the type's tsg:t zset. A
 * parameter that is the union of others (search.h: aliases, the Observation
 * combo-* ones) is planned as the union of its parts.
 *
 * Chains (one level, `subject:Patient.name=x`) first search the target type
 * for `name=x`, then read the `r:Patient/<id>` sets. `_has:T:ref:param=x`
 * searches T for `param=x` and reads the reference values of the matches from
 * their index entries (field x of tsg:r:<T>/<id>, packed as store.h says):
 * the `r:<Type>/<id>` keys of `ref` name the resources wanted.
 * Includes read the same lists (_include) or the `r:` sets (_revinclude).
 *
 * Clauses on SET indexes (tokens, references, chains, _has) run first; when
 * they leave at most REST_FILTER_MAX candidates, the range clauses (dates,
 * numbers, quantities, strings) are checked on those candidates only, by one
 * script over their index-entry lists (filter_candidates), instead of reading
 * whole ranges. Quantities in UCUM units are compared in the canonical unit of
 * the qc: index (1 g finds 1000 mg).
 *
 * Then one ZMSCORE on tsg:t:<Type> gives lastUpdated of every id and drops
 * ids that are no longer live — or, when the result fits one page in the
 * default/_lastUpdated/_id order, the resources are read at once and their
 * bodies give liveness and lastUpdated. Sorting (_sort) reads the whole
 * SCORE/LEX index of the sort parameter (date: range low, number/quantity:
 * value, string and uri: the folded text; token and reference: 400); default
 * order is _lastUpdated descending, then id. A search without clauses in that
 * order reads tsg:t:<Type> alone.
 *
 * ## Paging
 *
 * A result longer than one page is kept as a snapshot: tsg:snap:<uuid> (LIST,
 * TTL REST_SNAPSHOT_TTL_S): element 0 is a header "<Type>\x01<total mode>
 * \x01<name>\x02<value>…" (the result parameters: _include, _revinclude,
 * _total, _summary, _elements), then "Type/id" of every match in order (at
 * most REST_SNAPSHOT_MAX_IDS). Links next/previous/first/last are
 * <base>?_getpages=<uuid>&_offset=N&_count=M (with the request's _format and
 * _pretty), answered by rest_search_page() from the snapshot, so paging is
 * stable while data changes. A one-page result writes no snapshot.
 *
 * ## Not supported
 *
 * Composite parameters (501), token :above/:below/
 * :in/:not-in (the parser refuses :in/:not-in; 501 otherwise: no terminology
 * server), reference :above/:below (501), _revinclude=* (501), chains of more
 * than one level and nested _has (the parser refuses them). `:contains`
 * and uri `:above` scan the parameter's whole LEX index (unless candidates
 * from other clauses narrow them). _summary and _elements apply to the
 * matched entries, not to included ones.
 */
#include "rest_internal.h"

#include "../auth/auth.h"
#include "../store/redis.h"
#include "../text/text.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REST_SNAPSHOT_TTL_S   600    /* a paging snapshot lives 10 minutes */
#define REST_INCLUDE_DEPTH    3      /* :iterate rounds */
#define REST_INCLUDE_MAX      10000u /* included resources in one page */
#define REST_CHAIN_TARGETS    10000u /* ids a chain/_has inner search may give */
#define REST_SEARCH_PARAMS    512u   /* parameters of one search request */
#define REST_SNAPSHOT_MAX_IDS 100000u
#define REST_FILTER_MAX       2000u /* candidates checked by script rather than range reads */

/* ------------------------------------------------------------------------
 * Id sets: sorted arrays of unique strings in the arena
 * ------------------------------------------------------------------------ */

typedef struct idset {
    const char **v;
    size_t n;
} idset;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts and removes duplicates in place. */
static void set_normalize(idset *s)
{
    if (s->n < 2) return;
    qsort(s->v, s->n, sizeof *s->v, cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < s->n; i++)
        if (strcmp(s->v[i], s->v[k - 1])) s->v[k++] = s->v[i];
    s->n = k;
}

/* a ∩ b into a (both normalized). */
static void set_and(idset *a, const idset *b)
{
    size_t i = 0, j = 0, k = 0;
    while (i < a->n && j < b->n) {
        int c = strcmp(a->v[i], b->v[j]);
        if (c == 0) {
            a->v[k++] = a->v[i];
            i++, j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    a->n = k;
}

/* a − b into a (both normalized). */
static void set_minus(idset *a, const idset *b)
{
    size_t i = 0, j = 0, k = 0;
    while (i < a->n) {
        int c = j < b->n ? strcmp(a->v[i], b->v[j]) : -1;
        if (c == 0) {
            i++, j++;
        } else if (c < 0) {
            a->v[k++] = a->v[i++];
        } else {
            j++;
        }
    }
    a->n = k;
}

/* A hash set of strings (for includes: what is already in the page). */
typedef struct strset {
    const char **slot;
    size_t cap, n;
} strset;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Adds s; returns 1 when added, 0 when present, -1 out of memory. */
static int strset_add(tsg_arena *a, strset *st, const char *s)
{
    if (2 * (st->n + 1) > st->cap) {
        size_t nc = st->cap ? 2 * st->cap : 64;
        const char **ns = tsg_arena_zalloc(a, nc * sizeof *ns);
        if (!ns) return -1;
        for (size_t i = 0; i < st->cap; i++) {
            if (!st->slot[i]) continue;
            size_t h = (size_t)hash_str(st->slot[i]) & (nc - 1);
            while (ns[h]) h = (h + 1) & (nc - 1);
            ns[h] = st->slot[i];
        }
        st->slot = ns;
        st->cap = nc;
    }
    size_t h = (size_t)hash_str(s) & (st->cap - 1);
    while (st->slot[h]) {
        if (!strcmp(st->slot[h], s)) return 0;
        h = (h + 1) & (st->cap - 1);
    }
    st->slot[h] = s;
    st->n++;
    return 1;
}

/* ------------------------------------------------------------------------
 * The state of one request
 * ------------------------------------------------------------------------ */

typedef struct sx {
    const http_request *req;
    rest_ctx *ctx;
    tsg_arena *a;
    tsg_error err;
    const char *base; /* http://host/fhir */
    rest_view view;   /* what the client may see (loaded by sx_view) */
    int view_loaded;
} sx;

static tsg_rc nomem(sx *s)
{
    return tsg_error_set(&s->err, TSG_ENOMEM, "exception", "out of memory");
}

/* Loads what the client may see (once per request). */
static tsg_rc sx_view(sx *s)
{
    if (s->view_loaded) return TSG_OK;
    tsg_rc rc = rest_view_load(s->ctx, s->req, &s->view, &s->err);
    if (!rc) s->view_loaded = 1;
    return rc;
}

/* Whether resources of type are filtered by compartment for this request
 * (-1: the view could not be loaded, s->err set). */
static int sx_filters(sx *s, const char *type)
{
    if (!s->ctx->access || !s->req->principal || rest_access_class_of(type) == REST_ACCESS_REGISTRY)
        return 0;
    if (sx_view(s)) return -1;
    return rest_view_filters(&s->view, type);
}

/* printf into the arena; NULL when out of memory. */
static char *aprintf(sx *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *aprintf(sx *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = tsg_arena_alloc(s->a, (size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* The snapshot key of uuid: a client's snapshots are its own (another client's
 * _getpages finds nothing). */
static const char *snap_key(sx *s, const char *uuid)
{
    const auth_principal *who = s->ctx->access ? s->req->principal : NULL;
    return who ? aprintf(s, "tsg:snap:%s:%s", who->client_id, uuid)
               : aprintf(s, "tsg:snap:%s", uuid);
}

/* A growing list of pipelined commands. */
typedef struct cmdlist {
    redis_cmd *c;
    size_t n, cap;
} cmdlist;

/* Appends a command of argc arguments (copied pointers; the strings must live
 * in the arena or be literals). Returns its index, or -1 out of memory. */
static long cmd_addv(sx *s, cmdlist *l, int argc, const char **argv)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        redis_cmd *nl = tsg_arena_alloc(s->a, nc * sizeof *nl);
        if (!nl) return -1;
        if (l->n) memcpy(nl, l->c, l->n * sizeof *nl);
        l->c = nl;
        l->cap = nc;
    }
    const char **a = tsg_arena_alloc(s->a, (size_t)argc * sizeof *a);
    if (!a) return -1;
    memcpy(a, argv, (size_t)argc * sizeof *a);
    l->c[l->n] = (redis_cmd){argc, a, NULL};
    return (long)l->n++;
}

static long cmd_add(sx *s, cmdlist *l, const char *a0, const char *a1, const char *a2,
                    const char *a3)
{
    const char *v[4] = {a0, a1, a2, a3};
    int n = a3 ? 4 : a2 ? 3 : a1 ? 2 : 1;
    return cmd_addv(s, l, n, v);
}

/* Runs the commands in one round trip; *reps (malloc'd, free with
 * free_replies) holds one reply each. */
static tsg_rc run_cmds(sx *s, const cmdlist *l, redisReply ***reps)
{
    *reps = NULL;
    if (!l->n) return TSG_OK;
    redisReply **r = calloc(l->n, sizeof *r);
    if (!r) return nomem(s);
    tsg_rc rc = redis_pipeline(s->ctx->redis, l->n, l->c, r, &s->err);
    if (rc) {
        for (size_t i = 0; i < l->n; i++) freeReplyObject(r[i]);
        free(r);
        return rc;
    }
    *reps = r;
    return TSG_OK;
}

static void free_replies(redisReply **r, size_t n)
{
    if (!r) return;
    for (size_t i = 0; i < n; i++) freeReplyObject(r[i]);
    free(r);
}

/* ------------------------------------------------------------------------
 * Plans: what to read for one clause
 * ------------------------------------------------------------------------ */

typedef enum member_kind {
    MEM_ID,   /* the member is the id (SET) */
    MEM_LEX,  /* "<text>\0<id>" */
    MEM_SCORE /* "<id>\0<n>" */
} member_kind;

typedef enum text_filter {
    FILTER_NONE,
    FILTER_CONTAINS, /* the text contains needle */
    FILTER_ABOVE     /* the text is a prefix of needle (uri :above) */
} text_filter;

/* One term: the union of the members read by cmd[0] (and, when ncmd is 2
 * and both_ends, the members also read by cmd[1]). */
typedef struct term {
    long cmd[2];
    int ncmd;
    member_kind mem;
    text_filter filter;
    const char *needle;
} term;

typedef struct plan {
    term *t;
    size_t nt, cap;
    int negate;     /* result = all ids − union(terms) */
    int everything; /* result = all ids */
    int direct;     /* result = set (computed before the pipeline) */
    int whole;      /* reads tsg:t, not index keys: never filtered via the entry lists */
    idset set;
} plan;

static tsg_rc plan_term(sx *s, plan *p, term t)
{
    if (p->nt == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 4;
        term *nt = tsg_arena_alloc(s->a, nc * sizeof *nt);
        if (!nt) return nomem(s);
        if (p->nt) memcpy(nt, p->t, p->nt * sizeof *nt);
        p->t = nt;
        p->cap = nc;
    }
    p->t[p->nt++] = t;
    return TSG_OK;
}

/* A term of one command. */
static tsg_rc term1(sx *s, plan *p, long cmd, member_kind mem)
{
    if (cmd < 0) return nomem(s);
    return plan_term(s, p, (term){{cmd, -1}, 1, mem, FILTER_NONE, NULL});
}

/* The index key "tsg:ix:<type>:<code>:<suffix>". */
static const char *ix_key(sx *s, const char *type, const char *code, const char *suffix)
{
    return aprintf(s, "tsg:ix:%s:%s:%s", type, code, suffix);
}

/* The live ids of a type with at least one index entry whose key suffix
 * (store.h) starts with ARGV[2] (a parameter's, for :missing; a system's tokens,
 * for `system|`): a scan of their packed entries, since keeping a "has" set would cost a write per
 * parameter of every resource. O(resources of the type); sent as EVAL text (rare) inside the
 * pipeline. */
#define HAS_SCRIPT                                                                                 \
    "local ids = redis.call('ZRANGE', 'tsg:t:' .. ARGV[1], 0, -1)\n"                               \
    "local pre, out = '\\1' .. ARGV[2], {}\n"                                                      \
    "for _, id in ipairs(ids) do\n"                                                                \
    "  local x = redis.call('HGET', 'tsg:r:' .. ARGV[1] .. '/' .. id, 'x')\n"                      \
    "  if x and string.find(x, pre, 1, true) then out[#out + 1] = id end\n"                        \
    "end\n"                                                                                        \
    "return out\n"

/* The live ids of a type with a token display text (key suffix ARGV[2],
 * members "<folded>\0<id>", packed as '>' + "<folded>\0") starting with the
 * folded prefix ARGV[3], for :text: a scan of the packed entries, like
 * HAS_SCRIPT. */
#define TEXT_SCRIPT                                                                                \
    "local ids = redis.call('ZRANGE', 'tsg:t:' .. ARGV[1], 0, -1)\n"                               \
    "local pat, out = '\\1' .. ARGV[2] .. '\\1n>' .. ARGV[3], {}\n"                                \
    "for _, id in ipairs(ids) do\n"                                                                \
    "  local x = redis.call('HGET', 'tsg:r:' .. ARGV[1] .. '/' .. id, 'x')\n"                      \
    "  if x and string.find(x, pat, 1, true) then out[#out + 1] = id end\n"                        \
    "end\n"                                                                                        \
    "return out\n"

/* The ids with token code ARGV[2] in any system of the parameter whose keys
 * start with ARGV[1]: the union of its t:<system>|<code> sets over the
 * systems in its `sys` directory (fhir_index.c). */
#define CODE_SCRIPT                                                                                \
    "local seen, out = {}, {}\n"                                                                   \
    "for _, sys in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'sys')) do\n"                          \
    "  for _, id in ipairs(redis.call('SMEMBERS', ARGV[1] .. 't:' .. sys .. '|' .. ARGV[2])) do\n" \
    "    if not seen[id] then seen[id] = true out[#out + 1] = id end\n"                            \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "return out\n"

/* SMEMBERS of an index SET. */
static tsg_rc read_set(sx *s, cmdlist *l, plan *p, const char *type, const char *code,
                       const char *suffix)
{
    const char *k = ix_key(s, type, code, suffix);
    if (!k) return nomem(s);
    return term1(s, p, cmd_add(s, l, "SMEMBERS", k, NULL, NULL), MEM_ID);
}

/* Members of a LEX zset starting with prefix (NULL: all), optionally filtered. */
static tsg_rc read_lex(sx *s, cmdlist *l, plan *p, const char *type, const char *code,
                       const char *key_suffix, const char *prefix, text_filter f,
                       const char *needle)
{
    const char *k = ix_key(s, type, code, key_suffix);
    if (!k) return nomem(s);
    long c;
    if (prefix) {
        const char *lo = aprintf(s, "[%s", prefix);
        const char *hi = aprintf(s, "[%s\xff", prefix);
        if (!lo || !hi) return nomem(s);
        c = cmd_add(s, l, "ZRANGEBYLEX", k, lo, hi);
    } else {
        c = cmd_add(s, l, "ZRANGEBYLEX", k, "-", "+");
    }
    if (c < 0) return nomem(s);
    return plan_term(s, p, (term){{c, -1}, 1, MEM_LEX, f, needle});
}

/* A score bound: "-inf", "+inf", "(x" or "x". */
static const char *bound(sx *s, double v, int exclusive)
{
    if (isinf(v)) return v < 0 ? "-inf" : "+inf";
    return aprintf(s, "%s%.17g", exclusive ? "(" : "", v);
}

/* ZRANGEBYSCORE command index. */
static long zscore_cmd(sx *s, cmdlist *l, const char *key, double lo, int lo_ex, double hi,
                       int hi_ex)
{
    const char *a = bound(s, lo, lo_ex), *b = bound(s, hi, hi_ex);
    if (!a || !b) return -1;
    return cmd_add(s, l, "ZRANGEBYSCORE", key, a, b);
}

static tsg_rc score_range(sx *s, cmdlist *l, plan *p, const char *key, double lo, int lo_ex,
                          double hi, int hi_ex)
{
    return term1(s, p, zscore_cmd(s, l, key, lo, lo_ex, hi, hi_ex), MEM_SCORE);
}

/* Both conditions on the same member: k1 in [lo1,hi1] and k2 in [lo2,hi2]. */
static tsg_rc score_both(sx *s, cmdlist *l, plan *p, const char *k1, double lo1, int lo1_ex,
                         double hi1, int hi1_ex, const char *k2, double lo2, int lo2_ex, double hi2,
                         int hi2_ex)
{
    long a = zscore_cmd(s, l, k1, lo1, lo1_ex, hi1, hi1_ex);
    long b = zscore_cmd(s, l, k2, lo2, lo2_ex, hi2, hi2_ex);
    if (a < 0 || b < 0) return nomem(s);
    return plan_term(s, p, (term){{a, b}, 2, MEM_SCORE, FILTER_NONE, NULL});
}

/* Number/quantity comparison on one SCORE key. */
/* A number's comparison points: the value, the range its written precision
 * implies (100 → [99.5, 100.5)) and the ap range (±10%). */
typedef struct nrange {
    double x, elo, ehi, alo, ahi;
} nrange;

static void number_range(const search_value *v, nrange *r)
{
    double half = 0.5;
    const char *dot = v->number_text ? strchr(v->number_text, '.') : NULL;
    if (dot) {
        size_t d = strspn(dot + 1, "0123456789");
        half = 0.5 * pow(10.0, -(double)d);
    }
    r->x = v->number;
    r->elo = r->x - half;
    r->ehi = r->x + half;
    r->alo = r->x - fabs(r->x) * 0.1;
    r->ahi = r->x + fabs(r->x) * 0.1;
}

/* Number/quantity comparison on one SCORE key. */
static tsg_rc plan_nrange(sx *s, cmdlist *l, plan *p, const char *key, search_prefix pf,
                          const nrange *r)
{
    switch (pf) {
    case SEARCH_PFX_EQ:
        return score_range(s, l, p, key, r->elo, 0, r->ehi, 1);
    case SEARCH_PFX_NE: {
        tsg_rc rc = score_range(s, l, p, key, -INFINITY, 0, r->elo, 1);
        return rc ? rc : score_range(s, l, p, key, r->ehi, 0, INFINITY, 0);
    }
    case SEARCH_PFX_GT:
    case SEARCH_PFX_SA:
        return score_range(s, l, p, key, r->x, 1, INFINITY, 0);
    case SEARCH_PFX_LT:
    case SEARCH_PFX_EB:
        return score_range(s, l, p, key, -INFINITY, 0, r->x, 1);
    case SEARCH_PFX_GE:
        return score_range(s, l, p, key, r->x, 0, INFINITY, 0);
    case SEARCH_PFX_LE:
        return score_range(s, l, p, key, -INFINITY, 0, r->x, 0);
    case SEARCH_PFX_AP:
        return score_range(s, l, p, key, r->alo, 0, r->ahi, 0);
    }
    return TSG_OK;
}

static tsg_rc plan_number(sx *s, cmdlist *l, plan *p, const char *key, const search_value *v)
{
    nrange r;
    number_range(v, &r);
    return plan_nrange(s, l, p, key, v->prefix, &r);
}

/* x in UCUM unit `code` converted to the index's canonical unit (search.h:
 * search_ucum_canonical; *unit set: only that one); 0 when it does not convert. */
static int to_canonical(double x, const char *code, const char **unit, double *out)
{
    char t[64];
    snprintf(t, sizeof t, "%.17g", x);
    return search_ucum_canonical(t, strlen(t), code, unit, out);
}

/* The comparison points of r converted to the canonical unit (*unit). */
static int canonical_range(const nrange *r, const char *code, const char **unit, nrange *c)
{
    *unit = NULL;
    if (!to_canonical(r->x, code, unit, &c->x)) return 0;
    return to_canonical(r->elo, code, unit, &c->elo) && to_canonical(r->ehi, code, unit, &c->ehi) &&
           to_canonical(r->alo, code, unit, &c->alo) && to_canonical(r->ahi, code, unit, &c->ahi);
}

/*
 * Quantity: no unit → qn (any unit). A UCUM unit → the qc: index in the
 * canonical unit (1 g finds 1000 mg). No system → the unit without a system
 * and the UCUM unit. Another system → q:<system>|<code>.
 */
static tsg_rc plan_quantity(sx *s, cmdlist *l, plan *p, const char *type, const char *code,
                            const search_value *v)
{
    nrange r, c;
    number_range(v, &r);
    if (!v->code) {
        const char *k = ix_key(s, type, code, "qn");
        return k ? plan_nrange(s, l, p, k, v->prefix, &r) : nomem(s);
    }
    static const char ucum[] = "http://unitsofmeasure.org";
    int no_system = !v->system || !*v->system;
    if (no_system) {
        const char *suf = aprintf(s, "q:|%s", v->code);
        const char *k = suf ? ix_key(s, type, code, suf) : NULL;
        if (!k) return nomem(s);
        tsg_rc rc = plan_nrange(s, l, p, k, v->prefix, &r);
        if (rc) return rc;
    }
    if (no_system || !strcmp(v->system, ucum)) {
        const char *unit;
        if (canonical_range(&r, v->code, &unit, &c)) {
            const char *suf = aprintf(s, "qc:%s", unit);
            const char *k = suf ? ix_key(s, type, code, suf) : NULL;
            return k ? plan_nrange(s, l, p, k, v->prefix, &c) : nomem(s);
        }
    }
    const char *suf = aprintf(s, "q:%s|%s", no_system ? ucum : v->system, v->code);
    const char *k = suf ? ix_key(s, type, code, suf) : NULL;
    return k ? plan_nrange(s, l, p, k, v->prefix, &r) : nomem(s);
}

/*
 * Date comparison (FHIR R4 §3.1.1.4.2.1): the resource's range [dl, dh) and
 * the value's [vl, vh).
 */
static tsg_rc plan_date(sx *s, cmdlist *l, plan *p, const char *type, const char *code,
                        const search_value *v)
{
    const char *kl, *kh;
    /* hs shifts the bounds on the range's end: 0 for the dh index, which
     * holds the exclusive end; 1 ms for _lastUpdated, which is not indexed
     * (fhir_index.c): its instant is the tsg:t:<Type> score, and its range
     * [lu, lu + 1 ms) ends at score + 1 */
    double hs = 0;
    if (!strcmp(code, "_lastUpdated")) {
        kl = kh = aprintf(s, "tsg:t:%s", type);
        hs = 1;
        p->whole = 1;
    } else {
        kl = ix_key(s, type, code, "dl");
        kh = ix_key(s, type, code, "dh");
    }
    if (!kl || !kh) return nomem(s);
    double vl = (double)v->low, vh = (double)v->high;
    switch (v->prefix) {
    case SEARCH_PFX_EQ: /* within: dl >= vl and dh <= vh */
        return score_both(s, l, p, kl, vl, 0, INFINITY, 0, kh, -INFINITY, 0, vh - hs, 0);
    case SEARCH_PFX_NE: { /* not within */
        tsg_rc rc = score_range(s, l, p, kl, -INFINITY, 0, vl, 1);
        return rc ? rc : score_range(s, l, p, kh, vh - hs, 1, INFINITY, 0);
    }
    case SEARCH_PFX_GT: /* goes beyond the value's end */
        return score_range(s, l, p, kh, vh - hs, 1, INFINITY, 0);
    case SEARCH_PFX_LT: /* starts before the value's start */
        return score_range(s, l, p, kl, -INFINITY, 0, vl, 1);
    case SEARCH_PFX_GE: /* some instant at or after the value's start */
        return score_range(s, l, p, kh, vl - hs, 1, INFINITY, 0);
    case SEARCH_PFX_LE: /* some instant before the value's end */
        return score_range(s, l, p, kl, -INFINITY, 0, vh, 1);
    case SEARCH_PFX_SA: /* starts after the value ends */
        return score_range(s, l, p, kl, vh, 0, INFINITY, 0);
    case SEARCH_PFX_EB: /* ends before the value starts */
        return score_range(s, l, p, kh, -INFINITY, 0, vl - hs, 0);
    case SEARCH_PFX_AP: { /* overlaps the value widened by 10% of its distance from now */
        double d = fabs((double)rest_now_ms() - vl) * 0.1;
        return score_both(s, l, p, kl, -INFINITY, 0, vh + d, 1, kh, vl - d - hs, 1, INFINITY, 0);
    }
    }
    return TSG_OK;
}

/* The relative "Type/id" of an absolute URL of this server, else NULL. */
static const char *local_ref(sx *s, const char *url)
{
    size_t bl = strlen(s->base);
    if (strncmp(url, s->base, bl) || url[bl] != '/') return NULL;
    const char *r = url + bl + 1;
    const char *slash = strchr(r, '/');
    if (!slash || strchr(slash + 1, '/') || !model_resource_find(r, (size_t)(slash - r)))
        return NULL;
    return r;
}

static tsg_rc unsupported(sx *s, const search_clause *c, const char *what)
{
    return tsg_error_set(&s->err, TSG_ENOTSUP, "not-supported", "%s: %s is not supported", c->name,
                         what);
}

/* Location `near=lat|lon|distance|unit`: GEOSEARCH on the geo index (members
 * "<id>\0<n>"). The distance defaults to REST_NEAR_DEFAULT_KM km; units are
 * the UCUM ones Redis knows (m, km, [mi_i], [ft_i]; mi and ft too). */
static tsg_rc plan_near(sx *s, cmdlist *l, plan *p, const char *type, const char *code,
                        const search_clause *c, const search_value *v)
{
    double lat = v->number, lon = v->longitude;
    if (!(lat >= -85.05112878 && lat <= 85.05112878) || !(lon >= -180 && lon <= 180))
        return tsg_error_set(&s->err, TSG_EINVAL, "invalid",
                             "%s: latitude %g / longitude %g out of range (±85.05 / ±180)", c->name,
                             lat, lon);
    const char *unit = "km";
    double d = REST_NEAR_DEFAULT_KM;
    if (v->distance > 0) {
        d = v->distance;
        const char *u = v->distance_unit ? v->distance_unit : "km";
        unit = !strcmp(u, "km")                           ? "km"
               : !strcmp(u, "m")                          ? "m"
               : !strcmp(u, "[mi_i]") || !strcmp(u, "mi") ? "mi"
               : !strcmp(u, "[ft_i]") || !strcmp(u, "ft") ? "ft"
                                                          : NULL;
        if (!unit)
            return tsg_error_set(&s->err, TSG_EINVAL, "invalid",
                                 "%s: distance unit '%s' is not one of km, m, [mi_i], [ft_i]",
                                 c->name, u);
    }
    const char *key = ix_key(s, type, code, "g");
    const char *slon = aprintf(s, "%.10g", lon), *slat = aprintf(s, "%.10g", lat);
    const char *sd = aprintf(s, "%.10g", d);
    if (!key || !slon || !slat || !sd) return nomem(s);
    const char *argv[] = {"GEOSEARCH", key, "FROMLONLAT", slon, slat, "BYRADIUS", sd, unit};
    return term1(s, p, cmd_addv(s, l, 8, argv), MEM_SCORE);
}

/*
 * Plans one value of a plain clause (param of `type` with modifier) into p.
 */
static tsg_rc plan_value(sx *s, cmdlist *l, plan *p, const char *type, const search_param *sp,
                         const search_clause *c, const search_value *v)
{
    const char *code = sp->code;
    search_modifier m = c->modifier;
    switch (sp->type) {
    case SEARCH_NUMBER: {
        const char *k = ix_key(s, type, code, "n");
        return k ? plan_number(s, l, p, k, v) : nomem(s);
    }
    case SEARCH_QUANTITY:
        return plan_quantity(s, l, p, type, code, v);
    case SEARCH_DATE:
        return plan_date(s, l, p, type, code, v);
    case SEARCH_STRING:
        if (!v->text) return TSG_OK;
        if (m == SEARCH_MOD_EXACT) {
            const char *suf = aprintf(s, "e:%s", v->text);
            return suf ? read_set(s, l, p, type, code, suf) : nomem(s);
        }
        if (m == SEARCH_MOD_CONTAINS)
            return read_lex(s, l, p, type, code, "s", NULL, FILTER_CONTAINS,
                            v->folded ? v->folded : "");
        return read_lex(s, l, p, type, code, "s", v->folded ? v->folded : "", FILTER_NONE, NULL);
    case SEARCH_TOKEN: {
        if (m == SEARCH_MOD_ABOVE || m == SEARCH_MOD_BELOW || m == SEARCH_MOD_IN ||
            m == SEARCH_MOD_NOT_IN)
            return unsupported(s, c, "this token modifier (it needs a terminology server)");
        if (m == SEARCH_MOD_TEXT) {
            /* display texts are kept in the entry lists only (fhir_index.c) */
            const char *k = aprintf(s, "%s:x", code);
            if (!k) return nomem(s);
            const char *argv[] = {"EVAL", TEXT_SCRIPT, "0", type, k, v->folded ? v->folded : ""};
            return term1(s, p, cmd_addv(s, l, 6, argv), MEM_ID);
        }
        const char *suf;
        if (m == SEARCH_MOD_OF_TYPE)
            suf = aprintf(s, "o:%s|%s|%s", v->system ? v->system : "", v->code ? v->code : "",
                          v->text ? v->text : "");
        else if (v->has_system && v->code)
            suf = aprintf(s, "t:%s|%s", v->system ? v->system : "", v->code);
        else if (v->has_system) {
            /* `system|` (any code of a system) has no set of its own — it would
             * cost a write per coding for a rare query: scan the entry lists
             * for the system's t: keys (HAS_SCRIPT, as :missing) */
            const char *prefix = aprintf(s, "%s:t:%s|", code, v->system ? v->system : "");
            if (!prefix) return nomem(s);
            const char *argv[] = {"EVAL", HAS_SCRIPT, "0", type, prefix};
            return term1(s, p, cmd_addv(s, l, 5, argv), MEM_ID);
        } else {
            /* a code in any system: the union over the parameter's systems */
            const char *pre = aprintf(s, "tsg:ix:%s:%s:", type, code);
            if (!pre) return nomem(s);
            const char *argv[] = {"EVAL", CODE_SCRIPT, "0", pre, v->code ? v->code : ""};
            return term1(s, p, cmd_addv(s, l, 5, argv), MEM_ID);
        }
        return suf ? read_set(s, l, p, type, code, suf) : nomem(s);
    }
    case SEARCH_REFERENCE: {
        if (m == SEARCH_MOD_ABOVE || m == SEARCH_MOD_BELOW)
            return unsupported(s, c, "reference :above/:below");
        if (m == SEARCH_MOD_IDENTIFIER) {
            const char *suf =
                aprintf(s, "ri:%s|%s", v->system ? v->system : "", v->code ? v->code : "");
            return suf ? read_set(s, l, p, type, code, suf) : nomem(s);
        }
        if (!v->text) return TSG_OK;
        if (v->ref_type || strstr(v->text, "://") || !strncmp(v->text, "urn:", 4)) {
            const char *t = local_ref(s, v->text);
            const char *suf = aprintf(s, "r:%s", t ? t : v->text);
            return suf ? read_set(s, l, p, type, code, suf) : nomem(s);
        }
        /* a bare id: every target type */
        for (size_t i = 0; i < sp->ntargets; i++) {
            const char *suf = aprintf(s, "r:%s/%s", sp->targets[i], v->text);
            if (!suf) return nomem(s);
            tsg_rc rc = read_set(s, l, p, type, code, suf);
            if (rc) return rc;
        }
        return TSG_OK;
    }
    case SEARCH_URI:
        if (!v->text) return TSG_OK;
        if (m == SEARCH_MOD_BELOW)
            return read_lex(s, l, p, type, code, "ul", v->text, FILTER_NONE, NULL);
        if (m == SEARCH_MOD_ABOVE)
            return read_lex(s, l, p, type, code, "ul", NULL, FILTER_ABOVE, v->text);
        {
            const char *suf = aprintf(s, "u:%s", v->text);
            return suf ? read_set(s, l, p, type, code, suf) : nomem(s);
        }
    case SEARCH_COMPOSITE:
        return unsupported(s, c, "a composite parameter");
    case SEARCH_SPECIAL:
        if (!strcmp(code, "near")) return plan_near(s, l, p, type, code, c, v);
        return unsupported(s, c, "this special parameter");
    }
    return TSG_OK;
}

static tsg_rc run_clauses(sx *s, const char *type, const search_clause *cl, size_t n, idset *out,
                          int depth);

/* The ids read from an index-entry list: reference keys of code `code` of type
 * `src` that point at `target` (key suffix "<code>:r:<target>/<id>", store.h). */
static tsg_rc refs_from_lists(sx *s, redisReply **reps, size_t n, const char *src, const char *code,
                              const char *target, idset *out)
{
    (void)src;
    const char *pre = aprintf(s, "%s:r:%s/", code, target);
    if (!pre) return nomem(s);
    size_t pl = strlen(pre), cap = 0;
    out->n = 0;
    out->v = NULL;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = reps[i];
        if (!r || r->type != REDIS_REPLY_STRING) continue;
        size_t pos = 0;
        store_x_entry k;
        while (store_entries_next(r->str, r->len, &pos, &k)) {
            if (k.suffix_len <= pl || memcmp(k.suffix, pre, pl)) continue;
            if (out->n == cap) {
                size_t nc = cap ? 2 * cap : 16;
                const char **nv = tsg_arena_alloc(s->a, nc * sizeof *nv);
                if (!nv) return nomem(s);
                if (out->n) memcpy(nv, out->v, out->n * sizeof *nv);
                out->v = nv;
                cap = nc;
            }
            const char *id = tsg_arena_strndup(s->a, k.suffix + pl, k.suffix_len - pl);
            if (!id) return nomem(s);
            out->v[out->n++] = id;
        }
    }
    set_normalize(out);
    return TSG_OK;
}

/* Plans a chain clause: searches the target type(s), then the r: sets. */
/* Keeps the ids of type the client may see (chains and _has search other
 * types: what they match must not tell of hidden resources). */
static tsg_rc keep_visible(sx *s, const char *type, idset *ids)
{
    int filt = sx_filters(s, type);
    if (filt <= 0 || !ids->n) return filt < 0 ? s->err.rc : TSG_OK;
    cmdlist l = {0};
    for (size_t k = 0; k < ids->n; k++) {
        const char *key = aprintf(s, "tsg:r:%s/%s", type, ids->v[k]);
        if (!key || cmd_add(s, &l, "HGET", key, "c", NULL) < 0) return nomem(s);
    }
    redisReply **reps;
    tsg_rc rc = run_cmds(s, &l, &reps);
    if (rc) return rc;
    size_t m = 0;
    for (size_t k = 0; k < ids->n; k++) {
        const redisReply *c = reps[k];
        if (rest_view_sees(&s->view, type, c && c->type == REDIS_REPLY_STRING ? c->str : ""))
            ids->v[m++] = ids->v[k];
    }
    ids->n = m;
    free_replies(reps, l.n);
    return TSG_OK;
}

static tsg_rc plan_chain(sx *s, cmdlist *l, plan *p, const char *type, const search_clause *c,
                         int depth)
{
    const search_param *rp = c->param;
    for (size_t i = 0; i < rp->ntargets; i++) {
        const char *tt = rp->targets[i];
        if (c->chain_type && strcmp(c->chain_type, tt)) continue;
        const search_param *cp = search_param_find(tt, c->chain_param->code);
        if (!cp || cp->type != c->chain_param->type) continue;
        search_clause inner = *c;
        inner.param = cp;
        inner.chain_type = NULL;
        inner.chain_param = NULL;
        idset ids;
        tsg_rc rc = run_clauses(s, tt, &inner, 1, &ids, depth + 1);
        if (!rc) rc = keep_visible(s, tt, &ids);
        if (rc) return rc;
        if (ids.n > REST_CHAIN_TARGETS)
            return tsg_error_set(&s->err, TSG_EINVAL, "too-costly",
                                 "%s: the chained search matches more than %u %s resources",
                                 c->name, REST_CHAIN_TARGETS, tt);
        for (size_t k = 0; k < ids.n; k++) {
            const char *suf = aprintf(s, "r:%s/%s", tt, ids.v[k]);
            if (!suf) return nomem(s);
            rc = read_set(s, l, p, type, rp->code, suf);
            if (rc) return rc;
        }
    }
    return TSG_OK;
}

/* _has:T:ref:param=x — searches T, then reads the matches' ref values. */
static tsg_rc plan_has(sx *s, plan *p, const char *type, const search_clause *c, int depth)
{
    search_clause inner = *c;
    inner.param = c->has_param;
    inner.has_type = NULL;
    inner.has_ref = NULL;
    inner.has_param = NULL;
    idset ids;
    tsg_rc rc = run_clauses(s, c->has_type, &inner, 1, &ids, depth + 1);
    if (!rc) rc = keep_visible(s, c->has_type, &ids);
    if (rc) return rc;
    if (ids.n > REST_CHAIN_TARGETS)
        return tsg_error_set(&s->err, TSG_EINVAL, "too-costly",
                             "%s: the _has search matches more than %u %s resources", c->name,
                             REST_CHAIN_TARGETS, c->has_type);
    cmdlist l = {0};
    for (size_t k = 0; k < ids.n; k++) {
        const char *key = aprintf(s, "tsg:r:%s/%s", c->has_type, ids.v[k]);
        if (!key || cmd_add(s, &l, "HGET", key, "x", NULL) < 0) return nomem(s);
    }
    redisReply **reps;
    rc = run_cmds(s, &l, &reps);
    if (rc) return rc;
    rc = refs_from_lists(s, reps, l.n, c->has_type, c->has_ref->code, type, &p->set);
    free_replies(reps, l.n);
    p->direct = 1;
    return rc;
}

/* Plans clause c on type. */
static tsg_rc plan_clause(sx *s, cmdlist *l, plan *p, const char *type, const search_clause *c,
                          int depth)
{
    if (depth > 1 && (c->chain_param || c->has_type))
        return unsupported(s, c, "a chain inside a chain or _has");
    if (c->has_type) return plan_has(s, p, type, c, depth);
    if (c->chain_param) return plan_chain(s, l, p, type, c, depth);
    const search_param *sp = c->param;
    if (c->modifier == SEARCH_MOD_MISSING) {
        int t = 0, f = 0;
        for (size_t i = 0; i < c->nvalues; i++) c->values[i].missing ? t++ : f++;
        if (t && f) {
            p->everything = 1;
            return TSG_OK;
        }
        p->negate = t > 0;
        /* an alias has a value when one of its parts has */
        for (size_t k = 0; k < (sp->nalias ? sp->nalias : 1); k++) {
            const search_param *part = sp->nalias ? sp->alias[k] : sp;
            const char *prefix = aprintf(s, "%s:", part->code);
            if (!prefix) return nomem(s);
            const char *argv[] = {"EVAL", HAS_SCRIPT, "0", type, prefix};
            tsg_rc rc = term1(s, p, cmd_addv(s, l, 5, argv), MEM_ID);
            if (rc) return rc;
        }
        return TSG_OK;
    }
    if (c->modifier == SEARCH_MOD_NOT) p->negate = 1;
    if (!strcmp(sp->code, "_id") && (c->modifier == SEARCH_MOD_NONE || p->negate)) {
        /* _id: the ids themselves (live_sorted drops the unknown ones) */
        p->direct = 1;
        p->set.v = tsg_arena_alloc(s->a, (c->nvalues ? c->nvalues : 1) * sizeof *p->set.v);
        if (!p->set.v) return nomem(s);
        for (size_t i = 0; i < c->nvalues; i++)
            if (c->values[i].code) p->set.v[p->set.n++] = c->values[i].code;
        set_normalize(&p->set);
        return TSG_OK;
    }
    /* an alias (search.h) matches where one of its parts matches: the plan's
     * terms are a union, and :not negates that union */
    for (size_t k = 0; k < (sp->nalias ? sp->nalias : 1); k++) {
        const search_param *part = sp->nalias ? sp->alias[k] : sp;
        for (size_t i = 0; i < c->nvalues; i++) {
            tsg_rc rc = plan_value(s, l, p, type, part, c, &c->values[i]);
            if (rc) return rc;
        }
    }
    return TSG_OK;
}

/* The members of a reply, as arena strings. */
static tsg_rc reply_strings_x(sx *s, const redisReply *r, idset *out, int nul_to_1)
{
    out->n = 0;
    out->v = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements) return TSG_OK;
    out->v = tsg_arena_alloc(s->a, r->elements * sizeof *out->v);
    if (!out->v) return nomem(s);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (!e->str) continue;
        char *m = tsg_arena_strndup(s->a, e->str, e->len);
        if (!m) return nomem(s);
        if (nul_to_1)
            for (size_t j = 0; j < e->len; j++)
                if (!m[j]) m[j] = '\x01';
        out->v[out->n++] = m;
    }
    return TSG_OK;
}

static tsg_rc reply_strings(sx *s, const redisReply *r, idset *out)
{
    return reply_strings_x(s, r, out, 0);
}

/* Turns members into ids in place (filtering LEX texts). The strings are
 * NUL-separated copies, so "<text>\0<id>" is two C strings. */
static void members_to_ids(idset *m, const term *t)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *x = m->v[i];
        if (t->mem == MEM_LEX) {
            size_t tl = strlen(x);
            if (t->filter == FILTER_CONTAINS && !strstr(x, t->needle)) continue;
            if (t->filter == FILTER_ABOVE && strncmp(x, t->needle, tl)) continue;
            m->v[k++] = x + tl + 1;
        } else {
            m->v[k++] = x; /* MEM_ID, or MEM_SCORE "<id>\0<n>" reads as "<id>" */
        }
    }
    m->n = k;
}

/* The ids of one term from the replies. */
static tsg_rc term_ids(sx *s, redisReply **reps, const term *t, idset *out)
{
    tsg_rc rc = reply_strings_x(s, reps[t->cmd[0]], out, t->ncmd == 2);
    if (rc) return rc;
    if (t->ncmd == 2) {
        /* both ends of the same value: intersect on whole members, read as
         * "<id>\x01<n>" so they compare as C strings */
        idset b;
        rc = reply_strings_x(s, reps[t->cmd[1]], &b, 1);
        if (rc) return rc;
        set_normalize(out);
        set_normalize(&b);
        set_and(out, &b);
        for (size_t i = 0; i < out->n; i++) {
            char *c = (char *)out->v[i];
            char *z = strchr(c, '\x01');
            if (z) *z = 0;
        }
        return TSG_OK;
    }
    members_to_ids(out, t);
    return TSG_OK;
}

/* The union of the plan's terms. */
static tsg_rc plan_ids(sx *s, redisReply **reps, const plan *p, idset *out)
{
    out->n = 0;
    out->v = NULL;
    if (p->direct) {
        *out = p->set;
        return TSG_OK;
    }
    idset *parts = tsg_arena_alloc(s->a, (p->nt ? p->nt : 1) * sizeof *parts);
    if (!parts) return nomem(s);
    size_t total = 0;
    for (size_t i = 0; i < p->nt; i++) {
        tsg_rc rc = term_ids(s, reps, &p->t[i], &parts[i]);
        if (rc) return rc;
        total += parts[i].n;
    }
    if (p->nt == 1) {
        *out = parts[0];
        set_normalize(out);
        return TSG_OK;
    }
    out->v = tsg_arena_alloc(s->a, (total ? total : 1) * sizeof *out->v);
    if (!out->v) return nomem(s);
    for (size_t i = 0; i < p->nt; i++) {
        if (parts[i].n) memcpy(out->v + out->n, parts[i].v, parts[i].n * sizeof *out->v);
        out->n += parts[i].n;
    }
    set_normalize(out);
    return TSG_OK;
}

/*
 * The ids of `type` matching all clauses (sorted by id, maybe including ids
 * whose resource was deleted since: the caller checks liveness). No clauses:
 * all live ids.
 */
/* The ids of plan p from the replies (negation and "everything" applied). */
static tsg_rc plan_result(sx *s, redisReply **view, const plan *p, const idset *all, idset *r)
{
    if (p->everything || p->negate) {
        idset x = {0};
        if (p->negate) {
            tsg_rc rc = plan_ids(s, view, p, &x);
            if (rc) return rc;
        }
        r->v = tsg_arena_alloc(s->a, (all->n ? all->n : 1) * sizeof *r->v);
        if (!r->v) return nomem(s);
        memcpy(r->v, all->v, all->n * sizeof *r->v);
        r->n = all->n;
        if (p->negate) set_minus(r, &x);
        return TSG_OK;
    }
    return plan_ids(s, view, p, r);
}

/*
 * Filters candidates by index reads without reading whole indexes: for each
 * candidate id, the script finds the wanted keys in its packed index entries
 * (field x of tsg:r:<Type>/<id>: a plain search for "\1<key suffix>\1",
 * store.h) and
 * returns the entries on them: key number, member, score ("" for SET/LEX
 * entries).
 */
static redis_script filter_script =
    REDIS_SCRIPT("search_filter", "local nk = tonumber(ARGV[1])\n"
                                  "local rp = 'tsg:r:' .. ARGV[2] .. '/'\n"
                                  "local pl = #('tsg:ix:' .. ARGV[2] .. ':')\n"
                                  "local out = {}\n"
                                  "for j = nk + 3, #ARGV do\n"
                                  "  local id = ARGV[j]\n"
                                  "  local x = redis.call('HGET', rp .. id, 'x')\n"
                                  "  if x then\n"
                                  "    for i = 1, nk do\n"
                                  "      local key = ARGV[2 + i]\n"
                                  "      local pat = '\\1' .. string.sub(key, pl + 1) .. '\\1'\n"
                                  "      local a, b = string.find(x, pat, 1, true)\n"
                                  "      while a do\n"
                                  "        local e = string.find(x, '\\1', b + 3, true)\n"
                                  "        local how = string.sub(x, b + 2, b + 2)\n"
                                  "        local m = string.sub(x, b + 3, e - 1)\n"
                                  "        if how == '=' then m = id\n"
                                  "        elseif how == '<' then m = id .. m\n"
                                  "        elseif how == '>' then m = m .. id end\n"
                                  "        local sc = ''\n"
                                  "        if string.sub(x, b + 1, b + 1) == 'z' then\n"
                                  "          sc = redis.call('ZSCORE', key, m) or ''\n"
                                  "        end\n"
                                  "        out[#out + 1] = i\n"
                                  "        out[#out + 1] = m\n"
                                  "        out[#out + 1] = sc\n"
                                  "        a, b = string.find(x, pat, e, true)\n"
                                  "      end\n"
                                  "    end\n"
                                  "  end\n"
                                  "end\n"
                                  "return out\n");

/* A ZRANGEBYSCORE bound ("-inf", "+inf", "(x", "x"). */
static double score_bound(const char *b, int *excl)
{
    *excl = *b == '(';
    if (*excl) b++;
    if (!strcmp(b, "-inf")) return -INFINITY;
    if (!strcmp(b, "+inf")) return INFINITY;
    return strtod(b, NULL);
}

/* Whether member m[0..n) is within the ZRANGEBYLEX bounds lo..hi. */
static int lex_within(const char *m, size_t n, const char *lo, const char *hi)
{
    if (*lo != '-') {
        size_t bl = strlen(lo + 1);
        int c = memcmp(m, lo + 1, n < bl ? n : bl);
        if (!c) c = n < bl ? -1 : n > bl;
        if (c < 0 || (c == 0 && *lo == '(')) return 0;
    }
    if (*hi != '+') {
        size_t bl = strlen(hi + 1);
        int c = memcmp(m, hi + 1, n < bl ? n : bl);
        if (!c) c = n < bl ? -1 : n > bl;
        if (c > 0 || (c == 0 && *hi == '(')) return 0;
    }
    return 1;
}

/*
 * Answers the deferred commands of l (def[i] set) for the candidate ids only,
 * with one script call: view[i] becomes an arena reply holding the members
 * the command would have returned for those ids. *keep is the script's reply
 * (the caller frees it; the views point into it).
 */
static tsg_rc filter_candidates(sx *s, const char *type, const cmdlist *l, const char *def,
                                const idset *cand, redisReply **view, redisReply **keep)
{
    *keep = NULL;
    size_t nk = 0;
    const char **keys = tsg_arena_alloc(s->a, l->n * sizeof *keys);
    long *kix = tsg_arena_alloc(s->a, l->n * sizeof *kix);
    const char **args = tsg_arena_alloc(s->a, (l->n + cand->n + 2) * sizeof *args);
    if (!keys || !kix || !args) return nomem(s);
    for (size_t i = 0; i < l->n; i++) {
        kix[i] = -1;
        if (!def[i]) continue;
        const char *k = l->c[i].argv[1];
        size_t j = 0;
        while (j < nk && strcmp(keys[j], k)) j++;
        if (j == nk) keys[nk++] = k;
        kix[i] = (long)j + 1;
    }
    char nks[24];
    snprintf(nks, sizeof nks, "%zu", nk);
    size_t na = 0;
    args[na++] = nks;
    args[na++] = type;
    for (size_t j = 0; j < nk; j++) args[na++] = keys[j];
    for (size_t j = 0; j < cand->n; j++) args[na++] = cand->v[j];
    redisReply *r = NULL;
    tsg_rc rc = redis_eval_script(s->ctx->redis, &filter_script, 0, NULL, NULL, (int)na, args, NULL,
                                  &r, &s->err);
    if (rc) {
        freeReplyObject(r);
        return rc;
    }
    *keep = r;
    size_t ne = r && r->type == REDIS_REPLY_ARRAY ? r->elements / 3 : 0;
    for (size_t i = 0; i < l->n; i++) {
        if (!def[i]) continue;
        const redis_cmd *c = &l->c[i];
        redisReply *fr = tsg_arena_zalloc(s->a, sizeof *fr);
        redisReply **els = tsg_arena_alloc(s->a, (ne ? ne : 1) * sizeof *els);
        if (!fr || !els) return nomem(s);
        fr->type = REDIS_REPLY_ARRAY;
        fr->element = els;
        int is_score = !strcmp(c->argv[0], "ZRANGEBYSCORE");
        int is_lex = !strcmp(c->argv[0], "ZRANGEBYLEX");
        double lo = 0, hi = 0;
        int lo_ex = 0, hi_ex = 0;
        if (is_score) {
            lo = score_bound(c->argv[2], &lo_ex);
            hi = score_bound(c->argv[3], &hi_ex);
        }
        for (size_t e = 0; e < ne; e++) {
            const redisReply *ki = r->element[3 * e], *m = r->element[3 * e + 1],
                             *sc = r->element[3 * e + 2];
            if (ki->integer != kix[i] || !m->str) continue;
            if (is_score) {
                if (!sc->str || !sc->len) continue;
                double v = strtod(sc->str, NULL);
                if (v < lo || v > hi || (lo_ex && v == lo) || (hi_ex && v == hi)) continue;
            } else if (is_lex && !lex_within(m->str, m->len, c->argv[2], c->argv[3])) {
                continue;
            }
            els[fr->elements++] = (redisReply *)m;
        }
        view[i] = fr;
    }
    return TSG_OK;
}

/* Runs the commands of l whose pick[i] equals want; their replies go to view. */
static tsg_rc run_some(sx *s, const cmdlist *l, const char *pick, char want, redisReply **view,
                       redisReply ***owned, size_t *nowned)
{
    cmdlist sub = {0};
    size_t *map = tsg_arena_alloc(s->a, (l->n ? l->n : 1) * sizeof *map);
    if (!map) return nomem(s);
    for (size_t i = 0; i < l->n; i++) {
        if (pick[i] != want) continue;
        if (cmd_addv(s, &sub, l->c[i].argc, l->c[i].argv) < 0) return nomem(s);
        map[sub.n - 1] = i;
    }
    *owned = NULL;
    *nowned = 0;
    tsg_rc rc = run_cmds(s, &sub, owned);
    if (rc) return rc;
    *nowned = sub.n;
    for (size_t j = 0; j < sub.n; j++) view[map[j]] = (*owned)[j];
    return TSG_OK;
}

/*
 * The ids of `type` matching all clauses (sorted by id, maybe including ids
 * whose resource was deleted since: the caller checks liveness). No clauses:
 * all live ids.
 *
 * When some clauses are plain SET reads (tokens, references) and others need
 * range reads (dates, numbers, strings), the SET clauses run first; if they
 * leave at most REST_FILTER_MAX candidates, the other clauses are checked on
 * those candidates only (filter_candidates) instead of reading whole ranges —
 * `Observation?patient=X&date=ge…` costs the patient's entries, not every
 * Observation's.
 */
static tsg_rc run_clauses(sx *s, const char *type, const search_clause *cl, size_t n, idset *out,
                          int depth)
{
    out->n = 0;
    out->v = NULL;
    plan *plans = tsg_arena_zalloc(s->a, (n ? n : 1) * sizeof *plans);
    if (!plans) return nomem(s);
    cmdlist l = {0};
    int need_all = n == 0;
    for (size_t i = 0; i < n; i++) {
        tsg_rc rc = plan_clause(s, &l, &plans[i], type, &cl[i], depth);
        if (rc) return rc;
        if (plans[i].negate || plans[i].everything) need_all = 1;
    }
    long all_cmd = -1;
    if (need_all) {
        const char *k = aprintf(s, "tsg:t:%s", type);
        if (!k || (all_cmd = cmd_add(s, &l, "ZRANGE", k, "0", "-1")) < 0) return nomem(s);
    }
    /* which plans can wait for the candidates */
    char *def = tsg_arena_zalloc(s->a, l.n ? l.n : 1);
    char *pdef = tsg_arena_zalloc(s->a, n ? n : 1);
    redisReply **view = tsg_arena_zalloc(s->a, (l.n ? l.n : 1) * sizeof *view);
    if (!def || !pdef || !view) return nomem(s);
    int have_set = 0, ndef = 0;
    for (size_t i = 0; i < n; i++) {
        const plan *p = &plans[i];
        if (p->direct) {
            have_set = 1;
            continue;
        }
        if (p->negate || p->everything || p->whole || !p->nt) continue;
        int sets = 1;
        for (size_t t = 0; t < p->nt; t++)
            if (p->t[t].ncmd != 1 || p->t[t].mem != MEM_ID) sets = 0;
        if (sets) {
            have_set = 1;
        } else {
            pdef[i] = 1;
            ndef++;
        }
    }
    if (!have_set) ndef = 0;
    if (ndef)
        for (size_t i = 0; i < n; i++)
            for (size_t t = 0; pdef[i] && t < plans[i].nt; t++)
                for (int c = 0; c < plans[i].t[t].ncmd; c++) def[plans[i].t[t].cmd[c]] = 1;
    else
        memset(pdef, 0, n ? n : 1);

    redisReply **r1 = NULL, **r2 = NULL, *keep = NULL;
    size_t n1 = 0, n2 = 0;
    tsg_rc rc = run_some(s, &l, def, 0, view, &r1, &n1);
    idset all = {0};
    if (!rc && need_all) {
        rc = reply_strings(s, view[all_cmd], &all);
        set_normalize(&all);
    }
    int first = 1;
    if (n == 0) {
        *out = all;
        first = 0;
    }
    for (int phase = 0; phase < 2 && !rc; phase++) {
        if (phase == 1) {
            if (!ndef || !out->n) break;
            if (out->n <= REST_FILTER_MAX)
                rc = filter_candidates(s, type, &l, def, out, view, &keep);
            else
                rc = run_some(s, &l, def, 1, view, &r2, &n2);
        }
        for (size_t i = 0; i < n && !rc; i++) {
            if (pdef[i] != phase) continue;
            idset r;
            rc = plan_result(s, view, &plans[i], &all, &r);
            if (rc) break;
            if (first) {
                *out = r;
                first = 0;
            } else {
                set_and(out, &r);
            }
        }
    }
    free_replies(r1, n1);
    free_replies(r2, n2);
    freeReplyObject(keep);
    return rc;
}

/* ------------------------------------------------------------------------
 * Liveness and sorting
 * ------------------------------------------------------------------------ */

typedef struct sortval {
    int has;
    double d;
    const char *s;
} sortval;

typedef struct row {
    const char *id;
    double lu;
    sortval *k;
    store_resource *res; /* read already (one-page results), else NULL */
} row;

typedef struct sort_spec {
    size_t nk;
    const search_sort *keys;
} sort_spec;

static _Thread_local const sort_spec *g_sort;

static int cmp_row(const void *pa, const void *pb)
{
    const row *a = pa, *b = pb;
    const sort_spec *sp = g_sort;
    if (!sp || !sp->nk) {
        if (a->lu != b->lu) return a->lu > b->lu ? -1 : 1;
        return strcmp(a->id, b->id);
    }
    for (size_t i = 0; i < sp->nk; i++) {
        const search_sort *k = &sp->keys[i];
        const char *code = k->param->code;
        int c = 0;
        if (!strcmp(code, "_id")) {
            c = strcmp(a->id, b->id);
        } else if (!strcmp(code, "_lastUpdated")) {
            c = a->lu < b->lu ? -1 : a->lu > b->lu;
        } else {
            const sortval *x = &a->k[i], *y = &b->k[i];
            if (!x->has || !y->has) {
                if (x->has != y->has) return x->has ? -1 : 1; /* missing values last */
                continue;
            }
            if (x->s || y->s)
                c = strcmp(x->s ? x->s : "", y->s ? y->s : "");
            else
                c = x->d < y->d ? -1 : x->d > y->d;
        }
        if (c) return k->descending ? -c : c;
    }
    return strcmp(a->id, b->id);
}

/* lastUpdated ascending, then id. */
static int cmp_row_lu_asc(const void *pa, const void *pb)
{
    const row *a = pa, *b = pb;
    if (a->lu != b->lu) return a->lu < b->lu ? -1 : 1;
    return strcmp(a->id, b->id);
}

/* The index key holding the sort value of a parameter, and whether LEX. */
static const char *sort_key(sx *s, const char *type, const search_param *p, int *lex)
{
    *lex = 0;
    if (p->nalias) return NULL; /* an alias has no index of its own to sort by */
    switch (p->type) {
    case SEARCH_DATE:
        return ix_key(s, type, p->code, "dl");
    case SEARCH_NUMBER:
        return ix_key(s, type, p->code, "n");
    case SEARCH_QUANTITY:
        return ix_key(s, type, p->code, "qn");
    case SEARCH_STRING:
        *lex = 1;
        return ix_key(s, type, p->code, "s");
    case SEARCH_URI:
        *lex = 1;
        return ix_key(s, type, p->code, "ul");
    default:
        return NULL;
    }
}

/* Finds the row of id (rows sorted by id). */
static row *row_find(row *rows, size_t n, const char *id, size_t idlen)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strncmp(rows[mid].id, id, idlen);
        if (!c && rows[mid].id[idlen]) c = 1;
        if (!c) return &rows[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/*
 * Keeps the live ids of `ids` (sorted by id) and orders them by q's _sort
 * (default: lastUpdated descending, id). *rows_out in the arena.
 */
static tsg_rc live_sorted(sx *s, const char *type, const idset *ids, const search_query *q,
                          row **rows_out, size_t *nrows)
{
    *rows_out = NULL;
    *nrows = 0;
    if (!ids->n) return TSG_OK;
    size_t nk = q ? q->nsort : 0;
    for (size_t i = 0; i < nk; i++) {
        const search_param *p = q->sort[i].param;
        int lex;
        if (strcmp(p->code, "_id") && strcmp(p->code, "_lastUpdated") &&
            !sort_key(s, type, p, &lex))
            return tsg_error_set(&s->err, TSG_EINVAL, "not-supported",
                                 "_sort: sorting by the %s parameter %s is not supported",
                                 search_type_name(p->type), p->code);
    }
    cmdlist l = {0};
    const char **argv = tsg_arena_alloc(s->a, (ids->n + 2) * sizeof *argv);
    const char *tk = aprintf(s, "tsg:t:%s", type);
    if (!argv || !tk) return nomem(s);
    argv[0] = "ZMSCORE";
    argv[1] = tk;
    memcpy(argv + 2, ids->v, ids->n * sizeof *argv);
    if (cmd_addv(s, &l, (int)ids->n + 2, argv) < 0) return nomem(s);
    /* access: each id's compartment, in the same round trip */
    int filt = sx_filters(s, type);
    if (filt < 0) return s->err.rc;
    long c0 = (long)l.n;
    for (size_t i = 0; filt && i < ids->n; i++) {
        const char *rk = aprintf(s, "tsg:r:%s/%s", type, ids->v[i]);
        if (!rk || cmd_add(s, &l, "HGET", rk, "c", NULL) < 0) return nomem(s);
    }
    long *kcmd = tsg_arena_alloc(s->a, (nk ? nk : 1) * sizeof *kcmd);
    int *klex = tsg_arena_alloc(s->a, (nk ? nk : 1) * sizeof *klex);
    if (!kcmd || !klex) return nomem(s);
    for (size_t i = 0; i < nk; i++) {
        kcmd[i] = -1;
        const char *k = sort_key(s, type, q->sort[i].param, &klex[i]);
        if (!k) continue;
        const char *zr[5] = {"ZRANGE", k, "0", "-1", "WITHSCORES"};
        kcmd[i] = klex[i] ? cmd_add(s, &l, "ZRANGEBYLEX", k, "-", "+") : cmd_addv(s, &l, 5, zr);
        if (kcmd[i] < 0) return nomem(s);
    }
    redisReply **reps;
    tsg_rc rc = run_cmds(s, &l, &reps);
    if (rc) return rc;
    row *rows = tsg_arena_zalloc(s->a, ids->n * sizeof *rows);
    sortval *kv = nk ? tsg_arena_zalloc(s->a, ids->n * nk * sizeof *kv) : NULL;
    if (!rows || (nk && !kv)) {
        free_replies(reps, l.n);
        return nomem(s);
    }
    size_t n = 0;
    const redisReply *zr = reps[0];
    for (size_t i = 0; i < ids->n && zr && zr->type == REDIS_REPLY_ARRAY && i < zr->elements; i++) {
        const redisReply *e = zr->element[i];
        if (e->type != REDIS_REPLY_STRING) continue;
        if (filt) {
            const redisReply *c = reps[c0 + (long)i];
            if (!rest_view_sees(&s->view, type, c && c->type == REDIS_REPLY_STRING ? c->str : ""))
                continue;
        }
        rows[n].id = ids->v[i];
        rows[n].lu = strtod(e->str, NULL);
        rows[n].k = kv ? kv + n * nk : NULL;
        n++;
    }
    /* sort values: the smallest (ascending) or largest (descending) per id */
    for (size_t i = 0; i < nk; i++) {
        if (kcmd[i] < 0) continue;
        const redisReply *r = reps[kcmd[i]];
        if (!r || r->type != REDIS_REPLY_ARRAY) continue;
        int desc = q->sort[i].descending;
        size_t step = klex[i] ? 1 : 2;
        for (size_t j = 0; j + step - 1 < r->elements; j += step) {
            const redisReply *m = r->element[j];
            if (!m->str) continue;
            size_t tl = strnlen(m->str, m->len);
            const char *id = klex[i] ? m->str + tl + 1 : m->str;
            size_t idl = klex[i] ? (tl < m->len ? m->len - tl - 1 : 0) : tl;
            if (!idl) continue;
            row *rw = row_find(rows, n, id, idl);
            if (!rw) continue;
            sortval *sv = &rw->k[i];
            if (klex[i]) {
                char *t = tsg_arena_strndup(s->a, m->str, tl);
                if (!t) {
                    free_replies(reps, l.n);
                    return nomem(s);
                }
                if (!sv->has || (desc ? strcmp(t, sv->s) > 0 : strcmp(t, sv->s) < 0)) sv->s = t;
            } else {
                const redisReply *sc = r->element[j + 1];
                double d = strtod(sc->str ? sc->str : "0", NULL);
                if (!sv->has || (desc ? d > sv->d : d < sv->d)) sv->d = d;
            }
            sv->has = 1;
        }
    }
    free_replies(reps, l.n);
    sort_spec spec = {nk, nk ? q->sort : NULL};
    g_sort = &spec;
    qsort(rows, n, sizeof *rows, cmp_row);
    g_sort = NULL;
    *rows_out = rows;
    *nrows = n;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Query strings and parameters
 * ------------------------------------------------------------------------ */

typedef struct params {
    const char **names, **values;
    size_t n, cap;
} params;

static tsg_rc param_add(sx *s, params *p, const char *name, const char *value)
{
    if (p->n >= REST_SEARCH_PARAMS)
        return tsg_error_set(&s->err, TSG_EINVAL, "too-costly",
                             "a search takes at most %u parameters", REST_SEARCH_PARAMS);
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 16;
        const char **nn = tsg_arena_alloc(s->a, nc * sizeof *nn);
        const char **nv = tsg_arena_alloc(s->a, nc * sizeof *nv);
        if (!nn || !nv) return nomem(s);
        if (p->n) {
            memcpy(nn, p->names, p->n * sizeof *nn);
            memcpy(nv, p->values, p->n * sizeof *nv);
        }
        p->names = nn;
        p->values = nv;
        p->cap = nc;
    }
    p->names[p->n] = name;
    p->values[p->n] = value;
    p->n++;
    return TSG_OK;
}

/* Adds the pairs of "a=b&c=d" (percent-decoded). */
static tsg_rc params_from_form(sx *s, params *p, const char *q, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&') j++;
        if (j > i) {
            const char *eq = memchr(q + i, '=', j - i);
            size_t nl = eq ? (size_t)(eq - (q + i)) : j - i;
            char *name = rest_url_decode(s->a, q + i, nl);
            char *value = eq ? rest_url_decode(s->a, eq + 1, (size_t)(q + j - eq - 1)) : (char *)"";
            if (!name || !value)
                return tsg_error_set(&s->err, TSG_EINVAL, "invalid",
                                     "the query has a bad %%-escape or invalid UTF-8 near '%.*s'",
                                     (int)(j - i > 40 ? 40 : j - i), q + i);
            tsg_rc rc = param_add(s, p, name, value);
            if (rc) return rc;
        }
        i = j + 1;
    }
    return TSG_OK;
}

/* Appends s percent-encoded (query component) to b. */
static void url_encode(tsg_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~:|,/", c)) {
            tsg_buf_putc(b, (char)c);
        } else {
            tsg_buf_putc(b, '%');
            tsg_buf_putc(b, hex[c >> 4]);
            tsg_buf_putc(b, hex[c & 15]);
        }
    }
}

/* The parameters that shape a result page (kept in a snapshot). */
static int is_result_param(const char *name)
{
    return !strncmp(name, "_include", 8) || !strncmp(name, "_revinclude", 11) ||
           !strcmp(name, "_summary") || !strcmp(name, "_elements") || !strcmp(name, "_total");
}

static int lenient(const http_request *req)
{
    const char *h = http_header(req, "Prefer");
    return h && strstr(h, "handling=lenient");
}

/* ------------------------------------------------------------------------
 * Includes
 * ------------------------------------------------------------------------ */

/* The type part of "Type/id" (in the arena). */
static const char *ref_type(sx *s, const char *ref)
{
    const char *sl = strchr(ref, '/');
    return sl ? tsg_arena_strndup(s->a, ref, (size_t)(sl - ref)) : "";
}

/* Appends ref to the list when new; stops quietly at REST_INCLUDE_MAX. */
static tsg_rc inc_add(sx *s, strset *seen, idset *list, size_t *cap, const char *ref)
{
    if (list->n >= REST_INCLUDE_MAX) return TSG_OK;
    int r = strset_add(s->a, seen, ref);
    if (r < 0) return nomem(s);
    if (!r) return TSG_OK;
    if (list->n == *cap) {
        size_t nc = *cap ? 2 * *cap : 16;
        const char **nv = tsg_arena_alloc(s->a, nc * sizeof *nv);
        if (!nv) return nomem(s);
        if (list->n) memcpy(nv, list->v, list->n * sizeof *nv);
        list->v = nv;
        *cap = nc;
    }
    list->v[list->n++] = ref;
    return TSG_OK;
}

/* Whether p may point at type t. */
static int targets(const search_param *p, const char *t)
{
    for (size_t i = 0; i < p->ntargets; i++)
        if (!strcmp(p->targets[i], t)) return 1;
    return 0;
}

/*
 * The included resources ("Type/id") of matches m[0..n): _include reads the
 * index-entry lists of the sources, _revinclude the r: sets pointing at them;
 * :iterate repeats on what was added (REST_INCLUDE_DEPTH rounds).
 */
static tsg_rc includes(sx *s, const search_include *inc, size_t ninc, const char *const *m,
                       size_t n, idset *out)
{
    out->n = 0;
    out->v = NULL;
    if (!ninc || !n) return TSG_OK;
    size_t cap = 0;
    strset seen = {0};
    for (size_t i = 0; i < n; i++)
        if (strset_add(s->a, &seen, m[i]) < 0) return nomem(s);
    idset src = {(const char **)m, n};
    for (int round = 0; round <= REST_INCLUDE_DEPTH && src.n; round++) {
        cmdlist l = {0};
        /* per source: the list read (forward) and the r: sets (reverse) */
        typedef struct want {
            long cmd;
            const search_include *inc;
            const char *src_type, *code; /* reverse: the type and code of the r: set */
        } want;
        want *w = NULL;
        size_t nw = 0, wcap = 0;
        for (size_t i = 0; i < src.n; i++) {
            const char *st = ref_type(s, src.v[i]);
            if (!st) return nomem(s);
            long list_cmd = -1;
            for (size_t k = 0; k < ninc; k++) {
                const search_include *x = &inc[k];
                if (round > 0 && !x->iterate) continue;
                const search_param *const *plist = NULL;
                size_t np = 0;
                const search_param *one[1] = {x->param};
                if (!x->reverse) {
                    if (x->source_type && strcmp(x->source_type, st)) continue;
                    if (list_cmd < 0) {
                        const char *key = aprintf(s, "tsg:r:%s", src.v[i]);
                        if (!key || (list_cmd = cmd_add(s, &l, "HGET", key, "x", NULL)) < 0)
                            return nomem(s);
                    }
                    np = 1;
                } else {
                    if (!x->source_type) continue; /* _revinclude=*: not supported */
                    if (x->param) {
                        plist = one;
                        np = 1;
                    } else {
                        np = search_params_of(x->source_type, &plist);
                    }
                }
                for (size_t j = 0; j < np; j++) {
                    if (nw == wcap) {
                        size_t nc = wcap ? 2 * wcap : 16;
                        want *nwp = tsg_arena_alloc(s->a, nc * sizeof *nwp);
                        if (!nwp) return nomem(s);
                        if (nw) memcpy(nwp, w, nw * sizeof *nwp);
                        w = nwp;
                        wcap = nc;
                    }
                    if (!x->reverse) {
                        w[nw++] = (want){list_cmd, x, NULL, NULL};
                        continue;
                    }
                    const search_param *p = plist[j];
                    if (p->type != SEARCH_REFERENCE || !targets(p, st)) continue;
                    const char *key =
                        aprintf(s, "tsg:ix:%s:%s:r:%s", x->source_type, p->code, src.v[i]);
                    long c = key ? cmd_add(s, &l, "SMEMBERS", key, NULL, NULL) : -1;
                    if (c < 0) return nomem(s);
                    w[nw++] = (want){c, x, x->source_type, p->code};
                }
            }
        }
        redisReply **reps;
        tsg_rc rc = run_cmds(s, &l, &reps);
        if (rc) return rc;
        size_t before = out->n;
        for (size_t i = 0; i < nw && !rc; i++) {
            const redisReply *r = reps[w[i].cmd];
            const search_include *x = w[i].inc;
            if (!r || r->type != (x->reverse ? REDIS_REPLY_ARRAY : REDIS_REPLY_STRING)) continue;
            if (x->reverse) {
                for (size_t j = 0; j < r->elements && !rc; j++) {
                    const char *ref = aprintf(s, "%s/%.*s", w[i].src_type, (int)r->element[j]->len,
                                              r->element[j]->str);
                    rc = ref ? inc_add(s, &seen, out, &cap, ref) : nomem(s);
                }
                continue;
            }
            /* forward: the entries on keys "<code>:r:<Type/id>" (suffixes, store.h) */
            size_t pos = 0;
            store_x_entry e;
            while (!rc && store_entries_next(r->str, r->len, &pos, &e)) {
                const char *kend = e.suffix + e.suffix_len;
                const char *code = e.suffix;
                const char *p2 = memchr(code, ':', (size_t)(kend - code));
                if (!p2 || (size_t)(kend - p2) < 4 || memcmp(p2, ":r:", 3)) continue;
                if (x->param && ((size_t)(p2 - code) != strlen(x->param->code) ||
                                 memcmp(code, x->param->code, (size_t)(p2 - code))))
                    continue;
                const char *ref = tsg_arena_strndup(s->a, p2 + 3, (size_t)(kend - p2 - 3));
                if (!ref) {
                    rc = nomem(s);
                    break;
                }
                const char *sl = strchr(ref, '/');
                if (!sl || strchr(sl + 1, '/') || strstr(ref, "://") ||
                    !model_resource_find(ref, (size_t)(sl - ref)) || !rest_id_valid(sl + 1))
                    continue;
                if (x->target_type && (strlen(x->target_type) != (size_t)(sl - ref) ||
                                       memcmp(x->target_type, ref, (size_t)(sl - ref))))
                    continue;
                rc = inc_add(s, &seen, out, &cap, ref);
            }
        }
        free_replies(reps, l.n);
        if (rc) return rc;
        if (out->n == before) break;
        src.v = out->v + before;
        src.n = out->n - before;
    }
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Pages
 * ------------------------------------------------------------------------ */

typedef struct page_info {
    const char *self;         /* self link (first page: the search URL) */
    const char *snap;         /* snapshot uuid, NULL when none */
    size_t offset, count;     /* this page */
    size_t total;             /* matches */
    int show_total;           /* write Bundle.total */
    int count_only;           /* _summary=count or _count=0 */
    const search_query *q;    /* includes; NULL: none */
    int everything_refs;      /* $everything: include what the page references */
    const search_query *outq; /* lenient: ignored parameters to report */
    const row *pre;           /* rows whose resources are read already (aligned with refs) */
} page_info;

/* A page link; _format and _pretty of the request carry over. */
static const char *pages_url(sx *s, const char *snap, size_t off, size_t count)
{
    tsg_buf b;
    tsg_buf_init(&b, 1u << 16);
    tsg_buf_printf(&b, "%s?_getpages=%s&_offset=%zu&_count=%zu", s->base, snap, off, count);
    static const char *const carry[] = {"_format", "_pretty"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = http_param_get(s->req, carry[i]);
        if (!v) continue;
        tsg_buf_printf(&b, "&%s=", carry[i]);
        url_encode(&b, v);
    }
    const char *u = tsg_buf_rc(&b) ? NULL : tsg_arena_strndup(s->a, b.data, b.len);
    tsg_buf_free(&b);
    return u ? u : s->base;
}

/* Writes the Bundle of refs[0..n) (this page's matches) and answers. */
static void write_page(sx *s, http_response *resp, const char *const *refs, size_t n,
                       const page_info *pi)
{
    const http_request *req = s->req;
    idset inc = {0};
    tsg_rc rc = TSG_OK;
    if (!pi->count_only && pi->q && pi->q->ninclude)
        rc = includes(s, pi->q->include, pi->q->ninclude, refs, n, &inc);
    if (!rc && !pi->count_only && pi->everything_refs && n) {
        search_include all = {0};
        idset more;
        rc = includes(s, &all, 1, refs, n, &more);
        if (!rc) inc = more;
    }
    if (rc) {
        rest_fail_err(req, resp, 400, &s->err);
        return;
    }
    size_t nread = pi->count_only ? 0 : n + inc.n;
    const char **all = tsg_arena_alloc(s->a, (nread ? nread : 1) * sizeof *all);
    store_resource *res = calloc(nread ? nread : 1, sizeof *res);
    if (!all || !res) {
        free(res);
        rest_fail(req, resp, 500, "exception", "out of memory");
        return;
    }
    size_t from = pi->pre ? n : 0; /* the matches may be read already */
    if (nread) {
        memcpy(all, refs, n * sizeof *all);
        if (inc.n) memcpy(all + n, inc.v, inc.n * sizeof *all);
        if (nread > from &&
            store_read_many(s->ctx->st, nread - from, all + from, res + from, &s->err)) {
            free(res);
            rest_fail_err(req, resp, 500, &s->err);
            return;
        }
    }
    rest_bundle bb;
    rest_bundle_begin(&bb, "searchset", pi->show_total || pi->count_only ? (long)pi->total : -1);
    rest_bundle_link(&bb, "self", pi->self);
    if (pi->snap && pi->count) {
        size_t last = pi->total ? ((pi->total - 1) / pi->count) * pi->count : 0;
        rest_bundle_link(&bb, "first", pages_url(s, pi->snap, 0, pi->count));
        if (pi->offset > 0)
            rest_bundle_link(&bb, "previous",
                             pages_url(s, pi->snap,
                                       pi->offset > pi->count ? pi->offset - pi->count : 0,
                                       pi->count));
        if (pi->offset + pi->count < pi->total)
            rest_bundle_link(&bb, "next",
                             pages_url(s, pi->snap, pi->offset + pi->count, pi->count));
        rest_bundle_link(&bb, "last", pages_url(s, pi->snap, last, pi->count));
    }
    /* _summary / _elements on the matches: rest_respond_resource() subsets
     * one resource for a request carrying only those parameters, in JSON */
    const char *summ = pi->q ? pi->q->summary : NULL, *elem = pi->q ? pi->q->elements : NULL;
    if (summ && !strcmp(summ, "false")) summ = NULL;
    http_param sub[2];
    size_t nsub = 0;
    if (summ) sub[nsub++] = (http_param){"_summary", 8, summ, strlen(summ)};
    if (elem) sub[nsub++] = (http_param){"_elements", 9, elem, strlen(elem)};
    http_request sreq = *req;
    sreq.format = HTTP_FORMAT_JSON;
    sreq.pretty = false;
    sreq.params = sub;
    sreq.n_params = nsub;
    /* the client's view is loaded only when the page holds a type it filters
     * (a page of registry resources needs none) */
    int restricted = 0;
    for (size_t i = 0; s->ctx->access && req->principal && !restricted && i < nread; i++) {
        const char *rt = ref_type(s, all[i]);
        restricted = !rt || rest_access_class_of(rt) != REST_ACCESS_REGISTRY;
    }
    if (restricted && sx_view(s)) {
        for (size_t i = from; i < nread; i++) store_resource_clear(&res[i]);
        free(res);
        rest_fail_err(req, resp, 500, &s->err);
        return;
    }
    for (size_t i = 0; i < nread; i++) {
        store_resource *r = i < from ? pi->pre[i].res : &res[i];
        /* what the client may not see is left out: includes, and the matches of
         * a snapshot page whose access changed since */
        const char *rt = restricted ? ref_type(s, all[i]) : NULL;
        if (r->found && !r->deleted && r->body &&
            (!restricted || (rt && rest_view_sees(&s->view, rt, r->compartment)))) {
            const char *url = aprintf(s, "%s/%s", s->base, all[i]);
            const char *body = r->body;
            size_t blen = r->body_len;
            http_response tmp = {.status = 200, .arena = s->a};
            tsg_buf_init(&tmp.body, TSG_LIMIT_BODY_BYTES);
            if (nsub && i < n) {
                rest_respond_resource(&sreq, &tmp, 200, r->body, r->body_len, 0, 0);
                if (tmp.status == 200 && !tsg_buf_rc(&tmp.body) && tmp.body.len) {
                    body = tmp.body.data;
                    blen = tmp.body.len;
                }
            }
            rest_bundle_entry(&bb, url, body, blen,
                              i < n ? "\"search\":{\"mode\":\"match\"}"
                                    : "\"search\":{\"mode\":\"include\"}");
            tsg_buf_free(&tmp.body);
        }
        if (i >= from) store_resource_clear(r);
    }
    free(res);
    if (pi->outq && pi->outq->nignored) {
        tsg_buf o;
        tsg_buf_init(&o, 1u << 20);
        tsg_buf_puts(&o, "{\"resourceType\":\"OperationOutcome\",\"issue\":[");
        for (size_t i = 0; i < pi->outq->nignored; i++) {
            tsg_buf_puts(&o, i ? ",{" : "{");
            tsg_buf_puts(&o, "\"severity\":\"warning\",\"code\":\"not-supported\","
                             "\"diagnostics\":\"parameter ignored: ");
            const char *a = pi->outq->ignored[i], *w = pi->outq->ignored_why[i];
            http_json_escape(&o, a, strlen(a));
            if (w && *w) {
                tsg_buf_puts(&o, " (");
                http_json_escape(&o, w, strlen(w));
                tsg_buf_puts(&o, ")");
            }
            tsg_buf_puts(&o, "\"}");
        }
        tsg_buf_puts(&o, "]}");
        if (!tsg_buf_rc(&o))
            rest_bundle_entry(&bb, NULL, o.data, o.len, "\"search\":{\"mode\":\"outcome\"}");
        tsg_buf_free(&o);
    }
    rest_bundle_finish(&bb, req, resp);
}

/* Stores the snapshot "tsg:snap:<uuid>" (header, then refs); *uuid in the arena. */
static tsg_rc snapshot(sx *s, const char *header, const char *const *refs, size_t n,
                       const char **uuid)
{
    char id[37];
    rest_new_id(id);
    const char *key = snap_key(s, id);
    const char **argv = tsg_arena_alloc(s->a, (n + 3) * sizeof *argv);
    if (!key || !argv) return nomem(s);
    argv[0] = "RPUSH";
    argv[1] = key;
    argv[2] = header;
    memcpy(argv + 3, refs, n * sizeof *argv);
    cmdlist l = {0};
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", REST_SNAPSHOT_TTL_S);
    const char *ttl_s = tsg_arena_strndup(s->a, ttl, strlen(ttl));
    if (!ttl_s || cmd_addv(s, &l, (int)n + 3, argv) < 0 ||
        cmd_add(s, &l, "EXPIRE", key, ttl_s, NULL) < 0)
        return nomem(s);
    redisReply **reps;
    tsg_rc rc = run_cmds(s, &l, &reps);
    if (rc) return rc;
    free_replies(reps, l.n);
    *uuid = tsg_arena_strndup(s->a, id, 36);
    return *uuid ? TSG_OK : nomem(s);
}

/* The snapshot header: "<kind>\x01<total mode>[\x01<name>\x02<value>]…". */
static const char *snap_header(sx *s, const char *kind, int total_mode, const params *p)
{
    tsg_buf b;
    tsg_buf_init(&b, 1u << 20);
    tsg_buf_printf(&b, "%s\x01%d", kind, total_mode);
    for (size_t i = 0; p && i < p->n; i++) {
        if (!is_result_param(p->names[i])) continue;
        if (strpbrk(p->names[i], "\x01\x02") || strpbrk(p->values[i], "\x01\x02")) continue;
        tsg_buf_printf(&b, "\x01%s\x02%s", p->names[i], p->values[i]);
    }
    char *h = tsg_buf_rc(&b) ? NULL : tsg_arena_strndup(s->a, b.data, b.len);
    tsg_buf_free(&b);
    return h;
}

/* ------------------------------------------------------------------------
 * Search
 * ------------------------------------------------------------------------ */

static void sx_init(sx *s, const http_request *req, rest_ctx *ctx)
{
    memset(s, 0, sizeof *s);
    s->req = req;
    s->ctx = ctx;
    s->a = req->arena;
    tsg_error_clear(&s->err);
    s->base = rest_base_url(req);
}

/*
 * All live resources of a type newest first (no clauses, default order or
 * _lastUpdated): straight from tsg:t:<Type>, at most REST_SNAPSHOT_MAX_IDS
 * of them; *total is the type's count.
 */
static tsg_rc newest_rows(sx *s, const char *type, int ascending, row **rows_out, size_t *n,
                          size_t *total)
{
    cmdlist l = {0};
    const char *k = aprintf(s, "tsg:t:%s", type);
    char last[24];
    snprintf(last, sizeof last, "%u", REST_SNAPSHOT_MAX_IDS - 1);
    const char *ls = tsg_arena_strndup(s->a, last, strlen(last));
    const char *argv[5] = {ascending ? "ZRANGE" : "ZREVRANGE", k, "0", ls, "WITHSCORES"};
    if (!k || !ls || cmd_addv(s, &l, 5, argv) < 0 || cmd_add(s, &l, "ZCARD", k, NULL, NULL) < 0)
        return nomem(s);
    redisReply **reps;
    tsg_rc rc = run_cmds(s, &l, &reps);
    if (rc) return rc;
    const redisReply *r = reps[0];
    size_t m = r && r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0;
    row *rows = tsg_arena_zalloc(s->a, (m ? m : 1) * sizeof *rows);
    if (!rows) {
        free_replies(reps, l.n);
        return nomem(s);
    }
    for (size_t i = 0; i < m; i++) {
        rows[i].id = tsg_arena_strndup(s->a, r->element[2 * i]->str, r->element[2 * i]->len);
        rows[i].lu = strtod(r->element[2 * i + 1]->str, NULL);
        if (!rows[i].id) {
            free_replies(reps, l.n);
            return nomem(s);
        }
    }
    *total = reps[1] && reps[1]->integer > 0 ? (size_t)reps[1]->integer : m;
    if (*total < m) *total = m;
    free_replies(reps, l.n);
    /* ties: id ascending (Redis orders them by member) */
    qsort(rows, m, sizeof *rows, ascending ? cmp_row_lu_asc : cmp_row);
    *rows_out = rows;
    *n = m;
    return TSG_OK;
}

/* The ids of type in the compartments of the patients the client sees (sorted). */
static tsg_rc visible_ids(sx *s, const char *type, idset *out)
{
    out->n = 0;
    out->v = NULL;
    if (!s->view.n) return TSG_OK;
    cmdlist l = {0};
    for (size_t i = 0; i < s->view.n; i++) {
        const char *k = aprintf(s, "tsg:{%s}:comp", s->view.pids[i]);
        if (!k || cmd_add(s, &l, "SMEMBERS", k, NULL, NULL) < 0) return nomem(s);
    }
    redisReply **reps;
    tsg_rc rc = run_cmds(s, &l, &reps);
    if (rc) return rc;
    size_t tl = strlen(type), total = 0, cap = 0;
    for (size_t i = 0; i < l.n; i++)
        if (reps[i] && reps[i]->type == REDIS_REPLY_ARRAY) total += reps[i]->elements;
    out->v = tsg_arena_alloc(s->a, (total ? total : 1) * sizeof *out->v);
    if (!out->v) rc = nomem(s);
    cap = total;
    for (size_t i = 0; !rc && i < l.n; i++) {
        const redisReply *r = reps[i];
        for (size_t j = 0; r && r->type == REDIS_REPLY_ARRAY && j < r->elements; j++) {
            const redisReply *m = r->element[j];
            if (m->type != REDIS_REPLY_STRING || m->len <= tl + 1 || memcmp(m->str, type, tl) ||
                m->str[tl] != '/' || out->n >= cap)
                continue;
            if (out->n >= REST_SNAPSHOT_MAX_IDS) {
                rc = tsg_error_set(&s->err, TSG_EINVAL, "too-costly",
                                   "more than %u %s resources to list; add search parameters",
                                   REST_SNAPSHOT_MAX_IDS, type);
                break;
            }
            const char *id = tsg_arena_strndup(s->a, m->str + tl + 1, m->len - tl - 1);
            if (!id) {
                rc = nomem(s);
                break;
            }
            out->v[out->n++] = id;
        }
    }
    free_replies(reps, l.n);
    if (!rc) set_normalize(out);
    return rc;
}

/*
 * Parses p into a query and runs it: rows sorted, *total the number of
 * matches (rows may stop at REST_SNAPSHOT_MAX_IDS for a whole type). When
 * want_pre and the matches fit one page in an order the bodies give
 * (default, _lastUpdated, _id), the resources are read at once instead of
 * asking tsg:t for liveness and lastUpdated first: rows[i].res point into
 * *pre (malloc'd, *npre entries; the caller clears each and frees it).
 * Fails with s->err set.
 */
static tsg_rc search_rows(sx *s, const char *type, const params *p, int len, int want_pre,
                          search_query **qo, row **rows, size_t *n, size_t *total,
                          store_resource **pre, size_t *npre)
{
    *pre = NULL;
    *npre = 0;
    search_query *q = NULL;
    tsg_rc rc = search_query_parse(type, p->n, p->names, p->values, len, s->a, &q, &s->err);
    if (rc) return rc;
    *qo = q;
    int filt = sx_filters(s, type);
    if (filt < 0) return s->err.rc;
    idset ids;
    if (!q->nclauses && filt) {
        /* everything of a type the client sees only part of: the compartments
         * of its patients hold exactly that part */
        rc = visible_ids(s, type, &ids);
        if (!rc) rc = live_sorted(s, type, &ids, q, rows, n);
        *total = *n;
        return rc;
    }
    if (!q->nclauses &&
        (!q->nsort || (q->nsort == 1 && !strcmp(q->sort[0].param->code, "_lastUpdated"))))
        return newest_rows(s, type, q->nsort && !q->sort[0].descending, rows, n, total);
    rc = run_clauses(s, type, q->clauses, q->nclauses, &ids, 0);
    if (rc) return rc;
    size_t count = q->count < 0 ? REST_LIMIT_COUNT_DEFAULT : (size_t)q->count;
    int direct =
        want_pre && ids.n && ids.n <= count && !(q->summary && !strcmp(q->summary, "count"));
    for (size_t i = 0; direct && i < q->nsort; i++)
        if (strcmp(q->sort[i].param->code, "_id") && strcmp(q->sort[i].param->code, "_lastUpdated"))
            direct = 0;
    if (!direct) {
        rc = live_sorted(s, type, &ids, q, rows, n);
        *total = *n;
        return rc;
    }
    const char **refs = tsg_arena_alloc(s->a, ids.n * sizeof *refs);
    row *rw = tsg_arena_zalloc(s->a, ids.n * sizeof *rw);
    store_resource *res = calloc(ids.n, sizeof *res);
    if (!refs || !rw || !res) {
        free(res);
        return nomem(s);
    }
    for (size_t i = 0; i < ids.n; i++)
        if (!(refs[i] = aprintf(s, "%s/%s", type, ids.v[i]))) {
            free(res);
            return nomem(s);
        }
    rc = store_read_many(s->ctx->st, ids.n, refs, res, &s->err);
    if (rc) {
        free(res);
        return rc;
    }
    size_t m = 0;
    for (size_t i = 0; i < ids.n; i++) {
        if (!res[i].found || res[i].deleted || !res[i].body) continue;
        if (filt && !rest_view_sees(&s->view, type, res[i].compartment)) continue;
        rw[m].id = ids.v[i];
        rw[m].lu = (double)res[i].lu_ms;
        rw[m].res = &res[i];
        m++;
    }
    sort_spec spec = {q->nsort, q->nsort ? q->sort : NULL};
    g_sort = &spec;
    qsort(rw, m, sizeof *rw, cmp_row);
    g_sort = NULL;
    *rows = rw;
    *n = *total = m;
    *pre = res;
    *npre = ids.n;
    return TSG_OK;
}

/* Releases what search_rows() read ahead. */
static void pre_free(store_resource *pre, size_t n)
{
    for (size_t i = 0; pre && i < n; i++) store_resource_clear(&pre[i]);
    free(pre);
}

static void answer_search(sx *sp, http_response *resp, const char *type, const params *pp,
                          const search_query *q, const row *rows, size_t n, size_t total, int pre);

void rest_search(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type)
{
    resp->interaction = "search-type";
    sx s;
    sx_init(&s, req, ctx);
    params p = {0};
    for (size_t i = 0; i < req->n_params; i++)
        if (param_add(&s, &p, req->params[i].name, req->params[i].value)) {
            rest_fail_err(req, resp, 400, &s.err);
            return;
        }
    if (req->method == HTTP_POST && req->body_len) {
        const char *ct = http_header(req, "Content-Type");
        if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
            rest_fail(req, resp, 415, "not-supported",
                      "POST _search takes an application/x-www-form-urlencoded body");
            return;
        }
        if (params_from_form(&s, &p, req->body, req->body_len)) {
            rest_fail_err(req, resp, 400, &s.err);
            return;
        }
    }
    search_query *q = NULL;
    row *rows = NULL;
    size_t n = 0, total = 0, npre = 0;
    store_resource *pre = NULL;
    if (search_rows(&s, type, &p, lenient(req), 1, &q, &rows, &n, &total, &pre, &npre)) {
        rest_fail_err(req, resp, 400, &s.err);
        return;
    }
    answer_search(&s, resp, type, &p, q, rows, n, total, pre != NULL);
    pre_free(pre, npre);
}

/* Answers the first page of a search that gave rows[0..n) (total matches);
 * pre: the rows' resources are read already. */
static void answer_search(sx *sp, http_response *resp, const char *type, const params *pp,
                          const search_query *q, const row *rows, size_t n, size_t total, int pre)
{
    sx s = *sp;
    const params p = *pp;
    const http_request *req = s.req;
    size_t count = q->count < 0 ? REST_LIMIT_COUNT_DEFAULT : (size_t)q->count;
    if (count > REST_LIMIT_COUNT_MAX) count = REST_LIMIT_COUNT_MAX;
    if (q->summary && strcmp(q->summary, "count") && strcmp(q->summary, "true") &&
        strcmp(q->summary, "text") && strcmp(q->summary, "data") && strcmp(q->summary, "false")) {
        rest_fail(req, resp, 400, "invalid",
                  "_summary=%s is not supported (true, text, data, count, false)", q->summary);
        return;
    }
    for (size_t i = 0; i < q->ninclude; i++)
        if (q->include[i].reverse && !q->include[i].source_type) {
            rest_fail(req, resp, 501, "not-supported",
                      "_revinclude=* is not supported; name the type and parameter");
            return;
        }
    int count_only = count == 0 || (q->summary && !strcmp(q->summary, "count"));
    size_t np = count_only ? 0 : n < count ? n : count;
    size_t nrefs = n > count && !count_only ? n : np;
    if (nrefs > REST_SNAPSHOT_MAX_IDS) nrefs = REST_SNAPSHOT_MAX_IDS;
    const char **refs = tsg_arena_alloc(s.a, (nrefs ? nrefs : 1) * sizeof *refs);
    if (!refs) {
        rest_fail(req, resp, 500, "exception", "out of memory");
        return;
    }
    for (size_t i = 0; i < nrefs; i++) {
        refs[i] = aprintf(&s, "%s/%s", type, rows[i].id);
        if (!refs[i]) {
            rest_fail(req, resp, 500, "exception", "out of memory");
            return;
        }
    }
    page_info pi = {.count = count,
                    .total = total,
                    .show_total = q->total != SEARCH_TOTAL_NONE,
                    .count_only = count_only,
                    .q = q,
                    .outq = q,
                    .pre = pre ? rows : NULL};
    /* self: the search as understood (ignored parameters left out) */
    tsg_buf b;
    tsg_buf_init(&b, 1u << 20);
    tsg_buf_printf(&b, "%s/%s", s.base, type);
    int sep = '?';
    for (size_t i = 0; i < p.n; i++) {
        int ignored = 0;
        for (size_t k = 0; k < q->nignored; k++) {
            size_t nl = strlen(p.names[i]);
            if (!strncmp(q->ignored[k], p.names[i], nl) && q->ignored[k][nl] == '=' &&
                !strcmp(q->ignored[k] + nl + 1, p.values[i]))
                ignored = 1;
        }
        if (ignored) continue;
        tsg_buf_putc(&b, (char)sep);
        sep = '&';
        url_encode(&b, p.names[i]);
        tsg_buf_putc(&b, '=');
        url_encode(&b, p.values[i]);
    }
    pi.self = tsg_buf_rc(&b) ? s.base : tsg_arena_strndup(s.a, b.data, b.len);
    tsg_buf_free(&b);
    if (nrefs > np) {
        const char *h = snap_header(&s, type, (int)q->total, &p);
        if (!h || snapshot(&s, h, refs, nrefs, &pi.snap)) {
            if (!h) nomem(&s);
            rest_fail_err(req, resp, 500, &s.err);
            return;
        }
    }
    write_page(&s, resp, refs, np, &pi);
}

void rest_search_page(const http_request *req, http_response *resp, rest_ctx *ctx)
{
    resp->interaction = "search-page";
    sx s;
    sx_init(&s, req, ctx);
    const char *id = http_param_get(req, "_getpages");
    const char *off_s = http_param_get(req, "_offset");
    const char *cnt_s = http_param_get(req, "_count");
    char *end;
    long off = off_s ? strtol(off_s, &end, 10) : 0;
    if (!id || !rest_id_valid(id) || (off_s && (*end || off < 0))) {
        rest_fail(req, resp, 400, "invalid", "_getpages needs a snapshot id and _offset >= 0");
        return;
    }
    long cnt = cnt_s ? strtol(cnt_s, &end, 10) : (long)REST_LIMIT_COUNT_DEFAULT;
    if (cnt_s && (*end || cnt < 0)) {
        rest_fail(req, resp, 400, "invalid", "_count=%s is not a count", cnt_s);
        return;
    }
    if (cnt > (long)REST_LIMIT_COUNT_MAX) cnt = REST_LIMIT_COUNT_MAX;
    const char *key = snap_key(&s, id);
    char a[24], b[24];
    snprintf(a, sizeof a, "%ld", off + 1);
    snprintf(b, sizeof b, "%ld", off + cnt);
    cmdlist l = {0};
    const char *as = tsg_arena_strndup(s.a, a, strlen(a)),
               *bs = tsg_arena_strndup(s.a, b, strlen(b));
    if (!key || !as || !bs || cmd_add(&s, &l, "LINDEX", key, "0", NULL) < 0 ||
        cmd_add(&s, &l, "LLEN", key, NULL, NULL) < 0 ||
        cmd_add(&s, &l, "LRANGE", key, as, bs) < 0) {
        rest_fail(req, resp, 500, "exception", "out of memory");
        return;
    }
    redisReply **reps;
    if (run_cmds(&s, &l, &reps)) {
        rest_fail_err(req, resp, 500, &s.err);
        return;
    }
    if (!reps[0] || reps[0]->type != REDIS_REPLY_STRING) {
        free_replies(reps, l.n);
        rest_fail(req, resp, 410, "not-found",
                  "the search result %s has expired (results are kept %d minutes); search again",
                  id, REST_SNAPSHOT_TTL_S / 60);
        return;
    }
    char *hdr = tsg_arena_strndup(s.a, reps[0]->str, reps[0]->len);
    size_t total = reps[1] && reps[1]->integer > 0 ? (size_t)reps[1]->integer - 1 : 0;
    idset page;
    tsg_rc rc = hdr ? reply_strings(&s, reps[2], &page) : nomem(&s);
    free_replies(reps, l.n);
    if (rc) {
        rest_fail_err(req, resp, 500, &s.err);
        return;
    }
    /* header: kind \x01 total-mode { \x01 name \x02 value } */
    params p = {0};
    char *kind = hdr, *f = strchr(hdr, '\x01');
    int total_mode = 0;
    if (f) {
        *f++ = 0;
        total_mode = (int)strtol(f, NULL, 10);
        f = strchr(f, '\x01');
    }
    while (f) {
        *f++ = 0;
        char *nx = strchr(f, '\x01');
        if (nx) *nx = 0;
        char *v = strchr(f, '\x02');
        if (v) {
            *v++ = 0;
            if (param_add(&s, &p, f, v)) break;
        }
        if (nx) *nx = '\x01';
        f = nx;
    }
    search_query *q = NULL;
    int everything = !strcmp(kind, "$everything");
    if (!everything &&
        search_query_parse(kind, p.n, p.names, p.values, 1, s.a, &q, &s.err) != TSG_OK)
        q = NULL;
    page_info pi = {.self = pages_url(&s, id, (size_t)off, (size_t)cnt),
                    .snap = id,
                    .offset = (size_t)off,
                    .count = (size_t)cnt,
                    .total = total,
                    .show_total = total_mode != SEARCH_TOTAL_NONE,
                    .q = q,
                    .everything_refs = everything};
    write_page(&s, resp, page.v, page.n, &pi);
}

/* ------------------------------------------------------------------------
 * Conditional interactions
 * ------------------------------------------------------------------------ */

/* Runs the criteria p on type; answers an error and returns -1 on failure. */
static long count_match(sx *s, http_response *resp, const char *type, const params *p,
                        const char **first)
{
    *first = NULL;
    search_query *q = NULL;
    row *rows = NULL;
    size_t n = 0;
    size_t total = 0, npre = 0;
    store_resource *pre = NULL;
    if (search_rows(s, type, p, 0, 0, &q, &rows, &n, &total, &pre, &npre)) {
        rest_fail_err(s->req, resp, 400, &s->err);
        return -1;
    }
    if (!q->nclauses) {
        rest_fail(s->req, resp, 400, "invalid",
                  "a conditional interaction needs search criteria on %s", type);
        return -1;
    }
    if (n) *first = rows[0].id;
    return (long)n;
}

long rest_search_count_match(const http_request *req, http_response *resp, rest_ctx *ctx,
                             const char *type, const char *query, const char **first)
{
    sx s;
    sx_init(&s, req, ctx);
    params p = {0};
    /* "Patient?identifier=…" as some clients write it: the query part */
    const char *qm = strchr(query, '?');
    const char *eq = strchr(query, '=');
    if (qm && (!eq || qm < eq)) query = qm + 1;
    if (params_from_form(&s, &p, query, strlen(query))) {
        rest_fail_err(req, resp, 400, &s.err);
        return -1;
    }
    return count_match(&s, resp, type, &p, first);
}

/* Deletes Type/id (as DELETE /fhir/Type/id without If-Match). */
static void delete_one(sx *s, http_response *resp, const char *type, const char *id)
{
    const http_request *req = s->req;
    for (unsigned attempt = 0; attempt < REST_LIMIT_RETRIES; attempt++) {
        store_resource cur;
        if (store_read(s->ctx->st, type, id, 0, &cur, &s->err)) {
            rest_fail_err(req, resp, 500, &s->err);
            return;
        }
        long v = cur.found ? cur.version : 0;
        int live = cur.found && !cur.deleted;
        if (!live) {
            store_resource_clear(&cur);
            break;
        }
        store_write w = rest_delete_write(type, id, v);
        /* the search found only what the client sees; the write rule still applies */
        int denied = rest_deny_write(req, resp, s->ctx, type, 0, &cur, &w);
        store_resource_clear(&cur);
        if (denied) return;
        int conflict;
        if (rest_commit(req, resp, s->ctx, &w, 1, rest_now_ms(), 200, &w, &conflict, &s->err)) {
            rest_fail_err(req, resp, 500, &s->err);
            return;
        }
        if (conflict < 0) {
            char etag[40], msg[256];
            snprintf(etag, sizeof etag, "W/\"%ld\"", v + 1);
            http_response_header_add(resp, "ETag", etag);
            snprintf(msg, sizeof msg, "%s/%s deleted (version %ld)", type, id, v + 1);
            http_respond_outcome(resp, 200, "information", "informational", msg, NULL, req->format);
            return;
        }
    }
    http_respond_outcome(resp, 200, "information", "informational",
                         "nothing to delete: the resource does not exist or is deleted", NULL,
                         req->format);
}

void rest_conditional(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type)
{
    sx s;
    sx_init(&s, req, ctx);
    resp->interaction = req->method == HTTP_PUT      ? "update-conditional"
                        : req->method == HTTP_DELETE ? "delete-conditional"
                                                     : "patch-conditional";
    params p = {0};
    for (size_t i = 0; i < req->n_params; i++) {
        const char *nm = req->params[i].name;
        if (!strcmp(nm, "_format") || !strcmp(nm, "_pretty")) continue;
        if (param_add(&s, &p, nm, req->params[i].value)) {
            rest_fail_err(req, resp, 400, &s.err);
            return;
        }
    }
    fhir_node *root = NULL;
    if (req->method == HTTP_PUT) {
        /* the body first: a malformed body is 400 whatever matches */
        root = rest_parse_body(req, resp);
        if (!root) return;
        if (strcmp(root->type->name, type)) {
            rest_fail(req, resp, 400, "invalid", "the body is a %s, but the URL says %s",
                      root->type->name, type);
            return;
        }
    }
    const char *first = NULL;
    long n = count_match(&s, resp, type, &p, &first);
    if (n < 0) return;
    if (n > 1) {
        rest_fail(req, resp, 412, "multiple-matches",
                  "%ld %s resources match the criteria; a conditional %s needs at most one", n,
                  type, req->method_name);
        return;
    }
    if (req->method == HTTP_PUT) {
        const char *bid = rest_child_value(root, "id");
        if (n == 1) {
            if (bid && strcmp(bid, first)) {
                rest_fail(req, resp, 400, "invalid",
                          "the body's id %s is not the id %s of the matching resource", bid, first);
                return;
            }
            rest_write_resource(req, resp, ctx, root, first, 0, 0);
            return;
        }
        char nid[37];
        if (bid && !rest_id_valid(bid)) {
            rest_fail(req, resp, 400, "invalid", "'%s' is not a valid FHIR id", bid);
            return;
        }
        if (!bid) rest_new_id(nid);
        /* no match: create; an id given that already exists is 409 (R4 3.1.0.4.3) */
        rest_write_resource(req, resp, ctx, root, bid ? bid : nid, 0, bid ? 1 : 2);
        return;
    }
    if (req->method == HTTP_DELETE) {
        if (n == 0) {
            http_respond_outcome(resp, 200, "information", "informational",
                                 "nothing to delete: no resource matches the criteria", NULL,
                                 req->format);
            return;
        }
        delete_one(&s, resp, type, first);
        return;
    }
    if (n == 0) {
        rest_fail(req, resp, 404, "not-found", "no %s resource matches the criteria", type);
        return;
    }
    rest_patch(req, resp, ctx, type, first);
}

/* ------------------------------------------------------------------------
 * $everything
 * ------------------------------------------------------------------------ */

/* Patient first, then by type and id. */
static int cmp_everything(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int px = !strncmp(x, "Patient/", 8), py = !strncmp(y, "Patient/", 8);
    if (px != py) return px ? -1 : 1;
    return strcmp(x, y);
}

void rest_everything(const http_request *req, http_response *resp, rest_ctx *ctx, const char *id)
{
    resp->interaction = "everything";
    sx s;
    sx_init(&s, req, ctx);
    size_t count = REST_LIMIT_COUNT_DEFAULT;
    for (size_t i = 0; i < req->n_params; i++) {
        const http_param *hp = &req->params[i];
        if (!strcmp(hp->name, "_count")) {
            char *end;
            long c = strtol(hp->value, &end, 10);
            if (*end || c < 0 || !*hp->value) {
                rest_fail(req, resp, 400, "invalid", "_count=%s is not a count", hp->value);
                return;
            }
            count = (size_t)c > REST_LIMIT_COUNT_MAX ? REST_LIMIT_COUNT_MAX : (size_t)c;
        } else if (strcmp(hp->name, "_format") && strcmp(hp->name, "_pretty")) {
            rest_fail(req, resp, 400, "not-supported",
                      "$everything does not support the parameter %s (only _count)", hp->name);
            return;
        }
    }
    store_resource pr;
    if (store_read(ctx->st, "Patient", id, 0, &pr, &s.err)) {
        rest_fail_err(req, resp, 500, &s.err);
        return;
    }
    int live = pr.found && !pr.deleted;
    if (pr.found && rest_hide(req, resp, ctx, "Patient", id, pr.compartment)) {
        store_resource_clear(&pr);
        return;
    }
    store_resource_clear(&pr);
    if (!live) {
        rest_fail(req, resp, 404, "not-found", "Patient/%s is not known", id);
        return;
    }
    cmdlist l = {0};
    const char *key = aprintf(&s, "tsg:{%s}:comp", id);
    redisReply **reps;
    if (!key || cmd_add(&s, &l, "SMEMBERS", key, NULL, NULL) < 0) {
        rest_fail(req, resp, 500, "exception", "out of memory");
        return;
    }
    if (run_cmds(&s, &l, &reps)) {
        rest_fail_err(req, resp, 500, &s.err);
        return;
    }
    idset refs;
    tsg_rc rc = reply_strings(&s, reps[0], &refs);
    free_replies(reps, l.n);
    if (rc) {
        rest_fail_err(req, resp, 500, &s.err);
        return;
    }
    const char *self_ref = aprintf(&s, "Patient/%s", id);
    int has_self = 0;
    for (size_t i = 0; i < refs.n; i++)
        if (self_ref && !strcmp(refs.v[i], self_ref)) has_self = 1;
    if (!has_self && self_ref) {
        const char **nv = tsg_arena_alloc(s.a, (refs.n + 1) * sizeof *nv);
        if (!nv) {
            rest_fail(req, resp, 500, "exception", "out of memory");
            return;
        }
        if (refs.n) memcpy(nv, refs.v, refs.n * sizeof *nv);
        nv[refs.n++] = self_ref;
        refs.v = nv;
    }
    qsort(refs.v, refs.n, sizeof *refs.v, cmp_everything);
    size_t np = refs.n < count ? refs.n : count;
    page_info pi = {.count = count,
                    .total = refs.n,
                    .show_total = 1,
                    .count_only = count == 0,
                    .everything_refs = 1};
    pi.self = aprintf(&s, "%s/Patient/%s/$everything?_count=%zu", s.base, id, count);
    if (!pi.self) {
        rest_fail(req, resp, 500, "exception", "out of memory");
        return;
    }
    if (refs.n > np && count) {
        const char *h = snap_header(&s, "$everything", 0, NULL);
        if (!h || snapshot(&s, h, refs.v, refs.n, &pi.snap)) {
            if (!h) nomem(&s);
            rest_fail_err(req, resp, 500, &s.err);
            return;
        }
    }
    write_page(&s, resp, refs.v, count ? np : 0, &pi);
}
