/*
 * test_validate.c — the base validator (gateway/validate/validate.h): one
 * negative test at least per rule class, each asserting the severity, the
 * issue code and the exact FHIRPath expression; the OperationOutcome; and
 * `tsunagu validate` as a real binary (exit codes, output shape).
 *
 * The readers already refuse malformed primitives and repeated single
 * elements, so the tests that need such trees parse a valid resource and then
 * change the tree in memory (set_value, retype, duplicate_kid) — the validator
 * must catch what any producer of a tree (a PATCH, an adapter) might get wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fhirpath/fhirpath.h"
#include "model/model.h"
#include "util/util.h"
#include "validate/validate.h"

static tsg_arena *A;

static int setup(void **state)
{
    (void)state;
    A = tsg_arena_new(0);
    return A ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tsg_arena_free(A);
    A = NULL;
    return 0;
}

static fhir_node *parse(const char *json)
{
    fhir_node *n = NULL;
    tsg_error e;
    tsg_error_clear(&e);
    tsg_rc rc = fhir_json_parse(A, json, strlen(json), NULL, &n, &e);
    if (rc) fprintf(stderr, "parse failed: %s: %s\n", e.location, e.message);
    assert_int_equal(rc, TSG_OK);
    return n;
}

/* The one node that FHIRPath `path` selects in root. */
static fhir_node *at(fhir_node *root, const char *path)
{
    fp_expr *e = NULL;
    tsg_error err;
    assert_int_equal(fp_compile(path, strlen(path), &e, &err), TSG_OK);
    fp_collection out;
    assert_int_equal(fp_eval(e, root, NULL, NULL, A, &out, &err), TSG_OK);
    fp_expr_free(e);
    assert_int_equal(out.count, 1);
    const fhir_node *n = fp_item_node(fp_collection_item(&out, 0));
    assert_non_null(n);
    return (fhir_node *)n;
}

static void set_value(fhir_node *root, const char *path, const char *value)
{
    fhir_node *n = at(root, path);
    n->value = tsg_arena_strndup(A, value, strlen(value));
    n->value_len = (uint32_t)strlen(value);
}

static void print_issues(const validate_result *r)
{
    for (size_t i = 0; i < r->count; i++)
        fprintf(stderr, "  %s %s [%s] %s\n", validate_severity_name(r->items[i].severity),
                r->items[i].code, r->items[i].expression, r->items[i].message);
}

static void run(fhir_node *root, validate_result *r)
{
    validate_result_init(r, A);
    assert_int_equal(validate_resource(root, NULL, r), TSG_OK);
}

/* Asserts that r holds an issue with this severity, code and expression (and
 * message fragment, when not NULL). */
static void expect(const validate_result *r, validate_severity sev, const char *code,
                   const char *expr, const char *fragment)
{
    for (size_t i = 0; i < r->count; i++) {
        const validate_issue *it = &r->items[i];
        if (it->severity == sev && !strcmp(it->code, code) && !strcmp(it->expression, expr) &&
            (!fragment || strstr(it->message, fragment)))
            return;
    }
    fprintf(stderr, "expected %s %s [%s] %s; got:\n", validate_severity_name(sev), code, expr,
            fragment ? fragment : "");
    print_issues(r);
    fail();
}

/* Asserts that r holds no error or fatal issue. */
static void expect_valid(const validate_result *r)
{
    if (validate_result_failed(r)) {
        print_issues(r);
        fail();
    }
}

static const char patient[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\","
    "\"text\":{\"status\":\"generated\",\"div\":\"<div "
    "xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>Taro</p></div>\"},"
    "\"extension\":[{\"url\":\"http://example.org/x\",\"valueOid\":\"urn:oid:1.2.3\"}],"
    "\"identifier\":[{\"system\":\"urn:oid:1.2.392\",\"value\":\"123\"}],"
    "\"active\":true,\"name\":[{\"family\":\"Yamada\",\"given\":[\"Taro\",\"T\"]}],"
    "\"gender\":\"male\",\"birthDate\":\"1940-02-03\",\"deceasedDateTime\":\"2020-01-01T10:00:"
    "00Z\","
    "\"multipleBirthInteger\":2,"
    "\"photo\":[{\"contentType\":\"image/png\",\"data\":\"AAAA\",\"url\":\"http://x.org/a.png\","
    "\"size\":4}],"
    "\"managingOrganization\":{\"reference\":\"Organization/o1\"}}";

/* ------------------------------------------------------------------------
 * A valid resource passes
 * ------------------------------------------------------------------------ */

static void test_valid_patient(void **state)
{
    (void)state;
    validate_result r;
    run(parse(patient), &r);
    expect_valid(&r);
}

/* ------------------------------------------------------------------------
 * Cardinality and types
 * ------------------------------------------------------------------------ */

static void test_cardinality_min(void **state)
{
    (void)state;
    validate_result r;
    run(parse("{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"}}"), &r);
    expect(&r, VALIDATE_ERROR, "required", "Observation", "Observation.status: minimum required");
}

static void test_cardinality_max(void **state)
{
    (void)state;
    fhir_node *p = parse(patient);
    /* a second gender: give the Patient a kids array with gender twice */
    fhir_node *kids = tsg_arena_alloc(A, (p->nkids + 1) * sizeof *kids);
    uint32_t j = 0;
    for (uint32_t i = 0; i < p->nkids; i++) {
        kids[j++] = p->kids[i];
        if (!strcmp(p->kids[i].elem->name, "gender")) {
            kids[j] = p->kids[i];
            kids[j++].pos = 1;
        }
    }
    p->kids = kids;
    p->nkids = j;
    validate_result r;
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient", "Patient.gender: max allowed = 1");
}

static void test_wrong_type(void **state)
{
    (void)state;
    fhir_node *p = parse(patient);
    fhir_node *n = at(p, "Patient.birthDate");
    n->type = model_type_find("string", 6);
    validate_result r;
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient.birthDate", "type string is not allowed");
}

static void test_empty_element(void **state)
{
    (void)state;
    fhir_node *p = parse(patient);
    fhir_node *name = at(p, "Patient.name");
    name->nkids = 0;
    validate_result r;
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Patient.name[0]", "ele-1");
}

static void test_extension_value_and_children(void **state)
{
    (void)state;
    validate_result r;
    run(parse("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"http://e.org/a\","
              "\"extension\":[{\"url\":\"b\",\"valueString\":\"x\"}],\"valueString\":\"y\"}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Patient.extension[0]", "ext-1");
}

static void test_core_extensions(void **state)
{
    (void)state;
    validate_result r;
    /* a known core extension with an allowed value type */
    run(parse("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":"
              "\"http://hl7.org/fhir/StructureDefinition/patient-birthPlace\",\"valueAddress\":"
              "{\"city\":\"Tokyo\"}}]}"),
        &r);
    expect_valid(&r);
    /* the wrong value type */
    run(parse("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":"
              "\"http://hl7.org/fhir/StructureDefinition/patient-birthPlace\",\"valueString\":"
              "\"Tokyo\"}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient.extension[0]", "type string");
    /* unknown in the core namespace */
    run(parse("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":"
              "\"http://hl7.org/fhir/StructureDefinition/patient-favouriteColour\","
              "\"valueString\":\"blue\"}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient.extension[0]", "unknown");
    /* other namespaces are the profile module's: no base issue */
    run(parse("{\"resourceType\":\"Patient\",\"extension\":[{\"url\":"
              "\"http://example.org/fhir/StructureDefinition/x\",\"valueString\":\"a\"}]}"),
        &r);
    expect_valid(&r);
}

/* ------------------------------------------------------------------------
 * Primitives: every format
 * ------------------------------------------------------------------------ */

typedef struct prim_case {
    const char *resource; /* NULL: the patient above */
    const char *path;     /* FHIRPath of the primitive */
    const char *bad;      /* a value its type refuses */
    const char *expr;     /* the issue's expression */
} prim_case;

static const char observation[] =
    "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
    "\"note\":[{\"text\":\"**ok**\"}],\"valueTime\":\"10:00:00\","
    "\"effectiveTiming\":{\"repeat\":{\"count\":2}},"
    "\"component\":[{\"code\":{\"text\":\"c\"},\"valueQuantity\":{\"value\":1.5}}]}";

static const char questionnaire[] = "{\"resourceType\":\"Questionnaire\",\"status\":\"draft\","
                                    "\"derivedFrom\":[\"http://x.org/Questionnaire/q\"],"
                                    "\"extension\":[{\"url\":\"http://e.org/u\",\"valueUuid\":"
                                    "\"urn:uuid:c757873d-ec9a-4326-a141-556f43239520\"}],"
                                    "\"meta\":{\"lastUpdated\":\"2020-01-01T00:00:00Z\"}}";

static const prim_case prim_cases[] = {
    {observation, "Observation.component.value.value", "1.5.2",
     "Observation.component[0].valueQuantity.value"},                              /* decimal */
    {NULL, "Patient.multipleBirth", "2147483648", "Patient.multipleBirthInteger"}, /* integer */
    {observation, "Observation.effective.repeat.count", "0",
     "Observation.effectiveTiming.repeat.count"},                 /* positiveInt */
    {NULL, "Patient.photo.size", "-1", "Patient.photo[0].size"},  /* unsignedInt */
    {NULL, "Patient.photo.data", "AAA", "Patient.photo[0].data"}, /* base64Binary */
    {NULL, "Patient.identifier.system", "urn:a b", "Patient.identifier[0].system"}, /* uri */
    {NULL, "Patient.photo.url", "http://x.org/a b.png", "Patient.photo[0].url"},    /* url */
    {questionnaire, "Questionnaire.derivedFrom", "http://x.org/Q q",
     "Questionnaire.derivedFrom[0]"}, /* canonical */
    {NULL, "Patient.extension.value", "urn:oid:1.02", "Patient.extension[0].valueOid"}, /* oid */
    {questionnaire, "Questionnaire.extension.value",
     "urn:uuid:C757873D-EC9A-4326-A141-556F43239520",
     "Questionnaire.extension[0].valueUuid"},             /* uuid (upper case) */
    {NULL, "Patient.id", "p_1", "Patient.id"},            /* id */
    {NULL, "Patient.gender", "ma  le", "Patient.gender"}, /* code */
    {observation, "Observation.note.text", "a\001b", "Observation.note[0].text"}, /* markdown */
    {NULL, "Patient.name.family", "Yama\002da", "Patient.name[0].family"},        /* string */
    {NULL, "Patient.birthDate", "1940-02-30", "Patient.birthDate"},               /* date */
    {NULL, "Patient.deceased", "2020-01-01T10:00", "Patient.deceasedDateTime"},   /* dateTime */
    {questionnaire, "Questionnaire.meta.lastUpdated", "2020-01-01",
     "Questionnaire.meta.lastUpdated"},                                      /* instant */
    {observation, "Observation.value", "24:00:00", "Observation.valueTime"}, /* time */
    {NULL, "Patient.active", "yes", "Patient.active"},                       /* boolean */
};

static void test_primitive_formats(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof prim_cases / sizeof prim_cases[0]; i++) {
        const prim_case *pc = &prim_cases[i];
        fhir_node *root = parse(pc->resource ? pc->resource : patient);
        validate_result r;
        run(root, &r);
        if (validate_result_failed(&r)) {
            fprintf(stderr, "case %zu: the valid resource fails:\n", i);
            print_issues(&r);
            fail();
        }
        set_value(root, pc->path, pc->bad);
        run(root, &r);
        fprintf(stderr, "case %zu (%s = '%s')\n", i, pc->path, pc->bad);
        expect(&r, VALIDATE_ERROR, "value", pc->expr, NULL);
    }
}

/* base64Binary: wrapped lines pass; each kind of fault is found wherever it
 * is (the check runs 16 bytes at a time, then byte by byte). */
static void test_base64(void **state)
{
    (void)state;
    static const char *const good[] = {
        "QUJDRA==", "QUJD\nREVG\r\nR0hJ",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", "QUJDREVGR0hJSktM\nTU5PUFFSU1RVVldY WVo=\n"};
    static const char *const bad[] = {"QUJDRA=",
                                      "QUJDREVGR0hJSktMTU5PUFFSU1RVV*dYWVo=",
                                      "QUJD=REVG",
                                      "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo",
                                      "QU=DREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
                                      "QUJDREVGR0hJSkt\001TU5PUFFSU1RVVldYWVo="};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        fhir_node *p = parse(patient);
        set_value(p, "Patient.photo.data", good[i]);
        validate_result r;
        run(p, &r);
        expect_valid(&r);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fhir_node *p = parse(patient);
        set_value(p, "Patient.photo.data", bad[i]);
        validate_result r;
        run(p, &r);
        fprintf(stderr, "bad base64 %zu\n", i);
        expect(&r, VALIDATE_ERROR, "value", "Patient.photo[0].data", "base64Binary");
    }
}

/* uri values: no bare oid:/uuid: schemes; Coding.system is absolute */
static void test_uri_forms(void **state)
{
    (void)state;
    validate_result r;
    fhir_node *p = parse(patient);
    set_value(p, "Patient.identifier.system", "oid:1.2.3");
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "value", "Patient.identifier[0].system", "urn:oid");
    p = parse(patient);
    set_value(p, "Patient.identifier.system", "uuid:c757873d-ec9a-4326-a141-556f43239520");
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "value", "Patient.identifier[0].system", "urn:uuid");
    run(parse("{\"resourceType\":\"Patient\",\"maritalStatus\":{\"coding\":[{\"system\":"
              "\"marital\",\"code\":\"M\"}]}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "value", "Patient.maritalStatus.coding[0].system", "absolute");
}

static void test_string_too_long(void **state)
{
    (void)state;
    fhir_node *p = parse(patient);
    size_t n = 1024u * 1024u + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = '\0';
    set_value(p, "Patient.name.family", big);
    free(big);
    validate_result r;
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "value", "Patient.name[0].family", "1 MB");
}

/* ------------------------------------------------------------------------
 * References, contained, narrative, Bundle
 * ------------------------------------------------------------------------ */

static void test_reference_format(void **state)
{
    (void)state;
    static const char *const bad[] = {"Banana/1", "Organization/o_1", "Organization",
                                      "urn:uuid:123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fhir_node *p = parse(patient);
        set_value(p, "Patient.managingOrganization.reference", bad[i]);
        validate_result r;
        run(p, &r);
        expect(&r, VALIDATE_ERROR, "value", "Patient.managingOrganization.reference", bad[i]);
    }
    static const char *const good[] = {"Organization/o1/_history/2",
                                       "http://x.org/fhir/Organization/o1",
                                       "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
                                       "urn:oid:1.2.3", "Organization?identifier=a|b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        fhir_node *p = parse(patient);
        set_value(p, "Patient.managingOrganization.reference", good[i]);
        validate_result r;
        run(p, &r);
        expect_valid(&r);
    }
}

static void test_reference_target(void **state)
{
    (void)state;
    fhir_node *p = parse(patient);
    set_value(p, "Patient.managingOrganization.reference", "Patient/p2");
    validate_result r;
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient.managingOrganization",
           "Patient, which is not a valid target");
    /* an absolute URL with a RESTful tail is checked too */
    p = parse(patient);
    set_value(p, "Patient.managingOrganization.reference", "http://x.org/fhir/Practitioner/1");
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient.managingOrganization", "Practitioner");
    /* Reference.type must agree with the reference */
    run(parse("{\"resourceType\":\"Patient\",\"managingOrganization\":{\"reference\":"
              "\"Organization/1\",\"type\":\"Patient\"}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient.managingOrganization", "Reference.type");
}

static void test_contained(void **state)
{
    (void)state;
    validate_result r;
    /* not referenced (dom-3) */
    run(parse("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
              "\"id\":\"o\",\"name\":\"x\"}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Patient.contained[0]", "dom-3");
    /* referenced: valid */
    run(parse("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
              "\"id\":\"o\",\"name\":\"x\"}],\"managingOrganization\":{\"reference\":\"#o\"}}"),
        &r);
    expect_valid(&r);
    /* no id */
    run(parse("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
              "\"name\":\"x\"}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "required", "Patient.contained[0]", "must have an id");
    /* a '#' reference to nothing (ref-1) */
    run(parse("{\"resourceType\":\"Patient\",\"managingOrganization\":{\"reference\":\"#nope\"}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient.managingOrganization.reference", "ref-1");
    /* contained with narrative and meta.versionId (dom-5, dom-4) */
    run(parse("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
              "\"id\":\"o\",\"meta\":{\"versionId\":\"1\"},\"name\":\"x\"}],"
              "\"managingOrganization\":{\"reference\":\"#o\"}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Patient", "dom-4");
    /* duplicate ids */
    run(parse("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
              "\"id\":\"o\"},{\"resourceType\":\"Organization\",\"id\":\"o\"}],"
              "\"managingOrganization\":{\"reference\":\"#o\"}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "duplicate", "Patient.contained[1]", "same id 'o'");
    /* many contained resources, each referenced: valid, in O(n log n) */
    {
        tsg_buf b;
        tsg_buf_init(&b, 0);
        tsg_buf_puts(&b, "{\"resourceType\":\"List\",\"status\":\"current\",\"mode\":"
                         "\"working\",\"contained\":[");
        for (int i = 0; i < 3000; i++)
            tsg_buf_printf(&b,
                           "%s{\"resourceType\":\"Basic\",\"id\":\"b%d\",\"code\":{\"text\":"
                           "\"x\"}}",
                           i ? "," : "", i);
        tsg_buf_puts(&b, "],\"entry\":[");
        for (int i = 0; i < 3000; i++)
            tsg_buf_printf(&b, "%s{\"item\":{\"reference\":\"#b%d\"}}", i ? "," : "", 2999 - i);
        tsg_buf_puts(&b, "]}");
        assert_int_equal(tsg_buf_rc(&b), TSG_OK);
        run(parse(b.data), &r);
        tsg_buf_free(&b);
        expect_valid(&r);
    }
    /* nested contained (dom-2), reported once, on the container */
    run(parse(
            "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
            "\"id\":\"o\",\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"p\"}],"
            "\"partOf\":{\"reference\":\"#p\"}}],\"managingOrganization\":{\"reference\":\"#o\"}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Patient", "dom-2");
    size_t ndom2 = 0;
    for (size_t i = 0; i < r.count; i++)
        if (strstr(r.items[i].message, "dom-2")) ndom2++;
    assert_int_equal(ndom2, 1);
    /* a wrong-type '#' reference */
    run(parse("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Practitioner\","
              "\"id\":\"o\"}],\"managingOrganization\":{\"reference\":\"#o\"}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "structure", "Patient.managingOrganization", "Practitioner");
}

static const char *narrative(const char *div)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\"<div "
             "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">%s</div>\"}}",
             div);
    return buf;
}

static void test_narrative(void **state)
{
    (void)state;
    validate_result r;
    run(parse(narrative("<script>alert(1)</script>")), &r);
    expect(&r, VALIDATE_ERROR, "value", "Patient.text.div", "txt-1");
    run(parse(narrative("<p onclick=\\\"alert(1)\\\">x</p>")), &r);
    expect(&r, VALIDATE_ERROR, "value", "Patient.text.div", "txt-1");
    run(parse(narrative("<p><b>fine</b> <a href=\\\"http://x.org\\\">x</a></p>")), &r);
    expect_valid(&r);
}

static void test_bundle(void **state)
{
    (void)state;
    validate_result r;
    /* fullUrl and resource id disagree */
    run(parse("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"fullUrl\":"
              "\"http://x.org/fhir/Patient/a\",\"resource\":{\"resourceType\":\"Patient\","
              "\"id\":\"b\"}}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invalid", "Bundle.entry[0]", "does not match");
    /* total only in a searchset or history (bdl-1) */
    run(parse("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"total\":1}"), &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Bundle", "bdl-1");
    /* an entry resource is validated as a resource, with its own paths */
    run(parse("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":"
              "{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"}}}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "required", "Bundle.entry[0].resource", "Observation.status");
}

/* ------------------------------------------------------------------------
 * Terminology
 * ------------------------------------------------------------------------ */

static void test_required_binding(void **state)
{
    (void)state;
    fhir_node *p = parse(patient);
    set_value(p, "Patient.gender", "robot");
    validate_result r;
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "code-invalid", "Patient.gender", "administrative-gender");
    /* a CodeableConcept with a code of the right system but not in the value set */
    run(parse("{\"resourceType\":\"AllergyIntolerance\",\"patient\":{\"reference\":\"Patient/1\"},"
              "\"clinicalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
              "CodeSystem/allergyintolerance-clinical\",\"code\":\"gone\"}]}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "code-invalid", "AllergyIntolerance.clinicalStatus", NULL);
}

static void test_extensible_binding(void **state)
{
    (void)state;
    validate_result r;
    run(parse("{\"resourceType\":\"Patient\",\"managingOrganization\":{\"reference\":"
              "\"http://x.org/o/1\",\"type\":\"Banana\"}}"),
        &r);
    expect(&r, VALIDATE_WARNING, "code-invalid", "Patient.managingOrganization.type", "extensible");
    expect_valid(&r);
}

/* An extensible value set the model does not carry (generated from the R4
 * definitions): a code of its system that it lacks is a warning. */
static void test_extensible_generated(void **state)
{
    (void)state;
    validate_result r;
    run(parse("{\"resourceType\":\"Patient\",\"maritalStatus\":{\"coding\":[{\"system\":"
              "\"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus\",\"code\":\"M\"}]}}"),
        &r);
    expect_valid(&r);
    for (size_t i = 0; i < r.count; i++) assert_null(strstr(r.items[i].message, "marital"));
    run(parse("{\"resourceType\":\"Patient\",\"maritalStatus\":{\"coding\":[{\"system\":"
              "\"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus\",\"code\":\"Q\"}]}}"),
        &r);
    expect(&r, VALIDATE_WARNING, "code-invalid", "Patient.maritalStatus",
           "extensible value set http://hl7.org/fhir/ValueSet/marital-status");
    expect_valid(&r);
}

static void test_unknown_system(void **state)
{
    (void)state;
    validate_result r;
    run(parse("{\"resourceType\":\"AllergyIntolerance\",\"patient\":{\"reference\":\"Patient/1\"},"
              "\"clinicalStatus\":{\"coding\":[{\"system\":\"http://example.org/unknown\","
              "\"code\":\"active\"}]}}"),
        &r);
    expect(&r, VALIDATE_WARNING, "code-invalid", "AllergyIntolerance.clinicalStatus",
           "http://example.org/unknown is not known");
    expect_valid(&r);
    /* a required value set of an external code system (UCUM): a warning, not a pass */
    run(parse("{\"resourceType\":\"EffectEvidenceSynthesis\",\"status\":\"draft\","
              "\"population\":{\"reference\":\"EvidenceVariable/a\"},\"exposure\":{"
              "\"reference\":\"EvidenceVariable/b\"},\"exposureAlternative\":{\"reference\":"
              "\"EvidenceVariable/c\"},\"outcome\":{\"reference\":\"EvidenceVariable/d\"},"
              "\"effectEstimate\":[{\"unitOfMeasure\":{\"coding\":[{\"system\":"
              "\"http://unitsofmeasure.org\",\"code\":\"mg\"}]}}]}"),
        &r);
    expect(&r, VALIDATE_WARNING, "not-supported",
           "EffectEvidenceSynthesis.effectEstimate[0].unitOfMeasure", "ucum-units");
    expect_valid(&r);
}

/* Value sets of code systems R4 does not enumerate, decided by a list or a
 * grammar: currencies (ISO 4217) and mimetypes (BCP 13). */
static void test_grammar_code_systems(void **state)
{
    (void)state;
    validate_result r;
    fhir_node *p = parse(patient);
    run(p, &r);
    expect_valid(&r);
    assert_int_equal(r.count, 0); /* image/png is checked, not warned about */
    set_value(p, "Patient.photo.contentType", "picture/png");
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "code-invalid", "Patient.photo[0].contentType", "mimetypes");
    static const char money[] =
        "{\"resourceType\":\"Account\",\"status\":\"active\",\"extension\":[{\"url\":"
        "\"http://e.org/m\",\"valueMoney\":{\"value\":1,\"currency\":\"JPY\"}}]}";
    p = parse(money);
    run(p, &r);
    expect_valid(&r);
    set_value(p, "Account.extension.value.currency", "YEN");
    run(p, &r);
    expect(&r, VALIDATE_ERROR, "code-invalid", "Account.extension[0].valueMoney.currency",
           "currencies");
}

/* ------------------------------------------------------------------------
 * Invariants
 * ------------------------------------------------------------------------ */

static void test_invariant_failure(void **state)
{
    (void)state;
    validate_result r;
    run(parse("{\"resourceType\":\"Patient\",\"contact\":[{\"gender\":\"male\"}]}"), &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Patient.contact[0]", "pat-1");
    /* a warning-severity invariant (dom-6: no narrative) */
    expect(&r, VALIDATE_WARNING, "invariant", "Patient", "dom-6");
    /* a type-level invariant on a data type (qty-3) */
    run(parse(observation), &r);
    expect_valid(&r);
    fhir_node *o = parse("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":"
                         "{\"text\":\"t\"},\"valueQuantity\":{\"value\":1,\"code\":\"mg\"}}");
    run(o, &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Observation.valueQuantity", "qty-3");
    /* an expression that starts with the type name (app-4): evaluated, not
     * mistaken for a missing child element */
    run(parse("{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"cancelationReason\":"
              "{\"text\":\"x\"},\"participant\":[{\"actor\":{\"reference\":\"Patient/1\"},"
              "\"status\":\"accepted\"}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Appointment", "app-4");
    /* guards of an or-chain: per-1 with both ends evaluated, and obs-7 */
    run(parse("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
              "\"effectivePeriod\":{\"start\":\"2020-02-01\",\"end\":\"2020-01-01\"}}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Observation.effectivePeriod", "per-1");
    run(parse("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{"
              "\"system\":\"http://loinc.org\",\"code\":\"1-8\"}]},\"valueString\":\"x\","
              "\"component\":[{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":"
              "\"1-8\"}]},\"valueString\":\"y\"}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Observation", "obs-7");
    /* a core type profile (SimpleQuantity: no comparator) */
    run(parse("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
              "\"referenceRange\":[{\"low\":{\"value\":1,\"comparator\":\"<\"}}]}"),
        &r);
    expect(&r, VALIDATE_ERROR, "invariant", "Observation.referenceRange[0].low", "sqty-1");
}

/* The walker's shortcuts (guards, simple forms) give what the engine gives,
 * on resources that break the constraints they cover. */
static void test_shortcuts_agree(void **state)
{
    (void)state;
    /* each case in parentheses: one string made of several literals */
    static const char *const cases[] = {
        "{\"resourceType\":\"Patient\",\"contact\":[{\"gender\":\"male\"}]}",
        ("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
         "\"valueQuantity\":{\"value\":1,\"code\":\"mg\"},\"dataAbsentReason\":{\"text\":\"x\"},"
         "\"referenceRange\":[{\"low\":{\"value\":1,\"comparator\":\"<\"}},{\"appliesTo\":"
         "[{\"text\":\"a\"}]}]}"),
        ("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
         "\"id\":\"o\",\"meta\":{\"versionId\":\"1\",\"security\":[{\"code\":\"x\"}]},"
         "\"name\":\"x\"}],\"managingOrganization\":{\"reference\":\"#o\"}}"),
        ("{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"cancelationReason\":"
         "{\"text\":\"x\"},\"participant\":[{\"actor\":{\"reference\":\"Patient/1\"},"
         "\"status\":\"accepted\"}]}"),
        ("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{"
         "\"system\":\"http://loinc.org\",\"code\":\"1-8\"}]},\"valueString\":\"x\","
         "\"effectivePeriod\":{\"start\":\"2020-02-01\",\"end\":\"2020-01-01\"},"
         "\"component\":[{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":"
         "\"1-8\"}]},\"valueString\":\"y\"}]}"),
        ("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"fullUrl\":"
         "\"http://x.org/Patient/1/_history/1\"},{\"search\":{\"mode\":\"match\"}}]}"),
    };
    validate_options slow;
    memset(&slow, 0, sizeof slow);
    slow.flags = VALIDATE_FHIRPATH_ONLY;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fhir_node *root = parse(cases[i]);
        validate_result a, b;
        run(root, &a);
        validate_result_init(&b, A);
        assert_int_equal(validate_resource(root, &slow, &b), TSG_OK);
        assert_true(a.count > 0);
        if (a.count != b.count) {
            fprintf(stderr, "case %zu: fast\n", i);
            print_issues(&a);
            fprintf(stderr, "slow\n");
            print_issues(&b);
        }
        assert_int_equal(a.count, b.count);
        for (size_t k = 0; k < a.count; k++) {
            assert_int_equal(a.items[k].severity, b.items[k].severity);
            assert_string_equal(a.items[k].expression, b.items[k].expression);
            assert_string_equal(a.items[k].message, b.items[k].message);
        }
    }
}

/* ig-1 compares every grouping id with every resource's groupingId; made
 * large enough, it exceeds the evaluation's work budget: the validator must
 * say so as information carrying the key, not skip it and not fail. */
static void test_invariant_not_evaluable(void **state)
{
    (void)state;
    tsg_buf b;
    tsg_buf_init(&b, 0);
    tsg_buf_puts(&b, "{\"resourceType\":\"ImplementationGuide\",\"url\":\"http://x.org/ig\","
                     "\"name\":\"X\",\"status\":\"draft\",\"packageId\":\"x\",\"fhirVersion\":"
                     "[\"4.0.1\"],\"definition\":{\"grouping\":[");
    const int n = 4000;
    for (int i = 0; i < n; i++)
        tsg_buf_printf(&b, "%s{\"id\":\"g%d\",\"name\":\"g\"}", i ? "," : "", i);
    tsg_buf_puts(&b, "],\"resource\":[");
    for (int i = 0; i < n; i++)
        tsg_buf_printf(&b,
                       "%s{\"reference\":{\"reference\":\"Patient/p%d\"},\"groupingId\":\"g%d\"}",
                       i ? "," : "", i, n - 1 - i);
    tsg_buf_puts(&b, "]}}");
    assert_int_equal(tsg_buf_rc(&b), TSG_OK);
    validate_result r;
    run(parse(b.data), &r);
    tsg_buf_free(&b);
    expect(&r, VALIDATE_INFORMATION, "informational", "ImplementationGuide.definition",
           "ig-1 cannot be evaluated");
}

static void test_constraint_table(void **state)
{
    (void)state;
    validate_constraint_stats s;
    validate_constraint_stats_get(&s);
    assert_true(s.total > 200);
    assert_int_equal(s.failed_compile, 0);
    assert_int_equal(s.total, s.compiled + s.native + s.broken + s.failed_compile);
    /* the known-broken list stays short: under 1 % */
    assert_true(s.broken * 100 < s.total);
}

/* ------------------------------------------------------------------------
 * Profiles hook, OperationOutcome, text input
 * ------------------------------------------------------------------------ */

static tsg_rc fake_profile(void *ctx, const fhir_node *root, const char *url,
                           validate_issue_fn report, void *report_ctx)
{
    (void)root;
    if (strcmp(url, (const char *)ctx)) return TSG_ENOTSUP;
    report(report_ctx, VALIDATE_ERROR, "invariant", "Patient.name", "profile rule broken");
    return TSG_OK;
}

static void test_profiles_hook(void **state)
{
    (void)state;
    const char *urls[] = {"http://x.org/p1", "http://x.org/missing"};
    validate_options opt;
    memset(&opt, 0, sizeof opt);
    opt.profiles = urls;
    opt.nprofiles = 2;
    opt.profile_validate = fake_profile;
    opt.profile_ctx = (void *)"http://x.org/p1";
    validate_result r;
    validate_result_init(&r, A);
    assert_int_equal(validate_resource(parse(patient), &opt, &r), TSG_OK);
    expect(&r, VALIDATE_ERROR, "invariant", "Patient.name", "profile rule broken");
    expect(&r, VALIDATE_ERROR, "not-supported", "Patient", "http://x.org/missing is not loaded");
    /* meta.profile that is not loaded: a warning */
    opt.nprofiles = 0;
    opt.meta_profiles = 1;
    validate_result_init(&r, A);
    assert_int_equal(validate_resource(parse("{\"resourceType\":\"Patient\",\"meta\":{"
                                             "\"profile\":[\"http://x.org/other\"]}}"),
                                       &opt, &r),
                     TSG_OK);
    expect(&r, VALIDATE_WARNING, "not-supported", "Patient", "http://x.org/other");
    expect_valid(&r);
}

static void test_outcome_and_text(void **state)
{
    (void)state;
    validate_result r;
    validate_result_init(&r, A);
    const char *bad = "{\"resourceType\":\"Patient\",\n \"bogus\": 1}";
    fhir_node *root = (fhir_node *)1;
    assert_int_equal(validate_text(A, bad, strlen(bad), NULL, &r, &root), TSG_OK);
    assert_null(root);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.items[0].severity, VALIDATE_FATAL);
    assert_int_equal(r.items[0].line, 2);
    tsg_buf out;
    tsg_buf_init(&out, 0);
    assert_int_equal(validate_outcome_json(&r, &out, 0), TSG_OK);
    assert_non_null(strstr(out.data, "\"resourceType\": \"OperationOutcome\""));
    assert_non_null(strstr(out.data, "\"severity\": \"fatal\""));
    assert_non_null(strstr(out.data, "operationoutcome-issue-line\", \"valueInteger\": 2"));
    /* the outcome is FHIR: the reader takes it, and it validates */
    fhir_node *oo = NULL;
    tsg_error e;
    assert_int_equal(fhir_json_parse(A, out.data, out.len, NULL, &oo, &e), TSG_OK);
    validate_result self;
    validate_result_init(&self, A);
    assert_int_equal(validate_resource(oo, NULL, &self), TSG_OK);
    expect_valid(&self);
    tsg_buf_free(&out);

    /* a message cut inside a UTF-8 character still gives valid JSON */
    validate_result_init(&r, A);
    validate_result_add(&r, VALIDATE_ERROR, "value", "Patient.name[0].family",
                        "'\xe5\xb1\xb1\xe7' is cut");
    tsg_buf_init(&out, 0);
    assert_int_equal(validate_outcome_json(&r, &out, 0), TSG_OK);
    assert_int_equal(tsg_utf8_valid_prefix(out.data, out.len), out.len);
    assert_non_null(strstr(out.data, "\xe5\xb1\xb1\xef\xbf\xbd' is cut"));
    tsg_buf_free(&out);

    /* the REST seam: rejected, with an outcome */
    tsg_buf_init(&out, 0);
    int rejected = 0;
    const char *first = NULL;
    assert_int_equal(validate_for_rest(parse("{\"resourceType\":\"Observation\",\"code\":"
                                             "{\"text\":\"x\"}}"),
                                       VALIDATE_LEVEL_BASE, NULL, A, &out, &rejected, &first),
                     TSG_OK);
    assert_int_equal(rejected, 1);
    assert_non_null(strstr(out.data, "Observation.status"));
    assert_non_null(first);
    assert_non_null(strstr(first, "Observation.status: "));
    tsg_buf_free(&out);
    rejected = 1;
    assert_int_equal(
        validate_for_rest(parse(patient), VALIDATE_LEVEL_BASE, NULL, A, NULL, &rejected, &first),
        TSG_OK);
    assert_int_equal(rejected, 0);
    assert_null(first);
}

/* ------------------------------------------------------------------------
 * The command line, as a real binary
 * ------------------------------------------------------------------------ */

static char dir[256];

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static int cli(const char *args, const char *input, char **out)
{
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/in.json", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(input, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' validate %s >out.txt 2>err.txt", dir, TSUNAGU_BINARY,
             args);
    int st = system(cmd);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    *out = read_all(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_cli(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tsunagu-validate-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char *out;
    assert_int_equal(cli("in.json", patient, &out), 0);
    assert_non_null(strstr(out, "\"resourceType\": \"OperationOutcome\""));
    assert_non_null(strstr(out, "Validation passed"));
    free(out);
    assert_int_equal(cli("- <in.json", patient, &out), 0);
    free(out);
    assert_int_equal(cli("in.json", "{\"resourceType\":\"Patient\",\"gender\":\"robot\"}", &out),
                     1);
    assert_non_null(strstr(out, "\"severity\": \"error\""));
    assert_non_null(strstr(out, "\"code\": \"code-invalid\""));
    assert_non_null(strstr(out, "\"expression\": [\"Patient.gender\"]"));
    free(out);
    assert_int_equal(cli("in.json", "{\"resourceType\":\"Patient\",\n\"gender\":7}", &out), 1);
    assert_non_null(strstr(out, "\"severity\": \"fatal\""));
    assert_non_null(strstr(out, "operationoutcome-issue-line"));
    free(out);
    assert_int_equal(cli("--profile http://x.org/StructureDefinition/p in.json", patient, &out), 1);
    assert_non_null(strstr(out, "is not loaded"));
    free(out);
    assert_int_equal(cli("--bogus in.json", patient, &out), 2);
    free(out);
    assert_int_equal(cli("a.json b.json", patient, &out), 2);
    free(out);
    assert_int_equal(cli("--profile", patient, &out), 2);
    free(out);
    assert_int_equal(cli("missing.json", patient, &out), 1);
    assert_non_null(strstr(out, "\"severity\": \"fatal\""));
    free(out);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_patient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cardinality_min, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cardinality_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_element, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extension_value_and_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_core_extensions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primitive_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uri_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reference_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reference_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_narrative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extensible_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extensible_generated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_system, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grammar_code_systems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invariant_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shortcuts_agree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invariant_not_evaluable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constraint_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profiles_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcome_and_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
