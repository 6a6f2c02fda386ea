/*
 * fhirpath.h — FHIRPath (normative release N1, 2.0.0) for tsunagu (capability
 * C2): compile an expression once, evaluate it many times.
 *
 * fp_compile() parses the whole grammar into an immutable tree (fp_ast.h),
 * fp_expr_dump() prints it, fp_eval() evaluates it over a resource.
 *
 * ## What the parser accepts
 *
 * The N1 grammar (`fhirpath.g4`), with these deliberate choices:
 *   - after '.', any word is a member or function name, keywords included
 *     (`text.div`, `x.contains('a')`, `x.is(T)`); at the start of a term,
 *     `as`, `is`, `contains`, `in` and the calendar-unit words are names too,
 *     the other keywords (`and`, `div`, `true`, …) are not;
 *   - a calendar-unit word (`day`, `weeks`, …) or a string right after a
 *     number makes a quantity (`4 'wk'`, `10 days`);
 *   - dates and times are checked (month 1–12, the day exists in its month,
 *     hour 0–23, minute and second 0–59, zone offset -14:00…+14:00);
 *   - a time literal may carry a zone offset (`@T14:34:28Z`); the grammar has
 *     no such literal, but the official suite expects it to fail at
 *     evaluation, not parsing, so it is kept and flagged for the evaluator;
 *   - line comments (two slashes to the end of the line) and block comments
 *     (slash-star to star-slash) are whitespace; an unterminated block comment
 *     is an error.
 *
 * ## The dump (S-expression), stable — tests compare against it
 *
 *   {}  true  false  'str'  12  1.50  @2014-01  @2015T  @T14:30
 *   (quantity 4 'wk')   (quantity 10 days)
 *   $this  $index  $total  %name
 *   (. target $this)          `x.$this` (the grammar allows it after '.')
 *   name                      a member of the focus
 *   (. target name)           a member of target
 *   (call name arg…)          a function of the focus
 *   (. target (call name arg…))
 *   ([] target index)
 *   (- a)  (+ a)              unary
 *   (op a b)                  binary: implies or xor and in contains = ~ != !~
 *                             < > <= >= | + - & * / div mod
 *   (is a FHIR.Patient)  (as a Period)
 *
 * Strings are written with `'`, `\` and control characters escaped (`\n`,
 * `\u0001`); a name that is not a simple identifier is written between
 * backticks (`` `vs-x` ``, `` %`ext-y` ``). Parentheses of the source leave no
 * trace: the tree already says how operands group.
 */
#ifndef TSG_FHIRPATH_H
#define TSG_FHIRPATH_H

#include <stddef.h>

#include "../util/util.h"

/* Named limits of the compiler. Exceeding one is a TSG_ELIMIT error naming it. */
#define FP_LIMIT_EXPR_BYTES (64u * 1024u) /* source text of one expression */
#define FP_LIMIT_DEPTH      256u          /* nesting of the tree and of the parser */
#define FP_LIMIT_ARGS       32u           /* arguments of one function call */

typedef struct fp_expr fp_expr;

/*
 * Compiles the FHIRPath expression src[0..len) (UTF-8, need not be
 * NUL-terminated). On success returns TSG_OK and sets *out to a compiled
 * expression the caller frees with fp_expr_free(); it is immutable and may be
 * used from several threads at once.
 *
 * On failure *out is NULL and err (when not NULL) says why:
 *   TSG_EINVAL — a syntax error; err->column is the 1-based character position
 *                of the offending token, counted from the start of the
 *                expression (newlines are characters too), err->line is 0;
 *   TSG_ELIMIT — FP_LIMIT_EXPR_BYTES, FP_LIMIT_DEPTH or FP_LIMIT_ARGS exceeded
 *                (the message names the limit; column as above, 0 for length);
 *   TSG_ENOMEM — out of memory.
 * Never crashes, recurses without bound, or runs longer than linear time.
 */
tsg_rc fp_compile(const char *src, size_t len, fp_expr **out, tsg_error *err);

/* Releases a compiled expression and everything it owns; NULL is ignored. */
void fp_expr_free(fp_expr *e);

/*
 * Appends the S-expression form of e (see "The dump" above) to out and returns
 * the number of bytes appended. Cannot fail by itself; a full or failed buffer
 * is reported by tsg_buf_rc(out) as usual.
 */
size_t fp_expr_dump(const fp_expr *e, tsg_buf *out);

/* ------------------------------------------------------------------------
 * Evaluation
 *
 * fp_eval() walks a compiled expression over a resource tree (model.h) and
 * returns a collection of items. An item is either a node of the tree (its
 * type is the node's FHIR type: FHIR.code, FHIR.HumanName, FHIR.Patient) or a
 * System value (System.Boolean, System.Integer, System.Decimal,
 * System.String, System.Date, System.DateTime, System.Time,
 * System.Quantity). Primitive nodes convert to System values when an
 * operator or function needs them.
 *
 * Everything a call produces (the collection, its items, texts) lives in the
 * arena the caller passes; fp_eval() never mallocs per item. A compiled
 * expression is not modified, so several threads may evaluate it at once,
 * each with its own arena.
 * ------------------------------------------------------------------------ */

typedef struct fhir_node fhir_node;
typedef struct fp_item fp_item;

/* Hard cap on the items of one intermediate collection (repeat(),
 * descendants(), unions): exceeding it is TSG_ELIMIT. */
#define FP_LIMIT_ITEMS 1000000u

/* Default work budget of one fp_eval(): node visits plus the item comparisons
 * of distinct(), union, repeat(), in/contains and the like. Exceeding it is
 * TSG_ELIMIT, so no expression (a subscription criterion from a client, say)
 * can hold a thread for long; about a second of work on this machine. */
#define FP_LIMIT_STEPS 200000000ull

/* Regular expressions (matches(), replaceMatches()…): the pattern's length,
 * and the product of its repetition bounds ({m,n}), which glibc expands into
 * its automaton. A pattern beyond either is refused as invalid. */
#define FP_LIMIT_REGEX_BYTES     4096u
#define FP_LIMIT_REGEX_EXPANSION 2000.0

/* A collection: count items in order, allocated in an arena. */
typedef struct fp_collection {
    fp_item *items;
    size_t count;
    size_t cap;
} fp_collection;

/* A caller-supplied environment variable (%name without the '%'). */
typedef struct fp_var {
    const char *name;
    fp_collection value;
} fp_var;

/*
 * The evaluation environment; NULL means no variables and the system clock.
 * now_ms/tz_minutes fix the clock of now()/today()/timeOfDay() when
 * fixed_clock is set (tests); otherwise the clock is read once per fp_eval().
 */
typedef struct fp_env {
    const fp_var *vars;
    size_t nvars;
    int fixed_clock;
    long long now_ms;
    int tz_minutes;
    /* work budget; 0 means FP_LIMIT_STEPS */
    unsigned long long max_steps;
    /* trace(name[, projection]) calls this with the name and the traced
     * collection (the projection's result when given); NULL: trace() only
     * passes its input on. Called on the evaluating thread. */
    void (*trace)(void *user, const char *name, size_t name_len, const fp_collection *c);
    void *trace_user;
} fp_env;

/*
 * Evaluates e with `resource` as %resource/%rootResource and `context` as
 * %context and the initial focus (context NULL: the resource; both NULL: the
 * empty collection). On success *out holds the result, allocated in a.
 * Failures (err says why; err->column is the 1-based column of the AST node
 * that failed):
 *   TSG_EINVAL  — an execution error: a collection where a singleton is
 *                 required, wrong argument count or type, incompatible units;
 *   TSG_ENOTSUP — a function this build does not implement (named);
 *   TSG_ELIMIT  — FP_LIMIT_ITEMS or the work budget (FP_LIMIT_STEPS) exceeded;
 *   TSG_ENOMEM  — the arena is exhausted.
 */
tsg_rc fp_eval(const fp_expr *e, const fhir_node *resource, const fhir_node *context,
               const fp_env *env, tsg_arena *a, fp_collection *out, tsg_error *err);

/* A collection of one node (for fp_var values). TSG_ENOMEM only. */
tsg_rc fp_collection_of_node(tsg_arena *a, const fhir_node *node, fp_collection *out);

/* Item i (< c->count) of a collection. */
const fp_item *fp_collection_item(const fp_collection *c, size_t i);

/* The item's node, or NULL for a System value. */
const fhir_node *fp_item_node(const fp_item *it);

/* Writes the item's qualified type name ("System.Integer", "FHIR.code") into
 * buf with a NUL; returns its length (0 when cap is too small). */
size_t fp_item_type_name(const fp_item *it, char *buf, size_t cap);

/* True when the item is a primitive or System value (it has a toString()). */
int fp_item_is_primitive(const fp_item *it);

/* Appends the item's toString() text (primitives and System values; the JSON
 * form for complex nodes) to out. */
void fp_item_write_text(const fp_item *it, tsg_buf *out);

/*
 * Appends the result as DESIGN.md §6 prints it: a JSON array of
 * {"type": T, "value": V}, V a JSON string of the toString() text for
 * primitive and System values and the JSON object of a complex node.
 */
void fp_collection_write_json(const fp_collection *c, tsg_buf *out);

#endif
