/*
 * util.h — the small shared toolbox of tsunagu: result codes and errors, the
 * per-request arena, the bounded output buffer, UTF-8 checks, and the named
 * input limits.
 *
 * Conventions (see ../shared/STYLE.md):
 *   - every fallible function returns a tsg_rc; TSG_OK is 0;
 *   - when a function takes a `tsg_error *err`, it fills it on failure (err may
 *     be NULL when the caller only wants the code);
 *   - memory from an arena is never freed piecemeal: tsg_arena_free() releases
 *     everything a request allocated in one call.
 */
#ifndef TSG_UTIL_H
#define TSG_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * Result codes and errors
 * ------------------------------------------------------------------------ */

typedef enum tsg_rc {
    TSG_OK = 0,
    TSG_EINVAL,   /* the input is malformed or breaks a rule of FHIR */
    TSG_ELIMIT,   /* the input exceeds a named limit (tsg_limits) */
    TSG_ENOMEM,   /* out of memory */
    TSG_EIO,      /* reading or writing a file or socket failed */
    TSG_ENOTSUP,  /* the request is valid but not supported by this build */
    TSG_EINTERNAL /* a broken invariant inside tsunagu */
} tsg_rc;

/* Sizes of the fixed text fields of tsg_error; longer text is cut with "…". */
#define TSG_ERR_LOCATION_MAX 256
#define TSG_ERR_MESSAGE_MAX  512

/*
 * An error that can reach a client. `code` is the OperationOutcome
 * issue-type code ("structure", "invalid", "value", "too-costly",
 * "not-supported", "exception"); `location` a FHIRPath to the offending
 * element (`Patient.name[0].given[1]`), empty when unknown; line and column
 * (1-based, 0 when unknown) point into the input text.
 */
typedef struct tsg_error {
    tsg_rc rc;
    const char *code;
    unsigned line;
    unsigned column;
    char location[TSG_ERR_LOCATION_MAX];
    char message[TSG_ERR_MESSAGE_MAX];
} tsg_error;

/* Clears err (when not NULL) to "no error". */
void tsg_error_clear(tsg_error *err);

/*
 * Fills err (when not NULL) with rc, the issue-type code and a printf-style
 * message; location, line and column are left as they are. Returns rc so that
 * callers can write `return tsg_error_set(err, TSG_EINVAL, "structure", ...)`.
 */
tsg_rc tsg_error_set(tsg_error *err, tsg_rc rc, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The OperationOutcome issue-type code that fits rc when none was given. */
const char *tsg_rc_code(tsg_rc rc);

/* A short English name of rc ("invalid input", "limit exceeded", …). */
const char *tsg_rc_name(tsg_rc rc);

/* ------------------------------------------------------------------------
 * Named input limits
 *
 * Every input a parser accepts is bounded by one of these; exceeding one is a
 * TSG_ELIMIT error naming the limit. Parsers take a `const tsg_limits *`;
 * NULL means tsg_limits_default.
 * ------------------------------------------------------------------------ */

typedef struct tsg_limits {
    size_t max_body_bytes;    /* one resource or bundle as received */
    uint32_t max_depth;       /* nesting of objects/arrays (JSON) or elements (XML) */
    size_t max_string_bytes;  /* one string value after unescaping */
    uint32_t max_array_items; /* items of one JSON array / repetitions of one XML element */
} tsg_limits;

#define TSG_LIMIT_BODY_BYTES   (64u * 1024u * 1024u)
#define TSG_LIMIT_DEPTH        128u
#define TSG_LIMIT_STRING_BYTES (16u * 1024u * 1024u)
#define TSG_LIMIT_ARRAY_ITEMS  200000u

extern const tsg_limits tsg_limits_default;

/* ------------------------------------------------------------------------
 * Arena: per-request memory, freed in one call
 *
 * Allocations are 16-byte aligned and carved from blocks that grow
 * geometrically. The arena has a hard cap on the bytes it will hand out;
 * beyond it allocation fails (returns NULL) instead of exhausting memory.
 * ------------------------------------------------------------------------ */

typedef struct tsg_arena tsg_arena;

/* Creates an arena that hands out at most cap bytes (0 = no cap besides
 * memory). Returns NULL when out of memory. Free with tsg_arena_free(). */
tsg_arena *tsg_arena_new(size_t cap);

/* Returns n bytes (uninitialised), or NULL when the cap or memory is exhausted. */
void *tsg_arena_alloc(tsg_arena *a, size_t n);

/* As tsg_arena_alloc, zero-filled. */
void *tsg_arena_zalloc(tsg_arena *a, size_t n);

/* Copies n bytes of s into the arena and adds a NUL. NULL when out of memory. */
char *tsg_arena_strndup(tsg_arena *a, const char *s, size_t n);

/* Bytes handed out so far. */
size_t tsg_arena_used(const tsg_arena *a);

/* Releases everything; a NULL arena is ignored. */
void tsg_arena_free(tsg_arena *a);

/* ------------------------------------------------------------------------
 * Bounded growable buffer (output of the writers)
 *
 * A buffer has a hard maximum size fixed at creation. Appends past it, or a
 * failed allocation, put the buffer into a failed state: further appends do
 * nothing and tsg_buf_rc() reports TSG_ELIMIT or TSG_ENOMEM. Writers check it
 * once at the end instead of after every append.
 * ------------------------------------------------------------------------ */

typedef struct tsg_buf {
    char *data; /* always NUL-terminated when len > 0 and not failed */
    size_t len;
    size_t cap;
    size_t max;
    tsg_rc failed; /* TSG_OK, TSG_ELIMIT or TSG_ENOMEM */
} tsg_buf;

/* Initialises an empty buffer that may grow to max bytes (0 = 1 GiB). */
void tsg_buf_init(tsg_buf *b, size_t max);

/* Makes room for at least n more bytes; returns 0 on success. */
int tsg_buf_reserve(tsg_buf *b, size_t n);

void tsg_buf_append(tsg_buf *b, const void *p, size_t n);
void tsg_buf_puts(tsg_buf *b, const char *s);
void tsg_buf_putc(tsg_buf *b, char c);
void tsg_buf_printf(tsg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes v in decimal and a NUL into buf (at most 21 bytes); returns the
 * length. For hot paths where snprintf's generality costs (about 1,000
 * instructions a call against 30). */
size_t tsg_fmt_ll(char *buf, long long v);

/* The buffer's state: TSG_OK, or why an append failed. */
static inline tsg_rc tsg_buf_rc(const tsg_buf *b)
{
    return b->failed;
}

/* Empties the buffer, keeping its memory and maximum. */
void tsg_buf_reset(tsg_buf *b);

/* Releases the memory; the buffer can be initialised again. */
void tsg_buf_free(tsg_buf *b);

/* Takes the data out of the buffer: the caller owns the returned
 * NUL-terminated string (free()) and the buffer is left empty. */
char *tsg_buf_take(tsg_buf *b, size_t *len);

/* ------------------------------------------------------------------------
 * UTF-8 and files
 * ------------------------------------------------------------------------ */

/* Length of the longest valid UTF-8 prefix of s[0..n) (no overlongs, no
 * surrogates, nothing above U+10FFFF). Equal to n when s is valid. */
size_t tsg_utf8_valid_prefix(const char *s, size_t n);

/* Decodes the UTF-8 sequence at s[0..n) (n >= 1): returns its length (1–4)
 * and sets *cp, or returns 0 when it is not a valid, shortest-form encoding
 * of a scalar value (no surrogates, nothing above U+10FFFF). */
int tsg_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Encodes code point cp (< 0x110000, not a surrogate) as UTF-8 into out
 * (room for 4 bytes); returns the number of bytes. */
int tsg_utf8_encode(uint32_t cp, char *out);

/*
 * Reads a whole file ("-" = standard input) into a malloc'd, NUL-terminated
 * buffer the caller frees. Fails with TSG_ELIMIT when it is larger than max
 * bytes, TSG_EIO when it cannot be read; err says which file and why.
 */
tsg_rc tsg_read_file(const char *path, size_t max, char **data, size_t *len, tsg_error *err);

/* Creates the folder dir and its missing parents (mode 0700); 0 when it is a
 * folder afterwards, -1 with errno otherwise (ENOTDIR: a file stands there). */
int tsg_mkdir_p(const char *dir);

/* Initialises m as a mutex that spins a little before it sleeps (glibc's
 * adaptive kind): for the locks every request takes for a few hundred
 * nanoseconds (the token cache, a client's rate lease, the audit journal),
 * where a futex sleep and wake-up cost more than the wait. */
void tsg_mutex_init_adaptive(pthread_mutex_t *m);

#endif
