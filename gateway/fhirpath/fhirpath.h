/*
 * fhirpath.h — FHIRPath (normative release N1, 2.0.0) for tsunagu (capability
 * C2): compile an expression once, evaluate it many times.
 *
 * For now this header holds the compiler: fp_compile() parses the whole
 * grammar into an immutable tree (fp_ast.h), fp_expr_dump() prints it.
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

#endif
