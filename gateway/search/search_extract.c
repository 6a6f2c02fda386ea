/*
 * search_extract.c — the index values of a resource (search_extract, see
 * search.h): every parameter's compiled expression is evaluated over the
 * resource and each result item becomes typed entries.
 */
#include "search.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "fhirpath/fp_value.h"
#include "text/text.h"

#define UCUM_SYSTEM "http://unitsofmeasure.org"

typedef struct ex {
    tsg_arena *a;
    const search_param *param;
    search_entry *v;
    size_t n, cap;
    tsg_error *err;
    tsg_buf fold;
} ex;

static tsg_rc nomem(ex *x)
{
    return tsg_error_set(x->err, TSG_ENOMEM, "exception", "out of memory extracting %s",
                         x->param ? x->param->code : "search values");
}

static search_entry *add(ex *x, search_entry_kind kind)
{
    if (x->n == x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 32;
        search_entry *nv = tsg_arena_alloc(x->a, ncap * sizeof *nv);
        if (!nv) return NULL;
        if (x->n) memcpy(nv, x->v, x->n * sizeof *nv);
        x->v = nv;
        x->cap = ncap;
    }
    search_entry *e = &x->v[x->n++];
    memset(e, 0, sizeof *e);
    e->param = x->param;
    e->kind = kind;
    return e;
}

/* ------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

static const fhir_node *kid(const fhir_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->nkids; i++)
        if (n->kids[i].elem && strcmp(n->kids[i].elem->name, name) == 0) return &n->kids[i];
    return NULL;
}

static const char *kid_value(const fhir_node *n, const char *name)
{
    const fhir_node *k = kid(n, name);
    return k ? k->value : NULL;
}

static int type_is(const fhir_node *n, const char *name)
{
    const model_type *t = n->type;
    while (t) {
        if (strcmp(t->name, name) == 0) return 1;
        t = t->base;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Dates
 * ------------------------------------------------------------------------ */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, size_t len, size_t at, size_t n, unsigned *out)
{
    if (at + n > len) return 0;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[at + i] < '0' || s[at + i] > '9') return 0;
        v = v * 10 + (unsigned)(s[at + i] - '0');
    }
    *out = v;
    return 1;
}

static int leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

tsg_rc search_date_range(const char *s, size_t len, int64_t *low, int64_t *high)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0;
    size_t i = 0;
    if (!s || !digits(s, len, 0, 4, &y) || y == 0) return TSG_EINVAL;
    i = 4;
    int64_t day_lo, span_ms;
    if (i == len) {
        *low = days_from_civil(y, 1, 1) * 86400000ll;
        *high = days_from_civil((int64_t)y + 1, 1, 1) * 86400000ll;
        return TSG_OK;
    }
    if (s[i] != '-' || !digits(s, len, i + 1, 2, &mo) || mo < 1 || mo > 12) return TSG_EINVAL;
    i += 3;
    if (i == len) {
        *low = days_from_civil(y, mo, 1) * 86400000ll;
        *high = (mo == 12 ? days_from_civil((int64_t)y + 1, 1, 1) : days_from_civil(y, mo + 1, 1)) *
                86400000ll;
        return TSG_OK;
    }
    unsigned dim = mdays[mo - 1] + (mo == 2 && leap(y));
    if (s[i] != '-' || !digits(s, len, i + 1, 2, &d) || d < 1 || d > dim) return TSG_EINVAL;
    i += 3;
    day_lo = days_from_civil(y, mo, d) * 86400000ll;
    if (i == len) {
        *low = day_lo;
        *high = day_lo + 86400000ll;
        return TSG_OK;
    }
    if (s[i] != 'T' || !digits(s, len, i + 1, 2, &h) || h > 23) return TSG_EINVAL;
    i += 3;
    if (i >= len || s[i] != ':' || !digits(s, len, i + 1, 2, &mi) || mi > 59) return TSG_EINVAL;
    i += 3;
    span_ms = 60000;
    if (i < len && s[i] == ':') {
        if (!digits(s, len, i + 1, 2, &sec) || sec > 59) return TSG_EINVAL;
        i += 3;
        span_ms = 1000;
        if (i < len && s[i] == '.') {
            size_t nd = 0;
            i++;
            unsigned scale = 100;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                if (nd < 3) {
                    ms += (unsigned)(s[i] - '0') * scale;
                    scale /= 10;
                }
                nd++;
                i++;
            }
            if (nd == 0) return TSG_EINVAL;
            span_ms = nd == 1 ? 100 : nd == 2 ? 10 : 1;
        }
    }
    int64_t t = day_lo + (int64_t)h * 3600000 + (int64_t)mi * 60000 + (int64_t)sec * 1000 + ms;
    if (i < len) {
        if (s[i] == 'Z' && i + 1 == len) {
            /* UTC */
        } else if ((s[i] == '+' || s[i] == '-') && len == i + 6 && s[i + 3] == ':') {
            unsigned oh, om;
            if (!digits(s, len, i + 1, 2, &oh) || !digits(s, len, i + 4, 2, &om) || oh > 14 ||
                om > 59)
                return TSG_EINVAL;
            int64_t off = ((int64_t)oh * 60 + om) * 60000;
            t -= s[i] == '+' ? off : -off;
        } else {
            return TSG_EINVAL;
        }
    }
    *low = t;
    *high = t + span_ms;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Entries by type
 * ------------------------------------------------------------------------ */

static tsg_rc folded(ex *x, const char *s, const char **out)
{
    tsg_buf_reset(&x->fold);
    tsg_rc rc = text_fold(s, strlen(s), &x->fold);
    if (rc == TSG_EINVAL) {
        *out = NULL; /* not valid UTF-8: no folded form (the parsers never produce it) */
        return TSG_OK;
    }
    if (rc != TSG_OK || tsg_buf_rc(&x->fold) != TSG_OK) return nomem(x);
    *out = tsg_arena_strndup(x->a, x->fold.len ? x->fold.data : "", x->fold.len);
    return *out ? TSG_OK : nomem(x);
}

static tsg_rc add_token(ex *x, const char *system, const char *code)
{
    if (!code) return TSG_OK;
    search_entry *e = add(x, SEARCH_ENTRY_TOKEN);
    if (!e) return nomem(x);
    e->system = system;
    e->code = code;
    return TSG_OK;
}

static tsg_rc add_text(ex *x, search_entry_kind kind, const char *text, const char *part)
{
    if (!text) return TSG_OK;
    search_entry *e = add(x, kind);
    if (!e) return nomem(x);
    e->text = text;
    e->part = part;
    return folded(x, text, &e->folded);
}

static tsg_rc coding(ex *x, const fhir_node *c)
{
    tsg_rc rc = add_token(x, kid_value(c, "system"), kid_value(c, "code"));
    if (rc == TSG_OK) rc = add_text(x, SEARCH_ENTRY_TOKEN_TEXT, kid_value(c, "display"), NULL);
    return rc;
}

static tsg_rc token_node(ex *x, const fhir_node *n)
{
    tsg_rc rc = TSG_OK;
    if (type_is(n, "Coding")) return coding(x, n);
    if (type_is(n, "CodeableConcept")) {
        for (uint32_t i = 0; i < n->nkids && rc == TSG_OK; i++)
            if (strcmp(n->kids[i].elem->name, "coding") == 0) rc = coding(x, &n->kids[i]);
        if (rc == TSG_OK) rc = add_text(x, SEARCH_ENTRY_TOKEN_TEXT, kid_value(n, "text"), NULL);
        return rc;
    }
    if (type_is(n, "Identifier")) {
        const char *value = kid_value(n, "value");
        rc = add_token(x, kid_value(n, "system"), value);
        const fhir_node *type = kid(n, "type");
        if (type && rc == TSG_OK) {
            for (uint32_t i = 0; i < type->nkids && rc == TSG_OK; i++) {
                const fhir_node *c = &type->kids[i];
                if (strcmp(c->elem->name, "coding") != 0 || !kid_value(c, "code") || !value)
                    continue;
                search_entry *e = add(x, SEARCH_ENTRY_OF_TYPE);
                if (!e) return nomem(x);
                e->system = kid_value(c, "system");
                e->code = kid_value(c, "code");
                e->text = value;
            }
            if (rc == TSG_OK)
                rc = add_text(x, SEARCH_ENTRY_TOKEN_TEXT, kid_value(type, "text"), NULL);
        }
        return rc;
    }
    if (type_is(n, "ContactPoint")) return add_token(x, NULL, kid_value(n, "value"));
    if (model_is_primitive(n->type)) return add_token(x, NULL, n->value);
    return TSG_OK; /* other complex types carry no token */
}

static const char *const NAME_PARTS[] = {"family", "given", "prefix", "suffix", "text", NULL};
static const char *const ADDRESS_PARTS[] = {"line",       "city",    "district", "state",
                                            "postalCode", "country", "text",     NULL};

static tsg_rc string_node(ex *x, const fhir_node *n)
{
    const char *const *parts = NULL;
    if (type_is(n, "HumanName")) parts = NAME_PARTS;
    if (type_is(n, "Address")) parts = ADDRESS_PARTS;
    if (parts) {
        for (size_t p = 0; parts[p]; p++)
            for (uint32_t i = 0; i < n->nkids; i++)
                if (strcmp(n->kids[i].elem->name, parts[p]) == 0 && n->kids[i].value) {
                    tsg_rc rc =
                        add_text(x, SEARCH_ENTRY_STRING, n->kids[i].value, n->kids[i].elem->name);
                    if (rc != TSG_OK) return rc;
                }
        return TSG_OK;
    }
    if (model_is_primitive(n->type)) return add_text(x, SEARCH_ENTRY_STRING, n->value, NULL);
    return TSG_OK;
}

static tsg_rc date_text(ex *x, const char *s, int64_t *low, int64_t *high)
{
    (void)x;
    return search_date_range(s, strlen(s), low, high);
}

static tsg_rc add_date(ex *x, int64_t low, int64_t high)
{
    search_entry *e = add(x, SEARCH_ENTRY_DATE);
    if (!e) return nomem(x);
    e->low = low;
    e->high = high;
    return TSG_OK;
}

static tsg_rc date_node(ex *x, const fhir_node *n)
{
    int64_t lo, hi, lo2, hi2;
    if (type_is(n, "Period")) {
        const char *start = kid_value(n, "start"), *end = kid_value(n, "end");
        lo = SEARCH_DATE_MIN;
        hi = SEARCH_DATE_MAX;
        if (!start && !end) return TSG_OK;
        if (start && date_text(x, start, &lo, &hi2) != TSG_OK) return TSG_OK;
        if (end && date_text(x, end, &lo2, &hi) != TSG_OK) return TSG_OK;
        if (!end) hi = SEARCH_DATE_MAX;
        return add_date(x, lo, hi);
    }
    if (type_is(n, "Timing")) {
        for (uint32_t i = 0; i < n->nkids; i++)
            if (strcmp(n->kids[i].elem->name, "event") == 0 && n->kids[i].value &&
                date_text(x, n->kids[i].value, &lo, &hi) == TSG_OK) {
                tsg_rc rc = add_date(x, lo, hi);
                if (rc != TSG_OK) return rc;
            }
        return TSG_OK;
    }
    if (model_is_primitive(n->type) && n->value && date_text(x, n->value, &lo, &hi) == TSG_OK)
        return add_date(x, lo, hi);
    return TSG_OK; /* strings, Age, Range, … as dates are not indexed */
}

static tsg_rc add_number(ex *x, search_entry_kind kind, const char *text, search_entry **out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!end || *end != '\0' || !isfinite(v)) return TSG_OK;
    search_entry *e = add(x, kind);
    if (!e) return nomem(x);
    e->number = v;
    e->text = text;
    if (out) *out = e;
    return TSG_OK;
}

/* Canonical units: one per dimension (the first the unit converts to), so
 * equal quantities in different UCUM units index the same canonical value:
 * 1500 mg and 1.5 g are both 1.5 g, 72 /min is 1.2 /s, 36.8 Cel is 309.95 K,
 * mmol/L is /L (UCUM's mol is dimensionless). */
static const char *const CANONICAL_UNITS[] = {
    "1", /* dimensionless: %, mol (UCUM's mol is a number), {count}, 10*3 */
    "g", "m", "s", "K", "L", "m2", "g/L", "/L", "/s", "Pa", "g/m2", "g/s", NULL};

/*
 * The canonical unit of a UCUM code and the line v·f + o that converts to it,
 * found once per code: trying each canonical unit parses both units every
 * time, which cost 7 % of a Synthea ingest. Only codes whose conversion is
 * linear (checked at three points) are cached; the others (none among the
 * canonical units today) take the slow path each time. A thread reads its own
 * copy without locking; on a miss it copies the process-wide entry (under a
 * mutex), which is computed only when no thread has done so yet.
 */
#define UCUM_CACHE_SLOTS  256 /* open addressing, UCUM_CACHE_PROBES slots per code */
#define UCUM_CACHE_PROBES 4
#define UCUM_CACHE_CODE   32
typedef struct ucum_slot {
    char code[UCUM_CACHE_CODE]; /* "" empty */
    const char *unit;           /* NULL: the code converts to no canonical unit */
    long double f, o;           /* long double, so that v·f + o rounds to the same double
                                   as the exact decimal conversion */
} ucum_slot;
static _Thread_local ucum_slot ucum_cache[UCUM_CACHE_SLOTS];
static ucum_slot ucum_shared[UCUM_CACHE_SLOTS];
static pthread_mutex_t ucum_shared_lock = PTHREAD_MUTEX_INITIALIZER;

/* The slot for code in table t (hash h): its entry, or a free/replaceable one (*found 0). */
static ucum_slot *ucum_slot_of(ucum_slot *t, uint32_t h, const char *code, int *found)
{
    ucum_slot *s = NULL;
    for (uint32_t k = 0; k < UCUM_CACHE_PROBES; k++) {
        ucum_slot *c = &t[(h + k) & (UCUM_CACHE_SLOTS - 1)];
        if (!strcmp(c->code, code)) {
            *found = 1;
            return c;
        }
        if (!s && !c->code[0]) s = c;
    }
    *found = 0;
    return s ? s : &t[h & (UCUM_CACHE_SLOTS - 1)]; /* all taken: replace the first */
}

/* Converts x in `code` to canonical unit u (as long double); 0 on failure. */
static int ucum_point(const char *x, const char *code, const char *u, long double *out)
{
    fp_decimal d;
    fp_quantity q, c;
    if (fp_dec_parse(x, strlen(x), FP_DEC_FHIR, &d) != FP_OK ||
        fp_qty_make(d, code, strlen(code), false, &q) != FP_OK ||
        fp_qty_convert(&q, u, strlen(u), false, &c) != FP_OK)
        return 0;
    *out = fp_dec_to_ld(c.value);
    return 1;
}

/* The cache slot of code (filled on a miss); NULL when code is too long. */
static const ucum_slot *ucum_lookup(const char *code)
{
    size_t n = strlen(code);
    if (!n || n >= UCUM_CACHE_CODE) return NULL;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)code[i]) * 16777619u;
    int found;
    ucum_slot *s = ucum_slot_of(ucum_cache, h, code, &found);
    if (found) return s;
    pthread_mutex_lock(&ucum_shared_lock);
    ucum_slot *g = ucum_slot_of(ucum_shared, h, code, &found);
    if (found) *s = *g;
    pthread_mutex_unlock(&ucum_shared_lock);
    if (found) return s;
    ucum_slot fresh = {{0}, NULL, 0, 0};
    memcpy(fresh.code, code, n + 1);
    for (size_t i = 0; CANONICAL_UNITS[i]; i++) {
        long double y0, y1, y2;
        if (!ucum_point("0", code, CANONICAL_UNITS[i], &y0)) continue;
        if (!ucum_point("1", code, CANONICAL_UNITS[i], &y1) ||
            !ucum_point("1000", code, CANONICAL_UNITS[i], &y2))
            return NULL;
        /* the slope from the far point (the engine rounds conversions to about 8
         * significant digits: 1 /min is 0.01666667 /s, 1000 /min 16.66666667 /s);
         * the near point must lie on the line within that rounding */
        long double f = (y2 - y0) / 1000, lin = y0 + f;
        long double tol = 1e-6L * (lin < 0 ? -lin : lin) + 1e-12L;
        if (y1 - lin > tol || lin - y1 > tol) return NULL; /* not linear: no caching */
        fresh.unit = CANONICAL_UNITS[i];
        fresh.f = f;
        fresh.o = y0;
        break;
    }
    *s = fresh;
    pthread_mutex_lock(&ucum_shared_lock);
    *ucum_slot_of(ucum_shared, h, code, &found) = fresh;
    pthread_mutex_unlock(&ucum_shared_lock);
    return s;
}

int search_ucum_canonical(const char *value, size_t len, const char *code, const char **unit,
                          double *out)
{
    if (!*unit) {
        const ucum_slot *s = ucum_lookup(code);
        if (s) {
            fp_decimal d;
            if (!s->unit || fp_dec_parse(value, len, FP_DEC_FHIR, &d) != FP_OK) return 0;
            *out = (double)(fp_dec_to_ld(d) * s->f + s->o);
            *unit = s->unit;
            return 1;
        }
    }
    fp_decimal d;
    fp_quantity q, c;
    if (fp_dec_parse(value, len, FP_DEC_FHIR, &d) != FP_OK ||
        fp_qty_make(d, code, strlen(code), false, &q) != FP_OK)
        return 0;
    for (size_t i = 0; CANONICAL_UNITS[i]; i++) {
        const char *u = *unit ? *unit : CANONICAL_UNITS[i];
        if (fp_qty_convert(&q, u, strlen(u), false, &c) == FP_OK) {
            *out = (double)fp_dec_to_ld(c.value);
            *unit = u;
            return 1;
        }
        if (*unit) return 0;
    }
    return 0;
}

static void canonical(const search_entry *in, search_entry *e)
{
    if (!in->system || strcmp(in->system, UCUM_SYSTEM) != 0 || !in->code || !in->text) return;
    const char *u = NULL;
    double v;
    if (search_ucum_canonical(in->text, strlen(in->text), in->code, &u, &v)) {
        e->canonical_number = v;
        e->canonical_unit = u;
    }
}

static tsg_rc quantity_of(ex *x, const fhir_node *n, const char *part)
{
    const char *value = kid_value(n, "value");
    if (!value) return TSG_OK;
    search_entry *e = NULL;
    tsg_rc rc = add_number(x, SEARCH_ENTRY_QUANTITY, value, &e);
    if (rc != TSG_OK || !e) return rc;
    e->part = part;
    if (type_is(n, "Money")) {
        e->system = "urn:iso:std:iso:4217";
        e->code = kid_value(n, "currency");
        return TSG_OK;
    }
    e->system = kid_value(n, "system");
    e->code = kid_value(n, "code");
    if (!e->code) e->code = kid_value(n, "unit");
    canonical(e, e);
    return TSG_OK;
}

static tsg_rc quantity_node(ex *x, const fhir_node *n)
{
    if (type_is(n, "Quantity") || type_is(n, "Money")) return quantity_of(x, n, NULL);
    if (type_is(n, "Range")) {
        const fhir_node *lo = kid(n, "low"), *hi = kid(n, "high");
        tsg_rc rc = lo ? quantity_of(x, lo, "low") : TSG_OK;
        if (rc == TSG_OK && hi) rc = quantity_of(x, hi, "high");
        return rc;
    }
    if (model_is_primitive(n->type) && n->value)
        return add_number(x, SEARCH_ENTRY_QUANTITY, n->value, NULL);
    return TSG_OK; /* SampledData is not indexed */
}

static const char *normalize_ref(ex *x, const char *ref)
{
    size_t n = strlen(ref);
    const char *h = strstr(ref, "/_history/");
    if (h) n = (size_t)(h - ref);
    return tsg_arena_strndup(x->a, ref, n);
}

static tsg_rc reference_node(ex *x, const fhir_node *n)
{
    if (type_is(n, "Reference")) {
        const char *ref = kid_value(n, "reference");
        if (ref) {
            search_entry *e = add(x, SEARCH_ENTRY_REFERENCE);
            if (!e) return nomem(x);
            e->text = normalize_ref(x, ref);
            if (!e->text) return nomem(x);
        }
        const fhir_node *id = kid(n, "identifier");
        if (id && kid_value(id, "value")) {
            search_entry *e = add(x, SEARCH_ENTRY_REF_IDENTIFIER);
            if (!e) return nomem(x);
            e->system = kid_value(id, "system");
            e->code = kid_value(id, "value");
        }
        return TSG_OK;
    }
    if (model_is_primitive(n->type) && n->value) { /* canonical, uri */
        search_entry *e = add(x, SEARCH_ENTRY_REFERENCE);
        if (!e) return nomem(x);
        e->text = n->value;
    }
    return TSG_OK; /* Attachment etc. */
}

static tsg_rc near_node(ex *x, const fhir_node *n)
{
    const char *lat = kid_value(n, "latitude"), *lon = kid_value(n, "longitude");
    if (!lat || !lon) return TSG_OK;
    char *e1 = NULL, *e2 = NULL;
    double la = strtod(lat, &e1), lo = strtod(lon, &e2);
    if (*e1 || *e2) return TSG_OK;
    search_entry *e = add(x, SEARCH_ENTRY_NEAR);
    if (!e) return nomem(x);
    e->number = la;
    e->canonical_number = lo;
    return TSG_OK;
}

/* A System value (not a node): its text, by type. */
static tsg_rc system_value(ex *x, const fp_item *it)
{
    char tname[64];
    fp_item_type_name(it, tname, sizeof tname);
    tsg_buf b;
    tsg_buf_init(&b, 1u << 20);
    fp_item_write_text(it, &b);
    if (tsg_buf_rc(&b) != TSG_OK) {
        tsg_buf_free(&b);
        return nomem(x);
    }
    const char *text = tsg_arena_strndup(x->a, b.len ? b.data : "", b.len);
    tsg_buf_free(&b);
    if (!text) return nomem(x);
    int64_t lo, hi;
    switch (x->param->type) {
    case SEARCH_TOKEN:
        return add_token(x, NULL, text);
    case SEARCH_STRING:
        return add_text(x, SEARCH_ENTRY_STRING, text, NULL);
    case SEARCH_URI:
        return add_text(x, SEARCH_ENTRY_URI, text, NULL);
    case SEARCH_NUMBER:
        return add_number(x, SEARCH_ENTRY_NUMBER, text, NULL);
    case SEARCH_DATE:
        if ((strcmp(tname, "System.Date") == 0 || strcmp(tname, "System.DateTime") == 0) &&
            search_date_range(text, strlen(text), &lo, &hi) == TSG_OK)
            return add_date(x, lo, hi);
        return TSG_OK;
    default:
        return TSG_OK;
    }
}

static tsg_rc item(ex *x, const fp_item *it)
{
    const fhir_node *n = fp_item_node(it);
    if (!n) return system_value(x, it);
    switch (x->param->type) {
    case SEARCH_TOKEN:
        return token_node(x, n);
    case SEARCH_STRING:
        return string_node(x, n);
    case SEARCH_DATE:
        return date_node(x, n);
    case SEARCH_NUMBER:
        if (model_is_primitive(n->type) && n->value)
            return add_number(x, SEARCH_ENTRY_NUMBER, n->value, NULL);
        return TSG_OK;
    case SEARCH_QUANTITY:
        return quantity_node(x, n);
    case SEARCH_REFERENCE:
        return reference_node(x, n);
    case SEARCH_URI:
        if (model_is_primitive(n->type) && n->value) {
            search_entry *e = add(x, SEARCH_ENTRY_URI);
            if (!e) return nomem(x);
            e->text = n->value;
        }
        return TSG_OK;
    case SEARCH_SPECIAL:
        if (strcmp(x->param->code, "near") == 0) return near_node(x, n);
        return TSG_OK;
    case SEARCH_COMPOSITE:
        return TSG_OK;
    }
    return TSG_OK;
}

/* Evaluates p's expression over resource into *c (in a); on failure err names
 * the parameter and the engine's reason. */
static tsg_rc eval_param(const search_param *p, const fhir_node *resource, tsg_arena *a,
                         fp_collection *c, tsg_error *err)
{
    tsg_error e2;
    tsg_error_clear(&e2);
    tsg_rc rc = fp_eval(p->expr, resource, NULL, NULL, a, c, &e2);
    if (rc != TSG_OK)
        tsg_error_set(err, rc, e2.code ? e2.code : tsg_rc_code(rc),
                      "search parameter %s.%s (%s): %s", resource->type->name, p->code,
                      p->expression, e2.message);
    return rc;
}
tsg_rc search_extract(const fhir_node *resource, tsg_arena *a, search_entry **entries, size_t *n,
                      tsg_error *err)
{
    *entries = NULL;
    *n = 0;
    if (!resource || !resource->type)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "no resource to index");
    const search_param *const *list;
    size_t count = search_params_of(resource->type->name, &list);
    ex x = {.a = a, .err = err};
    tsg_buf_init(&x.fold, 1u << 24);
    tsg_rc rc = TSG_OK;
    for (size_t i = 0; i < count && rc == TSG_OK; i++) {
        const search_param *p = list[i];
        if (!p->expr || p->type == SEARCH_COMPOSITE) continue;
        x.param = p;
        fp_collection c;
        if ((rc = eval_param(p, resource, a, &c, err))) break;
        for (size_t k = 0; k < c.count && rc == TSG_OK; k++)
            rc = item(&x, fp_collection_item(&c, k));
    }
    tsg_buf_free(&x.fold);
    if (rc != TSG_OK) return rc;
    *entries = x.v;
    *n = x.n;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Composites
 * ------------------------------------------------------------------------ */

static int primary_kind(search_entry_kind k)
{
    return k == SEARCH_ENTRY_TOKEN || k == SEARCH_ENTRY_QUANTITY || k == SEARCH_ENTRY_DATE ||
           k == SEARCH_ENTRY_STRING || k == SEARCH_ENTRY_NUMBER || k == SEARCH_ENTRY_REFERENCE ||
           k == SEARCH_ENTRY_URI;
}

#define COMPONENTS_MAX 8

typedef struct cx {
    search_composite *v;
    size_t n, cap;
} cx;

/* The composites of one item: every combination of the components' primary
 * entries, evaluated with the item as context. */
static tsg_rc composite_item(ex *x, cx *out, const search_param *cp, const fhir_node *resource,
                             const fhir_node *node)
{
    size_t nc = cp->ncomponents;
    if (nc == 0 || nc > COMPONENTS_MAX) return TSG_OK;
    search_entry *vals[COMPONENTS_MAX];
    size_t nvals[COMPONENTS_MAX];
    for (size_t i = 0; i < nc; i++) {
        const search_component *c = &cp->components[i];
        const search_param *sp = search_param_find(cp->base, c->code);
        if (!c->expr || !sp || sp->type != c->type) return TSG_OK;
        fp_collection col;
        tsg_error e2;
        tsg_error_clear(&e2);
        tsg_rc rc = fp_eval(c->expr, resource, node, NULL, x->a, &col, &e2);
        if (rc != TSG_OK)
            return tsg_error_set(x->err, rc, e2.code ? e2.code : tsg_rc_code(rc),
                                 "search parameter %s.%s, component %s: %s", cp->base, cp->code,
                                 c->code, e2.message);
        x->param = sp;
        x->v = NULL;
        x->n = x->cap = 0;
        for (size_t k = 0; k < col.count && rc == TSG_OK; k++)
            rc = item(x, fp_collection_item(&col, k));
        if (rc != TSG_OK) return rc;
        size_t keep = 0;
        for (size_t k = 0; k < x->n; k++)
            if (primary_kind(x->v[k].kind)) x->v[keep++] = x->v[k];
        if (keep == 0) return TSG_OK; /* a component without a value: no combination */
        vals[i] = x->v;
        nvals[i] = keep;
    }
    size_t idx[COMPONENTS_MAX] = {0};
    for (size_t made = 0; made < SEARCH_COMPOSITE_MAX; made++) {
        search_entry *comps = tsg_arena_alloc(x->a, nc * sizeof *comps);
        if (!comps) return nomem(x);
        for (size_t i = 0; i < nc; i++) comps[i] = vals[i][idx[i]];
        if (out->n == out->cap) {
            size_t ncap = out->cap ? out->cap * 2 : 8;
            search_composite *nv = tsg_arena_alloc(x->a, ncap * sizeof *nv);
            if (!nv) return nomem(x);
            if (out->n) memcpy(nv, out->v, out->n * sizeof *nv);
            out->v = nv;
            out->cap = ncap;
        }
        out->v[out->n++] = (search_composite){.param = cp, .ncomponents = nc, .components = comps};
        size_t i = nc; /* next combination, the last component fastest */
        while (i > 0) {
            i--;
            if (++idx[i] < nvals[i]) break;
            idx[i] = 0;
            if (i == 0) return TSG_OK;
        }
    }
    return TSG_OK;
}

tsg_rc search_extract_composites(const fhir_node *resource, tsg_arena *a, search_composite **out,
                                 size_t *n, tsg_error *err)
{
    *out = NULL;
    *n = 0;
    if (!resource || !resource->type)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "no resource to index");
    const search_param *const *list;
    size_t count = search_params_of(resource->type->name, &list);
    ex x = {.a = a, .err = err};
    cx res = {0};
    tsg_buf_init(&x.fold, 1u << 24);
    tsg_rc rc = TSG_OK;
    for (size_t i = 0; i < count && rc == TSG_OK; i++) {
        const search_param *p = list[i];
        if (!p->expr || p->type != SEARCH_COMPOSITE) continue;
        x.param = p;
        fp_collection c;
        if ((rc = eval_param(p, resource, a, &c, err))) break;
        for (size_t k = 0; k < c.count && rc == TSG_OK; k++) {
            const fhir_node *node = fp_item_node(fp_collection_item(&c, k));
            if (node) rc = composite_item(&x, &res, p, resource, node);
        }
    }
    tsg_buf_free(&x.fold);
    if (rc != TSG_OK) return rc;
    *out = res.v;
    *n = res.n;
    return TSG_OK;
}
