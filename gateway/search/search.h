/*
 * search.h — the official FHIR R4 search parameters: the table, the index
 * values of a resource, and the parsed form of a search query (issue 4,
 * item 4). Pure C: nothing here talks to Redis; the store executes a parsed
 * query against indexes built from search_extract()'s entries.
 *
 * ## The table
 *
 * gen/gen_search_params.py writes profiles/r4/searchparams.txt from the R4
 * SearchParameters (only official R4 ones; what it drops, and why, is listed
 * in its header and the table's `#` lines). The table is embedded in the
 * binary (search_data.S) and loaded once on first use (thread-safe); every
 * expression is compiled once at load with fp_compile() and shared
 * read-only by all threads. A parameter is one (base, code): the expression
 * of an R4 parameter with several bases (`Patient.name | Practitioner.name`)
 * is restricted, for each base, to the union terms rooted in that base.
 * The parameters of `Resource` (_id, _lastUpdated, _tag, _profile,
 * _security, _source, _query, _content) and `DomainResource` (_text) apply to
 * every resource type; _text, _content and _query have no expression in R4
 * and are not supported (a query naming them is an error).
 *
 * `where(resolve() is Patient)` (Observation.patient and 48 others) is
 * compiled as `where(resolve() is Patient or reference.matches(…Patient/id…)
 * or type = 'Patient')`: resolve() reaches only contained resources and
 * Bundle entries, so the type of an ordinary reference is read from its text,
 * as servers do (see search_load.c).
 *
 * ## Index values (search_extract)
 *
 * Every parameter of the resource's type with an expression is evaluated,
 * each result item becomes zero or more search_entry values (see
 * search_entry_kind for what each kind carries). Dates become a range
 * [low, high) in milliseconds since 1970-01-01T00:00:00Z from the written
 * precision (2020-03 covers March); a date or dateTime without a zone is
 * read as UTC. An open Period end is SEARCH_DATE_MIN / SEARCH_DATE_MAX.
 * Composite parameters are extracted separately (search_extract_composites);
 * _text and _content are not extracted.
 */
#ifndef TSG_SEARCH_H
#define TSG_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "../fhirpath/fhirpath.h"
#include "../model/model.h"
#include "../util/util.h"

/* ------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------ */

typedef enum search_type {
    SEARCH_NUMBER,
    SEARCH_DATE,
    SEARCH_STRING,
    SEARCH_TOKEN,
    SEARCH_REFERENCE,
    SEARCH_COMPOSITE,
    SEARCH_QUANTITY,
    SEARCH_URI,
    SEARCH_SPECIAL
} search_type;

/* Modifiers (search_param.modifiers is a bit set of 1u << SEARCH_MOD_*). */
typedef enum search_modifier {
    SEARCH_MOD_NONE = 0,
    SEARCH_MOD_MISSING,
    SEARCH_MOD_EXACT,
    SEARCH_MOD_CONTAINS,
    SEARCH_MOD_TEXT,
    SEARCH_MOD_NOT,
    SEARCH_MOD_ABOVE,
    SEARCH_MOD_BELOW,
    SEARCH_MOD_IN,
    SEARCH_MOD_NOT_IN,
    SEARCH_MOD_OF_TYPE,
    SEARCH_MOD_IDENTIFIER,
    SEARCH_MOD_TYPE /* reference :[type], e.g. subject:Patient */
} search_modifier;

/* Prefixes of number, date and quantity values (search_param.prefixes is a
 * bit set of 1u << SEARCH_PFX_*). A value without a prefix is SEARCH_PFX_EQ. */
typedef enum search_prefix {
    SEARCH_PFX_EQ = 0,
    SEARCH_PFX_NE,
    SEARCH_PFX_GT,
    SEARCH_PFX_LT,
    SEARCH_PFX_GE,
    SEARCH_PFX_LE,
    SEARCH_PFX_SA,
    SEARCH_PFX_EB,
    SEARCH_PFX_AP
} search_prefix;

/* One component of a composite parameter. */
typedef struct search_component {
    const char *code; /* the component parameter's code ("code", "value-quantity") */
    search_type type;
    const char *expression; /* relative to the composite's items */
    const fp_expr *expr;    /* compiled; NULL when it failed to compile */
} search_component;

typedef struct search_param {
    const char *base; /* "Patient", or "Resource"/"DomainResource" for inherited ones */
    const char *code; /* "birthdate" */
    search_type type;
    const char *id;            /* SearchParameter id ("individual-birthdate") */
    const char *expression;    /* FHIRPath restricted to base; NULL when R4 gives none */
    const fp_expr *expr;       /* compiled; NULL when no expression or it failed to compile */
    const char *compile_error; /* why it failed to compile; NULL when it compiled */
    uint32_t modifiers;        /* 1u << SEARCH_MOD_* */
    uint32_t prefixes;         /* 1u << SEARCH_PFX_* (number, date, quantity) */
    int multiple_or;           /* comma lists allowed */
    int multiple_and;          /* repetition allowed */
    const char *usage;         /* xpathUsage: "normal", "phonetic", "nearby" */
    size_t ntargets;
    const char *const *targets; /* reference targets ("Patient", "Group") */
    size_t ncomponents;
    const search_component *components;
    /* An alias is a parameter whose expression is exactly the union of other
     * parameters' expressions of the same base and type (Observation
     * combo-code = code | component-code): its values are theirs, so it has
     * no index entries of its own and a search on it is the union of
     * searches on these. nalias 0: an ordinary parameter. */
    size_t nalias;
    const struct search_param *const *alias;
} search_param;

/* The name of a search_type ("token"), of a modifier ("exact", "[type]" for
 * SEARCH_MOD_TYPE) and of a prefix ("ge"). */
const char *search_type_name(search_type t);
const char *search_modifier_name(search_modifier m);
const char *search_prefix_name(search_prefix p);

/*
 * Loads the embedded table on first call (thread-safe; later calls return at
 * once). A table that cannot be parsed is a build defect: it is reported on
 * stderr and the process aborts. Expressions that fail to compile do not
 * abort: each is reported on stderr and kept with compile_error set
 * (search_compile_failures()); such a parameter extracts nothing and a query
 * naming it is an error.
 * Returns the number of parameters in the table.
 */
size_t search_params_load(void);

/*
 * The parameter `code` of resource type `type` (own, then inherited from
 * DomainResource and Resource), or NULL when there is none or type is not
 * an R4 resource. The pointer lives as long as the process.
 */
const search_param *search_param_find(const char *type, const char *code);

/*
 * All parameters of resource type `type`: its own in code order, then the
 * inherited ones. Returns their number and sets *list (owned by the table)
 * to them; 0 and *list = NULL when type is not an R4 resource.
 */
size_t search_params_of(const char *type, const search_param *const **list);

/* The parameters (and composite components, as their parameter) whose
 * expression failed to compile: sets *list (owned by the table), returns
 * the count. */
size_t search_compile_failures(const search_param *const **list);

/* ------------------------------------------------------------------------
 * Index values
 * ------------------------------------------------------------------------ */

#define SEARCH_DATE_MIN INT64_MIN /* an open Period start */
#define SEARCH_DATE_MAX INT64_MAX /* an open Period end */

typedef enum search_entry_kind {
    /* token: system (NULL when none) and code. From code, Coding, CodeableConcept
     * codings, Identifier (system|value), ContactPoint (value, system NULL),
     * boolean ("true"/"false"), string, id, uri, canonical. */
    SEARCH_ENTRY_TOKEN,
    /* token :text: text is the display/text (Coding.display,
     * CodeableConcept.text, Identifier.type.text), folded its folded form. */
    SEARCH_ENTRY_TOKEN_TEXT,
    /* token :of-type (Identifier with a type): system/code are the type
     * coding's, text the identifier's value. */
    SEARCH_ENTRY_OF_TYPE,
    /* string: text raw, folded its text_fold() form; part names the HumanName
     * or Address element it came from ("family", "given", "city", …), NULL
     * for a plain string. */
    SEARCH_ENTRY_STRING,
    /* date: low/high. */
    SEARCH_ENTRY_DATE,
    /* number: number (double) and text (the decimal as written). */
    SEARCH_ENTRY_NUMBER,
    /* quantity: number/text, system, code (the code, else the unit);
     * canonical_number/canonical_unit when the UCUM unit converts to one of
     * the canonical units (g, m, s, mol, L, …), else canonical_unit NULL. */
    SEARCH_ENTRY_QUANTITY,
    /* reference: text is "Type/id" for relative references, the URL
     * (without /_history/n) for absolute ones, "#id" for contained. */
    SEARCH_ENTRY_REFERENCE,
    /* reference :identifier: system/code of Reference.identifier. */
    SEARCH_ENTRY_REF_IDENTIFIER,
    /* uri: text. */
    SEARCH_ENTRY_URI,
    /* Location near: number = latitude, canonical_number = longitude. */
    SEARCH_ENTRY_NEAR
} search_entry_kind;

typedef struct search_entry {
    const search_param *param; /* into the table */
    search_entry_kind kind;
    const char *system;
    const char *code;
    const char *text;
    const char *folded;
    const char *part;
    int64_t low;  /* date: inclusive, ms since epoch UTC */
    int64_t high; /* date: exclusive */
    double number;
    double canonical_number;
    const char *canonical_unit;
} search_entry;

/*
 * Extracts the index values of `resource` for every parameter of its type.
 * *entries (allocated in a, with all their texts) and *n are set on success.
 * Fails with TSG_ENOMEM (arena exhausted), TSG_ELIMIT (an expression's work
 * budget) or TSG_EINVAL when an expression fails on this resource; err
 * names the parameter. Thread-safe.
 */
tsg_rc search_extract(const fhir_node *resource, tsg_arena *a, search_entry **entries, size_t *n,
                      tsg_error *err);

/*
 * One value of a composite parameter: a combination of component values
 * taken from the same item (the same Observation.component). components[i]
 * is an entry of component i (kind TOKEN, QUANTITY, DATE, STRING, NUMBER,
 * REFERENCE or URI; its param is the component's parameter, e.g. Observation
 * `component-code`). An item whose components give several values (two
 * codings) gives one composite per combination, at most SEARCH_COMPOSITE_MAX
 * per item.
 */
typedef struct search_composite {
    const search_param *param; /* the composite parameter */
    size_t ncomponents;
    const search_entry *components;
} search_composite;

#define SEARCH_COMPOSITE_MAX 64

/*
 * The composite values of `resource` for every composite parameter of its
 * type; as search_extract otherwise (*out and everything it points to live in
 * a). Thread-safe.
 */
tsg_rc search_extract_composites(const fhir_node *resource, tsg_arena *a, search_composite **out,
                                 size_t *n, tsg_error *err);

/*
 * Converts the decimal value[0..len) in UCUM unit `code` to the canonical unit
 * the index uses for quantities (search_entry.canonical_unit): with *unit NULL
 * the first canonical unit it converts to (set in *unit), else only *unit.
 * Returns 1 and the converted number in *out, 0 when it does not convert.
 */
int search_ucum_canonical(const char *value, size_t len, const char *code, const char **unit,
                          double *out);

/*
 * Reads a FHIR date, dateTime or instant text as the range [*low, *high)
 * of milliseconds it covers (no zone: UTC). TSG_EINVAL when malformed.
 */
tsg_rc search_date_range(const char *s, size_t len, int64_t *low, int64_t *high);

/* ------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------ */

/*
 * How a parsed query is meant to be executed against the entries of
 * search_extract() (R4 search.html; the store implements it):
 *   string     default: the entry's folded text starts with value.folded;
 *              :contains: value.folded is a substring of it; :exact: the
 *              entry's raw text equals value.text.
 *   token      has_system 0: code matches any system; `system|code` both;
 *              `|code` entries without a system; `system|` any code of the
 *              system. :text: TOKEN_TEXT entries, folded prefix match;
 *              :not: resources with no matching entry; :of-type: OF_TYPE
 *              entries; :above/:below (uri-like codes) are left to the store.
 *   date       value [low, high) against entry [low, high): eq = the value
 *              range contains the entry range, ne = not eq, gt/lt/ge/le on
 *              the ends, sa/eb = starts after / ends before, ap = near.
 *   number, quantity   compare number (quantity: with system/code when given,
 *              or through the entry's canonical form).
 *   reference  text "Type/id" matches REFERENCE entries equal to it; a bare
 *              id (ref_type NULL) matches any "<Type>/id" among the
 *              parameter's targets; an absolute URL matches itself.
 *              :identifier: REF_IDENTIFIER entries as a token.
 *   uri        equality; :above/:below by prefix.
 *   :missing   true: no entry of the parameter; false: at least one.
 * Values of one clause are ORed, clauses ANDed.
 */

/* The value of one alternative of a clause (comma = OR), unescaped. */
typedef struct search_value {
    const char *raw;      /* the alternative as given, after unescaping */
    search_prefix prefix; /* number/date/quantity; SEARCH_PFX_EQ otherwise */
    /* token: `system|code` has_system 1; `|code` has_system 1, system "";
     * `system|` code NULL; `code` has_system 0, system NULL. :of-type
     * `typesystem|typecode|value`: system, code, text = value. :text, string:
     * text and folded. reference: text is "Type/id", the absolute URL, or the
     * bare id (then ref_type NULL); ref_type/ref_id split when relative.
     * :identifier: system/code. uri: text. :missing: missing 1 for true. */
    int has_system;
    const char *system;
    const char *code;
    const char *text;
    const char *folded;
    const char *ref_type;
    const char *ref_id;
    int missing;
    /* number/quantity: the number and its text. Quantity `n|system|code`
     * sets has_system 1 and system/code, each NULL when empty (`5.4||mg`:
     * unit mg in any system); a bare `n` leaves has_system 0. */
    double number;
    const char *number_text;
    /* near `latitude|longitude|distance|unit`: latitude in number, the rest
     * here (distance 0 and distance_unit NULL when not given). */
    double longitude;
    double distance;
    const char *distance_unit;
    /* date: the range the value covers (with its precision). */
    int64_t low;
    int64_t high;
    /* composite: the component values, in component order */
    size_t ncomponents;
    struct search_value *components;
} search_value;

/*
 * One parameter of the query (repeated names = several clauses, AND).
 * modifier/modifier_type apply to the parameter the values follow: param,
 * or chain_param for a chain, or has_param for _has.
 * For a chain (`subject:Patient.name=x`, `patient.name=x`) param is the
 * reference parameter, chain_type the target type (NULL when the reference
 * has several targets with that parameter: all of them are meant) and
 * chain_param the parameter on the target, whose type the values follow.
 * For `_has:Observation:patient:code=x`, has_type is "Observation",
 * has_ref its reference parameter `patient` (pointing at the searched
 * type), has_param `code`; param is NULL.
 */
typedef struct search_clause {
    const char *name; /* as given, with modifiers */
    const search_param *param;
    search_modifier modifier;
    const char *modifier_type; /* SEARCH_MOD_TYPE: "Patient" */
    const char *chain_type;
    const search_param *chain_param;
    const char *has_type;
    const search_param *has_ref;
    const search_param *has_param;
    size_t nvalues;
    search_value *values; /* OR */
} search_clause;

typedef struct search_sort {
    const search_param *param;
    int descending;
} search_sort;

typedef struct search_include {
    int reverse;               /* _revinclude */
    int iterate;               /* :iterate */
    const char *source_type;   /* the type holding the reference ("Observation") */
    const search_param *param; /* its reference parameter; NULL for `*` */
    const char *target_type;   /* optional target (`Observation:subject:Patient`) */
} search_include;

typedef enum search_total {
    SEARCH_TOTAL_DEFAULT = 0,
    SEARCH_TOTAL_NONE,
    SEARCH_TOTAL_ESTIMATE,
    SEARCH_TOTAL_ACCURATE
} search_total;

#define SEARCH_COUNT_MAX 1000 /* _count above this is capped to it */

/* A parsed query. Everything lives in the arena given to the parser. */
typedef struct search_query {
    const char *type;
    size_t nclauses;
    search_clause *clauses; /* AND */
    size_t nsort;
    search_sort *sort;
    long count; /* -1 when not given; 0..SEARCH_COUNT_MAX */
    search_total total;
    size_t ninclude;
    search_include *include;
    const char *summary;      /* _summary as given, NULL when absent */
    const char *elements;     /* _elements as given */
    const char *format;       /* _format as given */
    const char *pretty;       /* _pretty as given */
    size_t nignored;          /* lenient: parameters skipped */
    const char **ignored;     /* "name=value" of each, for the self link */
    const char **ignored_why; /* the message of each */
} search_query;

/*
 * Parses the query parameters (names[i]=values[i], already percent-decoded)
 * of a search on resource type `type`. Rules: see search_clause /
 * search_value. A parameter with an empty value is ignored (R4); an empty
 * alternative in a list (`a,,b`) is an error. An unknown parameter, one
 * without an expression (_text, _content, _query), a modifier the
 * parameter's type does not allow (or :in/:not-in, reference :above/:below,
 * which are not supported), an unknown prefix or one the parameter does not
 * allow, a list where multipleOr is false, a chain of more than one level,
 * nested _has, or a malformed value is TSG_EINVAL with a message naming the
 * parameter — unless lenient, when the pair is skipped and listed in
 * ignored/ignored_why. Result parameters: _count (non-negative, capped at
 * SEARCH_COUNT_MAX), _total, _summary, _elements, _format, _pretty (the last
 * one given wins), _sort (a comma list, `-` descending), _include and
 * _revinclude (accumulate; `Type:param[:target]`, `Type:*` or `*`; the
 * source of a plain _include must be the searched type; :iterate, also
 * :recurse). An unknown `type` is always TSG_EINVAL. On success *out
 * (allocated in a) holds the query. TSG_ENOMEM when the arena is exhausted.
 */
tsg_rc search_query_parse(const char *type, size_t nparams, const char *const *names,
                          const char *const *values, int lenient, tsg_arena *a, search_query **out,
                          tsg_error *err);

#endif
