/*
 * fhir_access.c — whose data a client may see and write: the care-team and
 * consent rule of issue 5 (the design, the consent model and what it costs:
 * rest_internal.h, "Access").
 */
#include "rest_internal.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../auth/auth.h"
#include "../store/redis.h"

#define ACL_BUCKETS 256u

/* The allowed patients of one organisation at one epoch. */
typedef struct acl_entry {
    char org[AUTH_TEXT_MAX];
    uint64_t epoch;
    long long until_ms;      /* recompute at this time (a period starts or ends) */
    bool soft;               /* until_ms is only the max age: no period boundary, and a refresh
                                may be computed while the others still use this entry */
    _Atomic bool refreshing; /* one thread computes the successor of a soft entry */
    char **pids;             /* sorted */
    size_t n;
    _Atomic int refs;
    struct acl_entry *next;
} acl_entry;

struct rest_access {
    unsigned long long serial; /* this cache among all made (acl_memo) */
    redis_client *rc;
    store *st;
    int consent_default_allow;
    pthread_mutex_t mu;
    acl_entry *buckets[ACL_BUCKETS];
    _Atomic uint64_t epoch;
    _Atomic long long last_poll_ms;
    long long redis_gen; /* under mu */
};

tsg_rc rest_access_new(redis_client *rc, store *st, const char *consent_default, rest_access **out,
                       tsg_error *err)
{
    *out = NULL;
    int allow;
    if (!strcmp(consent_default, "deny"))
        allow = 0;
    else if (!strcmp(consent_default, "care-team"))
        allow = 1;
    else
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "consent_default must be \"deny\" or \"care-team\", not '%s'",
                             consent_default);
    rest_access *a = calloc(1, sizeof *a);
    if (!a) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    static _Atomic unsigned long long serials;
    a->serial = atomic_fetch_add(&serials, 1) + 1;
    a->rc = rc;
    a->st = st;
    a->consent_default_allow = allow;
    tsg_mutex_init_adaptive(&a->mu);
    a->redis_gen = -1;
    *out = a;
    return TSG_OK;
}

static void entry_put(acl_entry *e)
{
    if (!e || atomic_fetch_sub(&e->refs, 1) != 1) return;
    for (size_t i = 0; i < e->n; i++) free(e->pids[i]);
    free(e->pids);
    free(e);
}

void rest_access_free(rest_access *a)
{
    if (!a) return;
    for (size_t b = 0; b < ACL_BUCKETS; b++)
        for (acl_entry *e = a->buckets[b], *nx; e; e = nx) {
            nx = e->next;
            entry_put(e);
        }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void rest_access_changed(rest_access *a)
{
    if (a) atomic_fetch_add(&a->epoch, 1);
}

int rest_access_type_watched(const char *type)
{
    return !strcmp(type, "CareTeam") || !strcmp(type, "Consent") ||
           !strcmp(type, "PractitionerRole");
}

/* The registry: directories and definitions every client may read (sorted). */
static const char *const REGISTRY[] = {"ActivityDefinition",
                                       "CapabilityStatement",
                                       "CatalogEntry",
                                       "ChargeItemDefinition",
                                       "CodeSystem",
                                       "CompartmentDefinition",
                                       "ConceptMap",
                                       "DeviceDefinition",
                                       "EffectEvidenceSynthesis",
                                       "Endpoint",
                                       "EventDefinition",
                                       "Evidence",
                                       "EvidenceVariable",
                                       "ExampleScenario",
                                       "GraphDefinition",
                                       "HealthcareService",
                                       "ImplementationGuide",
                                       "InsurancePlan",
                                       "Library",
                                       "Location",
                                       "Measure",
                                       "Medication",
                                       "MedicationKnowledge",
                                       "MedicinalProduct",
                                       "MedicinalProductAuthorization",
                                       "MedicinalProductContraindication",
                                       "MedicinalProductIndication",
                                       "MedicinalProductIngredient",
                                       "MedicinalProductInteraction",
                                       "MedicinalProductManufactured",
                                       "MedicinalProductPackaged",
                                       "MedicinalProductPharmaceutical",
                                       "MedicinalProductUndesirableEffect",
                                       "MessageDefinition",
                                       "NamingSystem",
                                       "ObservationDefinition",
                                       "OperationDefinition",
                                       "Organization",
                                       "OrganizationAffiliation",
                                       "PlanDefinition",
                                       "Practitioner",
                                       "PractitionerRole",
                                       "Questionnaire",
                                       "ResearchDefinition",
                                       "ResearchElementDefinition",
                                       "RiskEvidenceSynthesis",
                                       "SearchParameter",
                                       "Slot",
                                       "SpecimenDefinition",
                                       "StructureDefinition",
                                       "StructureMap",
                                       "Substance",
                                       "SubstanceNucleicAcid",
                                       "SubstancePolymer",
                                       "SubstanceProtein",
                                       "SubstanceReferenceInformation",
                                       "SubstanceSourceMaterial",
                                       "SubstanceSpecification",
                                       "TerminologyCapabilities",
                                       "TestScript",
                                       "ValueSet"};

static int cmp_name(const void *k, const void *e)
{
    return strcmp(k, *(const char *const *)e);
}

rest_access_class rest_access_class_of(const char *type)
{
    if (rest_type_in_compartment(type)) return REST_ACCESS_PATIENT;
    if (bsearch(type, REGISTRY, sizeof REGISTRY / sizeof REGISTRY[0], sizeof REGISTRY[0], cmp_name))
        return REST_ACCESS_REGISTRY;
    return REST_ACCESS_ADMIN;
}

int rest_type_in_compartment(const char *type)
{
    if (!strcmp(type, "Patient")) return 1;
    for (const rest_compartment_rule *r = rest_patient_compartment; r->type; r++)
        if (!strcmp(r->type, type)) return 1;
    for (const rest_compartment_rule *r = rest_patient_compartment_local; r->type; r++)
        if (!strcmp(r->type, type)) return 1;
    return 0;
}

tsg_rc rest_binary_context(rest_ctx *ctx, tsg_arena *a, const fhir_node *root, store_write *w,
                           tsg_error *err)
{
    if (w->compartment || strcmp(root->type->name, "Binary")) return TSG_OK;
    const char *ref = NULL;
    for (uint32_t i = 0; i < root->nkids && !ref; i++)
        if (!strcmp(root->kids[i].elem->name, "securityContext"))
            ref = rest_child_value(&root->kids[i], "reference");
    const char *slash = ref ? strchr(ref, '/') : NULL;
    if (!slash || slash == ref || (size_t)(slash - ref) >= 64 || !rest_id_valid(slash + 1))
        return TSG_OK;
    char type[64];
    memcpy(type, ref, (size_t)(slash - ref));
    type[slash - ref] = '\0';
    if (!model_resource_find(type, strlen(type))) return TSG_OK;
    store_resource r;
    tsg_rc rc = store_read(ctx->st, type, slash + 1, 0, &r, err);
    if (rc) return rc;
    if (r.found && r.compartment[0]) {
        w->compartment = tsg_arena_strndup(a, r.compartment, strlen(r.compartment));
        if (!w->compartment) rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    store_resource_clear(&r);
    return rc;
}

/* Types an administrator manages for the whole network (their area): readable
 * by admins whatever the care team. */
static int admin_managed(const char *type)
{
    return !strcmp(type, "Patient") || !strcmp(type, "CareTeam") || !strcmp(type, "Consent");
}

/* ------------------------------------------------------------------------
 * Evaluating the rule
 * ------------------------------------------------------------------------ */

static void bound(long long *until, long long t)
{
    if (t < *until) *until = t;
}

/* 1 when now lies in the Period p (absent: always); boundaries after now go to *until. A
 * malformed date (stored resources are validated) counts as outside. */
static int in_period(const json_t *p, long long now, long long *until)
{
    if (!json_is_object(p)) return 1;
    const char *s = json_string_value(json_object_get(p, "start"));
    const char *e = json_string_value(json_object_get(p, "end"));
    int ok = 1;
    int64_t lo, hi;
    if (s) {
        if (search_date_range(s, strlen(s), &lo, &hi)) return 0;
        if (lo > now) {
            ok = 0;
            bound(until, lo);
        }
    }
    if (e) {
        if (search_date_range(e, strlen(e), &lo, &hi)) return 0;
        if (hi <= now)
            ok = 0;
        else
            bound(until, hi);
    }
    return ok;
}

/* The "reference" of a Reference object, or "". */
static const char *ref_of(const json_t *r)
{
    const char *s = json_string_value(json_object_get(r, "reference"));
    return s ? s : "";
}

/* A PractitionerRole read for the rule. */
typedef struct role_fact {
    const char *ref; /* "PractitionerRole/<id>" */
    json_t *body;    /* NULL: absent or deleted */
} role_fact;

static const json_t *role_find(const role_fact *roles, size_t n, const char *ref)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(roles[i].ref, ref)) return roles[i].body;
    return NULL;
}

/* Whether org takes part in CareTeam ct now: as the member Organization or
 * through an active PractitionerRole of it, within every period involved. */
static int careteam_grants(const json_t *ct, const char *org, const role_fact *roles, size_t nroles,
                           long long now, long long *until)
{
    const char *status = json_string_value(json_object_get(ct, "status"));
    if (status && strcmp(status, "active")) return 0;
    if (!in_period(json_object_get(ct, "period"), now, until)) return 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(ct, "participant"), i, p)
    {
        const char *m = ref_of(json_object_get(p, "member"));
        if (!in_period(json_object_get(p, "period"), now, until)) continue;
        if (!strcmp(m, org)) return 1;
        if (strncmp(m, "PractitionerRole/", 17)) continue;
        const json_t *r = role_find(roles, nroles, m);
        if (!r || json_is_false(json_object_get(r, "active"))) continue;
        if (strcmp(ref_of(json_object_get(r, "organization")), org)) continue;
        if (in_period(json_object_get(r, "period"), now, until)) return 1;
    }
    return 0;
}

/* Whether org is among the actors of provision p (no actor: everyone). */
static int names(const json_t *p, const char *org)
{
    const json_t *actors = json_object_get(p, "actor");
    if (!json_array_size(actors)) return 1;
    size_t i;
    json_t *a;
    json_array_foreach(actors, i,
                       a) if (!strcmp(ref_of(json_object_get(a, "reference")), org)) return 1;
    return 0;
}

/* A privacy consent in force: status active, scope patient-privacy. */
static int privacy_consent(const json_t *c)
{
    const char *status = json_string_value(json_object_get(c, "status"));
    if (!status || strcmp(status, "active")) return 0;
    size_t i;
    json_t *cd;
    json_array_foreach(json_object_get(json_object_get(c, "scope"), "coding"), i, cd)
    {
        const char *code = json_string_value(json_object_get(cd, "code"));
        if (code && !strcmp(code, "patient-privacy")) return 1;
    }
    return 0;
}

/* The consent decision for org: 1 share, 0 not. Deny wins over permit; with no
 * privacy consent in force at all, default_allow decides. */
static int consent_allows(json_t *const *consents, size_t n, const char *org, int default_allow,
                          long long now, long long *until)
{
    int any = 0, permit = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = consents[i];
        if (!privacy_consent(c)) continue;
        any = 1;
        const json_t *prov = json_object_get(c, "provision");
        if (!json_is_object(prov) || !in_period(json_object_get(prov, "period"), now, until))
            continue;
        const char *type = json_string_value(json_object_get(prov, "type"));
        if (!type) continue;
        if (!strcmp(type, "deny")) {
            if (names(prov, org)) return 0;
            continue;
        }
        if (strcmp(type, "permit") || !names(prov, org)) continue;
        size_t j;
        json_t *sub;
        json_array_foreach(json_object_get(prov, "provision"), j, sub)
        {
            const char *st = json_string_value(json_object_get(sub, "type"));
            if (st && !strcmp(st, "deny") && names(sub, org) &&
                in_period(json_object_get(sub, "period"), now, until))
                return 0;
        }
        permit = 1;
    }
    return permit || (!any && default_allow);
}

/* ------------------------------------------------------------------------
 * Reading the facts (a few pipelined round trips for any number of patients)
 * ------------------------------------------------------------------------ */

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static int strs_add(strs *s, const char *p, size_t len)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        char **nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return -1;
        s->v = nv;
        s->cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, p, len);
    c[len] = 0;
    s->v[s->n++] = c;
    return 0;
}

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_pstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and removes duplicates. */
static void strs_uniq(strs *s)
{
    if (!s->n) return;
    qsort(s->v, s->n, sizeof *s->v, cmp_pstr);
    size_t m = 1;
    for (size_t i = 1; i < s->n; i++) {
        if (!strcmp(s->v[i], s->v[m - 1]))
            free(s->v[i]);
        else
            s->v[m++] = s->v[i];
    }
    s->n = m;
}

/* Runs SMEMBERS on each key (one round trip); every member goes to out, each
 * prefixed with pre (NULL: none). */
static tsg_rc smembers_all(rest_access *a, char **keys, size_t n, const char *pre, strs *out,
                           redisReply ***keep, tsg_error *err)
{
    if (!n) return TSG_OK;
    redis_cmd *cmds = calloc(n, sizeof *cmds);
    const char **argv = calloc(2 * n, sizeof *argv);
    redisReply **reps = calloc(n, sizeof *reps);
    tsg_rc rc = TSG_OK;
    if (!cmds || !argv || !reps) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        argv[2 * i] = "SMEMBERS";
        argv[2 * i + 1] = keys[i];
        cmds[i] = (redis_cmd){2, argv + 2 * i, NULL};
    }
    rc = redis_pipeline(a->rc, n, cmds, reps, err);
    if (rc) goto done;
    size_t pl = pre ? strlen(pre) : 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const redisReply *r = reps[i];
        for (size_t j = 0; r && r->type == REDIS_REPLY_ARRAY && j < r->elements && !rc; j++) {
            const redisReply *m = r->element[j];
            if (m->type != REDIS_REPLY_STRING) continue;
            char buf[256];
            if (pl + m->len >= sizeof buf) continue;
            if (pl) memcpy(buf, pre, pl);
            memcpy(buf + pl, m->str, m->len);
            if (strs_add(out, buf, pl + m->len))
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        }
    }
done:
    if (keep && !rc) {
        *keep = reps;
        reps = NULL;
    }
    for (size_t i = 0; reps && i < n; i++) freeReplyObject(reps[i]);
    free(reps);
    free(cmds);
    free(argv);
    return rc;
}

/* Reads the bodies of refs (JSON objects; NULL when absent, deleted or broken). */
static tsg_rc read_bodies(rest_access *a, char **refs, size_t n, json_t **out, tsg_error *err)
{
    if (!n) return TSG_OK;
    store_resource *res = calloc(n, sizeof *res);
    if (!res) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    tsg_rc rc = store_read_many(a->st, n, (const char *const *)refs, res, err);
    for (size_t i = 0; i < n; i++) {
        if (!rc && res[i].found && !res[i].deleted && res[i].body)
            out[i] = json_loadb(res[i].body, res[i].body_len, 0, NULL);
        store_resource_clear(&res[i]);
    }
    free(res);
    return rc;
}

static char *dupf(const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(fmt) + strlen(a) + (b ? strlen(b) : 0) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, a, b ? b : "");
    return s;
}

/*
 * Of the patients pids (sorted, unique), keeps in *allowed those org may
 * access now; *until gets the next time the answer may change.
 */
static tsg_rc eval_patients(rest_access *a, const char *org, strs *pids, strs *allowed,
                            long long now, long long *until, tsg_error *err)
{
    size_t n = pids->n;
    if (!n) return TSG_OK;
    tsg_rc rc = TSG_OK;
    char **keys = calloc(2 * n, sizeof *keys);
    redisReply **reps = NULL;
    strs refs = {0}, roles = {0};
    json_t **bodies = NULL, **rbodies = NULL;
    size_t *ct_of = NULL; /* per pid: index of its first CareTeam/Consent ref in refs, and counts */
    if (!keys) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    for (size_t i = 0; i < n; i++) {
        keys[2 * i] = dupf("tsg:ix:CareTeam:patient:r:Patient/%s%s", pids->v[i], NULL);
        keys[2 * i + 1] = dupf("tsg:ix:Consent:patient:r:Patient/%s%s", pids->v[i], NULL);
        if (!keys[2 * i] || !keys[2 * i + 1]) {
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
            goto done;
        }
    }
    /* 1: the CareTeams and Consents of every patient */
    strs ignore = {0};
    rc = smembers_all(a, keys, 2 * n, NULL, &ignore, &reps, err);
    strs_free(&ignore);
    if (rc) goto done;
    ct_of = calloc(4 * n, sizeof *ct_of);
    if (!ct_of) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        goto done;
    }
    for (size_t k = 0; k < 2 * n && !rc; k++) {
        ct_of[2 * k] = refs.n;
        const redisReply *r = reps[k];
        for (size_t j = 0; r && r->type == REDIS_REPLY_ARRAY && j < r->elements; j++) {
            const redisReply *m = r->element[j];
            if (m->type != REDIS_REPLY_STRING || m->len > STORE_LIMIT_ID) continue;
            char buf[96];
            int l = snprintf(buf, sizeof buf, "%s/%.*s", k % 2 ? "Consent" : "CareTeam",
                             (int)m->len, m->str);
            if (strs_add(&refs, buf, (size_t)l)) {
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
                break;
            }
        }
        ct_of[2 * k + 1] = refs.n - ct_of[2 * k];
    }
    if (rc) goto done;
    /* 2: their bodies */
    bodies = calloc(refs.n ? refs.n : 1, sizeof *bodies);
    if (!bodies) {
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        goto done;
    }
    rc = read_bodies(a, refs.v, refs.n, bodies, err);
    if (rc) goto done;
    /* 3: the PractitionerRoles named as CareTeam members */
    for (size_t i = 0; i < refs.n && !rc; i++) {
        if (!bodies[i] || strncmp(refs.v[i], "CareTeam/", 9)) continue;
        size_t j;
        json_t *p;
        json_array_foreach(json_object_get(bodies[i], "participant"), j, p)
        {
            const char *m = ref_of(json_object_get(p, "member"));
            if (!strncmp(m, "PractitionerRole/", 17) && strlen(m) < 17 + STORE_LIMIT_ID + 1 &&
                strs_add(&roles, m, strlen(m))) {
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
                break;
            }
        }
    }
    if (rc) goto done;
    strs_uniq(&roles);
    rbodies = calloc(roles.n ? roles.n : 1, sizeof *rbodies);
    role_fact *rf = calloc(roles.n ? roles.n : 1, sizeof *rf);
    if (!rbodies || !rf) {
        free(rf);
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        goto done;
    }
    rc = read_bodies(a, roles.v, roles.n, rbodies, err);
    for (size_t i = 0; i < roles.n; i++) rf[i] = (role_fact){roles.v[i], rbodies[i]};
    for (size_t i = 0; i < n && !rc; i++) {
        size_t c0 = ct_of[4 * i], cn = ct_of[4 * i + 1];     /* CareTeams */
        size_t k0 = ct_of[4 * i + 2], kn = ct_of[4 * i + 3]; /* Consents */
        int grant = 0;
        for (size_t j = 0; j < cn && !grant; j++)
            if (bodies[c0 + j] && careteam_grants(bodies[c0 + j], org, rf, roles.n, now, until))
                grant = 1;
        if (grant && consent_allows(bodies + k0, kn, org, a->consent_default_allow, now, until) &&
            strs_add(allowed, pids->v[i], strlen(pids->v[i])))
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    free(rf);
done:
    for (size_t i = 0; i < 2 * n; i++) {
        free(keys[i]);
        if (reps) freeReplyObject(reps[i]);
    }
    free(keys);
    free(reps);
    for (size_t i = 0; bodies && i < refs.n; i++) json_decref(bodies[i]);
    for (size_t i = 0; rbodies && i < roles.n; i++) json_decref(rbodies[i]);
    free(bodies);
    free(rbodies);
    free(ct_of);
    strs_free(&refs);
    strs_free(&roles);
    return rc;
}

/* Computes the allowed patients of org (a new entry, refs 1). */
static tsg_rc compute_org(rest_access *a, const char *org, uint64_t epoch, acl_entry **out,
                          tsg_error *err)
{
    *out = NULL;
    long long now = rest_now_ms();
    long long until = now + REST_ACCESS_MAX_AGE_MS;
    strs roles = {0}, teams = {0}, pids = {0}, allowed = {0};
    char *k = dupf("tsg:ix:PractitionerRole:organization:r:%s%s", org, NULL);
    tsg_rc rc = k ? smembers_all(a, &k, 1, "PractitionerRole/", &roles, NULL, err)
                  : tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    free(k);
    char **keys = NULL;
    if (!rc) {
        keys = calloc(roles.n + 1, sizeof *keys);
        if (!keys) rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    size_t nk = 0;
    if (!rc) {
        keys[nk++] = dupf("tsg:ix:CareTeam:participant:r:%s%s", org, NULL);
        for (size_t i = 0; i < roles.n; i++)
            keys[nk++] = dupf("tsg:ix:CareTeam:participant:r:%s%s", roles.v[i], NULL);
        for (size_t i = 0; i < nk; i++)
            if (!keys[i]) rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    if (!rc) rc = smembers_all(a, keys, nk, NULL, &teams, NULL, err);
    for (size_t i = 0; keys && i < nk; i++) free(keys[i]);
    free(keys);
    if (!rc) strs_uniq(&teams);
    /* the patients of those teams: their subjects */
    if (!rc && teams.n) {
        strs refs = {0};
        json_t **bodies = calloc(teams.n, sizeof *bodies);
        if (!bodies) rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        for (size_t i = 0; !rc && i < teams.n; i++) {
            char buf[96];
            int l = snprintf(buf, sizeof buf, "CareTeam/%s", teams.v[i]);
            if (l >= (int)sizeof buf) continue;
            if (strs_add(&refs, buf, (size_t)l))
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        }
        if (!rc) rc = read_bodies(a, refs.v, refs.n, bodies, err);
        for (size_t i = 0; !rc && i < refs.n; i++) {
            const char *subj = ref_of(json_object_get(bodies[i], "subject"));
            if (!strncmp(subj, "Patient/", 8) && subj[8] &&
                strs_add(&pids, subj + 8, strlen(subj + 8)))
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        }
        for (size_t i = 0; bodies && i < refs.n; i++) json_decref(bodies[i]);
        free(bodies);
        strs_free(&refs);
    }
    if (!rc) {
        strs_uniq(&pids);
        rc = eval_patients(a, org, &pids, &allowed, now, &until, err);
    }
    strs_free(&roles);
    strs_free(&teams);
    strs_free(&pids);
    acl_entry *e = NULL;
    if (!rc && !(e = calloc(1, sizeof *e)))
        rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    if (rc) {
        strs_free(&allowed);
        return rc;
    }
    snprintf(e->org, sizeof e->org, "%s", org);
    e->epoch = epoch;
    e->until_ms = until;
    e->soft = until == now + REST_ACCESS_MAX_AGE_MS;
    strs_uniq(&allowed);
    e->pids = allowed.v;
    e->n = allowed.n;
    atomic_store(&e->refs, 1);
    *out = e;
    return TSG_OK;
}

/* Notices changes written by other gateways: tsg:acl:gen, at most once per
 * REST_ACCESS_POLL_MS. */
static void poll_gen(rest_access *a, long long now)
{
    long long last = atomic_load(&a->last_poll_ms);
    if (now - last < REST_ACCESS_POLL_MS ||
        !atomic_compare_exchange_strong(&a->last_poll_ms, &last, now))
        return;
    const char *argv[] = {"GET", REST_ACCESS_GEN_KEY};
    redisReply *r = NULL;
    tsg_error err;
    if (redis_command_argv(a->rc, 2, argv, NULL, &r, &err)) {
        atomic_store(&a->last_poll_ms, last); /* try again with the next request */
        return;
    }
    long long g = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    pthread_mutex_lock(&a->mu);
    if (g != a->redis_gen) {
        if (a->redis_gen != -1) atomic_fetch_add(&a->epoch, 1);
        a->redis_gen = g;
    }
    pthread_mutex_unlock(&a->mu);
}

/*
 * Per thread: the entry this thread used last, with a reference of its own.
 * Every request of an organisation used the same entry, and took the cache's
 * mutex and two atomic reference counts on it: cache lines passed between
 * the cores on every read. The thread's own entry is used while it is what
 * the cache would give (the same cache, organisation and epoch, before its
 * until_ms); otherwise the cache decides and the thread keeps its answer. The
 * reference goes when the thread replaces the entry or ends (memo_key).
 */
static _Thread_local struct {
    unsigned long long serial; /* rest_access.serial; 0: none */
    acl_entry *e;
} acl_memo;
static pthread_key_t memo_key;
static bool memo_key_ok; /* without the key (no more keys: never seen), a thread that ends
                            leaves its entry behind; that is all */
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;

static void memo_end(void *unused)
{
    (void)unused;
    entry_put(acl_memo.e);
    acl_memo.e = NULL;
    acl_memo.serial = 0;
}

static void memo_init(void)
{
    memo_key_ok = pthread_key_create(&memo_key, memo_end) == 0;
}

/* Makes e (an entry of a, with the caller's reference, which passes to the
 * memo) this thread's entry. */
static void memo_keep(rest_access *a, acl_entry *e)
{
    pthread_once(&memo_once, memo_init);
    if (acl_memo.e == e) { /* (the same entry: the memo holds a reference already) */
        entry_put(e);
        return;
    }
    entry_put(acl_memo.e);
    acl_memo.e = e;
    acl_memo.serial = a->serial;
    if (memo_key_ok) pthread_setspecific(memo_key, e); /* non-NULL: memo_end runs at the end */
}

static size_t bucket_of(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h % ACL_BUCKETS);
}

static tsg_rc entry_find(rest_access *a, const char *org, long long now, uint64_t epoch,
                         acl_entry **out, tsg_error *err);

/* The current entry of org, computing it when missing or stale; valid until
 * this thread's next entry_get (the thread's memo holds a reference). */
static tsg_rc entry_get(rest_access *a, const char *org, acl_entry **out, tsg_error *err)
{
    long long now = rest_now_ms();
    poll_gen(a, now);
    uint64_t epoch = atomic_load(&a->epoch);
    acl_entry *m = acl_memo.e;
    if (m && acl_memo.serial == a->serial && m->epoch == epoch && now < m->until_ms &&
        !strcmp(m->org, org)) {
        *out = m;
        return TSG_OK;
    }
    tsg_rc rc = entry_find(a, org, now, epoch, &m, err);
    if (rc) return rc;
    memo_keep(a, m);
    *out = m;
    return TSG_OK;
}

/* entry_get without the memo: a reference the caller puts. */
static tsg_rc entry_find(rest_access *a, const char *org, long long now, uint64_t epoch,
                         acl_entry **out, tsg_error *err)
{
    size_t b = bucket_of(org);
    acl_entry *stale = NULL; /* a soft entry this thread refreshes */
    pthread_mutex_lock(&a->mu);
    for (acl_entry *e = a->buckets[b]; e; e = e->next) {
        if (strcmp(e->org, org) || e->epoch != epoch) continue;
        bool fresh = now < e->until_ms;
        /* past its max age only (nothing changed that the epoch would show, no
         * period boundary): one thread computes the successor, the others use
         * this one meanwhile, instead of every request computing it at once */
        if (!fresh && e->soft && atomic_exchange(&e->refreshing, true)) fresh = true;
        if (fresh) {
            atomic_fetch_add(&e->refs, 1);
            pthread_mutex_unlock(&a->mu);
            *out = e;
            return TSG_OK;
        }
        if (e->soft) stale = e;
    }
    pthread_mutex_unlock(&a->mu);
    acl_entry *e;
    tsg_rc rc = compute_org(a, org, epoch, &e, err);
    if (rc) {
        if (stale) atomic_store(&stale->refreshing, false); /* the next request tries again */
        return rc;
    }
    atomic_fetch_add(&e->refs, 1); /* the cache's and the caller's */
    pthread_mutex_lock(&a->mu);
    acl_entry **pp = &a->buckets[b];
    while (*pp && strcmp((*pp)->org, org)) pp = &(*pp)->next;
    if (*pp) { /* replace the old entry of org */
        acl_entry *old = *pp;
        e->next = old->next;
        *pp = e;
        entry_put(old);
    } else {
        e->next = a->buckets[b];
        a->buckets[b] = e;
    }
    pthread_mutex_unlock(&a->mu);
    *out = e;
    return TSG_OK;
}

/* Whether the sorted v[0..n) holds s. */
static int sorted_has(const char *const *v, size_t n, const char *s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v[mid], s);
        if (!c) return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The checks the handlers call
 * ------------------------------------------------------------------------ */

static const auth_principal *who_of(const rest_ctx *ctx, const http_request *req)
{
    return ctx->access ? req->principal : NULL;
}

int rest_access_sees(rest_ctx *ctx, const http_request *req, const char *type, const char *pid,
                     tsg_error *err)
{
    const auth_principal *who = who_of(ctx, req);
    if (!who) return 1;
    rest_access_class k = rest_access_class_of(type);
    if (k == REST_ACCESS_REGISTRY) return 1;
    if (k == REST_ACCESS_ADMIN || (who->admin && admin_managed(type))) return who->admin;
    if (!pid || !*pid) return 0;
    acl_entry *e;
    if (entry_get(ctx->access, who->org, &e, err)) return -1;
    return sorted_has((const char *const *)e->pids, e->n, pid);
}

tsg_rc rest_view_load(rest_ctx *ctx, const http_request *req, rest_view *v, tsg_error *err)
{
    memset(v, 0, sizeof *v);
    const auth_principal *who = who_of(ctx, req);
    if (!who) return TSG_OK;
    v->restricted = 1;
    v->admin = who->admin;
    acl_entry *e;
    tsg_rc rc = entry_get(ctx->access, who->org, &e, err);
    if (rc) return rc;
    v->pids = tsg_arena_alloc(req->arena, (e->n ? e->n : 1) * sizeof *v->pids);
    if (!v->pids) rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    for (size_t i = 0; !rc && i < e->n; i++)
        if (!(v->pids[i] = tsg_arena_strndup(req->arena, e->pids[i], strlen(e->pids[i]))))
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    if (!rc) v->n = e->n;
    return rc;
}

int rest_view_filters(const rest_view *v, const char *type)
{
    if (!v->restricted) return 0;
    rest_access_class k = rest_access_class_of(type);
    if (k == REST_ACCESS_REGISTRY) return 0;
    if (k == REST_ACCESS_ADMIN || admin_managed(type)) return !v->admin;
    return 1;
}

int rest_view_sees(const rest_view *v, const char *type, const char *pid)
{
    if (!rest_view_filters(v, type)) return 1;
    if (rest_access_class_of(type) == REST_ACCESS_ADMIN) return 0; /* and not admin */
    return pid && *pid && sorted_has(v->pids, v->n, pid);
}

/* ------------------------------------------------------------------------
 * Writes
 * ------------------------------------------------------------------------ */

/* The city of the first address (array or single) of a resource, or NULL. */
static const char *city_of(const json_t *r)
{
    const json_t *ad = json_object_get(r, "address");
    if (json_is_object(ad)) return json_string_value(json_object_get(ad, "city"));
    size_t i;
    json_t *x;
    json_array_foreach(ad, i, x)
    {
        const char *c = json_string_value(json_object_get(x, "city"));
        if (c) return c;
    }
    return NULL;
}

/* Reads ref's body (NULL when absent). */
static json_t *read_one(rest_ctx *ctx, const char *ref, tsg_error *err, tsg_rc *rc)
{
    char *refs[1] = {(char *)ref};
    json_t *b = NULL;
    *rc = read_bodies(ctx->access, refs, 1, &b, err);
    return b;
}

/*
 * The area of resource r (JSON) of type: its address city (Organization,
 * Location, Patient) or that of the Organization or Patient it belongs to
 * (PractitionerRole, HealthcareService, Endpoint, CareTeam, Consent). NULL:
 * the resource has no area (Practitioner, …). The result is malloc'd.
 */
static char *area_of(rest_ctx *ctx, const char *type, const json_t *r, tsg_error *err, tsg_rc *rc)
{
    *rc = TSG_OK;
    const char *c = NULL;
    const char *via = NULL;
    if (!strcmp(type, "Organization") || !strcmp(type, "Location") || !strcmp(type, "Patient"))
        c = city_of(r);
    else if (!strcmp(type, "PractitionerRole"))
        via = ref_of(json_object_get(r, "organization"));
    else if (!strcmp(type, "HealthcareService"))
        via = ref_of(json_object_get(r, "providedBy"));
    else if (!strcmp(type, "Endpoint"))
        via = ref_of(json_object_get(r, "managingOrganization"));
    else if (!strcmp(type, "CareTeam"))
        via = ref_of(json_object_get(r, "subject"));
    else if (!strcmp(type, "Consent"))
        via = ref_of(json_object_get(r, "patient"));
    if (c) return strdup(c);
    if (!via || (strncmp(via, "Organization/", 13) && strncmp(via, "Patient/", 8))) return NULL;
    json_t *t = read_one(ctx, via, err, rc);
    char *out = t && city_of(t) ? strdup(city_of(t)) : NULL;
    json_decref(t);
    return out;
}

int rest_access_write(rest_ctx *ctx, const http_request *req, const char *type, int creating,
                      const char *old_body, size_t old_len, const char *old_pid,
                      const char *new_body, size_t new_len, const char *new_pid, const char **why,
                      tsg_error *err)
{
    *why = NULL;
    const auth_principal *who = who_of(ctx, req);
    if (!who) return 0;
    int registry = rest_access_class_of(type) != REST_ACCESS_PATIENT;
    int managed = admin_managed(type);
    /* the registry, CareTeams and Consents (they decide who sees whom), and
     * patients: administrators, within their area; members may only update a
     * patient they care for (below) */
    if (registry || managed) {
        if (!who->admin) {
            if (registry) {
                *why = rest_access_class_of(type) == REST_ACCESS_REGISTRY
                           ? "only administrators may write registry resources"
                           : "only administrators may write resources of this type (it may hold "
                             "patient data outside any patient compartment)";
                return 403;
            }
            if (strcmp(type, "Patient")) {
                *why = "only administrators may write care teams and consents";
                return 403;
            }
            if (creating || !new_body) {
                *why = "only administrators may create or delete patients";
                return 403;
            }
        } else {
            if (!who->area[0]) return 0;
            const char *bodies[2] = {old_body, new_body};
            size_t lens[2] = {old_len, new_len};
            for (int i = 0; i < 2; i++) {
                if (!bodies[i]) continue;
                json_t *r = json_loadb(bodies[i], lens[i], 0, NULL);
                tsg_rc rc = TSG_OK;
                char *area = r ? area_of(ctx, type, r, err, &rc) : NULL;
                json_decref(r);
                if (rc) return -1;
                int outside = area && strcmp(area, who->area);
                free(area);
                if (outside) {
                    *why = "the resource belongs to another area than the administrator's";
                    return 403;
                }
            }
            return 0;
        }
    }
    /* the patient compartment: before and after the write */
    const char *pids[2] = {old_body ? old_pid : NULL, new_body ? new_pid : NULL};
    for (int i = 0; i < 2; i++) {
        if (i == 0 && !old_body) continue;
        if (i == 1 && !new_body) continue;
        int s = rest_access_sees(ctx, req, type, pids[i], err);
        if (s < 0) return -1;
        if (!s) {
            *why = pids[i] && *pids[i]
                       ? "the client's organisation may not write this patient's records (not in "
                         "the patient's care team, or no consent to share with it)"
                       : "a resource of this type must belong to a patient the client's "
                         "organisation cares for";
            return 403;
        }
    }
    return 0;
}
