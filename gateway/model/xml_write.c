/*
 * xml_write.c — writes a fhir_node tree as FHIR XML (fhir_xml_write).
 *
 * The tree is already in definition order, so the writer is one recursive
 * walk that appends to the output buffer with memcpy (no printf):
 *
 *   <Patient xmlns="http://hl7.org/fhir">        the root declares the namespace
 *     <name id="n1">                            Element.id / Extension.url: attributes
 *       <given value="Taro"/>                   primitives: value attribute
 *     </name>
 *     <contained><Patient>…</Patient></contained>  containers: two elements, one node
 *     <text><div xmlns="http://www.w3.org/1999/xhtml">…</div></text>  verbatim
 *   </Patient>
 *
 * Attribute values escape & < > " and TAB LF CR (as character references, so
 * that they survive XML attribute-value normalisation when read back).
 */
#include "model.h"

#include <string.h>

/* ------------------------------------------------------------------------
 * Appending
 * ------------------------------------------------------------------------ */

/* Appends n bytes; on failure the buffer records why and later appends do nothing. */
static inline void put(tsg_buf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->cap - b->len <= n && tsg_buf_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

static const char spaces[] = "                                                                ";

/* A newline and two spaces per level. */
static void put_indent(tsg_buf *b, unsigned depth)
{
    put(b, "\n", 1);
    size_t n = (size_t)depth * 2;
    while (n) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        put(b, spaces, k);
        n -= k;
    }
}

/* Bytes that need a reference in an attribute value: & < > " and controls
 * (TAB LF CR would be normalised away by a reader if written as they are). */
static const uint8_t esc_attr[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20  " & */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, /* 0x30  < > */
};

/* In text: & < > and controls except TAB and LF (a literal CR would be read back as LF). */
static const uint8_t esc_text[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20  & */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, /* 0x30  < > */
};

void model_xml_escape(tsg_buf *b, const char *s, size_t n, int attr)
{
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t *esc = attr ? esc_attr : esc_text;
    const char *e = s + n;
    while (s < e) {
        const char *run = s;
        while (s < e && !esc[(unsigned char)*s]) s++;
        put(b, run, (size_t)(s - run));
        if (s >= e) break;
        switch (*s) {
        case '&':
            PUT_LIT(b, "&amp;");
            break;
        case '<':
            PUT_LIT(b, "&lt;");
            break;
        case '>':
            PUT_LIT(b, "&gt;");
            break;
        case '"':
            PUT_LIT(b, "&quot;");
            break;
        case '\t':
            PUT_LIT(b, "&#9;");
            break;
        case '\n':
            PUT_LIT(b, "&#10;");
            break;
        case '\r':
            PUT_LIT(b, "&#13;");
            break;
        default: {
            /* other controls cannot be represented in XML 1.0 (the readers refuse
             * them); written as a reference they make the output fail to parse
             * rather than change */
            unsigned char c = (unsigned char)*s;
            char ref[6] = {'&', '#', 'x', hex[c >> 4], hex[c & 15], ';'};
            put(b, ref, sizeof ref);
            break;
        }
        }
        s++;
    }
    if (!b->failed && b->data) b->data[b->len] = '\0';
}

static void put_name(tsg_buf *b, const fhir_node *k)
{
    const model_elem *e = k->elem;
    put(b, e->name, strlen(e->name));
    if (e->flags & MODEL_ELEM_CHOICE) {
        const char *t = k->type->name;
        char first = t[0] >= 'a' && t[0] <= 'z' ? (char)(t[0] - 'a' + 'A') : t[0];
        put(b, &first, 1);
        put(b, t + 1, strlen(t + 1));
    }
}

/* ------------------------------------------------------------------------
 * Elements
 * ------------------------------------------------------------------------ */

static void write_kids(tsg_buf *b, const fhir_node *n, unsigned depth, int pretty);

/* Writes `<Type>` children `</Type>` (no namespace: it is inherited). */
static void write_resource_body(tsg_buf *b, const fhir_node *n, unsigned depth, int pretty)
{
    const char *t = n->type->name;
    size_t tl = strlen(t);
    put(b, "<", 1);
    put(b, t, tl);
    if (!n->nkids) {
        PUT_LIT(b, "/>");
        return;
    }
    put(b, ">", 1);
    write_kids(b, n, depth + 1, pretty);
    if (pretty) put_indent(b, depth);
    PUT_LIT(b, "</");
    put(b, t, tl);
    put(b, ">", 1);
}

static void write_element(tsg_buf *b, const fhir_node *k, unsigned depth, int pretty)
{
    if (k->elem->flags & MODEL_ELEM_XHTML) {
        if (!k->value) return;
        if (pretty) put_indent(b, depth);
        put(b, k->value, k->value_len); /* already XHTML text with its namespace */
        return;
    }
    if (pretty) put_indent(b, depth);
    put(b, "<", 1);
    put_name(b, k);
    if (model_is_resource(k->type)) { /* contained, Bundle.entry.resource, … */
        put(b, ">", 1);
        if (pretty) put_indent(b, depth + 1);
        write_resource_body(b, k, depth + 1, pretty);
        if (pretty) put_indent(b, depth);
    } else {
        uint32_t nel = 0;
        for (uint32_t i = 0; i < k->nkids; i++) {
            const fhir_node *a = &k->kids[i];
            if (!(a->elem->flags & MODEL_ELEM_XML_ATTR)) {
                nel++;
                continue;
            }
            if (!a->value) continue;
            put(b, " ", 1);
            put(b, a->elem->name, strlen(a->elem->name));
            PUT_LIT(b, "=\"");
            model_xml_escape(b, a->value, a->value_len, 1);
            put(b, "\"", 1);
        }
        if (k->value && model_is_primitive(k->type)) {
            PUT_LIT(b, " value=\"");
            model_xml_escape(b, k->value, k->value_len, 1);
            put(b, "\"", 1);
        }
        if (nel == 0) {
            PUT_LIT(b, "/>");
            return;
        }
        put(b, ">", 1);
        write_kids(b, k, depth + 1, pretty);
        if (pretty) put_indent(b, depth);
    }
    PUT_LIT(b, "</");
    put_name(b, k);
    put(b, ">", 1);
}

/* Writes the element children of n (attributes were written with its start tag). */
static void write_kids(tsg_buf *b, const fhir_node *n, unsigned depth, int pretty)
{
    for (uint32_t i = 0; i < n->nkids; i++) {
        const fhir_node *k = &n->kids[i];
        if (k->elem->flags & MODEL_ELEM_XML_ATTR) continue;
        write_element(b, k, depth, pretty);
    }
}

/* ------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------ */

tsg_rc fhir_xml_write(const fhir_node *root, tsg_buf *out, unsigned flags)
{
    int pretty = (flags & FHIR_WRITE_PRETTY) != 0;
    if (flags & FHIR_WRITE_XML_DECL) {
        PUT_LIT(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        if (pretty) put(out, "\n", 1);
    }
    const char *t = root->type->name;
    size_t tl = strlen(t);
    put(out, "<", 1);
    put(out, t, tl);
    PUT_LIT(out, " xmlns=\"http://hl7.org/fhir\"");
    if (!root->nkids) {
        PUT_LIT(out, "/>");
    } else {
        put(out, ">", 1);
        write_kids(out, root, 1, pretty);
        if (pretty) put_indent(out, 0);
        PUT_LIT(out, "</");
        put(out, t, tl);
        put(out, ">", 1);
    }
    if (pretty) put(out, "\n", 1);
    if (!out->failed && out->data) out->data[out->len] = '\0';
    return tsg_buf_rc(out);
}
