/*
 * profile.c — the profile registry and the StructureDefinition compiler (see
 * profile.h, "Compilation"; the compiled form is profile_internal.h).
 *
 * Compiling one definition:
 *   1. layers: the element lists that make up its snapshot, oldest first —
 *      its own snapshot alone when it has one, else the layers of its base
 *      definition (none for an R4 type) followed by its differential;
 *   2. the build tree: each element of each layer is placed by its id
 *      (`Observation.category:vs.coding`), a node remembering every layer
 *      that spoke about it; a property's effective value is the last
 *      layer's (constraints: all of them);
 *   3. compiled elements: each node is matched to its model_elem and
 *      compared with it, keeping what the profile adds;
 *   4. the flat table: the kept elements laid out with each element's
 *      children and slices in contiguous ranges.
 * The build tree lives in a scratch arena freed after each definition; the
 * table in the registry's arena. Slice keys, type profiles and target types
 * are resolved in a last pass over all profiles, when every URL is known.
 */
#include "profile_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PF_MAX_BASE_CHAIN 16u /* base definitions followed from one profile */
#define PF_MAX_VS_DEPTH   8u  /* ValueSet includes followed */

enum { RES_SD, RES_VS, RES_CS };
enum { ST_NEW, ST_BUSY, ST_DONE, ST_FAILED, ST_SKIPPED };

typedef struct pf_res {
    json_t *j;
    int kind;
    const char *url, *version, *origin;
    int state;
    profile *prof;
} pf_res;

typedef struct type_cfg {
    const char *type;
    const char **urls;
    size_t n;
} type_cfg;

struct profile_registry {
    tsg_arena *arena;
    int compiled;
    pf_res *res;
    size_t nres, capres;
    const profile **index; /* compiled profiles sorted by url */
    size_t nindex;
    pf_valueset **vsets;
    size_t nvsets, capvsets;
    json_t *owned; /* JSON values made by the compiler (slice keys), kept alive */
    type_cfg *cfg;
    size_t ncfg;
    profile_registry_stats stats;
    validate_issue_fn report;
    void *report_ctx;
};

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static char *adup(tsg_arena *a, const char *s)
{
    return s ? tsg_arena_strndup(a, s, strlen(s)) : NULL;
}

static void note(profile_registry *r, validate_severity sev, const char *where, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
static void note(profile_registry *r, validate_severity sev, const char *where, const char *fmt,
                 ...)
{
    if (!r->report) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->report(r->report_ctx, sev, sev <= VALIDATE_ERROR ? "structure" : "informational", where,
              msg);
}

/* ------------------------------------------------------------------------
 * The registry
 * ------------------------------------------------------------------------ */

profile_registry *profile_registry_new(void)
{
    profile_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->arena = tsg_arena_new(0);
    r->owned = json_array();
    if (!r->arena || !r->owned) {
        tsg_arena_free(r->arena);
        json_decref(r->owned);
        free(r);
        return NULL;
    }
    return r;
}

void profile_registry_free(profile_registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nres; i++) json_decref(r->res[i].j);
    for (size_t i = 0; i < r->nres; i++) {
        profile *p = r->res[i].prof;
        if (!p) continue;
        for (uint32_t e = 0; e < p->nelems; e++) {
            pf_elem *pe = &p->elems[e];
            for (uint16_t c = 0; c < pe->ncons; c++) fp_expr_free(pe->cons[c].expr);
            for (uint16_t d = 0; d < pe->ndisc; d++) fp_expr_free(pe->disc[d].expr);
        }
    }
    json_decref(r->owned);
    free(r->res);
    free(r->index);
    free(r->vsets);
    free(r->cfg);
    tsg_arena_free(r->arena);
    free(r);
}

static pf_res *find_res(const profile_registry *r, int kind, const char *url)
{
    const char *bar = strchr(url, '|');
    size_t ul = bar ? (size_t)(bar - url) : strlen(url);
    for (size_t i = 0; i < r->nres; i++) {
        pf_res *x = &r->res[i];
        if (x->kind != kind || strlen(x->url) != ul || strncmp(x->url, url, ul) != 0) continue;
        if (bar && (!x->version || strcmp(x->version, bar + 1) != 0)) continue;
        return x;
    }
    return NULL;
}

/* Adds resource j (the registry takes the reference). */
static tsg_rc add_resource(profile_registry *r, json_t *j, const char *origin, tsg_error *err)
{
    const char *rt = jstr(j, "resourceType");
    int kind = -1;
    if (rt && strcmp(rt, "StructureDefinition") == 0) kind = RES_SD;
    if (rt && strcmp(rt, "ValueSet") == 0) kind = RES_VS;
    if (rt && strcmp(rt, "CodeSystem") == 0) kind = RES_CS;
    const char *url = jstr(j, "url");
    if (kind < 0 || !url || !*url) {
        json_decref(j);
        if (!rt)
            return tsg_error_set(err, TSG_EINVAL, "structure",
                                 "%s: not a FHIR resource (no resourceType)", origin);
        r->stats.skipped++;
        return TSG_OK;
    }
    const char *ver = jstr(j, "version");
    char key[2048];
    snprintf(key, sizeof key, "%s%s%s", url, ver ? "|" : "", ver ? ver : "");
    if (find_res(r, kind, key)) {
        r->stats.duplicates++;
        json_decref(j);
        return TSG_OK;
    }
    if (r->nres == r->capres) {
        size_t nc = r->capres ? r->capres * 2 : 256;
        pf_res *nr = realloc(r->res, nc * sizeof *nr);
        if (!nr) {
            json_decref(j);
            return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        }
        r->res = nr;
        r->capres = nc;
    }
    pf_res *x = &r->res[r->nres];
    memset(x, 0, sizeof *x);
    x->j = j;
    x->kind = kind;
    x->url = url;
    x->version = ver;
    x->origin = adup(r->arena, origin);
    if (!x->origin) {
        json_decref(j);
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    r->nres++;
    if (kind == RES_SD) r->stats.structure_definitions++;
    if (kind == RES_VS) r->stats.value_sets++;
    if (kind == RES_CS) r->stats.code_systems++;
    return TSG_OK;
}

tsg_rc profile_registry_add_json(profile_registry *r, const char *text, size_t len,
                                 const char *origin, tsg_error *err)
{
    if (r->compiled)
        return tsg_error_set(err, TSG_EINVAL, "exception",
                             "%s: the registry is compiled; load before compiling", origin);
    if (len > PACKAGE_MAX_ENTRY_BYTES)
        return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                             "%s: larger than PACKAGE_MAX_ENTRY_BYTES (%u)", origin,
                             PACKAGE_MAX_ENTRY_BYTES);
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return tsg_error_set(err, TSG_EINVAL, "structure", "%s:%d:%d: not valid JSON: %s", origin,
                             je.line, je.column, je.text);
    const char *rt = jstr(j, "resourceType");
    if (!rt || strcmp(rt, "Bundle") != 0) return add_resource(r, j, origin, err);
    /* a Bundle of definitions (the R4 distribution's extension-definitions.json,
     * profiles-others.json, valuesets.json): each entry's resource */
    tsg_rc rc = TSG_OK;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "entry"), i, e)
    {
        json_t *res = json_object_get(e, "resource");
        if (!json_is_object(res)) continue;
        char where[1024];
        snprintf(where, sizeof where, "%s: entry %zu", origin, i);
        rc = add_resource(r, json_incref(res), where, err);
        if (rc != TSG_OK) break;
    }
    json_decref(j);
    return rc;
}

tsg_rc profile_registry_set_type_profile(profile_registry *r, const char *type, const char *url,
                                         tsg_error *err)
{
    const model_type *t = model_resource_find(type, strlen(type));
    if (!t) return tsg_error_set(err, TSG_EINVAL, "value", "'%s' is not an R4 resource type", type);
    type_cfg *c = NULL;
    for (size_t i = 0; i < r->ncfg; i++)
        if (strcmp(r->cfg[i].type, t->name) == 0) c = &r->cfg[i];
    if (!c) {
        type_cfg *nc = realloc(r->cfg, (r->ncfg + 1) * sizeof *nc);
        if (!nc) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        r->cfg = nc;
        c = &r->cfg[r->ncfg++];
        c->type = t->name;
        c->urls = NULL;
        c->n = 0;
    }
    const char **nu = tsg_arena_alloc(r->arena, (c->n + 1) * sizeof *nu);
    char *u = adup(r->arena, url);
    if (!nu || !u) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    if (c->n) memcpy(nu, c->urls, c->n * sizeof *nu);
    nu[c->n++] = u;
    c->urls = nu;
    return TSG_OK;
}

size_t profile_registry_type_profiles(const profile_registry *r, const char *type,
                                      const char *const **urls)
{
    for (size_t i = 0; i < r->ncfg; i++)
        if (strcmp(r->cfg[i].type, type) == 0) {
            *urls = r->cfg[i].urls;
            return r->cfg[i].n;
        }
    *urls = NULL;
    return 0;
}

void profile_registry_stats_get(const profile_registry *r, profile_registry_stats *s)
{
    *s = r->stats;
}

const char *profile_url(const profile *p)
{
    return p->url;
}

const char *profile_type(const profile *p)
{
    return p->type;
}

static int cmp_prof(const void *a, const void *b)
{
    const profile *x = *(const profile *const *)a, *y = *(const profile *const *)b;
    return strcmp(x->url, y->url);
}

const profile *profile_lookup(const profile_registry *r, const char *url)
{
    if (!r || !url) return NULL;
    const char *bar = strchr(url, '|');
    size_t ul = bar ? (size_t)(bar - url) : strlen(url);
    size_t lo = 0, hi = r->nindex;
    while (lo < hi) { /* first url >= the key */
        size_t mid = (lo + hi) / 2;
        int c = strncmp(r->index[mid]->url, url, ul);
        if (c == 0 && r->index[mid]->url[ul] != '\0') c = 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < r->nindex; lo++) {
        const profile *p = r->index[lo];
        if (strncmp(p->url, url, ul) != 0 || p->url[ul] != '\0') break;
        if (!bar || (p->version && strcmp(p->version, bar + 1) == 0)) return p;
    }
    return NULL;
}

const profile *profile_registry_find(const profile_registry *r, const char *url)
{
    return profile_lookup(r, url);
}

/* ------------------------------------------------------------------------
 * Value sets
 * ------------------------------------------------------------------------ */

typedef struct code_list {
    model_code *a;
    size_t n, cap;
    const char *incomplete;
} code_list;

static int code_add(profile_registry *r, code_list *l, const char *system, const char *code)
{
    if (!code) return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        model_code *na = tsg_arena_alloc(r->arena, nc * sizeof *na);
        if (!na) return -1;
        if (l->n) memcpy(na, l->a, l->n * sizeof *na);
        l->a = na;
        l->cap = nc;
    }
    l->a[l->n].system = system ? adup(r->arena, system) : NULL;
    l->a[l->n].code = adup(r->arena, code);
    l->n++;
    return 0;
}

static int cs_concepts(profile_registry *r, code_list *l, const char *system, const json_t *arr,
                       unsigned depth)
{
    size_t i;
    const json_t *c;
    if (depth > 32) return 0;
    json_array_foreach(arr, i, c)
    {
        if (code_add(r, l, system, jstr(c, "code")) < 0) return -1;
        if (cs_concepts(r, l, system, json_object_get(c, "concept"), depth + 1) < 0) return -1;
    }
    return 0;
}

static int vs_collect(profile_registry *r, code_list *l, const char *url, unsigned depth)
{
    if (depth > PF_MAX_VS_DEPTH) {
        l->incomplete = "value set includes nest too deep";
        return 0;
    }
    const model_valueset *mv = model_valueset_find(url);
    if (mv) {
        if (mv->unavailable) l->incomplete = mv->unavailable;
        for (uint32_t i = 0; i < mv->ncodes; i++)
            if (code_add(r, l, mv->codes[i].system, mv->codes[i].code) < 0) return -1;
        return 0;
    }
    pf_res *vs = find_res(r, RES_VS, url);
    if (!vs) {
        l->incomplete = "an included value set is not loaded";
        return 0;
    }
    const json_t *compose = json_object_get(vs->j, "compose");
    const json_t *inc = json_object_get(compose, "include");
    if (json_object_get(compose, "exclude")) l->incomplete = "the value set has excludes";
    size_t i;
    const json_t *x;
    json_array_foreach(inc, i, x)
    {
        const char *sys = jstr(x, "system");
        const json_t *vsl = json_object_get(x, "valueSet");
        size_t k;
        const json_t *v;
        json_array_foreach(vsl, k, v)
        {
            if (json_is_string(v) && vs_collect(r, l, json_string_value(v), depth + 1) < 0)
                return -1;
        }
        const json_t *concepts = json_object_get(x, "concept");
        if (json_array_size(concepts)) {
            json_array_foreach(concepts, k, v)
            {
                if (code_add(r, l, sys, jstr(v, "code")) < 0) return -1;
            }
        } else if (json_object_get(x, "filter")) {
            l->incomplete = "the value set selects codes with filters";
        } else if (sys) {
            pf_res *cs = find_res(r, RES_CS, sys);
            const char *content = cs ? jstr(cs->j, "content") : NULL;
            if (!cs || !content || strcmp(content, "complete") != 0) {
                l->incomplete = "a code system it includes is not loaded";
            } else if (cs_concepts(r, l, sys, json_object_get(cs->j, "concept"), 0) < 0) {
                return -1;
            }
        }
    }
    const json_t *contains = json_object_get(json_object_get(vs->j, "expansion"), "contains");
    if (!inc && contains) {
        json_array_foreach(contains, i, x)
        {
            if (code_add(r, l, jstr(x, "system"), jstr(x, "code")) < 0) return -1;
        }
    }
    return 0;
}

static int cmp_code(const void *a, const void *b)
{
    const model_code *x = a, *y = b;
    int c = strcmp(x->code, y->code);
    if (c) return c;
    if (!x->system || !y->system) return (x->system != NULL) - (y->system != NULL);
    return strcmp(x->system, y->system);
}

/* The value set url resolved (cached), or NULL when neither the model nor a
 * loaded package has it. */
static const pf_valueset *vs_resolve(profile_registry *r, const char *url)
{
    if (!url) return NULL;
    for (size_t i = 0; i < r->nvsets; i++)
        if (strcmp(r->vsets[i]->url, url) == 0) return r->vsets[i];
    const model_valueset *mv = model_valueset_find(url);
    if (!mv && !find_res(r, RES_VS, url)) return NULL;
    pf_valueset *v = tsg_arena_zalloc(r->arena, sizeof *v);
    if (!v) return NULL;
    v->url = adup(r->arena, url);
    if (mv) {
        v->model = mv;
        v->incomplete = mv->unavailable;
    } else {
        code_list l = {0};
        if (vs_collect(r, &l, url, 0) < 0) return NULL;
        if (l.n) qsort(l.a, l.n, sizeof *l.a, cmp_code);
        v->codes = l.a;
        v->ncodes = l.n;
        v->incomplete = l.incomplete;
    }
    if (r->nvsets == r->capvsets) {
        size_t nc = r->capvsets ? r->capvsets * 2 : 64;
        pf_valueset **nv = realloc(r->vsets, nc * sizeof *nv);
        if (!nv) return NULL;
        r->vsets = nv;
        r->capvsets = nc;
    }
    r->vsets[r->nvsets++] = v;
    return v;
}

/* ------------------------------------------------------------------------
 * The build tree
 * ------------------------------------------------------------------------ */

typedef struct bnode bnode;
struct bnode {
    const char *seg;   /* "category", "value[x]", "valueQuantity" */
    const char *slice; /* slice name or NULL */
    const char *id;
    const json_t **defs; /* the layers' element definitions, oldest first */
    size_t ndefs, capdefs;
    bnode **kids, **slices;
    size_t nkids, capkids, nslices, capslices;
};

#define PF_MAX_OPEN_SLICES 32u /* slices open at once while placing id-less elements */

typedef struct open_slice {
    const char *path; /* "Patient.identifier" */
    const char *id;   /* "Patient.identifier:a" (with its own context) */
} open_slice;

typedef struct build {
    profile_registry *r;
    tsg_arena *tmp;
    const char *url; /* the definition being compiled (messages) */
    int oom;
    /* element lists without ids: the slices the following elements belong to
     * (an element list is in order: a slice's children follow it) */
    open_slice open[PF_MAX_OPEN_SLICES];
    size_t nopen;
} build;

static int vec_push(tsg_arena *a, void ***v, size_t *n, size_t *cap, void *x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        void **nv = tsg_arena_alloc(a, nc * sizeof *nv);
        if (!nv) return -1;
        if (*n) memcpy(nv, *v, *n * sizeof *nv);
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return 0;
}

static bnode *bnode_new(build *b, const char *seg, size_t segn, const char *slice, size_t slicen)
{
    bnode *n = tsg_arena_zalloc(b->tmp, sizeof *n);
    if (!n) return NULL;
    n->seg = tsg_arena_strndup(b->tmp, seg, segn);
    n->slice = slice ? tsg_arena_strndup(b->tmp, slice, slicen) : NULL;
    if (!n->seg || (slice && !n->slice)) return NULL;
    return n;
}

static bnode *bnode_child(build *b, bnode *p, const char *seg, size_t segn)
{
    for (size_t i = 0; i < p->nkids; i++)
        if (strlen(p->kids[i]->seg) == segn && strncmp(p->kids[i]->seg, seg, segn) == 0)
            return p->kids[i];
    bnode *n = bnode_new(b, seg, segn, NULL, 0);
    if (!n || vec_push(b->tmp, (void ***)&p->kids, &p->nkids, &p->capkids, n) < 0) return NULL;
    return n;
}

static bnode *bnode_slice(build *b, bnode *p, const char *name, size_t n)
{
    for (size_t i = 0; i < p->nslices; i++)
        if (strlen(p->slices[i]->slice) == n && strncmp(p->slices[i]->slice, name, n) == 0)
            return p->slices[i];
    bnode *s = bnode_new(b, p->seg, strlen(p->seg), name, n);
    if (!s || vec_push(b->tmp, (void ***)&p->slices, &p->nslices, &p->capslices, s) < 0)
        return NULL;
    return s;
}

/* Places one element definition of a layer into the tree by its id. */
static int place_element(build *b, bnode *root, const json_t *el)
{
    const char *id = jstr(el, "id");
    char idbuf[1024];
    if (!id) {
        /* no id (hand-written differentials): the id from the path, the
         * slice name, and the slices open above it */
        const char *path = jstr(el, "path"), *sn = jstr(el, "sliceName");
        if (!path) return 0;
        size_t pl = strlen(path);
        /* the element, restated or sliced again, closes what was open at or below it */
        size_t keep = 0;
        for (size_t i = 0; i < b->nopen; i++) {
            size_t ol = strlen(b->open[i].path);
            int below = ol >= pl && strncmp(b->open[i].path, path, pl) == 0 &&
                        (ol == pl || b->open[i].path[pl] == '.');
            if (!below) b->open[keep++] = b->open[i];
        }
        b->nopen = keep;
        const open_slice *ctx = NULL;
        for (size_t i = 0; i < b->nopen; i++) {
            size_t ol = strlen(b->open[i].path);
            if (ol < pl && strncmp(b->open[i].path, path, ol) == 0 && path[ol] == '.' &&
                (!ctx || ol > strlen(ctx->path)))
                ctx = &b->open[i];
        }
        if (ctx)
            snprintf(idbuf, sizeof idbuf, "%s%s%s%s", ctx->id, path + strlen(ctx->path),
                     sn ? ":" : "", sn ? sn : "");
        else
            snprintf(idbuf, sizeof idbuf, "%s%s%s", path, sn ? ":" : "", sn ? sn : "");
        id = idbuf;
        if (sn && b->nopen < PF_MAX_OPEN_SLICES) {
            char *p = tsg_arena_strndup(b->tmp, path, pl), *i = adup(b->tmp, idbuf);
            if (!p || !i) return -1;
            b->open[b->nopen++] = (open_slice){p, i};
        }
    }
    /* first segment: the type */
    const char *s = id, *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    if (strlen(root->seg) != n || strncmp(root->seg, s, n) != 0) {
        note(b->r, VALIDATE_WARNING, b->url, "element '%s' is not inside %s: ignored", id,
             root->seg);
        return 0;
    }
    bnode *cur = root;
    while (dot) {
        s = dot + 1;
        dot = strchr(s, '.');
        n = dot ? (size_t)(dot - s) : strlen(s);
        const char *colon = memchr(s, ':', n);
        size_t nn = colon ? (size_t)(colon - s) : n;
        cur = bnode_child(b, cur, s, nn);
        if (!cur) return -1;
        if (colon) {
            /* slice names may contain dots: the slice runs to the next '.'
             * that starts a known child, which we cannot know — ids of the
             * R4 tooling do not put dots in slice names; take up to '.' */
            cur = bnode_slice(b, cur, colon + 1, n - nn - 1);
            if (!cur) return -1;
        }
    }
    if (!cur->id) cur->id = tsg_arena_strndup(b->tmp, id, strlen(id));
    return vec_push(b->tmp, (void ***)&cur->defs, &cur->ndefs, &cur->capdefs, (void *)el);
}

/* The effective value of property key: the last layer that states it. */
static const json_t *eff(const bnode *n, const char *key)
{
    for (size_t i = n->ndefs; i-- > 0;) {
        const json_t *v = json_object_get(n->defs[i], key);
        if (v) return v;
    }
    return NULL;
}

/* The effective fixed[x] or pattern[x] (prefix "fixed"/"pattern"). */
static const json_t *eff_prefix(const bnode *n, const char *prefix, const char **keyname)
{
    size_t pl = strlen(prefix);
    for (size_t i = n->ndefs; i-- > 0;) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)n->defs[i], k, v)
        {
            if (strncmp(k, prefix, pl) == 0 && k[pl] >= 'A' && k[pl] <= 'Z') {
                *keyname = k;
                return v;
            }
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * Compiled elements (before layout)
 * ------------------------------------------------------------------------ */

typedef struct celem celem;
struct celem {
    pf_elem e;
    celem **kids, **slices;
    size_t nkids, capkids, nslices, capslices;
    int keep;
};

/* "Patient" for "Patient" or ".../StructureDefinition/Patient" of a model type. */
static const char *core_type_of(const char *url)
{
    static const char core[] = "http://hl7.org/fhir/StructureDefinition/";
    if (!url) return NULL;
    if (strncmp(url, core, sizeof core - 1) == 0) url += sizeof core - 1;
    if (strchr(url, '/') || strchr(url, ':')) return NULL;
    const char *bar = strchr(url, '|');
    const model_type *t = model_type_find(url, bar ? (size_t)(bar - url) : strlen(url));
    return t ? t->name : NULL;
}

static int type_profile_is_core(const char *code, const char *prof)
{
    const char *t = core_type_of(prof);
    (void)code;
    return t != NULL; /* Quantity, SimpleQuantity, …: the base validator's business */
}

static int compile_types(build *b, const bnode *n, pf_elem *e)
{
    const json_t *types = eff(n, "type");
    size_t nt = json_array_size(types);
    if (!nt) return 0;
    e->types = tsg_arena_zalloc(b->r->arena, nt * sizeof *e->types);
    if (!e->types) return -1;
    e->ntypes = (uint16_t)nt;
    size_t i;
    const json_t *t;
    json_array_foreach(types, i, t)
    {
        pf_type *pt = &e->types[i];
        const char *code = jstr(t, "code");
        if (!code) code = "";
        /* FHIRPath system types of primitives' value: keep as written */
        pt->code = adup(b->r->arena, code);
        pt->type = model_type_find(code, strlen(code));
        /* `http://hl7.org/fhirpath/System.String` (Element.id, Extension.url):
         * the FHIRPath type of an element whose model type is a primitive */
        if (!pt->type && e->melem && e->melem->ntypes == 1 &&
            strncmp(code, "http://hl7.org/fhirpath/System.", 31) == 0)
            pt->type = e->melem->types[0].type;
        const json_t *pr = json_object_get(t, "profile"), *tg = json_object_get(t, "targetProfile");
        size_t np = 0, k;
        const json_t *v;
        pt->profiles = tsg_arena_zalloc(b->r->arena, (json_array_size(pr) + 1) * sizeof(char *));
        pt->profile_refs =
            tsg_arena_zalloc(b->r->arena, (json_array_size(pr) + 1) * sizeof(profile *));
        pt->targets = tsg_arena_zalloc(b->r->arena, (json_array_size(tg) + 1) * sizeof(char *));
        pt->target_types =
            tsg_arena_zalloc(b->r->arena, (json_array_size(tg) + 1) * sizeof(char *));
        pt->target_refs =
            tsg_arena_zalloc(b->r->arena, (json_array_size(tg) + 1) * sizeof(profile *));
        if (!pt->profiles || !pt->profile_refs || !pt->targets || !pt->target_types ||
            !pt->target_refs)
            return -1;
        json_array_foreach(pr, k, v)
        {
            if (!json_is_string(v) || type_profile_is_core(code, json_string_value(v))) continue;
            pt->profiles[np++] = adup(b->r->arena, json_string_value(v));
        }
        pt->nprofiles = (uint16_t)np;
        if (np) e->flags |= PF_TYPE_PROFILES;
        np = 0;
        json_array_foreach(tg, k, v)
        {
            if (json_is_string(v)) pt->targets[np++] = adup(b->r->arena, json_string_value(v));
        }
        pt->ntargets = (uint16_t)np;
    }
    /* narrower than the model's types? */
    const model_elem *m = e->melem;
    if (m) {
        for (uint16_t k = 0; k < m->ntypes; k++) {
            int found = 0;
            for (uint16_t j = 0; j < e->ntypes; j++)
                if (e->types[j].type == m->types[k].type) found = 1;
            if (!found && m->types[k].type) e->flags |= PF_CHECK_TYPES;
        }
    }
    return 0;
}

/* Name of a resource type a target profile URL stands for; NULL when unknown
 * (resolved later against loaded profiles). */
static void compile_targets_flag(pf_elem *e)
{
    const model_elem *m = e->melem;
    for (uint16_t j = 0; j < e->ntypes; j++) {
        pf_type *pt = &e->types[j];
        if (!pt->ntargets || !m) continue;
        /* a profile as target: contained targets are checked against it */
        for (uint16_t y = 0; y < pt->ntargets; y++)
            if (!core_type_of(pt->targets[y])) e->flags |= PF_TARGETS;
        for (uint16_t k = 0; k < m->ntypes; k++) {
            if (m->types[k].type != pt->type) continue;
            /* the model's targets as type names */
            for (uint16_t x = 0; x < m->types[k].ntargets; x++) {
                const char *mt = m->types[k].targets[x];
                const char *slash = strrchr(mt, '/');
                const char *mname = slash ? slash + 1 : mt;
                int covered = 0;
                for (uint16_t y = 0; y < pt->ntargets; y++) {
                    const char *ps = strrchr(pt->targets[y], '/');
                    if (strcmp(ps ? ps + 1 : pt->targets[y], mname) == 0) covered = 1;
                }
                /* a profile URL (JP_Patient) hides its type until resolution:
                 * decide there; flag now so the resolver looks */
                if (!covered) e->flags |= PF_TARGETS;
            }
            if (m->types[k].ntargets == 0) e->flags |= PF_TARGETS;
        }
    }
}

static int has_model_constraint(const model_elem *m, const model_type *root, const char *key)
{
    if (m) {
        for (uint16_t i = 0; i < m->nconstraints; i++)
            if (strcmp(m->constraints[i]->key, key) == 0) return 1;
    } else if (root) {
        for (const model_type *t = root; t; t = t->base)
            for (uint16_t i = 0; i < t->nconstraints; i++)
                if (strcmp(t->constraints[i]->key, key) == 0) return 1;
    }
    return 0;
}

static int compile_constraints(build *b, const bnode *n, pf_elem *e, const model_type *rootype)
{
    size_t total = 0;
    for (size_t i = 0; i < n->ndefs; i++)
        total += json_array_size(json_object_get(n->defs[i], "constraint"));
    if (!total) return 0;
    e->cons = tsg_arena_zalloc(b->r->arena, total * sizeof *e->cons);
    if (!e->cons) return -1;
    for (size_t i = 0; i < n->ndefs; i++) {
        size_t k;
        const json_t *c;
        json_array_foreach(json_object_get(n->defs[i], "constraint"), k, c)
        {
            const char *key = jstr(c, "key"), *expr = jstr(c, "expression");
            if (!key || !expr) continue;
            if (has_model_constraint(e->melem, e->melem ? NULL : rootype, key)) continue;
            int dup = 0;
            for (uint16_t x = 0; x < e->ncons; x++)
                if (strcmp(e->cons[x].key, key) == 0) dup = 1;
            if (dup) continue;
            pf_constraint *pc = &e->cons[e->ncons];
            tsg_error err;
            fp_expr *fx = NULL;
            if (fp_compile(expr, strlen(expr), &fx, &err) != TSG_OK) {
                char where[512];
                snprintf(where, sizeof where, "%s#%s", b->url, e->id);
                note(b->r, VALIDATE_WARNING, where,
                     "constraint %s does not compile (%s): it is reported, not evaluated", key,
                     err.message);
            }
            pc->key = adup(b->r->arena, key);
            pc->expression = adup(b->r->arena, expr);
            pc->human = adup(b->r->arena, jstr(c, "human") ? jstr(c, "human") : key);
            const char *sev = jstr(c, "severity");
            pc->severity = (sev && strcmp(sev, "warning") == 0) ? "warning" : "error";
            pc->expr = fx;
            e->ncons++;
        }
    }
    return 0;
}

static int compile_slicing(build *b, const bnode *n, pf_elem *e)
{
    const json_t *s = eff(n, "slicing");
    if (!s) return 0;
    e->sliced = 1;
    const char *rules = jstr(s, "rules");
    e->rules = !rules || strcmp(rules, "open") == 0 ? PF_RULES_OPEN
               : strcmp(rules, "closed") == 0       ? PF_RULES_CLOSED
                                                    : PF_RULES_OPEN_AT_END;
    e->ordered = json_is_true(json_object_get(s, "ordered"));
    const json_t *d = json_object_get(s, "discriminator");
    size_t nd = json_array_size(d);
    if (!nd) return 0;
    e->disc = tsg_arena_zalloc(b->r->arena, nd * sizeof *e->disc);
    if (!e->disc) return -1;
    size_t i;
    const json_t *x;
    json_array_foreach(d, i, x)
    {
        const char *type = jstr(x, "type"), *path = jstr(x, "path");
        if (!type || !path) continue;
        pf_disc *pd = &e->disc[e->ndisc];
        if (strcmp(type, "value") == 0)
            pd->kind = PF_DISC_VALUE;
        else if (strcmp(type, "pattern") == 0)
            pd->kind = PF_DISC_PATTERN;
        else if (strcmp(type, "type") == 0)
            pd->kind = PF_DISC_TYPE;
        else if (strcmp(type, "profile") == 0)
            pd->kind = PF_DISC_PROFILE;
        else if (strcmp(type, "exists") == 0)
            pd->kind = PF_DISC_EXISTS;
        else {
            note(b->r, VALIDATE_WARNING, b->url, "%s: unknown discriminator type '%s'", e->id,
                 type);
            continue;
        }
        pd->path = adup(b->r->arena, path);
        /* simple steps: a.b.c, $this, extension('u') */
        size_t cap = 1;
        for (const char *c = path; *c; c++) cap += *c == '.';
        pd->steps = tsg_arena_zalloc(b->r->arena, cap * sizeof(char *));
        pd->step_urls = tsg_arena_zalloc(b->r->arena, cap * sizeof(char *));
        if (!pd->steps || !pd->step_urls) return -1;
        int simple = 1;
        const char *c = path;
        while (*c && simple) {
            const char *dot = c;
            /* a step ends at a '.' outside quotes */
            int q = 0;
            while (*dot && (q || *dot != '.')) {
                if (*dot == '\'') q = !q;
                dot++;
            }
            size_t len = (size_t)(dot - c);
            if (len == 5 && strncmp(c, "$this", 5) == 0) {
                /* no step */
            } else if (len > 13 && strncmp(c, "extension('", 11) == 0 && c[len - 1] == ')' &&
                       c[len - 2] == '\'') {
                pd->steps[pd->nsteps] = "extension";
                pd->step_urls[pd->nsteps] = tsg_arena_strndup(b->r->arena, c + 11, len - 13);
                pd->nsteps++;
            } else {
                for (size_t k = 0; k < len; k++) {
                    char ch = c[k];
                    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                          (ch >= '0' && ch <= '9') || ch == '_'))
                        simple = 0;
                }
                if (simple) pd->steps[pd->nsteps++] = tsg_arena_strndup(b->r->arena, c, len);
            }
            c = *dot ? dot + 1 : dot;
        }
        if (!simple) {
            pd->nsteps = 0;
            tsg_error err;
            if (fp_compile(path, strlen(path), &pd->expr, &err) != TSG_OK) {
                note(b->r, VALIDATE_WARNING, b->url,
                     "%s: discriminator path '%s' does not compile (%s): slicing ignored", e->id,
                     path, err.message);
                continue;
            }
        }
        e->ndisc++;
    }
    return 0;
}

/* The model type whose elements are n's children: a backbone, a data type. */
static const model_type *child_context(const pf_elem *e, const model_type *only)
{
    if (only) return only;
    const model_elem *m = e->melem;
    /* the model first: a backbone's profile type says only "BackboneElement" */
    if (m && m->ntypes == 1) return m->types[0].type;
    if (e->ntypes == 1 && e->types[0].type) return e->types[0].type;
    return NULL;
}

static celem *compile_node(build *b, const bnode *n, const model_type *ptype,
                           const model_elem *sliced_melem, const celem *sliced,
                           const model_type *rootype);

static int add_kids(build *b, celem *c, const bnode *n, const model_type *ctx,
                    const model_type *rootype)
{
    for (size_t i = 0; i < n->nkids; i++) {
        if (!ctx) {
            char where[512];
            snprintf(where, sizeof where, "%s#%s", b->url, n->kids[i]->id ? n->kids[i]->id : "");
            note(b->r, VALIDATE_WARNING, where,
                 "element below a choice of several types: ignored (name the type)");
            continue;
        }
        celem *k = compile_node(b, n->kids[i], ctx, NULL, NULL, rootype);
        if (b->oom) return -1;
        if (k && !k->keep) {
            /* dropped: an open slicing without slices may have compiled a path */
            for (uint16_t d = 0; d < k->e.ndisc; d++) fp_expr_free(k->e.disc[d].expr);
            continue;
        }
        if (k && vec_push(b->tmp, (void ***)&c->kids, &c->nkids, &c->capkids, k) < 0) return -1;
    }
    return 0;
}

static celem *compile_node(build *b, const bnode *n, const model_type *ptype,
                           const model_elem *sliced_melem, const celem *sliced,
                           const model_type *rootype)
{
    celem *c = tsg_arena_zalloc(b->tmp, sizeof *c);
    if (!c) {
        b->oom = 1;
        return NULL;
    }
    pf_elem *e = &c->e;
    tsg_arena *A = b->r->arena;
    e->id = adup(A, n->id ? n->id : n->seg);
    const model_type *only = NULL;
    if (sliced_melem) {
        e->melem = sliced_melem;
        e->slice_name = adup(A, n->slice);
    } else if (ptype) {
        size_t sl = strlen(n->seg);
        if (sl > 3 && strcmp(n->seg + sl - 3, "[x]") == 0) {
            char nm[128];
            snprintf(nm, sizeof nm, "%.*s", (int)(sl - 3), n->seg);
            e->melem = model_elem_find(ptype, nm);
        } else {
            e->melem = model_elem_find(ptype, n->seg);
            if (!e->melem) {
                const model_type *t = NULL;
                e->melem = model_child(ptype, n->seg, sl, &t);
                if (e->melem && (e->melem->flags & MODEL_ELEM_CHOICE)) only = t;
            }
        }
        if (!e->melem) {
            char where[512];
            snprintf(where, sizeof where, "%s#%s", b->url, e->id);
            note(b->r, VALIDATE_WARNING, where, "no element '%s' in %s: ignored", n->seg,
                 ptype->name);
            return NULL;
        }
    }
    if (!e->id) goto oom;
    const model_elem *m = e->melem;
    /* cardinality */
    const json_t *jmin = eff(n, "min"), *jmax = eff(n, "max");
    uint32_t bmin = m ? m->min : 0, bmax = m ? m->max : 1;
    if (sliced) {
        bmin = 0;
        bmax = sliced->e.max;
    }
    e->min = json_is_integer(jmin) && json_integer_value(jmin) >= 0
                 ? (uint32_t)json_integer_value(jmin)
                 : bmin;
    const char *smax = json_string_value(jmax);
    if (smax && strcmp(smax, "*") == 0)
        e->max = MODEL_MANY;
    else if (smax) {
        char *end;
        unsigned long v = strtoul(smax, &end, 10);
        e->max = (*end || end == smax || v > UINT32_MAX) ? bmax : (uint32_t)v;
    } else
        e->max = bmax;
    if (m && (sliced || e->min != m->min || e->max != m->max)) e->flags |= PF_CHECK_CARD;
    /* types, targets */
    if (compile_types(b, n, e) < 0) goto oom;
    if (only) {
        /* valueQuantity: what follows applies to the Quantity only */
        e->only = only;
        if (!e->ntypes) {
            e->types = tsg_arena_zalloc(A, sizeof *e->types);
            if (!e->types) goto oom;
            e->types[0].code = only->name;
            e->types[0].type = only;
            e->types[0].profiles = tsg_arena_zalloc(A, sizeof(char *));
            e->types[0].profile_refs = tsg_arena_zalloc(A, sizeof(profile *));
            e->types[0].targets = tsg_arena_zalloc(A, sizeof(char *));
            e->types[0].target_types = tsg_arena_zalloc(A, sizeof(char *));
            e->types[0].target_refs = tsg_arena_zalloc(A, sizeof(profile *));
            e->ntypes = 1;
        }
    }
    compile_targets_flag(e);
    if (!m) e->flags &= ~(unsigned)(PF_CHECK_TYPES | PF_TARGETS);
    /* fixed, pattern */
    const char *fk = NULL, *pk = NULL;
    e->fixed = eff_prefix(n, "fixed", &fk);
    e->pattern = eff_prefix(n, "pattern", &pk);
    e->fixed_key = adup(A, fk ? fk : pk);
    if (e->fixed || e->pattern) {
        /* the message text, made once (jansson's dump is not for shared use) */
        char *txt = json_dumps(e->fixed ? e->fixed : e->pattern, JSON_ENCODE_ANY | JSON_COMPACT);
        size_t tl = txt ? strlen(txt) : 0;
        e->value_text = tl > 300 ? tsg_arena_strndup(A, txt, 300) : adup(A, txt ? txt : "?");
        free(txt);
        if (!e->value_text) goto oom;
    }
    /* binding */
    const json_t *bind = eff(n, "binding");
    if (bind && m) {
        const char *st = jstr(bind, "strength"), *vs = jstr(bind, "valueSet");
        model_strength s = MODEL_BIND_NONE;
        if (st && strcmp(st, "required") == 0) s = MODEL_BIND_REQUIRED;
        if (st && strcmp(st, "extensible") == 0) s = MODEL_BIND_EXTENSIBLE;
        if (st && strcmp(st, "preferred") == 0) s = MODEL_BIND_PREFERRED;
        if (st && strcmp(st, "example") == 0) s = MODEL_BIND_EXAMPLE;
        if (vs) {
            const char *bar = strchr(vs, '|');
            e->vs_url = tsg_arena_strndup(A, vs, bar ? (size_t)(bar - vs) : strlen(vs));
            if (!e->vs_url) goto oom;
        }
        e->strength = s;
        const model_binding *mb = m->binding;
        int same = mb && mb->strength == s && mb->valueset_url && e->vs_url &&
                   strcmp(mb->valueset_url, e->vs_url) == 0;
        if (!same && e->vs_url && (s == MODEL_BIND_REQUIRED || s == MODEL_BIND_EXTENSIBLE)) {
            e->flags |= PF_CHECK_BINDING;
            e->vs = vs_resolve(b->r, e->vs_url);
        }
    }
    if (json_is_true(eff(n, "mustSupport"))) e->flags |= PF_MUST_SUPPORT;
    if (compile_constraints(b, n, e, rootype) < 0) goto oom;
    if (compile_slicing(b, n, e) < 0) goto oom;
    /* children and slices */
    const model_type *ctx = m ? child_context(e, only) : rootype;
    if (add_kids(b, c, n, ctx, rootype) < 0) goto oom;
    for (size_t i = 0; i < n->nslices; i++) {
        const model_type *sctx = ptype;
        celem *s = compile_node(b, n->slices[i], sctx, m, c, rootype);
        if (b->oom) return NULL;
        if (!s) continue;
        s->keep = 1;
        if (vec_push(b->tmp, (void ***)&c->slices, &c->nslices, &c->capslices, s) < 0) goto oom;
    }
    if (n->nslices && !e->sliced) {
        /* slices without slicing (the base's slicing was not restated): the
         * snapshot would carry it; take an open slicing with no keys */
        e->sliced = 1;
    }
    c->keep = (e->flags & (PF_CHECK_CARD | PF_CHECK_TYPES | PF_CHECK_BINDING | PF_TYPE_PROFILES |
                           PF_TARGETS)) ||
              e->fixed || e->pattern || e->ncons || c->nkids || c->nslices ||
              (e->sliced && e->rules == PF_RULES_CLOSED);
    return c;
oom:
    b->oom = 1;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Layout
 * ------------------------------------------------------------------------ */

static size_t count_celems(const celem *c)
{
    size_t n = 1;
    for (size_t i = 0; i < c->nkids; i++) n += count_celems(c->kids[i]);
    for (size_t i = 0; i < c->nslices; i++) n += count_celems(c->slices[i]);
    return n;
}

static void layout(pf_elem *elems, uint32_t *next, const celem *c, uint32_t at)
{
    elems[at] = c->e;
    pf_elem *e = &elems[at];
    e->kids = *next;
    e->nkids = (uint32_t)c->nkids;
    *next += e->nkids;
    e->slices = *next;
    e->nslices = (uint32_t)c->nslices;
    *next += e->nslices;
    for (size_t i = 0; i < c->nkids; i++) layout(elems, next, c->kids[i], e->kids + (uint32_t)i);
    for (size_t i = 0; i < c->nslices; i++)
        layout(elems, next, c->slices[i], e->slices + (uint32_t)i);
}

/* ------------------------------------------------------------------------
 * Compiling one definition
 * ------------------------------------------------------------------------ */

/* Appends the element lists making up res's snapshot to layers. */
static int collect_layers(profile_registry *r, pf_res *res, const json_t **layers, size_t *n,
                          unsigned depth)
{
    const json_t *snap = json_object_get(json_object_get(res->j, "snapshot"), "element");
    if (json_array_size(snap)) {
        layers[(*n)++] = snap;
        return 0;
    }
    const json_t *diff = json_object_get(json_object_get(res->j, "differential"), "element");
    const char *base = jstr(res->j, "baseDefinition");
    if (depth >= PF_MAX_BASE_CHAIN) {
        note(r, VALIDATE_ERROR, res->url, "base definitions nest deeper than %u (a cycle?)",
             PF_MAX_BASE_CHAIN);
        return -1;
    }
    if (base && !core_type_of(base)) {
        pf_res *br = find_res(r, RES_SD, base);
        if (!br) {
            note(r, VALIDATE_ERROR, res->url, "base definition %s is not loaded", base);
            return -1;
        }
        if (collect_layers(r, br, layers, n, depth + 1) < 0) return -1;
    }
    if (json_array_size(diff)) layers[(*n)++] = diff;
    return 0;
}

static profile *compile_sd(profile_registry *r, pf_res *res)
{
    const char *type = jstr(res->j, "type"), *deriv = jstr(res->j, "derivation");
    const char *kind = jstr(res->j, "kind");
    if (!deriv || strcmp(deriv, "constraint") != 0 || (kind && strcmp(kind, "logical") == 0) ||
        !type) {
        res->state = ST_SKIPPED;
        return NULL;
    }
    const model_type *mt = model_type_find(type, strlen(type));
    if (!mt) {
        note(r, VALIDATE_ERROR, res->url, "type '%s' is not an R4 type", type);
        res->state = ST_FAILED;
        return NULL;
    }
    const json_t *layers[PF_MAX_BASE_CHAIN + 2];
    size_t nl = 0;
    if (collect_layers(r, res, layers, &nl, 0) < 0) {
        res->state = ST_FAILED;
        return NULL;
    }
    build b = {.r = r, .tmp = tsg_arena_new(0), .url = res->url};
    profile *p = NULL;
    if (!b.tmp) return NULL;
    bnode *root = bnode_new(&b, mt->name, strlen(mt->name), NULL, 0);
    if (!root) goto done;
    root->id = root->seg;
    for (size_t l = 0; l < nl; l++) {
        size_t i;
        const json_t *el;
        b.nopen = 0;
        json_array_foreach(layers[l], i, el)
        {
            if (place_element(&b, root, el) < 0) goto done;
        }
    }
    celem *c = compile_node(&b, root, NULL, NULL, NULL, mt);
    if (!c || b.oom) goto done;
    p = tsg_arena_zalloc(r->arena, sizeof *p);
    if (!p) goto done;
    p->url = res->url;
    p->version = res->version;
    p->name = jstr(res->j, "name");
    p->type = mt->name;
    p->mtype = mt;
    p->is_extension = strcmp(mt->name, "Extension") == 0;
    if (p->is_extension) {
        const json_t *ctxs = json_object_get(res->j, "context");
        size_t nc = json_array_size(ctxs), i;
        const json_t *c;
        p->contexts = nc ? tsg_arena_zalloc(r->arena, nc * sizeof *p->contexts) : NULL;
        if (nc && !p->contexts) {
            p = NULL;
            goto done;
        }
        p->context_any = nc == 0;
        json_array_foreach(ctxs, i, c)
        {
            const char *t = jstr(c, "type"), *x = jstr(c, "expression");
            if (!t || !x || strcmp(t, "element") != 0)
                p->context_any = 1;
            else if (!(p->contexts[p->ncontexts++] = adup(r->arena, x))) {
                p = NULL;
                goto done;
            }
        }
    }
    p->reg = r;
    size_t total = count_celems(c);
    p->elems = tsg_arena_zalloc(r->arena, total * sizeof *p->elems);
    if (!p->elems) {
        p = NULL;
        goto done;
    }
    uint32_t next = 1;
    layout(p->elems, &next, c, 0);
    p->nelems = next;
    r->stats.elements += next;
done:
    tsg_arena_free(b.tmp);
    res->state = p ? ST_DONE : ST_FAILED;
    return p;
}

/* ------------------------------------------------------------------------
 * Resolution (after every definition is compiled)
 * ------------------------------------------------------------------------ */

static const char *target_type_name(const profile_registry *r, const char *url)
{
    const char *t = core_type_of(url);
    if (t) return t;
    const profile *p = profile_lookup(r, url);
    return p ? p->type : NULL;
}

/* extension('u'): the slice of extension element x whose url is u (fixed on
 * its url child, or the URL of its type profile). */
static const pf_elem *extension_slice(const profile *p, const pf_elem *x, const char *u)
{
    for (uint32_t i = 0; i < x->nslices; i++) {
        const pf_elem *sl = &p->elems[x->slices + i];
        for (uint32_t k = 0; k < sl->nkids; k++) {
            const pf_elem *kid = &p->elems[sl->kids + k];
            if (kid->melem && strcmp(kid->melem->name, "url") == 0 && kid->fixed &&
                json_is_string(kid->fixed) && strcmp(json_string_value(kid->fixed), u) == 0)
                return sl;
        }
        for (uint16_t t = 0; t < sl->ntypes; t++)
            for (uint16_t k = 0; k < sl->types[t].nprofiles; k++)
                if (strcmp(sl->types[t].profiles[k], u) == 0) return sl;
    }
    return NULL;
}

/* The element below e reached by the steps (names of model elements). */
/* The child of e named step; when e has none but is sliced, the first of
 * its slices' children so named (`code.coding.code` where the code is fixed
 * in a slice of coding). */
static const pf_elem *step_child(const profile *p, const pf_elem *e, const char *step)
{
    for (uint32_t k = 0; k < e->nkids; k++) {
        const pf_elem *kid = &p->elems[e->kids + k];
        if (kid->melem && strcmp(kid->melem->name, step) == 0) return kid;
    }
    for (uint32_t i = 0; i < e->nslices; i++) {
        const pf_elem *sl = &p->elems[e->slices + i];
        for (uint32_t k = 0; k < sl->nkids; k++) {
            const pf_elem *kid = &p->elems[sl->kids + k];
            if (kid->melem && strcmp(kid->melem->name, step) == 0 &&
                (kid->fixed || kid->pattern || kid->nkids))
                return kid;
        }
    }
    return NULL;
}

static const pf_elem *walk_steps(const profile *p, const pf_elem *e, const pf_disc *d)
{
    for (uint16_t s = 0; s < d->nsteps && e; s++) {
        const pf_elem *next = step_child(p, e, d->steps[s]);
        if (next && d->step_urls[s]) next = extension_slice(p, next, d->step_urls[s]);
        e = next;
    }
    return e;
}

/* When the steps run past the elements into a fixed/pattern value
 * (`code.coding.code` with `code` carrying patternCodeableConcept), the part
 * of that value the remaining steps name; NULL otherwise. *exact: from fixed. */
static const json_t *walk_into_value(const profile *p, const pf_elem *e, const pf_disc *d,
                                     int *exact)
{
    uint16_t s = 0;
    for (; s < d->nsteps && e; s++) {
        if (e->fixed || e->pattern) break;
        const pf_elem *next = step_child(p, e, d->steps[s]);
        if (d->step_urls[s]) return NULL;
        e = next;
    }
    if (!e || !(e->fixed || e->pattern) || s == d->nsteps) return NULL;
    const json_t *v = e->fixed ? e->fixed : e->pattern;
    *exact = e->fixed != NULL;
    for (; s < d->nsteps && v; s++) {
        if (json_is_array(v)) v = json_array_get(v, 0);
        v = json_object_get(v, d->steps[s]);
    }
    if (json_is_array(v)) v = json_array_get(v, 0);
    return v;
}

static const profile *single_type_profile(const pf_elem *e, const char **url)
{
    for (uint16_t t = 0; t < e->ntypes; t++)
        for (uint16_t k = 0; k < e->types[t].nprofiles; k++) {
            *url = e->types[t].profiles[k];
            return e->types[t].profile_refs[k];
        }
    *url = NULL;
    return NULL;
}

/* A pattern built from the fixed/pattern values below e (a slice whose
 * discriminator value sits on its descendants: category:laboratory with
 * coding.system and coding.code fixed). NULL when there are none. */
static json_t *synthesize(const profile *p, const pf_elem *e, unsigned depth)
{
    if (depth > 32) return NULL;
    json_t *o = NULL;
    for (uint32_t k = 0; k < e->nkids; k++) {
        const pf_elem *kid = &p->elems[e->kids + k];
        if (!kid->melem) continue;
        json_t *v = kid->fixed     ? json_deep_copy(kid->fixed)
                    : kid->pattern ? json_deep_copy(kid->pattern)
                                   : synthesize(p, kid, depth + 1);
        if (!v) continue;
        char name[160];
        const model_type *t = kid->ntypes == 1 ? kid->types[0].type : NULL;
        if ((kid->melem->flags & MODEL_ELEM_CHOICE) && !t) {
            json_decref(v);
            continue;
        }
        if (!model_property_name(kid->melem, t, name, sizeof name)) {
            json_decref(v);
            continue;
        }
        if (kid->melem->max != 1) {
            json_t *a = json_array();
            if (!a || json_array_append_new(a, v) < 0) {
                json_decref(a);
                continue;
            }
            v = a;
        }
        if (!o) o = json_object();
        if (!o || json_object_set_new(o, name, v) < 0) json_decref(v);
    }
    return o;
}

/* A key through resolve() (`resolve().code`, `resolve()` for type): looked
 * up in the slice's single target profile, since the value is the target's. */
static int resolve_key(profile_registry *r, const pf_elem *sl, const pf_disc *pd, pf_slice_key *k)
{
    if (strncmp(pd->path, "resolve()", 9) != 0) return 0;
    const profile *tp = NULL;
    const char *tt = NULL;
    for (uint16_t t = 0; t < sl->ntypes; t++)
        if (sl->types[t].ntargets == 1) {
            tp = sl->types[t].target_refs[0];
            tt = sl->types[t].target_types[0];
        }
    if (pd->path[9] == '\0') {
        if (pd->kind == PF_DISC_TYPE && tt) {
            const model_type *mt = model_type_find(tt, strlen(tt));
            k->types = tsg_arena_zalloc(r->arena, sizeof *k->types);
            if (!k->types) return -1;
            if (mt) k->types[k->ntypes++] = mt;
            k->known = k->ntypes > 0;
        } else if (pd->kind == PF_DISC_PROFILE && tp) {
            k->profile = tp;
            k->profile_url = tp->url;
            k->known = 1;
        }
        return 0;
    }
    if (pd->path[9] != '.' || !tp || (pd->kind != PF_DISC_VALUE && pd->kind != PF_DISC_PATTERN))
        return 0;
    /* the rest as simple steps */
    const char *steps[16], *urls[16] = {0};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", pd->path + 10);
    pf_disc rd = {.kind = pd->kind, .path = buf, .steps = steps, .step_urls = urls};
    for (char *c = buf; *c && rd.nsteps < 16;) {
        char *dot = strchr(c, '.');
        if (dot) *dot = '\0';
        for (char *x = c; *x; x++)
            if (!((*x >= 'a' && *x <= 'z') || (*x >= 'A' && *x <= 'Z') || (*x >= '0' && *x <= '9')))
                return 0;
        steps[rd.nsteps++] = c;
        if (!dot) break;
        c = dot + 1;
    }
    const pf_elem *at = walk_steps(tp, &tp->elems[0], &rd);
    int exact = 0;
    if (at && (at->fixed || at->pattern)) {
        k->value = at->fixed ? at->fixed : at->pattern;
        exact = at->fixed != NULL;
    } else if (!at) {
        k->value = walk_into_value(tp, &tp->elems[0], &rd, &exact);
    }
    k->exact = exact && pd->kind == PF_DISC_VALUE;
    k->known = k->value != NULL;
    return 0;
}

static int resolve_keys(profile_registry *r, profile *p, pf_elem *e)
{
    if (!e->nslices || !e->ndisc) return 0;
    for (uint32_t s = 0; s < e->nslices; s++) {
        pf_elem *sl = &p->elems[e->slices + s];
        sl->keys = tsg_arena_zalloc(r->arena, e->ndisc * sizeof *sl->keys);
        if (!sl->keys) return -1;
        for (uint16_t d = 0; d < e->ndisc; d++) {
            const pf_disc *pd = &e->disc[d];
            pf_slice_key *k = &sl->keys[d];
            const pf_elem *at = pd->expr ? NULL : walk_steps(p, sl, pd);
            if (pd->expr && resolve_key(r, sl, pd, k) < 0) return -1;
            if (k->known) continue;
            const char *purl = NULL;
            const profile *tp = single_type_profile(sl, &purl);
            if (!at && !pd->expr && tp && pd->nsteps) {
                /* look inside the slice's type profile (an extension's url) */
                at = walk_steps(tp, &tp->elems[0], pd);
                if (at) {
                    const pf_elem *tat = at;
                    if (pd->kind == PF_DISC_VALUE || pd->kind == PF_DISC_PATTERN) {
                        k->value = tat->fixed ? tat->fixed : tat->pattern;
                        k->exact = tat->fixed != NULL;
                        k->known = k->value != NULL;
                    }
                    at = NULL;
                    if (k->known) continue;
                }
            }
            switch (pd->kind) {
            case PF_DISC_VALUE:
            case PF_DISC_PATTERN:
                if (at && (at->fixed || at->pattern)) {
                    k->value = at->fixed ? at->fixed : at->pattern;
                    k->exact = at->fixed != NULL && pd->kind == PF_DISC_VALUE;
                    k->known = 1;
                } else if (at && at->nkids) {
                    json_t *v = synthesize(p, at, 0);
                    if (v && json_array_append_new(r->owned, v) < 0) return -1;
                    k->value = v;
                    k->known = v != NULL;
                } else if (!at && !pd->expr) {
                    int exact = 0;
                    k->value = walk_into_value(p, sl, pd, &exact);
                    k->exact = exact && pd->kind == PF_DISC_VALUE;
                    k->known = k->value != NULL;
                }
                if (k->known) {
                    /* found */
                } else if (pd->nsteps == 1 && strcmp(pd->steps[0], "url") == 0 && purl) {
                    json_t *v = json_string(purl);
                    if (!v || json_array_append_new(r->owned, v) < 0) return -1;
                    k->value = v;
                    k->exact = 1;
                    k->known = 1;
                }
                break;
            case PF_DISC_EXISTS:
                if (at) {
                    k->known = at->min > 0 || at->max == 0;
                    k->exists = at->min > 0;
                }
                break;
            case PF_DISC_TYPE:
                if (at && at->ntypes) {
                    k->types = tsg_arena_zalloc(r->arena, at->ntypes * sizeof *k->types);
                    if (!k->types) return -1;
                    for (uint16_t t = 0; t < at->ntypes; t++)
                        if (at->types[t].type) k->types[k->ntypes++] = at->types[t].type;
                    k->known = k->ntypes > 0;
                }
                break;
            case PF_DISC_PROFILE:
                if (at) {
                    k->profile = single_type_profile(at, &k->profile_url);
                    k->known = k->profile != NULL;
                    if (k->profile_url && !k->profile) {
                        char where[512];
                        snprintf(where, sizeof where, "%s#%s", p->url, sl->id);
                        note(r, VALIDATE_WARNING, where,
                             "the profile %s this slice is told apart by is not loaded: no "
                             "instance can match the slice",
                             k->profile_url);
                        continue;
                    }
                }
                break;
            }
            if (!k->known) {
                char where[512];
                snprintf(where, sizeof where, "%s#%s", p->url, sl->id);
                note(r, VALIDATE_WARNING, where,
                     "slice has no value for discriminator %s '%s': no instance can match it",
                     pd->kind == PF_DISC_VALUE     ? "value"
                     : pd->kind == PF_DISC_PATTERN ? "pattern"
                     : pd->kind == PF_DISC_TYPE    ? "type"
                     : pd->kind == PF_DISC_PROFILE ? "profile"
                                                   : "exists",
                     pd->path);
            }
        }
    }
    return 0;
}

static int resolve_profile(profile_registry *r, profile *p)
{
    /* type profiles and targets first: slice keys look at them */
    for (uint32_t i = 0; i < p->nelems; i++) {
        pf_elem *e = &p->elems[i];
        int narrowed = 0, has_refs = 0;
        for (uint16_t t = 0; t < e->ntypes; t++) {
            pf_type *pt = &e->types[t];
            for (uint16_t k = 0; k < pt->nprofiles; k++)
                pt->profile_refs[k] = profile_lookup(r, pt->profiles[k]);
            for (uint16_t k = 0; k < pt->ntargets; k++) {
                pt->target_types[k] = target_type_name(r, pt->targets[k]);
                pt->target_refs[k] =
                    core_type_of(pt->targets[k]) ? NULL : profile_lookup(r, pt->targets[k]);
                if (pt->target_refs[k]) has_refs = 1; /* contained targets are checked */
            }
            if (!(e->flags & PF_TARGETS) || !e->melem) continue;
            /* narrowed when some model target type is not among ours */
            for (uint16_t m = 0; m < e->melem->ntypes; m++) {
                if (e->melem->types[m].type != pt->type) continue;
                if (!e->melem->types[m].ntargets) narrowed = 1;
                for (uint16_t x = 0; x < e->melem->types[m].ntargets; x++) {
                    const char *mt = e->melem->types[m].targets[x];
                    const char *sl = strrchr(mt, '/');
                    const char *mn = sl ? sl + 1 : mt;
                    int cov = 0;
                    for (uint16_t y = 0; y < pt->ntargets; y++)
                        if (!pt->target_types[y] || strcmp(pt->target_types[y], mn) == 0 ||
                            strcmp(pt->target_types[y], "Resource") == 0)
                            cov = 1;
                    if (!cov) narrowed = 1;
                }
            }
        }
        if (narrowed) e->flags |= PF_TARGET_TYPES;
        if (!narrowed && !has_refs) e->flags &= ~(unsigned)PF_TARGETS;
    }
    for (uint32_t i = 0; i < p->nelems; i++)
        if (resolve_keys(r, p, &p->elems[i]) < 0) return -1;
    return 0;
}

tsg_rc profile_registry_compile(profile_registry *r, validate_issue_fn report, void *report_ctx,
                                tsg_error *err)
{
    if (r->compiled) return TSG_OK;
    r->report = report;
    r->report_ctx = report_ctx;
    tsg_rc rc = TSG_OK;
    for (size_t i = 0; i < r->nres && rc == TSG_OK; i++) {
        pf_res *x = &r->res[i];
        if (x->kind != RES_SD || x->state != ST_NEW) continue;
        x->prof = compile_sd(r, x);
        if (x->prof) {
            if (x->prof->is_extension)
                r->stats.extensions++;
            else
                r->stats.profiles++;
        } else if (x->state == ST_FAILED) {
            r->stats.failed++;
        }
    }
    r->index = calloc(r->nres + 1, sizeof *r->index);
    if (!r->index) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    for (size_t i = 0; i < r->nres; i++)
        if (r->res[i].prof) r->index[r->nindex++] = r->res[i].prof;
    qsort(r->index, r->nindex, sizeof *r->index, cmp_prof);
    for (size_t i = 0; i < r->nindex && rc == TSG_OK; i++)
        if (resolve_profile(r, (profile *)r->index[i]) < 0)
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    r->compiled = 1;
    r->report = NULL;
    r->report_ctx = NULL;
    return rc;
}

profile_registry *profile_registry_open(const char *const *paths, size_t n,
                                        validate_issue_fn report, void *report_ctx, tsg_error *err)
{
    profile_registry *r = profile_registry_new();
    if (!r) {
        tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (profile_registry_load(r, paths[i], err) != TSG_OK) {
            profile_registry_free(r);
            return NULL;
        }
    if (profile_registry_compile(r, report, report_ctx, err) != TSG_OK) {
        profile_registry_free(r);
        return NULL;
    }
    return r;
}

tsg_rc profile_registry_validate(void *ctx, const fhir_node *root, const char *url,
                                 validate_issue_fn report, void *report_ctx)
{
    const profile *p = profile_lookup(ctx, url);
    if (!p) return TSG_ENOTSUP;
    return profile_validate(p, root, report, report_ctx);
}

tsg_rc profile_registry_open_list(const char *paths, validate_issue_fn report, void *report_ctx,
                                  profile_registry **out, tsg_error *err)
{
    *out = NULL;
    if (!paths || !*paths) return TSG_OK;
    int is_default = !strcmp(paths, PROFILE_DEFAULT_PATHS);
    char *buf = strdup(paths);
    if (!buf) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    const char *list[PROFILE_MAX_PATHS];
    size_t n = 0;
    tsg_rc rc = TSG_OK;
    for (char *save = NULL, *t = strtok_r(buf, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
        if (is_default && access(t, F_OK)) continue; /* the default folder is optional */
        if (n == PROFILE_MAX_PATHS) {
            rc = tsg_error_set(err, TSG_ELIMIT, "too-costly",
                               "more than %u package paths (PROFILE_MAX_PATHS)", PROFILE_MAX_PATHS);
            break;
        }
        list[n++] = t;
    }
    if (!rc && n && !(*out = profile_registry_open(list, n, report, report_ctx, err)))
        rc = err->rc ? err->rc : TSG_EINVAL;
    free(buf);
    return rc;
}
