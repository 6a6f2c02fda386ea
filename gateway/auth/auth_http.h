/*
 * auth_http.h — the HTTP face of the auth module (auth.h): the gate that
 * http_server calls before every handler, and the routes /auth/token,
 * /auth/jwks and /.well-known/smart-configuration. Binds auth.h to the
 * HTTP layer of the rest module (rest/http.h); rest_serve() wires it.
 *
 *     auth_service *svc;                      // auth_service_new(...)
 *     auth_http_config(&hc, svc, public_url); // once
 *     http_server_set_gate(srv, auth_http_gate, &hc);
 *     http_route_add(srv, "/auth", HTTP_GET | HTTP_POST, 0, auth_http_handle, &hc, &err);
 *     http_route_add(srv, "/.well-known", HTTP_GET, 0, auth_http_wellknown, &hc, &err);
 *     http_route_add(srv, "/fhir/AuditEvent", HTTP_GET, 0, auth_http_audit, &hc, &err);
 *     http_server_set_finish(srv, auth_http_finish, &hc);   // the audit trail
 *
 * Answers of the gate (R4 OperationOutcome in the negotiated format):
 *   401 + `WWW-Authenticate: Bearer realm="tsunagu"` (no token) or with
 *       `error="invalid_token", error_description="…"` (a bad token: alg,
 *       kid, signature, times, audience, revoked client, size, syntax);
 *   403 + `WWW-Authenticate: Bearer … error="insufficient_scope"`: the scopes
 *       do not allow the interaction (or /metrics without role admin);
 *   429 + `Retry-After: <s>`: the client's rate is exhausted;
 *   503: Redis does not answer (revocation and rate cannot be checked).
 */
#ifndef TSG_AUTH_HTTP_H
#define TSG_AUTH_HTTP_H

#include "../rest/http.h"
#include "auth.h"

typedef struct auth_http {
    auth_service *svc;
    auth_audit *audit;             /* NULL = no audit trail */
    char public_url[AUTH_URL_MAX]; /* "https://host[:port]" as clients see it; "" = from
                                      Host and X-Forwarded-Proto per request */
} auth_http;

/* The gate (http_gate_fn); user_data is an auth_http. */
bool auth_http_gate(http_request *req, http_response *resp, void *user_data);

/* /auth/token (POST) and /auth/jwks (GET); user_data is an auth_http. */
void auth_http_handle(const http_request *req, http_response *resp, void *user_data);

/* The finish hook (http_finish_fn): the audit record of the request (auth.h,
 * "Audit"); answers 503 when it cannot be written. Writes nothing when the
 * request's write already committed its record (resp->audited equals the
 * status). user_data is an auth_http. */
void auth_http_finish(const http_request *req, http_response *resp, void *user_data);

/* The record of a write for its own MULTI … EXEC (auth.h, "Audit"): the
 * record the finish hook would write for req answered with status, naming
 * type/id and, when version > 0, the version the write made (type NULL: the
 * entity the finish hook would name from the path, or none, as for a
 * transaction), as a stream entry in *out (in req's arena) for
 * store_commit_with. The REST layer calls it through rest_ctx.record
 * (fhir_audit.c) and, once the write is committed, sets resp->audited to the
 * status recorded so that the finish hook writes no second record. false without an audit trail
 * (user_data NULL or its audit NULL), for a request that leaves no record, or out of memory. */
bool auth_http_record(const http_request *req, const http_response *resp, int status,
                      const char *type, const char *id, long version, store_append *out,
                      void *user_data);

/* GET /fhir/AuditEvent[/<id>] (admins: the gate checks the role). */
void auth_http_audit(const http_request *req, http_response *resp, void *user_data);

/* /.well-known/smart-configuration (GET); user_data is an auth_http. */
void auth_http_wellknown(const http_request *req, http_response *resp, void *user_data);

#endif
