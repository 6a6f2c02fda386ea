/*
 * fhir_bundle.c — transactions and batches (being built: "not supported" until then).
 */
#include "rest_internal.h"

void rest_bundle_post(const http_request *req, http_response *resp, rest_ctx *ctx)
{
    (void)ctx;
    resp->interaction = "transaction";
    rest_fail(req, resp, 501, "not-supported", "transactions and batches are not supported yet");
}
