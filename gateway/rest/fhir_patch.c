/*
 * fhir_patch.c — PATCH (being built: answers "not supported" until then).
 */
#include "rest_internal.h"

void rest_patch(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                const char *id)
{
    (void)ctx;
    resp->interaction = "patch";
    rest_fail(req, resp, 501, "not-supported", "PATCH of %s/%s is not supported yet", type, id);
}
