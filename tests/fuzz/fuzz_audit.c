/*
 * fuzz_audit.c — libFuzzer target for the audit record frames (gateway/auth/auth.h, "Audit":
 * auth_audit_frame, auth_audit_frame_check, auth_audit_frame_decode), the format of the
 * journal files and of tsg:audit's r fields, which the shipper and the searches read back.
 *
 * The input is walked as the shipper walks a journal: frame after frame until the first
 * that is not valid — once as it is, and once with each frame's CRC-32C set right before it is
 * looked at (else almost every mutation dies at the CRC and the payload's parser is never
 * reached). For each frame:
 *   - check and decode agree on its length (and on there being none);
 *   - it is at least the smallest and at most AUTH_AUDIT_FRAME_MAX bytes, and no shorter
 *     prefix of it is a frame;
 *   - each decoded text is the bytes of the frame's text, at most AUTH_AUDIT_FIELD_MAX;
 *   - encoding the decoded record again (auth_audit_frame) gives the same bytes, and refuses
 *     a buffer one byte short.
 * Then the input, cut into ten texts at its NUL bytes, is encoded as a record: the frame is
 * valid, of the length the texts (cut to AUTH_AUDIT_FIELD_MAX) make, and decodes to them.
 * Last, the input is read as a z field (auth_audit_batch_unpack): what unpacks is at most
 * AUTH_AUDIT_BATCH_MAX bytes and is walked as frames; and the input packed as the shipper packs
 * it (zstd level 1) unpacks to itself. The seeds "packed-*" are z fields (zstd -1).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "auth/auth.h"

#define TEXTS     10
#define FIXED     (8u + 1u + 8u + 2u)  /* lengths, CRC, format, recorded, status */
#define FRAME_MIN (FIXED + 2u * TEXTS) /* ten empty texts */

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_audit: broken property: %s\n", what);
        abort();
    }
}

static void texts_of(const auth_audit_event *e, const char *t[TEXTS])
{
    const char *v[TEXTS] = {e->interaction, e->method, e->path,   e->query,   e->client,
                            e->org,         e->addr,   e->entity, e->version, e->detail};
    memcpy(t, v, sizeof v);
}

/* The texts of the valid frame p: where each starts and how long it is. */
static void raw_texts(const unsigned char *p, const unsigned char *at[TEXTS], size_t len[TEXTS])
{
    const unsigned char *q = p + FIXED;
    for (int i = 0; i < TEXTS; i++) {
        len[i] = (size_t)q[0] | (size_t)q[1] << 8;
        at[i] = q + 2;
        q += 2 + len[i];
    }
}

/* The CRC-32C of p[0..n), one bit at a time (the standard's reference). */
static uint32_t ref_crc32c(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static auth_audit_rec rec, rec2;
static unsigned char out[AUTH_AUDIT_FRAME_MAX + 1];

/* The properties of the frames in data[0..size), walked as the shipper does; with repair,
 * each frame's CRC is set to its payload's first (when its length fits). */
static void walk(uint8_t *data, size_t size, int repair)
{
    size_t off = 0;
    while (off < size) {
        unsigned char *p = data + off;
        size_t left = size - off;
        if (repair && left >= 8) {
            size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
            if (len <= left - 8 && len <= AUTH_AUDIT_FRAME_MAX) {
                uint32_t crc = ref_crc32c(p + 8, len);
                for (int i = 0; i < 4; i++) p[4 + i] = (unsigned char)(crc >> (8 * i));
            }
        }
        size_t c = auth_audit_frame_check(p, left);
        size_t d = auth_audit_frame_decode(p, left, &rec);
        check(c == d, "check and decode agree on the frame's length");
        if (!c) break;
        check(c >= FRAME_MIN && c <= AUTH_AUDIT_FRAME_MAX, "a frame's length is within bounds");
        check(c <= left, "a frame lies within the input");
        check(auth_audit_frame_check(p, c - 1) == 0, "no shorter prefix of a frame is valid");

        const unsigned char *at[TEXTS];
        size_t len[TEXTS];
        raw_texts(p, at, len);
        const char *t[TEXTS];
        texts_of(&rec.e, t);
        for (int i = 0; i < TEXTS; i++) {
            check(t[i] != NULL, "a decoded text is never NULL");
            check(len[i] <= AUTH_AUDIT_FIELD_MAX, "a text is at most AUTH_AUDIT_FIELD_MAX");
            check(t[i][len[i]] == '\0', "a decoded text ends after its bytes");
            check(memcmp(t[i], at[i], len[i]) == 0, "a decoded text is the frame's bytes");
            check(memchr(at[i], 0, len[i]) == NULL, "a valid frame's texts hold no NUL byte");
        }
        check(rec.e.status >= 0 && rec.e.status <= 65535, "the status is a u16");
        check(rec.e.status == (p[17] | p[18] << 8), "the status is the frame's");

        uint64_t raw = 0;
        for (int i = 0; i < 8; i++) raw |= (uint64_t)p[9 + i] << (8 * i);
        int64_t us;
        memcpy(&us, &raw, sizeof us);
        check(rec.recorded_us == us, "the recorded time is the frame's i64");
        size_t n = auth_audit_frame(&rec.e, rec.recorded_us, out, sizeof out);
        check(n == c, "the decoded record encodes to a frame of the same length");
        check(memcmp(out, p, c) == 0, "the decoded record encodes to the same bytes");
        check(auth_audit_frame(&rec.e, rec.recorded_us, out, c - 1) == 0,
              "encoding refuses a buffer one byte short");
        off += c;
    }
}

/* The input cut at its NUL bytes into (at most) ten texts, encoded and decoded. */
static void encode(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy) return;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *t[TEXTS] = {0};
    char *s = copy, *end = copy + size;
    for (int i = 0; i < TEXTS && s <= end; i++) {
        t[i] = s;
        s += strlen(s) + 1;
    }
    unsigned long long h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 1099511628211ull;
    auth_audit_event e = {
        t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[9], t[8], (int)(h % 70000) - 1000};
    long long us; /* any i64, negative ones (before 1970) included */
    memcpy(&us, &h, sizeof us);
    size_t want = FRAME_MIN;
    for (int i = 0; i < TEXTS; i++) {
        size_t l = t[i] ? strlen(t[i]) : 0;
        want += l > AUTH_AUDIT_FIELD_MAX ? AUTH_AUDIT_FIELD_MAX : l;
    }
    size_t n = auth_audit_frame(&e, us, out, sizeof out);
    check(n == want, "a record's frame has the length its texts make");
    check(auth_audit_frame_check(out, n) == n, "an encoded record is a valid frame");
    check(auth_audit_frame_decode(out, n, &rec2) == n, "an encoded record decodes");
    const char *got[TEXTS], *in[TEXTS];
    texts_of(&rec2.e, got);
    texts_of(&e, in);
    for (int i = 0; i < TEXTS; i++) {
        const char *w = in[i] ? in[i] : "";
        size_t l = strlen(w) > AUTH_AUDIT_FIELD_MAX ? AUTH_AUDIT_FIELD_MAX : strlen(w);
        check(strlen(got[i]) == l && memcmp(got[i], w, l) == 0,
              "a text decodes as encoded (cut to AUTH_AUDIT_FIELD_MAX)");
    }
    int st = e.status < 0 ? 0 : e.status > 65535 ? 65535 : e.status;
    check(rec2.e.status == st, "the status decodes as encoded (clamped to a u16)");
    check(rec2.recorded_us == us, "the recorded time decodes as encoded");
    free(copy);
}

/* The input as a z field, and packed and unpacked. */
static void unpack(const uint8_t *data, size_t size)
{
    unsigned char *u = NULL;
    size_t len = 0;
    tsg_error e;
    tsg_rc rc = auth_audit_batch_unpack(data, size, &u, &len, &e);
    check(rc == TSG_OK || rc == TSG_EINVAL || rc == TSG_ENOMEM, "unpack answers OK or refuses");
    check((rc == TSG_OK) == (u != NULL), "unpack allocates exactly when it succeeds");
    if (rc == TSG_OK) {
        check(len <= AUTH_AUDIT_BATCH_MAX, "what unpacks is at most AUTH_AUDIT_BATCH_MAX");
        walk(u, len, 0);
        free(u);
    }
    size_t cap = ZSTD_compressBound(size);
    unsigned char *z = malloc(cap);
    if (!z) return;
    size_t zl = ZSTD_compress(z, cap, data, size, 1);
    check(!ZSTD_isError(zl), "zstd packs any input");
    rc = auth_audit_batch_unpack(z, zl, &u, &len, &e);
    if (size <= AUTH_AUDIT_BATCH_MAX) {
        check(rc == TSG_OK, "a packed input unpacks");
        check(len == size && (!size || memcmp(u, data, size) == 0), "… to itself");
        free(u);
    } else {
        check(rc == TSG_EINVAL, "a packed input over AUTH_AUDIT_BATCH_MAX is refused");
    }
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    walk(copy, size, 0);
    walk(copy, size, 1);
    free(copy);
    encode(data, size);
    unpack(data, size);
    return 0;
}
