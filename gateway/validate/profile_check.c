/*
 * profile_check.c — validating a resource tree against a compiled profile
 * (see profile.h, "Validation").
 *
 * The walk follows the profile's table, not the resource: for each element
 * the profile constrains it finds the node's children for that element (one
 * contiguous run, since fhir_node children are in definition order), so a
 * profile that constrains ten elements costs ten lookups whatever the size of
 * the resource. The expression of the current node lives in one path buffer
 * that grows and shrinks with the walk. Slice matching walks discriminator
 * paths over the tree without allocating; only FHIRPath (constraints, odd
 * discriminator paths) uses the scratch arena, made on first need.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile_internal.h"

#define PF_PATH_MAX   2048u
#define PF_MAX_FRAMES 512u

/* One step of the walk: a node (`.name[pos]`) or a bare element name (an
 * element that is absent, for cardinality). The expression text is made from
 * these only when an issue is reported. */
typedef struct frame {
    const fhir_node *node;
    const char *name;
} frame;

typedef struct vctx {
    const fhir_node *root;
    validate_issue_fn report;
    void *rctx;
    tsg_arena *arena;
    tsg_buf text; /* FHIRPath results as text */
    frame frames[PF_MAX_FRAMES];
    size_t nframes; /* may pass PF_MAX_FRAMES: deeper steps are not kept */
    const model_type *t_extension;
    unsigned depth;
    int silent;    /* counting errors only (slice profile matching) */
    size_t errors; /* errors seen while silent */
    int oom;
} vctx;

/* Writes the expression of the current position into out. */
static void path_text(const vctx *v, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "%s", v->root->type->name);
    size_t n = v->nframes < PF_MAX_FRAMES ? v->nframes : PF_MAX_FRAMES;
    for (size_t i = 0; i < n && len < cap; i++) {
        const frame *f = &v->frames[i];
        int w;
        if (f->name) {
            w = snprintf(out + len, cap - len, ".%s", f->name);
        } else {
            char name[160];
            size_t nl = model_property_name(f->node->elem, f->node->type, name, sizeof name);
            if (f->node->elem->max != 1)
                w = snprintf(out + len, cap - len, ".%.*s[%u]", (int)nl, name, f->node->pos);
            else
                w = snprintf(out + len, cap - len, ".%.*s", (int)nl, name);
        }
        if (w < 0) break;
        len += (size_t)w;
    }
}

static void issue(vctx *v, validate_severity sev, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void issue(vctx *v, validate_severity sev, const char *code, const char *fmt, ...)
{
    if (v->silent) {
        if (sev <= VALIDATE_ERROR) v->errors++;
        return;
    }
    char msg[1024], path[PF_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    path_text(v, path, sizeof path);
    v->report(v->rctx, sev, code, path, msg);
}

/* Steps down to node k; returns the mark path_pop() goes back to. */
static size_t path_push(vctx *v, const fhir_node *k)
{
    if (v->nframes < PF_MAX_FRAMES) v->frames[v->nframes] = (frame){k, NULL};
    return v->nframes++;
}

static size_t path_push_name(vctx *v, const char *name)
{
    if (v->nframes < PF_MAX_FRAMES) v->frames[v->nframes] = (frame){NULL, name};
    return v->nframes++;
}

static void path_pop(vctx *v, size_t mark)
{
    v->nframes = mark;
}

static tsg_arena *scratch(vctx *v)
{
    if (!v->arena) v->arena = tsg_arena_new(0);
    if (!v->arena) v->oom = 1;
    return v->arena;
}

static const fhir_node *kid_named(const fhir_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->nkids; i++)
        if (strcmp(n->kids[i].elem->name, name) == 0) return &n->kids[i];
    return NULL;
}

static const char *kid_value(const fhir_node *n, const char *name)
{
    const fhir_node *k = kid_named(n, name);
    return k ? k->value : NULL;
}

/* ------------------------------------------------------------------------
 * fixed[x] / pattern[x] against a node
 * ------------------------------------------------------------------------ */

static int jmatch(const json_t *j, const fhir_node *n, int exact, unsigned depth);

static int jmatch_primitive(const json_t *j, const fhir_node *n)
{
    const char *s = n->value;
    if (!s) return 0;
    if (json_is_string(j)) return strcmp(s, json_string_value(j)) == 0;
    if (json_is_true(j)) return strcmp(s, "true") == 0;
    if (json_is_false(j)) return strcmp(s, "false") == 0;
    if (json_is_number(j)) {
        char *end;
        double d = strtod(s, &end);
        return *end == '\0' && end != s && d == json_number_value(j);
    }
    return 0;
}

static int is_meta_kid(const fhir_node *k)
{
    const char *nm = k->elem->name;
    return strcmp(nm, "id") == 0 || strcmp(nm, "extension") == 0 ||
           strcmp(nm, "modifierExtension") == 0;
}

/* 1 when node n has the value j: every property of j (pattern), and nothing
 * else besides ids and extensions (exact). */
static int jmatch(const json_t *j, const fhir_node *n, int exact, unsigned depth)
{
    if (depth > 64) return 0;
    if (model_is_primitive(n->type)) return jmatch_primitive(j, n);
    if (!json_is_object(j)) return 0;
    const char *key;
    const json_t *val;
    size_t covered = 0;
    json_object_foreach((json_t *)j, key, val)
    {
        if (key[0] == '_' || strcmp(key, "resourceType") == 0) continue;
        const model_type *t = NULL;
        const model_elem *m = model_child(n->type, key, strlen(key), &t);
        if (!m) return 0;
        uint32_t first = n->nkids, cnt = 0;
        for (uint32_t i = 0; i < n->nkids; i++) {
            const fhir_node *k = &n->kids[i];
            if (k->elem != m || ((m->flags & MODEL_ELEM_CHOICE) && k->type != t)) continue;
            if (first == n->nkids) first = i;
            cnt++;
        }
        covered += cnt;
        if (json_is_array(val)) {
            size_t na = json_array_size(val);
            if (exact && na != cnt) return 0;
            for (size_t a = 0; a < na; a++) {
                const json_t *item = json_array_get(val, a);
                int ok = 0;
                if (exact)
                    ok = jmatch(item, &n->kids[first + a], 1, depth + 1);
                else
                    for (uint32_t c = 0; c < cnt && !ok; c++)
                        ok = jmatch(item, &n->kids[first + c], 0, depth + 1);
                if (!ok) return 0;
            }
        } else {
            if (cnt == 0 || (exact && cnt != 1)) return 0;
            int ok = 0;
            for (uint32_t c = 0; c < cnt && !ok; c++)
                ok = jmatch(val, &n->kids[first + c], exact, depth + 1);
            if (!ok) return 0;
        }
    }
    if (exact) {
        size_t others = 0;
        for (uint32_t i = 0; i < n->nkids; i++)
            if (!is_meta_kid(&n->kids[i])) others++;
        if (others != covered) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * Bindings
 * ------------------------------------------------------------------------ */

static int vs_has(const pf_valueset *vs, const char *system, const char *code)
{
    if (vs->model) return model_valueset_has(vs->model, system, code);
    size_t lo = 0, hi = vs->ncodes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(vs->codes[mid].code, code) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < vs->ncodes && strcmp(vs->codes[lo].code, code) == 0; lo++)
        if (!system || !vs->codes[lo].system || strcmp(system, vs->codes[lo].system) == 0) return 1;
    return 0;
}

typedef struct code_ref {
    const char *system, *code;
} code_ref;

static size_t collect_codes(const fhir_node *n, code_ref *out, size_t cap)
{
    const char *t = n->type->name;
    size_t k = 0;
    if (model_is_primitive(n->type)) {
        if (n->value && cap) out[k++] = (code_ref){NULL, n->value};
    } else if (strcmp(t, "Coding") == 0 || strcmp(t, "Quantity") == 0 ||
               model_type_is(n->type, model_type_find("Quantity", 8))) {
        const char *c = kid_value(n, "code");
        if (c && cap) out[k++] = (code_ref){kid_value(n, "system"), c};
    } else if (strcmp(t, "CodeableConcept") == 0) {
        for (uint32_t i = 0; i < n->nkids && k < cap; i++) {
            const fhir_node *cd = &n->kids[i];
            if (strcmp(cd->elem->name, "coding") != 0) continue;
            const char *c = kid_value(cd, "code");
            if (c) out[k++] = (code_ref){kid_value(cd, "system"), c};
        }
    }
    return k;
}

static void check_binding(vctx *v, const pf_elem *e, const fhir_node *n)
{
    code_ref codes[32];
    size_t nc = collect_codes(n, codes, 32);
    if (!nc) return;
    const char *strength = e->strength == MODEL_BIND_REQUIRED ? "required" : "extensible";
    if (!e->vs) {
        issue(v, VALIDATE_WARNING, "code-invalid",
              "value set %s (%s binding) is not loaded: the code '%s' was not checked", e->vs_url,
              strength, codes[0].code);
        return;
    }
    for (size_t i = 0; i < nc; i++)
        if (vs_has(e->vs, codes[i].system, codes[i].code)) return;
    char shown[300];
    snprintf(shown, sizeof shown, "%s%s%s", codes[0].system ? codes[0].system : "",
             codes[0].system ? "#" : "", codes[0].code);
    if (e->vs->incomplete) {
        issue(v, VALIDATE_WARNING, "code-invalid",
              "the code '%s' could not be checked against value set %s (%s binding): %s", shown,
              e->vs_url, strength, e->vs->incomplete);
        return;
    }
    issue(v, e->strength == MODEL_BIND_REQUIRED ? VALIDATE_ERROR : VALIDATE_WARNING, "code-invalid",
          "the code '%s' is not in value set %s (%s binding)", shown, e->vs_url, strength);
}

/* ------------------------------------------------------------------------
 * The walk
 * ------------------------------------------------------------------------ */

static void check_elem(vctx *v, const profile *p, const pf_elem *e, const fhir_node *n);

/* Validates n against profile q (a type profile, an extension definition). */
static void validate_at(vctx *v, const profile *q, const fhir_node *n)
{
    if (v->depth >= PROFILE_MAX_NESTING) {
        issue(v, VALIDATE_WARNING, "too-costly",
              "profiles nest deeper than PROFILE_MAX_NESTING (%u): %s not checked here",
              PROFILE_MAX_NESTING, q->url);
        return;
    }
    if (!model_type_is(n->type, q->mtype)) {
        issue(v, VALIDATE_ERROR, "structure", "a %s cannot conform to profile %s (a %s)",
              n->type->name, q->url, q->type);
        return;
    }
    v->depth++;
    check_elem(v, q, &q->elems[0], n);
    v->depth--;
}

/* 1 when n conforms to q (no error), checked silently. */
static int conforms(vctx *v, const profile *q, const fhir_node *n)
{
    int was = v->silent;
    size_t errs = v->errors;
    v->silent = 1;
    validate_at(v, q, n);
    int ok = v->errors == errs;
    v->silent = was;
    v->errors = errs;
    return ok;
}

static const pf_type *type_entry(const pf_elem *e, const fhir_node *n)
{
    for (uint16_t t = 0; t < e->ntypes; t++)
        if (e->types[t].type && model_type_is(n->type, e->types[t].type)) return &e->types[t];
    return NULL;
}

static void check_type_profiles(vctx *v, const pf_elem *e, const fhir_node *n)
{
    const pf_type *pt = type_entry(e, n);
    if (!pt || !pt->nprofiles) return;
    /* extensions are validated by their URL (check_extensions) */
    if (n->type == v->t_extension) return;
    if (pt->nprofiles == 1) {
        if (!pt->profile_refs[0]) {
            issue(v, VALIDATE_WARNING, "not-found",
                  "profile %s is not loaded: the %s was not checked against it", pt->profiles[0],
                  n->type->name);
            return;
        }
        validate_at(v, pt->profile_refs[0], n);
        return;
    }
    int any_loaded = 0;
    for (uint16_t k = 0; k < pt->nprofiles; k++) {
        if (!pt->profile_refs[k]) continue;
        any_loaded = 1;
        if (conforms(v, pt->profile_refs[k], n)) return;
    }
    if (!any_loaded) {
        issue(v, VALIDATE_WARNING, "not-found",
              "none of the %u profiles of this %s is loaded (first: %s): not checked",
              pt->nprofiles, n->type->name, pt->profiles[0]);
        return;
    }
    issue(v, VALIDATE_ERROR, "structure", "the %s conforms to none of its %u profiles (first: %s)",
          n->type->name, pt->nprofiles, pt->profiles[0]);
}

/* The resource type a reference names ("Patient" of "Patient/1",
 * "http://x/fhir/Patient/1/_history/2"), or 0 when it names none. */
static size_t reference_type(const char *ref, const char **type)
{
    if (!ref || ref[0] == '#' || strncmp(ref, "urn:", 4) == 0) return 0;
    size_t n = strlen(ref);
    const char *h = strstr(ref, "/_history/");
    if (h) n = (size_t)(h - ref);
    /* the two last segments */
    size_t end = n;
    while (end > 0 && ref[end - 1] != '/') end--;
    if (end == 0) return 0;
    size_t tend = end - 1, tstart = tend;
    while (tstart > 0 && ref[tstart - 1] != '/') tstart--;
    if (tend == tstart) return 0;
    *type = ref + tstart;
    return tend - tstart;
}

/* A reference to a contained resource (`#id`): the resource is at hand, so it
 * must conform to one of the target profiles of its type (when loaded). */
static void check_contained_target(vctx *v, const pf_type *pt, const char *ref, unsigned narrowed)
{
    const fhir_node *target = NULL;
    for (uint32_t i = 0; i < v->root->nkids && !target; i++) {
        const fhir_node *c = &v->root->kids[i];
        if (strcmp(c->elem->name, "contained") != 0) continue;
        const char *id = kid_value(c, "id");
        if (id && strcmp(id, ref + 1) == 0) target = c;
    }
    if (!target) return; /* the base validator reports a dangling #id */
    const char *first = NULL;
    int allowed_type = 0;
    for (uint16_t k = 0; k < pt->ntargets; k++) {
        const char *tt = pt->target_types[k];
        if (!tt || strcmp(tt, "Resource") == 0 || strcmp(tt, target->type->name) == 0)
            allowed_type = 1;
        const profile *q = pt->target_refs[k];
        if (!q || !model_type_is(target->type, q->mtype)) continue;
        if (conforms(v, q, target)) return;
        if (!first) first = q->url;
    }
    if (!allowed_type && narrowed)
        issue(v, VALIDATE_ERROR, "structure",
              "the contained %s %s is not a type this element allows (target profiles)",
              target->type->name, ref);
    else if (allowed_type && first)
        issue(v, VALIDATE_ERROR, "structure",
              "the contained %s %s conforms to none of the target profiles (first: %s)",
              target->type->name, ref, first);
}

static void check_target(vctx *v, const pf_elem *e, const fhir_node *n)
{
    const pf_type *pt = type_entry(e, n);
    if (!pt || !pt->ntargets) return;
    const char *ref = kid_value(n, "reference"), *rt = NULL;
    if (ref && ref[0] == '#' && ref[1]) {
        check_contained_target(v, pt, ref, e->flags & PF_TARGET_TYPES);
        return;
    }
    if (!(e->flags & PF_TARGET_TYPES)) return; /* the base's types: its check */
    size_t rl = reference_type(ref, &rt);
    if (!rl || !model_resource_find(rt, rl)) return;
    for (uint16_t k = 0; k < pt->ntargets; k++) {
        const char *tt = pt->target_types[k];
        if (!tt || strcmp(tt, "Resource") == 0 || strcmp(tt, "DomainResource") == 0) return;
        if (strlen(tt) == rl && strncmp(tt, rt, rl) == 0) return;
    }
    issue(v, VALIDATE_ERROR, "structure",
          "the reference's target type %.*s is not allowed; this element allows only %s%s (target "
          "profiles)",
          (int)rl, rt, pt->target_types[0] ? pt->target_types[0] : pt->targets[0],
          pt->ntargets > 1 ? " and others" : "");
}

static int item_true(vctx *v, const fp_item *it, int *is_bool)
{
    char tn[64];
    fp_item_type_name(it, tn, sizeof tn);
    *is_bool = strcmp(tn, "System.Boolean") == 0 || strcmp(tn, "FHIR.boolean") == 0;
    if (!*is_bool) return 0;
    tsg_buf_reset(&v->text);
    fp_item_write_text(it, &v->text);
    return v->text.len == 4 && memcmp(v->text.data, "true", 4) == 0;
}

static void check_constraints(vctx *v, const profile *p, const pf_elem *e, const fhir_node *n)
{
    for (uint16_t i = 0; i < e->ncons; i++) {
        const pf_constraint *c = &e->cons[i];
        validate_severity sev =
            strcmp(c->severity, "warning") == 0 ? VALIDATE_WARNING : VALIDATE_ERROR;
        if (!c->expr) {
            issue(v, VALIDATE_INFORMATION, "informational",
                  "constraint %s of %s could not be evaluated (it does not compile): %s", c->key,
                  p->url, c->expression);
            continue;
        }
        tsg_arena *a = scratch(v);
        if (!a) return;
        fp_collection out;
        tsg_error err;
        tsg_rc rc = fp_eval(c->expr, v->root, n, NULL, a, &out, &err);
        if (rc == TSG_ENOMEM) {
            v->oom = 1;
            return;
        }
        if (rc != TSG_OK) {
            issue(v, VALIDATE_INFORMATION, "informational",
                  "constraint %s of %s could not be evaluated (%s): %s", c->key, p->url,
                  err.message, c->expression);
            continue;
        }
        if (out.count == 0) continue;
        int is_bool = 0;
        int ok = out.count == 1 && item_true(v, fp_collection_item(&out, 0), &is_bool);
        if (ok) continue;
        if (out.count == 1 && !is_bool) {
            issue(v, VALIDATE_INFORMATION, "informational",
                  "constraint %s of %s did not give a boolean: %s", c->key, p->url, c->expression);
            continue;
        }
        issue(v, sev, "invariant", "constraint failed: %s: %s (%s)", c->key, c->human, p->url);
    }
}

/* ---- slicing ---- */

typedef int (*node_pred)(vctx *v, const fhir_node *n, const pf_slice_key *k);

/* Calls pred on every node reached from n by steps[i..]; 1 when any says so. */
static int steps_any(vctx *v, const fhir_node *n, const pf_disc *d, uint16_t i, node_pred pred,
                     const pf_slice_key *k)
{
    if (i == d->nsteps) return pred(v, n, k);
    for (uint32_t c = 0; c < n->nkids; c++) {
        const fhir_node *kid = &n->kids[c];
        if (strcmp(kid->elem->name, d->steps[i]) != 0) continue;
        if (d->step_urls[i]) {
            const char *u = kid_value(kid, "url");
            if (!u || strcmp(u, d->step_urls[i]) != 0) continue;
        }
        if (steps_any(v, kid, d, i + 1, pred, k)) return 1;
    }
    return 0;
}

static int pred_value(vctx *v, const fhir_node *n, const pf_slice_key *k)
{
    (void)v;
    return jmatch(k->value, n, k->exact, 0);
}

static int pred_exists(vctx *v, const fhir_node *n, const pf_slice_key *k)
{
    (void)v, (void)n, (void)k;
    return 1;
}

static int pred_type(vctx *v, const fhir_node *n, const pf_slice_key *k)
{
    (void)v;
    for (uint16_t t = 0; t < k->ntypes; t++)
        if (model_type_is(n->type, k->types[t])) return 1;
    return 0;
}

static int pred_profile(vctx *v, const fhir_node *n, const pf_slice_key *k)
{
    if (!k->profile) return 0;
    return conforms(v, k->profile, n);
}

static int disc_any(vctx *v, const fhir_node *kid, const pf_disc *d, node_pred pred,
                    const pf_slice_key *k)
{
    if (!d->expr) return steps_any(v, kid, d, 0, pred, k);
    tsg_arena *a = scratch(v);
    if (!a) return 0;
    fp_collection out;
    if (fp_eval(d->expr, v->root, kid, NULL, a, &out, NULL) != TSG_OK) return 0;
    for (size_t i = 0; i < out.count; i++) {
        const fhir_node *nn = fp_item_node(fp_collection_item(&out, i));
        if (nn && pred(v, nn, k)) return 1;
    }
    return 0;
}

static int slice_matches(vctx *v, const pf_elem *parent, const pf_elem *s, const fhir_node *kid)
{
    if (!parent->ndisc || !s->keys) return 0;
    for (uint16_t d = 0; d < parent->ndisc; d++) {
        const pf_disc *pd = &parent->disc[d];
        const pf_slice_key *k = &s->keys[d];
        if (!k->known) return 0;
        int r;
        switch (pd->kind) {
        case PF_DISC_VALUE:
        case PF_DISC_PATTERN:
            r = disc_any(v, kid, pd, pred_value, k);
            break;
        case PF_DISC_EXISTS:
            r = disc_any(v, kid, pd, pred_exists, k) == k->exists;
            break;
        case PF_DISC_TYPE:
            r = disc_any(v, kid, pd, pred_type, k);
            break;
        default:
            r = disc_any(v, kid, pd, pred_profile, k);
            break;
        }
        if (!r) return 0;
    }
    return 1;
}

#define PF_SLICE_STACK 256u

static void check_slicing(vctx *v, const profile *p, const pf_elem *e, const fhir_node *kids,
                          uint32_t cnt)
{
    int32_t stack_of[PF_SLICE_STACK];
    uint32_t stack_count[64];
    int32_t *slice_of = stack_of;
    uint32_t *count = stack_count;
    if (cnt > PF_SLICE_STACK || e->nslices > 64) {
        tsg_arena *a = scratch(v);
        if (!a) return;
        slice_of = tsg_arena_alloc(a, (cnt + 1) * sizeof *slice_of);
        count = tsg_arena_zalloc(a, (e->nslices + 1) * sizeof *count);
        if (!slice_of || !count) {
            v->oom = 1;
            return;
        }
    } else {
        memset(stack_count, 0, sizeof stack_count);
    }
    const char *name = e->melem->name;
    int32_t last = -1;
    int unmatched_seen = 0;
    for (uint32_t i = 0; i < cnt; i++) {
        const fhir_node *kid = &kids[i];
        slice_of[i] = -1;
        for (uint32_t s = 0; s < e->nslices; s++)
            if (slice_matches(v, e, &p->elems[e->slices + s], kid)) {
                slice_of[i] = (int32_t)s;
                break;
            }
        size_t mark = path_push(v, kid);
        int32_t s = slice_of[i];
        if (s < 0) {
            if (e->rules == PF_RULES_CLOSED)
                issue(v, VALIDATE_ERROR, "structure",
                      "this %s matches none of the slices of %s, and the slicing is closed", name,
                      e->id);
            unmatched_seen = 1;
        } else {
            count[s]++;
            if (e->rules == PF_RULES_OPEN_AT_END && unmatched_seen)
                issue(v, VALIDATE_ERROR, "structure",
                      "this %s is in slice '%s' but follows an item that matches no slice "
                      "(the slicing of %s is openAtEnd)",
                      name, p->elems[e->slices + (uint32_t)s].slice_name, e->id);
            if (e->ordered && s < last)
                issue(v, VALIDATE_ERROR, "structure",
                      "this %s is in slice '%s', which comes before slice '%s' (the slicing of "
                      "%s is ordered)",
                      name, p->elems[e->slices + (uint32_t)s].slice_name,
                      p->elems[e->slices + (uint32_t)last].slice_name, e->id);
            if (s > last) last = s;
        }
        path_pop(v, mark);
    }
    for (uint32_t s = 0; s < e->nslices; s++) {
        const pf_elem *sl = &p->elems[e->slices + s];
        if (count[s] < sl->min || count[s] > sl->max) {
            size_t mark = path_push_name(v, name);
            if (count[s] < sl->min)
                issue(v, VALIDATE_ERROR, "structure",
                      "slice '%s' of %s needs at least %u item%s, found %u", sl->slice_name, e->id,
                      sl->min, sl->min == 1 ? "" : "s", count[s]);
            else
                issue(v, VALIDATE_ERROR, "structure",
                      "slice '%s' of %s allows at most %u item%s, found %u", sl->slice_name, e->id,
                      sl->max, sl->max == 1 ? "" : "s", count[s]);
            path_pop(v, mark);
        }
    }
    for (uint32_t i = 0; i < cnt; i++) {
        if (slice_of[i] < 0) continue;
        size_t mark = path_push(v, &kids[i]);
        check_elem(v, p, &p->elems[e->slices + (uint32_t)slice_of[i]], &kids[i]);
        path_pop(v, mark);
    }
}

static void check_children(vctx *v, const profile *p, const pf_elem *ce, const fhir_node *n)
{
    uint32_t first = n->nkids, cnt = 0;
    for (uint32_t i = 0; i < n->nkids; i++) {
        if (n->kids[i].elem != ce->melem || (ce->only && n->kids[i].type != ce->only)) {
            if (cnt) break;
            continue;
        }
        if (!cnt) first = i;
        cnt++;
    }
    if (ce->flags & PF_CHECK_CARD && (cnt < ce->min || cnt > ce->max)) {
        size_t mark = path_push_name(v, ce->melem->name);
        if (cnt < ce->min)
            issue(v, VALIDATE_ERROR, cnt ? "structure" : "required",
                  "%s: minimum required = %u, but only found %u (profile)", ce->id, ce->min, cnt);
        else
            issue(v, VALIDATE_ERROR, "structure",
                  "%s: maximum allowed = %u, but found %u (profile)", ce->id, ce->max, cnt);
        path_pop(v, mark);
    }
    for (uint32_t i = 0; i < cnt && !v->oom; i++) {
        const fhir_node *k = &n->kids[first + i];
        size_t mark = path_push(v, k);
        check_elem(v, p, ce, k);
        path_pop(v, mark);
    }
    /* with no items, still: slices with a minimum */
    if (ce->sliced && (ce->nslices || ce->rules == PF_RULES_CLOSED))
        check_slicing(v, p, ce, cnt ? &n->kids[first] : NULL, cnt);
}

static void check_elem(vctx *v, const profile *p, const pf_elem *e, const fhir_node *n)
{
    if (v->oom) return;
    if (e->flags & PF_CHECK_TYPES && !type_entry(e, n)) {
        issue(v, VALIDATE_ERROR, "structure", "a %s is not allowed here by the profile (%s)",
              n->type->name, e->id);
        return;
    }
    if (e->fixed && !jmatch(e->fixed, n, 1, 0))
        issue(v, VALIDATE_ERROR, "value", "the value must be exactly %s (%s of %s)", e->value_text,
              e->fixed_key, e->id);
    if (e->pattern && !jmatch(e->pattern, n, 0, 0))
        issue(v, VALIDATE_ERROR, "value", "the value must match the pattern %s (%s of %s)",
              e->value_text, e->fixed_key, e->id);
    if (e->flags & PF_CHECK_BINDING) check_binding(v, e, n);
    if (e->flags & PF_TYPE_PROFILES) check_type_profiles(v, e, n);
    if (e->flags & PF_TARGETS) check_target(v, e, n);
    if (e->ncons) check_constraints(v, p, e, n);
    for (uint32_t k = 0; k < e->nkids && !v->oom; k++)
        check_children(v, p, &p->elems[e->kids + k], n);
}

/* 1 when an extension may sit on node parent per the definition's contexts:
 * the parent's type (or a base of it: Element, Resource), or its element path
 * (`Dosage.method`, `MedicationRequest.dispenseRequest`). */
static int context_allows(const profile *ext, const fhir_node *parent)
{
    if (ext->context_any) return 1;
    for (uint16_t i = 0; i < ext->ncontexts; i++) {
        const char *c = ext->contexts[i];
        if (parent->elem && strcmp(parent->elem->path, c) == 0) return 1;
        if (strcmp(parent->type->name, c) == 0) return 1;
        const model_type *t = model_type_find(c, strlen(c));
        if (t && model_type_is(parent->type, t)) return 1;
    }
    return 0;
}

/* Every extension whose URL is a loaded extension definition, anywhere. */
static void check_extensions(vctx *v, const profile_registry *r, const fhir_node *n)
{
    for (uint32_t i = 0; i < n->nkids && !v->oom; i++) {
        const fhir_node *k = &n->kids[i];
        if (model_is_primitive(k->type) && !k->nkids) continue;
        size_t mark = path_push(v, k);
        if (k->type == v->t_extension) {
            const profile *ext = profile_lookup(r, kid_value(k, "url"));
            if (ext && ext->is_extension) {
                if (!context_allows(ext, n))
                    issue(v, VALIDATE_ERROR, "structure",
                          "extension %s is not allowed on a %s here (its contexts: %s%s)", ext->url,
                          n->type->name, ext->contexts[0], ext->ncontexts > 1 ? " and others" : "");
                validate_at(v, ext, k);
            }
        }
        check_extensions(v, r, k);
        path_pop(v, mark);
    }
}

tsg_rc profile_validate(const profile *p, const fhir_node *root, validate_issue_fn report,
                        void *ctx)
{
    vctx vc;
    memset(&vc, 0, sizeof vc);
    vctx *v = &vc;
    v->root = root;
    v->t_extension = model_type_find("Extension", 9);
    v->report = report;
    v->rctx = ctx;
    tsg_buf_init(&v->text, 1u << 20);
    if (!model_type_is(root->type, p->mtype)) {
        issue(v, VALIDATE_ERROR, "structure", "the resource is a %s; profile %s constrains %s",
              root->type->name, p->url, p->type);
    } else {
        check_elem(v, p, &p->elems[0], root);
        check_extensions(v, p->reg, root);
    }
    tsg_rc rc = v->oom ? TSG_ENOMEM : TSG_OK;
    tsg_buf_free(&v->text);
    tsg_arena_free(v->arena);
    return rc;
}
