/*
 * test_fhirpath_eval.c — the FHIRPath evaluator (fp_eval, fhirpath.h): paths
 * over the model and choice types, operators, three-valued logic, a few
 * functions, errors with columns, unsupported functions, and the JSON form
 * `tsunagu fhirpath` prints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <string.h>

#include "fhirpath/fhirpath.h"
#include "model/model.h"
#include "util/util.h"

static const char patient_json[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
    "\"name\":[{\"use\":\"official\",\"family\":\"Chalmers\",\"given\":[\"Peter\",\"James\"]},"
    "{\"use\":\"usual\",\"given\":[\"Jim\"]}],"
    "\"gender\":\"male\",\"birthDate\":\"1974-12-25\",\"deceasedBoolean\":false}";

static const char obs_json[] =
    "{\"resourceType\":\"Observation\",\"status\":\"final\","
    "\"code\":{\"text\":\"weight\"},"
    "\"valueQuantity\":{\"value\":185,\"unit\":\"lbs\",\"system\":\"http://unitsofmeasure.org\","
    "\"code\":\"[lb_av]\"}}";

/* Evaluates expr over the resource in json (NULL: no input) and returns the
 * §6 JSON of the result in a static buffer, or "ERR <rc> <column>: message". */
static const char *ev(const char *json, const char *expr)
{
    static char result[4096];
    tsg_arena *a = tsg_arena_new(0);
    assert_non_null(a);
    fhir_node *root = NULL;
    tsg_error err;
    if (json) assert_int_equal(fhir_json_parse(a, json, strlen(json), NULL, &root, &err), TSG_OK);
    fp_expr *e = NULL;
    tsg_rc rc = fp_compile(expr, strlen(expr), &e, &err);
    fp_collection out;
    if (rc == TSG_OK) rc = fp_eval(e, root, root, NULL, a, &out, &err);
    if (rc != TSG_OK) {
        snprintf(result, sizeof result, "ERR %d %u: %s", (int)rc, err.column, err.message);
    } else {
        tsg_buf b;
        tsg_buf_init(&b, 0);
        fp_collection_write_json(&out, &b);
        snprintf(result, sizeof result, "%.*s", (int)b.len, b.data ? b.data : "");
        tsg_buf_free(&b);
    }
    fp_expr_free(e);
    tsg_arena_free(a);
    return result;
}

#define EXPECT(json, expr, want) assert_string_equal(ev(json, expr), want)

static void test_paths(void **state)
{
    (void)state;
    EXPECT(patient_json, "Patient.name.given",
           "[{\"type\":\"FHIR.string\",\"value\":\"Peter\"},{\"type\":\"FHIR.string\",\"value\":"
           "\"James\"},{\"type\":\"FHIR.string\",\"value\":\"Jim\"}]");
    EXPECT(patient_json, "name.where(use = 'usual').given",
           "[{\"type\":\"FHIR.string\",\"value\":\"Jim\"}]");
    EXPECT(patient_json, "Patient.gender", "[{\"type\":\"FHIR.code\",\"value\":\"male\"}]");
    EXPECT(patient_json, "Observation.status", "[]");
    EXPECT(patient_json, "Patient.name[1].use", "[{\"type\":\"FHIR.code\",\"value\":\"usual\"}]");
    EXPECT(patient_json, "Patient.name.first()",
           "[{\"type\":\"FHIR.HumanName\",\"value\":{\"use\":\"official\",\"family\":"
           "\"Chalmers\",\"given\":[\"Peter\",\"James\"]}}]");
    EXPECT(patient_json, "%resource.id", "[{\"type\":\"FHIR.id\",\"value\":\"p1\"}]");
    EXPECT(NULL, "%ucum", "[{\"type\":\"System.String\",\"value\":\"http://unitsofmeasure.org\"}]");
    EXPECT(NULL, "Patient.name", "[]");
}

static void test_choice_types(void **state)
{
    (void)state;
    EXPECT(obs_json, "Observation.value.value", "[{\"type\":\"FHIR.decimal\",\"value\":\"185\"}]");
    EXPECT(obs_json, "Observation.value.is(Quantity)",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(obs_json, "Observation.value.ofType(string)", "[]");
    EXPECT(obs_json, "Observation.value as Quantity > 180 '[lb_av]'",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(patient_json, "Patient.deceased is boolean",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(patient_json, "conformsTo('http://hl7.org/fhir/StructureDefinition/DomainResource')",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(patient_json, "Patient is FHIR.DomainResource",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
}

static void test_operators(void **state)
{
    (void)state;
    EXPECT(NULL, "1 + 2 * 3", "[{\"type\":\"System.Integer\",\"value\":\"7\"}]");
    EXPECT(NULL, "7 div 2 = 3 and 7 mod 2 = 1",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(NULL, "1.0 / 3", "[{\"type\":\"System.Decimal\",\"value\":\"0.33333333\"}]");
    EXPECT(NULL, "1 / 0", "[]");
    EXPECT(NULL, "-(5.5)", "[{\"type\":\"System.Decimal\",\"value\":\"-5.5\"}]");
    EXPECT(NULL, "'a' & {} & 'b'", "[{\"type\":\"System.String\",\"value\":\"ab\"}]");
    EXPECT(NULL, "'abc' ~ 'ABC'", "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(NULL, "@2012 = @2012-01", "[]");
    EXPECT(NULL, "@2014-01-31 + 1 month", "[{\"type\":\"System.Date\",\"value\":\"2014-02-28\"}]");
    EXPECT(NULL, "4 'wk' + 1 'wk'", "[{\"type\":\"System.Quantity\",\"value\":\"5 'wk'\"}]");
    EXPECT(NULL, "(1 | 2 | 2 | 3).count()", "[{\"type\":\"System.Integer\",\"value\":\"3\"}]");
    EXPECT(NULL, "2 in (1 | 2)", "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(NULL, "(1 | 2) contains 3", "[{\"type\":\"System.Boolean\",\"value\":\"false\"}]");
}

static void test_three_valued_logic(void **state)
{
    (void)state;
    const char *T = "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]";
    const char *F = "[{\"type\":\"System.Boolean\",\"value\":\"false\"}]";
    EXPECT(NULL, "{} and false", F);
    EXPECT(NULL, "{} and true", "[]");
    EXPECT(NULL, "{} or true", T);
    EXPECT(NULL, "{} or false", "[]");
    EXPECT(NULL, "true xor {}", "[]");
    EXPECT(NULL, "false implies {}", T);
    EXPECT(NULL, "{} implies true", T);
    EXPECT(NULL, "true implies {}", "[]");
    EXPECT(NULL, "({}).not()", "[]");
}

static void test_functions(void **state)
{
    (void)state;
    EXPECT(patient_json, "Patient.name.given.distinct().count()",
           "[{\"type\":\"System.Integer\",\"value\":\"3\"}]");
    EXPECT(NULL, "(3 | 1 | 2).sort(-$this).first()",
           "[{\"type\":\"System.Integer\",\"value\":\"3\"}]");
    EXPECT(NULL, "(1 | 2 | 3).aggregate($this + $total, 0)",
           "[{\"type\":\"System.Integer\",\"value\":\"6\"}]");
    EXPECT(NULL, "'abcdef'.substring(2, 3).upper()",
           "[{\"type\":\"System.String\",\"value\":\"CDE\"}]");
    EXPECT(NULL, "'2014-01-25'.toDate()", "[{\"type\":\"System.Date\",\"value\":\"2014-01-25\"}]");
    EXPECT(NULL, "'1.5 \\'mg\\''.toQuantity()",
           "[{\"type\":\"System.Quantity\",\"value\":\"1.5 'mg'\"}]");
    EXPECT(NULL, "iif(1 > 2, 'a', 'b')", "[{\"type\":\"System.String\",\"value\":\"b\"}]");
    /* string functions count code points, not bytes */
    EXPECT(NULL, "'日本語abc'.substring(1, 2) & '/' & '日本語abc'.indexOf('a').toString()",
           "[{\"type\":\"System.String\",\"value\":\"本語/3\"}]");
    EXPECT(NULL, "'  Abc   DEF ' ~ 'abc def'",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(NULL, "2.power(10)", "[{\"type\":\"System.Integer\",\"value\":\"1024\"}]");
    EXPECT(NULL, "1.type().name", "[{\"type\":\"System.String\",\"value\":\"Integer\"}]");
    EXPECT(patient_json, "Patient.children().count() > 3",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
}

static void test_fhir_functions(void **state)
{
    (void)state;
    const char *bundle =
        "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
        "{\"fullUrl\":\"http://x/Patient/1\",\"resource\":{\"resourceType\":\"Patient\","
        "\"id\":\"1\",\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o\","
        "\"name\":\"Org\"}],\"managingOrganization\":{\"reference\":\"#o\"},"
        "\"generalPractitioner\":[{\"reference\":\"Practitioner/9\"}]}},"
        "{\"fullUrl\":\"http://x/Practitioner/9\",\"resource\":{\"resourceType\":"
        "\"Practitioner\",\"id\":\"9\",\"name\":[{\"family\":\"Doc\"}]}}]}";
    EXPECT(bundle,
           "Bundle.entry.resource.ofType(Patient).generalPractitioner.resolve().name.family",
           "[{\"type\":\"FHIR.string\",\"value\":\"Doc\"}]");
    EXPECT(bundle, "Bundle.entry.resource.ofType(Patient).managingOrganization.resolve().name",
           "[{\"type\":\"FHIR.string\",\"value\":\"Org\"}]");
    EXPECT(patient_json,
           "Patient.gender.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    EXPECT(patient_json,
           "Patient.birthDate.hasValue() and Patient.birthDate.getValue() = @1974-12-25",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
}

static void test_errors_with_columns(void **state)
{
    (void)state;
    /* a collection where a singleton is required: column of that operand (given) */
    assert_string_equal(ev(patient_json, "Patient.name.given + 'x'"),
                        "ERR 1 14: a single item is required, the collection has 3");
    assert_int_equal(strncmp(ev(NULL, "(1 | 2).single()"), "ERR 1 9:", 8), 0);
    assert_int_equal(strncmp(ev(NULL, "'a'.substring()"), "ERR 1 5:", 8), 0);
    assert_int_equal(strncmp(ev(NULL, "1 < 'a'"), "ERR 1 3:", 8), 0);
    assert_int_equal(strncmp(ev(NULL, "1.as(Foo)"), "ERR 1 6:", 8), 0);
    /* a member no type of the input defines */
    assert_string_equal(ev(patient_json, "Patient.name.given1"),
                        "ERR 1 14: HumanName has no element 'given1'");
    assert_int_equal(strncmp(ev(patient_json, "Patient.deceasedBoolean"), "ERR 1 9:", 8), 0);
}

static void test_unsupported_function(void **state)
{
    (void)state;
    char want[128];
    snprintf(want, sizeof want, "ERR %d 9: function frobnicate() is not supported",
             (int)TSG_ENOTSUP);
    assert_string_equal(ev(patient_json, "Patient.frobnicate()"), want);
}

/* Evaluates expr (no input) with env; returns the rc, err filled. */
static tsg_rc ev_env(const char *expr, const fp_env *env, tsg_error *err, size_t *count)
{
    tsg_arena *a = tsg_arena_new(0);
    assert_non_null(a);
    fp_expr *e = NULL;
    assert_int_equal(fp_compile(expr, strlen(expr), &e, err), TSG_OK);
    fp_collection out;
    tsg_rc rc = fp_eval(e, NULL, NULL, env, a, &out, err);
    *count = rc == TSG_OK ? out.count : 0;
    fp_expr_free(e);
    tsg_arena_free(a);
    return rc;
}

typedef struct traced {
    int calls;
    char name[32];
    size_t count;
} traced;

static void on_trace(void *user, const char *name, size_t len, const fp_collection *c)
{
    traced *t = user;
    t->calls++;
    snprintf(t->name, sizeof t->name, "%.*s", (int)len, name);
    t->count = c->count;
}

static void test_trace(void **state)
{
    (void)state;
    traced t = {0};
    fp_env env = {.trace = on_trace, .trace_user = &t};
    tsg_error err;
    size_t n;
    /* trace passes its input on and reports it (or its projection) */
    assert_int_equal(ev_env("(1 | 2 | 3).trace('all').count()", &env, &err, &n), TSG_OK);
    assert_int_equal(n, 1);
    assert_int_equal(t.calls, 1);
    assert_string_equal(t.name, "all");
    assert_int_equal(t.count, 3);
    assert_int_equal(ev_env("(1 | 2 | 3).trace('odd', where($this mod 2 = 1))", &env, &err, &n),
                     TSG_OK);
    assert_int_equal(n, 3);
    assert_int_equal(t.calls, 2);
    assert_string_equal(t.name, "odd");
    assert_int_equal(t.count, 2);
    /* without a callback it is only a pass-through */
    EXPECT(NULL, "(1 | 2).trace('x').count()", "[{\"type\":\"System.Integer\",\"value\":\"2\"}]");
}

static void test_html_checks(void **state)
{
    (void)state;
    const char *ok = "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":"
                     "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>A <b>b</b> "
                     "<a href=\\\"#x\\\">c</a><img src=\\\"#i\\\" alt=\\\"i\\\"/></p></div>\"}}";
    const char *script = "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
                         "\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">"
                         "<script>alert(1)</script></div>\"}}";
    const char *onclick = "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
                          "\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">"
                          "<p onclick=\\\"x()\\\">a</p></div>\"}}";
    const char *t = "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]";
    const char *f = "[{\"type\":\"System.Boolean\",\"value\":\"false\"}]";
    EXPECT(ok, "text.div.htmlChecks()", t);
    EXPECT(script, "text.div.htmlChecks()", f);
    EXPECT(onclick, "text.div.htmlChecks()", f);
    /* not a div: empty */
    EXPECT(ok, "text.status.htmlChecks()", "[]");
}

static void test_work_budget(void **state)
{
    (void)state;
    fp_env env = {.max_steps = 1000};
    tsg_error err;
    size_t n;
    /* quadratic work (distinct over many items) stops at the budget */
    tsg_rc rc = ev_env("(1|2|3|4|5|6|7|8|9|10).combine(1|2|3|4|5|6|7|8|9|10)"
                       ".combine(1|2|3|4|5|6|7|8|9|10).combine(11|12|13|14|15|16|17|18|19|20)"
                       ".select($this | ($this + 100) | ($this + 200)).distinct()",
                       &env, &err, &n);
    assert_int_equal(rc, TSG_ELIMIT);
    assert_non_null(strstr(err.message, "FP_LIMIT_STEPS"));
    /* a regex whose repetition bounds would explode the automaton is refused */
    assert_int_equal(strncmp(ev(NULL, "'a'.matches('((a{1,100}){1,100}){1,100}')"), "ERR 1", 5), 0);
    assert_int_equal(strncmp(ev(NULL, "'1'.matches('l+++++++++++++++++++++++++')"), "ERR 1", 5), 0);
    assert_non_null(
        strstr(ev(NULL, "'a'.matches('((a{1,100}){1,100}){1,100}')"), "FP_LIMIT_REGEX_EXPANSION"));
    EXPECT(NULL, "'2020-01-02'.matches('\\\\d{4}-\\\\d{2}-\\\\d{2}')",
           "[{\"type\":\"System.Boolean\",\"value\":\"true\"}]");
    /* the same expression within the default budget */
    assert_int_equal(ev_env("(1|2|3|4|5|6|7|8|9|10).combine(1|2|3|4|5|6|7|8|9|10)"
                            ".combine(1|2|3|4|5|6|7|8|9|10).combine(11|12|13|14|15|16|17|18|19|20)"
                            ".select($this | ($this + 100) | ($this + 200)).distinct()",
                            NULL, &err, &n),
                     TSG_OK);
    assert_int_equal(n, 60);
}

static void test_cli(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s fhirpath \"'a' | 1 | 2.50 | 4 'wk'\" 2>&1", TSUNAGU_BINARY);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char buf[1024] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    assert_int_equal(pclose(p), 0);
    assert_string_equal(buf, "[{\"type\":\"System.String\",\"value\":\"a\"},"
                             "{\"type\":\"System.Integer\",\"value\":\"1\"},"
                             "{\"type\":\"System.Decimal\",\"value\":\"2.50\"},"
                             "{\"type\":\"System.Quantity\",\"value\":\"4 'wk'\"}]\n");
    snprintf(cmd, sizeof cmd, "%s fhirpath \"1 +\" 2>/dev/null", TSUNAGU_BINARY);
    p = popen(cmd, "r");
    assert_non_null(p);
    int st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    snprintf(cmd, sizeof cmd, "%s fhirpath 2>/dev/null", TSUNAGU_BINARY);
    p = popen(cmd, "r");
    assert_non_null(p);
    st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_choice_types),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_three_valued_logic),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_fhir_functions),
        cmocka_unit_test(test_errors_with_columns),
        cmocka_unit_test(test_unsupported_function),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_html_checks),
        cmocka_unit_test(test_work_budget),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
