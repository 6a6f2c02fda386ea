/*
 * auth_audit.c — the audit trail (auth.h, "Audit"): one record per request
 * in the Redis stream tsg:audit, durable before the answer leaves — a write's
 * inside its own MULTI … EXEC (auth_audit_entry), every other request's by
 * its own XADD (auth_audit_record) — rendered as R4 AuditEvent resources for
 * GET /fhir/AuditEvent.
 */
#include "auth.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../search/search.h"
#include "../store/redis.h"
#include "../store/store.h"

#define AUDIT_KEY       "tsg:audit"
#define AUDIT_TRIM_MS   60000 /* how often old records are trimmed */
#define AUDIT_FIELDS    11    /* field/value pairs of one record */
#define AUDIT_ARGS      (3 + 2 * AUDIT_FIELDS)
#define AUDIT_FIELD_MAX 2048u /* longer texts (a query) are cut, with "…" */

/* One record as its XADD (argv[3..] are the field/value pairs). */
typedef struct audit_item {
    int argc;
    const char *argv[AUDIT_ARGS];
    size_t argvlen[AUDIT_ARGS];
    char status[16];
} audit_item;

struct auth_audit {
    redis_client *rc;
    long long retention_ms;
    _Atomic long long last_trim_ms; /* one request a minute trims old records */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Adds field name = value (cut at AUDIT_FIELD_MAX) to the item. */
static void put(audit_item *it, const char *name, const char *value)
{
    if (!value) value = "";
    size_t n = strlen(value);
    if (n > AUDIT_FIELD_MAX) n = AUDIT_FIELD_MAX;
    it->argv[it->argc] = name;
    it->argvlen[it->argc++] = strlen(name);
    it->argv[it->argc] = value;
    it->argvlen[it->argc++] = n;
}

/* Builds the XADD of e into it (its strings point into e and it). */
static void item_build(const auth_audit_event *e, audit_item *it)
{
    it->argc = 0;
    snprintf(it->status, sizeof it->status, "%d", e->status);
    it->argv[it->argc] = "XADD";
    it->argvlen[it->argc++] = 4;
    it->argv[it->argc] = AUDIT_KEY;
    it->argvlen[it->argc++] = strlen(AUDIT_KEY);
    it->argv[it->argc] = "*";
    it->argvlen[it->argc++] = 1;
    put(it, "i", e->interaction);
    put(it, "m", e->method);
    put(it, "p", e->path);
    put(it, "q", e->query);
    put(it, "s", it->status);
    put(it, "c", e->client);
    put(it, "o", e->org);
    put(it, "a", e->addr);
    put(it, "e", e->entity);
    put(it, "v", e->version);
    put(it, "d", e->detail);
}

bool auth_audit_entry(const auth_audit_event *e, tsg_arena *arena, store_append *out)
{
    audit_item *it = tsg_arena_alloc(arena, sizeof *it);
    if (!it) return false;
    item_build(e, it);
    *out = (store_append){.stream = AUDIT_KEY,
                          .nargs = (size_t)it->argc - 3,
                          .args = it->argv + 3,
                          .lens = it->argvlen + 3};
    return true;
}

tsg_rc auth_audit_new(redis_client *c, unsigned retention_days, auth_audit **out, tsg_error *err)
{
    *out = NULL;
    auth_audit *a = calloc(1, sizeof *a);
    if (!a) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    a->rc = c;
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
    audit_item it;
    item_build(e, &it);
    /* Each request writes its own record on its thread's connection and waits
     * for the reply. Redis appends every command of one event-loop turn to the
     * AOF and, with appendfsync always, fsyncs them together before it replies:
     * the group commit happens there, across threads and gateways (auth.h,
     * "Audit", for what a writer thread batching records measured). */
    redisReply *r = NULL;
    tsg_rc rc = redis_command_argv(a->rc, it.argc, it.argv, it.argvlen, &r, err);
    bool ok = rc == TSG_OK && r && r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (!ok) {
        if (rc == TSG_OK) tsg_error_set(err, TSG_EIO, "exception", "audit: XADD answered oddly");
        return TSG_EIO;
    }
    return TSG_OK;
}

void auth_audit_trim(auth_audit *a)
{
    if (a->retention_ms <= 0) return;
    long long now = now_ms();
    long long last = atomic_load_explicit(&a->last_trim_ms, memory_order_relaxed);
    if (now - last <= AUDIT_TRIM_MS ||
        !atomic_compare_exchange_strong(&a->last_trim_ms, &last, now))
        return;
    char minid[40];
    snprintf(minid, sizeof minid, "%lld-0", now - a->retention_ms);
    const char *trim[] = {"XTRIM", AUDIT_KEY, "MINID", "~", minid};
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

/* The instant of a stream id ("<ms>-<seq>") as a FHIR instant (UTC). */
static void id_instant(const char *id, char out[64])
{
    long long ms = strtoll(id, NULL, 10);
    if (ms < 0) ms = 0;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[48];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 64, "%s.%03dZ", day, (int)(ms % 1000));
}

/* Renders one stream entry (id, fields) as an R4 AuditEvent (new reference). */
static json_t *render(const char *id, const redisReply *f)
{
    const char *i = field(f, "i"), *m = field(f, "m"), *c = field(f, "c"), *o = field(f, "o");
    const char *e = field(f, "e"), *q = field(f, "q"), *a = field(f, "a"), *d = field(f, "d");
    const char *p = field(f, "p"), *v = field(f, "v");
    long status = strtol(field(f, "s"), NULL, 10);
    bool login = !strcmp(i, "token");
    char recorded[64], desc[600];
    id_instant(id, recorded);
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
    size_t want = q->count ? q->count : 100;
    char start[48], end[64];
    snprintf(start, sizeof start, "%lld-0", lo < 0 ? 0 : lo);
    if (q->before && *q->before) {
        if (strlen(q->before) > 40 || strspn(q->before, "0123456789-") != strlen(q->before) ||
            q->before[0] == '-') {
            tsg_error_set(err, TSG_EINVAL, "invalid", "_before must be an AuditEvent id");
            return 400;
        }
        snprintf(end, sizeof end, "(%s", q->before);
    } else {
        snprintf(end, sizeof end, "%lld-18446744073709551615", hi < 0 ? 0 : hi);
    }
    if (q->id) {
        /* an id is a stream id: look at that one record only */
        if (!*q->id || strlen(q->id) > 40 || strspn(q->id, "0123456789-") != strlen(q->id) ||
            q->id[0] == '-') {
            json_t *empty =
                json_pack("{s:s,s:s,s:[]}", "resourceType", "Bundle", "type", "searchset", "entry");
            *out = json_dumps(empty, JSON_COMPACT);
            json_decref(empty);
            return *out ? 200 : 500;
        }
        snprintf(start, sizeof start, "%s", q->id);
        snprintf(end, sizeof end, "%s", q->id);
    }
    json_t *entries = json_array();
    size_t scanned = 0;
    char last[64] = "", next[64] = "";
    for (;;) {
        redisReply *r = NULL;
        const char *argv[] = {"XREVRANGE", AUDIT_KEY, end, start, "COUNT", "256"};
        if (hi < lo) break;
        if (redis_command_argv(a->rc, 6, argv, NULL, &r, err)) {
            freeReplyObject(r);
            json_decref(entries);
            return 503;
        }
        size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        bool full = false;
        for (size_t k = 0; k < n && !full; k++) {
            redisReply *ent = r->element[k];
            if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
                ent->element[0]->type != REDIS_REPLY_STRING)
                continue;
            const char *id = ent->element[0]->str;
            const redisReply *f = ent->element[1];
            scanned++;
            snprintf(last, sizeof last, "%s", id);
            if (q->id && strcmp(q->id, id)) continue;
            if (q->agent && strcmp(q->agent, field(f, "c")) && strcmp(q->agent, field(f, "o")))
                continue;
            if (q->entity && strcmp(q->entity, field(f, "e"))) continue;
            if (q->subtype && strcmp(q->subtype, field(f, "i"))) continue;
            if (q->outcome) {
                long st = strtol(field(f, "s"), NULL, 10);
                if (strcmp(q->outcome, st < 400 ? "0" : st < 500 ? "4" : "8")) continue;
            }
            if (json_array_size(entries) == want) {
                /* one match more: there is a next page, after the last one kept */
                json_t *lastent = json_array_get(entries, want - 1);
                snprintf(
                    next, sizeof next, "%s",
                    json_string_value(json_object_get(json_object_get(lastent, "resource"), "id")));
                full = true;
                break;
            }
            json_array_append_new(entries, json_pack("{s:o,s:{s:s}}", "resource", render(id, f),
                                                     "search", "mode", "match"));
        }
        freeReplyObject(r);
        if (full || n < 256) break;
        if (scanned >= AUTH_AUDIT_SCAN_MAX) {
            /* bounded work per request: the client continues from here */
            snprintf(next, sizeof next, "%s", last);
            break;
        }
        snprintf(end, sizeof end, "(%s", last);
    }
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
