/*
 * http_negotiate.c — FHIR content negotiation (_format, Accept, Content-Type,
 * _pretty) and the OperationOutcome writer of the HTTP layer.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

static bool ascii_ws(char c)
{
    return c == ' ' || c == '\t';
}

static bool span_ieq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && strncasecmp(s, lit, m) == 0;
}

/* Trims blanks around s[0..*n). */
static const char *trim(const char *s, size_t *n)
{
    while (*n > 0 && ascii_ws(*s)) s++, (*n)--;
    while (*n > 0 && ascii_ws(s[*n - 1])) (*n)--;
    return s;
}

const char *http_format_content_type(http_format fmt)
{
    return fmt == HTTP_FORMAT_XML ? HTTP_CT_FHIR_XML : HTTP_CT_FHIR_JSON;
}

bool http_format_from_mime(const char *s, size_t n, http_format *fmt)
{
    const char *semi = memchr(s, ';', n);
    if (semi) n = (size_t)(semi - s);
    s = trim(s, &n);
    static const char *const json[] = {"json", "application/fhir+json", "application/json",
                                       "text/json", "application/json+fhir"};
    static const char *const xml[] = {"xml", "application/fhir+xml", "application/xml", "text/xml",
                                      "application/xml+fhir"};
    for (size_t i = 0; i < sizeof json / sizeof json[0]; i++) {
        if (span_ieq(s, n, json[i])) {
            *fmt = HTTP_FORMAT_JSON;
            return true;
        }
    }
    for (size_t i = 0; i < sizeof xml / sizeof xml[0]; i++) {
        if (span_ieq(s, n, xml[i])) {
            *fmt = HTTP_FORMAT_XML;
            return true;
        }
    }
    return false;
}

/* The q parameter of one Accept item's parameters text; 1000 = q=1, -1 = malformed. */
static int accept_q(const char *p, size_t n)
{
    while (n > 0) {
        const char *semi = memchr(p, ';', n);
        size_t len = semi ? (size_t)(semi - p) : n;
        size_t tl = len;
        const char *t = trim(p, &tl);
        if (tl >= 2 && (t[0] == 'q' || t[0] == 'Q') && t[1] == '=') {
            /* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
            const char *v = t + 2;
            size_t vl = tl - 2;
            if (vl == 0 || (v[0] != '0' && v[0] != '1')) return -1;
            int q = (v[0] - '0') * 1000;
            if (vl > 1) {
                if (v[1] != '.' || vl > 5) return -1;
                int scale = 100;
                for (size_t i = 2; i < vl; i++, scale /= 10) {
                    if (v[i] < '0' || v[i] > '9') return -1;
                    q += (v[i] - '0') * scale;
                }
            }
            return q > 1000 ? -1 : q;
        }
        if (!semi) break;
        n -= len + 1;
        p = semi + 1;
    }
    return 1000;
}

int http_negotiate_response(const http_request *req, http_format *fmt, bool *pretty,
                            const char **why)
{
    /* (Accept is looked up only when there is no _format) */
    const char *f = http_param_get(req, "_format");
    return http_negotiate_values(f, http_param_get(req, "_pretty"),
                                 f ? NULL : http_header(req, "Accept"), fmt, pretty, why);
}

int http_negotiate_values(const char *f, const char *pv, const char *accept, http_format *fmt,
                          bool *pretty, const char **why)
{
    *fmt = HTTP_FORMAT_JSON;
    *pretty = false;
    *why = NULL;

    if (pv) {
        if (strcmp(pv, "true") == 0) {
            *pretty = true;
        } else if (strcmp(pv, "false") != 0) {
            *why = "_pretty must be true or false";
            return 400;
        }
    }

    if (f) {
        /* An unencoded '+' in the query decodes to a space:
           `_format=application/fhir+json` arrives as "application/fhir json". */
        char tmp[64];
        size_t n = strlen(f);
        if (n >= sizeof tmp) {
            *why = "_format names an unsupported format (supported: json, xml)";
            return 406;
        }
        for (size_t i = 0; i < n; i++) tmp[i] = f[i] == ' ' ? '+' : f[i];
        if (!http_format_from_mime(tmp, n, fmt)) {
            *fmt = HTTP_FORMAT_JSON;
            *why = "_format names an unsupported format (supported: json, xml)";
            return 406;
        }
        return 0;
    }

    if (!accept) return 0;
    size_t alen = strlen(accept);
    {
        size_t tl = alen;
        trim(accept, &tl);
        if (tl == 0) return 0;
    }
    int best_q = 0;
    http_format best = HTTP_FORMAT_JSON;
    const char *p = accept;
    size_t n = alen;
    while (n > 0) {
        const char *comma = memchr(p, ',', n);
        size_t len = comma ? (size_t)(comma - p) : n;
        const char *semi = memchr(p, ';', len);
        size_t tl = semi ? (size_t)(semi - p) : len;
        const char *t = trim(p, &tl);
        int q = semi ? accept_q(semi + 1, len - (size_t)(semi - p) - 1) : 1000;
        http_format f2 = HTTP_FORMAT_JSON;
        bool ok = false;
        if (tl > 0 && q > 0) {
            if (span_ieq(t, tl, "*/*") || span_ieq(t, tl, "application/*")) {
                ok = true;
            } else if (span_ieq(t, tl, "text/*")) {
                ok = true;
                f2 = HTTP_FORMAT_XML;        /* text/xml is the only text type we write */
            } else if (memchr(t, '/', tl)) { /* short names are for _format only */
                ok = http_format_from_mime(t, tl, &f2);
            }
        }
        if (ok && (q > best_q || (q == best_q && f2 == HTTP_FORMAT_JSON))) {
            best_q = q;
            best = f2;
        }
        if (!comma) break;
        n -= len + 1;
        p = comma + 1;
    }
    if (best_q == 0) {
        *why = "none of the media types in Accept is supported (application/fhir+json, "
               "application/fhir+xml)";
        return 406;
    }
    *fmt = best;
    return 0;
}

int http_negotiate_body(const http_request *req, http_format *fmt, const char **why)
{
    return http_negotiate_content_type(req->method, http_header(req, "Content-Type"), fmt, why);
}

int http_negotiate_content_type(http_method method, const char *ct, http_format *fmt,
                                const char **why)
{
    *fmt = HTTP_FORMAT_JSON;
    *why = NULL;
    if (!ct) {
        *why = "the request has a body but no Content-Type (use application/fhir+json or "
               "application/fhir+xml)";
        return 415;
    }
    size_t n = strlen(ct);
    /* two bodies that are not FHIR resources pass through to the handler,
     * which reads them itself: a JSON Patch, and a search's form body */
    if (method == HTTP_PATCH && !strncasecmp(ct, "application/json-patch+json", 27)) return 0;
    if (method == HTTP_POST && !strncasecmp(ct, "application/x-www-form-urlencoded", 33)) return 0;
    if (!http_format_from_mime(ct, n, fmt)) {
        *why = "unsupported Content-Type (use application/fhir+json or application/fhir+xml)";
        return 415;
    }
    /* parameters: only charset=utf-8 (any case, optionally quoted) is acceptable */
    const char *p = memchr(ct, ';', n);
    while (p) {
        p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t tl = len;
        const char *t = trim(p, &tl);
        if (tl > 8 && strncasecmp(t, "charset=", 8) == 0) {
            const char *v = t + 8;
            size_t vl = tl - 8;
            if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') v++, vl -= 2;
            if (!span_ieq(v, vl, "utf-8") && !span_ieq(v, vl, "utf8")) {
                *why = "unsupported charset in Content-Type (only utf-8)";
                return 415;
            }
        }
        p = end;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Escaping
 * ------------------------------------------------------------------------ */

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

void http_json_escape(tsg_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') {
                tsg_buf_putc(b, '\\');
                tsg_buf_putc(b, (char)c);
            } else if (c == '\n') {
                tsg_buf_puts(b, "\\n");
            } else if (c == '\r') {
                tsg_buf_puts(b, "\\r");
            } else if (c == '\t') {
                tsg_buf_puts(b, "\\t");
            } else if (c < 0x20 || c == 0x7f) {
                tsg_buf_printf(b, "\\u%04x", c);
            } else {
                tsg_buf_putc(b, (char)c);
            }
            i++;
            continue;
        }
        uint32_t cp;
        int len = tsg_utf8_decode(s + i, n - i, &cp);
        if (len <= 0) {
            tsg_buf_puts(b, REPLACEMENT);
            i++;
        } else {
            tsg_buf_append(b, s + i, (size_t)len);
            i += (size_t)len;
        }
    }
}

void http_xml_escape(tsg_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            switch (c) {
            case '&':
                tsg_buf_puts(b, "&amp;");
                break;
            case '<':
                tsg_buf_puts(b, "&lt;");
                break;
            case '>':
                tsg_buf_puts(b, "&gt;");
                break;
            case '"':
                tsg_buf_puts(b, "&quot;");
                break;
            case '\'':
                tsg_buf_puts(b, "&apos;");
                break;
            case '\n':
                tsg_buf_puts(b, "&#10;");
                break;
            case '\r':
                tsg_buf_puts(b, "&#13;");
                break;
            case '\t':
                tsg_buf_puts(b, "&#9;");
                break;
            default:
                if (c < 0x20)
                    tsg_buf_puts(b, REPLACEMENT); /* not allowed in XML 1.0 */
                else
                    tsg_buf_putc(b, (char)c);
            }
            i++;
            continue;
        }
        uint32_t cp;
        int len = tsg_utf8_decode(s + i, n - i, &cp);
        if (len <= 0 || cp == 0xFFFE || cp == 0xFFFF) {
            tsg_buf_puts(b, REPLACEMENT);
            i += len <= 0 ? 1 : (size_t)len;
        } else {
            tsg_buf_append(b, s + i, (size_t)len);
            i += (size_t)len;
        }
    }
}

/* ------------------------------------------------------------------------
 * OperationOutcome
 * ------------------------------------------------------------------------ */

static void outcome_json(tsg_buf *b, const char *severity, const char *code,
                         const char *diagnostics, const char *location)
{
    tsg_buf_puts(b, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"");
    http_json_escape(b, severity, strlen(severity));
    tsg_buf_puts(b, "\",\"code\":\"");
    http_json_escape(b, code, strlen(code));
    tsg_buf_putc(b, '"');
    if (diagnostics && *diagnostics) {
        tsg_buf_puts(b, ",\"diagnostics\":\"");
        http_json_escape(b, diagnostics, strlen(diagnostics));
        tsg_buf_putc(b, '"');
    }
    if (location && *location) {
        tsg_buf_puts(b, ",\"expression\":[\"");
        http_json_escape(b, location, strlen(location));
        tsg_buf_puts(b, "\"]");
    }
    tsg_buf_puts(b, "}]}");
}

static void outcome_xml(tsg_buf *b, const char *severity, const char *code, const char *diagnostics,
                        const char *location)
{
    tsg_buf_puts(b, "<OperationOutcome xmlns=\"http://hl7.org/fhir\"><issue><severity value=\"");
    http_xml_escape(b, severity, strlen(severity));
    tsg_buf_puts(b, "\"/><code value=\"");
    http_xml_escape(b, code, strlen(code));
    tsg_buf_puts(b, "\"/>");
    if (diagnostics && *diagnostics) {
        tsg_buf_puts(b, "<diagnostics value=\"");
        http_xml_escape(b, diagnostics, strlen(diagnostics));
        tsg_buf_puts(b, "\"/>");
    }
    if (location && *location) {
        tsg_buf_puts(b, "<expression value=\"");
        http_xml_escape(b, location, strlen(location));
        tsg_buf_puts(b, "\"/>");
    }
    tsg_buf_puts(b, "</issue></OperationOutcome>");
}

void http_respond_outcome(http_response *resp, int status, const char *severity, const char *code,
                          const char *diagnostics, const char *location, http_format fmt)
{
    if (!severity || !*severity) severity = "error";
    if (!code || !*code) code = "exception";
    resp->status = status;
    resp->content_type = http_format_content_type(fmt);
    tsg_buf_free(&resp->body);
    tsg_buf_init(&resp->body, 0);
    if (fmt == HTTP_FORMAT_XML)
        outcome_xml(&resp->body, severity, code, diagnostics, location);
    else
        outcome_json(&resp->body, severity, code, diagnostics, location);
    if (tsg_buf_rc(&resp->body) != TSG_OK) {
        tsg_buf_free(&resp->body);
        tsg_buf_init(&resp->body, 0);
        if (fmt == HTTP_FORMAT_XML)
            outcome_xml(&resp->body, "error", "exception", NULL, NULL);
        else
            outcome_json(&resp->body, "error", "exception", NULL, NULL);
    }
}

void http_respond_error(http_response *resp, int status, const tsg_error *err, http_format fmt)
{
    const char *code = err && err->code ? err->code : tsg_rc_code(err ? err->rc : TSG_EINTERNAL);
    const char *msg = err && err->message[0] ? err->message : tsg_rc_name(err ? err->rc : 0);
    const char *loc = err && err->location[0] ? err->location : NULL;
    http_respond_outcome(resp, status, "error", code, msg, loc, fmt);
}
