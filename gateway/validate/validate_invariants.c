/*
 * validate_invariants.c — the table of the model's constraints: each one
 * compiled once with the FHIRPath engine (on first use, under pthread_once),
 * or marked as checked natively by the walker, or listed as a known defect of
 * the R4 definitions with the reason.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "validate_internal.h"

/* Constraints the walker (validate.c) checks itself: they hold for nearly every
 * node, so a native check is much cheaper than FHIRPath, and it can say
 * precisely what is wrong. */
static const struct {
    const char *key;
    const char *note;
} native_keys[] = {
    {"ele-1", "checked natively: every element has a value or children"},
    {"ext-1", "checked natively: an extension has a value or extensions, not both"},
    {"txt-1", "checked natively with model_xhtml_html_checks() (the htmlChecks() of FHIRPath)"},
    {"txt-2", "R4 gives txt-2 the same htmlChecks() expression as txt-1; checked with it"},
    {"ref-1", "checked natively: '#id' references resolve among the container's contained "
              "resources (also from inside a contained resource, which %rootResource cannot "
              "express in this engine)"},
    {"dom-3", "checked natively: its expression applies as() to collections, which FHIRPath "
              "N1 makes an error (the reference engine filters instead)"},
    {"csd-1", "checked natively: its expression uses $this inside combine() to mean the "
              "CodeSystem, which N1 does not give it"},
    {"eld-16", "checked natively: its regex escapes characters inside a bracket expression, "
               "which POSIX regular expressions read literally"},
    {"eld-19", "checked natively: its regex uses \\s inside a bracket expression, which POSIX "
               "regular expressions do not support"},
};

/* Known defects of R4 (4.0.1) invariants: evaluating them as written gives
 * wrong verdicts on valid resources. Each is skipped with its reason (the
 * HL7 reference validator special-cases the same ones). */
static const struct {
    const char *key;
    const char *note;
} broken_keys[] = {
    {"cid-0", "R4 puts the canonical-resource rule 'name.matches(...)' on ChargeItemDefinition, "
              "which has no element 'name' in R4 (a template leak; the reference validator's "
              "type-checking refuses the expression too)"},
};

/* Length of the element name at s (0 if none). Only lower-case initials: an
 * upper-case one is a type name in FHIRPath (`Appointment.status` at the start
 * of app-4 names the resource, not a child), which no shortcut may treat as a
 * child element. */
static size_t ident(const char *s)
{
    size_t n = 0;
    if (!(s[0] >= 'a' && s[0] <= 'z')) return 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (s[n] >= '0' && s[n] <= '9') || s[n] == '_')
        n++;
    return n;
}

/* Copies name[0..n) with a NUL; NULL when out of memory. */
static char *name_dup(const char *name, size_t n)
{
    char *g = malloc(n + 1);
    if (g) {
        memcpy(g, name, n);
        g[n] = '\0';
    }
    return g;
}

/* Length of the path chain at s: NAME then `.`-steps (calls with balanced
 * parentheses and quoted strings inside allowed) up to the first space or end
 * at the top level; 0 when s does not start with a name. */
static size_t chain(const char *s)
{
    if (!ident(s)) return 0;
    size_t i = 0;
    int depth = 0;
    char quote = 0;
    for (; s[i]; i++) {
        char ch = s[i];
        if (quote) {
            if (ch == '\\' && s[i + 1])
                i++;
            else if (ch == quote)
                quote = 0;
            continue;
        }
        if (ch == '\'' || ch == '`')
            quote = ch;
        else if (ch == '(')
            depth++;
        else if (ch == ')' && --depth < 0)
            return 0;
        else if (ch == ' ' && depth == 0)
            break;
    }
    return depth == 0 && !quote ? i : 0;
}

/*
 * The guards of an expression: child names whose absence makes the
 * expression true by its form alone, so the walker need not evaluate it.
 * Recognised (NAME an element name):
 *   T or T or … or REST   where each leading T is NAME.empty(),
 *                         NAME.hasValue().not() or NAME.exists().not() (all
 *                         true when NAME is absent), and the last term may be
 *                         a chain NAME.….empty() (empty when NAME is absent);
 *                         REST without `implies`/`xor` (which bind looser
 *                         than `or` and would change what the terms mean)
 *   NAME.exists() implies REST   (`implies` binds loosest; no second one)
 *   NAME.a.b.empty() [and NAME.c.empty()]…   every term a path from NAME
 * Anything else: no guard (always evaluated). Fills g (at most VINV_GUARDS,
 * NULL-ended); names are malloc'd and never freed (built once).
 */
static void guards_of(const char *e, const char **g)
{
    size_t ng = 0;
    g[0] = NULL;
    size_t n = ident(e);
    if (!n || e[n] != '.') return;
    if (!strncmp(e + n, ".exists() implies ", 18)) {
        if (strstr(e + n + 18, " implies ") || strstr(e + n + 18, " xor ")) return;
        g[0] = name_dup(e, n);
        g[1] = NULL;
        return;
    }
    /* terms NAME(.ident)+.empty() joined by " and " */
    {
        const char *p = e;
        int ok = 1;
        for (;;) {
            if (strncmp(p, e, n) || p[n] != '.') {
                ok = 0;
                break;
            }
            p += n;
            while (*p == '.') {
                if (!strncmp(p, ".empty()", 8)) break;
                size_t m = ident(p + 1);
                if (!m) break;
                p += 1 + m;
            }
            if (strncmp(p, ".empty()", 8)) {
                ok = 0;
                break;
            }
            p += 8;
            if (!*p) break;
            if (strncmp(p, " and ", 5)) {
                ok = 0;
                break;
            }
            p += 5;
        }
        if (ok) {
            g[0] = name_dup(e, n);
            g[1] = NULL;
            return;
        }
    }
    /* a chain of or-ed terms */
    if (strstr(e, " implies ") || strstr(e, " xor ")) return;
    const char *p = e;
    while (ng < VINV_GUARDS) {
        size_t m = ident(p);
        if (!m || p[m] != '.') break;
        const char *after = p + m;
        size_t tl = 0;
        if (!strncmp(after, ".empty()", 8))
            tl = 8;
        else if (!strncmp(after, ".hasValue().not()", 17))
            tl = 17;
        else if (!strncmp(after, ".exists().not()", 15))
            tl = 15;
        if (tl && (!after[tl] || !strncmp(after + tl, " or ", 4))) {
            g[ng++] = name_dup(p, m);
            if (!after[tl]) break;
            p = after + tl + 4;
            continue;
        }
        /* the last term: a chain from NAME ending in .empty() */
        size_t cl = chain(p);
        if (cl >= 8 && !p[cl] && !strncmp(p + cl - 8, ".empty()", 8)) g[ng++] = name_dup(p, m);
        break;
    }
    /* an or-chain guard is only sound when every term up to it is a guard
     * term; terms after a non-guard term would make the chain true anyway, so
     * guards found before one stay sound: (A or B or X) is true when A is */
    g[ng] = NULL;
}

/*
 * The simple form of e (validate_internal.h), or NULL when e is anything else.
 * Grammar: TERM (" and "|" or ") TERM …, TERM = NAME("."NAME)*".empty()" or
 * …".exists()", NAME an identifier or a `quoted` one (at most 255 bytes). The
 * names point into e. malloc'd, never freed (built once).
 */
static vinv_simple *simple_of(const char *e)
{
    vinv_simple sf;
    memset(&sf, 0, sizeof sf);
    const char *p = e;
    unsigned group = 0;
    for (;;) {
        if (sf.nterms == VINV_SIMPLE_TERMS) return NULL;
        vinv_term *t = &sf.terms[sf.nterms];
        for (;;) {
            size_t n;
            const char *name;
            if (*p == '`') {
                const char *q = strchr(p + 1, '`');
                if (!q || q == p + 1) return NULL;
                name = p + 1;
                n = (size_t)(q - p - 1);
                if (ident(name) != n || n > 255) return NULL;
                p = q + 1;
            } else {
                name = p;
                n = ident(p);
                if (!n || n > 255) return NULL;
                p += n;
            }
            if (t->npath == VINV_SIMPLE_DEPTH) return NULL;
            /* a view into the model's expression text (immutable, never freed) */
            t->path[t->npath] = name;
            t->len[t->npath++] = (unsigned char)n;
            if (*p != '.') return NULL;
            if (!strncmp(p, ".empty()", 8)) {
                t->exists = 0;
                p += 8;
                break;
            }
            if (!strncmp(p, ".exists()", 9)) {
                t->exists = 1;
                p += 9;
                break;
            }
            p++;
        }
        t->group = (unsigned char)group;
        sf.nterms++;
        if (!*p) break;
        if (!strncmp(p, " and ", 5)) {
            p += 5;
        } else if (!strncmp(p, " or ", 4)) {
            p += 4;
            group++;
        } else {
            return NULL;
        }
    }
    vinv_simple *r = malloc(sizeof *r);
    if (r) *r = sf;
    return r;
}

static vinv *table;
static size_t table_n;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
    const model *m = model_r4();
    table_n = m->nconstraints;
    table = calloc(table_n ? table_n : 1, sizeof *table);
    if (!table) abort(); /* at start-up: nothing sensible to do without it */
    for (size_t i = 0; i < table_n; i++) {
        const model_constraint *k = &m->constraints[i];
        vinv *v = &table[i];
        for (size_t j = 0; j < sizeof native_keys / sizeof native_keys[0]; j++)
            if (!strcmp(k->key, native_keys[j].key)) {
                v->mode = VINV_NATIVE;
                v->note = native_keys[j].note;
            }
        for (size_t j = 0; j < sizeof broken_keys / sizeof broken_keys[0]; j++)
            if (broken_keys[j].key[0] && !strcmp(k->key, broken_keys[j].key)) {
                v->mode = VINV_BROKEN;
                v->note = broken_keys[j].note;
            }
        if (v->mode != VINV_FHIRPATH) continue;
        fp_expr *e = NULL;
        tsg_error err;
        tsg_error_clear(&err);
        if (!k->expression || fp_compile(k->expression, strlen(k->expression), &e, &err)) {
            v->mode = VINV_UNCOMPILABLE;
            size_t n = strlen(err.message);
            char *msg = malloc(n + 1);
            if (msg) memcpy(msg, err.message, n + 1);
            v->note = msg ? msg : "the FHIRPath compiler refused it";
            continue;
        }
        v->expr = e;
        guards_of(k->expression, v->guards);
        v->simple = simple_of(k->expression);
    }
}

const vinv *validate_invariant(const model_constraint *k)
{
    pthread_once(&table_once, table_build);
    const model *m = model_r4();
    size_t i = (size_t)(k - m->constraints);
    if (k < m->constraints || i >= table_n) {
        static const vinv none = {.mode = VINV_UNCOMPILABLE,
                                  .note = "not a constraint of the R4 model"};
        return &none;
    }
    return &table[i];
}

const vinv *validate_invariant_table(void)
{
    pthread_once(&table_once, table_build);
    return table;
}

void validate_constraint_stats_get(validate_constraint_stats *s)
{
    pthread_once(&table_once, table_build);
    memset(s, 0, sizeof *s);
    s->total = table_n;
    for (size_t i = 0; i < table_n; i++) {
        switch (table[i].mode) {
        case VINV_FHIRPATH:
            s->compiled++;
            break;
        case VINV_NATIVE:
            s->native++;
            break;
        case VINV_BROKEN:
            s->broken++;
            break;
        default:
            s->failed_compile++;
            break;
        }
    }
}
