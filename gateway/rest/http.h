/*
 * http.h — the HTTP transport of `tsunagu serve` (issue 4, items 1–3): a
 * server on libmicrohttpd, a small request/response abstraction so the
 * FHIR handlers never touch libmicrohttpd, content negotiation for FHIR, the
 * OperationOutcome error writer, /healthz, /readyz, /metrics, and the gateway
 * configuration. A private header of the rest module.
 *
 * ## Using it
 *
 *     http_config cfg;
 *     if (http_config_load(&cfg, config_file_or_NULL, &err) != TSG_OK) -> exit 1
 *     http_server *s = http_server_new(&cfg, &err);
 *     http_route_add(s, "/fhir", HTTP_GET | HTTP_POST | HTTP_PUT | HTTP_DELETE | HTTP_PATCH,
 *                    HTTP_ROUTE_NEGOTIATE, fhir_handler, fhir_state, &err);
 *     http_server_set_ready(s, redis_ping, redis_state);
 *     http_server_set_metrics_hook(s, redis_metrics, redis_state);
 *     http_server_start(s, &err);           // binds, starts the epoll pool
 *     http_server_run(s);                   // until SIGTERM/SIGINT; drains; stops
 *     http_server_free(s);
 *
 * ## What the layer does before a handler runs
 *
 *   - routing: the longest route prefix whose path segments equal the first
 *     segments of the request path wins (`/fhir` matches `/fhir`, `/fhir/`,
 *     `/fhir/Patient/1`, not `/fhirx`); no route → 404 OperationOutcome;
 *   - methods: a method the route does not allow → 405 with `Allow`; HEAD is
 *     served as GET (the handler sees HTTP_GET with `is_head` set and writes
 *     the body as usual; libmicrohttpd sends the same headers including
 *     Content-Length and drops the body); OPTIONS is answered by the layer
 *     with 204 and `Allow` unless the route lists HTTP_OPTIONS itself;
 *   - body size: more than max_body_bytes → 413 (a declared Content-Length
 *     over the limit is answered before the body is read; a body that grows
 *     past it is read to its end and dropped, never truncated);
 *   - the path and the query are decoded (%XX; `+` is a space in the query);
 *     a bad escape or invalid UTF-8 → 400;
 *   - with HTTP_ROUTE_NEGOTIATE: the response format (_format, Accept,
 *     _pretty) and, when there is a body, the body format (Content-Type) are
 *     decided; failures → 406, 415 or 400.
 *
 * Every error the layer produces is an R4 OperationOutcome written by
 * http_respond_outcome(), in the negotiated format (JSON when negotiation
 * itself failed).
 *
 * ## Threads
 *
 * Handlers run on libmicrohttpd's pool threads (config `threads`), several at
 * once. The http_request and http_response a handler gets belong to that one
 * request and that thread; `user_data` is shared by all requests, so whatever
 * it points to must be safe for concurrent use. Routes, the readiness
 * callback and the metrics hook must be set before http_server_start().
 * Metrics counters are atomics (no lock on the hot path).
 */
#ifndef TSG_REST_HTTP_H
#define TSG_REST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../util/util.h"

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

#define HTTP_LISTEN_MAX 256
#define HTTP_PATH_MAX   4096
#define HTTP_URL_MAX    1024

/*
 * The gateway's configuration (the HTTP part is used here; data_dir and
 * redis_url are passed on by the caller). Sources, later ones winning:
 * defaults, the JSON file (TSUNAGU_CONFIG or `serve --config FILE`), the
 * environment.
 *
 *   JSON key               environment                     default
 *   "listen"               TSUNAGU_LISTEN                  "127.0.0.1:8080"
 *   "threads"              TSUNAGU_THREADS                 0 = number of CPUs
 *   "max_connections"      TSUNAGU_MAX_CONNECTIONS         1024
 *   "connection_timeout_s" TSUNAGU_CONNECTION_TIMEOUT      30
 *   "max_body_bytes"       TSUNAGU_MAX_BODY_BYTES          TSG_LIMIT_BODY_BYTES (64 MiB)
 *   "drain_timeout_s"      TSUNAGU_DRAIN_TIMEOUT           10
 *   "data_dir"             TSUNAGU_DATA_DIR                "./var"
 *   "redis_url"            TSUNAGU_REDIS_URL               "" (= embedded Redis)
 *   "auth"                 TSUNAGU_AUTH                    "on" ("off": no tokens needed;
 *                                                          for development and benchmarks)
 *   "auth_token_lifetime_s" TSUNAGU_AUTH_TOKEN_LIFETIME    300 (60..3600)
 *   "auth_rate_per_s"      TSUNAGU_AUTH_RATE               200 requests/s per client (0 = none)
 *   "auth_rate_burst"      TSUNAGU_AUTH_BURST              0 = 2 × the rate
 *   "audit"                TSUNAGU_AUDIT                   "on" (with auth on: the audit trail;
 *                                                          "off" only to measure its cost)
 *   "audit_fsync"          TSUNAGU_AUDIT_FSYNC             "interval": a record is written to
 *                                                          the audit journal before its answer
 *                                                          and fdatasynced within 10 ms;
 *                                                          "always": fdatasynced before its
 *                                                          answer (auth.h, "Audit")
 *   "audit_retention_days" TSUNAGU_AUDIT_RETENTION_DAYS    1825 (0 = keep forever)
 *   "audit_journal_max_mb" TSUNAGU_AUDIT_JOURNAL_MAX_MB    1024: audit records the local journal
 *                                                          may hold before Redis has them;
 *                                                          then requests fail (503)
 *   "public_url"           TSUNAGU_PUBLIC_URL              "" (= from Host per request): the
 *                                                          https://host[:port] clients use; the
 *                                                          audience of tokens and assertions
 *   "validate"             TSUNAGU_VALIDATE                "base": validation on write, a level
 *                                                          (off, base, profiles) for every type,
 *                                                          then Type=level exceptions:
 *                                                          "base,Patient=profiles,Binary=off"
 *   "profile_paths"        TSUNAGU_PROFILE_PATHS           "profiles": FHIR packages (folders,
 *                                                          .tgz) to load, separated by ':'
 *   "type_profiles"        TSUNAGU_TYPE_PROFILES           "": profiles every resource of a type
 *                                                          is checked against at level profiles,
 *                                                          "Type=URL" separated by blanks
 *   "tls_cert"             TSUNAGU_TLS_CERT                "": PEM file of the server certificate
 *                                                          (then its chain); with tls_key the
 *                                                          server speaks only HTTPS (below)
 *   "tls_key"              TSUNAGU_TLS_KEY                 "": PEM file of its private key
 *                                                          (unencrypted)
 *   "outbound_allow"       TSUNAGU_OUTBOUND_ALLOW          "": hosts outbound calls may reach
 *   "outbound_allow_private" TSUNAGU_OUTBOUND_ALLOW_PRIVATE "off"
 *   "outbound_allow_http"  TSUNAGU_OUTBOUND_ALLOW_HTTP     "off" (the outbound policy:
 *                                                          gateway/net/outbound.h)
 *
 * The file is one JSON object; an unknown key, a value of the wrong type or
 * out of range is an error (a typo must not silently fall back to a default).
 * An environment variable that is set but empty counts as unset, except
 * TSUNAGU_REDIS_URL. http_config_load() also checks that tls_cert and
 * tls_key are set together and that the outbound settings parse
 * (outbound_policy_parse()); the TLS files themselves are read by
 * http_server_new().
 *
 * ## HTTPS
 *
 * With tls_cert and tls_key the listener speaks only TLS (libmicrohttpd with
 * GnuTLS; TLS 1.2 and 1.3, AEAD ciphers with forward secrecy:
 * HTTP_TLS_PRIORITIES), every answer of the layer carries
 * `Strict-Transport-Security: max-age=31536000`, and request.tls is true.
 * Behind a reverse proxy that terminates TLS, leave both unset: the proxy
 * sets HSTS and X-Forwarded-Proto.
 */
typedef struct http_config {
    char listen[HTTP_LISTEN_MAX];  /* "host:port", "[v6]:port"; port 0 = any free port */
    unsigned threads;              /* pool size; 0 = number of online CPUs */
    unsigned max_connections;      /* MHD_OPTION_CONNECTION_LIMIT, 1..1000000 */
    unsigned connection_timeout_s; /* idle keep-alive timeout, 1..86400 */
    size_t max_body_bytes;         /* larger bodies get 413; 1..TSG_LIMIT_BODY_BYTES*16 */
    unsigned drain_timeout_s;      /* how long stop waits for in-flight requests, 0..3600 */
    char data_dir[HTTP_PATH_MAX];
    char redis_url[HTTP_URL_MAX];
    char auth[8];                      /* "on" | "off" (gateway/auth/auth.h) */
    unsigned auth_token_lifetime_s;    /* access token lifetime, 60..3600 */
    unsigned auth_rate_per_s;          /* per-client requests/s, 0 = no limit */
    unsigned auth_rate_burst;          /* bucket size, 0 = 2 × rate */
    char public_url[HTTP_URL_MAX];     /* "" = derived from Host */
    char audit[8];                     /* "on" | "off": the audit trail (with auth on) */
    char audit_fsync[16];              /* "interval" | "always" (gateway/auth/auth.h, "Audit") */
    unsigned audit_retention_days;     /* 0 = keep the audit trail forever */
    unsigned audit_journal_max_mb;     /* unshipped audit records the journal may hold */
    char validate[HTTP_URL_MAX];       /* validation on write (fhir_validate.c) */
    char profile_paths[HTTP_PATH_MAX]; /* ':'-separated package paths */
    char type_profiles[HTTP_PATH_MAX]; /* "Type=URL …" */
    char consent_default[16];          /* "deny" | "care-team": no Consent in force
                                          (rest_internal.h, "Access") */
    char tls_cert[HTTP_PATH_MAX];      /* "" = plain HTTP */
    char tls_key[HTTP_PATH_MAX];
    char outbound_allow[HTTP_PATH_MAX]; /* comma-separated host patterns (net/outbound.h) */
    char outbound_allow_private[8];     /* "on" | "off" */
    char outbound_allow_http[8];        /* "on" | "off" */
} http_config;

/* GnuTLS priorities of the HTTPS listener: TLS 1.2 and 1.3 only; in TLS 1.2
 * only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305. */
#define HTTP_TLS_PRIORITIES                                                                        \
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"         \
    "+CHACHA20-POLY1305:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

/* Largest PEM file read for tls_cert / tls_key. */
#define HTTP_TLS_PEM_MAX (1u << 20)

/* Fills cfg with the defaults above. */
void http_config_default(http_config *cfg);

/*
 * Loads the configuration: defaults, then the JSON file `file` (NULL = the
 * file named by TSUNAGU_CONFIG, none when that is unset), then the
 * environment. Also checks that `listen` parses. Returns TSG_OK, or TSG_EIO
 * (file unreadable) / TSG_EINVAL (bad JSON, unknown key, bad value) with err
 * naming the file or variable and the key.
 */
tsg_rc http_config_load(http_config *cfg, const char *file, tsg_error *err);

/*
 * Reads and checks the HTTPS files of cfg (http_tls.c): nothing to do
 * (TSG_OK, both NULL) when tls_cert and tls_key are unset; otherwise the
 * certificate file must hold a PEM certificate, the key file an unencrypted
 * PEM private key that belongs to it, and the certificate must not have
 * expired. On TSG_OK *cert_pem and *key_pem are the files' NUL-terminated
 * text, freed by the caller (clear the key first). Fails with TSG_EIO
 * (unreadable), TSG_EINVAL or TSG_ELIMIT, err naming the setting and file.
 */
tsg_rc http_tls_load(const http_config *cfg, char **cert_pem, char **key_pem, tsg_error *err);

/*
 * Parses a listen address: `a.b.c.d:port`, `[v6addr]:port` (e.g. `[::1]:8080`)
 * or `localhost:port` (= 127.0.0.1). Fills *addr and *addr_len (either may be NULL
 * to only validate). Returns TSG_EINVAL with a message saying what is wrong.
 */
tsg_rc http_listen_parse(const char *s, struct sockaddr_storage *addr, socklen_t *addr_len,
                         tsg_error *err);

/* ------------------------------------------------------------------------
 * Requests and responses
 * ------------------------------------------------------------------------ */

/* Methods, as bit flags so a route can list several. */
typedef enum http_method {
    HTTP_GET = 1u << 0,
    HTTP_HEAD = 1u << 1,
    HTTP_POST = 1u << 2,
    HTTP_PUT = 1u << 3,
    HTTP_DELETE = 1u << 4,
    HTTP_PATCH = 1u << 5,
    HTTP_OPTIONS = 1u << 6
} http_method;

typedef enum http_format { HTTP_FORMAT_JSON = 0, HTTP_FORMAT_XML = 1 } http_format;

/* One query parameter, decoded; the strings are NUL-terminated (the length
 * counts bytes, a decoded %00 included). */
typedef struct http_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} http_param;

/*
 * A request as the handler sees it. Everything is valid until the handler
 * returns and must not be modified. Strings live in `arena`, which the handler
 * may also use for its own per-request allocations (freed after the response
 * is sent).
 */
typedef struct http_request {
    http_method method;          /* HTTP_GET for HEAD requests (see is_head) */
    bool is_head;                /* a HEAD request: write the GET response, the body is dropped */
    const char *method_name;     /* as received: "GET", "HEAD", … */
    const char *path;            /* the raw path (not decoded), without the query */
    const char *route;           /* the prefix of the route that matched: "/fhir" */
    const char *const *segments; /* decoded path segments below the route prefix; empty
                                    segments are dropped (`/fhir//Patient/` = Patient) */
    size_t n_segments;
    const char *query;        /* the raw query string after '?', not decoded; "" if none */
    const http_param *params; /* query parameters in order, repeated names kept */
    size_t n_params;
    const char *body; /* raw body bytes (not NUL-terminated), NULL when none */
    size_t body_len;
    char remote_addr[64]; /* the client's address: "127.0.0.1", "2001:db8::1" */
    /* Set only for routes with HTTP_ROUTE_NEGOTIATE: */
    http_format format;      /* response format (_format, Accept; JSON by default) */
    bool pretty;             /* _pretty=true */
    http_format body_format; /* format of the body per Content-Type (when body_len > 0) */
    tsg_arena *arena;
    bool tls;              /* the connection is HTTPS (tls_cert and tls_key configured) */
    const void *principal; /* who sent it: set by the gate (http_server_set_gate; an
                              auth_principal of gateway/auth/auth.h), NULL without one */
    const void *impl;      /* private: the libmicrohttpd connection */
} http_request;

/* Case-insensitive header lookup; repeated headers come joined with ",".
 * NULL when absent or not valid UTF-8 (callers put values into JSON). On an HTTPS
 * connection (req->tls) X-Forwarded-Proto is always "https", whatever the
 * client sent: this server is the hop the client reached, by TLS, so URLs
 * built from the header (Location, token audiences) say https. */
const char *http_header(const http_request *req, const char *name);

/* Decodes s[0..n) into arena a (%XX; '+' → ' ' when plus), NUL-terminated,
 * its length in *out_len. NULL on a bad escape, a NUL byte (%00: the text
 * would end there for every reader of the C string) or invalid UTF-8 (*bad
 * set to true) or when the arena is exhausted (*bad untouched). */
char *http_url_decode(tsg_arena *a, const char *s, size_t n, bool plus, size_t *out_len, bool *bad);

/* Reads a request target into req (req->arena set): origin-form "/path?query",
 * absolute-form "http://host/path?query" (the host is ignored), "?query" or
 * asterisk-form "*" (path "/"); anything else is 400. Sets path (raw, not decoded), query (raw) and
 * params (decoded, in order). Returns 0, 400 with *why a static message (a malformed
 * %-escape, or a name or value that is not UTF-8 or holds a NUL byte), or 500
 * (the arena is exhausted). The server's own parser, public for its fuzz
 * target (tests/fuzz/fuzz_http.c). */
int http_parse_target(http_request *req, const char *target, const char **why);

/* Splits rest[0..n) (the path below a route's prefix) at '/' and decodes each
 * segment into req->segments (empty segments dropped). 0, 400 (as above) or 500. */
int http_parse_segments(http_request *req, const char *rest, size_t n, const char **why);

/* The decoded value of the first query parameter called name, NULL if none. */
const char *http_param_get(const http_request *req, const char *name);

#define HTTP_MAX_RESPONSE_HEADERS 32

typedef struct http_response_header {
    const char *name;
    const char *value;
} http_response_header;

/*
 * What a handler fills in. The layer initialises status 200, an empty body
 * (tsg_buf without a size limit besides 1 GiB), no content type and no
 * interaction; a body whose buffer failed (tsg_buf_rc != TSG_OK) becomes a 500.
 */
typedef struct http_response {
    int status;
    tsg_buf body;
    const char *content_type; /* NULL = none; must stay valid until the handler returns
                                 (a literal, or a string in req->arena) */
    const char *interaction;  /* metrics label ("read", "search-type", …); NULL = the
                                 method in lower case. Only [A-Za-z0-9_-] are kept. */
    http_response_header headers[HTTP_MAX_RESPONSE_HEADERS];
    size_t n_headers;
    tsg_arena *arena; /* the request's arena */
    int audited;      /* 0, or the status of the audit record a write committed with
                         its data (rest_commit): the finish hook writes none for it
                         while that is still the status */
} http_response;

/* Adds a response header (name and value are copied into the arena).
 * Returns TSG_ELIMIT past HTTP_MAX_RESPONSE_HEADERS; TSG_EINVAL for a CR/LF
 * in either, a blank or ':' in the name, or Content-Type, Content-Length,
 * Transfer-Encoding, Connection (the content type is resp->content_type, the
 * framing is libmicrohttpd's); TSG_ENOMEM. */
tsg_rc http_response_header_add(http_response *resp, const char *name, const char *value);

/* The handler of a route. It must set resp (status, body, content type) and
 * return; errors are answered through http_respond_outcome(). */
typedef void (*http_handler)(const http_request *req, http_response *resp, void *user_data);

/* ------------------------------------------------------------------------
 * Content negotiation (FHIR R4 §3.1.0.1.x: _format, Accept, Content-Type)
 * ------------------------------------------------------------------------ */

/* Content types of responses. */
#define HTTP_CT_FHIR_JSON "application/fhir+json; charset=utf-8"
#define HTTP_CT_FHIR_XML  "application/fhir+xml; charset=utf-8"

/* The Content-Type for fmt (HTTP_CT_FHIR_JSON or HTTP_CT_FHIR_XML). */
const char *http_format_content_type(http_format fmt);

/*
 * Maps a media type (or a _format short name) of n bytes to a format:
 * `json`, `application/fhir+json`, `application/json`, `text/json`,
 * `application/json+fhir` → JSON; `xml`, `application/fhir+xml`,
 * `application/xml`, `text/xml`, `application/xml+fhir` → XML;
 * case-insensitive, parameters (`;…`) ignored. Returns false for anything else
 * (`html`, `text/html`, `ttl`, …).
 */
bool http_format_from_mime(const char *s, size_t n, http_format *fmt);

/*
 * Decides the response format and _pretty. _format (when present) wins over
 * Accept; an absent Accept, any type (star/star) and application/star mean JSON; among the
 * acceptable types the highest q-value wins (JSON on a tie); q=0 excludes.
 * Returns 0 and sets *fmt and *pretty, or an HTTP status (406: no acceptable
 * format; 400: _pretty not true|false) with *why a static message. *fmt is
 * always set (JSON on failure) so the error can be written.
 */
int http_negotiate_response(const http_request *req, http_format *fmt, bool *pretty,
                            const char **why);

/* The same on values: the _format and _pretty parameters and the Accept
 * header (each NULL when absent). */
int http_negotiate_values(const char *format, const char *pretty_param, const char *accept,
                          http_format *fmt, bool *pretty, const char **why);

/*
 * Decides the body format from Content-Type (parameters allowed; a charset
 * other than utf-8 is refused). Returns 0 and sets *fmt, or 415 with *why.
 * A missing Content-Type is 415 too. Two non-FHIR bodies pass (0, *fmt JSON)
 * for their handlers to read: application/json-patch+json on PATCH and
 * application/x-www-form-urlencoded on POST (a search's form).
 */
int http_negotiate_body(const http_request *req, http_format *fmt, const char **why);

/* The same on values: the request's method and its Content-Type (NULL when absent). */
int http_negotiate_content_type(http_method method, const char *ct, http_format *fmt,
                                const char **why);

/* ------------------------------------------------------------------------
 * OperationOutcome
 * ------------------------------------------------------------------------ */

/*
 * Replaces resp's body with an R4 OperationOutcome holding one issue and sets
 * status and content type (fmt). severity: fatal|error|warning|information;
 * code: an IssueType code ("not-found", "invalid", …); diagnostics: free text
 * (may be NULL; invalid UTF-8 and control characters are replaced); location:
 * a FHIRPath to the offending element or NULL (written as issue.expression).
 * Never fails: when the buffer cannot hold the text the body is a fixed
 * minimal OperationOutcome.
 */
void http_respond_outcome(http_response *resp, int status, const char *severity, const char *code,
                          const char *diagnostics, const char *location, http_format fmt);

/* As http_respond_outcome with severity "error", the code and text of err
 * (tsg_rc_code(err->rc) when err->code is NULL) and its location. */
void http_respond_error(http_response *resp, int status, const tsg_error *err, http_format fmt);

/* Writes s (n bytes) as a JSON string body (without quotes) / XML attribute
 * value text into b, escaping as needed and replacing invalid UTF-8 and
 * characters XML forbids by U+FFFD. Exposed for the FHIR handlers. */
void http_json_escape(tsg_buf *b, const char *s, size_t n);
void http_xml_escape(tsg_buf *b, const char *s, size_t n);

/* ------------------------------------------------------------------------
 * Server
 * ------------------------------------------------------------------------ */

typedef struct http_server http_server;

/* Route flags */
#define HTTP_ROUTE_NEGOTIATE 0x1u /* negotiate formats before calling the handler */

/* Readiness: returns true when ready; otherwise may write a reason into why.
 * Called on pool threads, possibly several at once. */
typedef bool (*http_ready_fn)(void *user_data, tsg_buf *why);

/* Appends more Prometheus text lines (with their # HELP/# TYPE) to out.
 * Called on pool threads, possibly several at once. */
typedef void (*http_metrics_fn)(tsg_buf *out, void *user_data);

/*
 * Creates a server for cfg (copied) with the built-in routes /healthz,
 * /readyz and /metrics (GET). Nothing is bound yet; with tls_cert and
 * tls_key the files are read and checked now (http_tls_load()). Returns NULL
 * with err (TSG_EINVAL for a bad listen address or TLS file, TSG_EIO for an
 * unreadable one, TSG_ENOTSUP when libmicrohttpd has no TLS, TSG_ENOMEM).
 * Free with http_server_free().
 */
http_server *http_server_new(const http_config *cfg, tsg_error *err);

/*
 * Adds a route: requests whose path is `prefix` or below it go to handler
 * with user_data. prefix starts with '/', has no trailing '/' and no query;
 * methods is an OR of http_method (HEAD is implied by GET, OPTIONS is
 * answered by the layer unless listed); flags: HTTP_ROUTE_NEGOTIATE or 0.
 * Must be called before http_server_start(). Fails with TSG_EINVAL (bad
 * prefix, prefix already routed, server started), TSG_ELIMIT (more than 16
 * routes), TSG_ENOMEM.
 */
tsg_rc http_route_add(http_server *s, const char *prefix, unsigned methods, unsigned flags,
                      http_handler handler, void *user_data, tsg_error *err);

/* Sets the readiness callback of /readyz (NULL = always ready). Before start. */
void http_server_set_ready(http_server *s, http_ready_fn fn, void *user_data);

/*
 * The gate: called for every request that matched a route and passed the
 * layer's checks (method, body size, path, negotiation), just before the
 * handler. It may set req->principal (valid until the handler returns) and returns true
 * to let the handler run, or false after answering resp itself (401, 403,
 * 429 …). Called on pool threads, several at once. NULL = no gate. Before
 * start. (The authentication of gateway/auth/auth_http.h.)
 */
typedef bool (*http_gate_fn)(http_request *req, http_response *resp, void *user_data);
void http_server_set_gate(http_server *s, http_gate_fn fn, void *user_data);

/*
 * The finish hook: called for every request that matched a route and passed
 * the layer's checks, after the gate and the handler (or the gate's refusal),
 * before the answer is sent. It may replace resp (the audit trail answers 503
 * when it cannot write its record). NULL = none. Before start.
 */
typedef void (*http_finish_fn)(const http_request *req, http_response *resp, void *user_data);
void http_server_set_finish(http_server *s, http_finish_fn fn, void *user_data);

/* Sets a hook that appends lines to /metrics (NULL = none). Before start. */
void http_server_set_metrics_hook(http_server *s, http_metrics_fn fn, void *user_data);

/*
 * Binds the listen address and starts the epoll thread pool
 * (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, pool of cfg.threads,
 * connection limit and timeout from cfg; MHD_USE_TLS with the certificate
 * and key of http_server_new() and HTTP_TLS_PRIORITIES when configured).
 * SIGTERM and SIGINT are blocked in the pool threads so that
 * http_server_run() receives them. Returns TSG_EIO with err (address in use, permission, GnuTLS
 * refusing the certificate or key: libmicrohttpd logs why on stderr) or TSG_EINVAL (started twice).
 */
tsg_rc http_server_start(http_server *s, tsg_error *err);

/* The port actually bound (useful with port 0), 0 before start. */
uint16_t http_server_port(const http_server *s);

/*
 * Blocks the calling thread until SIGTERM or SIGINT arrives (blocking both
 * signals in the calling thread: block them in every thread of the process
 * before creating threads, or a signal may kill the process instead) or
 * http_server_request_stop() is called, then calls http_server_stop().
 * Returns the signal number, or 0 when stopped by request.
 */
int http_server_run(http_server *s);

/* Makes http_server_run() return (async-signal-safe, any thread). */
void http_server_request_stop(http_server *s);

/*
 * Stops accepting new connections, waits up to cfg.drain_timeout_s for the
 * requests being handled to finish, then stops the daemon (closing idle
 * keep-alive connections). Idempotent; a server never started is a no-op.
 */
void http_server_stop(http_server *s);

/* Stops (when running) and frees; NULL is ignored. */
void http_server_free(http_server *s);

/* Requests currently inside the layer (handler running). For tests and drains. */
unsigned http_server_in_flight(const http_server *s);

/* Writes the metrics text (what GET /metrics answers) into out. */
void http_server_metrics(http_server *s, tsg_buf *out);

#endif
