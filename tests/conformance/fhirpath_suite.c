/*
 * fhirpath_suite.c — the official FHIRPath R4 suite (tests-fhir-r4.xml, 935
 * tests) run against fp_compile()/fp_eval(). The rules it applies are written
 * down in FHIRPATH-RULES.md beside this file (PEERS.md, "FHIRPath suite
 * rules").
 *
 *   fhirpath_suite [CORPUS]   CORPUS holds fhirpath/tests-fhir-r4.xml
 *                             (default TSUNAGU_CORPUS; env TSUNAGU_CORPUS wins)
 *
 * Prints one "FAIL name: reason" line per failing test and the counts. Exit 0
 * when at least FP_SUITE_MIN_PASS tests pass, 1 otherwise, 77 (skip) when
 * the corpus is absent.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath/fhirpath.h"
#include "fhirpath/fp_value.h"
#include "fhirpath_inputs.h"
#include "model/model.h"
#include "util/util.h"

/*
 * The pass floor. Issue 3 requires at least 925 of the 935 tests; the
 * evaluator is not complete yet, so this floor only guards against
 * regressions: raise it whenever more tests pass, until it reaches 925.
 */
#define FP_SUITE_MIN_PASS 931

#define SUITE_ARENA_MAX (256u * 1024u * 1024u)
#define MAX_OUTPUTS     64

static char g_dir[1024]; /* the suite's folder */

/* Whether an item of type `actual` ("FHIR.code") is acceptable for the
 * suite's output type `want` ("code"). */
static int type_ok(const char *want, const char *actual)
{
    static const struct {
        const char *want, *sys, *fhir;
    } map[] = {
        {"boolean", "System.Boolean", "FHIR.boolean"},
        {"integer", "System.Integer", "FHIR.integer"},
        {"decimal", "System.Decimal", "FHIR.decimal"},
        {"string", "System.String", "FHIR.string"},
        {"code", NULL, "FHIR.code"},
        {"id", NULL, "FHIR.id"},
        {"date", "System.Date", "FHIR.date"},
        {"dateTime", "System.DateTime", "FHIR.dateTime"},
        {"time", "System.Time", "FHIR.time"},
        {"Quantity", "System.Quantity", "FHIR.Quantity"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(map[i].want, want)) continue;
        return (map[i].sys && !strcmp(map[i].sys, actual)) || !strcmp(map[i].fhir, actual);
    }
    return 0;
}

/* Compares an item's text with an expected output value of type `want`. */
static int value_ok(const char *want, const char *got, const char *exp)
{
    if (!strcmp(want, "decimal") || !strcmp(want, "integer")) {
        fp_decimal a, b;
        if (fp_dec_parse(got, strlen(got), FP_DEC_FHIR, &a) == FP_OK &&
            fp_dec_parse(exp, strlen(exp), FP_DEC_FHIR, &b) == FP_OK)
            return fp_dec_compare(a, b) == FP_EQ;
        return !strcmp(got, exp);
    }
    if (!strcmp(want, "date") || !strcmp(want, "dateTime") || !strcmp(want, "time")) {
        fp_dt_kind k = want[0] == 't' ? FP_TIME : want[4] ? FP_DATETIME : FP_DATE;
        if (exp[0] == '@') exp++;
        if (k == FP_TIME && exp[0] == 'T') exp++;
        fp_datetime a, b;
        char ebuf[64];
        snprintf(ebuf, sizeof ebuf, "%s", exp);
        size_t el = strlen(ebuf);
        if (el && ebuf[el - 1] == 'T') ebuf[--el] = 0;
        if (fp_dt_parse_text(got, strlen(got), k, &a) != FP_OK ||
            fp_dt_parse_text(ebuf, el, k, &b) != FP_OK)
            return !strcmp(got, exp);
        return a.precision == b.precision && fp_dt_compare(&a, &b) == FP_EQ;
    }
    if (!strcmp(want, "Quantity")) {
        fp_quantity a, b;
        if (fp_qty_parse(got, strlen(got), &a) != FP_OK ||
            fp_qty_parse(exp, strlen(exp), &b) != FP_OK)
            return !strcmp(got, exp);
        return fp_dec_compare(a.value, b.value) == FP_EQ && a.unit_len == b.unit_len &&
               !memcmp(a.unit, b.unit, a.unit_len);
    }
    return !strcmp(got, exp);
}

typedef struct expected {
    const char *type; /* may be NULL */
    const char *value;
} expected;

static int item_matches(const fp_item *it, const expected *x)
{
    char tn[160];
    fp_item_type_name(it, tn, sizeof tn);
    if (x->type && !type_ok(x->type, tn)) return 0;
    const char *want = x->type;
    if (!want && x->value[0] == '@') /* untyped temporal output: compare as the item's type */
        want = !strcmp(tn, "System.Date")       ? "date"
               : !strcmp(tn, "System.DateTime") ? "dateTime"
               : !strcmp(tn, "System.Time")     ? "time"
                                                : NULL;
    if (!want && strchr(x->value, '.') && !strcmp(tn, "System.Decimal")) want = "decimal";
    tsg_buf b;
    tsg_buf_init(&b, 0);
    fp_item_write_text(it, &b);
    tsg_buf_putc(&b, 0);
    int ok = tsg_buf_rc(&b) == TSG_OK &&
             (want ? value_ok(want, b.data, x->value) : !strcmp(b.data, x->value));
    tsg_buf_free(&b);
    return ok;
}

static char *prop(xmlNode *n, const char *name)
{
    return (char *)xmlGetProp(n, (const xmlChar *)name);
}

/* Runs one test; returns 1 when it passes, else 0 with why filled. */
static int run_test(xmlNode *t, char *why, size_t cap)
{
    char *inputfile = prop(t, "inputfile"), *invalid = prop(t, "invalid");
    char *predicate = prop(t, "predicate"), *ordered = prop(t, "ordered");
    char *expr = NULL;
    expected outs[MAX_OUTPUTS];
    xmlChar *texts[MAX_OUTPUTS];
    int nouts = 0, pass = 0;
    for (xmlNode *k = t->children; k; k = k->next) {
        if (k->type != XML_ELEMENT_NODE) continue;
        if (!strcmp((const char *)k->name, "expression")) {
            expr = (char *)xmlNodeGetContent(k);
            char *inv = prop(k, "invalid");
            if (inv && !invalid)
                invalid = inv;
            else
                xmlFree(inv);
        } else if (!strcmp((const char *)k->name, "output") && nouts < MAX_OUTPUTS) {
            texts[nouts] = xmlNodeGetContent(k);
            outs[nouts].type = prop(k, "type");
            outs[nouts].value = (const char *)texts[nouts];
            nouts++;
        }
    }
    int want_error = invalid && strcmp(invalid, "false");
    tsg_arena *a = tsg_arena_new(SUITE_ARENA_MAX);
    fp_expr *e = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    const fhir_node *root = NULL;
    const char *in_why = "";
    fp_collection res;
    if (!expr || !a) {
        snprintf(why, cap, "no expression");
        goto done;
    }
    if (inputfile && !(root = fpi_load(inputfile, &in_why))) {
        snprintf(why, cap, "%s", in_why);
        goto done;
    }
    tsg_rc rc = fp_compile(expr, strlen(expr), &e, &err);
    if (rc == TSG_OK) rc = fp_eval(e, root, root, NULL, a, &res, &err);
    if (want_error) {
        pass = rc != TSG_OK;
        if (!pass) snprintf(why, cap, "expected a %s error, got a result", invalid);
        goto done;
    }
    if (rc != TSG_OK) {
        snprintf(why, cap, "error at column %u: %s", err.column, err.message);
        goto done;
    }
    const fp_item *items[MAX_OUTPUTS];
    size_t count = res.count;
    if (predicate && !strcmp(predicate, "true")) {
        /* handled below by comparing one boolean */
    }
    if (predicate && !strcmp(predicate, "true")) {
        int v;
        if (res.count == 0) {
            v = 0;
        } else if (res.count == 1) {
            char tn[160];
            fp_item_type_name(fp_collection_item(&res, 0), tn, sizeof tn);
            v = 1;
            if (!strcmp(tn, "System.Boolean") || !strcmp(tn, "FHIR.boolean")) {
                tsg_buf b;
                tsg_buf_init(&b, 0);
                fp_item_write_text(fp_collection_item(&res, 0), &b);
                v = b.len == 4;
                tsg_buf_free(&b);
            }
        } else {
            v = 1;
        }
        pass = nouts == 1 && !strcmp(outs[0].value, v ? "true" : "false");
        if (!pass) snprintf(why, cap, "predicate is %s", v ? "true" : "false");
        goto done;
    }
    if (count != (size_t)nouts) {
        tsg_buf b;
        tsg_buf_init(&b, 4096);
        fp_collection_write_json(&res, &b);
        tsg_buf_putc(&b, 0);
        snprintf(why, cap, "%zu items, expected %d: %.200s", count, nouts,
                 tsg_buf_rc(&b) == TSG_OK ? b.data : "(long)");
        tsg_buf_free(&b);
        goto done;
    }
    for (size_t i = 0; i < count; i++) items[i] = fp_collection_item(&res, i);
    int unordered = ordered && !strcmp(ordered, "false");
    pass = 1;
    for (int i = 0; i < nouts && pass; i++) {
        if (!unordered) {
            pass = item_matches(items[i], &outs[i]);
        } else {
            pass = 0;
            for (size_t j = 0; j < count && !pass; j++)
                if (items[j] && item_matches(items[j], &outs[i])) {
                    items[j] = NULL;
                    pass = 1;
                }
        }
        if (!pass) {
            tsg_buf b;
            tsg_buf_init(&b, 4096);
            fp_collection_write_json(&res, &b);
            tsg_buf_putc(&b, 0);
            snprintf(why, cap, "item %d: expected %s %s; got %.200s", i,
                     outs[i].type ? outs[i].type : "", outs[i].value,
                     tsg_buf_rc(&b) == TSG_OK ? b.data : "(long)");
            tsg_buf_free(&b);
        }
    }
done:
    fp_expr_free(e);
    tsg_arena_free(a);
    for (int i = 0; i < nouts; i++) {
        xmlFree(texts[i]);
        xmlFree((void *)outs[i].type);
    }
    xmlFree(expr);
    xmlFree(inputfile);
    xmlFree(invalid);
    xmlFree(predicate);
    xmlFree(ordered);
    return pass;
}

int main(int argc, char **argv)
{
    const char *corpus = getenv("TSUNAGU_CORPUS");
    if (!corpus || !*corpus) corpus = argc > 1 ? argv[1] : TSUNAGU_CORPUS;
    snprintf(g_dir, sizeof g_dir, "%s/fhirpath", corpus);
    char path[1300];
    snprintf(path, sizeof path, "%s/tests-fhir-r4.xml", g_dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("skipped: corpus not found at %s\n", path);
        return 77;
    }
    fclose(f);
    xmlDoc *doc = xmlReadFile(path, NULL, XML_PARSE_NONET);
    if (!doc) {
        fprintf(stderr, "cannot parse %s\n", path);
        return 1;
    }
    tsg_arena *inputs = tsg_arena_new(0);
    if (!inputs) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    fpi_init(g_dir, inputs);
    model_r4();
    int passed = 0, failed = 0;
    char names[1024][96];
    int nnames = 0;
    xmlNode *top = xmlDocGetRootElement(doc);
    for (xmlNode *g = top->children; g; g = g->next) {
        if (g->type != XML_ELEMENT_NODE || strcmp((const char *)g->name, "group")) continue;
        for (xmlNode *t = g->children; t; t = t->next) {
            if (t->type != XML_ELEMENT_NODE || strcmp((const char *)t->name, "test")) continue;
            char *nm = prop(t, "name");
            char name[120];
            int dup = 1;
            for (int i = 0; i < nnames; i++)
                if (!strcmp(names[i], nm ? nm : "")) dup++;
            if (nnames < 1024) snprintf(names[nnames++], sizeof names[0], "%s", nm ? nm : "");
            if (dup > 1)
                snprintf(name, sizeof name, "%s#%d", nm ? nm : "", dup);
            else
                snprintf(name, sizeof name, "%s", nm ? nm : "");
            xmlFree(nm);
            char why[600] = "";
            if (run_test(t, why, sizeof why)) {
                passed++;
            } else {
                failed++;
                printf("FAIL %s: %s\n", name, why);
            }
        }
    }
    xmlFreeDoc(doc);
    xmlCleanupParser();
    tsg_arena_free(inputs);
    printf("fhirpath R4 suite: %d passed, %d failed of %d (floor %d; issue 3 requires 925)\n",
           passed, failed, passed + failed, FP_SUITE_MIN_PASS);
    return passed >= FP_SUITE_MIN_PASS ? 0 : 1;
}
