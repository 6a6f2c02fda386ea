/*
 * fp_quantity.c — FHIRPath Quantity: calendar durations and a small UCUM
 * reducer (prefix + atom + exponent, products, quotients, parentheses,
 * annotations) to seven base dimensions and an exact rational factor, for
 * comparison, equivalence, conversion and arithmetic. See fp_value.h.
 */
#include "fhirpath/fp_value.h"

#include <string.h>

/* ========================================================================
 * UCUM tables
 * ======================================================================== */

enum { D_M, D_S, D_G, D_RAD, D_K, D_C, D_CD, NDIM };

/* A unit reduced to base units: canonical = (value + offset) * num / den. */
typedef struct ucum_unit {
    int8_t dim[NDIM];
    fp_decimal num, den, offset;
    bool special; /* Cel or [degF]: only alone, exponent 1 */
} ucum_unit;

typedef struct ucum_atom {
    const char *code;
    bool metric;
    int8_t dim[NDIM]; /* m s g rad K C cd */
    int64_t coef;     /* factor = coef·10^exp / den */
    int exp;
    int64_t den;
    int64_t off_coef; /* offset = off_coef·10^off_exp (special units) */
    int off_exp;
} ucum_atom;

#define DIMS(m, s, g, rad, k, c, cd)                                                               \
    {                                                                                              \
        m, s, g, rad, k, c, cd                                                                     \
    }

static const ucum_atom atoms[] = {
    /* base units */
    {"m", true, DIMS(1, 0, 0, 0, 0, 0, 0), 1, 0, 1, 0, 0},
    {"s", true, DIMS(0, 1, 0, 0, 0, 0, 0), 1, 0, 1, 0, 0},
    {"g", true, DIMS(0, 0, 1, 0, 0, 0, 0), 1, 0, 1, 0, 0},
    {"rad", true, DIMS(0, 0, 0, 1, 0, 0, 0), 1, 0, 1, 0, 0},
    {"K", true, DIMS(0, 0, 0, 0, 1, 0, 0), 1, 0, 1, 0, 0},
    {"C", true, DIMS(0, 0, 0, 0, 0, 1, 0), 1, 0, 1, 0, 0},
    {"cd", true, DIMS(0, 0, 0, 0, 0, 0, 1), 1, 0, 1, 0, 0},
    /* derived SI */
    {"L", true, DIMS(3, 0, 0, 0, 0, 0, 0), 1, -3, 1, 0, 0},
    {"l", true, DIMS(3, 0, 0, 0, 0, 0, 0), 1, -3, 1, 0, 0},
    {"Pa", true, DIMS(-1, -2, 1, 0, 0, 0, 0), 1, 3, 1, 0, 0},
    {"N", true, DIMS(1, -2, 1, 0, 0, 0, 0), 1, 3, 1, 0, 0},
    {"J", true, DIMS(2, -2, 1, 0, 0, 0, 0), 1, 3, 1, 0, 0},
    {"W", true, DIMS(2, -3, 1, 0, 0, 0, 0), 1, 3, 1, 0, 0},
    {"Hz", true, DIMS(0, -1, 0, 0, 0, 0, 0), 1, 0, 1, 0, 0},
    {"A", true, DIMS(0, -1, 0, 0, 0, 1, 0), 1, 0, 1, 0, 0},
    {"V", true, DIMS(2, -2, 1, 0, 0, -1, 0), 1, 3, 1, 0, 0},
    {"Ohm", true, DIMS(2, -1, 1, 0, 0, -2, 0), 1, 3, 1, 0, 0},
    {"sr", true, DIMS(0, 0, 0, 2, 0, 0, 0), 1, 0, 1, 0, 0},
    {"mol", true, DIMS(0, 0, 0, 0, 0, 0, 0), 60221367, 16, 1, 0, 0},
    {"eq", true, DIMS(0, 0, 0, 0, 0, 0, 0), 60221367, 16, 1, 0, 0},
    {"osm", true, DIMS(0, 0, 0, 0, 0, 0, 0), 60221367, 16, 1, 0, 0},
    {"U", true, DIMS(0, -1, 0, 0, 0, 0, 0), 60221367, 10, 60, 0, 0},
    {"bar", true, DIMS(-1, -2, 1, 0, 0, 0, 0), 1, 8, 1, 0, 0},
    {"atm", false, DIMS(-1, -2, 1, 0, 0, 0, 0), 101325, 3, 1, 0, 0},
    {"m[Hg]", true, DIMS(-1, -2, 1, 0, 0, 0, 0), 133322, 3, 1, 0, 0},
    {"m[H2O]", true, DIMS(-1, -2, 1, 0, 0, 0, 0), 980665, 1, 1, 0, 0},
    {"cal", true, DIMS(2, -2, 1, 0, 0, 0, 0), 4184, 0, 1, 0, 0},
    {"[Cal]", false, DIMS(2, -2, 1, 0, 0, 0, 0), 4184, 3, 1, 0, 0},
    {"t", true, DIMS(0, 0, 1, 0, 0, 0, 0), 1, 6, 1, 0, 0},
    /* time */
    {"min", false, DIMS(0, 1, 0, 0, 0, 0, 0), 60, 0, 1, 0, 0},
    {"h", false, DIMS(0, 1, 0, 0, 0, 0, 0), 3600, 0, 1, 0, 0},
    {"d", false, DIMS(0, 1, 0, 0, 0, 0, 0), 86400, 0, 1, 0, 0},
    {"wk", false, DIMS(0, 1, 0, 0, 0, 0, 0), 604800, 0, 1, 0, 0},
    {"mo", false, DIMS(0, 1, 0, 0, 0, 0, 0), 2629800, 0, 1, 0, 0},
    {"mo_j", false, DIMS(0, 1, 0, 0, 0, 0, 0), 2629800, 0, 1, 0, 0},
    {"a", false, DIMS(0, 1, 0, 0, 0, 0, 0), 31557600, 0, 1, 0, 0},
    {"a_j", false, DIMS(0, 1, 0, 0, 0, 0, 0), 31557600, 0, 1, 0, 0},
    /* customary */
    {"[in_i]", false, DIMS(1, 0, 0, 0, 0, 0, 0), 254, -4, 1, 0, 0},
    {"[ft_i]", false, DIMS(1, 0, 0, 0, 0, 0, 0), 3048, -4, 1, 0, 0},
    {"[yd_i]", false, DIMS(1, 0, 0, 0, 0, 0, 0), 9144, -4, 1, 0, 0},
    {"[mi_i]", false, DIMS(1, 0, 0, 0, 0, 0, 0), 1609344, -3, 1, 0, 0},
    {"[lb_av]", false, DIMS(0, 0, 1, 0, 0, 0, 0), 45359237, -5, 1, 0, 0},
    {"[oz_av]", false, DIMS(0, 0, 1, 0, 0, 0, 0), 28349523125, -9, 1, 0, 0},
    {"[stone_av]", false, DIMS(0, 0, 1, 0, 0, 0, 0), 635029318, -5, 1, 0, 0},
    {"[gr]", false, DIMS(0, 0, 1, 0, 0, 0, 0), 6479891, -8, 1, 0, 0},
    {"[gal_us]", false, DIMS(3, 0, 0, 0, 0, 0, 0), 3785411784, -12, 1, 0, 0},
    {"[qt_us]", false, DIMS(3, 0, 0, 0, 0, 0, 0), 946352946, -12, 1, 0, 0},
    {"[pt_us]", false, DIMS(3, 0, 0, 0, 0, 0, 0), 473176473, -12, 1, 0, 0},
    {"[cup_us]", false, DIMS(3, 0, 0, 0, 0, 0, 0), 2365882365, -13, 1, 0, 0},
    {"[foz_us]", false, DIMS(3, 0, 0, 0, 0, 0, 0), 295735295625, -16, 1, 0, 0},
    /* dimensionless */
    {"%", false, DIMS(0, 0, 0, 0, 0, 0, 0), 1, -2, 1, 0, 0},
    {"[ppth]", false, DIMS(0, 0, 0, 0, 0, 0, 0), 1, -3, 1, 0, 0},
    {"[ppm]", false, DIMS(0, 0, 0, 0, 0, 0, 0), 1, -6, 1, 0, 0},
    {"[ppb]", false, DIMS(0, 0, 0, 0, 0, 0, 0), 1, -9, 1, 0, 0},
    /* temperature (affine) */
    {"Cel", true, DIMS(0, 0, 0, 0, 1, 0, 0), 1, 0, 1, 27315, -2},
    {"[degF]", false, DIMS(0, 0, 0, 0, 1, 0, 0), 5, 0, 9, 45967, -2},
};

static const struct {
    const char *code;
    int exp;
} prefixes[] = {
    {"da", 1}, {"Y", 24},  {"Z", 21},  {"E", 18},  {"P", 15},  {"T", 12},  {"G", 9},
    {"M", 6},  {"k", 3},   {"h", 2},   {"d", -1},  {"c", -2},  {"m", -3},  {"u", -6},
    {"n", -9}, {"p", -12}, {"f", -15}, {"a", -18}, {"z", -21}, {"y", -24},
};

/* coef·10^exp as a decimal (exact for the table's values). */
static fp_decimal dec_pow10(int64_t coef, int exp)
{
    fp_decimal d = {coef, 0};
    if (exp < 0) {
        d.scale = -exp;
    } else {
        for (int i = 0; i < exp; i++) d.coef *= 10;
    }
    return d;
}

static void unit_one(ucum_unit *u)
{
    memset(u, 0, sizeof *u);
    u->num = fp_dec_from_int(1);
    u->den = fp_dec_from_int(1);
    u->offset = fp_dec_from_int(0);
}

/* u := u · v^sign (sign ±1). */
static fp_status unit_combine(ucum_unit *u, const ucum_unit *v, int sign)
{
    for (int i = 0; i < NDIM; i++) {
        int d = u->dim[i] + sign * v->dim[i];
        if (d > 100 || d < -100) return FP_EOVERFLOW;
        u->dim[i] = (int8_t)d;
    }
    fp_status st = fp_dec_mul(u->num, sign > 0 ? v->num : v->den, &u->num);
    if (st == FP_OK) st = fp_dec_mul(u->den, sign > 0 ? v->den : v->num, &u->den);
    return st;
}

/* u := u^e. */
static fp_status unit_pow(ucum_unit *u, int e)
{
    if (e == 1) return FP_OK;
    ucum_unit base = *u;
    unit_one(u);
    int n = e < 0 ? -e : e;
    for (int i = 0; i < n; i++) {
        fp_status st = unit_combine(u, &base, e < 0 ? -1 : 1);
        if (st != FP_OK) return st;
    }
    return FP_OK;
}

/* ========================================================================
 * UCUM parser
 * ======================================================================== */

typedef struct uparser {
    const char *s;
    size_t n, i;
    int depth;
    int ncomp;        /* components seen */
    bool had_special; /* a Cel / [degF] among them */
} uparser;

static const ucum_atom *find_atom(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof atoms / sizeof atoms[0]; i++)
        if (strlen(atoms[i].code) == n && memcmp(atoms[i].code, s, n) == 0) return &atoms[i];
    return NULL;
}

/* An atom, or a prefix and a metric atom. */
static fp_status lookup_symbol(const char *s, size_t n, ucum_unit *u, bool *special)
{
    const ucum_atom *a = find_atom(s, n);
    int pexp = 0;
    if (!a) {
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
            size_t pl = strlen(prefixes[i].code);
            if (pl >= n || memcmp(prefixes[i].code, s, pl) != 0) continue;
            const ucum_atom *b = find_atom(s + pl, n - pl);
            if (b && b->metric) {
                a = b;
                pexp = prefixes[i].exp;
                break;
            }
        }
    }
    if (!a) return FP_EUNIT;
    unit_one(u);
    memcpy(u->dim, a->dim, sizeof u->dim);
    u->num = dec_pow10(a->coef, a->exp);
    fp_decimal p = dec_pow10(1, pexp);
    fp_status st = fp_dec_mul(u->num, p, &u->num);
    if (st != FP_OK) return st;
    u->den = fp_dec_from_int(a->den);
    *special = a->off_coef != 0;
    if (*special) {
        if (pexp != 0) return FP_EUNIT;
        u->offset = dec_pow10(a->off_coef, a->off_exp);
        u->special = true;
    }
    return FP_OK;
}

static int up_peek(const uparser *p)
{
    return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

/* An optional signed exponent; *e = 1 when absent. */
static fp_status read_exponent(uparser *p, int *e, bool *present)
{
    int c = up_peek(p), neg = 0;
    *e = 1;
    *present = false;
    if (c != '+' && c != '-' && !(c >= '0' && c <= '9')) return FP_OK;
    if (c == '+' || c == '-') {
        neg = c == '-';
        p->i++;
    }
    int v = 0, nd = 0;
    while (up_peek(p) >= '0' && up_peek(p) <= '9') {
        v = v * 10 + (p->s[p->i++] - '0');
        if (++nd > 2) return FP_ESYNTAX;
    }
    if (nd == 0) return FP_ESYNTAX;
    *e = neg ? -v : v;
    *present = true;
    return FP_OK;
}

/* Skips an annotation {…}. */
static fp_status skip_annotation(uparser *p)
{
    if (up_peek(p) != '{') return FP_OK;
    while (p->i < p->n && p->s[p->i] != '}') p->i++;
    if (p->i == p->n) return FP_ESYNTAX;
    p->i++;
    return FP_OK;
}

static fp_status parse_term(uparser *p, ucum_unit *u);

/* component := '(' term ')' | annotation | integer | 10*exp | symbol exp? annotation? */
static fp_status parse_component(uparser *p, ucum_unit *u)
{
    int c = up_peek(p);
    p->ncomp++;
    if (c == '(') {
        if (++p->depth > 8) return FP_ESYNTAX;
        p->i++;
        fp_status st = parse_term(p, u);
        if (st != FP_OK) return st;
        if (up_peek(p) != ')') return FP_ESYNTAX;
        p->i++;
        p->depth--;
        return FP_OK;
    }
    if (c == '{') {
        unit_one(u);
        return skip_annotation(p);
    }
    if (c >= '0' && c <= '9') {
        if (p->n - p->i >= 3 && p->s[p->i] == '1' && p->s[p->i + 1] == '0' &&
            (p->s[p->i + 2] == '*' || p->s[p->i + 2] == '^')) {
            p->i += 3;
            int e;
            bool present;
            fp_status st = read_exponent(p, &e, &present);
            if (st != FP_OK) return st;
            if (!present || e < -24 || e > 24) return FP_ESYNTAX;
            unit_one(u);
            u->num = dec_pow10(1, e);
            return skip_annotation(p);
        }
        int64_t v = 0;
        int nd = 0;
        while (up_peek(p) >= '0' && up_peek(p) <= '9') {
            v = v * 10 + (p->s[p->i++] - '0');
            if (++nd > 12) return FP_ESYNTAX;
        }
        unit_one(u);
        u->num = fp_dec_from_int(v);
        return skip_annotation(p);
    }
    size_t start = p->i;
    while (p->i < p->n) {
        char ch = p->s[p->i];
        if (ch == '[') {
            while (p->i < p->n && p->s[p->i] != ']') p->i++;
            if (p->i == p->n) return FP_ESYNTAX;
            p->i++;
            continue;
        }
        if (ch == '.' || ch == '/' || ch == '(' || ch == ')' || ch == '{' || ch == '+' ||
            ch == '-' || (ch >= '0' && ch <= '9'))
            break;
        p->i++;
    }
    if (p->i == start) return FP_ESYNTAX;
    bool special = false;
    fp_status st = lookup_symbol(p->s + start, p->i - start, u, &special);
    if (st != FP_OK) return st;
    int e;
    bool present;
    st = read_exponent(p, &e, &present);
    if (st != FP_OK) return st;
    if (special) {
        if (e != 1) return FP_EUNIT;
        p->had_special = true;
    } else {
        st = unit_pow(u, e);
        if (st != FP_OK) return st;
    }
    return skip_annotation(p);
}

/* term := '/'? component (('.' | '/') component)* */
static fp_status parse_term(uparser *p, ucum_unit *u)
{
    int sign = 1;
    unit_one(u);
    if (up_peek(p) == '/') {
        p->i++;
        sign = -1;
        p->ncomp++; /* a leading '/' makes a special unit illegal too */
    }
    for (;;) {
        ucum_unit v;
        fp_status st = parse_component(p, &v);
        if (st != FP_OK) return st;
        if (v.special) {
            u->offset = v.offset;
            u->special = true;
        }
        st = unit_combine(u, &v, sign);
        if (st != FP_OK) return st;
        int c = up_peek(p);
        if (c == '.' || c == '/') {
            sign = c == '.' ? 1 : -1;
            p->i++;
            continue;
        }
        return FP_OK;
    }
}

/* Reduces a UCUM code to base units. FP_EUNIT for unknown atoms or misused
 * special units, FP_ESYNTAX when malformed. */
static fp_status ucum_parse(const char *s, size_t n, ucum_unit *u)
{
    if (n == 0) {
        unit_one(u);
        return FP_OK;
    }
    if (n > FP_UNIT_MAX_LEN) return FP_ESYNTAX;
    uparser p = {s, n, 0, 0, 0, false};
    fp_status st = parse_term(&p, u);
    if (st != FP_OK) return st;
    if (p.i != n) return FP_ESYNTAX;
    if (p.had_special && p.ncomp != 1) return FP_EUNIT;
    return FP_OK;
}

/* ========================================================================
 * Calendar keywords
 * ======================================================================== */

static const struct {
    const char *word;
    fp_calendar cal;
} cal_words[] = {
    {"year", FP_CAL_YEAR},
    {"years", FP_CAL_YEAR},
    {"month", FP_CAL_MONTH},
    {"months", FP_CAL_MONTH},
    {"week", FP_CAL_WEEK},
    {"weeks", FP_CAL_WEEK},
    {"day", FP_CAL_DAY},
    {"days", FP_CAL_DAY},
    {"hour", FP_CAL_HOUR},
    {"hours", FP_CAL_HOUR},
    {"minute", FP_CAL_MINUTE},
    {"minutes", FP_CAL_MINUTE},
    {"second", FP_CAL_SECOND},
    {"seconds", FP_CAL_SECOND},
    {"millisecond", FP_CAL_MILLISECOND},
    {"milliseconds", FP_CAL_MILLISECOND},
};

/* The UCUM code of a definite calendar duration (week and below). */
static const char *const cal_ucum[] = {"", "a", "mo", "wk", "d", "h", "min", "s", "ms"};

static fp_calendar calendar_of(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof cal_words / sizeof cal_words[0]; i++)
        if (strlen(cal_words[i].word) == n && memcmp(cal_words[i].word, s, n) == 0)
            return cal_words[i].cal;
    return FP_CAL_NONE;
}

fp_status fp_qty_make(fp_decimal value, const char *unit, size_t unit_len, bool keyword,
                      fp_quantity *out)
{
    fp_calendar cal = unit_len ? calendar_of(unit, unit_len) : FP_CAL_NONE;
    if (keyword && cal == FP_CAL_NONE) return FP_ESYNTAX;
    if (unit_len > FP_UNIT_MAX_LEN) return FP_ESYNTAX;
    out->value = value;
    out->unit = unit_len ? unit : "";
    out->unit_len = (uint32_t)unit_len;
    out->calendar = (uint8_t)cal;
    out->keyword = keyword;
    return FP_OK;
}

fp_status fp_qty_parse(const char *s, size_t n, fp_quantity *out)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    fp_decimal v;
    fp_status st = fp_dec_parse(s, i, FP_DEC_SIGN, &v);
    if (st != FP_OK) return st;
    size_t j = i;
    while (j < n && s[j] == ' ') j++;
    if (j == n) return i == n ? fp_qty_make(v, NULL, 0, false, out) : FP_ESYNTAX;
    if (j == i) return FP_ESYNTAX; /* "1kg" */
    if (s[j] == '\'') {
        size_t k = j + 1;
        while (k < n && s[k] != '\'') k++;
        if (k + 1 != n || k == j + 1) return FP_ESYNTAX;
        return fp_qty_make(v, s + j + 1, k - j - 1, false, out);
    }
    return fp_qty_make(v, s + j, n - j, true, out);
}

void fp_qty_format(const fp_quantity *q, tsg_buf *b)
{
    char num[FP_DEC_TEXT_MAX];
    size_t len = fp_dec_format(q->value, num, sizeof num);
    tsg_buf_append(b, num, len);
    tsg_buf_putc(b, ' ');
    if (q->keyword) {
        tsg_buf_append(b, q->unit, q->unit_len);
        return;
    }
    tsg_buf_putc(b, '\'');
    if (q->unit_len == 0)
        tsg_buf_putc(b, '1');
    else
        tsg_buf_append(b, q->unit, q->unit_len);
    tsg_buf_putc(b, '\'');
}

/* ========================================================================
 * Resolution, comparison, conversion
 * ======================================================================== */

enum { RES_UCUM, RES_MONTHS, RES_BAD };

/*
 * Resolves q's unit: RES_MONTHS for calendar years/months (u->num = months
 * per unit), RES_UCUM with u reduced to base units, RES_BAD when unknown.
 */
static int resolve(const fp_quantity *q, ucum_unit *u)
{
    if (q->calendar == FP_CAL_YEAR || q->calendar == FP_CAL_MONTH) {
        unit_one(u);
        u->num = fp_dec_from_int(q->calendar == FP_CAL_YEAR ? 12 : 1);
        return RES_MONTHS;
    }
    const char *s = q->unit;
    size_t n = q->unit_len;
    if (q->calendar != FP_CAL_NONE) {
        s = cal_ucum[q->calendar];
        n = strlen(s);
    }
    return ucum_parse(s, n, u) == FP_OK ? RES_UCUM : RES_BAD;
}

static bool same_dims(const ucum_unit *a, const ucum_unit *b)
{
    return memcmp(a->dim, b->dim, sizeof a->dim) == 0;
}

static bool is_time_dim(const ucum_unit *u)
{
    static const int8_t t[NDIM] = {0, 1, 0, 0, 0, 0, 0};
    return memcmp(u->dim, t, sizeof t) == 0;
}

/* Same unit text and the same calendar meaning: values compare directly. */
static bool same_unit(const fp_quantity *a, const fp_quantity *b)
{
    if (a->calendar != b->calendar) return false;
    if (a->calendar != FP_CAL_NONE) return true;
    return a->unit_len == b->unit_len && memcmp(a->unit, b->unit, a->unit_len) == 0;
}

/* x / y, exact when y is a power of ten. */
static fp_status div_exact(fp_decimal x, fp_decimal y, fp_decimal *out)
{
    fp_i128 c = y.coef;
    int e = 0;
    while (c != 0 && c % 10 == 0) {
        c /= 10;
        e++;
    }
    if (c == 1) {
        /* x / 10^(e - y.scale) */
        int s = x.scale + e - y.scale;
        if (s >= 0 && s <= FP_DEC_MAX_SCALE) {
            x.scale = s;
            *out = x;
            return FP_OK;
        }
        if (s < 0 && s >= -FP_DEC_MAX_DIGITS) {
            /* x · 10^-s at scale 0 */
            fp_decimal p = {1, 0};
            for (int i = 0; i < -s; i++) p.coef *= 10;
            x.scale = 0;
            return fp_dec_mul(x, p, out);
        }
    }
    return fp_dec_div(x, y, out);
}

/* (v + offset) · num, the numerator of the canonical value. */
static fp_status canon_num(fp_decimal v, const ucum_unit *u, fp_decimal *out)
{
    fp_status st = FP_OK;
    if (u->special) st = fp_dec_add(v, u->offset, &v);
    if (st == FP_OK) st = fp_dec_mul(v, u->num, out);
    return st;
}

/* The value of q (resolved as uq) in the unit ut. */
static fp_status convert_value(fp_decimal v, const ucum_unit *uq, const ucum_unit *ut,
                               fp_decimal *out)
{
    /* ((v + oq)·nq·dt) / (dq·nt) - ot */
    fp_decimal n, d;
    fp_status st = canon_num(v, uq, &n);
    if (st == FP_OK) st = fp_dec_mul(n, ut->den, &n);
    if (st == FP_OK) st = fp_dec_mul(uq->den, ut->num, &d);
    if (st == FP_OK) st = div_exact(n, d, &n);
    if (st == FP_OK && ut->special) st = fp_dec_sub(n, ut->offset, &n);
    if (st == FP_OK) *out = n;
    return st;
}

bool fp_qty_comparable(const fp_quantity *a, const fp_quantity *b)
{
    if (same_unit(a, b)) return true;
    ucum_unit ua, ub;
    int ra = resolve(a, &ua), rb = resolve(b, &ub);
    if (ra == RES_BAD || rb == RES_BAD) return false;
    if (ra != rb) return false;
    return ra == RES_MONTHS || same_dims(&ua, &ub);
}

/* Classifies a pair: FP_EQ when comparable (ua/ub filled), else the fp_cmp to return. */
static fp_cmp classify(const fp_quantity *a, const fp_quantity *b, ucum_unit *ua, ucum_unit *ub)
{
    int ra = resolve(a, ua), rb = resolve(b, ub);
    if (ra == RES_BAD || rb == RES_BAD) return FP_INCOMPARABLE;
    if (ra == RES_MONTHS && rb == RES_MONTHS) return FP_EQ;
    if (ra == RES_MONTHS || rb == RES_MONTHS) {
        const ucum_unit *other = ra == RES_MONTHS ? ub : ua;
        return is_time_dim(other) ? FP_UNKNOWN : FP_INCOMPARABLE;
    }
    return same_dims(ua, ub) ? FP_EQ : FP_INCOMPARABLE;
}

fp_cmp fp_qty_compare(const fp_quantity *a, const fp_quantity *b)
{
    if (same_unit(a, b)) return fp_dec_compare(a->value, b->value);
    ucum_unit ua, ub;
    fp_cmp c = classify(a, b, &ua, &ub);
    if (c != FP_EQ) return c;
    /* (a + oa)·na·db  vs  (b + ob)·nb·da */
    fp_decimal x, y;
    fp_status st = canon_num(a->value, &ua, &x);
    if (st == FP_OK) st = fp_dec_mul(x, ub.den, &x);
    if (st == FP_OK) st = canon_num(b->value, &ub, &y);
    if (st == FP_OK) st = fp_dec_mul(y, ua.den, &y);
    if (st != FP_OK) return FP_UNKNOWN;
    return fp_dec_compare(x, y);
}

bool fp_qty_equivalent(const fp_quantity *a, const fp_quantity *b)
{
    if (same_unit(a, b)) return fp_dec_equivalent(a->value, b->value);
    ucum_unit ua, ub;
    if (classify(a, b, &ua, &ub) != FP_EQ) return false;
    /* compare in the larger of the two units, so that the precision of the
     * coarser value decides (4 'g' ~ 4040 'mg' both ways) */
    fp_decimal fa, fb, x = a->value, y = b->value;
    if (fp_dec_mul(ua.num, ub.den, &fa) != FP_OK || fp_dec_mul(ub.num, ua.den, &fb) != FP_OK)
        return false;
    fp_status st = fp_dec_compare(fa, fb) != FP_LT ? convert_value(b->value, &ub, &ua, &y)
                                                   : convert_value(a->value, &ua, &ub, &x);
    return st == FP_OK && fp_dec_equivalent(x, y);
}

fp_status fp_qty_convert(const fp_quantity *q, const char *unit, size_t unit_len, bool keyword,
                         fp_quantity *out)
{
    fp_quantity t;
    fp_status st = fp_qty_make(q->value, unit, unit_len, keyword, &t);
    if (st != FP_OK) return st;
    if (same_unit(q, &t)) {
        *out = t;
        return FP_OK;
    }
    ucum_unit uq, ut;
    fp_cmp c = classify(q, &t, &uq, &ut);
    if (c == FP_UNKNOWN) return FP_EMPTY;
    if (c != FP_EQ) return FP_EUNIT;
    st = convert_value(q->value, &uq, &ut, &t.value);
    if (st != FP_OK) return st;
    *out = t;
    return FP_OK;
}

static fp_status qty_addsub(const fp_quantity *a, const fp_quantity *b, int sub, fp_quantity *out)
{
    fp_decimal bv = b->value;
    if (!same_unit(a, b)) {
        ucum_unit ua, ub;
        fp_cmp c = classify(a, b, &ua, &ub);
        if (c == FP_UNKNOWN) return FP_EMPTY;
        if (c != FP_EQ || ua.special || ub.special) return FP_EUNIT;
        fp_status st = convert_value(b->value, &ub, &ua, &bv);
        if (st != FP_OK) return st;
    }
    fp_quantity r = *a;
    fp_status st = sub ? fp_dec_sub(a->value, bv, &r.value) : fp_dec_add(a->value, bv, &r.value);
    if (st != FP_OK) return st;
    *out = r;
    return FP_OK;
}

fp_status fp_qty_add(const fp_quantity *a, const fp_quantity *b, fp_quantity *out)
{
    return qty_addsub(a, b, 0, out);
}

fp_status fp_qty_sub(const fp_quantity *a, const fp_quantity *b, fp_quantity *out)
{
    return qty_addsub(a, b, 1, out);
}

/* ========================================================================
 * Multiplication and division
 * ======================================================================== */

/* The UCUM text of q's unit for a product ("1" for none); FP_EUNIT for
 * calendar years/months and the affine temperatures. */
static fp_status product_unit(const fp_quantity *q, const char **s, size_t *n)
{
    if (q->calendar == FP_CAL_YEAR || q->calendar == FP_CAL_MONTH) return FP_EUNIT;
    if (q->calendar != FP_CAL_NONE) {
        *s = cal_ucum[q->calendar];
        *n = strlen(*s);
        return FP_OK;
    }
    if (q->unit_len == 0) {
        *s = "1";
        *n = 1;
        return FP_OK;
    }
    ucum_unit u;
    if (ucum_parse(q->unit, q->unit_len, &u) == FP_OK && u.special) return FP_EUNIT;
    *s = q->unit;
    *n = q->unit_len;
    return FP_OK;
}

/* A single atom without operators, exponent or annotation ("cm", "[in_i]"). */
static bool simple_unit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '[') {
            while (i < n && s[i] != ']') i++;
            continue;
        }
        if (c == '.' || c == '/' || c == '(' || c == ')' || c == '{' || c == '+' || c == '-' ||
            (c >= '0' && c <= '9'))
            return false;
    }
    return n > 0;
}

static bool needs_parens(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.' || s[i] == '/') return true;
    return false;
}

/* Builds "a.b" / "a/b" (with the simplifications described in fp_value.h). */
static fp_status product_text(const char *a, size_t na, const char *b, size_t nb, int divide,
                              tsg_arena *arena, const char **out, size_t *nout)
{
    bool a_one = na == 1 && a[0] == '1', b_one = nb == 1 && b[0] == '1';
    bool same = na == nb && memcmp(a, b, na) == 0;
    if (divide && same) {
        *out = "1";
        *nout = 1;
        return FP_OK;
    }
    if (b_one) {
        *out = a;
        *nout = na;
        return FP_OK;
    }
    if (a_one && !divide) {
        *out = b;
        *nout = nb;
        return FP_OK;
    }
    size_t cap = na + nb + 8;
    if (cap > FP_UNIT_MAX_LEN) return FP_EUNIT;
    char *t = tsg_arena_alloc(arena, cap);
    if (!t) return FP_EOVERFLOW;
    size_t k = 0;
    if (!divide && same && simple_unit(a, na)) {
        memcpy(t, a, na);
        k = na;
        t[k++] = '2';
    } else {
        memcpy(t, a, na);
        k = na;
        t[k++] = divide ? '/' : '.';
        bool paren = needs_parens(b, nb);
        if (paren) t[k++] = '(';
        if (b[0] == '/') t[k++] = '1';
        memcpy(t + k, b, nb);
        k += nb;
        if (paren) t[k++] = ')';
    }
    t[k] = '\0';
    *out = t;
    *nout = k;
    return FP_OK;
}

static fp_status qty_muldiv(const fp_quantity *a, const fp_quantity *b, int divide,
                            tsg_arena *arena, fp_quantity *out)
{
    const char *sa, *sb, *su;
    size_t na, nb, nu;
    fp_status st = product_unit(a, &sa, &na);
    if (st == FP_OK) st = product_unit(b, &sb, &nb);
    if (st != FP_OK) return st;
    fp_decimal v;
    st = divide ? fp_dec_div(a->value, b->value, &v) : fp_dec_mul(a->value, b->value, &v);
    if (st != FP_OK) return st;
    st = product_text(sa, na, sb, nb, divide, arena, &su, &nu);
    if (st != FP_OK) return st;
    return fp_qty_make(v, su, nu, false, out);
}

fp_status fp_qty_mul(const fp_quantity *a, const fp_quantity *b, tsg_arena *arena, fp_quantity *out)
{
    return qty_muldiv(a, b, 0, arena, out);
}

fp_status fp_qty_div(const fp_quantity *a, const fp_quantity *b, tsg_arena *arena, fp_quantity *out)
{
    return qty_muldiv(a, b, 1, arena, out);
}
