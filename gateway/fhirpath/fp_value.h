/*
 * fp_value.h — the System value library of the FHIRPath engine (private header
 * of gateway/fhirpath): Integer, Decimal, Date, DateTime, Time and Quantity,
 * with the exact arithmetic, comparison, text forms and boundaries of
 * FHIRPath N1 (2.0.0) as the official R4 test suite exercises them.
 *
 * Design
 * ------
 * - Values are small plain structs passed by value or const pointer; no
 *   operation here allocates except quantity multiplication/division, which
 *   builds a new unit text in a caller-given arena. Everything is thread-safe
 *   (no hidden state; the UCUM tables are constant).
 *
 * - Decimal is exact: a signed 128-bit coefficient and a base-10 scale
 *   (value = coef / 10^scale), at most 38 significant digits
 *   (|coef| <= 10^38 - 1) and 0..38 decimal places. The scale is the number of
 *   written decimal places, so 1.50 keeps precision 2 for toString(),
 *   precision() and equivalence. Results that need more than 38 digits are
 *   rounded half away from zero in their last places; results whose integer
 *   part needs more than 38 digits are FP_EOVERFLOW. Products that overflow
 *   128 bits go through a 256-bit path (rare), everything else is native
 *   __int128 arithmetic. Division rounds to max(8, scales of the operands)
 *   places (CQL: 8) and drops trailing zeros down to the operands' scale, so
 *   1.0 / 3 = 0.33333333 and 4.0 / 2.0 = 2.0. sqrt/ln/log/exp/power with a
 *   non-integer exponent go through long double (own series, no libm) and are
 *   rounded to 8 places; power with an integer exponent is exact.
 *
 * - Integer is int32_t (FHIRPath's 32-bit Integer); every operation checks for
 *   overflow.
 *
 * - Date, DateTime and Time share one 16-byte struct: the fields, a kind, a
 *   precision (year … millisecond; Time starts at hour) and an optional
 *   timezone offset in minutes (kept as written, 'Z' remembered for text).
 *   Comparison walks the precisions from the largest; seconds and
 *   milliseconds count as one precision (the suite: @T10:30:00 <
 *   @T10:30:00.0 is false). Values that both carry an offset are compared in
 *   UTC; when only one carries an offset the other is tried at every offset
 *   from -12:00 to +14:00 and the answer is known only when all agree.
 *   Calendar arithmetic works on the local fields with days from the civil
 *   calendar (no time-zone database needed) and clamps month ends.
 *
 * - Quantity is a Decimal and a unit text (pointer + length, not owned) plus
 *   the calendar keyword the text names (year … millisecond), if any. Units
 *   are compared by a small UCUM parser (prefix + atom + exponent, '.', '/',
 *   parentheses, annotations, 10*n) that reduces a unit to seven base
 *   dimensions and an exact rational factor (two Decimals), with the affine
 *   Cel and [degF]. Comparisons of equal unit texts skip the parser.
 *
 * Result conventions
 * ------------------
 * Operations return an fp_status: FP_OK, FP_EMPTY (the FHIRPath result is the
 * empty collection: division by zero, sqrt of a negative number, a boundary
 * precision out of range), FP_EOVERFLOW (outside the type's range; the
 * evaluator decides between empty and an error), FP_ESYNTAX (text is not a
 * value of the type) or FP_EUNIT (incompatible operands: an execution error,
 * e.g. @2014-01-01 + 1 'cm'). Comparisons return an fp_cmp, where
 * FP_UNKNOWN means "the answer is empty" and FP_INCOMPARABLE means the
 * operands cannot be ordered at all (different dimensions or types).
 */
#ifndef TSG_FP_VALUE_H
#define TSG_FP_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef enum fp_status {
    FP_OK = 0,
    FP_EMPTY,     /* the result is empty ({}) */
    FP_EOVERFLOW, /* the result is out of the type's range */
    FP_ESYNTAX,   /* malformed text */
    FP_EUNIT      /* incompatible units or value kinds for this operation */
} fp_status;

typedef enum fp_cmp {
    FP_LT = -1,
    FP_EQ = 0,
    FP_GT = 1,
    FP_UNKNOWN = 2,     /* unknowable (precision, time zone, calendar vs UCUM) */
    FP_INCOMPARABLE = 3 /* different dimensions or kinds */
} fp_cmp;

/* A short English name of st ("ok", "empty", "overflow", …). */
const char *fp_status_name(fp_status st);

/* ------------------------------------------------------------------------
 * Integer (32-bit)
 * ------------------------------------------------------------------------ */

/* Parses [+-]?[0-9]+ (all n bytes). FP_ESYNTAX when malformed, FP_EOVERFLOW
 * when outside int32_t. */
fp_status fp_int_parse(const char *s, size_t n, int32_t *out);

/* a+b, a-b, a*b, -a, |a|: FP_EOVERFLOW when the result leaves int32_t. */
fp_status fp_int_add(int32_t a, int32_t b, int32_t *out);
fp_status fp_int_sub(int32_t a, int32_t b, int32_t *out);
fp_status fp_int_mul(int32_t a, int32_t b, int32_t *out);
fp_status fp_int_neg(int32_t a, int32_t *out);
fp_status fp_int_abs(int32_t a, int32_t *out);

/* Truncated division and its remainder (sign of a): FP_EMPTY when b is 0,
 * FP_EOVERFLOW for INT32_MIN div -1. */
fp_status fp_int_div(int32_t a, int32_t b, int32_t *out);
fp_status fp_int_mod(int32_t a, int32_t b, int32_t *out);

/* a^b for b >= 0 (FP_EOVERFLOW past int32_t); for b < 0 FP_EUNIT (the
 * result is a Decimal: use fp_dec_power). */
fp_status fp_int_power(int32_t a, int32_t b, int32_t *out);

/* ------------------------------------------------------------------------
 * Decimal
 * ------------------------------------------------------------------------ */

#define FP_DEC_MAX_DIGITS             38 /* significant digits of the coefficient */
#define FP_DEC_MAX_SCALE              38 /* decimal places */
#define FP_DEC_DIV_SCALE              8  /* places of a quotient / transcendental result */
#define FP_DEC_MAX_BOUNDARY_PRECISION 28 /* lowBoundary(29+) is empty */
#define FP_DEC_TEXT_MAX               84 /* bytes of the longest text form, with NUL */

__extension__ typedef __int128 fp_i128;

typedef struct fp_decimal {
    fp_i128 coef;  /* value = coef / 10^scale; |coef| <= 10^38 - 1 */
    int32_t scale; /* 0 .. FP_DEC_MAX_SCALE */
} fp_decimal;

/* Parse flags: the FHIRPath literal form is digits ('.' digits)?; the FHIR
 * (JSON/XML) form adds a leading '-' and an exponent. */
#define FP_DEC_SIGN     1u /* accept a leading '+' or '-' */
#define FP_DEC_EXPONENT 2u /* accept [eE][+-]?digits */
#define FP_DEC_FHIR     (FP_DEC_SIGN | FP_DEC_EXPONENT)

/*
 * Parses all n bytes of s as a decimal. The scale is the number of written
 * decimal places corrected by the exponent (1.50 → scale 2, 1E-22 → 22,
 * 1.5E2 → 150 scale 0). FP_ESYNTAX when malformed (also "1.", ".5", "1.a"),
 * FP_EOVERFLOW when it needs more than 38 digits or places.
 */
fp_status fp_dec_parse(const char *s, size_t n, unsigned flags, fp_decimal *out);

/* The decimal v with scale 0. Cannot fail. */
fp_decimal fp_dec_from_int(int64_t v);

/* The decimal as an Integer: FP_EMPTY when it has a non-zero fraction,
 * FP_EOVERFLOW outside int32_t. */
fp_status fp_dec_to_int32(fp_decimal x, int32_t *out);

/* The value as a long double (nearest). */
long double fp_dec_to_ld(fp_decimal x);

/*
 * Writes the FHIRPath text form (plain notation with exactly `scale` places:
 * "1.50", "-0.001", "12") into buf (cap >= FP_DEC_TEXT_MAX is always
 * enough) with a NUL; returns the length, or 0 when cap is too small.
 */
size_t fp_dec_format(fp_decimal x, char *buf, size_t cap);

/* Arithmetic. The scale of a sum is the larger scale, of a product the sum of
 * the scales (rounded past 38). FP_EOVERFLOW on overflow. */
fp_status fp_dec_add(fp_decimal a, fp_decimal b, fp_decimal *out);
fp_status fp_dec_sub(fp_decimal a, fp_decimal b, fp_decimal *out);
fp_status fp_dec_mul(fp_decimal a, fp_decimal b, fp_decimal *out);
fp_decimal fp_dec_neg(fp_decimal a);
fp_decimal fp_dec_abs(fp_decimal a);

/* a / b, see the design note for the scale. FP_EMPTY when b is 0. */
fp_status fp_dec_div(fp_decimal a, fp_decimal b, fp_decimal *out);

/* Truncated division (scale 0) and the remainder a - b*trunc(a/b) (sign of a,
 * scale max of the scales). FP_EMPTY when b is 0. */
fp_status fp_dec_intdiv(fp_decimal a, fp_decimal b, fp_decimal *out);
fp_status fp_dec_mod(fp_decimal a, fp_decimal b, fp_decimal *out);

/* Exact order of the values (scale ignored: 1.10 = 1.1). FP_LT/EQ/GT only. */
fp_cmp fp_dec_compare(fp_decimal a, fp_decimal b);

/* Equality (= : value equality) and equivalence (~ : both rounded to the
 * smaller of the two scales, half away from zero). */
bool fp_dec_equal(fp_decimal a, fp_decimal b);
bool fp_dec_equivalent(fp_decimal a, fp_decimal b);

/* Rounds half away from zero to `places` (>= 0) decimal places; a value with
 * fewer places is returned as is. FP_EMPTY when places < 0. */
fp_status fp_dec_round(fp_decimal x, int places, fp_decimal *out);

/* Integer results (FHIRPath: Integer): FP_EOVERFLOW outside int32_t. */
fp_status fp_dec_truncate(fp_decimal x, int32_t *out);
fp_status fp_dec_floor(fp_decimal x, int32_t *out);
fp_status fp_dec_ceiling(fp_decimal x, int32_t *out);

/* Math functions, rounded to 8 places with trailing zeros dropped. FP_EMPTY
 * for arguments outside the domain (sqrt(-1), ln(0), log base 1,
 * (-1).power(0.5)); FP_EOVERFLOW when the result is too large. power with an
 * integral exponent is exact (negative exponents divide). */
fp_status fp_dec_sqrt(fp_decimal x, fp_decimal *out);
fp_status fp_dec_ln(fp_decimal x, fp_decimal *out);
fp_status fp_dec_log(fp_decimal x, fp_decimal base, fp_decimal *out);
fp_status fp_dec_exp(fp_decimal x, fp_decimal *out);
fp_status fp_dec_power(fp_decimal x, fp_decimal y, fp_decimal *out);

/* precision(): the number of decimal places. */
static inline int fp_dec_precision(fp_decimal x)
{
    return x.scale;
}

/*
 * lowBoundary(precision) / highBoundary(precision) as the R4 suite defines
 * them: the boundaries of the interval x ± 0.5·10^-scale written with
 * `precision` places (-1 = default 8); for x >= 0 the low boundary is
 * truncated and the high one rounded half up, negative values mirror
 * (low(-x) = -high(x)). FP_EMPTY when precision is outside
 * 0..FP_DEC_MAX_BOUNDARY_PRECISION.
 */
fp_status fp_dec_low_boundary(fp_decimal x, int precision, fp_decimal *out);
fp_status fp_dec_high_boundary(fp_decimal x, int precision, fp_decimal *out);

/* ------------------------------------------------------------------------
 * Date, DateTime, Time
 * ------------------------------------------------------------------------ */

typedef enum fp_dt_kind { FP_DATE = 0, FP_DATETIME, FP_TIME } fp_dt_kind;

typedef enum fp_dt_prec {
    FP_PREC_YEAR = 0,
    FP_PREC_MONTH,
    FP_PREC_DAY,
    FP_PREC_HOUR,
    FP_PREC_MINUTE,
    FP_PREC_SECOND,
    FP_PREC_MILLISECOND
} fp_dt_prec;

/* The timezone of a DateTime: none, 'Z', or a written ±hh:mm offset. */
#define FP_TZ_NONE   0
#define FP_TZ_Z      1
#define FP_TZ_OFFSET 2

#define FP_DT_TEXT_MAX 40 /* bytes of the longest text form, with NUL */

typedef struct fp_datetime {
    int16_t year;         /* 1..9999 (Date/DateTime) */
    uint8_t month;        /* 1..12 when precision >= month */
    uint8_t day;          /* 1..31 when precision >= day */
    uint8_t hour;         /* 0..23 when precision >= hour */
    uint8_t minute;       /* 0..59 */
    uint8_t second;       /* 0..59 */
    uint8_t kind;         /* fp_dt_kind */
    uint16_t millisecond; /* 0..999 */
    uint8_t precision;    /* fp_dt_prec; Time: hour .. millisecond */
    uint8_t tz;           /* FP_TZ_*; only a DateTime with precision >= hour */
    int16_t tz_minutes;   /* offset east of UTC, -14:00 .. +14:00 */
} fp_datetime;

/*
 * Parses a FHIRPath literal: "@2014", "@2014-01-25", "@2015T",
 * "@2014-01-25T14:30:14.559+09:00", "@T14:30" (the '@' is part of the n
 * bytes). Fractions beyond milliseconds are truncated. FP_ESYNTAX when
 * malformed or a field is out of range (month 13, Feb 30, a Time with a zone).
 */
fp_status fp_dt_parse_literal(const char *s, size_t n, fp_datetime *out);

/*
 * Parses text as a value of `kind` (FHIR primitives and toDate() /
 * toDateTime() / toTime()): Date "2014", "2014-01", "2014-01-25"; DateTime
 * those or "2014-01-25T14:30(:14(.559)?)?(Z|±hh:mm)?" (hour-only "T14" as in
 * the literal form is accepted too); Time "14", "14:30", "14:30:00.5".
 * FP_ESYNTAX when malformed.
 */
fp_status fp_dt_parse_text(const char *s, size_t n, fp_dt_kind kind, fp_datetime *out);

/* Writes the toString() form ("2014-01-25", "2014-01-25T14:30:14.559+09:00",
 * "14:30") with a NUL into buf; returns the length (0 when cap is too small;
 * FP_DT_TEXT_MAX is always enough). */
size_t fp_dt_format(const fp_datetime *v, char *buf, size_t cap);

/*
 * Orders a and b (a Date and a DateTime compare with each other; a Time only
 * with a Time, otherwise FP_INCOMPARABLE). FP_UNKNOWN when the values agree
 * on every precision both have but one has more (@2012 vs @2012-01), or when
 * the time zone makes the answer depend on an unknown offset.
 */
fp_cmp fp_dt_compare(const fp_datetime *a, const fp_datetime *b);

/* Equivalence (~): same precision (second and millisecond counting as one)
 * and equal instants; false whenever the comparison is not known. */
bool fp_dt_equivalent(const fp_datetime *a, const fp_datetime *b);

struct fp_quantity;

/*
 * a + sign·q (sign = +1 or -1) for a time-valued quantity q: a calendar
 * keyword (year … millisecond) or the UCUM codes 'wk' 'd' 'h' 'min' 's'
 * 'ms'. The quantity is first truncated to an integer in its own unit (the
 * suite: 7.7 days = 7 days, 0.1 's' = 0), then converted to the precision of
 * a (truncating: @2014-01-01 + 25 hours = @2014-01-02). Month ends clamp
 * (@2014-01-31 + 1 month = @2014-02-28); a Time wraps around midnight.
 * FP_EUNIT for other units (also 'a' and 'mo', as the suite requires) and
 * for calendar days/weeks/months/years on a Time; FP_EOVERFLOW when the year
 * leaves 1..9999.
 */
fp_status fp_dt_add(const fp_datetime *a, const struct fp_quantity *q, int sign, fp_datetime *out);

/* precision(): Date 4/6/8, DateTime 4/6/8/10/12/14/17, Time 2/4/6/9. */
int fp_dt_precision_digits(const fp_datetime *v);

/*
 * lowBoundary(digits) / highBoundary(digits) (-1 = the full precision of the
 * kind): the earliest / latest value the input can denote, written to that
 * precision; a DateTime without zone gets +14:00 (low) / -12:00 (high). As
 * the R4 suite expects, an hour-precision value is first read as hh:00.
 * FP_EMPTY when digits is not a precision of the kind.
 */
fp_status fp_dt_low_boundary(const fp_datetime *v, int digits, fp_datetime *out);
fp_status fp_dt_high_boundary(const fp_datetime *v, int digits, fp_datetime *out);

/* A Date as a DateTime (same fields and precision), and a DateTime as a Date
 * (cut to day precision, zone dropped). Cannot fail. */
fp_datetime fp_dt_to_datetime(const fp_datetime *date);
fp_datetime fp_dt_to_date(const fp_datetime *dt);

/*
 * now() / today() / timeOfDay() from a clock value: unix_ms milliseconds
 * since 1970-01-01T00:00:00Z and the local offset in minutes. now() carries
 * the offset; today() and timeOfDay() are local. FP_EOVERFLOW outside years
 * 1..9999.
 */
fp_status fp_dt_now(int64_t unix_ms, int tz_minutes, fp_datetime *out);
fp_status fp_dt_today(int64_t unix_ms, int tz_minutes, fp_datetime *out);
fp_status fp_dt_time_of_day(int64_t unix_ms, int tz_minutes, fp_datetime *out);

/* ------------------------------------------------------------------------
 * Quantity
 * ------------------------------------------------------------------------ */

typedef enum fp_calendar {
    FP_CAL_NONE = 0,
    FP_CAL_YEAR,
    FP_CAL_MONTH,
    FP_CAL_WEEK,
    FP_CAL_DAY,
    FP_CAL_HOUR,
    FP_CAL_MINUTE,
    FP_CAL_SECOND,
    FP_CAL_MILLISECOND
} fp_calendar;

#define FP_UNIT_MAX_LEN 128 /* bytes of a unit text the parser accepts */

typedef struct fp_quantity {
    fp_decimal value;
    const char *unit;  /* UCUM code or calendar keyword; not owned, not NUL-terminated */
    uint32_t unit_len; /* 0 only for the default unit '1' */
    uint8_t calendar;  /* fp_calendar the unit text names, FP_CAL_NONE for UCUM */
    bool keyword;      /* written as a keyword (1 week), not quoted (1 'wk') */
} fp_quantity;

/*
 * Builds a quantity. unit/unit_len (not copied: the caller keeps the text
 * alive as long as the quantity) is the unit as written, without quotes;
 * keyword says it was written unquoted. A keyword must be a calendar
 * duration ("year", "years", … "milliseconds"): FP_ESYNTAX otherwise. A quoted
 * calendar word ('month') is still a calendar duration (the suite:
 * @1974-12-25 - 1 'month'). unit_len 0 means '1'.
 */
fp_status fp_qty_make(fp_decimal value, const char *unit, size_t unit_len, bool keyword,
                      fp_quantity *out);

/*
 * Parses the toQuantity() string form: a decimal with an optional sign, then
 * optionally spaces and either 'ucum' (quotes in the text) or a calendar
 * keyword ("1 day", "1 'wk'", "-1.5 'mg'", "1.0"). The unit points into s.
 * FP_ESYNTAX when malformed.
 */
fp_status fp_qty_parse(const char *s, size_t n, fp_quantity *out);

/* Writes the toString() form ("4 'wk'", "1 week", "1.5 'mg'") to b. */
void fp_qty_format(const fp_quantity *q, tsg_buf *b);

/* Whether the units can be compared and converted (same dimensions, or both
 * calendar years/months). */
bool fp_qty_comparable(const fp_quantity *a, const fp_quantity *b);

/*
 * Orders two quantities after converting to common units. FP_UNKNOWN when
 * one is a calendar year/month and the other a definite time unit (1 year vs
 * 1 'a' or 365 days); FP_INCOMPARABLE for different dimensions or units the
 * UCUM parser does not know (unless both unit texts are identical).
 */
fp_cmp fp_qty_compare(const fp_quantity *a, const fp_quantity *b);

/* Equivalence (~): converted to base units, then compared at the smaller
 * precision (4 'g' ~ 4040 'mg'). False when not comparable. */
bool fp_qty_equivalent(const fp_quantity *a, const fp_quantity *b);

/* Converts q to the given unit (a UCUM code, or a calendar keyword when
 * keyword); the result's unit points at `unit`. FP_EUNIT when not
 * comparable, FP_EMPTY when not known (calendar month vs seconds). */
fp_status fp_qty_convert(const fp_quantity *q, const char *unit, size_t unit_len, bool keyword,
                         fp_quantity *out);

/* a ± b in the unit of a (b converted). FP_EUNIT when not comparable. */
fp_status fp_qty_add(const fp_quantity *a, const fp_quantity *b, fp_quantity *out);
fp_status fp_qty_sub(const fp_quantity *a, const fp_quantity *b, fp_quantity *out);

/*
 * a × b and a / b: the value is the product/quotient and the unit the UCUM
 * product ("cm.m", "g/m", "cm2" for cm×cm, "1" for m/m), whose text is
 * allocated in arena (FP_EOVERFLOW when the arena is exhausted, FP_EUNIT for
 * Cel/[degF] or calendar years/months, FP_EMPTY for division by zero).
 */
fp_status fp_qty_mul(const fp_quantity *a, const fp_quantity *b, tsg_arena *arena,
                     fp_quantity *out);
fp_status fp_qty_div(const fp_quantity *a, const fp_quantity *b, tsg_arena *arena,
                     fp_quantity *out);

#endif
