/*
 * model_load.c — loads the compact R4 model embedded from profiles/r4/model.txt
 * and answers lookups on it (see model.h).
 *
 * ## The file format (written by gen/gen_r4_model.py)
 *
 * UTF-8 text, one record per line, fields separated by TAB; inside a field
 * `\\`, `\t`, `\n`, `\r` are escapes, `-` means "none".
 *
 *   tsunagu-model 1 4.0.1 <comment>                 header (format version 1)
 *   N <constraints> <type lines> <value-set lines>  counts (informative)
 *   K <key> <severity> <expression> <human>         a constraint; numbered from 0 in order
 *   T <name> <kind> <base> <flags> <url> <constraints> <system-type[;extras]> <regex>
 *                                                   a StructureDefinition; its elements follow
 *   B <path> <BackboneElement|Element> <constraints> a backbone of the last T; its elements follow
 *   E <name> <min> <max> <flags> <types> <binding> <constraints> <fixed> <pattern> <extras>
 *                                                   an element of the last T or B
 *   V <url> <ncodes|-> <why-unavailable|->          a value set of a required binding
 *   S <n> <system>                                  code system number n (used by C lines)
 *   C <n> <code>                                    a code of the last V in system n
 *
 * <constraints> is a comma list of K numbers. <types> is a comma list of
 * `code{profile|…}(target|…)`; a backbone or contentReference element names
 * the backbone's path as its type. <flags> of E: c choice, a XML attribute,
 * x xhtml, s summary, m modifier, M must-support; of T: A abstract.
 * <binding> is `strength|valueset-url`.
 *
 * The whole model is allocated once and lives as long as the process.
 */
#include "model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Embedded by model_data.S */
extern const char tsg_r4_model_text[];
extern const char tsg_r4_model_text_end[];

/* ------------------------------------------------------------------------
 * Hash tables
 * ------------------------------------------------------------------------ */

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    /* FNV-1a, 64 bit */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

typedef struct child_slot {
    const model_type *owner; /* NULL = empty */
    const char *name;        /* property name (NUL-terminated, owned by the model) */
    uint32_t len;
    const model_elem *elem;
    const model_type *type; /* concrete type for choices, else the element's type */
} child_slot;

typedef struct name_slot {
    const char *name;
    uint32_t len;
    const void *value;
} name_slot;

static struct {
    model m;
    child_slot *children;
    size_t children_mask;
    name_slot *types_by_name;
    size_t types_mask;
    name_slot *vs_by_url;
    size_t vs_mask;
} g;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static size_t pow2_at_least(size_t n)
{
    size_t p = 64;
    while (p < n) p <<= 1;
    return p;
}

static void die(const char *msg, unsigned line)
{
    fprintf(stderr, "tsunagu: the embedded R4 model is broken (line %u): %s\n", line, msg);
    abort();
}

static void name_put(name_slot *tab, size_t mask, const char *name, const void *value)
{
    size_t len = strlen(name);
    size_t i = hash_bytes(HASH_SEED, name, len) & mask;
    while (tab[i].name) {
        if (tab[i].len == len && memcmp(tab[i].name, name, len) == 0) return; /* first wins */
        i = (i + 1) & mask;
    }
    tab[i].name = name;
    tab[i].len = (uint32_t)len;
    tab[i].value = value;
}

static const void *name_get(const name_slot *tab, size_t mask, const char *name, size_t len)
{
    if (!tab) return NULL;
    size_t i = hash_bytes(HASH_SEED, name, len) & mask;
    while (tab[i].name) {
        if (tab[i].len == len && memcmp(tab[i].name, name, len) == 0) return tab[i].value;
        i = (i + 1) & mask;
    }
    return NULL;
}

static uint64_t child_hash(const model_type *owner, const char *name, size_t len)
{
    uint64_t h = HASH_SEED ^ ((uint64_t)owner->id * 0x9E3779B97F4A7C15ull);
    return hash_bytes(h, name, len);
}

static void child_put(const model_type *owner, const char *name, const model_elem *e,
                      const model_type *t)
{
    size_t len = strlen(name);
    size_t i = child_hash(owner, name, len) & g.children_mask;
    while (g.children[i].owner) {
        child_slot *s = &g.children[i];
        if (s->owner == owner && s->len == len && memcmp(s->name, name, len) == 0) return;
        i = (i + 1) & g.children_mask;
    }
    g.children[i] = (child_slot){owner, name, (uint32_t)len, e, t};
}

/* ------------------------------------------------------------------------
 * Line splitting
 * ------------------------------------------------------------------------ */

#define MAX_FIELDS 12

typedef struct line {
    unsigned no;
    int n;
    char *f[MAX_FIELDS];
} line;

/* Unescapes s in place (\\ \t \n \r); returns s, or NULL for "-". */
static char *field(char *s)
{
    if (s[0] == '-' && s[1] == '\0') return NULL;
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\\' && r[1]) {
            r++;
            *w++ = *r == 't' ? '\t' : *r == 'n' ? '\n' : *r == 'r' ? '\r' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return s;
}

/* Splits the text (a private copy) into lines of fields. */
static line *split_lines(char *text, size_t *nlines)
{
    size_t n = 0, cap = 16384;
    line *ls = malloc(cap * sizeof *ls);
    if (!ls) die("out of memory", 0);
    unsigned no = 0;
    char *p = text;
    while (*p) {
        char *eol = strchr(p, '\n');
        if (eol) *eol = '\0';
        no++;
        if (n == cap) {
            cap *= 2;
            ls = realloc(ls, cap * sizeof *ls);
            if (!ls) die("out of memory", no);
        }
        line *l = &ls[n++];
        l->no = no;
        l->n = 0;
        char *f = p;
        for (;;) {
            char *tab = strchr(f, '\t');
            if (l->n == MAX_FIELDS) die("too many fields", no);
            l->f[l->n++] = f;
            if (!tab) break;
            *tab = '\0';
            f = tab + 1;
        }
        if (!eol) break;
        p = eol + 1;
    }
    *nlines = n;
    return ls;
}

static uint32_t parse_u32(const char *s, unsigned no)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || end == s || v > UINT32_MAX) die("bad number", no);
    return (uint32_t)v;
}

/* Parses "1,5,9" into an array of constraint pointers. */
static const model_constraint *const *constraint_refs(const char *s, uint16_t *n, unsigned no)
{
    *n = 0;
    if (!s) return NULL;
    size_t count = 1;
    for (const char *p = s; *p; p++) count += *p == ',';
    const model_constraint **arr = malloc(count * sizeof *arr);
    if (!arr) die("out of memory", no);
    const char *p = s;
    while (*p) {
        char *end;
        unsigned long k = strtoul(p, &end, 10);
        if (end == p || k >= g.m.nconstraints) die("bad constraint reference", no);
        arr[(*n)++] = &g.m.constraints[k];
        p = *end == ',' ? end + 1 : end;
    }
    return arr;
}

/* Splits "a|b|c" in place into an array of strings. */
static const char *const *split_bar(char *s, uint16_t *n)
{
    size_t count = 1;
    for (char *p = s; *p; p++) count += *p == '|';
    const char **arr = malloc(count * sizeof *arr);
    if (!arr) die("out of memory", 0);
    *n = 0;
    for (;;) {
        arr[(*n)++] = s;
        char *bar = strchr(s, '|');
        if (!bar) break;
        *bar = '\0';
        s = bar + 1;
    }
    return arr;
}

static const char *xstrndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) die("out of memory", 0);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* model_type_find without the load check, for use while loading */
static const model_type *type_find(const char *name, size_t len)
{
    return name_get(g.types_by_name, g.types_mask, name, len);
}

static const model_valueset *valueset_find(const char *url)
{
    const char *bar = strchr(url, '|');
    size_t len = bar ? (size_t)(bar - url) : strlen(url);
    return name_get(g.vs_by_url, g.vs_mask, url, len);
}

static model_strength strength_of(const char *s, unsigned no)
{
    if (!strcmp(s, "required")) return MODEL_BIND_REQUIRED;
    if (!strcmp(s, "extensible")) return MODEL_BIND_EXTENSIBLE;
    if (!strcmp(s, "preferred")) return MODEL_BIND_PREFERRED;
    if (!strcmp(s, "example")) return MODEL_BIND_EXAMPLE;
    die("bad binding strength", no);
    return MODEL_BIND_NONE;
}

static int code_cmp(const void *a, const void *b)
{
    const model_code *x = a, *y = b;
    int c = strcmp(x->code, y->code);
    if (c) return c;
    if (!x->system || !y->system) return (x->system != NULL) - (y->system != NULL);
    return strcmp(x->system, y->system);
}

/* ------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------ */

static void load(void)
{
    size_t size = (size_t)(tsg_r4_model_text_end - tsg_r4_model_text);
    char *text = malloc(size + 1);
    if (!text) die("out of memory", 0);
    memcpy(text, tsg_r4_model_text, size);
    text[size] = '\0';
    size_t nlines;
    line *ls = split_lines(text, &nlines);
    if (nlines < 2 || strcmp(ls[0].f[0], "tsunagu-model") != 0 || ls[0].n < 2 ||
        strcmp(ls[0].f[1], "1") != 0)
        die("not a version 1 tsunagu model", 1);

    /* pass 1: count */
    size_t nk = 0, nt = 0, ne = 0, nv = 0, nc = 0, nsys = 0;
    for (size_t i = 1; i < nlines; i++) {
        switch (ls[i].f[0][0]) {
        case 'K':
            nk++;
            break;
        case 'T':
        case 'B':
            nt++;
            break;
        case 'E':
            ne++;
            break;
        case 'V':
            nv++;
            break;
        case 'C':
            nc++;
            break;
        case 'S':
            nsys++;
            break;
        default:
            break;
        }
    }
    model_constraint *cons = calloc(nk ? nk : 1, sizeof *cons);
    model_type *types = calloc(nt, sizeof *types);
    model_elem *elems = calloc(ne, sizeof *elems);
    model_valueset *vss = calloc(nv ? nv : 1, sizeof *vss);
    model_code *codes = calloc(nc ? nc : 1, sizeof *codes);
    const char **systems = calloc(nsys ? nsys : 1, sizeof *systems);
    if (!cons || !types || !elems || !vss || !codes || !systems) die("out of memory", 0);
    g.m.constraints = cons;
    g.m.types = types;
    g.m.valuesets = vss;

    g.types_mask = pow2_at_least(nt * 2) - 1;
    g.types_by_name = calloc(g.types_mask + 1, sizeof *g.types_by_name);
    g.vs_mask = pow2_at_least(nv * 2) - 1;
    g.vs_by_url = calloc(g.vs_mask + 1, sizeof *g.vs_by_url);
    if (!g.types_by_name || !g.vs_by_url) die("out of memory", 0);

    /* pass 2: constraints, types (names only), value sets */
    size_t ti = 0, vi = 0, ci = 0;
    model_type *cur_t = NULL;
    model_valueset *cur_v = NULL;
    for (size_t i = 1; i < nlines; i++) {
        line *l = &ls[i];
        switch (l->f[0][0]) {
        case 'K':
            if (l->n != 5) die("K needs 5 fields", l->no);
            cons[g.m.nconstraints++] =
                (model_constraint){field(l->f[1]), field(l->f[2]), field(l->f[3]), field(l->f[4])};
            break;
        case 'T': {
            if (l->n != 9) die("T needs 9 fields", l->no);
            cur_t = &types[ti];
            cur_t->id = (uint16_t)ti++;
            cur_t->name = field(l->f[1]);
            const char *kind = l->f[2];
            cur_t->kind = !strcmp(kind, "primitive")  ? MODEL_PRIMITIVE
                          : !strcmp(kind, "complex")  ? MODEL_COMPLEX
                          : !strcmp(kind, "resource") ? MODEL_RESOURCE
                          : !strcmp(kind, "logical")  ? MODEL_LOGICAL
                          : !strcmp(kind, "profile")  ? MODEL_PROFILE
                                                      : (die("bad kind", l->no), 0);
            if (field(l->f[4]) && strchr(l->f[4], 'A')) cur_t->flags |= MODEL_TYPE_ABSTRACT;
            cur_t->url = field(l->f[5]);
            char *sys = field(l->f[7]);
            if (sys) {
                char *semi = strchr(sys, ';');
                if (semi) {
                    *semi = '\0';
                    cur_t->value_extras = semi + 1;
                }
                cur_t->system_type = sys;
            }
            cur_t->regex = field(l->f[8]);
            name_put(g.types_by_name, g.types_mask, cur_t->name, cur_t);
            break;
        }
        case 'B':
            if (l->n != 4) die("B needs 4 fields", l->no);
            types[ti].id = (uint16_t)ti;
            types[ti].name = field(l->f[1]);
            types[ti].kind = MODEL_BACKBONE;
            types[ti].backbone_base = field(l->f[2]);
            name_put(g.types_by_name, g.types_mask, types[ti].name, &types[ti]);
            ti++;
            break;
        case 'V':
            if (l->n != 4) die("V needs 4 fields", l->no);
            cur_v = &vss[vi++];
            cur_v->url = field(l->f[1]);
            cur_v->unavailable = field(l->f[3]);
            cur_v->codes = &codes[ci];
            name_put(g.vs_by_url, g.vs_mask, cur_v->url, cur_v);
            break;
        case 'S': {
            if (l->n != 3) die("S needs 3 fields", l->no);
            uint32_t k = parse_u32(l->f[1], l->no);
            if (k >= nsys) die("bad system number", l->no);
            systems[k] = field(l->f[2]);
            break;
        }
        case 'C': {
            if (l->n != 3 || !cur_v) die("C needs 3 fields after a V", l->no);
            uint32_t k = parse_u32(l->f[1], l->no);
            if (k >= nsys || !systems[k]) die("bad system number", l->no);
            codes[ci++] = (model_code){systems[k], field(l->f[2])};
            cur_v->ncodes++;
            break;
        }
        default:
            break;
        }
    }
    g.m.ntypes = (uint32_t)ti;
    g.m.nvaluesets = (uint32_t)vi;
    for (size_t v = 0; v < vi; v++)
        qsort((void *)vss[v].codes, vss[v].ncodes, sizeof(model_code), code_cmp);

    /* base types and primitive flags */
    for (size_t t = 0; t < ti; t++) {
        model_type *ty = &types[t];
        if (ty->kind == MODEL_BACKBONE) {
            ty->base = type_find(ty->backbone_base, strlen(ty->backbone_base));
            continue;
        }
    }
    cur_t = NULL;
    for (size_t i = 1; i < nlines; i++) {
        line *l = &ls[i];
        if (l->f[0][0] != 'T') continue;
        model_type *ty = (model_type *)type_find(l->f[1], strlen(l->f[1]));
        const char *base = field(l->f[3]);
        if (base) {
            ty->base = type_find(base, strlen(base));
            if (!ty->base) die("unknown base type", l->no);
        }
        if (ty->kind == MODEL_PRIMITIVE) {
            const char *n = ty->name;
            if (!strcmp(n, "integer") || !strcmp(n, "decimal") || !strcmp(n, "positiveInt") ||
                !strcmp(n, "unsignedInt"))
                ty->flags |= MODEL_TYPE_JSON_NUMBER;
            else if (!strcmp(n, "boolean"))
                ty->flags |= MODEL_TYPE_JSON_BOOL;
            else if (!strcmp(n, "xhtml"))
                ty->flags |= MODEL_TYPE_XHTML;
        }
    }

    /* pass 3: elements; count children per type first for the hash size */
    size_t nchild = 0;
    for (size_t i = 1; i < nlines; i++) {
        line *l = &ls[i];
        if (l->f[0][0] != 'E') continue;
        if (l->n != 11) die("E needs 11 fields", l->no);
        size_t k = 1;
        for (const char *p = l->f[5]; *p; p++) k += *p == ',';
        nchild += k;
    }
    g.children_mask = pow2_at_least(nchild * 2) - 1;
    g.children = calloc(g.children_mask + 1, sizeof *g.children);
    if (!g.children) die("out of memory", 0);

    size_t ei = 0;
    ti = 0;
    cur_t = NULL;
    for (size_t i = 1; i < nlines; i++) {
        line *l = &ls[i];
        char c = l->f[0][0];
        if (c == 'T' || c == 'B') {
            cur_t = &types[ti++];
            if (c == 'T') {
                cur_t->constraints = constraint_refs(field(l->f[6]), &cur_t->nconstraints, l->no);
            } else {
                cur_t->constraints = constraint_refs(field(l->f[3]), &cur_t->nconstraints, l->no);
            }
            cur_t->elems = &elems[ei];
            continue;
        }
        if (c != 'E') continue;
        if (!cur_t) die("E before T", l->no);
        model_elem *e = &elems[ei++];
        e->name = field(l->f[1]);
        e->owner = cur_t;
        e->index = cur_t->nelems++;
        e->min = parse_u32(l->f[2], l->no);
        e->max = strcmp(l->f[3], "*") == 0 ? MODEL_MANY : parse_u32(l->f[3], l->no);
        const char *fl = field(l->f[4]);
        for (const char *p = fl ? fl : ""; *p; p++) {
            switch (*p) {
            case 'c':
                e->flags |= MODEL_ELEM_CHOICE;
                break;
            case 'a':
                e->flags |= MODEL_ELEM_XML_ATTR;
                break;
            case 'x':
                e->flags |= MODEL_ELEM_XHTML;
                break;
            case 's':
                e->flags |= MODEL_ELEM_SUMMARY;
                break;
            case 'm':
                e->flags |= MODEL_ELEM_MODIFIER;
                break;
            case 'M':
                e->flags |= MODEL_ELEM_MUST_SUPPORT;
                break;
            default:
                die("bad element flag", l->no);
            }
        }
        /* path: owner path + name (+ [x]) */
        size_t plen = strlen(cur_t->name) + strlen(e->name) + 5;
        char *path = malloc(plen);
        if (!path) die("out of memory", l->no);
        snprintf(path, plen, "%s.%s%s", cur_t->name, e->name,
                 (e->flags & MODEL_ELEM_CHOICE) ? "[x]" : "");
        e->path = path;
        /* types */
        char *tl = field(l->f[5]);
        if (!tl) die("element without type", l->no);
        size_t ntr = 1;
        for (char *p = tl; *p; p++) ntr += *p == ',';
        model_typeref *trs = calloc(ntr, sizeof *trs);
        if (!trs) die("out of memory", l->no);
        char *p = tl;
        for (size_t k = 0; k < ntr; k++) {
            char *comma = strchr(p, ',');
            if (comma) *comma = '\0';
            char *brace = strchr(p, '{');
            char *paren = strchr(p, '(');
            if (paren) {
                *paren = '\0';
                char *close = strchr(paren + 1, ')');
                if (!close) die("bad target list", l->no);
                *close = '\0';
                trs[k].targets = split_bar(paren + 1, &trs[k].ntargets);
            }
            if (brace) {
                *brace = '\0';
                char *close = strchr(brace + 1, '}');
                if (!close) die("bad profile list", l->no);
                *close = '\0';
                trs[k].profiles = split_bar(brace + 1, &trs[k].nprofiles);
            }
            trs[k].type = type_find(p, strlen(p));
            if (!trs[k].type) die("unknown type", l->no);
            if (comma) p = comma + 1;
        }
        e->types = trs;
        e->ntypes = (uint16_t)ntr;
        /* binding */
        char *b = field(l->f[6]);
        if (b) {
            char *bar = strchr(b, '|');
            if (!bar) die("bad binding", l->no);
            *bar = '\0';
            model_binding *mb = calloc(1, sizeof *mb);
            if (!mb) die("out of memory", l->no);
            mb->strength = strength_of(b, l->no);
            mb->valueset_url = bar + 1;
            if (mb->strength == MODEL_BIND_REQUIRED) mb->valueset = valueset_find(bar + 1);
            e->binding = mb;
        }
        e->constraints = constraint_refs(field(l->f[7]), &e->nconstraints, l->no);
        e->fixed = field(l->f[8]);
        e->pattern = field(l->f[9]);
        e->extras = field(l->f[10]);

        /* lookup entries: plain name, or name+Type for each choice type */
        if (e->flags & MODEL_ELEM_CHOICE) {
            for (size_t k = 0; k < ntr; k++) {
                char buf[128];
                size_t n = model_property_name(e, trs[k].type, buf, sizeof buf);
                if (!n) die("choice name too long", l->no);
                child_put(cur_t, xstrndup(buf, n), e, trs[k].type);
            }
        } else {
            child_put(cur_t, e->name, e, trs[0].type);
        }
    }
    free(systems);
    free(ls);
}

/* ------------------------------------------------------------------------
 * Lookups
 * ------------------------------------------------------------------------ */

const model *model_r4(void)
{
    pthread_once(&g_once, load);
    return &g.m;
}

const model_type *model_type_find(const char *name, size_t len)
{
    model_r4();
    return type_find(name, len);
}

const model_type *model_resource_find(const char *name, size_t len)
{
    const model_type *t = model_type_find(name, len);
    if (!t || t->kind != MODEL_RESOURCE || (t->flags & MODEL_TYPE_ABSTRACT)) return NULL;
    return t;
}

const model_elem *model_child(const model_type *t, const char *name, size_t len,
                              const model_type **type)
{
    model_r4();
    size_t i = child_hash(t, name, len) & g.children_mask;
    while (g.children[i].owner) {
        const child_slot *s = &g.children[i];
        if (s->owner == t && s->len == len && memcmp(s->name, name, len) == 0) {
            if (type) *type = s->type;
            return s->elem;
        }
        i = (i + 1) & g.children_mask;
    }
    return NULL;
}

const model_elem *model_elem_find(const model_type *t, const char *name)
{
    for (uint16_t i = 0; i < t->nelems; i++)
        if (strcmp(t->elems[i].name, name) == 0) return &t->elems[i];
    return NULL;
}

int model_type_is(const model_type *t, const model_type *base)
{
    for (; t; t = t->base)
        if (t == base) return 1;
    return 0;
}

const model_valueset *model_valueset_find(const char *url)
{
    model_r4();
    return valueset_find(url);
}

int model_valueset_has(const model_valueset *vs, const char *system, const char *code)
{
    size_t lo = 0, hi = vs->ncodes;
    while (lo < hi) { /* first code >= code */
        size_t mid = (lo + hi) / 2;
        if (strcmp(vs->codes[mid].code, code) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < vs->ncodes && strcmp(vs->codes[lo].code, code) == 0; lo++) {
        if (!system || !vs->codes[lo].system || strcmp(system, vs->codes[lo].system) == 0) return 1;
    }
    return 0;
}

size_t model_property_name(const model_elem *e, const model_type *t, char *out, size_t cap)
{
    size_t n = strlen(e->name);
    if (!(e->flags & MODEL_ELEM_CHOICE)) {
        if (n + 1 > cap) return 0;
        memcpy(out, e->name, n + 1);
        return n;
    }
    size_t tn = strlen(t->name);
    if (n + tn + 1 > cap) return 0;
    memcpy(out, e->name, n);
    memcpy(out + n, t->name, tn + 1);
    if (out[n] >= 'a' && out[n] <= 'z') out[n] = (char)(out[n] - 'a' + 'A');
    return n + tn;
}

/* ------------------------------------------------------------------------
 * Node locations
 * ------------------------------------------------------------------------ */

/* Appends the path from n down to target; returns 1 when found. */
static int locate(const fhir_node *n, const fhir_node *target, tsg_buf *b)
{
    if (n == target) return 1;
    for (uint32_t i = 0; i < n->nkids; i++) {
        const fhir_node *k = &n->kids[i];
        size_t mark = b->len;
        char name[128];
        size_t len = model_property_name(k->elem, k->type, name, sizeof name);
        tsg_buf_putc(b, '.');
        tsg_buf_append(b, name, len);
        if (k->elem->max != 1) tsg_buf_printf(b, "[%u]", k->pos);
        if (locate(k, target, b)) return 1;
        b->len = mark;
    }
    return 0;
}

size_t fhir_node_location(const fhir_node *root, const fhir_node *target, char *out, size_t cap)
{
    tsg_buf b;
    tsg_buf_init(&b, cap ? cap - 1 : 0);
    tsg_buf_puts(&b, root->type->name);
    size_t n = 0;
    if (locate(root, target, &b) && tsg_buf_rc(&b) == TSG_OK && b.len < cap) {
        memcpy(out, b.data, b.len + 1);
        n = b.len;
    } else if (cap) {
        out[0] = '\0';
    }
    tsg_buf_free(&b);
    return n;
}
