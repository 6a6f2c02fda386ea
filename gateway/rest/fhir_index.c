/*
 * fhir_index.c — search values of a resource turned into Redis index entries,
 * and the resource's patient compartment.
 *
 * ## Index keys (prefix tsg:ix:<Type>:<code>:)
 *
 *   token       t:<system>|<code>  SET of ids   (system "" when the value has none)
 *               sys                SET of the systems seen (""  for none), never
 *                                  pruned: `code` without a system is the union of
 *                                  t:<system>|<code> over them (a per-resource
 *                                  c:<code> set cost a fifth of the index writes)
 *   token text  x                  (entry list only) "<folded>\0<id>": :text is
 *                                  rare, and a lex zset entry per display text cost
 *                                  a third of a Synthea ingest's index time;
 *                                  search scans the lists for it
 *   of-type     o:<sys>|<code>|<value>  SET of ids
 *   string      s                  LEX  "<folded>\0<id>"   (starts-with / contains)
 *               e:<raw>            SET of ids   (:exact)
 *   date        dl / dh            SCORE "<id>\0<n>" by range low / high (ms)
 *   number      n                  SCORE "<id>\0<n>" by value
 *   quantity    qn                 SCORE by value (any unit)
 *               q:<system>|<code>  SCORE by value in that unit
 *               qc:<canonical>     SCORE by value in the canonical UCUM unit
 *   reference   r:<Type/id or URL> SET of ids
 *               ri:<sys>|<value>   SET of ids   (:identifier)
 *   uri         u:<uri>            SET of ids
 *               ul                 LEX  "<uri>\0<id>" (:above / :below)
 *
 *   near        g                  GEO  "<id>\0<n>" at Location.position (GEOSEARCH)
 *
 * `system|` (any code of a system) has no set of its own: search scans the
 * entry lists for the system's `t:` keys.
 *
 * The "\0<n>" suffix makes the member unique per value, so a resource with two
 * dates keeps two ranges. `:missing` has no index of its own (it would cost a
 * write per parameter of every resource): search scans the resources'
 * index-entry lists for the parameter's key prefix instead (fhir_search.c).
 */
#include "rest_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct ix_builder {
    tsg_arena *a;
    const char *type, *id;
    store_index_entry *e;
    size_t n, cap;
    unsigned seq; /* member suffix counter */
    tsg_rc rc;
} ix_builder;

/* Appends an entry; key = "tsg:ix:<type>:<code>:" + k1 + k2 (k2 may be NULL). */
static void add(ix_builder *b, store_index_kind kind, const char *code, const char *k1,
                const char *k2, const char *member, size_t member_len, double score)
{
    if (b->rc) return;
    if (b->n == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 64;
        store_index_entry *ne = tsg_arena_alloc(b->a, nc * sizeof *ne);
        if (!ne) {
            b->rc = TSG_ENOMEM;
            return;
        }
        if (b->n) memcpy(ne, b->e, b->n * sizeof *ne);
        b->e = ne;
        b->cap = nc;
    }
    /* concatenated by hand: snprintf here was a tenth of a Bundle ingest */
    size_t tl = strlen(b->type), cl = strlen(code), l1 = strlen(k1), l2 = k2 ? strlen(k2) : 0;
    size_t len = 7 + tl + 1 + cl + 1 + l1 + l2;
    char *key = tsg_arena_alloc(b->a, len + 1);
    if (!key) {
        b->rc = TSG_ENOMEM;
        return;
    }
    char *p = key;
    memcpy(p, "tsg:ix:", 7);
    p += 7;
    memcpy(p, b->type, tl);
    p += tl;
    *p++ = ':';
    memcpy(p, code, cl);
    p += cl;
    *p++ = ':';
    memcpy(p, k1, l1);
    p += l1;
    if (l2) memcpy(p, k2, l2);
    p[l2] = 0;
    b->e[b->n++] = (store_index_entry){kind, key, len, member, member_len, score, 0};
}

/* "<text>\0<id>" in the arena (a LEX member). */
static const char *lex_member(ix_builder *b, const char *text, size_t *len)
{
    size_t tl = strlen(text), il = strlen(b->id);
    char *m = tsg_arena_alloc(b->a, tl + 1 + il + 1);
    if (!m) {
        b->rc = TSG_ENOMEM;
        return "";
    }
    memcpy(m, text, tl);
    m[tl] = 0;
    memcpy(m + tl + 1, b->id, il + 1);
    *len = tl + 1 + il;
    return m;
}

/* "<id>\0<n>" in the arena (a SCORE member unique per value). */
static const char *seq_member(ix_builder *b, size_t *len)
{
    size_t il = strlen(b->id);
    char *m = tsg_arena_alloc(b->a, il + 16);
    if (!m) {
        b->rc = TSG_ENOMEM;
        return "";
    }
    memcpy(m, b->id, il);
    m[il] = 0;
    *len = il + 1 + tsg_fmt_ll(m + il + 1, (long long)b->seq++);
    return m;
}

static void add_set(ix_builder *b, const char *code, const char *k1, const char *k2)
{
    add(b, STORE_IX_SET, code, k1, k2, b->id, strlen(b->id), 0);
}

/* k1 + a + "|" + c as one key part. */
static const char *pair(ix_builder *b, const char *x, const char *y)
{
    size_t xl = strlen(x), yl = strlen(y);
    char *s = tsg_arena_alloc(b->a, xl + yl + 2);
    if (!s) {
        b->rc = TSG_ENOMEM;
        return "";
    }
    memcpy(s, x, xl);
    s[xl] = '|';
    memcpy(s + xl + 1, y, yl + 1);
    return s;
}

static void index_entry(ix_builder *b, const search_entry *e)
{
    const char *code = e->param->code;
    size_t ml = 0;
    const char *m;
    switch (e->kind) {
    case SEARCH_ENTRY_TOKEN:
        if (!e->code) break;
        add_set(b, code, "t:", pair(b, e->system ? e->system : "", e->code));
        /* the parameter's systems (a directory, not per resource): code-only
         * searches read t:<system>|<code> of each */
        add(b, STORE_IX_DIR, code, "sys", NULL, e->system ? e->system : "",
            e->system ? strlen(e->system) : 0, 0);
        break;
    case SEARCH_ENTRY_TOKEN_TEXT:
        if (!e->folded) break;
        m = lex_member(b, e->folded, &ml);
        add(b, STORE_IX_LIST, code, "x", NULL, m, ml, 0);
        break;
    case SEARCH_ENTRY_OF_TYPE:
        if (!e->code || !e->text) break;
        add_set(b, code, "o:", pair(b, pair(b, e->system ? e->system : "", e->code), e->text));
        break;
    case SEARCH_ENTRY_STRING:
        if (e->folded) {
            m = lex_member(b, e->folded, &ml);
            add(b, STORE_IX_LEX, code, "s", NULL, m, ml, 0);
        }
        if (e->text) add_set(b, code, "e:", e->text);
        break;
    case SEARCH_ENTRY_DATE:
        m = seq_member(b, &ml);
        add(b, STORE_IX_SCORE, code, "dl", NULL, m, ml, (double)e->low);
        add(b, STORE_IX_SCORE, code, "dh", NULL, m, ml, (double)e->high);
        break;
    case SEARCH_ENTRY_NUMBER:
        m = seq_member(b, &ml);
        add(b, STORE_IX_SCORE, code, "n", NULL, m, ml, e->number);
        break;
    case SEARCH_ENTRY_QUANTITY:
        m = seq_member(b, &ml);
        add(b, STORE_IX_SCORE, code, "qn", NULL, m, ml, e->number);
        if (e->code) {
            add(b, STORE_IX_SCORE, code, "q:", pair(b, e->system ? e->system : "", e->code), m, ml,
                e->number);
        }
        if (e->canonical_unit)
            add(b, STORE_IX_SCORE, code, "qc:", e->canonical_unit, m, ml, e->canonical_number);
        break;
    case SEARCH_ENTRY_REFERENCE:
        if (e->text) add_set(b, code, "r:", e->text);
        break;
    case SEARCH_ENTRY_REF_IDENTIFIER:
        if (e->code) add_set(b, code, "ri:", pair(b, e->system ? e->system : "", e->code));
        break;
    case SEARCH_ENTRY_URI:
        if (!e->text) break;
        add_set(b, code, "u:", e->text);
        m = lex_member(b, e->text, &ml);
        add(b, STORE_IX_LEX, code, "ul", NULL, m, ml, 0);
        break;
    case SEARCH_ENTRY_NEAR:
        /* Redis' geo index covers latitudes within ±85.05112878 */
        if (e->number < -85.05112878 || e->number > 85.05112878 || e->canonical_number < -180 ||
            e->canonical_number > 180)
            break;
        m = seq_member(b, &ml);
        add(b, STORE_IX_GEO, code, "g", NULL, m, ml, e->canonical_number);
        if (!b->rc && b->n) b->e[b->n - 1].score2 = e->number;
        break;
    }
}

/* Types R4's Patient CompartmentDefinition leaves out although they name their
 * patient: the access rule (rest_internal.h, "Access") keeps them in that
 * patient's compartment. Binary's patient is its securityContext's (rest_index). */
const rest_compartment_rule rest_patient_compartment_local[] = {
    {"Binary", {NULL}}, {"Device", {"patient", NULL}}, {NULL, {NULL}}};

/* The compartment rule of a type, or NULL. */
static const rest_compartment_rule *rule_of(const char *type)
{
    for (const rest_compartment_rule *r = rest_patient_compartment; r->type; r++)
        if (!strcmp(r->type, type)) return r;
    for (const rest_compartment_rule *r = rest_patient_compartment_local; r->type; r++)
        if (!strcmp(r->type, type)) return r;
    return NULL;
}

/* The child node `name` of n, or NULL. */
static const fhir_node *kid(const fhir_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->nkids; i++)
        if (!strcmp(n->kids[i].elem->name, name)) return &n->kids[i];
    return NULL;
}

tsg_rc rest_index(tsg_arena *a, const fhir_node *root, const char *id, store_index_entry **out,
                  size_t *n, const char **compartment, tsg_error *err)
{
    *out = NULL;
    *n = 0;
    *compartment = NULL;
    search_entry *se = NULL;
    size_t ns = 0;
    tsg_rc rc = search_extract(root, a, &se, &ns, err);
    if (rc) return rc;
    const char *type = root->type->name;
    ix_builder b = {.a = a, .type = type, .id = id};
    const rest_compartment_rule *rule = rule_of(type);
    if (!strcmp(type, "Patient")) *compartment = id;
    if (!strcmp(type, "Binary")) { /* securityContext: Patient/<id> here; another resource's
                                      patient is looked up by rest_binary_context() */
        const fhir_node *sc = kid(root, "securityContext");
        const char *ref = sc ? rest_child_value(sc, "reference") : NULL;
        if (ref && !strncmp(ref, "Patient/", 8) && rest_id_valid(ref + 8)) *compartment = ref + 8;
    }
    for (size_t i = 0; i < ns && !b.rc; i++) {
        const search_entry *e = &se[i];
        if (!e->param || !e->param->code) continue;
        /* _id and _lastUpdated are answered from the resource keys and the
         * type's tsg:t:<Type> zset (scored by lastUpdated), not an index */
        if (!strcmp(e->param->code, "_id") || !strcmp(e->param->code, "_lastUpdated")) continue;
        /* an alias's values are its parts' (search.h): not written twice */
        if (e->param->nalias) continue;
        index_entry(&b, e);
        if (!*compartment && rule && e->kind == SEARCH_ENTRY_REFERENCE && e->text &&
            !strncmp(e->text, "Patient/", 8) && rest_id_valid(e->text + 8)) {
            for (int k = 0; k < 4 && rule->params[k]; k++)
                if (!strcmp(rule->params[k], e->param->code)) {
                    *compartment = e->text + 8;
                    break;
                }
        }
    }
    if (b.rc) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    *out = b.e;
    *n = b.n;
    return TSG_OK;
}
