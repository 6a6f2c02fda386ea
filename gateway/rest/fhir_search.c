/*
 * fhir_search.c — search (being built: answers "not supported" until then).
 */
#include "rest_internal.h"

void rest_search(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type)
{
    (void)ctx;
    resp->interaction = "search-type";
    rest_fail(req, resp, 501, "not-supported", "search on %s is not supported yet", type);
}

long rest_search_count_match(const http_request *req, http_response *resp, rest_ctx *ctx,
                             const char *type, const char *query, const char **first)
{
    (void)ctx, (void)first;
    rest_fail(req, resp, 501, "not-supported", "conditional %s?%s is not supported yet", type,
              query);
    return -1;
}

void rest_conditional(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type)
{
    (void)ctx;
    rest_fail(req, resp, 501, "not-supported", "conditional %s on %s is not supported yet",
              req->method_name, type);
}

void rest_everything(const http_request *req, http_response *resp, rest_ctx *ctx, const char *id)
{
    (void)ctx;
    rest_fail(req, resp, 501, "not-supported", "Patient/%s/$everything is not supported yet", id);
}
