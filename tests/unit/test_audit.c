/*
 * test_audit.c — the audit trail's frames and its local journal (gateway/auth/auth.h,
 * "Audit"), against a real redis-server on a Unix socket in a temporary directory.
 *
 *   - frames: the documented byte layout (checked against a frame built here by hand, with a
 *     bitwise reference CRC-32C), the round trip of every field, the cut of long texts, and
 *     the refusal of every damaged frame (each truncation, each flipped bit, a wrong format,
 *     lengths that overrun);
 *   - the journal in both audit_fsync modes: records appended by several threads at once
 *     reach tsg:audit exactly once, each thread's in order, with the shipped offset; the
 *     shipped file and its offset key go at close;
 *   - orphans: a journal left by a stopped gateway (written by hand, or by a journal whose
 *     Redis was unreachable) is shipped from its offset up to its torn tail and removed; a
 *     file that is not a journal is renamed, an empty one removed;
 *   - shipping failures (tsg:audit not a stream): appends go on, flush fails, stats show it,
 *     and everything arrives once Redis accepts again; the backlog limit refuses appends;
 *   - a journal file that cannot be made (RLIMIT_FSIZE) fails auth_journal_open clearly.
 *
 * Every journal test runs between setup and teardown: teardown closes the journal, frees the
 * clients, kills the redis-server and removes the directory, so a failed assertion leaves no
 * redis-server behind (the server also dies with this process: PR_SET_PDEATHSIG).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <zstd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "store/redis.h"

#define HEADER    32u            /* a journal file's header */
#define SEGMENT   (128ull << 20) /* a journal file's size */
#define WAIT_MS   10000          /* longest wait for something the shipper does */
#define FLUSH_MS  10000L
#define N_THREADS 8
#define N_EACH    2000

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The CRC-32C (Castagnoli, reflected, polynomial 0x82F63B78) of p[0..n), one bit at a time:
 * the reference the gateway's table and SSE 4.2 versions must agree with. */
static uint32_t ref_crc32c(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Sets the CRC field of the frame at p to the reference CRC of its payload (after the test
 * changed the payload). */
static void fix_crc(unsigned char *p)
{
    put_u32(p + 4, ref_crc32c(p + 8, get_u32(p)));
}

/* Builds a frame by hand, as auth.h documents its layout: format, recorded, status, ten texts
 * (lens[i] bytes of texts[i]), then extra bytes inside the payload. Returns its length. */
static size_t hand_frame(unsigned char *out, unsigned format, uint64_t us, unsigned status,
                         const char *const texts[10], const size_t lens[10], size_t extra)
{
    unsigned char *p = out + 8;
    *p++ = (unsigned char)format;
    for (int i = 0; i < 8; i++) *p++ = (unsigned char)(us >> (8 * i));
    *p++ = (unsigned char)status;
    *p++ = (unsigned char)(status >> 8);
    for (int i = 0; i < 10; i++) {
        *p++ = (unsigned char)lens[i];
        *p++ = (unsigned char)(lens[i] >> 8);
        memcpy(p, texts[i], lens[i]);
        p += lens[i];
    }
    memset(p, 'x', extra);
    p += extra;
    size_t n = (size_t)(p - out);
    put_u32(out, (uint32_t)(n - 8));
    fix_crc(out);
    return n;
}

/* The ten texts of e in frame order. */
static void texts_of(const auth_audit_event *e, const char *t[10])
{
    const char *v[10] = {e->interaction, e->method, e->path,   e->query,   e->client,
                         e->org,         e->addr,   e->entity, e->version, e->detail};
    memcpy(t, v, sizeof v);
}

/* Asserts that decoded record r holds e's texts (NULL = "") and recorded_us. */
static void assert_rec_is(const auth_audit_rec *r, const auth_audit_event *e, long long us)
{
    const char *want[10], *got[10];
    texts_of(e, want);
    texts_of(&r->e, got);
    for (int i = 0; i < 10; i++) {
        assert_non_null(got[i]);
        assert_string_equal(got[i], want[i] ? want[i] : "");
    }
    assert_int_equal(r->recorded_us, us);
}

/* ------------------------------------------------------------------------
 * Fixture: a redis-server on a Unix socket in a temporary directory
 * ------------------------------------------------------------------------ */

typedef struct fixture {
    char dir[64];
    char sock[96];
    char jdir[96]; /* the journal folder */
    pid_t redis;
    redis_client *client;
    auth_journal *journal;
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    *state = f;
    snprintf(f->dir, sizeof f->dir, "/tmp/tsg-audit-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->sock, sizeof f->sock, "%s/redis.sock", f->dir);
    snprintf(f->jdir, sizeof f->jdir, "%s/journal", f->dir);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* even if this test process crashes, the server goes with it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null_fd = open("/dev/null", O_RDWR);
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
        execl("/usr/bin/redis-server", "/usr/bin/redis-server", "--port", "0", "--unixsocket",
              f->sock, "--dir", f->dir, "--save", "", "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    f->redis = pid;
    redis_target t;
    tsg_error e;
    if (redis_target_unix(f->sock, &t, &e) != TSG_OK) return -1;
    if (redis_client_new(&t, NULL, &f->client, &e) != TSG_OK) return -1;
    int64_t deadline = now_ms() + 10000;
    while (redis_client_ready(f->client, &e) != TSG_OK) {
        if (now_ms() > deadline) {
            fprintf(stderr, "redis-server did not come up: %s\n", e.message);
            return -1;
        }
        sleep_ms(20);
    }
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f) return 0;
    auth_journal_close(f->journal);
    redis_client_free(f->client);
    if (f->redis > 0) {
        kill(f->redis, SIGKILL);
        waitpid(f->redis, NULL, 0);
    }
    if (f->dir[0]) nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Runs a command given as words; asserts it succeeded; returns the reply (caller frees). */
static redisReply *cmd_ok(fixture *f, int argc, ...)
{
    const char *argv[8];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 8; i++) argv[i] = va_arg(ap, const char *);
    va_end(ap);
    redisReply *r = NULL;
    tsg_error e;
    if (redis_command_argv(f->client, argc, argv, NULL, &r, &e) != TSG_OK)
        fail_msg("%s: %s", argv[0], e.message);
    return r;
}

static void cmd_run(fixture *f, int argc, const char *a, const char *b, const char *c)
{
    freeReplyObject(cmd_ok(f, argc, a, b, c));
}

/* The value of the shipped offset key of journal id; -1 when there is none. */
static long long shipped_key(fixture *f, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "tsg:audit:shipped:%s", id);
    redisReply *r = cmd_ok(f, 2, "GET", key);
    long long v = -1;
    if (r->type == REDIS_REPLY_STRING) {
        char *end;
        v = strtoll(r->str, &end, 10);
        assert_true(*end == '\0');
    } else {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    }
    freeReplyObject(r);
    return v;
}

static void open_journal(fixture *f, redis_client *c, const auth_journal_options *o)
{
    tsg_error e;
    if (auth_journal_open(c, o, &f->journal, &e) != TSG_OK)
        fail_msg("auth_journal_open: %s", e.message);
}

static void close_journal(fixture *f)
{
    auth_journal_close(f->journal);
    f->journal = NULL;
}

/* The names in the journal folder ending in suffix: how many, and the first one's 16-digit id
 * (when id is not NULL). */
static int files_ending(fixture *f, const char *suffix, char id[17])
{
    DIR *d = opendir(f->jdir);
    if (!d) return 0;
    int n = 0;
    size_t sl = strlen(suffix);
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l < sl || strcmp(de->d_name + l - sl, suffix)) continue;
        if (!n && id) snprintf(id, 17, "%.16s", de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static int file_exists(fixture *f, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->jdir, name);
    return access(path, F_OK) == 0;
}

/* The records in tsg:audit, in stream order: every entry's r field concatenated, and where
 * each frame starts in it. */
typedef struct stream_recs {
    unsigned char *bytes;
    size_t n_bytes, bytes_cap;
    size_t *at; /* frame k starts at bytes + at[k] */
    size_t n, cap;
    size_t entries;
    size_t packed, packed_bytes; /* entries that came as z, and their z fields' bytes */
} stream_recs;

static void stream_recs_free(stream_recs *s)
{
    free(s->at);
    free(s->bytes);
    memset(s, 0, sizeof *s);
}

/* Decodes record k of s into *r. */
static void stream_rec(const stream_recs *s, size_t k, auth_audit_rec *r)
{
    assert_true(k < s->n);
    assert_true(auth_audit_frame_decode(s->bytes + s->at[k], s->n_bytes - s->at[k], r) > 0);
}

/* Reads all of tsg:audit (XRANGE - +): every entry has exactly one field, r (a sequence of
 * whole frames that decode) or z (the same packed: auth_audit_batch_unpack). */
static void read_stream(fixture *f, stream_recs *s)
{
    memset(s, 0, sizeof *s);
    auth_audit_rec *rec = malloc(sizeof *rec);
    assert_non_null(rec);
    redisReply *r = cmd_ok(f, 4, "XRANGE", "tsg:audit", "-", "+");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    s->entries = r->elements;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *ent = r->element[i];
        assert_int_equal(ent->type, REDIS_REPLY_ARRAY);
        assert_int_equal(ent->elements, 2);
        redisReply *fields = ent->element[1];
        assert_int_equal(fields->elements, 2);
        const char *name = fields->element[0]->str;
        assert_true(!strcmp(name, "r") || !strcmp(name, "z"));
        const unsigned char *p = (const unsigned char *)fields->element[1]->str;
        size_t len = fields->element[1]->len, off = 0;
        unsigned char *unpacked = NULL;
        if (!strcmp(name, "z")) {
            tsg_error e;
            if (auth_audit_batch_unpack(p, len, &unpacked, &len, &e) != TSG_OK)
                fail_msg("entry %zu: %s", i, e.message);
            assert_true(len <= AUTH_AUDIT_BATCH_MAX);
            assert_true(fields->element[1]->len < len); /* packed only when smaller */
            p = unpacked;
            s->packed++;
            s->packed_bytes += fields->element[1]->len;
        }
        assert_true(len > 0);
        while (off < len) {
            if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 64;
                size_t *na = realloc(s->at, s->cap * sizeof *na);
                assert_non_null(na);
                s->at = na;
            }
            size_t k = auth_audit_frame_decode(p + off, len - off, rec);
            if (!k) fail_msg("entry %zu: no valid frame at byte %zu of %zu", i, off, len);
            assert_int_equal(auth_audit_frame_check(p + off, len - off), k);
            s->at[s->n++] = s->n_bytes + off;
            off += k;
        }
        assert_int_equal(off, len);
        if (s->n_bytes + len > s->bytes_cap) { /* (geometric: ASan's realloc always copies) */
            size_t cap = s->bytes_cap ? s->bytes_cap : 1u << 16;
            while (cap < s->n_bytes + len) cap *= 2;
            unsigned char *nb = realloc(s->bytes, cap);
            assert_non_null(nb);
            s->bytes = nb;
            s->bytes_cap = cap;
        }
        memcpy(s->bytes + s->n_bytes, p, len);
        s->n_bytes += len;
        free(unpacked);
    }
    freeReplyObject(r);
    free(rec);
}

/* The thread and index of a test record (its path "/t/<th>/<i>"). */
static void rec_origin(const auth_audit_rec *r, int *th, int *i)
{
    int used = 0;
    if (sscanf(r->e.path, "/t/%d/%d%n", th, i, &used) != 2 || r->e.path[used])
        fail_msg("unexpected path %s", r->e.path);
}

/* The record the tests append: thread th's i-th, path "/t/<th>/<i>". */
static size_t test_frame(int th, int i, unsigned char *out, size_t cap)
{
    char path[64], client[32];
    snprintf(path, sizeof path, "/t/%d/%d", th, i);
    snprintf(client, sizeof client, "client-%d", th);
    auth_audit_event e = {.interaction = "read",
                          .method = "GET",
                          .path = path,
                          .query = "_elements=id",
                          .client = client,
                          .org = "Organization/o1",
                          .addr = "127.0.0.1",
                          .entity = "Patient/p1",
                          .version = NULL,
                          .detail = i % 7 ? NULL : "not found",
                          .status = i % 7 ? 200 : 404};
    return auth_audit_frame(&e, 1700000000000000LL + th * 1000000LL + i, out, cap);
}

/* Checks that the records are exactly threads × each test records, each once, each thread's
 * in the order appended (every field as test_frame wrote it). */
static void assert_each_once_in_order(const stream_recs *s, int threads, int each)
{
    int next[64] = {0};
    assert_true(threads <= 64);
    auth_audit_rec *r = malloc(sizeof *r), *want = malloc(sizeof *want);
    assert_non_null(r);
    assert_non_null(want);
    for (size_t k = 0; k < s->n; k++) {
        stream_rec(s, k, r);
        int th, i;
        rec_origin(r, &th, &i);
        assert_true(th >= 0 && th < threads);
        if (i != next[th])
            fail_msg("thread %d: record %d arrived where %d was due (lost, doubled or reordered)",
                     th, i, next[th]);
        next[th]++;
        unsigned char fr[512];
        size_t n = test_frame(th, i, fr, sizeof fr);
        assert_int_equal(auth_audit_frame_decode(fr, n, want), n);
        assert_rec_is(r, &want->e, want->recorded_us);
        assert_int_equal(r->e.status, want->e.status);
    }
    for (int th = 0; th < threads; th++) assert_int_equal(next[th], each);
    assert_int_equal(s->n, (size_t)threads * (size_t)each);
    free(r);
    free(want);
}

/* ------------------------------------------------------------------------
 * Frames
 * ------------------------------------------------------------------------ */

static void test_crc_reference(void **state)
{
    (void)state;
    /* the standard check value of CRC-32C */
    assert_int_equal(ref_crc32c((const unsigned char *)"123456789", 9), 0xE3069283u);
    /* the gateway's CRC (SSE 4.2 where the CPU has it) agrees on payloads of every length mod 8
     * (the hardware path takes 8 bytes a step, then single bytes) */
    char path[64];
    for (int len = 0; len < 40; len++) {
        memset(path, 'a' + len % 26, (size_t)len);
        path[len] = '\0';
        auth_audit_event e = {.path = path, .status = 200 + len};
        unsigned char fr[256];
        size_t n = auth_audit_frame(&e, len * 7919LL, fr, sizeof fr);
        assert_int_equal(n, 8 + 1 + 8 + 2 + 10 * 2 + (size_t)len);
        assert_int_equal(get_u32(fr), n - 8);
        assert_int_equal(get_u32(fr + 4), ref_crc32c(fr + 8, n - 8));
    }
}

static void test_frame_layout(void **state)
{
    (void)state;
    auth_audit_event e = {.interaction = "search-type",
                          .method = "GET",
                          .path = "/fhir/Observation",
                          .query = "patient=Patient/p1&_count=10",
                          .client = "cli-1",
                          .org = "Organization/hosp",
                          .addr = "10.0.0.7",
                          .entity = "Patient/p1",
                          .version = "3",
                          .detail = "détail, UTF-8",
                          .status = 201};
    long long us = 1733475600123456LL;
    unsigned char fr[1024], hand[1024];
    size_t n = auth_audit_frame(&e, us, fr, sizeof fr);
    const char *t[10];
    size_t lens[10];
    texts_of(&e, t);
    for (int i = 0; i < 10; i++) lens[i] = strlen(t[i]);
    size_t hn = hand_frame(hand, 1, (uint64_t)us, 201, t, lens, 0);
    assert_int_equal(n, hn);
    assert_memory_equal(fr, hand, n);
    /* exactly the frame's length, and not more, is taken from a longer buffer */
    memset(fr + n, 0xAB, 64);
    assert_int_equal(auth_audit_frame_check(fr, n + 64), n);
    auth_audit_rec r;
    assert_int_equal(auth_audit_frame_decode(fr, n + 64, &r), n);
    assert_rec_is(&r, &e, us);
    assert_int_equal(r.e.status, 201);
}

static void test_frame_round_trip(void **state)
{
    (void)state;
    auth_audit_rec *r = malloc(sizeof *r);
    unsigned char *fr = malloc(AUTH_AUDIT_FRAME_MAX + 64);
    assert_non_null(r);
    assert_non_null(fr);

    /* all texts NULL: they decode as "" */
    auth_audit_event e0 = {.status = 0};
    size_t n = auth_audit_frame(&e0, 0, fr, AUTH_AUDIT_FRAME_MAX);
    assert_int_equal(n, 8 + 1 + 8 + 2 + 10 * 2);
    assert_int_equal(auth_audit_frame_decode(fr, n, r), n);
    assert_rec_is(r, &e0, 0);
    assert_int_equal(r->e.status, 0);

    /* all texts "" */
    auth_audit_event ee = {"", "", "", "", "", "", "", "", "", "", 599};
    assert_int_equal(auth_audit_frame(&ee, 1, fr, AUTH_AUDIT_FRAME_MAX), n);
    assert_int_equal(auth_audit_frame_decode(fr, n, r), n);
    assert_rec_is(r, &ee, 1);
    assert_int_equal(r->e.status, 599);

    /* some set, some not; the largest recorded time and status */
    auth_audit_event em = {.interaction = "token",
                           .path = "/auth/token",
                           .addr = "::1",
                           .detail = "invalid_client",
                           .status = 65535};
    n = auth_audit_frame(&em, INT64_MAX, fr, AUTH_AUDIT_FRAME_MAX);
    assert_int_equal(auth_audit_frame_decode(fr, n, r), n);
    assert_rec_is(r, &em, INT64_MAX);
    assert_int_equal(r->e.status, 65535);

    /* statuses outside u16 are clamped into it */
    em.status = -3;
    n = auth_audit_frame(&em, 5, fr, AUTH_AUDIT_FRAME_MAX);
    assert_int_equal(auth_audit_frame_decode(fr, n, r), n);
    assert_int_equal(r->e.status, 0);
    em.status = 70000;
    n = auth_audit_frame(&em, 5, fr, AUTH_AUDIT_FRAME_MAX);
    assert_int_equal(auth_audit_frame_decode(fr, n, r), n);
    assert_int_equal(r->e.status, 65535);

    /* texts longer than AUTH_AUDIT_FIELD_MAX are cut to exactly that length; each text
     * its own letters, so a mix-up between fields shows */
    char *big[10];
    for (int i = 0; i < 10; i++) {
        size_t len = AUTH_AUDIT_FIELD_MAX - 1 + (size_t)i * 500; /* 2047, 2547, … */
        big[i] = malloc(len + 1);
        assert_non_null(big[i]);
        for (size_t k = 0; k < len; k++) big[i][k] = (char)('A' + i + (k % 7));
        big[i][len] = '\0';
    }
    auth_audit_event eb = {big[0], big[1], big[2], big[3], big[4], big[5],
                           big[6], big[7], big[9], big[8], 200};
    n = auth_audit_frame(&eb, 42, fr, AUTH_AUDIT_FRAME_MAX + 64);
    assert_int_equal(n, AUTH_AUDIT_FRAME_MAX - 1); /* the first text is one byte short */
    assert_int_equal(auth_audit_frame_check(fr, n), n);
    assert_int_equal(auth_audit_frame_decode(fr, n, r), n);
    const char *want[10], *got[10];
    texts_of(&eb, want);
    texts_of(&r->e, got);
    for (int i = 0; i < 10; i++) {
        size_t wl = strlen(want[i]) > AUTH_AUDIT_FIELD_MAX ? AUTH_AUDIT_FIELD_MAX : strlen(want[i]);
        assert_int_equal(strlen(got[i]), wl);
        assert_memory_equal(got[i], want[i], wl);
    }
    assert_int_equal(r->recorded_us, 42);
    /* all ten at the cap: the largest frame there is */
    big[0][AUTH_AUDIT_FIELD_MAX - 1] = 'z';
    char *b0 = realloc(big[0], AUTH_AUDIT_FIELD_MAX + 2);
    assert_non_null(b0);
    big[0] = b0;
    big[0][AUTH_AUDIT_FIELD_MAX] = 'y';
    big[0][AUTH_AUDIT_FIELD_MAX + 1] = '\0';
    eb.interaction = big[0];
    n = auth_audit_frame(&eb, 42, fr, AUTH_AUDIT_FRAME_MAX + 64);
    assert_int_equal(n, AUTH_AUDIT_FRAME_MAX);
    assert_int_equal(auth_audit_frame_decode(fr, n, r), n);
    assert_int_equal(strlen(r->e.interaction), AUTH_AUDIT_FIELD_MAX);
    assert_int_equal(r->e.interaction[AUTH_AUDIT_FIELD_MAX - 1], 'z');
    for (int i = 0; i < 10; i++) free(big[i]);

    /* cap too small: 0 for every cap below the length, the frame at exactly the length */
    n = test_frame(3, 9, fr, AUTH_AUDIT_FRAME_MAX);
    unsigned char *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, fr, n);
    for (size_t cap = 0; cap < n; cap++) {
        memset(fr, 0x5A, n);
        assert_int_equal(test_frame(3, 9, fr, cap), 0);
    }
    assert_int_equal(test_frame(3, 9, fr, n), n);
    assert_memory_equal(fr, copy, n);
    free(copy);
    free(fr);
    free(r);
}

static void test_frame_damage(void **state)
{
    (void)state;
    auth_audit_rec *r = malloc(sizeof *r);
    assert_non_null(r);
    unsigned char fr[512], bad[512];
    size_t n = test_frame(1, 7, fr, sizeof fr);
    assert_true(n > 40);
    assert_int_equal(auth_audit_frame_check(fr, n), n);

    /* every truncation */
    for (size_t k = 0; k < n; k++) {
        memcpy(bad, fr, k);
        if (auth_audit_frame_check(bad, k) || auth_audit_frame_decode(bad, k, r))
            fail_msg("a frame cut to %zu of %zu bytes was accepted", k, n);
    }
    /* every flipped bit, in the lengths, the CRC and the payload */
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(bad, fr, n);
        bad[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        if (auth_audit_frame_check(bad, n) || auth_audit_frame_decode(bad, n, r))
            fail_msg("a frame with bit %zu flipped was accepted", bit);
    }

    /* a wrong format with a correct CRC; the same change with format 1 is accepted, so it is
     * the format that is refused */
    for (unsigned fmt = 0; fmt < 256; fmt++) {
        memcpy(bad, fr, n);
        bad[8] = (unsigned char)fmt;
        fix_crc(bad);
        size_t want = fmt == 1 ? n : 0;
        assert_int_equal(auth_audit_frame_check(bad, n), want);
        assert_int_equal(auth_audit_frame_decode(bad, n, r), want);
    }

    /* the payload length: beyond the bytes there are, and beyond the largest frame */
    memcpy(bad, fr, n);
    put_u32(bad, (uint32_t)(n - 8 + 1));
    assert_int_equal(auth_audit_frame_check(bad, n), 0);
    put_u32(bad, 0xFFFFFFFFu);
    assert_int_equal(auth_audit_frame_check(bad, n), 0);
    put_u32(bad, 0);
    assert_int_equal(auth_audit_frame_check(bad, n), 0);

    const char *t[10] = {"read",           "GET",       "/fhir/Patient/p1", "", "c",
                         "Organization/o", "127.0.0.1", "Patient/p1",       "", ""};
    size_t lens[10];
    for (int i = 0; i < 10; i++) lens[i] = strlen(t[i]);
    size_t hn = hand_frame(bad, 1, 77, 200, t, lens, 0);
    assert_int_equal(auth_audit_frame_check(bad, hn), hn);
    /* a byte inside the payload after the ten texts */
    hn = hand_frame(bad, 1, 77, 200, t, lens, 1);
    assert_int_equal(auth_audit_frame_check(bad, hn), 0);
    /* a text length that runs past the payload (CRC correct) */
    for (int i = 0; i < 10; i++) {
        hn = hand_frame(bad, 1, 77, 200, t, lens, 0);
        /* find text i's length field and make it one more than the bytes left */
        unsigned char *q = bad + 8 + 1 + 8 + 2;
        for (int k = 0; k < i; k++) q += 2 + (q[0] | q[1] << 8);
        size_t left = (size_t)(bad + hn - (q + 2));
        q[0] = (unsigned char)(left + 1);
        q[1] = (unsigned char)((left + 1) >> 8);
        fix_crc(bad);
        if (auth_audit_frame_check(bad, hn) || auth_audit_frame_decode(bad, hn, r))
            fail_msg("text %d's length running past the payload was accepted", i);
    }
    /* a payload that ends before the ten texts (CRC correct) */
    hn = hand_frame(bad, 1, 77, 200, t, lens, 0);
    put_u32(bad, (uint32_t)(hn - 8 - 2)); /* the last text's length field cut off */
    fix_crc(bad);
    assert_int_equal(auth_audit_frame_check(bad, hn), 0);
    /* a text longer than AUTH_AUDIT_FIELD_MAX (the encoder never writes one) */
    char *longtext = malloc(AUTH_AUDIT_FIELD_MAX + 1);
    unsigned char *bigf = malloc(AUTH_AUDIT_FRAME_MAX + 64);
    assert_non_null(longtext);
    assert_non_null(bigf);
    memset(longtext, 'q', AUTH_AUDIT_FIELD_MAX + 1);
    const char *t2[10] = {longtext, "", "", "", "", "", "", "", "", ""};
    size_t l2[10] = {AUTH_AUDIT_FIELD_MAX, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    hn = hand_frame(bigf, 1, 77, 200, t2, l2, 0);
    assert_int_equal(auth_audit_frame_check(bigf, hn), hn);
    l2[0] = AUTH_AUDIT_FIELD_MAX + 1;
    hn = hand_frame(bigf, 1, 77, 200, t2, l2, 0);
    assert_int_equal(auth_audit_frame_check(bigf, hn), 0);
    free(longtext);
    free(bigf);
    free(r);
}

/* KNOWN GATEWAY BUG (fails until frame_parse in gateway/auth/auth_audit.c is fixed): auth.h
 * documents the recorded time as an i64, and auth_audit_frame writes a negative one as such,
 * but frame_parse reads it as a u64 and turns every value above INT64_MAX into INT64_MAX: a
 * record recorded at -1 µs decodes as recorded in the year 294247. */
static void test_frame_negative_recorded(void **state)
{
    (void)state;
    static auth_audit_rec rec; /* (static: a failed assertion leaks nothing) */
    auth_audit_rec *r = &rec;
    auth_audit_event e = {.path = "/fhir/Patient", .status = 200};
    const long long times[] = {-1, -1733475600123456LL, INT64_MIN};
    for (size_t i = 0; i < sizeof times / sizeof *times; i++) {
        unsigned char fr[128];
        size_t n = auth_audit_frame(&e, times[i], fr, sizeof fr);
        assert_true(n > 0);
        assert_int_equal(auth_audit_frame_decode(fr, n, r), n);
        if (r->recorded_us != times[i])
            fail_msg("BUG: recorded %lld decodes as %lld", times[i], r->recorded_us);
    }
}

/* KNOWN GATEWAY BUG (fails until frame_parse is fixed): a text holding a NUL byte (which
 * auth_audit_frame never writes: it takes C strings) passes auth_audit_frame_check, and
 * auth_audit_frame_decode silently cuts the text at the NUL — the record read back is not
 * the one in the frame. Such a frame should not be valid. */
/* auth_audit_batch_unpack: what the shipper packs unpacks to the same bytes; a z field that
 * is not exactly one zstd frame declaring at most AUTH_AUDIT_BATCH_MAX bytes is refused
 * before anything that size is allocated. */
static void test_batch_unpack(void **state)
{
    (void)state;
    size_t n = AUTH_AUDIT_BATCH_MAX + 1;
    unsigned char *in = malloc(n), *out = NULL;
    size_t cap = ZSTD_compressBound(n);
    unsigned char *z = malloc(cap + 1);
    assert_non_null(in);
    assert_non_null(z);
    for (size_t i = 0; i < n; i++) in[i] = (unsigned char)("record "[i % 7] + (i / 4096) % 3);
    tsg_error e;
    size_t len = 0;

    /* round trip, at the largest size and at one byte */
    size_t zl = ZSTD_compress(z, cap, in, AUTH_AUDIT_BATCH_MAX, 1);
    assert_false(ZSTD_isError(zl));
    assert_int_equal(auth_audit_batch_unpack(z, zl, &out, &len, &e), TSG_OK);
    assert_int_equal(len, AUTH_AUDIT_BATCH_MAX);
    assert_memory_equal(out, in, len);
    free(out);
    zl = ZSTD_compress(z, cap, in, 1, 1);
    assert_int_equal(auth_audit_batch_unpack(z, zl, &out, &len, &e), TSG_OK);
    assert_int_equal(len, 1);
    assert_int_equal(out[0], in[0]);
    free(out);

    /* one byte over the limit, declared: refused */
    zl = ZSTD_compress(z, cap, in, n, 1);
    assert_false(ZSTD_isError(zl));
    assert_int_equal(auth_audit_batch_unpack(z, zl, &out, &len, &e), TSG_EINVAL);
    assert_null(out);

    /* a frame that does not declare its size (streamed): refused */
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)));
    zl = ZSTD_compress2(c, z, cap, in, 1000);
    assert_false(ZSTD_isError(zl));
    ZSTD_freeCCtx(c);
    assert_int_equal(auth_audit_batch_unpack(z, zl, &out, &len, &e), TSG_EINVAL);

    /* cut short, one byte more after the frame, damaged inside, empty, not zstd: refused */
    zl = ZSTD_compress(z, cap, in, 5000, 1);
    assert_int_equal(auth_audit_batch_unpack(z, zl - 1, &out, &len, &e), TSG_EINVAL);
    z[zl] = 0;
    assert_int_equal(auth_audit_batch_unpack(z, zl + 1, &out, &len, &e), TSG_EINVAL);
    z[zl / 2] ^= 0x5a;
    z[zl / 2 + 1] ^= 0xa5;
    tsg_rc rc = auth_audit_batch_unpack(z, zl, &out, &len, &e);
    if (rc == TSG_OK) { /* a flip zstd cannot notice (no checksum): the size still holds */
        assert_int_equal(len, 5000);
        free(out);
    } else {
        assert_int_equal(rc, TSG_EINVAL);
    }
    assert_int_equal(auth_audit_batch_unpack(z, 0, &out, &len, &e), TSG_EINVAL);
    assert_int_equal(auth_audit_batch_unpack("TSGAUDIT", 8, &out, &len, &e), TSG_EINVAL);
    assert_null(out);
    free(in);
    free(z);
}

static void test_frame_text_with_nul(void **state)
{
    (void)state;
    const char *t[10] = {"read", "GET", "/fhir/Patient/p1\0/../secret", "", "", "", "", "", "", ""};
    size_t lens[10] = {4, 3, 27, 0, 0, 0, 0, 0, 0, 0};
    unsigned char fr[256];
    size_t n = hand_frame(fr, 1, 77, 200, t, lens, 0);
    size_t c = auth_audit_frame_check(fr, n);
    if (c) fail_msg("BUG: a frame whose path holds a NUL byte is valid (%zu bytes)", c);
}

/* ------------------------------------------------------------------------
 * The journal
 * ------------------------------------------------------------------------ */

typedef struct appender {
    auth_journal *j;
    int th, from, count;
    int failed_at; /* -1, or the record whose append failed */
    char why[TSG_ERR_MESSAGE_MAX];
} appender;

static void *appender_run(void *arg)
{
    appender *a = arg;
    a->failed_at = -1;
    for (int i = a->from; i < a->from + a->count; i++) {
        unsigned char fr[512];
        size_t n = test_frame(a->th, i, fr, sizeof fr);
        tsg_error e;
        if (n == 0 || auth_journal_append(a->j, fr, n, &e) != TSG_OK) {
            a->failed_at = i;
            snprintf(a->why, sizeof a->why, "%s", n ? e.message : "no frame");
            break;
        }
    }
    return NULL;
}

/* Appends records from..from+count of each of threads threads at once; asserts each
 * append succeeded. */
static void append_concurrently(auth_journal *j, int threads, int from, int count)
{
    pthread_t tid[N_THREADS];
    appender a[N_THREADS];
    assert_true(threads <= N_THREADS);
    for (int t = 0; t < threads; t++) {
        a[t] = (appender){.j = j, .th = t, .from = from, .count = count};
        assert_int_equal(pthread_create(&tid[t], NULL, appender_run, &a[t]), 0);
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    for (int t = 0; t < threads; t++)
        if (a[t].failed_at >= 0)
            fail_msg("thread %d: append %d failed: %s", t, a[t].failed_at, a[t].why);
}

static void journal_concurrent(fixture *f, bool always)
{
    auth_journal_options o = {.dir = f->jdir, .fsync_always = always};
    open_journal(f, f->client, &o);
    char id[17];
    assert_int_equal(files_ending(f, ".journal", id), 1);

    append_concurrently(f->journal, N_THREADS, 0, N_EACH);
    tsg_error e;
    if (auth_journal_flush(f->journal, FLUSH_MS, &e) != TSG_OK) fail_msg("flush: %s", e.message);
    auth_journal_stats st;
    auth_journal_stats_get(f->journal, &st);
    assert_int_equal(st.records, N_THREADS * N_EACH);
    assert_int_equal(st.backlog_bytes, 0);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.ship_failures, 0);
    assert_true(st.shipments >= 1);
    /* the records were fdatasynced (with "interval" by the syncer within its period) */
    for (int64_t deadline = now_ms() + WAIT_MS; st.syncs == 0; sleep_ms(5)) {
        if (now_ms() > deadline) fail_msg("no fdatasync of the journal");
        auth_journal_stats_get(f->journal, &st);
    }

    stream_recs s;
    read_stream(f, &s);
    assert_each_once_in_order(&s, N_THREADS, N_EACH);
    /* the shipped offset is the header and every byte shipped; the file holds exactly the
     * bytes the stream holds */
    assert_int_equal(shipped_key(f, id), (long long)(HEADER + s.n_bytes));
    char path[160];
    snprintf(path, sizeof path, "%s/%s.journal", f->jdir, id);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(sb.st_size, SEGMENT);
    unsigned char *file = malloc(HEADER + s.n_bytes + 64);
    assert_non_null(file);
    assert_int_equal(pread(fd, file, HEADER + s.n_bytes + 64, 0), HEADER + s.n_bytes + 64);
    close(fd);
    assert_memory_equal(file, "TSGAUDITJOURNAL1", 16);
    assert_memory_equal(file + 16, id, 16);
    assert_memory_equal(file + HEADER, s.bytes, s.n_bytes);
    for (int k = 0; k < 64; k++) assert_int_equal(file[HEADER + s.n_bytes + (size_t)k], 0);
    free(file);
    fprintf(stderr,
            "  %s: %zu records in %zu stream entries (%zu packed: %zu bytes of records in "
            "%zu), %llu fdatasyncs\n",
            always ? "always" : "interval", s.n, s.entries, s.packed, s.n_bytes, s.packed_bytes,
            st.syncs);
    /* shipments of many records go packed, and a packed one is smaller (read_stream) */
    assert_true(s.packed >= 1);
    stream_recs_free(&s);

    /* a flush with nothing pending returns at once */
    assert_int_equal(auth_journal_flush(f->journal, FLUSH_MS, &e), TSG_OK);

    /* closed: the shipped file and its offset key are gone */
    close_journal(f);
    assert_int_equal(files_ending(f, ".journal", NULL), 0);
    assert_int_equal(shipped_key(f, id), -1);
    read_stream(f, &s);
    assert_int_equal(s.n, N_THREADS * N_EACH);
    stream_recs_free(&s);
}

static void test_journal_interval(void **state)
{
    journal_concurrent(*state, false);
}

static void test_journal_always(void **state)
{
    journal_concurrent(*state, true);
}

/* ------------------------------------------------------------------------
 * Orphans
 * ------------------------------------------------------------------------ */

/* Writes a journal file as a stopped gateway leaves it: the header, test records
 * (thread th, 0..n-1), the first half of one more (torn), then zeros. *first_end = the
 * offset after the first record. */
static void write_orphan(fixture *f, const char *id, int th, int n, uint64_t *first_end)
{
    mkdir(f->jdir, 0700);
    char path[160];
    snprintf(path, sizeof path, "%s/%s.journal", f->jdir, id);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite("TSGAUDITJOURNAL1", 1, 16, fp), 16);
    assert_int_equal(fwrite(id, 1, 16, fp), 16);
    uint64_t off = HEADER;
    for (int i = 0; i <= n; i++) {
        unsigned char fr[512];
        size_t k = test_frame(th, i, fr, sizeof fr);
        if (i == n) k /= 2; /* torn: the crash cut it short */
        assert_int_equal(fwrite(fr, 1, k, fp), k);
        off += k;
        if (i == 0 && first_end) *first_end = off;
    }
    static const unsigned char zeros[8192];
    assert_int_equal(fwrite(zeros, 1, sizeof zeros, fp), sizeof zeros);
    assert_int_equal(fclose(fp), 0);
}

/* Waits until the journal drained `orphans` orphans and none of the names exists. */
static void wait_drained(fixture *f, unsigned long long orphans, const char *const *gone,
                         int n_gone)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        auth_journal_stats st;
        auth_journal_stats_get(f->journal, &st);
        int left = 0;
        for (int i = 0; i < n_gone; i++) left += file_exists(f, gone[i]);
        if (st.orphans >= orphans && !left) break;
        if (now_ms() > deadline)
            fail_msg("orphans not drained: %llu of %llu, %d files left", st.orphans, orphans, left);
        sleep_ms(10);
    }
}

static void test_orphan_by_hand(void **state)
{
    fixture *f = *state;
    /* A: all of it; B: shipped up to after its first record (Redis has that one already) */
    const char *ida = "00112233445566aa", *idb = "00112233445566bb";
    uint64_t b_first;
    write_orphan(f, ida, 0, 5, NULL);
    write_orphan(f, idb, 1, 4, &b_first);
    char key[64], off[32];
    snprintf(key, sizeof key, "tsg:audit:shipped:%s", idb);
    snprintf(off, sizeof off, "%llu", (unsigned long long)b_first);
    cmd_run(f, 3, "SET", key, off);
    /* not journals: a file with a bad header (renamed), one shorter than a header (removed) */
    char path[160];
    snprintf(path, sizeof path, "%s/badbadbadbadbad0.journal", f->jdir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fprintf(fp, "this is not an audit journal, but is 32 bytes or longer");
    fclose(fp);
    snprintf(path, sizeof path, "%s/5555555555555555.journal", f->jdir);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    fprintf(fp, "TSGAUDIT");
    fclose(fp);

    auth_journal_options o = {.dir = f->jdir};
    open_journal(f, f->client, &o);
    const char *gone[] = {"00112233445566aa.journal", "00112233445566bb.journal",
                          "badbadbadbadbad0.journal", "5555555555555555.journal"};
    wait_drained(f, 2, gone, 4);
    assert_true(file_exists(f, "badbadbadbadbad0.journal.unreadable"));
    assert_int_equal(files_ending(f, ".journal", NULL), 1); /* the journal's own */
    assert_int_equal(shipped_key(f, ida), -1);
    assert_int_equal(shipped_key(f, idb), -1);

    stream_recs s;
    read_stream(f, &s);
    /* A's five records, B's records 1..3 (record 0 was shipped before), no torn record */
    size_t na = 0, nb = 0;
    auth_audit_rec *r = malloc(sizeof *r);
    assert_non_null(r);
    for (size_t k = 0; k < s.n; k++) {
        int th, i;
        stream_rec(&s, k, r);
        rec_origin(r, &th, &i);
        if (th == 0) assert_int_equal(i, (int)na++);
        if (th == 1) assert_int_equal(i, (int)++nb);
        assert_true(th == 0 || th == 1);
    }
    assert_int_equal(na, 5);
    assert_int_equal(nb, 3);
    assert_int_equal(s.n, 8);
    free(r);
    stream_recs_free(&s);

    /* the next scan finds nothing more to ship */
    auth_journal_stats st;
    auth_journal_stats_get(f->journal, &st);
    assert_int_equal(st.orphans, 2);
}

static void test_orphan_redis_down(void **state)
{
    fixture *f = *state;
    /* a gateway whose Redis is unreachable: its records stay in its journal */
    char nowhere[128];
    snprintf(nowhere, sizeof nowhere, "%s/nobody-listens.sock", f->dir);
    redis_target t;
    redis_client *dead;
    tsg_error e;
    assert_int_equal(redis_target_unix(nowhere, &t, &e), TSG_OK);
    assert_int_equal(redis_client_new(&t, NULL, &dead, &e), TSG_OK);
    auth_journal_options o = {.dir = f->jdir, .fsync_always = true};
    open_journal(f, dead, &o);
    char id[17];
    assert_int_equal(files_ending(f, ".journal", id), 1);
    append_concurrently(f->journal, 4, 0, 50);
    assert_int_equal(auth_journal_flush(f->journal, FLUSH_MS, &e), TSG_EIO);
    assert_non_null(strstr(e.message, "could not be shipped"));
    close_journal(f);
    redis_client_free(dead);
    char name[32];
    snprintf(name, sizeof name, "%s.journal", id);
    assert_true(file_exists(f, name));

    /* the next gateway ships them, once, and removes the file */
    o.fsync_always = false;
    open_journal(f, f->client, &o);
    const char *gone[] = {name};
    wait_drained(f, 1, gone, 1);
    stream_recs s;
    read_stream(f, &s);
    assert_each_once_in_order(&s, 4, 50);
    stream_recs_free(&s);
    assert_int_equal(shipped_key(f, id), -1);
}

/* ------------------------------------------------------------------------
 * Shipping failures, the backlog limit
 * ------------------------------------------------------------------------ */

static void shipping_fails_then_recovers(fixture *f, bool always)
{
    cmd_run(f, 3, "SET", "tsg:audit", "not a stream"); /* XADD fails: WRONGTYPE */
    auth_journal_options o = {.dir = f->jdir, .fsync_always = always};
    open_journal(f, f->client, &o);
    append_concurrently(f->journal, 4, 0, 100);
    tsg_error e;
    assert_int_equal(auth_journal_flush(f->journal, FLUSH_MS, &e), TSG_EIO);
    assert_non_null(strstr(e.message, "WRONGTYPE"));
    auth_journal_stats st;
    auth_journal_stats_get(f->journal, &st);
    assert_true(st.ship_failures > 0);
    assert_int_equal(st.shipments, 0);
    assert_true(st.backlog_bytes > 0);
    assert_int_equal(st.records, 400);
    assert_non_null(strstr(st.ship_error, "WRONGTYPE"));
    /* appends go on meanwhile */
    append_concurrently(f->journal, 4, 100, 25);

    cmd_run(f, 2, "DEL", "tsg:audit", NULL);
    if (auth_journal_flush(f->journal, FLUSH_MS, &e) != TSG_OK) fail_msg("flush: %s", e.message);
    auth_journal_stats_get(f->journal, &st);
    assert_int_equal(st.backlog_bytes, 0);
    stream_recs s;
    read_stream(f, &s);
    assert_each_once_in_order(&s, 4, 125);
    char id[17];
    assert_int_equal(files_ending(f, ".journal", id), 1);
    assert_int_equal(shipped_key(f, id), (long long)(HEADER + s.n_bytes));
    stream_recs_free(&s);
}

static void test_ship_failure_interval(void **state)
{
    shipping_fails_then_recovers(*state, false);
}

static void test_ship_failure_always(void **state)
{
    shipping_fails_then_recovers(*state, true);
}

static void backlog_limit(fixture *f, bool always)
{
    const uint64_t limit = 64u << 10;
    cmd_run(f, 3, "SET", "tsg:audit", "not a stream");
    auth_journal_options o = {.dir = f->jdir, .max_backlog_bytes = limit, .fsync_always = always};
    open_journal(f, f->client, &o);
    unsigned char fr[512];
    size_t n = test_frame(0, 0, fr, sizeof fr), total = 0;
    int i = 0;
    tsg_error e;
    for (;; i++) {
        n = test_frame(0, i, fr, sizeof fr);
        if (auth_journal_append(f->journal, fr, n, &e) != TSG_OK) break;
        total += n;
        assert_true(total <= limit);
    }
    /* refused exactly at the limit, with a message that names it */
    assert_true(total + n > limit);
    assert_non_null(strstr(e.message, "audit_journal_max_mb"));
    auth_journal_stats st;
    auth_journal_stats_get(f->journal, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.records, (unsigned long long)i);
    assert_int_equal(st.backlog_bytes, total);
    /* refused again while Redis refuses */
    assert_int_equal(auth_journal_append(f->journal, fr, n, &e), TSG_EIO);

    cmd_run(f, 2, "DEL", "tsg:audit", NULL);
    if (auth_journal_flush(f->journal, FLUSH_MS, &e) != TSG_OK) fail_msg("flush: %s", e.message);
    /* taken again: record i and more */
    for (int k = i; k < i + 10; k++) {
        n = test_frame(0, k, fr, sizeof fr);
        if (auth_journal_append(f->journal, fr, n, &e) != TSG_OK)
            fail_msg("append after recovery: %s", e.message);
    }
    if (auth_journal_flush(f->journal, FLUSH_MS, &e) != TSG_OK) fail_msg("flush: %s", e.message);
    stream_recs s;
    read_stream(f, &s);
    assert_each_once_in_order(&s, 1, i + 10);
    stream_recs_free(&s);
}

static void test_backlog_limit_interval(void **state)
{
    backlog_limit(*state, false);
}

static void test_backlog_limit_always(void **state)
{
    backlog_limit(*state, true);
}

/* KNOWN GATEWAY BUG (fails until ship_range in gateway/auth/auth_journal.c is fixed): an
 * XADD that fails inside MULTI … EXEC (tsg:audit not a stream: WRONGTYPE is an error of
 * EXEC's, not of queueing) does not stop the SET of the shipped offset queued after it, so
 * Redis records as shipped what never reached tsg:audit. When the journal is then left
 * (the gateway stops, or an orphan's drain is retried), those records are skipped: lost. */
static void test_failed_xadd_keeps_records(void **state)
{
    fixture *f = *state;
    cmd_run(f, 3, "SET", "tsg:audit", "not a stream");
    auth_journal_options o = {.dir = f->jdir};
    open_journal(f, f->client, &o);
    char id[17];
    assert_int_equal(files_ending(f, ".journal", id), 1);
    append_concurrently(f->journal, 2, 0, 10);
    tsg_error e;
    assert_int_equal(auth_journal_flush(f->journal, FLUSH_MS, &e), TSG_EIO);
    /* nothing is in tsg:audit, so nothing may count as shipped */
    long long off = shipped_key(f, id);
    if (off > (long long)HEADER)
        fprintf(stderr, "  BUG: tsg:audit:shipped:%s = %lld while tsg:audit holds nothing\n", id,
                off);
    close_journal(f); /* the gateway stops while Redis refuses: the file stays */
    char name[32];
    snprintf(name, sizeof name, "%s.journal", id);
    assert_true(file_exists(f, name));

    cmd_run(f, 2, "DEL", "tsg:audit", NULL);
    open_journal(f, f->client, &o); /* the next start drains it */
    const char *gone[] = {name};
    wait_drained(f, 1, gone, 1);
    stream_recs s;
    read_stream(f, &s);
    size_t got = s.n;
    stream_recs_free(&s);
    if (got != 20) fail_msg("%zu of the 20 records reached tsg:audit (BUG: see above)", got);
    assert_true(off <= (long long)HEADER);
}

/* ------------------------------------------------------------------------
 * A full journal file: the next one takes over, the full one goes once shipped
 * ------------------------------------------------------------------------ */

/* A record of nearly the largest size: thread th's i-th, path "/t/<th>/<i>". */
static size_t big_frame(int th, int i, const char *filler, unsigned char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/t/%d/%d", th, i);
    auth_audit_event e = {"read", "GET",  path,   filler, filler, filler,
                          filler, filler, filler, filler, 200};
    return auth_audit_frame(&e, 1700000000000000LL + i, out, cap);
}

typedef struct big_appender {
    auth_journal *j;
    const char *filler;
    int th, count, failed_at;
    char why[TSG_ERR_MESSAGE_MAX];
} big_appender;

static void *big_appender_run(void *arg)
{
    big_appender *a = arg;
    unsigned char *fr = malloc(AUTH_AUDIT_FRAME_MAX);
    a->failed_at = -1;
    for (int i = 0; fr && i < a->count; i++) {
        size_t n = big_frame(a->th, i, a->filler, fr, AUTH_AUDIT_FRAME_MAX);
        tsg_error e;
        if (auth_journal_append(a->j, fr, n, &e) != TSG_OK) {
            a->failed_at = i;
            snprintf(a->why, sizeof a->why, "%s", e.message);
            break;
        }
    }
    if (!fr) a->failed_at = 0;
    free(fr);
    return NULL;
}

static void journal_rotation(fixture *f, bool always, int threads)
{
    auth_journal_options o = {.dir = f->jdir, .fsync_always = always};
    open_journal(f, f->client, &o);
    char first[17];
    assert_int_equal(files_ending(f, ".journal", first), 1);
    char *filler = malloc(AUTH_AUDIT_FIELD_MAX + 1);
    assert_non_null(filler);
    memset(filler, 'f', AUTH_AUDIT_FIELD_MAX);
    filler[AUTH_AUDIT_FIELD_MAX] = '\0';
    /* a fifth more than one file holds */
    unsigned char *fr = malloc(AUTH_AUDIT_FRAME_MAX);
    assert_non_null(fr);
    size_t n = big_frame(0, 0, filler, fr, AUTH_AUDIT_FRAME_MAX);
    free(fr);
    int each = (int)(SEGMENT / n * 6 / 5) / threads;
    pthread_t tid[N_THREADS];
    big_appender a[N_THREADS];
    for (int t = 0; t < threads; t++) {
        a[t] = (big_appender){.j = f->journal, .filler = filler, .th = t, .count = each};
        assert_int_equal(pthread_create(&tid[t], NULL, big_appender_run, &a[t]), 0);
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    for (int t = 0; t < threads; t++)
        if (a[t].failed_at >= 0)
            fail_msg("thread %d: append %d failed: %s", t, a[t].failed_at, a[t].why);
    tsg_error e;
    if (auth_journal_flush(f->journal, FLUSH_MS, &e) != TSG_OK) fail_msg("flush: %s", e.message);

    /* the full file goes (with its offset key) once shipped; the next one remains */
    char name[32];
    snprintf(name, sizeof name, "%s.journal", first);
    for (int64_t deadline = now_ms() + WAIT_MS; file_exists(f, name); sleep_ms(10))
        if (now_ms() > deadline) fail_msg("the full journal file was not removed");
    assert_int_equal(shipped_key(f, first), -1);
    /* the file that took over is the one with an offset key (with "interval" a spare may
     * be there too: the syncer makes it ahead, and when it was not ready in time the full
     * file's successor was made at once and the late one kept for the next) */
    char second[17] = "", ids[4][17];
    int n_files = 0;
    DIR *d = opendir(f->jdir);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));)
        if (strlen(de->d_name) == 24 && !strcmp(de->d_name + 16, ".journal") && n_files < 4) {
            memcpy(ids[n_files], de->d_name, 16);
            ids[n_files++][16] = '\0';
        }
    closedir(d);
    assert_true(n_files == 1 || (n_files == 2 && !always));
    for (int i = 0; i < n_files; i++) {
        assert_true(strcmp(ids[i], first) != 0);
        if (shipped_key(f, ids[i]) >= 0) {
            assert_true(second[0] == '\0');
            memcpy(second, ids[i], sizeof second);
        }
    }
    assert_true(second[0] != '\0');

    stream_recs s;
    read_stream(f, &s);
    int next[N_THREADS] = {0};
    auth_audit_rec *r = malloc(sizeof *r);
    assert_non_null(r);
    for (size_t k = 0; k < s.n; k++) {
        int th, i;
        stream_rec(&s, k, r);
        rec_origin(r, &th, &i);
        assert_true(th >= 0 && th < threads);
        if (i != next[th]) fail_msg("thread %d: record %d where %d was due", th, i, next[th]);
        next[th]++;
        assert_int_equal(strlen(r->e.detail), AUTH_AUDIT_FIELD_MAX);
    }
    for (int t = 0; t < threads; t++) assert_int_equal(next[t], each);
    /* the second file holds the last records (those the first had no room for: a whole
     * batch with "always"), and its offset is its end */
    long long off = shipped_key(f, second);
    assert_true(off > (long long)HEADER && (size_t)off - HEADER < s.n_bytes);
    size_t tail = (size_t)off - HEADER;
    assert_true(s.n_bytes - tail > SEGMENT / 2); /* the first held at least half */
    size_t k = 0;
    while (k < s.n && s.at[k] < s.n_bytes - tail) k++;
    assert_int_equal(s.at[k], s.n_bytes - tail); /* on a record's boundary */
    char path[160];
    snprintf(path, sizeof path, "%s/%s.journal", f->jdir, second);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    unsigned char *file = malloc((size_t)off);
    assert_non_null(file);
    assert_int_equal(pread(fd, file, (size_t)off, 0), off);
    close(fd);
    assert_memory_equal(file + 16, second, 16);
    assert_memory_equal(file + HEADER, s.bytes + s.n_bytes - tail, tail);
    free(file);
    fprintf(stderr, "  %s: %zu records, %zu bytes, in %zu stream entries over two files\n",
            always ? "always" : "interval", s.n, s.n_bytes, s.entries);
    free(r);
    stream_recs_free(&s);
    free(filler);
}

static void test_rotation_interval(void **state)
{
    journal_rotation(*state, false, 1);
}

static void test_rotation_always(void **state)
{
    journal_rotation(*state, true, N_THREADS);
}

/* ------------------------------------------------------------------------
 * A journal file that cannot be made
 * ------------------------------------------------------------------------ */

static void test_open_file_too_large(void **state)
{
    fixture *f = *state;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < SEGMENT) skip();
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 64u << 20; /* half a journal file */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    auth_journal_options o = {.dir = f->jdir};
    tsg_error e;
    tsg_rc rc = auth_journal_open(f->client, &o, &f->journal, &e);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, was);
    assert_int_equal(rc, TSG_EIO);
    assert_null(f->journal);
    assert_non_null(strstr(e.message, "audit journal: creating"));
    assert_non_null(strstr(e.message, strerror(EFBIG)));
    /* nothing half-made is left */
    assert_int_equal(files_ending(f, ".journal", NULL), 0);
    /* and with room it opens */
    open_journal(f, f->client, &o);
    assert_int_equal(files_ending(f, ".journal", NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_reference),
        cmocka_unit_test(test_frame_layout),
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_frame_damage),
        cmocka_unit_test(test_frame_negative_recorded),
        cmocka_unit_test(test_frame_text_with_nul),
        cmocka_unit_test(test_batch_unpack),
        cmocka_unit_test_setup_teardown(test_journal_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphan_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphan_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_failure_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_failure_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_limit_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_limit_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_xadd_keeps_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_file_too_large, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
