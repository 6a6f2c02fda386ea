/*
 * bench_fhirpath.c — FHIRPath evaluations per second over the official R4
 * suite (tests-fhir-r4.xml), parse+evaluate and compiled evaluate.
 *
 *   bench_fhirpath --list OUT [CORPUS]
 *       Reads CORPUS/fhirpath/tests-fhir-r4.xml, parses every input file once
 *       (XML inputs retried with reordered children as the conformance runner
 *       does), keeps the tests that are not `invalid` and that fp_compile() +
 *       fp_eval() evaluate without error, and writes OUT/candidates.jsonl, one
 *       {"expr": E, "file": F, "json": J} per line (F the suite's input file,
 *       J OUT/inputs/F.json written with fhir_json_write for the peer; both
 *       null for tests without input), plus the counts on stderr.
 *
 *   bench_fhirpath --use LIST [--seconds S] [--rounds N] [--tsv] [CORPUS]
 *       Measures the (expression, input) pairs of LIST (the same format; the
 *       run script passes the pairs both engines evaluate). Two metrics:
 *         parse_eval     fp_compile + fp_eval + free per evaluation;
 *         compiled_eval  every expression compiled once up front, fp_eval only.
 *       Each evaluation gets a fresh arena (created and freed in the loop). A
 *       warm-up pass, then whole passes over the pairs for S seconds (default
 *       1), N rounds (default 3); the figure is the median, in evaluations/s.
 *       --tsv prints: metric  pairs  median  min  max
 *
 * Not a test: run it with tests/bench/fhirpath/run (Release build).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "fhirpath/fhirpath.h"
#include "model/model.h"
#include "util/util.h"
#include "fhirpath_inputs.h"

#define MAX_INPUTS 64 /* input files one run names */
#define MAX_ROUNDS 15

static char g_dir[1024]; /* the suite's folder */

static void die(const char *what)
{
    fprintf(stderr, "bench_fhirpath: %s\n", what);
    exit(2);
}

/* The parsed input file `name`; NULL (said on stderr) when it cannot be read. */
static const fhir_node *load_input(const char *name)
{
    const char *why = NULL;
    const fhir_node *root = fpi_load(name, &why);
    if (!root) fprintf(stderr, "bench_fhirpath: %s (its tests are left out)\n", why);
    return root;
}

static int eval_once(const char *expr, size_t len, const fp_expr *e, const fhir_node *root)
{
    tsg_arena *a = tsg_arena_new(0);
    if (!a) die("out of memory");
    fp_expr *own = NULL;
    tsg_error err;
    tsg_rc rc = TSG_OK;
    if (!e) {
        rc = fp_compile(expr, len, &own, &err);
        e = own;
    }
    fp_collection res;
    if (rc == TSG_OK) rc = fp_eval(e, root, root, NULL, a, &res, &err);
    fp_expr_free(own);
    tsg_arena_free(a);
    return rc == TSG_OK ? 0 : -1;
}

static char *prop(xmlNode *n, const char *name)
{
    return (char *)xmlGetProp(n, (const xmlChar *)name);
}

/* --list: writes OUT/candidates.jsonl and OUT/inputs/ *.json. */
static int list_candidates(const char *out)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/tests-fhir-r4.xml", g_dir);
    xmlDoc *doc = xmlReadFile(path, NULL, XML_PARSE_NONET);
    if (!doc) die("cannot read the suite (tests-fhir-r4.xml)");
    char idir[1300];
    snprintf(idir, sizeof idir, "%s/inputs", out);
    if (mkdir(idir, 0777) != 0 && errno != EEXIST) die("cannot create OUT/inputs");
    snprintf(path, sizeof path, "%s/candidates.jsonl", out);
    FILE *lf = fopen(path, "w");
    if (!lf) die("cannot write OUT/candidates.jsonl");
    int total = 0, invalid_n = 0, no_input = 0, failed = 0, kept = 0;
    char written[MAX_INPUTS][128];
    int nwritten = 0;
    xmlNode *top = xmlDocGetRootElement(doc);
    for (xmlNode *g = top ? top->children : NULL; g; g = g->next) {
        if (g->type != XML_ELEMENT_NODE || strcmp((const char *)g->name, "group")) continue;
        for (xmlNode *t = g->children; t; t = t->next) {
            if (t->type != XML_ELEMENT_NODE || strcmp((const char *)t->name, "test")) continue;
            total++;
            char *inputfile = prop(t, "inputfile"), *invalid = prop(t, "invalid");
            char *expr = NULL;
            for (xmlNode *k = t->children; k; k = k->next) {
                if (k->type != XML_ELEMENT_NODE || strcmp((const char *)k->name, "expression"))
                    continue;
                expr = (char *)xmlNodeGetContent(k);
                char *inv = prop(k, "invalid");
                if (inv && !invalid)
                    invalid = inv;
                else
                    xmlFree(inv);
            }
            const fhir_node *root = NULL;
            if (invalid && strcmp(invalid, "false")) {
                invalid_n++;
            } else if (!expr) {
                failed++;
            } else if (inputfile && !(root = load_input(inputfile))) {
                no_input++;
            } else if (eval_once(expr, strlen(expr), NULL, root) != 0) {
                failed++;
            } else {
                char jpath[1500] = "";
                if (inputfile) {
                    snprintf(jpath, sizeof jpath, "%s/%s.json", idir, inputfile);
                    int seen = 0;
                    for (int i = 0; i < nwritten; i++) seen |= !strcmp(written[i], inputfile);
                    if (!seen) {
                        tsg_buf b;
                        tsg_buf_init(&b, 0);
                        FILE *jf = fopen(jpath, "w");
                        if (!jf || fhir_json_write(root, &b, 0) != TSG_OK ||
                            fwrite(b.data, 1, b.len, jf) != b.len || fclose(jf) != 0)
                            die("cannot write an input as JSON");
                        tsg_buf_free(&b);
                        snprintf(written[nwritten++], sizeof written[0], "%s", inputfile);
                    }
                }
                json_t *o = json_object();
                json_object_set_new(o, "expr", json_string(expr));
                json_object_set_new(o, "file", inputfile ? json_string(inputfile) : json_null());
                json_object_set_new(o, "json", inputfile ? json_string(jpath) : json_null());
                char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (!line) die("out of memory");
                fprintf(lf, "%s\n", line);
                free(line);
                json_decref(o);
                kept++;
            }
            xmlFree(expr);
            xmlFree(inputfile);
            xmlFree(invalid);
        }
    }
    if (fclose(lf) != 0) die("cannot write OUT/candidates.jsonl");
    xmlFreeDoc(doc);
    fprintf(stderr,
            "bench_fhirpath: %d tests; %d invalid, %d on an unreadable input, %d failed to "
            "evaluate; %d kept\n",
            total, invalid_n, no_input, failed, kept);
    return 0;
}

typedef struct pair {
    char *expr;
    size_t len;
    const fhir_node *root;
    fp_expr *compiled;
} pair;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dbl_cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void pass(const pair *p, size_t n, int compiled)
{
    for (size_t i = 0; i < n; i++)
        if (eval_once(p[i].expr, p[i].len, compiled ? p[i].compiled : NULL, p[i].root) != 0)
            die("an evaluation failed on a repeat");
}

static void measure(const char *metric, const pair *p, size_t n, int compiled, double seconds,
                    int rounds, int tsv)
{
    double rate[MAX_ROUNDS];
    double w0 = now();
    do /* warm-up: at least one pass, about a quarter of a round */
        pass(p, n, compiled);
    while (now() - w0 < seconds / 4);
    for (int k = 0; k < rounds; k++) {
        size_t passes = 0;
        double t0 = now(), t;
        do {
            pass(p, n, compiled);
            passes++;
            t = now() - t0;
        } while (t < seconds);
        rate[k] = (double)n * (double)passes / t;
    }
    qsort(rate, (size_t)rounds, sizeof rate[0], dbl_cmp);
    if (tsv)
        printf("%s\t%zu\t%.1f\t%.1f\t%.1f\n", metric, n, rate[rounds / 2], rate[0],
               rate[rounds - 1]);
    else
        printf("%-14s %12.0f evals/s  (%.0f–%.0f)  %zu expressions\n", metric, rate[rounds / 2],
               rate[0], rate[rounds - 1], n);
    fflush(stdout);
}

static int use_list(const char *list, double seconds, int rounds, int tsv)
{
    FILE *f = fopen(list, "r");
    if (!f) die("cannot open the LIST");
    pair *p = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    while ((got = getline(&line, &lcap, f)) > 0) {
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)got, 0, &jerr);
        const char *expr = o ? json_string_value(json_object_get(o, "expr")) : NULL;
        if (!expr) die("a LIST line is not {\"expr\": …}");
        const char *file = json_string_value(json_object_get(o, "file"));
        pair q = {0};
        q.len = strlen(expr);
        q.expr = malloc(q.len + 1);
        if (!q.expr) die("out of memory");
        memcpy(q.expr, expr, q.len + 1);
        if (file && !(q.root = load_input(file))) die("an input of LIST cannot be read");
        tsg_error err;
        if (fp_compile(q.expr, q.len, &q.compiled, &err) != TSG_OK)
            die("an expression of LIST does not compile");
        json_decref(o);
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            p = realloc(p, cap * sizeof *p);
            if (!p) die("out of memory");
        }
        p[n++] = q;
    }
    free(line);
    fclose(f);
    if (n == 0) die("LIST is empty");
    if (!tsv) printf("%zu expressions; median of %d rounds of %.1f s\n", n, rounds, seconds);
    measure("parse_eval", p, n, 0, seconds, rounds, tsv);
    measure("compiled_eval", p, n, 1, seconds, rounds, tsv);
    for (size_t i = 0; i < n; i++) {
        fp_expr_free(p[i].compiled);
        free(p[i].expr);
    }
    free(p);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_fhirpath --list OUT [CORPUS]\n"
                    "       bench_fhirpath --use LIST [--seconds S] [--rounds N] [--tsv] "
                    "[CORPUS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    double seconds = 1.0;
    int rounds = 3, tsv = 0;
    const char *corpus = NULL, *list_out = NULL, *use = NULL;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = strtod(argv[++i], &end);
            if (*end || seconds <= 0 || seconds > 600) return usage();
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > MAX_ROUNDS) return usage();
            rounds = (int)v;
        } else if (!strcmp(argv[i], "--tsv")) {
            tsv = 1;
        } else if (!strcmp(argv[i], "--list") && i + 1 < argc) {
            list_out = argv[++i];
        } else if (!strcmp(argv[i], "--use") && i + 1 < argc) {
            use = argv[++i];
        } else if (argv[i][0] == '-' || corpus) {
            return usage();
        } else {
            corpus = argv[i];
        }
    }
    if (!list_out == !use) return usage();
    if (!corpus) corpus = getenv("TSUNAGU_CORPUS");
    if (!corpus || !corpus[0]) corpus = "../shared/corpus";
    snprintf(g_dir, sizeof g_dir, "%s/fhirpath", corpus);

    tsg_arena *inputs = tsg_arena_new(0);
    if (!inputs) die("out of memory");
    fpi_init(g_dir, inputs);
    model_r4();
    int rc = list_out ? list_candidates(list_out) : use_list(use, seconds, rounds, tsv);
    xmlCleanupParser();
    tsg_arena_free(inputs);
    return rc;
}
