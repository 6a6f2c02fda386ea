/*
 * validate.h — validation of FHIR R4 resources against the base specification
 * (capability C3, issue #6), and the seam through which profile validation
 * (gateway/validate/profile.h) feeds its issues into the same outcome.
 *
 * ## What the base validator checks
 *
 * The readers (fhir_json_parse, fhir_xml_parse) already refuse what cannot be
 * represented at all: unknown elements, wrong JSON types, arrays where one
 * value is allowed, empty values, malformed primitives, bad XHTML syntax.
 * validate_resource() walks the in-memory tree (model.h) once and checks the
 * rest, each rule class with its own issue code:
 *
 *   cardinality   min/max of every element definition            required / structure
 *   types         the node's type is one the element allows       structure
 *   primitives    the R4 lexical forms and ranges of every        value
 *                 primitive (reusing the readers' checks), plus
 *                 string/markdown length (1 MiB) and control
 *                 characters, uri/url/canonical (no whitespace,
 *                 no bare oid:/uuid: scheme), Coding.system
 *                 absolute, oid and uuid syntax, base64Binary,
 *                 maxLength of the definition
 *   ele-1/ext-1   elements have a value or children; extensions   invariant
 *                 have a value or extensions, not both (native)
 *   resource id   Resource.id is an id ([A-Za-z0-9\-\.]{1,64})    value
 *   references    Reference.reference is `Type/id` (with a known  value / structure
 *                 resource type, optionally `/_history/v`), an
 *                 absolute URL, `#id` of a contained resource, or
 *                 urn:uuid:/urn:oid:; the target type is one the
 *                 element definition allows (targetProfile)
 *   contained     contained resources have unique ids, no nested  required / invariant
 *                 contained (dom-2), no meta.versionId/lastUpdated
 *                 (dom-4) or security (dom-5), and are referenced
 *                 from the resource (dom-3)
 *   narrative     Narrative.div passes htmlChecks (txt-1): only   value
 *                 the basic HTML elements and attributes, no
 *                 script, no event-handler attributes (native)
 *   Bundle        a RESTful fullUrl agrees with the entry         invalid / invariant
 *                 resource's type and id; the bdl-* invariants
 *   extensions    a URL in the core namespace                     structure
 *                 (http://hl7.org/fhir/StructureDefinition/) is an
 *                 R4 core extension, with a value type its
 *                 definition allows (validate_extensions.c,
 *                 generated); other URLs are the profile module's
 *   terminology   bindings against the value sets generated into  code-invalid
 *                 the model: required → error, extensible →
 *                 warning, preferred/example → nothing; a code
 *                 whose system the model does not know, or a value
 *                 set whose codes are not enumerated (external
 *                 code systems), → warning, never a silent pass;
 *                 currencies (ISO 4217 list) and mimetypes (BCP 13
 *                 grammar, plus FHIR's xml/json/ttl) are decided
 *                 here although R4 does not enumerate them
 *   invariants    every constraint of the R4 definitions          invariant
 *                 (ele-1, ext-1, txt-1/2, ref-1, dom-3, csd-1,
 *                 eld-16, eld-19 natively, with the reasons in
 *                 validate_invariants.c; cid-0 listed as broken in
 *                 R4; the rest with the FHIRPath engine), severity
 *                 from the constraint; one the engine cannot
 *                 evaluate (error, work or memory budget) →
 *                 information issue carrying its key
 *
 * Every issue has a severity, an OperationOutcome issue-type code, a human
 * message, and the FHIRPath `expression` of the element with indexes
 * (`Patient.name[0].given[1]`; a contained resource
 * `Patient.contained[0]`, a Bundle entry `Bundle.entry[2].resource`).
 *
 * ## Design
 *
 * One depth-first walk over the tree. The expression of the current node is
 * kept in one path buffer that grows and shrinks with the walk, so no issue
 * costs anything unless it is raised. The FHIRPath constraints of the model
 * (a few hundred distinct ones, shared by many elements) are compiled once, on
 * first use, under pthread_once, into a table indexed like
 * model->constraints; evaluation uses one scratch arena per call. Two
 * shortcuts avoid the engine where the expression's form decides: a guard
 * (`code.empty() or …` is true when the node has no `code`) and a simple form
 * (tests of child paths joined by and/or, decided from the tree directly);
 * VALIDATE_FHIRPATH_ONLY turns them off, and the corpus test checks that both
 * ways give the same issues. The validator keeps no mutable global state besides
 * that table, so any number of threads may validate at once.
 *
 * ## Profiles
 *
 * The base validator knows no profiles. validate_options.profile_validate is
 * the hook the profile loader (profile.h) fills in: it is called once for each
 * profile URL the caller asks for (validate_options.profiles) and, when
 * validate_options.meta_profiles is set, for each `meta.profile` of the
 * resource. With no hook, or when the hook answers TSG_ENOTSUP, a requested
 * profile gives an error issue "profile … is not loaded" and a meta.profile a
 * warning (as the reference validator does).
 */
#ifndef TSG_VALIDATE_H
#define TSG_VALIDATE_H

#include <stddef.h>

#include "../model/model.h"
#include "../util/util.h"

/* ------------------------------------------------------------------------
 * Issues
 * ------------------------------------------------------------------------ */

/* OperationOutcome.issue.severity, most severe first. */
typedef enum validate_severity {
    VALIDATE_FATAL = 0,
    VALIDATE_ERROR,
    VALIDATE_WARNING,
    VALIDATE_INFORMATION
} validate_severity;

/* "fatal", "error", "warning", "information". */
const char *validate_severity_name(validate_severity sev);

/*
 * Receives one issue. code is an OperationOutcome issue-type code
 * ("structure", "required", "value", "invariant", "code-invalid",
 * "not-supported", "informational", …); expression the FHIRPath of the
 * element (may be "" for the whole input); message a human sentence. The
 * strings are only valid during the call: copy what you keep.
 */
typedef void (*validate_issue_fn)(void *ctx, validate_severity sev, const char *code,
                                  const char *expression, const char *message);

/* One collected issue; strings live in the collector's arena. line/column
 * (1-based, 0 = unknown) point into the input text for reader failures. */
typedef struct validate_issue {
    validate_severity severity;
    const char *code;
    const char *expression;
    const char *message;
    unsigned line, column;
} validate_issue;

/* Cap on the issues one collector keeps; beyond it one "too-costly" warning
 * says how many were dropped (counts stay exact). */
#define VALIDATE_MAX_ISSUES 10000u

/*
 * The issue list of one validation. Initialise with validate_result_init();
 * everything it holds lives in the arena given there (freed with it).
 * counts[sev] counts issues per severity, including dropped ones.
 */
typedef struct validate_result {
    tsg_arena *arena;
    validate_issue *items;
    size_t count, cap;
    size_t dropped;
    size_t counts[4];
} validate_result;

/* Empties r and makes it allocate in arena a. */
void validate_result_init(validate_result *r, tsg_arena *a);

/*
 * A validate_issue_fn: ctx is a validate_result *. Copies the strings into the
 * result's arena. Out of memory, the issue is counted but not kept.
 */
void validate_result_add(void *ctx, validate_severity sev, const char *code, const char *expression,
                         const char *message);

/* As validate_result_add, with the input position (reader failures). */
void validate_result_add_at(validate_result *r, validate_severity sev, const char *code,
                            const char *expression, const char *message, unsigned line,
                            unsigned column);

/* 1 when r holds an error or a fatal issue (the input is not valid). */
int validate_result_failed(const validate_result *r);

/*
 * Appends r as an OperationOutcome (FHIR JSON) to out: one issue per
 * collected issue, in the order found, with severity, code,
 * details.text = the message, expression = [the expression] (when not
 * empty), and the line/column as the standard extensions
 * operationoutcome-issue-line / -col when known. With no issue at all, one
 * "information"/"informational" issue saying that validation passed (an
 * OperationOutcome needs at least one issue). flags: FHIR_WRITE_PRETTY.
 * Failures are those of the buffer (tsg_buf_rc).
 */
tsg_rc validate_outcome_json(const validate_result *r, tsg_buf *out, unsigned flags);

/* ------------------------------------------------------------------------
 * Options and the profile hook
 * ------------------------------------------------------------------------ */

/*
 * Validates `root` against the profile `url` (canonical, an optional
 * `|version`) and reports through report/report_ctx. Returns TSG_OK when the
 * profile was found and applied (whatever the issues), TSG_ENOTSUP when no
 * such profile is loaded (the caller reports it), other codes on failure
 * (ENOMEM…, reported by the caller as an "exception" error).
 * Implemented by the profile module (profile.h); ctx is its own state.
 */
typedef tsg_rc (*validate_profile_fn)(void *ctx, const fhir_node *root, const char *url,
                                      validate_issue_fn report, void *report_ctx);

/* validate_options.flags */
#define VALIDATE_NO_INVARIANTS  0x01u /* skip the FHIRPath constraints (not the native ones) */
#define VALIDATE_NO_TERMINOLOGY 0x02u /* skip binding checks */
/* evaluate every FHIRPath constraint with the engine, without the walker's
 * shortcuts (guards and simple forms, validate_internal.h); for tests that
 * prove the shortcuts give the same issues */
#define VALIDATE_FHIRPATH_ONLY 0x04u

typedef struct validate_options {
    unsigned flags;
    /* profiles to validate against besides the base (CLI --profile, $validate profile) */
    const char *const *profiles;
    size_t nprofiles;
    /* also validate against each meta.profile of the resource */
    int meta_profiles;
    /* the profile loader's hook; NULL: no profile is loaded */
    validate_profile_fn profile_validate;
    void *profile_ctx;
} validate_options;

/* ------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------ */

/*
 * Validates resource `root` (as read by fhir_json_parse/fhir_xml_parse)
 * against the base R4 definitions and then the profiles opt asks for
 * (opt NULL: base only), reporting every issue through report(report_ctx, …).
 * Returns TSG_OK when validation ran (whatever it found: look at the issues);
 * TSG_ENOMEM when memory ran out (issues may be incomplete). Thread-safe.
 */
tsg_rc validate_resource_fn(const fhir_node *root, const validate_options *opt,
                            validate_issue_fn report, void *report_ctx);

/* validate_resource_fn collecting into r. */
tsg_rc validate_resource(const fhir_node *root, const validate_options *opt, validate_result *r);

/*
 * Reads FHIR JSON or XML text (detected from the first byte: '<' XML, '{'
 * JSON) into arena a and validates it. A reader failure is not a function
 * failure: it becomes one "fatal" issue (code from the reader: structure,
 * value, too-costly…) with the reader's location and line/column, and *root
 * is NULL. On success *root (when root is not NULL) is the tree. Returns
 * TSG_OK, or TSG_ENOMEM.
 */
tsg_rc validate_text(tsg_arena *a, const char *text, size_t len, const validate_options *opt,
                     validate_result *r, fhir_node **root);

/* ------------------------------------------------------------------------
 * The REST seam (validation on write and $validate)
 * ------------------------------------------------------------------------ */

/* Validation on write, configurable per resource type. */
typedef enum validate_level {
    VALIDATE_LEVEL_OFF = 0, /* nothing (the readers' checks only) */
    VALIDATE_LEVEL_BASE,    /* validate_resource against the base definitions */
    VALIDATE_LEVEL_PROFILES /* base + meta.profile + the type's configured profiles */
} validate_level;

/*
 * Wiring (done in gateway/rest/fhir_validate.c): on create (POST), update (PUT) and
 * PATCH, after the body is read into `root` and before the store is called,
 * look up the resource type's configured level (off/base/profiles) and call
 *
 *     int rejected;
 *     tsg_buf oo; tsg_buf_init(&oo, 0);
 *     rc = validate_for_rest(root, level, &opts, request_arena, &oo, &rejected, &first);
 *
 * with opts.profile_validate/profile_ctx from the profile loader and
 * opts.profiles the type's configured profile URLs (level PROFILES only);
 * rc != TSG_OK → 500; rejected → 422 with oo as the body
 * (application/fhir+json); otherwise continue the write (warnings are not
 * returned on success). $validate (system, type and instance level) reads the
 * resource from the body (a Parameters `resource`, or the resource itself) or,
 * at instance level, from the store, takes `profile` parameters into
 * opts.profiles, calls validate_for_rest(…, VALIDATE_LEVEL_PROFILES, …) and
 * answers 200 with the OperationOutcome whatever it holds; a body that does
 * not parse: validate_text() gives the fatal issue with line and column.
 *
 * What the REST layer calls on create/update (after parsing the body into
 * `root`) and for $validate: validates at `level` (profiles: opt's profiles
 * and meta.profile through opt's hook) and, when outcome is not NULL, appends
 * the OperationOutcome JSON. *rejected is set to 1 when the result holds an
 * error or fatal issue (answer 422 with the outcome on write; $validate
 * answers 200 with it either way) and, when first_error is not NULL, *first_error
 * to "expression: message" of the first such issue (in a; NULL when none: a
 * Bundle entry reports that one). Allocates in a. Returns TSG_OK or
 * TSG_ENOMEM / the buffer's failure.
 */
tsg_rc validate_for_rest(const fhir_node *root, validate_level level, const validate_options *opt,
                         tsg_arena *a, tsg_buf *outcome, int *rejected, const char **first_error);

/*
 * Statistics of the constraint table (for tests and the README): how many
 * distinct constraints the model has, how many compile with the FHIRPath
 * engine, how many are checked natively instead, and how many are listed as
 * known-broken (not evaluated; see validate_invariants.c for each reason).
 */
typedef struct validate_constraint_stats {
    size_t total, compiled, native, broken, failed_compile;
} validate_constraint_stats;
void validate_constraint_stats_get(validate_constraint_stats *s);

#endif
