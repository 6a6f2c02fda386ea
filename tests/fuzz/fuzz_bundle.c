/*
 * fuzz_bundle.c — libFuzzer target for transaction and batch Bundles as POST /fhir
 * processes them (gateway/rest/fhir_bundle.c, rest_bundle_post).
 *
 * Any bytes are posted as the body of POST /fhir. The store's Redis is a Unix
 * socket that does not exist, so everything before the first Redis call runs
 * for real — the FHIR JSON reader, the Bundle type and entry checks, request
 * methods and URLs (conditional ones included), ifNoneExist/ifMatch, fullUrl
 * and reference rewriting, the processing order — and whatever needs Redis
 * answers 503. The answer must be a status the gateway gives (200 for a batch,
 * 4xx, 503 or 500) with a JSON body: a Bundle for 200, an OperationOutcome
 * otherwise. Never a crash, leak or hang.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest/rest_internal.h"
#include "search/search.h"
#include "store/redis.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_bundle: broken property: %s\n", what);
        abort();
    }
}

static rest_ctx ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    search_params_load();
    redis_target t;
    tsg_error err;
    redis_client_options opt = {.connect_timeout_ms = 50, .command_timeout_ms = 50};
    if (redis_target_unix("/nonexistent/tsunagu-fuzz-bundle.sock", &t, &err) ||
        redis_client_new(&t, &opt, &ctx.redis, &err) || store_new(ctx.redis, &ctx.st, &err)) {
        fprintf(stderr, "fuzz_bundle: setup: %s\n", err.message);
        abort();
    }
    ctx.max_bundle_entries = 100;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tsg_arena *a = tsg_arena_new(0);
    if (!a) return 0;
    http_request req = {0};
    req.method = HTTP_POST;
    req.method_name = "POST";
    req.path = "/fhir";
    req.route = "/fhir";
    req.query = "";
    req.body = (const char *)data;
    req.body_len = size;
    req.format = HTTP_FORMAT_JSON;
    req.body_format = HTTP_FORMAT_JSON;
    req.arena = a;
    http_response resp = {0};
    resp.status = 200;
    tsg_buf_init(&resp.body, 0);
    resp.arena = a;
    rest_bundle_post(&req, &resp, &ctx);
    int st = resp.status;
    check(st == 200 || (st >= 400 && st < 600), "a status the gateway gives");
    if (tsg_buf_rc(&resp.body) == TSG_OK) {
        check(resp.body.len > 0, "an answer with a body");
        const char *want =
            st == 200 ? "\"resourceType\":\"Bundle\"" : "\"resourceType\":\"OperationOutcome\"";
        check(resp.body.data && memmem(resp.body.data, resp.body.len, want, strlen(want)) != NULL,
              st == 200 ? "200 answers a Bundle" : "an error answers an OperationOutcome");
    }
    tsg_buf_free(&resp.body);
    tsg_arena_free(a);
    return 0;
}
