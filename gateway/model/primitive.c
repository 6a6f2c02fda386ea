/*
 * primitive.c — lexical checks of primitives that JSON writes unquoted.
 */
#include "model_internal.h"

#include <string.h>

/* Parses an R4 integer (-?(0|[1-9][0-9]*)) into *v; 0 on success. */
static int parse_int32(const char *s, size_t n, long long *v)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') neg = 1, i++;
    if (i >= n) return -1;
    if (s[i] == '0' && n - i > 1) return -1;
    long long x = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
        if (x > 2147483648LL) return -2;
    }
    x = neg ? -x : x;
    if (x > 2147483647LL || x < -2147483648LL) return -2;
    if (neg && x == 0) return -1; /* "-0" is not an R4 integer */
    *v = x;
    return 0;
}

/* R4 decimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_decimal(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n) return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return 0;
    }
    return i == n;
}

/* n digits at s[*i], advanced; their value in *v. */
static int digits(const char *s, size_t len, size_t *i, int n, int *v)
{
    int x = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9') return 0;
        x = x * 10 + (s[*i] - '0');
    }
    *v = x;
    return 1;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* YYYY[-MM[-DD]] from s[*i]; *parts is how many were given. The day must
 * exist in its month (2023-02-29 is not a date). */
static int lex_date(const char *s, size_t n, size_t *i, int *parts)
{
    int y, m, d;
    *parts = 0;
    if (!digits(s, n, i, 4, &y) || y == 0) return 0;
    *parts = 1;
    if (*i == n || s[*i] != '-') return 1;
    (*i)++;
    if (!digits(s, n, i, 2, &m) || m < 1 || m > 12) return 0;
    *parts = 2;
    if (*i == n || s[*i] != '-') return 1;
    (*i)++;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!digits(s, n, i, 2, &d) || d < 1 || d > mdays[m - 1] + (m == 2 && leap(y))) return 0;
    *parts = 3;
    return 1;
}

/* hh:mm:ss[.fff] from s[*i] (ss may be 60, a leap second). */
static int lex_time(const char *s, size_t n, size_t *i)
{
    int h, mi, se;
    if (!digits(s, n, i, 2, &h) || h > 23 || *i >= n || s[(*i)++] != ':') return 0;
    if (!digits(s, n, i, 2, &mi) || mi > 59 || *i >= n || s[(*i)++] != ':') return 0;
    if (!digits(s, n, i, 2, &se) || se > 60) return 0;
    if (*i < n && s[*i] == '.') {
        size_t start = ++(*i);
        while (*i < n && s[*i] >= '0' && s[*i] <= '9') (*i)++;
        if (*i == start) return 0;
    }
    return 1;
}

/* Z or ±hh:mm (-14:00 … +14:00) from s[*i]. */
static int lex_zone(const char *s, size_t n, size_t *i)
{
    if (*i < n && s[*i] == 'Z') return ++(*i), 1;
    if (*i >= n || (s[*i] != '+' && s[*i] != '-')) return 0;
    (*i)++;
    int h, m;
    if (!digits(s, n, i, 2, &h) || *i >= n || s[(*i)++] != ':' || !digits(s, n, i, 2, &m)) return 0;
    return m <= 59 && (h < 14 || (h == 14 && m == 0));
}

/* The R4 lexical forms of date, dateTime, instant and time (their regexes
 * in the definitions, plus days that exist). 1 when s[0..n) matches. */
static int lex_temporal(const char *type, const char *s, size_t n)
{
    size_t i = 0;
    int parts;
    if (!strcmp(type, "time")) return lex_time(s, n, &i) && i == n;
    if (!lex_date(s, n, &i, &parts)) return 0;
    if (!strcmp(type, "date")) return i == n;
    int is_instant = !strcmp(type, "instant");
    if (i == n) return !is_instant;
    if (parts != 3 || s[i++] != 'T') return 0;
    return lex_time(s, n, &i) && lex_zone(s, n, &i) && i == n;
}

/* id: [A-Za-z0-9\-\.]{1,64} */
static int lex_id(const char *s, size_t n)
{
    if (n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* code: [^\s]+(\s[^\s]+)* — no whitespace at either end, no run of two. */
static int lex_code(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ws = s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r';
        if (ws && (i == 0 || i == n - 1)) return 0;
        if (ws && (s[i + 1] == ' ' || s[i + 1] == '\t' || s[i + 1] == '\n' || s[i + 1] == '\r'))
            return 0;
    }
    return 1;
}

tsg_rc model_check_lexical(const model_type *t, const char *s, size_t n, tsg_error *err)
{
    if (n == 0)
        return tsg_error_set(err, TSG_EINVAL, "value", "a %s value must not be empty", t->name);
    if (t->flags & MODEL_TYPE_JSON_BOOL) {
        if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5))) return TSG_OK;
        return tsg_error_set(err, TSG_EINVAL, "value", "'%.*s' is not a boolean (true or false)",
                             n > 40 ? 40 : (int)n, s);
    }
    if (!(t->flags & MODEL_TYPE_JSON_NUMBER)) {
        const char *tn = t->name;
        /* the common string types first, in one byte compare */
        if (tn[0] == 's' || tn[0] == 'm' || tn[0] == 'b' || tn[0] == 'x' || tn[0] == 'p')
            return TSG_OK;
        int ok = 1;
        const char *what = NULL;
        if (!strcmp(tn, "date") || !strcmp(tn, "dateTime") || !strcmp(tn, "instant") ||
            !strcmp(tn, "time")) {
            ok = lex_temporal(tn, s, n);
            what = !strcmp(tn, "date") ? "a date (YYYY, YYYY-MM or YYYY-MM-DD)"
                   : !strcmp(tn, "dateTime")
                       ? "a dateTime (YYYY[-MM[-DD[Thh:mm:ss[.f](Z|±hh:mm)]]])"
                   : !strcmp(tn, "instant") ? "an instant (YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm))"
                                            : "a time (hh:mm:ss[.f])";
        } else if (!strcmp(tn, "id")) {
            ok = lex_id(s, n);
            what = "an id (1-64 of A-Z a-z 0-9 - .)";
        } else if (!strcmp(tn, "code")) {
            ok = lex_code(s, n);
            what = "a code (no leading, trailing or repeated whitespace)";
        } else if (!strcmp(tn, "oid")) {
            ok = n > 8 && !memcmp(s, "urn:oid:", 8);
            what = "an oid (urn:oid:…)";
        } else if (!strcmp(tn, "uuid")) {
            ok = n == 45 && !memcmp(s, "urn:uuid:", 9);
            what = "a uuid (urn:uuid:…)";
        }
        if (ok) return TSG_OK;
        return tsg_error_set(err, TSG_EINVAL, "value", "'%.*s' is not %s", n > 40 ? 40 : (int)n, s,
                             what);
    }
    if (!strcmp(t->name, "decimal")) {
        if (is_decimal(s, n)) return TSG_OK;
        return tsg_error_set(err, TSG_EINVAL, "value", "'%.*s' is not a decimal",
                             n > 40 ? 40 : (int)n, s);
    }
    long long v;
    int r = parse_int32(s, n, &v);
    if (r == -2)
        return tsg_error_set(err, TSG_EINVAL, "value", "'%.*s' is outside the 32-bit range of %s",
                             n > 40 ? 40 : (int)n, s, t->name);
    if (r != 0)
        return tsg_error_set(err, TSG_EINVAL, "value", "'%.*s' is not an integer",
                             n > 40 ? 40 : (int)n, s);
    if (!strcmp(t->name, "positiveInt") && v < 1)
        return tsg_error_set(err, TSG_EINVAL, "value", "%lld is not a positiveInt (must be >= 1)",
                             v);
    if (!strcmp(t->name, "unsignedInt") && v < 0)
        return tsg_error_set(err, TSG_EINVAL, "value", "%lld is not an unsignedInt (must be >= 0)",
                             v);
    return TSG_OK;
}
