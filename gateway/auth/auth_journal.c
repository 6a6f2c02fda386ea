/*
 * auth_journal.c — the gateway's local audit journal (auth.h, "Audit"): where
 * a record becomes durable before its answer leaves, one fdatasync for every
 * record appended meanwhile (group commit on a thread of its own), and the
 * shipper that moves the records into tsg:audit in batches, exactly once —
 * including those of journals that a stopped or crashed gateway left behind.
 *
 * Threads and locking: appenders (the HTTP pool threads), the syncer and the
 * shipper share one mutex. Only the syncer writes files and creates segments;
 * only the shipper reads them, ships, and removes segments.
 */
#include "auth.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "../store/redis.h"

#define JOURNAL_MAGIC      "TSGAUDITJOURNAL1" /* 16 bytes, then the file's 16 hex digit id */
#define JOURNAL_HEADER     32u
#define JOURNAL_SEGMENT    (128ull << 20)       /* the size of a journal file (allocated at once) */
#define JOURNAL_SHIP_MAX   AUTH_AUDIT_BATCH_MAX /* bytes of records in one XADD (unpacked) */
#define JOURNAL_ZSTD_LEVEL 1     /* ~900 MB/s, records pack ~10:1 (auth.h, "Audit") */
#define JOURNAL_SCAN_MS    10000 /* how often the folder is looked at for orphans */
#define JOURNAL_REOPEN_MS  1000  /* after a failed write, a new file is tried this often */
#define JOURNAL_BACKOFF_MS 1000  /* longest pause between failed shipments */
#define SHIPPED_KEY        "tsg:audit:shipped:"

/* The shipment of records (ARGV[1], in the field ARGV[3]: z packed, r as
 * they are): they and the journal's shipped offset, or neither. */
static redis_script ship_script =
    REDIS_SCRIPT("audit_ship", "redis.call('XADD', KEYS[1], '*', ARGV[3], ARGV[1]) "
                               "redis.call('SET', KEYS[2], ARGV[2]) return 1");

/* One journal file of this gateway. */
typedef struct segment {
    struct segment *next;
    char id[17];
    char path[AUTH_JOURNAL_DIR_MAX + 32];
    int fd;             /* flock()ed LOCK_EX while ours */
    unsigned char *map; /* the file's JOURNAL_SEGMENT bytes, shared */
    uint64_t ready;     /* bytes of the file that may be shipped: durable (sync_each) or
                           written (header included) */
    uint64_t shipped;   /* bytes of the file that are in Redis (header included) */
    bool closed;        /* takes no more records: removed once shipped */
} segment;

struct auth_journal {
    redis_client *rc;
    char dir[AUTH_JOURNAL_DIR_MAX];
    uint64_t max_backlog;
    unsigned ship_interval_ms;
    bool sync_each; /* audit_fsync "always": fdatasync before the answer */

    pthread_mutex_t mu;
    pthread_cond_t work;    /* the syncer: bytes to write, or stop */
    _Atomic uint32_t seq;   /* appenders wait on it (futex): bumped after each write */
    pthread_cond_t ship;    /* the shipper: bytes to ship, a flush, or stop */
    pthread_cond_t shipped; /* flushers: bytes shipped */

    unsigned char *pend; /* appended, not yet taken by the syncer */
    size_t pend_len, pend_cap;
    uint64_t appended; /* record bytes ever appended (the appenders' positions) */
    /* positions up to ok_upto are durable, except (fail_from, fail_upto], the
     * last failure: read by waiting appenders without the mutex */
    _Atomic uint64_t ok_upto, fail_from, fail_upto;
    uint64_t ready_n;        /* record bytes ready (see segment.ready), in total */
    uint64_t shipped_n;      /* … of which shipped (from this process' own files) */
    uint64_t ship_attempts;  /* shipments begun, numbered from 1 */
    uint64_t failed_attempt; /* the number of the last that failed (0: none) */
    bool failed;             /* the current file failed: appends fail until a new one opens */
    char failure[TSG_ERR_MESSAGE_MAX];
    long long failed_at_ms;
    bool stop;
    int flushers;   /* threads in auth_journal_flush: ship without waiting */
    segment *segs;  /* oldest first; the last one takes records unless closed */
    segment *spare; /* the next one, made ahead by the syncer ("interval") */
    auth_journal_stats stats;

    pthread_t syncer, shipper;
    bool started;

    /* the shipper's alone */
    ZSTD_CCtx *zctx; /* packs the records of a shipment into zbuf */
    unsigned char *zbuf;
    size_t zcap;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

/* fsyncs the folder, so that a file created or removed in it stays so. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = fsync(fd) ? errno : 0;
    close(fd);
    return e;
}

/* Frees a segment that is no longer in the list. */
static void segment_free(segment *s)
{
    if (!s) return;
    if (s->map) munmap(s->map, JOURNAL_SEGMENT);
    if (s->fd >= 0) close(s->fd);
    free(s);
}

/* Creates a journal file: its JOURNAL_SEGMENT bytes allocated on disk (so
 * that writing through the mapping never meets a full disk), its header
 * durable, the folder synced, mapped. Needs no lock (only j->dir). */
static tsg_rc segment_create(auth_journal *j, segment **out, tsg_error *err)
{
    *out = NULL;
    segment *s = calloc(1, sizeof *s);
    if (!s) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    s->fd = -1;
    unsigned char rnd[8];
    int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    bool ok = ufd >= 0 && read(ufd, rnd, sizeof rnd) == (ssize_t)sizeof rnd;
    if (ufd >= 0) close(ufd);
    if (!ok) {
        free(s);
        return tsg_error_set(err, TSG_EIO, "exception", "audit journal: /dev/urandom failed");
    }
    for (int i = 0; i < 8; i++) snprintf(s->id + 2 * i, 3, "%02x", rnd[i]);
    /* Made under a name the drain leaves alone (<id>.new, removed only when
     * unlocked and a minute old) and renamed once locked, allocated and with
     * its header on disk: a drain never sees a journal half made. */
    char tmp[sizeof s->path];
    snprintf(s->path, sizeof s->path, "%s/%s.journal", j->dir, s->id);
    snprintf(tmp, sizeof tmp, "%s/%s.new", j->dir, s->id);
    s->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int e = s->fd < 0 ? errno : 0;
    if (!e && flock(s->fd, LOCK_EX | LOCK_NB)) e = errno;
    if (!e) e = posix_fallocate(s->fd, 0, (off_t)JOURNAL_SEGMENT);
    unsigned char head[JOURNAL_HEADER];
    memcpy(head, JOURNAL_MAGIC, 16);
    memcpy(head + 16, s->id, 16);
    if (!e && pwrite(s->fd, head, sizeof head, 0) != (ssize_t)sizeof head) e = errno ? errno : EIO;
    if (!e && fdatasync(s->fd)) e = errno;
    if (!e && rename(tmp, s->path)) e = errno;
    if (!e) e = sync_dir(j->dir);
    if (!e) {
        void *m = mmap(NULL, JOURNAL_SEGMENT, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
        if (m == MAP_FAILED)
            e = errno;
        else
            s->map = m;
    }
    if (e) {
        if (s->fd >= 0) {
            unlink(tmp);
            unlink(s->path);
        }
        tsg_error_set(err, TSG_EIO, "exception", "audit journal: creating %s: %s", s->path,
                      strerror(e));
        segment_free(s);
        return TSG_EIO;
    }
    s->ready = s->shipped = JOURNAL_HEADER;
    *out = s;
    return TSG_OK;
}

/* Makes a new journal file the one that takes records: the spare one when
 * there is one, else a new one (mu held). */
static tsg_rc segment_new(auth_journal *j, tsg_error *err)
{
    segment *s = j->spare;
    j->spare = NULL;
    if (!s && segment_create(j, &s, err) != TSG_OK) return TSG_EIO;
    segment **tail = &j->segs;
    while (*tail) tail = &(*tail)->next;
    *tail = s;
    return TSG_OK;
}

/* The segment that takes records (NULL: none, the journal failed). */
static segment *current(auth_journal *j)
{
    segment *s = j->segs;
    while (s && s->next) s = s->next;
    return s && !s->closed ? s : NULL;
}

/* Wakes every appender waiting for its record (after ok_upto or the failure
 * range moved). */
static void wake_appenders(auth_journal *j)
{
    atomic_fetch_add(&j->seq, 1);
    syscall(SYS_futex, &j->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Marks the journal failed with the reason (mu held): the waiting appenders
 * and every pending record fail; a new file is tried after a pause. */
static void fail_locked(auth_journal *j, const char *why)
{
    snprintf(j->failure, sizeof j->failure, "%s", why);
    fprintf(stderr, "tsunagu audit: %s\n", why);
    j->failed = true;
    j->failed_at_ms = mono_ms();
    atomic_store(&j->fail_upto, 0); /* (no waiter reads a half-set range) */
    atomic_store(&j->fail_from, atomic_load(&j->ok_upto));
    atomic_store(&j->fail_upto, j->appended);
    j->pend_len = 0;
    j->stats.failures++;
    segment *c = current(j);
    if (c) c->closed = true; /* what it holds durably is shipped; it is removed then */
    wake_appenders(j);
}

/* ------------------------------------------------------------------------
 * The syncer
 * ------------------------------------------------------------------------ */

/* After a failure: a new file once JOURNAL_REOPEN_MS have passed (mu held). */
static void reopen_locked(auth_journal *j)
{
    struct timespec ts;
    deadline_in(&ts, JOURNAL_REOPEN_MS);
    pthread_cond_timedwait(&j->work, &j->mu, &ts);
    if (j->stop || mono_ms() - j->failed_at_ms < JOURNAL_REOPEN_MS) return;
    tsg_error e;
    if (segment_new(j, &e) == TSG_OK) {
        j->failed = false;
        fprintf(stderr, "tsunagu audit: the journal takes records again (%s)\n", current(j)->path);
    } else {
        j->failed_at_ms = mono_ms();
        snprintf(j->failure, sizeof j->failure, "%s", e.message);
    }
}

/* audit_fsync "always": writes what the appenders left in pend, fdatasyncs
 * it, wakes them. */
static void sync_each(auth_journal *j)
{
    unsigned char *buf = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->pend_len && !j->stop && !j->failed) pthread_cond_wait(&j->work, &j->mu);
        if (j->failed) {
            if (j->stop) break;
            reopen_locked(j);
            continue;
        }
        if (!j->pend_len) break; /* stopping, and everything is written */
        /* take the pending bytes; appenders fill the other buffer meanwhile */
        unsigned char *t = buf;
        size_t tcap = cap;
        buf = j->pend;
        cap = j->pend_cap;
        size_t n = j->pend_len;
        j->pend = t;
        j->pend_cap = tcap;
        j->pend_len = 0;
        uint64_t upto = j->appended;
        segment *s = current(j);
        /* (n fits a fresh file: each appender waits for its record before it
         * can append another, so n ≤ threads × AUTH_AUDIT_FRAME_MAX, ~21 MB) */
        if (s->ready + n > JOURNAL_SEGMENT) {
            tsg_error e;
            s->closed = true; /* full: the shipper removes it once shipped */
            if (segment_new(j, &e) != TSG_OK) {
                fail_locked(j, e.message);
                continue;
            }
            s = current(j);
        }
        /* (s stays: only this thread closes segments in this mode) */
        pthread_mutex_unlock(&j->mu);
        memcpy(s->map + s->ready, buf, n);
        int e = fdatasync(s->fd) ? errno : 0;
        pthread_mutex_lock(&j->mu);
        if (e) {
            /* what reached the file is unknown (and after a failed fdatasync
             * the page cache cannot be trusted): these records' requests fail,
             * and the file is shipped only up to what was durable before */
            char why[AUTH_JOURNAL_DIR_MAX + 80];
            snprintf(why, sizeof why, "audit journal: writing %s: %s", s->path, strerror(e));
            fail_locked(j, why);
            continue;
        }
        s->ready += n;
        atomic_store(&j->ok_upto, upto);
        j->ready_n += n;
        j->stats.syncs++;
        pthread_cond_signal(&j->ship);
        /* (waking many threads takes a while: not while appenders need the mutex) */
        pthread_mutex_unlock(&j->mu);
        wake_appenders(j);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    free(buf);
}

/* audit_fsync "interval": appenders write their records themselves; this
 * fdatasyncs the current file every AUTH_JOURNAL_SYNC_MS. */
static void sync_interval(auth_journal *j)
{
    pthread_mutex_lock(&j->mu);
    uint64_t done = 0; /* ready_n known to be on disk */
    long long spare_retry = 0;
    for (;;) {
        if (j->failed && !j->stop) {
            reopen_locked(j);
            continue;
        }
        if (!j->stop) {
            struct timespec ts;
            deadline_in(&ts, AUTH_JOURNAL_SYNC_MS);
            pthread_cond_timedwait(&j->work, &j->mu, &ts);
        }
        segment *s = current(j);
        bool stopping = j->stop;
        if (!stopping && !j->spare && s && s->ready > JOURNAL_SEGMENT / 2 &&
            mono_ms() >= spare_retry) {
            /* the next file, made ahead so that no request waits for it */
            segment *sp = NULL;
            tsg_error e;
            pthread_mutex_unlock(&j->mu);
            if (segment_create(j, &sp, &e) != TSG_OK) {
                fprintf(stderr, "tsunagu audit: %s (tried again in a second)\n", e.message);
                spare_retry = mono_ms() + JOURNAL_REOPEN_MS;
            }
            pthread_mutex_lock(&j->mu);
            if (sp && j->spare) {
                unlink(sp->path);
                segment_free(sp);
            } else if (sp) {
                j->spare = sp;
            }
            s = current(j);
        }
        if (s && j->ready_n != done) {
            /* the file may be closed and removed meanwhile: sync a copy of it */
            int fd = dup(s->fd);
            uint64_t upto = j->ready_n;
            char path[sizeof s->path];
            snprintf(path, sizeof path, "%s", s->path);
            pthread_mutex_unlock(&j->mu);
            int e = fd < 0 ? errno : fdatasync(fd) ? errno : 0;
            if (fd >= 0) close(fd);
            pthread_mutex_lock(&j->mu);
            if (e) {
                char why[AUTH_JOURNAL_DIR_MAX + 80];
                snprintf(why, sizeof why, "audit journal: fdatasync of %s: %s", path, strerror(e));
                if (!j->failed) fail_locked(j, why);
            } else {
                done = upto;
                j->stats.syncs++;
            }
        }
        if (stopping) break;
    }
    pthread_mutex_unlock(&j->mu);
}

static void *syncer_main(void *arg)
{
    auth_journal *j = arg;
    if (j->sync_each)
        sync_each(j);
    else
        sync_interval(j);
    return NULL;
}

/* Unshipped bytes that are shipped at once, without gathering: a full
 * batch, or half the journal's limit (before requests would fail). */
static uint64_t ship_at_once(const auth_journal *j)
{
    uint64_t full = JOURNAL_SHIP_MAX;
    if (j->max_backlog && j->max_backlog / 2 < full) full = j->max_backlog / 2;
    return full;
}

/* audit_fsync "interval": the record copied into the file's mapping by the
 * appender itself (mu held) — in the page cache, it outlives the process. */
static tsg_rc append_write_locked(auth_journal *j, const void *rec, size_t n, tsg_error *err)
{
    segment *s = current(j);
    tsg_error e;
    if (s->ready + n > JOURNAL_SEGMENT) {
        /* full: on disk entirely, then closed (the shipper removes it once shipped) */
        if (fdatasync(s->fd)) {
            char why[AUTH_JOURNAL_DIR_MAX + 80];
            snprintf(why, sizeof why, "audit journal: fdatasync of %s: %s", s->path,
                     strerror(errno));
            fail_locked(j, why);
            return tsg_error_set(err, TSG_EIO, "exception", "%s", j->failure);
        }
        s->closed = true;
        if (segment_new(j, &e) != TSG_OK) {
            fail_locked(j, e.message);
            return tsg_error_set(err, TSG_EIO, "exception", "%s", j->failure);
        }
        pthread_cond_signal(&j->work); /* the syncer makes the next spare */
        s = current(j);
    }
    memcpy(s->map + s->ready, rec, n);
    uint64_t before = j->ready_n - j->shipped_n;
    s->ready += n;
    j->ready_n += n;
    j->appended += n;
    j->stats.records++;
    /* the shipper: records to gather, or enough to ship at once */
    uint64_t full = ship_at_once(j);
    if (!before || (before < full && before + n >= full)) pthread_cond_signal(&j->ship);
    return TSG_OK;
}

tsg_rc auth_journal_append(auth_journal *j, const void *rec, size_t n, tsg_error *err)
{
    pthread_mutex_lock(&j->mu);
    if (j->failed || j->stop) {
        tsg_error_set(err, TSG_EIO, "exception", "%s",
                      j->stop ? "audit journal: the gateway is stopping" : j->failure);
        pthread_mutex_unlock(&j->mu);
        return TSG_EIO;
    }
    uint64_t backlog = j->ready_n - j->shipped_n + j->pend_len;
    if (j->max_backlog && backlog + n > j->max_backlog) {
        tsg_error_set(err, TSG_EIO, "exception",
                      "the audit journal holds %" PRIu64
                      " bytes not yet in Redis, its limit (audit_journal_max_mb)",
                      backlog);
        j->stats.refused++;
        pthread_mutex_unlock(&j->mu);
        return TSG_EIO;
    }
    if (j->sync_each && j->pend_len + n > j->pend_cap) {
        size_t cap = j->pend_cap ? j->pend_cap : 64u << 10;
        while (cap < j->pend_len + n) cap *= 2;
        unsigned char *p = realloc(j->pend, cap);
        if (!p) {
            pthread_mutex_unlock(&j->mu);
            return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        }
        j->pend = p;
        j->pend_cap = cap;
    }
    if (!j->sync_each) {
        tsg_rc rc = append_write_locked(j, rec, n, err);
        pthread_mutex_unlock(&j->mu);
        return rc;
    }
    memcpy(j->pend + j->pend_len, rec, n);
    j->pend_len += n;
    j->appended += n;
    j->stats.records++;
    uint64_t mine = j->appended;
    if (j->pend_len == n) pthread_cond_signal(&j->work);
    pthread_mutex_unlock(&j->mu);
    /* Wait without the mutex: a write wakes every waiter at once, and each
     * returns on its own instead of queueing for the lock (a convoy that
     * held the syncer back as long as the fdatasync itself). */
    for (;;) {
        uint32_t seen = atomic_load(&j->seq);
        uint64_t lo = atomic_load(&j->fail_from), hi = atomic_load(&j->fail_upto);
        if (lo < mine && mine <= hi) {
            pthread_mutex_lock(&j->mu);
            tsg_error_set(err, TSG_EIO, "exception", "%s", j->failure);
            pthread_mutex_unlock(&j->mu);
            return TSG_EIO;
        }
        if (atomic_load(&j->ok_upto) >= mine) return TSG_OK;
        syscall(SYS_futex, &j->seq, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    }
}

/* ------------------------------------------------------------------------
 * The shipper
 * ------------------------------------------------------------------------ */

/* Ships the records of a journal in [from, limit) — at most JOURNAL_SHIP_MAX
 * bytes of them, whole records only — into tsg:audit with the file's new
 * shipped offset, atomically. This process' own file is read from its
 * mapping (map, trusted: its lengths find the records); another's through
 * fd into buf, keeping only valid records. *shipped = the bytes shipped (0
 * with TSG_OK: nothing valid at from). */
static tsg_rc ship_range(auth_journal *j, const char *id, int fd, const unsigned char *map,
                         uint64_t from, uint64_t limit, unsigned char *buf, uint64_t *shipped,
                         tsg_error *err)
{
    *shipped = 0;
    size_t want = limit - from > JOURNAL_SHIP_MAX ? JOURNAL_SHIP_MAX : (size_t)(limit - from);
    size_t got = 0, n = 0;
    const unsigned char *p = buf;
    if (map) {
        p = map + from;
        got = want;
        for (size_t f;
             got - n >= 8 && (f = 8 + (size_t)(p[n] | p[n + 1] << 8 | (size_t)p[n + 2] << 16 |
                                               (size_t)p[n + 3] << 24)) <= got - n;)
            n += f;
    } else {
        while (got < want) {
            ssize_t r = pread(fd, buf + got, want - got, (off_t)(from + got));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0)
                return tsg_error_set(err, TSG_EIO, "exception", "audit journal %s: reading: %s", id,
                                     strerror(errno));
            if (r == 0) break;
            got += (size_t)r;
        }
        for (size_t f; (f = auth_audit_frame_check(buf + n, got - n)) > 0;) n += f;
    }
    if (!n) return TSG_OK;
    char key[64], off[32];
    snprintf(key, sizeof key, SHIPPED_KEY "%s", id);
    snprintf(off, sizeof off, "%" PRIu64, from + n);
    /* packed when that makes them smaller (it does, ~10:1, but for a lone
     * record); as they are when zstd fails, which only a lack of memory makes */
    const char *field = "r", *data = (const char *)p;
    size_t dlen = n;
    size_t z = ZSTD_compressCCtx(j->zctx, j->zbuf, j->zcap, p, n, JOURNAL_ZSTD_LEVEL);
    if (!ZSTD_isError(z) && z < n) {
        field = "z";
        data = (const char *)j->zbuf;
        dlen = z;
    }
    /* A script, not MULTI … EXEC: in a transaction the SET would run even when
     * the XADD fails (tsg:audit is not a stream), and the records be lost. */
    const char *keys[] = {AUTH_AUDIT_KEY, key};
    const char *args[] = {data, off, field};
    size_t arglens[] = {dlen, strlen(off), 1};
    redisReply *rep = NULL;
    tsg_rc rc = redis_eval_script(j->rc, &ship_script, 2, keys, NULL, 3, args, arglens, &rep, err);
    freeReplyObject(rep);
    if (rc == TSG_OK) *shipped = n;
    return rc;
}

/* The shipped offset of journal id (JOURNAL_HEADER when Redis has none). */
static tsg_rc shipped_offset(auth_journal *j, const char *id, uint64_t *off, tsg_error *err)
{
    char key[64];
    snprintf(key, sizeof key, SHIPPED_KEY "%s", id);
    const char *get[] = {"GET", key};
    redisReply *r = NULL;
    tsg_rc rc = redis_command_argv(j->rc, 2, get, NULL, &r, err);
    *off = JOURNAL_HEADER;
    if (rc == TSG_OK && r->type == REDIS_REPLY_STRING) {
        char *end;
        unsigned long long v = strtoull(r->str, &end, 10);
        if (*end || v < JOURNAL_HEADER)
            rc =
                tsg_error_set(err, TSG_EIO, "exception", "%s holds %s, not an offset", key, r->str);
        else
            *off = v;
    }
    freeReplyObject(r);
    return rc;
}

/* Removes a shipped journal file and its offset key. */
static void forget(auth_journal *j, const char *id, const char *path)
{
    if (unlink(path) && errno != ENOENT)
        fprintf(stderr, "tsunagu audit: removing %s: %s\n", path, strerror(errno));
    sync_dir(j->dir);
    char key[64];
    snprintf(key, sizeof key, SHIPPED_KEY "%s", id);
    const char *del[] = {"DEL", key};
    redisReply *r = NULL;
    tsg_error err;
    if (redis_command_argv(j->rc, 2, del, NULL, &r, &err) != TSG_OK)
        fprintf(stderr, "tsunagu audit: %s stays in Redis (%s)\n", key, err.message);
    freeReplyObject(r);
}

/* Ships and removes one journal no process holds (a stopped or crashed
 * gateway's): its valid records after the shipped offset, up to the first
 * torn or damaged one (a record whose write never completed, whose request
 * was never answered). false when Redis failed (it is tried again later). */
static bool drain_orphan(auth_journal *j, const char *name, unsigned char *buf)
{
    char path[AUTH_JOURNAL_DIR_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", j->dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    struct stat st, now;
    if (flock(fd, LOCK_EX | LOCK_NB) || /* a live gateway's */
        /* drained and removed by another gateway between our open and flock */
        fstat(fd, &st) || st.st_nlink == 0 || stat(path, &now) || now.st_ino != st.st_ino ||
        now.st_dev != st.st_dev) {
        close(fd);
        return true;
    }
    unsigned char head[JOURNAL_HEADER];
    bool ok = true;
    if (fstat(fd, &st) || pread(fd, head, sizeof head, 0) != (ssize_t)sizeof head ||
        memcmp(head, JOURNAL_MAGIC, 16)) {
        if (!fstat(fd, &st) && st.st_size < (off_t)JOURNAL_HEADER) {
            unlink(path); /* created, never written: a crash before its header */
        } else {
            char bad[sizeof path + 16];
            snprintf(bad, sizeof bad, "%s.unreadable", path);
            fprintf(stderr, "tsunagu audit: %s is not an audit journal; renamed to %s\n", path,
                    bad);
            rename(path, bad);
        }
        close(fd);
        return true;
    }
    char id[17];
    memcpy(id, head + 16, 16);
    id[16] = '\0';
    tsg_error err;
    uint64_t off, size = (uint64_t)st.st_size, total = 0;
    if (shipped_offset(j, id, &off, &err) != TSG_OK) ok = false;
    while (ok && off < size) {
        uint64_t n;
        if (ship_range(j, id, fd, NULL, off, size, buf, &n, &err) != TSG_OK) {
            ok = false;
            break;
        }
        if (!n) {
            /* the rest of the file: zeros (never written), or a record the
             * crash cut short (its request was not answered) */
            uint64_t z = off;
            while (z < size) {
                ssize_t r = pread(fd, buf, JOURNAL_SHIP_MAX, (off_t)z);
                if (r <= 0) break;
                size_t k = 0;
                while (k < (size_t)r && !buf[k]) k++;
                if (k < (size_t)r) break;
                z += (uint64_t)r;
            }
            if (z < size)
                fprintf(stderr,
                        "tsunagu audit: %s: the bytes after offset %" PRIu64 " are not whole "
                        "records (a write the crash cut short; its request was not answered): "
                        "discarded\n",
                        path, off);
            break;
        }
        off += n;
        total += n;
    }
    if (!ok) {
        fprintf(stderr, "tsunagu audit: shipping %s: %s (tried again later)\n", path, err.message);
    } else {
        if (total)
            fprintf(stderr, "tsunagu audit: shipped %" PRIu64 " bytes of records left in %s\n",
                    total, path);
        forget(j, id, path);
        pthread_mutex_lock(&j->mu);
        j->stats.orphans++;
        pthread_mutex_unlock(&j->mu);
    }
    close(fd);
    return ok;
}

/* Removes a journal file a gateway began to make and never finished (it died
 * first: the file holds no record), when unlocked and a minute old. */
static void drop_stale_new(auth_journal *j, const char *name)
{
    char path[AUTH_JOURNAL_DIR_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", j->dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (!flock(fd, LOCK_EX | LOCK_NB) && !fstat(fd, &st) && st.st_nlink > 0 &&
        time(NULL) - st.st_mtime > 60)
        unlink(path);
    close(fd);
}

/* Drains every orphan journal in the folder; false when one must be tried again. */
static bool drain_orphans(auth_journal *j, unsigned char *buf)
{
    DIR *d = opendir(j->dir);
    if (!d) return true;
    bool ok = true;
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l == 16 + 4 && !strcmp(de->d_name + 16, ".new")) {
            drop_stale_new(j, de->d_name);
            continue;
        }
        if (l != 16 + 8 || strcmp(de->d_name + 16, ".journal")) continue;
        pthread_mutex_lock(&j->mu);
        bool mine = false;
        for (segment *s = j->segs; s; s = s->next) mine |= !strncmp(s->id, de->d_name, 16);
        pthread_mutex_unlock(&j->mu);
        if (!mine) ok &= drain_orphan(j, de->d_name, buf);
    }
    closedir(d);
    return ok;
}

static void *shipper_main(void *arg)
{
    auth_journal *j = arg;
    unsigned char *buf = malloc(JOURNAL_SHIP_MAX);
    long long next_scan = 0, retry_at = 0, gather_at = 0, backoff = 0;
    bool complained = false;
    for (;;) {
        if (mono_ms() >= next_scan) {
            bool ok = buf && drain_orphans(j, buf);
            next_scan = mono_ms() + (ok ? JOURNAL_SCAN_MS : JOURNAL_BACKOFF_MS);
        }
        pthread_mutex_lock(&j->mu);
        /* Wait for a batch: records gather for ship_interval_ms (each XADD
         * costs Redis an fsync), unless a flush waits or ship_at_once bytes
         * wait. */
        for (;;) {
            long long now = mono_ms();
            uint64_t pending = j->ready_n - j->shipped_n;
            bool closed_done = j->segs && j->segs->closed && j->segs->shipped == j->segs->ready;
            if (j->stop || closed_done || now >= next_scan) break;
            long long wake = next_scan;
            if (pending && (now >= retry_at || j->flushers)) {
                if (!gather_at) gather_at = now + j->ship_interval_ms;
                if (j->flushers || pending >= ship_at_once(j) || now >= gather_at) break;
                wake = gather_at;
            } else if (pending && retry_at < wake) {
                wake = retry_at;
            }
            struct timespec ts;
            deadline_in(&ts, (long)(wake - now));
            pthread_cond_timedwait(&j->ship, &j->mu, &ts);
        }
        gather_at = 0;
        segment *s = j->segs;
        while (s && s->shipped == s->ready && !s->closed) s = s->next;
        bool stopping = j->stop;
        if (!s || (!stopping && !j->flushers && mono_ms() < retry_at && !s->closed)) {
            pthread_mutex_unlock(&j->mu);
            if (stopping) break;
            continue;
        }
        uint64_t from = s->shipped, limit = s->ready;
        bool closed = s->closed;
        uint64_t attempt = ++j->ship_attempts;
        pthread_mutex_unlock(&j->mu);

        if (closed && from == limit) { /* shipped and takes no more: remove it */
            forget(j, s->id, s->path);
            pthread_mutex_lock(&j->mu);
            segment **p = &j->segs;
            while (*p != s) p = &(*p)->next;
            *p = s->next;
            pthread_mutex_unlock(&j->mu);
            segment_free(s);
            continue;
        }
        uint64_t n = 0;
        tsg_error err;
        tsg_rc rc = buf ? ship_range(j, s->id, s->fd, s->map, from, limit, buf, &n, &err)
                        : tsg_error_set(&err, TSG_ENOMEM, "exception", "out of memory");
        if (rc == TSG_OK && !n)
            rc = tsg_error_set(&err, TSG_EINTERNAL, "exception",
                               "audit journal %s: no whole record at offset %" PRIu64, s->path,
                               from);
        pthread_mutex_lock(&j->mu);
        if (rc == TSG_OK) {
            s->shipped += n;
            j->shipped_n += n;
            j->stats.shipments++;
            if (complained) fprintf(stderr, "tsunagu audit: shipping records works again\n");
            complained = false;
            backoff = retry_at = 0;
        } else {
            j->stats.ship_failures++;
            j->failed_attempt = attempt;
            snprintf(j->stats.ship_error, sizeof j->stats.ship_error, "%s", err.message);
            if (!complained)
                fprintf(stderr,
                        "tsunagu audit: shipping records to Redis: %s (they stay in the journal "
                        "and are tried again)\n",
                        err.message);
            complained = true;
            backoff = backoff ? backoff * 2 : 50;
            if (backoff > JOURNAL_BACKOFF_MS) backoff = JOURNAL_BACKOFF_MS;
            retry_at = mono_ms() + backoff;
        }
        pthread_cond_broadcast(&j->shipped); /* flushers: progress, or the failure */
        pthread_mutex_unlock(&j->mu);
        if (rc != TSG_OK && stopping) break; /* the rest stays: the next start ships it */
    }
    free(buf);
    return NULL;
}

tsg_rc auth_journal_flush(auth_journal *j, long timeout_ms, tsg_error *err)
{
    pthread_mutex_lock(&j->mu);
    uint64_t target = j->ready_n;
    /* only attempts that start from now count: one that began before (Redis
     * still refusing then) may fail after Redis has recovered */
    uint64_t first = j->ship_attempts + 1;
    j->flushers++;
    pthread_cond_signal(&j->ship);
    struct timespec ts;
    deadline_in(&ts, timeout_ms);
    tsg_rc rc = TSG_OK;
    while (j->shipped_n < target) {
        if (j->failed_attempt >= first) {
            rc = tsg_error_set(err, TSG_EIO, "exception",
                               "the audit records of this gateway could not be shipped to "
                               "Redis: %s",
                               j->stats.ship_error);
            break;
        }
        if (pthread_cond_timedwait(&j->shipped, &j->mu, &ts) == ETIMEDOUT) {
            rc = tsg_error_set(err, TSG_EIO, "exception",
                               "the audit records of this gateway did not reach Redis within "
                               "%ld ms",
                               timeout_ms);
            break;
        }
    }
    j->flushers--;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void auth_journal_stats_get(auth_journal *j, auth_journal_stats *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->stats;
    out->backlog_bytes = j->ready_n - j->shipped_n + j->pend_len;
    pthread_mutex_unlock(&j->mu);
}

/* ------------------------------------------------------------------------
 * Open, close
 * ------------------------------------------------------------------------ */

tsg_rc auth_journal_open(redis_client *c, const auth_journal_options *o, auth_journal **out,
                         tsg_error *err)
{
    *out = NULL;
    if (!o->dir || !*o->dir || strlen(o->dir) >= AUTH_JOURNAL_DIR_MAX)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "audit journal: no folder, or too long");
    auth_journal *j = calloc(1, sizeof *j);
    if (!j) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    j->rc = c;
    snprintf(j->dir, sizeof j->dir, "%s", o->dir);
    j->max_backlog = o->max_backlog_bytes;
    j->ship_interval_ms = o->ship_interval_ms ? o->ship_interval_ms : AUTH_JOURNAL_SHIP_MS;
    j->sync_each = o->fsync_always;
    j->zcap = ZSTD_compressBound(JOURNAL_SHIP_MAX);
    j->zctx = ZSTD_createCCtx();
    j->zbuf = malloc(j->zcap);
    if (!j->zctx || !j->zbuf) {
        ZSTD_freeCCtx(j->zctx);
        free(j->zbuf);
        free(j);
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    }
    tsg_mutex_init_adaptive(&j->mu);
    cond_init(&j->work);
    cond_init(&j->ship);
    cond_init(&j->shipped);
    if (tsg_mkdir_p(j->dir)) {
        tsg_error_set(err, TSG_EIO, "exception", "audit journal: creating %s: %s", j->dir,
                      strerror(errno));
        auth_journal_close(j);
        return TSG_EIO;
    }
    if (segment_new(j, err) != TSG_OK) {
        auth_journal_close(j);
        return TSG_EIO;
    }
    if (pthread_create(&j->syncer, NULL, syncer_main, j)) {
        auth_journal_close(j);
        return tsg_error_set(err, TSG_EIO, "exception", "audit journal: no thread");
    }
    if (pthread_create(&j->shipper, NULL, shipper_main, j)) {
        pthread_mutex_lock(&j->mu);
        j->stop = true;
        pthread_cond_broadcast(&j->work);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->syncer, NULL);
        auth_journal_close(j);
        return tsg_error_set(err, TSG_EIO, "exception", "audit journal: no thread");
    }
    j->started = true;
    *out = j;
    return TSG_OK;
}

void auth_journal_close(auth_journal *j)
{
    if (!j) return;
    if (j->started) {
        pthread_mutex_lock(&j->mu);
        j->stop = true;
        pthread_cond_broadcast(&j->work);
        pthread_cond_broadcast(&j->ship);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->syncer, NULL);
        pthread_join(j->shipper, NULL);
    }
    /* files shipped entirely go; the others stay for the next start's drain */
    for (segment *s = j->segs, *n; s; s = n) {
        n = s->next;
        if (s->shipped == s->ready) forget(j, s->id, s->path);
        segment_free(s);
    }
    if (j->spare) {
        unlink(j->spare->path);
        segment_free(j->spare);
    }
    free(j->pend);
    ZSTD_freeCCtx(j->zctx);
    free(j->zbuf);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->work);
    pthread_cond_destroy(&j->ship);
    pthread_cond_destroy(&j->shipped);
    free(j);
}
