/*
 * validate_profiles — profile validation over real packages (a ctest, see
 * CMakeLists.txt here).
 *
 *   validate_profiles jp-core DEFINITIONS EXAMPLES
 *       Loads the JP Core package folder, validates every example against each
 *       of its meta.profile. Passes when no example has an error and every
 *       warning is one of the missing-terminology warnings (jpfhir-terminology
 *       is not available: value sets and code systems it holds are "not
 *       loaded" / "could not be checked") or listed in EXPECTED below with its
 *       reason. Prints the counts (profiles loaded, examples, issues by
 *       severity, load time).
 *
 *   validate_profiles region PROFILES REGION_BUNDLE
 *       Loads profiles/ and validates each Patient and CareTeam of the demo
 *       region's Bundle against the region's patient and care-team profiles:
 *       no error and no warning may appear.
 *
 * The environment variable TSUNAGU_CORPUS, when set, names the corpus folder
 * (holding jp-core-definitions/ and jp-core-examples/) instead of the arguments.
 * More arguments name extra definitions loaded after the package when they
 * exist (the R4 core extension definitions, value sets and v3 code systems,
 * so that core extensions are validated by URL, their bindings included).
 * Exit 0 pass, 1 fail, 77 skipped (corpus absent).
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "model/model.h"
#include "validate/profile.h"
#include "validate/validate.h"

static const char *const sev_names[] = {"fatal", "error", "warning", "information"};

/* Warnings JP Core's own examples get that are not about missing terminology,
 * with the reason (file substring, message substring). */
static const struct {
    const char *file, *message, *reason;
} EXPECTED[] = {
    {NULL, NULL, NULL},
};

typedef struct collect {
    const char *file;
    size_t counts[4];
    size_t terminology; /* missing-terminology warnings */
    size_t unexpected;
    int verbose;
} collect;

static int is_terminology_warning(validate_severity sev, const char *code, const char *msg)
{
    if (sev != VALIDATE_WARNING || strcmp(code, "code-invalid") != 0) return 0;
    return strstr(msg, "is not loaded") != NULL || strstr(msg, "could not be checked") != NULL;
}

static int is_expected(const char *file, const char *msg)
{
    for (size_t i = 0; EXPECTED[i].file; i++)
        if (strstr(file, EXPECTED[i].file) && strstr(msg, EXPECTED[i].message)) return 1;
    return 0;
}

static void on_issue(void *ctx, validate_severity sev, const char *code, const char *expr,
                     const char *msg)
{
    collect *c = ctx;
    c->counts[sev]++;
    if (sev == VALIDATE_INFORMATION) return;
    if (is_terminology_warning(sev, code, msg)) {
        c->terminology++;
        if (c->verbose) printf("  [terminology] %s: %s\n", expr, msg);
        return;
    }
    if (is_expected(c->file, msg)) {
        printf("  [expected] %s %s %s: %s\n", sev_names[sev], code, expr, msg);
        return;
    }
    c->unexpected++;
    printf("  UNEXPECTED %s %s %s: %s (%s)\n", sev_names[sev], code, expr, msg, c->file);
}

static void on_load_issue(void *ctx, validate_severity sev, const char *code, const char *expr,
                          const char *msg)
{
    size_t *n = ctx;
    n[sev]++;
    (void)code;
    if (getenv("VERBOSE")) printf("  load %s %s: %s\n", sev_names[sev], expr, msg);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Extra definitions loaded after the package when present: the R4 core
 * extension definitions, so that core extensions in the examples
 * (iso21090-EN-representation, geolocation, …) are validated by URL too. */
static const char *const *g_extra;
static int g_nextra;
static int g_extras_loaded; /* how many of them were there */

static profile_registry *load(const char *dir, double *ms)
{
    double t0 = now_ms();
    profile_registry *r = profile_registry_new();
    tsg_error err;
    tsg_error_clear(&err);
    if (!r || profile_registry_load(r, dir, &err) != TSG_OK) {
        fprintf(stderr, "load %s: %s\n", dir, err.message);
        profile_registry_free(r);
        return NULL;
    }
    struct stat st;
    for (int i = 0; i < g_nextra; i++) {
        if (stat(g_extra[i], &st) != 0) continue;
        if (profile_registry_load(r, g_extra[i], &err) != TSG_OK) {
            fprintf(stderr, "load %s: %s\n", g_extra[i], err.message);
            profile_registry_free(r);
            return NULL;
        }
        printf("also loaded %s\n", g_extra[i]);
        g_extras_loaded++;
    }
    double t1 = now_ms();
    size_t load_issues[4] = {0};
    if (profile_registry_compile(r, on_load_issue, load_issues, &err) != TSG_OK) {
        fprintf(stderr, "compile: %s\n", err.message);
        profile_registry_free(r);
        return NULL;
    }
    *ms = now_ms() - t0;
    profile_registry_stats s;
    profile_registry_stats_get(r, &s);
    printf("loaded %s in %.1f ms (read and parse %.1f ms, compile %.1f ms): %zu "
           "StructureDefinitions (%zu profiles, %zu extensions, %zu "
           "failed), %zu ValueSets, %zu CodeSystems, %zu other resources skipped, %zu elements "
           "kept; compile notes: %zu errors, %zu warnings\n",
           dir, *ms, t1 - t0, *ms - (t1 - t0), s.structure_definitions, s.profiles, s.extensions,
           s.failed, s.value_sets, s.code_systems, s.skipped, s.elements,
           load_issues[VALIDATE_ERROR], load_issues[VALIDATE_WARNING]);
    return r;
}

/* The values of root.meta.profile. */
static size_t meta_profiles(const fhir_node *root, const char **out, size_t cap)
{
    size_t n = 0;
    for (uint32_t i = 0; i < root->nkids; i++) {
        const fhir_node *m = &root->kids[i];
        if (strcmp(m->elem->name, "meta") != 0) continue;
        for (uint32_t j = 0; j < m->nkids && n < cap; j++)
            if (strcmp(m->kids[j].elem->name, "profile") == 0 && m->kids[j].value)
                out[n++] = m->kids[j].value;
    }
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_mutations(const profile_registry *r, const char *examples);

typedef struct pipe_counts {
    size_t sev[4], profile_errors;
} pipe_counts;

static void on_pipe_issue(void *ctx, validate_severity sev, const char *code, const char *expr,
                          const char *msg)
{
    pipe_counts *c = ctx;
    c->sev[sev]++;
    if (sev <= VALIDATE_ERROR) printf("  pipeline error %s %s: %s\n", code, expr, msg);
}

/* For the record (not a pass/fail criterion here: the base rules are the base
 * validator's tests): the whole pipeline, base R4 validation plus the profiles
 * of meta.profile through the validate.h hook, over the same examples. */
static void pipeline(profile_registry *r, const char *examples)
{
    DIR *d = opendir(examples);
    if (!d) return;
    pipe_counts c = {0};
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".json")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", examples, de->d_name);
        char *text = NULL;
        size_t len = 0;
        if (tsg_read_file(path, 64u << 20, &text, &len, NULL) != TSG_OK) continue;
        tsg_arena *a = tsg_arena_new(0);
        fhir_node *root = NULL;
        if (a && fhir_json_parse(a, text, len, NULL, &root, NULL) == TSG_OK) {
            validate_options opt;
            memset(&opt, 0, sizeof opt);
            opt.meta_profiles = 1;
            opt.profile_validate = profile_registry_validate;
            opt.profile_ctx = r;
            validate_resource_fn(root, &opt, on_pipe_issue, &c);
            n++;
        }
        tsg_arena_free(a);
        free(text);
    }
    closedir(d);
    printf("pipeline (base R4 + meta.profile): %zu examples: %zu fatal, %zu error, %zu warning, "
           "%zu information\n",
           n, c.sev[0], c.sev[1], c.sev[2], c.sev[3]);
}

static int run_jp_core(const char *defs, const char *examples)
{
    struct stat st;
    if (stat(defs, &st) != 0 || stat(examples, &st) != 0) {
        printf("JP Core corpus absent (%s): skipped\n", defs);
        return 77;
    }
    double load_ms;
    profile_registry *r = load(defs, &load_ms);
    if (!r) return 1;
    DIR *d = opendir(examples);
    if (!d) return 1;
    char *names[512];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 512)
        if (strstr(de->d_name, ".json")) names[nn++] = strdup(de->d_name);
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    size_t total[4] = {0}, examples_validated = 0, validations = 0, no_profile = 0, unexpected = 0,
           terminology = 0;
    double vt = 0;
    for (size_t i = 0; i < nn; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", examples, names[i]);
        char *text = NULL;
        size_t len = 0;
        tsg_error err;
        if (tsg_read_file(path, 64u << 20, &text, &len, &err) != TSG_OK) {
            printf("%s: %s\n", names[i], err.message);
            unexpected++;
            continue;
        }
        tsg_arena *a = tsg_arena_new(0);
        fhir_node *root = NULL;
        if (fhir_json_parse(a, text, len, NULL, &root, &err) != TSG_OK) {
            printf("%s: does not parse: %s at %s\n", names[i], err.message, err.location);
            unexpected++;
        } else {
            const char *urls[16];
            size_t np = meta_profiles(root, urls, 16);
            if (!np) no_profile++;
            collect c = {.file = names[i], .verbose = getenv("VERBOSE") != NULL};
            for (size_t k = 0; k < np; k++) {
                const profile *p = profile_registry_find(r, urls[k]);
                if (!p) {
                    printf("  UNEXPECTED %s: profile %s is not loaded\n", names[i], urls[k]);
                    c.unexpected++;
                    continue;
                }
                double t0 = now_ms();
                if (profile_validate(p, root, on_issue, &c) != TSG_OK) c.unexpected++;
                vt += now_ms() - t0;
                validations++;
            }
            if (np) examples_validated++;
            for (int s = 0; s < 4; s++) total[s] += c.counts[s];
            unexpected += c.unexpected;
            terminology += c.terminology;
            printf("%-70s %zu profile(s): %zu error, %zu warning (%zu terminology), %zu info\n",
                   names[i], np, c.counts[1], c.counts[2], c.terminology, c.counts[3]);
        }
        tsg_arena_free(a);
        free(text);
        free(names[i]);
    }
    printf("JP Core: %zu examples, %zu validated against %zu profile(s) (%zu without "
           "meta.profile); issues: %zu fatal, %zu error, %zu warning (%zu missing terminology), "
           "%zu information; unexpected: %zu; load %.1f ms, validation %.3f ms in all\n",
           nn, examples_validated, validations, no_profile, total[0], total[1], total[2],
           terminology, total[3], unexpected, load_ms, vt);
    pipeline(r, examples);
    int missed = run_mutations(r, examples);
    profile_registry_free(r);
    return unexpected || missed ? 1 : 0;
}

/* ------------------------------------------------------------------------
 * Negative checks on JP Core: a JP Core example, broken in one place, gives
 * the error its profile implies at the exact element.
 * ------------------------------------------------------------------------ */

static void mut_no_identifier(json_t *r)
{
    json_object_del(r, "identifier");
}

static void mut_category_code(json_t *r)
{
    json_t *c = json_array_get(
        json_object_get(json_array_get(json_object_get(r, "category"), 0), "coding"), 0);
    json_object_set_new(c, "code", json_string("laboratory"));
}

static void mut_extension_type(json_t *r)
{
    json_t *e = json_array_get(json_object_get(r, "extension"), 0);
    json_object_del(e, "valueCoding");
    json_object_set_new(e, "valueString", json_string("13"));
}

static void mut_subject_group(json_t *r)
{
    json_object_set_new(json_object_get(r, "subject"), "reference", json_string("Group/1"));
}

static void mut_patient_id_no_value(json_t *r)
{
    json_object_del(json_array_get(json_object_get(r, "identifier"), 0), "value");
}

static void mut_name_representation(json_t *r)
{
    json_t *e = json_array_get(
        json_object_get(json_array_get(json_object_get(r, "name"), 0), "extension"), 0);
    json_object_set_new(e, "valueCode", json_string("XYZ"));
}

static const struct {
    const char *file;
    void (*mutate)(json_t *);
    const char *expression, *message;
    int needs_extras; /* the R4 extension definitions and value sets */
} MUTATIONS[] = {
    {"Patient-jp-patient-example-1.json", mut_no_identifier, "Patient.identifier",
     "minimum required = 1", 0},
    {"Patient-jp-patient-example-1.json", mut_patient_id_no_value, "Patient.identifier[0].value",
     "minimum required = 1", 0},
    {"Observation-jp-observation-vitalsigns-example-1.json", mut_category_code,
     "Observation.category[0].coding[0].code", "must be exactly \"vital-signs\"", 0},
    {"Organization-jp-organization-example-clinic.json", mut_extension_type,
     "Organization.extension[0].valueString", "a string is not allowed here", 0},
    {"MedicationRequest-jp-medicationrequest-example-1.json", mut_subject_group,
     "MedicationRequest.subject", "target type Group is not allowed", 0},
    {"Practitioner-jp-practitioner-example-male-1.json", mut_name_representation,
     "Practitioner.name[0].extension[0].valueCode",
     "'XYZ' is not in value set http://hl7.org/fhir/ValueSet/name-v3-representation", 1},
};

typedef struct found {
    const char *expression, *message;
    int hit;
} found;

static void on_mut_issue(void *ctx, validate_severity sev, const char *code, const char *expr,
                         const char *msg)
{
    found *f = ctx;
    (void)code;
    if (sev == VALIDATE_ERROR && strcmp(expr, f->expression) == 0 && strstr(msg, f->message))
        f->hit = 1;
}

static int run_mutations(const profile_registry *r, const char *examples)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof MUTATIONS / sizeof *MUTATIONS; i++) {
        if (MUTATIONS[i].needs_extras && g_extras_loaded < 3) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", examples, MUTATIONS[i].file);
        json_t *j = json_load_file(path, 0, NULL);
        if (!j) {
            printf("mutation %zu: cannot read %s\n", i, path);
            bad++;
            continue;
        }
        MUTATIONS[i].mutate(j);
        char *text = json_dumps(j, 0);
        const char *url = json_string_value(
            json_array_get(json_object_get(json_object_get(j, "meta"), "profile"), 0));
        const profile *p = url ? profile_registry_find(r, url) : NULL;
        tsg_arena *a = tsg_arena_new(0);
        fhir_node *root = NULL;
        found f = {MUTATIONS[i].expression, MUTATIONS[i].message, 0};
        if (p && text && fhir_json_parse(a, text, strlen(text), NULL, &root, NULL) == TSG_OK)
            profile_validate(p, root, on_mut_issue, &f);
        printf("mutation of %s: %s error at %s (%s)\n", MUTATIONS[i].file,
               f.hit ? "found the" : "MISSED the", f.expression, f.message);
        bad += !f.hit;
        tsg_arena_free(a);
        free(text);
        json_decref(j);
    }
    return bad;
}

/* ------------------------------------------------------------------------ */

#define REGION_PATIENT  "https://tsunagu.example.jp/fhir/StructureDefinition/tsunagu-patient"
#define REGION_CARETEAM "https://tsunagu.example.jp/fhir/StructureDefinition/tsunagu-careteam"

static int run_region(const char *profiles, const char *bundle)
{
    double load_ms;
    profile_registry *r = load(profiles, &load_ms);
    if (!r) return 1;
    const profile *pp = profile_registry_find(r, REGION_PATIENT);
    const profile *pc = profile_registry_find(r, REGION_CARETEAM);
    if (!pp || !pc) {
        printf("region profiles not loaded (%s, %s)\n", pp ? "patient ok" : "no patient",
               pc ? "care team ok" : "no care team");
        profile_registry_free(r);
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    tsg_error err;
    if (tsg_read_file(bundle, 256u << 20, &text, &len, &err) != TSG_OK) {
        printf("%s\n", err.message);
        profile_registry_free(r);
        return 1;
    }
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root = NULL;
    int rc = 0;
    if (fhir_json_parse(a, text, len, NULL, &root, &err) != TSG_OK) {
        printf("%s: %s\n", bundle, err.message);
        rc = 1;
    } else {
        size_t np = 0, nc = 0;
        collect c = {.file = bundle, .verbose = getenv("VERBOSE") != NULL};
        double t0 = now_ms();
        for (uint32_t i = 0; i < root->nkids; i++) {
            const fhir_node *e = &root->kids[i];
            if (strcmp(e->elem->name, "entry") != 0) continue;
            for (uint32_t j = 0; j < e->nkids; j++) {
                const fhir_node *res = &e->kids[j];
                if (strcmp(res->elem->name, "resource") != 0) continue;
                const profile *p = NULL;
                if (strcmp(res->type->name, "Patient") == 0) p = pp, np++;
                if (strcmp(res->type->name, "CareTeam") == 0) p = pc, nc++;
                if (p) profile_validate(p, res, on_issue, &c);
            }
        }
        double vt = now_ms() - t0;
        size_t bad = c.counts[0] + c.counts[1] + c.counts[2];
        printf("region: %zu Patients and %zu CareTeams validated in %.2f ms: %zu error, %zu "
               "warning, %zu information\n",
               np, nc, vt, c.counts[1], c.counts[2], c.counts[3]);
        if (bad || !np || !nc) rc = 1;
    }
    tsg_arena_free(a);
    free(text);
    profile_registry_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 4) { /* optional: the R4 definitions (extensions, value sets, code systems) */
        g_extra = (const char *const *)argv + 4;
        g_nextra = argc - 4;
        argc = 4;
    }
    if (argc == 4 && strcmp(argv[1], "jp-core") == 0) {
        /* the environment variable TSUNAGU_CORPUS overrides the corpus folder */
        const char *env = getenv("TSUNAGU_CORPUS");
        if (env && *env) {
            static char defs[4096], examples[4096];
            snprintf(defs, sizeof defs, "%s/jp-core-definitions", env);
            snprintf(examples, sizeof examples, "%s/jp-core-examples", env);
            return run_jp_core(defs, examples);
        }
        return run_jp_core(argv[2], argv[3]);
    }
    if (argc == 4 && strcmp(argv[1], "region") == 0) return run_region(argv[2], argv[3]);
    fprintf(stderr, "usage: validate_profiles jp-core DEFS EXAMPLES | region PROFILES BUNDLE\n");
    return 2;
}
