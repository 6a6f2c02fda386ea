/*
 * search_load.c — loads the R4 search-parameter table embedded from
 * profiles/r4/searchparams.txt and answers lookups on it (see search.h).
 *
 * ## The file format (written by gen/gen_search_params.py)
 *
 * UTF-8 text, one record per line, fields separated by TAB; inside a field
 * `\\`, `\t`, `\n`, `\r` are escapes, `-` means "none".
 *
 *   tsunagu-searchparams 1 4.0.1 <comment>     header (format version 1)
 *   # <text>                                   a comment: what the generator dropped, and why
 *   N <parameters>                             count of P lines
 *   P <base> <code> <type> <id> <expression> <targets> <modifiers> <prefixes> <flags> <usage>
 *                                              a parameter; sorted by base, then code
 *   C <code> <type> <expression>               a component of the last (composite) P
 *
 * <type> is a search_type name (number, date, string, token, reference,
 * composite, quantity, uri, special); <targets>, <modifiers> (R4 names,
 * `type` for :[type]) and <prefixes> are comma lists; <flags> has `o` when
 * multipleOr is false and `a` when multipleAnd is false; <usage> is the
 * xpathUsage (normal, phonetic, nearby). The expression is restricted to the
 * base (only its union terms rooted in the base).
 *
 * The whole table is allocated once and lives as long as the process.
 */
#include "search.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Embedded by search_data.S */
extern const char tsg_r4_search_text[];
extern const char tsg_r4_search_text_end[];

typedef struct type_list {
    const search_param **params;
    size_t n;
} type_list;

static struct {
    search_param *params;
    size_t nparams;
    type_list *by_type; /* indexed by model_type.id */
    size_t ntypes;
    const search_param **failures;
    size_t nfailures;
} g;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static const char *const TYPE_NAMES[] = {"number",    "date",     "string", "token",  "reference",
                                         "composite", "quantity", "uri",    "special"};
static const char *const MOD_NAMES[] = {"",        "missing",    "exact", "contains", "text",
                                        "not",     "above",      "below", "in",       "not-in",
                                        "of-type", "identifier", "type"};
static const char *const PFX_NAMES[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};

const char *search_type_name(search_type t)
{
    return (unsigned)t < sizeof TYPE_NAMES / sizeof TYPE_NAMES[0] ? TYPE_NAMES[t] : "?";
}

const char *search_modifier_name(search_modifier m)
{
    if (m == SEARCH_MOD_TYPE) return "[type]";
    return (unsigned)m < sizeof MOD_NAMES / sizeof MOD_NAMES[0] ? MOD_NAMES[m] : "?";
}

const char *search_prefix_name(search_prefix p)
{
    return (unsigned)p < sizeof PFX_NAMES / sizeof PFX_NAMES[0] ? PFX_NAMES[p] : "?";
}

static void die(unsigned line, const char *why)
{
    fprintf(stderr, "tsunagu: the embedded search-parameter table is broken (line %u): %s\n", line,
            why);
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "tsunagu: out of memory loading the search-parameter table\n");
        abort();
    }
    return p;
}

/* Unescapes field s[0..n) into a new string; "-" is NULL. */
static char *field_dup(const char *s, size_t n)
{
    if (n == 1 && s[0] == '-') return NULL;
    char *out = xcalloc(n + 1, 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            i++;
            out[o++] = s[i] == 't' ? '\t' : s[i] == 'n' ? '\n' : s[i] == 'r' ? '\r' : s[i];
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

#define MAX_FIELDS 12

/* Splits line[0..n) at TABs; returns the number of fields. */
static size_t split(const char *line, size_t n, const char **f, size_t *flen)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n && k < MAX_FIELDS; i++) {
        if (i == n || line[i] == '\t') {
            f[k] = line + start;
            flen[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    return k;
}

static int type_of(const char *s, size_t n, search_type *t)
{
    for (size_t i = 0; i < sizeof TYPE_NAMES / sizeof TYPE_NAMES[0]; i++) {
        if (strlen(TYPE_NAMES[i]) == n && memcmp(TYPE_NAMES[i], s, n) == 0) {
            *t = (search_type)i;
            return 1;
        }
    }
    return 0;
}

/* Splits a comma list into a NULL-free array of new strings. */
static const char *const *comma_list(const char *s, size_t *count)
{
    *count = 0;
    if (!s) return NULL;
    size_t n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    const char **out = xcalloc(n, sizeof *out);
    const char *start = s;
    for (const char *p = s;; p++) {
        if (*p == ',' || *p == '\0') {
            out[(*count)++] = field_dup(start, (size_t)(p - start));
            if (*p == '\0') break;
            start = p + 1;
        }
    }
    return out;
}

/* The bit set (1u << index) of the comma list s of names from names[first..n);
 * an unknown name is a table defect (die, naming `what`). */
static uint32_t name_bits(const char *s, const char *const *names, size_t n, size_t first,
                          unsigned line, const char *what)
{
    size_t count;
    const char *const *list = comma_list(s, &count);
    uint32_t bits = 0;
    for (size_t i = 0; i < count; i++) {
        size_t m;
        for (m = first; m < n; m++)
            if (strcmp(names[m], list[i]) == 0) break;
        if (m == n) die(line, what);
        bits |= 1u << m;
        free((void *)list[i]);
    }
    free((void *)list);
    return bits;
}

static uint32_t modifier_bits(const char *s, unsigned line)
{
    return name_bits(s, MOD_NAMES, sizeof MOD_NAMES / sizeof MOD_NAMES[0], 1, line,
                     "unknown modifier");
}

static uint32_t prefix_bits(const char *s, unsigned line)
{
    return name_bits(s, PFX_NAMES, sizeof PFX_NAMES / sizeof PFX_NAMES[0], 0, line,
                     "unknown prefix");
}

/*
 * `resolve() is T` (inside where(), 49 R4 parameters: Observation.patient is
 * `Observation.subject.where(resolve() is Patient)`) asks for the type of
 * the referenced resource; resolve() reaches only contained resources and
 * Bundle entries, so for the usual `Patient/123` it is empty. The compiled
 * form reads the type from the reference as a server does:
 *   (resolve() is T or reference.matches(R) or type = 'T')
 * with R the regular expression of a reference "[base/]T/id[/_history/v]".
 * The table's `expression` stays the official text. Returns a malloc'd copy.
 */
static char *rewrite_resolve(const char *src)
{
    static const char pat[] = "resolve() is ";
    size_t cap = strlen(src) + 1, len = 0;
    char *out = xcalloc(cap, 1);
    const char *p = src;
    for (;;) {
        const char *hit = strstr(p, pat);
        const char *tn = hit ? hit + sizeof pat - 1 : NULL;
        size_t tl = 0;
        while (tn && ((tn[tl] >= 'A' && tn[tl] <= 'Z') || (tn[tl] >= 'a' && tn[tl] <= 'z') ||
                      (tn[tl] >= '0' && tn[tl] <= '9')))
            tl++;
        size_t keep = hit ? (size_t)(hit - p) : strlen(p);
        size_t add = keep + (hit ? 3 * tl + 160 : 0) + 1;
        if (len + add > cap) {
            cap = (len + add) * 2;
            char *grown = realloc(out, cap);
            if (!grown) die(0, "out of memory");
            out = grown;
        }
        memcpy(out + len, p, keep);
        len += keep;
        if (!hit) break;
        len += (size_t)snprintf(out + len, cap - len,
                                "(resolve() is %.*s or reference.matches('^([^#]*/)?%.*s/"
                                "[^/]+(/_history/[^/]+)?$') or type = '%.*s')",
                                (int)tl, tn, (int)tl, tn, (int)tl, tn);
        p = tn + tl;
    }
    out[len] = '\0';
    return out;
}

/* Compiles an expression; on failure returns NULL and sets *why. */
static const fp_expr *compile(const char *text, const char **why)
{
    *why = NULL;
    if (!text) return NULL;
    char *src = rewrite_resolve(text);
    fp_expr *e = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = fp_compile(src, strlen(src), &e, &err);
    free(src);
    if (rc != TSG_OK) {
        size_t n = strlen(err.message) + 32;
        char *msg = xcalloc(n, 1);
        snprintf(msg, n, "column %u: %s", err.column, err.message);
        *why = msg;
        return NULL;
    }
    return e;
}

/* Splits an expression at its top-level " | " (outside parentheses) into at
 * most max terms (start, length); returns the count, or max + 1 when more. */
static size_t split_union(const char *e, const char **t, size_t *tl, size_t max)
{
    size_t n = 0, depth = 0;
    const char *start = e;
    for (const char *c = e;; c++) {
        if (*c == '(') depth++;
        if (*c == ')' && depth) depth--;
        if (*c == 0 || (depth == 0 && !strncmp(c, " | ", 3))) {
            if (n == max) return max + 1;
            t[n] = start;
            tl[n++] = (size_t)(c - start);
            if (*c == 0) return n;
            start = c + 3;
            c += 2;
        }
    }
}

/*
 * Marks the aliases (search.h): a token, string, date, number, quantity or uri
 * parameter whose expression's top-level " | " terms are, in order, the whole
 * term lists of two or more other parameters of its base and type
 * (combo-value-quantity = value-quantity's two terms + component-value-
 * quantity's two). References are left alone (includes, chains and _has read
 * their keys).
 */
static void find_aliases(void)
{
    enum { MAXT = 16 };
    for (size_t i = 0; i < g.nparams; i++) {
        search_param *p = &g.params[i];
        if (!p->expr || !p->expression || p->type == SEARCH_COMPOSITE ||
            p->type == SEARCH_REFERENCE || p->type == SEARCH_SPECIAL)
            continue;
        const char *pt[MAXT];
        size_t ptl[MAXT];
        size_t np = split_union(p->expression, pt, ptl, MAXT);
        if (np < 2 || np > MAXT) continue;
        const search_param *found[MAXT];
        size_t nf = 0, at = 0;
        while (at < np) {
            const search_param *best = NULL;
            size_t best_n = 0;
            for (size_t j = 0; j < g.nparams; j++) {
                const search_param *q = &g.params[j];
                if (q == p || !q->expr || !q->expression || q->type != p->type ||
                    strcmp(q->base, p->base))
                    continue;
                const char *qt[MAXT];
                size_t qtl[MAXT];
                size_t nq = split_union(q->expression, qt, qtl, MAXT);
                if (nq > MAXT || nq > np - at || nq <= best_n || nq == np) continue;
                size_t k = 0;
                while (k < nq && qtl[k] == ptl[at + k] && !memcmp(qt[k], pt[at + k], qtl[k])) k++;
                if (k == nq) best = q, best_n = nq;
            }
            if (!best) break;
            found[nf++] = best;
            at += best_n;
        }
        if (at < np || nf < 2) continue;
        const search_param **list = xcalloc(nf, sizeof *list);
        memcpy(list, found, nf * sizeof *list);
        p->alias = list;
        p->nalias = nf;
    }
}

static void load(void)
{
    const char *p = tsg_r4_search_text;
    const char *end = tsg_r4_search_text_end;
    unsigned line = 0;
    size_t cap = 0, ncomp_cap = 0;
    search_param *cur = NULL;
    search_component *comps = NULL;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *l = p;
        p = nl ? nl + 1 : end;
        line++;
        if (n == 0 || l[0] == '#') continue;
        const char *f[MAX_FIELDS];
        size_t fl[MAX_FIELDS];
        size_t k = split(l, n, f, fl);
        if (line == 1) {
            if (k < 3 || fl[0] != 20 || memcmp(f[0], "tsunagu-searchparams", 20) != 0 ||
                fl[1] != 1 || f[1][0] != '1')
                die(line, "not a version 1 search-parameter table");
            continue;
        }
        if (fl[0] == 1 && f[0][0] == 'N' && k == 2) {
            char *num = field_dup(f[1], fl[1]);
            cap = (size_t)strtoul(num, NULL, 10);
            free(num);
            g.params = xcalloc(cap, sizeof *g.params);
            continue;
        }
        if (fl[0] == 1 && f[0][0] == 'P') {
            if (k != 11) die(line, "a P line needs 11 fields");
            if (g.nparams >= cap) die(line, "more P lines than N says");
            cur = &g.params[g.nparams++];
            cur->base = field_dup(f[1], fl[1]);
            cur->code = field_dup(f[2], fl[2]);
            if (!cur->base || !cur->code) die(line, "no base or code");
            if (!type_of(f[3], fl[3], &cur->type)) die(line, "unknown type");
            cur->id = field_dup(f[4], fl[4]);
            cur->expression = field_dup(f[5], fl[5]);
            char *targets = field_dup(f[6], fl[6]);
            cur->targets = comma_list(targets, &cur->ntargets);
            free(targets);
            char *mods = field_dup(f[7], fl[7]);
            cur->modifiers = modifier_bits(mods, line);
            free(mods);
            char *pfx = field_dup(f[8], fl[8]);
            cur->prefixes = prefix_bits(pfx, line);
            free(pfx);
            char *flags = field_dup(f[9], fl[9]);
            cur->multiple_or = !(flags && strchr(flags, 'o'));
            cur->multiple_and = !(flags && strchr(flags, 'a'));
            free(flags);
            cur->usage = field_dup(f[10], fl[10]);
            cur->expr = compile(cur->expression, &cur->compile_error);
            comps = NULL;
            ncomp_cap = 0;
            continue;
        }
        if (fl[0] == 1 && f[0][0] == 'C') {
            if (k != 4 || !cur || cur->type != SEARCH_COMPOSITE) die(line, "a misplaced C line");
            if (cur->ncomponents == ncomp_cap) {
                ncomp_cap = ncomp_cap ? ncomp_cap * 2 : 4;
                search_component *grown = realloc(comps, ncomp_cap * sizeof *comps);
                if (!grown) die(line, "out of memory");
                comps = grown;
                cur->components = comps;
            }
            search_component *c = &comps[cur->ncomponents++];
            memset(c, 0, sizeof *c);
            c->code = field_dup(f[1], fl[1]);
            if (!type_of(f[2], fl[2], &c->type)) die(line, "unknown component type");
            c->expression = field_dup(f[3], fl[3]);
            const char *why = NULL;
            c->expr = compile(c->expression, &why);
            if (why && !cur->compile_error) cur->compile_error = why;
            continue;
        }
        die(line, "unknown record");
    }
    if (g.nparams != cap || cap == 0) die(line, "the N count does not match the P lines");

    /* Failures */
    g.failures = xcalloc(g.nparams, sizeof *g.failures);
    for (size_t i = 0; i < g.nparams; i++) {
        if (!g.params[i].compile_error) continue;
        g.failures[g.nfailures++] = &g.params[i];
        fprintf(stderr, "tsunagu: search parameter %s.%s does not compile (%s): %s\n",
                g.params[i].base, g.params[i].code,
                g.params[i].expression ? g.params[i].expression : "a component",
                g.params[i].compile_error);
    }

    find_aliases();

    /* Per-type lists: own parameters, then DomainResource's, then Resource's. */
    const model *m = model_r4();
    const model_type *domain = model_type_find("DomainResource", 14);
    const model_type *resource = model_type_find("Resource", 8);
    g.ntypes = m->ntypes;
    g.by_type = xcalloc(g.ntypes, sizeof *g.by_type);
    for (size_t t = 0; t < m->ntypes; t++) {
        const model_type *mt = &m->types[t];
        if (mt->kind != MODEL_RESOURCE) continue;
        size_t count = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (int level = 0; level < 3; level++) {
                const model_type *want = level == 0 ? mt : level == 1 ? domain : resource;
                if (level > 0 && (want == mt || !model_type_is(mt, want))) continue;
                for (size_t i = 0; i < g.nparams; i++) {
                    if (strcmp(g.params[i].base, want->name) != 0) continue;
                    if (pass == 1) g.by_type[mt->id].params[g.by_type[mt->id].n++] = &g.params[i];
                    count++;
                }
            }
            if (pass == 0) g.by_type[mt->id].params = xcalloc(count, sizeof(search_param *));
        }
    }
}

size_t search_params_load(void)
{
    pthread_once(&g_once, load);
    return g.nparams;
}

static const type_list *list_of(const char *type)
{
    if (!type) return NULL;
    search_params_load();
    const model_type *t = model_resource_find(type, strlen(type));
    if (!t) {
        /* Resource and DomainResource are abstract but carry parameters too */
        t = model_type_find(type, strlen(type));
        if (!t || t->kind != MODEL_RESOURCE) return NULL;
    }
    if (t->id >= g.ntypes) return NULL;
    return &g.by_type[t->id];
}

const search_param *search_param_find(const char *type, const char *code)
{
    const type_list *l = list_of(type);
    if (!l || !code) return NULL;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->params[i]->code, code) == 0) return l->params[i];
    return NULL;
}

size_t search_params_of(const char *type, const search_param *const **list)
{
    const type_list *l = list_of(type);
    if (!l || l->n == 0) {
        *list = NULL;
        return 0;
    }
    *list = l->params;
    return l->n;
}

size_t search_compile_failures(const search_param *const **list)
{
    search_params_load();
    *list = g.failures;
    return g.nfailures;
}
