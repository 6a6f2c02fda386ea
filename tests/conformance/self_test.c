/*
 * self_test.c — tests of the comparers themselves (conformance_r4_examples
 * --self-test): hand-made pairs that must compare equal, and pairs that
 * must differ at a given path with a given kind. When the corpus is at
 * hand, the JSON value parser is also cross-checked against jansson on
 * every official JSON file, and every official file must equal itself.
 *
 * These cases do not use the code under test, so the self-test passes or
 * fails on its own, whatever state the converters are in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "util/util.h"

static int nfail, nrun;

#define XHTML "http://www.w3.org/1999/xhtml"
#define FHIR  "http://hl7.org/fhir"

/*
 * Checks one outcome: rc must be want; when it is CMP_DIFFERENT, d->path
 * must contain path_has and d->kind must contain kind_has (either NULL for
 * "any").
 */
static void expect(const char *name, int rc, int want, const cmp_diff *d, const char *path_has,
                   const char *kind_has)
{
    nrun++;
    int ok = rc == want;
    if (ok && rc != CMP_EQUAL && d) {
        if (path_has && !strstr(d->path, path_has)) ok = 0;
        if (kind_has && !strstr(d->kind, kind_has)) ok = 0;
    }
    if (!ok) {
        nfail++;
        printf("self-test FAIL %s: rc %d (want %d); path \"%s\" (want ~\"%s\"); kind \"%s\" (want "
               "~\"%s\"); %s\n",
               name, rc, want, d ? d->path : "", path_has ? path_has : "", d ? d->kind : "",
               kind_has ? kind_has : "", d ? d->what : "");
    }
}

static void dec(const char *a, const char *b, int want)
{
    char name[128];
    snprintf(name, sizeof name, "decimal %s ~ %s", a, b);
    expect(name, cmp_decimal_equal(a, strlen(a), b, strlen(b)), want, NULL, NULL, NULL);
    snprintf(name, sizeof name, "decimal %s ~ %s (swapped)", b, a);
    expect(name, cmp_decimal_equal(b, strlen(b), a, strlen(a)), want, NULL, NULL, NULL);
}

static void js(const char *name, const char *a, const char *b, unsigned flags, int want,
               const char *path_has, const char *kind_has)
{
    cmp_diff d;
    expect(name, cmp_json_structural(a, strlen(a), b, strlen(b), flags, &d), want, &d, path_has,
           kind_has);
}

static void jb(const char *name, const char *a, const char *b, unsigned flags, int want,
               const char *path_has, const char *kind_has)
{
    cmp_diff d;
    expect(name, cmp_json_bytes(a, strlen(a), b, strlen(b), flags, &d), want, &d, path_has,
           kind_has);
}

static void xm(const char *name, const char *a, const char *b, unsigned flags, int want,
               const char *path_has, const char *kind_has)
{
    cmp_diff d;
    expect(name, cmp_xml_documents(a, strlen(a), b, strlen(b), flags, NULL, &d), want, &d, path_has,
           kind_has);
}

/* The parser must accept (want 0) or reject (-1) text, and agree with jansson. */
static void jparse(const char *text, int want)
{
    char name[160], err[256];
    cmp_diff d;
    cj_value *v;
    tsg_arena *a = tsg_arena_new(0);
    snprintf(name, sizeof name, "parse %s", text);
    int rc = cj_parse(a, text, strlen(text), &v, err, sizeof err);
    expect(name, rc, want, NULL, NULL, NULL);
    tsg_arena_free(a);
    snprintf(name, sizeof name, "jansson agrees on %s", text);
    expect(name, cmp_json_crosscheck_jansson(text, strlen(text), &d), CMP_EQUAL, &d, NULL, NULL);
}

static void test_decimals(void)
{
    dec("1.0", "1.0e0", 1);
    dec("1.0", "1", 1);
    dec("1.0", "1.00", 1);
    dec("1E-22", "0.0000000000000000000001", 1);
    dec("-1.000000000000000000E+245", "-1.000000000000000000e245", 1);
    dec("1.000000000000000000E-245", "1.000000000000000000e-245", 1);
    dec("1000000000000000000", "1E18", 1);
    dec("100", "1e2", 1);
    dec("0", "-0.000", 1);
    dec("0", "0e5", 1);
    dec("123.456", "1.23456E2", 1);
    dec("1.5", "1.05", 0);
    dec("-1", "1", 0);
    dec("1e2", "10", 0);
    dec("1E-22", "1E-23", 0);
    dec("1.0000000000000000000000000000001", "1", 0); /* beyond double precision */
    dec("abc", "1", -1);
    dec("1.", "1", -1);
    dec("12e", "12", -1);
    dec(".5", "0.5", -1);
    dec("1.0 ", "1.0", -1);
}

static void test_json_parser(void)
{
    jparse("{}", 0);
    jparse("[]", 0);
    jparse("{\"a\":[1,-0,0.5e-3,1E+2,true,false,null,\"x\"]}", 0);
    jparse(" {\"a\" : { \"b\" : [ ] } } \n", 0);
    jparse("{\"s\":\"\\ud83d\\ude00 \\u00e9 \\/ \\\" \\\\ \\b\\f\\n\\r\\t\"}", 0);
    jparse("{\"a\":01}", -1);
    jparse("{\"a\":1,}", -1);
    jparse("[1 2]", -1);
    jparse("[1,]", -1);
    jparse("{\"a\":\"\\ud800\"}", -1);
    jparse("{\"a\":\"\\udc00x\"}", -1);
    jparse("{\"a\":\"x\001\"}", -1);
    jparse("{\"a\":\"\\x\"}", -1);
    jparse("{\"a\":tru}", -1);
    jparse("{} x", -1);
    jparse("{\"a\":-}", -1);
    jparse("{\"a\":1.}", -1);
    jparse("{\"a\":.5}", -1);
    jparse("{\"a\":1e}", -1);
    jparse("{\"a\":\"\xc3\x28\"}", -1);
    jparse("{\"a\":\"\xed\xa0\x80\"}", -1); /* UTF-8 encoded surrogate */
    jparse("{\"a\":1,\"a\":2}", -1);
    jparse("{\"a\":\"unterminated}", -1);
    jparse("", -1);
}

static void test_json_structural(void)
{
    js("key order and spacing", "{\"a\":1,\"b\":[1,2],\"c\":\"x\"}",
       "{ \"c\" : \"x\", \"b\":[1,2],\n \"a\":1 }", 0, CMP_EQUAL, NULL, NULL);
    js("escapes decode", "{\"s\":\"\\u00e9\\/\\n\\ud83d\\ude00\"}",
       "{\"s\":\"\xc3\xa9/\\n\xf0\x9f\x98\x80\"}", 0, CMP_EQUAL, NULL, NULL);
    js("decimal text 1.50 vs 1.5", "{\"v\":1.50}", "{\"v\":1.5}", 0, CMP_DIFFERENT, "$.v",
       "number text differs");
    js("decimal 1.50 vs 1.5 numeric", "{\"v\":1.50}", "{\"v\":1.5}", CMP_NUMERIC, CMP_EQUAL, NULL,
       NULL);
    js("decimal 1.0 vs 1.1 numeric", "{\"v\":1.0}", "{\"v\":1.1}", CMP_NUMERIC, CMP_DIFFERENT,
       "$.v", "number differs in value");
    js("string is not a number", "{\"v\":\"1\"}", "{\"v\":1}", CMP_NUMERIC, CMP_DIFFERENT, "$.v",
       "type differs");
    js("array order", "{\"a\":[1,2]}", "{\"a\":[2,1]}", 0, CMP_DIFFERENT, "$.a[0]",
       "number text differs");
    js("array length", "{\"a\":[1,2]}", "{\"a\":[1,2,3]}", 0, CMP_DIFFERENT, "$.a",
       "array length differs");
    js("missing property", "{\"resourceType\":\"Patient\",\"id\":\"x\",\"active\":true}",
       "{\"resourceType\":\"Patient\",\"id\":\"x\"}", 0, CMP_DIFFERENT, "Patient.active",
       "missing in ours");
    js("extra property", "{\"resourceType\":\"Patient\",\"id\":\"x\"}",
       "{\"resourceType\":\"Patient\",\"id\":\"x\",\"_id\":{\"id\":\"e\"}}", 0, CMP_DIFFERENT,
       "Patient._id", "extra in ours");
    js("boolean", "{\"a\":true}", "{\"a\":false}", 0, CMP_DIFFERENT, "$.a", "value differs");
    js("null alignment", "{\"given\":[\"A\",null],\"_given\":[null,{\"id\":\"1\"}]}",
       "{\"given\":[\"A\",null],\"_given\":[{\"id\":\"1\"},null]}", 0, CMP_DIFFERENT, "$._given[0]",
       "type differs");
    js("nested path",
       "{\"resourceType\":\"Observation\",\"component\":[{\"valueQuantity\":{\"value\":1.0}},{"
       "\"valueQuantity\":{\"value\":2.0}}]}",
       "{\"resourceType\":\"Observation\",\"component\":[{\"valueQuantity\":{\"value\":1.0}},{"
       "\"valueQuantity\":{\"value\":2.00}}]}",
       0, CMP_DIFFERENT, "Observation.component[1].valueQuantity.value", "number text differs");
    js("string differs", "{\"s\":\"caf\xc3\xa9\"}", "{\"s\":\"cafe\"}", 0, CMP_DIFFERENT, "$.s",
       "string differs");
    js("div as XHTML: whitespace",
       "{\"text\":{\"div\":\"<div xmlns=\\\"" XHTML "\\\"><p>a  b</p></div>\"}}",
       "{\"text\":{\"div\":\"<div xmlns=\\\"" XHTML "\\\">\\n <p>a b</p>\\n</div>\"}}", 0,
       CMP_EQUAL, NULL, NULL);
    js("div as XHTML: serialisation",
       "{\"text\":{\"div\":\"<div xmlns=\\\"" XHTML
       "\\\"><p class=\\\"x\\\" id=\\\"y\\\">it&#39;s</p><td></td></div>\"}}",
       "{\"text\":{\"div\":\"<div xmlns=\\\"" XHTML
       "\\\"><p id=\\\"y\\\" class=\\\"x\\\">it's</p><td/></div>\"}}",
       0, CMP_EQUAL, NULL, NULL);
    js("div as XHTML: text differs",
       "{\"text\":{\"div\":\"<div xmlns=\\\"" XHTML "\\\"><p>a b</p></div>\"}}",
       "{\"text\":{\"div\":\"<div xmlns=\\\"" XHTML "\\\"><p>ab</p></div>\"}}", 0, CMP_DIFFERENT,
       "$.text.div.p", "narrative text differs");
    js("div not well-formed in ours",
       "{\"text\":{\"div\":\"<div xmlns=\\\"" XHTML "\\\"><p>a</p></div>\"}}",
       "{\"text\":{\"div\":\"<div xmlns=\\\"" XHTML "\\\"><p>a</p>\"}}", 0, CMP_DIFFERENT,
       "$.text.div", "not well-formed");
    js("ours not JSON", "{\"a\":1}", "{\"a\":1", 0, CMP_DIFFERENT, NULL, "not valid JSON");
    js("ours has duplicate keys", "{\"a\":1}", "{\"a\":1,\"a\":1}", 0, CMP_DIFFERENT, NULL,
       "not valid JSON");
    js("official not JSON", "{\"a\":", "{\"a\":1}", 0, CMP_ERROR, NULL, NULL);
}

static void test_json_bytes(void)
{
    const char *div1 =
        "{\n  \"div\": \"<div xmlns=\\\"" XHTML "\\\"><p>it&#39;s</p></div>\",\n  \"x\": 1\n}";
    const char *div2 =
        "{\n  \"div\": \"<div xmlns=\\\"" XHTML "\\\"><p>it's</p></div>\",\n  \"x\": 1\n}";
    const char *div3 =
        "{\n  \"div\": \"<div xmlns=\\\"" XHTML "\\\"><p>it's</p></div>\",\n  \"x\": 2\n}";
    cmp_diff d;

    jb("same bytes", "{\n  \"a\": 1\n}", "{\n  \"a\": 1\n}", 0, CMP_EQUAL, NULL, NULL);
    jb("value differs", "{\n  \"a\": 1\n}", "{\n  \"a\": 2\n}", 0, CMP_DIFFERENT, "$.a",
       "number text differs");
    expect("value differs: line reported",
           cmp_json_bytes("{\n  \"a\": 1\n}", 12, "{\n  \"a\": 2\n}", 12, 0, &d), CMP_DIFFERENT, &d,
           NULL, NULL);
    if (!strstr(d.what, "line 2") || !strstr(d.context, "\"a\": ⟦2")) {
        nfail++;
        printf("self-test FAIL byte report: what \"%s\" context \"%s\"\n", d.what, d.context);
    }
    jb("formatting only", "{\"a\":1}", "{ \"a\":1}", 0, CMP_DIFFERENT, "$",
       "same value, different bytes");
    jb("escaping only", "{\"a\":\"/\"}", "{\"a\":\"\\/\"}", 0, CMP_DIFFERENT, "$.a",
       "same value, different bytes");
    jb("trailing newline", "{\"a\":1}", "{\"a\":1}\n", 0, CMP_DIFFERENT, NULL,
       "same value, different bytes");
    jb("truncated", "{\"a\":1}", "{\"a\":1", 0, CMP_DIFFERENT, NULL, "not valid JSON");
    jb("numeric spelling, exact", "{\"v\": 1.0}", "{\"v\": 1.0e0}", 0, CMP_DIFFERENT, "$.v",
       "number text differs");
    jb("numeric spelling, by value", "{\"v\": 1.0, \"w\": 1E-22}",
       "{\"v\": 1.0e0, \"w\": 0.0000000000000000000001}", CMP_NUMERIC, CMP_EQUAL, NULL, NULL);
    jb("numeric value differs", "{\"v\": 1.0}", "{\"v\": 1.1}", CMP_NUMERIC, CMP_DIFFERENT, "$.v",
       "differs in value");
    jb("numbers inside strings stay exact", "{\"v\": \"1.0\"}", "{\"v\": \"1.00\"}", CMP_NUMERIC,
       CMP_DIFFERENT, "$.v", "string differs");
    jb("div serialisation, exact", div1, div2, 0, CMP_DIFFERENT, "$.div", "narrative bytes differ");
    jb("div serialisation, as XHTML", div1, div2, CMP_DIV_XHTML, CMP_EQUAL, NULL, NULL);
    jb("div then other difference", div1, div3, CMP_DIV_XHTML, CMP_DIFFERENT, "$.x",
       "number text differs");
    jb("div content differs", div1,
       "{\n  \"div\": \"<div xmlns=\\\"" XHTML "\\\"><p>its</p></div>\",\n  \"x\": 1\n}",
       CMP_DIV_XHTML, CMP_DIFFERENT, "$.div.p", "narrative text differs");
    jb("\"div\" as a value is not a key", "{\"a\": \"div\", \"b\": \"<p>x</p>\"}",
       "{\"a\": \"div\", \"b\": \"<p>y</p>\"}", CMP_DIV_XHTML, CMP_DIFFERENT, "$.b",
       "string differs");
}

static void test_xml(void)
{
    xm("whitespace, comments, PI, prefixes",
       "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Patient xmlns=\"" FHIR
       "\"><!-- c -->\n  <id value=\"x\"/>\n  "
       "<name>\n    <given value=\"A\"/>\n  </name>\n</Patient>",
       "<f:Patient xmlns:f=\"" FHIR
       "\"><f:id value=\"x\"></f:id><f:name><?pi x?><f:given value=\"A\"/></f:name></f:Patient>",
       0, CMP_EQUAL, NULL, NULL);
    xm("attribute value", "<Patient xmlns=\"" FHIR "\"><name><given value=\"A\"/></name></Patient>",
       "<Patient xmlns=\"" FHIR "\"><name><given value=\"B\"/></name></Patient>", 0, CMP_DIFFERENT,
       "Patient.name.given.@value", "attribute differs");
    xm("attribute sets", "<x a=\"1\" b=\"2\"/>", "<x b=\"2\" a=\"1\"/>", 0, CMP_EQUAL, NULL, NULL);
    xm("attribute missing", "<x a=\"1\" b=\"2\"/>", "<x a=\"1\"/>", 0, CMP_DIFFERENT, "x.@b",
       "attribute missing");
    xm("attribute extra", "<x a=\"1\"/>", "<x a=\"1\" c=\"3\"/>", 0, CMP_DIFFERENT, "x.@c",
       "extra in ours");
    xm("element order", "<r><a/><b/></r>", "<r><b/><a/></r>", 0, CMP_DIFFERENT, "r",
       "element differs");
    xm("element missing", "<r><a/><b/><b/></r>", "<r><a/><b/></r>", 0, CMP_DIFFERENT, "r.b[1]",
       "element missing in ours");
    xm("element extra", "<r><a/></r>", "<r><a/><c/></r>", 0, CMP_DIFFERENT, "r.c", "extra in ours");
    xm("repeat index", "<r><a v=\"1\"/><a v=\"2\"/></r>", "<r><a v=\"1\"/><a v=\"3\"/></r>", 0,
       CMP_DIFFERENT, "r.a[1].@v", "attribute differs");
    xm("namespace", "<Patient xmlns=\"" FHIR "\"/>", "<Patient/>", 0, CMP_DIFFERENT, "Patient",
       "namespace");
    xm("text outside XHTML is exact", "<x>a  b</x>", "<x>a b</x>", 0, CMP_DIFFERENT, "x.text()",
       "text differs");
    xm("narrative whitespace collapses",
       "<text xmlns=\"" FHIR "\"><div xmlns=\"" XHTML "\"><p>a   b\n c</p>\n</div></text>",
       "<text xmlns=\"" FHIR "\"><div xmlns=\"" XHTML "\">\n<p> a b c </p></div></text>", 0,
       CMP_EQUAL, NULL, NULL);
    xm("narrative text differs",
       "<text xmlns=\"" FHIR "\"><div xmlns=\"" XHTML "\"><p>a b c</p></div></text>",
       "<text xmlns=\"" FHIR "\"><div xmlns=\"" XHTML "\"><p>ab c</p></div></text>", 0,
       CMP_DIFFERENT, "text.div.p.text()", "narrative text differs");
    xm("narrative attribute", "<div xmlns=\"" XHTML "\"><p class=\"a\">x</p></div>",
       "<div xmlns=\"" XHTML "\"><p class=\"b\">x</p></div>", 0, CMP_DIFFERENT, "div.p.@class",
       "attribute differs");
    xm("narrative element", "<div xmlns=\"" XHTML "\"><p>x</p></div>",
       "<div xmlns=\"" XHTML "\"><span>x</span></div>", 0, CMP_DIFFERENT, "div", "element differs");
    xm("narrative text joins across comments", "<div xmlns=\"" XHTML "\">a<!-- c -->b</div>",
       "<div xmlns=\"" XHTML "\">ab</div>", 0, CMP_EQUAL, NULL, NULL);
    xm("narrative char refs and CDATA", "<div xmlns=\"" XHTML "\">&#xA9; &lt;x&gt;</div>",
       "<div xmlns=\"" XHTML "\">\xc2\xa9 <![CDATA[<x>]]></div>", 0, CMP_EQUAL, NULL, NULL);
    xm("text vs element", "<div xmlns=\"" XHTML "\"><b>x</b></div>",
       "<div xmlns=\"" XHTML "\">x</div>", 0, CMP_DIFFERENT, "div", "content differs");
    xm("decimal spelling, exact", "<value value=\"1.0e0\"/>", "<value value=\"1.0\"/>", 0,
       CMP_DIFFERENT, "value.@value", "attribute differs");
    xm("decimal spelling, by value",
       "<r><value value=\"1.0e0\"/><value value=\"0.0000000000000000000001\"/></r>",
       "<r><value value=\"1.0\"/><value value=\"1E-22\"/></r>", CMP_NUMERIC, CMP_EQUAL, NULL, NULL);
    xm("decimal value differs", "<value value=\"1.0e0\"/>", "<value value=\"1.01\"/>", CMP_NUMERIC,
       CMP_DIFFERENT, "value.@value", "differs in value");
    xm("numeric rule only for @value", "<code code=\"1.0\"/>", "<code code=\"1\"/>", CMP_NUMERIC,
       CMP_DIFFERENT, "code.@code", "attribute differs");
    xm("DOCTYPE in the official is refused", "<!DOCTYPE x [<!ENTITY e \"v\">]><x>&e;</x>",
       "<x>v</x>", 0, CMP_ERROR, NULL, NULL);
    xm("DOCTYPE in ours is refused", "<x>v</x>", "<!DOCTYPE x [<!ENTITY e \"v\">]><x>&e;</x>", 0,
       CMP_DIFFERENT, NULL, "not well-formed");
    xm("external entity is refused", "<x/>",
       "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>", 0, CMP_DIFFERENT, NULL,
       "not well-formed");
    xm("undeclared entity", "<x/>", "<x>&nbsp;</x>", 0, CMP_DIFFERENT, NULL, "not well-formed");
    xm("not well-formed", "<x/>", "<x><y></x>", 0, CMP_DIFFERENT, NULL, "not well-formed");
}

/* Every official file equals itself under every comparison, and the JSON
 * parser agrees with jansson on every official JSON file. */
static void test_corpus(const char *dir)
{
    char path[4096], *index, *json, *xml;
    size_t len, jlen, xlen, npairs = 0;
    tsg_error err;
    cmp_diff d;
    cmp_path_fmt(path, sizeof path, "%s/index.tsv", dir);
    if (tsg_read_file(path, TSG_LIMIT_BODY_BYTES, &index, &len, &err) != TSG_OK) {
        nfail++;
        printf("self-test FAIL: %s\n", err.message);
        return;
    }
    int before = nfail;
    char *save = NULL;
    for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (tab) *tab = '\0';
        if (!strcmp(line, "basename") || !*line) continue;
        cmp_path_fmt(path, sizeof path, "%s/json/%s.json", dir, line);
        if (tsg_read_file(path, TSG_LIMIT_BODY_BYTES, &json, &jlen, &err) != TSG_OK) continue;
        cmp_path_fmt(path, sizeof path, "%s/xml/%s.xml", dir, line);
        if (tsg_read_file(path, TSG_LIMIT_BODY_BYTES, &xml, &xlen, &err) != TSG_OK) {
            free(json);
            continue;
        }
        npairs++;
        char name[300];
        snprintf(name, sizeof name, "%s: parser vs jansson", line);
        expect(name, cmp_json_crosscheck_jansson(json, jlen, &d), CMP_EQUAL, &d, NULL, NULL);
        snprintf(name, sizeof name, "%s: JSON equals itself", line);
        expect(name, cmp_json_structural(json, jlen, json, jlen, 0, &d), CMP_EQUAL, &d, NULL, NULL);
        snprintf(name, sizeof name, "%s: JSON bytes equal themselves", line);
        expect(name, cmp_json_bytes(json, jlen, json, jlen, CMP_DIV_XHTML, &d), CMP_EQUAL, &d, NULL,
               NULL);
        snprintf(name, sizeof name, "%s: strict per jansson", line);
        expect(name, cmp_json_strict(json, jlen, &d), CMP_EQUAL, &d, NULL, NULL);
        snprintf(name, sizeof name, "%s: XML equals itself", line);
        expect(name, cmp_xml_documents(xml, xlen, xml, xlen, 0, NULL, &d), CMP_EQUAL, &d, NULL,
               NULL);
        free(json);
        free(xml);
    }
    free(index);
    printf("self-test: cross-checked %zu corpus pairs (%d failures)\n", npairs, nfail - before);
}

int cmp_self_test(const char *corpus_dir)
{
    nfail = nrun = 0;
    test_decimals();
    test_json_parser();
    test_json_structural();
    test_json_bytes();
    test_xml();
    printf("self-test: %d hand-made cases, %d failures\n", nrun, nfail);
    if (corpus_dir)
        test_corpus(corpus_dir);
    else
        printf("self-test: corpus not found; skipped the cross-check on the corpus\n");
    return nfail;
}
