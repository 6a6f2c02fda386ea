/*
 * test_xml.c — the FHIR XML reader and writer (fhir_xml_parse, fhir_xml_write)
 * and the XHTML narrative check (model_check_xhtml).
 *
 * Positive tests parse, check the tree, write, and parse the output again
 * (XML → tree → XML → tree, trees equal). Negative tests cover one input per
 * class of error and check the result code, the FHIRPath location and the
 * message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "model/model.h"
#include "model/model_internal.h"

#define FHIR_NS  "xmlns=\"http://hl7.org/fhir\""
#define XHTML_NS "xmlns=\"http://www.w3.org/1999/xhtml\""

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static tsg_arena *arena;

static int setup(void **state)
{
    (void)state;
    arena = tsg_arena_new(0);
    return arena ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tsg_arena_free(arena);
    arena = NULL;
    return 0;
}

static tsg_rc parse_lim(const char *xml, const tsg_limits *lim, fhir_node **root, tsg_error *err)
{
    return fhir_xml_parse(arena, xml, strlen(xml), lim, root, err);
}

/* Parses xml, failing the test with the error message if it does not parse. */
static fhir_node *parse_ok(const char *xml)
{
    fhir_node *root = NULL;
    tsg_error err;
    tsg_rc rc = fhir_xml_parse(arena, xml, strlen(xml), NULL, &root, &err);
    if (rc != TSG_OK)
        fail_msg("parse failed: %s at %s (%u:%u): %s", tsg_rc_name(rc), err.location, err.line,
                 err.column, err.message);
    assert_non_null(root);
    return root;
}

/* Structural equality of two trees; reports the first difference. */
static int tree_equal(const fhir_node *a, const fhir_node *b)
{
    if (a->elem != b->elem || a->type != b->type || a->pos != b->pos || a->nkids != b->nkids ||
        (a->value == NULL) != (b->value == NULL) || a->value_len != b->value_len ||
        (a->value && memcmp(a->value, b->value, a->value_len) != 0)) {
        print_message("trees differ at %s (%s): '%s' vs '%s', %u vs %u children\n",
                      a->elem ? a->elem->path : "root", a->type->name,
                      a->value ? a->value : "(none)", b->value ? b->value : "(none)", a->nkids,
                      b->nkids);
        return 0;
    }
    for (uint32_t i = 0; i < a->nkids; i++)
        if (!tree_equal(&a->kids[i], &b->kids[i])) return 0;
    return 1;
}

/* Writes root with flags; the caller frees the returned string. */
static char *write_xml(const fhir_node *root, unsigned flags, size_t *len)
{
    tsg_buf b;
    tsg_buf_init(&b, 0);
    assert_int_equal(fhir_xml_write(root, &b, flags), TSG_OK);
    return tsg_buf_take(&b, len);
}

/* Writes root compact and pretty, parses both back and compares the trees. */
static void assert_round_trip(const fhir_node *root)
{
    static const unsigned flag_sets[] = {0, FHIR_WRITE_PRETTY, FHIR_WRITE_XML_DECL,
                                         FHIR_WRITE_PRETTY | FHIR_WRITE_XML_DECL};
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        size_t len;
        char *xml = write_xml(root, flag_sets[i], &len);
        fhir_node *again = NULL;
        tsg_error err;
        tsg_rc rc = fhir_xml_parse(arena, xml, len, NULL, &again, &err);
        if (rc != TSG_OK)
            fail_msg("re-parse failed: %s at %s: %s\n%s", tsg_rc_name(rc), err.location,
                     err.message, xml);
        if (!tree_equal(root, again)) fail_msg("round trip changed the tree:\n%s", xml);
        free(xml);
    }
}

/* The child `name` (property name, e.g. "valueQuantity") number `pos` of n. */
static const fhir_node *kid(const fhir_node *n, const char *name, uint32_t pos)
{
    for (uint32_t i = 0; i < n->nkids; i++) {
        char pn[128];
        model_property_name(n->kids[i].elem, n->kids[i].type, pn, sizeof pn);
        if (!strcmp(pn, name) && n->kids[i].pos == pos) return &n->kids[i];
    }
    fail_msg("no child %s[%u] in %s", name, pos, n->type->name);
    return NULL;
}

static void assert_value(const fhir_node *n, const char *value)
{
    assert_non_null(n->value);
    assert_string_equal(n->value, value);
    assert_int_equal(n->value_len, strlen(value));
}

/* Parses xml expecting rc, a location equal to `location` and a message containing `msg`. */
static void expect_error_lim(const char *xml, const tsg_limits *lim, tsg_rc rc,
                             const char *location, const char *msg)
{
    fhir_node *root = (fhir_node *)1;
    tsg_error err;
    tsg_rc got = parse_lim(xml, lim, &root, &err);
    if (got != rc)
        fail_msg("expected %s, got %s: %s", tsg_rc_name(rc), tsg_rc_name(got),
                 got ? err.message : "(parsed)");
    assert_null(root);
    assert_int_equal(err.rc, rc);
    assert_non_null(err.code);
    if (strcmp(err.location, location) != 0)
        fail_msg("location '%s', expected '%s' (message: %s)", err.location, location, err.message);
    if (!strstr(err.message, msg)) fail_msg("message '%s' lacks '%s'", err.message, msg);
}

static void expect_error(const char *xml, tsg_rc rc, const char *location, const char *msg)
{
    expect_error_lim(xml, NULL, rc, location, msg);
}

/* ------------------------------------------------------------------------
 * Positive: shapes of the tree
 * ------------------------------------------------------------------------ */

static void test_patient_basic(void **state)
{
    (void)state;
    fhir_node *p = parse_ok("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                            "<!-- a comment before the root -->\n"
                            "<Patient " FHIR_NS ">\n"
                            "  <id value=\"p1\"/>\n"
                            "  <!-- comments are dropped -->\n"
                            "  <active value=\"true\"/>\n"
                            "  <name id=\"n1\">\n"
                            "    <family value=\"山田\"/>\n"
                            "    <given value=\"太郎\"/>\n"
                            "    <given value=\"T.\"/>\n"
                            "  </name>\n"
                            "  <gender value=\"male\"/>\n"
                            "  <multipleBirthInteger value=\"-2147483648\"/>\n"
                            "</Patient>\n<!-- and after -->\n");
    assert_null(p->elem);
    assert_string_equal(fhir_node_type_name(p), "Patient");
    assert_int_equal(p->nkids, 5);
    assert_value(kid(p, "id", 0), "p1");
    const fhir_node *active = kid(p, "active", 0);
    assert_value(active, "true");
    assert_string_equal(active->type->name, "boolean");
    const fhir_node *name = kid(p, "name", 0);
    assert_int_equal(name->nkids, 4);
    assert_string_equal(name->kids[0].elem->name, "id"); /* the id attribute, first */
    assert_value(&name->kids[0], "n1");
    assert_value(kid(name, "family", 0), "山田");
    assert_value(kid(name, "given", 1), "T.");
    const fhir_node *mb = kid(p, "multipleBirthInteger", 0);
    assert_string_equal(mb->type->name, "integer");
    assert_value(mb, "-2147483648");

    char loc[128];
    assert_true(fhir_node_location(p, kid(name, "given", 1), loc, sizeof loc) > 0);
    assert_string_equal(loc, "Patient.name[0].given[1]");
    assert_round_trip(p);
}

static void test_decimals_kept_as_written(void **state)
{
    (void)state;
    static const char *const decimals[] = {"1.50", "0.010", "1.0e0", "1E-22",
                                           "-0.0", "36.80", "100",   "1.000000000000000000E+245"};
    for (size_t i = 0; i < sizeof decimals / sizeof decimals[0]; i++) {
        char xml[512];
        snprintf(xml, sizeof xml,
                 "<Observation " FHIR_NS "><status value=\"final\"/><code><text value=\"x\"/>"
                 "</code><valueQuantity><value value=\"%s\"/><unit value=\"m\"/></valueQuantity>"
                 "</Observation>",
                 decimals[i]);
        fhir_node *o = parse_ok(xml);
        const fhir_node *q = kid(o, "valueQuantity", 0);
        assert_string_equal(q->type->name, "Quantity");
        const fhir_node *v = kid(q, "value", 0);
        assert_string_equal(v->type->name, "decimal");
        assert_value(v, decimals[i]);
        size_t len;
        char *out = write_xml(o, 0, &len);
        char want[64];
        snprintf(want, sizeof want, "<value value=\"%s\"/>", decimals[i]);
        assert_non_null(strstr(out, want));
        free(out);
        assert_round_trip(o);
    }
}

static void test_primitive_with_id_and_extension_only(void **state)
{
    (void)state;
    fhir_node *p =
        parse_ok("<Patient " FHIR_NS "><birthDate id=\"bd\">"
                 "<extension url=\"http://hl7.org/fhir/StructureDefinition/data-absent-reason\">"
                 "<valueCode value=\"unknown\"/></extension></birthDate></Patient>");
    const fhir_node *bd = kid(p, "birthDate", 0);
    assert_null(bd->value);
    assert_string_equal(bd->type->name, "date");
    assert_int_equal(bd->nkids, 2);
    assert_string_equal(bd->kids[0].elem->name, "id");
    assert_value(&bd->kids[0], "bd");
    const fhir_node *ext = kid(bd, "extension", 0);
    /* Extension children in definition order: extension…, url, value[x] */
    assert_int_equal(ext->nkids, 2);
    assert_string_equal(ext->kids[0].elem->name, "url");
    assert_value(&ext->kids[0], "http://hl7.org/fhir/StructureDefinition/data-absent-reason");
    assert_value(kid(ext, "valueCode", 0), "unknown");
    assert_round_trip(p);

    size_t len;
    char *out = write_xml(p, 0, &len);
    assert_string_equal(out, "<Patient " FHIR_NS "><birthDate id=\"bd\"><extension "
                             "url=\"http://hl7.org/fhir/StructureDefinition/data-absent-reason\">"
                             "<valueCode value=\"unknown\"/></extension></birthDate></Patient>");
    free(out);
}

static void test_extension_url_merged_in_definition_order(void **state)
{
    (void)state;
    /* url (index 2) is an attribute, but comes after the nested extensions (index 1) */
    fhir_node *p = parse_ok("<Patient " FHIR_NS "><extension url=\"http://e/outer\" id=\"x1\">"
                            "<extension url=\"http://e/a\"><valueString value=\"A\"/></extension>"
                            "<extension url=\"http://e/b\"><valueBoolean value=\"false\"/>"
                            "</extension></extension></Patient>");
    const fhir_node *ext = kid(p, "extension", 0);
    assert_int_equal(ext->nkids, 4);
    assert_string_equal(ext->kids[0].elem->name, "id");
    assert_string_equal(ext->kids[1].elem->name, "extension");
    assert_string_equal(ext->kids[2].elem->name, "extension");
    assert_int_equal(ext->kids[2].pos, 1);
    assert_string_equal(ext->kids[3].elem->name, "url");
    assert_value(&ext->kids[3], "http://e/outer");
    size_t len;
    char *out = write_xml(p, 0, &len);
    assert_non_null(strstr(out, "<extension id=\"x1\" url=\"http://e/outer\">"));
    free(out);
    assert_round_trip(p);
}

static void test_contained(void **state)
{
    (void)state;
    fhir_node *p = parse_ok("<Patient " FHIR_NS "><id value=\"p\"/>"
                            "<contained><Organization><id value=\"o1\"/><name value=\"Org\"/>"
                            "</Organization></contained>"
                            "<contained>\n  <Practitioner " FHIR_NS "><id value=\"pr\"/>"
                            "</Practitioner>\n</contained>"
                            "<managingOrganization><reference value=\"#o1\"/>"
                            "</managingOrganization></Patient>");
    const fhir_node *c0 = kid(p, "contained", 0);
    assert_string_equal(c0->elem->name, "contained");
    assert_string_equal(c0->type->name, "Organization");
    assert_int_equal(c0->nkids, 2);
    assert_value(kid(c0, "name", 0), "Org");
    const fhir_node *c1 = kid(p, "contained", 1);
    assert_string_equal(c1->type->name, "Practitioner");
    assert_round_trip(p);
    size_t len;
    char *out = write_xml(p, 0, &len);
    assert_non_null(strstr(out, "<contained><Organization><id value=\"o1\"/>"));
    free(out);
}

static void test_bundle_entries(void **state)
{
    (void)state;
    fhir_node *b = parse_ok(
        "<Bundle " FHIR_NS "><type value=\"transaction\"/>"
        "<entry><fullUrl value=\"urn:uuid:1\"/><resource><Patient><active value=\"true\"/>"
        "</Patient></resource><request><method value=\"POST\"/><url value=\"Patient\"/>"
        "</request></entry>"
        "<entry><fullUrl value=\"urn:uuid:2\"/><resource><Observation><status value=\"final\"/>"
        "<code><text value=\"w\"/></code><subject><reference value=\"urn:uuid:1\"/></subject>"
        "</Observation></resource><request><method value=\"POST\"/>"
        "<url value=\"Observation\"/></request></entry></Bundle>");
    assert_int_equal(b->nkids, 3);
    const fhir_node *e1 = kid(b, "entry", 1);
    const fhir_node *r = kid(e1, "resource", 0);
    assert_string_equal(r->type->name, "Observation");
    assert_value(kid(kid(r, "subject", 0), "reference", 0), "urn:uuid:1");
    /* Bundle.entry.request.url is an element, not an attribute */
    assert_value(kid(kid(e1, "request", 0), "url", 0), "Observation");
    assert_round_trip(b);
}

static void test_parameters_resource(void **state)
{
    (void)state;
    fhir_node *p = parse_ok("<Parameters " FHIR_NS "><parameter><name value=\"patient\"/>"
                            "<resource><Patient><gender value=\"female\"/></Patient></resource>"
                            "</parameter><parameter><name value=\"count\"/>"
                            "<valueInteger value=\"3\"/></parameter></Parameters>");
    const fhir_node *r = kid(kid(p, "parameter", 0), "resource", 0);
    assert_string_equal(r->type->name, "Patient");
    assert_value(kid(kid(p, "parameter", 1), "valueInteger", 0), "3");
    assert_round_trip(p);
}

static void test_div_kept_as_written(void **state)
{
    (void)state;
    /* a self-contained div is kept byte for byte: references, comments,
     * CDATA, quotes and line ends as written */
    const char *div = "<div " XHTML_NS " class='n'>\r\n  <p title=\"a &amp; &quot;b&quot;\">"
                      "x &lt; y &amp;> &#39;z&#39; &quot;&#x3042;<!-- kept --><br /></p>"
                      "<![CDATA[<raw> & ]]><p xmlns=\"http://www.w3.org/1999/xhtml\" "
                      "xml:lang=\"ja\">&#13;</p></div>";
    char xml[1024];
    snprintf(xml, sizeof xml,
             "<Patient " FHIR_NS "><text><status value=\"generated\"/>%s</text></Patient>", div);
    fhir_node *p = parse_ok(xml);
    const fhir_node *d = kid(kid(p, "text", 0), "div", 0);
    assert_string_equal(d->type->name, "xhtml");
    assert_int_equal(d->pos, 0);
    assert_value(d, div);
    assert_int_equal(model_check_xhtml(d->value, d->value_len, NULL), TSG_OK);
    assert_round_trip(p);
    size_t len;
    char *out = write_xml(p, 0, &len);
    assert_non_null(strstr(out, div)); /* written verbatim */
    free(out);
}

static void test_div_reserialised(void **state)
{
    (void)state;
    /* a div that does not declare the XHTML namespace itself (here: a prefix
     * bound on the root) is re-serialised with the namespace declared, local
     * names, references decoded and re-escaped minimally, comments dropped,
     * CDATA as text, CR LF as LF */
    fhir_node *p = parse_ok(
        "<Patient " FHIR_NS " xmlns:h=\"http://www.w3.org/1999/xhtml\"><text><status "
        "value=\"generated\"/><h:div class=\"n\"><h:p title=\"a &amp; &quot;b&quot;\">x &lt; "
        "y &amp;&gt; &#39;z&#39; &#x3042;<!-- dropped --><h:br /></h:p>\r\n<![CDATA[<raw> & ]]>"
        "</h:div></text></Patient>");
    const fhir_node *div = kid(kid(p, "text", 0), "div", 0);
    assert_value(div, "<div " XHTML_NS " class=\"n\"><p title=\"a &amp; &quot;b&quot;\">"
                      "x &lt; y &amp;&gt; 'z' あ<br/></p>\n&lt;raw&gt; &amp; </div>");
    assert_int_equal(model_check_xhtml(div->value, div->value_len, NULL), TSG_OK);
    assert_round_trip(p);
    size_t len;
    char *out = write_xml(p, 0, &len);
    assert_non_null(strstr(out, div->value)); /* written verbatim */
    free(out);
}

static void test_div_kept_whatever_its_spacing(void **state)
{
    (void)state;
    /* a div that declares the XHTML namespace itself is kept byte for byte,
     * whatever the order of its attributes, its spacing or its quotes */
    const char *divs[] = {
        "<div class=\"n\" " XHTML_NS "><p>a &quot;b&quot; <!-- c --></p></div>",
        "<div xmlns =  'http://www.w3.org/1999/xhtml' >x</div>",
    };
    for (size_t i = 0; i < sizeof divs / sizeof *divs; i++) {
        char xml[512];
        snprintf(xml, sizeof xml,
                 "<Patient " FHIR_NS "><text><status value=\"generated\"/>%s</text></Patient>",
                 divs[i]);
        fhir_node *p = parse_ok(xml);
        assert_value(kid(kid(p, "text", 0), "div", 0), divs[i]);
        assert_round_trip(p);
    }
}

static void test_div_carriage_return_reference(void **state)
{
    (void)state;
    /* re-serialised (a prefix is declared): a literal CR is a line end (read
     * as LF); a CR written as &#13; must stay one */
    fhir_node *p = parse_ok("<Patient " FHIR_NS "><text><status value=\"generated\"/><div " XHTML_NS
                            " xmlns:x=\"urn:x\">a\r\nb\rc&#13;d<b title=\"x&#13;y\">e</b></div>"
                            "</text></Patient>");
    assert_value(kid(kid(p, "text", 0), "div", 0),
                 "<div " XHTML_NS ">a\nb\nc&#13;d<b title=\"x&#13;y\">e</b></div>");
    assert_round_trip(p);
}

static void test_div_prefixed_xhtml(void **state)
{
    (void)state;
    /* XHTML under a prefix, FHIR as the default: the div comes out unprefixed */
    fhir_node *p =
        parse_ok("<Patient " FHIR_NS " xmlns:h=\"http://www.w3.org/1999/xhtml\">"
                 "<text><status value=\"generated\"/><h:div><h:p class=\"c\" xml:lang=\"ja\">"
                 "Hi</h:p></h:div></text></Patient>");
    assert_value(kid(kid(p, "text", 0), "div", 0),
                 "<div " XHTML_NS "><p class=\"c\" xml:lang=\"ja\">Hi</p></div>");
    assert_round_trip(p);
}

static void test_prefixed_fhir_and_bom(void **state)
{
    (void)state;
    fhir_node *p = parse_ok("\xEF\xBB\xBF<?xml version='1.0'?><f:Patient "
                            "xmlns:f=\"http://hl7.org/fhir\"><f:active value='false'/>"
                            "<f:name><f:family xmlns:g=\"http://hl7.org/fhir\" value=\"A\"/>"
                            "<g:given xmlns:g=\"http://hl7.org/fhir\" value=\"B\"/></f:name>"
                            "</f:Patient>");
    assert_value(kid(p, "active", 0), "false");
    assert_value(kid(kid(p, "name", 0), "given", 0), "B");
    assert_round_trip(p);
}

static void test_attribute_references_and_whitespace(void **state)
{
    (void)state;
    /* literal TAB/LF in an attribute become spaces; &#10; stays a line feed */
    fhir_node *p = parse_ok("<Patient " FHIR_NS "><name><text value=\"a&#10;b\tc\nd &lt;&amp;&gt;"
                            " &quot;q&quot; &apos;s&apos; &#x1F600;\"/></name></Patient>");
    const fhir_node *t = kid(kid(p, "name", 0), "text", 0);
    assert_value(t, "a\nb c d <&> \"q\" 's' \xF0\x9F\x98\x80");
    size_t len;
    char *out = write_xml(p, 0, &len);
    assert_non_null(strstr(out, "value=\"a&#10;b c d &lt;&amp;&gt; &quot;q&quot; 's' "
                                "\xF0\x9F\x98\x80\""));
    free(out);
    assert_round_trip(p);
}

static void test_write_pretty_exact(void **state)
{
    (void)state;
    fhir_node *p = parse_ok("<Patient " FHIR_NS "><id value=\"p\"/><text><status value="
                            "\"generated\"/><div " XHTML_NS "><p>x</p></div></text><contained>"
                            "<Organization><name value=\"O\"/></Organization></contained>"
                            "<name><given value=\"A\"/></name></Patient>");
    size_t len;
    char *out = write_xml(p, FHIR_WRITE_PRETTY | FHIR_WRITE_XML_DECL, &len);
    assert_string_equal(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                             "<Patient " FHIR_NS ">\n"
                             "  <id value=\"p\"/>\n"
                             "  <text>\n"
                             "    <status value=\"generated\"/>\n"
                             "    <div " XHTML_NS "><p>x</p></div>\n"
                             "  </text>\n"
                             "  <contained>\n"
                             "    <Organization>\n"
                             "      <name value=\"O\"/>\n"
                             "    </Organization>\n"
                             "  </contained>\n"
                             "  <name>\n"
                             "    <given value=\"A\"/>\n"
                             "  </name>\n"
                             "</Patient>\n");
    assert_int_equal(len, strlen(out));
    free(out);
    out = write_xml(p, 0, &len);
    assert_string_equal(out, "<Patient " FHIR_NS "><id value=\"p\"/><text><status value="
                             "\"generated\"/><div " XHTML_NS "><p>x</p></div></text><contained>"
                             "<Organization><name value=\"O\"/></Organization></contained>"
                             "<name><given value=\"A\"/></name></Patient>");
    free(out);
}

static void test_fixtures_round_trip(void **state)
{
    (void)state;
    const char *dir = TSUNAGU_FIXTURES "/fhir";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 4, ".xml") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        char *text;
        size_t len;
        tsg_error err;
        assert_int_equal(tsg_read_file(path, 1 << 24, &text, &len, &err), TSG_OK);
        fhir_node *root = NULL;
        tsg_rc rc = fhir_xml_parse(arena, text, len, NULL, &root, &err);
        if (rc)
            fail_msg("%s: %s at %s: %s", de->d_name, tsg_rc_name(rc), err.location, err.message);
        assert_round_trip(root);
        free(text);
        n++;
    }
    closedir(d);
    assert_true(n >= 5);
}

static void test_check_xhtml(void **state)
{
    (void)state;
    static const char *const good[] = {
        "<div " XHTML_NS ">text</div>",
        "<div " XHTML_NS "/>",
        "  <div " XHTML_NS "><p>a<br/>b &amp; &#160;</p></div>\n",
        "<h:div xmlns:h=\"http://www.w3.org/1999/xhtml\"><h:b>x</h:b></h:div>",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        tsg_error err;
        tsg_rc rc = model_check_xhtml(good[i], strlen(good[i]), &err);
        if (rc) fail_msg("'%s' rejected: %s", good[i], err.message);
    }
    static const struct {
        const char *xhtml, *msg;
    } bad[] = {
        {"<div>no namespace</div>", "XHTML namespace"},
        {"<p " XHTML_NS ">x</p>", "div element"},
        {"<div " XHTML_NS "><p>x</div>", "expected </p>"},
        {"<div " XHTML_NS ">&nbsp;</div>", "undefined entity"},
        {"<!DOCTYPE div><div " XHTML_NS "/>", "div element"},
        {"<div " XHTML_NS "><!DOCTYPE x></div>", "DOCTYPE is not allowed"},
        {"<div " XHTML_NS "/><p/>", "nothing may follow"},
        {"<div " XHTML_NS "><svg xmlns=\"http://www.w3.org/2000/svg\"/></div>", "only hold XHTML"},
        {"<div " XHTML_NS ">\xC0\xAF</div>", "invalid UTF-8"},
        {"<div " XHTML_NS "><?php x ?></div>", "processing instructions"},
        {"plain text", "one XHTML div"},
        {"<div " XHTML_NS " xmlns:xlink=\"http://www.w3.org/1999/xlink\"><a xlink:href=\"x\">"
         "y</a></div>",
         "attribute xlink:href is not allowed"},
        {"<div " XHTML_NS " xmlns:h=\"http://www.w3.org/1999/xhtml\"><p class=\"a\" "
         "h:class=\"b\">y</p></div>",
         "attribute h:class is not allowed"},
        {"<div " XHTML_NS "><p foo:bar=\"b\">y</p></div>", "attribute foo:bar is not allowed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsg_error err;
        tsg_rc rc = model_check_xhtml(bad[i].xhtml, strlen(bad[i].xhtml), &err);
        if (rc != TSG_EINVAL) fail_msg("'%s' accepted", bad[i].xhtml);
        if (!strstr(err.message, bad[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].xhtml, err.message, bad[i].msg);
        assert_true(err.column >= 1);
    }
    tsg_error err;
    const char *bad_ref = "<div " XHTML_NS ">\n <b>&bad;</b></div>";
    assert_int_equal(model_check_xhtml(bad_ref, strlen(bad_ref), &err), TSG_EINVAL);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 5);
}

/* ------------------------------------------------------------------------
 * Negative: one per class of error
 * ------------------------------------------------------------------------ */

static void test_error_unknown_element(void **state)
{
    (void)state;
    expect_error("<Patient " FHIR_NS "><active value=\"true\"/><foo value=\"x\"/></Patient>",
                 TSG_EINVAL, "Patient.foo", "unknown element 'foo'");
    expect_error("<Patient " FHIR_NS "><name><given value=\"a\"/><nick value=\"b\"/></name>"
                 "</Patient>",
                 TSG_EINVAL, "Patient.name[0].nick", "unknown element 'nick' in HumanName");
    /* id and url are attributes, not elements, on data types */
    expect_error("<Patient " FHIR_NS "><name><id value=\"n\"/></name></Patient>", TSG_EINVAL,
                 "Patient.name[0].id", "must be written as an attribute");
}

static void test_error_location_and_line(void **state)
{
    (void)state;
    fhir_node *root;
    tsg_error err;
    const char *xml = "<Patient " FHIR_NS ">\n"
                      "  <name>\n"
                      "    <given value=\"a\"/>\n"
                      "    <given value=\"b\" bogus=\"1\"/>\n"
                      "  </name>\n"
                      "</Patient>";
    assert_int_equal(parse_lim(xml, NULL, &root, &err), TSG_EINVAL);
    assert_string_equal(err.location, "Patient.name[0].given[1]");
    assert_non_null(strstr(err.message, "unknown attribute bogus"));
    assert_int_equal(err.line, 4);
    assert_int_equal(err.column, 22);
}

static void test_error_out_of_order(void **state)
{
    (void)state;
    expect_error("<Patient " FHIR_NS "><gender value=\"male\"/><active value=\"true\"/></Patient>",
                 TSG_EINVAL, "Patient.active", "out of order");
    /* repeats of one element must be consecutive */
    expect_error("<Patient " FHIR_NS "><name><given value=\"a\"/><prefix value=\"Dr\"/>"
                 "<given value=\"b\"/></name></Patient>",
                 TSG_EINVAL, "Patient.name[0].given", "out of order");
    expect_error("<Patient " FHIR_NS "><gender value=\"male\"/><gender value=\"female\"/>"
                 "</Patient>",
                 TSG_EINVAL, "Patient.gender", "appears more than 1 time");
}

static void test_error_namespace(void **state)
{
    (void)state;
    expect_error("<Patient><active value=\"true\"/></Patient>", TSG_EINVAL, "",
                 "not in the FHIR namespace");
    expect_error("<Patient xmlns=\"http://hl7.org/fhir/v3\"/>", TSG_EINVAL, "",
                 "not in the FHIR namespace");
    expect_error("<Patient " FHIR_NS "><active xmlns=\"urn:x\" value=\"true\"/></Patient>",
                 TSG_EINVAL, "Patient.active", "not in the FHIR namespace");
    expect_error("<Patient " FHIR_NS "><x:active value=\"true\"/></Patient>", TSG_EINVAL, "Patient",
                 "prefix x is not bound");
    expect_error("<Patient " FHIR_NS "><text><status value=\"generated\"/><div>x</div></text>"
                 "</Patient>",
                 TSG_EINVAL, "Patient.text.div", "must be in the XHTML namespace");
    expect_error("<Patient " FHIR_NS "><text><status value=\"generated\"/><div " XHTML_NS ">"
                 "<b xmlns=\"urn:other\">x</b></div></text></Patient>",
                 TSG_EINVAL, "Patient.text.div", "only hold XHTML");
}

static void test_error_doctype_xxe(void **state)
{
    (void)state;
    expect_error("<?xml version=\"1.0\"?>\n"
                 "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n"
                 "<Patient " FHIR_NS "><name><family value=\"&e;\"/></name></Patient>",
                 TSG_EINVAL, "", "DOCTYPE is not allowed");
    /* inside the document too */
    expect_error("<Patient " FHIR_NS "><!DOCTYPE x></Patient>", TSG_EINVAL, "Patient",
                 "DOCTYPE is not allowed");
    fhir_node *root;
    tsg_error err;
    assert_int_equal(parse_lim("\n\n  <!DOCTYPE Patient SYSTEM \"http://evil/x.dtd\"><Patient/>",
                               NULL, &root, &err),
                     TSG_EINVAL);
    assert_int_equal(err.line, 3);
    assert_int_equal(err.column, 3);
    assert_string_equal(err.code, "security");
}

static void test_error_billion_laughs(void **state)
{
    (void)state;
    expect_error("<?xml version=\"1.0\"?>\n"
                 "<!DOCTYPE lolz [\n"
                 " <!ENTITY lol \"lol\">\n"
                 " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                 " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                 " <!ENTITY lol9 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
                 "]>\n"
                 "<Patient " FHIR_NS "><name><text value=\"&lol9;\"/></name></Patient>",
                 TSG_EINVAL, "", "DOCTYPE is not allowed");
}

static void test_error_entities_and_references(void **state)
{
    (void)state;
    expect_error("<Patient " FHIR_NS "><name><family value=\"a&foo;b\"/></name></Patient>",
                 TSG_EINVAL, "Patient.name[0].family", "undefined entity '&foo;'");
    expect_error("<Patient " FHIR_NS "><name><family value=\"a & b\"/></name></Patient>",
                 TSG_EINVAL, "Patient.name[0].family", "must start a reference");
    expect_error("<Patient " FHIR_NS "><name><family value=\"&#0;\"/></name></Patient>", TSG_EINVAL,
                 "Patient.name[0].family", "not a valid XML character");
    expect_error("<Patient " FHIR_NS "><name><family value=\"&#xD800;\"/></name></Patient>",
                 TSG_EINVAL, "Patient.name[0].family", "not a valid XML character");
    expect_error("<Patient " FHIR_NS "><name><family value=\"&#x110000;\"/></name></Patient>",
                 TSG_EINVAL, "Patient.name[0].family", "not a valid XML character");
    expect_error("<Patient " FHIR_NS "><name><family value=\"&#12a;\"/></name></Patient>",
                 TSG_EINVAL, "Patient.name[0].family", "malformed character reference");
    expect_error("<Patient " FHIR_NS "><name><family value=\"a<b\"/></name></Patient>", TSG_EINVAL,
                 "Patient.name[0]", "'<' is not allowed in an attribute value");
}

static void test_error_invalid_utf8(void **state)
{
    (void)state;
    expect_error("<Patient " FHIR_NS "><name><family value=\"\xE5\xB1\"/></name></Patient>",
                 TSG_EINVAL, "", "invalid UTF-8");
    expect_error("<Patient " FHIR_NS "><name><family value=\"\xED\xA0\x80\"/></name></Patient>",
                 TSG_EINVAL, "", "invalid UTF-8"); /* a surrogate */
    expect_error("<Patient " FHIR_NS "><name><family value=\"\xC1\x81\"/></name></Patient>",
                 TSG_EINVAL, "", "invalid UTF-8"); /* overlong */
    expect_error("<Patient " FHIR_NS "><name><family value=\"a\x01\"/></name></Patient>",
                 TSG_EINVAL, "", "control character U+0001");
    fhir_node *root;
    tsg_error err;
    assert_int_equal(parse_lim("<Patient " FHIR_NS ">\n <name><family value=\"山\xFF\"/>"
                               "</name></Patient>",
                               NULL, &root, &err),
                     TSG_EINVAL);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 24);
}

static void test_error_empty_value_and_element(void **state)
{
    (void)state;
    expect_error("<Patient " FHIR_NS "><gender value=\"\"/></Patient>", TSG_EINVAL,
                 "Patient.gender", "must not be empty");
    expect_error("<Patient " FHIR_NS "><name id=\"\"><given value=\"a\"/></name></Patient>",
                 TSG_EINVAL, "Patient.name[0]", "must not be empty");
    expect_error("<Patient " FHIR_NS "><active/></Patient>", TSG_EINVAL, "Patient.active",
                 "neither a value nor children");
    expect_error("<Patient " FHIR_NS "><name>\n</name></Patient>", TSG_EINVAL, "Patient.name[0]",
                 "neither a value nor children");
    expect_error("<Patient " FHIR_NS "><contained/></Patient>", TSG_EINVAL, "Patient.contained[0]",
                 "must hold a resource");
    expect_error("<Patient " FHIR_NS "><contained> </contained></Patient>", TSG_EINVAL,
                 "Patient.contained[0]", "must hold a resource");
}

static void test_error_bad_primitive_values(void **state)
{
    (void)state;
    expect_error("<Patient " FHIR_NS "><active value=\"yes\"/></Patient>", TSG_EINVAL,
                 "Patient.active", "not a boolean");
    expect_error("<Patient " FHIR_NS "><active value=\"True\"/></Patient>", TSG_EINVAL,
                 "Patient.active", "not a boolean");
    expect_error("<Patient " FHIR_NS "><multipleBirthInteger value=\"1.5\"/></Patient>", TSG_EINVAL,
                 "Patient.multipleBirthInteger", "not an integer");
    expect_error("<Patient " FHIR_NS "><multipleBirthInteger value=\"2147483648\"/></Patient>",
                 TSG_EINVAL, "Patient.multipleBirthInteger", "outside the 32-bit range");
    expect_error("<Patient " FHIR_NS "><multipleBirthInteger value=\"-2147483649\"/></Patient>",
                 TSG_EINVAL, "Patient.multipleBirthInteger", "outside the 32-bit range");
    expect_error("<Observation " FHIR_NS "><status value=\"final\"/><code><text value=\"x\"/>"
                 "</code><valueQuantity><value value=\"1.5.0\"/></valueQuantity></Observation>",
                 TSG_EINVAL, "Observation.valueQuantity.value", "not a decimal");
    expect_error("<Observation " FHIR_NS "><status value=\"final\"/><code><text value=\"x\"/>"
                 "</code><valueQuantity><value value=\".5\"/></valueQuantity></Observation>",
                 TSG_EINVAL, "Observation.valueQuantity.value", "not a decimal");
    expect_error("<Questionnaire " FHIR_NS "><status value=\"draft\"/><item><linkId value=\"1\"/>"
                 "<type value=\"string\"/><maxLength value=\"-1\"/></item><item><linkId "
                 "value=\"2\"/><type value=\"string\"/><maxLength value=\"x\"/></item>"
                 "</Questionnaire>",
                 TSG_EINVAL, "Questionnaire.item[1].maxLength", "not an integer");
    expect_error("<Bundle " FHIR_NS "><type value=\"searchset\"/><total value=\"-1\"/></Bundle>",
                 TSG_EINVAL, "Bundle.total", "not an unsignedInt");
}

static void test_error_unknown_resource_type(void **state)
{
    (void)state;
    expect_error("<Patientx " FHIR_NS "/>", TSG_EINVAL, "", "unknown resource type 'Patientx'");
    expect_error("<DomainResource " FHIR_NS "/>", TSG_EINVAL, "",
                 "unknown resource type 'DomainResource'");
    expect_error("<HumanName " FHIR_NS "/>", TSG_EINVAL, "", "unknown resource type 'HumanName'");
    expect_error("<Patient " FHIR_NS "><contained><Foo/></contained></Patient>", TSG_EINVAL,
                 "Patient.contained[0]", "unknown resource type 'Foo'");
    expect_error("<Patient " FHIR_NS "><contained><Basic><code><text value=\"a\"/></code></Basic>"
                 "<Basic><code><text value=\"b\"/></code></Basic></contained></Patient>",
                 TSG_EINVAL, "Patient.contained[0]", "more than one resource");
}

static void test_error_unknown_attribute(void **state)
{
    (void)state;
    expect_error("<Patient " FHIR_NS "><active value=\"true\" foo=\"x\"/></Patient>", TSG_EINVAL,
                 "Patient.active", "unknown attribute foo");
    expect_error("<Patient " FHIR_NS " id=\"x\"/>", TSG_EINVAL, "", "unknown attribute id");
    expect_error("<Patient " FHIR_NS "><name value=\"x\"><given value=\"a\"/></name></Patient>",
                 TSG_EINVAL, "Patient.name[0]", "unknown attribute value");
    expect_error("<Patient " FHIR_NS " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
                 "<active xsi:type=\"x\" value=\"true\"/></Patient>",
                 TSG_EINVAL, "Patient.active", "unknown attribute xsi:type");
    expect_error("<Patient " FHIR_NS "><active value=\"true\" value=\"false\"/></Patient>",
                 TSG_EINVAL, "Patient", "appears twice");
    /* past eight attributes the duplicate check goes through a hash table */
    expect_error("<Patient " FHIR_NS " xmlns:a=\"u:1\" xmlns:b=\"u:1\" xmlns:c=\"u:1\" "
                 "xmlns:d=\"u:1\" xmlns:e=\"u:1\" xmlns:f=\"u:1\" xmlns:g=\"u:1\" "
                 "xmlns:h=\"u:1\" xmlns:i=\"u:1\" xmlns:c=\"u:2\"/>",
                 TSG_EINVAL, "", "attribute xmlns:c appears twice");
    expect_error("<Patient " FHIR_NS "><contained id=\"c\"><Basic/></contained></Patient>",
                 TSG_EINVAL, "Patient.contained[0]", "unknown attribute id");
    /* xsi:schemaLocation is accepted on the root element only, in the XSI namespace only */
    fhir_node *p = parse_ok("<Patient " FHIR_NS " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-"
                            "instance\" xsi:schemaLocation=\"http://hl7.org/fhir patient.xsd\">"
                            "<active value=\"true\"/></Patient>");
    assert_int_equal(p->nkids, 1);
    expect_error("<Patient " FHIR_NS " xmlns:xsi=\"urn:not-xsi\" xsi:schemaLocation=\"x\"/>",
                 TSG_EINVAL, "", "unknown attribute xsi:schemaLocation");
    expect_error("<Patient " FHIR_NS " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
                 "<active xsi:schemaLocation=\"x\" value=\"true\"/></Patient>",
                 TSG_EINVAL, "Patient.active", "unknown attribute xsi:schemaLocation");
}

static void test_error_text_outside_div(void **state)
{
    (void)state;
    expect_error("<Patient " FHIR_NS "><active value=\"true\">yes</active></Patient>", TSG_EINVAL,
                 "Patient.active", "text is not allowed");
    expect_error("<Patient " FHIR_NS ">hello<active value=\"true\"/></Patient>", TSG_EINVAL,
                 "Patient", "text is not allowed");
    expect_error("<Patient " FHIR_NS "><name><![CDATA[x]]></name></Patient>", TSG_EINVAL,
                 "Patient.name[0]", "CDATA sections are only allowed inside the narrative div");
    expect_error("junk<Patient " FHIR_NS "/>", TSG_EINVAL, "", "text is not allowed");
    expect_error("<Patient " FHIR_NS "/>junk", TSG_EINVAL, "", "may follow the root");
    expect_error("<Patient " FHIR_NS "/><Patient " FHIR_NS "/>", TSG_EINVAL, "",
                 "may follow the root");
}

static void test_error_malformed_xml(void **state)
{
    (void)state;
    expect_error("", TSG_EINVAL, "", "no root element");
    expect_error("<Patient " FHIR_NS "><active value=\"true\"/>", TSG_EINVAL, "Patient",
                 "<Patient> is not closed");
    expect_error("<Patient " FHIR_NS "><name><given value=\"a\"/></nam></Patient>", TSG_EINVAL,
                 "Patient.name[0]", "expected </name>");
    expect_error("<Patient " FHIR_NS "><active value=true/></Patient>", TSG_EINVAL, "Patient",
                 "must be quoted");
    expect_error("<Patient " FHIR_NS "><active value=\"true/></Patient>", TSG_EINVAL, "Patient",
                 "'<' is not allowed");
    expect_error("<Patient " FHIR_NS "><active value=\"true", TSG_EINVAL, "Patient",
                 "value of attribute value is not closed");
    expect_error("<Patient " FHIR_NS "><?pi x?></Patient>", TSG_EINVAL, "Patient",
                 "processing instructions are not allowed");
    expect_error(" <?xml version=\"1.0\"?><Patient " FHIR_NS "/>", TSG_EINVAL, "",
                 "must be at the very start");
    expect_error("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Patient " FHIR_NS "/>",
                 TSG_EINVAL, "", "must be UTF-8");
    expect_error("<Patient " FHIR_NS "><!-- never closed </Patient>", TSG_EINVAL, "Patient",
                 "comment is not closed");
    expect_error("<Patient " FHIR_NS "><!-- a -- b --></Patient>", TSG_EINVAL, "Patient",
                 "'--' is not allowed inside a comment");
}

static void test_limits(void **state)
{
    (void)state;
    const char *xml = "<Patient " FHIR_NS "><name><given value=\"abcdef\"/><given value=\"b\"/>"
                      "<given value=\"c\"/></name></Patient>";
    tsg_limits lim = tsg_limits_default;
    lim.max_body_bytes = 20;
    expect_error_lim(xml, &lim, TSG_ELIMIT, "", "max_body_bytes");

    lim = tsg_limits_default;
    lim.max_depth = 2; /* Patient, name — not given */
    expect_error_lim(xml, &lim, TSG_ELIMIT, "Patient.name[0].given[0]", "max_depth (2)");

    lim = tsg_limits_default;
    lim.max_string_bytes = 5;
    expect_error_lim(xml, &lim, TSG_ELIMIT, "Patient.name[0].given[0]", "max_string_bytes (5)");

    lim = tsg_limits_default;
    lim.max_array_items = 2;
    expect_error_lim(xml, &lim, TSG_ELIMIT, "Patient.name[0].given[2]", "max_array_items (2)");

    /* the div counts against max_string_bytes and its elements against max_depth */
    const char *div = "<Patient " FHIR_NS "><text><status value=\"generated\"/><div " XHTML_NS
                      "><p><b>bold</b></p></div></text></Patient>";
    lim = tsg_limits_default;
    lim.max_string_bytes = 40;
    expect_error_lim(div, &lim, TSG_ELIMIT, "Patient.text.div", "max_string_bytes (40)");
    lim = tsg_limits_default;
    lim.max_depth = 4; /* Patient, text, div, p — not b */
    expect_error_lim(div, &lim, TSG_ELIMIT, "Patient.text.div", "max_depth (4)");
    lim.max_depth = 5;
    fhir_node *root;
    tsg_error err;
    assert_int_equal(parse_lim(div, &lim, &root, &err), TSG_OK);

    /* too many attributes on one tag */
    char big[4096] = "<Patient " FHIR_NS;
    for (int i = 0; i < 70; i++) {
        size_t n = strlen(big);
        snprintf(big + n, sizeof big - n, " xmlns:p%d=\"urn:x\"", i);
    }
    size_t n = strlen(big);
    snprintf(big + n, sizeof big - n, "/>");
    expect_error_lim(big, NULL, TSG_ELIMIT, "", "more than 64 attributes");
}

static void test_no_error_struct(void **state)
{
    (void)state;
    /* err may be NULL: only the code comes back */
    fhir_node *root;
    assert_int_equal(fhir_xml_parse(arena, "<x/>", 4, NULL, &root, NULL), TSG_EINVAL);
    tsg_limits lim = tsg_limits_default;
    lim.max_depth = 1;
    const char *xml = "<Patient " FHIR_NS "><active value=\"true\"/></Patient>";
    assert_int_equal(fhir_xml_parse(arena, xml, strlen(xml), &lim, &root, NULL), TSG_ELIMIT);
    assert_int_equal(model_check_xhtml("<p/>", 4, NULL), TSG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_patient_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decimals_kept_as_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primitive_with_id_and_extension_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extension_url_merged_in_definition_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parameters_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_div_kept_as_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_div_reserialised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_div_kept_whatever_its_spacing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_div_carriage_return_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_div_prefixed_xhtml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefixed_fhir_and_bom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attribute_references_and_whitespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_pretty_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixtures_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_xhtml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_unknown_element, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_location_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_namespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_doctype_xxe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_billion_laughs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_entities_and_references, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_empty_value_and_element, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_bad_primitive_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_unknown_resource_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_unknown_attribute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_text_outside_div, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_malformed_xml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_error_struct, setup, teardown),
    };
    return cmocka_run_group_tests_name("xml", tests, NULL, NULL);
}
