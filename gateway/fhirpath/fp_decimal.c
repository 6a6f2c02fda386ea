/*
 * fp_decimal.c — FHIRPath Integer and Decimal: exact 128-bit decimal
 * arithmetic, text forms, rounding, boundaries and the math functions.
 * See fp_value.h for the representation.
 */
#include "fhirpath/fp_value.h"

#include <string.h>

__extension__ typedef unsigned __int128 u128;

#define E19 ((u128)10000000000000000000ULL)

/* 10^0 .. 10^38 */
static const u128 pow10_tab[39] = {
    1ULL,
    10ULL,
    100ULL,
    1000ULL,
    10000ULL,
    100000ULL,
    1000000ULL,
    10000000ULL,
    100000000ULL,
    1000000000ULL,
    10000000000ULL,
    100000000000ULL,
    1000000000000ULL,
    10000000000000ULL,
    100000000000000ULL,
    1000000000000000ULL,
    10000000000000000ULL,
    100000000000000000ULL,
    1000000000000000000ULL,
    E19,
    E19 * 10ULL,
    E19 * 100ULL,
    E19 * 1000ULL,
    E19 * 10000ULL,
    E19 * 100000ULL,
    E19 * 1000000ULL,
    E19 * 10000000ULL,
    E19 * 100000000ULL,
    E19 * 1000000000ULL,
    E19 * 10000000000ULL,
    E19 * 100000000000ULL,
    E19 * 1000000000000ULL,
    E19 * 10000000000000ULL,
    E19 * 100000000000000ULL,
    E19 * 1000000000000000ULL,
    E19 * 10000000000000000ULL,
    E19 * 100000000000000000ULL,
    E19 * 1000000000000000000ULL,
    E19 *E19,
};

#define COEF_MAX (pow10_tab[38] - 1)

const char *fp_status_name(fp_status st)
{
    switch (st) {
    case FP_OK:
        return "ok";
    case FP_EMPTY:
        return "empty";
    case FP_EOVERFLOW:
        return "overflow";
    case FP_ESYNTAX:
        return "malformed";
    case FP_EUNIT:
        return "incompatible units";
    }
    return "?";
}

/* ========================================================================
 * Integer
 * ======================================================================== */

/* Parses [+-]?digits into int32 (see fp_value.h). */
fp_status fp_int_parse(const char *s, size_t n, int32_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == n) return FP_ESYNTAX;
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return FP_ESYNTAX;
        v = v * 10 + (s[i] - '0');
        if (v > (int64_t)INT32_MAX + 1) {
            /* keep scanning for syntax errors, but the value is out of range */
            for (i++; i < n; i++)
                if (s[i] < '0' || s[i] > '9') return FP_ESYNTAX;
            return FP_EOVERFLOW;
        }
    }
    if (neg) v = -v;
    if (v > INT32_MAX || v < INT32_MIN) return FP_EOVERFLOW;
    *out = (int32_t)v;
    return FP_OK;
}

/* Stores v in *out when it fits int32_t. */
static fp_status int_fit(int64_t v, int32_t *out)
{
    if (v > INT32_MAX || v < INT32_MIN) return FP_EOVERFLOW;
    *out = (int32_t)v;
    return FP_OK;
}

fp_status fp_int_add(int32_t a, int32_t b, int32_t *out)
{
    return int_fit((int64_t)a + b, out);
}

fp_status fp_int_sub(int32_t a, int32_t b, int32_t *out)
{
    return int_fit((int64_t)a - b, out);
}

fp_status fp_int_mul(int32_t a, int32_t b, int32_t *out)
{
    return int_fit((int64_t)a * b, out);
}

fp_status fp_int_neg(int32_t a, int32_t *out)
{
    return int_fit(-(int64_t)a, out);
}

fp_status fp_int_abs(int32_t a, int32_t *out)
{
    return int_fit(a < 0 ? -(int64_t)a : a, out);
}

fp_status fp_int_div(int32_t a, int32_t b, int32_t *out)
{
    if (b == 0) return FP_EMPTY;
    return int_fit((int64_t)a / b, out);
}

fp_status fp_int_mod(int32_t a, int32_t b, int32_t *out)
{
    if (b == 0) return FP_EMPTY;
    return int_fit((int64_t)a % b, out);
}

/* Exponentiation by squaring with an overflow check at every step. */
fp_status fp_int_power(int32_t a, int32_t b, int32_t *out)
{
    if (b < 0) return FP_EUNIT;
    int64_t r = 1, base = a;
    while (b > 0) {
        if (b & 1) {
            r *= base;
            if (r > INT32_MAX || r < INT32_MIN) return FP_EOVERFLOW;
        }
        b >>= 1;
        if (b > 0) {
            base *= base;
            if (base > INT32_MAX || base < INT32_MIN) return FP_EOVERFLOW;
        }
    }
    *out = (int32_t)r;
    return FP_OK;
}

/* ========================================================================
 * 256-bit unsigned helpers (the rare overflow paths)
 * ======================================================================== */

typedef struct u256 {
    u128 hi, lo;
} u256;

static u256 u256_from(u128 v)
{
    u256 r = {0, v};
    return r;
}

/* Full 128x128 → 256-bit product. */
static u256 u256_mul(u128 a, u128 b)
{
    uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> 64);
    uint64_t b0 = (uint64_t)b, b1 = (uint64_t)(b >> 64);
    u128 p00 = (u128)a0 * b0, p01 = (u128)a0 * b1, p10 = (u128)a1 * b0, p11 = (u128)a1 * b1;
    u128 mid = (p00 >> 64) + (uint64_t)p01 + (uint64_t)p10;
    u256 r;
    r.lo = (mid << 64) | (uint64_t)p00;
    r.hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    return r;
}

/* x * m for a 256-bit x; *ovf set when the product needs more than 256 bits. */
static u256 u256_mul128(u256 x, u128 m, int *ovf)
{
    u256 lo = u256_mul(x.lo, m);
    u256 hi = u256_mul(x.hi, m);
    if (hi.hi != 0) *ovf = 1;
    u256 r;
    r.lo = lo.lo;
    r.hi = lo.hi + hi.lo;
    if (r.hi < lo.hi) *ovf = 1;
    return r;
}

static int u256_cmp(u256 a, u256 b)
{
    if (a.hi != b.hi) return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo) return a.lo < b.lo ? -1 : 1;
    return 0;
}

static u256 u256_sub(u256 a, u256 b)
{
    u256 r;
    r.lo = a.lo - b.lo;
    r.hi = a.hi - b.hi - (a.lo < b.lo);
    return r;
}

/* Divides x by a small d in place; returns the remainder. */
static unsigned u256_divsmall(u256 *x, unsigned d)
{
    uint64_t w[4] = {(uint64_t)(x->hi >> 64), (uint64_t)x->hi, (uint64_t)(x->lo >> 64),
                     (uint64_t)x->lo};
    u128 rem = 0;
    for (int i = 0; i < 4; i++) {
        u128 cur = (rem << 64) | w[i];
        w[i] = (uint64_t)(cur / d);
        rem = cur % d;
    }
    x->hi = ((u128)w[0] << 64) | w[1];
    x->lo = ((u128)w[2] << 64) | w[3];
    return (unsigned)rem;
}

/* Binary long division q = n / d, r = n % d (d != 0). */
static void u256_divmod(u256 n, u256 d, u256 *q, u256 *r)
{
    if (n.hi == 0 && d.hi == 0) {
        *q = u256_from(n.lo / d.lo);
        *r = u256_from(n.lo % d.lo);
        return;
    }
    u256 quo = {0, 0}, rem = {0, 0};
    for (int i = 255; i >= 0; i--) {
        rem.hi = (rem.hi << 1) | (rem.lo >> 127);
        rem.lo <<= 1;
        u128 bit = i >= 128 ? (n.hi >> (i - 128)) & 1 : (n.lo >> i) & 1;
        rem.lo |= bit;
        if (u256_cmp(rem, d) >= 0) {
            rem = u256_sub(rem, d);
            if (i >= 128)
                quo.hi |= (u128)1 << (i - 128);
            else
                quo.lo |= (u128)1 << i;
        }
    }
    *q = quo;
    *r = rem;
}

/* ========================================================================
 * Decimal: construction and normalisation
 * ======================================================================== */

static u128 mag(fp_i128 v)
{
    return v < 0 ? (u128)0 - (u128)v : (u128)v;
}

static fp_decimal dec_make_small(int neg, u128 m, int scale)
{
    fp_decimal d;
    d.coef = neg ? -(fp_i128)m : (fp_i128)m;
    d.scale = scale;
    return d;
}

/*
 * Builds a decimal from a sign, a 256-bit magnitude and a scale, dropping
 * low digits (rounded half away from zero) until at most 38 digits and
 * places remain. FP_EOVERFLOW when the integer part alone is too long.
 */
static fp_status dec_make(int neg, u256 m, int scale, fp_decimal *out)
{
    u256 maxv = u256_from(COEF_MAX);
    while (scale > FP_DEC_MAX_SCALE || u256_cmp(m, maxv) > 0) {
        unsigned last = 0;
        while (scale > FP_DEC_MAX_SCALE || u256_cmp(m, maxv) > 0) {
            if (scale == 0) return FP_EOVERFLOW;
            last = u256_divsmall(&m, 10);
            scale--;
        }
        if (last >= 5) {
            m.lo += 1;
            if (m.lo == 0) m.hi += 1;
        }
    }
    if (scale < 0) {
        /* only from callers that scale up: multiply back */
        while (scale < 0) {
            int ovf = 0;
            m = u256_mul128(m, 10, &ovf);
            if (ovf || u256_cmp(m, maxv) > 0) return FP_EOVERFLOW;
            scale++;
        }
    }
    *out = dec_make_small(neg, m.lo, scale);
    return FP_OK;
}

/* Drops trailing zeros while the scale is above min_scale. */
static fp_decimal dec_trim(fp_decimal x, int min_scale)
{
    while (x.scale > min_scale && x.coef % 10 == 0) {
        x.coef /= 10;
        x.scale--;
    }
    return x;
}

fp_decimal fp_dec_from_int(int64_t v)
{
    fp_decimal d = {v, 0};
    return d;
}

/* Parses all n bytes (see fp_value.h for the grammar). */
fp_status fp_dec_parse(const char *s, size_t n, unsigned flags, fp_decimal *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        if (!(flags & FP_DEC_SIGN)) return FP_ESYNTAX;
        neg = s[i++] == '-';
    }
    u128 m = 0;
    int digits = 0, frac = 0, big = 0;
    size_t start = i;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (m == 0 && s[i] == '0') continue; /* leading zeros are not significant */
        if (++digits > FP_DEC_MAX_DIGITS) big = 1;
        if (!big) m = m * 10 + (unsigned)(s[i] - '0');
    }
    if (i == start) return FP_ESYNTAX;
    if (i < n && s[i] == '.') {
        i++;
        size_t fstart = i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            frac++;
            if (m == 0 && s[i] == '0') continue;
            if (++digits > FP_DEC_MAX_DIGITS) big = 1;
            if (!big) m = m * 10 + (unsigned)(s[i] - '0');
        }
        if (i == fstart) return FP_ESYNTAX;
    }
    long exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (!(flags & FP_DEC_EXPONENT)) return FP_ESYNTAX;
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        size_t estart = i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (exp < 100000) exp = exp * 10 + (s[i] - '0');
        if (i == estart) return FP_ESYNTAX;
        if (eneg) exp = -exp;
    }
    if (i != n) return FP_ESYNTAX;
    if (big) return FP_EOVERFLOW;
    long scale = (long)frac - exp;
    if (scale < 0) {
        if (m != 0) {
            if (-scale > FP_DEC_MAX_DIGITS) return FP_EOVERFLOW;
            u256 w = u256_mul(m, pow10_tab[-scale]);
            if (w.hi != 0 || w.lo > COEF_MAX) return FP_EOVERFLOW;
            m = w.lo;
        }
        scale = 0;
    }
    if (scale > FP_DEC_MAX_SCALE) {
        if (m == 0) {
            scale = FP_DEC_MAX_SCALE;
        } else {
            return FP_EOVERFLOW;
        }
    }
    *out = dec_make_small(neg, m, (int)scale);
    return FP_OK;
}

fp_status fp_dec_to_int32(fp_decimal x, int32_t *out)
{
    fp_i128 p = (fp_i128)pow10_tab[x.scale];
    if (x.coef % p != 0) return FP_EMPTY;
    fp_i128 v = x.coef / p;
    if (v > INT32_MAX || v < INT32_MIN) return FP_EOVERFLOW;
    *out = (int32_t)v;
    return FP_OK;
}

long double fp_dec_to_ld(fp_decimal x)
{
    return (long double)x.coef / (long double)pow10_tab[x.scale];
}

/* Plain notation with exactly `scale` places. */
size_t fp_dec_format(fp_decimal x, char *buf, size_t cap)
{
    char digits[48];
    int nd = 0;
    u128 m = mag(x.coef);
    do {
        digits[nd++] = (char)('0' + (unsigned)(m % 10));
        m /= 10;
    } while (m != 0);
    while (nd <= x.scale) digits[nd++] = '0'; /* at least one integer digit */
    size_t need = (size_t)nd + (x.coef < 0) + (x.scale > 0) + 1;
    if (cap < need) return 0;
    size_t k = 0;
    if (x.coef < 0) buf[k++] = '-';
    for (int i = nd - 1; i >= 0; i--) {
        buf[k++] = digits[i];
        if (i == x.scale && i > 0) buf[k++] = '.';
    }
    buf[k] = '\0';
    return k;
}

/* ========================================================================
 * Decimal: arithmetic
 * ======================================================================== */

/* x with its coefficient multiplied by 10^k (k >= 0): 0 when it no longer fits. */
static int dec_upscale(fp_i128 c, int k, fp_i128 *out)
{
    if (k > FP_DEC_MAX_DIGITS) return c == 0 ? (*out = 0, 1) : 0;
    fp_i128 r;
    if (__builtin_mul_overflow(c, (fp_i128)pow10_tab[k], &r)) return 0;
    if (mag(r) > COEF_MAX) return 0;
    *out = r;
    return 1;
}

/* Coefficient of x at scale s (rounded half away from zero when s < scale). */
static int dec_rescale(fp_decimal x, int s, fp_i128 *out)
{
    if (s >= x.scale) return dec_upscale(x.coef, s - x.scale, out);
    int k = x.scale - s;
    if (k > FP_DEC_MAX_DIGITS) {
        *out = 0;
        return 1;
    }
    fp_i128 p = (fp_i128)pow10_tab[k];
    fp_i128 q = x.coef / p, r = x.coef % p;
    if (mag(r) * 2 >= (u128)p) q += x.coef < 0 ? -1 : 1;
    *out = q;
    return 1;
}

static fp_status dec_addsub(fp_decimal a, fp_decimal b, int sub, fp_decimal *out)
{
    if (sub) b.coef = -b.coef;
    int hi = a.scale > b.scale ? a.scale : b.scale;
    for (int s = hi; s >= 0; s--) {
        fp_i128 x, y, r;
        if (!dec_rescale(a, s, &x) || !dec_rescale(b, s, &y)) continue;
        if (__builtin_add_overflow(x, y, &r) || mag(r) > COEF_MAX) continue;
        out->coef = r;
        out->scale = s;
        return FP_OK;
    }
    return FP_EOVERFLOW;
}

fp_status fp_dec_add(fp_decimal a, fp_decimal b, fp_decimal *out)
{
    return dec_addsub(a, b, 0, out);
}

fp_status fp_dec_sub(fp_decimal a, fp_decimal b, fp_decimal *out)
{
    return dec_addsub(a, b, 1, out);
}

fp_status fp_dec_mul(fp_decimal a, fp_decimal b, fp_decimal *out)
{
    fp_i128 p;
    int s = a.scale + b.scale;
    if (s <= FP_DEC_MAX_SCALE && !__builtin_mul_overflow(a.coef, b.coef, &p) &&
        mag(p) <= COEF_MAX) {
        out->coef = p;
        out->scale = s;
        return FP_OK;
    }
    return dec_make((a.coef < 0) != (b.coef < 0), u256_mul(mag(a.coef), mag(b.coef)), s, out);
}

fp_decimal fp_dec_neg(fp_decimal a)
{
    a.coef = -a.coef;
    return a;
}

fp_decimal fp_dec_abs(fp_decimal a)
{
    if (a.coef < 0) a.coef = -a.coef;
    return a;
}

fp_status fp_dec_div(fp_decimal a, fp_decimal b, fp_decimal *out)
{
    if (b.coef == 0) return FP_EMPTY;
    int keep = a.scale > b.scale ? a.scale : b.scale;
    int t = keep > FP_DEC_DIV_SCALE ? keep : FP_DEC_DIV_SCALE;
    /* q = a.coef * 10^(t - sa + sb) / b.coef, k <= 76 */
    int k = t - a.scale + b.scale;
    u128 na = mag(a.coef), nb = mag(b.coef);
    int neg = (a.coef < 0) != (b.coef < 0);
    u256 num;
    if (k <= 38) {
        num = u256_mul(na, pow10_tab[k]);
    } else {
        int ovf = 0;
        num = u256_mul128(u256_mul(na, pow10_tab[38]), pow10_tab[k - 38], &ovf);
        if (ovf) return FP_EOVERFLOW;
    }
    u256 q, r;
    if (num.hi == 0) {
        q = u256_from(num.lo / nb);
        r = u256_from(num.lo % nb);
    } else {
        u256_divmod(num, u256_from(nb), &q, &r);
    }
    /* round half away from zero: 2r >= nb */
    if (r.hi != 0 || r.lo >= nb - r.lo) {
        q.lo += 1;
        if (q.lo == 0) q.hi += 1;
    }
    fp_decimal d;
    fp_status st = dec_make(neg, q, t, &d);
    if (st != FP_OK) return st;
    *out = dec_trim(d, keep);
    return FP_OK;
}

/*
 * Aligns a and b to the common scale s as 256-bit magnitudes (exact: at most
 * 38 + 38 digits).
 */
static void dec_align_wide(fp_decimal a, fp_decimal b, u256 *wa, u256 *wb, int *s)
{
    int hi = a.scale > b.scale ? a.scale : b.scale;
    *wa = u256_mul(mag(a.coef), pow10_tab[hi - a.scale]);
    *wb = u256_mul(mag(b.coef), pow10_tab[hi - b.scale]);
    *s = hi;
}

fp_status fp_dec_intdiv(fp_decimal a, fp_decimal b, fp_decimal *out)
{
    if (b.coef == 0) return FP_EMPTY;
    u256 wa, wb, q, r;
    int s;
    dec_align_wide(a, b, &wa, &wb, &s);
    u256_divmod(wa, wb, &q, &r);
    return dec_make((a.coef < 0) != (b.coef < 0), q, 0, out);
}

fp_status fp_dec_mod(fp_decimal a, fp_decimal b, fp_decimal *out)
{
    if (b.coef == 0) return FP_EMPTY;
    u256 wa, wb, q, r;
    int s;
    dec_align_wide(a, b, &wa, &wb, &s);
    u256_divmod(wa, wb, &q, &r);
    return dec_make(a.coef < 0, r, s, out);
}

fp_cmp fp_dec_compare(fp_decimal a, fp_decimal b)
{
    fp_i128 x = a.coef, y = b.coef;
    if (a.scale != b.scale) {
        if (a.scale < b.scale) {
            if (!dec_upscale(a.coef, b.scale - a.scale, &x)) return a.coef < 0 ? FP_LT : FP_GT;
        } else {
            if (!dec_upscale(b.coef, a.scale - b.scale, &y)) return b.coef < 0 ? FP_GT : FP_LT;
        }
    }
    return x < y ? FP_LT : x > y ? FP_GT : FP_EQ;
}

bool fp_dec_equal(fp_decimal a, fp_decimal b)
{
    return fp_dec_compare(a, b) == FP_EQ;
}

bool fp_dec_equivalent(fp_decimal a, fp_decimal b)
{
    int s = a.scale < b.scale ? a.scale : b.scale;
    fp_i128 x = 0, y = 0;
    dec_rescale(a, s, &x); /* never fails: s <= both scales */
    dec_rescale(b, s, &y);
    return x == y;
}

fp_status fp_dec_round(fp_decimal x, int places, fp_decimal *out)
{
    if (places < 0) return FP_EMPTY;
    if (places >= x.scale) {
        *out = x;
        return FP_OK;
    }
    fp_i128 c;
    dec_rescale(x, places, &c);
    out->coef = c;
    out->scale = places;
    return FP_OK;
}

/* mode: 0 truncate, -1 floor, +1 ceiling — to an integer (scale 0). */
static fp_status dec_to_integer(fp_decimal x, int mode, int32_t *out)
{
    if (x.scale > FP_DEC_MAX_DIGITS) {
        *out = 0;
        if (x.coef > 0 && mode > 0) *out = 1;
        if (x.coef < 0 && mode < 0) *out = -1;
        return FP_OK;
    }
    fp_i128 p = (fp_i128)pow10_tab[x.scale];
    fp_i128 q = x.coef / p, r = x.coef % p;
    if (r != 0 && mode < 0 && x.coef < 0) q -= 1;
    if (r != 0 && mode > 0 && x.coef > 0) q += 1;
    if (q > INT32_MAX || q < INT32_MIN) return FP_EOVERFLOW;
    *out = (int32_t)q;
    return FP_OK;
}

fp_status fp_dec_truncate(fp_decimal x, int32_t *out)
{
    return dec_to_integer(x, 0, out);
}

fp_status fp_dec_floor(fp_decimal x, int32_t *out)
{
    return dec_to_integer(x, -1, out);
}

fp_status fp_dec_ceiling(fp_decimal x, int32_t *out)
{
    return dec_to_integer(x, 1, out);
}

/* ========================================================================
 * Decimal: math through long double (no libm: own series)
 * ======================================================================== */

static const long double LN2 = 0.693147180559945309417232121458176568L;

/* ln(v) for v > 0: v = m·2^e with m in [0.75, 1.5), then 2·atanh((m-1)/(m+1)). */
static long double ld_ln(long double v)
{
    int e = 0;
    while (v >= 1.5L) {
        v /= 2;
        e++;
    }
    while (v < 0.75L) {
        v *= 2;
        e--;
    }
    long double z = (v - 1) / (v + 1), z2 = z * z, term = z, sum = 0;
    for (int k = 1; k < 200; k += 2) {
        long double add = term / k;
        sum += add;
        if (add < 1e-30L && add > -1e-30L) break;
        term *= z2;
    }
    return 2 * sum + e * LN2;
}

/* exp(v): v = k·ln2 + r with |r| <= ln2/2, Taylor series for r, then 2^k. */
static long double ld_exp(long double v)
{
    long double kf = v / LN2;
    long k = (long)(kf < 0 ? kf - 0.5L : kf + 0.5L);
    long double r = v - k * LN2, term = 1, sum = 1;
    for (int i = 1; i < 60; i++) {
        term *= r / i;
        sum += term;
        if (term < 1e-30L && term > -1e-30L) break;
    }
    for (; k > 0; k--) sum *= 2;
    for (; k < 0; k++) sum /= 2;
    return sum;
}

/* sqrt by Newton's iteration from a power-of-two start. */
static long double ld_sqrt(long double v)
{
    if (v == 0) return 0;
    long double g = 1;
    long double t = v;
    while (t > 4) {
        t /= 4;
        g *= 2;
    }
    while (t < 0.25L) {
        t *= 4;
        g /= 2;
    }
    for (int i = 0; i < 100; i++) {
        long double n = (g + v / g) / 2;
        if (n == g) break;
        g = n;
    }
    return g;
}

/* Rounds a finite long double to FP_DEC_DIV_SCALE places, trailing zeros dropped. */
static fp_status dec_from_ld(long double v, fp_decimal *out)
{
    if (v != v) return FP_EMPTY; /* NaN */
    int scale = FP_DEC_DIV_SCALE;
    long double lim = 1e37L;
    long double a = v < 0 ? -v : v;
    if (a > 1e38L) return FP_EOVERFLOW;
    long double sv = v * 1e8L;
    while ((sv < 0 ? -sv : sv) >= lim && scale > 0) {
        sv /= 10;
        scale--;
    }
    if ((sv < 0 ? -sv : sv) >= lim) return FP_EOVERFLOW;
    sv = sv < 0 ? sv - 0.5L : sv + 0.5L;
    out->coef = (fp_i128)sv;
    out->scale = scale;
    *out = dec_trim(*out, 0);
    return FP_OK;
}

fp_status fp_dec_sqrt(fp_decimal x, fp_decimal *out)
{
    if (x.coef < 0) return FP_EMPTY;
    return dec_from_ld(ld_sqrt(fp_dec_to_ld(x)), out);
}

fp_status fp_dec_ln(fp_decimal x, fp_decimal *out)
{
    if (x.coef <= 0) return FP_EMPTY;
    return dec_from_ld(ld_ln(fp_dec_to_ld(x)), out);
}

fp_status fp_dec_log(fp_decimal x, fp_decimal base, fp_decimal *out)
{
    if (x.coef <= 0 || base.coef <= 0) return FP_EMPTY;
    long double lb = ld_ln(fp_dec_to_ld(base));
    if (lb == 0) return FP_EMPTY;
    return dec_from_ld(ld_ln(fp_dec_to_ld(x)) / lb, out);
}

fp_status fp_dec_exp(fp_decimal x, fp_decimal *out)
{
    long double v = fp_dec_to_ld(x);
    if (v > 88) return FP_EOVERFLOW; /* e^88 > 10^38 */
    return dec_from_ld(ld_exp(v), out);
}

fp_status fp_dec_power(fp_decimal x, fp_decimal y, fp_decimal *out)
{
    int32_t n;
    if (fp_dec_to_int32(y, &n) == FP_OK) {
        /* exact: square and multiply */
        fp_decimal r = fp_dec_from_int(1), b = x;
        uint32_t e = n < 0 ? (uint32_t)(-(int64_t)n) : (uint32_t)n;
        fp_status st = FP_OK;
        while (e > 0 && st == FP_OK) {
            if (e & 1) st = fp_dec_mul(r, b, &r);
            e >>= 1;
            if (e > 0 && st == FP_OK) st = fp_dec_mul(b, b, &b);
        }
        if (st != FP_OK) return st;
        if (n < 0) return fp_dec_div(fp_dec_from_int(1), r, out);
        *out = r;
        return FP_OK;
    }
    long double b = fp_dec_to_ld(x);
    if (b < 0) return FP_EMPTY; /* a root of a negative number */
    if (b == 0) {
        if (y.coef < 0) return FP_EMPTY;
        *out = fp_dec_from_int(0);
        return FP_OK;
    }
    long double l = ld_ln(b) * fp_dec_to_ld(y);
    if (l > 88) return FP_EOVERFLOW;
    return dec_from_ld(ld_exp(l), out);
}

/* ========================================================================
 * Decimal: boundaries
 * ======================================================================== */

/*
 * Boundary of a non-negative x: (coef·10 ∓ 5) at scale+1, then written with
 * `places` places — truncated for the low boundary, rounded half up for the
 * high one (the R4 suite's rule).
 */
static fp_status dec_boundary_pos(fp_decimal x, int places, int high, fp_decimal *out)
{
    if (x.scale + 1 > FP_DEC_MAX_SCALE) return FP_EOVERFLOW;
    fp_i128 c;
    if (!dec_upscale(x.coef, 1, &c)) return FP_EOVERFLOW;
    c += high ? 5 : -5;
    fp_decimal b = {c, x.scale + 1};
    if (places >= b.scale) {
        fp_i128 r;
        if (!dec_upscale(b.coef, places - b.scale, &r)) return FP_EOVERFLOW;
        out->coef = r;
        out->scale = places;
        return FP_OK;
    }
    if (high) {
        fp_i128 r;
        dec_rescale(b, places, &r);
        out->coef = r;
    } else {
        out->coef = b.coef / (fp_i128)pow10_tab[b.scale - places];
    }
    out->scale = places;
    return FP_OK;
}

fp_status fp_dec_low_boundary(fp_decimal x, int precision, fp_decimal *out)
{
    if (precision == -1) precision = FP_DEC_DIV_SCALE;
    if (precision < 0 || precision > FP_DEC_MAX_BOUNDARY_PRECISION) return FP_EMPTY;
    if (x.coef < 0) {
        fp_status st = dec_boundary_pos(fp_dec_neg(x), precision, 1, out);
        if (st == FP_OK) *out = fp_dec_neg(*out);
        return st;
    }
    return dec_boundary_pos(x, precision, 0, out);
}

fp_status fp_dec_high_boundary(fp_decimal x, int precision, fp_decimal *out)
{
    if (precision == -1) precision = FP_DEC_DIV_SCALE;
    if (precision < 0 || precision > FP_DEC_MAX_BOUNDARY_PRECISION) return FP_EMPTY;
    if (x.coef < 0) {
        fp_status st = dec_boundary_pos(fp_dec_neg(x), precision, 0, out);
        if (st == FP_OK) *out = fp_dec_neg(*out);
        return st;
    }
    return dec_boundary_pos(x, precision, 1, out);
}
