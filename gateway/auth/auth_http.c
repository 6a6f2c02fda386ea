/*
 * auth_http.c — the gate and the OAuth/SMART routes on the HTTP layer
 * (auth_http.h).
 */
#include "auth_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Why the gate or the token endpoint refused the request on this thread, and
 * the client of a token request: read by the finish hook for the audit
 * record (a request runs on one thread from the gate to the finish hook). */
static _Thread_local char tls_detail[TSG_ERR_MESSAGE_MAX];
static _Thread_local char tls_client[AUTH_ID_MAX];

/* "<scheme>://<host>" as the client addressed us (public_url when set), then
 * suffix, in one piece from the request's arena. */
static const char *origin_with(const http_request *req, const auth_http *h, const char *suffix)
{
    size_t xl = strlen(suffix);
    const char *host, *scheme;
    size_t sl, hl;
    if (h->public_url[0]) {
        host = h->public_url;
        scheme = "";
        sl = 0;
    } else {
        host = http_header(req, "Host");
        const char *proto = http_header(req, "X-Forwarded-Proto");
        if (!host || !*host || strlen(host) > 255 || strpbrk(host, " \"/\\")) host = "localhost";
        scheme = proto && !strcmp(proto, "https") ? "https://" : "http://";
        sl = strlen(scheme);
    }
    hl = strlen(host);
    char *s = tsg_arena_alloc(req->arena, sl + hl + xl + 1);
    if (!s) return *suffix ? "" : "http://localhost"; /* (out of memory: no audience matches "") */
    memcpy(s, scheme, sl);
    memcpy(s + sl, host, hl);
    memcpy(s + sl + hl, suffix, xl + 1);
    return s;
}

static const char *origin(const http_request *req, const auth_http *h)
{
    return h->public_url[0] ? h->public_url : origin_with(req, h, "");
}

/* The FHIR base URL as the client addressed us ("<origin>/fhir"): the audience
 * of its token. On every request, so built with memcpy rather than printf. */
static const char *fhir_base(const http_request *req, const auth_http *h)
{
    return origin_with(req, h, "/fhir");
}

static const char *join(const http_request *req, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = tsg_arena_alloc(req->arena, la + lb + 1);
    if (!s) return "";
    /* (memcpy: snprintf was half of what a read's audit record cost) */
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
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
    tls_detail[0] = tls_client[0] = '\0';
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
    const char *aud = fhir_base(req, h);
    auth_verdict v =
        auth_check_bearer(h->svc, http_header(req, "Authorization"), aud, who, &retry, &err);
    if (v != AUTH_OK) snprintf(tls_detail, sizeof tls_detail, "%s", err.message);
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
    } else if (!strcmp(route, "/fhir/AuditEvent")) {
        if (!who->admin) why = "the audit trail (AuditEvent) is for clients with role admin";
    } else if (fhir && bundle) {
        bool json = req->body_format == HTTP_FORMAT_JSON;
        if (!auth_bundle_allowed(&who->scopes, req->body, req->body_len, json, &err)) {
            snprintf(tls_detail, sizeof tls_detail, "%s", err.message);
            resp->interaction = "forbidden";
            http_respond_outcome(resp, 403, "error", "forbidden", err.message,
                                 err.location[0] ? err.location : NULL, req->format);
            www_auth(resp, "insufficient_scope", err.message);
            return false;
        }
    } else if (fhir && !known) {
        /* a path the gate does not map (the handler will answer 404/405, or an
         * operation added later): deny by default unless the client may do
         * everything */
        if (!auth_scopes_allow(&who->scopes, "*", AUTH_PERM_ALL))
            why = "this FHIR path is not one the scopes can grant (it needs system/*.cruds)";
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
        snprintf(tls_detail, sizeof tls_detail, "%s", why);
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
                           join(req, o, "/auth/token"), join(req, o, "/fhir"), req->remote_addr,
                           &ans);
        respond_json(resp, ans.status, ans.body);
        if (ans.retry_after[0]) http_response_header_add(resp, "Retry-After", ans.retry_after);
        snprintf(tls_client, sizeof tls_client, "%s", ans.client_id);
        if (ans.status != 200) {
            /* the audit record keeps the OAuth error's description */
            json_t *o = ans.body ? json_loads(ans.body, 0, NULL) : NULL;
            const char *d = json_string_value(json_object_get(o, "error_description"));
            snprintf(tls_detail, sizeof tls_detail, "%s", d ? d : "");
            json_decref(o);
        }
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

/* ------------------------------------------------------------------------
 * The audit trail
 * ------------------------------------------------------------------------ */

/* "Type/id" of what a FHIR request touched, in the arena; NULL when none. */
static const char *entity_of(const http_request *req, const http_response *resp)
{
    const char *const *sg = req->segments;
    size_t n = req->n_segments;
    if (n >= 2 && sg[1][0] != '_' && sg[1][0] != '$')
        return join(req, join(req, sg[0], "/"), sg[1]);
    /* a create: the Location header names the new resource */
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (strcasecmp(resp->headers[i].name, "Location")) continue;
        const char *p = strstr(resp->headers[i].value, "/fhir/");
        if (!p) return NULL;
        p += 6;
        const char *h = strstr(p, "/_history");
        size_t l = h ? (size_t)(h - p) : strlen(p);
        return tsg_arena_strndup(req->arena, p, l);
    }
    return NULL;
}

/* Fills *e with the record of req as answered by resp (strings in the
 * request, the arena or this thread's buffers); lower[16] holds the method in
 * lower case. false for the requests that leave no record (probes, public
 * documents). */
static bool event_of(const http_request *req, const http_response *resp, auth_audit_event *e,
                     char lower[16])
{
    const char *route = req->route ? req->route : "";
    bool fhir = !strcmp(route, "/fhir");
    if (!strcmp(route, "/healthz") || !strcmp(route, "/readyz") || !strcmp(route, "/metrics") ||
        !strcmp(route, "/.well-known") ||
        (!strcmp(route, "/auth") &&
         !(req->n_segments == 1 && !strcmp(req->segments[0], "token"))) ||
        (fhir && req->n_segments == 1 && !strcmp(req->segments[0], "metadata")))
        return false;
    const auth_principal *who = req->principal;
    size_t k = 0;
    for (const char *p = req->method_name; *p && k + 1 < 16; p++)
        lower[k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    lower[k] = '\0';
    *e = (auth_audit_event){
        .interaction = resp->interaction ? resp->interaction : lower,
        .method = req->method_name,
        .path = req->path,
        .query = req->query,
        .client = who ? who->client_id : tls_client,
        .org = who ? who->org : "",
        .addr = req->remote_addr,
        .entity = fhir || !strcmp(route, "/fhir/AuditEvent") ? entity_of(req, resp) : NULL,
        .detail = resp->status >= 400 ? tls_detail : "",
        .status = resp->status,
    };
    if (!strcmp(route, "/auth")) e->interaction = "token";
    if (!strcmp(route, "/fhir/AuditEvent") && req->n_segments == 0) e->interaction = "search-type";
    if (!strcmp(route, "/fhir/AuditEvent") && req->n_segments == 1) {
        e->interaction = "read";
        e->entity = join(req, "AuditEvent/", req->segments[0]);
    }
    return true;
}

void auth_http_finish(const http_request *req, http_response *resp, void *user_data)
{
    auth_http *h = user_data;
    if (!h->audit) return;
    /* a write whose record went into its own MULTI … EXEC (auth_http_record)
     * is recorded, unless its answer changed since (then this record says how
     * it was answered) */
    bool recorded = resp->audited && resp->audited == resp->status;
    auth_audit_event e;
    char method_lc[16];
    if (!recorded && !event_of(req, resp, &e, method_lc)) return; /* a probe */
    auth_audit_trim(h->audit); /* after a recorded request, at most once a minute */
    if (recorded) return;
    tsg_error err;
    tsg_error_clear(&err);
    if (auth_audit_record(h->audit, &e, &err) == TSG_OK) return;
    char msg[TSG_ERR_MESSAGE_MAX + 80];
    snprintf(msg, sizeof msg, "the audit record of this request could not be written (%s)",
             err.message);
    resp->n_headers = 0;
    http_respond_outcome(resp, 503, "error", "transient", msg, NULL, req->format);
}

bool auth_http_record(const http_request *req, const http_response *resp, int status,
                      const char *type, const char *id, long version, store_append *out,
                      void *user_data)
{
    auth_http *h = user_data;
    if (!h || !h->audit) return false;
    http_response as = *resp; /* the record of the answer the write will give */
    as.status = status;
    as.n_headers = 0;
    auth_audit_event e;
    char *lower = tsg_arena_alloc(req->arena, 16);
    if (!lower || !event_of(req, &as, &e, lower)) return false;
    e.version = NULL;
    if (type && id) e.entity = join(req, join(req, type, "/"), id);
    if (type && id && version > 0) {
        char v[24];
        snprintf(v, sizeof v, "%ld", version);
        if (!(e.version = tsg_arena_strndup(req->arena, v, strlen(v)))) return false;
    }
    return auth_audit_entry(&e, req->arena, out);
}

void auth_http_audit(const http_request *req, http_response *resp, void *user_data)
{
    auth_http *h = user_data;
    if (!h->audit) {
        http_respond_outcome(resp, 404, "error", "not-found", "the audit trail is off", NULL,
                             HTTP_FORMAT_JSON);
        return;
    }
    auth_audit_query q;
    memset(&q, 0, sizeof q);
    if (req->n_segments > 1 || (req->n_segments == 1 && strlen(req->segments[0]) > 48)) {
        http_respond_outcome(resp, 404, "error", "not-found",
                             "AuditEvent supports search and read only", NULL, HTTP_FORMAT_JSON);
        return;
    }
    if (req->n_segments == 1) q.id = req->segments[0];
    tsg_buf next;
    tsg_buf_init(&next, 8192);
    tsg_buf_puts(&next, join(req, origin(req, h), "/fhir/AuditEvent?"));
    for (size_t i = 0; i < req->n_params; i++) {
        const http_param *p = &req->params[i];
        const char **slot = NULL;
        if (!strcmp(p->name, "date")) {
            if (q.n_dates == sizeof q.dates / sizeof q.dates[0]) {
                tsg_buf_free(&next);
                http_respond_outcome(resp, 400, "error", "too-costly", "too many date parameters",
                                     "date", HTTP_FORMAT_JSON);
                return;
            }
            q.dates[q.n_dates++] = p->value;
        } else if (!strcmp(p->name, "agent"))
            slot = &q.agent;
        else if (!strcmp(p->name, "entity"))
            slot = &q.entity;
        else if (!strcmp(p->name, "subtype"))
            slot = &q.subtype;
        else if (!strcmp(p->name, "outcome"))
            slot = &q.outcome;
        else if (!strcmp(p->name, "_id"))
            slot = &q.id;
        else if (!strcmp(p->name, "_before"))
            slot = &q.before;
        else if (!strcmp(p->name, "_count")) {
            char *end;
            long c = strtol(p->value, &end, 10);
            if (*end || c < 1 || c > (long)AUTH_AUDIT_COUNT_MAX) {
                tsg_buf_free(&next);
                http_respond_outcome(resp, 400, "error", "invalid", "_count must be 1-1000",
                                     "_count", HTTP_FORMAT_JSON);
                return;
            }
            q.count = (size_t)c;
        } else if (strcmp(p->name, "_format") && strcmp(p->name, "_pretty")) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "AuditEvent does not support the parameter %.64s (date, agent, entity, "
                     "subtype, outcome, _id, _count)",
                     p->name);
            tsg_buf_free(&next);
            http_respond_outcome(resp, 400, "error", "not-supported", msg, NULL, HTTP_FORMAT_JSON);
            return;
        }
        if (slot) {
            if (*slot) {
                tsg_buf_free(&next);
                http_respond_outcome(resp, 400, "error", "invalid",
                                     "a parameter of AuditEvent is repeated", p->name,
                                     HTTP_FORMAT_JSON);
                return;
            }
            *slot = p->value;
        }
        if (strcmp(p->name, "_before")) {
            /* the next link repeats the query (re-encoded) without the cursor */
            static const char hex[] = "0123456789ABCDEF";
            for (int part = 0; part < 2; part++) {
                const char *t = part ? p->value : p->name;
                size_t tl = part ? p->value_len : p->name_len;
                for (size_t j = 0; j < tl; j++) {
                    unsigned char c = (unsigned char)t[j];
                    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || strchr("-._~/:", c))
                        tsg_buf_putc(&next, (char)c);
                    else {
                        tsg_buf_putc(&next, '%');
                        tsg_buf_putc(&next, hex[c >> 4]);
                        tsg_buf_putc(&next, hex[c & 15]);
                    }
                }
                tsg_buf_putc(&next, part ? '&' : '=');
            }
        }
    }
    if (tsg_buf_rc(&next) != TSG_OK) {
        tsg_buf_free(&next);
        http_respond_outcome(resp, 400, "error", "too-costly", "the query is too long", NULL,
                             HTTP_FORMAT_JSON);
        return;
    }
    resp->interaction = q.id && req->n_segments == 1 ? "read" : "search-type";
    char *out = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    int st = auth_audit_search(h->audit, &q, next.data, &out, &err);
    tsg_buf_free(&next);
    if (st != 200) {
        http_respond_outcome(resp, st, "error", st == 400 ? "invalid" : "transient", err.message,
                             err.location[0] ? err.location : NULL, HTTP_FORMAT_JSON);
        return;
    }
    if (req->n_segments == 1) {
        /* a read: the one resource, or 404 */
        json_t *b = json_loads(out, 0, NULL);
        json_t *res = json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource");
        free(out);
        out = res ? json_dumps(res, JSON_COMPACT) : NULL;
        json_decref(b);
        if (!out) {
            http_respond_outcome(resp, 404, "error", "not-found", "no such AuditEvent", NULL,
                                 HTTP_FORMAT_JSON);
            return;
        }
    }
    resp->status = 200;
    resp->content_type = HTTP_CT_FHIR_JSON;
    tsg_buf_puts(&resp->body, out);
    free(out);
}
