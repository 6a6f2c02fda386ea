/*
 * test_http.c — the HTTP layer of `tsunagu serve` over real sockets: a server
 * started in-process on 127.0.0.1 (port 0), spoken to by a small raw-socket
 * HTTP/1.1 client; configuration loading; signals and draining.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "rest/http.h"

#define LIMIT 100 /* max_body_bytes of the test server */

/* ------------------------------------------------------------------------
 * A raw-socket HTTP client
 * ------------------------------------------------------------------------ */

typedef struct reply {
    int status;
    char head[8192]; /* status line and headers */
    char *body;
    size_t body_len;
} reply;

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends raw request bytes (n of them) and reads the answer until the server
 * closes the connection. Returns 0, or -1 when nothing could be read. */
static int exchange_raw(uint16_t port, const char *req, size_t n, reply *r)
{
    memset(r, 0, sizeof *r);
    int fd = connect_to(port);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (len == cap) buf = realloc(buf, (cap *= 2) + 1);
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got <= 0) break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (!end || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(end - buf);
    if (hl >= sizeof r->head) hl = sizeof r->head - 1;
    memcpy(r->head, buf, hl);
    r->head[hl] = '\0';
    r->body_len = len - (size_t)(end + 4 - buf);
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
    return 0;
}

/* A request with the given method, target, extra header lines ("" or
 * "Name: v\r\n…") and body (NULL = none). */
static int exchange(uint16_t port, const char *method, const char *target, const char *headers,
                    const char *body, size_t body_len, reply *r)
{
    char head[4096];
    int n =
        snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s",
                 method, target, headers);
    if (body) n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    size_t total = (size_t)n + (body ? body_len : 0);
    char *all = malloc(total);
    memcpy(all, head, (size_t)n);
    if (body) memcpy(all + n, body, body_len);
    int rc = exchange_raw(port, all, total, r);
    free(all);
    return rc;
}

static void reply_free(reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* The value of a response header (case-insensitive), copied into out; NULL if absent. */
static const char *header_of(const reply *r, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            const char *e = strstr(v, "\r\n");
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            if (vl >= size) vl = size - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * The test server
 * ------------------------------------------------------------------------ */

static atomic_int ready_flag;

/* Echoes what the layer made of the request, one fact per line. */
static void echo_handler(const http_request *req, http_response *resp, void *ud)
{
    (void)ud;
    tsg_buf *b = &resp->body;
    tsg_buf_printf(b, "method=%s head=%d\n", req->method_name, req->is_head);
    tsg_buf_printf(b, "route=%s\n", req->route);
    tsg_buf_puts(b, "segments=");
    for (size_t i = 0; i < req->n_segments; i++)
        tsg_buf_printf(b, "%s[%s]", i ? "," : "", req->segments[i]);
    tsg_buf_printf(b, "\nquery=%s\n", req->query);
    for (size_t i = 0; i < req->n_params; i++)
        tsg_buf_printf(b, "param[%s]=[%s]\n", req->params[i].name, req->params[i].value);
    const char *x = http_header(req, "x-test");
    tsg_buf_printf(b, "x-test=%s\n", x ? x : "(none)");
    tsg_buf_printf(b, "remote=%s\n", req->remote_addr);
    tsg_buf_printf(b, "format=%s pretty=%d body_format=%s\n",
                   req->format == HTTP_FORMAT_XML ? "xml" : "json", req->pretty,
                   req->body_format == HTTP_FORMAT_XML ? "xml" : "json");
    tsg_buf_printf(b, "body=%zu:", req->body_len);
    if (req->body) tsg_buf_append(b, req->body, req->body_len);
    resp->content_type = "text/plain; charset=utf-8";
    http_response_header_add(resp, "X-Echo", "yes");
    /* refused: framing and content type, header injection */
    if (http_response_header_add(resp, "content-length", "1") != TSG_EINVAL ||
        http_response_header_add(resp, "Content-Type", "text/html") != TSG_EINVAL ||
        http_response_header_add(resp, "X-Bad", "a\r\nSet-Cookie: x") != TSG_EINVAL ||
        http_response_header_add(resp, "X Bad", "a") != TSG_EINVAL)
        tsg_buf_puts(b, "\nHEADER CHECK FAILED");
    const char *inter = http_param_get(req, "interaction");
    resp->interaction = inter ? "echo-named" : NULL;
    const char *st = http_param_get(req, "status");
    if (st) resp->status = (int)strtol(st, NULL, 10);
}

static void slow_handler(const http_request *req, http_response *resp, void *ud)
{
    (void)req, (void)ud;
    struct timespec ts = {0, 400 * 1000 * 1000};
    nanosleep(&ts, NULL);
    resp->content_type = "text/plain";
    tsg_buf_puts(&resp->body, "slow done");
}

static bool ready_cb(void *ud, tsg_buf *why)
{
    (void)ud;
    if (atomic_load(&ready_flag)) return true;
    tsg_buf_puts(why, "redis is down");
    return false;
}

static void metrics_hook(tsg_buf *out, void *ud)
{
    (void)ud;
    tsg_buf_puts(out, "# TYPE tsunagu_test_extra counter\ntsunagu_test_extra 7\n");
}

static http_server *start_server(void)
{
    http_config cfg;
    http_config_default(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "%s", "127.0.0.1:0");
    cfg.threads = 2;
    cfg.max_body_bytes = LIMIT;
    cfg.drain_timeout_s = 5;
    tsg_error err;
    http_server *s = http_server_new(&cfg, &err);
    assert_non_null(s);
    assert_int_equal(
        http_route_add(s, "/echo", HTTP_GET | HTTP_POST | HTTP_PUT, 0, echo_handler, NULL, &err),
        TSG_OK);
    assert_int_equal(http_route_add(s, "/fhir", HTTP_GET | HTTP_POST | HTTP_PUT | HTTP_DELETE,
                                    HTTP_ROUTE_NEGOTIATE, echo_handler, NULL, &err),
                     TSG_OK);
    assert_int_equal(http_route_add(s, "/slow", HTTP_GET, 0, slow_handler, NULL, &err), TSG_OK);
    /* bad routes are refused */
    assert_int_equal(http_route_add(s, "/echo", HTTP_GET, 0, echo_handler, NULL, &err), TSG_EINVAL);
    assert_int_equal(http_route_add(s, "noslash", HTTP_GET, 0, echo_handler, NULL, &err),
                     TSG_EINVAL);
    assert_int_equal(http_route_add(s, "/trailing/", HTTP_GET, 0, echo_handler, NULL, &err),
                     TSG_EINVAL);
    http_server_set_ready(s, ready_cb, NULL);
    http_server_set_metrics_hook(s, metrics_hook, NULL);
    assert_int_equal(http_server_port(s), 0);
    assert_int_equal(http_server_start(s, &err), TSG_OK);
    assert_true(http_server_port(s) > 0);
    /* starting twice fails */
    assert_int_equal(http_server_start(s, &err), TSG_EINVAL);
    return s;
}

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    *state = start_server();
    return 0;
}

static int group_teardown(void **state)
{
    http_server_free(*state);
    return 0;
}

static uint16_t port_of(void **state)
{
    return http_server_port(*state);
}

/* ------------------------------------------------------------------------
 * Tests over HTTP
 * ------------------------------------------------------------------------ */

static void test_get_echo(void **state)
{
    reply r;
    char h[256];
    assert_int_equal(
        exchange(port_of(state), "GET", "/echo/a/b%20c/", "X-TEST: hello\r\n", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "method=GET head=0\n"));
    assert_non_null(strstr(r.body, "route=/echo\n"));
    assert_non_null(strstr(r.body, "segments=[a],[b c]\n"));
    assert_non_null(strstr(r.body, "x-test=hello\n")); /* case-insensitive lookup */
    assert_non_null(strstr(r.body, "remote=127.0.0.1\n"));
    assert_non_null(strstr(r.body, "body=0:"));
    assert_null(strstr(r.body, "HEADER CHECK FAILED"));
    assert_string_equal(header_of(&r, "Content-Type", h, sizeof h), "text/plain; charset=utf-8");
    assert_string_equal(header_of(&r, "X-Echo", h, sizeof h), "yes");
    reply_free(&r);

    /* the bare prefix matches too; a longer name does not */
    assert_int_equal(exchange(port_of(state), "GET", "/echo", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "segments=\n"));
    reply_free(&r);
    assert_int_equal(exchange(port_of(state), "GET", "/echoes", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    reply_free(&r);
}

static void test_query_decoding(void **state)
{
    reply r;
    assert_int_equal(exchange(port_of(state), "GET",
                              "/echo?name=%E3%83%A4%E3%83%9E%E3%83%80&a=1&a=2&empty=&flag"
                              "&sp=x+y%2Bz&&amp%26=%3D",
                              "", NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "query=name=%E3%83%A4%E3%83%9E%E3%83%80&a=1&a=2&empty=&flag"
                                   "&sp=x+y%2Bz&&amp%26=%3D\n"));
    const char *expect = "param[name]=[ヤマダ]\nparam[a]=[1]\nparam[a]=[2]\nparam[empty]=[]\n"
                         "param[flag]=[]\nparam[sp]=[x y+z]\nparam[amp&]=[=]\n";
    assert_non_null(strstr(r.body, expect));
    reply_free(&r);

    /* malformed escapes and invalid UTF-8 are 400 with an OperationOutcome */
    const char *bad[] = {"/echo?a=%E3%83", "/echo?a=%zz", "/echo?a=%4", "/echo/%ff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(exchange(port_of(state), "GET", bad[i], "", NULL, 0, &r), 0);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"resourceType\":\"OperationOutcome\""));
        assert_non_null(strstr(r.body, "\"code\":\"invalid\""));
        reply_free(&r);
    }
}

static void test_not_found(void **state)
{
    reply r;
    char h[256];
    assert_int_equal(exchange(port_of(state), "GET", "/nothing/here", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(header_of(&r, "Content-Type", h, sizeof h), HTTP_CT_FHIR_JSON);
    assert_non_null(strstr(r.body, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
                                   "\"severity\":\"error\",\"code\":\"not-found\""));
    reply_free(&r);
    /* the error follows _format */
    assert_int_equal(exchange(port_of(state), "GET", "/nothing?_format=xml", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(header_of(&r, "Content-Type", h, sizeof h), HTTP_CT_FHIR_XML);
    assert_non_null(strstr(r.body, "<OperationOutcome xmlns=\"http://hl7.org/fhir\"><issue>"
                                   "<severity value=\"error\"/><code value=\"not-found\"/>"));
    reply_free(&r);
}

static void test_method_not_allowed(void **state)
{
    reply r;
    char h[256];
    assert_int_equal(exchange(port_of(state), "DELETE", "/echo/x", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(header_of(&r, "Allow", h, sizeof h), "GET, HEAD, POST, PUT, OPTIONS");
    assert_non_null(strstr(r.body, "\"code\":\"not-supported\""));
    reply_free(&r);
    /* an unknown method is 405 too */
    assert_int_equal(exchange(port_of(state), "BREW", "/healthz", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(header_of(&r, "Allow", h, sizeof h), "GET, HEAD, OPTIONS");
    reply_free(&r);
}

static void test_head(void **state)
{
    reply g, r;
    char h1[64], h2[64];
    /* same headers as GET, Content-Length included, and no body */
    assert_int_equal(exchange(port_of(state), "GET", "/healthz", "", NULL, 0, &g), 0);
    assert_int_equal(exchange(port_of(state), "HEAD", "/healthz", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(header_of(&r, "Content-Type", h1, sizeof h1),
                        header_of(&g, "Content-Type", h2, sizeof h2));
    assert_non_null(header_of(&r, "Content-Length", h1, sizeof h1));
    assert_non_null(header_of(&g, "Content-Length", h2, sizeof h2));
    assert_string_equal(h1, h2);
    assert_int_equal(strtoul(h2, NULL, 10), g.body_len);
    reply_free(&g);
    reply_free(&r);
    /* the handler sees GET with is_head; its headers are sent */
    assert_int_equal(exchange(port_of(state), "HEAD", "/echo/h", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(header_of(&r, "X-Echo", h1, sizeof h1), "yes");
    assert_true(strtoul(header_of(&r, "Content-Length", h1, sizeof h1), NULL, 10) > 0);
    reply_free(&r);
    /* HEAD on an unknown path is a 404 like GET */
    assert_int_equal(exchange(port_of(state), "HEAD", "/fhir-nothing", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    reply_free(&r);
}

static void test_options(void **state)
{
    reply r;
    char h[256];
    assert_int_equal(exchange(port_of(state), "OPTIONS", "/fhir/Patient", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 204);
    assert_string_equal(header_of(&r, "Allow", h, sizeof h),
                        "GET, HEAD, POST, PUT, DELETE, OPTIONS");
    assert_int_equal(r.body_len, 0);
    reply_free(&r);
}

static void test_body_limit(void **state)
{
    reply r;
    char body[LIMIT + 2];
    memset(body, 'b', sizeof body);
    /* exactly the limit: accepted, every byte delivered */
    assert_int_equal(exchange(port_of(state), "POST", "/echo", "", body, LIMIT, &r), 0);
    assert_int_equal(r.status, 200);
    char expect[LIMIT + 32];
    snprintf(expect, sizeof expect, "body=%d:%.*s", LIMIT, LIMIT, body);
    assert_non_null(strstr(r.body, expect));
    reply_free(&r);
    /* one byte more: 413, not a truncated body */
    assert_int_equal(exchange(port_of(state), "POST", "/echo", "", body, LIMIT + 1, &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"code\":\"too-costly\""));
    reply_free(&r);
    assert_int_equal(exchange(port_of(state), "PUT", "/echo", "", body, LIMIT + 2, &r), 0);
    assert_int_equal(r.status, 413);
    reply_free(&r);
    /* a raw binary body with NUL bytes arrives intact */
    const char bin[] = {'a', 0, 'b', 0};
    assert_int_equal(exchange(port_of(state), "POST", "/echo", "", bin, sizeof bin, &r), 0);
    assert_int_equal(r.status, 200);
    const char *p = strstr(r.body, "body=4:");
    assert_non_null(p);
    assert_memory_equal(p + 7, bin, sizeof bin);
    reply_free(&r);
}

static void test_negotiation(void **state)
{
    reply r;
    char h[256];
    struct {
        const char *target, *headers;
        int status;
        const char *expect; /* in the body */
    } cases[] = {
        {"/fhir/Patient", "", 200, "format=json pretty=0"},
        {"/fhir/Patient", "Accept: application/fhir+xml\r\n", 200, "format=xml"},
        {"/fhir/Patient", "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n", 200,
         "format=json"},
        {"/fhir/Patient", "Accept: application/fhir+json;q=0.5, application/fhir+xml\r\n", 200,
         "format=xml"},
        {"/fhir/Patient", "Accept: application/xml;q=0.9, application/json;q=0.9\r\n", 200,
         "format=json"},
        {"/fhir/Patient", "Accept: text/xml\r\n", 200, "format=xml"},
        {"/fhir/Patient", "Accept: application/*\r\n", 200, "format=json"},
        {"/fhir/Patient", "Accept: application/fhir+json; fhirVersion=4.0\r\n", 200, "format=json"},
        {"/fhir/Patient", "Accept: text/html\r\n", 406, "\"code\":\"not-supported\""},
        {"/fhir/Patient", "Accept: application/fhir+xml;q=0\r\n", 406, "OperationOutcome"},
        /* _format wins over Accept; '+' unencoded in the query still works */
        {"/fhir/Patient?_format=xml", "Accept: application/fhir+json\r\n", 200, "format=xml"},
        {"/fhir/Patient?_format=application/fhir+xml", "", 200, "format=xml"},
        {"/fhir/Patient?_format=application%2Ffhir%2Bjson", "Accept: text/xml\r\n", 200,
         "format=json"},
        {"/fhir/Patient?_format=text/xml", "", 200, "format=xml"},
        {"/fhir/Patient?_format=html", "", 406, "_format"},
        {"/fhir/Patient?_pretty=true", "", 200, "pretty=1"},
        {"/fhir/Patient?_pretty=yes", "", 400, "\"code\":\"invalid\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(
            exchange(port_of(state), "GET", cases[i].target, cases[i].headers, NULL, 0, &r), 0);
        if (r.status != cases[i].status || !strstr(r.body, cases[i].expect))
            fail_msg("case %zu (%s): %d %s", i, cases[i].target, r.status, r.body);
        if (r.status >= 400)
            assert_non_null(strstr(header_of(&r, "Content-Type", h, sizeof h), "fhir+"));
        reply_free(&r);
    }
}

static void test_content_type(void **state)
{
    reply r;
    char h[256];
    const char *body = "{\"resourceType\":\"Patient\"}";
    size_t n = strlen(body);
    struct {
        const char *headers;
        int status;
        const char *expect;
    } cases[] = {
        {"Content-Type: application/fhir+json\r\n", 200, "body_format=json"},
        {"Content-Type: application/fhir+json; charset=UTF-8\r\n", 200, "body_format=json"},
        {"Content-Type: application/json\r\n", 200, "body_format=json"},
        {"Content-Type: application/fhir+xml;charset=\"utf-8\"\r\n", 200, "body_format=xml"},
        {"Content-Type: text/xml\r\n", 200, "body_format=xml"},
        {"Content-Type: text/plain\r\n", 415, "\"code\":\"not-supported\""},
        {"Content-Type: application/fhir+json; charset=iso-8859-1\r\n", 415, "charset"},
        {"", 415, "Content-Type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(
            exchange(port_of(state), "POST", "/fhir/Patient", cases[i].headers, body, n, &r), 0);
        if (r.status != cases[i].status || !strstr(r.body, cases[i].expect))
            fail_msg("case %zu (%s): %d %s", i, cases[i].headers, r.status, r.body);
        reply_free(&r);
    }
    /* a form body is a search's (POST …/_search): it passes on POST only */
    assert_int_equal(exchange(port_of(state), "PUT", "/fhir/Patient",
                              "Content-Type: application/x-www-form-urlencoded\r\n", "a=b", 3, &r),
                     0);
    assert_int_equal(r.status, 415);
    assert_non_null(strstr(r.body, "OperationOutcome"));
    reply_free(&r);
    assert_int_equal(exchange(port_of(state), "POST", "/fhir/Patient/_search",
                              "Content-Type: application/x-www-form-urlencoded\r\n", "a=b", 3, &r),
                     0);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    /* a 415 follows the negotiated response format */
    assert_int_equal(exchange(port_of(state), "POST", "/fhir/Patient?_format=xml",
                              "Content-Type: text/plain\r\n", body, n, &r),
                     0);
    assert_int_equal(r.status, 415);
    assert_string_equal(header_of(&r, "Content-Type", h, sizeof h), HTTP_CT_FHIR_XML);
    reply_free(&r);
    /* a GET without a body needs no Content-Type */
    assert_int_equal(exchange(port_of(state), "DELETE", "/fhir/Patient/1", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "segments=[Patient],[1]"));
    reply_free(&r);
}

static void test_healthz_readyz(void **state)
{
    reply r;
    char h[256];
    assert_int_equal(exchange(port_of(state), "GET", "/healthz", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    reply_free(&r);

    atomic_store(&ready_flag, 0);
    assert_int_equal(exchange(port_of(state), "GET", "/readyz", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(header_of(&r, "Content-Type", h, sizeof h), HTTP_CT_FHIR_JSON);
    assert_non_null(strstr(r.body, "\"resourceType\":\"OperationOutcome\""));
    assert_non_null(strstr(r.body, "not ready: redis is down"));
    reply_free(&r);

    atomic_store(&ready_flag, 1);
    assert_int_equal(exchange(port_of(state), "GET", "/readyz", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "ready"));
    reply_free(&r);
}

static void test_metrics(void **state)
{
    reply r;
    char h[256];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            exchange(port_of(state), "GET", "/echo?interaction=1&status=201", "", NULL, 0, &r), 0);
        assert_int_equal(r.status, 201);
        reply_free(&r);
    }
    assert_int_equal(exchange(port_of(state), "GET", "/metrics", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_of(&r, "Content-Type", h, sizeof h),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body, "# TYPE tsunagu_http_requests_total counter\n"));
    assert_non_null(
        strstr(r.body, "tsunagu_http_requests_total{interaction=\"echo-named\",code=\"201\"} 3\n"));
    /* earlier tests: default interaction is the method; layer errors are counted */
    assert_non_null(
        strstr(r.body, "tsunagu_http_requests_total{interaction=\"get\",code=\"404\"}"));
    assert_non_null(
        strstr(r.body, "tsunagu_http_requests_total{interaction=\"post\",code=\"413\"}"));
    assert_non_null(strstr(r.body, "# TYPE tsunagu_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(r.body, "tsunagu_http_request_duration_seconds_bucket{interaction="
                                   "\"echo-named\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(
        r.body, "tsunagu_http_request_duration_seconds_count{interaction=\"echo-named\"} 3\n"));
    assert_non_null(strstr(r.body, "tsunagu_test_extra 7\n")); /* the hook */
    reply_free(&r);
}

static void test_keepalive_and_bad_request(void **state)
{
    /* two requests on one connection */
    int fd = connect_to(port_of(state));
    assert_true(fd >= 0);
    const char *two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, two, strlen(two), MSG_NOSIGNAL), (ssize_t)strlen(two));
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t got = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (got <= 0) break;
        len += (size_t)got;
    }
    buf[len] = '\0';
    close(fd);
    const char *first = strstr(buf, "HTTP/1.1 200");
    assert_non_null(first);
    assert_non_null(strstr(first + 1, "HTTP/1.1 200"));

    /* garbage is answered by libmicrohttpd, the server survives */
    reply r;
    const char *junk = "\x01\x02 not http\r\n\r\n";
    exchange_raw(port_of(state), junk, strlen(junk), &r);
    reply_free(&r);
    assert_int_equal(exchange(port_of(state), "GET", "/healthz", "", NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

static void test_chunked_and_absolute_form(void **state)
{
    reply r;
    char req[1024];
    /* a chunked body of exactly the limit is accepted, one byte more is 413 */
    for (int extra = 0; extra <= 1; extra++) {
        int n = snprintf(req, sizeof req,
                         "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n32\r\n%050d\r\n%x\r\n%0*d\r\n0\r\n\r\n",
                         0, LIMIT - 50 + extra, LIMIT - 50 + extra, 0);
        assert_int_equal(exchange_raw(port_of(state), req, (size_t)n, &r), 0);
        assert_int_equal(r.status, extra ? 413 : 200);
        if (!extra) assert_non_null(strstr(r.body, "body=100:"));
        reply_free(&r);
    }
    /* absolute-form request target */
    int n = snprintf(req, sizeof req, "%s",
                     "GET http://localhost/echo/abs?q=1 HTTP/1.1\r\nHost: localhost\r\n"
                     "Connection: close\r\n\r\n");
    assert_int_equal(exchange_raw(port_of(state), req, (size_t)n, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "segments=[abs]\n"));
    assert_non_null(strstr(r.body, "param[q]=[1]\n"));
    reply_free(&r);
}

#define CONC_THREADS  4
#define CONC_REQUESTS 25

static void *conc_thread(void *arg)
{
    uint16_t port = *(uint16_t *)arg;
    intptr_t ok = 0;
    for (int i = 0; i < CONC_REQUESTS; i++) {
        reply r;
        if (exchange(port, "GET", "/echo?interaction=1&status=202", "", NULL, 0, &r) == 0 &&
            r.status == 202)
            ok++;
        reply_free(&r);
    }
    return (void *)ok;
}

static void test_concurrent_counts(void **state)
{
    uint16_t port = port_of(state);
    pthread_t t[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) pthread_create(&t[i], NULL, conc_thread, &port);
    intptr_t total = 0;
    for (int i = 0; i < CONC_THREADS; i++) {
        void *ok;
        pthread_join(t[i], &ok);
        total += (intptr_t)ok;
    }
    assert_int_equal(total, CONC_THREADS * CONC_REQUESTS);
    tsg_buf b;
    tsg_buf_init(&b, 0);
    http_server_metrics(*state, &b);
    char line[128];
    snprintf(line, sizeof line,
             "tsunagu_http_requests_total{interaction=\"echo-named\",code=\"202\"} %d\n",
             CONC_THREADS * CONC_REQUESTS);
    assert_non_null(strstr(b.data, line));
    tsg_buf_free(&b);
}

/* ------------------------------------------------------------------------
 * Outcome writer and helpers (no server)
 * ------------------------------------------------------------------------ */

static void test_outcome_escaping(void **state)
{
    (void)state;
    http_response resp;
    memset(&resp, 0, sizeof resp);
    tsg_buf_init(&resp.body, 0);
    http_respond_outcome(&resp, 422, "error", "invalid", "bad \"x\" <y> & \x01 \xff\n",
                         "Patient.name[0]", HTTP_FORMAT_JSON);
    assert_int_equal(resp.status, 422);
    assert_string_equal(resp.content_type, HTTP_CT_FHIR_JSON);
    assert_string_equal(resp.body.data,
                        "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\","
                        "\"code\":\"invalid\",\"diagnostics\":\"bad \\\"x\\\" <y> & \\u0001 "
                        "\xEF\xBF\xBD\\n\",\"expression\":[\"Patient.name[0]\"]}]}");
    http_respond_outcome(&resp, 500, "fatal", "exception", "a<b & \"c\" \x02 \xc3", NULL,
                         HTTP_FORMAT_XML);
    assert_string_equal(resp.content_type, HTTP_CT_FHIR_XML);
    assert_string_equal(
        resp.body.data,
        "<OperationOutcome xmlns=\"http://hl7.org/fhir\"><issue><severity "
        "value=\"fatal\"/><code value=\"exception\"/><diagnostics value=\"a&lt;b "
        "&amp; &quot;c&quot; \xEF\xBF\xBD \xEF\xBF\xBD\"/></issue></OperationOutcome>");
    tsg_error err;
    tsg_error_clear(&err);
    tsg_error_set(&err, TSG_EINVAL, "structure", "unexpected '}'");
    snprintf(err.location, sizeof err.location, "%s", "Patient.birthDate");
    http_respond_error(&resp, 400, &err, HTTP_FORMAT_JSON);
    assert_int_equal(resp.status, 400);
    assert_non_null(strstr(resp.body.data, "\"code\":\"structure\""));
    assert_non_null(strstr(resp.body.data, "\"diagnostics\":\"unexpected '}'\""));
    assert_non_null(strstr(resp.body.data, "\"expression\":[\"Patient.birthDate\"]"));
    tsg_buf_free(&resp.body);

    http_format f;
    assert_true(http_format_from_mime("Application/FHIR+JSON; charset=utf-8", 36, &f));
    assert_int_equal(f, HTTP_FORMAT_JSON);
    assert_true(http_format_from_mime("xml", 3, &f));
    assert_int_equal(f, HTTP_FORMAT_XML);
    assert_false(http_format_from_mime("text/html", 9, &f));
    assert_false(http_format_from_mime("application/fhir+turtle", 23, &f));
}

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

static const char *ENV_VARS[] = {"TSUNAGU_CONFIG",
                                 "TSUNAGU_LISTEN",
                                 "TSUNAGU_THREADS",
                                 "TSUNAGU_MAX_CONNECTIONS",
                                 "TSUNAGU_CONNECTION_TIMEOUT",
                                 "TSUNAGU_MAX_BODY_BYTES",
                                 "TSUNAGU_DRAIN_TIMEOUT",
                                 "TSUNAGU_DATA_DIR",
                                 "TSUNAGU_REDIS_URL"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof ENV_VARS / sizeof ENV_VARS[0]; i++) unsetenv(ENV_VARS[i]);
}

static char *write_temp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "%s", "/tmp/tsg_http_cfg_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_config(void **state)
{
    (void)state;
    clear_env();
    http_config cfg;
    tsg_error err;
    assert_int_equal(http_config_load(&cfg, NULL, &err), TSG_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.data_dir, "./var");
    assert_string_equal(cfg.redis_url, "");
    assert_int_equal(cfg.threads, 0);
    assert_int_equal(cfg.max_body_bytes, TSG_LIMIT_BODY_BYTES);

    char *path = write_temp("{\"listen\":\"[::1]:9000\",\"threads\":3,\"max_connections\":50,"
                            "\"connection_timeout_s\":7,\"max_body_bytes\":1000,"
                            "\"drain_timeout_s\":2,\"data_dir\":\"/d\",\"redis_url\":"
                            "\"unix:///tmp/r.sock\"}");
    setenv("TSUNAGU_CONFIG", path, 1);
    assert_int_equal(http_config_load(&cfg, NULL, &err), TSG_OK);
    assert_string_equal(cfg.listen, "[::1]:9000");
    assert_int_equal(cfg.threads, 3);
    assert_int_equal(cfg.max_connections, 50);
    assert_int_equal(cfg.connection_timeout_s, 7);
    assert_int_equal(cfg.max_body_bytes, 1000);
    assert_int_equal(cfg.drain_timeout_s, 2);
    assert_string_equal(cfg.data_dir, "/d");
    assert_string_equal(cfg.redis_url, "unix:///tmp/r.sock");
    /* the environment wins over the file */
    setenv("TSUNAGU_LISTEN", "0.0.0.0:81", 1);
    setenv("TSUNAGU_THREADS", "5", 1);
    setenv("TSUNAGU_MAX_BODY_BYTES", "4096", 1);
    setenv("TSUNAGU_DATA_DIR", "/e", 1);
    assert_int_equal(http_config_load(&cfg, NULL, &err), TSG_OK);
    assert_string_equal(cfg.listen, "0.0.0.0:81");
    assert_int_equal(cfg.threads, 5);
    assert_int_equal(cfg.max_body_bytes, 4096);
    assert_string_equal(cfg.data_dir, "/e");
    assert_int_equal(cfg.max_connections, 50); /* from the file */
    unlink(path);

    /* bad environment values */
    setenv("TSUNAGU_THREADS", "two", 1);
    assert_int_equal(http_config_load(&cfg, "/dev/null/none", &err), TSG_EIO);
    unsetenv("TSUNAGU_CONFIG");
    assert_int_equal(http_config_load(&cfg, NULL, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "TSUNAGU_THREADS"));
    unsetenv("TSUNAGU_THREADS");
    setenv("TSUNAGU_LISTEN", "127.0.0.1", 1);
    assert_int_equal(http_config_load(&cfg, NULL, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "127.0.0.1"));
    clear_env();

    /* bad files: unknown key, wrong type, out of range, not JSON, not an object */
    const char *bad[] = {"{\"listen\":\"127.0.0.1:1\",\"lisen\":\"x\"}",
                         "{\"threads\":\"4\"}",
                         "{\"max_connections\":0}",
                         "{\"max_body_bytes\":-5}",
                         "{listen}",
                         "[1]",
                         "{\"listen\":\"nohost:port\"}",
                         "{\"threads\":1,\"threads\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path = write_temp(bad[i]);
        tsg_error_clear(&err);
        if (http_config_load(&cfg, path, &err) != TSG_EINVAL) fail_msg("accepted: %s", bad[i]);
        assert_true(err.message[0] != '\0');
        unlink(path);
    }
    path = write_temp("{\"lisen\":\"x\"}");
    http_config_load(&cfg, path, &err);
    assert_non_null(strstr(err.message, "unknown key \"lisen\""));
    unlink(path);
}

static void test_listen_parse(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    tsg_error err;
    assert_int_equal(http_listen_parse("127.0.0.1:8080", &ss, &len, &err), TSG_OK);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    assert_int_equal(http_listen_parse("[::1]:0", &ss, &len, &err), TSG_OK);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(http_listen_parse("localhost:80", &ss, &len, &err), TSG_OK);
    assert_int_equal(ss.ss_family, AF_INET);
    const char *bad[] = {
        "",         "8080",      ":8080", "127.0.0.1:", "127.0.0.1:x",    "127.0.0.1:65536",
        "::1:8080", "[::1]8080", "[::1",  "[zz]:1",     "example.com:80", "1.2.3:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsg_error_clear(&err);
        if (http_listen_parse(bad[i], NULL, NULL, &err) != TSG_EINVAL)
            fail_msg("accepted: '%s'", bad[i]);
        assert_non_null(strstr(err.message, "listen address"));
    }
    /* a server refuses a bad address at creation */
    http_config cfg;
    http_config_default(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "%s", "nonsense");
    assert_null(http_server_new(&cfg, &err));
    assert_int_equal(err.rc, TSG_EINVAL);
}

static void test_ipv6_and_port_in_use(void **state)
{
    (void)state;
    http_config cfg;
    http_config_default(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "%s", "[::1]:0");
    cfg.threads = 1;
    tsg_error err;
    http_server *s = http_server_new(&cfg, &err);
    assert_non_null(s);
    if (http_server_start(s, &err) == TSG_OK) {
        uint16_t port = http_server_port(s);
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 a = {0};
        a.sin6_family = AF_INET6;
        a.sin6_port = htons(port);
        a.sin6_addr = in6addr_loopback;
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
        const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        assert_true(send(fd, req, strlen(req), MSG_NOSIGNAL) > 0);
        char buf[512] = {0};
        assert_true(recv(fd, buf, sizeof buf - 1, MSG_WAITALL) > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        close(fd);

        /* a second server on the same port fails with a clear error */
        snprintf(cfg.listen, sizeof cfg.listen, "[::1]:%u", port);
        http_server *s2 = http_server_new(&cfg, &err);
        assert_non_null(s2);
        assert_int_equal(http_server_start(s2, &err), TSG_EIO);
        assert_non_null(strstr(err.message, "cannot listen"));
        http_server_free(s2);
    } else {
        print_message("IPv6 loopback unavailable here: %s\n", err.message);
    }
    http_server_free(s);
}

/* ------------------------------------------------------------------------
 * Signals and draining
 * ------------------------------------------------------------------------ */

typedef struct runner {
    http_server *s;
    int sig;
} runner;

static void *run_thread(void *arg)
{
    runner *r = arg;
    r->sig = http_server_run(r->s);
    return NULL;
}

typedef struct slow_client {
    uint16_t port;
    reply r;
    int rc;
} slow_client;

static void *slow_thread(void *arg)
{
    slow_client *c = arg;
    c->rc = exchange(c->port, "GET", "/slow", "", NULL, 0, &c->r);
    return NULL;
}

static void test_sigterm_drains(void **state)
{
    (void)state;
    /* SIGTERM must reach http_server_run's thread only */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);

    http_server *s = start_server();
    uint16_t port = http_server_port(s);
    runner rn = {s, -1};
    pthread_t rt, ct;
    pthread_create(&rt, NULL, run_thread, &rn);

    slow_client c = {port, {0}, -1};
    pthread_create(&ct, NULL, slow_thread, &c);
    /* wait until the slow request is inside the handler */
    for (int i = 0; i < 200 && http_server_in_flight(s) == 0; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(http_server_in_flight(s), 1);
    kill(getpid(), SIGTERM);
    pthread_join(rt, NULL);
    pthread_join(ct, NULL);
    assert_int_equal(rn.sig, SIGTERM);
    /* the in-flight request completed */
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.r.status, 200);
    assert_string_equal(c.r.body, "slow done");
    reply_free(&c.r);
    assert_int_equal(http_server_in_flight(s), 0);
    /* nothing listens any more */
    assert_int_equal(connect_to(port), -1);
    http_server_stop(s); /* idempotent */
    http_server_free(s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    /* stop by request */
    s = start_server();
    rn.s = s;
    pthread_create(&rt, NULL, run_thread, &rn);
    http_server_request_stop(s);
    pthread_join(rt, NULL);
    assert_int_equal(rn.sig, 0);
    http_server_free(s);
}

int main(void)
{
    const struct CMUnitTest server_tests[] = {
        cmocka_unit_test(test_get_echo),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_healthz_readyz),
        cmocka_unit_test(test_keepalive_and_bad_request),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_chunked_and_absolute_form),
        cmocka_unit_test(test_concurrent_counts),
    };
    const struct CMUnitTest other_tests[] = {
        cmocka_unit_test(test_outcome_escaping), cmocka_unit_test(test_config),
        cmocka_unit_test(test_listen_parse),     cmocka_unit_test(test_ipv6_and_port_in_use),
        cmocka_unit_test(test_sigterm_drains),
    };
    int failed =
        cmocka_run_group_tests_name("http server", server_tests, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("http other", other_tests, NULL, NULL);
    return failed;
}
