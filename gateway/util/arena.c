/*
 * arena.c — the per-request bump allocator and the bounded output buffer.
 *
 * An arena is a chain of blocks; each allocation is carved from the newest
 * block, a new block (twice the previous size, at least the request) is
 * added when it is full. Nothing is freed until tsg_arena_free().
 */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_FIRST_BLOCK 16384u
#define ARENA_MAX_BLOCK   (8u * 1024u * 1024u)
#define ARENA_ALIGN       16u

typedef struct arena_block {
    struct arena_block *prev;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char mem[];
} arena_block;

struct tsg_arena {
    arena_block *head;
    size_t cap;
    size_t handed; /* bytes handed out */
    size_t next_size;
};

tsg_arena *tsg_arena_new(size_t cap)
{
    tsg_arena *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cap = cap ? cap : SIZE_MAX;
    a->next_size = ARENA_FIRST_BLOCK;
    return a;
}

void *tsg_arena_alloc(tsg_arena *a, size_t n)
{
    size_t need = (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n || need > a->cap - a->handed) return NULL;
    arena_block *b = a->head;
    if (!b || b->size - b->used < need) {
        size_t size = a->next_size;
        if (size < need) size = need;
        b = malloc(sizeof *b + size);
        if (!b) return NULL;
        b->prev = a->head;
        b->size = size;
        b->used = 0;
        a->head = b;
        if (a->next_size < ARENA_MAX_BLOCK) a->next_size *= 2;
    }
    void *p = b->mem + b->used;
    b->used += need;
    a->handed += need;
    return p;
}

void *tsg_arena_zalloc(tsg_arena *a, size_t n)
{
    void *p = tsg_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

char *tsg_arena_strndup(tsg_arena *a, const char *s, size_t n)
{
    char *p = tsg_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

size_t tsg_arena_used(const tsg_arena *a)
{
    return a->handed;
}

void tsg_arena_free(tsg_arena *a)
{
    if (!a) return;
    arena_block *b = a->head;
    while (b) {
        arena_block *prev = b->prev;
        free(b);
        b = prev;
    }
    free(a);
}

/* ---------------------------------------------------------------- tsg_buf */

#define BUF_DEFAULT_MAX (1024u * 1024u * 1024u)

void tsg_buf_init(tsg_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : BUF_DEFAULT_MAX;
    b->failed = TSG_OK;
}

int tsg_buf_reserve(tsg_buf *b, size_t n)
{
    if (b->failed) return -1;
    if (n > b->max || b->len > b->max - n) {
        b->failed = TSG_ELIMIT;
        return -1;
    }
    if (b->len + n + 1 <= b->cap) return 0;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + n + 1) ncap *= 2;
    char *nd = realloc(b->data, ncap);
    if (!nd) {
        b->failed = TSG_ENOMEM;
        return -1;
    }
    b->data = nd;
    b->cap = ncap;
    return 0;
}

void tsg_buf_append(tsg_buf *b, const void *p, size_t n)
{
    if (tsg_buf_reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tsg_buf_puts(tsg_buf *b, const char *s)
{
    tsg_buf_append(b, s, strlen(s));
}

void tsg_buf_putc(tsg_buf *b, char c)
{
    if (b->len + 2 > b->cap && tsg_buf_reserve(b, 1)) return;
    if (b->failed) return;
    if (b->len + 1 > b->max) {
        b->failed = TSG_ELIMIT;
        return;
    }
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void tsg_buf_printf(tsg_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = TSG_EINTERNAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        tsg_buf_append(b, small, (size_t)n);
        return;
    }
    if (tsg_buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void tsg_buf_reset(tsg_buf *b)
{
    b->len = 0;
    b->failed = TSG_OK;
    if (b->data) b->data[0] = '\0';
}

void tsg_buf_free(tsg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = TSG_OK;
}

char *tsg_buf_take(tsg_buf *b, size_t *len)
{
    char *d = b->data;
    if (!d) d = calloc(1, 1);
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
