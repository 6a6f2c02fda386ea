/*
 * fhir_bundle.c — transactions and batches: POST /fhir with a Bundle of type
 * `transaction` or `batch` (FHIR R4 §3.1.0.11).
 *
 * ## A transaction
 *
 *   1. parse: the Bundle is parsed once; every entry's request (method, url,
 *      ifNoneExist, ifMatch) and resource is checked; the fullUrls of POST and
 *      PUT entries go into a table, and every Reference.reference in every
 *      entry resource (contained resources and extensions included) that is a
 *      `urn:uuid:`/`urn:oid:` placeholder or a conditional reference
 *      (`Patient?identifier=…`) is remembered with its original text;
 *   2. resolve (processing order DELETE, POST, PUT/PATCH): POST entries get a
 *      new id (or, when ifNoneExist matches one resource, the existing one and
 *      no write); conditional PUT/DELETE/PATCH urls and conditional references
 *      are resolved through search (several matches: 412; no match for a
 *      conditional reference: 400). A conditional reference whose text is
 *      `Type?` + the ifNoneExist (or conditional PUT criteria) of an entry of
 *      this transaction names that entry's resource; each distinct one is
 *      searched once. Every placeholder reference becomes `Type/id`; two
 *      entries for the same resource are 400;
 *   3. read: the current versions of every target with one store_read_many()
 *      pipeline; ifMatch is checked (412);
 *   4. prepare: each resource gets id, meta, its JSON body and index entries;
 *   5. commit: ONE store_commit() for the whole write set, every resource at
 *      the version read. When another writer changed one of them in between,
 *      steps 2–5 run again (REST_LIMIT_RETRIES), then 409; an entry with
 *      ifMatch gets 412 at once.
 *   6. GET/HEAD entries are read after the writes (read, vread, search).
 *
 * Any failure before the commit answers an OperationOutcome with the failing
 * entry (`Bundle.entry[3]`) as its location and nothing is written. The
 * response is a transaction-response Bundle with one entry per request entry
 * in the original order (status, location `Type/id/_history/v`, etag,
 * lastModified; the resource with `Prefer: return=representation`).
 *
 * ## A batch
 *
 * Each entry runs the same steps on its own (its own store_commit); a failure
 * becomes that entry's response (status and OperationOutcome) and the others
 * go on. References are not rewritten in a batch (its entries must not depend
 * on each other).
 *
 * PATCH entries carry a Binary whose contentType is application/json-patch+json
 * and whose data is the JSON Patch (base64), as FHIR R4 specifies.
 */
#include "rest_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum tx_method { M_DELETE, M_POST, M_PUT, M_PATCH, M_GET, M_HEAD } tx_method;

/* One entry of the request Bundle. */
typedef struct tx_entry {
    size_t idx; /* position in the request Bundle */
    tx_method m;
    const char *method; /* as written */
    const char *url;
    const char *full_url;
    fhir_node *res;     /* the entry's resource as a root (elem NULL), or NULL */
    const char *type;   /* target type */
    const char *url_id; /* Type/id in the url, or NULL */
    long url_version;   /* GET Type/id/_history/v */
    const char *query;  /* conditional or search query, or NULL */
    const char *if_none_exist;
    long if_match; /* 0: none */
    char new_id[37];
    const char *patch; /* PATCH: the JSON Patch document */
    size_t patch_len;
    /* one attempt */
    const char *id;  /* the resolved target id */
    const char *ref; /* "Type/id" */
    int exists;      /* POST whose ifNoneExist matched: no write */
    int noop;        /* DELETE of nothing, or a PATCH that changes nothing */
    long cur_version;
    int cur_live;
    const char *cur_body;
    size_t cur_len;
    long long cur_lu;
    const char *cur_comp; /* the current version's patient compartment ("") */
    int has_write;
    store_write w;
    /* result */
    int status;
    long version;
    long long lu_ms;
    const char *body;
    size_t body_len;
    /* failure */
    int fail_status;
    const char *fail_code;
    const char *fail_msg;
} tx_entry;

/* A string-keyed table (open addressing, a power-of-two size) in the arena. */
typedef struct smap {
    size_t cap;
    const char **key;
    long *val;
} smap;

/* A reference to rewrite: node (a Reference.reference primitive) had text orig. */
typedef struct tx_ref {
    fhir_node *n;
    const char *orig;
    long entry; /* the entry whose fullUrl it names; -1: a conditional reference */
    size_t owner;
} tx_ref;

typedef struct tx {
    const http_request *req;
    http_response *resp; /* the transaction's audit record is committed with it */
    rest_ctx *ctx;
    tsg_arena *a;
    int batch;
    size_t n;
    tx_entry *e;
    tx_entry **order; /* processing order */
    smap full;        /* fullUrl -> entry (POST and PUT entries) */
    smap cond;        /* "Type?criteria" of ifNoneExist / conditional PUT -> entry */
    tx_ref *refs;
    size_t nrefs, refs_cap;
    const model_type *reference_t;
    tx_entry *failed; /* transaction: the failing entry */
    int prefer_repr;
    int oom;
} tx;

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static const char *method_name(tx_method m)
{
    static const char *const names[] = {"DELETE", "POST", "PUT", "PATCH", "GET", "HEAD"};
    return names[m];
}

static const char *status_text(int st)
{
    switch (st) {
    case 200:
        return "200 OK";
    case 201:
        return "201 Created";
    case 204:
        return "204 No Content";
    case 400:
        return "400 Bad Request";
    case 404:
        return "404 Not Found";
    case 409:
        return "409 Conflict";
    case 410:
        return "410 Gone";
    case 412:
        return "412 Precondition Failed";
    case 413:
        return "413 Payload Too Large";
    case 415:
        return "415 Unsupported Media Type";
    case 422:
        return "422 Unprocessable Entity";
    case 501:
        return "501 Not Implemented";
    case 503:
        return "503 Service Unavailable";
    default:
        return st < 500 ? "400 Bad Request" : "500 Internal Server Error";
    }
}

static fhir_node *child(const fhir_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->nkids; i++)
        if (!strcmp(n->kids[i].elem->name, name)) return &n->kids[i];
    return NULL;
}

static char *astrdup(tx *t, const char *s)
{
    char *r = tsg_arena_strndup(t->a, s, strlen(s));
    if (!r) t->oom = 1;
    return r;
}

/* Records the failure of entry e (the first one counts). */
static int entry_fail(tx *t, tx_entry *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int entry_fail(tx *t, tx_entry *e, int status, const char *code, const char *fmt, ...)
{
    if (!e->fail_status) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        e->fail_status = status;
        e->fail_code = code;
        e->fail_msg = tsg_arena_strndup(t->a, msg, strlen(msg));
        if (!e->fail_msg) e->fail_msg = "out of memory";
    }
    if (!t->batch && !t->failed) t->failed = e;
    return -1;
}

/* Fails e with err (rc decides the status, as rest_fail_err). */
static int entry_fail_err(tx *t, tx_entry *e, int invalid_status, const tsg_error *err)
{
    int st = err->rc == TSG_EINVAL    ? invalid_status
             : err->rc == TSG_ELIMIT  ? 413
             : err->rc == TSG_EIO     ? 503
             : err->rc == TSG_ENOTSUP ? 501
                                      : 500;
    return entry_fail(t, e, st, err->code ? err->code : tsg_rc_code(err->rc), "%s%s%s",
                      err->message, err->location[0] ? " at " : "", err->location);
}

/* Parses `W/"n"` or `"n"` or `n`; 0 when malformed. */
static long parse_etag(const char *h)
{
    if (!strncmp(h, "W/", 2)) h += 2;
    if (*h == '"') h++;
    char *end;
    long x = strtol(h, &end, 10);
    if (end == h || x <= 0 || (*end && strcmp(end, "\""))) return 0;
    return x;
}

static int b64v(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes base64 s into the arena; NULL when malformed. */
static char *b64_decode(tsg_arena *a, const char *s, size_t n, size_t *out_len)
{
    char *out = tsg_arena_alloc(a, n / 4 * 3 + 4);
    if (!out) return NULL;
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (c == ' ' || c == '\n' || c == '\r') continue;
        int v = b64v(c);
        if (v < 0 || pad) return NULL;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (pad > 2) return NULL;
    out[k] = 0;
    *out_len = k;
    return out;
}

/* Writes an OperationOutcome with one issue as JSON text into b. */
static void outcome_json(tsg_buf *b, const char *code, const char *msg, const char *loc)
{
    tsg_buf_puts(b, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\","
                    "\"code\":\"");
    http_json_escape(b, code, strlen(code));
    tsg_buf_puts(b, "\",\"diagnostics\":\"");
    http_json_escape(b, msg, strlen(msg));
    tsg_buf_putc(b, '"');
    if (loc) {
        tsg_buf_puts(b, ",\"expression\":[\"");
        http_json_escape(b, loc, strlen(loc));
        tsg_buf_puts(b, "\"]");
    }
    tsg_buf_puts(b, "}]}");
}

/* An empty response as the HTTP layer would give a handler. */
static void scratch_init(http_response *s, tsg_arena *a)
{
    memset(s, 0, sizeof *s);
    s->status = 200;
    tsg_buf_init(&s->body, 0);
    s->arena = a;
}

/* Takes the first issue's code and diagnostics out of a JSON OperationOutcome. */
static void outcome_text(tsg_arena *a, const tsg_buf *b, const char **code, const char **msg)
{
    *code = "exception";
    *msg = "the request failed";
    json_t *j = b->len ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    json_t *is = j ? json_array_get(json_object_get(j, "issue"), 0) : NULL;
    const char *c = json_string_value(json_object_get(is, "code"));
    const char *d = json_string_value(json_object_get(is, "diagnostics"));
    if (c) *code = tsg_arena_strndup(a, c, strlen(c));
    if (d) *msg = tsg_arena_strndup(a, d, strlen(d));
    if (!*code) *code = "exception";
    if (!*msg) *msg = "the request failed";
    json_decref(j);
}

/*
 * Counts the resources of type matching query through the search module;
 * -1 after failing e (what: which part of the entry asked).
 */
static long count_match(tx *t, tx_entry *e, const char *type, const char *query, const char **first,
                        const char *what)
{
    http_request r = *t->req;
    r.format = HTTP_FORMAT_JSON;
    r.pretty = false;
    http_response s;
    scratch_init(&s, t->a);
    long n = rest_search_count_match(&r, &s, t->ctx, type, query, first);
    if (n < 0) {
        const char *code, *msg;
        outcome_text(t->a, &s.body, &code, &msg);
        int st = s.status >= 400 ? s.status : 500;
        tsg_buf_free(&s.body);
        entry_fail(t, e, st, code, "%s %s?%s: %s", what, type, query, msg);
        return -1;
    }
    tsg_buf_free(&s.body);
    return n;
}

/* ------------------------------------------------------------------------
 * Step 1: the entries
 * ------------------------------------------------------------------------ */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Creates an empty table for about n keys in arena a; 0 or -1 (out of memory). */
static int smap_init(tsg_arena *a, smap *m, size_t n)
{
    m->cap = 16;
    while (m->cap < 2 * n) m->cap *= 2;
    m->key = tsg_arena_zalloc(a, m->cap * sizeof *m->key);
    m->val = tsg_arena_alloc(a, m->cap * sizeof *m->val);
    return m->key && m->val ? 0 : -1;
}

/* The value of key k, or -1. */
static long smap_get(const smap *m, const char *k)
{
    if (!m->cap) return -1;
    for (size_t i = hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->key[i]) return -1;
        if (!strcmp(m->key[i], k)) return m->val[i];
    }
}

/* Adds k -> v (k must outlive the table); when k is there already, keeps it
 * and returns its value, otherwise returns -1. At most cap/2 keys. */
static long smap_put(smap *m, const char *k, long v)
{
    for (size_t i = hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->key[i]) {
            m->key[i] = k;
            m->val[i] = v;
            return -1;
        }
        if (!strcmp(m->key[i], k)) return m->val[i];
    }
}

/* Parses request.url of e into type, id, version, query. */
static int parse_url(tx *t, tx_entry *e)
{
    const char *u = e->url;
    const char *base = rest_base_url(t->req);
    size_t bl = strlen(base);
    if (!strncmp(u, base, bl) && u[bl] == '/')
        u += bl + 1;
    else if (strstr(u, "://"))
        return entry_fail(t, e, 400, "invalid",
                          "request.url %s is an absolute URL that is not on this server (%s)",
                          e->url, base);
    while (*u == '/') u++;
    const char *q = strchr(u, '?');
    size_t plen = q ? (size_t)(q - u) : strlen(u);
    char *path = tsg_arena_strndup(t->a, u, plen);
    if (!path) return t->oom = 1, -1;
    if (q) e->query = astrdup(t, q + 1);
    const char *seg[5];
    size_t nseg = 0;
    for (char *p = path; nseg < 5;) {
        char *sl = strchr(p, '/');
        if (sl) *sl = 0;
        seg[nseg++] = p;
        if (!sl) break;
        p = sl + 1;
    }
    for (size_t i = 0; i < nseg; i++)
        if (seg[i][0] == '$')
            return entry_fail(t, e, 501, "not-supported",
                              "request.url %s: operations (%s) in Bundle entries are not supported",
                              e->url, seg[i]);
    const model_type *mt = model_resource_find(seg[0], strlen(seg[0]));
    if (!mt)
        return entry_fail(t, e, 400, "not-supported",
                          "request.url %s does not start with an R4 resource type", e->url);
    e->type = mt->name;
    if (nseg == 1) return 0;
    if (nseg == 2 || (nseg == 4 && !strcmp(seg[2], "_history"))) {
        if (!rest_id_valid(seg[1]))
            return entry_fail(t, e, 400, "invalid", "request.url %s: '%s' is not a valid id",
                              e->url, seg[1]);
        e->url_id = seg[1];
        if (nseg == 4) {
            char *end;
            e->url_version = strtol(seg[3], &end, 10);
            if (*end || e->url_version <= 0)
                return entry_fail(t, e, 400, "invalid", "request.url %s: '%s' is not a version",
                                  e->url, seg[3]);
        }
        return 0;
    }
    return entry_fail(t, e, 400, "not-supported",
                      "request.url %s is not an interaction a Bundle entry can carry", e->url);
}

/* Reads entry node en into e and checks it. */
static int parse_entry(tx *t, tx_entry *e, const fhir_node *en)
{
    e->full_url = rest_child_value(en, "fullUrl");
    const fhir_node *res = child(en, "resource");
    const fhir_node *rq = child(en, "request");
    if (!rq) return entry_fail(t, e, 400, "required", "the entry has no request");
    const char *m = rest_child_value(rq, "method");
    e->url = rest_child_value(rq, "url");
    e->method = m ? m : "";
    if (!m || !e->url)
        return entry_fail(t, e, 400, "required", "the entry's request needs method and url");
    static const char *const names[] = {"DELETE", "POST", "PUT", "PATCH", "GET", "HEAD"};
    size_t k = 0;
    while (k < 6 && strcmp(names[k], m)) k++;
    if (k == 6) return entry_fail(t, e, 400, "invalid", "request.method %s is not an HTTP verb", m);
    e->m = (tx_method)k;
    if (res) {
        fhir_node *r = tsg_arena_alloc(t->a, sizeof *r);
        if (!r) return t->oom = 1, -1;
        *r = *res;
        r->elem = NULL;
        r->pos = 0;
        e->res = r;
    }
    const char *ine = rest_child_value(rq, "ifNoneExist");
    const char *im = rest_child_value(rq, "ifMatch");
    if (im && !(e->if_match = parse_etag(im)))
        return entry_fail(t, e, 400, "invalid", "request.ifMatch %s is not W/\"<version>\"", im);
    if (parse_url(t, e)) return -1;
    int cond = e->query != NULL;
    switch (e->m) {
    case M_POST:
        if (e->url_id || cond)
            return entry_fail(t, e, 400, "invalid",
                              "a POST entry's request.url is the resource type (%s)", e->url);
        if (ine) {
            const char *q = strchr(ine, '?');
            e->if_none_exist = q ? q + 1 : ine;
        }
        break;
    case M_PUT:
    case M_DELETE:
    case M_PATCH:
        if (!((e->url_id && !e->url_version && !cond) || (!e->url_id && cond && *e->query)))
            return entry_fail(t, e, 400, "invalid",
                              "a %s entry's request.url is Type/id or Type?criteria (%s)", m,
                              e->url);
        break;
    case M_GET:
    case M_HEAD:
        if (e->url_id && cond)
            return entry_fail(t, e, 400, "not-supported",
                              "request.url %s: parameters on a read are not supported", e->url);
        break;
    }
    if (e->m == M_POST || e->m == M_PUT) {
        if (!e->res) return entry_fail(t, e, 400, "required", "a %s entry needs a resource", m);
        if (strcmp(e->res->type->name, e->type))
            return entry_fail(t, e, 400, "invalid", "the entry's resource is a %s, but %s says %s",
                              e->res->type->name, e->url, e->type);
        const char *rid = rest_child_value(e->res, "id");
        if (e->m == M_PUT && e->url_id && rid && strcmp(rid, e->url_id))
            return entry_fail(t, e, 400, "invalid", "the resource's id %s is not the url's id %s",
                              rid, e->url_id);
    }
    if (e->m == M_PATCH) {
        if (!e->res)
            return entry_fail(t, e, 400, "required",
                              "a PATCH entry needs a Binary resource holding a JSON Patch");
        if (strcmp(e->res->type->name, "Binary"))
            return entry_fail(t, e, 501, "not-supported",
                              "PATCH entries take a Binary with a JSON Patch; %s (FHIRPath "
                              "Patch) is not supported",
                              e->res->type->name);
        const char *ct = rest_child_value(e->res, "contentType");
        const char *data = rest_child_value(e->res, "data");
        if (!ct || strncmp(ct, "application/json-patch+json", 27) || !data)
            return entry_fail(t, e, 400, "invalid",
                              "the PATCH Binary needs contentType application/json-patch+json "
                              "and data");
        e->patch = b64_decode(t->a, data, strlen(data), &e->patch_len);
        if (!e->patch)
            return entry_fail(t, e, 400, "invalid", "the PATCH Binary's data is not base64");
    }
    rest_new_id(e->new_id);
    return 0;
}

/* Remembers node n (a Reference.reference) of entry `owner` when it must be rewritten. */
static int note_ref(tx *t, size_t owner, fhir_node *n)
{
    const char *v = n->value;
    if (!v) return 0;
    long k = -2;
    if (!strncmp(v, "urn:uuid:", 9) || !strncmp(v, "urn:oid:", 8)) {
        k = smap_get(&t->full, v);
        if (k < 0)
            return entry_fail(t, &t->e[owner], 400, "invalid",
                              "the reference %s names no POST or PUT entry's fullUrl", v);
    } else {
        const char *q = strchr(v, '?');
        if (q && !strstr(v, "://") && q > v && model_resource_find(v, (size_t)(q - v))) k = -1;
    }
    if (k == -2) return 0;
    if (t->nrefs == t->refs_cap) {
        size_t cap = t->refs_cap ? t->refs_cap * 2 : 256;
        tx_ref *r = tsg_arena_alloc(t->a, cap * sizeof *r);
        if (!r) return t->oom = 1, -1;
        if (t->nrefs) memcpy(r, t->refs, t->nrefs * sizeof *r);
        t->refs = r;
        t->refs_cap = cap;
    }
    t->refs[t->nrefs++] = (tx_ref){n, v, k, owner};
    return 0;
}

/* Walks n's subtree for Reference.reference values to rewrite. */
static int walk(tx *t, size_t owner, fhir_node *n, unsigned depth)
{
    if (depth > TSG_LIMIT_DEPTH) return 0;
    int is_ref = n->type == t->reference_t;
    for (uint32_t i = 0; i < n->nkids; i++) {
        fhir_node *k = &n->kids[i];
        if (is_ref && !strcmp(k->elem->name, "reference")) {
            if (note_ref(t, owner, k)) return -1;
        } else if (k->nkids && walk(t, owner, k, depth + 1)) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Steps 2–5 on a set of entries (a whole transaction, or one batch entry)
 * ------------------------------------------------------------------------ */

static int set_failed(tx *t, tx_entry **set, size_t n)
{
    if (t->oom) return 1;
    if (!t->batch) return t->failed != NULL;
    for (size_t i = 0; i < n; i++)
        if (set[i]->fail_status) return 1;
    return 0;
}

static int cmp_ref(const void *a, const void *b)
{
    const tx_entry *x = *(tx_entry *const *)a, *y = *(tx_entry *const *)b;
    int c = strcmp(x->ref, y->ref);
    return c ? c : (x->idx < y->idx ? -1 : 1);
}

static int resolve(tx *t, tx_entry **set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tx_entry *e = set[i];
        e->id = NULL;
        e->exists = e->noop = e->has_write = 0;
        const char *first = NULL;
        if (e->m == M_POST) {
            e->id = e->new_id;
            if (e->if_none_exist) {
                long c = count_match(t, e, e->type, e->if_none_exist, &first, "ifNoneExist");
                if (c < 0) return -1;
                if (c > 1)
                    return entry_fail(t, e, 412, "duplicate",
                                      "ifNoneExist %s matches %ld %s resources", e->if_none_exist,
                                      c, e->type);
                if (c == 1) e->id = first, e->exists = 1;
            }
        } else if (e->m == M_PUT || e->m == M_DELETE || e->m == M_PATCH) {
            if (e->url_id) {
                e->id = e->url_id;
            } else {
                long c = count_match(t, e, e->type, e->query, &first, "the conditional url");
                if (c < 0) return -1;
                if (c > 1)
                    return entry_fail(t, e, 412, "duplicate",
                                      "the conditional %s %s matches %ld resources", e->method,
                                      e->url, c);
                if (c == 1) {
                    e->id = first;
                    const char *rid = e->res ? rest_child_value(e->res, "id") : NULL;
                    if (e->m == M_PUT && rid && strcmp(rid, first))
                        return entry_fail(t, e, 400, "invalid",
                                          "%s matches %s/%s, but the resource's id is %s", e->url,
                                          e->type, first, rid);
                } else if (e->m == M_PUT) {
                    const char *rid = rest_child_value(e->res, "id");
                    e->id = rid && rest_id_valid(rid) ? rid : e->new_id;
                } else if (e->m == M_DELETE) {
                    e->id = e->new_id; /* nothing matches: nothing to delete */
                    e->noop = 1;
                } else {
                    return entry_fail(t, e, 404, "not-found", "%s matches no resource", e->url);
                }
            }
        } else {
            continue;
        }
        size_t len = strlen(e->type) + strlen(e->id) + 2;
        char *r = tsg_arena_alloc(t->a, len);
        if (!r) return t->oom = 1, -1;
        snprintf(r, len, "%s/%s", e->type, e->id);
        e->ref = r;
    }
    if (t->batch) return 0;
    /* two entries for one resource */
    size_t k = 0;
    tx_entry **w = tsg_arena_alloc(t->a, (n ? n : 1) * sizeof *w);
    if (!w) return t->oom = 1, -1;
    for (size_t i = 0; i < n; i++)
        if (set[i]->ref && !set[i]->noop) w[k++] = set[i];
    qsort(w, k, sizeof *w, cmp_ref);
    for (size_t i = 1; i < k; i++)
        if (!strcmp(w[i]->ref, w[i - 1]->ref))
            return entry_fail(t, w[i], 400, "invalid",
                              "%s is the target of Bundle.entry[%zu] and Bundle.entry[%zu]; a "
                              "transaction may change a resource only once",
                              w[i]->ref, w[i - 1]->idx, w[i]->idx);
    /* placeholders and conditional references (each distinct one searched once) */
    smap seen = {0};
    if (t->nrefs && smap_init(t->a, &seen, t->nrefs)) return t->oom = 1, -1;
    for (size_t i = 0; i < t->nrefs; i++) {
        tx_ref *r = &t->refs[i];
        long same = r->entry < 0 ? smap_get(&t->cond, r->orig) : -1;
        long before = r->entry < 0 && same < 0 ? smap_put(&seen, r->orig, (long)i) : -1;
        if (r->entry >= 0) {
            r->n->value = t->e[r->entry].ref;
        } else if (same >= 0) {
            r->n->value = t->e[same].ref;
        } else if (before >= 0) {
            r->n->value = t->refs[before].n->value;
        } else {
            const char *q = strchr(r->orig, '?');
            char type[64];
            snprintf(type, sizeof type, "%.*s", (int)(q - r->orig), r->orig);
            const char *first = NULL;
            tx_entry *o = &t->e[r->owner];
            long c = count_match(t, o, type, q + 1, &first, "the conditional reference");
            if (c < 0) return -1;
            if (c != 1)
                return entry_fail(t, o, c ? 412 : 400, c ? "multiple-matches" : "not-found",
                                  "the conditional reference %s matches %ld resources (it must "
                                  "match exactly one)",
                                  r->orig, c);
            size_t len = strlen(type) + strlen(first) + 2;
            char *v = tsg_arena_alloc(t->a, len);
            if (!v) return t->oom = 1, -1;
            snprintf(v, len, "%s/%s", type, first);
            r->n->value = v;
        }
        r->n->value_len = (uint32_t)strlen(r->n->value);
    }
    return 0;
}

/* Reads the current versions of the set's targets in one round trip. */
static int read_current(tx *t, tx_entry **set, size_t n)
{
    const char **refs = tsg_arena_alloc(t->a, (n ? n : 1) * sizeof *refs);
    tx_entry **who = tsg_arena_alloc(t->a, (n ? n : 1) * sizeof *who);
    if (!refs || !who) return t->oom = 1, -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        tx_entry *e = set[i];
        e->cur_version = 0;
        e->cur_live = 0;
        e->cur_body = NULL;
        e->cur_len = 0;
        e->cur_comp = "";
        if (!e->ref || e->noop || (e->m == M_POST && !e->exists)) continue;
        refs[k] = e->ref;
        who[k++] = e;
    }
    if (k) {
        store_resource *rs = calloc(k, sizeof *rs);
        if (!rs) return t->oom = 1, -1;
        tsg_error err;
        tsg_error_clear(&err);
        if (store_read_many(t->ctx->st, k, refs, rs, &err)) {
            free(rs);
            return entry_fail_err(t, who[0], 500, &err);
        }
        int restricted = t->ctx->access && t->req->principal;
        for (size_t i = 0; i < k; i++) {
            tx_entry *e = who[i];
            e->cur_version = rs[i].found ? rs[i].version : 0;
            e->cur_live = rs[i].found && !rs[i].deleted;
            e->cur_lu = rs[i].lu_ms;
            e->cur_comp = tsg_arena_strndup(t->a, rs[i].compartment, strlen(rs[i].compartment));
            if (!e->cur_comp) t->oom = 1;
            if (rs[i].body && (e->m == M_PATCH || e->exists || t->prefer_repr || restricted)) {
                e->cur_body = tsg_arena_strndup(t->a, rs[i].body, rs[i].body_len);
                e->cur_len = rs[i].body_len;
                if (!e->cur_body) t->oom = 1;
            }
            store_resource_clear(&rs[i]);
        }
        free(rs);
        if (t->oom) return -1;
    }
    for (size_t i = 0; i < n; i++) {
        tx_entry *e = set[i];
        if (e->if_match && (e->m == M_PUT || e->m == M_DELETE || e->m == M_PATCH) &&
            (!e->cur_live || e->cur_version != e->if_match))
            return entry_fail(t, e, 412, "conflict",
                              "ifMatch version %ld does not match the current version %ld of %s",
                              e->if_match, e->cur_live ? e->cur_version : 0, e->ref);
        if (e->exists && !e->cur_live)
            return entry_fail(t, e, 409, "conflict", "%s matched ifNoneExist but is gone", e->ref);
    }
    return 0;
}

/* Whether the client may see entry e's current version (what it may not see
 * looks absent: 404 for PATCH, nothing to delete). 1 yes, 0 no, -1 failed. */
static int entry_sees(tx *t, tx_entry *e)
{
    if (!e->cur_version) return 1;
    tsg_error err;
    tsg_error_clear(&err);
    int v = rest_access_sees(t->ctx, t->req, e->type, e->cur_comp, &err);
    if (v < 0) return entry_fail_err(t, e, 500, &err), -1;
    return v;
}

/* The write rule for e's prepared write: 0 allowed, else the entry failed. */
static int entry_access(tx *t, tx_entry *e)
{
    const char *why = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    int put = e->w.op == STORE_PUT;
    int v =
        rest_access_write(t->ctx, t->req, e->type, !e->cur_live, e->cur_live ? e->cur_body : NULL,
                          e->cur_len, e->cur_comp, put ? e->w.body : NULL, put ? e->w.body_len : 0,
                          put ? e->w.compartment : NULL, &why, &err);
    if (!v) return 0;
    if (v < 0) return entry_fail_err(t, e, 500, &err);
    return entry_fail(t, e, 403, "forbidden", "%s: %s", e->type, why);
}

static int prepare(tx *t, tx_entry **set, size_t n, long long now)
{
    tsg_error err;
    tsg_error_clear(&err);
    for (size_t i = 0; i < n; i++) {
        tx_entry *e = set[i];
        const char *how = e->cur_live ? "update" : "create";
        fhir_node *root = e->res;
        switch (e->m) {
        case M_POST:
            if (e->exists) continue;
            break;
        case M_PUT:
            break;
        case M_PATCH: {
            int sees = entry_sees(t, e);
            if (sees < 0) return -1;
            if (!e->cur_version || !sees)
                return entry_fail(t, e, 404, "not-found", "%s is not known", e->ref);
            if (!e->cur_live) return entry_fail(t, e, 410, "deleted", "%s was deleted", e->ref);
            int st = rest_patch_apply(t->a, e->type, e->id, e->cur_body, e->cur_len, e->patch,
                                      e->patch_len, &root, &err);
            if (st)
                return entry_fail(t, e, st, err.code ? err.code : "invalid", "%s%s%s", err.message,
                                  err.location[0] ? " at " : "", err.location);
            if (!root) { /* the patch changes nothing: no new version */
                e->noop = 1;
                continue;
            }
            how = "patch";
            break;
        }
        case M_DELETE: {
            int sees = entry_sees(t, e);
            if (sees < 0) return -1;
            if (!e->cur_live || !sees) {
                e->noop = 1;
                continue;
            }
            e->w = rest_delete_write(e->type, e->id, e->cur_version);
            if (entry_access(t, e)) return -1;
            e->has_write = 1;
            continue;
        }
        default:
            continue;
        }
        const char *oo, *first;
        size_t oo_len;
        int vst = rest_validate_write(t->ctx, t->a, root, &oo, &oo_len, &first);
        if (vst == 500) return entry_fail(t, e, 500, "exception", "validation ran out of memory");
        if (vst == 422)
            return entry_fail(t, e, 422, "processing", "the resource is not valid: %s",
                              first ? first : "(see $validate)");
        if (rest_prepare_put(t->a, root, e->id, e->cur_version, now, how, &e->w, &err) ||
            rest_binary_context(t->ctx, t->a, root, &e->w, &err))
            return entry_fail_err(t, e, 400, &err);
        if (entry_access(t, e)) return -1;
        if (e->m == M_POST) {
            e->w.fresh = 1;         /* e->id is e->new_id: an existing match was skipped above */
            if (e->if_none_exist) { /* as a single conditional create: claim the criteria, so
                                     * that of two concurrent creates one wins (store.h) */
                size_t cl = strlen(e->type) + strlen(e->if_none_exist) + 16;
                char *claim = tsg_arena_alloc(t->a, cl);
                if (!claim) return t->oom = 1, -1;
                snprintf(claim, cl, "tsg:claim:%s?%s", e->type, e->if_none_exist);
                e->w.claim = claim;
            }
        }
        e->has_write = 1;
    }
    return 0;
}

/* Commits the set's writes: 0 done, 1 conflict (start again), -1 failed. */
static int commit(tx *t, tx_entry **set, size_t n, long long now)
{
    store_write *ws = tsg_arena_alloc(t->a, (n ? n : 1) * sizeof *ws);
    tx_entry **who = tsg_arena_alloc(t->a, (n ? n : 1) * sizeof *who);
    if (!ws || !who) return t->oom = 1, -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (set[i]->has_write) {
            ws[k] = set[i]->w;
            who[k++] = set[i];
        }
    if (k) {
        int conflict = -1;
        tsg_error err;
        tsg_error_clear(&err);
        /* a transaction's audit record is written with it (a batch entry's is not) */
        if (rest_commit(t->req, t->batch ? NULL : t->resp, t->ctx, ws, k, now, 200, NULL, &conflict,
                        &err))
            return entry_fail_err(t, who[0], 500, &err);
        if (conflict >= 0) {
            tx_entry *e = who[conflict];
            if (e->if_match)
                return entry_fail(t, e, 412, "conflict", "%s was changed by another request",
                                  e->ref);
            return 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        tx_entry *e = set[i];
        e->lu_ms = now;
        switch (e->m) {
        case M_POST:
            if (e->exists) {
                e->status = 200;
                e->version = e->cur_version;
                e->lu_ms = e->cur_lu;
                e->body = e->cur_body;
                e->body_len = e->cur_len;
            } else {
                e->status = 201;
                e->version = 1;
                e->body = e->w.body;
                e->body_len = e->w.body_len;
            }
            break;
        case M_PATCH:
            if (e->noop) {
                e->status = 200;
                e->version = e->cur_version;
                e->body = e->cur_body;
                e->body_len = e->cur_len;
                break;
            }
            /* fall through */
        case M_PUT:
            e->status = e->cur_live ? 200 : 201;
            e->version = e->cur_version + 1;
            e->body = e->w.body;
            e->body_len = e->w.body_len;
            break;
        case M_DELETE:
            e->status = 204;
            e->version = e->noop ? 0 : e->cur_version + 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

/* Steps 2–5 for set (in processing order) with retries. 0: written. */
static int run_set(tx *t, tx_entry **set, size_t n)
{
    for (unsigned attempt = 0; attempt < REST_LIMIT_RETRIES; attempt++) {
        long long now = rest_now_ms();
        if (resolve(t, set, n) || set_failed(t, set, n)) return -1;
        if (read_current(t, set, n) || set_failed(t, set, n)) return -1;
        if (prepare(t, set, n, now) || set_failed(t, set, n)) return -1;
        int rc = commit(t, set, n, now);
        if (rc <= 0) return rc;
    }
    return entry_fail(t, set[0], 409, "conflict",
                      "the resources of this %s are being changed by other requests; try again",
                      t->batch ? "entry" : "transaction");
}

/* ------------------------------------------------------------------------
 * Step 6: reads and searches
 * ------------------------------------------------------------------------ */

/* A search entry: runs rest_search on a request built from the entry's url. */
static void do_search(tx *t, tx_entry *e)
{
    const char *q = e->query ? e->query : "";
    size_t np = 0;
    for (const char *p = q; *p; p++) np += *p == '&';
    http_param *ps = tsg_arena_zalloc(t->a, (np + 1) * sizeof *ps);
    if (!ps) {
        t->oom = 1;
        return;
    }
    size_t k = 0;
    for (const char *p = q; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nl = eq ? (size_t)(eq - p) : len;
        if (nl) {
            ps[k].name = rest_url_decode(t->a, p, nl);
            ps[k].value = eq ? rest_url_decode(t->a, eq + 1, len - nl - 1) : "";
            if (!ps[k].name || !ps[k].value) {
                entry_fail(t, e, 400, "invalid", "request.url %s has a bad %%-escape", e->url);
                return;
            }
            ps[k].name_len = strlen(ps[k].name);
            ps[k].value_len = strlen(ps[k].value);
            k++;
        }
        if (!amp) break;
        p = amp + 1;
    }
    http_request r = *t->req;
    const char **segs = tsg_arena_alloc(t->a, sizeof *segs);
    size_t plen = strlen(e->type) + 8;
    char *path = tsg_arena_alloc(t->a, plen);
    if (!segs || !path) {
        t->oom = 1;
        return;
    }
    segs[0] = e->type;
    snprintf(path, plen, "/fhir/%s", e->type);
    r.method = HTTP_GET;
    r.is_head = e->m == M_HEAD;
    r.method_name = method_name(e->m);
    r.path = path;
    r.segments = segs;
    r.n_segments = 1;
    r.query = q;
    r.params = ps;
    r.n_params = k;
    r.body = NULL;
    r.body_len = 0;
    r.format = HTTP_FORMAT_JSON;
    r.pretty = false;
    http_response s;
    scratch_init(&s, t->a);
    rest_search(&r, &s, t->ctx, e->type);
    if (s.status != 200) {
        const char *code, *msg;
        outcome_text(t->a, &s.body, &code, &msg);
        entry_fail(t, e, s.status, code, "%s", msg);
    } else {
        e->status = 200;
        e->body = tsg_arena_strndup(t->a, s.body.data ? s.body.data : "", s.body.len);
        e->body_len = s.body.len;
        if (!e->body) t->oom = 1;
    }
    tsg_buf_free(&s.body);
}

static void run_reads(tx *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += (t->e[i].m == M_GET || t->e[i].m == M_HEAD) && !t->e[i].fail_status;
    if (!n) return;
    const char **refs = tsg_arena_alloc(t->a, n * sizeof *refs);
    tx_entry **who = tsg_arena_alloc(t->a, n * sizeof *who);
    store_resource *rs = calloc(n, sizeof *rs);
    if (!refs || !who || !rs) {
        free(rs);
        t->oom = 1;
        return;
    }
    size_t k = 0;
    tsg_error err;
    tsg_error_clear(&err);
    for (size_t i = 0; i < t->n; i++) {
        tx_entry *e = &t->e[i];
        if ((e->m != M_GET && e->m != M_HEAD) || e->fail_status) continue;
        if (!e->url_id) {
            do_search(t, e);
            continue;
        }
        size_t len = strlen(e->type) + strlen(e->url_id) + 2;
        char *r = tsg_arena_alloc(t->a, len);
        if (!r) {
            t->oom = 1;
            break;
        }
        snprintf(r, len, "%s/%s", e->type, e->url_id);
        e->ref = r;
        if (e->url_version) {
            store_resource one;
            if (store_read(t->ctx->st, e->type, e->url_id, e->url_version, &one, &err)) {
                entry_fail_err(t, e, 500, &err);
                continue;
            }
            rs[k] = one;
        }
        refs[k] = r;
        who[k++] = e;
    }
    /* the current versions in one round trip (vreads were read above) */
    size_t nc = 0;
    for (size_t i = 0; i < k; i++) nc += !who[i]->url_version;
    if (nc) {
        const char **cr = tsg_arena_alloc(t->a, nc * sizeof *cr);
        store_resource *crs = calloc(nc, sizeof *crs);
        if (!cr || !crs) {
            free(crs);
            t->oom = 1;
        } else {
            size_t j = 0;
            for (size_t i = 0; i < k; i++)
                if (!who[i]->url_version) cr[j++] = refs[i];
            if (store_read_many(t->ctx->st, nc, cr, crs, &err)) {
                for (size_t i = 0; i < k; i++)
                    if (!who[i]->url_version) entry_fail_err(t, who[i], 500, &err);
            } else {
                j = 0;
                for (size_t i = 0; i < k; i++)
                    if (!who[i]->url_version) rs[i] = crs[j++];
            }
            free(crs);
        }
    }
    for (size_t i = 0; i < k; i++) {
        tx_entry *e = who[i];
        store_resource *r = &rs[i];
        int sees = 1;
        if (!e->fail_status && r->found) {
            sees = rest_access_sees(t->ctx, t->req, e->type, r->compartment, &err);
            if (sees < 0) entry_fail_err(t, e, 500, &err);
        }
        if (!e->fail_status) {
            if (!r->found || !sees) /* what the client may not see looks absent */
                entry_fail(t, e, 404, "not-found", "%s%s is not known", e->ref,
                           e->url_version ? " (that version)" : "");
            else if (r->deleted)
                entry_fail(t, e, 410, "deleted", "%s was deleted (version %ld)", e->ref,
                           r->version);
            else {
                e->status = 200;
                e->version = r->version;
                e->lu_ms = r->lu_ms;
                if (e->m == M_GET) {
                    e->body = tsg_arena_strndup(t->a, r->body, r->body_len);
                    e->body_len = r->body_len;
                    if (!e->body) t->oom = 1;
                }
            }
        }
        store_resource_clear(r);
    }
    free(rs);
}

/* ------------------------------------------------------------------------
 * The response
 * ------------------------------------------------------------------------ */

static void respond(tx *t, http_response *resp)
{
    const http_request *req = t->req;
    const char *base = rest_base_url(req);
    rest_bundle bb;
    rest_bundle_begin(&bb, t->batch ? "batch-response" : "transaction-response", -1);
    tsg_buf x, oo;
    tsg_buf_init(&x, 0);
    tsg_buf_init(&oo, 0);
    for (size_t i = 0; i < t->n; i++) {
        tx_entry *e = &t->e[i];
        tsg_buf_reset(&x);
        if (e->fail_status) {
            tsg_buf_reset(&oo);
            char loc[48];
            snprintf(loc, sizeof loc, "Bundle.entry[%zu]", i);
            outcome_json(&oo, e->fail_code ? e->fail_code : "exception", e->fail_msg, loc);
            tsg_buf_printf(
                &x, "\"response\":{\"status\":\"%s\",\"outcome\":", status_text(e->fail_status));
            tsg_buf_append(&x, oo.data, oo.len);
            tsg_buf_putc(&x, '}');
            rest_bundle_entry(&bb, NULL, NULL, 0, x.data);
            continue;
        }
        tsg_buf_printf(&x, "\"response\":{\"status\":\"%s\"", status_text(e->status));
        const char *id = e->m == M_GET || e->m == M_HEAD ? e->url_id : e->id;
        if (id && e->version > 0) {
            tsg_buf_puts(&x, ",\"location\":\"");
            http_json_escape(&x, e->type, strlen(e->type));
            tsg_buf_putc(&x, '/');
            http_json_escape(&x, id, strlen(id));
            tsg_buf_printf(&x, "/_history/%ld\",\"etag\":\"W/\\\"%ld\\\"\"", e->version,
                           e->version);
            if (e->lu_ms) {
                char lu[32];
                rest_instant(e->lu_ms, lu);
                tsg_buf_printf(&x, ",\"lastModified\":\"%s\"", lu);
            }
        }
        tsg_buf_putc(&x, '}');
        int with_res =
            e->body && e->body_len && (e->m == M_GET || (t->prefer_repr && e->m != M_DELETE));
        char *full = NULL;
        if (with_res && id) {
            size_t len = strlen(base) + strlen(e->type) + strlen(id) + 3;
            full = tsg_arena_alloc(t->a, len);
            if (full) snprintf(full, len, "%s/%s/%s", base, e->type, id);
        }
        rest_bundle_entry(&bb, full, with_res ? e->body : NULL, with_res ? e->body_len : 0, x.data);
    }
    int bad = tsg_buf_rc(&x) || tsg_buf_rc(&oo);
    tsg_buf_free(&x);
    tsg_buf_free(&oo);
    if (bad) {
        tsg_buf_free(&bb.b);
        http_respond_outcome(resp, 500, "fatal", "exception", "out of memory", NULL, req->format);
        return;
    }
    rest_bundle_finish(&bb, req, resp);
}

/* ------------------------------------------------------------------------
 * The interaction
 * ------------------------------------------------------------------------ */

static int rank(tx_method m)
{
    return m == M_DELETE ? 0 : m == M_POST ? 1 : (m == M_PUT || m == M_PATCH) ? 2 : 3;
}

void rest_bundle_post(const http_request *req, http_response *resp, rest_ctx *ctx)
{
    resp->interaction = "transaction";
    fhir_node *root = rest_parse_body(req, resp);
    if (!root) return;
    if (strcmp(root->type->name, "Bundle")) {
        rest_fail(req, resp, 400, "invalid",
                  "POST to the FHIR base takes a Bundle (transaction or batch), not a %s",
                  root->type->name);
        return;
    }
    const char *btype = rest_child_value(root, "type");
    int batch = btype && !strcmp(btype, "batch");
    if (!btype || (!batch && strcmp(btype, "transaction"))) {
        rest_fail(req, resp, 400, "invalid",
                  "POST to the FHIR base takes a Bundle of type transaction or batch, not %s",
                  btype ? btype : "(no type)");
        return;
    }
    if (batch) resp->interaction = "batch";
    size_t n = 0;
    for (uint32_t i = 0; i < root->nkids; i++) n += !strcmp(root->kids[i].elem->name, "entry");
    size_t max = ctx->max_bundle_entries ? ctx->max_bundle_entries : REST_LIMIT_BUNDLE;
    if (max > STORE_LIMIT_WRITES) max = STORE_LIMIT_WRITES;
    if (n > max) {
        rest_fail(req, resp, 413, "too-costly",
                  "the %s has %zu entries; this server accepts at most %zu entries in one "
                  "transaction or batch (limit max_bundle_entries)",
                  batch ? "batch" : "transaction", n, max);
        return;
    }
    tx t = {.req = req, .resp = resp, .ctx = ctx, .a = req->arena, .batch = batch, .n = n};
    t.reference_t = model_type_find("Reference", 9);
    const char *pf = http_header(req, "Prefer");
    t.prefer_repr = pf && strstr(pf, "return=representation") != NULL;
    t.e = tsg_arena_zalloc(t.a, (n ? n : 1) * sizeof *t.e);
    t.order = tsg_arena_alloc(t.a, (n ? n : 1) * sizeof *t.order);
    if (!t.e || !t.order || smap_init(t.a, &t.full, n) || smap_init(t.a, &t.cond, n)) {
        rest_fail(req, resp, 500, "exception", "out of memory");
        return;
    }

    /* step 1: entries, fullUrls, references */
    size_t k = 0;
    for (uint32_t i = 0; i < root->nkids && !t.failed; i++) {
        if (strcmp(root->kids[i].elem->name, "entry")) continue;
        tx_entry *e = &t.e[k];
        e->idx = k++;
        if (parse_entry(&t, e, &root->kids[i]) || batch) continue;
        if (e->full_url && (e->m == M_POST || e->m == M_PUT)) {
            long o = smap_put(&t.full, e->full_url, (long)e->idx);
            if (o >= 0)
                entry_fail(&t, e, 400, "invalid",
                           "fullUrl %s is also the fullUrl of Bundle.entry[%ld]", e->full_url, o);
        }
        /* a conditional reference with the same criteria as a conditional
         * create or update of this transaction names that entry's resource */
        const char *crit = e->m == M_POST                ? e->if_none_exist
                           : e->m == M_PUT && !e->url_id ? e->query
                                                         : NULL;
        if (crit) {
            size_t len = strlen(e->type) + strlen(crit) + 2;
            char *key = tsg_arena_alloc(t.a, len);
            if (!key) {
                t.oom = 1;
                break;
            }
            snprintf(key, len, "%s?%s", e->type, crit);
            smap_put(&t.cond, key, (long)e->idx);
        }
    }
    for (size_t i = 0; i < n && !batch && !t.failed && !t.oom; i++)
        if (t.e[i].res && (t.e[i].m == M_POST || t.e[i].m == M_PUT)) walk(&t, i, t.e[i].res, 0);

    /* processing order: DELETE, POST, PUT/PATCH, GET/HEAD (stable) */
    size_t nw = 0;
    for (int r = 0; r < 3; r++)
        for (size_t i = 0; i < n; i++)
            if (rank(t.e[i].m) == r && !t.e[i].fail_status) t.order[nw++] = &t.e[i];

    if (!batch) {
        if (!t.failed && !t.oom) run_set(&t, t.order, nw);
    } else {
        for (size_t i = 0; i < nw && !t.oom; i++) run_set(&t, &t.order[i], 1);
    }
    if (t.oom) {
        rest_fail(req, resp, 500, "exception", "out of memory while processing the Bundle");
        return;
    }
    if (t.failed) {
        tx_entry *e = t.failed;
        char loc[48];
        snprintf(loc, sizeof loc, "Bundle.entry[%zu]", e->idx);
        char msg[1400];
        snprintf(msg, sizeof msg, "%s (%s %s): %s; nothing was written", loc, e->method,
                 e->url ? e->url : "", e->fail_msg);
        http_respond_outcome(resp, e->fail_status, "error",
                             e->fail_code ? e->fail_code : "exception", msg, loc, req->format);
        return;
    }
    run_reads(&t);
    if (t.oom) {
        rest_fail(req, resp, 500, "exception", "out of memory while processing the Bundle");
        return;
    }
    respond(&t, resp);
}
