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
 * "Audit"); answers 503 when it cannot be written. user_data is an auth_http. */
void auth_http_finish(const http_request *req, http_response *resp, void *user_data);

/* GET /fhir/AuditEvent[/<id>] (admins: the gate checks the role). */
void auth_http_audit(const http_request *req, http_response *resp, void *user_data);

/* /.well-known/smart-configuration (GET); user_data is an auth_http. */
void auth_http_wellknown(const http_request *req, http_response *resp, void *user_data);

#endif
