/*
 * auth_audit.c — the audit trail (auth.h, "Audit"): one record per request
 * in the Redis stream tsg:audit, durable before the answer leaves — a write's
 * inside its own MULTI … EXEC (auth_audit_entry), every other request's in
 * the gateway's journal (auth_audit_record → auth_journal.c, which ships them
 * packed) — rendered as R4 AuditEvent resources for GET /fhir/AuditEvent.
 */
#include "auth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "../search/search.h"
#include "../store/redis.h"
#include "../store/store.h"

#define AUDIT_TRIM_MS  60000 /* how often old records are trimmed */
#define AUDIT_FORMAT   1
#define AUDIT_TEXTS    10
#define AUDIT_FLUSH_MS 3000                 /* a search waits this long for the journal's records */
#define SKEW_MS        (5LL * 60 * 1000)    /* entry ids before a date range looked at */
#define LATE_MS        (24LL * 3600 * 1000) /* … and after it */

struct auth_audit {
    redis_client *rc;
    auth_journal *journal;
    long long retention_ms;
    _Atomic long long last_trim_ms; /* one request a minute trims old records */
};

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long now_ms(void)
{
    return now_us() / 1000;
}

/* ------------------------------------------------------------------------
 * Frames
 * ------------------------------------------------------------------------ */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/* The SSE 4.2 instruction computes CRC-32C, 8 bytes per step. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(const unsigned char *p, size_t n)
{
    uint64_t c = 0xFFFFFFFFu;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32 ^ 0xFFFFFFFFu;
}
static int crc_hw;
#endif

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1; /* CRC-32C */
        crc_table[i] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc32c(const unsigned char *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
    if (crc_hw) return crc32c_hw(p, n);
#endif
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put_u16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static unsigned get_u16(const unsigned char *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

size_t auth_audit_frame(const auth_audit_event *e, long long recorded_us, unsigned char *out,
                        size_t cap)
{
    const char *t[AUDIT_TEXTS] = {e->interaction, e->method, e->path,   e->query,   e->client,
                                  e->org,         e->addr,   e->entity, e->version, e->detail};
    size_t len[AUDIT_TEXTS], n = 8 + 1 + 8 + 2;
    for (int i = 0; i < AUDIT_TEXTS; i++) {
        len[i] = t[i] ? strlen(t[i]) : 0;
        if (len[i] > AUTH_AUDIT_FIELD_MAX) len[i] = AUTH_AUDIT_FIELD_MAX;
        n += 2 + len[i];
    }
    if (n > cap) return 0;
    unsigned char *p = out + 8;
    *p++ = AUDIT_FORMAT;
    uint64_t us = (uint64_t)recorded_us;
    for (int i = 0; i < 8; i++) *p++ = (unsigned char)(us >> (8 * i));
    int st = e->status < 0 ? 0 : e->status > 65535 ? 65535 : e->status;
    put_u16(p, (unsigned)st);
    p += 2;
    for (int i = 0; i < AUDIT_TEXTS; i++) {
        put_u16(p, (unsigned)len[i]);
        p += 2;
        if (len[i]) memcpy(p, t[i], len[i]);
        p += len[i];
    }
    put_u32(out, (uint32_t)(n - 8));
    put_u32(out + 4, crc32c(out + 8, n - 8));
    return n;
}

/* Parses the frame at p[0..n); fills out when not NULL. */
static size_t frame_parse(const unsigned char *p, size_t n, auth_audit_rec *out)
{
    if (n < 8) return 0;
    size_t len = get_u32(p);
    if (len < 1 + 8 + 2 + 2 * AUDIT_TEXTS || len > AUTH_AUDIT_FRAME_MAX - 8 || len > n - 8)
        return 0;
    const unsigned char *q = p + 8, *end = q + len;
    if (crc32c(q, len) != get_u32(p + 4) || *q != AUDIT_FORMAT) return 0;
    q++;
    uint64_t us = 0;
    for (int i = 0; i < 8; i++) us |= (uint64_t)q[i] << (8 * i);
    q += 8;
    int status = (int)get_u16(q);
    q += 2;
    const char **f[AUDIT_TEXTS];
    char *b = out ? out->buf : NULL;
    if (out) {
        out->e = (auth_audit_event){.status = status};
        int64_t signed_us; /* the i64 written by auth_audit_frame, negative ones too */
        memcpy(&signed_us, &us, sizeof signed_us);
        out->recorded_us = (long long)signed_us;
        const char **fs[AUDIT_TEXTS] = {
            &out->e.interaction, &out->e.method, &out->e.path,   &out->e.query,   &out->e.client,
            &out->e.org,         &out->e.addr,   &out->e.entity, &out->e.version, &out->e.detail};
        memcpy(f, fs, sizeof f);
    }
    for (int i = 0; i < AUDIT_TEXTS; i++) {
        if (end - q < 2) return 0;
        size_t l = get_u16(q);
        q += 2;
        /* (texts are C strings: a NUL byte inside one is a damaged frame) */
        if (l > AUTH_AUDIT_FIELD_MAX || (size_t)(end - q) < l || memchr(q, 0, l)) return 0;
        if (out) {
            memcpy(b, q, l);
            b[l] = '\0';
            *f[i] = b;
            b += l + 1;
        }
        q += l;
    }
    if (q != end) return 0;
    return 8 + len;
}

size_t auth_audit_frame_check(const unsigned char *p, size_t n)
{
    return frame_parse(p, n, NULL);
}

size_t auth_audit_frame_decode(const unsigned char *p, size_t n, auth_audit_rec *out)
{
    return frame_parse(p, n, out);
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

bool auth_audit_entry(const auth_audit_event *e, tsg_arena *arena, store_append *out)
{
    unsigned char frame[AUTH_AUDIT_FRAME_MAX];
    size_t n = auth_audit_frame(e, now_us(), frame, sizeof frame);
    const char **args = tsg_arena_alloc(arena, 2 * sizeof *args);
    size_t *lens = tsg_arena_alloc(arena, 2 * sizeof *lens);
    char *copy = n ? tsg_arena_alloc(arena, n) : NULL;
    if (!args || !lens || !copy) return false;
    memcpy(copy, frame, n);
    args[0] = "r";
    lens[0] = 1;
    args[1] = copy;
    lens[1] = n;
    *out = (store_append){.stream = AUTH_AUDIT_KEY, .nargs = 2, .args = args, .lens = lens};
    return true;
}

tsg_rc auth_audit_new(redis_client *c, auth_journal *j, unsigned retention_days, auth_audit **out,
                      tsg_error *err)
{
    *out = NULL;
    auth_audit *a = calloc(1, sizeof *a);
    if (!a) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    a->rc = c;
    a->journal = j;
    a->retention_ms = (long long)retention_days * 86400000LL;
    atomic_store(&a->last_trim_ms, 0);
    *out = a;
    return TSG_OK;
}

void auth_audit_free(auth_audit *a)
{
    free(a);
}

tsg_rc auth_audit_record(auth_audit *a, const auth_audit_event *e, tsg_error *err)
{
    if (!a->journal)
        return tsg_error_set(err, TSG_EINTERNAL, "exception", "audit: no journal to write to");
    unsigned char frame[AUTH_AUDIT_FRAME_MAX];
    size_t n = auth_audit_frame(e, now_us(), frame, sizeof frame);
    return auth_journal_append(a->journal, frame, n, err);
}

void auth_audit_trim(auth_audit *a)
{
    /* the clock is read on a thread's every 256th call only: a request's path
     * stays at one clock_gettime (its record's); and the count is the thread's,
     * so that requests on different cores do not pass one cache line around */
    static _Thread_local unsigned calls;
    if (a->retention_ms <= 0 || calls++ % 256) return;
    long long now = now_ms();
    long long last = atomic_load_explicit(&a->last_trim_ms, memory_order_relaxed);
    if (now - last <= AUDIT_TRIM_MS ||
        !atomic_compare_exchange_strong(&a->last_trim_ms, &last, now))
        return;
    char minid[40];
    snprintf(minid, sizeof minid, "%lld-0", now - a->retention_ms);
    const char *trim[] = {"XTRIM", AUTH_AUDIT_KEY, "MINID", "~", minid};
    tsg_error terr;
    redisReply *r = NULL;
    if (redis_command_argv(a->rc, 5, trim, NULL, &r, &terr) != TSG_OK)
        fprintf(stderr, "tsunagu audit: trimming old records: %s\n", terr.message);
    freeReplyObject(r);
}

/* ------------------------------------------------------------------------
 * AuditEvent (R4)
 * ------------------------------------------------------------------------ */

/* The stream entry's field, "" when absent. */
static const char *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; fields && i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            !strcmp(fields->element[i]->str, name) &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1]->str;
    return "";
}

/* The AuditEvent.action code of an interaction. */
static const char *action_of(const char *i, const char *method)
{
    if (!strcmp(i, "create") || !strcmp(i, "create-conditional")) return "C";
    if (!strcmp(i, "update") || !strcmp(i, "patch")) return "U";
    if (!strcmp(i, "delete")) return "D";
    if (!strcmp(i, "read") || !strcmp(i, "vread") || !strncmp(i, "history", 7)) return "R";
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
        return strncmp(i, "search", 6) ? "R" : "E";
    return "E";
}

/* The recorded time (µs since 1970) as a FHIR instant (UTC, ms). */
static void instant_of(long long us, char out[64])
{
    long long ms = us < 0 ? 0 : us / 1000;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[48];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 64, "%s.%03dZ", day, (int)(ms % 1000));
}

/* Renders one record as an R4 AuditEvent with the given id (new reference). */
static json_t *render(const char *id, const auth_audit_rec *r)
{
    const char *i = r->e.interaction, *m = r->e.method, *c = r->e.client, *o = r->e.org;
    const char *e = r->e.entity, *q = r->e.query, *a = r->e.addr, *d = r->e.detail;
    const char *p = r->e.path, *v = r->e.version;
    long status = r->e.status;
    bool login = !strcmp(i, "token");
    char recorded[64], desc[600];
    instant_of(r->recorded_us, recorded);
    snprintf(desc, sizeof desc, "%s %s%s%s -> HTTP %ld%s%s", m, p, q[0] ? "?" : "", q, status,
             d[0] ? ": " : "", d);
    json_t *ev = json_object();
    json_object_set_new(ev, "resourceType", json_string("AuditEvent"));
    json_object_set_new(ev, "id", json_string(id));
    if (login) {
        json_object_set_new(ev, "type",
                            json_pack("{s:s,s:s,s:s}", "system",
                                      "http://dicom.nema.org/resources/ontology/DCM", "code",
                                      "110114", "display", "User Authentication"));
        json_object_set_new(ev, "subtype",
                            json_pack("[{s:s,s:s,s:s}]", "system",
                                      "http://dicom.nema.org/resources/ontology/DCM", "code",
                                      "110122", "display", "Login"));
    } else {
        json_object_set_new(ev, "type",
                            json_pack("{s:s,s:s,s:s}", "system",
                                      "http://terminology.hl7.org/CodeSystem/audit-event-type",
                                      "code", "rest", "display", "RESTful Operation"));
        if (i[0])
            json_object_set_new(ev, "subtype",
                                json_pack("[{s:s,s:s}]", "system",
                                          "http://hl7.org/fhir/restful-interaction", "code", i));
    }
    json_object_set_new(ev, "action", json_string(login ? "E" : action_of(i, m)));
    json_object_set_new(ev, "recorded", json_string(recorded));
    json_object_set_new(ev, "outcome", json_string(status < 400 ? "0" : status < 500 ? "4" : "8"));
    json_object_set_new(ev, "outcomeDesc", json_string(desc));
    json_t *agents = json_array();
    json_t *client = json_object();
    if (c[0])
        json_object_set_new(
            client, "who",
            json_pack("{s:{s:s,s:s}}", "identifier", "system", "urn:tsunagu:client", "value", c));
    else
        json_object_set_new(client, "name", json_string("unauthenticated caller"));
    json_object_set_new(client, "requestor", json_true());
    if (a[0])
        json_object_set_new(client, "network", json_pack("{s:s,s:s}", "address", a, "type", "2"));
    json_array_append_new(agents, client);
    if (o[0])
        json_array_append_new(agents,
                              json_pack("{s:{s:s},s:b}", "who", "reference", o, "requestor", 0));
    json_object_set_new(ev, "agent", agents);
    json_object_set_new(ev, "source",
                        json_pack("{s:{s:s},s:[{s:s,s:s,s:s}]}", "observer", "display",
                                  "tsunagu gateway", "type", "system",
                                  "http://terminology.hl7.org/CodeSystem/security-source-type",
                                  "code", "4", "display", "Application Server"));
    if (e[0] || q[0]) {
        json_t *ent = json_object();
        if (e[0] && v[0]) { /* a write's record names the version it wrote */
            char ref[400];
            snprintf(ref, sizeof ref, "%s/_history/%s", e, v);
            json_object_set_new(ent, "what", json_pack("{s:s}", "reference", ref));
        } else if (e[0]) {
            json_object_set_new(ent, "what", json_pack("{s:s}", "reference", e));
        }
        if (q[0]) {
            size_t ql = strlen(q);
            char *b = malloc(ql / 3 * 4 + 8);
            if (b) {
                /* entity.query is base64Binary: standard alphabet with padding */
                static const char T[] =
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                size_t o2 = 0, k = 0;
                for (; k + 3 <= ql; k += 3) {
                    unsigned v = (unsigned char)q[k] << 16 | (unsigned char)q[k + 1] << 8 |
                                 (unsigned char)q[k + 2];
                    b[o2++] = T[v >> 18], b[o2++] = T[(v >> 12) & 63];
                    b[o2++] = T[(v >> 6) & 63], b[o2++] = T[v & 63];
                }
                if (ql - k) {
                    unsigned v = (unsigned char)q[k] << 16 |
                                 (ql - k == 2 ? (unsigned char)q[k + 1] << 8 : 0);
                    b[o2++] = T[v >> 18], b[o2++] = T[(v >> 12) & 63];
                    b[o2++] = ql - k == 2 ? T[(v >> 6) & 63] : '=';
                    b[o2++] = '=';
                }
                b[o2] = '\0';
                json_object_set_new(ent, "query", json_string(b));
                free(b);
            }
        }
        json_object_set_new(ev, "entity", json_pack("[o]", ent));
    }
    return ev;
}

/* ------------------------------------------------------------------------
 * Search
 * ------------------------------------------------------------------------ */

/* Parses a date parameter value (prefix + FHIR date/instant) into the range
 * of ids it allows: [*lo, *hi] in ms. false when malformed. */
static bool date_bound(const char *v, long long *lo, long long *hi)
{
    const char *pre = "eq";
    if (strlen(v) > 2 && v[0] >= 'a' && v[0] <= 'z' && v[1] >= 'a' && v[1] <= 'z') {
        static const char *const ok[] = {"eq", "ge", "gt", "le", "lt", "sa", "eb"};
        bool known = false;
        for (size_t i = 0; i < 7; i++) known |= !strncmp(v, ok[i], 2);
        if (!known) return false;
        pre = v;
        v += 2;
    }
    int64_t l, h;
    if (search_date_range(v, strlen(v), &l, &h)) return false;
    if (!strncmp(pre, "ge", 2) || !strncmp(pre, "sa", 2)) *lo = l > *lo ? l : *lo;
    if (!strncmp(pre, "gt", 2)) *lo = h + 1 > *lo ? h + 1 : *lo;
    if (!strncmp(pre, "le", 2) || !strncmp(pre, "eb", 2)) *hi = h < *hi ? h : *hi;
    if (!strncmp(pre, "lt", 2)) *hi = l - 1 < *hi ? l - 1 : *hi;
    if (!strncmp(pre, "eq", 2)) {
        *lo = l > *lo ? l : *lo;
        *hi = h < *hi ? h : *hi;
    }
    return true;
}

tsg_rc auth_audit_batch_unpack(const void *z, size_t n, unsigned char **out, size_t *len,
                               tsg_error *err)
{
    *out = NULL;
    *len = 0;
    /* the size comes from the frame's header: a frame that hides it, or claims
     * more than a shipment can hold, is refused before anything is allocated */
    unsigned long long want = ZSTD_getFrameContentSize(z, n);
    if (want == ZSTD_CONTENTSIZE_UNKNOWN || want == ZSTD_CONTENTSIZE_ERROR ||
        want > AUTH_AUDIT_BATCH_MAX)
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "not a zstd frame declaring at most %u bytes", AUTH_AUDIT_BATCH_MAX);
    size_t whole = ZSTD_findFrameCompressedSize(z, n);
    if (ZSTD_isError(whole) || whole != n)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "not exactly one zstd frame");
    unsigned char *buf = malloc(want ? (size_t)want : 1);
    if (!buf) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    size_t got = ZSTD_decompress(buf, (size_t)want, z, n);
    if (ZSTD_isError(got) || got != want) {
        free(buf);
        return tsg_error_set(err, TSG_EINVAL, "invalid", "damaged zstd frame (%s)",
                             ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
    }
    *out = buf;
    *len = got;
    return TSG_OK;
}

/* The records of one stream entry (entry_frames). */
typedef struct entry_blob {
    const unsigned char *p; /* the frames; NULL: an entry of the format before
                               the journal, one record as fields */
    size_t len;
    unsigned char *owned; /* p when unpacked from a z field (free it) */
} entry_blob;

/* The records of one stream entry: *b its frames (its r field, or its z
 * field unpacked) and offs[0..*n) where they start (malloc'd; oldest first).
 * false when out of memory; damaged frames end the list, and a z field that
 * does not unpack holds none (reported on stderr: only tampering damages
 * them). */
static bool entry_frames(const char *id, const redisReply *f, entry_blob *b, size_t **offs,
                         size_t *n)
{
    *b = (entry_blob){0};
    *offs = NULL;
    *n = 0;
    const redisReply *r = NULL, *z = NULL;
    for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        if (!strcmp(k->str, "r")) r = v;
        if (!strcmp(k->str, "z")) z = v;
    }
    if (z) {
        tsg_error err;
        size_t len;
        tsg_rc rc = auth_audit_batch_unpack(z->str, z->len, &b->owned, &len, &err);
        if (rc == TSG_ENOMEM) return false;
        if (rc != TSG_OK) {
            fprintf(stderr, "tsunagu audit: entry %s of %s: its records do not unpack: %s\n", id,
                    AUTH_AUDIT_KEY, err.message);
            b->p = (const unsigned char *)"";
            return true;
        }
        b->p = b->owned;
        b->len = len;
    } else if (r) {
        b->p = (const unsigned char *)r->str;
        b->len = r->len;
    } else {
        *n = 1;
        return true;
    }
    const unsigned char *p = b->p;
    size_t len = b->len, off = 0, cap = 0;
    while (off < len) {
        size_t k = auth_audit_frame_check(p + off, len - off);
        if (!k) {
            fprintf(stderr,
                    "tsunagu audit: entry %s of %s: %zu bytes after record %zu are not "
                    "a record (damaged)\n",
                    id, AUTH_AUDIT_KEY, len - off, *n);
            break;
        }
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            size_t *g = realloc(*offs, nc * sizeof **offs);
            if (!g) {
                free(*offs);
                *offs = NULL;
                free(b->owned);
                b->owned = NULL;
                return false;
            }
            *offs = g;
            cap = nc;
        }
        (*offs)[(*n)++] = off;
        off += k;
    }
    return true;
}

/* Record k of an entry (entry_frames) decoded into *r. */
static void entry_record(const char *id, const redisReply *f, const entry_blob *b,
                         const size_t *offs, size_t k, auth_audit_rec *r)
{
    if (!b->p) {
        /* fields i, m, p, q, s, c, o, a, e, v, d; recorded = the entry id */
        r->e = (auth_audit_event){.interaction = field(f, "i"),
                                  .method = field(f, "m"),
                                  .path = field(f, "p"),
                                  .query = field(f, "q"),
                                  .client = field(f, "c"),
                                  .org = field(f, "o"),
                                  .addr = field(f, "a"),
                                  .entity = field(f, "e"),
                                  .version = field(f, "v"),
                                  .detail = field(f, "d"),
                                  .status = (int)strtol(field(f, "s"), NULL, 10)};
        r->recorded_us = strtoll(id, NULL, 10) * 1000;
        return;
    }
    auth_audit_frame_decode(b->p + offs[k], b->len - offs[k], r);
}

/* Splits an AuditEvent id "<ms>-<seq>-<k>" into the entry id and k. */
static bool split_id(const char *id, char entry[48], size_t *k)
{
    size_t l = strlen(id);
    const char *dash = strrchr(id, '-');
    if (!l || l > 46 || strspn(id, "0123456789-") != l || id[0] == '-' || !dash || dash == id ||
        !dash[1] || !memchr(id, '-', (size_t)(dash - id)))
        return false;
    memcpy(entry, id, (size_t)(dash - id));
    entry[dash - id] = '\0';
    char *end;
    unsigned long v = strtoul(dash + 1, &end, 10);
    if (*end || v > 1000000) return false;
    *k = v;
    return true;
}

int auth_audit_search(auth_audit *a, const auth_audit_query *q, const char *next_prefix, char **out,
                      tsg_error *err)
{
    *out = NULL;
    long long lo = 0, hi = 9000000000000000LL;
    for (size_t i = 0; i < q->n_dates; i++)
        if (!date_bound(q->dates[i], &lo, &hi)) {
            tsg_error_set(err, TSG_EINVAL, "invalid",
                          "date=%.100s is not a FHIR date with an optional prefix (eq, ge, gt, "
                          "le, lt, sa, eb)",
                          q->dates[i]);
            snprintf(err->location, sizeof err->location, "%s", "date");
            return 400;
        }
    /* the records this gateway answered before the search are in Redis first */
    if (a->journal && auth_journal_flush(a->journal, AUDIT_FLUSH_MS, err) != TSG_OK) return 503;
    size_t want = q->count ? q->count : 100;
    char start[48], end[64], first[48] = "";
    size_t first_below = 0; /* in entry `first`, only records before this index */
    long long from = lo - SKEW_MS, to = hi > 9000000000000000LL - LATE_MS ? hi : hi + LATE_MS;
    snprintf(start, sizeof start, "%lld-0", from < 0 ? 0 : from);
    snprintf(end, sizeof end, "%lld-18446744073709551615", to < 0 ? 0 : to);
    if (q->before && *q->before) {
        if (!split_id(q->before, first, &first_below)) {
            tsg_error_set(err, TSG_EINVAL, "invalid", "_before must be an AuditEvent id");
            return 400;
        }
        snprintf(end, sizeof end, "%s", first);
    }
    size_t only = 0; /* with _id: that record of entry `start` */
    if (q->id) {
        char eid[48];
        if (!split_id(q->id, eid, &only)) {
            json_t *empty =
                json_pack("{s:s,s:s,s:[]}", "resourceType", "Bundle", "type", "searchset", "entry");
            *out = json_dumps(empty, JSON_COMPACT);
            json_decref(empty);
            return *out ? 200 : 500;
        }
        snprintf(start, sizeof start, "%s", eid);
        snprintf(end, sizeof end, "%s", eid);
    }
    auth_audit_rec *rec = malloc(sizeof *rec); /* the record being looked at */
    json_t *entries = json_array();
    if (!rec || !entries) {
        free(rec);
        json_decref(entries);
        tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        return 500;
    }
    size_t scanned = 0;
    char next[64] = "", lastid[64] = "";
    bool done = hi < lo;
    while (!done) {
        redisReply *r = NULL;
        /* (an entry holds up to AUTH_AUDIT_BATCH_MAX of records: a few at a time) */
        const char *argv[] = {"XREVRANGE", AUTH_AUDIT_KEY, end, start, "COUNT", "16"};
        if (redis_command_argv(a->rc, 6, argv, NULL, &r, err)) {
            freeReplyObject(r);
            json_decref(entries);
            free(rec);
            return 503;
        }
        size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (size_t k = 0; k < n && !done; k++) {
            redisReply *ent = r->element[k];
            if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
                ent->element[0]->type != REDIS_REPLY_STRING)
                continue;
            const char *eid = ent->element[0]->str;
            snprintf(lastid, sizeof lastid, "%s", eid);
            entry_blob blob;
            size_t *offs, nrec;
            if (!entry_frames(eid, ent->element[1], &blob, &offs, &nrec)) {
                freeReplyObject(r);
                json_decref(entries);
                free(rec);
                tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
                return 500;
            }
            size_t top = nrec;
            if (first[0] && !strcmp(eid, first)) top = first_below < nrec ? first_below : nrec;
            for (size_t x = top; x-- > 0;) {
                entry_record(eid, ent->element[1], &blob, offs, x, rec);
                char id[64];
                snprintf(id, sizeof id, "%s-%zu", eid, x);
                scanned++;
                if (q->id && x != only) continue;
                long long ms = rec->recorded_us / 1000;
                if (ms < lo || ms > hi) continue;
                if (q->agent && strcmp(q->agent, rec->e.client) && strcmp(q->agent, rec->e.org))
                    continue;
                if (q->entity && strcmp(q->entity, rec->e.entity)) continue;
                if (q->subtype && strcmp(q->subtype, rec->e.interaction)) continue;
                if (q->outcome) {
                    int st = rec->e.status;
                    if (strcmp(q->outcome, st < 400 ? "0" : st < 500 ? "4" : "8")) continue;
                }
                if (json_array_size(entries) == want) {
                    /* one match more: there is a next page, after the last one kept */
                    json_t *lastent = json_array_get(entries, want - 1);
                    snprintf(next, sizeof next, "%s",
                             json_string_value(
                                 json_object_get(json_object_get(lastent, "resource"), "id")));
                    done = true;
                    break;
                }
                json_array_append_new(entries,
                                      json_pack("{s:o,s:{s:s}}", "resource", render(id, rec),
                                                "search", "mode", "match"));
            }
            free(offs);
            free(blob.owned);
            if (!done && scanned >= AUTH_AUDIT_SCAN_MAX) {
                /* bounded work per request: the client continues before this entry */
                snprintf(next, sizeof next, "%s-0", eid);
                done = true;
            }
        }
        freeReplyObject(r);
        if (done || n < 16) break;
        snprintf(end, sizeof end, "(%s", lastid);
    }
    free(rec);
    json_t *bundle = json_pack("{s:s,s:s}", "resourceType", "Bundle", "type", "searchset");
    if (next[0]) {
        size_t ul = strlen(next_prefix) + strlen(next) + 16;
        char *url = malloc(ul);
        if (url) {
            snprintf(url, ul, "%s_before=%s", next_prefix, next);
            json_object_set_new(bundle, "link",
                                json_pack("[{s:s,s:s}]", "relation", "next", "url", url));
            free(url);
        }
    }
    json_object_set_new(bundle, "entry", entries);
    *out = json_dumps(bundle, JSON_COMPACT);
    json_decref(bundle);
    if (!*out) {
        tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
        return 500;
    }
    return 200;
}
