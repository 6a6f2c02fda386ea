/*
 * json_write.c — the in-memory tree as FHIR JSON.
 *
 * The canonical form tsunagu writes: `resourceType` first, then elements in
 * definition order (the order of a node's children); a primitive as its value
 * text (bare for numbers and booleans, so `1.50` stays `1.50`), its id and
 * extensions in the `_name` companion; repeating elements as arrays, with
 * `null` where one of `name`/`_name` has nothing for an item. Compact, or
 * indented by two spaces with FHIR_WRITE_PRETTY.
 */
#include "model_internal.h"

#include <stdint.h>
#include <string.h>

typedef struct jw {
    tsg_buf *b;
    int pretty;
    unsigned indent;
} jw;

static void newline(jw *w)
{
    if (!w->pretty) return;
    tsg_buf *b = w->b;
    if (tsg_buf_reserve(b, 1 + (size_t)w->indent * 2)) return;
    b->data[b->len++] = '\n';
    memset(b->data + b->len, ' ', (size_t)w->indent * 2);
    b->len += (size_t)w->indent * 2;
    b->data[b->len] = '\0';
}

static const char hexdig[] = "0123456789abcdef";

/* Appends s as a JSON string with quotes; escapes ", \ and control characters. */
static void put_string(tsg_buf *b, const char *s, size_t n)
{
    /* worst case 6 bytes per byte; reserve in one go for short strings */
    if (tsg_buf_reserve(b, n + 2)) return;
    b->data[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        /* skip 8 bytes at a time while none is '"', '\\' or < 0x20 */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            uint64_t lo = (w - 0x2020202020202020ull) & ~w & 0x8080808080808080ull;
            uint64_t q = w ^ 0x2222222222222222ull;
            q = (q - 0x0101010101010101ull) & ~q & 0x8080808080808080ull;
            uint64_t bs = w ^ 0x5C5C5C5C5C5C5C5Cull;
            bs = (bs - 0x0101010101010101ull) & ~bs & 0x8080808080808080ull;
            if (lo | q | bs) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        tsg_buf_append(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t en = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0';
            esc[4] = hexdig[c >> 4], esc[5] = hexdig[c & 15];
            en = 6;
        }
        tsg_buf_append(b, esc, en);
    }
    tsg_buf_append(b, s + run, n - run);
    tsg_buf_putc(b, '"');
}

static void put_key(jw *w, const char *name, size_t n, int ext, int *first)
{
    tsg_buf *b = w->b;
    if (!*first) tsg_buf_putc(b, ',');
    *first = 0;
    newline(w);
    if (tsg_buf_reserve(b, n + 5)) return;
    char *d = b->data + b->len;
    *d++ = '"';
    if (ext) *d++ = '_';
    memcpy(d, name, n);
    d += n;
    *d++ = '"';
    *d++ = ':';
    if (w->pretty) *d++ = ' ';
    b->len = (size_t)(d - b->data);
    b->data[b->len] = '\0';
}

static void put_value(jw *w, const fhir_node *n)
{
    if (n->type->flags & (MODEL_TYPE_JSON_NUMBER | MODEL_TYPE_JSON_BOOL))
        tsg_buf_append(w->b, n->value, n->value_len);
    else
        put_string(w->b, n->value, n->value_len);
}

static void write_object(jw *w, const fhir_node *n, int is_resource);

/* What one property of a group of same-element nodes writes. */
typedef enum part { PART_VALUE, PART_EXT, PART_COMPLEX } part;

static void write_item(jw *w, const fhir_node *k, part what)
{
    if (what == PART_COMPLEX)
        write_object(w, k, k->type->kind == MODEL_RESOURCE);
    else if (what == PART_VALUE && k->value)
        put_value(w, k);
    else if (what == PART_EXT && k->nkids)
        write_object(w, k, 0);
    else
        tsg_buf_append(w->b, "null", 4);
}

/* Writes kids[i..j) (one element) as the property `name` (`_name` for PART_EXT). */
static void write_property(jw *w, const fhir_node *kids, uint32_t i, uint32_t j, const char *name,
                           size_t nl, part what, int *first)
{
    int many = kids[i].elem->max != 1;
    put_key(w, name, nl, what == PART_EXT, first);
    if (many) tsg_buf_putc(w->b, '[');
    /* an array's items sit one level deeper; a single value goes on the
     * key's line at the key's level */
    if (many) w->indent++;
    for (uint32_t x = i; x < j; x++) {
        if (x > i) tsg_buf_putc(w->b, ',');
        if (many) newline(w);
        write_item(w, &kids[x], what);
    }
    if (many) w->indent--;
    if (many) {
        newline(w);
        tsg_buf_putc(w->b, ']');
    }
}

/* Writes the children of n as the members of an object (after the '{'). */
static void write_members(jw *w, const fhir_node *n, int first)
{
    uint32_t i = 0;
    while (i < n->nkids) {
        const fhir_node *k = &n->kids[i];
        uint32_t j = i + 1;
        while (j < n->nkids && n->kids[j].elem == k->elem) j++;
        char name[128];
        size_t nl = model_property_name(k->elem, k->type, name, sizeof name);
        if (k->type->kind == MODEL_PRIMITIVE) {
            int any_value = 0, any_ext = 0;
            for (uint32_t x = i; x < j; x++) {
                any_value |= n->kids[x].value != NULL;
                any_ext |= n->kids[x].nkids != 0;
            }
            if (any_value) write_property(w, n->kids, i, j, name, nl, PART_VALUE, &first);
            if (any_ext) write_property(w, n->kids, i, j, name, nl, PART_EXT, &first);
        } else {
            write_property(w, n->kids, i, j, name, nl, PART_COMPLEX, &first);
        }
        i = j;
    }
}

static void write_object(jw *w, const fhir_node *n, int is_resource)
{
    tsg_buf_putc(w->b, '{');
    w->indent++;
    int first = 1;
    if (is_resource) {
        static const char rt[] = "resourceType";
        put_key(w, rt, sizeof rt - 1, 0, &first);
        put_string(w->b, n->type->name, strlen(n->type->name));
    }
    write_members(w, n, first);
    w->indent--;
    newline(w);
    tsg_buf_putc(w->b, '}');
}

tsg_rc fhir_json_write(const fhir_node *root, tsg_buf *out, unsigned flags)
{
    jw w = {out, (flags & FHIR_WRITE_PRETTY) != 0, 0};
    write_object(&w, root, 1);
    if (w.pretty) tsg_buf_putc(out, '\n');
    return tsg_buf_rc(out);
}
