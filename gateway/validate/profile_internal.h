/*
 * profile_internal.h — the compiled form of a profile, shared by the
 * compiler (profile.c) and the validator (profile_check.c). Not public.
 *
 * A profile is one flat array of pf_elem. Element 0 is the root (the
 * resource or data type itself). An element's constrained children occupy
 * elems[kids .. kids+nkids) and its slices elems[slices .. slices+nslices).
 * Everything lives in the registry's arena and is immutable after
 * profile_registry_compile().
 */
#ifndef TSG_PROFILE_INTERNAL_H
#define TSG_PROFILE_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "../fhirpath/fhirpath.h"
#include "profile.h"

/* A value set as the compiler resolved it: the R4 model's, or one built from
 * loaded ValueSet/CodeSystem resources. */
typedef struct pf_valueset {
    const char *url;
    const model_valueset *model; /* the R4 model's, or NULL */
    size_t ncodes;
    const model_code *codes; /* sorted by code, then system (loaded ones) */
    const char *incomplete;  /* NULL, or why some codes are not enumerated */
} pf_valueset;

typedef struct pf_type {
    const char *code;             /* "Quantity", "Reference", "Extension" */
    const model_type *type;       /* NULL when the model has no such type */
    uint16_t nprofiles, ntargets; /* type profiles, target profiles */
    const char **profiles;
    const profile **profile_refs; /* resolved, NULL where not loaded */
    const char **targets;
    const char **target_types;   /* resource type of each target, NULL when unknown */
    const profile **target_refs; /* each target's compiled profile, NULL for R4 types */
} pf_type;

enum { PF_DISC_VALUE, PF_DISC_PATTERN, PF_DISC_TYPE, PF_DISC_PROFILE, PF_DISC_EXISTS };
enum { PF_RULES_OPEN, PF_RULES_CLOSED, PF_RULES_OPEN_AT_END };

typedef struct pf_disc {
    uint8_t kind;     /* PF_DISC_* */
    const char *path; /* as written */
    /* the path as simple steps (names, "$this" is no step, extension('u')
     * is the step "extension" with a url); NULL when only FHIRPath can do it */
    uint16_t nsteps;
    const char **steps;
    const char **step_urls; /* extension('url') filter of each step, or NULL */
    fp_expr *expr;          /* the compiled path when nsteps is not enough */
} pf_disc;

/* What one slice expects for discriminator i of its slicing. */
typedef struct pf_slice_key {
    uint8_t known;       /* 0: the compiler found nothing to match on */
    uint8_t exact;       /* value: fixed (exact) rather than pattern */
    uint8_t exists;      /* exists: 1 present, 0 absent */
    const json_t *value; /* value/pattern */
    uint16_t ntypes;     /* type */
    const model_type **types;
    const profile *profile; /* profile */
    const char *profile_url;
} pf_slice_key;

typedef struct pf_constraint {
    const char *key, *severity, *human, *expression;
    fp_expr *expr;
} pf_constraint;

/* pf_elem.flags */
#define PF_CHECK_CARD    0x01u
#define PF_CHECK_TYPES   0x02u /* the node's type must be one of types[] */
#define PF_CHECK_BINDING 0x04u
#define PF_TYPE_PROFILES 0x08u /* some type has profiles to validate against */
#define PF_TARGETS       0x10u /* some Reference type narrows its targets */
#define PF_MUST_SUPPORT  0x20u
#define PF_TARGET_TYPES  0x40u /* the targets narrow the base's resource types */

typedef struct pf_elem {
    const char *id;          /* element id: "Observation.category:vs.coding" */
    const model_elem *melem; /* matched against fhir_node.elem; NULL for the root */
    const char *slice_name;  /* NULL unless a slice */
    const model_type *only;  /* `valueQuantity`: applies to nodes of this type only */
    unsigned flags;
    uint32_t min, max;
    const json_t *fixed, *pattern; /* the fixed[x]/pattern[x] values, or NULL */
    const char *fixed_key;         /* "fixedUri", "patternCodeableConcept" (messages) */
    const char *value_text;        /* the fixed/pattern value as compact JSON (messages) */
    model_strength strength;
    const char *vs_url;
    const pf_valueset *vs; /* resolved; NULL when not available */
    uint16_t ntypes, ncons;
    pf_type *types;
    pf_constraint *cons;
    /* slicing of this element (ndisc > 0 or rules closed) */
    uint16_t ndisc;
    uint8_t sliced, rules, ordered;
    pf_disc *disc;
    pf_slice_key *keys; /* slices only: one per discriminator of the parent */
    uint32_t kids, nkids, slices, nslices;
} pf_elem;

struct profile {
    const char *url, *version, *name, *type;
    const model_type *mtype;
    int is_extension;
    /* extension definitions: the element contexts where it may be used
     * (context type `element`); context_any when one of another type
     * (fhirpath, extension) makes the check impossible here */
    uint16_t ncontexts;
    uint8_t context_any;
    const char **contexts;
    uint32_t nelems;
    pf_elem *elems;
    const profile_registry *reg;
};

/* Resolves a canonical (URL or URL|version) among compiled profiles. */
const profile *profile_lookup(const profile_registry *r, const char *url);

#endif
