/*
 * http_server.c — the server of the HTTP layer: libmicrohttpd's epoll
 * thread pool, routing, method checks (405, HEAD, OPTIONS), bodies and their
 * limit (413), request decoding, built-in /healthz, /readyz, /metrics,
 * metrics counters, signals and draining.
 *
 * ## Why libmicrohttpd without a framework
 *
 * Until 2026-12 the layer ran on ulfius. ulfius copied every request header
 * and URL parameter into its own maps, checked each value for UTF-8 with a
 * byte-at-a-time loop, and built each response through another map: about
 * 10,000 instructions per request that did nothing this layer needed (it
 * routes, decodes and negotiates itself), and 3,800 more for the 530-byte
 * bearer token of an authenticated request. Here the access handler keeps
 * one small record per request (the raw URI from libmicrohttpd's URI log
 * callback, the body), headers are read from libmicrohttpd where they
 * already are (http_header()), and the response is handed over as is.
 *
 * ## One request's life in libmicrohttpd
 *
 *   uri_log()        the raw request target ("/fhir/Patient?name=x"): a
 *                    pending record is made and becomes the request's
 *                    context (libmicrohttpd's own `url` is already
 *                    %-decoded and has lost the query);
 *   access() first   headers are in: a Content-Length above the limit is
 *                    answered 413 at once (the rest of the body is not read;
 *                    libmicrohttpd closes the connection after the answer);
 *   access() data    body bytes are appended; past the limit they are
 *                    counted and dropped, and the request gets 413;
 *   access() last    dispatch(): route, checks, gate, handler, finish hook,
 *                    the response queued;
 *   completed()      the record is freed (also for requests that never got
 *                    an answer: a client that went away).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sigtimedwait, pthread_sigmask with C11 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "http.h"

#define MAX_ROUTES       16
#define MAX_INTERACTIONS 64 /* the last one is "other" */
#define INTERACTION_LEN  32
#define MIN_STATUS       100
#define N_STATUS         500 /* 100..599 */
#define HSTS_VALUE       "max-age=31536000"

static const double BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

typedef struct route {
    char prefix[128];
    size_t prefix_len;
    unsigned methods;
    char allow[64]; /* the Allow header's value (405, OPTIONS) */
    unsigned flags;
    http_handler handler;
    void *user_data;
} route;

typedef struct metrics {
    pthread_mutex_t names_lock; /* only for adding a name */
    _Atomic unsigned n_names;
    char names[MAX_INTERACTIONS][INTERACTION_LEN];
    _Atomic uint64_t requests[MAX_INTERACTIONS][N_STATUS];
    _Atomic uint64_t buckets[MAX_INTERACTIONS][N_BUCKETS + 1]; /* not cumulative; +Inf last */
    _Atomic uint64_t sum_ns[MAX_INTERACTIONS];
} metrics;

struct http_server {
    http_config cfg;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    route routes[MAX_ROUTES];
    size_t n_routes;
    http_ready_fn ready;
    void *ready_ud;
    http_metrics_fn metrics_hook;
    void *metrics_ud;
    http_gate_fn gate;
    void *gate_ud;
    http_finish_fn finish;
    void *finish_ud;
    struct MHD_Daemon *daemon;
    bool started;
    bool stopped;
    MHD_socket quiesced_fd;
    uint16_t port;
    _Atomic unsigned in_flight;
    _Atomic int stop_requested;
    pthread_mutex_t stop_lock;
    metrics *m;
    bool tls;           /* tls_cert and tls_key configured: HTTPS only */
    char *tls_cert_pem; /* the PEM texts libmicrohttpd reads (kept while it runs) */
    char *tls_key_pem;
    size_t tls_key_len;
};

/* ------------------------------------------------------------------------
 * Metrics
 * ------------------------------------------------------------------------ */

static unsigned interaction_id(metrics *m, const char *name)
{
    char clean[INTERACTION_LEN];
    size_t n = 0;
    for (const char *p = name; *p && n < INTERACTION_LEN - 1; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-')
            clean[n++] = c;
    }
    if (n == 0) clean[n++] = '_';
    clean[n] = '\0';
    unsigned count = atomic_load_explicit(&m->n_names, memory_order_acquire);
    for (unsigned i = 0; i < count; i++)
        if (strcmp(m->names[i], clean) == 0) return i;
    pthread_mutex_lock(&m->names_lock);
    count = atomic_load_explicit(&m->n_names, memory_order_relaxed);
    unsigned id = MAX_INTERACTIONS - 1;
    bool found = false;
    for (unsigned i = 0; i < count; i++) {
        if (strcmp(m->names[i], clean) == 0) {
            id = i;
            found = true;
            break;
        }
    }
    if (!found && count < MAX_INTERACTIONS - 1) {
        memcpy(m->names[count], clean, n + 1);
        id = count;
        atomic_store_explicit(&m->n_names, count + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->names_lock);
    return id;
}

static void metrics_record(metrics *m, const char *interaction, int status, uint64_t ns)
{
    unsigned id = interaction_id(m, interaction);
    if (status < MIN_STATUS || status >= MIN_STATUS + N_STATUS) status = 500;
    atomic_fetch_add_explicit(&m->requests[id][status - MIN_STATUS], 1, memory_order_relaxed);
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < N_BUCKETS && s > BUCKETS[b]) b++;
    atomic_fetch_add_explicit(&m->buckets[id][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_ns[id], ns, memory_order_relaxed);
}

void http_server_metrics(http_server *s, tsg_buf *out)
{
    metrics *m = s->m;
    unsigned count = atomic_load_explicit(&m->n_names, memory_order_acquire);
    tsg_buf_puts(out, "# HELP tsunagu_http_requests_total HTTP requests by interaction and "
                      "status code.\n# TYPE tsunagu_http_requests_total counter\n");
    for (unsigned i = 0; i < MAX_INTERACTIONS; i++) {
        if (i >= count && i != MAX_INTERACTIONS - 1) continue;
        const char *name = i < count ? m->names[i] : "other";
        for (unsigned c = 0; c < N_STATUS; c++) {
            uint64_t v = atomic_load_explicit(&m->requests[i][c], memory_order_relaxed);
            if (v)
                tsg_buf_printf(out,
                               "tsunagu_http_requests_total{interaction=\"%s\",code=\"%u\"} "
                               "%llu\n",
                               name, c + MIN_STATUS, (unsigned long long)v);
        }
    }
    tsg_buf_puts(out, "# HELP tsunagu_http_request_duration_seconds Time from the complete "
                      "request to the response being built.\n"
                      "# TYPE tsunagu_http_request_duration_seconds histogram\n");
    for (unsigned i = 0; i < MAX_INTERACTIONS; i++) {
        if (i >= count && i != MAX_INTERACTIONS - 1) continue;
        const char *name = i < count ? m->names[i] : "other";
        uint64_t cum = 0;
        uint64_t counts[N_BUCKETS + 1];
        for (size_t b = 0; b <= N_BUCKETS; b++)
            counts[b] = atomic_load_explicit(&m->buckets[i][b], memory_order_relaxed);
        uint64_t total = 0;
        for (size_t b = 0; b <= N_BUCKETS; b++) total += counts[b];
        if (total == 0) continue;
        for (size_t b = 0; b < N_BUCKETS; b++) {
            cum += counts[b];
            tsg_buf_printf(out,
                           "tsunagu_http_request_duration_seconds_bucket{interaction=\"%s\","
                           "le=\"%g\"} %llu\n",
                           name, BUCKETS[b], (unsigned long long)cum);
        }
        tsg_buf_printf(out,
                       "tsunagu_http_request_duration_seconds_bucket{interaction=\"%s\","
                       "le=\"+Inf\"} %llu\n",
                       name, (unsigned long long)total);
        tsg_buf_printf(out, "tsunagu_http_request_duration_seconds_sum{interaction=\"%s\"} %.9f\n",
                       name,
                       (double)atomic_load_explicit(&m->sum_ns[i], memory_order_relaxed) / 1e9);
        tsg_buf_printf(out,
                       "tsunagu_http_request_duration_seconds_count{interaction=\"%s\"} %llu\n",
                       name, (unsigned long long)total);
    }
    tsg_buf_printf(out,
                   "# HELP tsunagu_http_in_flight Requests being handled.\n"
                   "# TYPE tsunagu_http_in_flight gauge\ntsunagu_http_in_flight %u\n",
                   atomic_load(&s->in_flight));
    if (s->metrics_hook) s->metrics_hook(out, s->metrics_ud);
}

/* ------------------------------------------------------------------------
 * Built-in routes
 * ------------------------------------------------------------------------ */

static void handle_healthz(const http_request *req, http_response *resp, void *ud)
{
    (void)req, (void)ud;
    resp->interaction = "healthz";
    resp->content_type = "text/plain; charset=utf-8";
    tsg_buf_puts(&resp->body, "ok\n");
}

static void handle_readyz(const http_request *req, http_response *resp, void *ud)
{
    (void)req;
    http_server *s = ud;
    resp->interaction = "readyz";
    if (!s->ready) goto ready;
    tsg_buf why;
    tsg_buf_init(&why, 4096);
    bool ok = s->ready(s->ready_ud, &why);
    if (!ok) {
        char msg[600];
        snprintf(msg, sizeof msg, "not ready%s%s", why.len ? ": " : "",
                 why.len && !why.failed ? why.data : "");
        tsg_buf_free(&why);
        http_respond_outcome(resp, 503, "error", "transient", msg, NULL, HTTP_FORMAT_JSON);
        return;
    }
    tsg_buf_free(&why);
ready:
    resp->content_type = "application/json";
    tsg_buf_puts(&resp->body, "{\"status\":\"ready\"}\n");
}

static void handle_metrics(const http_request *req, http_response *resp, void *ud)
{
    (void)req;
    resp->interaction = "metrics";
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    http_server_metrics(ud, &resp->body);
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    http_method m;
} METHODS[] = {{"GET", HTTP_GET},        {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},
               {"PUT", HTTP_PUT},        {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH},
               {"OPTIONS", HTTP_OPTIONS}};

static unsigned method_of(const char *name)
{
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (strcmp(name, METHODS[i].name) == 0) return METHODS[i].m;
    return 0;
}

/* a.b.c.d of an IPv4 address (network order) into out (≥ 16 bytes): what
 * inet_ntop writes, without its printf (1,700 instructions a request) */
static void format_ipv4(const unsigned char a[4], char *out)
{
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100) *out++ = (char)('0' + v / 100);
        if (v >= 10) *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

static void allow_header(unsigned methods, char *out, size_t size)
{
    unsigned all = methods | HTTP_OPTIONS | ((methods & HTTP_GET) ? HTTP_HEAD : 0);
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++) {
        if (!(all & METHODS[i].m)) continue;
        int w = snprintf(out + n, size - n, "%s%s", n ? ", " : "", METHODS[i].name);
        if (w < 0 || (size_t)w >= size - n) break;
        n += (size_t)w;
    }
}

/*
 * The request's headers, indexed once per request (one pass over
 * libmicrohttpd's list, names with their lengths) so that each lookup compares
 * lengths before letters. Requests with more than HEADER_TABLE_MAX headers
 * are looked up in libmicrohttpd's list directly (`over`).
 */
#define HEADER_TABLE_MAX 32

typedef struct header_ent {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} header_ent;

typedef struct header_table {
    struct MHD_Connection *conn;
    size_t n;
    bool over; /* more headers than fit: use conn */
    header_ent h[HEADER_TABLE_MAX];
} header_table;

static enum MHD_Result header_index(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    header_table *t = cls;
    if (t->n == HEADER_TABLE_MAX) {
        t->over = true;
        return MHD_NO;
    }
    t->h[t->n++] = (header_ent){key, key_size, value ? value : "", value ? value_size : 0};
    return MHD_YES;
}

typedef struct header_join {
    const char *name;
    size_t count;
    tsg_buf out;
} header_join;

static enum MHD_Result header_add(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    header_join *j = cls;
    if (strcasecmp(key, j->name) != 0) return MHD_YES;
    if (j->count++) tsg_buf_putc(&j->out, ',');
    tsg_buf_puts(&j->out, value ? value : "");
    return MHD_YES;
}

const char *http_header(const http_request *req, const char *name)
{
    if (req->tls && strcasecmp(name, "X-Forwarded-Proto") == 0) return "https";
    const header_table *t = req->impl;
    if (!t) return NULL;
    size_t nl = strlen(name), count = 0, vl = 0;
    const char *v = NULL;
    if (!t->over) {
        for (size_t i = 0; i < t->n; i++) {
            if (t->h[i].name_len != nl || strcasecmp(t->h[i].name, name) != 0) continue;
            if (count++ == 0) v = t->h[i].value, vl = t->h[i].value_len;
        }
    }
    if (t->over || count > 1) { /* RFC 9110 §5.3: the same field repeated is one list */
        header_join j = {name, 0, {0}};
        tsg_buf_init(&j.out, 0);
        MHD_get_connection_values(t->conn, MHD_HEADER_KIND, header_add, &j);
        v = !j.count ? NULL
            : tsg_buf_rc(&j.out) == TSG_OK
                ? tsg_arena_strndup(req->arena, j.out.data ? j.out.data : "", j.out.len)
                : NULL;
        vl = v ? j.out.len : 0;
        tsg_buf_free(&j.out);
    }
    /* values that are not UTF-8 are treated as absent: every caller may put
     * them into JSON (diagnostics, audit records) */
    if (v && tsg_utf8_valid_prefix(v, vl) != vl) return NULL;
    return v;
}

const char *http_param_get(const http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_params; i++)
        if (strcmp(req->params[i].name, name) == 0) return req->params[i].value;
    return NULL;
}

tsg_rc http_response_header_add(http_response *resp, const char *name, const char *value)
{
    if (resp->n_headers >= HTTP_MAX_RESPONSE_HEADERS) return TSG_ELIMIT;
    if (!*name || strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n")) return TSG_EINVAL;
    /* framing headers belong to libmicrohttpd, the content type to resp->content_type */
    static const char *const reserved[] = {"Content-Type", "Content-Length", "Transfer-Encoding",
                                           "Connection"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(name, reserved[i]) == 0) return TSG_EINVAL;
    char *n = tsg_arena_strndup(resp->arena, name, strlen(name));
    char *v = tsg_arena_strndup(resp->arena, value, strlen(value));
    if (!n || !v) return TSG_ENOMEM;
    resp->headers[resp->n_headers].name = n;
    resp->headers[resp->n_headers].value = v;
    resp->n_headers++;
    return TSG_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *http_url_decode(tsg_arena *a, const char *s, size_t n, bool plus, size_t *out_len, bool *bad)
{
    char *d = tsg_arena_alloc(a, n + 1);
    if (!d) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) {
                *bad = true;
                return NULL;
            }
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) {
                *bad = true;
                return NULL;
            }
            if (hi == 0 && lo == 0) { /* %00: every reader of the text would stop there */
                *bad = true;
                return NULL;
            }
            d[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus && c == '+') {
            d[o++] = ' ';
        } else {
            d[o++] = c;
        }
    }
    d[o] = '\0';
    if (tsg_utf8_valid_prefix(d, o) != o) {
        *bad = true;
        return NULL;
    }
    *out_len = o;
    return d;
}

int http_parse_segments(http_request *r, const char *rest, size_t n, const char **why)
{
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += rest[i] == '/';
    const char **segs = tsg_arena_alloc(r->arena, cap * sizeof *segs);
    if (!segs) return 500;
    size_t k = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && rest[j] != '/') j++;
        if (j > i) {
            size_t dl;
            bool bad = false;
            char *d = http_url_decode(r->arena, rest + i, j - i, false, &dl, &bad);
            if (!d) {
                *why = "the request path has a malformed %-escape or is not valid UTF-8";
                return bad ? 400 : 500;
            }
            segs[k++] = d;
        }
        i = j + 1;
    }
    r->segments = segs;
    r->n_segments = k;
    return 0;
}

static int parse_query(http_request *r, const char **why)
{
    const char *q = r->query;
    size_t n = strlen(q);
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += q[i] == '&';
    http_param *ps = tsg_arena_alloc(r->arena, cap * sizeof *ps);
    if (!ps) return 500;
    size_t k = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&') j++;
        if (j > i) {
            const char *eq = memchr(q + i, '=', j - i);
            size_t nl = eq ? (size_t)(eq - (q + i)) : j - i;
            bool bad = false;
            http_param *p = &ps[k];
            p->name = http_url_decode(r->arena, q + i, nl, true, &p->name_len, &bad);
            if (p->name) {
                if (eq)
                    p->value = http_url_decode(r->arena, eq + 1, (size_t)(q + j - eq - 1), true,
                                               &p->value_len, &bad);
                else
                    p->value = "", p->value_len = 0;
            }
            if (!p->name || !p->value) {
                *why = "the query string has a malformed %-escape or is not valid UTF-8";
                return bad ? 400 : 500;
            }
            k++;
        }
        i = j + 1;
    }
    r->params = ps;
    r->n_params = k;
    return 0;
}

int http_parse_target(http_request *req, const char *target, const char **why)
{
    /* asterisk-form (OPTIONS * HTTP/1.1) asks about the server: its root */
    const char *url = target && *target && strcmp(target, "*") ? target : "/";
    /* absolute-form targets (RFC 9112 §3.2.2: GET http://host/fhir/… HTTP/1.1) */
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        const char *p = strstr(url, "://") + 3;
        size_t auth = strcspn(p, "/?");
        url = p[auth] == '/' ? p + auth : "/";
        if (p[auth] == '?') url = p + auth; /* "http://host?x": path "/" below */
    }
    if (*url != '/' && *url != '?') {
        *why = "the request target must be a path starting with '/' or an absolute URL";
        return 400;
    }
    const char *qm = strchr(url, '?');
    size_t path_len = qm ? (size_t)(qm - url) : strlen(url);
    req->path = *url == '?' ? "/" : tsg_arena_strndup(req->arena, url, path_len);
    req->query = qm ? qm + 1 : "";
    if (!req->path) {
        *why = "out of memory";
        return 500;
    }
    return parse_query(req, why);
}

/* The route for the raw path (longest matching prefix) and where its rest begins. */
static route *route_match(http_server *s, const char *path, size_t path_len, size_t *rest)
{
    route *best = NULL;
    for (size_t i = 0; i < s->n_routes; i++) {
        route *rt = &s->routes[i];
        size_t pl = rt->prefix_len;
        if (path_len < pl || memcmp(path, rt->prefix, pl) != 0) continue;
        if (path_len > pl && path[pl] != '/') continue;
        if (!best || pl > best->prefix_len) {
            best = rt;
            *rest = pl;
        }
    }
    return best;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lower_name(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
    out[i] = '\0';
}

/* Picks the error format: the negotiated one when negotiation would succeed, JSON otherwise. */
static http_format error_format(const http_request *r)
{
    http_format f;
    bool pretty;
    const char *why;
    return http_negotiate_response(r, &f, &pretty, &why) == 0 ? f : HTTP_FORMAT_JSON;
}

/* A request being received: made by uri_log(), freed by completed(). */
typedef struct pending {
    char *uri;      /* the raw request target */
    bool started;   /* access() has seen the headers */
    bool too_large; /* the body is over max_body_bytes (it is not kept) */
    bool answered;  /* a response is queued */
    tsg_buf body;   /* max: max_body_bytes */
} pending;

/* Handles a complete request (or one refused early for its size) and queues its answer. */
static enum MHD_Result dispatch(http_server *s, struct MHD_Connection *conn, const char *verb,
                                pending *p)
{
    uint64_t t0 = now_ns();
    atomic_fetch_add(&s->in_flight, 1);

    http_request req;
    memset(&req, 0, sizeof req);
    header_table headers; /* req.impl */
    http_response resp;
    memset(&resp, 0, sizeof resp);
    tsg_buf_init(&resp.body, 0);
    resp.status = 200;
    char method_lc[16];
    lower_name(verb, method_lc, sizeof method_lc);

    req.arena = tsg_arena_new(0);
    resp.arena = req.arena;
    if (!req.arena) {
        http_respond_outcome(&resp, 500, "fatal", "exception", "out of memory", NULL,
                             HTTP_FORMAT_JSON);
        goto send;
    }
    headers.conn = conn;
    headers.n = 0;
    headers.over = false;
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, header_index, &headers);
    req.impl = &headers;
    req.tls = s->tls;
    req.method_name = verb;
    const char *why = NULL;
    int st = http_parse_target(&req, p->uri, &why);
    if (st) {
        http_respond_outcome(&resp, st, "error", st == 400 ? "invalid" : "exception", why, NULL,
                             HTTP_FORMAT_JSON);
        goto send;
    }
    size_t path_len = strlen(req.path);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *ca = ci ? ci->client_addr : NULL;
    if (ca && ca->sa_family == AF_INET)
        format_ipv4(
            (const unsigned char *)&((const struct sockaddr_in *)(const void *)ca)->sin_addr,
            req.remote_addr);
    else if (ca && ca->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)ca)->sin6_addr,
                  req.remote_addr, sizeof req.remote_addr);

    size_t rest = 0;
    route *rt = route_match(s, req.path, path_len, &rest);
    if (!rt) {
        char msg[300];
        snprintf(msg, sizeof msg, "no resource at %.200s", req.path);
        http_respond_outcome(&resp, 404, "error", "not-found", msg, NULL, error_format(&req));
        goto send;
    }
    req.route = rt->prefix;
    unsigned m = method_of(req.method_name);
    const char *allow = rt->allow;
    if (m == HTTP_OPTIONS && !(rt->methods & HTTP_OPTIONS)) {
        resp.status = 204;
        http_response_header_add(&resp, "Allow", allow);
        resp.interaction = "options";
        goto send;
    }
    if (m == HTTP_HEAD && (rt->methods & HTTP_GET)) {
        m = HTTP_GET;
        req.is_head = true;
    }
    if (!m || !(rt->methods & m)) {
        char msg[200];
        snprintf(msg, sizeof msg, "method %.20s is not allowed here (allowed: %s)", req.method_name,
                 allow);
        http_respond_outcome(&resp, 405, "error", "not-supported", msg, NULL, error_format(&req));
        http_response_header_add(&resp, "Allow", allow);
        goto send;
    }
    req.method = (http_method)m;
    if (p->too_large) {
        char msg[200];
        snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes",
                 s->cfg.max_body_bytes);
        http_respond_outcome(&resp, 413, "error", "too-costly", msg, NULL, error_format(&req));
        goto send;
    }
    req.body = p->body.len ? p->body.data : NULL;
    req.body_len = p->body.len;
    st = http_parse_segments(&req, req.path + rest, path_len - rest, &why);
    if (st) {
        http_respond_outcome(&resp, st, "error", st == 400 ? "invalid" : "exception", why, NULL,
                             error_format(&req));
        goto send;
    }
    if (rt->flags & HTTP_ROUTE_NEGOTIATE) {
        st = http_negotiate_response(&req, &req.format, &req.pretty, &why);
        if (st) {
            http_respond_outcome(&resp, st, "error", st == 406 ? "not-supported" : "invalid", why,
                                 NULL, HTTP_FORMAT_JSON);
            goto send;
        }
        if (req.body_len > 0) {
            st = http_negotiate_body(&req, &req.body_format, &why);
            if (st) {
                http_respond_outcome(&resp, st, "error", "not-supported", why, NULL, req.format);
                goto send;
            }
        }
    }
    if (!s->gate || s->gate(&req, &resp, s->gate_ud)) rt->handler(&req, &resp, rt->user_data);
    if (tsg_buf_rc(&resp.body) != TSG_OK) {
        http_respond_outcome(&resp, 500, "error", "too-costly",
                             tsg_buf_rc(&resp.body) == TSG_ELIMIT
                                 ? "the response is larger than the server's limit"
                                 : "out of memory while writing the response",
                             NULL, req.format);
    }
    if (resp.status < 100 || resp.status > 599) {
        http_respond_outcome(&resp, 500, "error", "exception",
                             "the handler set an invalid status code", NULL, req.format);
    }
    if (s->finish) s->finish(&req, &resp, s->finish_ud);

send:;
    struct MHD_Response *mr = NULL;
    if (resp.body.len > 0 && tsg_buf_rc(&resp.body) == TSG_OK) {
        size_t len;
        char *body = tsg_buf_take(&resp.body, &len);
        mr = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!mr) free(body);
    } else {
        mr = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    enum MHD_Result ok = MHD_NO;
    if (mr) {
        for (size_t i = 0; i < resp.n_headers; i++)
            MHD_add_response_header(mr, resp.headers[i].name, resp.headers[i].value);
        if (s->tls) MHD_add_response_header(mr, "Strict-Transport-Security", HSTS_VALUE);
        if (resp.content_type) MHD_add_response_header(mr, "Content-Type", resp.content_type);
        ok = MHD_queue_response(conn, (unsigned)resp.status, mr);
        MHD_destroy_response(mr);
    }
    p->answered = ok == MHD_YES;
    tsg_buf_free(&resp.body);
    metrics_record(s->m, resp.interaction ? resp.interaction : method_lc, resp.status,
                   now_ns() - t0);
    tsg_arena_free(req.arena);
    atomic_fetch_sub(&s->in_flight, 1);
    return ok; /* MHD_NO: libmicrohttpd closes the connection */
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    http_server *s = cls;
    pending *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->uri = strdup(uri ? uri : "/");
    if (!p->uri) {
        free(p);
        return NULL;
    }
    tsg_buf_init(&p->body, s->cfg.max_body_bytes);
    return p;
}

static void completed(void *cls, struct MHD_Connection *conn, void **ctx,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    pending *p = *ctx;
    if (!p) return;
    tsg_buf_free(&p->body);
    free(p->uri);
    free(p);
    *ctx = NULL;
}

/* A fixed 500 for when not even the pending record could be made. */
static enum MHD_Result answer_oom(struct MHD_Connection *conn)
{
    static const char msg[] = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
                              "\"fatal\",\"code\":\"exception\",\"diagnostics\":\"out of "
                              "memory\"}]}";
    struct MHD_Response *mr =
        MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    if (!mr) return MHD_NO;
    MHD_add_response_header(mr, "Content-Type", "application/fhir+json");
    enum MHD_Result ok = MHD_queue_response(conn, 500, mr);
    MHD_destroy_response(mr);
    return ok;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **ctx)
{
    (void)url, (void)version;
    http_server *s = cls;
    pending *p = *ctx;
    if (!p) return answer_oom(conn);
    if (!p->started) {
        p->started = true;
        /* a declared length over the limit is refused before the body is sent */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end != cl && !*end && (errno == ERANGE || n > s->cfg.max_body_bytes)) {
                p->too_large = true;
                return dispatch(s, conn, method, p);
            }
            /* room for the body, but a declared length alone gets at most 1 MiB */
            if (end != cl && !*end && n > 0)
                tsg_buf_reserve(&p->body, n < (1u << 20) ? (size_t)n : (1u << 20));
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!p->too_large && !p->answered) {
            tsg_buf_append(&p->body, upload_data, *upload_data_size);
            if (tsg_buf_rc(&p->body) == TSG_ELIMIT) {
                p->too_large = true;
                tsg_buf_free(&p->body); /* and keep reading (dropping) the rest */
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (p->answered) return MHD_YES;
    if (tsg_buf_rc(&p->body) == TSG_ENOMEM) return answer_oom(conn);
    return dispatch(s, conn, method, p);
}

/* ------------------------------------------------------------------------
 * Server
 * ------------------------------------------------------------------------ */

http_server *http_server_new(const http_config *cfg, tsg_error *err)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        return NULL;
    }
    s->m = calloc(1, sizeof *s->m);
    if (!s->m) {
        free(s);
        tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->m->names_lock, NULL);
    pthread_mutex_init(&s->stop_lock, NULL);
    s->cfg = *cfg;
    s->quiesced_fd = MHD_INVALID_SOCKET;
    if (cfg->tls_cert[0] || cfg->tls_key[0]) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            tsg_error_set(err, TSG_ENOTSUP, "not-supported",
                          "tls_cert/tls_key are set but this libmicrohttpd has no TLS support");
            http_server_free(s);
            return NULL;
        }
        if (http_tls_load(cfg, &s->tls_cert_pem, &s->tls_key_pem, err) != TSG_OK) {
            http_server_free(s);
            return NULL;
        }
        s->tls_key_len = strlen(s->tls_key_pem);
        s->tls = true;
    }
    if (http_listen_parse(cfg->listen, &s->addr, &s->addr_len, err) != TSG_OK ||
        http_route_add(s, "/healthz", HTTP_GET, 0, handle_healthz, s, err) != TSG_OK ||
        http_route_add(s, "/readyz", HTTP_GET, 0, handle_readyz, s, err) != TSG_OK ||
        http_route_add(s, "/metrics", HTTP_GET, 0, handle_metrics, s, err) != TSG_OK) {
        http_server_free(s);
        return NULL;
    }
    return s;
}

tsg_rc http_route_add(http_server *s, const char *prefix, unsigned methods, unsigned flags,
                      http_handler handler, void *user_data, tsg_error *err)
{
    if (s->started)
        return tsg_error_set(err, TSG_EINVAL, "exception", "routes must be added before start");
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0 || prefix[0] != '/' || (n > 1 && prefix[n - 1] == '/') || strchr(prefix, '?') ||
        n >= sizeof s->routes[0].prefix || !handler || !methods)
        return tsg_error_set(err, TSG_EINVAL, "exception", "bad route prefix '%s'",
                             prefix ? prefix : "(null)");
    if (n == 1) n = 0; /* "/" routes everything: matches as the empty prefix */
    for (size_t i = 0; i < s->n_routes; i++)
        if (s->routes[i].prefix_len == n && memcmp(s->routes[i].prefix, prefix, n) == 0)
            return tsg_error_set(err, TSG_EINVAL, "exception", "route '%s' added twice", prefix);
    if (s->n_routes >= MAX_ROUTES)
        return tsg_error_set(err, TSG_ELIMIT, "too-costly", "more than %d routes", MAX_ROUTES);
    route *rt = &s->routes[s->n_routes++];
    memcpy(rt->prefix, prefix, n);
    rt->prefix[n] = '\0';
    rt->prefix_len = n;
    rt->methods = methods;
    allow_header(methods, rt->allow, sizeof rt->allow);
    rt->flags = flags;
    rt->handler = handler;
    rt->user_data = user_data;
    return TSG_OK;
}

void http_server_set_ready(http_server *s, http_ready_fn fn, void *user_data)
{
    s->ready = fn;
    s->ready_ud = user_data;
}

void http_server_set_gate(http_server *s, http_gate_fn fn, void *user_data)
{
    s->gate = fn;
    s->gate_ud = user_data;
}

void http_server_set_finish(http_server *s, http_finish_fn fn, void *user_data)
{
    s->finish = fn;
    s->finish_ud = user_data;
}

void http_server_set_metrics_hook(http_server *s, http_metrics_fn fn, void *user_data)
{
    s->metrics_hook = fn;
    s->metrics_ud = user_data;
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

tsg_rc http_server_start(http_server *s, tsg_error *err)
{
    if (s->started) return tsg_error_set(err, TSG_EINVAL, "exception", "server already started");
    uint16_t cfg_port =
        ntohs(s->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&s->addr)->sin6_port
                                            : ((struct sockaddr_in *)&s->addr)->sin_port);
    unsigned threads = s->cfg.threads ? s->cfg.threads : online_cpus();
    struct MHD_OptionItem ops[12] = {
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, s},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)uri_log, s},
        {MHD_OPTION_SOCK_ADDR, 0, &s->addr},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)s->cfg.max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->cfg.connection_timeout_s, NULL}};
    size_t n_ops = 5;
    /* a pool of one is no pool (libmicrohttpd warns): then one epoll thread */
    if (threads > 1)
        ops[n_ops++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL};
    if (s->tls) {
        ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key_pem};
        ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert_pem};
        ops[n_ops++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)HTTP_TLS_PRIORITIES};
    }
    ops[n_ops] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (s->addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) |
                     (s->tls ? MHD_USE_TLS : 0);

    /* The pool threads inherit the signal mask: block SIGTERM/SIGINT in them
       so the thread in http_server_run() receives the signals. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    s->daemon = MHD_start_daemon(flags, cfg_port, NULL, NULL, access_cb, s, MHD_OPTION_ARRAY, ops,
                                 MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!s->daemon && s->tls)
        return tsg_error_set(err, TSG_EIO, "exception",
                             "cannot listen with HTTPS on %s (address in use, not permitted, or "
                             "GnuTLS refused tls_cert/tls_key: see libmicrohttpd's message above)",
                             s->cfg.listen);
    if (!s->daemon)
        return tsg_error_set(err, TSG_EIO, "exception",
                             "cannot listen on %s (address in use, or not permitted?)",
                             s->cfg.listen);
    s->started = true;
    /* the port actually bound (MHD_DAEMON_INFO_BIND_PORT reports the port
       argument, not the one chosen for port 0) */
    s->port = cfg_port;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (di && getsockname(di->listen_fd, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    return TSG_OK;
}

uint16_t http_server_port(const http_server *s)
{
    return s->started ? s->port : 0;
}

unsigned http_server_in_flight(const http_server *s)
{
    return atomic_load(&((http_server *)s)->in_flight);
}

void http_server_request_stop(http_server *s)
{
    atomic_store(&s->stop_requested, 1);
}

int http_server_run(http_server *s)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int sig = 0;
    while (!atomic_load(&s->stop_requested)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        int r = sigtimedwait(&set, NULL, &ts);
        if (r == SIGTERM || r == SIGINT) {
            sig = r;
            break;
        }
    }
    http_server_stop(s);
    return sig;
}

void http_server_stop(http_server *s)
{
    pthread_mutex_lock(&s->stop_lock);
    if (!s->started || s->stopped) {
        pthread_mutex_unlock(&s->stop_lock);
        return;
    }
    s->stopped = true;
    /* stop accepting; connections already open keep being served meanwhile */
    s->quiesced_fd = MHD_quiesce_daemon(s->daemon);
    uint64_t deadline = now_ns() + (uint64_t)s->cfg.drain_timeout_s * 1000000000u;
    while (atomic_load(&s->in_flight) > 0 && now_ns() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->quiesced_fd != MHD_INVALID_SOCKET) close(s->quiesced_fd);
    s->quiesced_fd = MHD_INVALID_SOCKET;
    pthread_mutex_unlock(&s->stop_lock);
}

void http_server_free(http_server *s)
{
    if (!s) return;
    http_server_stop(s);
    pthread_mutex_destroy(&s->stop_lock);
    pthread_mutex_destroy(&s->m->names_lock);
    free(s->m);
    free(s->tls_cert_pem);
    if (s->tls_key_pem) OPENSSL_cleanse(s->tls_key_pem, s->tls_key_len);
    free(s->tls_key_pem);
    free(s);
}
