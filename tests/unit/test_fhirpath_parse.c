/*
 * test_fhirpath_parse.c — the FHIRPath compiler: precedence, literals, every
 * error class with its column, the named limits, and every expression of the
 * official R4 suite (TSUNAGU_CORPUS/fhirpath/tests-fhir-r4.xml; skipped with a
 * message when the corpus is absent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fhirpath/fhirpath.h"
#include "fhirpath/fp_ast.h"

/* Compiles src (must succeed) and returns its dump; the caller frees it. */
static char *dump_of(const char *src)
{
    fp_expr *e = NULL;
    tsg_error err;
    tsg_rc rc = fp_compile(src, strlen(src), &e, &err);
    if (rc != TSG_OK)
        fail_msg("'%s' does not compile: %s (column %u)", src, err.message, err.column);
    tsg_buf b;
    tsg_buf_init(&b, 0);
    size_t n = fp_expr_dump(e, &b);
    assert_int_equal(tsg_buf_rc(&b), TSG_OK);
    assert_int_equal(n, b.len);
    fp_expr_free(e);
    char *s = tsg_buf_take(&b, NULL);
    tsg_buf_free(&b);
    return s;
}

static void check(const char *src, const char *want)
{
    char *got = dump_of(src);
    if (strcmp(got, want) != 0) fail_msg("'%s'\n  dumps as %s\n  expected %s", src, got, want);
    free(got);
}

/* src must fail with rc at column, with a message containing `part`. */
static void check_err_n(const char *src, size_t len, tsg_rc rc, unsigned column, const char *part)
{
    fp_expr *e = (fp_expr *)1;
    tsg_error err;
    tsg_rc got = fp_compile(src, len, &e, &err);
    if (got != rc || err.column != column || !strstr(err.message, part))
        fail_msg("'%.60s': got rc %d column %u \"%s\"; expected rc %d column %u \"…%s…\"", src,
                 (int)got, err.column, err.message, (int)rc, column, part);
    assert_null(e);
    assert_int_equal(err.rc, rc);
}

static void check_err(const char *src, tsg_rc rc, unsigned column, const char *part)
{
    check_err_n(src, strlen(src), rc, column, part);
}

/* The root node of src, compiled into *e (the caller frees it). */
static const fp_node *root_of(const char *src, fp_expr **e)
{
    tsg_error err;
    assert_int_equal(fp_compile(src, strlen(src), e, &err), TSG_OK);
    return (*e)->root;
}

/* ------------------------------------------------------------------------ */

static void test_precedence(void **state)
{
    (void)state;
    check("1 + 2 * 3", "(+ 1 (* 2 3))");
    check("(1 + 2) * 3", "(* (+ 1 2) 3)");
    check("a and b or c implies d", "(implies (or (and a b) c) d)");
    check("a implies b implies c", "(implies a (implies b c))");
    check("a or b and c", "(or a (and b c))");
    check("a xor b or c", "(or (xor a b) c)");
    check("-1.abs()", "(- (. 1 (call abs)))");
    check("-a * b", "(* (- a) b)");
    check("- -a", "(- (- a))");
    check("+a[0]", "(+ ([] a 0))");
    check("a is FHIR.Patient", "(is a FHIR.Patient)");
    check("a as Period", "(as a Period)");
    check("x | y = z", "(= (| x y) z)");
    check("a - b - c", "(- (- a b) c)");
    check("5 div 2 mod 3 * 4 / 5", "(/ (* (mod (div 5 2) 3) 4) 5)");
    check("'a' & 'b' + 'c' - 'd'", "(- (+ (& 'a' 'b') 'c') 'd')");
    check("1 + 2 is Integer", "(is (+ 1 2) Integer)");
    check("a is T | b", "(| (is a T) b)");
    check("a | b < c", "(< (| a b) c)");
    check("a < b = c", "(= (< a b) c)");
    check("a <= b >= c > d < e", "(< (> (>= (<= a b) c) d) e)");
    check("a = b ~ c != d !~ e", "(!~ (!= (~ (= a b) c) d) e)");
    check("a = b and c != d", "(and (= a b) (!= c d))");
    check("a in b and c contains d", "(and (in a b) (contains c d))");
    check("a = b in c", "(in (= a b) c)");
    check("1 > 2 is Boolean", "(> 1 (is 2 Boolean))");
    check("a.b[1 + 2].c", "(. ([] (. a b) (+ 1 2)) c)");
    check("a[0][1]", "([] ([] a 0) 1)");
}

static void test_paths_and_calls(void **state)
{
    (void)state;
    check("Patient.name.given", "(. (. Patient name) given)");
    check("Patient.name.given()", "(. (. Patient name) (call given))");
    check("Patient.name.where(use = 'official').given.first()",
          "(. (. (. (. Patient name) (call where (= use 'official'))) given) (call first))");
    check("where(a, b, c)", "(call where a b c)");
    check("iif(a, 1, {})", "(call iif a 1 {})");
    check("a.is(FHIR.Patient)", "(. a (call is (. FHIR Patient)))");
    check("a.as(Quantity).value", "(. (. a (call as Quantity)) value)");
    check("a.ofType(FHIR.`Patient`)", "(. a (call ofType (. FHIR Patient)))");
    check("is(T)", "(call is T)");
    check("contains('x')", "(call contains 'x')");
    check("x.contains('a')", "(. x (call contains 'a'))");
    check("in.is.as.contains", "(. (. (. in is) as) contains)");
    check("text.div", "(. text div)");
    check("text.`div`", "(. text div)");
    check("`Patient`.name.`given`", "(. (. Patient name) given)");
    check("`a b`.`c\\`d`", "(. `a b` `c\\`d`)");
    check("day.weeks", "(. day weeks)");
    check("$this.name", "(. $this name)");
    check("$index + $total", "(+ $index $total)");
    check("x.$this", "(. x $this)");
    check("%resource.id", "(. %resource id)");
    check("%'vs-x' | %`ext-y` | %sct", "(| (| %`vs-x` %`ext-y`) %sct)");
    check("a.is(T) is T", "(is (. a (call is T)) T)");
    check("a is System.String.x", "(is a System.`String.x`)");
    check("a is `x y`", "(is a `x y`)");
    check("a /* c */ . /* d */ b // e", "(. a b)");
    check("2 // comment\n/ 2", "(/ 2 2)");
}

static void test_literals(void **state)
{
    (void)state;
    check("{}", "{}");
    check("true and false", "(and true false)");
    check("1.50", "1.50");
    check("007", "007");
}

static void test_literal_values(void **state)
{
    (void)state;
    check("0.0.toString()", "(. 0.0 (call toString))");
    check("1.5.abs()", "(. 1.5 (call abs))");
    check("'a\\'b'", "'a\\'b'");
    check("'\\u0041\\t\\n\\r\\f\\\\\\/\\\"\\`'", "'A\\t\\n\\r\\f\\\\/\"`'");
    check("'\\u00e9\\uD83D\\uDE00'", "'\xC3\xA9\xF0\x9F\x98\x80'");
    check("'\\u0001'", "'\\u0001'");
    check("''", "''");
    check("@2014", "@2014");
    check("@2014-01", "@2014-01");
    check("@2014-01-25", "@2014-01-25");
    check("@2015T", "@2015T");
    check("@2015-02T", "@2015-02T");
    check("@2015-02-04T14", "@2015-02-04T14");
    check("@2014-01-25T14:30:14.559+09:00", "@2014-01-25T14:30:14.559+09:00");
    check("@2014-01-25T14:30:14Z.is(DateTime)", "(. @2014-01-25T14:30:14Z (call is DateTime))");
    check("@T14:30", "@T14:30");
    check("@T14:34:28.123.is(Time)", "(. @T14:34:28.123 (call is Time))");
    check("@2000-02-29", "@2000-02-29");
    check("@2014-1", "(- @2014 1)"); /* optional parts only when complete */
    check("4 'wk'", "(quantity 4 'wk')");
    check("10 days", "(quantity 10 days)");
    check("1 week.toString()", "(. (quantity 1 week) (call toString))");
    check("1.5 'mg' + 2 milliseconds", "(+ (quantity 1.5 'mg') (quantity 2 milliseconds))");
    check("185 '[lb_av]'", "(quantity 185 '[lb_av]')");
    check("1 '\\'wk\\''", "(quantity 1 '\\'wk\\'')");

    fp_expr *e;
    const fp_node *n = root_of("12", &e);
    assert_int_equal(n->kind, FP_INTEGER);
    assert_string_equal(n->text.s, "12");
    assert_int_equal(n->pos, 0);
    fp_expr_free(e);
    n = root_of("  1.50", &e);
    assert_int_equal(n->kind, FP_DECIMAL);
    assert_string_equal(n->text.s, "1.50");
    assert_int_equal(fp_expr_column(e, n->pos), 3);
    fp_expr_free(e);
    n = root_of("@2015T", &e);
    assert_int_equal(n->kind, FP_LIT_DATETIME);
    assert_string_equal(n->temporal.text.s, "2015T");
    assert_string_equal(n->temporal.value.s, "2015");
    fp_expr_free(e);
    n = root_of("@2015-02-04T14:34", &e);
    assert_int_equal(n->kind, FP_LIT_DATETIME);
    assert_string_equal(n->temporal.value.s, "2015-02-04T14:34");
    fp_expr_free(e);
    n = root_of("@2015-02-04", &e);
    assert_int_equal(n->kind, FP_LIT_DATE);
    assert_string_equal(n->temporal.value.s, "2015-02-04");
    fp_expr_free(e);
    n = root_of("@T14:34", &e);
    assert_int_equal(n->kind, FP_LIT_TIME);
    assert_string_equal(n->temporal.value.s, "14:34");
    assert_false(n->temporal.has_zone);
    fp_expr_free(e);
    n = root_of("@T14:34:28+10:00", &e);
    assert_int_equal(n->kind, FP_LIT_TIME);
    assert_true(n->temporal.has_zone);
    fp_expr_free(e);
    n = root_of("7.5 days", &e);
    assert_int_equal(n->kind, FP_QUANTITY);
    assert_string_equal(n->quantity.number.s, "7.5");
    assert_true(n->quantity.decimal);
    assert_true(n->quantity.calendar);
    assert_string_equal(n->quantity.unit.s, "days");
    fp_expr_free(e);
    n = root_of("4 'wk'", &e);
    assert_false(n->quantity.decimal);
    assert_false(n->quantity.calendar);
    assert_string_equal(n->quantity.unit.s, "wk");
    fp_expr_free(e);
    n = root_of("'a\\u0000b'", &e); /* U+0000 is kept: strings carry a length */
    assert_int_equal(n->kind, FP_STRING);
    assert_int_equal(n->text.len, 3);
    fp_expr_free(e);
    n = root_of("a is FHIR.Patient", &e);
    assert_int_equal(n->kind, FP_TYPE);
    assert_int_equal(n->op, FP_OP_IS);
    assert_string_equal(n->type.ns.s, "FHIR");
    assert_string_equal(n->type.name.s, "Patient");
    assert_int_equal(n->pos, 2);
    fp_expr_free(e);
    n = root_of("a as Quantity", &e);
    assert_int_equal(n->type.ns.len, 0);
    assert_string_equal(n->type.name.s, "Quantity");
    fp_expr_free(e);
    n = root_of("a.where(b, c)", &e);
    assert_int_equal(n->kind, FP_CALL);
    assert_string_equal(n->call.name.s, "where");
    assert_int_equal(n->call.nargs, 2);
    assert_int_equal(n->call.target->kind, FP_MEMBER);
    assert_null(n->call.target->call.target);
    assert_int_equal(n->pos, 2);
    assert_int_equal(n->height, 2);
    fp_expr_free(e);
}

static void test_errors(void **state)
{
    (void)state;
    check_err("'abc", TSG_EINVAL, 1, "unterminated string");
    check_err("a.`abc", TSG_EINVAL, 3, "unterminated delimited identifier");
    check_err("1 + 'a\\qb'", TSG_EINVAL, 7, "unknown escape \\q");
    check_err("'\\u12G4'", TSG_EINVAL, 2, "four hexadecimal digits");
    check_err("'\\uD800'", TSG_EINVAL, 2, "surrogate");
    check_err("'\\uDC00\\uD800'", TSG_EINVAL, 2, "surrogate");
    check_err("a.``", TSG_EINVAL, 3, "empty delimited identifier");
    check_err("@2014-13", TSG_EINVAL, 1, "'@2014-13' is not a valid date");
    check_err("x = @2014-02-30", TSG_EINVAL, 5, "'@2014-02-30' is not a valid date");
    check_err("@1900-02-29", TSG_EINVAL, 1, "not a valid date");
    check_err("@0000", TSG_EINVAL, 1, "not a valid date");
    check_err("@T25:00", TSG_EINVAL, 1, "'@T25:00' is not a valid time");
    check_err("@2014-01-01T10:60", TSG_EINVAL, 1, "is not a valid date-time");
    check_err("@2014-01-01T10:00+15:00", TSG_EINVAL, 1, "is not a valid date-time");
    check_err("@T", TSG_EINVAL, 1, "expected a time after '@T'");
    check_err("@201", TSG_EINVAL, 1, "expected a date or a time");
    check_err("where(a = b", TSG_EINVAL, 12, "expected ')' after the arguments of where");
    check_err("x.where(a b)", TSG_EINVAL, 11,
              "expected ')' after the arguments of where, found 'b'");
    check_err("(1 + 2", TSG_EINVAL, 7, "expected ')' to close the '(' at column 1");
    check_err("a[1", TSG_EINVAL, 4, "expected ']' to close the '[' at column 2");
    check_err("2 + 2 /", TSG_EINVAL, 8,
              "expected an expression after '/', found end of expression");
    check_err("2 + 2 /* not finished", TSG_EINVAL, 7, "unterminated comment");
    check_err("a.", TSG_EINVAL, 3, "expected a name after '.'");
    check_err("a.'b'", TSG_EINVAL, 3, "expected a name after '.', found the string 'b'");
    check_err("a b", TSG_EINVAL, 3, "expected an operator or the end of the expression, found 'b'");
    check_err("1.", TSG_EINVAL, 3, "expected a name after '.'");
    check_err("f())", TSG_EINVAL, 4, "found ')'");
    check_err("$foo", TSG_EINVAL, 1, "unknown variable '$foo'");
    check_err("a ! b", TSG_EINVAL, 3, "unexpected '!'");
    check_err("a # b", TSG_EINVAL, 3, "unexpected character '#'");
    check_err("'\xC3\xA9' + #", TSG_EINVAL, 7,
              "unexpected character '#'"); /* characters, not bytes */
    check_err("'\xC3\xA9' + \xC3\xA9", TSG_EINVAL, 7, "unexpected character '\xC3\xA9'");
    check_err("a +\n\tb \x01", TSG_EINVAL, 8, "unexpected character U+0001");
    check_err("{1}", TSG_EINVAL, 2, "expected '}' after '{'");
    check_err("a is 1", TSG_EINVAL, 6, "expected a type name after 'is'");
    check_err("a as FHIR.", TSG_EINVAL, 11, "expected a type name after '.'");
    check_err("%1", TSG_EINVAL, 2, "environment variable");
    check_err("and", TSG_EINVAL, 1, "expected an expression, found 'and'");
    check_err("a or div", TSG_EINVAL, 6, "expected an expression after 'or', found 'div'");
    check_err("", TSG_EINVAL, 1, "empty");
    check_err("  // nothing", TSG_EINVAL, 13, "empty");
    check_err("a = \xFF", TSG_EINVAL, 5, "not valid UTF-8");
    check_err_n("a\0b", 3, TSG_EINVAL, 2, "unexpected character U+0000");
    check_err("@2014-01-01T10:00'x'", TSG_EINVAL, 18, "expected an operator");
    check_err("1 'mg' 'x'", TSG_EINVAL, 8, "expected an operator");

    /* err may be NULL */
    fp_expr *e = NULL;
    assert_int_equal(fp_compile("(", 1, &e, NULL), TSG_EINVAL);
    assert_null(e);
    fp_expr_free(NULL);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    for (size_t k = 0; k < n; k++) memcpy(s + hl + k * ul, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

static void compile_ok(const char *src)
{
    fp_expr *e = NULL;
    tsg_error err;
    tsg_rc rc = fp_compile(src, strlen(src), &e, &err);
    if (rc != TSG_OK) fail_msg("%.40s… does not compile: %s", src, err.message);
    tsg_buf b;
    tsg_buf_init(&b, 0);
    fp_expr_dump(e, &b);
    assert_int_equal(tsg_buf_rc(&b), TSG_OK);
    tsg_buf_free(&b);
    fp_expr_free(e);
}

static void test_limits(void **state)
{
    (void)state;
    char *s;
    /* nesting: parentheses, signs, paths, right-nested implies, unions, calls */
    s = repeat("", "(", 200, "1");
    char *t = repeat(s, ")", 200, "");
    compile_ok(t);
    free(s);
    free(t);
    s = repeat("", "(", 100000, "1");
    check_err_n(s, 60000, TSG_ELIMIT, 257, "FP_LIMIT_DEPTH");
    free(s);
    s = repeat("", "-", 60000, "1");
    check_err(s, TSG_ELIMIT, 256, "FP_LIMIT_DEPTH");
    free(s);
    s = repeat("", "-", 100000, "1");
    check_err(s, TSG_ELIMIT, 0, "FP_LIMIT_EXPR_BYTES");
    free(s);
    s = repeat("a", ".a", 200, "");
    compile_ok(s);
    free(s);
    s = repeat("a", ".a", 30000, "");
    check_err(s, TSG_ELIMIT, 513, "FP_LIMIT_DEPTH"); /* after the 256th '.' */
    free(s);
    s = repeat("a", ".a", 100000, "");
    check_err(s, TSG_ELIMIT, 0, "FP_LIMIT_EXPR_BYTES");
    free(s);
    s = repeat("a", " implies a", 1000, "");
    check_err(s, TSG_ELIMIT, 2561, "FP_LIMIT_DEPTH");
    free(s);
    s = repeat("1", "|1", 20000, "");
    check_err(s, TSG_ELIMIT, 512, "FP_LIMIT_DEPTH");
    free(s);
    s = repeat("", "f(", 20000, "");
    check_err(s, TSG_ELIMIT, 513, "FP_LIMIT_DEPTH");
    free(s);
    s = repeat("", "a[", 20000, "");
    check_err(s, TSG_ELIMIT, 513, "FP_LIMIT_DEPTH");
    free(s);
    s = repeat("f(1", ",1", 31, ")");
    compile_ok(s);
    free(s);
    s = repeat("f(1", ",1", 32, ")");
    check_err(s, TSG_ELIMIT, 67, "more than 32 arguments to f (FP_LIMIT_ARGS)");
    free(s);
    s = repeat("a is A", ".B", 30000, "");
    compile_ok(s); /* a long qualified name is one node, joined in linear time */
    free(s);
    /* the length limit itself */
    s = repeat("'", "x", FP_LIMIT_EXPR_BYTES - 2, "'");
    compile_ok(s);
    free(s);
    s = repeat("'", "x", FP_LIMIT_EXPR_BYTES - 1, "'");
    check_err(s, TSG_ELIMIT, 0, "longer than 65536 bytes");
    free(s);
}

/* ------------------------------------------------------------------------
 * The official suite
 * ------------------------------------------------------------------------ */

typedef struct suite_expr {
    char *name;
    char *text;
    int syntax_invalid;
} suite_expr;

/* Decodes the five XML entities and numeric references of s[0..n). */
static char *xml_text(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') {
            out[o++] = s[i++];
            continue;
        }
        static const struct {
            const char *ent;
            char c;
        } ents[] = {
            {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
        int done = 0;
        for (size_t k = 0; k < 5 && !done; k++) {
            size_t el = strlen(ents[k].ent);
            if (i + el <= n && memcmp(s + i, ents[k].ent, el) == 0) {
                out[o++] = ents[k].c;
                i += el;
                done = 1;
            }
        }
        if (!done && i + 2 < n && s[i + 1] == '#') {
            char *end;
            int hex = s[i + 2] == 'x';
            unsigned long cp = strtoul(s + i + 2 + hex, &end, hex ? 16 : 10);
            if (*end == ';' && cp < 0x110000) {
                o += (size_t)tsg_utf8_encode((uint32_t)cp, out + o);
                i = (size_t)(end + 1 - s);
                done = 1;
            }
        }
        if (!done) out[o++] = s[i++];
    }
    out[o] = '\0';
    return out;
}

/* The <expression>s of the suite outside XML comments; returns the count. */
static size_t read_suite(const char *xml, size_t len, suite_expr **out)
{
    size_t n = 0, cap = 1024;
    suite_expr *v = calloc(cap, sizeof *v);
    assert_non_null(v);
    char name[256] = "";
    const char *end = xml + len;
    for (const char *p = xml; p < end; p++) {
        if (*p != '<') continue;
        if (strncmp(p, "<!--", 4) == 0) {
            const char *q = strstr(p, "-->");
            if (!q) break;
            p = q + 2;
        } else if (strncmp(p, "<test ", 6) == 0) {
            const char *q = strstr(p, "name=\"");
            if (q) {
                q += 6;
                const char *r = strchr(q, '"');
                snprintf(name, sizeof name, "%.*s", (int)(r - q), q);
            }
        } else if (strncmp(p, "<expression", 11) == 0) {
            const char *gt = strchr(p, '>');
            const char *close = gt ? strstr(gt, "</expression>") : NULL;
            assert_non_null(close);
            if (n == cap) {
                cap *= 2;
                v = realloc(v, cap * sizeof *v);
                assert_non_null(v);
            }
            char attrs[256];
            snprintf(attrs, sizeof attrs, "%.*s", (int)(gt - p), p);
            v[n].name = strdup(name);
            v[n].text = xml_text(gt + 1, (size_t)(close - gt - 1));
            v[n].syntax_invalid = strstr(attrs, "invalid=\"syntax\"") != NULL;
            n++;
            p = close;
        }
    }
    *out = v;
    return n;
}

static void test_suite(void **state)
{
    (void)state;
    const char *path = TSUNAGU_CORPUS "/fhirpath/tests-fhir-r4.xml";
    char *xml;
    size_t len;
    tsg_error err;
    if (tsg_read_file(path, 64u << 20, &xml, &len, &err) != TSG_OK) {
        printf("SKIP suite: %s (%s)\n", path, err.message);
        skip();
    }
    suite_expr *v;
    size_t n = read_suite(xml, len, &v);
    free(xml);
    assert_true(n >= 900);
    size_t compiled = 0, wrong = 0, syntax = 0;
    for (size_t k = 0; k < n; k++) {
        fp_expr *e = NULL;
        tsg_rc rc = fp_compile(v[k].text, strlen(v[k].text), &e, &err);
        syntax += (size_t)v[k].syntax_invalid;
        if (rc == TSG_OK) {
            compiled++;
            tsg_buf b;
            tsg_buf_init(&b, 0);
            fp_expr_dump(e, &b);
            assert_int_equal(tsg_buf_rc(&b), TSG_OK);
            tsg_buf_free(&b);
            fp_expr_free(e);
            if (v[k].syntax_invalid) {
                printf("  %s: invalid=\"syntax\" but compiles: %s\n", v[k].name, v[k].text);
                wrong++;
            }
        } else if (!v[k].syntax_invalid) {
            printf("  %s: does not compile: %s (column %u): %s\n", v[k].name, err.message,
                   err.column, v[k].text);
            wrong++;
        }
    }
    /* speed, for information (this build may carry sanitizers) */
    struct timespec t0, t1;
    size_t rounds = 20, done = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t r = 0; r < rounds; r++)
        for (size_t k = 0; k < n; k++) {
            fp_expr *e = NULL;
            if (fp_compile(v[k].text, strlen(v[k].text), &e, NULL) == TSG_OK) fp_expr_free(e);
            done++;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("suite: %zu expressions, %zu compile, %zu marked invalid=\"syntax\", %zu wrong; "
           "%.0f compiles/s in this build\n",
           n, compiled, syntax, wrong, secs > 0 ? (double)done / secs : 0.0);
    for (size_t k = 0; k < n; k++) {
        free(v[k].name);
        free(v[k].text);
    }
    free(v);
    assert_int_equal(wrong, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence), cmocka_unit_test(test_paths_and_calls),
        cmocka_unit_test(test_literals),   cmocka_unit_test(test_literal_values),
        cmocka_unit_test(test_errors),     cmocka_unit_test(test_limits),
        cmocka_unit_test(test_suite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
