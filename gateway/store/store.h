/*
 * store.h — resources in Redis (capability C4): current versions, history,
 * search-index entries and the outbox, written together in one atomic step.
 *
 * The store knows nothing of FHIR rules: the REST layer decides versions,
 * bodies (with meta.versionId and meta.lastUpdated already set), the index
 * entries (search module) and the patient compartment; the store writes them
 * all or nothing and reads them back.
 *
 * ## Key layout (the one place it is written down)
 *
 *   tsg:r:<Type>/<id>      HASH  v    current version (1, 2, …; kept after delete)
 *                                lu   lastUpdated, ms since the epoch
 *                                del  "1" when the current version is a deletion
 *                                body the current version as compact FHIR JSON
 *                                     (absent when deleted)
 *                                c    the patient compartment ("" none; kept
 *                                     when the resource is deleted)
 *                                x    the index entries of the current version
 *                                     (absent when deleted), packed (see "Packed
 *                                     entries" below), so the next write removes
 *                                     exactly those
 *   tsg:h:<Type>/<id>      HASH  <version> → "<lu>\n<body>" (body empty for a
 *                                deletion): every version but a live current
 *                                one, whose body is only in tsg:r (each body is
 *                                written once; an update moves the old one here)
 *   tsg:t:<Type>           ZSET  live ids of a type, score = lu (ms)
 *   tsg:hist:<Type>        ZSET  "<id>/<version>", score = lu: type history
 *   tsg:hist               ZSET  "<Type>/<id>/<version>", score = lu: system history
 *   tsg:{<pid>}:comp       SET   "<Type>/<id>" of the live resources in patient
 *                                <pid>'s compartment (Patient/<pid> itself too)
 *   tsg:format             STRING the data format (STORE_FORMAT), set on first start
 *   tsg:outbox             STREAM one event per write: i (interaction), t (type),
 *                                id, v (version), p (compartment patient id or
 *                                ""), ts (ms). Routing and subscriptions consume
 *                                it with consumer groups (later issues); it is
 *                                never trimmed by the store.
 *   <stream>               STREAM an entry the caller hands store_commit_with(),
 *                                written in the same MULTI … EXEC as the write set
 *                                (the audit trail's tsg:audit, gateway/auth/auth.h,
 *                                "Audit")
 *   tsg:ix:…               index keys, named by the caller (store_index_entry):
 *                                SETs of ids, ZSETs scored by value, and ZSETs of
 *                                lexically ordered members (score 0)
 *
 * ## Packed entries (field x)
 *
 * A resource's index entries are one string rather than a LIST of kind, key,
 * member triples: Redis then parses, copies and logs one argument per resource
 * instead of three per entry (about 60 for a Synthea Observation). The string
 * is "\1" and then, per entry,
 *
 *     <key suffix> "\1" <kind> <how> <rest> "\1"
 *
 * where the key is "tsg:ix:<Type>:" + suffix (every index key of a resource
 * has that prefix) and the member is, by <how>: '=' the resource id (rest
 * empty); '<' the id + rest (SCORE/GEO members "<id>\0<n>"); '>' rest + the
 * id (LEX/LIST members "<text>\0<id>"); '.' rest itself. Leaving out what the
 * key and id already say keeps the field (and the AOF) about a third of the
 * naive size. A suffix starts with a search parameter code ([a-z0-9_-]) and a
 * kind-and-how field with a kind letter and one of "=<>.", so no suffix field
 * looks like a member field: "\1<suffix>\1" finds an entry on a key with
 * one plain string search and "\1<suffix prefix>" an entry whose key starts
 * with it (what search scans for :missing, :text and `system|`). Keys and
 * members never hold "\1": FHIR strings refuse C0 controls (store_commit
 * checks). store_entries_next() walks the string in C; Lua does the same with
 * string.find(x, "\1", p, true).
 *
 * ## Atomicity and concurrency
 *
 * store_commit() writes a whole write set — one resource or a whole
 * transaction Bundle — as one MULTI … EXEC. Writes that depend on the current
 * state (updates, deletes, creates with a client-chosen id, conditional
 * creates' claims) first WATCH their keys and read them: if a resource is not
 * at the version the caller read (optimistic concurrency) or a claim is
 * taken, nothing is written and the caller learns which write; if a watched
 * key changes before EXEC, EXEC does nothing and the store reads again. A
 * create with an id the gateway just drew (store_write.fresh: 122 random bits)
 * is not checked, so a Bundle of creates is one round trip. Redis runs a
 * MULTI … EXEC alone and logs it to the AOF as one block; with
 * `appendfsync always` the reply comes after the block is on disk, and a block
 * cut short by a crash is dropped when the AOF is loaded, so a write is either
 * entirely durable or absent, even across kill -9 of the gateway or of Redis.
 * Concurrent conflicting writers: exactly one wins, the others see a version
 * conflict (the REST layer answers 409/412 or retries). No Lua for writes: a
 * script would copy every argument into Lua and back, which cost Redis more
 * than the writes themselves (80–90 against about 50 µs per resource on the
 * Synthea ingest). A write set may carry one stream entry (store_commit_with:
 * the audit record of the request), one XADD more in the same block.
 *
 * Redis Cluster: the patient-compartment set carries the patient id as a hash
 * tag; the other keys do not yet. A write set's MULTI spans many keys, which a
 * single server allows; on a cluster, the resource keys would need the
 * compartment tag and a directory to find it from Type/id (not built).
 *
 * Thread safety: one store is shared by all threads; each call uses the
 * calling thread's Redis connection.
 */
#ifndef TSG_STORE_H
#define TSG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../util/util.h"

typedef struct store store;
typedef struct redis_client redis_client;

/* Named limits of the store. */
#define STORE_LIMIT_WRITES       10000u  /* resources in one store_commit() */
#define STORE_LIMIT_ID           64u     /* FHIR id: [A-Za-z0-9-.]{1,64} */
#define STORE_LIMIT_HISTORY      1000u   /* entries returned by one history call */
#define STORE_LIMIT_HISTORY_SCAN 100000u /* entries a filtered history looks through */

/*
 * Creates a store over a Redis client (not owned; it must outlive the store).
 * Returns TSG_OK and *out (free with store_free) or TSG_ENOMEM.
 */
tsg_rc store_new(redis_client *client, store **out, tsg_error *err);

/* Frees the store (not the client). NULL is ignored. */
void store_free(store *s);

/* The client the store uses (for readiness checks and metrics). */
redis_client *store_client(store *s);

/*
 * The data format this build writes (tsg:format). Version 2: MULTI/EXEC
 * writes with packed entry fields and per-parameter system directories (the
 * first format kept LISTs tsg:x:* and c:<code> sets, and had no tsg:format).
 */
#define STORE_FORMAT "2"

/*
 * Checks that Redis holds data of STORE_FORMAT, or no tsunagu data at all (then
 * records the format). TSG_EINVAL with a message naming both formats when
 * the data was written by another format (there is no migration yet: reload
 * the data into an empty database); TSG_EIO when Redis does not answer.
 */
tsg_rc store_format_check(store *s, tsg_error *err);

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

/* A stored version. body is malloc'd (the caller frees it) or NULL. */
typedef struct store_resource {
    int found;       /* the resource (or that version) exists, deleted or not */
    int deleted;     /* that version is a deletion (body NULL) */
    long version;    /* its version */
    long long lu_ms; /* its lastUpdated */
    char *body;      /* compact FHIR JSON */
    size_t body_len;
    char compartment[STORE_LIMIT_ID + 1]; /* current: the patient compartment or "" */
} store_resource;

/* Releases r->body and clears r. */
void store_resource_clear(store_resource *r);

/*
 * Reads Type/id: the current version (version 0) or that version (vread).
 * TSG_OK with r->found 0 when there is no such resource or version; TSG_EIO
 * when Redis fails (unreachable: the caller answers 503); TSG_ENOMEM.
 */
tsg_rc store_read(store *s, const char *type, const char *id, long version, store_resource *r,
                  tsg_error *err);

/*
 * Reads the current versions of n resources ("Type/id" each) in one round
 * trip into r[0..n) (clear each with store_resource_clear). Fails as
 * store_read.
 */
tsg_rc store_read_many(store *s, size_t n, const char *const *refs, store_resource *r,
                       tsg_error *err);

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

/* An index entry: added to `key` (a SET or a ZSET) as `member`. */
typedef enum store_index_kind {
    STORE_IX_SET = 's',   /* SADD key member */
    STORE_IX_SCORE = 'z', /* ZADD key score member */
    STORE_IX_LEX = 'l',   /* ZADD key 0 member (ZRANGEBYLEX) */
    STORE_IX_GEO = 'g',   /* GEOADD key longitude latitude member (GEOSEARCH) */
    STORE_IX_DIR = 'd',   /* SADD key member, not kept in the entry list and never removed:
                             a directory of values seen (a token parameter's code systems) */
    STORE_IX_LIST = 'n'   /* no index key: kept in the resource's entry list only, for
                             rare queries that scan the lists (token :text) */
} store_index_kind;

typedef struct store_index_entry {
    store_index_kind kind;
    const char *key;
    size_t key_len;
    const char *member;
    size_t member_len;
    double score;  /* STORE_IX_SCORE: the score; STORE_IX_GEO: the longitude */
    double score2; /* STORE_IX_GEO: the latitude (within ±85.05112878) */
} store_index_entry;

/* The separator of the packed entry field x (see "Packed entries"). */
#define STORE_X_SEP '\1'

/* One entry of a packed field x, pointing into it. */
typedef struct store_x_entry {
    store_index_kind kind;
    const char *suffix; /* the key after "tsg:ix:<Type>:" */
    size_t suffix_len;
    char how; /* '=', '<', '>' or '.' (see "Packed entries") */
    const char *rest;
    size_t rest_len;
} store_x_entry;

/*
 * Walks the packed entry field x[0..n) of a resource: from *pos (0 at the
 * start) fills *e with the next entry and advances *pos. Returns 1 for an
 * entry, 0 at the end or on a malformed field (which stops the walk).
 */
int store_entries_next(const char *x, size_t n, size_t *pos, store_x_entry *e);

typedef enum store_op { STORE_PUT, STORE_DELETE } store_op;

/* One resource of a write set. */
typedef struct store_write {
    store_op op;
    const char *type;
    const char *id;
    long expect_version; /* the current version the caller read (0: none) */
    const char *body;    /* STORE_PUT: compact JSON with meta set */
    size_t body_len;
    const char *compartment; /* patient id or NULL */
    const char *interaction; /* outbox: "create", "update", "delete", "patch" */
    const store_index_entry *index;
    size_t nindex;
    /* NULL, or a key this write claims for STORE_CLAIM_MS (SET NX PX) in the
     * same atomic step: a conditional create names its criteria here, so of
     * two concurrent creates with the same criteria one wins and the other
     * sees a conflict (and then finds the winner by searching again). */
    const char *claim;
    /* STORE_PUT whose id rest_new_id() just drew (a random UUID): the store
     * does not read or watch it first (see "Atomicity and concurrency"). */
    int fresh;
    /* NULL, or a counter key INCRed in the same atomic step (the REST layer
     * counts writes that change who may see whom: a generation other
     * gateways watch) */
    const char *bump;
} store_write;

#define STORE_CLAIM_MS "10000" /* ms a conditional create's claim holds (SET … PX) */

/*
 * Writes w[0..n) atomically at time now_ms (ms since the epoch): each PUT
 * becomes version expect_version + 1 with lastUpdated now_ms; each DELETE a
 * deletion version (a DELETE of a resource that is absent or already deleted
 * is skipped, FHIR's idempotent delete). Returns:
 *   TSG_OK with *conflict = -1   — everything written;
 *   TSG_OK with *conflict = i    — w[i] is no longer at expect_version (another
 *                                  writer won); nothing was written;
 *   TSG_ELIMIT — n > STORE_LIMIT_WRITES;
 *   TSG_EIO    — Redis failed (unreachable, error); whether the write happened
 *                is unknown only when the connection broke after sending, as
 *                with any lost connection; the caller answers 503;
 *   TSG_ENOMEM.
 */
tsg_rc store_commit(store *s, const store_write *w, size_t n, long long now_ms, int *conflict,
                    tsg_error *err);

/*
 * A stream entry a write set appends inside its MULTI … EXEC: `XADD <stream> *
 * <field> <value> …`. The audit trail (gateway/auth/auth.h, "Audit") gives the
 * record of the request that writes here, so the record and the write are one
 * atomic, durable step (one round trip, one fsync) instead of two.
 */
typedef struct store_append {
    const char *stream;
    size_t nargs;            /* field, value, field, value, … (even) */
    const char *const *args; /* the fields and values */
    const size_t *lens;      /* their lengths */
} store_append;

/*
 * store_commit() with rec (NULL: none) appended to the stream it names in the
 * same MULTI … EXEC, after the writes; it is written exactly when they are
 * (TSG_OK with *conflict -1), and not at all when the write set conflicts, is
 * empty (n 0) or EXEC is aborted. One limit of Redis' transactions: an XADD that fails while
 * EXEC runs (the key is not a stream, which only tampering makes happen) does
 * not undo the writes; the call then fails with TSG_EIO like any error reply.
 */
tsg_rc store_commit_with(store *s, const store_write *w, size_t n, long long now_ms,
                         const store_append *rec, int *conflict, tsg_error *err);

/* ------------------------------------------------------------------------
 * History and listing
 * ------------------------------------------------------------------------ */

/* One history entry: "<Type>/<id>/<version>" and its version's data. */
typedef struct store_history_entry {
    char type[64];
    char id[STORE_LIMIT_ID + 1];
    store_resource res;
} store_history_entry;

/* Which entries a type or system history shows (access control): visible()
 * gets each entry's type and its resource's compartment c (""), 1 keeps it. */
typedef struct store_history_filter {
    int (*visible)(void *user_data, const char *type, const char *compartment);
    void *user_data;
} store_history_filter;

/*
 * History, newest first: of one resource (type and id set), of a type (id
 * NULL) or of the system (both NULL); entries with lastUpdated ≥ since_ms
 * (LLONG_MIN: all), at most max (≤ STORE_LIMIT_HISTORY) starting at offset.
 * *out is malloc'd (free each entry's body with store_resource_clear, then the
 * array); *total is how many entries match. With a filter f (type or system
 * history only), the entries it refuses are left out before paging and
 * counting; that looks at every entry since since_ms, at most
 * STORE_LIMIT_HISTORY_SCAN (more: TSG_ELIMIT, narrow with _since). Fails as
 * store_read.
 */
tsg_rc store_history(store *s, const char *type, const char *id, long long since_ms, size_t offset,
                     size_t max, const store_history_filter *f, store_history_entry **out,
                     size_t *n, size_t *total, tsg_error *err);

#endif
