/*
 * fp_ast.h — the compiled form of a FHIRPath expression (private to the
 * fhirpath module: the parser builds it, the evaluator walks it).
 *
 * ## The AST
 *
 * One node type, `fp_node`, tagged by `kind` (and `op` for operators), with a
 * union of a few shapes. It is a plain tree, not a token list or bytecode,
 * because the evaluator is a recursive walker over collections: every node is
 * "evaluate me against this focus" and the shapes map one to one onto the
 * evaluator's cases:
 *
 *   - a path step and a function call are the same shape (`target`, `name`,
 *     args): `Patient.name.given` is MEMBER(MEMBER(MEMBER(NULL, Patient), name),
 *     given), and a NULL target means "the current focus" ($this). Functions
 *     are not resolved here — `name` stays an identifier — so the evaluator
 *     (or a later binding pass) decides what `where`, `is` or `iif` mean and
 *     evaluates their arguments lazily, per item, as the spec requires.
 *     `is(T)`, `as(T)` and `ofType(T)` are ordinary calls whose argument is an
 *     identifier path (MEMBER chain) naming the type.
 *   - `is`/`as` operators are their own kind (TYPE) because their right side is
 *     a type name, not an expression: namespace and name are split already.
 *   - literals keep their source text exactly (`1.50`, `@2015-02T`): the value
 *     library decides precision, and the dump stays faithful. Dates and times
 *     also carry `value`, the text in FHIR's lexical form (no '@', no trailing
 *     or leading 'T'), which is what the value parsers take.
 *   - every node records `pos`, the byte offset of the token that names it (the
 *     operator, the member or function name, the literal), so evaluation errors
 *     can point into the expression (fp_expr_column()).
 *   - every node records its `height`; the parser refuses trees higher than
 *     FP_LIMIT_DEPTH, so any recursive walk over a compiled expression (dump,
 *     evaluator, analysers) is bounded and cannot overflow the C stack.
 *
 * Everything — nodes, names, unescaped strings, a copy of the source — lives in
 * one arena owned by the fp_expr; nothing is mutated after fp_compile()
 * returns, so one compiled expression may be evaluated from several threads.
 *
 * All strings (fp_str) are NUL-terminated in the arena, and carry their length
 * (a string literal may contain U+0000 through `\u0000`).
 */
#ifndef TSG_FP_AST_H
#define TSG_FP_AST_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fhirpath.h"

typedef struct fp_str {
    const char *s; /* NUL-terminated; may contain NULs (string literals) */
    uint32_t len;
} fp_str;

typedef enum fp_kind {
    FP_LIT_EMPTY,    /* {} */
    FP_BOOLEAN,      /* true / false: boolean */
    FP_STRING,       /* 'text': text (unescaped) */
    FP_INTEGER,      /* 12: text as written */
    FP_DECIMAL,      /* 1.50: text as written */
    FP_LIT_DATE,     /* @2014-01: text "2014-01", value "2014-01" */
    FP_LIT_DATETIME, /* @2015T, @2014-01-25T14:30+09:00: text "2015T", value "2015" */
    FP_LIT_TIME,     /* @T14:30: text "T14:30", value "14:30" (may carry a zone; see below) */
    FP_QUANTITY,     /* 4 'wk', 10 days: quantity */
    FP_THIS,         /* $this; call.target NULL, or x in `x.$this` */
    FP_INDEX,        /* $index; call.target as for FP_THIS */
    FP_TOTAL,        /* $total; call.target as for FP_THIS */
    FP_EXTERNAL,     /* %name, %'name', %`name`: name */
    FP_MEMBER,       /* [target.]name: call (args empty) */
    FP_CALL,         /* [target.]name(args): call */
    FP_INDEXER,      /* lhs[rhs]: bin */
    FP_UNARY,        /* op lhs (FP_OP_POS, FP_OP_NEG): bin.lhs */
    FP_BINARY,       /* lhs op rhs: bin */
    FP_TYPE          /* operand is/as type (FP_OP_IS, FP_OP_AS): type */
} fp_kind;

/* Operators, in the order of the spec's precedence table (loosest first). */
typedef enum fp_op {
    FP_OP_NONE,
    FP_OP_IMPLIES,
    FP_OP_OR,
    FP_OP_XOR,
    FP_OP_AND,
    FP_OP_IN,
    FP_OP_CONTAINS,
    FP_OP_EQ,     /* = */
    FP_OP_EQUIV,  /* ~ */
    FP_OP_NE,     /* != */
    FP_OP_NEQUIV, /* !~ */
    FP_OP_LT,
    FP_OP_GT,
    FP_OP_LE,
    FP_OP_GE,
    FP_OP_UNION, /* | */
    FP_OP_IS,
    FP_OP_AS,
    FP_OP_ADD,
    FP_OP_SUB,
    FP_OP_CONCAT, /* & */
    FP_OP_MUL,
    FP_OP_DIV,  /* / */
    FP_OP_IDIV, /* div */
    FP_OP_MOD,
    FP_OP_POS, /* unary + */
    FP_OP_NEG  /* unary - */
} fp_op;

typedef struct fp_node fp_node;

struct fp_node {
    uint8_t kind;    /* fp_kind */
    uint8_t op;      /* fp_op for UNARY, BINARY, TYPE; FP_OP_NONE otherwise */
    uint16_t height; /* 1 for a leaf; at most FP_LIMIT_DEPTH */
    uint32_t pos;    /* byte offset of the node's naming token in the source */
    union {
        bool boolean;
        fp_str text; /* STRING, INTEGER, DECIMAL, DATE, DATETIME, TIME */
        fp_str name; /* EXTERNAL */
        struct {
            fp_str text;   /* as written after '@' */
            fp_str value;  /* FHIR lexical form */
            bool has_zone; /* TIME only: a zone offset the grammar does not allow
                            * (`@T14:34:28Z`); the suite expects an execution error */
        } temporal;        /* DATE, DATETIME, TIME: temporal.text and `text` are the same field */
        struct {
            fp_str number; /* text as written: "4", "10.5" */
            bool decimal;  /* number has a fraction */
            bool calendar; /* unit is a calendar keyword (day, weeks, …) */
            fp_str unit;   /* UCUM text unescaped, or the keyword as written */
        } quantity;
        struct {
            const fp_node *target; /* NULL: the focus */
            fp_str name;
            const fp_node *const *args;
            uint32_t nargs;
        } call; /* MEMBER, CALL */
        struct {
            const fp_node *lhs, *rhs; /* rhs NULL for UNARY */
        } bin;
        struct {
            const fp_node *operand;
            fp_str ns;   /* "FHIR", "System"; len 0 when not qualified */
            fp_str name; /* "Patient"; with three or more parts, the rest joined by '.' */
        } type;
    };
};

/* A regular expression of matches() or matchesFull() whose
 * pattern is a string literal, compiled once with the expression. regexec()
 * on it is thread-safe, so evaluations share it. */
typedef struct fp_regex {
    const fp_node *call; /* the function call it belongs to */
    bool whole;          /* matchesFull(): anchored at both ends */
    bool ok;             /* compiled (false: a bad pattern, reported at evaluation) */
    regex_t re;
} fp_regex;

struct fp_expr {
    tsg_arena *arena; /* owns everything below */
    const fp_node *root;
    fp_str source;     /* a copy of the compiled text */
    fp_regex *regexes; /* malloc'd; regfree()d by fp_expr_free */
    uint32_t nregexes;
};

/* fp_eval.c: compiles the literal patterns of e's regex functions into
 * e->regexes (best effort: on ENOMEM there is simply no cache), and releases
 * them. */
void fp_regex_precompile(fp_expr *e);
void fp_regex_release(fp_expr *e);

/* The 1-based character (code point) position of byte offset pos in the
 * expression's source, counting from its start across newlines. */
unsigned fp_expr_column(const fp_expr *e, uint32_t pos);

/* Appends the S-expression of one node (see fp_expr_dump in fhirpath.h). */
void fp_node_dump(const fp_node *n, tsg_buf *out);

/* The operator as written in FHIRPath ("+", "div", "implies", "is"). */
const char *fp_op_name(fp_op op);

#endif
