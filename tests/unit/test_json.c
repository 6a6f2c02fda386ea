/*
 * test_json.c — the FHIR JSON reader and writer: round trips, exact decimals,
 * primitive extensions and null alignment, resources inside resources, and one
 * negative test per error class with its location.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* Parses json; on success writes it back compactly and returns the text (caller frees). */
static char *roundtrip(const char *json, tsg_error *err, tsg_rc *rc_out)
{
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root = NULL;
    tsg_rc rc = fhir_json_parse(a, json, strlen(json), NULL, &root, err);
    *rc_out = rc;
    char *out = NULL;
    if (rc == TSG_OK) {
        assert_non_null(root);
        tsg_buf b;
        tsg_buf_init(&b, 0);
        assert_int_equal(fhir_json_write(root, &b, 0), TSG_OK);
        out = tsg_buf_take(&b, NULL);
    } else {
        assert_null(root);
    }
    tsg_arena_free(a);
    return out;
}

/* The input must come back byte for byte (it is written in canonical form). */
static void expect_same(const char *json)
{
    tsg_error err;
    tsg_rc rc;
    char *out = roundtrip(json, &err, &rc);
    if (rc != TSG_OK) fail_msg("parse failed: %s at %s", err.message, err.location);
    assert_string_equal(out, json);
    free(out);
}

static void expect_output(const char *json, const char *want)
{
    tsg_error err;
    tsg_rc rc;
    char *out = roundtrip(json, &err, &rc);
    if (rc != TSG_OK) fail_msg("parse failed: %s at %s", err.message, err.location);
    assert_string_equal(out, want);
    free(out);
}

/* Parsing must fail with rc, at location loc (exact), with msg_part in the message. */
static void expect_error_lim(const char *json, size_t len, const tsg_limits *lim, tsg_rc rc,
                             const char *loc, const char *msg_part)
{
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root = (fhir_node *)1;
    tsg_error err;
    tsg_rc got = fhir_json_parse(a, json, len, lim, &root, &err);
    tsg_arena_free(a);
    if (got != rc) fail_msg("expected rc %d, got %d (%s)", rc, got, err.message);
    assert_null(root);
    assert_int_equal(err.rc, rc);
    if (loc) assert_string_equal(err.location, loc);
    if (msg_part && !strstr(err.message, msg_part))
        fail_msg("message '%s' lacks '%s'", err.message, msg_part);
}

static void expect_error(const char *json, const char *loc, const char *msg_part)
{
    expect_error_lim(json, strlen(json), NULL, TSG_EINVAL, loc, msg_part);
}

/* ------------------------------------------------------------------------ */

static void test_roundtrip_basic(void **state)
{
    (void)state;
    expect_same("{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
                "\"name\":[{\"family\":\"山田\",\"given\":[\"太郎\"]}],"
                "\"gender\":\"male\",\"birthDate\":\"1940-02-03\"}");
    expect_same("{\"resourceType\":\"Parameters\"}");
}

static void test_definition_order(void **state)
{
    (void)state;
    /* properties in any order come out in definition order, resourceType first */
    expect_output("{\"gender\":\"female\",\"id\":\"x\",\"resourceType\":\"Patient\","
                  "\"name\":[{\"given\":[\"A\"],\"family\":\"B\"}]}",
                  "{\"resourceType\":\"Patient\",\"id\":\"x\",\"name\":[{\"family\":\"B\","
                  "\"given\":[\"A\"]}],\"gender\":\"female\"}");
}

static void test_decimal_text_kept(void **state)
{
    (void)state;
    const char *vals[] = {"1.50", "0.010", "1.0e0", "1E-22", "-0.0", "72.3", "1e+5", "100"};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        char buf[256];
        snprintf(buf, sizeof buf,
                 "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                 "\"valueQuantity\":{\"value\":%s,\"unit\":\"kg\"}}",
                 vals[i]);
        expect_same(buf);
    }
}

static void test_integers(void **state)
{
    (void)state;
    expect_same("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":2147483647}");
    expect_same("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":-2147483648}");
    expect_error("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":2147483648}",
                 "Patient.multipleBirthInteger", "32-bit");
    expect_error("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":1.5}",
                 "Patient.multipleBirthInteger", "not an integer");
    expect_error("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":1e3}",
                 "Patient.multipleBirthInteger", "not an integer");
    /* positiveInt must be >= 1 */
    expect_error("{\"resourceType\":\"Observation\",\"valueSampledData\":{\"dimensions\":0}}",
                 "Observation.valueSampledData.dimensions", "positiveInt");
    expect_error("{\"resourceType\":\"Observation\",\"valueSampledData\":{\"dimensions\":-1}}",
                 "Observation.valueSampledData.dimensions", "positiveInt");
}

static void test_primitive_extensions(void **state)
{
    (void)state;
    /* _birthDate alone, and given/_given aligned with nulls */
    expect_same("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null],\"_given\":[null,"
                "{\"extension\":[{\"url\":\"http://example.org/x\",\"valueString\":\"y\"}]}]}],"
                "\"_birthDate\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
                "data-absent-reason\",\"valueCode\":\"unknown\"}]}}");
    expect_same(
        "{\"resourceType\":\"Patient\",\"birthDate\":\"1970\",\"_birthDate\":{\"id\":\"b1\"}}");
    /* the _ companion may come first */
    expect_output(
        "{\"resourceType\":\"Patient\",\"_birthDate\":{\"id\":\"b1\"},\"birthDate\":\"1970\"}",
        "{\"resourceType\":\"Patient\",\"birthDate\":\"1970\",\"_birthDate\":{\"id\":\"b1\"}}");
    /* both arrays given: values and extensions merge item by item */
    expect_same(
        "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",\"B\"],\"_given\":[{\"id\":"
        "\"g0\"},{\"id\":\"g1\"}]}]}");
}

static void test_null_alignment_errors(void **state)
{
    (void)state;
    expect_error("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null]}]}",
                 "Patient.name[0].given[1]", "null");
    expect_error(
        "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null],\"_given\":[null,null]}]}",
        "Patient.name[0].given[1]", "null");
    expect_error("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",\"B\"],\"_given\":[{"
                 "\"id\":\"x\"}]}]}",
                 "Patient.name[0].given[1]", "same length");
    expect_error("{\"resourceType\":\"Patient\",\"birthDate\":null}", "Patient.birthDate", "null");
    expect_error("{\"resourceType\":\"Patient\",\"name\":[null]}", "Patient.name[0]", "null");
    expect_error("{\"resourceType\":\"Patient\",\"_active\":[{\"id\":\"x\"}]}", "Patient.active",
                 "must not be an array");
}

static void test_contained_bundle_parameters(void **state)
{
    (void)state;
    expect_same("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
                "\"id\":\"o1\",\"name\":\"つなぐ診療所\"}],\"managingOrganization\":{\"reference\":"
                "\"#o1\"}}");
    expect_same(
        "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"fullUrl\":"
        "\"urn:uuid:0c3e5a2e-7c9b-4a8e-9d1e-1f2a3b4c5d6e\",\"resource\":{\"resourceType\":"
        "\"Patient\",\"active\":true},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{"
        "\"text\":\"BP\"},\"subject\":{\"reference\":\"urn:uuid:0c3e5a2e-7c9b-4a8e-9d1e-"
        "1f2a3b4c5d6e\"}},\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}");
    expect_same(
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
        "{\"resourceType\":\"Patient\",\"id\":\"a\"}},{\"name\":\"n\",\"valueDecimal\":1.50}]}");
    /* resourceType need not be first inside an entry either */
    expect_output("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":{"
                  "\"id\":\"a\",\"resourceType\":\"Patient\"}}]}",
                  "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":{"
                  "\"resourceType\":\"Patient\",\"id\":\"a\"}}]}");
    /* errors inside a contained resource are located through it */
    expect_error("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":{"
                 "\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",\"\"]}]}}]}",
                 "Bundle.entry[0].resource.name[0].given[1]", "empty");
    expect_error("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":{"
                 "\"resourceType\":\"Nope\"}}]}",
                 "Bundle.entry[0].resource", "unknown resourceType");
}

static void test_narrative_div(void **state)
{
    (void)state;
    const char *div = "<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>a &amp; b</p></div>";
    char in[512], want[512];
    snprintf(want, sizeof want,
             "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\"%s\"}}",
             div);
    expect_same(want);
    /* whitespace around the div is not kept (XML could not carry it either) */
    snprintf(
        in, sizeof in,
        "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\" \\n%s\\n \"}}",
        div);
    expect_output(in, want);
    expect_error(
        "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\"<p>x</p>\"}}",
        "Patient.text.div", "narrative");
    expect_error("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\"<div "
                 "xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>x</div>\"}}",
                 "Patient.text.div", "narrative");
    expect_error("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":\"<div "
                 "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">&nbsp;</div>\"}}",
                 "Patient.text.div", "narrative");
}

static void test_structure_errors(void **state)
{
    (void)state;
    expect_error("{\"resourceType\":\"Patient\",\"foo\":1}", "Patient.foo", "unknown element");
    expect_error("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\"],\"givn\":[\"B\"]}]}",
                 "Patient.name[0].givn", "unknown element");
    expect_error("{\"resourceType\":\"Patient\",\"active\":\"true\"}", "Patient.active",
                 "expected a boolean");
    expect_error("{\"resourceType\":\"Patient\",\"birthDate\":19700101}", "Patient.birthDate",
                 "expected a string");
    expect_error("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                 "\"valueQuantity\":{\"value\":\"1.5\"}}",
                 "Observation.valueQuantity.value", "expected a number");
    expect_error("{\"resourceType\":\"Patient\",\"gender\":\"male\",\"gender\":\"female\"}",
                 "Patient.gender", "duplicate");
    expect_error(
        "{\"resourceType\":\"Patient\",\"deceasedBoolean\":true,\"deceasedDateTime\":\"2020\"}",
        "Patient.deceasedDateTime", "duplicate");
    expect_error("{\"resourceType\":\"Patient\",\"name\":{\"family\":\"A\"}}", "Patient.name",
                 "must be an array");
    expect_error("{\"resourceType\":\"Patient\",\"gender\":[\"male\"]}", "Patient.gender",
                 "must not be an array");
    expect_error("{\"resourceType\":\"Patient\",\"name\":[]}", "Patient.name", "empty array");
    expect_error("{\"resourceType\":\"Patient\",\"name\":[{}]}", "Patient.name[0]", "empty object");
    expect_error("{\"resourceType\":\"Patient\",\"gender\":\"\"}", "Patient.gender", "empty");
    expect_error("{\"resourceType\":\"Patiant\"}", "", "unknown resourceType");
    expect_error("{\"resourceType\":\"Resource\"}", "", "unknown resourceType");
    expect_error("{\"id\":\"x\"}", "", "resourceType");
    expect_error("{\"resourceType\":\"Patient\",\"_name\":[{\"id\":\"x\"}]}", "Patient.name",
                 "only primitive");
    expect_error("[1,2]", "", "JSON object");
    expect_error("", "", "empty input");
    expect_error("{\"resourceType\":\"Patient\"} x", "Patient", "after the resource");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"a\",}", "Patient", "property name");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"a\"", "Patient", "end of input");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"a\nb\"}", "Patient.id",
                 "control character");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"\\u0001\"}", "Patient.id",
                 "control character");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"\\ud800\"}", "Patient.id", "surrogate");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"\\uFFFE\"}", "Patient.id", "not allowed");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"a\xef\xbf\xbf\"}", "Patient.id",
                 "not allowed");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"\\b\"}", "Patient.id",
                 "control character");
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"\\q\"}", "Patient.id", "escape");
    expect_error("{\"resourceType\":\"Patient\",\"active\":tru}", "Patient.active", "boolean");
    expect_error("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":01}",
                 "Patient.multipleBirthInteger", "leading zero");
}

static void test_utf8(void **state)
{
    (void)state;
    expect_error("{\"resourceType\":\"Patient\",\"id\":\"a\xff\"}", "Patient.id", "UTF-8");
    expect_error("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xe5\xb1\"}]}",
                 "Patient.name[0].family", "UTF-8");
    /* overlong encoding of '/' */
    expect_error("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xc0\xaf\"}]}",
                 "Patient.name[0].family", "UTF-8");
    /* escapes decode to UTF-8; a surrogate pair gives one 4-byte character */
    expect_output(
        "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\\u5c71\\u7530 \\ud83d\\ude00 "
        "\\\"q\\\" \\\\ \\/\"}]}",
        "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"山田 \xf0\x9f\x98\x80 "
        "\\\"q\\\" \\\\ /\"}]}");
}

static void test_bom(void **state)
{
    (void)state;
    expect_output("\xEF\xBB\xBF{\"resourceType\":\"Patient\",\"id\":\"a\"}",
                  "{\"resourceType\":\"Patient\",\"id\":\"a\"}");
}

static void test_limits(void **state)
{
    (void)state;
    tsg_limits lim = tsg_limits_default;
    const char *doc = "{\"resourceType\":\"Patient\",\"id\":\"abcdef\",\"name\":[{\"given\":[\"a\","
                      "\"b\",\"c\"]}]}";
    lim.max_body_bytes = 10;
    expect_error_lim(doc, strlen(doc), &lim, TSG_ELIMIT, NULL, "max_body_bytes");
    lim = tsg_limits_default;
    lim.max_string_bytes = 5;
    expect_error_lim(doc, strlen(doc), &lim, TSG_ELIMIT, "Patient.id", "max_string_bytes");
    lim = tsg_limits_default;
    lim.max_array_items = 2;
    expect_error_lim(doc, strlen(doc), &lim, TSG_ELIMIT, "Patient.name[0].given[2]",
                     "max_array_items");
    lim = tsg_limits_default;
    lim.max_depth = 2;
    expect_error_lim(doc, strlen(doc), &lim, TSG_ELIMIT, NULL, "max_depth");

    /* deep nesting within the default limit fails cleanly, never overflows the stack */
    size_t depth = 5000;
    size_t cap = depth * 40 + 100;
    char *deep = malloc(cap);
    size_t n =
        (size_t)snprintf(deep, cap, "{\"resourceType\":\"Questionnaire\",\"status\":\"draft\"");
    for (size_t i = 0; i < depth; i++)
        n += (size_t)snprintf(deep + n, cap - n, ",\"item\":[{\"linkId\":\"x\"");
    for (size_t i = 0; i < depth; i++) n += (size_t)snprintf(deep + n, cap - n, "}]");
    n += (size_t)snprintf(deep + n, cap - n, "}");
    expect_error_lim(deep, n, NULL, TSG_ELIMIT, NULL, "max_depth");
    free(deep);
}

static void test_pretty(void **state)
{
    (void)state;
    const char *in =
        "{\"resourceType\":\"Patient\",\"id\":\"a\",\"name\":[{\"given\":[\"A\",\"B\"],"
        "\"period\":{\"start\":\"2020\"}}],\"managingOrganization\":{\"reference\":"
        "\"Organization/1\"}}";
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root;
    assert_int_equal(fhir_json_parse(a, in, strlen(in), NULL, &root, NULL), TSG_OK);
    tsg_buf b;
    tsg_buf_init(&b, 0);
    assert_int_equal(fhir_json_write(root, &b, FHIR_WRITE_PRETTY), TSG_OK);
    assert_string_equal(b.data,
                        "{\n  \"resourceType\": \"Patient\",\n  \"id\": \"a\",\n  \"name\": [\n"
                        "    {\n      \"given\": [\n        \"A\",\n        \"B\"\n      ],\n"
                        "      \"period\": {\n        \"start\": \"2020\"\n      }\n"
                        "    }\n  ],\n  \"managingOrganization\": {\n"
                        "    \"reference\": \"Organization/1\"\n  }\n}\n");
    /* the pretty form reads back to the same tree */
    fhir_node *again;
    assert_int_equal(fhir_json_parse(a, b.data, b.len, NULL, &again, NULL), TSG_OK);
    tsg_buf c;
    tsg_buf_init(&c, 0);
    assert_int_equal(fhir_json_write(again, &c, 0), TSG_OK);
    assert_string_equal(c.data, in);
    /* an output buffer too small fails visibly */
    tsg_buf small;
    tsg_buf_init(&small, 16);
    assert_int_equal(fhir_json_write(root, &small, 0), TSG_ELIMIT);
    tsg_buf_free(&small);
    tsg_buf_free(&b);
    tsg_buf_free(&c);
    tsg_arena_free(a);
}

static void test_tree_shape(void **state)
{
    (void)state;
    const char *in =
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
        "\"valueQuantity\":{\"value\":36.80,\"unit\":\"Cel\"}}";
    tsg_arena *a = tsg_arena_new(0);
    fhir_node *root;
    assert_int_equal(fhir_json_parse(a, in, strlen(in), NULL, &root, NULL), TSG_OK);
    assert_string_equal(root->type->name, "Observation");
    assert_null(root->elem);
    assert_int_equal(root->nkids, 3);
    const fhir_node *vq = &root->kids[2];
    assert_string_equal(vq->elem->name, "value");
    assert_string_equal(vq->type->name, "Quantity");
    assert_string_equal(vq->kids[0].value, "36.80");
    assert_int_equal(vq->kids[0].value_len, 5);
    char loc[128];
    assert_true(fhir_node_location(root, &vq->kids[0], loc, sizeof loc) > 0);
    assert_string_equal(loc, "Observation.valueQuantity.value");
    tsg_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_basic),
        cmocka_unit_test(test_definition_order),
        cmocka_unit_test(test_decimal_text_kept),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_primitive_extensions),
        cmocka_unit_test(test_null_alignment_errors),
        cmocka_unit_test(test_contained_bundle_parameters),
        cmocka_unit_test(test_narrative_div),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_tree_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
