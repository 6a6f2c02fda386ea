/*
 * test_profile.c — profile compilation and validation (gateway/validate/profile.h):
 * one test per rule class, each with the exact FHIRPath expression of the issue, plus
 * snapshot generation from differentials, the region's own profiles, and the package
 * reader (gzip + tar, unsafe and broken archives).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "model/model.h"
#include "validate/profile.h"

#define SD   "http://example.org/fhir/StructureDefinition/"
#define REGP "https://tsunagu.example.jp/fhir/StructureDefinition/"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

typedef struct issue {
    validate_severity sev;
    char code[32];
    char expr[256];
    char msg[512];
} issue;

typedef struct issues {
    size_t n;
    issue it[64];
} issues;

static void on_issue(void *ctx, validate_severity sev, const char *code, const char *expr,
                     const char *msg)
{
    issues *is = ctx;
    if (is->n == 64) return;
    issue *i = &is->it[is->n++];
    i->sev = sev;
    snprintf(i->code, sizeof i->code, "%s", code);
    snprintf(i->expr, sizeof i->expr, "%s", expr);
    snprintf(i->msg, sizeof i->msg, "%s", msg);
}

static void dump(const issues *is)
{
    for (size_t i = 0; i < is->n; i++)
        fprintf(stderr, "  issue %d %s %s: %s\n", is->it[i].sev, is->it[i].code, is->it[i].expr,
                is->it[i].msg);
}

/* A registry with the given resources (JSON texts), compiled. */
static profile_registry *reg_of(const char *const *jsons, size_t n)
{
    profile_registry *r = profile_registry_new();
    assert_non_null(r);
    tsg_error err;
    for (size_t i = 0; i < n; i++) {
        tsg_rc rc = profile_registry_add_json(r, jsons[i], strlen(jsons[i]), "test", &err);
        if (rc != TSG_OK) fprintf(stderr, "%s\n", err.message);
        assert_int_equal(rc, TSG_OK);
    }
    issues load = {0};
    assert_int_equal(profile_registry_compile(r, on_issue, &load, &err), TSG_OK);
    dump(&load);
    return r;
}
#define REG(...)                                                                                   \
    reg_of((const char *const[]){__VA_ARGS__},                                                     \
           sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

/* Validates the JSON resource against profile url; returns the issues. */
static issues run(const profile_registry *r, const char *url, const char *json)
{
    issues is = {0};
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root = NULL;
    tsg_error err;
    tsg_rc rc = fhir_json_parse(a, json, strlen(json), NULL, &root, &err);
    if (rc != TSG_OK) fprintf(stderr, "parse: %s at %s\n", err.message, err.location);
    assert_int_equal(rc, TSG_OK);
    const profile *p = profile_registry_find(r, url);
    assert_non_null(p);
    assert_int_equal(profile_validate(p, root, on_issue, &is), TSG_OK);
    dump(&is);
    tsg_arena_free(a);
    return is;
}

static size_t count_sev(const issues *is, validate_severity sev)
{
    size_t n = 0;
    for (size_t i = 0; i < is->n; i++) n += is->it[i].sev == sev;
    return n;
}

/* Asserts that an issue with this severity and exact expression, whose
 * message contains `msg`, was reported. */
static void expect(const issues *is, validate_severity sev, const char *expr, const char *msg)
{
    for (size_t i = 0; i < is->n; i++)
        if (is->it[i].sev == sev && strcmp(is->it[i].expr, expr) == 0 && strstr(is->it[i].msg, msg))
            return;
    fprintf(stderr, "missing issue: %d %s: ...%s...\n", sev, expr, msg);
    fail();
}

#define SD_HEAD(id, type, base)                                                                    \
    "{\"resourceType\":\"StructureDefinition\",\"url\":\"" SD id "\",\"name\":\"" id "\","         \
    "\"status\":\"active\",\"kind\":\"resource\",\"abstract\":false,\"type\":\"" type "\","        \
    "\"baseDefinition\":\"" base "\",\"derivation\":\"constraint\",\"differential\":{"             \
    "\"element\":["
#define SD_TAIL "]}}"
#define CORE    "http://hl7.org/fhir/StructureDefinition/"

/* ------------------------------------------------------------------------
 * Rule classes
 * ------------------------------------------------------------------------ */

static void test_cardinality(void **state)
{
    (void)state;
    profile_registry *r = REG(SD_HEAD(
        "card", "Patient",
        CORE
        "Patient") "{\"id\":\"Patient\",\"path\":\"Patient\"},"
                   "{\"id\":\"Patient.identifier\",\"path\":\"Patient.identifier\",\"min\":1},"
                   "{\"id\":\"Patient.identifier.system\",\"path\":\"Patient.identifier.system\","
                   "\"min\":1},"
                   "{\"id\":\"Patient.name\",\"path\":\"Patient.name\",\"max\":\"1\"}" SD_TAIL);
    issues is =
        run(r, SD "card",
            "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"A\"},{\"family\":\"B\"}]}");
    assert_int_equal(count_sev(&is, VALIDATE_ERROR), 2);
    expect(&is, VALIDATE_ERROR, "Patient.identifier", "minimum required = 1, but only found 0");
    expect(&is, VALIDATE_ERROR, "Patient.name", "maximum allowed = 1, but found 2");
    is = run(r, SD "card",
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"},"
             "{\"value\":\"2\"}]}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.identifier[1].system", "minimum required = 1");
    assert_string_equal(is.it[0].code, "required");
    profile_registry_free(r);
}

static void test_fixed_and_pattern(void **state)
{
    (void)state;
    profile_registry *r = REG(SD_HEAD(
        "fx", "Patient",
        CORE "Patient") "{\"id\":\"Patient.identifier.system\",\"path\":\"Patient.identifier."
                        "system\",\"fixedUri\":\"urn:sys\"},"
                        "{\"id\":\"Patient.maritalStatus\",\"path\":\"Patient.maritalStatus\","
                        "\"patternCodeableConcept\":{\"coding\":[{\"system\":\"urn:ms\",\"code\":"
                        "\"M\"}]}},"
                        "{\"id\":\"Patient.contact.name\",\"path\":\"Patient.contact.name\","
                        "\"fixedHumanName\":{\"family\":\"X\"}}" SD_TAIL);
    issues is = run(
        r, SD "fx",
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:sys\",\"value\":\"1\"},"
        "{\"system\":\"urn:other\",\"value\":\"2\"}],"
        "\"maritalStatus\":{\"coding\":[{\"system\":\"urn:x\",\"code\":\"y\"},"
        "{\"system\":\"urn:ms\",\"code\":\"M\",\"display\":\"Married\"}],\"text\":\"m\"}}");
    /* the pattern matches (extra coding and display are allowed); the fixed value does not */
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.identifier[1].system", "must be exactly \"urn:sys\"");
    assert_string_equal(is.it[0].code, "value");
    is = run(r, SD "fx",
             "{\"resourceType\":\"Patient\",\"maritalStatus\":{\"coding\":[{\"system\":\"urn:ms\","
             "\"code\":\"S\"}]},\"contact\":[{\"name\":{\"family\":\"X\"}},"
             "{\"name\":{\"family\":\"X\",\"given\":[\"Y\"]}}]}");
    assert_int_equal(is.n, 2);
    expect(&is, VALIDATE_ERROR, "Patient.maritalStatus", "must match the pattern");
    /* fixed is exact: an extra given is a difference */
    expect(&is, VALIDATE_ERROR, "Patient.contact[1].name", "must be exactly");
    profile_registry_free(r);
}

#define VS_MS                                                                                      \
    "{\"resourceType\":\"ValueSet\",\"url\":\"http://example.org/vs/ms\",\"status\":\"active\","   \
    "\"compose\":{\"include\":[{\"system\":\"urn:ms\",\"concept\":[{\"code\":\"M\"},{\"code\":"    \
    "\"S\"}]}]}}"
#define CS_G                                                                                       \
    "{\"resourceType\":\"CodeSystem\",\"url\":\"urn:g\",\"status\":\"active\",\"content\":"        \
    "\"complete\",\"concept\":[{\"code\":\"a\",\"concept\":[{\"code\":\"a1\"}]},{\"code\":\"b\"}]" \
    "}"
#define VS_G                                                                                       \
    "{\"resourceType\":\"ValueSet\",\"url\":\"http://example.org/vs/g\",\"status\":\"active\","    \
    "\"compose\":{\"include\":[{\"system\":\"urn:g\"}]}}"

static void test_binding(void **state)
{
    (void)state;
    profile_registry *r = REG(
        VS_MS, CS_G, VS_G,
        SD_HEAD(
            "bind", "Patient",
            CORE
            "Patient") "{\"id\":\"Patient.maritalStatus\",\"path\":\"Patient.maritalStatus\","
                       "\"binding\":"
                       "{\"strength\":\"required\",\"valueSet\":\"http://example.org/vs/ms|1.0\"}},"
                       "{\"id\":\"Patient.contact.relationship\",\"path\":\"Patient.contact."
                       "relationship\",\"binding\":"
                       "{\"strength\":\"extensible\",\"valueSet\":\"http://example.org/vs/g\"}},"
                       "{\"id\":\"Patient.communication.language\",\"path\":\"Patient."
                       "communication.language\",\"binding\":"
                       "{\"strength\":\"required\",\"valueSet\":\"http://example.org/vs/absent\"}},"
                       "{\"id\":\"Patient.link.type\",\"path\":\"Patient.link.type\",\"binding\":"
                       "{\"strength\":\"preferred\",\"valueSet\":\"http://example.org/vs/"
                       "ms\"}}" SD_TAIL);
    issues is = run(r, SD "bind",
                    "{\"resourceType\":\"Patient\",\"maritalStatus\":{\"coding\":[{\"system\":"
                    "\"urn:ms\",\"code\":\"M\"}]},\"contact\":[{\"relationship\":[{\"coding\":[{"
                    "\"system\":\"urn:g\",\"code\":\"a1\"}]}]}]}");
    assert_int_equal(is.n, 0); /* a1 is nested in the code system: enumerated too */
    is = run(r, SD "bind",
             "{\"resourceType\":\"Patient\",\"maritalStatus\":{\"coding\":[{\"system\":"
             "\"urn:ms\",\"code\":\"X\"}]},\"contact\":[{\"relationship\":[{\"coding\":[{"
             "\"system\":\"urn:g\",\"code\":\"c\"}]}]}],\"communication\":[{\"language\":{"
             "\"coding\":[{\"system\":\"urn:ietf:bcp:47\",\"code\":\"ja\"}]}}]}");
    assert_int_equal(is.n, 3);
    expect(&is, VALIDATE_ERROR, "Patient.maritalStatus",
           "'urn:ms#X' is not in value set http://example.org/vs/ms (required binding)");
    expect(&is, VALIDATE_WARNING, "Patient.contact[0].relationship[0]",
           "is not in value set http://example.org/vs/g (extensible binding)");
    expect(&is, VALIDATE_WARNING, "Patient.communication[0].language",
           "value set http://example.org/vs/absent (required binding) is not loaded");
    assert_string_equal(is.it[0].code, "code-invalid");
    profile_registry_free(r);
}

static void test_types_and_targets(void **state)
{
    (void)state;
    profile_registry *r = REG(
        SD_HEAD(
            "pat", "Patient",
            CORE
            "Patient") "{\"id\":\"Patient.gender\",\"path\":\"Patient.gender\",\"min\":1}" SD_TAIL,
        SD_HEAD("ty", "Observation",
                CORE "Observation") "{\"id\":\"Observation.value[x]\",\"path\":\"Observation."
                                    "value[x]\",\"type\":[{\"code\":\"Quantity\"}]},"
                                    "{\"id\":\"Observation.subject\",\"path\":\"Observation."
                                    "subject\",\"type\":[{\"code\":\"Reference\","
                                    "\"targetProfile\":[\"" SD "pat\"]}]},"
                                    "{\"id\":\"Observation.performer\",\"path\":\"Observation."
                                    "performer\",\"type\":[{\"code\":\"Reference\","
                                    "\"targetProfile\":[\"" CORE "Practitioner\",\"" CORE
                                    "PractitionerRole\"]}]}" SD_TAIL);
    issues is = run(
        r, SD "ty",
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
        "\"subject\":{\"reference\":\"Group/1\"},\"performer\":[{\"reference\":"
        "\"PractitionerRole/2\"},{\"reference\":\"http://x.org/fhir/Organization/3/_history/1\"}],"
        "\"valueString\":\"high\"}");
    assert_int_equal(is.n, 3);
    expect(&is, VALIDATE_ERROR, "Observation.valueString", "a string is not allowed here");
    expect(&is, VALIDATE_ERROR, "Observation.subject",
           "target type Group is not allowed; this element allows only Patient");
    expect(&is, VALIDATE_ERROR, "Observation.performer[1]",
           "target type Organization is not allowed");
    is = run(r, SD "ty",
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
             "\"subject\":{\"reference\":\"Patient/1\"},\"valueQuantity\":{\"value\":1}}");
    assert_int_equal(is.n, 0);
    /* a contained target is at hand: it must conform to the target profile */
    is =
        run(r, SD "ty",
            "{\"resourceType\":\"Observation\",\"contained\":[{\"resourceType\":\"Patient\",\"id\":"
            "\"p\"}],\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"#"
            "p\"}}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Observation.subject",
           "the contained Patient #p conforms to none of the target profiles (first: " SD "pat)");
    is =
        run(r, SD "ty",
            "{\"resourceType\":\"Observation\",\"contained\":[{\"resourceType\":\"Patient\",\"id\":"
            "\"p\",\"gender\":\"other\"}],\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"subject\":{\"reference\":\"#p\"}}");
    assert_int_equal(is.n, 0);
    profile_registry_free(r);
}

static void test_type_profile(void **state)
{
    (void)state;
    profile_registry *r = REG(
        "{\"resourceType\":\"StructureDefinition\",\"url\":\"" SD "hn\",\"name\":\"hn\",\"status\":"
        "\"active\",\"kind\":\"complex-type\",\"abstract\":false,\"type\":\"HumanName\","
        "\"baseDefinition\":\"" CORE "HumanName\",\"derivation\":\"constraint\",\"differential\":{"
        "\"element\":[{\"id\":\"HumanName.family\",\"path\":\"HumanName.family\",\"min\":1}]}}",
        SD_HEAD("tp", "Patient",
                CORE "Patient") "{\"id\":\"Patient.name\",\"path\":\"Patient.name\",\"type\":[{"
                                "\"code\":\"HumanName\","
                                "\"profile\":[\"" SD "hn\"]}]},"
                                "{\"id\":\"Patient.contact.name\",\"path\":\"Patient.contact."
                                "name\",\"type\":[{\"code\":\"HumanName\","
                                "\"profile\":[\"" SD "not-loaded\"]}]}" SD_TAIL);
    issues is = run(r, SD "tp",
                    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"A\"},{\"text\":\"B\"}],"
                    "\"contact\":[{\"name\":{\"text\":\"C\"}}]}");
    assert_int_equal(is.n, 2);
    expect(&is, VALIDATE_ERROR, "Patient.name[1].family", "HumanName.family: minimum required = 1");
    expect(&is, VALIDATE_WARNING, "Patient.contact[0].name",
           "profile " SD "not-loaded is not loaded");
    profile_registry_free(r);
}

#define EXT_DEF                                                                                    \
    "{\"resourceType\":\"StructureDefinition\",\"url\":\"" SD "ext\",\"name\":\"ext\",\"status\":" \
    "\"active\",\"kind\":\"complex-type\",\"abstract\":false,\"type\":\"Extension\","              \
    "\"baseDefinition\":\"" CORE "Extension\",\"derivation\":\"constraint\",\"differential\":{"    \
    "\"element\":[{\"id\":\"Extension.url\",\"path\":\"Extension.url\",\"fixedUri\":\"" SD         \
    "ext\"},{\"id\":\"Extension.value[x]\",\"path\":\"Extension.value[x]\",\"min\":1,\"type\":"    \
    "[{\"code\":\"code\"}],\"binding\":{\"strength\":\"required\",\"valueSet\":"                   \
    "\"http://example.org/vs/ms\"}}]}}"

static void test_extension_by_url(void **state)
{
    (void)state;
    profile_registry *r =
        REG(VS_MS, EXT_DEF,
            SD_HEAD("any", "Patient",
                    CORE "Patient") "{\"id\":\"Patient\",\"path\":\"Patient\"}" SD_TAIL);
    /* the profile says nothing about extensions: the definition is found by URL */
    issues is = run(r, SD "any",
                    "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"" SD "ext\","
                    "\"valueCode\":\"M\"},{\"url\":\"" SD "ext\",\"valueString\":\"M\"},"
                    "{\"url\":\"urn:unknown\",\"valueString\":\"x\"}],"
                    "\"name\":[{\"extension\":[{\"url\":\"" SD
                    "ext\",\"valueCode\":\"Q\"}],\"text\":\"n\"}]}");
    assert_int_equal(is.n, 2);
    expect(&is, VALIDATE_ERROR, "Patient.extension[1].valueString", "a string is not allowed here");
    expect(&is, VALIDATE_ERROR, "Patient.name[0].extension[0].valueCode",
           "'Q' is not in value set http://example.org/vs/ms");
    profile_registry_free(r);
}

/* Patient.identifier sliced by value:system into a (1..1) and b (0..1). */
#define IDENT_SLICING(rules, ordered)                                                              \
    SD_HEAD("sl-" rules ordered, "Patient", CORE "Patient")                                        \
    "{\"id\":\"Patient.identifier\",\"path\":\"Patient.identifier\",\"slicing\":{"                 \
    "\"discriminator\":[{\"type\":\"value\",\"path\":\"system\"}],\"rules\":\"" rules "\","        \
    "\"ordered\":" ordered "}},"                                                                   \
    "{\"id\":\"Patient.identifier:a\",\"path\":\"Patient.identifier\",\"sliceName\":\"a\","        \
    "\"min\":1,\"max\":\"1\"},"                                                                    \
    "{\"id\":\"Patient.identifier:a.system\",\"path\":\"Patient.identifier.system\","              \
    "\"fixedUri\":\"urn:a\"},"                                                                     \
    "{\"id\":\"Patient.identifier:a.value\",\"path\":\"Patient.identifier.value\",\"min\":1},"     \
    "{\"id\":\"Patient.identifier:b\",\"path\":\"Patient.identifier\",\"sliceName\":\"b\","        \
    "\"min\":0,\"max\":\"1\"},"                                                                    \
    "{\"id\":\"Patient.identifier:b.system\",\"path\":\"Patient.identifier.system\","              \
    "\"fixedUri\":\"urn:b\"}" SD_TAIL

#define ID(s, v)     "{\"system\":\"" s "\",\"value\":\"" v "\"}"
#define PAT_IDS(...) "{\"resourceType\":\"Patient\",\"identifier\":[" __VA_ARGS__ "]}"

static void test_slicing_value_and_rules(void **state)
{
    (void)state;
    profile_registry *r = REG(IDENT_SLICING("open", "false"), IDENT_SLICING("closed", "false"),
                              IDENT_SLICING("openAtEnd", "false"), IDENT_SLICING("open", "true"));
    /* open: others allowed anywhere; a's cardinality and children checked */
    issues is = run(r, SD "sl-openfalse", PAT_IDS(ID("urn:x", "1") "," ID("urn:b", "2")));
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.identifier",
           "slice 'a' of Patient.identifier needs at least 1 item, found 0");
    is = run(r, SD "sl-openfalse", "{\"resourceType\":\"Patient\"}");
    assert_int_equal(is.n, 1); /* no identifier at all: slice a still needs one */
    expect(&is, VALIDATE_ERROR, "Patient.identifier",
           "slice 'a' of Patient.identifier needs at least 1 item, found 0");
    is = run(r, SD "sl-openfalse",
             PAT_IDS(ID("urn:a", "1") "," ID("urn:b", "2") "," ID("urn:b",
                                                                  "3") ",{\"system\":\"urn:a\"}"));
    assert_int_equal(is.n, 3);
    expect(&is, VALIDATE_ERROR, "Patient.identifier",
           "slice 'a' of Patient.identifier allows at most 1 item, found 2");
    expect(&is, VALIDATE_ERROR, "Patient.identifier",
           "slice 'b' of Patient.identifier allows at most 1 item, found 2");
    expect(&is, VALIDATE_ERROR, "Patient.identifier[3].value", "minimum required = 1");
    /* closed */
    is = run(r, SD "sl-closedfalse", PAT_IDS(ID("urn:a", "1") "," ID("urn:x", "2")));
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.identifier[1]", "matches none of the slices");
    /* openAtEnd: unmatched items only after the slices */
    is = run(r, SD "sl-openAtEndfalse", PAT_IDS(ID("urn:a", "1") "," ID("urn:x", "2")));
    assert_int_equal(is.n, 0);
    is = run(r, SD "sl-openAtEndfalse", PAT_IDS(ID("urn:x", "1") "," ID("urn:a", "2")));
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.identifier[1]", "follows an item that matches no slice");
    /* ordered: a before b */
    is = run(r, SD "sl-opentrue",
             PAT_IDS(ID("urn:a", "1") "," ID("urn:x", "2") "," ID("urn:b", "3")));
    assert_int_equal(is.n, 0);
    is = run(r, SD "sl-opentrue", PAT_IDS(ID("urn:b", "1") "," ID("urn:a", "2")));
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.identifier[1]", "slice 'a', which comes before slice 'b'");
    profile_registry_free(r);
}

static void test_slicing_pattern(void **state)
{
    (void)state;
    profile_registry *r =
        REG(SD_HEAD("pat-sl", "Observation",
                    CORE "Observation") "{\"id\":\"Observation.category\",\"path\":\"Observation."
                                        "category\",\"slicing\":{"
                                        "\"discriminator\":[{\"type\":\"pattern\",\"path\":\"$"
                                        "this\"}],\"rules\":\"open\"}},"
                                        "{\"id\":\"Observation.category:vs\",\"path\":"
                                        "\"Observation.category\",\"sliceName\":\"vs\","
                                        "\"min\":1,\"max\":\"1\",\"patternCodeableConcept\":{"
                                        "\"coding\":[{\"system\":\"urn:c\","
                                        "\"code\":\"vital-signs\"}]}},"
                                        "{\"id\":\"Observation.category:vs.text\",\"path\":"
                                        "\"Observation.category.text\",\"min\":1}" SD_TAIL);
    issues is =
        run(r, SD "pat-sl",
            "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
            "\"category\":[{\"coding\":[{\"system\":\"urn:c\",\"code\":\"other\"}]},"
            "{\"coding\":[{\"system\":\"urn:c\",\"code\":\"vital-signs\"}]}]}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Observation.category[1].text", "minimum required = 1");
    is = run(r, SD "pat-sl",
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
             "\"category\":[{\"coding\":[{\"system\":\"urn:c\",\"code\":\"other\"}]}]}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Observation.category",
           "slice 'vs' of Observation.category needs at least 1");
    profile_registry_free(r);
}

static void test_slicing_type_and_exists(void **state)
{
    (void)state;
    profile_registry *r = REG(SD_HEAD(
        "ty-sl", "Patient",
        CORE "Patient") "{\"id\":\"Patient.contained\",\"path\":\"Patient.contained\",\"slicing\":{"
                        "\"discriminator\":[{\"type\":\"type\",\"path\":\"$this\"}],\"rules\":"
                        "\"closed\"}},"
                        "{\"id\":\"Patient.contained:org\",\"path\":\"Patient.contained\","
                        "\"sliceName\":\"org\","
                        "\"max\":\"1\",\"type\":[{\"code\":\"Organization\"}]},"
                        "{\"id\":\"Patient.contained:pr\",\"path\":\"Patient.contained\","
                        "\"sliceName\":\"pr\","
                        "\"type\":[{\"code\":\"Practitioner\"}]},"
                        "{\"id\":\"Patient.telecom\",\"path\":\"Patient.telecom\",\"slicing\":{"
                        "\"discriminator\":[{\"type\":\"exists\",\"path\":\"period\"}],\"rules\":"
                        "\"open\"}},"
                        "{\"id\":\"Patient.telecom:temporary\",\"path\":\"Patient.telecom\","
                        "\"sliceName\":\"temporary\","
                        "\"max\":\"1\"},"
                        "{\"id\":\"Patient.telecom:temporary.period\",\"path\":\"Patient.telecom."
                        "period\",\"min\":1},"
                        "{\"id\":\"Patient.telecom:temporary.period.end\",\"path\":\"Patient."
                        "telecom.period.end\",\"min\":1}" SD_TAIL);
    issues is =
        run(r, SD "ty-sl",
            "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
            "\"id\":\"o1\"},"
            "{\"resourceType\":\"Practitioner\",\"id\":\"p1\"},{\"resourceType\":\"Organization\","
            "\"id\":\"o2\"},"
            "{\"resourceType\":\"Device\",\"id\":\"d1\"}],"
            "\"telecom\":[{\"value\":\"1\"},{\"value\":\"2\",\"period\":{\"start\":\"2020\"}},"
            "{\"value\":\"3\",\"period\":{\"end\":\"2021\"}}],"
            "\"generalPractitioner\":[{\"reference\":\"#o1\"},{\"reference\":\"#p1\"},{"
            "\"reference\":\"#o2\"},"
            "{\"reference\":\"#d1\"}]}");
    assert_int_equal(is.n, 4);
    expect(&is, VALIDATE_ERROR, "Patient.contained[3]",
           "matches none of the slices of Patient.contained, and the slicing is closed");
    expect(&is, VALIDATE_ERROR, "Patient.contained",
           "slice 'org' of Patient.contained allows at most 1 item, found 2");
    expect(&is, VALIDATE_ERROR, "Patient.telecom",
           "slice 'temporary' of Patient.telecom allows at most 1 item, found 2");
    expect(&is, VALIDATE_ERROR, "Patient.telecom[1].period.end", "minimum required = 1");
    profile_registry_free(r);
}

static void test_slicing_profile(void **state)
{
    (void)state;
    profile_registry *r = REG(
        "{\"resourceType\":\"StructureDefinition\",\"url\":\"" SD
        "official\",\"name\":\"o\",\"status\":"
        "\"active\",\"kind\":\"complex-type\",\"abstract\":false,\"type\":\"HumanName\","
        "\"baseDefinition\":\"" CORE "HumanName\",\"derivation\":\"constraint\",\"differential\":{"
        "\"element\":[{\"id\":\"HumanName.use\",\"path\":\"HumanName.use\",\"min\":1,\"fixedCode\":"
        "\"official\"}]}}",
        SD_HEAD("pr-sl", "Patient",
                CORE "Patient") "{\"id\":\"Patient.name\",\"path\":\"Patient.name\",\"slicing\":{"
                                "\"discriminator\":[{\"type\":\"profile\",\"path\":\"$this\"}],"
                                "\"rules\":\"open\"}},"
                                "{\"id\":\"Patient.name:official\",\"path\":\"Patient.name\","
                                "\"sliceName\":\"official\","
                                "\"min\":1,\"max\":\"1\",\"type\":[{\"code\":\"HumanName\","
                                "\"profile\":[\"" SD "official\"]}]},"
                                "{\"id\":\"Patient.name:official.family\",\"path\":\"Patient.name."
                                "family\",\"min\":1}" SD_TAIL);
    issues is = run(r, SD "pr-sl",
                    "{\"resourceType\":\"Patient\",\"name\":[{\"use\":\"usual\",\"text\":\"a\"},"
                    "{\"use\":\"official\",\"text\":\"b\"}]}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.name[1].family",
           "Patient.name:official.family: minimum required = 1");
    is = run(r, SD "pr-sl",
             "{\"resourceType\":\"Patient\",\"name\":[{\"use\":\"usual\",\"text\":\"a\"}]}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.name",
           "slice 'official' of Patient.name needs at least 1");
    profile_registry_free(r);
}

static void test_slicing_through_resolve(void **state)
{
    (void)state;
    /* result sliced by the code of the Observation it points at: the slice's
     * key comes from its target profile, the value from the resolved target */
    profile_registry *r = REG(
        SD_HEAD("obs-a", "Observation",
                CORE "Observation") "{\"id\":\"Observation.code\",\"path\":\"Observation.code\","
                                    "\"patternCodeableConcept\":"
                                    "{\"coding\":[{\"system\":\"urn:c\",\"code\":\"A\"}]}}" SD_TAIL,
        SD_HEAD("dr", "DiagnosticReport",
                CORE "DiagnosticReport") "{\"id\":\"DiagnosticReport.result\",\"path\":"
                                         "\"DiagnosticReport.result\",\"slicing\":{"
                                         "\"discriminator\":[{\"type\":\"value\",\"path\":"
                                         "\"resolve().code\"}],\"rules\":\"open\"}},"
                                         "{\"id\":\"DiagnosticReport.result:a\",\"path\":"
                                         "\"DiagnosticReport.result\",\"sliceName\":\"a\","
                                         "\"min\":1,\"max\":\"1\",\"type\":[{\"code\":"
                                         "\"Reference\",\"targetProfile\":[\"" SD
                                         "obs-a\"]}]}" SD_TAIL);
#define DR(code)                                                                                   \
    "{\"resourceType\":\"DiagnosticReport\",\"contained\":[{\"resourceType\":\"Observation\","     \
    "\"id\":"                                                                                      \
    "\"o1\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"urn:c\",\"code\":\"" code     \
    "\"}]}}],"                                                                                     \
    "\"status\":\"final\",\"code\":{\"text\":\"x\"},\"result\":[{\"reference\":\"#o1\"}]}"
    issues is = run(r, SD "dr", DR("A"));
    assert_int_equal(is.n, 0);
    is = run(r, SD "dr", DR("B"));
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "DiagnosticReport.result",
           "slice 'a' of DiagnosticReport.result needs at least 1 item, found 0");
#undef DR
    profile_registry_free(r);
}

static void test_snapshot_from_differential(void **state)
{
    (void)state;
    /* base (differential only) → derived (differential only): the derived profile's
     * generated snapshot has the base's rules, its own, and its overrides */
    profile_registry *r = REG(
        SD_HEAD("derived", "Patient",
                SD "base") "{\"id\":\"Patient.gender\",\"path\":\"Patient.gender\",\"min\":1},"
                           "{\"id\":\"Patient.name\",\"path\":\"Patient.name\",\"max\":\"1\"},"
                           "{\"id\":\"Patient.identifier:a.value\",\"path\":\"Patient.identifier."
                           "value\",\"min\":1}" SD_TAIL,
        SD_HEAD(
            "base", "Patient",
            CORE
            "Patient") "{\"id\":\"Patient.identifier\",\"path\":\"Patient.identifier\",\"min\":1,"
                       "\"slicing\":{"
                       "\"discriminator\":[{\"type\":\"value\",\"path\":\"system\"}],\"rules\":"
                       "\"open\"}},"
                       "{\"id\":\"Patient.identifier:a\",\"path\":\"Patient.identifier\","
                       "\"sliceName\":\"a\",\"max\":\"1\"},"
                       "{\"id\":\"Patient.identifier:a.system\",\"path\":\"Patient.identifier."
                       "system\",\"fixedUri\":\"urn:a\"},"
                       "{\"id\":\"Patient.name\",\"path\":\"Patient.name\",\"max\":\"2\"}" SD_TAIL);
    issues is = run(r, SD "derived",
                    "{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"a\"},{\"text\":\"b\"}]}");
    assert_int_equal(is.n, 3);
    expect(&is, VALIDATE_ERROR, "Patient.identifier", "minimum required = 1"); /* inherited */
    expect(&is, VALIDATE_ERROR, "Patient.gender", "minimum required = 1");     /* own */
    expect(&is, VALIDATE_ERROR, "Patient.name", "maximum allowed = 1");        /* overridden */
    is = run(r, SD "derived",
             "{\"resourceType\":\"Patient\",\"gender\":\"male\",\"identifier\":[{\"system\":\"urn:"
             "a\"}]}");
    assert_int_equal(is.n, 1); /* a child of the base's slice, constrained by the derived one */
    expect(&is, VALIDATE_ERROR, "Patient.identifier[0].value", "Patient.identifier:a.value");
    /* the base itself knows nothing of gender */
    is = run(r, SD "base", "{\"resourceType\":\"Patient\",\"identifier\":[{\"value\":\"1\"}]}");
    assert_int_equal(is.n, 0);
    profile_registry_free(r);
}

static void test_differential_without_ids(void **state)
{
    (void)state;
    /* hand-written: no element ids; a slice's children follow it */
    profile_registry *r = REG(SD_HEAD(
        "noid", "Patient",
        CORE "Patient") "{\"path\":\"Patient.identifier\",\"slicing\":{\"discriminator\":[{"
                        "\"type\":\"value\","
                        "\"path\":\"system\"}],\"rules\":\"open\"}},"
                        "{\"path\":\"Patient.identifier\",\"sliceName\":\"a\",\"min\":1},"
                        "{\"path\":\"Patient.identifier.system\",\"fixedUri\":\"urn:a\"},"
                        "{\"path\":\"Patient.identifier.value\",\"min\":1},"
                        "{\"path\":\"Patient.identifier\",\"sliceName\":\"b\",\"max\":\"1\"},"
                        "{\"path\":\"Patient.identifier.system\",\"fixedUri\":\"urn:b\"},"
                        "{\"path\":\"Patient.name\",\"min\":1}" SD_TAIL);
    issues is =
        run(r, SD "noid", PAT_IDS("{\"system\":\"urn:a\"}," ID("urn:b", "1") "," ID("urn:b", "2")));
    assert_int_equal(is.n, 3);
    expect(&is, VALIDATE_ERROR, "Patient.identifier[0].value",
           "Patient.identifier:a.value: minimum required = 1");
    expect(&is, VALIDATE_ERROR, "Patient.identifier",
           "slice 'b' of Patient.identifier allows at most 1 item, found 2");
    expect(&is, VALIDATE_ERROR, "Patient.name", "minimum required = 1");
    profile_registry_free(r);
}

static void test_constraints_and_must_support(void **state)
{
    (void)state;
    profile_registry *r =
        REG(SD_HEAD("inv", "Patient",
                    CORE "Patient") "{\"id\":\"Patient\",\"path\":\"Patient\",\"constraint\":[{"
                                    "\"key\":\"t-1\",\"severity\":"
                                    "\"error\",\"human\":\"needs a name or an "
                                    "identifier\",\"expression\":\"name.exists() or "
                                    "identifier.exists()\"},{\"key\":\"t-bad\",\"severity\":"
                                    "\"error\",\"human\":\"h\","
                                    "\"expression\":\"name.where(\"}]},"
                                    "{\"id\":\"Patient.address\",\"path\":\"Patient.address\","
                                    "\"mustSupport\":true,\"constraint\":[{"
                                    "\"key\":\"t-2\",\"severity\":\"warning\",\"human\":\"postal "
                                    "code NNN-NNNN\",\"expression\":"
                                    "\"postalCode.matches('^[0-9]{3}-[0-9]{4}$')\"}]}" SD_TAIL);
    issues is = run(r, SD "inv",
                    "{\"resourceType\":\"Patient\",\"address\":[{\"postalCode\":\"123-4567\"},"
                    "{\"postalCode\":\"1234567\"}]}");
    assert_int_equal(is.n, 3);
    expect(&is, VALIDATE_ERROR, "Patient", "t-1: needs a name or an identifier");
    expect(&is, VALIDATE_WARNING, "Patient.address[1]", "t-2: postal code NNN-NNNN");
    expect(&is, VALIDATE_INFORMATION, "Patient", "constraint t-bad");
    assert_string_equal(is.it[0].code, "invariant");
    /* must-support is not enforced: an empty patient with a name gets only t-bad */
    is = run(r, SD "inv", "{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"a\"}]}");
    assert_int_equal(is.n, 1);
    profile_registry_free(r);
}

static void test_wrong_resource_type_and_lookup(void **state)
{
    (void)state;
    profile_registry *r =
        REG("{\"resourceType\":\"StructureDefinition\",\"url\":\"" SD
            "v\",\"version\":\"2.0\",\"name\":\"v\","
            "\"status\":\"active\",\"kind\":\"resource\",\"abstract\":false,\"type\":\"Patient\","
            "\"baseDefinition\":\"" CORE
            "Patient\",\"derivation\":\"constraint\",\"differential\":{\"element\":"
            "[{\"id\":\"Patient\",\"path\":\"Patient\"}]}}",
            "{\"resourceType\":\"Patient\",\"id\":\"not-conformance\"}");
    assert_non_null(profile_registry_find(r, SD "v"));
    assert_non_null(profile_registry_find(r, SD "v|2.0"));
    assert_null(profile_registry_find(r, SD "v|1.0"));
    assert_null(profile_registry_find(r, SD "w"));
    assert_string_equal(profile_type(profile_registry_find(r, SD "v")), "Patient");
    issues is = run(r, SD "v", "{\"resourceType\":\"Group\",\"type\":\"person\",\"actual\":true}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Group", "profile " SD "v constrains Patient");
    profile_registry_stats s;
    profile_registry_stats_get(r, &s);
    assert_int_equal(s.profiles, 1);
    assert_int_equal(s.skipped, 1);
    /* the hook of validate.h */
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root = NULL;
    const char *pj = "{\"resourceType\":\"Patient\"}";
    assert_int_equal(fhir_json_parse(a, pj, strlen(pj), NULL, &root, NULL), TSG_OK);
    assert_int_equal(profile_registry_validate(r, root, SD "nope", on_issue, &is), TSG_ENOTSUP);
    assert_int_equal(profile_registry_validate(r, root, SD "v", on_issue, &is), TSG_OK);
    tsg_arena_free(a);
    /* per-type configuration */
    tsg_error err;
    assert_int_equal(profile_registry_set_type_profile(r, "Patient", SD "v", &err), TSG_OK);
    assert_int_equal(profile_registry_set_type_profile(r, "Nonsense", SD "v", &err), TSG_EINVAL);
    const char *const *urls;
    assert_int_equal(profile_registry_type_profiles(r, "Patient", &urls), 1);
    assert_string_equal(urls[0], SD "v");
    assert_int_equal(profile_registry_type_profiles(r, "Group", &urls), 0);
    /* compiled: no more loading */
    assert_int_equal(profile_registry_add_json(r, pj, strlen(pj), "late", &err), TSG_EINVAL);
    profile_registry_free(r);
}

static void test_bad_definitions(void **state)
{
    (void)state;
    profile_registry *r = profile_registry_new();
    tsg_error err;
    const char *bad = "{\"resourceType\":";
    assert_int_equal(profile_registry_add_json(r, bad, strlen(bad), "bad.json", &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "bad.json"));
    const char *dup = "{\"a\":1,\"a\":2}";
    assert_int_equal(profile_registry_add_json(r, dup, strlen(dup), "dup.json", &err), TSG_EINVAL);
    const char *nobase = SD_HEAD("orphan", "Patient",
                                 SD "missing") "{\"id\":\"Patient\",\"path\":\"Patient\"}" SD_TAIL;
    const char *noslices = SD_HEAD(
        "noslices", "Patient",
        CORE
        "Patient") "{\"id\":\"Patient.name\",\"path\":\"Patient.name\",\"slicing\":{"
                   "\"discriminator\":"
                   "[{\"type\":\"value\",\"path\":\"given.first()\"}],\"rules\":\"open\"}}" SD_TAIL;
    assert_int_equal(profile_registry_add_json(r, noslices, strlen(noslices), "n", &err), TSG_OK);
    const char *badpath = SD_HEAD(
        "badpath", "Patient",
        CORE "Patient") "{\"id\":\"Patient.nonsense\",\"path\":\"Patient.nonsense\",\"min\":1},"
                        "{\"id\":\"Patient.gender\",\"path\":\"Patient.gender\",\"min\":1}" SD_TAIL;
    assert_int_equal(profile_registry_add_json(r, nobase, strlen(nobase), "o", &err), TSG_OK);
    assert_int_equal(profile_registry_add_json(r, badpath, strlen(badpath), "b", &err), TSG_OK);
    issues load = {0};
    assert_int_equal(profile_registry_compile(r, on_issue, &load, &err), TSG_OK);
    dump(&load);
    expect(&load, VALIDATE_ERROR, SD "orphan", "base definition " SD "missing is not loaded");
    expect(&load, VALIDATE_WARNING, SD "badpath#Patient.nonsense",
           "no element 'nonsense' in Patient");
    assert_null(profile_registry_find(r, SD "orphan"));
    /* the rest of the bad definition still works */
    issues is = run(r, SD "badpath", "{\"resourceType\":\"Patient\"}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.gender", "minimum required = 1");
    profile_registry_free(r);
}

static void test_bundle_of_definitions(void **state)
{
    (void)state;
    /* the R4 distribution ships definitions as Bundles: each entry is loaded */
    profile_registry *r =
        REG("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
            "{\"fullUrl\":\"urn:1\",\"resource\":" VS_MS "},"
            "{\"fullUrl\":\"urn:2\",\"resource\":" EXT_DEF "},"
            "{\"fullUrl\":\"urn:3\",\"resource\":{\"resourceType\":\"Patient\"}},"
            "{\"fullUrl\":\"urn:4\"}]}",
            SD_HEAD("b", "Patient",
                    CORE "Patient") "{\"id\":\"Patient\",\"path\":\"Patient\"}" SD_TAIL);
    profile_registry_stats s;
    profile_registry_stats_get(r, &s);
    assert_int_equal(s.structure_definitions, 2);
    assert_int_equal(s.value_sets, 1);
    assert_int_equal(s.extensions, 1);
    assert_int_equal(s.skipped, 1);
    issues is = run(r, SD "b",
                    "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"" SD
                    "ext\",\"valueCode\":\"Z\"}]}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.extension[0].valueCode", "'Z' is not in value set");
    profile_registry_free(r);
}

/* ------------------------------------------------------------------------
 * The region's profiles
 * ------------------------------------------------------------------------ */

static profile_registry *region(void)
{
    profile_registry *r = profile_registry_new();
    tsg_error err;
    tsg_rc rc = profile_registry_load(r, TSUNAGU_FIXTURES "/../profiles", &err);
    if (rc != TSG_OK) fprintf(stderr, "%s\n", err.message);
    assert_int_equal(rc, TSG_OK);
    issues load = {0};
    assert_int_equal(profile_registry_compile(r, on_issue, &load, &err), TSG_OK);
    dump(&load);
    assert_int_equal(load.n, 0);
    return r;
}

#define REPR "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
#define NAME(code, text)                                                                           \
    "{\"extension\":[{\"url\":\"" REPR "\",\"valueCode\":\"" code "\"}],\"text\":\"" text "\"}"

static void test_region_patient(void **state)
{
    (void)state;
    profile_registry *r = region();
    issues is = run(r, REGP "tsunagu-patient",
                    "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:oid:1.2.392."
                    "100495.20.3.51.11312345670\","
                    "\"value\":\"1\"}],\"name\":[" NAME("IDE", "山田 太郎") "," NAME(
                        "SYL", "ヤマダ タロウ") "],"
                                                "\"gender\":\"male\",\"birthDate\":\"1930-01-02\","
                                                "\"address\":[{\"postalCode\":\"099-9213\","
                                                "\"state\":\"北海道\",\"country\":\"JP\"}]}");
    assert_int_equal(is.n, 0);
    is = run(r, REGP "tsunagu-patient",
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:oid:1.2.392.100495."
             "20.3.51.1131\","
             "\"value\":\"1\"},{\"system\":\"https://tsunagu.example.jp/fhir/IdSystem/"
             "care-insured-number\","
             "\"value\":\"12345\"}],\"name\":[" NAME("SYL", "ヤマダ タロウ") "," NAME(
                 "SYL", "ヤマダ") "],"
                                  "\"gender\":\"male\",\"birthDate\":\"1930-01-02\",\"address\":[{"
                                  "\"postalCode\":\"0999213\","
                                  "\"district\":\"x\",\"country\":\"US\"}]}");
    expect(&is, VALIDATE_ERROR, "Patient", "tsg-pat-1");
    expect(&is, VALIDATE_ERROR, "Patient.identifier[1]", "tsg-pat-2");
    expect(&is, VALIDATE_ERROR, "Patient.name",
           "slice 'kanji' of Patient.name needs at least 1 item, found 0");
    expect(&is, VALIDATE_ERROR, "Patient.name",
           "slice 'kana' of Patient.name allows at most 1 item, found 2");
    expect(&is, VALIDATE_ERROR, "Patient.address[0]", "tsg-addr-1");
    expect(&is, VALIDATE_ERROR, "Patient.address[0]", "tsg-addr-2");
    expect(&is, VALIDATE_ERROR, "Patient.address[0].district", "maximum allowed = 0");
    assert_int_equal(is.n, 7);
    /* the kana name in hiragana or half-width kana: a warning */
    is =
        run(r, REGP "tsunagu-patient",
            "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:x\",\"value\":\"1\"}],"
            "\"name\":[" NAME("IDE",
                              "山田 太郎") ",{\"extension\":[{\"url\":\"" REPR "\",\"valueCode\":"
                                           "\"SYL\"}],\"text\":\"やまだ "
                                           "ﾀﾛｳ\",\"family\":\"やまだ\"}],\"gender\":\"male\","
                                           "\"birthDate\":\"1930\"}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_WARNING, "Patient.name[1]", "tsg-name-1");
    profile_registry_free(r);
}

static void test_region_care_team_and_post(void **state)
{
    (void)state;
    profile_registry *r = region();
    issues is = run(
        r, REGP "tsunagu-careteam",
        "{\"resourceType\":\"CareTeam\",\"status\":\"active\",\"name\":\"t\",\"category\":[{"
        "\"coding\":[{"
        "\"system\":\"http://"
        "loinc.org\",\"code\":\"LA27976-2\"}]}],\"subject\":{\"reference\":\"Group/1\"},"
        "\"period\":{\"start\":\"2026-10-01\"},\"participant\":[{\"role\":[{\"coding\":[{"
        "\"system\":"
        "\"https://tsunagu.example.jp/fhir/CodeSystem/care-team-role\",\"code\":\"astrologer\"}]}],"
        "\"member\":{\"reference\":\"CareTeam/2\"}},{\"member\":{\"reference\":\"Organization/"
        "3\"}}]}");
    expect(&is, VALIDATE_ERROR, "CareTeam.category",
           "slice 'longitudinal' of CareTeam.category needs at least 1");
    expect(&is, VALIDATE_ERROR, "CareTeam.subject", "target type Group is not allowed");
    expect(&is, VALIDATE_WARNING, "CareTeam.participant[0].role[0]",
           "'https://tsunagu.example.jp/fhir/CodeSystem/care-team-role#astrologer' is not in value "
           "set");
    expect(&is, VALIDATE_ERROR, "CareTeam.participant[0].member",
           "target type CareTeam is not allowed");
    expect(&is, VALIDATE_ERROR, "CareTeam.participant[1].role", "minimum required = 1");
    assert_int_equal(is.n, 5);
    is = run(r, REGP "tsunagu-team-post",
             "{\"resourceType\":\"Communication\",\"extension\":[{\"url\":\"" REGP
             "tsunagu-post-urgency\","
             "\"valueCode\":\"urgent\"}],\"status\":\"completed\",\"subject\":{\"reference\":"
             "\"Patient/p-001\"},"
             "\"sent\":\"2026-11-01T10:00:00+09:00\",\"recipient\":[{\"reference\":\"CareTeam/"
             "ct-p-001\"}],"
             "\"sender\":{\"reference\":\"PractitionerRole/"
             "role-003\"},\"payload\":[{\"contentString\":\"本日訪問\"}]}");
    assert_int_equal(is.n, 0);
    is = run(r, REGP "tsunagu-team-post",
             "{\"resourceType\":\"Communication\",\"extension\":[{\"url\":\"" REGP
             "tsunagu-post-urgency\","
             "\"valueCode\":\"someday\"}],\"status\":\"completed\",\"subject\":{\"reference\":"
             "\"Patient/p-001\"},"
             "\"inResponseTo\":[{\"reference\":\"Observation/1\"}],"
             "\"recipient\":[{\"reference\":\"CareTeam/"
             "ct-p-001\"}],\"payload\":[{\"contentString\":\"x\"}]}");
    expect(&is, VALIDATE_ERROR, "Communication.extension[0].valueCode",
           "'someday' is not in value set");
    /* inResponseTo: Reference(tsunagu-team-post) is a Communication, as in the base:
     * an Observation there is the base validator's error, not the profile's */
    expect(&is, VALIDATE_ERROR, "Communication.sent", "minimum required = 1");
    expect(&is, VALIDATE_ERROR, "Communication.sender", "minimum required = 1");
    assert_int_equal(is.n, 3);
    /* the urgency extension's context is Communication: not a Patient */
    is = run(r, REGP "tsunagu-patient",
             "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"" REGP
             "tsunagu-post-urgency\","
             "\"valueCode\":\"urgent\"}],\"identifier\":[{\"system\":\"urn:x\",\"value\":\"1\"}],"
             "\"name\":[" NAME("IDE", "山田 太郎") "],\"gender\":\"male\",\"birthDate\":\"1930\"}");
    assert_int_equal(is.n, 1);
    expect(&is, VALIDATE_ERROR, "Patient.extension[0]",
           "extension " REGP "tsunagu-post-urgency is not allowed on a Patient here (its contexts: "
           "Communication)");
    profile_registry_free(r);
}

static void test_region_vitals_and_note(void **state)
{
    (void)state;
    profile_registry *r = region();
    const char *ok =
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"category\":[{\"coding\":[{"
        "\"system\":\"http://terminology.hl7.org/CodeSystem/"
        "observation-category\",\"code\":\"vital-signs\"}]}],"
        "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"9279-1\"},{\"system\":"
        "\"http://medis.or.jp/CodeSystem/"
        "master-nursingObservationKeyCode\",\"code\":\"31001369\"}]},"
        "\"subject\":{\"reference\":\"Patient/"
        "p-001\"},\"effectiveDateTime\":\"2026-11-01T10:00:00+09:00\","
        "\"valueQuantity\":{\"value\":18,\"unit\":\"回\"}}";
    issues is = run(r, REGP "tsunagu-vitalsigns", ok);
    assert_int_equal(is.n, 0);
    is = run(r, REGP "tsunagu-vitalsigns",
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"category\":[{\"coding\":[{"
             "\"system\":\"http://terminology.hl7.org/CodeSystem/"
             "observation-category\",\"code\":\"vital-signs\"}]}],"
             "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"1234-5\"}]},"
             "\"subject\":{\"reference\":\"Patient/p-001\"},\"effectiveDateTime\":\"2026-11-01\","
             "\"valueQuantity\":{\"value\":18}}");
    expect(&is, VALIDATE_ERROR, "Observation.code.coding[0]",
           "'http://loinc.org#1234-5' is not in value set");
    expect(&is, VALIDATE_ERROR, "Observation.valueQuantity.unit", "minimum required = 1");
    assert_int_equal(is.n, 2);
    is = run(
        r, REGP "tsunagu-visit-note",
        "{\"resourceType\":\"Composition\",\"status\":\"final\",\"type\":{\"coding\":[{\"system\":"
        "\"https://tsunagu.example.jp/fhir/CodeSystem/document-type\",\"code\":\"visit-note\"}]},"
        "\"subject\":{\"reference\":\"Patient/"
        "p-001\"},\"date\":\"2026-11-01\",\"author\":[{\"reference\":"
        "\"PractitionerRole/"
        "role-003\"}],\"title\":\"訪問記録\",\"section\":[{\"title\":\"所見\",\"text\":{"
        "\"status\":\"generated\",\"div\":\"<div "
        "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">ok</div>\"}},"
        "{\"title\":\"バイタル\",\"code\":{\"coding\":[{\"system\":\"http://"
        "loinc.org\",\"code\":\"8716-3\"}]},"
        "\"entry\":[{\"reference\":\"Observation/1\"}]}]}");
    assert_int_equal(is.n, 0);
    is = run(
        r, REGP "tsunagu-visit-note",
        "{\"resourceType\":\"Composition\",\"status\":\"final\",\"type\":{\"coding\":[{\"system\":"
        "\"http://loinc.org\",\"code\":\"11488-4\"}]},"
        "\"subject\":{\"reference\":\"Patient/"
        "p-001\"},\"date\":\"2026-11-01\",\"author\":[{\"reference\":"
        "\"Device/"
        "d\"}],\"title\":\"x\",\"section\":[{\"title\":\"バイタル\",\"code\":{\"coding\":[{"
        "\"system\":"
        "\"http://loinc.org\",\"code\":\"8716-3\"}]},\"entry\":[{\"reference\":\"Condition/1\"}]},"
        "{\"code\":{\"text\":\"empty\"}}]}");
    expect(&is, VALIDATE_ERROR, "Composition.type", "must match the pattern");
    expect(&is, VALIDATE_ERROR, "Composition.author[0]", "target type Device is not allowed");
    expect(&is, VALIDATE_ERROR, "Composition.section[0].entry[0]",
           "target type Condition is not allowed");
    expect(&is, VALIDATE_ERROR, "Composition.section[1].title", "minimum required = 1");
    expect(&is, VALIDATE_ERROR, "Composition", "tsg-note-1");
    assert_int_equal(is.n, 5);
    profile_registry_free(r);
}

/* ------------------------------------------------------------------------
 * Packages
 * ------------------------------------------------------------------------ */

/* Appends one ustar entry to buf. */
static size_t tar_add(unsigned char *buf, size_t off, const char *name, const char *data,
                      size_t len, char type)
{
    unsigned char *h = buf + off;
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011zo", len);
    h[156] = (unsigned char)type;
    memcpy(h + 257,
           "ustar\0"
           "00",
           8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    memcpy(buf + off + 512, data, len);
    return off + 512 + ((len + 511) / 512) * 512;
}

static size_t gzip(const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    s.next_in = (unsigned char *)in;
    s.avail_in = (uInt)n;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
    size_t w = cap - s.avail_out;
    deflateEnd(&s);
    return w;
}

typedef struct entries {
    int n;
    char names[8][128];
} entries;

static tsg_rc on_entry(void *ctx, const char *path, const char *data, size_t len, tsg_error *err)
{
    (void)data, (void)len, (void)err;
    entries *e = ctx;
    if (e->n < 8) snprintf(e->names[e->n++], 128, "%s", path);
    return TSG_OK;
}

static void test_package_tgz(void **state)
{
    (void)state;
    static unsigned char tar[16384], gz[16384];
    const char *sd = SD_HEAD(
        "tgz", "Patient",
        CORE "Patient") "{\"id\":\"Patient.gender\",\"path\":\"Patient.gender\",\"min\":1}" SD_TAIL;
    size_t off = tar_add(tar, 0, "package/package.json", "{\"name\":\"t\"}", 12, '0');
    off = tar_add(tar, off, "package/", "", 0, '5');
    off = tar_add(tar, off, "package/StructureDefinition-tgz.json", sd, strlen(sd), '0');
    off = tar_add(tar, off, "package/example/Patient-x.json", "{\"resourceType\":\"Patient\"}", 26,
                  '0');
    memset(tar + off, 0, 1024);
    off += 1024;
    size_t gl = gzip(tar, off, gz, sizeof gz);
    entries e = {0};
    tsg_error err;
    assert_int_equal(package_read_tgz(gz, gl, on_entry, &e, &err), TSG_OK);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.names[1], "package/StructureDefinition-tgz.json");
    /* loaded from a file */
    char path[] = "/tmp/test_profile_XXXXXX.tgz";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    fwrite(gz, 1, gl, f);
    fclose(f);
    profile_registry *r = profile_registry_new();
    assert_int_equal(profile_registry_load(r, path, &err), TSG_OK);
    issues load = {0};
    assert_int_equal(profile_registry_compile(r, on_issue, &load, &err), TSG_OK);
    issues is = run(r, SD "tgz", "{\"resourceType\":\"Patient\"}");
    expect(&is, VALIDATE_ERROR, "Patient.gender", "minimum required = 1");
    profile_registry_stats s;
    profile_registry_stats_get(r, &s);
    assert_int_equal(s.structure_definitions, 1); /* package/example/ is not loaded */
    profile_registry_free(r);
    /* truncated gzip */
    r = profile_registry_new();
    f = fopen(path, "wb");
    fwrite(gz, 1, gl / 2, f);
    fclose(f);
    assert_int_equal(profile_registry_load(r, path, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "truncated gzip"));
    assert_non_null(strstr(err.message, path));
    profile_registry_free(r);
    remove(path);
    /* unsafe paths */
    off = tar_add(tar, 0, "package/../../etc/x.json", "{}", 2, '0');
    e.n = 0;
    assert_int_equal(package_read_tar(tar, off, on_entry, &e, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "unsafe path"));
    off = tar_add(tar, 0, "/abs.json", "{}", 2, '0');
    assert_int_equal(package_read_tar(tar, off, on_entry, &e, &err), TSG_EINVAL);
    /* bad checksum */
    off = tar_add(tar, 0, "package/a.json", "{}", 2, '0');
    tar[10] ^= 1;
    assert_int_equal(package_read_tar(tar, off, on_entry, &e, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "checksum"));
    /* an entry larger than what remains */
    static char big[1000];
    memset(big, ' ', sizeof big);
    off = tar_add(tar, 0, "package/a.json", big, sizeof big, '0');
    assert_int_equal(package_read_tar(tar, 700, on_entry, &e, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "truncated tar"));
    /* an entry beyond PACKAGE_MAX_ENTRY_BYTES (the header alone says so) */
    off = tar_add(tar, 0, "package/a.json", "{}", 2, '0');
    snprintf((char *)tar + 124, 12, "%011o", 100u << 20);
    memset(tar + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += tar[i];
    snprintf((char *)tar + 148, 8, "%06o", sum);
    assert_int_equal(package_read_tar(tar, off, on_entry, &e, &err), TSG_ELIMIT);
    assert_non_null(strstr(err.message, "PACKAGE_MAX_ENTRY_BYTES"));
    /* not gzip at all */
    assert_int_equal(package_read_tgz("hello, this is not gzip", 23, on_entry, &e, &err),
                     TSG_EINVAL);
}

static void test_package_folders(void **state)
{
    (void)state;
    profile_registry *r = profile_registry_new();
    tsg_error err;
    assert_int_equal(profile_registry_load(r, "/nonexistent/folder", &err), TSG_EIO);
    assert_int_equal(profile_registry_load(r, TSUNAGU_FIXTURES "/../profiles/region", &err),
                     TSG_OK);
    /* the same resources again are duplicates, not errors */
    assert_int_equal(profile_registry_load(r, TSUNAGU_FIXTURES "/../profiles", &err), TSG_OK);
    profile_registry_stats s;
    profile_registry_stats_get(r, &s);
    assert_int_equal(s.duplicates, s.structure_definitions + s.value_sets + s.code_systems);
    assert_int_equal(profile_registry_compile(r, NULL, NULL, &err), TSG_OK);
    assert_non_null(profile_registry_find(r, REGP "tsunagu-patient|0.1.0"));
    profile_registry_free(r);
    /* one-call start-up */
    const char *paths[] = {TSUNAGU_FIXTURES "/../profiles", "/nonexistent"};
    r = profile_registry_open(paths, 1, NULL, NULL, &err);
    assert_non_null(r);
    assert_non_null(profile_registry_find(r, REGP "tsunagu-careteam"));
    profile_registry_free(r);
    assert_null(profile_registry_open(paths, 2, NULL, NULL, &err));
    assert_non_null(strstr(err.message, "/nonexistent"));
}

/* The seam of validate.h: the base validator calls the registry for each
 * meta.profile and each requested profile. */
static void test_validate_hook(void **state)
{
    (void)state;
    profile_registry *r = region();
    const char *json =
        "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":[\"" REGP "tsunagu-patient\","
        "\"http://example.org/"
        "not-loaded\"]},\"identifier\":[{\"system\":\"urn:x\",\"value\":\"1\"}],"
        "\"name\":[" NAME("IDE", "山田 太郎") "],\"birthDate\":\"1930\"}";
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root = NULL;
    assert_int_equal(fhir_json_parse(a, json, strlen(json), NULL, &root, NULL), TSG_OK);
    validate_result res;
    validate_result_init(&res, a);
    const char *extra[] = {REGP "tsunagu-careteam"};
    validate_options opt;
    memset(&opt, 0, sizeof opt);
    opt.meta_profiles = 1;
    opt.profiles = extra;
    opt.nprofiles = 1;
    opt.profile_validate = profile_registry_validate;
    opt.profile_ctx = r;
    assert_int_equal(validate_resource(root, &opt, &res), TSG_OK);
    int gender = 0, not_loaded = 0, wrong_type = 0;
    for (size_t i = 0; i < res.count; i++) {
        const validate_issue *it = &res.items[i];
        fprintf(stderr, "  %d %s %s: %s\n", it->severity, it->code, it->expression, it->message);
        if (it->severity == VALIDATE_ERROR && !strcmp(it->expression, "Patient.gender")) gender++;
        if (it->severity == VALIDATE_WARNING &&
            strstr(it->message, "http://example.org/not-loaded"))
            not_loaded++;
        if (it->severity == VALIDATE_ERROR && strstr(it->message, "constrains CareTeam"))
            wrong_type++;
    }
    assert_int_equal(gender, 1);     /* the region profile, through meta.profile */
    assert_int_equal(not_loaded, 1); /* a meta.profile nobody loaded: a warning */
    assert_int_equal(wrong_type, 1); /* a requested profile of another type */
    assert_true(validate_result_failed(&res));
    tsg_arena_free(a);
    profile_registry_free(r);
}

/* Compiled profiles are shared read-only: four threads validate at once. */
typedef struct thread_arg {
    const profile *p;
    const fhir_node *root;
    size_t issues;
} thread_arg;

static void count_issue(void *ctx, validate_severity sev, const char *code, const char *expr,
                        const char *msg)
{
    (void)sev, (void)code, (void)expr, (void)msg;
    ((thread_arg *)ctx)->issues++;
}

static void *thread_main(void *varg)
{
    thread_arg *a = varg;
    for (int i = 0; i < 200; i++) profile_validate(a->p, a->root, count_issue, a);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    profile_registry *r = region();
    const char *json =
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:x\",\"value\":\"1\"}],"
        "\"name\":[" NAME("SYL", "ヤマダ") "],\"gender\":\"male\",\"birthDate\":\"1930\","
                                           "\"address\":[{\"postalCode\":\"1\"}]}";
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root = NULL;
    assert_int_equal(fhir_json_parse(a, json, strlen(json), NULL, &root, NULL), TSG_OK);
    pthread_t t[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){profile_registry_find(r, REGP "tsunagu-patient"), root, 0};
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].issues, 200 * 2); /* kanji slice missing, postal code */
    }
    tsg_arena_free(a);
    profile_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cardinality),
        cmocka_unit_test(test_fixed_and_pattern),
        cmocka_unit_test(test_binding),
        cmocka_unit_test(test_types_and_targets),
        cmocka_unit_test(test_type_profile),
        cmocka_unit_test(test_extension_by_url),
        cmocka_unit_test(test_slicing_value_and_rules),
        cmocka_unit_test(test_slicing_pattern),
        cmocka_unit_test(test_slicing_type_and_exists),
        cmocka_unit_test(test_slicing_profile),
        cmocka_unit_test(test_slicing_through_resolve),
        cmocka_unit_test(test_snapshot_from_differential),
        cmocka_unit_test(test_differential_without_ids),
        cmocka_unit_test(test_constraints_and_must_support),
        cmocka_unit_test(test_wrong_resource_type_and_lookup),
        cmocka_unit_test(test_bad_definitions),
        cmocka_unit_test(test_bundle_of_definitions),
        cmocka_unit_test(test_region_patient),
        cmocka_unit_test(test_region_care_team_and_post),
        cmocka_unit_test(test_region_vitals_and_note),
        cmocka_unit_test(test_package_tgz),
        cmocka_unit_test(test_package_folders),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_validate_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
