/*
 * search_query.c — parses the parameters of a FHIR R4 search into a
 * search_query (see search.h for the structure and the rules).
 */
#include "search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath/fp_value.h"
#include "text/text.h"

typedef struct qp {
    tsg_arena *a;
    const char *type;
    const char *name; /* the parameter being parsed, for messages */
    tsg_error *err;
} qp;

static tsg_rc bad(qp *q, const char *fmt, const char *detail)
{
    return tsg_error_set(q->err, TSG_EINVAL, "invalid", "search parameter '%s': %s%s", q->name, fmt,
                         detail ? detail : "");
}

static tsg_rc nomem(qp *q)
{
    return tsg_error_set(q->err, TSG_ENOMEM, "exception", "out of memory parsing the search");
}

static char *dupn(qp *q, const char *s, size_t n)
{
    return tsg_arena_strndup(q->a, s, n);
}

/* ------------------------------------------------------------------------
 * Escapes: `\,` `\|` `\$` `\\` stay escaped while splitting, then go.
 * ------------------------------------------------------------------------ */

/* Splits s[0..n) at unescaped `sep`: returns the number of parts, storing at
 * most max (start, length) pairs. */
static size_t split_esc(const char *s, size_t n, char sep, const char **ps, size_t *pl, size_t max)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] == '\\' && i + 1 < n) {
            i++;
            continue;
        }
        if (i == n || s[i] == sep) {
            if (k < max) {
                ps[k] = s + start;
                pl[k] = i - start;
            }
            k++;
            start = i + 1;
        }
    }
    return k;
}

/* The unescaped copy of s[0..n); NULL when out of memory. A backslash before
 * anything but , | $ \ is kept as it is. */
static char *unescape(qp *q, const char *s, size_t n)
{
    char *out = tsg_arena_alloc(q->a, n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n &&
            (s[i + 1] == ',' || s[i + 1] == '|' || s[i + 1] == '$' || s[i + 1] == '\\'))
            i++;
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

/* ------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------ */

static int prefix_of(const char *s, size_t n, search_prefix *p)
{
    if (n < 2 || s[0] < 'a' || s[0] > 'z' || s[1] < 'a' || s[1] > 'z') return 0;
    for (int i = SEARCH_PFX_EQ; i <= SEARCH_PFX_AP; i++) {
        const char *name = search_prefix_name((search_prefix)i);
        if (s[0] == name[0] && s[1] == name[1]) {
            *p = (search_prefix)i;
            return 1;
        }
    }
    return -1; /* two letters that are no prefix */
}

/* Strips a prefix from the value when the type takes prefixes. */
static tsg_rc take_prefix(qp *q, const search_param *p, search_type type, const char **s, size_t *n,
                          search_value *v)
{
    v->prefix = SEARCH_PFX_EQ;
    if (type != SEARCH_NUMBER && type != SEARCH_DATE && type != SEARCH_QUANTITY) return TSG_OK;
    search_prefix pf;
    int r = prefix_of(*s, *n, &pf);
    if (r == 0) return TSG_OK;
    if (r < 0) return bad(q, "unknown prefix in value ", dupn(q, *s, *n));
    if (p && p->prefixes && !(p->prefixes & (1u << pf)))
        return bad(q, "prefix not allowed: ", search_prefix_name(pf));
    v->prefix = pf;
    *s += 2;
    *n -= 2;
    return TSG_OK;
}

static tsg_rc number_value(qp *q, const char *s, size_t n, search_value *v)
{
    fp_decimal d;
    if (n == 0 || fp_dec_parse(s, n, FP_DEC_FHIR, &d) != FP_OK)
        return bad(q, "not a number: ", dupn(q, s, n));
    v->number_text = dupn(q, s, n);
    if (!v->number_text) return nomem(q);
    v->number = strtod(v->number_text, NULL);
    if (!isfinite(v->number)) return bad(q, "number out of range: ", v->number_text);
    return TSG_OK;
}

/* Token `system|code`, `|code`, `system|`, `code` (escaped text). */
static tsg_rc token_value(qp *q, const char *s, size_t n, search_value *v)
{
    const char *ps[3];
    size_t pl[3];
    size_t k = split_esc(s, n, '|', ps, pl, 3);
    if (k > 2) return bad(q, "a token has at most one '|': ", dupn(q, s, n));
    if (k == 1) {
        v->code = unescape(q, s, n);
        return v->code ? TSG_OK : nomem(q);
    }
    v->has_system = 1;
    v->system = unescape(q, ps[0], pl[0]);
    v->code = pl[1] ? unescape(q, ps[1], pl[1]) : NULL;
    if (!v->system || (pl[1] && !v->code)) return nomem(q);
    if (!pl[0] && !pl[1]) return bad(q, "an empty token: ", "|");
    return TSG_OK;
}

static tsg_rc fold_value(qp *q, search_value *v)
{
    tsg_buf b;
    tsg_buf_init(&b, 1u << 20);
    tsg_rc rc = text_fold(v->text, strlen(v->text), &b);
    if (rc == TSG_OK && tsg_buf_rc(&b) == TSG_OK) {
        v->folded = dupn(q, b.len ? b.data : "", b.len);
        tsg_buf_free(&b);
        return v->folded ? TSG_OK : nomem(q);
    }
    tsg_buf_free(&b);
    if (rc == TSG_EINVAL) return bad(q, "the value is not valid UTF-8", NULL);
    return nomem(q);
}

static int is_absolute(const char *s)
{
    return strstr(s, "://") != NULL || strncmp(s, "urn:", 4) == 0;
}

static tsg_rc reference_value(qp *q, const char *type_mod, const char *s, size_t n, search_value *v)
{
    char *t = unescape(q, s, n);
    if (!t) return nomem(q);
    char *h = strstr(t, "/_history/");
    if (h) *h = '\0';
    if (!*t) return bad(q, "an empty reference", NULL);
    if (is_absolute(t)) {
        v->text = t;
        return TSG_OK;
    }
    char *slash = strchr(t, '/');
    if (slash) {
        if (strchr(slash + 1, '/') || slash[1] == '\0')
            return bad(q, "not a reference Type/id: ", t);
        if (!model_resource_find(t, (size_t)(slash - t)))
            return bad(q, "not a resource type in reference: ", t);
        if (type_mod && (strlen(type_mod) != (size_t)(slash - t) ||
                         memcmp(type_mod, t, (size_t)(slash - t)) != 0))
            return bad(q, "the reference's type differs from the modifier: ", t);
        v->text = t;
        v->ref_type = dupn(q, t, (size_t)(slash - t));
        v->ref_id = slash + 1;
        return v->ref_type ? TSG_OK : nomem(q);
    }
    v->ref_id = t;
    if (type_mod) {
        size_t tl = strlen(type_mod), il = strlen(t);
        char *full = tsg_arena_alloc(q->a, tl + il + 2);
        if (!full) return nomem(q);
        memcpy(full, type_mod, tl);
        full[tl] = '/';
        memcpy(full + tl + 1, t, il + 1);
        v->text = full;
        v->ref_type = type_mod;
    } else {
        v->text = t;
    }
    return TSG_OK;
}

static tsg_rc quantity_value(qp *q, const char *s, size_t n, search_value *v)
{
    const char *ps[3];
    size_t pl[3];
    size_t k = split_esc(s, n, '|', ps, pl, 3);
    if (k != 1 && k != 3)
        return bad(q, "a quantity is number or number|system|code: ", dupn(q, s, n));
    tsg_rc rc = number_value(q, ps[0], pl[0], v);
    if (rc != TSG_OK || k == 1) return rc;
    v->has_system = 1;
    v->system = pl[1] ? unescape(q, ps[1], pl[1]) : NULL;
    v->code = pl[2] ? unescape(q, ps[2], pl[2]) : NULL;
    if ((pl[1] && !v->system) || (pl[2] && !v->code)) return nomem(q);
    return TSG_OK;
}

static tsg_rc near_value(qp *q, const char *s, size_t n, search_value *v)
{
    const char *ps[4];
    size_t pl[4];
    size_t k = split_esc(s, n, '|', ps, pl, 4);
    if (k < 2 || k > 4)
        return bad(q, "near is latitude|longitude[|distance[|unit]]: ", dupn(q, s, n));
    search_value t;
    tsg_rc rc = number_value(q, ps[0], pl[0], v);
    if (rc == TSG_OK) rc = number_value(q, ps[1], pl[1], &t);
    if (rc != TSG_OK) return rc;
    v->longitude = t.number;
    if (fabs(v->number) > 90 || fabs(v->longitude) > 180)
        return bad(q, "latitude or longitude out of range: ", dupn(q, s, n));
    if (k >= 3 && pl[2]) {
        rc = number_value(q, ps[2], pl[2], &t);
        if (rc != TSG_OK) return rc;
        if (t.number < 0) return bad(q, "a negative distance", NULL);
        v->distance = t.number;
    }
    if (k == 4 && pl[3]) {
        v->distance_unit = unescape(q, ps[3], pl[3]);
        if (!v->distance_unit) return nomem(q);
    }
    return TSG_OK;
}

/* One alternative s[0..n) (still escaped) of a parameter of type `type`. */
static tsg_rc one_value(qp *q, const search_param *p, search_type type, search_modifier mod,
                        const char *type_mod, const char *s, size_t n, search_value *v)
{
    memset(v, 0, sizeof *v);
    v->raw = unescape(q, s, n);
    if (!v->raw) return nomem(q);
    if (n == 0) return bad(q, "an empty value in a list", NULL);
    if (mod == SEARCH_MOD_MISSING) {
        if (n == 4 && memcmp(s, "true", 4) == 0)
            v->missing = 1;
        else if (!(n == 5 && memcmp(s, "false", 5) == 0))
            return bad(q, ":missing takes true or false, not ", v->raw);
        return TSG_OK;
    }
    tsg_rc rc = take_prefix(q, p, type, &s, &n, v);
    if (rc != TSG_OK) return rc;
    switch (type) {
    case SEARCH_NUMBER:
        return number_value(q, s, n, v);
    case SEARCH_DATE: {
        char *t = unescape(q, s, n);
        if (!t) return nomem(q);
        if (search_date_range(t, strlen(t), &v->low, &v->high) != TSG_OK)
            return bad(q, "not a date: ", t);
        v->text = t;
        return TSG_OK;
    }
    case SEARCH_QUANTITY:
        return quantity_value(q, s, n, v);
    case SEARCH_STRING:
        v->text = v->raw;
        return fold_value(q, v);
    case SEARCH_URI:
        v->text = v->raw;
        return TSG_OK;
    case SEARCH_TOKEN:
        if (mod == SEARCH_MOD_TEXT) {
            v->text = v->raw;
            return fold_value(q, v);
        }
        if (mod == SEARCH_MOD_OF_TYPE) {
            const char *ps[4];
            size_t pl[4];
            if (split_esc(s, n, '|', ps, pl, 4) != 3 || !pl[1] || !pl[2])
                return bad(q, ":of-type is system|code|value: ", v->raw);
            v->has_system = 1;
            v->system = unescape(q, ps[0], pl[0]);
            v->code = unescape(q, ps[1], pl[1]);
            v->text = unescape(q, ps[2], pl[2]);
            return v->system && v->code && v->text ? TSG_OK : nomem(q);
        }
        return token_value(q, s, n, v);
    case SEARCH_REFERENCE:
        if (mod == SEARCH_MOD_IDENTIFIER) return token_value(q, s, n, v);
        return reference_value(q, type_mod, s, n, v);
    case SEARCH_SPECIAL:
        return near_value(q, s, n, v);
    case SEARCH_COMPOSITE: {
        const char *ps[8];
        size_t pl[8];
        size_t k = split_esc(s, n, '$', ps, pl, 8);
        if (k != p->ncomponents || k > 8)
            return bad(q, "a composite value needs one part per component ($): ", v->raw);
        v->ncomponents = k;
        v->components = tsg_arena_zalloc(q->a, k * sizeof *v->components);
        if (!v->components) return nomem(q);
        for (size_t i = 0; i < k; i++) {
            const search_component *c = &p->components[i];
            search_param cp = {.code = c->code, .type = c->type};
            if (c->type == SEARCH_NUMBER || c->type == SEARCH_DATE || c->type == SEARCH_QUANTITY)
                cp.prefixes = 0x1ffu;
            rc = one_value(q, &cp, c->type, SEARCH_MOD_NONE, NULL, ps[i], pl[i], &v->components[i]);
            if (rc != TSG_OK) return rc;
        }
        return TSG_OK;
    }
    }
    return bad(q, "unsupported type", NULL);
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

static int target_ok(const search_param *p, const char *type)
{
    if (p->ntargets == 0) return 1;
    for (size_t i = 0; i < p->ntargets; i++)
        if (strcmp(p->targets[i], type) == 0) return 1;
    return 0;
}

/* The modifier text m (after ':') for parameter p. */
static tsg_rc modifier_of(qp *q, const search_param *p, const char *m, search_modifier *out,
                          const char **type_mod)
{
    *out = SEARCH_MOD_NONE;
    *type_mod = NULL;
    if (!m) return TSG_OK;
    if (p->type == SEARCH_REFERENCE && model_resource_find(m, strlen(m))) {
        if (!target_ok(p, m)) return bad(q, "not a target type of the reference: ", m);
        *out = SEARCH_MOD_TYPE;
        *type_mod = m;
        return TSG_OK;
    }
    for (int i = SEARCH_MOD_MISSING; i < SEARCH_MOD_TYPE; i++) {
        if (strcmp(search_modifier_name((search_modifier)i), m) == 0) {
            if (!(p->modifiers & (1u << i)))
                return bad(q, "modifier not allowed for this parameter: ", m);
            if (i == SEARCH_MOD_IN || i == SEARCH_MOD_NOT_IN ||
                (p->type == SEARCH_REFERENCE && (i == SEARCH_MOD_ABOVE || i == SEARCH_MOD_BELOW)))
                return bad(q, "modifier not supported: ", m);
            *out = (search_modifier)i;
            return TSG_OK;
        }
    }
    return bad(q, "unknown modifier: ", m);
}

static tsg_rc usable(qp *q, const search_param *p)
{
    if (!p->expr || p->compile_error || (p->type == SEARCH_COMPOSITE && p->ncomponents == 0))
        return bad(q, "not supported by this server", NULL);
    return TSG_OK;
}

/* Splits "code:modifier" (modifier NULL when none). */
static tsg_rc code_mod(qp *q, const char *s, size_t n, char **code, char **mod)
{
    const char *colon = memchr(s, ':', n);
    size_t cl = colon ? (size_t)(colon - s) : n;
    *code = dupn(q, s, cl);
    *mod = colon ? dupn(q, colon + 1, n - cl - 1) : NULL;
    if (!*code || (colon && !*mod)) return nomem(q);
    if (cl == 0) return bad(q, "no parameter name", NULL);
    if (colon && !**mod) return bad(q, "an empty modifier", NULL);
    return TSG_OK;
}

static tsg_rc values_of(qp *q, search_clause *c, const search_param *term, const char *value)
{
    const char *ps[1];
    size_t pl[1];
    size_t n = strlen(value);
    size_t k = split_esc(value, n, ',', ps, pl, 0);
    if (k > 1 && !term->multiple_or) return bad(q, "takes one value, not a list", NULL);
    if (k > 1 && c->modifier == SEARCH_MOD_MISSING) return bad(q, ":missing takes one value", NULL);
    const char **starts = tsg_arena_alloc(q->a, k * sizeof *starts);
    size_t *lens = tsg_arena_alloc(q->a, k * sizeof *lens);
    c->values = tsg_arena_zalloc(q->a, k * sizeof *c->values);
    if (!starts || !lens || !c->values) return nomem(q);
    split_esc(value, n, ',', starts, lens, k);
    c->nvalues = k;
    const char *type_mod = c->modifier == SEARCH_MOD_TYPE ? c->modifier_type : NULL;
    for (size_t i = 0; i < k; i++) {
        tsg_rc rc = one_value(q, term, term->type, c->modifier, type_mod, starts[i], lens[i],
                              &c->values[i]);
        if (rc != TSG_OK) return rc;
    }
    return TSG_OK;
}

/* name "_has:Type:ref:param[:modifier]". */
static tsg_rc has_clause(qp *q, const char *name, const char *value, search_clause *c)
{
    const char *parts[5];
    size_t lens[5];
    size_t k = split_esc(name, strlen(name), ':', parts, lens, 5);
    if (k < 4 || k > 5) return bad(q, "_has is _has:Type:reference:parameter", NULL);
    char *type = dupn(q, parts[1], lens[1]);
    char *ref = dupn(q, parts[2], lens[2]);
    char *code = dupn(q, parts[3], lens[3]);
    char *mod = k == 5 ? dupn(q, parts[4], lens[4]) : NULL;
    if (!type || !ref || !code || (k == 5 && !mod)) return nomem(q);
    if (strcmp(code, "_has") == 0) return bad(q, "nested _has is not supported", NULL);
    if (!model_resource_find(type, strlen(type))) return bad(q, "not a resource type: ", type);
    const search_param *rp = search_param_find(type, ref);
    if (!rp || rp->type != SEARCH_REFERENCE) return bad(q, "not a reference parameter: ", ref);
    if (!target_ok(rp, q->type)) return bad(q, "the reference does not point to ", q->type);
    const search_param *pp = search_param_find(type, code);
    if (!pp) return bad(q, "unknown parameter: ", code);
    tsg_rc rc = usable(q, pp);
    if (rc == TSG_OK) rc = modifier_of(q, pp, mod, &c->modifier, &c->modifier_type);
    if (rc != TSG_OK) return rc;
    c->has_type = type;
    c->has_ref = rp;
    c->has_param = pp;
    return values_of(q, c, pp, value);
}

static tsg_rc clause(qp *q, const char *name, const char *value, search_clause *c)
{
    memset(c, 0, sizeof *c);
    c->name = name;
    if (strncmp(name, "_has:", 5) == 0) return has_clause(q, name, value, c);
    const char *dot = strchr(name, '.');
    size_t hl = dot ? (size_t)(dot - name) : strlen(name);
    char *code, *mod;
    tsg_rc rc = code_mod(q, name, hl, &code, &mod);
    if (rc != TSG_OK) return rc;
    const search_param *p = search_param_find(q->type, code);
    if (!p) return bad(q, "unknown parameter for ", q->type);
    c->param = p;
    if (!dot) {
        rc = usable(q, p);
        if (rc == TSG_OK) rc = modifier_of(q, p, mod, &c->modifier, &c->modifier_type);
        if (rc != TSG_OK) return rc;
        return values_of(q, c, p, value);
    }
    /* chain */
    if (p->type != SEARCH_REFERENCE)
        return bad(q, "only reference parameters can be chained", NULL);
    search_modifier hm;
    const char *chain_type;
    rc = modifier_of(q, p, mod, &hm, &chain_type);
    if (rc != TSG_OK) return rc;
    if (mod && hm != SEARCH_MOD_TYPE) return bad(q, "a chain takes only a :[type] modifier", NULL);
    const char *rest = dot + 1;
    if (strchr(rest, '.')) return bad(q, "chains of more than one level are not supported", NULL);
    char *ccode, *cmod;
    rc = code_mod(q, rest, strlen(rest), &ccode, &cmod);
    if (rc != TSG_OK) return rc;
    const search_param *cp = NULL;
    if (chain_type) {
        cp = search_param_find(chain_type, ccode);
    } else {
        size_t found = 0;
        for (size_t i = 0; i < p->ntargets; i++) {
            const search_param *t = search_param_find(p->targets[i], ccode);
            if (t) {
                if (!cp) {
                    cp = t;
                    chain_type = p->targets[i];
                }
                found++;
            }
        }
        if (found > 1) chain_type = NULL;
    }
    if (!cp) return bad(q, "no target of the reference has the parameter ", ccode);
    rc = usable(q, cp);
    if (rc == TSG_OK) rc = modifier_of(q, cp, cmod, &c->modifier, &c->modifier_type);
    if (rc != TSG_OK) return rc;
    c->chain_type = chain_type;
    c->chain_param = cp;
    return values_of(q, c, cp, value);
}

/* ------------------------------------------------------------------------
 * Result parameters
 * ------------------------------------------------------------------------ */

static tsg_rc sort_param(qp *q, const char *value, search_query *out)
{
    const char *ps[1];
    size_t pl[1];
    size_t n = strlen(value);
    size_t k = split_esc(value, n, ',', ps, pl, 0);
    const char **starts = tsg_arena_alloc(q->a, k * sizeof *starts);
    size_t *lens = tsg_arena_alloc(q->a, k * sizeof *lens);
    search_sort *s = tsg_arena_zalloc(q->a, k * sizeof *s);
    if (!starts || !lens || !s) return nomem(q);
    split_esc(value, n, ',', starts, lens, k);
    for (size_t i = 0; i < k; i++) {
        const char *t = starts[i];
        size_t l = lens[i];
        if (l && t[0] == '-') {
            s[i].descending = 1;
            t++;
            l--;
        }
        char *code = dupn(q, t, l);
        if (!code) return nomem(q);
        s[i].param = search_param_find(q->type, code);
        if (!s[i].param) return bad(q, "unknown sort parameter: ", code);
        if (s[i].param->type == SEARCH_COMPOSITE || s[i].param->type == SEARCH_SPECIAL ||
            !s[i].param->expr)
            return bad(q, "cannot sort by ", code);
    }
    out->sort = s;
    out->nsort = k;
    return TSG_OK;
}

static tsg_rc include_param(qp *q, int reverse, const char *mod, const char *value,
                            search_query *out)
{
    search_include inc = {.reverse = reverse};
    if (mod) {
        if (strcmp(mod, "iterate") != 0 && strcmp(mod, "recurse") != 0)
            return bad(q, "unknown modifier: ", mod);
        inc.iterate = 1;
    }
    const char *ps[4];
    size_t pl[4];
    size_t k = split_esc(value, strlen(value), ':', ps, pl, 4);
    if (k == 1 && pl[0] == 1 && ps[0][0] == '*') {
        inc.source_type = reverse ? NULL : q->type;
    } else {
        if (k < 2 || k > 3) return bad(q, "is Type:parameter[:target], not ", value);
        char *src = dupn(q, ps[0], pl[0]);
        char *code = dupn(q, ps[1], pl[1]);
        char *tgt = k == 3 ? dupn(q, ps[2], pl[2]) : NULL;
        if (!src || !code || (k == 3 && !tgt)) return nomem(q);
        if (!model_resource_find(src, strlen(src))) return bad(q, "not a resource type: ", src);
        if (!reverse && !inc.iterate && strcmp(src, q->type) != 0)
            return bad(q, "the source type must be the searched type: ", src);
        inc.source_type = src;
        if (strcmp(code, "*") != 0) {
            inc.param = search_param_find(src, code);
            if (!inc.param || inc.param->type != SEARCH_REFERENCE)
                return bad(q, "not a reference parameter: ", code);
        }
        if (tgt) {
            if (!model_resource_find(tgt, strlen(tgt)) || (inc.param && !target_ok(inc.param, tgt)))
                return bad(q, "not a target type: ", tgt);
            inc.target_type = tgt;
        }
        if (reverse && inc.param && !inc.iterate && !target_ok(inc.param, q->type))
            return bad(q, "the reference does not point to ", q->type);
    }
    search_include *grown = tsg_arena_alloc(q->a, (out->ninclude + 1) * sizeof *grown);
    if (!grown) return nomem(q);
    if (out->ninclude) memcpy(grown, out->include, out->ninclude * sizeof *grown);
    grown[out->ninclude++] = inc;
    out->include = grown;
    return TSG_OK;
}

static tsg_rc result_param(qp *q, const char *name, const char *value, search_query *out,
                           int *handled)
{
    *handled = 1;
    if (strcmp(name, "_sort") == 0) return sort_param(q, value, out);
    if (strcmp(name, "_count") == 0) {
        size_t n = strlen(value);
        if (n == 0 || n > 9 || strspn(value, "0123456789") != n)
            return bad(q, "not a non-negative integer: ", value);
        long v = strtol(value, NULL, 10);
        out->count = v > SEARCH_COUNT_MAX ? SEARCH_COUNT_MAX : v;
        return TSG_OK;
    }
    if (strcmp(name, "_total") == 0) {
        if (strcmp(value, "none") == 0)
            out->total = SEARCH_TOTAL_NONE;
        else if (strcmp(value, "estimate") == 0)
            out->total = SEARCH_TOTAL_ESTIMATE;
        else if (strcmp(value, "accurate") == 0)
            out->total = SEARCH_TOTAL_ACCURATE;
        else
            return bad(q, "is none, estimate or accurate, not ", value);
        return TSG_OK;
    }
    if (strncmp(name, "_include", 8) == 0 && (name[8] == '\0' || name[8] == ':'))
        return include_param(q, 0, name[8] ? name + 9 : NULL, value, out);
    if (strncmp(name, "_revinclude", 11) == 0 && (name[11] == '\0' || name[11] == ':'))
        return include_param(q, 1, name[11] ? name + 12 : NULL, value, out);
    const char **slot = strcmp(name, "_summary") == 0    ? &out->summary
                        : strcmp(name, "_elements") == 0 ? &out->elements
                        : strcmp(name, "_format") == 0   ? &out->format
                        : strcmp(name, "_pretty") == 0   ? &out->pretty
                                                         : NULL;
    if (slot) {
        *slot = value;
        return TSG_OK;
    }
    *handled = 0;
    return TSG_OK;
}

static tsg_rc ignore(qp *q, search_query *out, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    char *both = tsg_arena_alloc(q->a, nl + vl + 2);
    const char *why = dupn(q, q->err ? q->err->message : "", q->err ? strlen(q->err->message) : 0);
    const char **l1 = tsg_arena_alloc(q->a, (out->nignored + 1) * sizeof *l1);
    const char **l2 = tsg_arena_alloc(q->a, (out->nignored + 1) * sizeof *l2);
    if (!both || !why || !l1 || !l2) return nomem(q);
    memcpy(both, name, nl);
    both[nl] = '=';
    memcpy(both + nl + 1, value, vl + 1);
    if (out->nignored) {
        memcpy(l1, out->ignored, out->nignored * sizeof *l1);
        memcpy(l2, out->ignored_why, out->nignored * sizeof *l2);
    }
    l1[out->nignored] = both;
    l2[out->nignored] = why;
    out->nignored++;
    out->ignored = l1;
    out->ignored_why = l2;
    return TSG_OK;
}

tsg_rc search_query_parse(const char *type, size_t nparams, const char *const *names,
                          const char *const *values, int lenient, tsg_arena *a, search_query **out,
                          tsg_error *err)
{
    *out = NULL;
    tsg_error local;
    if (!err) err = &local;
    tsg_error_clear(err);
    if (!type || !model_resource_find(type, strlen(type)))
        return tsg_error_set(err, TSG_EINVAL, "not-supported", "unknown resource type '%s'",
                             type ? type : "");
    qp q = {.a = a, .type = type, .err = err};
    search_query *sq = tsg_arena_zalloc(a, sizeof *sq);
    search_clause *cl = tsg_arena_zalloc(a, (nparams ? nparams : 1) * sizeof *cl);
    if (!sq || !cl) return nomem(&q);
    sq->type = type;
    sq->count = -1;
    sq->clauses = cl;
    for (size_t i = 0; i < nparams; i++) {
        const char *name = names[i] ? names[i] : "";
        const char *value = values[i] ? values[i] : "";
        q.name = name;
        int handled = 0;
        tsg_rc rc = result_param(&q, name, value, sq, &handled);
        if (rc == TSG_OK && !handled) {
            if (value[0] == '\0') continue; /* R4: an empty value is ignored */
            rc = clause(&q, name, value, &cl[sq->nclauses]);
            if (rc == TSG_OK) sq->nclauses++;
        }
        if (rc == TSG_OK) continue;
        if (rc != TSG_EINVAL || !lenient) return rc;
        rc = ignore(&q, sq, name, value);
        if (rc != TSG_OK) return rc;
        tsg_error_clear(err);
    }
    *out = sq;
    return TSG_OK;
}
