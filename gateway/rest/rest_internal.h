/*
 * rest_internal.h — the FHIR interactions on top of the HTTP layer (http.h)
 * and the store (store.h). Private to the rest module; rest.h is its public face.
 */
#ifndef TSG_REST_INTERNAL_H
#define TSG_REST_INTERNAL_H

#include "http.h"
#include "rest.h"

#include "../model/model.h"
#include "../search/search.h"
#include "../store/store.h"

/* Limits of the REST layer. */
#define REST_LIMIT_COUNT_DEFAULT   20u    /* _count when not given */
#define REST_LIMIT_COUNT_MAX       1000u  /* largest _count */
#define REST_LIMIT_RETRIES         8u     /* optimistic-concurrency retries of one write */
#define REST_LIMIT_BUNDLE          10000u /* entries of a transaction or batch */
#define REST_MALLOC_MMAP_THRESHOLD (32 * 1024 * 1024)  /* blocks above this are mmap()ed */
#define REST_MALLOC_TRIM_THRESHOLD (256 * 1024 * 1024) /* free heap kept before trimming */
#define REST_NEAR_DEFAULT_KM       5.0                 /* near= without a distance */
#define REST_DEFAULT_THREADS       64u  /* HTTP threads of serve when not configured (min) */
#define REST_MAX_DEFAULT_THREADS   256u /* … and at most, whatever the core count */

/* What every handler shares (set up by rest_serve). */
typedef struct rest_validation rest_validation;
typedef struct rest_access rest_access;

/* The audit record of a write (auth_http_record of gateway/auth/auth_http.h). */
typedef bool (*rest_record_fn)(const http_request *req, const http_response *resp, int status,
                               const char *type, const char *id, long version, store_append *out,
                               void *user_data);

typedef struct rest_ctx {
    store *st;
    redis_client *redis;
    http_server *srv;
    size_t max_bundle_entries;
    const rest_validation *val; /* validation on write and $validate (fhir_validate.c) */
    rest_access *access;        /* who sees whom (fhir_access.c); NULL: auth off, no rule */
    rest_record_fn record;      /* NULL = no audit trail; else rest_commit puts a write's */
    void *record_ud;            /* audit record into its MULTI … EXEC */
} rest_ctx;

/* The handler of /fhir (fhir_rest.c). */
void fhir_handle(const http_request *req, http_response *resp, void *user_data);

/* One rule of the Patient compartment: a resource type and the search
 * parameters that put it in a patient's compartment (compartment_r4.c). */
typedef struct rest_compartment_rule {
    const char *type;
    const char *params[5];
} rest_compartment_rule;
extern const rest_compartment_rule rest_patient_compartment[];
/* Local additions for access control: Binary (by securityContext), Device (fhir_index.c). */
extern const rest_compartment_rule rest_patient_compartment_local[];

/* ------------------------------------------------------------------------
 * Resources (fhir_resource.c)
 * ------------------------------------------------------------------------ */

/* Answers an OperationOutcome in the request's format with a printf message. */
void rest_fail(const http_request *req, http_response *resp, int status, const char *code,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Answers err (from a parser, the store, …) with status chosen by its rc:
 * EINVAL 400 (or `invalid_status`), ELIMIT 413/400, EIO 503, ENOTSUP 501,
 * ENOMEM/EINTERNAL 500. */
void rest_fail_err(const http_request *req, http_response *resp, int invalid_status,
                   const tsg_error *err);

/* True when s is a FHIR id: [A-Za-z0-9\-\.]{1,64}. */
int rest_id_valid(const char *s);

/* Writes a new random id (UUID v4, 36 chars + NUL) into buf[37]. */
void rest_new_id(char buf[37]);

/* Writes ms since the epoch as a FHIR instant with milliseconds and Z. */
void rest_instant(long long ms, char buf[32]);

/* The current time in ms since the epoch. */
long long rest_now_ms(void);

/*
 * Parses the request body (JSON or XML per Content-Type) into a resource
 * tree in the request's arena. On failure answers 400 (or 413 for limits)
 * and returns NULL.
 */
fhir_node *rest_parse_body(const http_request *req, http_response *resp);

/*
 * Sets id, meta.versionId and meta.lastUpdated of root (a tree in arena a),
 * keeping the rest of meta. TSG_ENOMEM only.
 */
tsg_rc rest_set_meta(tsg_arena *a, fhir_node *root, const char *id, long version, long long lu_ms);

/* Percent-decodes a query component s[0..n) ('+' is a space) into arena a;
 * NULL on a bad escape, invalid UTF-8 or no memory. */
char *rest_url_decode(tsg_arena *a, const char *s, size_t n);

/* The text of the single primitive child `name` of n, or NULL. */
const char *rest_child_value(const fhir_node *n, const char *name);

/*
 * Writes a stored resource (compact JSON) as the response body in the
 * negotiated format, honouring _pretty, _summary and _elements. Sets status,
 * Content-Type, ETag and Last-Modified (when version > 0).
 */
void rest_respond_resource(const http_request *req, http_response *resp, int status,
                           const char *json, size_t len, long version, long long lu_ms);

/* ------------------------------------------------------------------------
 * Index entries and compartments (fhir_index.c)
 * ------------------------------------------------------------------------ */

/*
 * Builds the store index entries of resource root (Type/id) from its search
 * values, and finds its patient compartment (*compartment: a patient id in
 * the arena, or NULL). Fails as search_extract (TSG_EINVAL: an expression
 * failed on this resource) or TSG_ENOMEM.
 */
tsg_rc rest_index(tsg_arena *a, const fhir_node *root, const char *id, store_index_entry **out,
                  size_t *n, const char **compartment, tsg_error *err);

/* ------------------------------------------------------------------------
 * Interactions implemented in other files
 * ------------------------------------------------------------------------ */

/*
 * fhir_audit.c: store_commit() of w[0..n) at now_ms for the request req,
 * with the request's audit record in the same MULTI … EXEC when the audit
 * trail is on (ctx->record): the record says resp->interaction, `status` (the
 * answer the caller gives when the write succeeds) and names named->type/id
 * at version named->expect_version + 1 (named NULL: no entity, as for a
 * transaction). When everything was written (TSG_OK, *conflict -1) it sets
 * resp->audited = status, so the finish hook writes no second record; when
 * not, nothing of the record was written and the finish hook records the
 * request as it is answered. resp NULL: a plain store_commit (a batch entry).
 * A successful write of a w with bump also tells the access rule
 * (rest_access_changed). Returns as store_commit.
 */
tsg_rc rest_commit(const http_request *req, http_response *resp, rest_ctx *ctx,
                   const store_write *w, size_t n, long long now_ms, int status,
                   const store_write *named, int *conflict, tsg_error *err);

/* fhir_rest.c: one write through the same path as PUT/POST (want_version:
 * If-Match or 0; must_not_exist: refuse to overwrite — 2 when id was just drawn by
 * rest_new_id(), 1 when the client chose it). Answers the request. */
void rest_write_resource(const http_request *req, http_response *resp, rest_ctx *ctx,
                         fhir_node *root, const char *id, long want_version, int must_not_exist);

/*
 * fhir_rest.c: prepares *w to store root as Type/id version cur_version + 1
 * at now_ms: sets id and meta, writes the compact JSON body and extracts the
 * index entries and the patient compartment — everything in arena a. The
 * caller commits w (alone or with others) with store_commit(). Fails with
 * TSG_EINVAL (a search expression failed on the resource), TSG_ELIMIT,
 * TSG_ENOMEM.
 */
tsg_rc rest_prepare_put(tsg_arena *a, fhir_node *root, const char *id, long cur_version,
                        long long now_ms, const char *interaction, store_write *w, tsg_error *err);

/* fhir_rest.c: the deletion of Type/id at its current version (for store_commit). */
store_write rest_delete_write(const char *type, const char *id, long version);

/* fhir_rest.c: http(s)://<Host>/fhir, in the request's arena. */
const char *rest_base_url(const http_request *req);

/* fhir_capabilities.c: GET /fhir/metadata. */
void rest_capabilities(const http_request *req, http_response *resp);

/* fhir_search.c: GET /fhir/<type> and POST /fhir/<type>/_search. */
void rest_search(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type);

/* fhir_search.c: runs the search `query` (a URL query string, "a=b&c=d") on
 * type and returns how many resources match (*first: the id of one, in the
 * arena); -1 after answering an error. For If-None-Exist and conditional
 * update/delete. */
long rest_search_count_match(const http_request *req, http_response *resp, rest_ctx *ctx,
                             const char *type, const char *query, const char **first);

/* fhir_search.c: conditional update/delete/patch: PUT/DELETE/PATCH /fhir/<type>?criteria. */
void rest_conditional(const http_request *req, http_response *resp, rest_ctx *ctx,
                      const char *type);

/* fhir_search.c: GET /fhir/Patient/<id>/$everything. */
void rest_everything(const http_request *req, http_response *resp, rest_ctx *ctx, const char *id);

/* fhir_patch.c: PATCH /fhir/<type>/<id> with a JSON Patch body. */
void rest_patch(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                const char *id);

/* ------------------------------------------------------------------------
 * Validation (fhir_validate.c; what it checks and when: its header)
 * ------------------------------------------------------------------------ */

/* Parses the `validate` level spec, loads the packages of `paths` (':'-separated)
 * and the type profiles; TSG_EINVAL/ELIMIT/EIO with a message naming the item. */
tsg_rc rest_validation_open(const char *spec, const char *paths, const char *type_profiles,
                            rest_validation **out, tsg_error *err);
void rest_validation_free(rest_validation *v);
/* "validation on write: base, Patient=profiles; N profiles loaded" for the start-up log. */
void rest_validation_describe(const rest_validation *v, char *out, size_t cap);

/* Validates a resource about to be written at its type's level: 0 (write it),
 * 422 with *outcome (OperationOutcome JSON in a) and *first_error ("expression:
 * message"), or 500 (out of memory). */
int rest_validate_write(rest_ctx *ctx, tsg_arena *a, const fhir_node *root, const char **outcome,
                        size_t *outcome_len, const char **first_error);

/* rest_validate_write for a single write: answers 422/500 and returns 1, or returns 0. */
int rest_validate_single(const http_request *req, http_response *resp, rest_ctx *ctx,
                         const fhir_node *root);

/* $validate at system (type NULL), type or instance (id) level. */
void rest_validate_op(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                      const char *id);

/* ------------------------------------------------------------------------
 * Access: whose data a client may see and write (fhir_access.c; issue 5)
 *
 * Scopes (the auth gate) say what kind of data a client may touch; this rule
 * says whose. It applies to every request with a principal (auth on).
 *
 *   - Registry resources (directories and definitions: Organization,
 *     Practitioner, PractitionerRole, Location, Endpoint, HealthcareService,
 *     Medication, ValueSet, Questionnaire, … — the list in fhir_access.c)
 *     are readable by every client; writing them is for administrators. The
 *     other types outside the Patient compartment (Bundle, Contract,
 *     MessageHeader, Subscription, …) may carry patient data without naming a
 *     patient the compartment definition knows: until each has its rule, only
 *     administrators read and write them. Two have one already and count as
 *     compartment types: a Device belongs to Device.patient, a Binary to its
 *     securityContext (a Patient, or the patient of the resource it names,
 *     looked up when the Binary is written); without one they are visible to
 *     no client.
 *   - A resource in the Patient compartment (the store's field c names its
 *     patient; Patient/<id> is in its own) is visible to a client only while
 *     the client's Organization takes part in that patient's CareTeam — as the
 *     participant's member Organization, or through a PractitionerRole of that
 *     Organization (active), within the CareTeam's, the participant's and the
 *     role's periods, the CareTeam active — and the patient's Consent allows
 *     sharing with it. A compartment type without a patient (c empty) is
 *     visible to nobody but unrestricted callers. Hidden means absent: a read
 *     answers 404 exactly as for an unknown id, searches, _include,
 *     _revinclude, history, $everything and paging leave it out and do not
 *     count it (_total is computed after the filter).
 *   - Administrators also see every Patient, CareTeam and Consent (they manage
 *     them), not the clinical records. Writing CareTeams and Consents (they
 *     decide who sees whom), creating and deleting patients and writing the
 *     registry need role admin, and an admin with an area only writes
 *     resources of that area: the address city of an Organization, Location
 *     or Patient, or of the Organization/Patient a PractitionerRole,
 *     HealthcareService, Endpoint, CareTeam or Consent belongs to (resources
 *     without an area, such as Practitioner, any admin). Other writes need the
 *     patient of the resource before and after the write to be visible: 403.
 *
 * Consent (a local model, REFERENCE-JP.md §6.2; JP Core has no Consent
 * profile): the patient's Consents with status active and scope
 * patient-privacy, provision in force (provision.period):
 *   一括同意  provision.type permit, no actor: every facility of the network;
 *            nested provision type deny with actors: the opted-out facilities
 *   facility list  provision.type permit with actor[].reference Organization/…
 *   per facility   one such Consent per facility
 *   withdrawal     status inactive, or provision.type deny (no actor: all)
 * A deny for the organisation wins over any permit; with no privacy Consent in
 * force at all, `consent_default` decides (deny — the default — or
 * care-team: membership suffices, for regions whose care contracts cover it).
 * Only relative references (Organization/<id>, PractitionerRole/<id>) count.
 *
 * Cost and freshness: the rule is evaluated per Organization — all its
 * patients at once, in six pipelined round trips (its PractitionerRoles, the
 * CareTeams naming it or them, their patients, those patients' CareTeams and
 * Consents, the bodies, the roles) — and kept in memory until the next period
 * boundary, REST_ACCESS_MAX_AGE_MS, or a change: a write of a CareTeam,
 * Consent or PractitionerRole drops this gateway's cache at once and INCRs
 * REST_ACCESS_GEN_KEY in the same atomic step (store_write.bump); other
 * gateways read it at most every REST_ACCESS_POLL_MS, so a change reaches
 * them within that time. A read then costs a binary search: each HTTP thread
 * keeps the entry it used last, with a reference of its own (fhir_access.c,
 * acl_memo), so the reads of a busy organisation take no shared lock.
 * When only the max age has passed (no change, no boundary: a safety net),
 * one request computes the new list while the others keep using the old one
 * (before, every concurrent request computed it: a stall of 100–400 ms at the
 * 99th percentile of the auth bench's reads, once a minute per organisation).
 * ------------------------------------------------------------------------ */

#define REST_ACCESS_GEN_KEY "tsg:acl:gen"
#define REST_ACCESS_POLL_MS 1000 /* how often other gateways' changes are looked for */
#define REST_ACCESS_MAX_AGE_MS                                                                     \
    60000 /* an organisation's patients are recomputed at least this often */

/* consent_default: "deny" or "care-team" (TSG_EINVAL otherwise). */
tsg_rc rest_access_new(redis_client *rc, store *st, const char *consent_default, rest_access **out,
                       tsg_error *err);
void rest_access_free(rest_access *a);

/* A CareTeam, Consent or PractitionerRole was written: forget what was computed. */
void rest_access_changed(rest_access *a);

/* Whether writing type changes who sees whom (the writes that bump the generation). */
int rest_access_type_watched(const char *type);

/* Whether type is in the Patient compartment (Patient and the local additions included). */
int rest_type_in_compartment(const char *type);

/* A Binary whose securityContext names another resource (not a Patient) takes
 * that resource's patient as its compartment: reads it and sets
 * w->compartment (in a). TSG_OK also when there is nothing to do; TSG_EIO. */
tsg_rc rest_binary_context(rest_ctx *ctx, tsg_arena *a, const fhir_node *root, store_write *w,
                           tsg_error *err);

/* How the rule treats a type (see "Access" above). */
typedef enum rest_access_class {
    REST_ACCESS_PATIENT,  /* in the Patient compartment: the care-team rule */
    REST_ACCESS_REGISTRY, /* directories and definitions: every client reads */
    REST_ACCESS_ADMIN     /* the rest (Binary, Bundle, Device, Contract, MessageHeader,
                             Subscription, …): may hold patient data outside any
                             compartment, so administrators only */
} rest_access_class;
rest_access_class rest_access_class_of(const char *type);

/* Whether the request's client may see a resource of type whose compartment
 * patient is pid ("" or NULL: none): 1 yes, 0 no, -1 Redis failed (err). */
int rest_access_sees(rest_ctx *ctx, const http_request *req, const char *type, const char *pid,
                     tsg_error *err);

/* What one request may see, loaded once for searches, history and includes. */
typedef struct rest_view {
    int restricted; /* 0: no principal, everything visible */
    int admin;
    const char **pids; /* the visible patients, sorted (request arena) */
    size_t n;
} rest_view;

tsg_rc rest_view_load(rest_ctx *ctx, const http_request *req, rest_view *v, tsg_error *err);
/* Whether resources of type need their compartment checked under v. */
int rest_view_filters(const rest_view *v, const char *type);
/* Whether v sees a resource of type in patient pid's compartment. */
int rest_view_sees(const rest_view *v, const char *type, const char *pid);

/*
 * Whether the request may write type: old_body/old_pid the current version
 * (NULL for a create), new_body/new_pid the new one (NULL for a delete);
 * creating: no current version. 0 allowed; 403 with *why; -1 Redis failed.
 */
int rest_access_write(rest_ctx *ctx, const http_request *req, const char *type, int creating,
                      const char *old_body, size_t old_len, const char *old_pid,
                      const char *new_body, size_t new_len, const char *new_pid, const char **why,
                      tsg_error *err);

/* fhir_rest.c: answers 404 (as for an unknown id) when the client may not see
 * Type/id in patient pid's compartment, or the failure to tell; 1 then, else 0. */
int rest_hide(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
              const char *id, const char *pid);

/* fhir_rest.c: rest_access_write for the current version cur (NULL: none read)
 * and the write w: answers 403 (or the failure) and returns 1, else 0. */
int rest_deny_write(const http_request *req, http_response *resp, rest_ctx *ctx, const char *type,
                    int creating, const store_resource *cur, const store_write *w);

/* fhir_bundle.c: POST /fhir with a transaction or batch Bundle. */
void rest_bundle_post(const http_request *req, http_response *resp, rest_ctx *ctx);

/* ------------------------------------------------------------------------
 * Writing Bundles (fhir_bundle_write.c)
 *
 * A Bundle is written as JSON text into its own buffer; stored resources go
 * in as they are stored (compact JSON), so a page of results costs one copy.
 * rest_bundle_finish() converts it to XML or pretty JSON when asked.
 * ------------------------------------------------------------------------ */

typedef struct rest_bundle {
    tsg_buf b;
    int nlinks;
    int nentries;
    int entries_open;
} rest_bundle;

/* Starts a Bundle of `type` (searchset, history, transaction-response, …);
 * total < 0: no total. */
void rest_bundle_begin(rest_bundle *bb, const char *type, long total);

/* Adds a link (all links before the first entry). */
void rest_bundle_link(rest_bundle *bb, const char *rel, const char *url);

/* Adds an entry: fullUrl (NULL: none), resource JSON (NULL: none), and extra
 * JSON members written as given (`"search":{…}`, `"request":{…},"response":{…}`;
 * NULL: none). */
void rest_bundle_entry(rest_bundle *bb, const char *full_url, const char *res, size_t res_len,
                       const char *extra);

/* Closes the Bundle and makes it the response (200, negotiated format);
 * frees bb's buffer. */
void rest_bundle_finish(rest_bundle *bb, const http_request *req, http_response *resp);

/* ------------------------------------------------------------------------
 * fhir_search.c (additions)
 * ------------------------------------------------------------------------ */

/* fhir_search.c: GET /fhir?_getpages=<uuid>&_offset=N&_count=M — a page of a
 * search result kept as a snapshot (tsg:snap:<uuid>, 10 minutes). Answers the
 * searchset Bundle, 410 when the snapshot expired, 400 for bad parameters. */
void rest_search_page(const http_request *req, http_response *resp, rest_ctx *ctx);

/* ------------------------------------------------------------------------
 * fhir_patch.c, fhir_bundle.c
 * ------------------------------------------------------------------------ */

/*
 * fhir_patch.c: applies the JSON Patch (RFC 6902) patch[0..patch_len) to the
 * stored resource cur[0..cur_len) (compact JSON of Type/id) and parses the
 * result with fhir_json_parse into a tree in arena a (*out). The id is kept
 * (added back when a patch removed it; changing it or resourceType fails).
 * Returns 0, or the HTTP status of the failure with err filled (location
 * `patch[i]` for a failed operation i): 400 a malformed patch document, 422 a
 * patch that cannot be applied (missing path, failed test, invalid result),
 * 500 out of memory. Nothing to free (the tree is in a). A patch that leaves
 * the resource as it was (only `test` operations, or changes that cancel
 * out) returns 0 with *out NULL: nothing to store, no new version.
 */
int rest_patch_apply(tsg_arena *a, const char *type, const char *id, const char *cur,
                     size_t cur_len, const char *patch, size_t patch_len, fhir_node **out,
                     tsg_error *err);

#endif
