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

tsg_rc model_check_lexical(const model_type *t, const char *s, size_t n, tsg_error *err)
{
    if (n == 0)
        return tsg_error_set(err, TSG_EINVAL, "value", "a %s value must not be empty", t->name);
    if (t->flags & MODEL_TYPE_JSON_BOOL) {
        if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5))) return TSG_OK;
        return tsg_error_set(err, TSG_EINVAL, "value", "'%.*s' is not a boolean (true or false)",
                             n > 40 ? 40 : (int)n, s);
    }
    if (!(t->flags & MODEL_TYPE_JSON_NUMBER)) return TSG_OK;
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
