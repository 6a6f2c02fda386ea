/*
 * json_read.c — FHIR JSON into the in-memory tree, checked against the model.
 *
 * One pass over the text, no intermediate JSON DOM. Each object is parsed
 * knowing its FHIR type, so every key is looked up in the model as it is
 * read (model_child). The children of an object are collected on a scratch
 * stack of `pending` entries — a primitive and its `_name` companion arrive
 * as two entries — then sorted into definition order, merged, checked
 * (null alignment, duplicates) and copied into one contiguous arena array.
 *
 * Strings are unescaped straight into the arena. UTF-8 is validated string
 * by string (outside strings only ASCII is valid JSON structure), so an
 * invalid byte is reported with the element it is in.
 *
 * Errors carry a FHIRPath location built from a stack of path frames, and a
 * line/column computed only when an error happens.
 */
#include "model_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------ */

#define PENDING_PLAIN 0x01u /* from "name" */
#define PENDING_EXT   0x02u /* from "_name" */
#define PENDING_NULL  0x04u /* the array item was null */

typedef struct pending {
    const model_elem *elem;
    const model_type *type;
    const char *value;
    fhir_node *kids;
    uint32_t value_len;
    uint32_t nkids;
    uint32_t pos;
    uint32_t flags;
} pending;

typedef struct frame {
    const char *name; /* property name as in the text (without a leading '_') */
    uint32_t len;
    int32_t pos; /* array index, -1 for none */
} frame;

typedef struct jr {
    const char *start;
    const char *p;
    const char *end;
    tsg_arena *a;
    const tsg_limits *lim;
    tsg_error *err;
    uint32_t depth;
    const model_type *root_type;
    /* scratch stack of children being collected */
    pending *st;
    size_t sp, scap;
    /* seen-flags per element of the objects being parsed */
    uint8_t *seen;
    size_t seen_sp, seen_cap;
    /* path for error locations */
    frame *path;
    size_t path_n, path_cap;
} jr;

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

static void set_location(jr *r, const char *at)
{
    tsg_error *e = r->err;
    if (!e) return;
    /* line and column of `at` */
    unsigned line = 1;
    const char *ls = r->start;
    if (at > r->end) at = r->end;
    for (const char *q = r->start; q < at; q++) {
        if (*q == '\n') {
            line++;
            ls = q + 1;
        }
    }
    e->line = line;
    e->column = (unsigned)(at - ls) + 1;
    tsg_buf b;
    tsg_buf_init(&b, sizeof e->location - 1);
    if (r->root_type) tsg_buf_puts(&b, r->root_type->name);
    for (size_t i = 0; i < r->path_n; i++) {
        tsg_buf_putc(&b, '.');
        tsg_buf_append(&b, r->path[i].name, r->path[i].len);
        if (r->path[i].pos >= 0) tsg_buf_printf(&b, "[%d]", r->path[i].pos);
    }
    if (tsg_buf_rc(&b) == TSG_OK && b.len) {
        memcpy(e->location, b.data, b.len + 1);
    } else {
        e->location[0] = '\0';
    }
    tsg_buf_free(&b);
}

#define FAIL(r, at, rc, code, ...)                                                                 \
    (tsg_error_set((r)->err, (rc), (code), __VA_ARGS__), set_location((r), (at)), (rc))

#define SYNTAX(r, at, ...) FAIL(r, at, TSG_EINVAL, "structure", __VA_ARGS__)

/* ------------------------------------------------------------------------
 * Scratch stacks
 * ------------------------------------------------------------------------ */

static tsg_rc oom(jr *r)
{
    return tsg_error_set(r->err, TSG_ENOMEM, "exception", "out of memory reading JSON");
}

static pending *push_pending(jr *r)
{
    if (r->sp == r->scap) {
        size_t ncap = r->scap ? r->scap * 2 : 256;
        pending *n = realloc(r->st, ncap * sizeof *n);
        if (!n) return NULL;
        r->st = n;
        r->scap = ncap;
    }
    return &r->st[r->sp++];
}

static tsg_rc push_frame(jr *r, const char *name, uint32_t len, int32_t pos)
{
    if (r->path_n == r->path_cap) {
        size_t ncap = r->path_cap ? r->path_cap * 2 : 32;
        frame *n = realloc(r->path, ncap * sizeof *n);
        if (!n) return oom(r);
        r->path = n;
        r->path_cap = ncap;
    }
    r->path[r->path_n++] = (frame){name, len, pos};
    return TSG_OK;
}

static uint8_t *push_seen(jr *r, size_t n)
{
    if (r->seen_sp + n > r->seen_cap) {
        size_t ncap = r->seen_cap ? r->seen_cap * 2 : 1024;
        while (ncap < r->seen_sp + n) ncap *= 2;
        uint8_t *s = realloc(r->seen, ncap);
        if (!s) return NULL;
        r->seen = s;
        r->seen_cap = ncap;
    }
    uint8_t *s = r->seen + r->seen_sp;
    memset(s, 0, n);
    r->seen_sp += n;
    return s;
}

/* ------------------------------------------------------------------------
 * Lexing
 * ------------------------------------------------------------------------ */

static inline void skip_ws(jr *r)
{
    const char *p = r->p, *e = r->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
        /* pretty-printed input: indentation runs of spaces, 8 at a time */
        while (e - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w != 0x2020202020202020ull) break;
            p += 8;
        }
    }
    r->p = p;
}

static inline int peek(jr *r)
{
    skip_ws(r);
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(const char *p, const char *end, uint32_t *cp)
{
    if (end - p < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0) return -1;
        v = (v << 4) | (uint32_t)h;
    }
    *cp = v;
    return 0;
}

/*
 * The first U+FFFE or U+FFFF (EF BF BE / EF BF BF) in valid UTF-8 s, or NULL.
 * They are not XML characters, so a resource holding them could not be
 * written as FHIR XML; with the C0 controls they are refused on input.
 */
static const char *find_nonchar(const char *s, size_t n)
{
    const char *p = s, *e = s + n;
    while ((p = memchr(p, '\xEF', (size_t)(e - p))) != NULL) {
        if (e - p >= 3 && (unsigned char)p[1] == 0xBF &&
            ((unsigned char)p[2] == 0xBE || (unsigned char)p[2] == 0xBF))
            return p;
        p++;
    }
    return NULL;
}

/* Bytes that end the fast scan of a string: '"', '\\', < 0x20, >= 0x80. */
static inline int str_special(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
}

/*
 * Reads a JSON string at r->p (which is at the opening quote). On success
 * *out points to the unescaped, NUL-terminated text in the arena (or, with
 * in_place, into a caller buffer — not used) and *len its length.
 * Control characters other than tab, CR and LF are rejected (they cannot be
 * carried by FHIR or XML), as are invalid UTF-8 and lone surrogates.
 */
static tsg_rc read_string(jr *r, const char **out, uint32_t *olen)
{
    const char *p = r->p + 1, *e = r->end;
    const char *s = p;
    int ascii = 1;
    /* fast scan for the closing quote with no escapes */
    for (;;) {
        while (p + 8 <= e) {
            uint64_t w;
            memcpy(&w, p, 8);
            /* any byte '"' (0x22), '\\' (0x5C), < 0x20 or >= 0x80? */
            uint64_t hi = w & 0x8080808080808080ull;
            uint64_t lo = (w - 0x2020202020202020ull) & ~w & 0x8080808080808080ull;
            uint64_t q = w ^ 0x2222222222222222ull;
            q = (q - 0x0101010101010101ull) & ~q & 0x8080808080808080ull;
            uint64_t bs = w ^ 0x5C5C5C5C5C5C5C5Cull;
            bs = (bs - 0x0101010101010101ull) & ~bs & 0x8080808080808080ull;
            if (hi | lo | q | bs) break;
            p += 8;
        }
        while (p < e && !str_special((unsigned char)*p)) p++;
        if (p >= e) return SYNTAX(r, s - 1, "unterminated string");
        unsigned char c = (unsigned char)*p;
        if (c >= 0x80) {
            ascii = 0;
            p++;
            continue;
        }
        break;
    }
    size_t limit = r->lim->max_string_bytes;
    if (*p == '"') {
        size_t n = (size_t)(p - s);
        if (n > limit)
            return FAIL(r, s, TSG_ELIMIT, "too-costly",
                        "string of %zu bytes exceeds the limit of %zu (max_string_bytes)", n,
                        limit);
        if (!ascii) {
            if (tsg_utf8_valid_prefix(s, n) != n)
                return FAIL(r, s + tsg_utf8_valid_prefix(s, n), TSG_EINVAL, "structure",
                            "invalid UTF-8 in string");
            const char *nc = find_nonchar(s, n);
            if (nc) return SYNTAX(r, nc, "U+FFFE and U+FFFF are not allowed in FHIR strings");
        }
        char *d = tsg_arena_strndup(r->a, s, n);
        if (!d) return oom(r);
        *out = d;
        *olen = (uint32_t)n;
        r->p = p + 1;
        return TSG_OK;
    }
    if (*p != '\\') return SYNTAX(r, p, "control character in string (must be escaped)");
    /* slow path: find the end, then unescape */
    const char *q = p;
    while (q < e && *q != '"') {
        if ((unsigned char)*q < 0x20)
            return SYNTAX(r, q, "control character in string (must be escaped)");
        if (*q == '\\') {
            q++;
            if (q >= e) break;
        }
        q++;
    }
    if (q >= e) return SYNTAX(r, s - 1, "unterminated string");
    size_t raw = (size_t)(q - s);
    if (raw > limit * 6 + 6)
        return FAIL(r, s, TSG_ELIMIT, "too-costly",
                    "string exceeds the limit of %zu bytes (max_string_bytes)", limit);
    char *d = tsg_arena_alloc(r->a, raw + 1);
    if (!d) return oom(r);
    size_t n = 0;
    const char *x = s;
    while (x < q) {
        if (*x != '\\') {
            d[n++] = *x++;
            continue;
        }
        const char *esc = x;
        x++;
        switch (*x) {
        case '"':
            d[n++] = '"';
            x++;
            break;
        case '\\':
            d[n++] = '\\';
            x++;
            break;
        case '/':
            d[n++] = '/';
            x++;
            break;
        case 'b':
        case 'f':
            return SYNTAX(r, esc, "control character \\%c is not allowed in FHIR strings", *x);
        case 'n':
            d[n++] = '\n';
            x++;
            break;
        case 'r':
            d[n++] = '\r';
            x++;
            break;
        case 't':
            d[n++] = '\t';
            x++;
            break;
        case 'u': {
            uint32_t cp;
            if (read_hex4(x + 1, q, &cp)) return SYNTAX(r, esc, "bad \\u escape");
            x += 5;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (q - x < 6 || x[0] != '\\' || x[1] != 'u' || read_hex4(x + 2, q, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return SYNTAX(r, esc, "lone surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                x += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return SYNTAX(r, esc, "lone surrogate in \\u escape");
            }
            if (cp == 0xFFFE || cp == 0xFFFF)
                return SYNTAX(r, esc, "U+%04X is not allowed in FHIR strings", cp);
            if (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r')
                return SYNTAX(r, esc, "control character U+%04X is not allowed in FHIR strings",
                              cp);
            n += (size_t)tsg_utf8_encode(cp, d + n);
            break;
        }
        default:
            return SYNTAX(r, esc, "bad escape in string");
        }
    }
    d[n] = '\0';
    if (n > limit)
        return FAIL(r, s, TSG_ELIMIT, "too-costly",
                    "string of %zu bytes exceeds the limit of %zu (max_string_bytes)", n, limit);
    if (tsg_utf8_valid_prefix(d, n) != n)
        return FAIL(r, s, TSG_EINVAL, "structure", "invalid UTF-8 in string");
    if (find_nonchar(d, n))
        return SYNTAX(r, s, "U+FFFE and U+FFFF are not allowed in FHIR strings");
    *out = d;
    *olen = (uint32_t)n;
    r->p = q + 1;
    return TSG_OK;
}

/*
 * Reads a property name at r->p (the opening quote). Names are short, ASCII
 * and unescaped in FHIR: they are returned pointing into the text, not
 * NUL-terminated. Anything else goes through read_string (and then is no
 * FHIR name, which the caller reports).
 */
static tsg_rc read_key(jr *r, const char **key, uint32_t *klen)
{
    const char *q = r->p + 1;
    while (q < r->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 &&
           (unsigned char)*q < 0x80)
        q++;
    if (q < r->end && *q == '"') {
        *key = r->p + 1;
        *klen = (uint32_t)(q - *key);
        r->p = q + 1;
        return TSG_OK;
    }
    return read_string(r, key, klen);
}

/* Scans a JSON number at r->p; sets *len. Syntax per RFC 8259. */
static tsg_rc scan_number(jr *r, size_t *len, int *is_int)
{
    const char *p = r->p, *e = r->end, *s = p;
    *is_int = 1;
    if (p < e && *p == '-') p++;
    if (p >= e) return SYNTAX(r, s, "bad number");
    if (*p == '0') {
        p++;
        if (p < e && *p >= '0' && *p <= '9') return SYNTAX(r, s, "bad number: leading zero");
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') p++;
    } else {
        return SYNTAX(r, s, "bad number");
    }
    if (p < e && *p == '.') {
        *is_int = 0;
        p++;
        const char *d = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        if (p == d) return SYNTAX(r, s, "bad number");
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        const char *d = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        if (p == d) return SYNTAX(r, s, "bad number");
    }
    *len = (size_t)(p - s);
    return TSG_OK;
}

static int match_lit(jr *r, const char *lit, size_t n)
{
    if ((size_t)(r->end - r->p) >= n && memcmp(r->p, lit, n) == 0) {
        r->p += n;
        return 1;
    }
    return 0;
}

/* Skips any JSON value (used to look ahead for resourceType). */
static tsg_rc skip_value(jr *r, uint32_t depth)
{
    if (depth > r->lim->max_depth)
        return FAIL(r, r->p, TSG_ELIMIT, "too-costly",
                    "nesting deeper than the limit of %u (max_depth)", r->lim->max_depth);
    int c = peek(r);
    if (c == '"') {
        const char *p = r->p + 1;
        while (p < r->end && *p != '"') p += (*p == '\\') ? 2 : 1;
        if (p >= r->end) return SYNTAX(r, r->p, "unterminated string");
        r->p = p + 1;
        return TSG_OK;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        r->p++;
        if (peek(r) == close) {
            r->p++;
            return TSG_OK;
        }
        for (;;) {
            if (c == '{') {
                if (peek(r) != '"') return SYNTAX(r, r->p, "expected a property name");
                tsg_rc rc = skip_value(r, depth + 1);
                if (rc) return rc;
                if (peek(r) != ':') return SYNTAX(r, r->p, "expected ':'");
                r->p++;
            }
            tsg_rc rc = skip_value(r, depth + 1);
            if (rc) return rc;
            int d = peek(r);
            if (d == ',') {
                r->p++;
                continue;
            }
            if (d == close) {
                r->p++;
                return TSG_OK;
            }
            return SYNTAX(r, r->p, "expected ',' or '%c'", close);
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        size_t n;
        int is_int;
        tsg_rc rc = scan_number(r, &n, &is_int);
        if (rc) return rc;
        r->p += n;
        return TSG_OK;
    }
    if (match_lit(r, "true", 4) || match_lit(r, "false", 5) || match_lit(r, "null", 4))
        return TSG_OK;
    return SYNTAX(r, r->p, c < 0 ? "unexpected end of input" : "unexpected character");
}

/* ------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------ */

static tsg_rc parse_object(jr *r, const model_type *t, int is_resource, fhir_node **kids,
                           uint32_t *nkids);

static const char *json_kind(int c)
{
    switch (c) {
    case '{':
        return "an object";
    case '[':
        return "an array";
    case '"':
        return "a string";
    case 't':
    case 'f':
        return "a boolean";
    case 'n':
        return "null";
    default:
        return "a number";
    }
}

/* Reads the value of a primitive of type t at r->p into *pe. */
static tsg_rc parse_primitive(jr *r, const model_type *t, pending *pe)
{
    int c = peek(r);
    const char *at = r->p;
    if (t->flags & MODEL_TYPE_JSON_BOOL) {
        if (match_lit(r, "true", 4)) {
            pe->value = "true", pe->value_len = 4;
            return TSG_OK;
        }
        if (match_lit(r, "false", 5)) {
            pe->value = "false", pe->value_len = 5;
            return TSG_OK;
        }
        return SYNTAX(r, at, "expected a boolean for %s, found %s", t->name, json_kind(c));
    }
    if (t->flags & MODEL_TYPE_JSON_NUMBER) {
        if (c != '-' && !(c >= '0' && c <= '9'))
            return SYNTAX(r, at, "expected a number for %s, found %s", t->name, json_kind(c));
        size_t n;
        int is_int;
        tsg_rc rc = scan_number(r, &n, &is_int);
        if (rc) return rc;
        if (t->name[0] != 'd') { /* integer, positiveInt, unsignedInt */
            if (!is_int)
                return FAIL(r, at, TSG_EINVAL, "value", "%.*s is not an integer (%s)",
                            n > 40 ? 40 : (int)n, at, t->name);
            rc = model_check_lexical(t, at, n, r->err);
            if (rc) {
                set_location(r, at);
                return rc;
            }
        }
        char *d = tsg_arena_strndup(r->a, at, n);
        if (!d) return oom(r);
        pe->value = d;
        pe->value_len = (uint32_t)n;
        r->p += n;
        return TSG_OK;
    }
    if (c != '"') return SYNTAX(r, at, "expected a string for %s, found %s", t->name, json_kind(c));
    tsg_rc rc = read_string(r, &pe->value, &pe->value_len);
    if (rc) return rc;
    if (pe->value_len == 0)
        return FAIL(r, at, TSG_EINVAL, "value", "empty string: a %s must have a value", t->name);
    if (!(t->flags & MODEL_TYPE_XHTML)) {
        rc = model_check_lexical(t, pe->value, pe->value_len, r->err);
        if (rc) set_location(r, at);
        return rc;
    }
    {
        /* whitespace around the div is not content: XML would not keep it either */
        char *v = (char *)pe->value; /* our arena copy */
        uint32_t b = 0, e = pe->value_len;
        while (b < e && (v[b] == ' ' || v[b] == '\t' || v[b] == '\n' || v[b] == '\r')) b++;
        while (e > b &&
               (v[e - 1] == ' ' || v[e - 1] == '\t' || v[e - 1] == '\n' || v[e - 1] == '\r'))
            e--;
        v[e] = '\0';
        pe->value = v + b;
        pe->value_len = e - b;
        rc = model_check_xhtml(pe->value, pe->value_len, r->err);
        if (rc) {
            unsigned col = r->err ? r->err->column : 0;
            set_location(r, at);
            if (r->err) {
                char msg[TSG_ERR_MESSAGE_MAX];
                memcpy(msg, r->err->message, sizeof msg);
                tsg_error_set(r->err, rc, "value", "narrative XHTML (at character %u): %s", col,
                              msg);
            }
            return rc;
        }
    }
    return TSG_OK;
}

/*
 * Reads one item of a property into a pending entry: a primitive value, the
 * object of a `_name` companion, a complex object, or a contained resource.
 */
static tsg_rc parse_item(jr *r, const model_elem *el, const model_type *t, int ext, size_t idx)
{
    const char *at = r->p;
    int c = peek(r);
    tsg_rc rc;
    if (ext) { /* _name: {id, extension} of a primitive */
        if (c != '{')
            return SYNTAX(r, at, "expected an object for the extensions of %s, found %s", el->name,
                          json_kind(c));
        fhir_node *kids;
        uint32_t nkids;
        rc = parse_object(r, t, 0, &kids, &nkids);
        if (rc) return rc;
        r->st[idx].kids = kids;
        r->st[idx].nkids = nkids;
        return TSG_OK;
    }
    if (t->kind == MODEL_PRIMITIVE) {
        pending tmp = r->st[idx];
        rc = parse_primitive(r, t, &tmp);
        if (rc) return rc;
        r->st[idx].value = tmp.value;
        r->st[idx].value_len = tmp.value_len;
        return TSG_OK;
    }
    if (c != '{')
        return SYNTAX(r, at, "expected an object for %s, found %s", t->name, json_kind(c));
    int is_res = t->kind == MODEL_RESOURCE;
    const model_type *ct = t;
    if (is_res) {
        /* the concrete resource type comes from resourceType: find it */
        const char *save = r->p;
        r->p++;
        const char *rt = NULL;
        uint32_t rtlen = 0;
        if (peek(r) == '}') return SYNTAX(r, at, "empty object: a resource needs a resourceType");
        for (;;) {
            if (peek(r) != '"') return SYNTAX(r, r->p, "expected a property name");
            const char *k;
            uint32_t klen;
            rc = read_key(r, &k, &klen);
            if (rc) return rc;
            if (peek(r) != ':') return SYNTAX(r, r->p, "expected ':'");
            r->p++;
            if (klen == 12 && memcmp(k, "resourceType", 12) == 0) {
                if (peek(r) != '"') return SYNTAX(r, r->p, "resourceType must be a string");
                rc = read_key(r, &rt, &rtlen);
                if (rc) return rc;
                break;
            }
            rc = skip_value(r, r->depth + 1);
            if (rc) return rc;
            int d = peek(r);
            if (d == ',') {
                r->p++;
                continue;
            }
            break;
        }
        if (!rt) return SYNTAX(r, at, "resource without resourceType");
        ct = model_resource_find(rt, rtlen);
        if (!ct)
            return FAIL(r, at, TSG_EINVAL, "structure", "unknown resourceType '%.*s'",
                        rtlen > 64 ? 64 : (int)rtlen, rt);
        r->p = save;
        if (r->depth == 0 && !r->root_type) r->root_type = ct;
    }
    fhir_node *kids;
    uint32_t nkids;
    rc = parse_object(r, ct, is_res, &kids, &nkids);
    if (rc) return rc;
    r->st[idx].type = ct;
    r->st[idx].kids = kids;
    r->st[idx].nkids = nkids;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Objects
 * ------------------------------------------------------------------------ */

static int pending_cmp(const void *a, const void *b)
{
    const pending *x = a, *y = b;
    if (x->elem->index != y->elem->index) return x->elem->index < y->elem->index ? -1 : 1;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    return (int)(x->flags & PENDING_EXT) - (int)(y->flags & PENDING_EXT);
}

static int pending_before(const pending *x, const pending *y)
{
    return pending_cmp(x, y) < 0;
}

/*
 * Parses the object at r->p as type t. Its children end up, merged and in
 * definition order, in a new arena array (*kids, *nkids). For a resource
 * (is_resource) the resourceType property is checked and skipped.
 */
static tsg_rc parse_object(jr *r, const model_type *t, int is_resource, fhir_node **kids,
                           uint32_t *nkids)
{
    const char *obj_at = r->p;
    if (++r->depth > r->lim->max_depth)
        return FAIL(r, obj_at, TSG_ELIMIT, "too-costly",
                    "nesting deeper than the limit of %u (max_depth)", r->lim->max_depth);
    r->p++; /* '{' */
    size_t base = r->sp;
    size_t seen_base = r->seen_sp;
    uint8_t *seen0 = push_seen(r, t->nelems ? t->nelems : 1);
    if (!seen0) return oom(r);
    (void)seen0;
    tsg_rc rc = TSG_OK;
    int had_rt = 0;
    if (peek(r) == '}') {
        r->p++;
        return SYNTAX(r, obj_at, "empty object: FHIR objects must have content");
    }
    for (;;) {
        if (peek(r) != '"') return SYNTAX(r, r->p, "expected a property name");
        const char *key_at = r->p;
        const char *key;
        uint32_t klen;
        rc = read_key(r, &key, &klen);
        if (rc) return rc;
        if (peek(r) != ':') return SYNTAX(r, r->p, "expected ':' after property name");
        r->p++;
        if (is_resource && klen == 12 && memcmp(key, "resourceType", 12) == 0) {
            if (had_rt) return SYNTAX(r, key_at, "duplicate property 'resourceType'");
            had_rt = 1;
            const char *v;
            uint32_t vlen;
            if (peek(r) != '"') return SYNTAX(r, r->p, "resourceType must be a string");
            const char *vat = r->p;
            rc = read_key(r, &v, &vlen);
            if (rc) return rc;
            if (vlen != strlen(t->name) || memcmp(v, t->name, vlen) != 0)
                return SYNTAX(r, vat, "resourceType '%.*s' does not match %s",
                              vlen > 64 ? 64 : (int)vlen, v, t->name);
        } else {
            int ext = klen > 1 && key[0] == '_';
            const char *name = key + ext;
            uint32_t nlen = klen - (uint32_t)ext;
            const model_type *ct = NULL;
            const model_elem *el = model_child(t, name, nlen, &ct);
            rc = push_frame(r, name, nlen, -1);
            if (rc) return rc;
            if (!el)
                return FAIL(r, key_at, TSG_EINVAL, "structure", "unknown element '%.*s' in %s",
                            klen > 64 ? 64 : (int)klen, key, t->name);
            if (ext && ct->kind != MODEL_PRIMITIVE)
                return FAIL(r, key_at, TSG_EINVAL, "structure",
                            "'%.*s': only primitive elements have a '_' companion",
                            klen > 64 ? 64 : (int)klen, key);
            uint8_t *seen = r->seen + seen_base + el->index;
            uint8_t bit = ext ? 2 : 1;
            if (*seen & bit)
                return FAIL(r, key_at, TSG_EINVAL, "structure",
                            (el->flags & MODEL_ELEM_CHOICE)
                                ? "duplicate property '%.*s' (%s[x] may appear once)"
                                : "duplicate property '%.*s'",
                            klen > 64 ? 64 : (int)klen, key, el->name);
            *seen |= bit;
            int c = peek(r);
            const char *vat = r->p;
            if (el->max != 1) {
                if (c != '[')
                    return FAIL(r, vat, TSG_EINVAL, "structure",
                                "%s repeats (max %s): its value must be an array, found %s",
                                el->name, el->max == MODEL_MANY ? "*" : "n", json_kind(c));
                r->p++;
                if (peek(r) == ']') return FAIL(r, vat, TSG_EINVAL, "structure", "empty array");
                if (r->depth + 1 > r->lim->max_depth)
                    return FAIL(r, vat, TSG_ELIMIT, "too-costly",
                                "nesting deeper than the limit of %u (max_depth)",
                                r->lim->max_depth);
                uint32_t i = 0;
                for (;;) {
                    r->path[r->path_n - 1].pos = (int32_t)i;
                    if (i >= r->lim->max_array_items)
                        return FAIL(r, r->p, TSG_ELIMIT, "too-costly",
                                    "array longer than the limit of %u items (max_array_items)",
                                    r->lim->max_array_items);
                    pending *pe = push_pending(r);
                    if (!pe) return oom(r);
                    size_t idx = r->sp - 1;
                    *pe = (pending){el, ct, NULL, NULL, 0, 0, i, ext ? PENDING_EXT : PENDING_PLAIN};
                    if (peek(r) == 'n' && match_lit(r, "null", 4)) {
                        if (ct->kind != MODEL_PRIMITIVE)
                            return FAIL(r, r->p - 4, TSG_EINVAL, "structure",
                                        "null is only allowed in arrays of primitives");
                        r->st[idx].flags |= PENDING_NULL;
                    } else {
                        rc = parse_item(r, el, ct, ext, idx);
                        if (rc) return rc;
                    }
                    i++;
                    int d = peek(r);
                    if (d == ',') {
                        r->p++;
                        continue;
                    }
                    if (d == ']') {
                        r->p++;
                        break;
                    }
                    return SYNTAX(r, r->p, "expected ',' or ']' in array");
                }
            } else {
                if (c == '[')
                    return FAIL(r, vat, TSG_EINVAL, "structure",
                                "%s does not repeat (max 1): its value must not be an array",
                                el->name);
                if (c == 'n' && match_lit(r, "null", 4))
                    return FAIL(r, vat, TSG_EINVAL, "structure",
                                "null is not allowed as the value of %s", el->name);
                pending *pe = push_pending(r);
                if (!pe) return oom(r);
                size_t idx = r->sp - 1;
                *pe = (pending){el, ct, NULL, NULL, 0, 0, 0, ext ? PENDING_EXT : PENDING_PLAIN};
                rc = parse_item(r, el, ct, ext, idx);
                if (rc) return rc;
            }
            r->path_n--;
        }
        int d = peek(r);
        if (d == ',') {
            r->p++;
            continue;
        }
        if (d == '}') {
            r->p++;
            break;
        }
        return SYNTAX(r, r->p,
                      d < 0 ? "unexpected end of input in object"
                            : "expected ',' or '}' after a property");
    }
    if (is_resource && !had_rt) return SYNTAX(r, obj_at, "resource without resourceType");

    /* sort into definition order, then merge name/_name pairs */
    pending *v = r->st + base;
    size_t n = r->sp - base;
    for (size_t i = 1; i < n; i++) {
        if (pending_before(&v[i], &v[i - 1])) {
            qsort(v, n, sizeof *v, pending_cmp);
            break;
        }
    }
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        pending cur = v[i];
        uint8_t seen = r->seen[seen_base + cur.elem->index];
        if (i + 1 < n && v[i + 1].elem == cur.elem && v[i + 1].pos == cur.pos) {
            /* name and _name for the same item */
            pending *x = &v[i + 1];
            if (x->type != cur.type)
                return FAIL(r, obj_at, TSG_EINVAL, "structure",
                            "'%s' and its '_' companion name different types", cur.elem->name);
            if ((cur.flags & PENDING_NULL) && (x->flags & PENDING_NULL)) {
                push_frame(r, cur.elem->name, (uint32_t)strlen(cur.elem->name), (int32_t)cur.pos);
                return FAIL(r, obj_at, TSG_EINVAL, "structure",
                            "item %u of %s and _%s are both null", cur.pos, cur.elem->name,
                            cur.elem->name);
            }
            cur.kids = x->kids;
            cur.nkids = x->nkids;
            if (cur.flags & PENDING_NULL) cur.value = NULL;
            i++;
        } else if (seen == 3 || (cur.flags & PENDING_NULL)) {
            /* an item present in only one of the two arrays, or a null with no partner */
            push_frame(r, cur.elem->name, (uint32_t)strlen(cur.elem->name), (int32_t)cur.pos);
            if (cur.flags & PENDING_NULL)
                return FAIL(r, obj_at, TSG_EINVAL, "structure",
                            seen == 3 ? "item %u of %s is null in both %s and _%s"
                                      : "item %u of %s is null but _%s gives nothing for it",
                            cur.pos, cur.elem->name, cur.elem->name, cur.elem->name);
            return FAIL(r, obj_at, TSG_EINVAL, "structure",
                        "%s and _%s must be arrays of the same length", cur.elem->name,
                        cur.elem->name);
        }
        v[out++] = cur;
    }
    fhir_node *arr = NULL;
    if (out) {
        arr = tsg_arena_alloc(r->a, out * sizeof *arr);
        if (!arr) return oom(r);
        for (size_t i = 0; i < out; i++) {
            arr[i] = (fhir_node){v[i].elem,  v[i].type, v[i].value, v[i].value_len,
                                 v[i].nkids, v[i].kids, v[i].pos};
        }
    }
    r->sp = base;
    r->seen_sp = seen_base;
    r->depth--;
    *kids = arr;
    *nkids = (uint32_t)out;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------ */

tsg_rc fhir_json_parse(tsg_arena *a, const char *text, size_t len, const tsg_limits *lim,
                       fhir_node **out, tsg_error *err)
{
    jr r = {0};
    r.start = text;
    r.p = text;
    r.end = text + len;
    r.a = a;
    r.lim = lim ? lim : &tsg_limits_default;
    r.err = err;
    *out = NULL;
    tsg_error_clear(err);
    model_r4();
    if (len > r.lim->max_body_bytes)
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "body of %zu bytes exceeds the limit of %zu (max_body_bytes)", len,
                             r.lim->max_body_bytes);
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) r.p += 3;
    tsg_rc rc;
    int c = peek(&r);
    if (c != '{') {
        rc = SYNTAX(&r, r.p,
                    c < 0 ? "empty input: expected a JSON object"
                          : "expected a JSON object (a FHIR resource)");
        goto done;
    }
    /* find resourceType, usually the first property */
    pending holder = {0};
    r.st = NULL;
    pending *pe = push_pending(&r);
    if (!pe) {
        rc = oom(&r);
        goto done;
    }
    *pe = holder;
    {
        /* reuse parse_item's resource lookahead through a pseudo element */
        const model_type *res = model_type_find("Resource", 8);
        rc = parse_item(&r, NULL, res, 0, 0);
        if (rc) goto done;
    }
    if (peek(&r) != -1) {
        rc = SYNTAX(&r, r.p, "unexpected content after the resource");
        goto done;
    }
    fhir_node *root = tsg_arena_alloc(a, sizeof *root);
    if (!root) {
        rc = oom(&r);
        goto done;
    }
    *root = (fhir_node){NULL, r.st[0].type, NULL, 0, r.st[0].nkids, r.st[0].kids, 0};
    *out = root;
    rc = TSG_OK;
done:
    free(r.st);
    free(r.seen);
    free(r.path);
    return rc;
}
