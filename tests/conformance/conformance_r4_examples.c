/*
 * conformance_r4_examples.c — the FHIR JSON ⇄ XML conformance test over the
 * official R4 examples (../shared/corpus/r4-examples: 487 JSON/XML pairs of
 * the same resource). The rules are in README.md next to this file.
 *
 * For every pair, three checks:
 *   1. XML→JSON equals the official JSON:
 *      (a) structurally (independent parser, exact number text), and
 *      (b) byte for byte against the canonical form of the official JSON
 *          (fhir_json_parse + fhir_json_write);
 *   2. JSON→XML equals the official XML as element trees (libxml2);
 *   3. JSON→XML→JSON is the identity, byte for byte on the canonical form.
 * observation-decimal is the one deliberate exception: its official files
 * spell the same decimals differently, so checks 1 and 2 compare its
 * decimals by value; check 3 stays byte-exact.
 *
 * Usage: conformance_r4_examples [options] [CORPUS]
 *   CORPUS        the corpus folder (holding r4-examples/), or r4-examples
 *                 itself; the environment variable TSUNAGU_CORPUS overrides
 *   --verbose, -v print the place of each difference (both lines or both
 *                 values) and a line per passing file
 *                 (also: TSUNAGU_CONFORMANCE_VERBOSE=1)
 *   --only NAMES  only the pairs whose base name contains one of the
 *                 comma-separated NAMES (also: TSUNAGU_CONFORMANCE_ONLY)
 *   --dump DIR    write our outputs of every failing pair into DIR
 *   --no-fork     run pairs in this process (for a debugger); by default
 *                 each pair runs in a child so a crash is reported per file
 *   --self-test   test the comparers on hand-made pairs, then exit
 *
 * Exit status: 0 all pass, 1 a failure, 2 bad usage, 77 corpus absent (skip).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"
#include "model/model.h"
#include "util/util.h"

#ifndef TSUNAGU_CORPUS
#define TSUNAGU_CORPUS "../shared/corpus"
#endif

#define DECIMAL_EDGE_CASE    "observation-decimal"
#define SKIP_EXIT            77
#define PAIR_TIMEOUT_SECONDS 120
#define MAX_FILE_BYTES       TSG_LIMIT_BODY_BYTES

/* ------------------------------------------------------------------------
 * Checks and their results
 * ------------------------------------------------------------------------ */

enum { CK_1A, CK_1B, CK_2, CK_3, CK_N };

static const char *const check_tag[CK_N] = {"1a", "1b", "2", "3"};
static const char *const check_title[CK_N] = {
    "XML→JSON equals the official JSON (structural)",
    "XML→JSON equals the canonical official JSON (bytes)",
    "JSON→XML equals the official XML (element trees)",
    "JSON→XML→JSON is the identity (bytes)",
};

typedef struct check_result {
    int failed;
    cmp_diff d;
} check_result;

/* What one pair produced; travels from a worker child through a pipe. */
typedef struct pair_result {
    check_result c[CK_N];
    unsigned magic; /* PAIR_DONE when the worker finished */
} pair_result;
#define PAIR_DONE 0x600dcafeu

typedef struct options {
    const char *corpus; /* folder with index.tsv */
    const char *only;   /* comma-separated substrings, or NULL */
    const char *dump;   /* folder for outputs of failing pairs, or NULL */
    int verbose;
    int fork;
} options;

static void fail_check(check_result *c, const char *kind, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_check(check_result *c, const char *kind, const char *path, const char *fmt, ...)
{
    va_list ap;
    c->failed = 1;
    cmp_diff_clear(&c->d);
    snprintf(c->d.kind, sizeof c->d.kind, "%s", kind);
    snprintf(c->d.path, sizeof c->d.path, "%s", path ? path : "");
    va_start(ap, fmt);
    vsnprintf(c->d.what, sizeof c->d.what, fmt, ap);
    va_end(ap);
}

/* Records the outcome of a comparison in c. */
static void record(check_result *c, int rc, const cmp_diff *d)
{
    if (rc == CMP_EQUAL) {
        c->failed = 0;
        return;
    }
    c->failed = 1;
    c->d = *d;
}

/* "what step failed: rc name (code) at location, line L column C: message" */
static void fail_step(check_result *c, const char *step, const tsg_error *err)
{
    char kind[64];
    snprintf(kind, sizeof kind, "%s: %s", step, tsg_rc_name(err->rc));
    fail_check(c, kind, err->location, "%s failed: %s (%s)%s%s, line %u column %u: %s", step,
               tsg_rc_name(err->rc), err->code ? err->code : "?", err->location[0] ? " at " : "",
               err->location, err->line, err->column, err->message);
}

static void fail_buf(check_result *c, const char *step, tsg_rc rc)
{
    fail_check(c, step, "", "%s failed: %s", step, tsg_rc_name(rc));
}

/* ------------------------------------------------------------------------
 * One pair
 * ------------------------------------------------------------------------ */

static void dump_file(const options *opt, const char *base, const char *suffix, const tsg_buf *b)
{
    if (!opt->dump || !b->data || b->len == 0) return;
    char path[4096];
    cmp_path_fmt(path, sizeof path, "%s/%s.%s", opt->dump, base, suffix);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    fwrite(b->data, 1, b->len, f);
    fclose(f);
}

static const char *buf_text(const tsg_buf *b)
{
    return b->data ? b->data : "";
}

static void run_pair(const options *opt, const char *base, pair_result *r)
{
    char jpath[4096], xpath[4096];
    char *json = NULL, *xml = NULL;
    size_t jlen = 0, xlen = 0;
    tsg_error err;
    unsigned numeric = strcmp(base, DECIMAL_EDGE_CASE) == 0 ? CMP_NUMERIC : 0;
    tsg_buf canon, ours_json, ours_xml, rt_xml, rt_json;
    fhir_node *jroot = NULL, *xroot = NULL, *rtroot = NULL;
    cmp_diff d;
    int rc;

    memset(r, 0, sizeof *r);
    tsg_buf_init(&canon, 0);
    tsg_buf_init(&ours_json, 0);
    tsg_buf_init(&ours_xml, 0);
    tsg_buf_init(&rt_xml, 0);
    tsg_buf_init(&rt_json, 0);
    tsg_arena *a = tsg_arena_new(0);

    cmp_path_fmt(jpath, sizeof jpath, "%s/json/%s.json", opt->corpus, base);
    cmp_path_fmt(xpath, sizeof xpath, "%s/xml/%s.xml", opt->corpus, base);
    if (!a) {
        for (int k = 0; k < CK_N; k++) fail_check(&r->c[k], "out of memory", "", "out of memory");
        goto done;
    }
    if (tsg_read_file(jpath, MAX_FILE_BYTES, &json, &jlen, &err) != TSG_OK ||
        tsg_read_file(xpath, MAX_FILE_BYTES, &xml, &xlen, &err) != TSG_OK) {
        for (int k = 0; k < CK_N; k++)
            fail_check(&r->c[k], "corpus file unreadable", "", "%s", err.message);
        goto done;
    }

    /* The canonical form of the official JSON: the reference of 1b and 3. */
    tsg_error_clear(&err);
    tsg_rc jrc = fhir_json_parse(a, json, jlen, NULL, &jroot, &err);
    tsg_error jerr = err;
    if (jrc == TSG_OK && (jrc = fhir_json_write(jroot, &canon, FHIR_WRITE_PRETTY)) != TSG_OK) {
        fail_buf(&r->c[CK_1B], "fhir_json_write (official JSON)", jrc);
        fail_buf(&r->c[CK_3], "fhir_json_write (official JSON)", jrc);
    }

    /* Check 1: XML → JSON. */
    tsg_error_clear(&err);
    tsg_rc xrc = fhir_xml_parse(a, xml, xlen, NULL, &xroot, &err);
    if (xrc != TSG_OK) {
        fail_step(&r->c[CK_1A], "fhir_xml_parse (official XML)", &err);
        r->c[CK_1B] = r->c[CK_1A];
    } else if ((xrc = fhir_json_write(xroot, &ours_json, FHIR_WRITE_PRETTY)) != TSG_OK) {
        fail_buf(&r->c[CK_1A], "fhir_json_write (from XML)", xrc);
        r->c[CK_1B] = r->c[CK_1A];
    } else {
        if ((rc = cmp_json_strict(buf_text(&ours_json), ours_json.len, &d)) != CMP_EQUAL)
            record(&r->c[CK_1A], rc, &d);
        else
            record(
                &r->c[CK_1A],
                cmp_json_structural(json, jlen, buf_text(&ours_json), ours_json.len, numeric, &d),
                &d);
        if (jrc != TSG_OK) {
            if (!r->c[CK_1B].failed)
                fail_step(&r->c[CK_1B], "fhir_json_parse (official JSON)", &jerr);
        } else {
            record(&r->c[CK_1B],
                   cmp_json_bytes(buf_text(&canon), canon.len, buf_text(&ours_json), ours_json.len,
                                  numeric | CMP_DIV_XHTML, &d),
                   &d);
        }
    }

    /* Check 2: JSON → XML. */
    if (jrc != TSG_OK) {
        fail_step(&r->c[CK_2], "fhir_json_parse (official JSON)", &jerr);
    } else if ((rc = fhir_xml_write(jroot, &ours_xml, FHIR_WRITE_PRETTY | FHIR_WRITE_XML_DECL)) !=
               TSG_OK) {
        fail_buf(&r->c[CK_2], "fhir_xml_write", (tsg_rc)rc);
    } else {
        record(&r->c[CK_2],
               cmp_xml_documents(xml, xlen, buf_text(&ours_xml), ours_xml.len, numeric, NULL, &d),
               &d);
    }

    /* Check 3: JSON → XML → JSON, against the canonical official JSON. The
     * XML in between is written compact (check 2 covers the pretty form). */
    if (jrc != TSG_OK) {
        fail_step(&r->c[CK_3], "fhir_json_parse (official JSON)", &jerr);
    } else if (!r->c[CK_3].failed) {
        tsg_error_clear(&err);
        if ((rc = fhir_xml_write(jroot, &rt_xml, 0)) != TSG_OK) {
            fail_buf(&r->c[CK_3], "fhir_xml_write (compact)", (tsg_rc)rc);
        } else if (fhir_xml_parse(a, buf_text(&rt_xml), rt_xml.len, NULL, &rtroot, &err) !=
                   TSG_OK) {
            fail_step(&r->c[CK_3], "fhir_xml_parse (our XML)", &err);
        } else if ((rc = fhir_json_write(rtroot, &rt_json, FHIR_WRITE_PRETTY)) != TSG_OK) {
            fail_buf(&r->c[CK_3], "fhir_json_write (round trip)", (tsg_rc)rc);
        } else {
            record(
                &r->c[CK_3],
                cmp_json_bytes(buf_text(&canon), canon.len, buf_text(&rt_json), rt_json.len, 0, &d),
                &d);
        }
    }

    if (r->c[CK_1A].failed || r->c[CK_1B].failed || r->c[CK_2].failed || r->c[CK_3].failed) {
        dump_file(opt, base, "canonical.json", &canon);
        dump_file(opt, base, "xml2json.json", &ours_json);
        dump_file(opt, base, "json2xml.xml", &ours_xml);
        dump_file(opt, base, "roundtrip.xml", &rt_xml);
        dump_file(opt, base, "roundtrip.json", &rt_json);
    }
done:
    tsg_buf_free(&canon);
    tsg_buf_free(&ours_json);
    tsg_buf_free(&ours_xml);
    tsg_buf_free(&rt_xml);
    tsg_buf_free(&rt_json);
    tsg_arena_free(a);
    free(json);
    free(xml);
    r->magic = PAIR_DONE;
}

/* Runs run_pair in a child process; a crash, a timeout or a sanitizer
 * report becomes a failure of this pair instead of ending the test.
 * Returns 0, or the child's abnormal status text in *why. */
static int run_pair_isolated(const options *opt, const char *base, pair_result *r, char *why,
                             size_t cap)
{
    int fds[2];
    why[0] = '\0';
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0) {
        snprintf(why, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(why, cap, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        alarm(PAIR_TIMEOUT_SECONDS);
        pair_result *res = calloc(1, sizeof *res);
        if (!res) _exit(3);
        run_pair(opt, base, res);
        const char *p = (const char *)res;
        size_t left = sizeof *res;
        while (left > 0) {
            ssize_t w = write(fds[1], p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) _exit(4);
            p += w;
            left -= (size_t)w;
        }
        free(res);
        close(fds[1]);
        exit(0); /* exit(), not _exit(): LeakSanitizer checks the child */
    }
    close(fds[1]);
    memset(r, 0, sizeof *r);
    char *p = (char *)r;
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(fds[0], p + got, sizeof *r - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status))
        snprintf(why, cap, "worker killed by signal %d%s", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        snprintf(why, cap, "worker exited with status %d (a sanitizer report is on stderr)",
                 WEXITSTATUS(status));
    if (got != sizeof *r || r->magic != PAIR_DONE) {
        memset(r, 0, sizeof *r);
        if (!why[0]) snprintf(why, cap, "worker ended without a result");
        return -1;
    }
    return why[0] ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * The index, the report
 * ------------------------------------------------------------------------ */

typedef struct failure {
    int check;
    const char *base;
    char group[CMP_PATH_MAX + 96]; /* kind @ path with indexes removed */
    char what[CMP_TEXT_MAX];
} failure;

typedef struct report {
    failure *items;
    size_t n, cap;
} report;

static void report_add(report *rep, int check, const char *base, const cmp_diff *d)
{
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 64;
        failure *p = realloc(rep->items, cap * sizeof *p);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        rep->items = p;
        rep->cap = cap;
    }
    failure *f = &rep->items[rep->n++];
    f->check = check;
    f->base = base;
    /* the group drops the resource type and array indexes, so that one
     * cause reads as one group: "*.component[*].code" */
    char norm[CMP_PATH_MAX];
    size_t o = 0;
    const char *s = d->path;
    size_t root = strcspn(s, ".[");
    if (s[root]) {
        norm[o++] = '*';
        s += root;
    }
    for (; *s && o + 4 < sizeof norm; s++) {
        if (*s == '[') {
            const char *e = s + 1;
            while (*e >= '0' && *e <= '9') e++;
            if (*e == ']' && e > s + 1) {
                memcpy(norm + o, "[*]", 3);
                o += 3;
                s = e;
                continue;
            }
        }
        norm[o++] = *s;
    }
    norm[o] = '\0';
    snprintf(f->group, sizeof f->group, "%s @ %s", d->kind, norm[0] ? norm : "(no path)");
    snprintf(f->what, sizeof f->what, "%s", d->what);
}

static int failure_order(const void *pa, const void *pb)
{
    const failure *a = pa, *b = pb;
    if (a->check != b->check) return a->check - b->check;
    return strcmp(a->group, b->group);
}

static void print_groups(report *rep)
{
    if (rep->n == 0) return;
    qsort(rep->items, rep->n, sizeof *rep->items, failure_order);
    printf("\nfailures grouped by cause (check, files, kind @ path):\n");
    for (size_t i = 0; i < rep->n;) {
        size_t j = i;
        while (j < rep->n && rep->items[j].check == rep->items[i].check &&
               strcmp(rep->items[j].group, rep->items[i].group) == 0)
            j++;
        printf("  [%s] %3zu  %s\n        e.g.", check_tag[rep->items[i].check], j - i,
               rep->items[i].group);
        for (size_t k = i; k < j && k < i + 6; k++) printf(" %s", rep->items[k].base);
        if (j - i > 6) printf(" …");
        printf("\n        first: %s: %s\n", rep->items[i].base, rep->items[i].what);
        i = j;
    }
}

/* True when base matches the --only filter (substring of any listed name). */
static int selected(const options *opt, const char *base)
{
    if (!opt->only || !*opt->only) return 1;
    const char *s = opt->only;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > 0) {
            char want[256];
            if (n >= sizeof want) n = sizeof want - 1;
            memcpy(want, s, n);
            want[n] = '\0';
            if (strstr(base, want)) return 1;
        }
        if (!e) break;
        s = e + 1;
    }
    return 0;
}

/* Reads index.tsv: fills *names with the base names (malloc'd array of
 * pointers into *text, which the caller frees with the array). */
static int read_index(const char *dir, char **text, char ***names, size_t *n)
{
    char path[4096];
    size_t len;
    tsg_error err;
    cmp_path_fmt(path, sizeof path, "%s/index.tsv", dir);
    if (tsg_read_file(path, MAX_FILE_BYTES, text, &len, &err) != TSG_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, err.message);
        return -1;
    }
    size_t cap = 1024;
    *names = malloc(cap * sizeof **names);
    *n = 0;
    if (!*names) return -1;
    int header = 1;
    for (char *line = *text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *tab = strchr(line, '\t');
        if (tab) *tab = '\0';
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[l - 1] = '\0';
        if (header) {
            header = 0;
            if (strcmp(line, "basename") == 0) {
                line = next;
                continue;
            }
        }
        if (*line) {
            if (*n == cap) {
                cap *= 2;
                char **p = realloc(*names, cap * sizeof *p);
                if (!p) return -1;
                *names = p;
            }
            (*names)[(*n)++] = line;
        }
        line = next;
    }
    return 0;
}

/* The r4-examples folder under root (or root itself); NULL when absent. */
static const char *find_examples(const char *root, char *out, size_t cap)
{
    struct stat st;
    char probe[4096];
    cmp_path_fmt(probe, sizeof probe, "%s/r4-examples/index.tsv", root);
    if (stat(probe, &st) == 0) {
        cmp_path_fmt(out, cap, "%s/r4-examples", root);
        return out;
    }
    cmp_path_fmt(probe, sizeof probe, "%s/index.tsv", root);
    if (stat(probe, &st) == 0) {
        cmp_path_fmt(out, cap, "%s", root);
        return out;
    }
    return NULL;
}

static void print_failure(const options *opt, int k, const char *base, const check_result *c)
{
    printf("FAIL [%s] %s: %s%s%s\n", check_tag[k], base, c->d.path, c->d.path[0] ? ": " : "",
           c->d.what);
    if (opt->verbose && c->d.context[0]) printf("    %s\n", c->d.context);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: conformance_r4_examples [--verbose] [--only NAMES] [--dump DIR] [--no-fork] "
               "[--self-test] [CORPUS]\n");
}

int main(int argc, char **argv)
{
    options opt = {.corpus = NULL, .fork = 1};
    const char *root = NULL;
    int self_test = 0;
    const char *env;

    if ((env = getenv("TSUNAGU_CONFORMANCE_VERBOSE")) && *env && strcmp(env, "0") != 0)
        opt.verbose = 1;
    if ((env = getenv("TSUNAGU_CONFORMANCE_ONLY")) && *env) opt.only = env;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
            opt.verbose = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            opt.only = argv[++i];
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            opt.dump = argv[++i];
        else if (!strcmp(argv[i], "--no-fork"))
            opt.fork = 0;
        else if (!strcmp(argv[i], "--self-test"))
            self_test = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            usage(stderr);
            return 2;
        } else
            root = argv[i];
    }
    if ((env = getenv("TSUNAGU_CORPUS")) && *env) root = env;
    if (!root) root = TSUNAGU_CORPUS;

    char dir[4096];
    opt.corpus = find_examples(root, dir, sizeof dir);
    cmp_xml_init();

    if (self_test) {
        int nfail = cmp_self_test(opt.corpus);
        cmp_xml_cleanup();
        printf("self-test: %s\n", nfail ? "FAILED" : "passed");
        return nfail ? 1 : 0;
    }
    if (!opt.corpus) {
        printf("skipped: corpus not found at %s/r4-examples (set TSUNAGU_CORPUS or "
               "-DTSUNAGU_CORPUS=…)\n",
               root);
        cmp_xml_cleanup();
        return SKIP_EXIT;
    }
    if (opt.dump && mkdir(opt.dump, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", opt.dump, strerror(errno));
        return 2;
    }

    char *index_text = NULL, **names = NULL;
    size_t nnames = 0;
    if (read_index(opt.corpus, &index_text, &names, &nnames) != 0) return 1;
    (void)model_r4(); /* load once in the parent: children inherit it */

    size_t total = 0, passed[CK_N] = {0}, passed1 = 0, all_passed = 0;
    report rep = {0};
    char crashes[64][300];
    size_t ncrash = 0;

    printf("conformance r4-examples: %zu pairs in %s\n", nnames, opt.corpus);
    for (int k = 0; k < CK_N; k++) printf("  [%s] %s\n", check_tag[k], check_title[k]);
    for (size_t i = 0; i < nnames; i++) {
        const char *base = names[i];
        if (!selected(&opt, base)) continue;
        total++;
        if (strcmp(base, DECIMAL_EDGE_CASE) == 0)
            printf(
                "note: %s: checks 1 and 2 compare its decimals by value, not text — the deliberate "
                "edge case whose official JSON and XML spell the same decimals differently "
                "(1.0 / 1.0e0, 1E-22 / 0.0000000000000000000001); check 3 stays byte-exact\n",
                base);
        pair_result *r = calloc(1, sizeof *r);
        char why[256] = "";
        if (!r) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        if (opt.fork) {
            if (run_pair_isolated(&opt, base, r, why, sizeof why) != 0 && r->magic != PAIR_DONE) {
                for (int k = 0; k < CK_N; k++)
                    fail_check(&r->c[k], "worker crashed", "", "%s", why);
            }
        } else {
            run_pair(&opt, base, r);
        }
        if (why[0]) {
            printf("CRASH %s: %s\n", base, why);
            if (ncrash < 64) snprintf(crashes[ncrash++], sizeof crashes[0], "%s: %s", base, why);
        }
        int ok = 1;
        for (int k = 0; k < CK_N; k++) {
            if (r->c[k].failed) {
                ok = 0;
                print_failure(&opt, k, base, &r->c[k]);
                report_add(&rep, k, base, &r->c[k].d);
            } else {
                passed[k]++;
            }
        }
        if (!r->c[CK_1A].failed && !r->c[CK_1B].failed) passed1++;
        if (ok && !why[0]) {
            all_passed++;
            if (opt.verbose) printf("ok   %s\n", base);
        }
        free(r);
    }

    print_groups(&rep);
    printf("\nsummary over %zu pairs:\n", total);
    printf("  check 1   XML→JSON equals the official JSON ............ passed %zu/%zu\n", passed1,
           total);
    printf("      (a)   structural, exact number text ................ passed %zu/%zu\n",
           passed[CK_1A], total);
    printf("      (b)   bytes, against the canonical official JSON ... passed %zu/%zu\n",
           passed[CK_1B], total);
    printf("  check 2   JSON→XML equals the official XML ............. passed %zu/%zu\n",
           passed[CK_2], total);
    printf("  check 3   JSON→XML→JSON is the identity (bytes) ........ passed %zu/%zu\n",
           passed[CK_3], total);
    if (ncrash)
        printf("  %zu pairs crashed, timed out or tripped a sanitizer (see above)\n", ncrash);
    int success = all_passed == total && ncrash == 0 && total > 0;
    printf("result: %s (%zu/%zu pairs pass every check)\n", success ? "PASS" : "FAIL", all_passed,
           total);
    if (!opt.verbose && !success)
        printf("(run with --verbose or TSUNAGU_CONFORMANCE_VERBOSE=1 for the lines around each "
               "difference; --dump DIR keeps our outputs)\n");

    free(rep.items);
    free(names);
    free(index_text);
    cmp_xml_cleanup();
    return success ? 0 : 1;
}
