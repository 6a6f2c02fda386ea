/*
 * fhir_resource.c — what every FHIR interaction needs: errors as
 * OperationOutcome, ids, instants, reading a request body into a resource
 * tree, setting meta, and writing a stored resource back in the negotiated
 * format (_pretty, _summary, _elements).
 */
#include "rest_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

void rest_fail(const http_request *req, http_response *resp, int status, const char *code,
               const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_respond_outcome(resp, status, "error", code, msg, NULL, req->format);
}

void rest_fail_err(const http_request *req, http_response *resp, int invalid_status,
                   const tsg_error *err)
{
    int status;
    switch (err->rc) {
    case TSG_EINVAL:
        status = invalid_status;
        break;
    case TSG_ELIMIT:
        status = invalid_status == 400 ? 413 : invalid_status;
        break;
    case TSG_EIO:
        status = 503;
        break;
    case TSG_ENOTSUP:
        status = 501;
        break;
    default:
        status = 500;
        break;
    }
    http_respond_error(resp, status, err, req->format);
}

/* ------------------------------------------------------------------------
 * Ids and time
 * ------------------------------------------------------------------------ */

int rest_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
        if (n >= STORE_LIMIT_ID) return 0;
    }
    return n > 0;
}

void rest_new_id(char buf[37])
{
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k > 0) got += (size_t)k;
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) buf[k++] = '-';
        buf[k++] = hex[r[i] >> 4];
        buf[k++] = hex[r[i] & 15];
    }
    buf[k] = 0;
}

long long rest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rest_instant(long long ms, char buf[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    int y = tm.tm_year + 1900;
    if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999; /* FHIR instants have four-digit years */
    int f[7] = {y, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000)};
    static const int width[7] = {4, 2, 2, 2, 2, 2, 3};
    static const char after[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    size_t k = 0;
    for (int i = 0; i < 7; i++) { /* by hand: snprintf was a visible share of a Bundle ingest */
        int v = f[i] < 0 ? 0 : f[i];
        for (int d = width[i] - 1; d >= 0; d--) {
            buf[k + (size_t)d] = (char)('0' + v % 10);
            v /= 10;
        }
        k += (size_t)width[i];
        buf[k++] = after[i];
    }
    buf[k] = 0;
}

/* ------------------------------------------------------------------------
 * Bodies and meta
 * ------------------------------------------------------------------------ */

fhir_node *rest_parse_body(const http_request *req, http_response *resp)
{
    if (!req->body || !req->body_len) {
        rest_fail(req, resp, 400, "required", "the request needs a FHIR resource as its body");
        return NULL;
    }
    fhir_node *root = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = req->body_format == HTTP_FORMAT_XML
                    ? fhir_xml_parse(req->arena, req->body, req->body_len, NULL, &root, &err)
                    : fhir_json_parse(req->arena, req->body, req->body_len, NULL, &root, &err);
    if (rc) {
        rest_fail_err(req, resp, 400, &err);
        return NULL;
    }
    return root;
}

char *rest_url_decode(tsg_arena *a, const char *s, size_t n)
{
    size_t len;
    bool bad = false;
    return http_url_decode(a, s, n, true, &len, &bad);
}

const char *rest_child_value(const fhir_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->nkids; i++)
        if (!strcmp(n->kids[i].elem->name, name)) return n->kids[i].value;
    return NULL;
}

/* A primitive node of element e (type from e) with value v, in a. */
static fhir_node *prim(tsg_arena *a, const model_elem *e, const char *v)
{
    fhir_node *n = tsg_arena_zalloc(a, sizeof *n);
    if (!n) return NULL;
    n->elem = e;
    n->type = e->types[0].type;
    n->value = tsg_arena_strndup(a, v, strlen(v));
    n->value_len = (uint32_t)strlen(v);
    return n->value ? n : NULL;
}

/*
 * Puts node k (copied) among parent's children for element e, keeping
 * definition order: with replace, instead of every child of e; otherwise
 * after them (a new repeat). The kids array is reallocated in a.
 */
static tsg_rc put_child(tsg_arena *a, fhir_node *parent, const model_elem *e, const fhir_node *k,
                        int replace)
{
    uint32_t same = 0;
    for (uint32_t i = 0; i < parent->nkids; i++) same += parent->kids[i].elem == e;
    uint32_t total = parent->nkids - (replace ? same : 0) + 1;
    fhir_node *kids = tsg_arena_alloc(a, total * sizeof *kids);
    if (!kids) return TSG_ENOMEM;
    uint32_t j = 0;
    int placed = 0;
    for (uint32_t i = 0; i < parent->nkids; i++) {
        const fhir_node *c = &parent->kids[i];
        if (c->elem == e && replace) continue;
        if (!placed && c->elem->index > e->index) {
            kids[j] = *k;
            kids[j++].pos = replace ? 0 : same;
            placed = 1;
        }
        kids[j++] = *c;
    }
    if (!placed) {
        kids[j] = *k;
        kids[j++].pos = replace ? 0 : same;
    }
    parent->kids = kids;
    parent->nkids = j;
    return TSG_OK;
}

tsg_rc rest_set_meta(tsg_arena *a, fhir_node *root, const char *id, long version, long long lu_ms)
{
    const model_elem *eid = model_elem_find(root->type, "id");
    const model_elem *emeta = model_elem_find(root->type, "meta");
    if (!eid || !emeta) return TSG_EINTERNAL;
    const model_type *meta_t = emeta->types[0].type;
    const model_elem *ever = model_elem_find(meta_t, "versionId");
    const model_elem *elu = model_elem_find(meta_t, "lastUpdated");
    if (!ever || !elu) return TSG_EINTERNAL;

    fhir_node *idn = prim(a, eid, id);
    if (!idn) return TSG_ENOMEM;
    if (put_child(a, root, eid, idn, 1)) return TSG_ENOMEM;

    fhir_node meta = {.elem = emeta, .type = meta_t};
    for (uint32_t i = 0; i < root->nkids; i++)
        if (root->kids[i].elem == emeta) meta = root->kids[i];
    char v[24], lu[32];
    tsg_fmt_ll(v, version);
    rest_instant(lu_ms, lu);
    fhir_node *vn = prim(a, ever, v), *ln = prim(a, elu, lu);
    if (!vn || !ln) return TSG_ENOMEM;
    if (put_child(a, &meta, ever, vn, 1) || put_child(a, &meta, elu, ln, 1)) return TSG_ENOMEM;
    return put_child(a, root, emeta, &meta, 1) ? TSG_ENOMEM : TSG_OK;
}

/* ------------------------------------------------------------------------
 * Writing resources out
 * ------------------------------------------------------------------------ */

/* True when the comma list `list` names `name` (a top-level element). */
static int list_has(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        /* `name.sub` selects name too (we subset at the top level only) */
        const char *dot = memchr(p, '.', len);
        size_t head = dot ? (size_t)(dot - p) : len;
        if (head == n && !memcmp(p, name, n)) return 1;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

/*
 * Subsets root for _summary (true|text|data) or _elements: keeps the kids
 * whose element passes, always id and meta (and the mandatory elements for
 * _summary=true, which are in the summary by definition). Returns 0 when
 * nothing was removed.
 */
static int subset(fhir_node *root, const char *summary, const char *elements)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < root->nkids; i++) {
        const fhir_node *k = &root->kids[i];
        const char *nm = k->elem->name;
        int keep = !strcmp(nm, "id") || !strcmp(nm, "meta");
        if (!keep && elements) keep = list_has(elements, nm);
        if (!keep && summary && !strcmp(summary, "true"))
            keep = (k->elem->flags & MODEL_ELEM_SUMMARY) || k->elem->min > 0;
        if (!keep && summary && !strcmp(summary, "text"))
            keep = !strcmp(nm, "text") || k->elem->min > 0;
        if (!keep && summary && !strcmp(summary, "data")) keep = strcmp(nm, "text") != 0;
        if (keep) root->kids[j++] = *k;
    }
    int removed = j != root->nkids;
    root->nkids = j;
    return removed;
}

void rest_respond_resource(const http_request *req, http_response *resp, int status,
                           const char *json, size_t len, long version, long long lu_ms)
{
    const char *summary = http_param_get(req, "_summary");
    const char *elements = http_param_get(req, "_elements");
    if (summary && !strcmp(summary, "false")) summary = NULL;
    if (summary && strcmp(summary, "true") && strcmp(summary, "text") && strcmp(summary, "data")) {
        rest_fail(req, resp, 400, "invalid",
                  "_summary=%s is not supported here (true, text, data, false)", summary);
        return;
    }
    resp->status = status;
    resp->content_type = http_format_content_type(req->format);
    if (version > 0) {
        char etag[40], lm[40];
        snprintf(etag, sizeof etag, "W/\"%ld\"", version);
        time_t t = (time_t)(lu_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(lm, sizeof lm, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        http_response_header_add(resp, "ETag", etag);
        http_response_header_add(resp, "Last-Modified", lm);
    }
    if (req->format == HTTP_FORMAT_JSON && !req->pretty && !summary && !elements) {
        tsg_buf_reset(&resp->body);
        tsg_buf_append(&resp->body, json, len);
        return;
    }
    fhir_node *root = NULL;
    tsg_error err;
    if (fhir_json_parse(req->arena, json, len, NULL, &root, &err)) {
        http_respond_outcome(resp, 500, "fatal", "exception",
                             "a stored resource could not be read back", NULL, req->format);
        return;
    }
    if ((summary || elements) && subset(root, summary, elements)) {
        /* mark the subset (FHIR: meta.tag SUBSETTED) — done on the JSON text
         * level would be fragile; the tag is added through the tree */
        const model_elem *emeta = model_elem_find(root->type, "meta");
        if (emeta) {
            const model_type *mt = emeta->types[0].type;
            const model_elem *etag = model_elem_find(mt, "tag");
            fhir_node meta = {.elem = emeta, .type = mt};
            for (uint32_t i = 0; i < root->nkids; i++)
                if (root->kids[i].elem == emeta) meta = root->kids[i];
            if (etag) {
                const model_type *ct = etag->types[0].type;
                const model_elem *esys = model_elem_find(ct, "system");
                const model_elem *ecode = model_elem_find(ct, "code");
                fhir_node *tag = tsg_arena_zalloc(req->arena, sizeof *tag);
                fhir_node *tk = tsg_arena_alloc(req->arena, 2 * sizeof *tk);
                fhir_node *s =
                    esys ? prim(req->arena, esys,
                                "http://terminology.hl7.org/CodeSystem/v3-ObservationValue")
                         : NULL;
                fhir_node *c = ecode ? prim(req->arena, ecode, "SUBSETTED") : NULL;
                if (tag && tk && s && c) {
                    tk[0] = *s, tk[1] = *c;
                    tag->elem = etag, tag->type = ct, tag->kids = tk, tag->nkids = 2;
                    if (!put_child(req->arena, &meta, etag, tag, 0))
                        put_child(req->arena, root, emeta, &meta, 1);
                }
            }
        }
    }
    tsg_buf_reset(&resp->body);
    unsigned flags = req->pretty ? FHIR_WRITE_PRETTY : 0;
    tsg_rc rc = req->format == HTTP_FORMAT_XML ? fhir_xml_write(root, &resp->body, flags)
                                               : fhir_json_write(root, &resp->body, flags);
    if (rc)
        http_respond_outcome(resp, 500, "fatal", "exception", "the response could not be written",
                             NULL, req->format);
}
