/*
 * validate_internal.h — shared between the files of the validate module; not
 * part of its interface (validate.h).
 */
#ifndef TSG_VALIDATE_INTERNAL_H
#define TSG_VALIDATE_INTERNAL_H

#include "../fhirpath/fhirpath.h"
#include "validate.h"

/* An expression made only of child-path tests joined by `and`/`or`
 * (`code.empty() or system.exists()`, `text.`div`.exists()`): the walker
 * decides it from the tree directly, with FHIRPath's meaning (each test is a
 * boolean, never empty, so `and`/`or` are plain logic; `and` binds tighter). */
#define VINV_SIMPLE_TERMS 12
#define VINV_SIMPLE_DEPTH 4
typedef struct vinv_term {
    const char *path[VINV_SIMPLE_DEPTH]; /* child names from the node */
    unsigned char npath;
    unsigned char exists; /* 1: PATH.exists(); 0: PATH.empty() */
    unsigned char group;  /* terms of one group are and-ed; groups are or-ed */
} vinv_term;
typedef struct vinv_simple {
    unsigned char nterms;
    vinv_term terms[VINV_SIMPLE_TERMS];
} vinv_simple;

/* How one model constraint is checked. */
typedef enum vinv_mode {
    VINV_FHIRPATH = 0, /* compiled: evaluate expr */
    VINV_NATIVE,       /* checked by the walker itself (note says where) */
    VINV_BROKEN,       /* a known defect of the R4 definition: not evaluated (note says why) */
    VINV_UNCOMPILABLE  /* the FHIRPath compiler refused it: reported as information */
} vinv_mode;

typedef struct vinv {
    vinv_mode mode;
    const fp_expr *expr; /* VINV_FHIRPATH only */
    const char *note;    /* why native/broken, or the compiler's message */
    /* VINV_FHIRPATH: when the node has no child element of this name, the
     * expression is true by its form (see guard_of in validate_invariants.c),
     * so it need not be evaluated; NULL: always evaluate */
    const char *guard;
    /* VINV_FHIRPATH: the expression's simple form, decided without the engine;
     * NULL: evaluate it */
    const vinv_simple *simple;
} vinv;

/* The checking plan of constraint k (a member of model_r4()->constraints).
 * The table is built on first call (thread-safe) and never freed. */
const vinv *validate_invariant(const model_constraint *k);

/* The whole table, indexed like model_r4()->constraints (built on first
 * call), so the walker can look plans up without a call per node. */
const vinv *validate_invariant_table(void);

#endif
