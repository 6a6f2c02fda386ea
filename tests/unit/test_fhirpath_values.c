/*
 * test_fhirpath_values.c — the FHIRPath System value library (fp_value.h):
 * Integer, Decimal, Date/DateTime/Time and Quantity. Cases named test… are
 * hand-translated from the official R4 suite (tests-fhir-r4.xml).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "fhirpath/fp_value.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static fp_decimal D(const char *s)
{
    fp_decimal d;
    assert_int_equal(fp_dec_parse(s, strlen(s), FP_DEC_FHIR, &d), FP_OK);
    return d;
}

/* Text of a decimal in one of a few rotating buffers. */
static const char *T(fp_decimal d)
{
    static char bufs[8][FP_DEC_TEXT_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    assert_true(fp_dec_format(d, b, FP_DEC_TEXT_MAX) > 0);
    return b;
}

static fp_datetime DT(const char *s)
{
    fp_datetime v;
    assert_int_equal(fp_dt_parse_literal(s, strlen(s), &v), FP_OK);
    return v;
}

static const char *DTT(fp_datetime v)
{
    static char bufs[8][FP_DT_TEXT_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    assert_true(fp_dt_format(&v, b, FP_DT_TEXT_MAX) > 0);
    return b;
}

/* A quantity literal: value text, unit text, keyword (unquoted) or not. */
static fp_quantity Q(const char *v, const char *unit, bool keyword)
{
    fp_quantity q;
    assert_int_equal(fp_qty_make(D(v), unit, unit ? strlen(unit) : 0, keyword, &q), FP_OK);
    return q;
}

static const char *QT(const fp_quantity *q)
{
    static char out[256];
    tsg_buf b;
    tsg_buf_init(&b, 1024);
    fp_qty_format(q, &b);
    assert_int_equal(tsg_buf_rc(&b), TSG_OK);
    snprintf(out, sizeof out, "%.*s", (int)b.len, b.data);
    tsg_buf_free(&b);
    return out;
}

static fp_cmp dtcmp(const char *a, const char *b)
{
    fp_datetime x = DT(a), y = DT(b);
    return fp_dt_compare(&x, &y);
}

/* a + q (sign ±1) as text, or "" with *st set. */
static const char *dtadd(const char *a, fp_quantity q, int sign, fp_status *st)
{
    fp_datetime x = DT(a), r;
    *st = fp_dt_add(&x, &q, sign, &r);
    return *st == FP_OK ? DTT(r) : "";
}

/* ------------------------------------------------------------------------
 * Integer
 * ------------------------------------------------------------------------ */

static void test_integer(void **state)
{
    (void)state;
    int32_t r;
    assert_int_equal(fp_int_parse("-2147483648", 11, &r), FP_OK);
    assert_int_equal(r, INT32_MIN);
    assert_int_equal(fp_int_parse("2147483648", 10, &r), FP_EOVERFLOW);
    assert_int_equal(fp_int_parse("99999999999999999999", 20, &r), FP_EOVERFLOW);
    assert_int_equal(fp_int_parse("12a", 3, &r), FP_ESYNTAX);
    assert_int_equal(fp_int_parse("", 0, &r), FP_ESYNTAX);
    assert_int_equal(fp_int_parse("-", 1, &r), FP_ESYNTAX);
    assert_int_equal(fp_int_add(INT32_MAX, 1, &r), FP_EOVERFLOW);
    assert_int_equal(fp_int_sub(INT32_MIN, 1, &r), FP_EOVERFLOW);
    assert_int_equal(fp_int_mul(65536, 65536, &r), FP_EOVERFLOW);
    assert_int_equal(fp_int_neg(INT32_MIN, &r), FP_EOVERFLOW);
    assert_int_equal(fp_int_abs(INT32_MIN, &r), FP_EOVERFLOW);
    /* testDiv1-3, testDiv5, testMod1-3, testMod5 */
    assert_int_equal(fp_int_div(5, 2, &r), FP_OK);
    assert_int_equal(r, 2);
    assert_int_equal(fp_int_div(4, 2, &r), FP_OK);
    assert_int_equal(r, 2);
    assert_int_equal(fp_int_div(5, 0, &r), FP_EMPTY);
    assert_int_equal(fp_int_mod(5, 2, &r), FP_OK);
    assert_int_equal(r, 1);
    assert_int_equal(fp_int_mod(4, 2, &r), FP_OK);
    assert_int_equal(r, 0);
    assert_int_equal(fp_int_mod(-5, 2, &r), FP_OK);
    assert_int_equal(r, -1);
    assert_int_equal(fp_int_mod(5, 0, &r), FP_EMPTY);
    assert_int_equal(fp_int_div(INT32_MIN, -1, &r), FP_EOVERFLOW);
    /* testPower1 */
    assert_int_equal(fp_int_power(2, 3, &r), FP_OK);
    assert_int_equal(r, 8);
    assert_int_equal(fp_int_power(2, 31, &r), FP_EOVERFLOW);
    assert_int_equal(fp_int_power(-2, 31, &r), FP_OK);
    assert_int_equal(r, INT32_MIN);
    assert_int_equal(fp_int_power(2, -1, &r), FP_EUNIT);
    /* testAbs1 */
    assert_int_equal(fp_int_abs(-5, &r), FP_OK);
    assert_int_equal(r, 5);
}

/* ------------------------------------------------------------------------
 * Decimal: parsing and text
 * ------------------------------------------------------------------------ */

static void test_decimal_parse(void **state)
{
    (void)state;
    fp_decimal d;
    /* precision as written */
    assert_string_equal(T(D("1.50")), "1.50");
    assert_int_equal(fp_dec_precision(D("1.58700")), 5); /* PrecisionDecimal */
    assert_string_equal(T(D("1.0")), "1.0");             /* testDecimalLiteralToString */
    assert_string_equal(T(D("-0.001")), "-0.001");
    assert_string_equal(T(D("007")), "7");
    assert_string_equal(T(D("0.0")), "0.0");
    /* testLiteralDecimalMax, testLiteralDecimalStep */
    assert_string_equal(T(D("1234567890987654321.0")), "1234567890987654321.0");
    assert_string_equal(T(D("0.00000001")), "0.00000001");
    /* exponents */
    assert_string_equal(T(D("1E-22")), "0.0000000000000000000001");
    assert_string_equal(T(D("1.5E2")), "150");
    assert_string_equal(T(D("1.5e-3")), "0.0015");
    assert_string_equal(T(D("-2.50E+1")), "-25.0");
    /* the FHIRPath literal form has neither sign nor exponent */
    assert_int_equal(fp_dec_parse("1E3", 3, 0, &d), FP_ESYNTAX);
    assert_int_equal(fp_dec_parse("-1", 2, 0, &d), FP_ESYNTAX);
    assert_int_equal(fp_dec_parse("-1", 2, FP_DEC_SIGN, &d), FP_OK);
    /* malformed: testStringLiteralConvertsToDecimalFalse ('1.a'), testToDecimal5 ('st') */
    const char *bad[] = {"1.a", "st", "", "1.", ".5", "+", "1e", "1E+", "1..2", "1 ", " 1", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(fp_dec_parse(bad[i], strlen(bad[i]), FP_DEC_FHIR, &d), FP_ESYNTAX);
    /* beyond 38 digits or places */
    assert_int_equal(fp_dec_parse("123456789012345678901234567890123456789", 39, FP_DEC_FHIR, &d),
                     FP_EOVERFLOW);
    assert_int_equal(fp_dec_parse("1E38", 4, FP_DEC_FHIR, &d), FP_EOVERFLOW);
    assert_int_equal(fp_dec_parse("1E-39", 5, FP_DEC_FHIR, &d), FP_EOVERFLOW);
    assert_int_equal(fp_dec_parse("1E99999999999", 13, FP_DEC_FHIR, &d), FP_EOVERFLOW);
    assert_string_equal(T(D("99999999999999999999999999999999999999")),
                        "99999999999999999999999999999999999999");
    /* to and from Integer: testIntegerLiteralToDecimal, testDecimalLiteralToInteger */
    int32_t i;
    assert_true(fp_dec_equal(fp_dec_from_int(1), D("1.0")));
    assert_int_equal(fp_dec_to_int32(D("1.1"), &i), FP_EMPTY);
    assert_int_equal(fp_dec_to_int32(D("-3.000"), &i), FP_OK);
    assert_int_equal(i, -3);
    assert_int_equal(fp_dec_to_int32(D("2147483648"), &i), FP_EOVERFLOW);
    /* a too-small buffer */
    char small[3];
    assert_int_equal(fp_dec_format(D("1.50"), small, sizeof small), 0);
}

/* ------------------------------------------------------------------------
 * Decimal: arithmetic
 * ------------------------------------------------------------------------ */

static void test_decimal_arith(void **state)
{
    (void)state;
    fp_decimal r;
    /* testPlus3, testMinus3, testMultiply3 */
    assert_int_equal(fp_dec_add(D("1.2"), D("1.8"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("3.0")));
    assert_string_equal(T(r), "3.0");
    assert_int_equal(fp_dec_sub(D("1.8"), D("1.2"), &r), FP_OK);
    assert_string_equal(T(r), "0.6");
    assert_int_equal(fp_dec_mul(D("1.2"), D("1.8"), &r), FP_OK);
    assert_string_equal(T(r), "2.16");
    /* testDivide1-6 */
    assert_int_equal(fp_dec_div(D("1"), D("2"), &r), FP_OK);
    assert_string_equal(T(r), "0.5");
    assert_int_equal(fp_dec_div(D("4.0"), D("2.0"), &r), FP_OK);
    assert_string_equal(T(r), "2.0");
    assert_int_equal(fp_dec_div(D("4"), D("2"), &r), FP_OK);
    assert_string_equal(T(r), "2");
    assert_int_equal(fp_dec_div(D("1"), D("0"), &r), FP_EMPTY);
    assert_int_equal(fp_dec_div(D("1.0"), D("3"), &r), FP_OK);
    assert_string_equal(T(r), "0.33333333");
    assert_int_equal(fp_dec_div(D("2"), D("3"), &r), FP_OK);
    assert_string_equal(T(r), "0.66666667");
    assert_int_equal(fp_dec_div(D("-2"), D("3"), &r), FP_OK);
    assert_string_equal(T(r), "-0.66666667");
    /* testDivide5, testNEquality22/23, testEquivalent11, testNotEquivalent13 */
    fp_decimal q;
    assert_int_equal(fp_dec_div(D("1.2"), D("1.8"), &q), FP_OK);
    assert_string_equal(T(q), "0.66666667");
    assert_int_equal(fp_dec_round(q, 2, &r), FP_OK);
    assert_true(fp_dec_equal(r, D("0.67")));
    assert_false(fp_dec_equal(r, D("0.6666667")));
    assert_true(fp_dec_equivalent(q, D("0.67")));
    assert_false(fp_dec_equivalent(q, D("0.6")));
    /* testDiv4, testMod4, div/mod by zero */
    assert_int_equal(fp_dec_intdiv(D("2.2"), D("1.8"), &r), FP_OK);
    assert_string_equal(T(r), "1");
    assert_int_equal(fp_dec_mod(D("2.2"), D("1.8"), &r), FP_OK);
    assert_string_equal(T(r), "0.4");
    assert_int_equal(fp_dec_intdiv(D("-7.5"), D("2"), &r), FP_OK);
    assert_string_equal(T(r), "-3");
    assert_int_equal(fp_dec_mod(D("-7.5"), D("2"), &r), FP_OK);
    assert_string_equal(T(r), "-1.5");
    assert_int_equal(fp_dec_intdiv(D("1"), D("0.0"), &r), FP_EMPTY);
    assert_int_equal(fp_dec_mod(D("1"), D("0"), &r), FP_EMPTY);
    /* negation and abs: testAbs2 */
    assert_string_equal(T(fp_dec_abs(D("-5.5"))), "5.5");
    assert_string_equal(T(fp_dec_neg(D("5.5"))), "-5.5");
}

static void test_decimal_wide(void **state)
{
    (void)state;
    fp_decimal r;
    /* products beyond 128 bits are rounded to 38 digits */
    assert_int_equal(fp_dec_mul(D("1234567890123456789.0"), D("98765432109876543.21"), &r), FP_OK);
    assert_string_equal(T(r), "121932631137021795223746380111126352.69");
    /* tiny products round to 38 places */
    assert_int_equal(fp_dec_mul(D("1E-20"), D("1E-20"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("0")));
    assert_int_equal(r.scale, FP_DEC_MAX_SCALE);
    /* quotients through the 256-bit path */
    assert_int_equal(fp_dec_div(D("1E37"), D("3"), &r), FP_OK);
    assert_string_equal(T(r), "3333333333333333333333333333333333333.3");
    /* sums that would need more places drop them instead of failing */
    assert_int_equal(fp_dec_add(D("1E37"), D("0.1"), &r), FP_OK);
    assert_string_equal(T(r), "10000000000000000000000000000000000000");
    assert_int_equal(fp_dec_compare(D("1E37"), D("0.1")), FP_GT);
    assert_int_equal(fp_dec_compare(D("-1E37"), D("0.00000000000000000000000001")), FP_LT);
    assert_int_equal(fp_dec_compare(D("0.00000000000000000000000001"), D("-1E37")), FP_GT);
    /* overflow everywhere */
    fp_decimal max = D("99999999999999999999999999999999999999");
    assert_int_equal(fp_dec_add(max, D("1"), &r), FP_EOVERFLOW);
    assert_int_equal(fp_dec_sub(fp_dec_neg(max), D("1"), &r), FP_EOVERFLOW);
    assert_int_equal(fp_dec_mul(D("1E20"), D("1E20"), &r), FP_EOVERFLOW);
    assert_int_equal(fp_dec_div(max, D("0.001"), &r), FP_EOVERFLOW);
    assert_int_equal(fp_dec_intdiv(max, D("0.1"), &r), FP_EOVERFLOW);
    assert_int_equal(fp_dec_exp(D("100"), &r), FP_EOVERFLOW);
    int32_t i;
    assert_int_equal(fp_dec_floor(D("1E20"), &i), FP_EOVERFLOW);
    assert_int_equal(fp_dec_power(D("10"), D("40"), &r), FP_EOVERFLOW);
}

static void test_decimal_compare(void **state)
{
    (void)state;
    /* testEquality12-16, testNEquality6-10, testEquivalent8-13 */
    assert_true(fp_dec_equal(D("1.1"), D("1.1")));
    assert_false(fp_dec_equal(D("1.1"), D("1.2")));
    assert_true(fp_dec_equal(D("1.10"), D("1.1")));
    assert_true(fp_dec_equal(D("0.0"), D("0")));
    assert_true(fp_dec_equivalent(D("1.10"), D("1.1")));
    assert_false(fp_dec_equivalent(D("1.1"), D("1.2")));
    assert_true(fp_dec_equivalent(D("0.0"), D("0")));
    /* equivalence rounds to the smaller precision */
    assert_true(fp_dec_equivalent(D("1.25"), D("1.3")));
    assert_false(fp_dec_equivalent(D("1.24"), D("1.3")));
    assert_true(fp_dec_equivalent(D("-1.25"), D("-1.3")));
    /* testLessThan2, testLessThan9, testLessThan16, testGreaterThan16 */
    assert_int_equal(fp_dec_compare(D("1.0"), D("1.2")), FP_LT);
    assert_int_equal(fp_dec_compare(D("1.0"), D("1.0")), FP_EQ);
    assert_int_equal(fp_dec_compare(D("1.1"), D("1.0")), FP_GT);
    /* testLiteralDecimalGreaterThanNonZeroTrue / LessThanInteger: 185 vs 180.0 and 190 */
    assert_int_equal(fp_dec_compare(D("185"), D("180.0")), FP_GT);
    assert_int_equal(fp_dec_compare(D("185"), fp_dec_from_int(190)), FP_LT);
    assert_int_equal(fp_dec_compare(D("-0.5"), D("0.25")), FP_LT);
}

static void test_decimal_functions(void **state)
{
    (void)state;
    fp_decimal r;
    int32_t i;
    /* testRound1-2 */
    assert_int_equal(fp_dec_round(D("1"), 0, &r), FP_OK);
    assert_string_equal(T(r), "1");
    assert_int_equal(fp_dec_round(D("3.14159"), 3, &r), FP_OK);
    assert_string_equal(T(r), "3.142");
    assert_int_equal(fp_dec_round(D("-2.5"), 0, &r), FP_OK);
    assert_string_equal(T(r), "-3");
    assert_int_equal(fp_dec_round(D("2.5"), -1, &r), FP_EMPTY);
    /* testCeiling1-3, testFloor1-3, testTruncate1-3 */
    assert_int_equal(fp_dec_ceiling(D("1"), &i), FP_OK);
    assert_int_equal(i, 1);
    assert_int_equal(fp_dec_ceiling(D("-1.1"), &i), FP_OK);
    assert_int_equal(i, -1);
    assert_int_equal(fp_dec_ceiling(D("1.1"), &i), FP_OK);
    assert_int_equal(i, 2);
    assert_int_equal(fp_dec_floor(D("2.1"), &i), FP_OK);
    assert_int_equal(i, 2);
    assert_int_equal(fp_dec_floor(D("-2.1"), &i), FP_OK);
    assert_int_equal(i, -3);
    assert_int_equal(fp_dec_truncate(D("101"), &i), FP_OK);
    assert_int_equal(i, 101);
    assert_int_equal(fp_dec_truncate(D("1.00000001"), &i), FP_OK);
    assert_int_equal(i, 1);
    assert_int_equal(fp_dec_truncate(D("-1.56"), &i), FP_OK);
    assert_int_equal(i, -1);
    /* testSqrt1-2 */
    assert_int_equal(fp_dec_sqrt(D("81"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("9.0")));
    assert_int_equal(fp_dec_sqrt(D("2"), &r), FP_OK);
    assert_string_equal(T(r), "1.41421356");
    assert_int_equal(fp_dec_sqrt(D("-1"), &r), FP_EMPTY);
    /* testExp1-2, testLn1-2, testLog1-2 */
    assert_int_equal(fp_dec_exp(D("0"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("1")));
    assert_int_equal(fp_dec_exp(D("-0.0"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("1")));
    assert_int_equal(fp_dec_exp(D("1"), &r), FP_OK);
    assert_string_equal(T(r), "2.71828183");
    assert_int_equal(fp_dec_ln(D("1"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("0.0")));
    assert_int_equal(fp_dec_ln(D("1.0"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("0.0")));
    assert_int_equal(fp_dec_ln(D("10"), &r), FP_OK);
    assert_string_equal(T(r), "2.30258509");
    assert_int_equal(fp_dec_ln(D("0"), &r), FP_EMPTY);
    assert_int_equal(fp_dec_log(D("16"), D("2"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("4.0")));
    assert_int_equal(fp_dec_log(D("100.0"), D("10.0"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("2.0")));
    assert_int_equal(fp_dec_log(D("5"), D("1"), &r), FP_EMPTY);
    /* testPower2-3 */
    assert_int_equal(fp_dec_power(D("2.5"), D("2"), &r), FP_OK);
    assert_string_equal(T(r), "6.25");
    assert_int_equal(fp_dec_power(D("-1"), D("0.5"), &r), FP_EMPTY);
    assert_int_equal(fp_dec_power(D("2"), D("-2"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("0.25")));
    assert_int_equal(fp_dec_power(D("4"), D("0.5"), &r), FP_OK);
    assert_true(fp_dec_equal(r, D("2")));
}

/* LowBoundary / HighBoundary groups of the suite: input, precision, expected text. */
static void test_decimal_boundaries(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int prec;
        const char *low, *high; /* NULL: empty */
    } cases[] = {
        {"1.587", -1, "1.58650000", "1.58750000"}, /* LowBoundaryDecimalDefault, High…Default */
        {"1.587", 6, "1.586500", "1.587500"},      /* LowBoundaryDecimal1, HighBoundaryDecimal2 */
        {"1.587", 2, "1.58", "1.59"},              /* LowBoundaryDecimal2, HighBoundaryDecimal1 */
        {"1.587", -2, NULL, NULL},                 /* LowBoundaryDecimal3 (-1 as a value) */
        {"1.587", 0, "1", "2"},                    /* LowBoundaryDecimal4 */
        {"1.587", 32, NULL, NULL},                 /* LowBoundaryDecimal5 */
        {"1.587", 39, NULL, NULL},                 /* LowBoundaryDecimal6, HighBoundaryDecimal7 */
        {"-1.587", -1, "-1.58750000", "-1.58650000"}, /* …NegDecimalDefault, HighBoundaryDecimal4 */
        {"-1.587", 6, "-1.587500", "-1.586500"},      /* …NegDecimal1, HighBoundaryDecimal6 */
        {"-1.587", 2, "-1.59", "-1.58"},              /* …NegDecimal2, HighBoundaryDecimal5 */
        {"-1.587", 0, "-2", "-1"},                    /* LowBoundaryNegDecimal4 */
        {"1", -1, "0.50000000", "1.50000000"},    /* LowBoundaryDecimal7, HighBoundaryDecimal8 */
        {"1", 0, "0", "2"},                       /* LowBoundaryDecimal8, HighBoundaryDecimal9 */
        {"1", 5, "0.50000", "1.50000"},           /* LowBoundaryDecimal9, HighBoundaryDecimal10 */
        {"12.587", 2, "12.58", "12.59"},          /* LowBoundaryDecimal10, High…11 */
        {"12.500", 4, "12.4995", "12.5005"},      /* LowBoundaryDecimal11, High…12 */
        {"120", 2, "119.50", "120.50"},           /* LowBoundaryDecimal12, High…13 */
        {"-120", 2, "-120.50", "-119.50"},        /* LowBoundaryDecimal13 */
        {"0.0034", 1, "0.0", "0.0"},              /* LowBoundaryDecimal14, High…15 */
        {"1.587", 8, "1.58650000", "1.58750000"}, /* HighBoundaryDecimal, LowBoundaryQuantity */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fp_decimal x = D(cases[i].in), lo, hi;
        int p = cases[i].prec == -2 ? -5 : cases[i].prec;
        fp_status sl = fp_dec_low_boundary(x, p, &lo), sh = fp_dec_high_boundary(x, p, &hi);
        if (!cases[i].low) {
            assert_int_equal(sl, FP_EMPTY);
            assert_int_equal(sh, FP_EMPTY);
            continue;
        }
        assert_int_equal(sl, FP_OK);
        assert_int_equal(sh, FP_OK);
        assert_string_equal(T(lo), cases[i].low);
        assert_string_equal(T(hi), cases[i].high);
    }
    /* LowBoundaryDecimal15 expects "-0.0": our zero has no sign, the value is 0.0 */
    fp_decimal lo;
    assert_int_equal(fp_dec_low_boundary(D("-0.0034"), 1, &lo), FP_OK);
    assert_string_equal(T(lo), "0.0");
    assert_int_equal(lo.scale, 1);
}

/* ------------------------------------------------------------------------
 * Date / DateTime / Time: parsing and text
 * ------------------------------------------------------------------------ */

static void test_dt_parse(void **state)
{
    (void)state;
    /* testLiteralDate*, testLiteralDateTime*, testLiteralTime* */
    static const struct {
        const char *lit;
        fp_dt_kind kind;
        int digits;
        const char *text;
    } ok[] = {
        {"@2015", FP_DATE, 4, "2015"},
        {"@2015-02", FP_DATE, 6, "2015-02"},
        {"@2015-02-04", FP_DATE, 8, "2015-02-04"},
        {"@2015T", FP_DATETIME, 4, "2015"},
        {"@2015-02T", FP_DATETIME, 6, "2015-02"},
        {"@2015-02-04T", FP_DATETIME, 8, "2015-02-04"},
        {"@2015-02-04T14", FP_DATETIME, 10, "2015-02-04T14"},
        {"@2015-02-04T14:34", FP_DATETIME, 12, "2015-02-04T14:34"},
        {"@2015-02-04T14:34:28", FP_DATETIME, 14, "2015-02-04T14:34:28"},
        {"@2015-02-04T14:34:28.123", FP_DATETIME, 17, "2015-02-04T14:34:28.123"},
        {"@2015-02-04T14:34:28Z", FP_DATETIME, 14, "2015-02-04T14:34:28Z"},
        {"@2015-02-04T14:34:28+10:00", FP_DATETIME, 14, "2015-02-04T14:34:28+10:00"},
        {"@2014-01-25T14:30:14.559+09:00", FP_DATETIME, 17, "2014-01-25T14:30:14.559+09:00"},
        {"@2017-11-05T01:30:00.0-04:00", FP_DATETIME, 17, "2017-11-05T01:30:00.000-04:00"},
        {"@T14", FP_TIME, 2, "14"},
        {"@T14:34", FP_TIME, 4, "14:34"},
        {"@T14:34:28", FP_TIME, 6, "14:34:28"},
        {"@T14:34:28.123", FP_TIME, 9, "14:34:28.123"},
        {"@T14:34:28.1239", FP_TIME, 9, "14:34:28.123"},
        {"@2014-01-05T10:30:00.000", FP_DATETIME, 17, "2014-01-05T10:30:00.000"},
        {"@2012-02-29", FP_DATE, 8, "2012-02-29"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        fp_datetime v = DT(ok[i].lit);
        assert_int_equal(v.kind, ok[i].kind);
        assert_int_equal(fp_dt_precision_digits(&v), ok[i].digits);
        assert_string_equal(DTT(v), ok[i].text);
    }
    /* testLiteralTimeUTC, testLiteralTimeTimezoneOffset and other malformed forms */
    const char *bad[] = {"@T14:34:28Z",
                         "@T14:34:28+10:00",
                         "@2014-13",
                         "@2014-02-30",
                         "@2013-02-29",
                         "@2014-01T10",
                         "@T24:00",
                         "@2014-01-01T10:00+15:00",
                         "@2014-1-01",
                         "@14",
                         "2014",
                         "@",
                         "@T",
                         "@2014-01-01T10:60",
                         "@2014-01-01T10:00:00.",
                         "@2014-01-01T10:00+05",
                         "@0000",
                         "@2014-01-01TT"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fp_datetime v;
        assert_int_equal(fp_dt_parse_literal(bad[i], strlen(bad[i]), &v), FP_ESYNTAX);
    }
    /* FHIR primitive forms and the to…() conversions (testStringMillisecondConvertsTo…) */
    fp_datetime v;
    assert_int_equal(fp_dt_parse_text("2014-01-25", 10, FP_DATE, &v), FP_OK);
    assert_string_equal(DTT(v), "2014-01-25");
    assert_int_equal(fp_dt_parse_text("2014-01-25T14:30:14.559Z", 24, FP_DATETIME, &v), FP_OK);
    assert_string_equal(DTT(v), "2014-01-25T14:30:14.559Z");
    assert_int_equal(fp_dt_parse_text("2015-02-04T14:34:28.123", 23, FP_DATETIME, &v), FP_OK);
    assert_int_equal(fp_dt_parse_text("14:30:00", 8, FP_TIME, &v), FP_OK);
    assert_string_equal(DTT(v), "14:30:00");
    assert_int_equal(fp_dt_parse_text("14:34:28.123", 12, FP_TIME, &v), FP_OK);
    assert_int_equal(fp_dt_parse_text("2014-01-25T10:00", 16, FP_DATE, &v), FP_ESYNTAX);
    assert_int_equal(fp_dt_parse_text("@2014", 5, FP_DATE, &v), FP_ESYNTAX);
    assert_int_equal(fp_dt_parse_text("14:30Z", 6, FP_TIME, &v), FP_ESYNTAX);
    /* testToString5 */
    assert_string_equal(DTT(DT("@2014-12-14")), "2014-12-14");
    char small[5];
    fp_datetime w = DT("@2014-12-14");
    assert_int_equal(fp_dt_format(&w, small, sizeof small), 0);
}

/* ------------------------------------------------------------------------
 * Date / DateTime / Time: comparison
 * ------------------------------------------------------------------------ */

static void test_dt_compare(void **state)
{
    (void)state;
    /* testLessThan5-7, 12-14, 19-21 (and the ≤ ≥ > variants read off the same order) */
    assert_int_equal(dtcmp("@2014-12-12", "@2014-12-13"), FP_LT);
    assert_int_equal(dtcmp("@2014-12-13T12:00:00", "@2014-12-13T12:00:01"), FP_LT);
    assert_int_equal(dtcmp("@T12:00:00", "@T14:00:00"), FP_LT);
    assert_int_equal(dtcmp("@2014-12-12", "@2014-12-12"), FP_EQ);
    assert_int_equal(dtcmp("@2014-12-13T12:00:00", "@2014-12-13T12:00:00"), FP_EQ);
    assert_int_equal(dtcmp("@T12:00:00", "@T12:00:00"), FP_EQ);
    assert_int_equal(dtcmp("@2014-12-13", "@2014-12-12"), FP_GT);
    assert_int_equal(dtcmp("@2014-12-13T12:00:01", "@2014-12-13T12:00:00"), FP_GT);
    assert_int_equal(dtcmp("@T12:00:01", "@T12:00:00"), FP_GT);
    /* testLessThan23-25: different precision → empty */
    assert_int_equal(dtcmp("@2018-03", "@2018-03-01"), FP_UNKNOWN);
    assert_int_equal(dtcmp("@2018-03-01T10:30", "@2018-03-01T10:30:00"), FP_UNKNOWN);
    assert_int_equal(dtcmp("@T10:30", "@T10:30:00"), FP_UNKNOWN);
    /* testLessThan26-27, testLessOrEqual26-27: seconds and milliseconds are one precision */
    assert_int_equal(dtcmp("@2018-03-01T10:30:00", "@2018-03-01T10:30:00.0"), FP_EQ);
    assert_int_equal(dtcmp("@T10:30:00", "@T10:30:00.0"), FP_EQ);
    /* known despite different precision */
    assert_int_equal(dtcmp("@2012", "@2013-01"), FP_LT);
    assert_int_equal(dtcmp("@2012", "@2012-01"), FP_UNKNOWN);
    /* testLiteralDateTimeTZGreater/Less/EqualFalse/EqualTrue */
    assert_int_equal(dtcmp("@2017-11-05T01:30:00.0-04:00", "@2017-11-05T01:15:00.0-05:00"), FP_LT);
    assert_int_equal(dtcmp("@2017-11-05T01:30:00.0-04:00", "@2017-11-05T00:30:00.0-05:00"), FP_EQ);
    /* testEquality17-24 / testNEquality11-18 */
    assert_int_equal(dtcmp("@2012-04-15", "@2012-04-15"), FP_EQ);
    assert_int_equal(dtcmp("@2012-04-15", "@2012-04-16"), FP_LT);
    assert_int_equal(dtcmp("@2012-04-15", "@2012-04-15T10:00:00"), FP_UNKNOWN);
    assert_int_equal(dtcmp("@2012-04-15T15:00:00", "@2012-04-15T10:00:00"), FP_GT);
    assert_int_equal(dtcmp("@2012-04-15T15:30:31", "@2012-04-15T15:30:31.0"), FP_EQ);
    assert_int_equal(dtcmp("@2012-04-15T15:30:31", "@2012-04-15T15:30:31.1"), FP_LT);
    assert_int_equal(dtcmp("@2012-04-15T15:00:00Z", "@2012-04-15T10:00:00"), FP_UNKNOWN);
    assert_int_equal(dtcmp("@2012-04-15T15:00:00+02:00", "@2012-04-15T16:00:00+03:00"), FP_EQ);
    /* one zone unknown, but a day apart: known whatever the offset */
    assert_int_equal(dtcmp("@2012-04-15T15:00:00Z", "@2012-04-17T10:00:00"), FP_LT);
    assert_int_equal(dtcmp("@2012-04-17T10:00:00", "@2012-04-15T15:00:00Z"), FP_GT);
    /* a zone crossing midnight and the year end */
    assert_int_equal(dtcmp("@2012-12-31T23:00:00-02:00", "@2013-01-01T00:30:00Z"), FP_GT);
    /* testDateNotEqual*: Date vs DateTime at a finer precision is unknown */
    assert_int_equal(dtcmp("@1974-12-25", "@1974-12-25T12:34:00"), FP_UNKNOWN);
    assert_int_equal(dtcmp("@1974-12-25", "@1974-12-25T12:34:00-10:00"), FP_UNKNOWN);
    assert_int_equal(dtcmp("@1974-12-25", "@1974-12-25T12:34:00Z"), FP_UNKNOWN);
    /* testDateNotEqualTimeSecond: a Date and a Time do not compare */
    assert_int_equal(dtcmp("@1974-12-25", "@T12:14:15"), FP_INCOMPARABLE);
    /* testEquivalent14-18: different precision is not equivalent */
    fp_datetime a = DT("@2012-04-15"), b = DT("@2012-04-15T10:00:00");
    assert_false(fp_dt_equivalent(&a, &b));
    b = DT("@2012-04-15");
    assert_true(fp_dt_equivalent(&a, &b));
    b = DT("@2012-04-16");
    assert_false(fp_dt_equivalent(&a, &b));
    a = DT("@2012-04-15T15:30:31");
    b = DT("@2012-04-15T15:30:31.0");
    assert_true(fp_dt_equivalent(&a, &b));
    b = DT("@2012-04-15T15:30:31.1");
    assert_false(fp_dt_equivalent(&a, &b));
}

/* ------------------------------------------------------------------------
 * Date / DateTime / Time: arithmetic
 * ------------------------------------------------------------------------ */

static void test_dt_arith(void **state)
{
    (void)state;
    fp_status st;
    const char *base = "@1973-12-25T00:00:00.000+10:00";
    /* testPlusDate1-22 */
    assert_string_equal(dtadd("@1973-12-25", Q("7", "days", true), 1, &st), "1974-01-01");
    assert_string_equal(dtadd("@1973-12-25", Q("7.7", "days", true), 1, &st), "1974-01-01");
    assert_string_equal(dtadd(base, Q("7", "days", true), 1, &st), "1974-01-01T00:00:00.000+10:00");
    assert_string_equal(dtadd(base, Q("7.7", "days", true), 1, &st),
                        "1974-01-01T00:00:00.000+10:00");
    assert_string_equal(dtadd(base, Q("1", "second", true), 1, &st),
                        "1973-12-25T00:00:01.000+10:00");
    assert_string_equal(dtadd(base, Q("10", "millisecond", true), 1, &st),
                        "1973-12-25T00:00:00.010+10:00");
    assert_string_equal(dtadd(base, Q("1", "minute", true), 1, &st),
                        "1973-12-25T00:01:00.000+10:00");
    assert_string_equal(dtadd(base, Q("1", "hour", true), 1, &st), "1973-12-25T01:00:00.000+10:00");
    assert_string_equal(dtadd("@1973-12-25", Q("1", "day", true), 1, &st), "1973-12-26");
    assert_string_equal(dtadd("@1973-12-25", Q("1", "month", true), 1, &st), "1974-01-25");
    assert_string_equal(dtadd("@1973-12-25", Q("1", "week", true), 1, &st), "1974-01-01");
    assert_string_equal(dtadd("@1973-12-25", Q("1", "year", true), 1, &st), "1974-12-25");
    assert_string_equal(dtadd("@1973-12-25", Q("1", "d", false), 1, &st), "1973-12-26");
    assert_string_equal(dtadd("@1973-12-25", Q("1", "wk", false), 1, &st), "1974-01-01");
    dtadd("@1973-12-25", Q("1", "mo", false), 1, &st); /* testPlusDate14 */
    assert_int_equal(st, FP_EUNIT);
    dtadd("@1973-12-25", Q("1", "a", false), 1, &st); /* testPlusDate16-17 */
    assert_int_equal(st, FP_EUNIT);
    assert_string_equal(dtadd(base, Q("1", "s", false), 1, &st), "1973-12-25T00:00:01.000+10:00");
    assert_string_equal(dtadd(base, Q("0.1", "s", false), 1, &st), "1973-12-25T00:00:00.000+10:00");
    assert_string_equal(dtadd(base, Q("10", "ms", false), 1, &st), "1973-12-25T00:00:00.010+10:00");
    assert_string_equal(dtadd(base, Q("1", "min", false), 1, &st), "1973-12-25T00:01:00.000+10:00");
    assert_string_equal(dtadd(base, Q("1", "h", false), 1, &st), "1973-12-25T01:00:00.000+10:00");
    /* testMinus5 (quoted 'month'), testMinus6 ('cm') */
    assert_string_equal(dtadd("@1974-12-25", Q("1", "month", false), -1, &st), "1974-11-25");
    dtadd("@1974-12-25", Q("1", "cm", false), -1, &st);
    assert_int_equal(st, FP_EUNIT);
    /* month ends clamp; leap years */
    assert_string_equal(dtadd("@2014-01-31", Q("1", "month", true), 1, &st), "2014-02-28");
    assert_string_equal(dtadd("@2012-01-31", Q("1", "month", true), 1, &st), "2012-02-29");
    assert_string_equal(dtadd("@2012-02-29", Q("1", "year", true), 1, &st), "2013-02-28");
    assert_string_equal(dtadd("@2014-03-31", Q("1", "month", true), -1, &st), "2014-02-28");
    assert_string_equal(dtadd("@2014-01", Q("13", "months", true), 1, &st), "2015-02");
    assert_string_equal(dtadd("@2014", Q("18", "months", true), 1, &st), "2015");
    assert_string_equal(dtadd("@2014-01-01", Q("-1", "days", true), 1, &st), "2013-12-31");
    /* finer units on a coarser value: converted and truncated */
    assert_string_equal(dtadd("@2014-01-01", Q("25", "hours", true), 1, &st), "2014-01-02");
    assert_string_equal(dtadd("@2014-01-01", Q("23", "hours", true), 1, &st), "2014-01-01");
    assert_string_equal(dtadd("@2014-01-01T10", Q("90", "minutes", true), 1, &st), "2014-01-01T11");
    /* Time wraps around midnight; calendar days are not for a Time */
    assert_string_equal(dtadd("@T23:30", Q("1", "hour", true), 1, &st), "00:30");
    assert_string_equal(dtadd("@T00:30", Q("45", "minutes", true), -1, &st), "23:45");
    assert_string_equal(dtadd("@T10:00:00.000", Q("1500", "ms", false), 1, &st), "10:00:01.500");
    dtadd("@T10:00", Q("1", "day", true), 1, &st);
    assert_int_equal(st, FP_EUNIT);
    /* the year range */
    dtadd("@9999-12-31", Q("1", "day", true), 1, &st);
    assert_int_equal(st, FP_EOVERFLOW);
    dtadd("@0001-01", Q("1", "month", true), -1, &st);
    assert_int_equal(st, FP_EOVERFLOW);
    dtadd("@2014", Q("99999999999", "years", true), 1, &st);
    assert_int_equal(st, FP_EOVERFLOW);
}

/* ------------------------------------------------------------------------
 * Date / DateTime / Time: precision, boundaries, conversions, clock
 * ------------------------------------------------------------------------ */

static void test_dt_boundaries(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int digits;
        const char *low, *high; /* NULL: empty */
    } cases[] = {
        {"@2014", 6, "2014-01", "2014-12"}, /* LowBoundaryDateMonth, HighBoundaryDateMonth */
        {"@2014", 8, "2014-01-01", "2014-12-31"},
        {"@2014-02", -1, "2014-02-01", "2014-02-28"},
        {"@2012-02", 8, "2012-02-01", "2012-02-29"},
        /* LowBoundaryDateTimeMillisecond1, HighBoundaryDateTimeMillisecond1/3 */
        {"@2014-01-01T08", 17, "2014-01-01T08:00:00.000+14:00", "2014-01-01T08:00:59.999-12:00"},
        /* LowBoundaryDateTimeMillisecond2 */
        {"@2014-01-01T08:05+08:00", 17, "2014-01-01T08:05:00.000+08:00",
         "2014-01-01T08:05:59.999+08:00"},
        /* HighBoundaryDateTimeMillisecond2 */
        {"@2014-01-01T08:05-05:00", 17, "2014-01-01T08:05:00.000-05:00",
         "2014-01-01T08:05:59.999-05:00"},
        /* LowBoundaryDateTimeMillisecond3 */
        {"@2014-01-01T08", 8, "2014-01-01", "2014-01-01"},
        /* LowBoundaryTimeMillisecond, HighBoundaryTimeMillisecond */
        {"@T10:30", 9, "10:30:00.000", "10:30:59.999"},
        {"@T10:30", -1, "10:30:00.000", "10:30:59.999"},
        {"@2014T", 17, "2014-01-01T00:00:00.000+14:00", "2014-12-31T23:59:59.999-12:00"},
        {"@2014", 5, NULL, NULL},
        {"@2014", 10, NULL, NULL},
        {"@T10:30", 17, NULL, NULL},
        {"@2014-01-01T08", 11, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fp_datetime v = DT(cases[i].in), lo, hi;
        fp_status sl = fp_dt_low_boundary(&v, cases[i].digits, &lo);
        fp_status sh = fp_dt_high_boundary(&v, cases[i].digits, &hi);
        if (!cases[i].low) {
            assert_int_equal(sl, FP_EMPTY);
            assert_int_equal(sh, FP_EMPTY);
            continue;
        }
        assert_int_equal(sl, FP_OK);
        assert_int_equal(sh, FP_OK);
        assert_string_equal(DTT(lo), cases[i].low);
        assert_string_equal(DTT(hi), cases[i].high);
        assert_int_equal(lo.kind, v.kind);
    }
    /* testPeriodInvariantNew's shape: start.lowBoundary() < end.highBoundary() */
    fp_datetime s = DT("@2014-01-01T10:00:00+10:00"), e = DT("@2014-01-01"), ls, he;
    fp_datetime e2 = fp_dt_to_datetime(&e);
    assert_int_equal(fp_dt_low_boundary(&s, -1, &ls), FP_OK);
    assert_int_equal(fp_dt_high_boundary(&e2, -1, &he), FP_OK);
    assert_int_equal(fp_dt_compare(&ls, &he), FP_LT);
    /* Precision group */
    fp_datetime p = DT("@2014");
    assert_int_equal(fp_dt_precision_digits(&p), 4);
    p = DT("@2014-01-05T10:30:00.000");
    assert_int_equal(fp_dt_precision_digits(&p), 17);
    p = DT("@T10:30");
    assert_int_equal(fp_dt_precision_digits(&p), 4);
    p = DT("@T10:30:00.000");
    assert_int_equal(fp_dt_precision_digits(&p), 9);
    /* Date <-> DateTime */
    fp_datetime dt = DT("@2014-01-25T14:30:14.559+09:00");
    fp_datetime d = fp_dt_to_date(&dt);
    assert_int_equal(d.kind, FP_DATE);
    assert_string_equal(DTT(d), "2014-01-25");
    fp_datetime back = fp_dt_to_datetime(&d);
    assert_int_equal(back.kind, FP_DATETIME);
    assert_string_equal(DTT(back), "2014-01-25");
}

static void test_dt_clock(void **state)
{
    (void)state;
    /* 2021-03-04T05:06:07.089Z */
    int64_t ms = 1614834367089LL;
    fp_datetime v;
    assert_int_equal(fp_dt_now(ms, 0, &v), FP_OK);
    assert_string_equal(DTT(v), "2021-03-04T05:06:07.089Z");
    assert_int_equal(fp_dt_now(ms, 9 * 60, &v), FP_OK);
    assert_string_equal(DTT(v), "2021-03-04T14:06:07.089+09:00");
    assert_int_equal(fp_dt_now(ms, -6 * 60, &v), FP_OK);
    assert_string_equal(DTT(v), "2021-03-03T23:06:07.089-06:00");
    assert_int_equal(fp_dt_today(ms, -6 * 60, &v), FP_OK);
    assert_int_equal(v.kind, FP_DATE);
    assert_string_equal(DTT(v), "2021-03-03");
    assert_int_equal(fp_dt_time_of_day(ms, 60, &v), FP_OK);
    assert_int_equal(v.kind, FP_TIME);
    assert_string_equal(DTT(v), "06:06:07.089");
    /* now() is comparable with a literal */
    fp_datetime n, lit = DT("@2021-03-04T05:06:07.089Z");
    assert_int_equal(fp_dt_now(ms, 9 * 60, &n), FP_OK);
    assert_int_equal(fp_dt_compare(&n, &lit), FP_EQ);
    assert_int_equal(fp_dt_now(INT64_MAX / 2, 0, &v), FP_EOVERFLOW);
}

/* ------------------------------------------------------------------------
 * Quantity
 * ------------------------------------------------------------------------ */

static void test_quantity_compare(void **state)
{
    (void)state;
    fp_quantity a, b;
    /* testQuantity1-8 */
    a = Q("4.0000", "g", false), b = Q("4000.0", "mg", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("4", "g", false), b = Q("4000", "mg", false);
    assert_true(fp_qty_equivalent(&a, &b));
    b = Q("4040", "mg", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_LT);
    assert_true(fp_qty_equivalent(&a, &b)); /* compared at the least precision */
    assert_true(fp_qty_equivalent(&b, &a)); /* both ways */
    b = Q("4600", "mg", false);
    assert_false(fp_qty_equivalent(&a, &b));
    a = Q("7", "days", true), b = Q("1", "week", true);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    b = Q("1", "wk", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("6", "days", true), b = Q("1", "week", true);
    assert_int_equal(fp_qty_compare(&a, &b), FP_LT);
    a = Q("8", "days", true);
    assert_int_equal(fp_qty_compare(&a, &b), FP_GT);
    /* testEquality28, testNEquality24, testLessThan22, testGreaterThan22 */
    a = Q("185", "[lb_av]", false), b = Q("185", "[lb_av]", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    assert_true(fp_qty_equivalent(&a, &b));
    b = Q("185", "kg", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_LT);
    assert_false(fp_qty_equivalent(&a, &b));
    b = Q("200", "[lb_av]", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_LT);
    b = Q("100", "[lb_av]", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_GT);
    b = Q("83.91458845", "kg", false); /* 185 lb = 83.91458845 kg exactly */
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    /* testStringQuantity…ToQuantity: day = 'd', week = 'wk', but not month = 'mo', year = 'a' */
    a = Q("1", "day", true), b = Q("1", "d", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("1", "mo", false), b = Q("1", "month", true);
    assert_int_equal(fp_qty_compare(&a, &b), FP_UNKNOWN);
    assert_false(fp_qty_equivalent(&a, &b));
    a = Q("1", "a", false), b = Q("1", "year", true);
    assert_int_equal(fp_qty_compare(&a, &b), FP_UNKNOWN);
    /* calendar years and months among themselves */
    a = Q("1", "year", true), b = Q("12", "months", true);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    b = Q("365", "days", true);
    assert_int_equal(fp_qty_compare(&a, &b), FP_UNKNOWN);
    b = Q("1", "kg", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_INCOMPARABLE);
    /* UCUM: 'a' and 'mo' are definite */
    a = Q("1", "a", false), b = Q("12", "mo", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    /* testDecimalLiteralToQuantity, testStringDecimalLiteralToQuantity: default unit '1' */
    fp_quantity one;
    assert_int_equal(fp_qty_make(D("1.0"), NULL, 0, false, &one), FP_OK);
    b = Q("1.0", "1", false);
    assert_int_equal(fp_qty_compare(&one, &b), FP_EQ);
    b = Q("1", "1", false);
    assert_true(fp_qty_equivalent(&one, &b));
    /* vital-signs units */
    a = Q("37", "Cel", false), b = Q("98.6", "[degF]", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    assert_true(fp_qty_equivalent(&a, &b));
    a = Q("100", "Cel", false), b = Q("200", "[degF]", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_GT);
    a = Q("760", "mm[Hg]", false), b = Q("101.325", "kPa", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_LT);
    assert_true(fp_qty_equivalent(&a, &b));
    assert_true(fp_qty_equivalent(&b, &a));
    b = Q("101.3", "kPa", false);
    assert_true(fp_qty_equivalent(&a, &b));
    b = Q("101.33", "kPa", false);
    assert_false(fp_qty_equivalent(&a, &b));
    a = Q("1", "kg/m2", false), b = Q("0.1", "g/cm2", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("100", "mg/dL", false), b = Q("1", "g/L", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("1", "[ft_i]", false), b = Q("12", "[in_i]", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("1", "[in_i]", false), b = Q("2.54", "cm", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("16", "[oz_av]", false), b = Q("1", "[lb_av]", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("60", "/min", false), b = Q("1", "/s", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("72", "{beats}/min", false), b = Q("1.2", "Hz", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("50", "%", false), b = Q("0.5", "1", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("1", "mL", false), b = Q("1", "cm3", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("5", "10*3/uL", false), b = Q("5", "10*9/L", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("1", "m/s", false), b = Q("3.6", "km/h", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    a = Q("1", "N", false), b = Q("1", "kg.m/s2", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_EQ);
    /* Comparable1-3 */
    a = Q("1", "cm", false), b = Q("1", "[in_i]", false);
    assert_true(fp_qty_comparable(&a, &b));
    b = Q("1", "[s]", false);
    assert_false(fp_qty_comparable(&a, &b));
    assert_int_equal(fp_qty_compare(&a, &b), FP_INCOMPARABLE);
    b = Q("1", "s", false);
    assert_false(fp_qty_comparable(&a, &b));
    assert_int_equal(fp_qty_compare(&a, &b), FP_INCOMPARABLE);
    assert_false(fp_qty_equivalent(&a, &b));
    /* unknown but identical units still compare */
    a = Q("3", "[iU]", false), b = Q("4", "[iU]", false);
    assert_int_equal(fp_qty_compare(&a, &b), FP_LT);
    /* malformed or misused units never compare */
    const char *bad[] = {"kg/",  "m(",   "(m",  "m2.",   "xyz",  "Cel2",
                         "/Cel", "kCel", "m{x", "[in_i", "m123", "g.Cel"};
    a = Q("1", "m", false);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = Q("1", bad[i], false);
        assert_int_equal(fp_qty_compare(&a, &b), FP_INCOMPARABLE);
    }
}

static void test_quantity_text(void **state)
{
    (void)state;
    fp_quantity q;
    /* testQuantityLiteralWkToString, testQuantityLiteralWeekToString */
    q = Q("1", "wk", false);
    assert_string_equal(QT(&q), "1 'wk'");
    q = Q("1", "week", true);
    assert_string_equal(QT(&q), "1 week");
    q = Q("1.50", "mg", false);
    assert_string_equal(QT(&q), "1.50 'mg'");
    assert_int_equal(fp_qty_make(D("2"), NULL, 0, false, &q), FP_OK);
    assert_string_equal(QT(&q), "2 '1'");
    /* keywords must be calendar words */
    assert_int_equal(fp_qty_make(D("1"), "fortnight", 9, true, &q), FP_ESYNTAX);
    /* toQuantity() string forms: testStringQuantityLiteralToQuantity and friends */
    const char *s = "1 day";
    assert_int_equal(fp_qty_parse(s, strlen(s), &q), FP_OK);
    assert_int_equal(q.calendar, FP_CAL_DAY);
    assert_string_equal(QT(&q), "1 day");
    s = "1 'wk'";
    assert_int_equal(fp_qty_parse(s, strlen(s), &q), FP_OK);
    fp_quantity w = Q("1", "week", true);
    assert_int_equal(fp_qty_compare(&q, &w), FP_EQ);
    s = "-1.5 'mg'";
    assert_int_equal(fp_qty_parse(s, strlen(s), &q), FP_OK);
    assert_string_equal(QT(&q), "-1.5 'mg'");
    s = "1.0";
    assert_int_equal(fp_qty_parse(s, strlen(s), &q), FP_OK);
    assert_string_equal(QT(&q), "1.0 '1'");
    const char *bad[] = {"1kg", "'mg'", "1 'mg", "1 lightyear", "1.a", "", "1 ''", "1 'a'b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_not_equal(fp_qty_parse(bad[i], strlen(bad[i]), &q), FP_OK);
}

static void test_quantity_arith(void **state)
{
    (void)state;
    tsg_arena *arena = tsg_arena_new(1 << 16);
    assert_non_null(arena);
    fp_quantity a, b, r, e;
    /* testQuantity9: 2.0 'cm' * 2.0 'm' = 0.040 'm2' */
    a = Q("2.0", "cm", false), b = Q("2.0", "m", false);
    assert_int_equal(fp_qty_mul(&a, &b, arena, &r), FP_OK);
    assert_string_equal(QT(&r), "4.00 'cm.m'");
    e = Q("0.040", "m2", false);
    assert_int_equal(fp_qty_compare(&r, &e), FP_EQ);
    /* testQuantity10: 4.0 'g' / 2.0 'm' = 2 'g/m' */
    a = Q("4.0", "g", false), b = Q("2.0", "m", false);
    assert_int_equal(fp_qty_div(&a, &b, arena, &r), FP_OK);
    e = Q("2", "g/m", false);
    assert_int_equal(fp_qty_compare(&r, &e), FP_EQ);
    /* testQuantity11: 1.0 'm' / 1.0 'm' = 1 '1' */
    a = Q("1.0", "m", false);
    assert_int_equal(fp_qty_div(&a, &a, arena, &r), FP_OK);
    e = Q("1", "1", false);
    assert_int_equal(fp_qty_compare(&r, &e), FP_EQ);
    /* 2 'cm' * 3 'cm' = 6 'cm2' */
    a = Q("2", "cm", false), b = Q("3", "cm", false);
    assert_int_equal(fp_qty_mul(&a, &b, arena, &r), FP_OK);
    assert_string_equal(QT(&r), "6 'cm2'");
    /* compound divisors get parentheses */
    a = Q("10", "mg", false), b = Q("2", "m/s", false);
    assert_int_equal(fp_qty_div(&a, &b, arena, &r), FP_OK);
    assert_string_equal(QT(&r), "5 'mg/(m/s)'");
    e = Q("5", "mg.s/m", false);
    assert_int_equal(fp_qty_compare(&r, &e), FP_EQ);
    a = Q("3", "kg", false), b = Q("2", "/min", false);
    assert_int_equal(fp_qty_mul(&a, &b, arena, &r), FP_OK);
    assert_string_equal(QT(&r), "6 'kg.(1/min)'");
    e = Q("0.1", "kg/s", false);
    assert_int_equal(fp_qty_compare(&r, &e), FP_EQ);
    /* calendar weeks multiply as 'wk'; years, months and temperatures do not */
    a = Q("2", "weeks", true), b = Q("3", "1", false);
    assert_int_equal(fp_qty_mul(&a, &b, arena, &r), FP_OK);
    assert_string_equal(QT(&r), "6 'wk'");
    a = Q("1", "year", true);
    assert_int_equal(fp_qty_mul(&a, &b, arena, &r), FP_EUNIT);
    a = Q("1", "Cel", false);
    assert_int_equal(fp_qty_mul(&a, &b, arena, &r), FP_EUNIT);
    a = Q("1", "cm", false), b = Q("0", "s", false);
    assert_int_equal(fp_qty_div(&a, &b, arena, &r), FP_EMPTY);
    /* an exhausted arena */
    tsg_arena *tiny = tsg_arena_new(1);
    a = Q("1", "cm", false), b = Q("1", "s", false);
    assert_int_equal(fp_qty_mul(&a, &b, tiny, &r), FP_EOVERFLOW);
    tsg_arena_free(tiny);
    /* addition converts to the left unit */
    a = Q("1", "m", false), b = Q("50", "cm", false);
    assert_int_equal(fp_qty_add(&a, &b, &r), FP_OK);
    assert_string_equal(QT(&r), "1.50 'm'");
    assert_int_equal(fp_qty_sub(&b, &a, &r), FP_OK);
    assert_string_equal(QT(&r), "-50 'cm'");
    a = Q("1", "year", true), b = Q("6", "months", true);
    assert_int_equal(fp_qty_add(&a, &b, &r), FP_OK);
    assert_string_equal(QT(&r), "1.5 year");
    b = Q("1", "a", false);
    assert_int_equal(fp_qty_add(&a, &b, &r), FP_EMPTY);
    a = Q("1", "m", false), b = Q("1", "s", false);
    assert_int_equal(fp_qty_add(&a, &b, &r), FP_EUNIT);
    a = Q("1", "Cel", false), b = Q("1", "[degF]", false);
    assert_int_equal(fp_qty_add(&a, &b, &r), FP_EUNIT);
    b = Q("2.5", "Cel", false);
    assert_int_equal(fp_qty_add(&a, &b, &r), FP_OK);
    assert_string_equal(QT(&r), "3.5 'Cel'");
    /* conversion keeps exactness for metric prefixes */
    a = Q("4040", "mg", false);
    assert_int_equal(fp_qty_convert(&a, "g", 1, false, &r), FP_OK);
    assert_string_equal(QT(&r), "4.040 'g'");
    assert_int_equal(fp_qty_convert(&a, "kg", 2, false, &r), FP_OK);
    assert_string_equal(QT(&r), "0.004040 'kg'");
    a = Q("98.6", "[degF]", false);
    assert_int_equal(fp_qty_convert(&a, "Cel", 3, false, &r), FP_OK);
    assert_string_equal(T(r.value), "37.00");
    a = Q("2", "weeks", true);
    assert_int_equal(fp_qty_convert(&a, "days", 4, true, &r), FP_OK);
    assert_string_equal(QT(&r), "14 days");
    assert_int_equal(fp_qty_convert(&a, "months", 6, true, &r), FP_EMPTY);
    assert_int_equal(fp_qty_convert(&a, "m", 1, false, &r), FP_EUNIT);
    tsg_arena_free(arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer),
        cmocka_unit_test(test_decimal_parse),
        cmocka_unit_test(test_decimal_arith),
        cmocka_unit_test(test_decimal_wide),
        cmocka_unit_test(test_decimal_compare),
        cmocka_unit_test(test_decimal_functions),
        cmocka_unit_test(test_decimal_boundaries),
        cmocka_unit_test(test_dt_parse),
        cmocka_unit_test(test_dt_compare),
        cmocka_unit_test(test_dt_arith),
        cmocka_unit_test(test_dt_boundaries),
        cmocka_unit_test(test_dt_clock),
        cmocka_unit_test(test_quantity_compare),
        cmocka_unit_test(test_quantity_text),
        cmocka_unit_test(test_quantity_arith),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
