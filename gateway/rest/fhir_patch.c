/*
 * fhir_patch.c — PATCH /fhir/<type>/<id> with a JSON Patch body (RFC 6902,
 * Content-Type application/json-patch+json).
 *
 * The patch is applied with jansson to the stored JSON of the current
 * version; the result is parsed again with the strict FHIR JSON reader, so a
 * patch can never store something a PUT could not. It is then written through
 * the same path as PUT (rest_write_resource), with the version read as the
 * expected version, so a concurrent change in between makes the patch start
 * again on the new version (or, with If-Match, answers 412).
 *
 * Statuses: a malformed patch document (not an array of operations, an
 * unknown op, a missing member, a bad JSON Pointer) is 400; a patch that cannot
 * be applied to this resource (a path that does not exist, a failed `test`,
 * a result that is not a valid resource, a changed id or resourceType) is 422.
 * The error's location names the operation (`patch[2]`).
 *
 * Numbers: decimals go through a C double and are written back in their
 * shortest form that reads back the same, so `1.50` becomes `1.5` (FHIR's
 * decimal precision is not kept across a PATCH).
 *
 * FHIRPath Patch (a Parameters body) is not supported: 415/501 say so.
 */
#include "rest_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------
 * Writing jansson values as compact JSON (reals in their shortest form)
 * ------------------------------------------------------------------------ */

static void put_real(tsg_buf *b, double x)
{
    char s[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, x);
        if (strtod(s, NULL) == x) break;
    }
    tsg_buf_puts(b, s); /* jansson holds no inf/nan, so this is a JSON number */
}

static void put_value(tsg_buf *b, const json_t *v, int depth)
{
    if (depth > (int)TSG_LIMIT_DEPTH) {
        b->failed = TSG_ELIMIT;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        tsg_buf_putc(b, '{');
        const char *k;
        json_t *x;
        int first = 1;
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first) tsg_buf_putc(b, ',');
            first = 0;
            tsg_buf_putc(b, '"');
            http_json_escape(b, k, strlen(k));
            tsg_buf_puts(b, "\":");
            put_value(b, x, depth + 1);
        }
        tsg_buf_putc(b, '}');
        break;
    }
    case JSON_ARRAY: {
        tsg_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) tsg_buf_putc(b, ',');
            put_value(b, json_array_get(v, i), depth + 1);
        }
        tsg_buf_putc(b, ']');
        break;
    }
    case JSON_STRING:
        tsg_buf_putc(b, '"');
        http_json_escape(b, json_string_value(v), json_string_length(v));
        tsg_buf_putc(b, '"');
        break;
    case JSON_INTEGER:
        tsg_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        put_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        tsg_buf_puts(b, "true");
        break;
    case JSON_FALSE:
        tsg_buf_puts(b, "false");
        break;
    case JSON_NULL:
        tsg_buf_puts(b, "null");
        break;
    }
}

/* ------------------------------------------------------------------------
 * JSON Pointer (RFC 6901)
 * ------------------------------------------------------------------------ */

#define PTR_MAX_TOKENS 128u

typedef struct pointer {
    size_t n;
    char *tok[PTR_MAX_TOKENS];
} pointer;

/* Splits p into unescaped tokens (in arena a). Returns 0, or -1 with a message
 * in err (syntax: 400; TSG_ENOMEM). */
static int ptr_parse(tsg_arena *a, const char *p, pointer *out, tsg_error *err)
{
    out->n = 0;
    if (!*p) return 0;
    if (*p != '/') {
        tsg_error_set(err, TSG_EINVAL, "invalid", "the JSON Pointer '%s' does not start with /", p);
        return -1;
    }
    p++;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (out->n == PTR_MAX_TOKENS) {
            tsg_error_set(err, TSG_EINVAL, "invalid", "the JSON Pointer is deeper than %u",
                          PTR_MAX_TOKENS);
            return -1;
        }
        char *t = tsg_arena_alloc(a, len + 1);
        if (!t) {
            tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
            return -1;
        }
        size_t k = 0;
        for (size_t i = 0; i < len; i++) {
            if (p[i] == '~') {
                if (i + 1 < len && (p[i + 1] == '0' || p[i + 1] == '1')) {
                    t[k++] = p[i + 1] == '0' ? '~' : '/';
                    i++;
                } else {
                    tsg_error_set(err, TSG_EINVAL, "invalid",
                                  "the JSON Pointer has '~' not followed by 0 or 1");
                    return -1;
                }
            } else {
                t[k++] = p[i];
            }
        }
        t[k] = 0;
        out->tok[out->n++] = t;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

/* An array index token: digits without a leading zero; -1 when not one. */
static long array_index(const char *t)
{
    if (!*t || (t[0] == '0' && t[1]) || strlen(t) > 9) return -1;
    for (const char *c = t; *c; c++)
        if (*c < '0' || *c > '9') return -1;
    return strtol(t, NULL, 10);
}

/* The value at tokens [0, n) of p below doc; NULL when absent. */
static json_t *ptr_get(json_t *doc, const pointer *p, size_t n)
{
    json_t *v = doc;
    for (size_t i = 0; i < n && v; i++) {
        if (json_is_object(v)) {
            v = json_object_get(v, p->tok[i]);
        } else if (json_is_array(v)) {
            long k = array_index(p->tok[i]);
            v = k < 0 ? NULL : json_array_get(v, (size_t)k);
        } else {
            v = NULL;
        }
    }
    return v;
}

/* ------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------ */

/* Status of a failed operation: 400 (bad patch) or 422 (cannot apply). */
typedef struct patch_state {
    tsg_arena *a;
    json_t *doc;
    int status;
    tsg_error *err;
} patch_state;

static int fail(patch_state *s, int status, const char *fmt, const char *a)
{
    s->status = status;
    tsg_error_set(s->err, TSG_EINVAL, status == 422 ? "processing" : "invalid", fmt, a);
    return -1;
}

/* Adds v (a new reference is taken) at pointer p. */
static int op_add(patch_state *s, const pointer *p, const char *path, json_t *v)
{
    if (p->n == 0) {
        json_decref(s->doc);
        s->doc = v;
        return 0;
    }
    json_t *parent = ptr_get(s->doc, p, p->n - 1);
    const char *last = p->tok[p->n - 1];
    if (json_is_object(parent)) {
        if (json_object_set_new(parent, last, v)) return fail(s, 500, "cannot add at %s", path);
        return 0;
    }
    if (json_is_array(parent)) {
        size_t size = json_array_size(parent);
        long k = !strcmp(last, "-") ? (long)size : array_index(last);
        if (k < 0 || (size_t)k > size) {
            json_decref(v);
            return fail(s, 422, "the array index of %s is out of range", path);
        }
        if (json_array_insert_new(parent, (size_t)k, v))
            return fail(s, 500, "cannot add at %s", path);
        return 0;
    }
    json_decref(v);
    return fail(s, 422, "the parent of %s does not exist in the resource", path);
}

static int op_remove(patch_state *s, const pointer *p, const char *path)
{
    if (p->n == 0) return fail(s, 422, "cannot remove the whole resource (%s)", path);
    json_t *parent = ptr_get(s->doc, p, p->n - 1);
    const char *last = p->tok[p->n - 1];
    if (json_is_object(parent) && json_object_get(parent, last)) {
        json_object_del(parent, last);
        return 0;
    }
    if (json_is_array(parent)) {
        long k = array_index(last);
        if (k >= 0 && (size_t)k < json_array_size(parent)) {
            json_array_remove(parent, (size_t)k);
            return 0;
        }
    }
    return fail(s, 422, "the path %s does not exist in the resource", path);
}

/* Applies operation i (an object) to s->doc. */
static int apply_op(patch_state *s, json_t *op)
{
    if (!json_is_object(op)) return fail(s, 400, "%s", "an operation is not a JSON object");
    const char *name = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    if (!name) return fail(s, 400, "%s", "the operation has no 'op' string");
    if (!path) return fail(s, 400, "the '%s' operation has no 'path' string", name);
    json_t *value = json_object_get(op, "value");
    int is_add = !strcmp(name, "add"), is_replace = !strcmp(name, "replace"),
        is_test = !strcmp(name, "test"), is_move = !strcmp(name, "move"),
        is_copy = !strcmp(name, "copy"), is_remove = !strcmp(name, "remove");
    if (!(is_add || is_replace || is_test || is_move || is_copy || is_remove))
        return fail(s, 400, "unknown op '%s' (add, remove, replace, move, copy, test)", name);
    if ((is_add || is_replace || is_test) && !value)
        return fail(s, 400, "the '%s' operation needs a 'value'", name);
    const char *from = NULL;
    if (is_move || is_copy) {
        from = json_string_value(json_object_get(op, "from"));
        if (!from) return fail(s, 400, "the '%s' operation needs a 'from' string", name);
    }
    pointer p, f;
    f.n = 0;
    if (ptr_parse(s->a, path, &p, s->err)) {
        s->status = s->err->rc == TSG_ENOMEM ? 500 : 400;
        return -1;
    }
    if (from && ptr_parse(s->a, from, &f, s->err)) {
        s->status = s->err->rc == TSG_ENOMEM ? 500 : 400;
        return -1;
    }
    int rc = 0;
    if (is_add) {
        rc = op_add(s, &p, path, json_deep_copy(value));
    } else if (is_remove) {
        rc = op_remove(s, &p, path);
    } else if (is_replace) {
        if (!ptr_get(s->doc, &p, p.n))
            rc = fail(s, 422, "the path %s does not exist in the resource", path);
        else if (p.n == 0) {
            json_decref(s->doc);
            s->doc = json_deep_copy(value);
        } else {
            rc = op_remove(s, &p, path);
            if (!rc) rc = op_add(s, &p, path, json_deep_copy(value));
        }
    } else if (is_test) {
        json_t *cur = ptr_get(s->doc, &p, p.n);
        if (!cur)
            rc = fail(s, 422, "test failed: the path %s does not exist", path);
        else if (!json_equal(cur, value))
            rc = fail(s, 422, "test failed: the value at %s is not the expected one", path);
    } else {
        json_t *v = ptr_get(s->doc, &f, f.n);
        if (!v) {
            rc = fail(s, 422, "the 'from' path %s does not exist in the resource", from);
        } else if (is_move) {
            size_t fl = strlen(from);
            if (!strncmp(path, from, fl) && path[fl] == '/') {
                rc = fail(s, 400, "cannot move %s into one of its own children", from);
            } else if (strcmp(path, from)) {
                json_incref(v);
                rc = op_remove(s, &f, from);
                if (!rc)
                    rc = op_add(s, &p, path, v);
                else
                    json_decref(v);
            }
        } else {
            rc = op_add(s, &p, path, json_deep_copy(v));
        }
    }
    return rc;
}

int rest_patch_apply(tsg_arena *a, const char *type, const char *id, const char *cur,
                     size_t cur_len, const char *patch, size_t patch_len, fhir_node **out,
                     tsg_error *err)
{
    *out = NULL;
    tsg_error_clear(err);
    json_error_t je;
    json_t *ops = json_loadb(patch, patch_len, JSON_REJECT_DUPLICATES, &je);
    if (!ops) {
        tsg_error_set(err, TSG_EINVAL, "invalid", "the JSON Patch is not JSON: %s (line %d)",
                      je.text, je.line);
        return 400;
    }
    if (!json_is_array(ops)) {
        json_decref(ops);
        tsg_error_set(err, TSG_EINVAL, "invalid",
                      "a JSON Patch is an array of operations (FHIRPath Patch is not supported)");
        return 400;
    }
    patch_state s = {a, json_loadb(cur, cur_len, 0, &je), 0, err};
    if (!s.doc) {
        json_decref(ops);
        tsg_error_set(err, TSG_EINTERNAL, "exception", "the stored %s/%s could not be read", type,
                      id);
        return 500;
    }
    json_t *orig = json_deep_copy(s.doc);
    for (size_t i = 0; i < json_array_size(ops); i++) {
        if (apply_op(&s, json_array_get(ops, i))) {
            snprintf(err->location, sizeof err->location, "patch[%zu]", i);
            json_decref(ops);
            json_decref(s.doc);
            json_decref(orig);
            return s.status;
        }
    }
    json_decref(ops);
    int same = orig && json_equal(orig, s.doc);
    json_decref(orig);
    if (same) {
        json_decref(s.doc);
        return 0; /* *out NULL: unchanged */
    }
    int status = 0;
    const char *rt =
        json_is_object(s.doc) ? json_string_value(json_object_get(s.doc, "resourceType")) : NULL;
    const char *pid =
        json_is_object(s.doc) ? json_string_value(json_object_get(s.doc, "id")) : NULL;
    if (!rt || strcmp(rt, type)) {
        tsg_error_set(err, TSG_EINVAL, "processing",
                      "the patched resource is no longer a %s (resourceType)", type);
        status = 422;
    } else if (pid && strcmp(pid, id)) {
        tsg_error_set(err, TSG_EINVAL, "processing", "the patch may not change the id (%s to %s)",
                      id, pid);
        status = 422;
    } else if (!pid && json_object_set_new(s.doc, "id", json_string(id))) {
        tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        status = 500;
    }
    if (status) {
        json_decref(s.doc);
        return status;
    }
    tsg_buf b;
    tsg_buf_init(&b, TSG_LIMIT_BODY_BYTES);
    put_value(&b, s.doc, 0);
    json_decref(s.doc);
    if (tsg_buf_rc(&b)) {
        tsg_buf_free(&b);
        tsg_error_set(err, TSG_ELIMIT, "too-costly", "the patched resource is too large or deep");
        return 422;
    }
    tsg_error perr;
    tsg_error_clear(&perr);
    if (fhir_json_parse(a, b.data, b.len, NULL, out, &perr)) {
        tsg_buf_free(&b);
        *out = NULL;
        tsg_error_set(err, TSG_EINVAL, "processing",
                      "the patched resource is not a valid %s: %s%s%s", type, perr.message,
                      perr.location[0] ? " at " : "", perr.location);
        snprintf(err->location, sizeof err->location, "%s", perr.location);
        return 422;
    }
    tsg_buf_free(&b);
    return 0;
}

/* ------------------------------------------------------------------------
 * The interaction
 * ------------------------------------------------------------------------ */

/* True when the media type ct (parameters allowed) is `want`. */
static int media_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return !strncasecmp(ct, want, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

void rest_patch(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                const char *id)
{
    resp->interaction = "patch";
    const char *ct = http_header(req, "Content-Type");
    if (!req->body || !req->body_len) {
        rest_fail(req, resp, 400, "required", "PATCH needs a JSON Patch document as its body");
        return;
    }
    if (!ct || !(media_is(ct, "application/json-patch+json") || media_is(ct, "application/json"))) {
        if (ct && (media_is(ct, "application/fhir+json") || media_is(ct, "application/fhir+xml") ||
                   media_is(ct, "application/xml") || media_is(ct, "application/xml+fhir") ||
                   media_is(ct, "application/json+fhir")))
            rest_fail(req, resp, 415, "not-supported",
                      "FHIRPath Patch (a Parameters body) is not supported; send a JSON Patch "
                      "(Content-Type application/json-patch+json)");
        else
            rest_fail(req, resp, 415, "not-supported",
                      "PATCH takes a JSON Patch (Content-Type application/json-patch+json)");
        return;
    }
    long want = 0;
    const char *im = http_header(req, "If-Match");
    if (im) {
        const char *h = im;
        if (!strncmp(h, "W/", 2)) h += 2;
        if (*h == '"') h++;
        char *end;
        want = strtol(h, &end, 10);
        if (end == h || want <= 0 || (*end && strcmp(end, "\""))) {
            rest_fail(req, resp, 400, "invalid", "If-Match must be W/\"<version>\"");
            return;
        }
    }
    tsg_error err;
    tsg_error_clear(&err);
    for (unsigned attempt = 0; attempt < REST_LIMIT_RETRIES; attempt++) {
        store_resource r;
        if (store_read(ctx->st, type, id, 0, &r, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        if (!r.found) {
            rest_fail(req, resp, 404, "not-found", "%s/%s is not known", type, id);
            return;
        }
        if (rest_hide(req, resp, ctx, type, id, r.compartment)) {
            store_resource_clear(&r);
            return;
        }
        if (r.deleted) {
            rest_fail(req, resp, 410, "deleted", "%s/%s was deleted (version %ld)", type, id,
                      r.version);
            store_resource_clear(&r);
            return;
        }
        long v = r.version;
        if (want > 0 && want != v) {
            store_resource_clear(&r);
            rest_fail(req, resp, 412, "conflict",
                      "If-Match version %ld does not match the current version %ld of %s/%s", want,
                      v, type, id);
            return;
        }
        fhir_node *root = NULL;
        int st = rest_patch_apply(req->arena, type, id, r.body, r.body_len, req->body,
                                  req->body_len, &root, &err);
        if (!st && !root) {
            /* nothing changed: the current version stands */
            rest_respond_resource(req, resp, 200, r.body, r.body_len, r.version, r.lu_ms);
            store_resource_clear(&r);
            return;
        }
        store_resource_clear(&r);
        if (st) {
            http_respond_error(resp, st, &err, req->format);
            return;
        }
        resp->n_headers = 0;
        rest_write_resource(req, resp, ctx, root, id, v, 0);
        resp->interaction = "patch";
        /* another writer won between our read and our write: without If-Match
         * the patch starts again on the new version */
        if (resp->status != 412 || want > 0) return;
    }
    resp->n_headers = 0;
    rest_fail(req, resp, 409, "conflict", "%s/%s is being changed by other requests; try again",
              type, id);
}
