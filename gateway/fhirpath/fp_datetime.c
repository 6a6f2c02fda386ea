/*
 * fp_datetime.c — FHIRPath Date, DateTime and Time: parsing with precision,
 * text forms, precision-aware comparison, calendar arithmetic, boundaries and
 * the clock functions. See fp_value.h for the representation and rules.
 */
#include "fhirpath/fp_value.h"

#include <stdio.h>
#include <string.h>

#define MS_PER_DAY 86400000LL

/* ========================================================================
 * Calendar helpers
 * ======================================================================== */

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Milliseconds since the epoch of the local fields (missing fields count as
 * their lowest value). */
static int64_t dt_to_ms(const fp_datetime *v)
{
    int m = v->precision >= FP_PREC_MONTH ? v->month : 1;
    int d = v->precision >= FP_PREC_DAY ? v->day : 1;
    int64_t days = days_from_civil(v->year, m, d);
    return days * MS_PER_DAY + (int64_t)v->hour * 3600000 + (int64_t)v->minute * 60000 +
           (int64_t)v->second * 1000 + v->millisecond;
}

/* Sets the fields of v from ms since the epoch; FP_EOVERFLOW outside 1..9999. */
static fp_status dt_from_ms(int64_t ms, fp_datetime *v)
{
    int64_t days = ms >= 0 ? ms / MS_PER_DAY : -((-ms + MS_PER_DAY - 1) / MS_PER_DAY);
    int64_t rest = ms - days * MS_PER_DAY;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999) return FP_EOVERFLOW;
    v->year = (int16_t)y;
    v->month = (uint8_t)m;
    v->day = (uint8_t)d;
    v->hour = (uint8_t)(rest / 3600000);
    v->minute = (uint8_t)(rest / 60000 % 60);
    v->second = (uint8_t)(rest / 1000 % 60);
    v->millisecond = (uint16_t)(rest % 1000);
    return FP_OK;
}

/* Milliseconds since midnight of the clock fields. */
static int64_t tod_ms(const fp_datetime *v)
{
    return (int64_t)v->hour * 3600000 + (int64_t)v->minute * 60000 + (int64_t)v->second * 1000 +
           v->millisecond;
}

/* Clears the fields below v's precision. */
static void dt_clear_below(fp_datetime *v)
{
    if (v->kind != FP_TIME) {
        if (v->precision < FP_PREC_MONTH) v->month = 0;
        if (v->precision < FP_PREC_DAY) v->day = 0;
    }
    if (v->precision < FP_PREC_HOUR) v->hour = 0;
    if (v->precision < FP_PREC_MINUTE) v->minute = 0;
    if (v->precision < FP_PREC_SECOND) v->second = 0;
    if (v->precision < FP_PREC_MILLISECOND) v->millisecond = 0;
    if (v->precision < FP_PREC_HOUR) {
        v->tz = FP_TZ_NONE;
        v->tz_minutes = 0;
    }
}

/* ========================================================================
 * Parsing
 * ======================================================================== */

typedef struct cursor {
    const char *s;
    size_t n, i;
} cursor;

/* Reads exactly k digits; -1 when they are not there. */
static int read_digits(cursor *c, int k)
{
    if (c->n - c->i < (size_t)k) return -1;
    int v = 0;
    for (int j = 0; j < k; j++) {
        char ch = c->s[c->i + (size_t)j];
        if (ch < '0' || ch > '9') return -1;
        v = v * 10 + (ch - '0');
    }
    c->i += (size_t)k;
    return v;
}

static int peek(const cursor *c)
{
    return c->i < c->n ? (unsigned char)c->s[c->i] : -1;
}

/* hh(:mm(:ss(.fff…)?)?)? into v, precision set; FP_ESYNTAX when malformed. */
static fp_status parse_time_part(cursor *c, fp_datetime *v)
{
    int h = read_digits(c, 2);
    if (h < 0 || h > 23) return FP_ESYNTAX;
    v->hour = (uint8_t)h;
    v->precision = FP_PREC_HOUR;
    if (peek(c) != ':') return FP_OK;
    c->i++;
    int mi = read_digits(c, 2);
    if (mi < 0 || mi > 59) return FP_ESYNTAX;
    v->minute = (uint8_t)mi;
    v->precision = FP_PREC_MINUTE;
    if (peek(c) != ':') return FP_OK;
    c->i++;
    int se = read_digits(c, 2);
    if (se < 0 || se > 59) return FP_ESYNTAX;
    v->second = (uint8_t)se;
    v->precision = FP_PREC_SECOND;
    if (peek(c) != '.') return FP_OK;
    c->i++;
    int nd = 0, ms = 0;
    while (peek(c) >= '0' && peek(c) <= '9') {
        if (nd < 3) ms = ms * 10 + (c->s[c->i] - '0');
        nd++;
        c->i++;
    }
    if (nd == 0) return FP_ESYNTAX;
    for (int k = nd; k < 3; k++) ms *= 10;
    v->millisecond = (uint16_t)ms;
    v->precision = FP_PREC_MILLISECOND;
    return FP_OK;
}

/* Z or ±hh:mm (offsets up to 14:00). */
static fp_status parse_tz(cursor *c, fp_datetime *v)
{
    int ch = peek(c);
    if (ch == 'Z') {
        c->i++;
        v->tz = FP_TZ_Z;
        v->tz_minutes = 0;
        return FP_OK;
    }
    if (ch != '+' && ch != '-') return FP_OK;
    c->i++;
    int h = read_digits(c, 2);
    if (h < 0 || peek(c) != ':') return FP_ESYNTAX;
    c->i++;
    int m = read_digits(c, 2);
    if (m < 0 || m > 59 || h * 60 + m > 14 * 60) return FP_ESYNTAX;
    v->tz = FP_TZ_OFFSET;
    v->tz_minutes = (int16_t)(ch == '-' ? -(h * 60 + m) : h * 60 + m);
    return FP_OK;
}

/* YYYY(-MM(-DD)?)? into v. */
static fp_status parse_date_part(cursor *c, fp_datetime *v)
{
    int y = read_digits(c, 4);
    if (y < 1) return FP_ESYNTAX;
    v->year = (int16_t)y;
    v->precision = FP_PREC_YEAR;
    if (peek(c) != '-') return FP_OK;
    c->i++;
    int m = read_digits(c, 2);
    if (m < 1 || m > 12) return FP_ESYNTAX;
    v->month = (uint8_t)m;
    v->precision = FP_PREC_MONTH;
    if (peek(c) != '-') return FP_OK;
    c->i++;
    int d = read_digits(c, 2);
    if (d < 1 || d > days_in_month(y, m)) return FP_ESYNTAX;
    v->day = (uint8_t)d;
    v->precision = FP_PREC_DAY;
    return FP_OK;
}

/*
 * A date, optionally followed by 'T' and an optional time and zone
 * (allow_t: the 'T' may end the text, as in @2015T). kind_out says whether a
 * 'T' was seen.
 */
static fp_status parse_date_time(cursor *c, fp_datetime *v, int allow_bare_t, int *saw_t)
{
    fp_status st = parse_date_part(c, v);
    if (st != FP_OK) return st;
    *saw_t = 0;
    if (peek(c) != 'T') return FP_OK;
    *saw_t = 1;
    c->i++;
    if (c->i == c->n) return allow_bare_t ? FP_OK : FP_ESYNTAX;
    if (v->precision != FP_PREC_DAY) return FP_ESYNTAX; /* 2014-01T10 */
    st = parse_time_part(c, v);
    if (st != FP_OK) return st;
    return parse_tz(c, v);
}

fp_status fp_dt_parse_literal(const char *s, size_t n, fp_datetime *out)
{
    fp_datetime v;
    memset(&v, 0, sizeof v);
    cursor c = {s, n, 0};
    if (n < 2 || s[0] != '@') return FP_ESYNTAX;
    c.i = 1;
    fp_status st;
    if (s[1] == 'T') {
        c.i = 2;
        v.kind = FP_TIME;
        st = parse_time_part(&c, &v);
    } else {
        int saw_t;
        st = parse_date_time(&c, &v, 1, &saw_t);
        v.kind = saw_t ? FP_DATETIME : FP_DATE;
    }
    if (st != FP_OK || c.i != n) return FP_ESYNTAX;
    *out = v;
    return FP_OK;
}

fp_status fp_dt_parse_text(const char *s, size_t n, fp_dt_kind kind, fp_datetime *out)
{
    fp_datetime v;
    memset(&v, 0, sizeof v);
    cursor c = {s, n, 0};
    fp_status st;
    v.kind = (uint8_t)kind;
    if (kind == FP_TIME) {
        st = parse_time_part(&c, &v);
    } else {
        int saw_t = 0;
        st = parse_date_time(&c, &v, kind == FP_DATETIME, &saw_t);
        if (st == FP_OK && saw_t && kind == FP_DATE) st = FP_ESYNTAX;
    }
    if (st != FP_OK || c.i != n) return FP_ESYNTAX;
    *out = v;
    return FP_OK;
}

/* ========================================================================
 * Text
 * ======================================================================== */

size_t fp_dt_format(const fp_datetime *v, char *buf, size_t cap)
{
    char tmp[FP_DT_TEXT_MAX];
    int k = 0;
    int p = v->precision;
    if (v->kind != FP_TIME) {
        k += snprintf(tmp + k, sizeof tmp - (size_t)k, "%04d", v->year);
        if (p >= FP_PREC_MONTH) k += snprintf(tmp + k, sizeof tmp - (size_t)k, "-%02d", v->month);
        if (p >= FP_PREC_DAY) k += snprintf(tmp + k, sizeof tmp - (size_t)k, "-%02d", v->day);
        if (p >= FP_PREC_HOUR) tmp[k++] = 'T';
    }
    if (p >= FP_PREC_HOUR) k += snprintf(tmp + k, sizeof tmp - (size_t)k, "%02d", v->hour);
    if (p >= FP_PREC_MINUTE) k += snprintf(tmp + k, sizeof tmp - (size_t)k, ":%02d", v->minute);
    if (p >= FP_PREC_SECOND) k += snprintf(tmp + k, sizeof tmp - (size_t)k, ":%02d", v->second);
    if (p >= FP_PREC_MILLISECOND)
        k += snprintf(tmp + k, sizeof tmp - (size_t)k, ".%03d", v->millisecond);
    if (v->kind == FP_DATETIME && p >= FP_PREC_HOUR) {
        if (v->tz == FP_TZ_Z) {
            tmp[k++] = 'Z';
        } else if (v->tz == FP_TZ_OFFSET) {
            int o = v->tz_minutes < 0 ? -v->tz_minutes : v->tz_minutes;
            k += snprintf(tmp + k, sizeof tmp - (size_t)k, "%c%02d:%02d",
                          v->tz_minutes < 0 ? '-' : '+', o / 60, o % 60);
        }
    }
    if ((size_t)k + 1 > cap) return 0;
    memcpy(buf, tmp, (size_t)k);
    buf[k] = '\0';
    return (size_t)k;
}

/* ========================================================================
 * Comparison
 * ======================================================================== */

/* The comparison level of a precision: seconds and milliseconds are one. */
static int cmp_level(int prec)
{
    return prec >= FP_PREC_SECOND ? FP_PREC_SECOND : prec;
}

/* Field of v at comparison level l (seconds carry the milliseconds). */
static int field_at(const fp_datetime *v, int l)
{
    switch (l) {
    case FP_PREC_YEAR:
        return v->year;
    case FP_PREC_MONTH:
        return v->month;
    case FP_PREC_DAY:
        return v->day;
    case FP_PREC_HOUR:
        return v->hour;
    case FP_PREC_MINUTE:
        return v->minute;
    default:
        return v->second * 1000 + v->millisecond;
    }
}

/* v shifted by -offset minutes (to UTC), fields above its precision only. */
static fp_datetime dt_shift(const fp_datetime *v, int minutes)
{
    fp_datetime r = *v;
    if (minutes == 0 || v->precision < FP_PREC_HOUR) return r;
    if (v->kind == FP_TIME) {
        int64_t ms = tod_ms(v) - (int64_t)minutes * 60000;
        ms %= MS_PER_DAY;
        if (ms < 0) ms += MS_PER_DAY;
        r.hour = (uint8_t)(ms / 3600000);
        r.minute = (uint8_t)(ms / 60000 % 60);
        return r;
    }
    int64_t ms = dt_to_ms(v) - (int64_t)minutes * 60000;
    if (dt_from_ms(ms, &r) != FP_OK) {
        /* year 0 or 10000: compare on the unshifted fields instead */
        r = *v;
    }
    r.precision = v->precision;
    return r;
}

/* Field-by-field comparison of two values already in the same zone. */
static fp_cmp cmp_fields(const fp_datetime *a, const fp_datetime *b)
{
    int start = a->kind == FP_TIME ? FP_PREC_HOUR : FP_PREC_YEAR;
    int la = cmp_level(a->precision), lb = cmp_level(b->precision);
    int common = la < lb ? la : lb;
    for (int l = start; l <= common; l++) {
        int x = field_at(a, l), y = field_at(b, l);
        if (x != y) return x < y ? FP_LT : FP_GT;
    }
    return la == lb ? FP_EQ : FP_UNKNOWN;
}

fp_cmp fp_dt_compare(const fp_datetime *a, const fp_datetime *b)
{
    if ((a->kind == FP_TIME) != (b->kind == FP_TIME)) return FP_INCOMPARABLE;
    int za = a->tz != FP_TZ_NONE && a->precision >= FP_PREC_HOUR;
    int zb = b->tz != FP_TZ_NONE && b->precision >= FP_PREC_HOUR;
    if (za && zb) {
        fp_datetime x = dt_shift(a, a->tz_minutes), y = dt_shift(b, b->tz_minutes);
        return cmp_fields(&x, &y);
    }
    if (za != zb && a->precision >= FP_PREC_HOUR && b->precision >= FP_PREC_HOUR) {
        /* one zone unknown: the answer must hold at every offset it could have */
        const fp_datetime *zoned = za ? a : b, *plain = za ? b : a;
        fp_datetime z = dt_shift(zoned, zoned->tz_minutes);
        fp_cmp lo, hi;
        fp_datetime p1 = dt_shift(plain, -12 * 60), p2 = dt_shift(plain, 14 * 60);
        lo = za ? cmp_fields(&z, &p1) : cmp_fields(&p1, &z);
        hi = za ? cmp_fields(&z, &p2) : cmp_fields(&p2, &z);
        if (lo == hi && lo != FP_EQ) return lo;
        return FP_UNKNOWN;
    }
    return cmp_fields(a, b);
}

bool fp_dt_equivalent(const fp_datetime *a, const fp_datetime *b)
{
    if (cmp_level(a->precision) != cmp_level(b->precision)) return false;
    return fp_dt_compare(a, b) == FP_EQ;
}

/* ========================================================================
 * Arithmetic
 * ======================================================================== */

/* The calendar unit of a time-valued quantity for date arithmetic. */
static fp_calendar time_unit(const fp_quantity *q)
{
    if (q->calendar != FP_CAL_NONE) return (fp_calendar)q->calendar;
    static const struct {
        const char *code;
        fp_calendar cal;
    } ucum[] = {{"wk", FP_CAL_WEEK},    {"d", FP_CAL_DAY},    {"h", FP_CAL_HOUR},
                {"min", FP_CAL_MINUTE}, {"s", FP_CAL_SECOND}, {"ms", FP_CAL_MILLISECOND}};
    for (size_t i = 0; i < sizeof ucum / sizeof ucum[0]; i++)
        if (strlen(ucum[i].code) == q->unit_len && memcmp(ucum[i].code, q->unit, q->unit_len) == 0)
            return ucum[i].cal;
    return FP_CAL_NONE;
}

/* Milliseconds of one unit (week and below). */
static int64_t unit_ms(fp_calendar u)
{
    switch (u) {
    case FP_CAL_WEEK:
        return 7 * MS_PER_DAY;
    case FP_CAL_DAY:
        return MS_PER_DAY;
    case FP_CAL_HOUR:
        return 3600000;
    case FP_CAL_MINUTE:
        return 60000;
    case FP_CAL_SECOND:
        return 1000;
    default:
        return 1;
    }
}

/* Milliseconds of one step at a precision (day and below). */
static int64_t prec_ms(int prec)
{
    switch (prec) {
    case FP_PREC_DAY:
        return MS_PER_DAY;
    case FP_PREC_HOUR:
        return 3600000;
    case FP_PREC_MINUTE:
        return 60000;
    case FP_PREC_SECOND:
        return 1000;
    default:
        return 1;
    }
}

/* Adds months to the year/month fields, clamping the day to the month end. */
static fp_status add_months(fp_datetime *v, int64_t months)
{
    int64_t total = (int64_t)v->year * 12 + (v->precision >= FP_PREC_MONTH ? v->month - 1 : 0);
    total += months;
    int64_t y = total >= 0 ? total / 12 : -((-total + 11) / 12);
    if (y < 1 || y > 9999) return FP_EOVERFLOW;
    v->year = (int16_t)y;
    if (v->precision >= FP_PREC_MONTH) v->month = (uint8_t)(total - y * 12 + 1);
    if (v->precision >= FP_PREC_DAY) {
        int dim = days_in_month(v->year, v->month);
        if (v->day > dim) v->day = (uint8_t)dim;
    }
    return FP_OK;
}

fp_status fp_dt_add(const fp_datetime *a, const fp_quantity *q, int sign, fp_datetime *out)
{
    fp_calendar u = time_unit(q);
    if (u == FP_CAL_NONE) return FP_EUNIT;
    if (a->kind == FP_TIME && u <= FP_CAL_DAY) return FP_EUNIT;
    /* truncate the amount to an integer of its own unit */
    fp_decimal amount = q->value;
    int64_t n;
    {
        int32_t t;
        fp_status st = fp_dec_truncate(amount, &t);
        if (st != FP_OK) return st;
        n = (int64_t)t * (sign < 0 ? -1 : 1);
    }
    fp_datetime r = *a;
    int p = a->precision;
    if (u == FP_CAL_YEAR || u == FP_CAL_MONTH) {
        int64_t months = u == FP_CAL_YEAR ? n * 12 : n;
        if (p == FP_PREC_YEAR) months = months / 12 * 12; /* whole years only */
        fp_status st = add_months(&r, months);
        if (st != FP_OK) return st;
        *out = r;
        return FP_OK;
    }
    int64_t ms = n * unit_ms(u);
    if (a->kind == FP_TIME) {
        int64_t step = prec_ms(p);
        ms = ms / step * step;
        int64_t t = tod_ms(a) + ms % MS_PER_DAY;
        t %= MS_PER_DAY;
        if (t < 0) t += MS_PER_DAY;
        r.hour = (uint8_t)(t / 3600000);
        r.minute = (uint8_t)(t / 60000 % 60);
        r.second = (uint8_t)(t / 1000 % 60);
        r.millisecond = (uint16_t)(t % 1000);
        dt_clear_below(&r);
        *out = r;
        return FP_OK;
    }
    if (p <= FP_PREC_MONTH) {
        /* days on a month/year value: 30-day months, 365-day years (truncated) */
        int64_t days = ms / MS_PER_DAY;
        int64_t months = p == FP_PREC_MONTH ? days / 30 : days / 365 * 12;
        fp_status st = add_months(&r, months);
        if (st != FP_OK) return st;
        *out = r;
        return FP_OK;
    }
    int64_t step = prec_ms(p);
    ms = ms / step * step;
    if (ms > 400000LL * 365 * MS_PER_DAY || ms < -400000LL * 365 * MS_PER_DAY) return FP_EOVERFLOW;
    fp_status st = dt_from_ms(dt_to_ms(a) + ms, &r);
    if (st != FP_OK) return st;
    r.precision = a->precision;
    dt_clear_below(&r);
    r.tz = a->tz;
    r.tz_minutes = a->tz_minutes;
    *out = r;
    return FP_OK;
}

/* ========================================================================
 * Precision and boundaries
 * ======================================================================== */

static const int prec_digits_date[] = {4, 6, 8, 10, 12, 14, 17};
static const int prec_digits_time[] = {0, 0, 0, 2, 4, 6, 9};

int fp_dt_precision_digits(const fp_datetime *v)
{
    return v->kind == FP_TIME ? prec_digits_time[v->precision] : prec_digits_date[v->precision];
}

/* The precision a digit count names for v's kind, or -1. */
static int prec_from_digits(const fp_datetime *v, int digits)
{
    if (digits == -1) return v->kind == FP_DATE ? FP_PREC_DAY : FP_PREC_MILLISECOND;
    int lo = v->kind == FP_TIME ? FP_PREC_HOUR : FP_PREC_YEAR;
    int hi = v->kind == FP_DATE ? FP_PREC_DAY : FP_PREC_MILLISECOND;
    for (int p = lo; p <= hi; p++) {
        int d = v->kind == FP_TIME ? prec_digits_time[p] : prec_digits_date[p];
        if (d == digits) return p;
    }
    return -1;
}

static fp_status dt_boundary(const fp_datetime *v, int digits, int high, fp_datetime *out)
{
    int target = prec_from_digits(v, digits);
    if (target < 0) return FP_EMPTY;
    fp_datetime r = *v;
    /* the suite reads an hour-precision value as hh:00 */
    if (r.precision == FP_PREC_HOUR) {
        r.precision = FP_PREC_MINUTE;
        r.minute = 0;
    }
    if (r.precision < target) {
        if (r.precision < FP_PREC_MONTH) r.month = high ? 12 : 1;
        if (r.precision < FP_PREC_DAY) r.day = high ? (uint8_t)days_in_month(r.year, r.month) : 1;
        if (r.precision < FP_PREC_HOUR) r.hour = high ? 23 : 0;
        if (r.precision < FP_PREC_MINUTE) r.minute = high ? 59 : 0;
        if (r.precision < FP_PREC_SECOND) r.second = high ? 59 : 0;
        if (r.precision < FP_PREC_MILLISECOND) r.millisecond = high ? 999 : 0;
    }
    if (v->kind == FP_DATETIME && target >= FP_PREC_HOUR && r.tz == FP_TZ_NONE) {
        r.tz = FP_TZ_OFFSET;
        r.tz_minutes = high ? -12 * 60 : 14 * 60;
    }
    r.precision = (uint8_t)target;
    dt_clear_below(&r);
    *out = r;
    return FP_OK;
}

fp_status fp_dt_low_boundary(const fp_datetime *v, int digits, fp_datetime *out)
{
    return dt_boundary(v, digits, 0, out);
}

fp_status fp_dt_high_boundary(const fp_datetime *v, int digits, fp_datetime *out)
{
    return dt_boundary(v, digits, 1, out);
}

fp_datetime fp_dt_to_datetime(const fp_datetime *date)
{
    fp_datetime r = *date;
    r.kind = FP_DATETIME;
    return r;
}

fp_datetime fp_dt_to_date(const fp_datetime *dt)
{
    fp_datetime r = *dt;
    r.kind = FP_DATE;
    if (r.precision > FP_PREC_DAY) r.precision = FP_PREC_DAY;
    dt_clear_below(&r);
    return r;
}

/* ========================================================================
 * Clock
 * ======================================================================== */

fp_status fp_dt_now(int64_t unix_ms, int tz_minutes, fp_datetime *out)
{
    fp_datetime r;
    memset(&r, 0, sizeof r);
    fp_status st = dt_from_ms(unix_ms + (int64_t)tz_minutes * 60000, &r);
    if (st != FP_OK) return st;
    r.kind = FP_DATETIME;
    r.precision = FP_PREC_MILLISECOND;
    r.tz = tz_minutes == 0 ? FP_TZ_Z : FP_TZ_OFFSET;
    r.tz_minutes = (int16_t)tz_minutes;
    *out = r;
    return FP_OK;
}

fp_status fp_dt_today(int64_t unix_ms, int tz_minutes, fp_datetime *out)
{
    fp_datetime r;
    fp_status st = fp_dt_now(unix_ms, tz_minutes, &r);
    if (st != FP_OK) return st;
    *out = fp_dt_to_date(&r);
    return FP_OK;
}

fp_status fp_dt_time_of_day(int64_t unix_ms, int tz_minutes, fp_datetime *out)
{
    fp_datetime r;
    fp_status st = fp_dt_now(unix_ms, tz_minutes, &r);
    if (st != FP_OK) return st;
    r.kind = FP_TIME;
    r.year = 0;
    r.month = r.day = 0;
    r.tz = FP_TZ_NONE;
    r.tz_minutes = 0;
    *out = r;
    return FP_OK;
}
