/*
 * xml_compare.c — XML element-tree comparison for the conformance test,
 * on libxml2 (independent of gateway/model/xml_read.c).
 *
 * Documents are read with XML_PARSE_NONET and without NOENT, DTDLOAD,
 * DTDATTR, XINCLUDE or HUGE: nothing is fetched, no entity is expanded
 * beyond the predefined ones and character references, and a document with
 * a DOCTYPE is refused outright (the corpus has none).
 *
 * An element's content is reduced to a list of "significant children":
 * elements, and text runs. A text run joins adjacent text and CDATA nodes
 * across comments and processing instructions (which are dropped), so
 * `a<!-- c -->b` reads as "ab". Whitespace-only runs are dropped. Below an
 * XHTML element, runs are compared after collapsing each run of XML
 * whitespace to one space and trimming both ends.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "conformance.h"

#define XHTML_NS "http://www.w3.org/1999/xhtml"

/* Safe reading: see the file comment. NOBLANKS drops ignorable blanks early;
 * whitespace-only text is ignored by the comparison anyway. */
#define CMP_XML_OPTIONS                                                                            \
    (XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

static void set_str(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_str(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

static void silent_errors(void *ctx, const char *msg, ...)
{
    (void)ctx, (void)msg;
}

void cmp_xml_init(void)
{
    xmlInitParser();
    xmlSetGenericErrorFunc(NULL, silent_errors);
}

void cmp_xml_cleanup(void)
{
    xmlCleanupParser();
}

/*
 * Reads a document; NULL with err filled when it is not well-formed or has
 * a DOCTYPE. The caller frees the document with xmlFreeDoc().
 */
static xmlDocPtr read_doc(const char *s, size_t n, char *err, size_t cap)
{
    if (n > INT_MAX) {
        set_str(err, cap, "document too large");
        return NULL;
    }
    xmlResetLastError();
    xmlDocPtr doc = xmlReadMemory(s, (int)n, "noname.xml", NULL, CMP_XML_OPTIONS);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        if (e && e->message) {
            size_t ml = strlen(e->message);
            while (ml && (e->message[ml - 1] == '\n' || e->message[ml - 1] == ' ')) ml--;
            set_str(err, cap, "line %d column %d: %.*s", e->line, e->int2, (int)ml, e->message);
        } else {
            set_str(err, cap, "not well-formed XML");
        }
        return NULL;
    }
    if (doc->intSubset || doc->extSubset) {
        set_str(err, cap, "has a DOCTYPE (refused)");
        xmlFreeDoc(doc);
        return NULL;
    }
    if (!xmlDocGetRootElement(doc)) {
        set_str(err, cap, "no root element");
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

/* ---- significant children ---- */

typedef struct sig_item {
    xmlNodePtr elem; /* an element, or NULL for a text run */
    char *text;      /* text run (malloc'd), normalised per the XHTML rule when xhtml */
    size_t len;
} sig_item;

typedef struct sig_list {
    sig_item *items;
    size_t n, cap;
    int failed;
} sig_list;

static void sig_push(sig_list *l, sig_item it)
{
    if (l->failed) goto drop;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sig_item *p = realloc(l->items, cap * sizeof *p);
        if (!p) {
            l->failed = 1;
            goto drop;
        }
        l->items = p;
        l->cap = cap;
    }
    l->items[l->n++] = it;
    return;
drop:
    free(it.text);
}

static void sig_free(sig_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->items[i].text);
    free(l->items);
}

static int is_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Ends the current text run: drops it when whitespace-only, else
 * normalises it (XHTML) and appends it. run is consumed. */
static void flush_run(sig_list *l, char *run, size_t len, int xhtml)
{
    size_t i = 0;
    while (i < len && is_xml_space(run[i])) i++;
    if (i == len) {
        free(run);
        return;
    }
    if (xhtml) {
        size_t o = 0;
        int space = 0;
        for (i = 0; i < len; i++) {
            if (is_xml_space(run[i])) {
                space = 1;
                continue;
            }
            if (space && o > 0) run[o++] = ' ';
            space = 0;
            run[o++] = run[i];
        }
        len = o;
        run[len] = '\0';
    }
    sig_push(l, (sig_item){.elem = NULL, .text = run, .len = len});
}

/* Collects the significant children of parent; other node kinds (entity
 * references) are reported through *odd. */
static void collect(xmlNodePtr parent, int xhtml, sig_list *l, xmlNodePtr *odd)
{
    char *run = NULL;
    size_t len = 0;
    *odd = NULL;
    for (xmlNodePtr c = parent->children; c; c = c->next) {
        switch (c->type) {
        case XML_TEXT_NODE:
        case XML_CDATA_SECTION_NODE: {
            size_t add = c->content ? strlen((const char *)c->content) : 0;
            char *p = realloc(run, len + add + 1);
            if (!p) {
                l->failed = 1;
                break;
            }
            run = p;
            memcpy(run + len, c->content, add);
            len += add;
            run[len] = '\0';
            break;
        }
        case XML_COMMENT_NODE:
        case XML_PI_NODE:
            break;
        case XML_ELEMENT_NODE:
            if (run) {
                flush_run(l, run, len, xhtml);
                run = NULL;
                len = 0;
            }
            sig_push(l, (sig_item){.elem = c, .text = NULL, .len = 0});
            break;
        default:
            if (!*odd) *odd = c;
            break;
        }
    }
    if (run) flush_run(l, run, len, xhtml);
}

/* ---- comparison ---- */

typedef struct xcmp {
    unsigned flags;
    char path[CMP_PATH_MAX];
    size_t plen;
    cmp_diff *d;
} xcmp;

static size_t xpush(xcmp *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t xpush(xcmp *x, const char *fmt, ...)
{
    size_t old = x->plen;
    va_list ap;
    va_start(ap, fmt);
    if (old < CMP_PATH_MAX) {
        int w = vsnprintf(x->path + old, CMP_PATH_MAX - old, fmt, ap);
        if (w > 0) x->plen = old + (size_t)w < CMP_PATH_MAX ? old + (size_t)w : CMP_PATH_MAX - 1;
    }
    va_end(ap);
    return old;
}

static void xpop(xcmp *x, size_t old)
{
    x->plen = old;
    x->path[old] = '\0';
}

static const char *ns_of(xmlNodePtr n)
{
    return n->ns && n->ns->href ? (const char *)n->ns->href : NULL;
}

static const char *attr_ns(xmlAttrPtr a)
{
    return a->ns && a->ns->href ? (const char *)a->ns->href : NULL;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* `name`, or `{ns}name` when show_ns. */
static void elem_label(xmlNodePtr n, int show_ns, char *out, size_t cap)
{
    if (show_ns)
        set_str(out, cap, "<{%s}%s>", ns_of(n) ? ns_of(n) : "", (const char *)n->name);
    else
        set_str(out, cap, "<%s>", (const char *)n->name);
}

static int xdiffer(xcmp *x, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int xdiffer(xcmp *x, const char *kind, const char *fmt, ...)
{
    va_list ap;
    char msg[CMP_TEXT_MAX - 80];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_str(x->d->path, sizeof x->d->path, "%s", x->path);
    set_str(x->d->kind, sizeof x->d->kind, "%s", kind);
    set_str(x->d->what, sizeof x->d->what, "%s: %s", kind, msg);
    return CMP_DIFFERENT;
}

static xmlAttrPtr find_attr(xmlNodePtr n, xmlAttrPtr like)
{
    for (xmlAttrPtr a = n->properties; a; a = a->next)
        if (strcmp((const char *)a->name, (const char *)like->name) == 0 &&
            same_str(attr_ns(a), attr_ns(like)))
            return a;
    return NULL;
}

static int cmp_attrs(xcmp *x, xmlNodePtr a, xmlNodePtr b)
{
    int rc = CMP_EQUAL;
    for (xmlAttrPtr pa = a->properties; pa && rc == CMP_EQUAL; pa = pa->next) {
        xmlAttrPtr pb = find_attr(b, pa);
        size_t old = xpush(x, ".@%s", (const char *)pa->name);
        xmlChar *va = xmlNodeGetContent((xmlNodePtr)pa);
        const char *sa = va ? (const char *)va : "";
        if (!pb) {
            char q[300];
            cmp_quote(sa, strlen(sa), 120, q, sizeof q);
            rc = xdiffer(x, "attribute missing in ours", "official has @%s=%s",
                         (const char *)pa->name, q);
        } else {
            xmlChar *vb = xmlNodeGetContent((xmlNodePtr)pb);
            const char *sb = vb ? (const char *)vb : "";
            size_t la = strlen(sa), lb = strlen(sb);
            int eq = la == lb && memcmp(sa, sb, la) == 0, numeric = -1;
            if (!eq && (x->flags & CMP_NUMERIC) && !pa->ns &&
                strcmp((const char *)pa->name, "value") == 0)
                eq = (numeric = cmp_decimal_equal(sa, la, sb, lb)) == 1;
            if (!eq) {
                char qa[300], qb[300];
                cmp_quote(sa, la, 120, qa, sizeof qa);
                cmp_quote(sb, lb, 120, qb, sizeof qb);
                rc = xdiffer(x, numeric == 0 ? "attribute differs in value" : "attribute differs",
                             "official %s, ours %s", qa, qb);
                cmp_quote(sa, la, 600, qa, sizeof qa);
                cmp_quote(sb, lb, 600, qb, sizeof qb);
                set_str(x->d->context, sizeof x->d->context, "official: %s\n    ours:     %s", qa,
                        qb);
            }
            xmlFree(vb);
        }
        xmlFree(va);
        xpop(x, old);
    }
    for (xmlAttrPtr pb = b->properties; pb && rc == CMP_EQUAL; pb = pb->next) {
        if (!find_attr(a, pb)) {
            size_t old = xpush(x, ".@%s", (const char *)pb->name);
            xmlChar *vb = xmlNodeGetContent((xmlNodePtr)pb);
            const char *sb = vb ? (const char *)vb : "";
            char q[300];
            cmp_quote(sb, strlen(sb), 120, q, sizeof q);
            rc = xdiffer(x, "attribute not in the official (extra in ours)", "ours has @%s=%s",
                         (const char *)pb->name, q);
            xmlFree(vb);
            xpop(x, old);
        }
    }
    return rc;
}

/* Pushes `.name` or `.name[k]` (k counts earlier same-named siblings; the
 * index is shown when the name repeats in either list). */
static size_t push_child(xcmp *x, const sig_list *la, const sig_list *lb, size_t i, xmlNodePtr e)
{
    size_t k = 0, same = 0;
    const sig_list *lists[2] = {la, lb};
    for (int w = 0; w < 2; w++) {
        size_t cnt = 0;
        for (size_t j = 0; j < lists[w]->n; j++) {
            xmlNodePtr o = lists[w]->items[j].elem;
            if (o && strcmp((const char *)o->name, (const char *)e->name) == 0) {
                if (w == 0 && j < i) k++;
                cnt++;
            }
        }
        if (cnt > same) same = cnt;
    }
    if (same > 1) return xpush(x, ".%s[%zu]", (const char *)e->name, k);
    return xpush(x, ".%s", (const char *)e->name);
}

static int cmp_elem(xcmp *x, xmlNodePtr a, xmlNodePtr b, int xhtml, unsigned depth);

static int cmp_children(xcmp *x, xmlNodePtr a, xmlNodePtr b, int xhtml, unsigned depth)
{
    sig_list la = {0}, lb = {0};
    xmlNodePtr odda, oddb;
    int rc = CMP_EQUAL;
    collect(a, xhtml, &la, &odda);
    collect(b, xhtml, &lb, &oddb);
    if (la.failed || lb.failed) {
        set_str(x->d->what, sizeof x->d->what, "out of memory");
        rc = CMP_ERROR;
        goto done;
    }
    if (odda || oddb) {
        rc = xdiffer(x, "unexpected node", "%s has a node of type %d", odda ? "official" : "ours",
                     (int)(odda ? odda : oddb)->type);
        goto done;
    }
    size_t n = la.n < lb.n ? la.n : lb.n;
    for (size_t i = 0; i < n && rc == CMP_EQUAL; i++) {
        sig_item *ia = &la.items[i], *ib = &lb.items[i];
        char q[300], l1[300], l2[300];
        if (ia->elem && ib->elem) {
            size_t old = push_child(x, &la, &lb, i, ia->elem);
            rc = cmp_elem(x, ia->elem, ib->elem, xhtml, depth + 1);
            xpop(x, old);
        } else if (!ia->elem && !ib->elem) {
            if (ia->len != ib->len || memcmp(ia->text, ib->text, ia->len) != 0) {
                size_t old = xpush(x, ".text()");
                size_t k = 0;
                while (k < ia->len && k < ib->len && ia->text[k] == ib->text[k]) k++;
                size_t from = k > 40 ? k - 40 : 0;
                cmp_quote(ia->text + from, ia->len - from, 100, l1, sizeof l1);
                cmp_quote(ib->text + from, ib->len - from, 100, l2, sizeof l2);
                rc = xdiffer(x, xhtml ? "narrative text differs" : "text differs",
                             "at character %zu: official %s%s, ours %s%s", k, from ? "…" : "", l1,
                             from ? "…" : "", l2);
                cmp_quote(ia->text, ia->len, 600, l1, sizeof l1);
                cmp_quote(ib->text, ib->len, 600, l2, sizeof l2);
                set_str(x->d->context, sizeof x->d->context, "official: %s\n    ours:     %s", l1,
                        l2);
                xpop(x, old);
            }
        } else {
            xmlNodePtr e = ia->elem ? ia->elem : ib->elem;
            sig_item *t = ia->elem ? ib : ia;
            elem_label(e, 0, l1, sizeof l1);
            cmp_quote(t->text, t->len, 100, q, sizeof q);
            rc = xdiffer(x, xhtml ? "narrative content differs" : "content differs",
                         "child %zu: official has %s %s, ours %s %s", i,
                         ia->elem ? "element" : "text", ia->elem ? l1 : q,
                         ib->elem ? "element" : "text", ib->elem ? l1 : q);
        }
    }
    if (rc == CMP_EQUAL && la.n != lb.n) {
        const sig_list *longer = la.n > lb.n ? &la : &lb;
        sig_item *extra = &longer->items[n];
        char what[300];
        if (extra->elem)
            elem_label(extra->elem, 0, what, sizeof what);
        else
            cmp_quote(extra->text, extra->len, 100, what, sizeof what);
        size_t old = extra->elem ? push_child(x, &la, &lb, n, extra->elem) : xpush(x, ".text()");
        if (la.n > lb.n)
            rc = xdiffer(x,
                         extra->elem ? (xhtml ? "narrative element missing in ours"
                                              : "element missing in ours")
                                     : "text missing in ours",
                         "official has %s %s (child %zu), ours has only %zu children",
                         extra->elem ? "element" : "text", what, n, lb.n);
        else
            rc = xdiffer(x,
                         extra->elem ? (xhtml ? "narrative element not in the official"
                                              : "element not in the official (extra in ours)")
                                     : "text not in the official (extra in ours)",
                         "ours has %s %s (child %zu), the official only %zu children",
                         extra->elem ? "element" : "text", what, n, la.n);
        xpop(x, old);
    }
done:
    sig_free(&la);
    sig_free(&lb);
    return rc;
}

static int cmp_elem(xcmp *x, xmlNodePtr a, xmlNodePtr b, int xhtml, unsigned depth)
{
    if (depth > 1000) return xdiffer(x, "nesting too deep", "more than 1000 levels");
    if (strcmp((const char *)a->name, (const char *)b->name) != 0 ||
        !same_str(ns_of(a), ns_of(b))) {
        char la[300], lb[300];
        int show_ns = !same_str(ns_of(a), ns_of(b));
        elem_label(a, show_ns, la, sizeof la);
        elem_label(b, show_ns, lb, sizeof lb);
        return xdiffer(x, show_ns ? "element namespace differs" : "element differs",
                       "official %s, ours %s", la, lb);
    }
    xhtml = xhtml || same_str(ns_of(a), XHTML_NS);
    int rc = cmp_attrs(x, a, b);
    if (rc == CMP_EQUAL) rc = cmp_children(x, a, b, xhtml, depth);
    return rc;
}

static int cmp_docs(const char *official, size_t no, const char *ours, size_t nu, unsigned flags,
                    const char *root_path, int force_xhtml, const char *what, cmp_diff *d)
{
    char err[CMP_TEXT_MAX / 2];
    int rc;
    cmp_diff_clear(d);
    xmlDocPtr da = read_doc(official, no, err, sizeof err);
    if (!da) {
        set_str(d->path, sizeof d->path, "%s", root_path ? root_path : "");
        set_str(d->kind, sizeof d->kind, "official %s unreadable", what);
        set_str(d->what, sizeof d->what, "the official %s is not readable XML: %s", what, err);
        return CMP_ERROR;
    }
    xmlDocPtr db = read_doc(ours, nu, err, sizeof err);
    if (!db) {
        xmlFreeDoc(da);
        set_str(d->path, sizeof d->path, "%s", root_path ? root_path : "");
        set_str(d->kind, sizeof d->kind, "our %s is not well-formed XML", what);
        set_str(d->what, sizeof d->what, "our %s is not well-formed XML: %s", what, err);
        return CMP_DIFFERENT;
    }
    xmlNodePtr ra = xmlDocGetRootElement(da), rb = xmlDocGetRootElement(db);
    xcmp x = {.flags = flags, .plen = 0, .d = d};
    xpush(&x, "%s", root_path ? root_path : (const char *)ra->name);
    rc = cmp_elem(&x, ra, rb, force_xhtml, 0);
    xmlFreeDoc(da);
    xmlFreeDoc(db);
    return rc;
}

int cmp_xml_documents(const char *official, size_t nofficial, const char *ours, size_t nours,
                      unsigned flags, const char *root_path, cmp_diff *d)
{
    return cmp_docs(official, nofficial, ours, nours, flags, root_path, 0, "XML", d);
}

int cmp_xhtml_strings(const char *official, size_t nofficial, const char *ours, size_t nours,
                      const char *path, cmp_diff *d)
{
    return cmp_docs(official, nofficial, ours, nours, 0, path, 1, "narrative", d);
}
