/*
 * fhir_validate.c — validation on write and the $validate operation (issue 6,
 * wired into the REST layer; the validators are gateway/validate/).
 *
 * ## Validation on write
 *
 * Every resource a client writes — create, update, PATCH (the patched
 * result), conditional create/update, and each resource of a transaction or
 * batch — is validated before anything is stored, at its type's level:
 *
 *   off       the readers' checks only (structure, primitives)
 *   base      validate.h against the R4 definitions (cardinality, bindings,
 *             invariants, references, narrative, …)
 *   profiles  base + the resource's meta.profile + the profiles configured
 *             for its type (type_profiles), from the packages loaded at
 *             start-up (profile_paths; profile.h)
 *
 * configured by `validate` ("base,Patient=profiles,Binary=off": a level for
 * every type, then exceptions). An error or fatal issue rejects the write:
 * 422 with the whole OperationOutcome (every issue with its expression) for
 * a single write; in a Bundle, the entry fails with 422 and the first error
 * (a transaction then stores nothing). Warnings never reject.
 *
 * ## $validate
 *
 * POST /fhir/$validate, /fhir/<Type>/$validate and /fhir/<Type>/<id>/$validate
 * (and GET on the instance, which validates the stored current version) take
 * the resource as the body or as the `resource` parameter of a Parameters
 * body, and `profile` (a canonical URL; also as a query parameter). The
 * answer is 200 with the OperationOutcome whatever it holds (an invalid
 * resource is a successful validation); a body that is not FHIR at all is
 * 400. The `mode` parameter (create/update/delete) is accepted: the checks
 * are the same for each (delete needs none: an OperationOutcome that says so).
 */
#include "rest_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../validate/profile.h"
#include "../validate/validate.h"

#define VALIDATE_MAX_TYPE_PROFILES 64u /* "Type=URL" items of type_profiles */

struct rest_validation {
    validate_level def;
    /* exceptions: the type (by model pointer) and its level */
    const model_type *types[64];
    validate_level levels[64];
    size_t ntypes;
    profile_registry *reg; /* NULL: no package loaded */
};

/* "off" | "base" | "profiles" → level; -1 otherwise. */
static int level_of(const char *s, size_t n)
{
    if (n == 3 && !memcmp(s, "off", 3)) return VALIDATE_LEVEL_OFF;
    if (n == 4 && !memcmp(s, "base", 4)) return VALIDATE_LEVEL_BASE;
    if (n == 8 && !memcmp(s, "profiles", 8)) return VALIDATE_LEVEL_PROFILES;
    return -1;
}

/* Parses "level[,Type=level]…" into v. */
static tsg_rc parse_levels(rest_validation *v, const char *spec, tsg_error *err)
{
    const char *p = spec;
    int first = 1;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (first && !eq) {
            int l = level_of(p, n);
            if (l < 0)
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "validate: '%.*s' is not a level (off, base, profiles)",
                                     (int)n, p);
            v->def = (validate_level)l;
        } else {
            if (!eq)
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "validate: '%.*s' is not Type=level", (int)n, p);
            const model_type *t = model_resource_find(p, (size_t)(eq - p));
            int l = level_of(eq + 1, n - (size_t)(eq - p) - 1);
            if (!t || l < 0)
                return tsg_error_set(err, TSG_EINVAL, "invalid",
                                     "validate: '%.*s' is not Type=level with an R4 resource type "
                                     "and a level (off, base, profiles)",
                                     (int)n, p);
            if (v->ntypes == sizeof v->types / sizeof v->types[0])
                return tsg_error_set(err, TSG_ELIMIT, "invalid",
                                     "validate: more than %zu type exceptions",
                                     sizeof v->types / sizeof v->types[0]);
            v->types[v->ntypes] = t;
            v->levels[v->ntypes++] = (validate_level)l;
        }
        first = 0;
        p += n + (e ? 1 : 0);
        if (e && !*p)
            return tsg_error_set(err, TSG_EINVAL, "invalid", "validate: '%s' ends with ','", spec);
    }
    if (first) return tsg_error_set(err, TSG_EINVAL, "invalid", "validate is empty");
    return TSG_OK;
}

/* Definition problems of loaded profiles: logged, not fatal (profile.h). */
static void log_problem(void *ctx, validate_severity sev, const char *code, const char *expression,
                        const char *message)
{
    (void)ctx;
    if (sev > VALIDATE_ERROR) return;
    fprintf(stderr, "tsunagu serve: profiles: %s (%s) %s: %s\n", validate_severity_name(sev), code,
            expression, message);
}

tsg_rc rest_validation_open(const char *spec, const char *paths, const char *type_profiles,
                            rest_validation **out, tsg_error *err)
{
    *out = NULL;
    rest_validation *v = calloc(1, sizeof *v);
    if (!v) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    tsg_rc rc = parse_levels(v, spec, err);
    if (!rc) rc = profile_registry_open_list(paths, log_problem, NULL, &v->reg, err);
    /* type_profiles: "Type=URL Type=URL" */
    char *tp = NULL;
    if (!rc && type_profiles && *type_profiles) {
        if (!v->reg)
            rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                               "type_profiles names profiles, but no package is loaded "
                               "(profile_paths)");
        else if (!(tp = strdup(type_profiles)))
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        size_t count = 0;
        for (char *save = NULL, *t = tp ? strtok_r(tp, " \t\n", &save) : NULL; t && !rc;
             t = strtok_r(NULL, " \t\n", &save)) {
            char *eq = strchr(t, '=');
            if (!eq || eq == t || !eq[1] || ++count > VALIDATE_MAX_TYPE_PROFILES) {
                rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                                   "type_profiles: '%.100s' is not Type=URL (at most %u)", t,
                                   VALIDATE_MAX_TYPE_PROFILES);
                break;
            }
            *eq = 0;
            if (!profile_registry_find(v->reg, eq + 1))
                rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                                   "type_profiles: %s=%.200s: no loaded package has that profile",
                                   t, eq + 1);
            else
                rc = profile_registry_set_type_profile(v->reg, t, eq + 1, err);
        }
    }
    free(tp);
    if (rc) {
        rest_validation_free(v);
        return rc;
    }
    *out = v;
    return TSG_OK;
}

void rest_validation_free(rest_validation *v)
{
    if (!v) return;
    profile_registry_free(v->reg);
    free(v);
}

void rest_validation_describe(const rest_validation *v, char *out, size_t cap)
{
    static const char *const names[] = {"off", "base", "profiles"};
    size_t k = (size_t)snprintf(out, cap, "validation on write: %s", names[v->def]);
    for (size_t i = 0; i < v->ntypes && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, ", %s=%s", v->types[i]->name, names[v->levels[i]]);
    if (k < cap && v->reg) {
        profile_registry_stats st;
        profile_registry_stats_get(v->reg, &st);
        snprintf(out + k, cap - k, "; %zu profiles loaded", st.profiles);
    }
}

static validate_level level_for(const rest_validation *v, const model_type *t)
{
    for (size_t i = 0; i < v->ntypes; i++)
        if (v->types[i] == t) return v->levels[i];
    return v->def;
}

/* Fills opt for validating at level (profiles: the hook, meta.profile, the type's
 * configured profiles and `extra` requested ones). */
static tsg_rc options_for(const rest_validation *v, tsg_arena *a, const model_type *t,
                          validate_level level, const char *const *extra, size_t nextra,
                          validate_options *opt)
{
    memset(opt, 0, sizeof *opt);
    if (level != VALIDATE_LEVEL_PROFILES && !nextra) return TSG_OK;
    opt->meta_profiles = 1;
    if (v->reg) {
        opt->profile_validate = profile_registry_validate;
        opt->profile_ctx = v->reg;
    }
    const char *const *typed = NULL;
    size_t nt = v->reg && level == VALIDATE_LEVEL_PROFILES
                    ? profile_registry_type_profiles(v->reg, t->name, &typed)
                    : 0;
    const char **all = tsg_arena_alloc(a, (nt + nextra + 1) * sizeof *all);
    if (!all) return TSG_ENOMEM;
    for (size_t i = 0; i < nt; i++) all[i] = typed[i];
    for (size_t i = 0; i < nextra; i++) all[nt + i] = extra[i];
    opt->profiles = all;
    opt->nprofiles = nt + nextra;
    return TSG_OK;
}

/* validate_for_rest() at level with opt; the OperationOutcome (JSON) copied into a. */
static int run_validation(const fhir_node *root, validate_level level, const validate_options *opt,
                          tsg_arena *a, const char **outcome, size_t *outcome_len, int *rejected,
                          const char **first_error)
{
    tsg_buf b;
    tsg_buf_init(&b, TSG_LIMIT_BODY_BYTES);
    tsg_rc rc = validate_for_rest(root, level, opt, a, &b, rejected, first_error);
    if (!rc && tsg_buf_rc(&b)) rc = tsg_buf_rc(&b);
    *outcome = rc ? NULL : tsg_arena_strndup(a, b.data, b.len);
    *outcome_len = b.len;
    tsg_buf_free(&b);
    return *outcome ? 0 : -1;
}

int rest_validate_write(rest_ctx *ctx, tsg_arena *a, const fhir_node *root, const char **outcome,
                        size_t *outcome_len, const char **first_error)
{
    *outcome = NULL;
    *outcome_len = 0;
    *first_error = NULL;
    const rest_validation *v = ctx->val;
    if (!v) return 0;
    validate_level level = level_for(v, root->type);
    if (level == VALIDATE_LEVEL_OFF) return 0;
    validate_options opt;
    int rejected;
    if (options_for(v, a, root->type, level, NULL, 0, &opt) ||
        run_validation(root, level, &opt, a, outcome, outcome_len, &rejected, first_error))
        return 500;
    return rejected ? 422 : 0;
}

int rest_validate_single(const http_request *req, http_response *resp, rest_ctx *ctx,
                         const fhir_node *root)
{
    const char *oo, *first;
    size_t len;
    int st = rest_validate_write(ctx, req->arena, root, &oo, &len, &first);
    if (st == 500) {
        rest_fail(req, resp, 500, "exception", "validation ran out of memory");
        return 1;
    }
    if (st == 422) {
        rest_respond_resource(req, resp, 422, oo, len, 0, 0);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * $validate
 * ------------------------------------------------------------------------ */

/* The primitive value of Parameters.parameter p (value[x]), or NULL. */
static const char *param_value(const fhir_node *p)
{
    for (uint32_t i = 0; i < p->nkids; i++)
        if (!strcmp(p->kids[i].elem->name, "value")) return p->kids[i].value;
    return NULL;
}

void rest_validate_op(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                      const char *id)
{
    resp->interaction = "operation-validate";
    tsg_arena *a = req->arena;
    const char *profiles[16];
    size_t np = 0;
    const char *mode = NULL;
    for (size_t i = 0; i < req->n_params; i++) {
        if (!strcmp(req->params[i].name, "profile")) {
            if (np == 16) {
                rest_fail(req, resp, 400, "too-costly", "$validate: at most 16 profiles");
                return;
            }
            profiles[np++] = req->params[i].value;
        } else if (!strcmp(req->params[i].name, "mode")) {
            mode = req->params[i].value;
        } else if (req->params[i].name[0] != '_') {
            rest_fail(req, resp, 400, "not-supported",
                      "$validate: unknown parameter '%s' (profile, mode)", req->params[i].name);
            return;
        }
    }
    fhir_node *res = NULL;
    store_resource cur = {0};
    if (req->body && req->body_len) {
        fhir_node *root = rest_parse_body(req, resp);
        if (!root) return; /* answered: the body is not FHIR */
        if (!strcmp(root->type->name, "Parameters")) {
            for (uint32_t i = 0; i < root->nkids; i++) {
                const fhir_node *p = &root->kids[i];
                if (strcmp(p->elem->name, "parameter")) continue;
                const char *name = rest_child_value(p, "name");
                if (!name) continue;
                if (!strcmp(name, "resource")) {
                    for (uint32_t k = 0; k < p->nkids; k++)
                        if (!strcmp(p->kids[k].elem->name, "resource")) {
                            res = tsg_arena_alloc(a, sizeof *res);
                            if (!res) {
                                rest_fail(req, resp, 500, "exception", "out of memory");
                                return;
                            }
                            *res = p->kids[k];
                            res->elem = NULL; /* validated as a resource of its own */
                        }
                } else if (!strcmp(name, "profile")) {
                    const char *u = param_value(p);
                    if (u && np < 16) profiles[np++] = u;
                } else if (!strcmp(name, "mode")) {
                    mode = param_value(p);
                } else {
                    rest_fail(req, resp, 400, "not-supported",
                              "$validate: unknown parameter '%s' (resource, profile, mode)", name);
                    return;
                }
            }
            if (!res) {
                rest_fail(req, resp, 400, "required",
                          "$validate: the Parameters have no 'resource' parameter");
                return;
            }
        } else {
            res = root;
        }
    } else if (id) {
        tsg_error err;
        if (store_read(ctx->st, type, id, 0, &cur, &err)) {
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        if (cur.found && rest_hide(req, resp, ctx, type, id, cur.compartment)) {
            store_resource_clear(&cur);
            return;
        }
        if (!cur.found || cur.deleted) {
            int gone = cur.found;
            store_resource_clear(&cur);
            rest_fail(req, resp, gone ? 410 : 404, gone ? "deleted" : "not-found", "%s/%s %s", type,
                      id, gone ? "was deleted" : "is not known");
            return;
        }
        tsg_error_clear(&err);
        if (fhir_json_parse(a, cur.body, cur.body_len, NULL, &res, &err)) {
            store_resource_clear(&cur);
            rest_fail_err(req, resp, 500, &err);
            return;
        }
        store_resource_clear(&cur);
    } else {
        rest_fail(req, resp, 400, "required",
                  "$validate needs the resource: as the body, or as the 'resource' parameter");
        return;
    }
    if (mode && strcmp(mode, "create") && strcmp(mode, "update") && strcmp(mode, "delete")) {
        rest_fail(req, resp, 400, "invalid", "$validate: mode must be create, update or delete");
        return;
    }
    if (type && strcmp(res->type->name, type)) {
        rest_fail(req, resp, 400, "invalid", "$validate on %s got a %s", type, res->type->name);
        return;
    }
    if (id) {
        const char *rid = rest_child_value(res, "id");
        if (req->body && rid && strcmp(rid, id)) {
            rest_fail(req, resp, 400, "invalid", "$validate on %s/%s got a resource with id %s",
                      type, id, rid);
            return;
        }
    }
    const char *oo;
    size_t len;
    int rejected;
    validate_options opt;
    static const rest_validation none = {.def = VALIDATE_LEVEL_PROFILES};
    const rest_validation *v = ctx->val ? ctx->val : &none;
    /* mode=delete: nothing of the resource is checked (an outcome that says it passed) */
    validate_level level =
        mode && !strcmp(mode, "delete") ? VALIDATE_LEVEL_OFF : VALIDATE_LEVEL_PROFILES;
    if (options_for(v, a, res->type, level, profiles, np, &opt) ||
        run_validation(res, level, &opt, a, &oo, &len, &rejected, NULL)) {
        rest_fail(req, resp, 500, "exception", "validation ran out of memory");
        return;
    }
    rest_respond_resource(req, resp, 200, oo, len, 0, 0);
}
