/*
 * json_compare.c — JSON comparison for the conformance test.
 *
 * jansson cannot be the reference here: it turns `1.50` into 1.5. So the
 * values are read by the small recursive-descent parser below, which keeps
 * each number's text exactly as written and unescapes strings; it shares no
 * code with gateway/model/json_read.c. jansson is used as a second opinion
 * on strictness (cmp_json_strict) and, in the self-test, to cross-check this
 * parser on the corpus (cmp_json_crosscheck_jansson).
 *
 * Sections: decimals · the value parser · structural comparison · byte
 * comparison · jansson.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "util/util.h"

void cmp_diff_clear(cmp_diff *d)
{
    d->path[0] = d->kind[0] = d->what[0] = d->context[0] = '\0';
}

static void set_str(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_str(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

int cmp_path_fmt(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= cap) {
        if (cap) out[0] = '\0';
        return -1;
    }
    return 0;
}

/* ========================================================================
 * Decimals
 * ======================================================================== */

/*
 * Reduces a decimal text to its value: sign, significant digits without
 * leading or trailing zeros, and the exponent E such that the value is
 * 0.DIGITS × 10^E. Zero has no digits and no sign. Returns 0 on success, -1
 * when the text is not `-?digits(.digits)?([eE][+-]?digits)?` (leading zeros
 * are tolerated: XML spells values freely). *digits points into a malloc'd
 * buffer the caller frees.
 */
static int decimal_reduce(const char *s, size_t n, int *neg, char **digits, size_t *ndigits,
                          long long *exp10)
{
    size_t i = 0;
    *neg = 0;
    *digits = NULL;
    *ndigits = 0;
    *exp10 = 0;
    if (i < n && s[i] == '-') {
        *neg = 1;
        i++;
    }
    size_t int_start = i;
    while (i < n && isdigit((unsigned char)s[i])) i++;
    size_t int_len = i - int_start;
    size_t frac_start = i, frac_len = 0;
    if (i < n && s[i] == '.') {
        frac_start = ++i;
        while (i < n && isdigit((unsigned char)s[i])) i++;
        frac_len = i - frac_start;
        if (frac_len == 0) return -1;
    }
    if (int_len == 0) return -1;
    long long e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        size_t e_start = i;
        while (i < n && isdigit((unsigned char)s[i])) {
            if (e > 100000000000LL)
                return -1; /* absurd exponent: not a value we can reason about */
            e = e * 10 + (s[i] - '0');
            i++;
        }
        if (i == e_start) return -1;
        if (eneg) e = -e;
    }
    if (i != n) return -1;

    char *buf = malloc(int_len + frac_len + 1);
    if (!buf) return -1;
    memcpy(buf, s + int_start, int_len);
    memcpy(buf + int_len, s + frac_start, frac_len);
    size_t total = int_len + frac_len, first = 0;
    while (first < total && buf[first] == '0') first++;
    size_t last = total;
    while (last > first && buf[last - 1] == '0') last--;
    if (first == last) { /* zero */
        *neg = 0;
        *digits = buf;
        return 0;
    }
    *exp10 = (long long)int_len - (long long)first + e;
    memmove(buf, buf + first, last - first);
    *digits = buf;
    *ndigits = last - first;
    return 0;
}

int cmp_decimal_equal(const char *a, size_t na, const char *b, size_t nb)
{
    int nega, negb;
    char *da, *db;
    size_t nda, ndb;
    long long ea, eb;
    if (decimal_reduce(a, na, &nega, &da, &nda, &ea) != 0) return -1;
    if (decimal_reduce(b, nb, &negb, &db, &ndb, &eb) != 0) {
        free(da);
        return -1;
    }
    int eq = nega == negb && nda == ndb && ea == eb && memcmp(da, db, nda) == 0;
    free(da);
    free(db);
    return eq;
}

/* ========================================================================
 * The value parser
 * ======================================================================== */

#define CJ_MAX_DEPTH 512

typedef struct cj_parser {
    const char *s;
    size_t n;
    size_t p;
    tsg_arena *a;
    char *err;
    size_t errcap;
} cj_parser;

void cj_linecol(const char *s, size_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)s[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int cj_fail(cj_parser *ps, const char *msg)
{
    unsigned line, col;
    cj_linecol(ps->s, ps->p < ps->n ? ps->p : ps->n, &line, &col);
    set_str(ps->err, ps->errcap, "line %u column %u: %s", line, col, msg);
    return -1;
}

static void cj_skip_ws(cj_parser *ps)
{
    while (ps->p < ps->n) {
        char c = ps->s[ps->p];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ps->p++;
    }
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Reads a string token at ps->p ('"'); the unescaped bytes go to the arena. */
static int cj_string(cj_parser *ps, const char **out, size_t *outlen)
{
    size_t start = ++ps->p, end = start;
    while (end < ps->n && ps->s[end] != '"') {
        if ((unsigned char)ps->s[end] < 0x20) {
            ps->p = end;
            return cj_fail(ps, "control character in string");
        }
        end += ps->s[end] == '\\' ? 2 : 1;
    }
    if (end >= ps->n) {
        ps->p = start - 1;
        return cj_fail(ps, "unterminated string");
    }
    size_t raw = end - start;
    if (tsg_utf8_valid_prefix(ps->s + start, raw) != raw) {
        ps->p = start + tsg_utf8_valid_prefix(ps->s + start, raw);
        return cj_fail(ps, "invalid UTF-8 in string");
    }
    char *buf = tsg_arena_alloc(ps->a, raw + 1);
    if (!buf) return cj_fail(ps, "out of memory");
    size_t o = 0;
    for (size_t i = start; i < end;) {
        char c = ps->s[i];
        if (c != '\\') {
            buf[o++] = c;
            i++;
            continue;
        }
        char e = ps->s[i + 1];
        i += 2;
        switch (e) {
        case '"':
            buf[o++] = '"';
            break;
        case '\\':
            buf[o++] = '\\';
            break;
        case '/':
            buf[o++] = '/';
            break;
        case 'b':
            buf[o++] = '\b';
            break;
        case 'f':
            buf[o++] = '\f';
            break;
        case 'n':
            buf[o++] = '\n';
            break;
        case 'r':
            buf[o++] = '\r';
            break;
        case 't':
            buf[o++] = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (i + 4 > end || hex4(ps->s + i, &cp) != 0) {
                ps->p = i;
                return cj_fail(ps, "bad \\u escape");
            }
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                ps->p = i;
                return cj_fail(ps, "lone low surrogate");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 6 > end || ps->s[i] != '\\' || ps->s[i + 1] != 'u' ||
                    hex4(ps->s + i + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    ps->p = i;
                    return cj_fail(ps, "lone high surrogate");
                }
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += (size_t)tsg_utf8_encode(cp, buf + o);
            break;
        }
        default:
            ps->p = i - 2;
            return cj_fail(ps, "bad escape");
        }
    }
    buf[o] = '\0';
    ps->p = end + 1;
    *out = buf;
    *outlen = o;
    return 0;
}

/* Reads a number token per RFC 8259, keeping its text. */
static int cj_number(cj_parser *ps, cj_value *v)
{
    const char *s = ps->s;
    size_t i = ps->p, n = ps->n;
    if (i < n && s[i] == '-') i++;
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && isdigit((unsigned char)s[i])) i++;
    } else {
        ps->p = i;
        return cj_fail(ps, "bad number");
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !isdigit((unsigned char)s[i])) {
            ps->p = i;
            return cj_fail(ps, "bad number: digit expected after '.'");
        }
        while (i < n && isdigit((unsigned char)s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !isdigit((unsigned char)s[i])) {
            ps->p = i;
            return cj_fail(ps, "bad number: digit expected in exponent");
        }
        while (i < n && isdigit((unsigned char)s[i])) i++;
    }
    v->kind = CJ_NUMBER;
    v->s = s + ps->p;
    v->len = i - ps->p;
    ps->p = i;
    return 0;
}

/* A growable list of pointers used while a container is being read. */
typedef struct ptrvec {
    void **p;
    size_t n, cap;
} ptrvec;

static int ptrvec_push(ptrvec *v, void *x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void **np = realloc(v->p, cap * sizeof *np);
        if (!np) return -1;
        v->p = np;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return 0;
}

static void **ptrvec_to_arena(tsg_arena *a, const ptrvec *v)
{
    void **out = tsg_arena_alloc(a, (v->n ? v->n : 1) * sizeof *out);
    if (out && v->n) memcpy(out, v->p, v->n * sizeof *out);
    return out;
}

static int cj_value_at(cj_parser *ps, cj_value **out, unsigned depth);

static int cj_container(cj_parser *ps, cj_value *v, unsigned depth)
{
    int is_obj = ps->s[ps->p] == '{';
    char close = is_obj ? '}' : ']';
    ptrvec vals = {0}, keys = {0}, klens = {0};
    int rc = 0;
    if (depth >= CJ_MAX_DEPTH) return cj_fail(ps, "nesting too deep");
    ps->p++;
    cj_skip_ws(ps);
    if (ps->p < ps->n && ps->s[ps->p] == close) {
        ps->p++;
    } else {
        for (;;) {
            cj_skip_ws(ps);
            if (is_obj) {
                const char *k;
                size_t kl;
                if (ps->p >= ps->n || ps->s[ps->p] != '"') {
                    rc = cj_fail(ps, "object key expected");
                    break;
                }
                size_t key_at = ps->p;
                if ((rc = cj_string(ps, &k, &kl)) != 0) break;
                for (size_t i = 0; i < keys.n; i++) {
                    if ((size_t)klens.p[i] == kl && memcmp(keys.p[i], k, kl) == 0) {
                        ps->p = key_at;
                        rc = cj_fail(ps, "duplicate key");
                        break;
                    }
                }
                if (rc) break;
                if (ptrvec_push(&keys, (void *)k) || ptrvec_push(&klens, (void *)(uintptr_t)kl)) {
                    rc = cj_fail(ps, "out of memory");
                    break;
                }
                cj_skip_ws(ps);
                if (ps->p >= ps->n || ps->s[ps->p] != ':') {
                    rc = cj_fail(ps, "':' expected");
                    break;
                }
                ps->p++;
            }
            cj_value *item;
            if ((rc = cj_value_at(ps, &item, depth + 1)) != 0) break;
            if (ptrvec_push(&vals, item)) {
                rc = cj_fail(ps, "out of memory");
                break;
            }
            cj_skip_ws(ps);
            if (ps->p < ps->n && ps->s[ps->p] == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->n && ps->s[ps->p] == close) {
                ps->p++;
                break;
            }
            rc = cj_fail(ps, is_obj ? "',' or '}' expected" : "',' or ']' expected");
            break;
        }
    }
    if (rc == 0) {
        v->kind = is_obj ? CJ_OBJECT : CJ_ARRAY;
        v->n = vals.n;
        v->v = (cj_value **)ptrvec_to_arena(ps->a, &vals);
        if (is_obj) {
            v->k = (const char **)ptrvec_to_arena(ps->a, &keys);
            v->klen = tsg_arena_alloc(ps->a, (keys.n ? keys.n : 1) * sizeof(size_t));
            if (v->klen)
                for (size_t i = 0; i < keys.n; i++) v->klen[i] = (size_t)(uintptr_t)klens.p[i];
        }
        if (!v->v || (is_obj && (!v->k || !v->klen))) rc = cj_fail(ps, "out of memory");
    }
    free(vals.p);
    free(keys.p);
    free(klens.p);
    return rc;
}

static int cj_literal(cj_parser *ps, const char *word, cj_kind kind, cj_value *v)
{
    size_t len = strlen(word);
    if (ps->n - ps->p < len || memcmp(ps->s + ps->p, word, len) != 0)
        return cj_fail(ps, "unexpected character");
    ps->p += len;
    v->kind = kind;
    return 0;
}

static int cj_value_at(cj_parser *ps, cj_value **out, unsigned depth)
{
    cj_skip_ws(ps);
    if (ps->p >= ps->n) return cj_fail(ps, "value expected, end of text found");
    cj_value *v = tsg_arena_zalloc(ps->a, sizeof *v);
    if (!v) return cj_fail(ps, "out of memory");
    v->off = ps->p;
    int rc;
    switch (ps->s[ps->p]) {
    case '{':
    case '[':
        rc = cj_container(ps, v, depth);
        break;
    case '"':
        v->kind = CJ_STRING;
        rc = cj_string(ps, &v->s, &v->len);
        break;
    case 't':
        rc = cj_literal(ps, "true", CJ_TRUE, v);
        break;
    case 'f':
        rc = cj_literal(ps, "false", CJ_FALSE, v);
        break;
    case 'n':
        rc = cj_literal(ps, "null", CJ_NULL, v);
        break;
    default:
        rc = cj_number(ps, v);
        break;
    }
    v->end = ps->p;
    *out = v;
    return rc;
}

int cj_parse(tsg_arena *a, const char *text, size_t n, cj_value **out, char *err, size_t errcap)
{
    cj_parser ps = {.s = text, .n = n, .p = 0, .a = a, .err = err, .errcap = errcap};
    *out = NULL;
    if (cj_value_at(&ps, out, 0) != 0) return -1;
    cj_skip_ws(&ps);
    if (ps.p != n) return cj_fail(&ps, "text after the value");
    return 0;
}

const char *cj_kind_name(cj_kind k)
{
    static const char *names[] = {"null", "false", "true", "number", "string", "array", "object"};
    return names[k];
}

/* ========================================================================
 * Structural comparison
 * ======================================================================== */

void cmp_quote(const char *s, size_t n, size_t max, char *out, size_t cap)
{
    size_t o = 0;
    if (cap < 16) {
        if (cap) out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (i >= max || o + 10 >= cap) {
            /* step back to a UTF-8 boundary before the ellipsis */
            while (o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0x80) o--;
            if (o > 1 && ((unsigned char)out[o - 1] & 0x80)) o--;
            memcpy(out + o, "…", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\t' || c == '\r' || c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : c == '\r' ? 'r' : (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* Writes a short, printable form of v (strings quoted and cut at max bytes). */
static void cj_repr(const cj_value *v, char *out, size_t cap, size_t max)
{
    switch (v->kind) {
    case CJ_NULL:
    case CJ_FALSE:
    case CJ_TRUE:
        set_str(out, cap, "%s", cj_kind_name(v->kind));
        break;
    case CJ_NUMBER:
        set_str(out, cap, "%.*s", (int)(v->len < max ? v->len : max), v->s);
        break;
    case CJ_ARRAY:
        set_str(out, cap, "[…] (%zu items)", v->n);
        break;
    case CJ_OBJECT:
        set_str(out, cap, "{…} (%zu properties)", v->n);
        break;
    case CJ_STRING:
        cmp_quote(v->s, v->len, max, out, cap);
        break;
    }
}

/* Appends to path (its length is *plen); returns the old length to restore. */
static size_t path_push(char *path, size_t *plen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t path_push(char *path, size_t *plen, const char *fmt, ...)
{
    size_t old = *plen;
    va_list ap;
    va_start(ap, fmt);
    if (old < CMP_PATH_MAX) {
        int w = vsnprintf(path + old, CMP_PATH_MAX - old, fmt, ap);
        if (w > 0) *plen = old + (size_t)w < CMP_PATH_MAX ? old + (size_t)w : CMP_PATH_MAX - 1;
    }
    va_end(ap);
    return old;
}

static void path_pop(char *path, size_t *plen, size_t old)
{
    *plen = old;
    path[old] = '\0';
}

static int cj_differ(cmp_diff *d, const char *path, const char *kind, const cj_value *a,
                     const cj_value *b)
{
    char ra[512], rb[512];
    set_str(d->path, sizeof d->path, "%s", path);
    set_str(d->kind, sizeof d->kind, "%s", kind);
    if (a && b) {
        cj_repr(a, ra, sizeof ra, 120);
        cj_repr(b, rb, sizeof rb, 120);
        set_str(d->what, sizeof d->what, "%s: official %s, ours %s", kind, ra, rb);
        cj_repr(a, ra, sizeof ra, 400);
        cj_repr(b, rb, sizeof rb, 400);
        set_str(d->context, sizeof d->context, "official: %s\n    ours:     %s", ra, rb);
    } else {
        cj_repr(a ? a : b, ra, sizeof ra, 120);
        set_str(d->what, sizeof d->what, "%s (%s)", kind, ra);
    }
    return CMP_DIFFERENT;
}

static int cj_find_key(const cj_value *o, const char *k, size_t kl)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->klen[i] == kl && memcmp(o->k[i], k, kl) == 0) return (int)i;
    return -1;
}

static int cj_equal(const cj_value *a, const cj_value *b, unsigned flags, const char *key,
                    char *path, size_t *plen, cmp_diff *d)
{
    if (key && strcmp(key, "div") == 0 && a->kind == CJ_STRING && b->kind == CJ_STRING) {
        if (a->len == b->len && memcmp(a->s, b->s, a->len) == 0) return CMP_EQUAL;
        int rc = cmp_xhtml_strings(a->s, a->len, b->s, b->len, path, d);
        return rc == CMP_EQUAL ? CMP_EQUAL : CMP_DIFFERENT;
    }
    if (a->kind != b->kind) {
        char kind[64];
        set_str(kind, sizeof kind, "type differs (%s vs %s)", cj_kind_name(a->kind),
                cj_kind_name(b->kind));
        if ((a->kind == CJ_TRUE || a->kind == CJ_FALSE) &&
            (b->kind == CJ_TRUE || b->kind == CJ_FALSE))
            set_str(kind, sizeof kind, "value differs");
        return cj_differ(d, path, kind, a, b);
    }
    switch (a->kind) {
    case CJ_NULL:
    case CJ_FALSE:
    case CJ_TRUE:
        return CMP_EQUAL;
    case CJ_STRING:
        if (a->len == b->len && memcmp(a->s, b->s, a->len) == 0) return CMP_EQUAL;
        return cj_differ(d, path, "string differs", a, b);
    case CJ_NUMBER:
        if (a->len == b->len && memcmp(a->s, b->s, a->len) == 0) return CMP_EQUAL;
        if ((flags & CMP_NUMERIC) && cmp_decimal_equal(a->s, a->len, b->s, b->len) == 1)
            return CMP_EQUAL;
        return cj_differ(d, path,
                         (flags & CMP_NUMERIC) ? "number differs in value" : "number text differs",
                         a, b);
    case CJ_ARRAY: {
        size_t n = a->n < b->n ? a->n : b->n;
        for (size_t i = 0; i < n; i++) {
            size_t old = path_push(path, plen, "[%zu]", i);
            int rc = cj_equal(a->v[i], b->v[i], flags, key, path, plen, d);
            path_pop(path, plen, old);
            if (rc != CMP_EQUAL) return rc;
        }
        if (a->n != b->n) {
            char kind[64];
            set_str(kind, sizeof kind, "array length differs (%zu vs %zu)", a->n, b->n);
            cj_differ(d, path, "array length differs", a, b);
            set_str(d->what, sizeof d->what, "%s; first extra item at [%zu] is in %s", kind, n,
                    a->n > b->n ? "the official only" : "ours only");
            return CMP_DIFFERENT;
        }
        return CMP_EQUAL;
    }
    case CJ_OBJECT:
        for (size_t i = 0; i < a->n; i++) {
            size_t old = path_push(path, plen, "%s%s", *plen ? "." : "", a->k[i]);
            int j = cj_find_key(b, a->k[i], a->klen[i]);
            int rc;
            if (j < 0)
                rc = cj_differ(d, path, "missing in ours", a->v[i], NULL);
            else
                rc = cj_equal(a->v[i], b->v[j], flags, a->k[i], path, plen, d);
            path_pop(path, plen, old);
            if (rc != CMP_EQUAL) return rc;
        }
        for (size_t j = 0; j < b->n; j++) {
            if (cj_find_key(a, b->k[j], b->klen[j]) < 0) {
                size_t old = path_push(path, plen, "%s%s", *plen ? "." : "", b->k[j]);
                cj_differ(d, path, "not in the official (extra in ours)", NULL, b->v[j]);
                path_pop(path, plen, old);
                return CMP_DIFFERENT;
            }
        }
        return CMP_EQUAL;
    }
    return CMP_EQUAL;
}

/* The root name of paths: the resourceType, or `$`. */
static void cj_root_path(const cj_value *root, char *path, size_t *plen)
{
    int i = root->kind == CJ_OBJECT ? cj_find_key(root, "resourceType", 12) : -1;
    if (i >= 0 && root->v[i]->kind == CJ_STRING && root->v[i]->len < 100)
        set_str(path, CMP_PATH_MAX, "%s", root->v[i]->s);
    else
        set_str(path, CMP_PATH_MAX, "$");
    *plen = strlen(path);
}

int cmp_json_structural(const char *official, size_t nofficial, const char *ours, size_t nours,
                        unsigned flags, cmp_diff *d)
{
    tsg_arena *a = tsg_arena_new(0);
    cj_value *va, *vb;
    char err[256];
    int rc;
    cmp_diff_clear(d);
    if (!a) {
        set_str(d->what, sizeof d->what, "out of memory");
        return CMP_ERROR;
    }
    if (cj_parse(a, official, nofficial, &va, err, sizeof err) != 0) {
        set_str(d->kind, sizeof d->kind, "official JSON unreadable");
        set_str(d->what, sizeof d->what, "the official JSON is not valid JSON: %s", err);
        rc = CMP_ERROR;
    } else if (cj_parse(a, ours, nours, &vb, err, sizeof err) != 0) {
        set_str(d->kind, sizeof d->kind, "our JSON is not valid JSON");
        set_str(d->what, sizeof d->what, "our JSON is not valid JSON: %s", err);
        rc = CMP_DIFFERENT;
    } else {
        char path[CMP_PATH_MAX];
        size_t plen;
        cj_root_path(va, path, &plen);
        /* the root object's members are named without a leading dot */
        rc = cj_equal(va, vb, flags, NULL, path, &plen, d);
    }
    tsg_arena_free(a);
    return rc;
}

/* ========================================================================
 * Byte comparison
 * ======================================================================== */

/* The path of the deepest value of v that contains byte offset off. */
static void cj_path_at(const cj_value *v, size_t off, char *path, size_t *plen)
{
    for (;;) {
        if (v->kind != CJ_OBJECT && v->kind != CJ_ARRAY) return;
        const cj_value *next = NULL;
        for (size_t i = 0; i < v->n; i++) {
            const cj_value *c = v->v[i];
            /* an object member starts at its key: take the member whose
             * value ends after off and that starts before the next one */
            if (off < c->end && (i + 1 == v->n || off < v->v[i + 1]->off) &&
                (v->kind == CJ_OBJECT || off >= c->off)) {
                if (v->kind == CJ_OBJECT)
                    path_push(path, plen, "%s%s", *plen ? "." : "", v->k[i]);
                else
                    path_push(path, plen, "[%zu]", i);
                next = c;
                break;
            }
        }
        if (!next || off < next->off) return;
        v = next;
    }
}

/* End of the string token starting at s[i] == '"' (index after the closing
 * quote), or n when unterminated. */
static size_t str_token_end(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

static size_t num_token_end(const char *s, size_t n, size_t i)
{
    while (i < n && (isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '+' || s[i] == '.' ||
                     s[i] == 'e' || s[i] == 'E'))
        i++;
    return i;
}

/* Copies the line of s around offset off (at most ~150 bytes) into out. */
static void line_excerpt(const char *s, size_t n, size_t off, char *out, size_t cap)
{
    size_t b = off, e = off;
    while (b > 0 && s[b - 1] != '\n' && off - b < 80) b--;
    while (e < n && s[e] != '\n' && e - off < 70) e++;
    size_t o = 0;
    for (size_t i = b; i < e && o + 2 < cap; i++) {
        if (i == off && o + 6 < cap) {
            memcpy(out + o, "⟦", 3); /* marks the first differing byte */
            o += 3;
        }
        out[o++] = s[i] == '\t' ? ' ' : s[i];
    }
    if (off >= e && o + 6 < cap) {
        memcpy(out + o, "⟦", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Reports a byte difference at expected[i] / ours[j]: location, both
 * lines, and the JSON path (from the structural comparison when the values
 * differ, else from the position). */
static int bytes_differ(const char *e, size_t ne, size_t i, const char *o, size_t no, size_t j,
                        unsigned flags, cmp_diff *d)
{
    unsigned li, ci, lj, cj;
    char xe[400], xo[400];
    cj_linecol(e, i, &li, &ci);
    cj_linecol(o, j, &lj, &cj);
    line_excerpt(e, ne, i, xe, sizeof xe);
    line_excerpt(o, no, j, xo, sizeof xo);

    cmp_diff sd;
    int src = cmp_json_structural(e, ne, o, no, flags & CMP_NUMERIC, &sd);
    if (src == CMP_DIFFERENT) {
        set_str(d->path, sizeof d->path, "%s", sd.path);
        set_str(d->kind, sizeof d->kind, "%s", sd.kind);
        set_str(d->what, sizeof d->what, "%s (ours line %u column %u)", sd.what, lj, cj);
    } else {
        tsg_arena *a = tsg_arena_new(0);
        cj_value *v;
        char err[256];
        size_t plen = 0;
        d->path[0] = '\0';
        if (a && cj_parse(a, e, ne, &v, err, sizeof err) == 0) {
            cj_root_path(v, d->path, &plen);
            cj_path_at(v, i, d->path, &plen);
        }
        tsg_arena_free(a);
        size_t pl = strlen(d->path);
        int in_div = pl >= 4 && strcmp(d->path + pl - 4, ".div") == 0;
        set_str(d->kind, sizeof d->kind, "%s",
                src != CMP_EQUAL ? "bytes differ"
                : in_div         ? "narrative bytes differ (same XHTML)"
                                 : "same value, different bytes");
        set_str(d->what, sizeof d->what, "%s at line %u column %u (ours line %u column %u)%s",
                d->kind, li, ci, lj, cj,
                src == CMP_EQUAL && !in_div ? " — escaping or formatting" : "");
    }
    set_str(d->context, sizeof d->context, "expected line %u: %s\n    ours     line %u: %s", li, xe,
            lj, xo);
    return CMP_DIFFERENT;
}

int cmp_json_bytes(const char *e, size_t ne, const char *o, size_t no, unsigned flags, cmp_diff *d)
{
    cmp_diff_clear(d);
    if (ne == no && memcmp(e, o, ne) == 0) return CMP_EQUAL;
    size_t i = 0, j = 0;
    int div_state = 0; /* 1: after the key "div"; 2: after its ':' */
    while (i < ne && j < no) {
        char c = e[i];
        if (c == '"') {
            if (o[j] != '"') return bytes_differ(e, ne, i, o, no, j, flags, d);
            size_t ie = str_token_end(e, ne, i), je = str_token_end(o, no, j);
            int same = ie - i == je - j && memcmp(e + i, o + j, ie - i) == 0;
            if (!same && div_state == 2 && (flags & CMP_DIV_XHTML)) {
                /* unescape both tokens and compare them as XHTML */
                tsg_arena *a = tsg_arena_new(0);
                cj_value *ve, *vo;
                char err[256];
                if (a && cj_parse(a, e + i, ie - i, &ve, err, sizeof err) == 0 &&
                    cj_parse(a, o + j, je - j, &vo, err, sizeof err) == 0) {
                    char path[CMP_PATH_MAX];
                    size_t plen = 0;
                    cj_value *root;
                    path[0] = '\0';
                    if (cj_parse(a, e, ne, &root, err, sizeof err) == 0) {
                        cj_root_path(root, path, &plen);
                        cj_path_at(root, i, path, &plen);
                    }
                    same = cmp_xhtml_strings(ve->s, ve->len, vo->s, vo->len, path, d) == CMP_EQUAL;
                    tsg_arena_free(a);
                    if (!same) return CMP_DIFFERENT;
                } else {
                    tsg_arena_free(a);
                }
            }
            if (!same) {
                size_t k = 0;
                while (i + k < ie && j + k < je && e[i + k] == o[j + k]) k++;
                return bytes_differ(e, ne, i + k, o, no, j + k, flags, d);
            }
            div_state = (ie - i == 5 && memcmp(e + i, "\"div\"", 5) == 0) ? 1 : 0;
            i = ie;
            j = je;
            continue;
        }
        if ((flags & CMP_NUMERIC) && (c == '-' || isdigit((unsigned char)c)) &&
            (o[j] == '-' || isdigit((unsigned char)o[j]))) {
            size_t ie = num_token_end(e, ne, i), je = num_token_end(o, no, j);
            int same = (ie - i == je - j && memcmp(e + i, o + j, ie - i) == 0) ||
                       cmp_decimal_equal(e + i, ie - i, o + j, je - j) == 1;
            if (!same) return bytes_differ(e, ne, i, o, no, j, flags, d);
            div_state = 0;
            i = ie;
            j = je;
            continue;
        }
        if (c != o[j]) return bytes_differ(e, ne, i, o, no, j, flags, d);
        if (c == ':' && div_state == 1)
            div_state = 2;
        else if (c != ' ' && c != '\n' && c != '\t' && c != '\r')
            div_state = 0;
        i++;
        j++;
    }
    if (i < ne || j < no) return bytes_differ(e, ne, i, o, no, j, flags, d);
    return CMP_EQUAL;
}

/* ========================================================================
 * jansson
 * ======================================================================== */

int cmp_json_strict(const char *text, size_t n, cmp_diff *d)
{
    json_error_t jerr;
    cmp_diff_clear(d);
    json_t *j = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        set_str(d->kind, sizeof d->kind, "not strict JSON (jansson)");
        set_str(d->what, sizeof d->what, "jansson rejects it: line %d column %d: %s", jerr.line,
                jerr.column, jerr.text);
        return CMP_ERROR;
    }
    json_decref(j);
    return CMP_EQUAL;
}

/* Compares a tree of this parser with jansson's reading of the same text. */
static int crosscheck(const cj_value *v, json_t *j, char *path, size_t *plen, cmp_diff *d)
{
    static const json_type types[] = {JSON_NULL,   JSON_FALSE, JSON_TRUE,  JSON_REAL,
                                      JSON_STRING, JSON_ARRAY, JSON_OBJECT};
    if (json_typeof(j) != types[v->kind]) {
        set_str(d->path, sizeof d->path, "%s", path);
        set_str(d->what, sizeof d->what, "%s: our parser says %s, jansson type %d", path,
                cj_kind_name(v->kind), (int)json_typeof(j));
        return CMP_DIFFERENT;
    }
    switch (v->kind) {
    case CJ_STRING:
        if (json_string_length(j) != v->len || memcmp(json_string_value(j), v->s, v->len) != 0) {
            set_str(d->what, sizeof d->what, "%s: strings differ from jansson's", path);
            return CMP_DIFFERENT;
        }
        return CMP_EQUAL;
    case CJ_NUMBER: {
        char buf[512];
        if (v->len >= sizeof buf) return CMP_EQUAL;
        memcpy(buf, v->s, v->len);
        buf[v->len] = '\0';
        if (strtod(buf, NULL) != json_real_value(j)) {
            set_str(d->what, sizeof d->what, "%s: number %s differs from jansson's %.17g", path,
                    buf, json_real_value(j));
            return CMP_DIFFERENT;
        }
        return CMP_EQUAL;
    }
    case CJ_ARRAY:
        if (json_array_size(j) != v->n) {
            set_str(d->what, sizeof d->what, "%s: array sizes differ from jansson's", path);
            return CMP_DIFFERENT;
        }
        for (size_t i = 0; i < v->n; i++) {
            size_t old = path_push(path, plen, "[%zu]", i);
            int rc = crosscheck(v->v[i], json_array_get(j, i), path, plen, d);
            path_pop(path, plen, old);
            if (rc) return rc;
        }
        return CMP_EQUAL;
    case CJ_OBJECT:
        if (json_object_size(j) != v->n) {
            set_str(d->what, sizeof d->what, "%s: object sizes differ from jansson's", path);
            return CMP_DIFFERENT;
        }
        for (size_t i = 0; i < v->n; i++) {
            size_t old = path_push(path, plen, ".%s", v->k[i]);
            json_t *m = json_object_get(j, v->k[i]);
            int rc = m ? crosscheck(v->v[i], m, path, plen, d) : CMP_DIFFERENT;
            if (!m) set_str(d->what, sizeof d->what, "%s: jansson has no such key", path);
            path_pop(path, plen, old);
            if (rc) return rc;
        }
        return CMP_EQUAL;
    default:
        return CMP_EQUAL;
    }
}

int cmp_json_crosscheck_jansson(const char *text, size_t n, cmp_diff *d)
{
    json_error_t jerr;
    char err[256], path[CMP_PATH_MAX] = "$";
    size_t plen = 1;
    cj_value *v;
    cmp_diff_clear(d);
    json_t *j = json_loadb(
        text, n, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &jerr);
    tsg_arena *a = tsg_arena_new(0);
    int ours = a ? cj_parse(a, text, n, &v, err, sizeof err) : -1;
    int rc;
    if (!j && ours != 0)
        rc = CMP_EQUAL; /* both reject it */
    else if (!j) {
        set_str(d->what, sizeof d->what, "our parser accepts, jansson rejects: %s", jerr.text);
        rc = CMP_DIFFERENT;
    } else if (ours != 0) {
        set_str(d->what, sizeof d->what, "jansson accepts, our parser rejects: %s", err);
        rc = CMP_DIFFERENT;
    } else {
        rc = crosscheck(v, j, path, &plen, d);
    }
    json_decref(j);
    tsg_arena_free(a);
    return rc;
}
