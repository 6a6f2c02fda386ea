/*
 * xml_read.c — the FHIR XML reader (fhir_xml_parse) and the XHTML narrative
 * check (model_check_xhtml), on one tokenizer of our own.
 *
 * ## Why no XML library
 *
 * FHIR XML is a small, strict dialect: no DTD, no entities of its own, no
 * mixed content outside the narrative, values in attributes. A general XML
 * parser brings a DTD processor (XXE, billion laughs), a DOM, and a second
 * walk to map the DOM onto the model. This reader instead goes over the text
 * once and builds the fhir_node tree as it goes:
 *
 *   text ──► character check (UTF-8 + XML Char, 16 ASCII bytes a step)
 *        ──► tags and attributes (table-driven name scans, values and text
 *            scanned 8 bytes a step for the bytes that need work)
 *        ──► model_child() per element name ──► node pushed on a scratch stack
 *        ──► on the end tag, the element's children are copied from the
 *            scratch stack into one contiguous arena array
 *
 * The narrative div is the one place with mixed content. It becomes the
 * div's value as XHTML text: byte for byte as written when it is already
 * self-contained (`<div xmlns="http://www.w3.org/1999/xhtml"…`, no prefixes —
 * the usual case, and what the writer produces), otherwise re-serialised
 * (local names, the XHTML namespace declared once on the div, references
 * decoded and re-escaped minimally, comments dropped, CDATA turned into text).
 *
 * A DOCTYPE is refused outright, so there is nothing to declare an entity
 * with; references are the five predefined entities and character
 * references to XML Chars.
 *
 * ## Nodes for the two-element resource containers
 *
 *   <contained>           one node: elem = contained, type = Patient,
 *     <Patient>             kids = the Patient's children
 *       <id value="p1"/>
 *     </Patient>
 *   </contained>
 *
 * The `contained` element opens a FR_CONTAINER frame that owns the node; the
 * resource element inside opens a FR_RESOURCE frame on the same node.
 *
 * ## Error locations
 *
 * Nothing about the location is built while parsing: on an error the open
 * frames (and the element being opened, `pend_*`) are walked into a FHIRPath
 * like `Patient.name[0].given[1]`, and the line and column are counted from
 * the start of the text up to the offending byte.
 */
#include "model.h"
#include "model_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define NS_URI_FHIR  "http://hl7.org/fhir"
#define NS_URI_XHTML "http://www.w3.org/1999/xhtml"
#define NS_URI_XML   "http://www.w3.org/XML/1998/namespace"
#define NS_URI_XSI   "http://www.w3.org/2001/XMLSchema-instance"

/* Attributes one start tag may carry; more is TSG_ELIMIT. FHIR elements carry
 * at most three, XHTML elements a handful. */
#define XML_MAX_ATTRS  64
#define XML_ATTR_SLOTS 128 /* hash slots for the duplicate check: twice XML_MAX_ATTRS */

enum xml_ns { NS_NONE, NS_FHIR, NS_XHTML, NS_XML, NS_XSI, NS_OTHER };

/* ------------------------------------------------------------------------
 * Character classes
 * ------------------------------------------------------------------------ */

#define C_WS         1  /* space, TAB, LF, CR */
#define C_NAME_START 2  /* letters, '_', ':', any byte of a non-ASCII character */
#define C_NAME       4  /* C_NAME_START, digits, '.', '-' */
#define C_ATTR_SPEC  8  /* in an attribute value: '&', '<', TAB, LF, CR need work */
#define C_TEXT_SPEC  16 /* in XHTML text: '&', '>', CR need work ('<' ends the run) */

static const uint8_t cls[256] = {
    0, 0, 0, 0, 0, 0, 0,  0, 0, 9, 9, 0, 0, 25, 0,  0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0,  0,  0, /* 0x10 */
    1, 0, 0, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 4,  4,  0, /* 0x20 */
    4, 4, 4, 4, 4, 4, 4,  4, 4, 4, 6, 0, 8, 0,  16, 0, /* 0x30 */
    0, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0x40 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 0, 0, 0,  0,  6, /* 0x50 */
    0, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0x60 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 0, 0, 0,  0,  0, /* 0x70 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0x80 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0x90 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0xA0 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0xB0 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0xC0 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0xD0 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0xE0 */
    6, 6, 6, 6, 6, 6, 6,  6, 6, 6, 6, 6, 6, 6,  6,  6, /* 0xF0 */
};

#define CLS(c) cls[(unsigned char)(c)]

/*
 * Eight bytes at a time (SWAR). swar_eq(w, c) has bit 7 set in each byte of w
 * equal to c, swar_lt(w, c) in each byte below c (c <= 0x80). Borrows only run
 * upwards from a true match, so the lowest set bit always marks the first
 * match exactly; higher ones may be false and are never used.
 */
#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define XML_SWAR 1
static inline uint64_t swar_eq(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (ONES * c);
    return (x - ONES) & ~x & HIGHS;
}

static inline uint64_t swar_lt(uint64_t w, unsigned char c)
{
    return (w - ONES * c) & ~w & HIGHS;
}

/* The byte offset of the first match in a non-zero swar_* result. */
static inline unsigned swar_first(uint64_t hit)
{
    return (unsigned)__builtin_ctzll(hit) >> 3;
}
#else
#define XML_SWAR 0
#endif

/*
 * The first byte at or after v that ends or complicates an attribute value
 * quoted with q: the quote, '&', '<', TAB, LF or CR; end when there is none.
 */
static inline const char *find_attr_special(const char *v, const char *end, char q)
{
#if XML_SWAR
    while (end - v >= 8) {
        uint64_t w;
        memcpy(&w, v, 8);
        uint64_t hit =
            swar_eq(w, (unsigned char)q) | swar_eq(w, '&') | swar_eq(w, '<') | swar_lt(w, 0x20);
        if (hit) return v + swar_first(hit);
        v += 8;
    }
#endif
    while (v < end && *v != q && !(CLS(*v) & C_ATTR_SPEC)) v++;
    return v;
}

/* The first '<', '&', '>' or CR at or after s in XHTML text; end when there is none. */
static inline const char *find_text_special(const char *s, const char *end)
{
#if XML_SWAR
    while (end - s >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        uint64_t hit = swar_eq(w, '<') | swar_eq(w, '&') | swar_eq(w, '>') | swar_eq(w, '\r');
        if (hit) return s + swar_first(hit);
        s += 8;
    }
#endif
    while (s < end && *s != '<' && !(CLS(*s) & C_TEXT_SPEC)) s++;
    return s;
}

/*
 * Length of the longest prefix of s[0..n) that is valid UTF-8 (no overlongs,
 * surrogates or code points above U+10FFFF) made of XML Chars (no control
 * characters but TAB, LF, CR; no U+FFFE, U+FFFF). ASCII goes 16 bytes (SSE2)
 * or 8 bytes (SWAR) a step.
 */
static size_t xml_chars_valid_prefix(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7Full;
    size_t i = 0;
    while (i < n) {
#if defined(__SSE2__)
        /* 16 ASCII bytes without control characters other than TAB, LF, CR */
        while (n - i >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            if (_mm_movemask_epi8(v)) break;
            __m128i ok = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(9)),
                                                   _mm_cmpeq_epi8(v, _mm_set1_epi8(10))),
                                      _mm_cmpeq_epi8(v, _mm_set1_epi8(13)));
            __m128i ctl = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
            if (_mm_movemask_epi8(_mm_andnot_si128(ok, ctl))) break;
            i += 16;
        }
#endif
        /* the same eight bytes at a time; every step is exact per byte because
         * no byte has its high bit set */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & high) break;
            uint64_t ge20 = w + 0x60 * ones; /* bit 7 set: byte >= 0x20 */
            uint64_t x9 = w ^ (0x09 * ones), xa = w ^ (0x0A * ones), xd = w ^ (0x0D * ones);
            uint64_t ne9 = (x9 + low7) | x9, nea = (xa + low7) | xa, ned = (xd + low7) | xd;
            if (~ge20 & ne9 & nea & ned & high) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return i;
            i++;
            continue;
        }
        uint32_t cp;
        int len = tsg_utf8_decode((const char *)s + i, n - i, &cp);
        if (!len || cp == 0xFFFE || cp == 0xFFFF) return i;
        i += (size_t)len;
    }
    return n;
}

/* True when cp is an XML 1.0 Char (the targets a character reference may name). */
static int xml_is_char(uint32_t cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* ------------------------------------------------------------------------
 * Parser state
 * ------------------------------------------------------------------------ */

typedef struct xml_attr {
    const char *name; /* the qualified name as written */
    const char *val;  /* the raw value between the quotes */
    uint32_t name_len;
    uint32_t val_len;
    uint32_t prefix_len; /* length of the prefix before ':', 0 when unprefixed */
    uint8_t plain;       /* the value has no reference and no TAB/LF/CR: raw == decoded */
    uint8_t is_ns;       /* a namespace declaration (xmlns, xmlns:p) */
} xml_attr;

typedef struct xml_tag {
    const char *at;    /* the '<' */
    const char *name;  /* qualified name */
    const char *local; /* after the prefix */
    uint32_t name_len;
    uint32_t local_len;
    uint32_t nattrs; /* in parser->attrs */
    uint8_t ns;      /* enum xml_ns of the element */
    uint8_t empty;   /* `<x/>` */
    size_t ns_mark;  /* namespace bindings before this tag's declarations */
} xml_tag;

typedef struct ns_binding {
    const char *prefix; /* into the text; prefix_len 0 = the default namespace */
    uint32_t prefix_len;
    uint8_t ns;
} ns_binding;

enum frame_kind {
    FR_RESOURCE, /* a resource element: the root, or inside a container */
    FR_ELEMENT,  /* an element of a type with children (complex, backbone, primitive) */
    FR_CONTAINER /* contained, Bundle.entry.resource, …: holds one resource element */
};

typedef struct xml_frame {
    const char *name;       /* qualified name of the open element, for its end tag */
    const model_type *type; /* children are elements of this type */
    const model_elem *elem; /* NULL for a resource element */
    const model_elem *last; /* the last child element read */
    size_t node;            /* this element's node in the scratch stack */
    size_t kids;            /* where its children start in the scratch stack */
    size_t ns_mark;         /* namespace bindings to keep when it closes */
    uint32_t name_len;
    uint32_t pos;         /* index within its repeating element */
    uint32_t count;       /* repetitions of `last` so far */
    uint8_t kind;         /* enum frame_kind */
    uint8_t nattr_kids;   /* children from attributes (id, url): first in its kids */
    uint8_t has_resource; /* FR_CONTAINER: its resource was read */
} xml_frame;

/* An open element inside the narrative div. */
typedef struct xhtml_open {
    const char *name;
    uint32_t name_len;
    size_t ns_mark;
} xhtml_open;

typedef struct xml_parser {
    const char *text; /* the document (after a BOM) */
    const char *end;
    const char *p; /* the read position */
    tsg_arena *a;
    const tsg_limits *lim;
    tsg_error *err; /* may be NULL */
    tsg_rc rc;      /* the error, also when err is NULL */

    fhir_node *stack; /* scratch stack of nodes whose parent is still open */
    size_t nstack, capstack;
    xml_frame *frames;
    size_t nframes, capframes;
    ns_binding *ns;
    size_t nns, capns;
    xhtml_open *xopen;
    size_t nxopen, capxopen;

    xml_attr attrs[XML_MAX_ATTRS];      /* of the last start tag */
    uint8_t attr_slots[XML_ATTR_SLOTS]; /* duplicate check: index + 1 into attrs, 0 = free */

    /* the element being opened, for error locations */
    const model_elem *pend_elem;
    const model_type *pend_type;
    const char *pend_name;
    uint32_t pend_name_len;
    uint32_t pend_pos;

    tsg_buf xhtml;  /* the narrative div being re-serialised */
    int x_verbatim; /* the div being read can be kept as written (see xml_read_div) */
    int x_html;     /* model_xhtml_html_checks(): enforce the narrative's element/attribute list */
    char *tmp;      /* scratch for decoding an attribute value */
    size_t tmpcap;
} xml_parser;

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

static void loc_put(char *buf, size_t *n, const char *s, size_t len)
{
    size_t room = TSG_ERR_LOCATION_MAX - 1 - *n;
    if (len > room) len = room;
    memcpy(buf + *n, s, len);
    *n += len;
    buf[*n] = '\0';
}

static void loc_put_index(char *buf, size_t *n, uint32_t pos)
{
    char tmp[16];
    int k = snprintf(tmp, sizeof tmp, "[%u]", pos);
    loc_put(buf, n, tmp, (size_t)k);
}

static void loc_put_elem(char *buf, size_t *n, const model_elem *e, const model_type *t,
                         uint32_t pos)
{
    char name[128];
    size_t len = model_property_name(e, t, name, sizeof name);
    loc_put(buf, n, ".", 1);
    loc_put(buf, n, name, len);
    if (e->max != 1) loc_put_index(buf, n, pos);
}

/* Writes the FHIRPath of the open elements (and the pending one) into err. */
static void xml_set_location(xml_parser *p)
{
    char *buf = p->err->location;
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->nframes; i++) {
        const xml_frame *f = &p->frames[i];
        if (i == 0)
            loc_put(buf, &n, f->type->name, strlen(f->type->name));
        else if (f->elem)
            loc_put_elem(buf, &n, f->elem, f->type, f->pos);
        /* a resource inside a container adds no step */
    }
    if (p->pend_elem) {
        loc_put_elem(buf, &n, p->pend_elem, p->pend_type, p->pend_pos);
    } else if (p->pend_name) {
        if (n) loc_put(buf, &n, ".", 1);
        loc_put(buf, &n, p->pend_name, p->pend_name_len);
    }
}

/* Line and column (both 1-based, the column in characters) of `at`. */
static void xml_set_line_col(xml_parser *p, const char *at)
{
    const char *s = p->text;
    if (at < s) at = s;
    if (at > p->end) at = p->end;
    unsigned line = 1;
    const char *bol = s;
    for (const char *nl; (nl = memchr(s, '\n', (size_t)(at - s))) != NULL; s = nl + 1) {
        line++;
        bol = nl + 1;
    }
    unsigned col = 1;
    for (const char *c = bol; c < at; c++) col += ((unsigned char)*c & 0xC0) != 0x80;
    p->err->line = line;
    p->err->column = col;
}

/* Adds location, line and column at `at` to an error already in p->err. */
static tsg_rc xml_locate(xml_parser *p, const char *at, tsg_rc rc)
{
    p->rc = rc;
    if (p->err) {
        xml_set_line_col(p, at);
        xml_set_location(p);
    }
    return rc;
}

/* Sets the error (message, location, line and column at `at`); returns rc. */
static tsg_rc xml_fail(xml_parser *p, const char *at, tsg_rc rc, const char *code, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

static tsg_rc xml_fail(xml_parser *p, const char *at, tsg_rc rc, const char *code, const char *fmt,
                       ...)
{
    p->rc = rc;
    if (!p->err) return rc;
    char msg[TSG_ERR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tsg_error_set(p->err, rc, code, "%s", msg);
    return xml_locate(p, at, rc);
}

static tsg_rc xml_nomem(xml_parser *p)
{
    return xml_fail(p, p->p, TSG_ENOMEM, "exception", "out of memory while reading XML");
}

/* Shortens a name for a message. */
#define NAME_ARG(n) ((n) > 64 ? 64 : (int)(n))

/* ------------------------------------------------------------------------
 * Growable scratch arrays (malloc'd; freed when the parse ends)
 * ------------------------------------------------------------------------ */

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) ncap *= 2;
    void *n = realloc(*arr, ncap * size);
    if (!n) return -1;
    *arr = n;
    *cap = ncap;
    return 0;
}

static inline fhir_node *push_node(xml_parser *p)
{
    if (p->nstack == p->capstack &&
        grow((void **)&p->stack, &p->capstack, p->nstack + 1, sizeof *p->stack))
        return NULL;
    return &p->stack[p->nstack++];
}

static inline xml_frame *push_frame(xml_parser *p)
{
    if (p->nframes == p->capframes &&
        grow((void **)&p->frames, &p->capframes, p->nframes + 1, sizeof *p->frames))
        return NULL;
    return &p->frames[p->nframes++];
}

/* ------------------------------------------------------------------------
 * References and values
 * ------------------------------------------------------------------------ */

/*
 * Decodes the reference at s (s[0] == '&', e = end of the value) into out;
 * returns the bytes written (1–4), or 0 after setting the error. *s moves past
 * the ';'.
 */
static int xml_decode_ref(xml_parser *p, const char **sp, const char *e, char *out)
{
    const char *s = *sp + 1;
    if (s < e && *s == '#') {
        s++;
        uint32_t cp = 0;
        int hex = s < e && *s == 'x';
        const char *digits = s += hex;
        for (; s < e && *s != ';'; s++) {
            unsigned d;
            char c = *s;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (hex && c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else if (hex && c >= 'A' && c <= 'F')
                d = (unsigned)(c - 'A' + 10);
            else
                break;
            cp = cp * (hex ? 16 : 10) + d;
            if (cp > 0x10FFFF) cp = 0x110000; /* stays invalid, no overflow */
        }
        if (s == digits || s >= e || *s != ';')
            return xml_fail(p, *sp, TSG_EINVAL, "structure",
                            "malformed character reference (expected &#N; or &#xH;)"),
                   0;
        if (!xml_is_char(cp))
            return xml_fail(p, *sp, TSG_EINVAL, "structure",
                            "character reference &#%.*s; is not a valid XML character",
                            NAME_ARG(s - (*sp + 2)), *sp + 2),
                   0;
        *sp = s + 1;
        return tsg_utf8_encode(cp, out);
    }
    const char *name = s;
    while (s < e && s - name < 8 && *s != ';') s++;
    size_t n = (size_t)(s - name);
    if (s < e && *s == ';') {
        char c = 0;
        if (n == 2 && name[0] == 'l' && name[1] == 't') c = '<';
        if (n == 2 && name[0] == 'g' && name[1] == 't') c = '>';
        if (n == 3 && !memcmp(name, "amp", 3)) c = '&';
        if (n == 4 && !memcmp(name, "apos", 4)) c = '\'';
        if (n == 4 && !memcmp(name, "quot", 4)) c = '"';
        if (c) {
            *sp = s + 1;
            out[0] = c;
            return 1;
        }
        return xml_fail(p, *sp, TSG_EINVAL, "structure",
                        "undefined entity '&%.*s;' (only &lt; &gt; &amp; &apos; &quot; and "
                        "character references are allowed)",
                        NAME_ARG(n), name),
               0;
    }
    return xml_fail(p, *sp, TSG_EINVAL, "structure",
                    "a '&' must start a reference (&amp; &lt; &#N; …)"),
           0;
}

/*
 * Decodes the attribute value or text s[0..n) into out, which has room for n
 * bytes (a decoded value is never longer than its source): references are
 * replaced; in an attribute value each literal TAB, LF, CR and CR LF becomes
 * a space (XML attribute-value normalisation), in text CR LF and CR become LF.
 * Returns the decoded length, or SIZE_MAX after setting the error.
 */
static size_t xml_decode(xml_parser *p, const char *s, size_t n, char *out, int attr)
{
    const char *e = s + n;
    size_t o = 0;
    while (s < e) {
        const char *run = s;
        while (s < e && !(CLS(*s) & C_ATTR_SPEC)) s++;
        memcpy(out + o, run, (size_t)(s - run));
        o += (size_t)(s - run);
        if (s >= e) break;
        char c = *s;
        if (c == '&') {
            int k = xml_decode_ref(p, &s, e, out + o);
            if (!k) return SIZE_MAX;
            o += (size_t)k;
        } else if (c == '\r') {
            out[o++] = attr ? ' ' : '\n';
            s++;
            if (s < e && *s == '\n') s++;
        } else if (c == '<') {
            xml_fail(p, s, TSG_EINVAL, "structure", "'<' is not allowed in an attribute value");
            return SIZE_MAX;
        } else {
            out[o++] = attr ? ' ' : c;
            s++;
        }
    }
    return o;
}

/* Decodes attribute a into p->tmp (NUL-terminated); SIZE_MAX on error. */
static size_t xml_attr_tmp(xml_parser *p, const xml_attr *a)
{
    if (grow((void **)&p->tmp, &p->tmpcap, (size_t)a->val_len + 1, 1)) {
        xml_nomem(p);
        return SIZE_MAX;
    }
    size_t n = xml_decode(p, a->val, a->val_len, p->tmp, 1);
    if (n != SIZE_MAX) p->tmp[n] = '\0';
    return n;
}

/* ------------------------------------------------------------------------
 * Namespaces
 * ------------------------------------------------------------------------ */

static uint8_t xml_ns_of_uri(const char *s, size_t n)
{
    if (n == sizeof NS_URI_FHIR - 1 && !memcmp(s, NS_URI_FHIR, n)) return NS_FHIR;
    if (n == sizeof NS_URI_XHTML - 1 && !memcmp(s, NS_URI_XHTML, n)) return NS_XHTML;
    if (n == sizeof NS_URI_XML - 1 && !memcmp(s, NS_URI_XML, n)) return NS_XML;
    if (n == sizeof NS_URI_XSI - 1 && !memcmp(s, NS_URI_XSI, n)) return NS_XSI;
    if (n == 0) return NS_NONE;
    return NS_OTHER;
}

static const char *xml_ns_name(uint8_t ns)
{
    switch (ns) {
    case NS_NONE:
        return "no namespace";
    case NS_FHIR:
        return "the FHIR namespace " NS_URI_FHIR;
    case NS_XHTML:
        return "the XHTML namespace " NS_URI_XHTML;
    case NS_XML:
        return "the XML namespace";
    case NS_XSI:
        return "the XML Schema instance namespace";
    default:
        return "a foreign namespace";
    }
}

/* The namespace bound to prefix (len 0: the default namespace); -1 when unbound. */
static int xml_ns_lookup(const xml_parser *p, const char *prefix, size_t len)
{
    for (size_t i = p->nns; i-- > 0;) {
        const ns_binding *b = &p->ns[i];
        if (b->prefix_len == len && (len == 0 || !memcmp(b->prefix, prefix, len))) return b->ns;
    }
    if (len == 0) return NS_NONE;
    if (len == 3 && !memcmp(prefix, "xml", 3)) return NS_XML;
    return -1;
}

/* ------------------------------------------------------------------------
 * Tags
 * ------------------------------------------------------------------------ */

static inline const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (CLS(*s) & C_WS)) s++;
    return s;
}

/* Scans a name at s; returns its end (s itself when there is none). */
static inline const char *scan_name(const char *s, const char *end)
{
    if (s >= end || !(CLS(*s) & C_NAME_START)) return s;
    s++;
    while (s < end && (CLS(*s) & C_NAME)) s++;
    return s;
}

/* Splits a qualified name; returns the prefix length (0 if none) or -1 if malformed. */
static int split_qname(const char *name, uint32_t len, uint32_t *prefix_len)
{
    const char *colon = NULL;
    for (uint32_t i = 0; i < len; i++)
        if (name[i] == ':') {
            colon = name + i;
            break;
        }
    *prefix_len = 0;
    if (!colon) return 0;
    uint32_t k = (uint32_t)(colon - name);
    if (k == 0 || k + 1 == len || memchr(colon + 1, ':', len - k - 1)) return -1;
    if (!(CLS(colon[1]) & C_NAME_START)) return -1;
    *prefix_len = k;
    return 0;
}

/*
 * True when attribute i of a tag with n attributes has the name of an earlier
 * one. Few attributes are compared pairwise; many go through a small hash
 * table (p->attr_slots), so that a tag full of attributes stays linear.
 */
static int xml_attr_seen(xml_parser *p, uint32_t n, uint32_t i)
{
    const xml_attr *a = &p->attrs[i];
    if (n <= 8) {
        for (uint32_t j = 0; j < i; j++)
            if (p->attrs[j].name_len == a->name_len &&
                !memcmp(p->attrs[j].name, a->name, a->name_len))
                return 1;
        return 0;
    }
    if (i == 0) memset(p->attr_slots, 0, sizeof p->attr_slots);
    uint32_t h = 2166136261u;
    for (uint32_t k = 0; k < a->name_len; k++) h = (h ^ (unsigned char)a->name[k]) * 16777619u;
    for (uint32_t k = h % XML_ATTR_SLOTS;; k = (k + 1) % XML_ATTR_SLOTS) {
        uint8_t s = p->attr_slots[k];
        if (!s) {
            p->attr_slots[k] = (uint8_t)(i + 1);
            return 0;
        }
        const xml_attr *b = &p->attrs[s - 1];
        if (b->name_len == a->name_len && !memcmp(b->name, a->name, a->name_len)) return 1;
    }
}

/*
 * Reads the start tag at p->p ('<' + a name start) into t and p->attrs,
 * pushes its namespace declarations and resolves the element's namespace.
 * Leaves p->p after the '>'.
 */
static tsg_rc xml_read_start_tag(xml_parser *p, xml_tag *t)
{
    const char *s = p->p + 1, *end = p->end;
    t->at = p->p;
    t->name = s;
    s = scan_name(s, end);
    t->name_len = (uint32_t)(s - t->name);
    t->nattrs = 0;
    t->empty = 0;
    t->ns_mark = p->nns;
    if (!t->name_len) return xml_fail(p, t->at, TSG_EINVAL, "structure", "malformed start tag");
    for (;;) {
        const char *ws = s;
        s = skip_ws(s, end);
        if (s >= end)
            return xml_fail(p, t->at, TSG_EINVAL, "structure", "the start tag <%.*s is not closed",
                            NAME_ARG(t->name_len), t->name);
        if (*s == '>') {
            s++;
            break;
        }
        if (*s == '/') {
            if (s + 1 < end && s[1] == '>') {
                s += 2;
                t->empty = 1;
                break;
            }
            return xml_fail(p, s, TSG_EINVAL, "structure", "expected '/>' in the tag <%.*s",
                            NAME_ARG(t->name_len), t->name);
        }
        const char *aname = s;
        s = scan_name(s, end);
        if (s == aname || ws == aname)
            return xml_fail(p, aname, TSG_EINVAL, "structure", "malformed attribute in <%.*s",
                            NAME_ARG(t->name_len), t->name);
        if (t->nattrs == XML_MAX_ATTRS)
            return xml_fail(p, aname, TSG_ELIMIT, "too-costly",
                            "the element <%.*s> has more than %d attributes", NAME_ARG(t->name_len),
                            t->name, XML_MAX_ATTRS);
        xml_attr *a = &p->attrs[t->nattrs++];
        a->name = aname;
        a->name_len = (uint32_t)(s - aname);
        s = skip_ws(s, end);
        if (s >= end || *s != '=')
            return xml_fail(p, s, TSG_EINVAL, "structure", "expected '=' after attribute %.*s",
                            NAME_ARG(a->name_len), a->name);
        s = skip_ws(s + 1, end);
        if (s >= end || (*s != '"' && *s != '\''))
            return xml_fail(p, s, TSG_EINVAL, "structure",
                            "the value of attribute %.*s must be quoted", NAME_ARG(a->name_len),
                            a->name);
        const char q = *s;
        const char *qe = s + 1;
        a->plain = 1;
        for (;;) {
            qe = find_attr_special(qe, end, q);
            if (qe >= end)
                return xml_fail(p, s, TSG_EINVAL, "structure",
                                "the value of attribute %.*s is not closed", NAME_ARG(a->name_len),
                                a->name);
            if (*qe == q) break;
            if (*qe == '<')
                return xml_fail(p, qe, TSG_EINVAL, "structure",
                                "'<' is not allowed in an attribute value");
            a->plain = 0; /* a reference or TAB/LF/CR: decode it */
            qe++;
        }
        a->val = s + 1;
        a->val_len = (uint32_t)(qe - a->val);
        s = qe + 1;
    }
    p->p = s;

    /* qualified names, duplicates and namespace declarations */
    uint32_t prefix_len;
    if (split_qname(t->name, t->name_len, &prefix_len))
        return xml_fail(p, t->at, TSG_EINVAL, "structure", "malformed qualified name '%.*s'",
                        NAME_ARG(t->name_len), t->name);
    for (uint32_t i = 0; i < t->nattrs; i++) {
        xml_attr *a = &p->attrs[i];
        if (split_qname(a->name, a->name_len, &a->prefix_len))
            return xml_fail(p, a->name, TSG_EINVAL, "structure", "malformed qualified name '%.*s'",
                            NAME_ARG(a->name_len), a->name);
        if (xml_attr_seen(p, t->nattrs, i))
            return xml_fail(p, a->name, TSG_EINVAL, "structure", "attribute %.*s appears twice",
                            NAME_ARG(a->name_len), a->name);
        a->is_ns = a->name_len >= 5 && !memcmp(a->name, "xmlns", 5) &&
                   (a->name_len == 5 || a->prefix_len == 5);
        if (!a->is_ns) continue;
        const char *uri = a->val;
        size_t urilen = a->val_len;
        if (!a->plain) {
            urilen = xml_attr_tmp(p, a);
            if (urilen == SIZE_MAX) return p->rc;
            uri = p->tmp;
        }
        uint8_t ns = xml_ns_of_uri(uri, urilen);
        const char *prefix = a->name + 6;
        uint32_t plen = a->name_len == 5 ? 0 : a->name_len - 6;
        if (plen && ns == NS_NONE)
            return xml_fail(p, a->name, TSG_EINVAL, "structure",
                            "the namespace prefix %.*s cannot be bound to an empty URI",
                            NAME_ARG(plen), prefix);
        if ((plen == 5 && !memcmp(prefix, "xmlns", 5)) ||
            (plen == 3 && !memcmp(prefix, "xml", 3) && ns != NS_XML) ||
            (ns == NS_XML && !(plen == 3 && !memcmp(prefix, "xml", 3))))
            return xml_fail(p, a->name, TSG_EINVAL, "structure",
                            "the reserved namespace prefixes xml and xmlns cannot be rebound");
        if (p->nns == p->capns && grow((void **)&p->ns, &p->capns, p->nns + 1, sizeof *p->ns))
            return xml_nomem(p);
        p->ns[p->nns++] = (ns_binding){prefix, plen, ns};
    }
    int ns = xml_ns_lookup(p, t->name, prefix_len);
    if (ns < 0)
        return xml_fail(p, t->at, TSG_EINVAL, "structure", "the namespace prefix %.*s is not bound",
                        NAME_ARG(prefix_len), t->name);
    t->ns = (uint8_t)ns;
    t->local = prefix_len ? t->name + prefix_len + 1 : t->name;
    t->local_len = prefix_len ? t->name_len - prefix_len - 1 : t->name_len;
    return TSG_OK;
}

/* Reads the end tag at p->p ("</") that must close `name`; leaves p->p after '>'. */
static tsg_rc xml_read_end_tag(xml_parser *p, const char *name, uint32_t len)
{
    const char *at = p->p, *s = p->p + 2, *end = p->end;
    const char *n = s;
    s = scan_name(s, end);
    if ((uint32_t)(s - n) != len || memcmp(n, name, len))
        return xml_fail(p, at, TSG_EINVAL, "structure", "expected </%.*s>, found </%.*s>",
                        NAME_ARG(len), name, NAME_ARG(s - n), n);
    s = skip_ws(s, end);
    if (s >= end || *s != '>')
        return xml_fail(p, at, TSG_EINVAL, "structure", "malformed end tag </%.*s", NAME_ARG(len),
                        name);
    p->p = s + 1;
    return TSG_OK;
}

/* Skips the comment at p->p ("<!--"). */
static tsg_rc xml_skip_comment(xml_parser *p)
{
    const char *s = p->p + 4;
    const char *e = memmem(s, (size_t)(p->end - s), "--", 2);
    if (!e) return xml_fail(p, p->p, TSG_EINVAL, "structure", "the comment is not closed");
    if (e + 2 >= p->end || e[2] != '>')
        return xml_fail(p, e, TSG_EINVAL, "structure", "'--' is not allowed inside a comment");
    p->p = e + 3;
    return TSG_OK;
}

static int starts(const char *s, const char *end, const char *lit, size_t n)
{
    return (size_t)(end - s) >= n && !memcmp(s, lit, n);
}

/* The error for "<!…" that is neither a comment nor (where allowed) CDATA. */
static tsg_rc xml_fail_markup(xml_parser *p)
{
    if (starts(p->p, p->end, "<!DOCTYPE", 9))
        return xml_fail(p, p->p, TSG_EINVAL, "security",
                        "DOCTYPE is not allowed (FHIR XML has no DTD; entity declarations and "
                        "external entities are refused)");
    if (starts(p->p, p->end, "<![CDATA[", 9))
        return xml_fail(p, p->p, TSG_EINVAL, "structure",
                        "CDATA sections are only allowed inside the narrative div");
    if (starts(p->p, p->end, "<!ENTITY", 8))
        return xml_fail(p, p->p, TSG_EINVAL, "security", "entity declarations are not allowed");
    return xml_fail(p, p->p, TSG_EINVAL, "structure", "markup declarations are not allowed");
}

static tsg_rc xml_fail_pi(xml_parser *p)
{
    if (starts(p->p, p->end, "<?xml", 5) && (p->end - p->p == 5 || (CLS(p->p[5]) & C_WS)))
        return xml_fail(p, p->p, TSG_EINVAL, "structure",
                        "the XML declaration must be at the very start of the document");
    return xml_fail(p, p->p, TSG_EINVAL, "structure",
                    "processing instructions are not allowed (only the <?xml …?> declaration)");
}

/* ------------------------------------------------------------------------
 * XHTML: the narrative div, re-serialised
 * ------------------------------------------------------------------------ */

/* What a narrative may hold (txt-1): the basic HTML formatting elements and
 * attributes of HTML 4.0 chapters 7-11 and 15, <a>, images, style attributes;
 * the lists of the FHIR validator. Space-separated, each name followed by a space. */
/* The XHTML names a narrative may use (FHIR R4 narrative rules, as the
 * reference validator's lists), compared by length first: a scan of one
 * space-separated string with strstr was 30 % of validating a resource. */
typedef struct xname {
    const char *s;
    unsigned char n;
} xname;
#define XN(s)                                                                                      \
    {                                                                                              \
        s, (unsigned char)(sizeof s - 1)                                                           \
    }
static const xname XHTML_ELEMENT_NAMES[] = {
    XN("p"),          XN("br"),    XN("div"),     XN("h1"),    XN("h2"),      XN("h3"),
    XN("h4"),         XN("h5"),    XN("h6"),      XN("a"),     XN("span"),    XN("b"),
    XN("em"),         XN("i"),     XN("strong"),  XN("small"), XN("big"),     XN("tt"),
    XN("dfn"),        XN("q"),     XN("var"),     XN("abbr"),  XN("acronym"), XN("cite"),
    XN("blockquote"), XN("hr"),    XN("address"), XN("bdo"),   XN("kbd"),     XN("sub"),
    XN("sup"),        XN("code"),  XN("samp"),    XN("img"),   XN("map"),     XN("area"),
    XN("pre"),        XN("ul"),    XN("ol"),      XN("li"),    XN("dl"),      XN("dt"),
    XN("dd"),         XN("table"), XN("caption"), XN("thead"), XN("tbody"),   XN("tfoot"),
    XN("colgroup"),   XN("col"),   XN("tr"),      XN("th"),    XN("td"),      XN("ins"),
    XN("del"),        XN("s"),     XN("u"),       XN("font"),  XN("center"),
};
static const xname XHTML_ATTRIBUTE_NAMES[] = {
    XN("title"),    XN("style"),     XN("class"),    XN("id"),          XN("lang"),
    XN("dir"),      XN("accesskey"), XN("tabindex"), XN("name"),        XN("href"),
    XN("target"),   XN("rel"),       XN("rev"),      XN("charset"),     XN("hreflang"),
    XN("type"),     XN("shape"),     XN("coords"),   XN("src"),         XN("alt"),
    XN("longdesc"), XN("height"),    XN("width"),    XN("usemap"),      XN("ismap"),
    XN("align"),    XN("valign"),    XN("border"),   XN("cellpadding"), XN("cellspacing"),
    XN("summary"),  XN("frame"),     XN("rules"),    XN("abbr"),        XN("axis"),
    XN("headers"),  XN("scope"),     XN("rowspan"),  XN("colspan"),     XN("span"),
    XN("char"),     XN("charoff"),   XN("datetime"), XN("cite"),        XN("start"),
    XN("value"),    XN("compact"),   XN("nowrap"),   XN("bgcolor"),     XN("color"),
    XN("face"),     XN("size"),      XN("clear"),    XN("noshade"),     XN("hspace"),
    XN("vspace"),   XN("xmlns"),
};
#undef XN

/* True when name[0..len) is one of list[0..n). */
static int name_in(const char *name, size_t len, const xname *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].n == len && list[i].s[0] == name[0] && !memcmp(list[i].s, name, len)) return 1;
    return 0;
}
#define XHTML_ELEMENTS                                                                             \
    XHTML_ELEMENT_NAMES, sizeof XHTML_ELEMENT_NAMES / sizeof XHTML_ELEMENT_NAMES[0]
#define XHTML_ATTRIBUTES                                                                           \
    XHTML_ATTRIBUTE_NAMES, sizeof XHTML_ATTRIBUTE_NAMES / sizeof XHTML_ATTRIBUTE_NAMES[0]

/* Appends to the re-serialised div; out is NULL when only checking (model_check_xhtml). */
static inline void xput(tsg_buf *out, const char *s, size_t n)
{
    if (out) tsg_buf_append(out, s, n);
}

static inline void xputc(tsg_buf *out, char c)
{
    if (out) tsg_buf_putc(out, c);
}

/*
 * Appends the XHTML text at p->p, up to the next '<', to out: references
 * decoded and & < > re-escaped, CR LF and CR turned into LF. Leaves p->p at
 * the '<' (or the end of the text).
 */
static tsg_rc xhtml_text(xml_parser *p, tsg_buf *out)
{
    const char *s = p->p, *e = p->end;
    for (;;) {
        const char *run = s;
        s = find_text_special(s, e);
        if (s > run) xput(out, run, (size_t)(s - run));
        if (s >= e || *s == '<') break;
        if (*s == '&') {
            char u[4];
            int k = xml_decode_ref(p, &s, e, u);
            if (!k) return p->rc;
            if (out) model_xml_escape(out, u, (size_t)k, 0);
        } else if (*s == '>') {
            xput(out, "&gt;", 4);
            s++;
        } else { /* CR */
            xputc(out, '\n');
            s++;
            if (s < e && *s == '\n') s++;
        }
    }
    p->p = s;
    return TSG_OK;
}

/* Writes `<local attrs` (the root div with the XHTML namespace declaration). */
static tsg_rc xhtml_open_tag(xml_parser *p, const xml_tag *t, int root, tsg_buf *out)
{
    if (t->ns != NS_XHTML)
        return xml_fail(p, t->at, TSG_EINVAL, "structure",
                        "element <%.*s> is in %s; the narrative may only hold XHTML elements",
                        NAME_ARG(t->name_len), t->name, xml_ns_name(t->ns));
    if (t->local != t->name) p->x_verbatim = 0;
    if (p->x_html) {
        if (!name_in(t->local, t->local_len, XHTML_ELEMENTS))
            return xml_fail(p, t->at, TSG_EINVAL, "value",
                            "element <%.*s> is not one of the basic HTML formatting elements a "
                            "narrative may hold (txt-1)",
                            NAME_ARG(t->local_len), t->local);
    }
    xputc(out, '<');
    xput(out, t->local, t->local_len);
    if (root) xput(out, " xmlns=\"" NS_URI_XHTML "\"", sizeof NS_URI_XHTML + 8);
    for (uint32_t i = 0; i < t->nattrs; i++) {
        const xml_attr *a = &p->attrs[i];
        /* Elements are written unprefixed in the default namespace the root
         * declares, and no attribute may carry a prefix other than xml: (FHIR
         * forbids xlink and friends in the narrative), so no namespace
         * declaration is needed in the output. */
        if (a->is_ns) {
            if (a->name_len != 5 || xml_ns_lookup(p, NULL, 0) != NS_XHTML) p->x_verbatim = 0;
            continue;
        }
        if (a->prefix_len && xml_ns_lookup(p, a->name, a->prefix_len) != NS_XML)
            return xml_fail(p, a->name, TSG_EINVAL, "structure",
                            "attribute %.*s is not allowed in the narrative (XHTML attributes "
                            "have no namespace prefix; only xml:lang and xml:space may have one)",
                            NAME_ARG(a->name_len), a->name);
        if (p->x_html && !a->prefix_len && !name_in(a->name, a->name_len, XHTML_ATTRIBUTES))
            return xml_fail(p, a->name, TSG_EINVAL, "value",
                            "attribute %.*s is not allowed in a narrative (txt-1: no scripts, "
                            "event handlers or forms)",
                            NAME_ARG(a->name_len), a->name);
        xputc(out, ' ');
        xput(out, a->name, a->name_len);
        xput(out, "=\"", 2);
        if (a->plain) {
            if (out) model_xml_escape(out, a->val, a->val_len, 1);
        } else {
            size_t n = xml_attr_tmp(p, a);
            if (n == SIZE_MAX) return p->rc;
            if (out) model_xml_escape(out, p->tmp, n, 1);
        }
        xputc(out, '"');
    }
    return TSG_OK;
}

/*
 * Reads the XHTML element whose start tag `t` was just read (p->p after it)
 * with all its content, and appends it re-serialised to out: local names, the
 * XHTML namespace declared on the root only, attributes kept, text and
 * attribute values re-escaped minimally, comments dropped, CDATA turned into
 * text. `depth` is the nesting depth of t in the document. The caller has
 * checked that t is the root div in the XHTML namespace. With out NULL the
 * div is only checked.
 */
static tsg_rc xhtml_read(xml_parser *p, const xml_tag *t, size_t depth, tsg_buf *out)
{
    tsg_rc rc = xhtml_open_tag(p, t, 1, out);
    if (rc) return rc;
    if (t->empty) {
        xput(out, "/>", 2);
        p->nns = t->ns_mark;
        return TSG_OK;
    }
    xputc(out, '>');
    size_t base = p->nxopen;
    if (grow((void **)&p->xopen, &p->capxopen, base + 1, sizeof *p->xopen)) return xml_nomem(p);
    p->xopen[p->nxopen++] = (xhtml_open){t->name, t->name_len, t->ns_mark};
    const char *end = p->end;
    while (p->nxopen > base) {
        if ((rc = xhtml_text(p, out))) return rc;
        const char *lt = p->p;
        if (lt >= end) {
            const xhtml_open *o = &p->xopen[p->nxopen - 1];
            return xml_fail(p, end, TSG_EINVAL, "structure", "the element <%.*s> is not closed",
                            NAME_ARG(o->name_len), o->name);
        }
        char c = lt + 1 < end ? lt[1] : '\0';
        if (c == '/') {
            xhtml_open *o = &p->xopen[p->nxopen - 1];
            if ((rc = xml_read_end_tag(p, o->name, o->name_len))) return rc;
            const char *local = memchr(o->name, ':', o->name_len);
            local = local ? local + 1 : o->name;
            xput(out, "</", 2);
            xput(out, local, o->name_len - (size_t)(local - o->name));
            xputc(out, '>');
            p->nns = o->ns_mark;
            p->nxopen--;
        } else if (c == '!') {
            if (starts(lt, end, "<!--", 4)) {
                if ((rc = xml_skip_comment(p))) return rc;
            } else if (starts(lt, end, "<![CDATA[", 9)) {
                const char *cs = lt + 9;
                const char *ce = memmem(cs, (size_t)(end - cs), "]]>", 3);
                if (!ce)
                    return xml_fail(p, lt, TSG_EINVAL, "structure",
                                    "the CDATA section is not closed");
                /* CDATA is literal text: only line ends are normalised */
                for (const char *r = cs; r < ce;) {
                    const char *cr = memchr(r, '\r', (size_t)(ce - r));
                    const char *stop = cr ? cr : ce;
                    if (out) model_xml_escape(out, r, (size_t)(stop - r), 0);
                    if (!cr) break;
                    xputc(out, '\n');
                    r = cr + 1 + (cr + 1 < ce && cr[1] == '\n');
                }
                p->p = ce + 3;
            } else {
                return xml_fail_markup(p);
            }
        } else if (c == '?') {
            return xml_fail_pi(p);
        } else {
            if (depth + (p->nxopen - base) > p->lim->max_depth)
                return xml_fail(p, lt, TSG_ELIMIT, "too-costly",
                                "elements are nested deeper than max_depth (%u)",
                                (unsigned)p->lim->max_depth);
            xml_tag k;
            if ((rc = xml_read_start_tag(p, &k))) return rc;
            if ((rc = xhtml_open_tag(p, &k, 0, out))) return rc;
            if (k.empty) {
                xput(out, "/>", 2);
                p->nns = k.ns_mark;
            } else {
                xputc(out, '>');
                if (grow((void **)&p->xopen, &p->capxopen, p->nxopen + 1, sizeof *p->xopen))
                    return xml_nomem(p);
                p->xopen[p->nxopen++] = (xhtml_open){k.name, k.name_len, k.ns_mark};
            }
        }
        if (out && tsg_buf_rc(out)) break;
    }
    if (!out) return TSG_OK;
    if (tsg_buf_rc(out) == TSG_ELIMIT)
        return xml_fail(p, t->at, TSG_ELIMIT, "too-costly",
                        "the narrative div is longer than max_string_bytes (%zu)",
                        p->lim->max_string_bytes);
    if (tsg_buf_rc(out)) return xml_nomem(p);
    return TSG_OK;
}

/* True when the start tag t is an unprefixed div that itself declares the
 * XHTML namespace as the default (`<div xmlns="http://www.w3.org/1999/xhtml"`,
 * whatever the spacing and quotes): its bytes then mean the same anywhere. */
static int div_declares_xhtml(const xml_parser *p, const xml_tag *t)
{
    if (t->local != t->name) return 0;
    for (size_t i = t->ns_mark; i < p->nns; i++)
        if (p->ns[i].prefix_len == 0 && p->ns[i].ns == NS_XHTML) return 1;
    return 0;
}

/*
 * Reads the narrative div whose start tag t was just read into n->value.
 *
 * A div that is already self-contained XHTML in the form the model keeps —
 * its start tag is `<div` declaring xmlns="http://www.w3.org/1999/xhtml" itself, and no
 * element inside has a prefix or declares a namespace other than XHTML — is
 * kept byte for byte as written: every XML reader gives it the same meaning
 * wherever it is embedded, and a div our writer inserted verbatim (from JSON)
 * comes back unchanged. This is the usual case and costs one checking pass.
 * Any other div (namespace inherited or prefixed) is read a second time and
 * re-serialised by xhtml_read.
 */
static tsg_rc xml_read_div(xml_parser *p, const xml_tag *t, fhir_node *n)
{
    size_t depth = p->nframes + 1, max = p->lim->max_string_bytes;
    const char *start = t->at;
    xml_tag again;
    tsg_rc rc;
    if (div_declares_xhtml(p, t)) {
        p->x_verbatim = 1;
        if ((rc = xhtml_read(p, t, depth, NULL))) return rc;
        if (p->x_verbatim) {
            size_t len = (size_t)(p->p - start);
            if (len > max)
                return xml_fail(p, start, TSG_ELIMIT, "too-costly",
                                "the narrative div is longer than max_string_bytes (%zu)", max);
            char *v = tsg_arena_strndup(p->a, start, len);
            if (!v) return xml_nomem(p);
            n->value = v;
            n->value_len = (uint32_t)len;
            return TSG_OK;
        }
        /* read it again, re-serialising; the namespace declarations of the
         * start tag were popped with it and are pushed again */
        p->p = start;
        if ((rc = xml_read_start_tag(p, &again))) return rc;
        t = &again;
    }
    tsg_buf_reset(&p->xhtml);
    if ((rc = xhtml_read(p, t, depth, &p->xhtml))) return rc;
    char *v = tsg_arena_strndup(p->a, p->xhtml.data, p->xhtml.len);
    if (!v) return xml_nomem(p);
    n->value = v;
    n->value_len = (uint32_t)p->xhtml.len;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * FHIR elements
 * ------------------------------------------------------------------------ */

/*
 * Decodes the value of attribute a into a NUL-terminated arena string and
 * checks it as a value of type t (non-empty; lexical form of numbers and
 * booleans). Returns the string, or NULL after setting the error.
 */
static const char *xml_attr_value(xml_parser *p, const xml_attr *a, const model_type *t,
                                  uint32_t *len)
{
    char *v = tsg_arena_alloc(p->a, (size_t)a->val_len + 1);
    if (!v) {
        xml_nomem(p);
        return NULL;
    }
    size_t n = a->val_len;
    if (a->plain) {
        memcpy(v, a->val, n);
    } else {
        n = xml_decode(p, a->val, a->val_len, v, 1);
        if (n == SIZE_MAX) return NULL;
    }
    v[n] = '\0';
    if (n > p->lim->max_string_bytes) {
        xml_fail(p, a->val, TSG_ELIMIT, "too-costly",
                 "the value of attribute %.*s is longer than max_string_bytes (%zu)",
                 NAME_ARG(a->name_len), a->name, p->lim->max_string_bytes);
        return NULL;
    }
    if (n == 0) {
        xml_fail(p, a->val, TSG_EINVAL, "value",
                 "attribute %.*s must not be empty (leave the element out instead)",
                 NAME_ARG(a->name_len), a->name);
        return NULL;
    }
    if (model_check_lexical(t, v, n, p->err) != TSG_OK) {
        xml_locate(p, a->val, TSG_EINVAL);
        return NULL;
    }
    *len = (uint32_t)n;
    return v;
}

/*
 * True for xsi:schemaLocation, which much FHIR XML in the field carries on its
 * root element: a hint for schema validators, not data. It is accepted there
 * and dropped (JSON has no place for it); anywhere else it is an unknown
 * attribute like any other.
 */
static int xml_is_schema_location(xml_parser *p, const xml_attr *a)
{
    static const char local[] = "schemaLocation";
    return a->prefix_len && a->name_len - a->prefix_len - 1 == sizeof local - 1 &&
           !memcmp(a->name + a->prefix_len + 1, local, sizeof local - 1) &&
           xml_ns_lookup(p, a->name, a->prefix_len) == NS_XSI;
}

static tsg_rc xml_fail_attribute(xml_parser *p, const xml_attr *a, const char *where)
{
    return xml_fail(p, a->name, TSG_EINVAL, "structure", "unknown attribute %.*s on %s",
                    NAME_ARG(a->name_len), a->name, where);
}

/*
 * Copies the children of node `node` (scratch[kids..top)) into one arena
 * array and pops them. The first nattr of them came from attributes (id,
 * url) and are merged into definition order with the element children.
 */
static tsg_rc xml_finish_kids(xml_parser *p, size_t node, size_t kids, unsigned nattr)
{
    size_t nk = p->nstack - kids;
    if (nk) {
        fhir_node *arr = tsg_arena_alloc(p->a, nk * sizeof *arr);
        if (!arr) return xml_nomem(p);
        const fhir_node *src = &p->stack[kids];
        if (nattr == 0 || nk == nattr || src[nattr - 1].elem->index < src[nattr].elem->index) {
            memcpy(arr, src, nk * sizeof *arr);
        } else {
            size_t i = 0, j = nattr, o = 0;
            while (i < nattr && j < nk)
                arr[o++] = src[i].elem->index < src[j].elem->index ? src[i++] : src[j++];
            while (i < nattr) arr[o++] = src[i++];
            while (j < nk) arr[o++] = src[j++];
        }
        p->stack[node].kids = arr;
        p->stack[node].nkids = (uint32_t)nk;
    }
    p->nstack = kids;
    return TSG_OK;
}

static int xml_has_content(const fhir_node *n)
{
    return n->value != NULL || n->nkids > 0;
}

static tsg_rc xml_fail_empty(xml_parser *p, const char *at, const char *name, size_t len)
{
    return xml_fail(p, at, TSG_EINVAL, "required",
                    "element <%.*s> has neither a value nor children (leave it out instead)",
                    NAME_ARG(len), name);
}

/* Opens the resource element inside a container frame f. */
static tsg_rc xml_open_contained(xml_parser *p, xml_frame *f, const xml_tag *t)
{
    if (t->ns != NS_FHIR)
        return xml_fail(p, t->at, TSG_EINVAL, "structure",
                        "element <%.*s> is in %s, not in the FHIR namespace " NS_URI_FHIR,
                        NAME_ARG(t->name_len), t->name, xml_ns_name(t->ns));
    if (f->has_resource)
        return xml_fail(p, t->at, TSG_EINVAL, "structure", "<%.*s> holds more than one resource",
                        NAME_ARG(f->name_len), f->name);
    const model_type *rt = model_resource_find(t->local, t->local_len);
    if (!rt)
        return xml_fail(p, t->at, TSG_EINVAL, "structure", "unknown resource type '%.*s'",
                        NAME_ARG(t->local_len), t->local);
    if (!model_type_is(rt, f->type))
        return xml_fail(p, t->at, TSG_EINVAL, "structure",
                        "a %s is not allowed here (must be a %s)", rt->name, f->type->name);
    for (uint32_t i = 0; i < t->nattrs; i++)
        if (!p->attrs[i].is_ns) return xml_fail_attribute(p, &p->attrs[i], "a resource element");
    if (p->nframes + 1 > p->lim->max_depth)
        return xml_fail(p, t->at, TSG_ELIMIT, "too-costly",
                        "elements are nested deeper than max_depth (%u)",
                        (unsigned)p->lim->max_depth);
    p->stack[f->node].type = rt;
    f->has_resource = 1;
    if (t->empty) {
        p->nns = t->ns_mark;
        return TSG_OK;
    }
    size_t node = f->node;
    xml_frame *r = push_frame(p);
    if (!r) return xml_nomem(p);
    *r = (xml_frame){.name = t->name,
                     .name_len = t->name_len,
                     .type = rt,
                     .node = node,
                     .kids = p->nstack,
                     .ns_mark = t->ns_mark,
                     .kind = FR_RESOURCE};
    return TSG_OK;
}

/* Opens element t, a child of the top frame. */
static tsg_rc xml_open_element(xml_parser *p, const xml_tag *t)
{
    xml_frame *f = &p->frames[p->nframes - 1];
    if (f->kind == FR_CONTAINER) return xml_open_contained(p, f, t);

    const model_type *ct = NULL;
    const model_elem *e = model_child(f->type, t->local, t->local_len, &ct);
    p->pend_name = t->local;
    p->pend_name_len = t->local_len;
    int is_div = e && (e->flags & MODEL_ELEM_XHTML);
    if (t->ns != NS_FHIR && !(is_div && t->ns == NS_XHTML))
        return xml_fail(p, t->at, TSG_EINVAL, "structure",
                        "element <%.*s> is in %s, not in the FHIR namespace " NS_URI_FHIR,
                        NAME_ARG(t->name_len), t->name, xml_ns_name(t->ns));
    if (!e)
        return xml_fail(p, t->at, TSG_EINVAL, "structure", "unknown element '%.*s' in %s",
                        NAME_ARG(t->local_len), t->local, f->type->name);
    if (e->flags & MODEL_ELEM_XML_ATTR)
        return xml_fail(p, t->at, TSG_EINVAL, "structure",
                        "'%s' must be written as an attribute, not as an element", e->name);
    if (is_div && t->ns != NS_XHTML)
        return xml_fail(p, t->at, TSG_EINVAL, "structure",
                        "the narrative div must be in the XHTML namespace " NS_URI_XHTML);

    /* definition order, cardinality */
    uint32_t pos = 0;
    if (e == f->last) {
        pos = f->count++;
        p->pend_elem = e, p->pend_type = ct, p->pend_pos = pos;
        if (pos >= e->max)
            return xml_fail(p, t->at, TSG_EINVAL, "structure",
                            "element '%.*s' appears more than %u time%s", NAME_ARG(t->local_len),
                            t->local, e->max, e->max == 1 ? "" : "s");
        if (f->count > p->lim->max_array_items)
            return xml_fail(p, t->at, TSG_ELIMIT, "too-costly",
                            "element '%.*s' repeats more than max_array_items (%u) times",
                            NAME_ARG(t->local_len), t->local, (unsigned)p->lim->max_array_items);
    } else {
        /* an element out of order has no index of its own: the path names them all */
        if (f->last && e->index < f->last->index)
            return xml_fail(p, t->at, TSG_EINVAL, "structure",
                            "element '%.*s' is out of order: it must come before '%s' in %s",
                            NAME_ARG(t->local_len), t->local, f->last->name, f->type->name);
        p->pend_elem = e, p->pend_type = ct, p->pend_pos = 0;
        if (e->max == 0)
            return xml_fail(p, t->at, TSG_EINVAL, "structure",
                            "element '%.*s' is not allowed in %s", NAME_ARG(t->local_len), t->local,
                            f->type->name);
        f->last = e;
        f->count = 1;
    }
    if (p->nframes + 1 > p->lim->max_depth)
        return xml_fail(p, t->at, TSG_ELIMIT, "too-costly",
                        "elements are nested deeper than max_depth (%u)",
                        (unsigned)p->lim->max_depth);

    size_t node = p->nstack;
    fhir_node *n = push_node(p);
    if (!n) return xml_nomem(p);
    *n = (fhir_node){.elem = e, .type = ct, .pos = pos};
    tsg_rc rc;

    if (is_div) {
        if ((rc = xml_read_div(p, t, &p->stack[node]))) return rc;
        p->pend_elem = NULL, p->pend_name = NULL;
        return TSG_OK;
    }

    if (ct->kind == MODEL_RESOURCE) { /* a container: contained, entry.resource, … */
        for (uint32_t i = 0; i < t->nattrs; i++)
            if (!p->attrs[i].is_ns)
                return xml_fail_attribute(p, &p->attrs[i], "a resource container");
        if (t->empty)
            return xml_fail(p, t->at, TSG_EINVAL, "required", "<%.*s> must hold a resource",
                            NAME_ARG(t->name_len), t->name);
        xml_frame *c = push_frame(p);
        if (!c) return xml_nomem(p);
        *c = (xml_frame){.name = t->name,
                         .name_len = t->name_len,
                         .type = ct,
                         .elem = e,
                         .node = node,
                         .kids = p->nstack,
                         .ns_mark = t->ns_mark,
                         .pos = pos,
                         .kind = FR_CONTAINER};
        p->pend_elem = NULL, p->pend_name = NULL;
        return TSG_OK;
    }

    /* attributes: value (primitives), id and url (XML_ATTR elements) */
    unsigned nattr = 0;
    for (uint32_t i = 0; i < t->nattrs; i++) {
        const xml_attr *a = &p->attrs[i];
        if (a->is_ns) continue;
        if (a->prefix_len) return xml_fail_attribute(p, a, ct->name);
        if (a->name_len == 5 && !memcmp(a->name, "value", 5) && model_is_primitive(ct)) {
            uint32_t len;
            const char *v = xml_attr_value(p, a, ct, &len);
            if (!v) return p->rc;
            p->stack[node].value = v;
            p->stack[node].value_len = len;
            continue;
        }
        const model_type *at = NULL;
        const model_elem *ae = model_child(ct, a->name, a->name_len, &at);
        if (!ae || !(ae->flags & MODEL_ELEM_XML_ATTR)) return xml_fail_attribute(p, a, ct->name);
        uint32_t len;
        const char *v = xml_attr_value(p, a, at, &len);
        if (!v) return p->rc;
        fhir_node *k = push_node(p);
        if (!k) return xml_nomem(p);
        *k = (fhir_node){.elem = ae, .type = at, .value = v, .value_len = len};
        if (nattr && k[-1].elem->index > ae->index) { /* keep definition order */
            fhir_node tmp = k[-1];
            k[-1] = *k;
            *k = tmp;
        }
        nattr++;
    }

    if (t->empty) {
        if (!xml_has_content(&p->stack[node]) && p->nstack == node + 1)
            return xml_fail_empty(p, t->at, t->name, t->name_len);
        if ((rc = xml_finish_kids(p, node, node + 1, nattr))) return rc;
        p->nns = t->ns_mark;
        p->pend_elem = NULL, p->pend_name = NULL;
        return TSG_OK;
    }
    xml_frame *c = push_frame(p);
    if (!c) return xml_nomem(p);
    *c = (xml_frame){.name = t->name,
                     .name_len = t->name_len,
                     .type = ct,
                     .elem = e,
                     .node = node,
                     .kids = node + 1,
                     .ns_mark = t->ns_mark,
                     .pos = pos,
                     .kind = FR_ELEMENT,
                     .nattr_kids = (uint8_t)nattr};
    p->pend_elem = NULL, p->pend_name = NULL;
    return TSG_OK;
}

/* Closes the top frame at its end tag (p->p at "</"). */
static tsg_rc xml_close_element(xml_parser *p)
{
    xml_frame *f = &p->frames[p->nframes - 1];
    const char *at = p->p;
    tsg_rc rc = xml_read_end_tag(p, f->name, f->name_len);
    if (rc) return rc;
    switch (f->kind) {
    case FR_CONTAINER:
        if (!f->has_resource)
            return xml_fail(p, at, TSG_EINVAL, "required", "<%.*s> must hold a resource",
                            NAME_ARG(f->name_len), f->name);
        break;
    case FR_ELEMENT:
        if (p->stack[f->node].value == NULL && p->nstack == f->kids)
            return xml_fail_empty(p, at, f->name, f->name_len);
        /* fall through */
    default:
        if ((rc = xml_finish_kids(p, f->node, f->kids, f->nattr_kids))) return rc;
        break;
    }
    p->nns = f->ns_mark;
    p->nframes--;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * The document
 * ------------------------------------------------------------------------ */

/* Reads the `<?xml version="1.0" encoding="UTF-8"?>` declaration at p->p. */
static tsg_rc xml_read_decl(xml_parser *p)
{
    const char *s = p->p + 5, *end = p->end, *at = p->p;
    static const char *const names[] = {"version", "encoding", "standalone"};
    int next = 0;
    for (;;) {
        const char *ws = s;
        s = skip_ws(s, end);
        if (starts(s, end, "?>", 2)) break;
        const char *n = s;
        s = scan_name(s, end);
        size_t nl = (size_t)(s - n);
        int k = next;
        while (k < 3 && !(strlen(names[k]) == nl && !memcmp(names[k], n, nl))) k++;
        if (ws == n || nl == 0 || k == 3 || (next == 0 && k != 0))
            return xml_fail(p, at, TSG_EINVAL, "structure", "malformed XML declaration");
        next = k + 1;
        s = skip_ws(s, end);
        if (s >= end || *s != '=')
            return xml_fail(p, at, TSG_EINVAL, "structure", "malformed XML declaration");
        s = skip_ws(s + 1, end);
        if (s >= end || (*s != '"' && *s != '\''))
            return xml_fail(p, at, TSG_EINVAL, "structure", "malformed XML declaration");
        const char *qe = memchr(s + 1, *s, (size_t)(end - s - 1));
        if (!qe) return xml_fail(p, at, TSG_EINVAL, "structure", "malformed XML declaration");
        const char *v = s + 1;
        size_t vl = (size_t)(qe - v);
        if (k == 0 && !(vl >= 3 && v[0] == '1' && v[1] == '.'))
            return xml_fail(p, v, TSG_EINVAL, "structure", "unsupported XML version '%.*s'",
                            NAME_ARG(vl), v);
        if (k == 1 && !(vl == 5 && !strncasecmp(v, "UTF-8", 5)))
            return xml_fail(p, v, TSG_EINVAL, "structure",
                            "encoding '%.*s' is not supported: FHIR XML must be UTF-8",
                            NAME_ARG(vl), v);
        s = qe + 1;
    }
    if (next == 0) return xml_fail(p, at, TSG_EINVAL, "structure", "malformed XML declaration");
    p->p = s + 2;
    return TSG_OK;
}

/* Skips whitespace and comments (prolog and epilog); stops at anything else. */
static tsg_rc xml_skip_misc(xml_parser *p)
{
    for (;;) {
        p->p = skip_ws(p->p, p->end);
        if (!starts(p->p, p->end, "<!--", 4)) return TSG_OK;
        tsg_rc rc = xml_skip_comment(p);
        if (rc) return rc;
    }
}

/* Reads the root resource element at p->p into the scratch stack. */
static tsg_rc xml_open_root(xml_parser *p)
{
    xml_tag t;
    tsg_rc rc = xml_read_start_tag(p, &t);
    if (rc) return rc;
    if (t.ns != NS_FHIR)
        return xml_fail(p, t.at, TSG_EINVAL, "structure",
                        "the root element <%.*s> is in %s, not in the FHIR namespace " NS_URI_FHIR,
                        NAME_ARG(t.name_len), t.name, xml_ns_name(t.ns));
    const model_type *rt = model_resource_find(t.local, t.local_len);
    if (!rt)
        return xml_fail(p, t.at, TSG_EINVAL, "structure", "unknown resource type '%.*s'",
                        NAME_ARG(t.local_len), t.local);
    for (uint32_t i = 0; i < t.nattrs; i++)
        if (!p->attrs[i].is_ns && !xml_is_schema_location(p, &p->attrs[i]))
            return xml_fail_attribute(p, &p->attrs[i], "a resource element");
    fhir_node *n = push_node(p);
    xml_frame *f = push_frame(p);
    if (!n || !f) return xml_nomem(p);
    *n = (fhir_node){.type = rt};
    *f = (xml_frame){.name = t.name,
                     .name_len = t.name_len,
                     .type = rt,
                     .node = 0,
                     .kids = 1,
                     .ns_mark = t.ns_mark,
                     .kind = FR_RESOURCE};
    if (t.empty) p->nframes = 0, p->nns = t.ns_mark;
    return TSG_OK;
}

static tsg_rc xml_read_document(xml_parser *p)
{
    tsg_rc rc;
    if (starts(p->p, p->end, "<?xml", 5) && p->end - p->p > 5 && (CLS(p->p[5]) & C_WS) &&
        (rc = xml_read_decl(p)))
        return rc;
    if ((rc = xml_skip_misc(p))) return rc;
    if (p->p >= p->end)
        return xml_fail(p, p->p, TSG_EINVAL, "structure", "no root element: the document is empty");
    if (*p->p != '<')
        return xml_fail(p, p->p, TSG_EINVAL, "structure",
                        "text is not allowed before the root element");
    if (p->end - p->p < 2) return xml_fail(p, p->p, TSG_EINVAL, "structure", "malformed start tag");
    if (p->p[1] == '!') return xml_fail_markup(p);
    if (p->p[1] == '?') return xml_fail_pi(p);
    if ((rc = xml_open_root(p))) return rc;

    const char *end = p->end;
    while (p->nframes) {
        const char *s = skip_ws(p->p, end);
        p->p = s;
        if (s >= end) {
            const xml_frame *f = &p->frames[p->nframes - 1];
            return xml_fail(p, s, TSG_EINVAL, "structure",
                            "unexpected end of the document: <%.*s> is not closed",
                            NAME_ARG(f->name_len), f->name);
        }
        if (*s != '<')
            return xml_fail(p, s, TSG_EINVAL, "structure",
                            "text is not allowed here: FHIR XML carries values in the value "
                            "attribute (only the narrative div holds text)");
        char c = s + 1 < end ? s[1] : '\0';
        if (c == '/') {
            rc = xml_close_element(p);
        } else if (c == '!') {
            rc = starts(s, end, "<!--", 4) ? xml_skip_comment(p) : xml_fail_markup(p);
        } else if (c == '?') {
            rc = xml_fail_pi(p);
        } else {
            xml_tag t;
            rc = xml_read_start_tag(p, &t);
            if (!rc) rc = xml_open_element(p, &t);
        }
        if (rc) return rc;
    }

    if ((rc = xml_skip_misc(p))) return rc;
    if (p->p < end) {
        if (starts(p->p, end, "<?", 2)) return xml_fail_pi(p);
        if (starts(p->p, end, "<!", 2)) return xml_fail_markup(p);
        return xml_fail(p, p->p, TSG_EINVAL, "structure",
                        "only comments and whitespace may follow the root element");
    }
    return TSG_OK;
}

static void xml_parser_init(xml_parser *p, tsg_arena *a, const char *text, size_t len,
                            const tsg_limits *lim, tsg_error *err)
{
    memset(p, 0, offsetof(xml_parser, attrs));
    p->text = text;
    p->end = text + len;
    p->p = text;
    p->a = a;
    p->lim = lim ? lim : &tsg_limits_default;
    p->err = err;
    p->pend_elem = NULL;
    p->pend_name = NULL;
    p->tmp = NULL;
    p->tmpcap = 0;
    p->x_html = 0;
    tsg_buf_init(&p->xhtml, p->lim->max_string_bytes ? p->lim->max_string_bytes : 1);
}

static void xml_parser_free(xml_parser *p)
{
    free(p->stack);
    free(p->frames);
    free(p->ns);
    free(p->xopen);
    free(p->tmp);
    tsg_buf_free(&p->xhtml);
}

/* Checks the characters of the whole text; the error points at the bad byte. */
static tsg_rc xml_check_chars(xml_parser *p)
{
    size_t len = (size_t)(p->end - p->text);
    size_t ok = xml_chars_valid_prefix(p->text, len);
    if (ok == len) return TSG_OK;
    unsigned char c = (unsigned char)p->text[ok];
    if (c < 0x20)
        return xml_fail(p, p->text + ok, TSG_EINVAL, "structure",
                        "control character U+%04X is not allowed in XML", c);
    return xml_fail(p, p->text + ok, TSG_EINVAL, "structure",
                    "invalid UTF-8 (or a non-character) at byte %zu", ok);
}

/* ------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------ */

tsg_rc fhir_xml_parse(tsg_arena *a, const char *text, size_t len, const tsg_limits *lim,
                      fhir_node **out, tsg_error *err)
{
    *out = NULL;
    tsg_error_clear(err);
    if (!lim) lim = &tsg_limits_default;
    if (len > lim->max_body_bytes || len > UINT32_MAX)
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "the XML body (%zu bytes) is larger than max_body_bytes (%zu)", len,
                             lim->max_body_bytes);
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, len -= 3;

    xml_parser *p = malloc(sizeof *p);
    if (!p) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    xml_parser_init(p, a, text, len, lim, err);
    tsg_rc rc = xml_check_chars(p);
    if (!rc) rc = xml_read_document(p);
    if (!rc) {
        fhir_node *root = tsg_arena_alloc(a, sizeof *root);
        if (!root) {
            rc = xml_nomem(p);
        } else {
            *root = p->stack[0];
            *out = root;
        }
    }
    xml_parser_free(p);
    free(p);
    return rc;
}

static tsg_rc xhtml_check(const char *s, size_t n, int html, tsg_error *err);

tsg_rc model_check_xhtml(const char *s, size_t n, tsg_error *err)
{
    return xhtml_check(s, n, 0, err);
}

tsg_rc model_xhtml_html_checks(const char *s, size_t n, tsg_error *err)
{
    return xhtml_check(s, n, 1, err);
}

static tsg_rc xhtml_check(const char *s, size_t n, int html, tsg_error *err)
{
    xml_parser *p = malloc(sizeof *p);
    if (!p) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    xml_parser_init(p, NULL, s, n, NULL, err);
    p->x_html = html;
    tsg_rc rc = xml_check_chars(p);
    if (!rc) {
        p->p = skip_ws(p->p, p->end);
        if (p->p + 1 >= p->end || *p->p != '<' || !(CLS(p->p[1]) & C_NAME_START)) {
            rc = xml_fail(p, p->p, TSG_EINVAL, "value",
                          "the narrative must be one XHTML div element "
                          "(<div xmlns=\"" NS_URI_XHTML "\">…</div>)");
        } else {
            xml_tag t;
            rc = xml_read_start_tag(p, &t);
            if (!rc && !(t.ns == NS_XHTML && t.local_len == 3 && !memcmp(t.local, "div", 3)))
                rc = xml_fail(p, t.at, TSG_EINVAL, "value",
                              "the narrative must be a div element in the XHTML namespace "
                              "(<div xmlns=\"" NS_URI_XHTML "\">), not <%.*s> in %s",
                              NAME_ARG(t.name_len), t.name, xml_ns_name(t.ns));
            if (!rc) rc = xhtml_read(p, &t, 1, NULL);
            if (!rc) {
                p->p = skip_ws(p->p, p->end);
                if (p->p < p->end)
                    rc = xml_fail(p, p->p, TSG_EINVAL, "value",
                                  "nothing may follow the narrative div");
            }
        }
    }
    xml_parser_free(p);
    free(p);
    return rc;
}
