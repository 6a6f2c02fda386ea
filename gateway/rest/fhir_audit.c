/*
 * fhir_audit.c — a write and its audit record in one atomic step
 * (rest_internal.h: rest_commit; gateway/auth/auth.h, "Audit"); every write
 * of the REST layer commits here.
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
    if (rc == TSG_OK && *conflict < 0) {
        if (with) resp->audited = status;
        /* a care team, consent or role changed: who sees whom is computed again */
        for (size_t i = 0; i < n; i++)
            if (w[i].bump) {
                rest_access_changed(ctx->access);
                break;
            }
    }
    return rc;
}
