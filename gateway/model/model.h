/*
 * model.h — the FHIR R4 model and the in-memory form of resources, read and
 * written as FHIR JSON and FHIR XML (capability C1).
 *
 * ## The model
 *
 * The complete R4 (4.0.1) model — every resource, data type and primitive,
 * with element order, cardinality, types, choice types, contentReference,
 * bindings, fixed/pattern values, constraints, and the codes of every value set
 * a required binding uses — is generated from the official definitions by
 * gen/gen_r4_model.py into profiles/r4/model.txt, which is embedded in the
 * binary at build time and parsed once on first use (model_r4()). The model is
 * immutable after loading and safe to share between threads.
 *
 * Every StructureDefinition becomes a model_type; every backbone element
 * (`Patient.contact`, `Bundle.entry`) becomes a model_type of kind
 * MODEL_BACKBONE named by its path. A model_elem is one child element of a
 * type, in definition order. An element whose children are defined elsewhere
 * (`Questionnaire.item.item`, contentReference `#Questionnaire.item`) simply
 * has that backbone type as its type.
 *
 * ## The in-memory resource (fhir_node)
 *
 * A resource is a tree of fhir_node allocated in one tsg_arena: the request
 * frees it with tsg_arena_free(). Each node knows its element definition
 * (`elem`, NULL for a root resource) and its concrete type (`type`: for a
 * choice element the chosen type, for `contained`/`Bundle.entry.resource`
 * the resource type). Its children sit in one contiguous array, in definition
 * order, the items of a repeating element consecutive and in array order —
 * the order both JSON and XML writers need, and a cache-friendly walk for
 * FHIRPath and validation.
 *
 * Primitive values keep their text exactly as written (`1.50`, `1E-22`,
 * `2024-01`): `value`/`value_len`, NUL-terminated; NULL when the primitive
 * carries only an id or extensions (`_birthDate` with no `birthDate`). A
 * primitive's `id` and `extension` are its children. The XHTML narrative
 * (Narrative.div, type xhtml) is a primitive whose value is the XHTML text,
 * always with `xmlns="http://www.w3.org/1999/xhtml"` on the root div.
 *
 * Element.id and Extension.url are ordinary children (they are XML
 * attributes only on the wire).
 */
#ifndef TSG_MODEL_H
#define TSG_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"

/* ------------------------------------------------------------------------
 * Model
 * ------------------------------------------------------------------------ */

typedef enum model_kind {
    MODEL_PRIMITIVE, /* boolean, string, date, …, xhtml */
    MODEL_COMPLEX,   /* HumanName, Quantity, Element, BackboneElement, … */
    MODEL_RESOURCE,  /* Patient, Bundle, Resource, DomainResource */
    MODEL_BACKBONE,  /* an inline element with children: Patient.contact */
    MODEL_LOGICAL,   /* MetadataResource (a logical model; not instantiable) */
    MODEL_PROFILE    /* a constraint on another type: SimpleQuantity, MoneyQuantity */
} model_kind;

/* model_type.flags */
#define MODEL_TYPE_ABSTRACT 0x01u /* Resource, DomainResource, Element, BackboneElement */
#define MODEL_TYPE_JSON_NUMBER                                                                     \
    0x02u /* written as a JSON number: integer, decimal, positiveInt, unsignedInt */
#define MODEL_TYPE_JSON_BOOL 0x04u /* written as a JSON boolean: boolean */
#define MODEL_TYPE_XHTML     0x08u /* xhtml */

/* model_elem.flags */
#define MODEL_ELEM_CHOICE       0x01u /* value[x]: the JSON/XML name carries the type */
#define MODEL_ELEM_XML_ATTR     0x02u /* an XML attribute: Element.id, Extension.url */
#define MODEL_ELEM_XHTML        0x04u /* Narrative.div */
#define MODEL_ELEM_SUMMARY      0x08u /* isSummary */
#define MODEL_ELEM_MODIFIER     0x10u /* isModifier */
#define MODEL_ELEM_MUST_SUPPORT 0x20u

#define MODEL_MANY UINT32_MAX /* max cardinality "*" */

typedef struct model_type model_type;
typedef struct model_elem model_elem;

typedef enum model_strength {
    MODEL_BIND_NONE = 0,
    MODEL_BIND_REQUIRED,
    MODEL_BIND_EXTENSIBLE,
    MODEL_BIND_PREFERRED,
    MODEL_BIND_EXAMPLE
} model_strength;

typedef struct model_constraint {
    const char *key;        /* "ele-1" */
    const char *severity;   /* "error" or "warning" */
    const char *expression; /* FHIRPath */
    const char *human;
} model_constraint;

typedef struct model_code {
    const char *system; /* NULL when the value set gives none */
    const char *code;
} model_code;

typedef struct model_valueset {
    const char *url;         /* canonical URL without version */
    const char *unavailable; /* NULL, or why its codes are not enumerated (external code system) */
    uint32_t ncodes;
    const model_code *codes; /* sorted by code, then system */
} model_valueset;

typedef struct model_binding {
    model_strength strength;
    const char *valueset_url;       /* without version */
    const model_valueset *valueset; /* for required bindings; NULL otherwise */
} model_binding;

/* One allowed type of an element. */
typedef struct model_typeref {
    const model_type *type;
    uint16_t nprofiles;          /* type profiles (Quantity{SimpleQuantity}) */
    uint16_t ntargets;           /* target profiles of Reference/canonical */
    const char *const *profiles; /* short names for core types ("SimpleQuantity"), else URLs */
    const char *const *targets;  /* "Patient", "Group", or full URLs */
} model_typeref;

struct model_elem {
    const char *name;        /* property name without [x]: "value", "given" */
    const char *path;        /* "Observation.value[x]" */
    const model_type *owner; /* the type it belongs to */
    uint16_t index;          /* position among owner's elements */
    uint16_t flags;          /* MODEL_ELEM_* */
    uint32_t min;
    uint32_t max; /* MODEL_MANY for "*" */
    uint16_t ntypes;
    uint16_t nconstraints;
    const model_typeref *types;
    const model_binding *binding; /* NULL when unbound */
    const model_constraint *const *constraints;
    const char *fixed;   /* "<type>:<JSON>" of fixed[x], or NULL */
    const char *pattern; /* "<type>:<JSON>" of pattern[x], or NULL */
    const char *extras;  /* "maxLength=N;minValueInteger=N;…" or NULL */
};

struct model_type {
    const char *name;       /* "Patient", "HumanName", "date"; backbone: "Patient.contact" */
    const char *url;        /* StructureDefinition URL; NULL for backbones */
    const model_type *base; /* Element for HumanName, DomainResource for Patient, … */
    uint16_t id;            /* index in model->types */
    uint8_t kind;           /* model_kind */
    uint8_t flags;          /* MODEL_TYPE_* */
    uint16_t nelems;
    uint16_t nconstraints;
    const model_elem *elems;                    /* children in definition order */
    const model_constraint *const *constraints; /* on the root element */
    const char *backbone_base;                  /* backbones: "BackboneElement" or "Element" */
    /* primitives only */
    const char *system_type;  /* "System.Date", "System.String", … */
    const char *regex;        /* the value's regular expression from the definition, or NULL */
    const char *value_extras; /* "maxLength=1048576" etc. of the value, or NULL */
};

typedef struct model {
    uint32_t ntypes;
    const model_type *types;
    uint32_t nconstraints;
    const model_constraint *constraints;
    uint32_t nvaluesets;
    const model_valueset *valuesets;
} model;

/*
 * The R4 model, loaded from the embedded profiles/r4/model.txt on first call
 * (thread-safe). A broken embedded model is a build defect: it is reported on
 * stderr and the process aborts. Never returns NULL.
 */
const model *model_r4(void);

/* The type named name (any kind, including backbones by path); NULL if none. */
const model_type *model_type_find(const char *name, size_t len);

/* The concrete (instantiable) resource type named name; NULL if none. */
const model_type *model_resource_find(const char *name, size_t len);

/*
 * The child element of type t that the JSON property / XML element name
 * `name` denotes. For a choice element (`valueQuantity`) it also finds the
 * chosen type; otherwise *type is the element's single type (or the Resource
 * type for `contained`, whose concrete type comes from the content). Names
 * with a leading underscore are not handled here. Returns NULL when t has no
 * such element.
 */
const model_elem *model_child(const model_type *t, const char *name, size_t len,
                              const model_type **type);

/* The element of t named exactly `name` (no choice suffix); NULL if none. */
const model_elem *model_elem_find(const model_type *t, const char *name);

/* True when type t is `base` or derives from it (Age is-a Quantity). */
int model_type_is(const model_type *t, const model_type *base);

/* The value set with this canonical URL (a version suffix is ignored); NULL if
 * it is not one the model carries. */
const model_valueset *model_valueset_find(const char *url);

/* True when the value set contains code (and system, when system is not NULL). */
int model_valueset_has(const model_valueset *vs, const char *system, const char *code);

/*
 * Writes the JSON/XML property name of element e holding type t into out
 * (`valueQuantity` for a choice, else the element name). Returns the length,
 * or 0 when cap is too small.
 */
size_t model_property_name(const model_elem *e, const model_type *t, char *out, size_t cap);

static inline int model_is_primitive(const model_type *t)
{
    return t->kind == MODEL_PRIMITIVE;
}

static inline int model_is_resource(const model_type *t)
{
    return t->kind == MODEL_RESOURCE;
}

/* ------------------------------------------------------------------------
 * The in-memory resource
 * ------------------------------------------------------------------------ */

typedef struct fhir_node fhir_node;
struct fhir_node {
    const model_elem *elem; /* the element in the parent; NULL for the root resource */
    const model_type *type; /* concrete type */
    const char *value;      /* primitive text as written, NUL-terminated; NULL if none */
    uint32_t value_len;
    uint32_t nkids;
    fhir_node *kids; /* children, definition order, repeats consecutive */
    uint32_t pos;    /* index within the repeating element (0 for single) */
};

/* The resource type name of a resource node ("Patient"). */
static inline const char *fhir_node_type_name(const fhir_node *n)
{
    return n->type->name;
}

/*
 * The FHIRPath location of node `target` inside resource `root`
 * (`Patient.name[0].given[1]`), written into out; returns the length (0 and an
 * empty string when target is not in root or out is too small).
 */
size_t fhir_node_location(const fhir_node *root, const fhir_node *target, char *out, size_t cap);

/* ------------------------------------------------------------------------
 * Formats
 * ------------------------------------------------------------------------ */

/* Writer flags */
#define FHIR_WRITE_PRETTY 0x01u /* indent (JSON: two spaces; XML: two spaces) */

/*
 * Parses FHIR JSON text (one resource, UTF-8, an optional BOM) into a tree
 * allocated in arena a. Every property is checked against the model: unknown
 * elements, wrong JSON types, arrays where one value is allowed (and the
 * reverse), duplicate keys, invalid UTF-8, empty strings, null out of place,
 * integers outside 32 bits, unknown resourceType — each is TSG_EINVAL with
 * err->location set to the FHIRPath of the element and err->line/column to the
 * place in the text. Limits (lim, NULL = defaults) give TSG_ELIMIT.
 * On success *out is the root resource node; on failure *out is NULL and the
 * arena may hold partial allocations (free it).
 */
tsg_rc fhir_json_parse(tsg_arena *a, const char *text, size_t len, const tsg_limits *lim,
                       fhir_node **out, tsg_error *err);

/*
 * Writes resource `root` as FHIR JSON into out (appending): resourceType
 * first, then elements in definition order, primitives with their `_name`
 * companions, decimals exactly as their text. flags: FHIR_WRITE_PRETTY.
 * Fails only when the buffer's limit or memory is exhausted (its tsg_buf_rc).
 */
tsg_rc fhir_json_write(const fhir_node *root, tsg_buf *out, unsigned flags);

/*
 * Parses FHIR XML (namespace http://hl7.org/fhir) into a tree in arena a.
 * Safe by construction: a DOCTYPE, entity declarations and references other
 * than the five predefined and character references are rejected, nothing is
 * fetched. Out-of-order and unknown elements, wrong attributes, and malformed
 * XML are TSG_EINVAL with a location; limits give TSG_ELIMIT. As
 * fhir_json_parse otherwise.
 */
tsg_rc fhir_xml_parse(tsg_arena *a, const char *text, size_t len, const tsg_limits *lim,
                      fhir_node **out, tsg_error *err);

/*
 * Writes resource `root` as FHIR XML into out (appending), with the
 * `<?xml …?>` declaration when flags has FHIR_WRITE_XML_DECL.
 */
#define FHIR_WRITE_XML_DECL 0x02u
tsg_rc fhir_xml_write(const fhir_node *root, tsg_buf *out, unsigned flags);

/*
 * The narrative rule txt-1 (FHIRPath htmlChecks()): s[0..n) is a well-formed
 * XHTML div (as model's readers require) holding only the basic HTML
 * formatting elements and attributes FHIR allows (no script, form, iframe,
 * object, event-handler attributes…). The R4 definitions give txt-2 (some
 * non-whitespace content) the same expression; like the reference validator
 * (whose htmlChecks() checks names only), an empty div passes. Returns TSG_OK when it passes;
 * TSG_EINVAL with err->message naming the first offence; TSG_ELIMIT (nesting) or TSG_ENOMEM.
 */
tsg_rc model_xhtml_html_checks(const char *s, size_t n, tsg_error *err);

#endif
