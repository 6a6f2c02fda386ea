/*
 * auth_http.c — the gate and the OAuth/SMART routes on the HTTP layer
 * (auth_http.h).
 */
#include "auth_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "http(s)://host" as the client addressed us, in the request's arena. */
static const char *origin(const http_request *req, const auth_http *h)
{
    if (h->public_url[0]) return h->public_url;
    const char *host = http_header(req, "Host");
    const char *proto = http_header(req, "X-Forwarded-Proto");
    if (!host || !*host || strlen(host) > 255 || strpbrk(host, " \"/\\")) host = "localhost";
    size_t n = strlen(host) + 16;
    char *s = tsg_arena_alloc(req->arena, n);
    if (!s) return "http://localhost";
    snprintf(s, n, "%s://%s", proto && !strcmp(proto, "https") ? "https" : "http", host);
    return s;
}

static const char *join(const http_request *req, const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = tsg_arena_alloc(req->arena, n);
    if (!s) return "";
    snprintf(s, n, "%s%s", a, b);
    return s;
}

/* Writes a WWW-Authenticate value with an error description safe for a
 * quoted-string (quotes and backslashes become '). */
static void www_auth(http_response *resp, const char *error, const char *desc)
{
    char clean[300];
    size_t k = 0;
    for (const char *p = desc ? desc : ""; *p && k + 1 < sizeof clean; p++) {
        unsigned char c = (unsigned char)*p;
        clean[k++] = (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) ? '\'' : (char)c;
    }
    clean[k] = '\0';
    char v[420];
    if (error)
        snprintf(v, sizeof v, "Bearer realm=\"tsunagu\", error=\"%s\", error_description=\"%s\"",
                 error, clean);
    else
        snprintf(v, sizeof v, "Bearer realm=\"tsunagu\"");
    http_response_header_add(resp, "WWW-Authenticate", v);
}

bool auth_http_gate(http_request *req, http_response *resp, void *user_data)
{
    auth_http *h = user_data;
    const char *route = req->route ? req->route : "";
    if (!strcmp(route, "/healthz") || !strcmp(route, "/readyz") || !strcmp(route, "/.well-known") ||
        !strcmp(route, "/auth"))
        return true;
    bool fhir = !strcmp(route, "/fhir");
    const char *type = NULL;
    unsigned perms = 0;
    bool every = false, pub = false, bundle = false, known = false;
    if (fhir) {
        known = auth_fhir_requirement(req->segments, req->n_segments, req->method,
                                      http_param_get(req, "_getpages") != NULL, &type, &perms,
                                      &every, &pub, &bundle);
        if (pub) return true;
    }
    tsg_error err;
    tsg_error_clear(&err);
    /* The principal lives as long as the request, which runs on this thread from
     * the gate to the end of its handler: a thread-local copy saves a few KB of
     * the request's arena on every request. */
    static _Thread_local auth_principal tls_who;
    auth_principal *who = &tls_who;
    unsigned retry = 0;
    const char *aud = join(req, origin(req, h), "/fhir");
    auth_verdict v =
        auth_check_bearer(h->svc, http_header(req, "Authorization"), aud, who, &retry, &err);
    switch (v) {
    case AUTH_OK:
        break;
    case AUTH_NO_TOKEN:
        resp->interaction = "unauthorized";
        http_respond_outcome(resp, 401, "error", "login", err.message, NULL, req->format);
        www_auth(resp, NULL, NULL);
        return false;
    case AUTH_BAD_TOKEN:
        resp->interaction = "unauthorized";
        http_respond_outcome(resp, 401, "error", "login", err.message, NULL, req->format);
        www_auth(resp, "invalid_token", err.message);
        return false;
    case AUTH_RATE_LIMITED: {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", retry);
        resp->interaction = "throttled";
        http_respond_outcome(resp, 429, "error", "throttled", err.message, NULL, req->format);
        http_response_header_add(resp, "Retry-After", ra);
        return false;
    }
    case AUTH_FORBIDDEN:
    case AUTH_UNAVAILABLE:
        http_respond_outcome(resp, 503, "error", "transient", err.message, NULL, req->format);
        return false;
    }
    req->principal = who;
    const char *why = NULL;
    char msg[400];
    if (!strcmp(route, "/metrics")) {
        if (!who->admin) why = "/metrics is for clients with role admin";
    } else if (fhir && bundle) {
        bool json = req->body_format == HTTP_FORMAT_JSON;
        if (!auth_bundle_allowed(&who->scopes, req->body, req->body_len, json, &err)) {
            resp->interaction = "forbidden";
            http_respond_outcome(resp, 403, "error", "forbidden", err.message,
                                 err.location[0] ? err.location : NULL, req->format);
            www_auth(resp, "insufficient_scope", err.message);
            return false;
        }
    } else if (fhir && known) {
        if (perms == AUTH_PERM_C && http_header(req, "If-None-Exist"))
            perms |= AUTH_PERM_R | AUTH_PERM_S; /* a conditional create reads what it finds */
        bool ok;
        if (type && !*type) { /* _getpages: any search permission */
            ok = false;
            for (size_t i = 0; i < who->scopes.n; i++) ok |= (who->scopes.s[i].perms & AUTH_PERM_S);
        } else {
            ok = auth_scopes_allow(&who->scopes, type, perms);
        }
        if (ok && every) ok = auth_scopes_allow(&who->scopes, "*", AUTH_PERM_S);
        if (!ok) {
            static const char L[] = "cruds";
            char p[8];
            size_t k = 0;
            for (int b = 0; b < 5; b++)
                if (perms & (1u << b)) p[k++] = L[b];
            p[k] = '\0';
            snprintf(msg, sizeof msg,
                     "the token's scopes do not allow this interaction (it needs system/%s.%s%s)",
                     type && *type ? type : "*", p, every ? " and system/*.s" : "");
            why = msg;
        }
    }
    if (why) {
        resp->interaction = "forbidden";
        http_respond_outcome(resp, 403, "error", "forbidden", why, NULL, req->format);
        www_auth(resp, "insufficient_scope", why);
        return false;
    }
    return true;
}

/* Answers a JSON body (not an OperationOutcome: OAuth speaks its own JSON). */
static void respond_json(http_response *resp, int status, const char *body)
{
    resp->status = status;
    resp->content_type = "application/json";
    tsg_buf_reset(&resp->body);
    tsg_buf_puts(&resp->body, body ? body : "{}");
    http_response_header_add(resp, "Cache-Control", "no-store");
    http_response_header_add(resp, "Pragma", "no-cache");
}

static void respond_oauth_error(http_response *resp, int status, const char *code, const char *desc)
{
    json_t *o = json_pack("{s:s,s:s}", "error", code, "error_description", desc);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    respond_json(resp, status, s);
    free(s);
    json_decref(o);
}

void auth_http_handle(const http_request *req, http_response *resp, void *user_data)
{
    auth_http *h = user_data;
    if (req->n_segments == 1 && !strcmp(req->segments[0], "jwks")) {
        if (req->method != HTTP_GET) {
            http_response_header_add(resp, "Allow", "GET, HEAD, OPTIONS");
            http_respond_outcome(resp, 405, "error", "not-supported", "/auth/jwks takes GET", NULL,
                                 HTTP_FORMAT_JSON);
            return;
        }
        resp->interaction = "jwks";
        char *s = auth_jwks_json(h->svc);
        respond_json(resp, s ? 200 : 500, s);
        free(s);
        return;
    }
    if (req->n_segments == 1 && !strcmp(req->segments[0], "token")) {
        resp->interaction = "token";
        if (req->method != HTTP_POST) {
            http_response_header_add(resp, "Allow", "POST, OPTIONS");
            respond_oauth_error(resp, 405, "invalid_request", "/auth/token takes POST");
            return;
        }
        const char *ct = http_header(req, "Content-Type");
        if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) ||
            (ct[33] && ct[33] != ';' && ct[33] != ' ')) {
            respond_oauth_error(resp, 400, "invalid_request",
                                "the body must be application/x-www-form-urlencoded");
            return;
        }
        const char *o = origin(req, h);
        auth_answer ans;
        auth_token_request(h->svc, req->body, req->body_len, http_header(req, "Authorization"),
                           join(req, o, "/auth/token"), join(req, o, "/fhir"), &ans);
        respond_json(resp, ans.status, ans.body);
        if (ans.www_authenticate)
            http_response_header_add(resp, "WWW-Authenticate", "Basic realm=\"tsunagu\"");
        free(ans.body);
        return;
    }
    http_respond_outcome(resp, 404, "error", "not-found",
                         "no resource at this path (see "
                         "/.well-known/smart-configuration)",
                         NULL, HTTP_FORMAT_JSON);
}

void auth_http_wellknown(const http_request *req, http_response *resp, void *user_data)
{
    auth_http *h = user_data;
    if (req->n_segments != 1 || strcmp(req->segments[0], "smart-configuration")) {
        http_respond_outcome(resp, 404, "error", "not-found", "no resource at this path", NULL,
                             HTTP_FORMAT_JSON);
        return;
    }
    resp->interaction = "smart-configuration";
    const char *o = origin(req, h);
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:[s,s],s:[s,s],s:[s],s:[s,s,s,s],s:[s,s,s,s]}", "issuer",
        join(req, o, "/fhir"), "jwks_uri", join(req, o, "/auth/jwks"), "token_endpoint",
        join(req, o, "/auth/token"), "token_endpoint_auth_methods_supported", "private_key_jwt",
        "client_secret_basic", "token_endpoint_auth_signing_alg_values_supported", "RS384", "ES384",
        "grant_types_supported", "client_credentials", "scopes_supported", "system/*.cruds",
        "system/*.rs", "system/*.read", "system/*.write", "capabilities",
        "client-confidential-asymmetric", "client-confidential-symmetric", "permission-v1",
        "permission-v2");
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    resp->status = s ? 200 : 500;
    resp->content_type = "application/json";
    tsg_buf_puts(&resp->body, s ? s : "{}");
    free(s);
    json_decref(doc);
}
