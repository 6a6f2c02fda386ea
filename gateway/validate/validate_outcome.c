/*
 * validate_outcome.c — the issue collector of a validation and its
 * OperationOutcome (validate.h).
 */
#include <stdio.h>
#include <string.h>

#include "validate.h"

const char *validate_severity_name(validate_severity sev)
{
    switch (sev) {
    case VALIDATE_FATAL:
        return "fatal";
    case VALIDATE_ERROR:
        return "error";
    case VALIDATE_WARNING:
        return "warning";
    default:
        return "information";
    }
}

void validate_result_init(validate_result *r, tsg_arena *a)
{
    memset(r, 0, sizeof *r);
    r->arena = a;
}

/* Copies s (NULL: "") into the result's arena; NULL when out of memory. */
static const char *keep(validate_result *r, const char *s)
{
    if (!s) s = "";
    return tsg_arena_strndup(r->arena, s, strlen(s));
}

void validate_result_add_at(validate_result *r, validate_severity sev, const char *code,
                            const char *expression, const char *message, unsigned line,
                            unsigned column)
{
    if ((unsigned)sev > VALIDATE_INFORMATION) sev = VALIDATE_INFORMATION;
    r->counts[sev]++;
    if (r->count >= VALIDATE_MAX_ISSUES) {
        r->dropped++;
        return;
    }
    if (r->count == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        validate_issue *n = tsg_arena_alloc(r->arena, ncap * sizeof *n);
        if (!n) {
            r->dropped++;
            return;
        }
        if (r->count) memcpy(n, r->items, r->count * sizeof *n);
        r->items = n;
        r->cap = ncap;
    }
    validate_issue *it = &r->items[r->count];
    it->severity = sev;
    it->code = keep(r, code);
    it->expression = keep(r, expression);
    it->message = keep(r, message);
    it->line = line;
    it->column = column;
    if (!it->code || !it->expression || !it->message) {
        r->dropped++;
        return;
    }
    r->count++;
}

void validate_result_add(void *ctx, validate_severity sev, const char *code, const char *expression,
                         const char *message)
{
    validate_result_add_at(ctx, sev, code, expression, message, 0, 0);
}

int validate_result_failed(const validate_result *r)
{
    return r->counts[VALIDATE_FATAL] + r->counts[VALIDATE_ERROR] > 0;
}

/* Appends s as a JSON string (quotes included). Bytes that are not valid
 * UTF-8 (a message cut inside a character, say) become U+FFFD, so the outcome
 * is always valid FHIR JSON. */
static void json_str(tsg_buf *b, const char *s)
{
    tsg_buf_putc(b, '"');
    size_t n = strlen(s);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c >= 0x80) {
            uint32_t cp;
            int l = tsg_utf8_decode((const char *)p, n - (size_t)((const char *)p - s), &cp);
            if (l > 0) {
                tsg_buf_append(b, p, (size_t)l);
                p += l - 1;
            } else {
                tsg_buf_puts(b, "\xEF\xBF\xBD");
            }
            continue;
        }
        if (c == '"' || c == '\\') {
            tsg_buf_putc(b, '\\');
            tsg_buf_putc(b, (char)c);
        } else if (c == '\n') {
            tsg_buf_puts(b, "\\n");
        } else if (c == '\r') {
            tsg_buf_puts(b, "\\r");
        } else if (c == '\t') {
            tsg_buf_puts(b, "\\t");
        } else if (c < 0x20) {
            tsg_buf_printf(b, "\\u%04x", c);
        } else {
            tsg_buf_putc(b, (char)c);
        }
    }
    tsg_buf_putc(b, '"');
}

/* One issue as a JSON object. */
static void write_issue(tsg_buf *b, const validate_issue *it, const char *nl, const char *in)
{
    /* in the element order of OperationOutcome.issue: extension, severity, code,
     * details, expression */
    tsg_buf_printf(b, "{%s%s  ", nl, in);
    if (it->line) {
        tsg_buf_printf(b,
                       "\"extension\": [{\"url\": "
                       "\"http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line\", "
                       "\"valueInteger\": %u}",
                       it->line);
        if (it->column)
            tsg_buf_printf(
                b,
                ", {\"url\": "
                "\"http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col\", "
                "\"valueInteger\": %u}",
                it->column);
        tsg_buf_printf(b, "],%s%s  ", nl, in);
    }
    tsg_buf_puts(b, "\"severity\": ");
    json_str(b, validate_severity_name(it->severity));
    tsg_buf_printf(b, ",%s%s  \"code\": ", nl, in);
    json_str(b, it->code);
    tsg_buf_printf(b, ",%s%s  \"details\": {\"text\": ", nl, in);
    json_str(b, it->message);
    tsg_buf_putc(b, '}');
    if (it->expression[0]) {
        tsg_buf_printf(b, ",%s%s  \"expression\": [", nl, in);
        json_str(b, it->expression);
        tsg_buf_putc(b, ']');
    }
    tsg_buf_printf(b, "%s%s}", nl, in);
}

tsg_rc validate_outcome_json(const validate_result *r, tsg_buf *out, unsigned flags)
{
    int pretty = (flags & FHIR_WRITE_PRETTY) != 0;
    const char *nl = pretty ? "\n" : "";
    const char *in = pretty ? "    " : "";
    tsg_buf_printf(out, "{%s%s\"resourceType\": \"OperationOutcome\",%s%s\"issue\": [", nl,
                   pretty ? "  " : "", nl, pretty ? "  " : "");
    size_t n = 0;
    for (size_t i = 0; i < r->count; i++, n++) {
        if (n) tsg_buf_putc(out, ',');
        tsg_buf_printf(out, "%s%s", nl, in);
        write_issue(out, &r->items[i], nl, in);
    }
    if (r->dropped) {
        char msg[160];
        snprintf(msg, sizeof msg, "%zu more issues were found but not listed (at most %u are)",
                 r->dropped, VALIDATE_MAX_ISSUES);
        validate_issue it = {VALIDATE_WARNING, "too-costly", "", msg, 0, 0};
        if (n) tsg_buf_putc(out, ',');
        tsg_buf_printf(out, "%s%s", nl, in);
        write_issue(out, &it, nl, in);
        n++;
    }
    if (!n) {
        validate_issue it = {
            VALIDATE_INFORMATION, "informational", "", "Validation passed: no issues found", 0, 0};
        tsg_buf_printf(out, "%s%s", nl, in);
        write_issue(out, &it, nl, in);
    }
    tsg_buf_printf(out, "%s%s]%s}", nl, pretty ? "  " : "", nl);
    return tsg_buf_rc(out);
}
