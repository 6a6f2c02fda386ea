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

/* Length of the FHIRPath identifier at s (0 if none). */
static size_t ident(const char *s)
{
    size_t n = 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (s[n] >= '0' && s[n] <= '9') || s[n] == '_')
        n++;
    return n;
}

/*
 * The guard of an expression: a child name whose absence makes the expression
 * true by its form alone, so the walker need not evaluate it. Recognised forms
 * (NAME an element name, REST without a top-level-changing `implies`/`xor`):
 *   NAME.empty() or REST            (`or` binds looser than `and`, tighter than
 *                                    `implies`/`xor` would, hence no such word)
 *   NAME.exists() implies REST      (`implies` binds loosest; no second one)
 *   NAME.a.b.empty() [and NAME.c.empty()]…   every term a path from NAME
 * Anything else: no guard (always evaluated). Returns a malloc'd name or NULL.
 */
static char *guard_of(const char *e)
{
    size_t n = ident(e);
    if (!n || e[n] != '.') return NULL;
    const char *rest = NULL;
    if (!strncmp(e + n, ".empty() or ", 12))
        rest = e + n + 12;
    else if (!strncmp(e + n, ".exists() implies ", 18))
        rest = e + n + 18;
    if (rest) {
        if (strstr(rest, " implies ") || strstr(rest, " xor ")) return NULL;
    } else {
        /* terms NAME(.ident)+.empty() joined by " and " */
        const char *p = e;
        for (;;) {
            if (strncmp(p, e, n) || p[n] != '.') return NULL;
            p += n;
            while (*p == '.') {
                if (!strncmp(p, ".empty()", 8)) break;
                size_t m = ident(p + 1);
                if (!m) return NULL;
                p += 1 + m;
            }
            if (strncmp(p, ".empty()", 8)) return NULL;
            p += 8;
            if (!*p) break;
            if (strncmp(p, " and ", 5)) return NULL;
            p += 5;
        }
    }
    char *g = malloc(n + 1);
    if (g) {
        memcpy(g, e, n);
        g[n] = '\0';
    }
    return g;
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
        v->guard = guard_of(k->expression);
        v->simple = simple_of(k->expression);
    }
}

const vinv *validate_invariant(const model_constraint *k)
{
    pthread_once(&table_once, table_build);
    const model *m = model_r4();
    size_t i = (size_t)(k - m->constraints);
    if (k < m->constraints || i >= table_n) {
        static const vinv none = {VINV_UNCOMPILABLE, NULL, "not a constraint of the R4 model", NULL,
                                  NULL};
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
