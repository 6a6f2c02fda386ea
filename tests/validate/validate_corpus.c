/*
 * validate_corpus.c — every official R4 example of the shared corpus
 * (r4-examples/json and r4-examples/xml) validated against the base
 * definitions: no error or fatal issue, except the few listed below where the
 * specification's own example is wrong (each with the reason, and each must
 * still be found: a listed error that disappears fails the test too, so the
 * list cannot go stale).
 *
 * Also: of the model's constraints, fewer than 1 % may be reported as "cannot
 * be evaluated" over the corpus.
 *
 * usage: validate_corpus CORPUS_DIR   (exit 77 when the corpus is absent)
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "util/util.h"
#include "validate/validate.h"

/* Errors of the R4 examples themselves. Matched by file base name, the issue's
 * expression (prefix) and a fragment of its message. */
static const struct spec_error {
    const char *example;
    const char *expression;
    const char *fragment;
    const char *reason;
} spec_errors[] = {
    {"diagnosticreport-example-lri", "Bundle.entry[", "does not match the resource id",
     "the fullUrls end in /Observation/lri-<id> while the resources' ids are <id>: a RESTful "
     "fullUrl must end with the resource's type and id (Bundle rules, R4 §2.36)"},
    {"message-request-link", "Bundle.entry[2]", "does not match the resource id",
     "the entry's fullUrl ends in Patient/pat12 but the Patient's id is pat2"},
    {"deviceusestatement-example", "DeviceUseStatement.reasonReference[0]", "names a Procedure",
     "reasonReference refers to Procedure/example, but R4 allows only Condition, Observation, "
     "DiagnosticReport, DocumentReference and Media"},
    {"medicationrequest0301", "MedicationRequest.dispenseRequest.performer", "names a Practitioner",
     "dispenseRequest.performer refers to a Practitioner, but R4 allows only Organization"},
    {"observation-example-clinical-gender", "Observation.performer[0]", "names a Encounter",
     "performer refers to an Encounter, which is not one of R4's performer target types"},
};
#define NSPEC (sizeof spec_errors / sizeof spec_errors[0])

static int matches(const struct spec_error *s, const char *base, const validate_issue *it)
{
    return !strcmp(s->example, base) &&
           !strncmp(it->expression, s->expression, strlen(s->expression)) &&
           strstr(it->message, s->fragment) != NULL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    const char *corpus = argc > 1 ? argv[1] : TSUNAGU_CORPUS;
    static const char *const formats[] = {"json", "xml"};
    size_t validated = 0, errors = 0, spec_found[NSPEC] = {0}, warnings = 0, infos = 0;
    size_t not_evaluable = 0;
    char keys[64][32];
    size_t nkeys = 0;
    int any = 0;
    for (size_t f = 0; f < 2; f++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/r4-examples/%s", corpus, formats[f]);
        DIR *d = opendir(dir);
        if (!d) continue;
        any = 1;
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t l = strlen(e->d_name);
            size_t el = strlen(formats[f]);
            if (l <= el + 1 || strcmp(e->d_name + l - el, formats[f]) ||
                e->d_name[l - el - 1] != '.')
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 512;
                char **nn = realloc(names, cap * sizeof *names);
                if (!nn) return 1;
                names = nn;
            }
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof *names, cmp_name);
        for (size_t i = 0; i < n; i++) {
            char path[2048], base[512];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            snprintf(base, sizeof base, "%.*s", (int)(strlen(names[i]) - strlen(formats[f]) - 1),
                     names[i]);
            char *data = NULL;
            size_t len = 0;
            tsg_error err;
            if (tsg_read_file(path, TSG_LIMIT_BODY_BYTES, &data, &len, &err)) {
                fprintf(stderr, "%s: %s\n", path, err.message);
                errors++;
                continue;
            }
            tsg_arena *a = tsg_arena_new(0);
            validate_result r;
            validate_result_init(&r, a);
            fhir_node *root = NULL;
            if (validate_text(a, data, len, NULL, &r, &root) != TSG_OK) {
                fprintf(stderr, "%s: out of memory\n", path);
                errors++;
            }
            /* the walker's shortcuts must give exactly what the engine gives */
            if (root) {
                validate_result slow;
                validate_result_init(&slow, a);
                validate_options so;
                memset(&so, 0, sizeof so);
                so.flags = VALIDATE_FHIRPATH_ONLY;
                validate_resource(root, &so, &slow);
                int same = slow.count == r.count;
                for (size_t k = 0; same && k < r.count; k++)
                    same = slow.items[k].severity == r.items[k].severity &&
                           !strcmp(slow.items[k].expression, r.items[k].expression) &&
                           !strcmp(slow.items[k].message, r.items[k].message);
                if (!same) {
                    errors++;
                    printf("ERROR %s: the shortcuts give %zu issues, FHIRPath alone %zu\n",
                           names[i], r.count, slow.count);
                }
            }
            validated++;
            warnings += r.counts[VALIDATE_WARNING];
            infos += r.counts[VALIDATE_INFORMATION];
            for (size_t k = 0; k < r.count; k++) {
                const validate_issue *it = &r.items[k];
                if (it->severity == VALIDATE_INFORMATION &&
                    strstr(it->message, "cannot be evaluated")) {
                    not_evaluable++;
                    const char *key = strstr(it->message, "invariant ");
                    char kb[32] = "";
                    if (key) sscanf(key + 10, "%31s", kb);
                    size_t j = 0;
                    while (j < nkeys && strcmp(keys[j], kb)) j++;
                    if (j == nkeys && nkeys < 64) snprintf(keys[nkeys++], sizeof keys[0], "%s", kb);
                    printf("not evaluable: %s: %s: %s\n", names[i], it->expression, it->message);
                }
                if (it->severity > VALIDATE_ERROR) continue;
                size_t s = 0;
                while (s < NSPEC && !matches(&spec_errors[s], base, it)) s++;
                if (s < NSPEC) {
                    spec_found[s]++;
                    continue;
                }
                errors++;
                printf("ERROR %s: %s %s [%s] %s\n", names[i], validate_severity_name(it->severity),
                       it->code, it->expression, it->message);
            }
            tsg_arena_free(a);
            free(data);
        }
        for (size_t i = 0; i < n; i++) free(names[i]);
        free(names);
    }
    if (!any) {
        printf("corpus %s/r4-examples absent: skipped\n", corpus);
        return 77;
    }
    int status = errors ? 1 : 0;
    for (size_t s = 0; s < NSPEC; s++) {
        printf("spec error %s (%zu issues): %s\n", spec_errors[s].example, spec_found[s],
               spec_errors[s].reason);
        if (!spec_found[s]) {
            printf("STALE: the listed error of %s is no longer found\n", spec_errors[s].example);
            status = 1;
        }
    }
    validate_constraint_stats cs;
    validate_constraint_stats_get(&cs);
    printf("constraints: %zu (FHIRPath %zu, native %zu, known-broken %zu, uncompilable %zu); "
           "not evaluable on the corpus: %zu distinct (%zu issues)\n",
           cs.total, cs.compiled, cs.native, cs.broken, cs.failed_compile, nkeys, not_evaluable);
    if ((nkeys + cs.failed_compile) * 100 >= cs.total) {
        printf("FAIL: 1 %% or more of the constraints cannot be evaluated\n");
        status = 1;
    }
    printf("%zu examples validated: %zu unexpected errors, %zu warnings, %zu information\n",
           validated, errors, warnings, infos);
    return status;
}
