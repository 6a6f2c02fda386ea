/*
 * text_fold.c — search folding (see text.h for the rules).
 *
 * The input is validated once, then cut into chunks of about TEXT_CHUNK_BYTES
 * at "safe" code points (ones that never combine with what precedes them:
 * ASCII, kana letters, CJK ideographs), so that each chunk can be normalised
 * on its own into a stack buffer. Each chunk goes through three stages:
 *
 *   1. utf8proc_decompose_custom: the custom map (spacing voicing marks,
 *      whitespace controls), then compatibility decomposition, case folding
 *      and removal of default-ignorables, with canonical ordering;
 *   2. filter, on the decomposed code points: drop marks (except U+3099,
 *      U+309A) and controls, hiragana → katakana, ヵヶ → カケ. This must run
 *      before composition: `ワ`+U+3099 composes to `ヷ` only once `わ` has
 *      become `ワ`, and a dropped control must not keep a base from its mark;
 *   3. utf8proc_normalize_utf32 with COMPOSE (canonical composition), then
 *      the output stage: whitespace runs, the hyphen class (which looks at the
 *      previous output character) and wave dashes, encoded into the tsg_buf.
 *
 * An all-ASCII chunk skips utf8proc: NFKC is the identity on ASCII, and case
 * folding is tolower.
 */
#include "text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* A chunk is cut at the first safe code point after this many bytes. */
#define TEXT_CHUNK_BYTES 1024u
/* Code points of the stack buffer; a chunk of TEXT_CHUNK_BYTES decomposes to
 * at most ~TEXT_CHUNK_BYTES code points in practice (NFKC rarely expands a
 * 2–4 byte character to more than 4 code points). Bigger needs use malloc. */
#define TEXT_STACK_CPS 4096

typedef struct fold_state {
    tsg_buf *out;
    int have_output;   /* something was written (for trimming leading space) */
    int pending_space; /* a whitespace run follows the last output character */
    uint32_t prev;     /* last character seen in the output stage (0 at start) */
} fold_state;

/* ------------------------------------------------------------------------
 * Character classes
 * ------------------------------------------------------------------------ */

/* Code points after which no composition or reordering can reach back past,
 * and which are never dropped (a dropped control would let the next chunk's
 * leading mark miss its base): a chunk may start here. */
static int is_safe_start(uint32_t c)
{
    return (c >= 0x20 && c < 0x7F) || (c >= 0x09 && c <= 0x0D) || (c >= 0x3041 && c <= 0x3096) ||
           (c >= 0x30A1 && c <= 0x30FA) || (c >= 0x4E00 && c <= 0x9FFF);
}

static int is_space(uint32_t c)
{
    if (c == 0x20) return 1;
    if (c < 0x80) return c >= 0x09 && c <= 0x0D;
    if (c == 0x85) return 1;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}

/* Kana for rule 9: the previous character makes a following hyphen a long
 * vowel mark. Output is already katakana, so hiragana never reaches here. */
static int is_kana(uint32_t c)
{
    return (c >= 0x30A1 && c <= 0x30FA) || (c >= 0x30FC && c <= 0x30FF) ||
           (c >= 0x31F0 && c <= 0x31FF) || c == 0x3099 || c == 0x309A;
}

static int is_hyphen(uint32_t c)
{
    switch (c) {
    case 0x002D:
    case 0x2010:
    case 0x2011:
    case 0x2012:
    case 0x2013:
    case 0x2014:
    case 0x2015:
    case 0x2043:
    case 0x2212:
    case 0x2E3A:
    case 0x2E3B:
    case 0xFE58:
    case 0xFE63:
    case 0xFF0D:
    case 0x30FC:
    case 0xFF70:
        return 1;
    default:
        return 0;
    }
}

static int is_wave(uint32_t c)
{
    return c == 0x301C || c == 0xFF5E || c == 0x3030 || c == 0x2053;
}

/* ------------------------------------------------------------------------
 * Stage 1: the map applied to each input code point before decomposition
 * ------------------------------------------------------------------------ */

static utf8proc_int32_t fold_premap(utf8proc_int32_t c, void *data)
{
    (void)data;
    if (c == 0x309B) return 0x3099; /* ゛ spacing → combining dakuten */
    if (c == 0x309C) return 0x309A; /* ゜ spacing → combining handakuten */
    if ((c >= 0x09 && c <= 0x0D) || c == 0x85) return 0x20;
    return c;
}

/* ------------------------------------------------------------------------
 * Stage 2: filter on decomposed code points (in place); returns the new length
 * ------------------------------------------------------------------------ */

static utf8proc_ssize_t fold_filter(utf8proc_int32_t *cp, utf8proc_ssize_t n)
{
    utf8proc_ssize_t o = 0;
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        utf8proc_int32_t c = cp[i];
        if (c >= 0x3041 && c <= 0x3096) {
            c += 0x60; /* hiragana → katakana, ゕゖ → ヵヶ */
        } else if (c == 0x309D || c == 0x309E) {
            c += 0x60; /* ゝゞ → ヽヾ */
        } else if (c >= 0x80 && c != 0x3099 && c != 0x309A) {
            utf8proc_category_t cat = utf8proc_category(c);
            if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
                cat == UTF8PROC_CATEGORY_CC)
                continue;
        } else if (c < 0x20 || c == 0x7F) {
            continue;
        }
        if (c == 0x30F5) c = 0x30AB; /* ヵ → カ */
        if (c == 0x30F6) c = 0x30B1; /* ヶ → ケ */
        cp[o++] = c;
    }
    return o;
}

/* ------------------------------------------------------------------------
 * Stage 3: output of one composed code point
 * ------------------------------------------------------------------------ */

static void fold_emit(fold_state *st, uint32_t c)
{
    if (is_space(c)) {
        if (st->have_output) st->pending_space = 1;
        st->prev = 0x20;
        return;
    }
    if (is_hyphen(c))
        c = is_kana(st->prev) ? 0x30FC : 0x2D;
    else if (is_wave(c))
        c = 0x7E;
    if (st->pending_space) {
        tsg_buf_putc(st->out, ' ');
        st->pending_space = 0;
    }
    if (c < 0x80) {
        tsg_buf_putc(st->out, (char)c);
    } else {
        char enc[4];
        tsg_buf_append(st->out, enc, (size_t)tsg_utf8_encode(c, enc));
    }
    st->have_output = 1;
    st->prev = c;
}

/* ASCII-only chunk: NFKC is the identity, case folding is tolower. */
static void fold_ascii(fold_state *st, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        } else if (c < 0x20 || c == 0x7F) {
            if (c >= 0x09 && c <= 0x0D)
                c = 0x20;
            else
                continue;
        }
        fold_emit(st, c);
    }
}

/* Folds one chunk s[0..n) (valid UTF-8, starting at a safe code point or at
 * the start of the text). Returns TSG_OK or TSG_ENOMEM/TSG_EINTERNAL. */
static tsg_rc fold_chunk(fold_state *st, const unsigned char *s, size_t n, int ascii)
{
    if (ascii) {
        fold_ascii(st, s, n);
        return TSG_OK;
    }
    const utf8proc_option_t opts =
        UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE;
    utf8proc_int32_t stack[TEXT_STACK_CPS];
    utf8proc_int32_t *cp = stack;
    utf8proc_ssize_t got = utf8proc_decompose_custom(s, (utf8proc_ssize_t)n, cp, TEXT_STACK_CPS,
                                                     opts, fold_premap, NULL);
    if (got > TEXT_STACK_CPS) {
        cp = malloc((size_t)got * sizeof *cp);
        if (!cp) return TSG_ENOMEM;
        utf8proc_ssize_t again =
            utf8proc_decompose_custom(s, (utf8proc_ssize_t)n, cp, got, opts, fold_premap, NULL);
        if (again != got) {
            free(cp);
            return TSG_EINTERNAL;
        }
    }
    if (got < 0) return TSG_EINTERNAL; /* the input was validated: cannot happen */
    got = fold_filter(cp, got);
    if (got > 0) got = utf8proc_normalize_utf32(cp, got, UTF8PROC_COMPOSE);
    tsg_rc rc = got < 0 ? TSG_EINTERNAL : TSG_OK;
    for (utf8proc_ssize_t i = 0; i < got; i++) fold_emit(st, (uint32_t)cp[i]);
    if (cp != stack) free(cp);
    return rc;
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

tsg_rc text_fold_err(const char *str, size_t len, tsg_buf *out, tsg_error *err)
{
    if (out->failed != TSG_OK)
        return tsg_error_set(err, out->failed, "too-costly",
                             "search text buffer already failed (%s)", tsg_rc_name(out->failed));
    if (len == 0) return TSG_OK;
    size_t valid = tsg_utf8_valid_prefix(str, len);
    if (valid != len)
        return tsg_error_set(err, TSG_EINVAL, "value",
                             "invalid UTF-8 at byte %zu of the search text (byte 0x%02X)", valid,
                             (unsigned)(unsigned char)str[valid]);

    const unsigned char *s = (const unsigned char *)str;
    fold_state st = {.out = out, .have_output = 0, .pending_space = 0, .prev = 0};
    tsg_rc rc = TSG_OK;
    size_t start = 0, i = 0;
    int ascii = 1;
    while (i < len && rc == TSG_OK) {
        /* step over one code point, noting whether a chunk may end before it */
        uint32_t c = s[i];
        int n = 1;
        if (c >= 0x80) n = tsg_utf8_decode(str + i, len - i, &c);
        if (n <= 0)
            return tsg_error_set(err, TSG_EINTERNAL, "exception", "UTF-8 decoder disagrees");
        if (i - start >= TEXT_CHUNK_BYTES && is_safe_start(c)) {
            rc = fold_chunk(&st, s + start, i - start, ascii);
            if (rc == TSG_OK) rc = tsg_buf_rc(out);
            start = i;
            ascii = 1;
        }
        if (c >= 0x80) ascii = 0;
        i += (size_t)n;
    }
    if (rc == TSG_OK && start < len) rc = fold_chunk(&st, s + start, len - start, ascii);
    if (rc == TSG_OK) rc = tsg_buf_rc(out);
    if (rc == TSG_ELIMIT)
        return tsg_error_set(err, rc, "too-costly",
                             "folded search text exceeds the buffer limit of %zu bytes", out->max);
    if (rc != TSG_OK)
        return tsg_error_set(err, rc, tsg_rc_code(rc), "folding search text failed: %s",
                             tsg_rc_name(rc));
    return TSG_OK;
}

tsg_rc text_fold(const char *s, size_t len, tsg_buf *out)
{
    return text_fold_err(s, len, out, NULL);
}
