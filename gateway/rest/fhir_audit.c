/*
 * fhir_audit.c — a request's audit record in the same Redis step as its data
 * (rest_internal.h: rest_commit, rest_read; gateway/auth/auth.h, "Audit").
 */
#include "rest_internal.h"

tsg_rc rest_commit(const http_request *req, http_response *resp, rest_ctx *ctx,
                   const store_write *w, size_t n, long long now_ms, int status,
                   const store_write *named, int *conflict, tsg_error *err)
{
    store_append rec;
    bool with = resp && n && ctx->record &&
                ctx->record(req, resp, status, named ? named->type : NULL, named ? named->id : NULL,
                            named ? named->expect_version + 1 : 0, &rec, ctx->record_ud);
    /* without a record (no audit trail, or no memory for it) the finish hook
     * writes it after the commit, as for any other request */
    tsg_rc rc = store_commit_with(ctx->st, w, n, now_ms, with ? &rec : NULL, conflict, err);
    if (with && rc == TSG_OK && *conflict < 0) resp->audited = status;
    return rc;
}

tsg_rc rest_read(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                 const char *id, long version, store_resource *r, tsg_error *err)
{
    store_append rec;
    if (version || !ctx->record || !ctx->record(req, resp, 200, type, id, 0, &rec, ctx->record_ud))
        return store_read(ctx->st, type, id, version, r, err);
    /* the answers do_read gives: the resource, 410 Gone, 404 Not Found */
    static const char *const statuses[3] = {"200", "410", "404"};
    tsg_rc rc = store_read_with(ctx->st, type, id, &rec, statuses, r, err);
    if (rc == TSG_OK) resp->audited = !r->found ? 404 : r->deleted ? 410 : 200;
    return rc;
}
