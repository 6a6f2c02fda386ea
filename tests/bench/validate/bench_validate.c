/*
 * bench_validate.c — base validations per second over the R4 examples
 * (issue #6, item 8). Run by tests/bench/validate/run, which measures the
 * peer (npm fhir@4.12.0) on the same files in the same run.
 *
 *   bench_validate --list OUT CORPUS
 *       writes OUT/files.txt: every .json file of CORPUS/r4-examples/json that reads
 *       as FHIR JSON (all of them today), one path a line.
 *   bench_validate --tsv --seconds S --rounds R FILES
 *       measures over the files of FILES (rows: metric, files, median/s, min/s, max/s):
 *         parse_validate  read the JSON text into a tree and validate it against the
 *                         base (a fresh arena per resource, as a request would)
 *         validate        validate trees read beforehand
 *       after one warm-up pass; each figure is the median of R rounds of S seconds of
 *       CPU time (the process's, so other load on the machine does not count).
 *       The heap is tuned as `tsunagu serve` tunes it (rest_serve.c: large request arenas
 *       stay in the heap instead of being mmap()ed and trimmed every request), since that
 *       is where validation on write runs.
 */
#include <dirent.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "util/util.h"
#include "validate/validate.h"

/* CPU time of the process, not the wall clock: the machine is shared, and the
 * peer is timed the same way (process.cpuUsage()). */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int list(const char *out, const char *corpus)
{
    char dir[2048], path[4096];
    snprintf(dir, sizeof dir, "%s/r4-examples/json", corpus);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench_validate: cannot open %s\n", dir);
        return 2;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 512;
            names = realloc(names, cap * sizeof *names);
            if (!names) return 2;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    snprintf(path, sizeof path, "%s/files.txt", out);
    FILE *f = fopen(path, "w");
    if (!f) return 2;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *data;
        size_t len;
        tsg_error err;
        if (tsg_read_file(path, TSG_LIMIT_BODY_BYTES, &data, &len, &err) == TSG_OK) {
            tsg_arena *a = tsg_arena_new(0);
            fhir_node *root;
            if (fhir_json_parse(a, data, len, NULL, &root, &err) == TSG_OK) {
                fprintf(f, "%s\n", path);
                kept++;
            }
            tsg_arena_free(a);
            free(data);
        }
        free(names[i]);
    }
    free(names);
    fclose(f);
    fprintf(stderr, "bench_validate: %zu of %zu examples read as FHIR JSON\n", kept, n);
    return 0;
}

typedef struct input {
    char *text;
    size_t len;
    fhir_node *tree;
} input;

static size_t validate_one(const input *in, int parse)
{
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root = in->tree;
    tsg_error err;
    if (parse && fhir_json_parse(a, in->text, in->len, NULL, &root, &err) != TSG_OK) abort();
    validate_result r;
    validate_result_init(&r, a);
    if (validate_resource(root, NULL, &r) != TSG_OK) abort();
    size_t n = r.count;
    tsg_arena_free(a);
    return n;
}

/* Resources per second of one metric: rounds of `seconds` over all inputs. */
static void measure(const char *metric, input *in, size_t n, int parse, double seconds, int rounds)
{
    volatile size_t sink = 0;
    for (size_t i = 0; i < n; i++) sink += validate_one(&in[i], parse); /* warm-up */
    double *rates = calloc((size_t)rounds, sizeof *rates);
    for (int r = 0; r < rounds; r++) {
        size_t done = 0;
        double t0 = now(), t;
        do {
            for (size_t i = 0; i < n; i++) sink += validate_one(&in[i], parse);
            done += n;
            t = now() - t0;
        } while (t < seconds);
        rates[r] = (double)done / t;
    }
    qsort(rates, (size_t)rounds, sizeof *rates, cmp_double);
    printf("%s\t%zu\t%.1f\t%.1f\t%.1f\n", metric, n, rates[rounds / 2], rates[0],
           rates[rounds - 1]);
    free(rates);
    (void)sink;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--list")) return list(argv[2], argv[3]);
    double seconds = 1;
    int rounds = 3;
    const char *files = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--tsv"))
            continue;
        else
            files = argv[i];
    }
    if (!files || rounds < 1 || seconds <= 0) {
        fprintf(stderr, "usage: bench_validate --list OUT CORPUS | --tsv [--seconds S] "
                        "[--rounds R] FILES\n");
        return 2;
    }
    FILE *f = fopen(files, "r");
    if (!f) return 2;
    input *in = NULL;
    size_t n = 0, cap = 0;
    char line[4096];
    tsg_arena *trees = tsg_arena_new(0);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0]) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 512;
            in = realloc(in, cap * sizeof *in);
            if (!in) return 2;
        }
        tsg_error err;
        if (tsg_read_file(line, TSG_LIMIT_BODY_BYTES, &in[n].text, &in[n].len, &err)) return 2;
        if (fhir_json_parse(trees, in[n].text, in[n].len, NULL, &in[n].tree, &err)) return 2;
        n++;
    }
    fclose(f);
    if (!n) return 2;
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
    measure("parse_validate", in, n, 1, seconds, rounds);
    measure("validate", in, n, 0, seconds, rounds);
    for (size_t i = 0; i < n; i++) free(in[i].text);
    free(in);
    tsg_arena_free(trees);
    return 0;
}
