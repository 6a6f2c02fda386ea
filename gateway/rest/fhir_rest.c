/*
 * fhir_rest.c — the FHIR R4 interactions below /fhir: routing by path and
 * method, read, vread, create, update, delete, history, capabilities.
 * Search lives in fhir_search.c, transactions and batches in fhir_bundle.c.
 *
 * ## Writes
 *
 * Every write reads the current version, builds the new body (meta.versionId
 * = current + 1, meta.lastUpdated = now), extracts its index entries and
 * commits them with store_commit(), which checks that the version is still the
 * one read. When another writer won in between, the write starts again (up to
 * REST_LIMIT_RETRIES) — unless the client asked for a version (If-Match), which
 * then answers 412.
 */
#include "rest_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* The base URL of this server as the client sees it: http://<Host>/fhir. */
static const char *base_url(const http_request *req)
{
    const char *host = http_header(req, "Host");
    const char *proto = http_header(req, "X-Forwarded-Proto");
    size_t n = (host ? strlen(host) : 9) + 32;
    char *s = tsg_arena_alloc(req->arena, n);
    if (!s) return "/fhir";
    snprintf(s, n, "%s://%s/fhir", proto && !strcmp(proto, "https") ? "https" : "http",
             host ? host : "localhost");
    return s;
}

/* Parses If-Match `W/"n"` or `"n"` into *v; 0 when absent, -1 when malformed. */
static int if_match(const http_request *req, long *v)
{
    const char *h = http_header(req, "If-Match");
    if (!h) return 0;
    if (!strncmp(h, "W/", 2)) h += 2;
    if (*h == '"') h++;
    char *end;
    long x = strtol(h, &end, 10);
    if (end == h || x <= 0 || (*end && strcmp(end, "\""))) return -1;
    *v = x;
    return 1;
}

/* Prefer: return=minimal|representation|OperationOutcome (default representation). */
typedef enum prefer_return { PREFER_REPRESENTATION, PREFER_MINIMAL, PREFER_OUTCOME } prefer_return;

static prefer_return prefer(const http_request *req)
{
    const char *h = http_header(req, "Prefer");
    if (!h) return PREFER_REPRESENTATION;
    if (strstr(h, "return=minimal")) return PREFER_MINIMAL;
    if (strstr(h, "return=OperationOutcome")) return PREFER_OUTCOME;
    return PREFER_REPRESENTATION;
}

/* Answers a successful write per Prefer, with Location, ETag and Last-Modified. */
static void respond_written(const http_request *req, http_response *resp, int status,
                            const char *type, const char *id, long version, long long lu_ms,
                            const char *body, size_t len)
{
    char loc[512];
    snprintf(loc, sizeof loc, "%s/%s/%s/_history/%ld", base_url(req), type, id, version);
    http_response_header_add(resp, "Location", loc);
    prefer_return p = prefer(req);
    if (p == PREFER_REPRESENTATION) {
        rest_respond_resource(req, resp, status, body, len, version, lu_ms);
        return;
    }
    char etag[40];
    snprintf(etag, sizeof etag, "W/\"%ld\"", version);
    http_response_header_add(resp, "ETag", etag);
    if (p == PREFER_OUTCOME) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s/%s version %ld stored", type, id, version);
        http_respond_outcome(resp, status, "information", "informational", msg, NULL, req->format);
        return;
    }
    resp->status = status;
    tsg_buf_reset(&resp->body);
}

/* Answers 404 — exactly as for an unknown id — when the client may not see
 * Type/id (in patient pid's compartment), 503/500 when that cannot be told;
 * returns 1 then, 0 when it may see it. */
int rest_hide(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
              const char *id, const char *pid)
{
    tsg_error err;
    tsg_error_clear(&err);
    int v = rest_access_sees(ctx, req, type, pid, &err);
    if (v > 0) return 0;
    if (v < 0)
        rest_fail_err(req, resp, 500, &err);
    else
        rest_fail(req, resp, 404, "not-found", "%s/%s is not known", type, id);
    return 1;
}

/* Answers the verdict of rest_access_write: 403 with why, or the failure;
 * returns 1 then, 0 when the write may go ahead. */
int rest_deny_write(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                    int creating, const store_resource *cur, const store_write *w)
{
    const char *why = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    int live = cur && cur->found && !cur->deleted;
    int v = rest_access_write(ctx, req, type, creating, live ? cur->body : NULL,
                              live ? cur->body_len : 0, live ? cur->compartment : NULL,
                              w && w->op == STORE_PUT ? w->body : NULL,
                              w && w->op == STORE_PUT ? w->body_len : 0,
                              w && w->op == STORE_PUT ? w->compartment : NULL, &why, &err);
    if (!v) return 0;
    if (v < 0)
        rest_fail_err(req, resp, 500, &err);
    else
        rest_fail(req, resp, 403, "forbidden", "%s: %s", type, why);
    return 1;
}

store_write rest_delete_write(const char *type, const char *id, long version)
{
    return (store_write){.op = STORE_DELETE,
                         .type = type,
                         .id = id,
                         .expect_version = version,
                         .interaction = "delete",
                         .bump = rest_access_type_watched(type) ? REST_ACCESS_GEN_KEY : NULL};
}

/* ------------------------------------------------------------------------
 * Writing one resource
 * ------------------------------------------------------------------------ */

tsg_rc rest_prepare_put(tsg_arena *a, fhir_node *root, const char *id, long cur_version,
                        long long now_ms, const char *interaction, store_write *w, tsg_error *err)
{
    memset(w, 0, sizeof *w);
    if (rest_set_meta(a, root, id, cur_version + 1, now_ms))
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    tsg_buf body;
    tsg_buf_init(&body, TSG_LIMIT_BODY_BYTES);
    if (fhir_json_write(root, &body, 0)) {
        tsg_buf_free(&body);
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "the resource is larger than the body limit once written");
    }
    char *copy = tsg_arena_strndup(a, body.data, body.len);
    size_t len = body.len;
    tsg_buf_free(&body);
    if (!copy) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    store_index_entry *ix = NULL;
    size_t nix = 0;
    const char *comp = NULL;
    tsg_rc rc = rest_index(a, root, id, &ix, &nix, &comp, err);
    if (rc) return rc;
    *w = (store_write){.op = STORE_PUT,
                       .type = root->type->name,
                       .id = id,
                       .expect_version = cur_version,
                       .body = copy,
                       .body_len = len,
                       .compartment = comp,
                       .interaction = interaction,
                       .index = ix,
                       .nindex = nix,
                       .bump =
                           rest_access_type_watched(root->type->name) ? REST_ACCESS_GEN_KEY : NULL};
    return TSG_OK;
}

/*
 * Stores root as Type/id (create when the resource has no current version).
 * want_version > 0: the client's If-Match. must_not_exist: a create that must
 * not overwrite — 2 when id is one rest_new_id() just drew (store_write.fresh),
 * 1 when the client chose it. Answers the request.
 */
static void write_resource(const http_request *req, http_response *resp, rest_ctx *ctx,
                           fhir_node *root, const char *id, long want_version, int must_not_exist)
{
    const char *type = root->type->name;
    if (rest_validate_single(req, resp, ctx, root)) return; /* 422: invalid */
    tsg_error err;
    tsg_error_clear(&err);
    for (unsigned attempt = 0; attempt < REST_LIMIT_RETRIES; attempt++) {
        /* a create with a fresh random id first assumes the id is free (the
         * commit checks it): one round trip instead of two */
        store_resource cur = {0};
        if (!(must_not_exist && attempt == 0) && store_read(ctx->st, type, id, 0, &cur, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        long v = cur.found ? cur.version : 0;
        int existed = cur.found && !cur.deleted;
        if (must_not_exist && v) {
            store_resource_clear(&cur);
            rest_fail(req, resp, 409, "duplicate", "%s/%s already exists", type, id);
            return;
        }
        if (want_version > 0 && (!existed || v != want_version)) {
            store_resource_clear(&cur);
            rest_fail(req, resp, 412, "conflict",
                      "If-Match version %ld does not match the current version %ld of %s/%s",
                      want_version, existed ? v : 0, type, id);
            return;
        }
        long long now = rest_now_ms();
        store_write w;
        /* the outbox names what the client did: PATCH (fhir_patch.c) comes through here */
        const char *how = req->method == HTTP_PATCH ? "patch" : existed ? "update" : "create";
        if (rest_prepare_put(req->arena, root, id, v, now, how, &w, &err) ||
            rest_binary_context(ctx, req->arena, root, &w, &err)) {
            store_resource_clear(&cur);
            rest_fail_err(req, resp, 400, &err);
            return;
        }
        int denied = rest_deny_write(req, resp, ctx, type, !existed, &cur, &w);
        store_resource_clear(&cur);
        if (denied) return;
        w.fresh = must_not_exist == 2;
        int conflict;
        resp->interaction = how; /* what the audit record committed with the write says */
        if (rest_commit(req, resp, ctx, &w, 1, now, existed ? 200 : 201, &w, &conflict, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        if (conflict < 0) {
            respond_written(req, resp, existed ? 200 : 201, type, id, v + 1, now, w.body,
                            w.body_len);
            return;
        }
        if (want_version > 0) {
            rest_fail(req, resp, 412, "conflict", "%s/%s was changed by another request", type, id);
            return;
        }
    }
    rest_fail(req, resp, 409, "conflict", "%s/%s is being changed by other requests; try again",
              type, id);
}

/* ------------------------------------------------------------------------
 * Interactions
 * ------------------------------------------------------------------------ */

static void do_read(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                    const char *id, long version)
{
    resp->interaction = version ? "vread" : "read";
    store_resource r;
    tsg_error err;
    if (store_read(ctx->st, type, id, version, &r, &err)) {
        rest_fail_err(req, resp, 500, &err);
        return;
    }
    if (r.found) { /* what the client may not see answers as what does not exist */
        int sees = rest_access_sees(ctx, req, type, r.compartment, &err);
        if (sees < 0) {
            store_resource_clear(&r);
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        if (!sees) r.found = 0;
    }
    if (!r.found) {
        if (version)
            rest_fail(req, resp, 404, "not-found", "%s/%s has no version %ld", type, id, version);
        else
            rest_fail(req, resp, 404, "not-found", "%s/%s is not known", type, id);
    } else if (r.deleted) {
        rest_fail(req, resp, 410, "deleted", "%s/%s was deleted (version %ld)", type, id,
                  r.version);
        char etag[40];
        snprintf(etag, sizeof etag, "W/\"%ld\"", r.version);
        http_response_header_add(resp, "ETag", etag);
    } else {
        rest_respond_resource(req, resp, 200, r.body, r.body_len, r.version, r.lu_ms);
    }
    store_resource_clear(&r);
}

static void do_create(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type)
{
    resp->interaction = "create";
    fhir_node *root = rest_parse_body(req, resp);
    if (!root) return;
    if (strcmp(root->type->name, type)) {
        rest_fail(req, resp, 400, "invalid", "the body is a %s, but the URL says %s",
                  root->type->name, type);
        return;
    }
    const char *cond = http_header(req, "If-None-Exist");
    char id[37];
    if (!cond) {
        rest_new_id(id);
        write_resource(req, resp, ctx, root, id, 0, 2);
        return;
    }
    /* Conditional create: search, and create with a claim on the criteria
     * (store_write.claim), so that of two concurrent creates with the same
     * criteria one wins; the other's commit conflicts and its next search
     * finds the winner. */
    size_t cl = strlen(type) + strlen(cond) + 16;
    char *claim = tsg_arena_alloc(req->arena, cl);
    if (!claim) {
        rest_fail(req, resp, 500, "exception", "out of memory");
        return;
    }
    snprintf(claim, cl, "tsg:claim:%s?%s", type, cond);
    if (rest_validate_single(req, resp, ctx, root)) return; /* 422: invalid */
    tsg_error err;
    tsg_error_clear(&err);
    for (unsigned attempt = 0; attempt < REST_LIMIT_RETRIES; attempt++) {
        const char *found = NULL;
        long n = rest_search_count_match(req, resp, ctx, type, cond, &found);
        if (n < 0) return; /* answered */
        if (n > 1) {
            rest_fail(req, resp, 412, "duplicate",
                      "If-None-Exist: %ld %s resources match %s; no resource was created", n, type,
                      cond);
            return;
        }
        if (n == 1) {
            resp->interaction = "create-conditional";
            do_read(req, resp, ctx, type, found, 0);
            if (resp->status == 200) {
                char loc[512];
                snprintf(loc, sizeof loc, "%s/%s/%s", base_url(req), type, found);
                http_response_header_add(resp, "Location", loc);
            }
            return;
        }
        rest_new_id(id);
        long long now = rest_now_ms();
        store_write w;
        if (rest_prepare_put(req->arena, root, id, 0, now, "create", &w, &err) ||
            rest_binary_context(ctx, req->arena, root, &w, &err)) {
            rest_fail_err(req, resp, 400, &err);
            return;
        }
        w.claim = claim;
        if (rest_deny_write(req, resp, ctx, type, 1, NULL, &w)) return;
        int conflict;
        if (rest_commit(req, resp, ctx, &w, 1, now, 201, &w, &conflict, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        if (conflict < 0) {
            respond_written(req, resp, 201, type, id, 1, now, w.body, w.body_len);
            return;
        }
    }
    rest_fail(req, resp, 409, "conflict",
              "If-None-Exist: other requests are creating %s?%s at the same time; try again", type,
              cond);
}

static void do_update(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                      const char *id)
{
    resp->interaction = "update";
    long want = 0;
    if (if_match(req, &want) < 0) {
        rest_fail(req, resp, 400, "invalid", "If-Match must be W/\"<version>\"");
        return;
    }
    fhir_node *root = rest_parse_body(req, resp);
    if (!root) return;
    if (strcmp(root->type->name, type)) {
        rest_fail(req, resp, 400, "invalid", "the body is a %s, but the URL says %s",
                  root->type->name, type);
        return;
    }
    const char *bid = rest_child_value(root, "id");
    if (!bid) {
        rest_fail(req, resp, 400, "required", "an update needs the resource's id in the body");
        return;
    }
    if (strcmp(bid, id)) {
        rest_fail(req, resp, 400, "invalid", "the body's id %s is not the URL's id %s", bid, id);
        return;
    }
    write_resource(req, resp, ctx, root, id, want, 0);
}

static void do_delete(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                      const char *id)
{
    resp->interaction = "delete";
    tsg_error err;
    tsg_error_clear(&err);
    long want = 0;
    if (if_match(req, &want) < 0) {
        rest_fail(req, resp, 400, "invalid", "If-Match must be W/\"<version>\"");
        return;
    }
    for (unsigned attempt = 0; attempt < REST_LIMIT_RETRIES; attempt++) {
        store_resource cur;
        if (store_read(ctx->st, type, id, 0, &cur, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        long v = cur.found ? cur.version : 0;
        int live = cur.found && !cur.deleted;
        /* what the client may not see it cannot delete; it looks absent */
        int sees = cur.found ? rest_access_sees(ctx, req, type, cur.compartment, &err) : 1;
        if (sees < 0) {
            store_resource_clear(&cur);
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        int hidden = !sees;
        store_write w = rest_delete_write(type, id, v);
        if (live && !hidden && rest_deny_write(req, resp, ctx, type, 0, &cur, &w)) {
            store_resource_clear(&cur);
            return;
        }
        store_resource_clear(&cur);
        if (hidden) live = 0;
        if (want > 0 && (!live || v != want)) {
            rest_fail(req, resp, 412, "conflict", "If-Match version %ld is not the current one",
                      want);
            return;
        }
        if (!live) {
            /* deleting what is absent or deleted succeeds (FHIR: idempotent) */
            http_respond_outcome(resp, 200, "information", "informational",
                                 "nothing to delete: the resource does not exist or is deleted",
                                 NULL, req->format);
            return;
        }
        int conflict;
        if (rest_commit(req, resp, ctx, &w, 1, rest_now_ms(), 200, &w, &conflict, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        if (conflict < 0) {
            char etag[40];
            snprintf(etag, sizeof etag, "W/\"%ld\"", v + 1);
            http_response_header_add(resp, "ETag", etag);
            char msg[256];
            snprintf(msg, sizeof msg, "%s/%s deleted (version %ld)", type, id, v + 1);
            http_respond_outcome(resp, 200, "information", "informational", msg, NULL, req->format);
            return;
        }
        if (want > 0) {
            rest_fail(req, resp, 412, "conflict", "%s/%s was changed by another request", type, id);
            return;
        }
    }
    rest_fail(req, resp, 409, "conflict", "%s/%s is being changed by other requests", type, id);
}

/* Parses a FHIR instant/dateTime (for _since) into ms; 0 when malformed. */
static int parse_since(const char *s, long long *ms)
{
    int64_t lo, hi;
    if (search_date_range(s, strlen(s), &lo, &hi)) return 0;
    *ms = lo;
    return 1;
}

static int history_visible(void *user_data, const char *type, const char *compartment)
{
    return rest_view_sees(user_data, type, compartment);
}

static void do_history(const http_request *req, http_response *resp, rest_ctx *ctx,
                       const char *type, const char *id)
{
    resp->interaction = id ? "history-instance" : type ? "history-type" : "history-system";
    long long since = LLONG_MIN;
    size_t count = REST_LIMIT_COUNT_DEFAULT, offset = 0;
    for (size_t i = 0; i < req->n_params; i++) {
        const http_param *p = &req->params[i];
        char *end;
        if (!strcmp(p->name, "_since")) {
            if (!parse_since(p->value, &since)) {
                rest_fail(req, resp, 400, "invalid", "_since=%s is not a FHIR instant", p->value);
                return;
            }
        } else if (!strcmp(p->name, "_count")) {
            long c = strtol(p->value, &end, 10);
            if (*end || c < 0) {
                rest_fail(req, resp, 400, "invalid", "_count=%s is not a count", p->value);
                return;
            }
            count = (size_t)c > REST_LIMIT_COUNT_MAX ? REST_LIMIT_COUNT_MAX : (size_t)c;
        } else if (!strcmp(p->name, "_offset")) {
            long c = strtol(p->value, &end, 10);
            if (*end || c < 0) {
                rest_fail(req, resp, 400, "invalid", "_offset=%s is not a count", p->value);
                return;
            }
            offset = (size_t)c;
        } else if (strcmp(p->name, "_format") && strcmp(p->name, "_pretty") &&
                   strcmp(p->name, "_summary") && strcmp(p->name, "_elements")) {
            rest_fail(req, resp, 400, "not-supported",
                      "history does not support the parameter %s (only _since, _count)", p->name);
            return;
        }
    }
    store_history_entry *h = NULL;
    size_t n = 0, total = 0;
    tsg_error err;
    tsg_error_clear(&err);
    rest_view view = {0};
    store_history_filter filter = {history_visible, &view}, *fp = NULL;
    if (id) { /* a resource the client may not see has no history for it */
        store_resource r;
        if (store_read(ctx->st, type, id, 0, &r, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        int hide = r.found && rest_hide(req, resp, ctx, type, id, r.compartment);
        store_resource_clear(&r);
        if (hide) return;
    } else {
        if (rest_view_load(ctx, req, &view, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        if (view.restricted && (!type || rest_view_filters(&view, type))) fp = &filter;
    }
    if (store_history(ctx->st, type, id, since, offset, count, fp, &h, &n, &total, &err)) {
        rest_fail_err(req, resp, 500, &err);
        return;
    }
    if (id && !total) {
        store_resource r;
        if (!store_read(ctx->st, type, id, 0, &r, &err) && !r.found) {
            free(h);
            rest_fail(req, resp, 404, "not-found", "%s/%s is not known", type, id);
            return;
        }
        store_resource_clear(&r);
    }
    rest_bundle bb;
    rest_bundle_begin(&bb, "history", (long)total);
    char self[600];
    snprintf(self, sizeof self, "%s%s%s%s%s/_history?_count=%zu&_offset=%zu", base_url(req),
             type ? "/" : "", type ? type : "", id ? "/" : "", id ? id : "", count, offset);
    rest_bundle_link(&bb, "self", self);
    if (offset + n < total) {
        snprintf(self, sizeof self, "%s%s%s%s%s/_history?_count=%zu&_offset=%zu", base_url(req),
                 type ? "/" : "", type ? type : "", id ? "/" : "", id ? id : "", count, offset + n);
        rest_bundle_link(&bb, "next", self);
    }
    for (size_t i = 0; i < n; i++) {
        const store_history_entry *e = &h[i];
        char url[400], extra[600], lu[32];
        snprintf(url, sizeof url, "%s/%s/%s", base_url(req), e->type, e->id);
        const char *method = e->res.deleted ? "DELETE" : e->res.version == 1 ? "POST" : "PUT";
        rest_instant(e->res.lu_ms, lu);
        if (!strcmp(method, "POST"))
            snprintf(extra, sizeof extra,
                     "\"request\":{\"method\":\"POST\",\"url\":\"%s\"},\"response\":{\"status\":"
                     "\"201\",\"etag\":\"W/\\\"%ld\\\"\",\"lastModified\":\"%s\"}",
                     e->type, e->res.version, lu);
        else
            snprintf(extra, sizeof extra,
                     "\"request\":{\"method\":\"%s\",\"url\":\"%s/%s\"},\"response\":{"
                     "\"status\":\"%s\",\"etag\":\"W/\\\"%ld\\\"\",\"lastModified\":\"%s\"}",
                     method, e->type, e->id, e->res.deleted ? "204" : "200", e->res.version, lu);
        rest_bundle_entry(&bb, url, e->res.body, e->res.body_len, extra);
        store_resource_clear(&h[i].res);
    }
    free(h);
    rest_bundle_finish(&bb, req, resp);
}

/* ------------------------------------------------------------------------
 * Routing
 * ------------------------------------------------------------------------ */

/* True when s names an R4 resource type. */
static int is_type(const char *s)
{
    return model_resource_find(s, strlen(s)) != NULL;
}

static int check_id(const http_request *req, http_response *resp, const char *id)
{
    if (rest_id_valid(id)) return 1;
    rest_fail(req, resp, 400, "invalid", "'%s' is not a valid FHIR id ([A-Za-z0-9.-]{1,64})", id);
    return 0;
}

void fhir_handle(const http_request *req, http_response *resp, void *user_data)
{
    rest_ctx *ctx = user_data;
    const char *const *s = req->segments;
    size_t n = req->n_segments;
    http_method m = req->method;

    if (n == 0) {
        if (m == HTTP_GET && http_param_get(req, "_getpages")) {
            rest_search_page(req, resp, ctx);
            return;
        }
        if (m == HTTP_POST) {
            rest_bundle_post(req, resp, ctx);
            return;
        }
        http_response_header_add(resp, "Allow", "POST, OPTIONS");
        rest_fail(req, resp, 405, "not-supported",
                  "the FHIR base takes POST (a transaction or batch Bundle)");
        return;
    }
    if (!strcmp(s[0], "metadata")) {
        if (n == 1 && m == HTTP_GET) {
            rest_capabilities(req, resp);
            return;
        }
    } else if (!strcmp(s[0], "$validate")) {
        if (n == 1 && m == HTTP_POST) {
            rest_validate_op(req, resp, ctx, NULL, NULL);
            return;
        }
    } else if (!strcmp(s[0], "_history")) {
        if (n == 1 && m == HTTP_GET) {
            do_history(req, resp, ctx, NULL, NULL);
            return;
        }
    } else if (!is_type(s[0])) {
        rest_fail(req, resp, 404, "not-supported", "'%s' is not an R4 resource type", s[0]);
        return;
    } else if (n == 1) {
        if (m == HTTP_GET) {
            rest_search(req, resp, ctx, s[0]);
            return;
        }
        if (m == HTTP_POST) {
            do_create(req, resp, ctx, s[0]);
            return;
        }
        if (m == HTTP_PUT || m == HTTP_DELETE || m == HTTP_PATCH) {
            rest_conditional(req, resp, ctx, s[0]);
            return;
        }
    } else if (n == 2 && !strcmp(s[1], "_search")) {
        if (m == HTTP_POST) {
            rest_search(req, resp, ctx, s[0]);
            return;
        }
    } else if (n == 2 && !strcmp(s[1], "_history")) {
        if (m == HTTP_GET) {
            do_history(req, resp, ctx, s[0], NULL);
            return;
        }
    } else if (n == 2 && !strcmp(s[1], "$validate")) {
        if (m == HTTP_POST) {
            rest_validate_op(req, resp, ctx, s[0], NULL);
            return;
        }
    } else if (n == 2) {
        if (!check_id(req, resp, s[1])) return;
        if (m == HTTP_GET) {
            do_read(req, resp, ctx, s[0], s[1], 0);
            return;
        }
        if (m == HTTP_PUT) {
            do_update(req, resp, ctx, s[0], s[1]);
            return;
        }
        if (m == HTTP_DELETE) {
            do_delete(req, resp, ctx, s[0], s[1]);
            return;
        }
        if (m == HTTP_PATCH) {
            rest_patch(req, resp, ctx, s[0], s[1]);
            return;
        }
    } else if (n == 3 && !strcmp(s[2], "_history")) {
        if (!check_id(req, resp, s[1])) return;
        if (m == HTTP_GET) {
            do_history(req, resp, ctx, s[0], s[1]);
            return;
        }
    } else if (n == 3 && !strcmp(s[2], "$validate")) {
        if (!check_id(req, resp, s[1])) return;
        if (m == HTTP_POST || m == HTTP_GET) {
            rest_validate_op(req, resp, ctx, s[0], s[1]);
            return;
        }
    } else if (n == 3 && !strcmp(s[2], "$everything") && !strcmp(s[0], "Patient")) {
        if (!check_id(req, resp, s[1])) return;
        if (m == HTTP_GET) {
            rest_everything(req, resp, ctx, s[1]);
            return;
        }
    } else if (n == 4 && !strcmp(s[2], "_history")) {
        if (!check_id(req, resp, s[1])) return;
        char *end;
        long v = strtol(s[3], &end, 10);
        if (*end || v <= 0) {
            rest_fail(req, resp, 400, "invalid", "'%s' is not a version id", s[3]);
            return;
        }
        if (m == HTTP_GET) {
            do_read(req, resp, ctx, s[0], s[1], v);
            return;
        }
    } else {
        rest_fail(req, resp, 404, "not-supported", "no FHIR interaction has the path %s",
                  req->path);
        return;
    }
    /* the path is known but not the method: 405 with what it takes */
    const char *allow = "GET, HEAD, OPTIONS";
    if (n == 1 && is_type(s[0]))
        allow = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";
    else if ((n == 2 && !strcmp(s[1], "_search")) ||
             (n >= 1 && !strcmp(s[n - 1], "$validate") && n < 3))
        allow = "POST, OPTIONS";
    else if (n == 3 && !strcmp(s[2], "$validate"))
        allow = "GET, HEAD, POST, OPTIONS";
    else if (n == 2 && strcmp(s[1], "_history"))
        allow = "GET, HEAD, PUT, DELETE, PATCH, OPTIONS";
    http_response_header_add(resp, "Allow", allow);
    rest_fail(req, resp, 405, "not-supported", "%s is not supported on %s (allowed: %s)",
              req->method_name, req->path, allow);
}

/* Exposed to fhir_bundle.c: one write through the same path as PUT/POST. */
void rest_write_resource(const http_request *req, http_response *resp, rest_ctx *ctx,
                         fhir_node *root, const char *id, long want_version, int must_not_exist)
{
    write_resource(req, resp, ctx, root, id, want_version, must_not_exist);
}

const char *rest_base_url(const http_request *req)
{
    return base_url(req);
}
