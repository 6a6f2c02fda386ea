/*
 * fuzz_http.c — libFuzzer target for the HTTP layer's own parsing (gateway/rest/http.h): the
 * request target (http_parse_target: absolute-form, path, query, %-decoding of the
 * parameters), the path segments (http_parse_segments), and content negotiation
 * (http_negotiate_values: _format, _pretty, Accept; http_negotiate_content_type). libmicrohttpd
 * parses the request line and the header fields; what it hands on is parsed here.
 *
 * The input is cut at its NUL bytes: the request target, the Accept value, the Content-Type
 * value (absent parts are absent). The method is picked by the input's length. Properties:
 *   - each parser answers 0 or one of its documented statuses, with a reason exactly when it
 *     refuses;
 *   - a target that parses started with '/', '?', "*" or http(s):// and has a path that starts with
 * '/' and holds no '?', a query that is the target's text after its first '?', and parameters whose
 * names and values are valid UTF-8 of their stated length (no NUL byte cuts them short); the same
 * for segments, which are never empty and hold no '/' once decoded from a raw segment without
 * "%2F";
 *   - http_url_decode of any text %-encoded byte by byte gives the text back;
 *   - negotiation sets a known format and, for 0, _pretty only from "true".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rest/http.h"
#include "util/util.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_http: broken property: %s\n", what);
        abort();
    }
}

static void text_ok(const char *s, size_t n, const char *what)
{
    check(s != NULL, what);
    check(strlen(s) == n, what);
    check(tsg_utf8_valid_prefix(s, n) == n, what);
}

static void target(const char *t)
{
    tsg_arena *a = tsg_arena_new(0);
    if (!a) return;
    http_request req;
    memset(&req, 0, sizeof req);
    req.arena = a;
    const char *why = NULL;
    int st = http_parse_target(&req, t, &why);
    check(st == 0 || st == 400 || st == 500, "the target parser answers 0, 400 or 500");
    check((st != 0) == (why != NULL), "a reason exactly when the target is refused");
    bool form = !*t || t[0] == '/' || t[0] == '?' || !strcmp(t, "*") ||
                !strncasecmp(t, "http://", 7) || !strncasecmp(t, "https://", 8);
    if (!form) check(st == 400, "a target of no known form is refused with 400");
    if (st == 0) {
        check(req.path && req.path[0] == '/', "a path starts with '/'");
        check(!strchr(req.path, '?'), "a path holds no '?'");
        const char *qm = strchr(t, '?');
        check(!strcmp(req.query, qm ? qm + 1 : ""), "the query is the text after the first '?'");
        for (size_t i = 0; i < req.n_params; i++) {
            text_ok(req.params[i].name, req.params[i].name_len, "a parameter name is UTF-8");
            text_ok(req.params[i].value, req.params[i].value_len, "a parameter value is UTF-8");
        }
        size_t n = strlen(req.path);
        why = NULL;
        st = http_parse_segments(&req, req.path, n, &why);
        check(st == 0 || st == 400 || st == 500, "the segment parser answers 0, 400 or 500");
        check((st != 0) == (why != NULL), "a reason exactly when the path is refused");
        if (st == 0) {
            size_t raw = 0; /* non-empty raw segments */
            for (size_t i = 0; i < n; i++)
                raw += req.path[i] != '/' && (i == 0 || req.path[i - 1] == '/');
            check(req.n_segments == raw, "one segment per non-empty raw segment");
            for (size_t i = 0; i < req.n_segments; i++) {
                size_t l = strlen(req.segments[i]);
                check(l > 0, "a segment is not empty");
                text_ok(req.segments[i], l, "a segment is UTF-8");
            }
            if (!strstr(req.path, "%2F") && !strstr(req.path, "%2f"))
                for (size_t i = 0; i < req.n_segments; i++)
                    check(!strchr(req.segments[i], '/'), "a segment holds no '/'");
        }
    }
    tsg_arena_free(a);
}

/* Every byte of s %-encoded: decoding gives s back when s is UTF-8 without NUL. */
static void round_trip(const char *s, size_t n)
{
    tsg_arena *a = tsg_arena_new(0);
    if (!a) return;
    char *enc = tsg_arena_alloc(a, 3 * n + 1);
    if (enc) {
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            enc[3 * i] = '%';
            enc[3 * i + 1] = hex[c >> 4];
            enc[3 * i + 2] = hex[c & 15];
        }
        enc[3 * n] = '\0';
        size_t len = 0;
        bool bad = false;
        char *d = http_url_decode(a, enc, 3 * n, true, &len, &bad);
        bool valid = tsg_utf8_valid_prefix(s, n) == n && !memchr(s, 0, n);
        if (d) {
            check(valid, "only UTF-8 without NUL decodes");
            check(len == n && !memcmp(d, s, n), "decoding a %-encoded text gives it back");
        } else if (bad) {
            check(!valid, "a UTF-8 text without NUL is not refused");
        }
    }
    tsg_arena_free(a);
}

static void negotiate(const char *accept, const char *ct, size_t size)
{
    static const char *const formats[] = {
        NULL, "json", "xml", "application/fhir+json", "html", "application/fhir xml"};
    static const char *const pretty[] = {NULL, "true", "false", "yes"};
    const char *f = formats[size % 6], *pv = pretty[(size / 6) % 4];
    http_format fmt = (http_format)77;
    bool pr = true;
    const char *why = NULL;
    int st = http_negotiate_values(f, pv, accept, &fmt, &pr, &why);
    check(st == 0 || st == 400 || st == 406, "negotiation answers 0, 400 or 406");
    check((st != 0) == (why != NULL), "a reason exactly when negotiation refuses");
    check(fmt == HTTP_FORMAT_JSON || fmt == HTTP_FORMAT_XML, "a known format is always set");
    if (st == 0) check(pr == (pv && !strcmp(pv, "true")), "_pretty only from \"true\"");
    if (pv && strcmp(pv, "true") && strcmp(pv, "false")) check(st == 400, "bad _pretty is 400");

    static const http_method methods[] = {HTTP_GET, HTTP_POST, HTTP_PUT, HTTP_PATCH};
    why = NULL;
    st = http_negotiate_content_type(methods[size % 4], ct, &fmt, &why);
    check(st == 0 || st == 415, "Content-Type negotiation answers 0 or 415");
    check((st != 0) == (why != NULL), "a reason exactly when a Content-Type is refused");
    check(fmt == HTTP_FORMAT_JSON || fmt == HTTP_FORMAT_XML, "a known body format is set");
    if (!ct) check(st == 415, "no Content-Type is 415");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *part[3] = {copy, NULL, NULL};
    char *p = copy, *end = copy + size;
    for (int i = 1; i < 3 && p < end; i++) {
        p += strlen(p) + 1;
        if (p <= end) part[i] = p;
    }
    target(part[0]);
    round_trip((const char *)data, size);
    negotiate(part[1], part[2], size);
    free(copy);
    return 0;
}
