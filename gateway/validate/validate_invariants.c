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
    }
}

const vinv *validate_invariant(const model_constraint *k)
{
    pthread_once(&table_once, table_build);
    const model *m = model_r4();
    size_t i = (size_t)(k - m->constraints);
    if (k < m->constraints || i >= table_n) {
        static const vinv none = {VINV_UNCOMPILABLE, NULL, "not a constraint of the R4 model"};
        return &none;
    }
    return &table[i];
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
