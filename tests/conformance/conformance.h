/*
 * conformance.h — the comparers of the conformance test (private to
 * tests/conformance). They are deliberately independent of the code under
 * test: JSON is read by a small parser of our own that keeps number text
 * (json_compare.c), XML by libxml2 (xml_compare.c). The rules they implement
 * are written down in README.md; keep the two in step.
 *
 * Every compare function returns CMP_EQUAL, CMP_DIFFERENT (diff says where
 * and how) or CMP_ERROR (an input could not be read; diff says why).
 */
#ifndef TSG_CONFORMANCE_H
#define TSG_CONFORMANCE_H

#include <stddef.h>

enum { CMP_EQUAL = 0, CMP_DIFFERENT = 1, CMP_ERROR = -1 };

/* Comparison flags */
#define CMP_NUMERIC   0x01u /* decimals compare by value (observation-decimal only) */
#define CMP_DIV_XHTML 0x02u /* byte compare: Narrative `div` strings compare as XHTML */

#define CMP_PATH_MAX 512
#define CMP_TEXT_MAX 2048

/* The first difference found. `path` is FHIRPath-like
 * (`Observation.component[3].valueQuantity.value`, `….div.p[2].@class`),
 * `kind` a short stable description used to group failures ("value
 * differs", "missing element"), `what` the human message with both sides,
 * `context` (may be empty) extra lines for --verbose. */
typedef struct cmp_diff {
    char path[CMP_PATH_MAX];
    char kind[64];
    char what[CMP_TEXT_MAX];
    char context[CMP_TEXT_MAX];
} cmp_diff;

void cmp_diff_clear(cmp_diff *d);

/* Writes s[0..n) quoted, with control characters escaped and cut after max
 * bytes with "…", into out (always NUL-terminated when cap > 0). */
void cmp_quote(const char *s, size_t n, size_t max, char *out, size_t cap);

/* Formats a file path into out; -1 (and an empty out) when it does not fit. */
int cmp_path_fmt(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- decimals (json_compare.c) ---- */

/*
 * Compares two decimal texts by value: `1.0` = `1.0e0` = `10E-1`,
 * `0.0000000000000000000001` = `1E-22`, `-0` = `0`. Exact at any precision
 * and exponent (no floating point). Returns 1 when equal, 0 when not, -1
 * when either text is not a number of JSON/FHIR decimal syntax.
 */
int cmp_decimal_equal(const char *a, size_t na, const char *b, size_t nb);

/* ---- JSON (json_compare.c) ---- */

/*
 * Structural equality of two JSON texts: objects as sets of keys (a
 * duplicate key is an error), arrays in order, strings after unescaping,
 * numbers by their exact text (`1.50` ≠ `1.5`), or by value with
 * CMP_NUMERIC. A string property named `div` is compared as XHTML
 * (cmp_xhtml_strings) when both sides are strings. The root name of paths
 * is the official resourceType (or `$`). Texts need not be NUL-terminated.
 */
int cmp_json_structural(const char *official, size_t nofficial, const char *ours, size_t nours,
                        unsigned flags, cmp_diff *d);

/*
 * Byte equality of two JSON texts, the canonical-form check. With flags 0 it
 * is memcmp with a useful report (line, column, both lines, and the JSON
 * path of the first difference). CMP_NUMERIC lets number tokens differ in
 * spelling but not value; CMP_DIV_XHTML lets the string value of a `div`
 * property differ in serialisation but not as XHTML. Everything else must be
 * the same bytes.
 */
int cmp_json_bytes(const char *expected, size_t nexpected, const char *ours, size_t nours,
                   unsigned flags, cmp_diff *d);

/*
 * Checks that text is strict JSON (RFC 8259) with no duplicate keys, using
 * jansson as a second, independent opinion. Returns CMP_EQUAL when it is,
 * CMP_ERROR with d->what set when not.
 */
int cmp_json_strict(const char *text, size_t n, cmp_diff *d);

/*
 * Cross-checks the JSON value parser of json_compare.c against jansson on
 * text: both accept or both reject, and accepted values agree (numbers
 * through strtod). CMP_EQUAL when they agree. For the self-test.
 */
int cmp_json_crosscheck_jansson(const char *text, size_t n, cmp_diff *d);

/* The JSON value parser itself (json_compare.c), for the self-test. */
typedef enum cj_kind {
    CJ_NULL,
    CJ_FALSE,
    CJ_TRUE,
    CJ_NUMBER,
    CJ_STRING,
    CJ_ARRAY,
    CJ_OBJECT
} cj_kind;
typedef struct cj_value cj_value;
struct cj_value {
    cj_kind kind;
    const char *s; /* STRING: unescaped, NUL-terminated; NUMBER: the text as written */
    size_t len;
    size_t n;       /* ARRAY items / OBJECT members */
    cj_value **v;   /* the items / member values */
    const char **k; /* OBJECT: member keys (unescaped, NUL-terminated) */
    size_t *klen;
    size_t off, end; /* byte range of the value in the text */
};
struct tsg_arena;
/* Parses text (strict RFC 8259, no duplicate keys) into arena a. Returns 0,
 * or -1 with "line L column C: why" in err. */
int cj_parse(struct tsg_arena *a, const char *text, size_t n, cj_value **out, char *err,
             size_t errcap);
/* 1-based line and column (in characters) of byte offset off of s. */
void cj_linecol(const char *s, size_t off, unsigned *line, unsigned *col);

/* ---- XML (xml_compare.c) ---- */

/* Call once before and once after all XML comparisons. */
void cmp_xml_init(void);
void cmp_xml_cleanup(void);

/*
 * Element-tree equality of two XML documents (FHIR XML): element local
 * names and namespace URIs in order, attributes as sets (namespace, name,
 * value), text exact; comments, processing instructions and
 * whitespace-only text ignored. Below an element in the XHTML namespace
 * text is compared with whitespace runs collapsed to one space and
 * trimmed. With CMP_NUMERIC a `value` attribute holding decimals on both
 * sides compares by value. Documents with a DOCTYPE are an error (nothing
 * is ever loaded or expanded). `root_path` may be NULL (the root element's
 * name is used).
 */
int cmp_xml_documents(const char *official, size_t nofficial, const char *ours, size_t nours,
                      unsigned flags, const char *root_path, cmp_diff *d);

/* Two XHTML fragments given as text (the Narrative.div of FHIR JSON),
 * compared by the XHTML rule above; path is the JSON path of the `div`. */
int cmp_xhtml_strings(const char *official, size_t nofficial, const char *ours, size_t nours,
                      const char *path, cmp_diff *d);

/* ---- self-test (self_test.c) ---- */

/* Runs the hand-made cases of the comparers; when corpus_dir is not NULL,
 * also cross-checks the JSON parser against jansson on every official JSON
 * file. Prints each failure; returns the number of failures. */
int cmp_self_test(const char *corpus_dir);

#endif
