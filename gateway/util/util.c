/*
 * util.c — errors, limits, UTF-8 and file reading. See util.h.
 */
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const tsg_limits tsg_limits_default = {
    .max_body_bytes = TSG_LIMIT_BODY_BYTES,
    .max_depth = TSG_LIMIT_DEPTH,
    .max_string_bytes = TSG_LIMIT_STRING_BYTES,
    .max_array_items = TSG_LIMIT_ARRAY_ITEMS,
};

void tsg_error_clear(tsg_error *err)
{
    if (!err) return;
    err->rc = TSG_OK;
    err->code = NULL;
    err->line = err->column = 0;
    err->location[0] = '\0';
    err->message[0] = '\0';
}

const char *tsg_rc_code(tsg_rc rc)
{
    switch (rc) {
    case TSG_OK:
        return "informational";
    case TSG_EINVAL:
        return "invalid";
    case TSG_ELIMIT:
        return "too-costly";
    case TSG_ENOMEM:
        return "exception";
    case TSG_EIO:
        return "exception";
    case TSG_ENOTSUP:
        return "not-supported";
    case TSG_EINTERNAL:
        return "exception";
    }
    return "exception";
}

const char *tsg_rc_name(tsg_rc rc)
{
    switch (rc) {
    case TSG_OK:
        return "ok";
    case TSG_EINVAL:
        return "invalid input";
    case TSG_ELIMIT:
        return "limit exceeded";
    case TSG_ENOMEM:
        return "out of memory";
    case TSG_EIO:
        return "input/output error";
    case TSG_ENOTSUP:
        return "not supported";
    case TSG_EINTERNAL:
        return "internal error";
    }
    return "unknown error";
}

tsg_rc tsg_error_set(tsg_error *err, tsg_rc rc, const char *code, const char *fmt, ...)
{
    if (!err) return rc;
    err->rc = rc;
    err->code = code ? code : tsg_rc_code(rc);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof err->message) {
        /* mark the cut visibly rather than truncating silently */
        memcpy(err->message + sizeof err->message - 4, "...", 4);
    }
    /* Messages quote input cut to a length ("'%.*s' is not a decimal"), which can split
     * a UTF-8 sequence: every byte that is not part of valid UTF-8 becomes '?', so an
     * OperationOutcome built from the message is valid JSON and XML. */
    size_t len = strlen(err->message), i = 0;
    while (i < len) {
        size_t ok = tsg_utf8_valid_prefix(err->message + i, len - i);
        i += ok;
        if (i < len) err->message[i++] = '?';
    }
    return rc;
}

/* ---------------------------------------------------------------- UTF-8 */

size_t tsg_utf8_valid_prefix(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* fast path: ASCII 32, then 8 bytes at a time */
        while (i + 32 <= n) {
            uint64_t w[4];
            memcpy(w, s + i, 32);
            if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ull) break;
            i += 32;
        }
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int len = tsg_utf8_decode((const char *)s + i, n - i, &cp);
        if (!len) return i;
        i += (size_t)len;
    }
    return n;
}

int tsg_utf8_decode(const char *str, size_t n, uint32_t *out)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    if (c < 0x80) {
        *out = c;
        return 1;
    }
    int len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n) return 0;
    for (int k = 1; k < len; k++) {
        unsigned cc = s[k];
        if ((cc & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    *out = cp;
    return len;
}

int tsg_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---------------------------------------------------------------- files */

tsg_rc tsg_read_file(const char *path, size_t max, char **data, size_t *len, tsg_error *err)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    *data = NULL;
    *len = 0;
    if (!f)
        return tsg_error_set(err, TSG_EIO, "not-found", "cannot open %s: %s", path,
                             strerror(errno));
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    tsg_rc rc =
        buf ? TSG_OK : tsg_error_set(err, TSG_ENOMEM, NULL, "out of memory reading %s", path);
    while (rc == TSG_OK) {
        if (n == cap) {
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = tsg_error_set(err, TSG_ENOMEM, NULL, "out of memory reading %s", path);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            rc = tsg_error_set(err, TSG_ELIMIT, "too-costly",
                               "%s is larger than the limit of %zu bytes (max_body_bytes)",
                               is_stdin ? "standard input" : path, max);
            break;
        }
        if (got == 0) {
            if (ferror(f))
                rc = tsg_error_set(err, TSG_EIO, "exception", "cannot read %s: %s", path,
                                   strerror(errno));
            break;
        }
    }
    if (!is_stdin) fclose(f);
    if (rc != TSG_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return TSG_OK;
}

size_t tsg_fmt_ll(char *buf, long long v)
{
    char d[24];
    size_t m = 0, k = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        d[m++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) buf[k++] = '-';
    while (m) buf[k++] = d[--m];
    buf[k] = 0;
    return k;
}

int tsg_mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') continue;
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
        tmp[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

void tsg_mutex_init_adaptive(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}
