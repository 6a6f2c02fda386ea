/*
 * bench_convert.c — throughput of FHIR JSON/XML reading, writing and
 * conversion over the official R4 examples, beside the raw-library ceilings
 * (jansson parse+dump, libxml2 SAX parse) measured in the same run.
 *
 * usage: bench_convert [--seconds S] [--rounds N] [--tsv] [CORPUS]
 *
 * CORPUS is the shared corpus folder (its r4-examples/ is used) or an
 * r4-examples folder itself (json/ and xml/ inside); without it,
 * $TSUNAGU_CORPUS, then ../shared/corpus. Every file is loaded into memory
 * first. Each metric runs whole passes over its files until S seconds (default
 * 1) have passed, N times (default 3); the figure is the median of the rounds,
 * in MB/s of input (MB = 10^6 bytes).
 *
 * A file that a metric cannot process (the converter answered an error) is
 * counted and left out of that metric's timed passes, so a failure neither
 * crashes the benchmark nor flatters the figure; the count and the first error
 * are printed. With --tsv the output is one line per metric for
 * tests/bench/convert/run:
 *   metric  ok  total  bytes  mbps_median  mbps_min  mbps_max  first_error
 *
 * Not a test: run it with tests/bench/convert/run (Release build).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libxml/parser.h>

#include "model/model.h"
#include "util/util.h"

#define MAX_FILE_BYTES (64u * 1024u * 1024u)
#define MAX_ROUNDS     15

typedef struct input {
    char *name; /* file name, for error messages */
    char *data;
    size_t len;
} input;

typedef struct inputs {
    input *a;
    size_t n;
    size_t bytes;
} inputs;

/* One unit of work on one input: returns 0 on success, else fills why. */
typedef int (*work_fn)(const input *in, char *why, size_t whycap);

/* ------------------------------------------------------------------------
 * Loading the corpus
 * ------------------------------------------------------------------------ */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(((const input *)x)->name, ((const input *)y)->name);
}

/* Loads every DIR/ *SUFFIX file, sorted by name. Exits on any I/O error. */
static void load_dir(const char *dir, const char *suffix, inputs *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench_convert: cannot open %s: %s\n", dir, strerror(errno));
        exit(2);
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!ends_with(de->d_name, suffix)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        input in = {0};
        tsg_error err;
        if (tsg_read_file(path, MAX_FILE_BYTES, &in.data, &in.len, &err) != TSG_OK) {
            fprintf(stderr, "bench_convert: %s\n", err.message);
            exit(2);
        }
        in.name = strdup(de->d_name);
        if (out->n == cap) {
            cap = cap ? cap * 2 : 512;
            out->a = realloc(out->a, cap * sizeof *out->a);
        }
        if (!in.name || !out->a) {
            fprintf(stderr, "bench_convert: out of memory\n");
            exit(2);
        }
        out->a[out->n++] = in;
        out->bytes += in.len;
    }
    closedir(d);
    qsort(out->a, out->n, sizeof *out->a, name_cmp);
}

static int is_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    closedir(d);
    return 1;
}

/* ------------------------------------------------------------------------
 * The work
 * ------------------------------------------------------------------------ */

static void say_error(char *why, size_t cap, const input *in, const tsg_error *err)
{
    snprintf(why, cap, "%s: %s%s%s", in->name, err->location, err->location[0] ? ": " : "",
             err->message[0] ? err->message : tsg_rc_name(err->rc));
}

static tsg_buf g_out; /* reused output buffer */

/* Parses in as JSON (kind 'j') or XML ('x'); writes JSON ('j'), XML ('x') or nothing (0). */
static int convert(const input *in, char from, char to, char *why, size_t whycap)
{
    tsg_arena *a = tsg_arena_new(0);
    if (!a) {
        snprintf(why, whycap, "out of memory");
        return -1;
    }
    fhir_node *root = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = from == 'j' ? fhir_json_parse(a, in->data, in->len, NULL, &root, &err)
                            : fhir_xml_parse(a, in->data, in->len, NULL, &root, &err);
    if (rc != TSG_OK) {
        say_error(why, whycap, in, &err);
    } else if (to) {
        tsg_buf_reset(&g_out);
        rc = to == 'j' ? fhir_json_write(root, &g_out, 0) : fhir_xml_write(root, &g_out, 0);
        if (rc != TSG_OK)
            snprintf(why, whycap, "%s: the %s writer answered: %s", in->name,
                     to == 'j' ? "JSON" : "XML", tsg_rc_name(rc));
    }
    tsg_arena_free(a);
    return rc == TSG_OK ? 0 : -1;
}

static int work_json_rw(const input *in, char *why, size_t cap)
{
    return convert(in, 'j', 'j', why, cap);
}

static int work_json_read(const input *in, char *why, size_t cap)
{
    return convert(in, 'j', 0, why, cap);
}

static int work_xml_to_json(const input *in, char *why, size_t cap)
{
    return convert(in, 'x', 'j', why, cap);
}

static int work_json_to_xml(const input *in, char *why, size_t cap)
{
    return convert(in, 'j', 'x', why, cap);
}

static int work_jansson_load(const input *in, char *why, size_t cap)
{
    json_error_t jerr;
    json_t *j = json_loadb(in->data, in->len, 0, &jerr);
    if (!j) {
        snprintf(why, cap, "%s:%d: %s", in->name, jerr.line, jerr.text);
        return -1;
    }
    json_decref(j);
    return 0;
}

static int work_jansson_load_dump(const input *in, char *why, size_t cap)
{
    json_error_t jerr;
    json_t *j = json_loadb(in->data, in->len, 0, &jerr);
    if (!j) {
        snprintf(why, cap, "%s:%d: %s", in->name, jerr.line, jerr.text);
        return -1;
    }
    size_t need = json_dumpb(j, NULL, 0, JSON_COMPACT);
    tsg_buf_reset(&g_out);
    if (tsg_buf_reserve(&g_out, need) != 0) {
        json_decref(j);
        snprintf(why, cap, "out of memory");
        return -1;
    }
    json_dumpb(j, g_out.data, need, JSON_COMPACT);
    json_decref(j);
    return 0;
}

/* An empty SAX2 handler: libxml2 tokenizes and checks well-formedness, and
 * builds nothing. */
static xmlSAXHandler g_sax;
static int g_sax_error;

static void sax_error(void *ctx, const char *msg, ...)
{
    (void)ctx, (void)msg;
    g_sax_error = 1;
}

static int work_libxml2_sax(const input *in, char *why, size_t cap)
{
    g_sax_error = 0;
    int rc = xmlSAXUserParseMemory(&g_sax, NULL, in->data, (int)in->len);
    if (rc != 0 || g_sax_error) {
        snprintf(why, cap, "%s: libxml2 error %d", in->name, rc);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Measuring
 * ------------------------------------------------------------------------ */

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

typedef struct result {
    const char *metric;
    size_t ok, total, bytes;
    double median, min, max; /* MB/s; 0 when nothing could be measured */
    char first_error[512];
} result;

static result measure(const char *metric, const inputs *ins, work_fn fn, double seconds, int rounds)
{
    result r = {.metric = metric, .total = ins->n};
    /* a first pass finds the inputs that work (and warms the caches) */
    char *works = calloc(ins->n ? ins->n : 1, 1);
    if (!works) {
        fprintf(stderr, "bench_convert: out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < ins->n; i++) {
        char why[512] = "";
        if (fn(&ins->a[i], why, sizeof why) == 0) {
            works[i] = 1;
            r.ok++;
            r.bytes += ins->a[i].len;
        } else if (!r.first_error[0]) {
            snprintf(r.first_error, sizeof r.first_error, "%s", why[0] ? why : "failed");
        }
    }
    if (r.ok > 0) {
        double mbps[MAX_ROUNDS];
        for (int k = 0; k < rounds; k++) {
            size_t passes = 0;
            double t0 = now(), t;
            do {
                for (size_t i = 0; i < ins->n; i++) {
                    if (!works[i]) continue;
                    char why[512];
                    if (fn(&ins->a[i], why, sizeof why) != 0) {
                        fprintf(stderr, "bench_convert: %s: %s failed on a repeat\n", metric, why);
                        exit(2);
                    }
                }
                passes++;
                t = now() - t0;
            } while (t < seconds);
            mbps[k] = (double)r.bytes * (double)passes / t / 1e6;
        }
        qsort(mbps, (size_t)rounds, sizeof mbps[0], dbl_cmp);
        r.min = mbps[0];
        r.max = mbps[rounds - 1];
        r.median = mbps[rounds / 2];
    }
    free(works);
    return r;
}

static void print_result(const result *r, int tsv)
{
    if (tsv) {
        /* the error text must stay on one field */
        char err[512];
        snprintf(err, sizeof err, "%s", r->first_error[0] ? r->first_error : "-");
        for (char *p = err; *p; p++)
            if (*p == '\t' || *p == '\n' || *p == '\r') *p = ' ';
        printf("%s\t%zu\t%zu\t%zu\t%.2f\t%.2f\t%.2f\t%s\n", r->metric, r->ok, r->total, r->bytes,
               r->median, r->min, r->max, err);
    } else if (r->ok == 0) {
        printf("%-22s  not measured: 0/%zu files worked; first error: %s\n", r->metric, r->total,
               r->first_error);
    } else {
        printf("%-22s %9.1f MB/s  (%.1f–%.1f)  %zu/%zu files", r->metric, r->median, r->min, r->max,
               r->ok, r->total);
        if (r->ok < r->total) printf("; %zu failed, first: %s", r->total - r->ok, r->first_error);
        printf("\n");
    }
    fflush(stdout);
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_convert [--seconds S] [--rounds N] [--tsv] [CORPUS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    double seconds = 1.0;
    int rounds = 3, tsv = 0;
    const char *corpus = NULL;
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
        } else if (argv[i][0] == '-' || corpus) {
            return usage();
        } else {
            corpus = argv[i];
        }
    }
    if (!corpus) corpus = getenv("TSUNAGU_CORPUS");
    if (!corpus || !corpus[0]) corpus = "../shared/corpus";

    char dir[4096], jdir[4200], xdir[4200];
    snprintf(dir, sizeof dir, "%s/r4-examples", corpus);
    if (!is_dir(dir)) snprintf(dir, sizeof dir, "%s", corpus);
    snprintf(jdir, sizeof jdir, "%s/json", dir);
    snprintf(xdir, sizeof xdir, "%s/xml", dir);
    if (!is_dir(jdir) || !is_dir(xdir)) {
        fprintf(stderr, "bench_convert: no r4-examples corpus (json/ and xml/) at %s\n", dir);
        return 2;
    }
    inputs js = {0}, xs = {0};
    load_dir(jdir, ".json", &js);
    load_dir(xdir, ".xml", &xs);
    if (js.n == 0 || xs.n == 0) {
        fprintf(stderr, "bench_convert: no .json or no .xml files under %s\n", dir);
        return 2;
    }

    xmlInitParser();
    memset(&g_sax, 0, sizeof g_sax);
    g_sax.initialized = XML_SAX2_MAGIC;
    g_sax.error = sax_error;
    g_sax.fatalError = sax_error;
    tsg_buf_init(&g_out, 0);
    model_r4(); /* load the model outside the timed passes */

    if (!tsv)
        printf("corpus %s: %zu JSON files (%.2f MB), %zu XML files (%.2f MB); "
               "median of %d rounds of %.1f s; MB = 10^6 bytes of input\n",
               dir, js.n, (double)js.bytes / 1e6, xs.n, (double)xs.bytes / 1e6, rounds, seconds);

    static const struct {
        const char *metric;
        char input; /* 'j' or 'x' */
        work_fn fn;
    } plan[] = {
        {"json_read_write", 'j', work_json_rw},
        {"json_read", 'j', work_json_read},
        {"xml_to_json", 'x', work_xml_to_json},
        {"json_to_xml", 'j', work_json_to_xml},
        {"jansson_load_dump", 'j', work_jansson_load_dump},
        {"jansson_load", 'j', work_jansson_load},
        {"libxml2_sax", 'x', work_libxml2_sax},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        result r =
            measure(plan[i].metric, plan[i].input == 'j' ? &js : &xs, plan[i].fn, seconds, rounds);
        print_result(&r, tsv);
    }

    tsg_buf_free(&g_out);
    xmlCleanupParser();
    for (size_t i = 0; i < js.n; i++) free(js.a[i].data), free(js.a[i].name);
    for (size_t i = 0; i < xs.n; i++) free(xs.a[i].data), free(xs.a[i].name);
    free(js.a);
    free(xs.a);
    return 0;
}
