/*
 * profile.h — FHIR packages and profile validation (capability C3, issue #6,
 * items 4 and 5): load conformance packages, compile their
 * StructureDefinitions once into flat element tables, and validate resource
 * trees (model.h) against them.
 *
 * ## Loading (package.c)
 *
 * profile_registry_load() takes any of:
 *   - a `.tgz` FHIR package (gzip + ustar, read with zlib and a small tar
 *     reader; `package/NAME.json` are loaded, subfolders such as
 *     `package/example/` are not);
 *   - a package folder (`DIR/package/package.json` and `DIR/package/NAME.json`);
 *   - a bare folder of resources (`*.json`, like an unpacked package's
 *     content: ../shared/corpus/jp-core-definitions);
 *   - a folder holding any of these (`profiles/`): its `*.json` files, its
 *     `*.tgz` files and its subfolders, PACKAGE_MAX_DEPTH levels deep.
 * A JSON file may also hold a Bundle of definitions (the R4 distribution's
 * extension-definitions.json, profiles-others.json, valuesets.json): its
 * entries are loaded one by one.
 * StructureDefinition, ValueSet and CodeSystem resources are kept; other
 * resources (CapabilityStatement, NamingSystem, …) are skipped. A file that is
 * not JSON, an archive that is truncated, has a path with `..` or an absolute
 * path, or an entry larger than PACKAGE_MAX_ENTRY_BYTES, is TSG_EINVAL /
 * TSG_ELIMIT naming the file (and the entry). Resources are parsed with
 * jansson, not with the model's FHIR reader: a package holds conformance
 * resources of any kind and version (R5 extensions, logical models), which the
 * strict R4 reader would refuse, and the compiler needs them as generic JSON
 * (fixed[x]/pattern[x] values of any type are compared against instances
 * structurally, see below).
 *
 * ## Compilation (profile.c)
 *
 * profile_registry_compile() compiles every loaded StructureDefinition with
 * derivation `constraint` on an R4 resource or data type, profiles and
 * extension definitions alike:
 *   - the element tree: when the definition has a snapshot it is used as is;
 *     when it has only a differential the snapshot is generated here: the
 *     chain of base definitions is followed up to the nearest one with a
 *     snapshot or to the R4 type (the model, model.h), and each
 *     differential is laid over its base element by element (element ids
 *     carry slice names: `Observation.category:vs.coding.system`; without
 *     ids, an element belongs to the slice it follows), a property
 *     a later layer states replacing the earlier one, constraints adding up;
 *     properties nobody states come from the R4 element (model_elem);
 *   - each element is compared with its R4 element and only what the profile
 *     adds is kept for checking (narrower cardinality, fixed[x], pattern[x],
 *     a binding other than the base one, narrower types, type profiles,
 *     target profiles, slicing, constraints with keys the base does not
 *     have); elements with nothing to check and nothing below are dropped.
 *     What remains is laid out in one flat array per profile (children and
 *     slices of an element in contiguous index ranges), each element holding
 *     the model_elem it matches, so the walk compares pointers, not names;
 *   - type profiles, extension definitions and target profiles are resolved
 *     to compiled profiles once all are compiled; FHIRPath constraints and
 *     non-trivial discriminator paths are compiled with fp_compile();
 *     bindings are resolved to the R4 value sets of the model or to the
 *     ValueSets/CodeSystems of the loaded packages (their enumerated codes).
 * Problems of a definition (a base that is not loaded, an element path the
 * model does not have, a constraint that does not compile) are reported
 * through the load callback and the element or rule is left out, never the
 * whole registry.
 *
 * ## Validation (profile_check.c)
 *
 * profile_validate() walks the profile's element table alongside the
 * resource tree and reports, each with the FHIRPath of the element with
 * indexes (`Patient.identifier[1].system`):
 *   cardinality  min/max narrowed by the profile, per slice too  structure
 *   fixed[x]     exact equality (JSON structure against the node) value
 *   pattern[x]   every value the pattern has is present            value
 *   bindings     required → error, extensible → warning,          code-invalid
 *                preferred/example → nothing; a value set or code
 *                system that is not loaded → warning (never a pass)
 *   types        the node's type is one the profile allows         structure
 *   profiles     a typed element is validated against its type's   (theirs)
 *                profile (JP_HumanName on Patient.name);
 *                a profile that is not loaded → warning
 *   targets      a reference's type is one of the target profiles' structure
 *                types (where the profile narrows the base's); a
 *                contained target (`#id`) conforms to one of them
 *   extensions   every extension whose URL is a loaded extension   (theirs)
 *                definition is validated against it, wherever it
 *                is in the resource
 *   slicing      discriminators value, pattern, type, profile,      structure
 *                exists (paths: dotted names, $this,
 *                extension('url'), anything else through FHIRPath);
 *                rules closed / open / openAtEnd; ordered
 *   constraints  the profile's own FHIRPath invariants, severity    invariant
 *                as defined; one that cannot be evaluated → an
 *                information issue with its key
 *   mustSupport  not enforced and not reported (a profile's claim
 *                about systems, not about instances)
 *   contexts     an extension used where its definition's element   structure
 *                contexts do not allow it (the parent's type or
 *                element path: `Patient`, `Dosage.method`)
 *
 * Everything the walk needs is in the compiled tables; the walk keeps its
 * position as a stack of nodes and writes an expression only for an issue.
 * A call allocates only for FHIRPath (constraints, unusual discriminator
 * paths): one scratch arena and one text buffer, made on first need and
 * freed at the end. Compiled profiles are immutable: any number of threads may
 * validate at once once profile_registry_compile() has returned.
 *
 * ## Known limits
 *
 *   - re-slicing (`identifier:a/b`) is treated as one more slice of the
 *     element, not as a slice within slice a;
 *   - a discriminator path through resolve() (`resolve().code`) takes the
 *     slice's key from its single target profile and the instance's value
 *     from the FHIRPath engine's resolve(): contained resources and Bundle
 *     entries only;
 *   - a reference's target other than a contained resource is checked for
 *     its resource type only, not for its conformance to the target profile
 *     (the target is not at hand);
 *   - extension contexts of type `fhirpath` and `extension` are not checked
 *     (element contexts are);
 *   - value sets from packages are enumerated from compose.include concept
 *     lists, whole code systems loaded with content `complete`, and nested
 *     valueSet includes; filters and excludes leave a set "incomplete", and a
 *     code not found in an incomplete set is a warning, not an error;
 *   - an item that matches several slices is counted in the first.
 *
 * ## Wiring (for the CLI and REST)
 *
 *   registry = profile_registry_open((const char *[]){"profiles", …configured folders},
 *                                    n, report, ctx, &err);     (once, at start-up)
 *   validate_options opt = { .profile_validate = profile_registry_validate,
 *                            .profile_ctx = registry, .meta_profiles = 1, … };
 *   `tsunagu validate --profile URL`: opt.profiles = the URLs;
 *   `$validate?profile=URL`: the same, one URL;
 *   validation on write at level `profiles`: opt.profiles =
 *     profile_registry_type_profiles(registry, "Patient", &n) plus meta.profile.
 */
#ifndef TSG_PROFILE_H
#define TSG_PROFILE_H

#include <stddef.h>

#include "../model/model.h"
#include "../util/util.h"
#include "validate.h"

/* Named limits of the loader. */
#define PACKAGE_MAX_ARCHIVE_BYTES  (256u * 1024u * 1024u) /* one .tgz as stored */
#define PACKAGE_MAX_UNPACKED_BYTES (512u * 1024u * 1024u) /* its tar stream after gunzip */
#define PACKAGE_MAX_ENTRY_BYTES    (64u * 1024u * 1024u)  /* one file in an archive or folder */
#define PACKAGE_MAX_ENTRIES        100000u                /* files in one archive */
#define PACKAGE_MAX_DEPTH          3u  /* folder levels profile_registry_load walks */
#define PROFILE_MAX_NESTING        16u /* profiles within profiles during one validation */

typedef struct profile profile;
typedef struct profile_registry profile_registry;

/* ------------------------------------------------------------------------
 * The registry
 * ------------------------------------------------------------------------ */

/* An empty registry; NULL when out of memory. Free with profile_registry_free(). */
profile_registry *profile_registry_new(void);

/* Releases the registry and every profile it compiled; NULL is ignored. */
void profile_registry_free(profile_registry *r);

/*
 * Loads the conformance resources at path (a .tgz, a package folder, a bare
 * folder of JSON resources, or a folder of those; see "Loading"). Not
 * thread-safe; call before profile_registry_compile(). Fails with
 * TSG_EIO (unreadable), TSG_EINVAL (malformed JSON or archive; err names the
 * file and entry), TSG_ELIMIT (a PACKAGE_MAX_* limit), TSG_ENOMEM. A
 * resource whose canonical URL (and version) is already loaded is skipped:
 * the first one loaded wins.
 */
tsg_rc profile_registry_load(profile_registry *r, const char *path, tsg_error *err);

/* Adds one resource given as JSON text (origin names it in errors). As above. */
tsg_rc profile_registry_add_json(profile_registry *r, const char *text, size_t len,
                                 const char *origin, tsg_error *err);

/*
 * Compiles every loaded StructureDefinition (see "Compilation"). Problems of
 * single definitions go to report(report_ctx, …) (report may be NULL) with
 * the expression naming the definition's URL and element id; they do not
 * fail the call. Returns TSG_OK, or TSG_ENOMEM. Afterwards the registry is
 * read-only: profile_registry_load() and _add_json() refuse with TSG_EINVAL.
 */
tsg_rc profile_registry_compile(profile_registry *r, validate_issue_fn report, void *report_ctx,
                                tsg_error *err);

/*
 * The usual start-up in one call: a new registry with every path of
 * paths[0..n) loaded (in order: the first loaded of a URL wins), compiled,
 * definition problems going to report (may be NULL). NULL on failure, with
 * err naming the path and the problem; the caller frees the registry with
 * profile_registry_free().
 */
profile_registry *profile_registry_open(const char *const *paths, size_t n,
                                        validate_issue_fn report, void *report_ctx, tsg_error *err);

/* The package list of the configuration (`profile_paths`, TSUNAGU_PROFILE_PATHS) when unset. */
#define PROFILE_DEFAULT_PATHS "profiles"
#define PROFILE_MAX_PATHS     64u /* entries of one list */

/*
 * profile_registry_open() over a ':'-separated list, as `serve` and
 * `tsunagu validate` take it: every path must exist, except that the default
 * list (PROFILE_DEFAULT_PATHS) may be absent. *out is NULL when nothing is to
 * be loaded (an empty list, or the default folder absent). TSG_ELIMIT past
 * PROFILE_MAX_PATHS; otherwise fails as profile_registry_open().
 */
tsg_rc profile_registry_open_list(const char *paths, validate_issue_fn report, void *report_ctx,
                                  profile_registry **out, tsg_error *err);

/*
 * Configures url as a profile every resource of type `type` is validated
 * against on write (validate level `profiles`). Before or after compiling;
 * not thread-safe (configuration time). TSG_EINVAL for an unknown resource
 * type, TSG_ENOMEM.
 */
tsg_rc profile_registry_set_type_profile(profile_registry *r, const char *type, const char *url,
                                         tsg_error *err);

/* The profiles configured for resource type `type`: sets *urls, returns the count. */
size_t profile_registry_type_profiles(const profile_registry *r, const char *type,
                                      const char *const **urls);

/*
 * The compiled profile with canonical url (`URL` or `URL|version`; without a
 * version, the first loaded), or NULL when none is loaded or it failed to
 * compile.
 */
const profile *profile_registry_find(const profile_registry *r, const char *url);

/* Counts for reports and tests. */
typedef struct profile_registry_stats {
    size_t structure_definitions; /* loaded */
    size_t profiles;              /* compiled (resource and datatype profiles) */
    size_t extensions;            /* compiled extension definitions */
    size_t failed;                /* definitions that could not be compiled */
    size_t value_sets, code_systems;
    size_t skipped;    /* resources of other kinds */
    size_t duplicates; /* resources whose URL was already loaded */
    size_t elements;   /* elements kept in the compiled tables */
} profile_registry_stats;
void profile_registry_stats_get(const profile_registry *r, profile_registry_stats *s);

/* The canonical URL, resource/data type ("Patient", "Extension") of p. */
const char *profile_url(const profile *p);
const char *profile_type(const profile *p);

/* ------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------ */

/*
 * Validates resource `root` against profile p, reporting every issue through
 * report(ctx, …). A root of another type than the profile's is one error
 * issue. Returns TSG_OK when validation ran (look at the issues), TSG_ENOMEM
 * when the scratch arena could not be had (issues may be incomplete).
 * Thread-safe.
 */
tsg_rc profile_validate(const profile *p, const fhir_node *root, validate_issue_fn report,
                        void *ctx);

/*
 * The validate_options.profile_validate hook (validate.h): ctx is the
 * profile_registry. TSG_ENOTSUP when url is not loaded (the caller reports
 * it), else as profile_validate().
 */
tsg_rc profile_registry_validate(void *ctx, const fhir_node *root, const char *url,
                                 validate_issue_fn report, void *report_ctx);

/* ------------------------------------------------------------------------
 * The package reader (exposed for the fuzz target and tests)
 * ------------------------------------------------------------------------ */

/* Receives one regular file of an archive: its path (checked: relative, no
 * `..`) and content. A non-TSG_OK return stops the read and is returned. */
typedef tsg_rc (*package_entry_fn)(void *ctx, const char *path, const char *data, size_t len,
                                   tsg_error *err);

/*
 * Reads a gzip-compressed tar (ustar, with pax `path` records and GNU long
 * names) from data[0..len) and calls fn for each regular file. TSG_EINVAL
 * for a truncated or corrupt gzip stream or tar header (bad checksum, size
 * field), an unsafe path; TSG_ELIMIT beyond PACKAGE_MAX_UNPACKED_BYTES,
 * PACKAGE_MAX_ENTRY_BYTES or PACKAGE_MAX_ENTRIES; TSG_ENOMEM.
 */
tsg_rc package_read_tgz(const void *data, size_t len, package_entry_fn fn, void *ctx,
                        tsg_error *err);

/* As package_read_tgz for an uncompressed tar stream. */
tsg_rc package_read_tar(const void *data, size_t len, package_entry_fn fn, void *ctx,
                        tsg_error *err);

#endif
