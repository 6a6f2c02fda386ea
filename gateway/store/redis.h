/*
 * redis.h — Redis for the gateway (private to the store module): where Redis is
 * (targets parsed from URLs), the embedded redis-server that `tsunagu serve`
 * runs and supervises when no URL is given, and a client that many threads use
 * at once with one hiredis connection each (DESIGN.md §4.3, §4.4, §6).
 *
 * ## Targets
 *
 *   redis://[[user]:password@]host[:port][/db]     TCP (port 6379 when absent)
 *   unix:///path/to/redis.sock[?db=N&password=P]   Unix socket
 *
 * User and password may be percent-encoded (`%40` for `@`). `rediss://` (TLS)
 * is refused: hiredis 0.14 has no TLS.
 *
 * ## The embedded server
 *
 * redis_embedded_start() runs `redis-server` as a child process with its files
 * in the data directory (TSUNAGU_DATA_DIR, default ./var):
 *
 *   <data_dir>/redis.conf      written on every start (the settings below)
 *   <data_dir>/redis.sock      the Unix socket (mode 0700; no TCP port at all)
 *   <data_dir>/redis.log       redis-server's log, and its stdout/stderr
 *   <data_dir>/appendonlydir/  the AOF (Redis 7 multi-part AOF)
 *   <data_dir>/tsunagu.lock    flock()ed while a gateway owns the directory
 *
 * Durability: `appendonly yes`, `appendfsync always`, `save ""` (no RDB
 * snapshots). `aof-use-rdb-preamble yes` is kept (the Redis default): when the
 * AOF is rewritten its base file is written in RDB encoding, which loads many
 * times faster at restart and is smaller; every write after the rewrite still
 * goes to the plain-text incremental AOF, fsynced before the reply, so
 * durability is the same either way.
 *
 * Leftovers of a crashed gateway: the data directory is locked with flock() on
 * tsunagu.lock for the life of the embedded server (the lock dies with the
 * process, even on kill -9). If the lock is held, another gateway is running on
 * this directory and start fails with a clear message. If we get the lock but a
 * redis-server still answers on redis.sock, it is an orphan of a previous run
 * (the child gets SIGTERM when its parent dies, but a gateway restarted at
 * once may find it still shutting down, and an operator's manual start can
 * leave one); it is sent SHUTDOWN — which fsyncs its AOF — and start goes on
 * once it has exited (or fails clearly after stop_timeout_ms). A socket file
 * with no server behind it is removed.
 *
 * The child runs in its own process group (a Ctrl-C in the terminal reaches
 * only the gateway, which then stops Redis in order), with signals unblocked,
 * descriptors other than 0–2 closed, stdin on /dev/null and stdout/stderr
 * appended to redis.log, and PR_SET_PDEATHSIG(SIGTERM): if the gateway is
 * killed with -9, redis-server shuts down cleanly (SIGTERM makes it fsync the
 * AOF) instead of living on. The supervising thread is the child's parent for
 * that purpose, so the server stays up however the caller's threads come and go.
 *
 * Supervision: a thread waits for the child; when it dies without being asked
 * (kill -9, crash, OOM), it is restarted after a backoff that starts at 100 ms
 * and doubles up to 5 s (back to 100 ms once a run lasted 10 s), each event
 * logged on stderr. The AOF brings the data back. The process must not set
 * SIGCHLD to SIG_IGN (that would reap the child behind the supervisor's back).
 *
 * ## The client
 *
 * A redis_client is shared by every thread (HTTP pool, workers). Each thread
 * gets its own hiredis connection, opened on its first call (connect timeout),
 * with the socket timeout set after every connect (hiredis 0.14 forgets it on
 * redisReconnect, so this client never reuses a context: it opens a new one),
 * then AUTH and SELECT when the target asks for them. Before each command a
 * non-blocking peek (one recv syscall) tells whether the server closed the
 * connection meanwhile (Redis restarted); such a connection is replaced before
 * anything is sent, so a restart between two requests fails neither. The
 * client never resends a command on its own (a lost connection leaves unknown
 * whether it ran); the one exception is EVALSHA after NOSCRIPT, which did not.
 *
 * Failure handling — a request must never hang on Redis:
 *   - a connection that fails (I/O error, timeout, EOF) is dropped; the call
 *     fails with TSG_EIO; the next call opens a new connection;
 *   - a failed connect, or a timeout, opens a backoff window for the whole
 *     client (100 ms doubling to 1 s by default); while it is open every call
 *     on every thread fails at once with TSG_EIO "redis unavailable …"; when
 *     it closes, one call probes (connects) while the others still fail fast,
 *     so a dead TCP peer costs one connect timeout per window, not one per
 *     thread; the probe's success closes the window for everyone;
 *   - an error reply of the server (`-ERR …`, `-WRONGTYPE …`, `-LOADING …`) is
 *     TSG_EIO with the server's message, and the reply is handed to the caller,
 *     so callers tell the two apart by whether they got a reply.
 *
 * Thread safety: every function of a client may be called from any number of
 * threads at once, except redis_client_free().
 *
 * Process-wide effect: redis_client_new() sets SIGPIPE to SIG_IGN when it is
 * still SIG_DFL — hiredis writes with write(), and a server dying between the
 * liveness peek and a write must give EPIPE (an error), not kill the gateway.
 * Host names of redis:// targets are resolved by getaddrinfo, which the
 * connect timeout does not bound: prefer addresses for remote servers.
 */
#ifndef TSG_STORE_REDIS_H
#define TSG_STORE_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "../util/util.h"

/* ------------------------------------------------------------------------
 * Targets
 * ------------------------------------------------------------------------ */

#define REDIS_HOST_MAX     256 /* host name or address, without IPv6 brackets */
#define REDIS_PATH_MAX     108 /* sun_path of a Unix socket, NUL included */
#define REDIS_USER_MAX     128
#define REDIS_PASSWORD_MAX 512
#define REDIS_URL_MAX      2048 /* longest URL redis_target_parse accepts */
#define REDIS_DB_MAX       1000000

typedef enum redis_target_kind { REDIS_TARGET_TCP, REDIS_TARGET_UNIX } redis_target_kind;

typedef struct redis_target {
    redis_target_kind kind;
    char host[REDIS_HOST_MAX];         /* TCP only */
    int port;                          /* TCP only, 1–65535 */
    char path[REDIS_PATH_MAX];         /* UNIX only */
    char username[REDIS_USER_MAX];     /* "" = none (AUTH with the password alone) */
    char password[REDIS_PASSWORD_MAX]; /* "" = no AUTH */
    int db;                            /* SELECTed after connect when not 0 */
} redis_target;

/*
 * Parses a Redis URL (the forms above) into *out. Returns TSG_OK, or TSG_EINVAL
 * (TSG_ENOTSUP for rediss://) with err naming what is wrong — the scheme, the
 * host, the port, the database number, a too long part, a bad %-escape. The
 * message never contains the password. *out is fully written either way
 * (zeroed on failure). Any input (NULL included) is safe.
 */
tsg_rc redis_target_parse(const char *url, redis_target *out, tsg_error *err);

/*
 * Fills *out with a Unix-socket target for path (no AUTH, db 0). Fails with
 * TSG_EINVAL when path does not fit in a socket address (REDIS_PATH_MAX - 1
 * bytes).
 */
tsg_rc redis_target_unix(const char *path, redis_target *out, tsg_error *err);

/*
 * Writes a description of t for logs and errors into buf (size n, always
 * NUL-terminated): `redis://host:port/db` or `unix:///path?db=N`, with the
 * password replaced by "***". Returns buf.
 */
char *redis_target_describe(const redis_target *t, char *buf, size_t n);

/* ------------------------------------------------------------------------
 * The embedded server
 * ------------------------------------------------------------------------ */

typedef struct redis_embedded redis_embedded;

typedef struct redis_embedded_options {
    const char *server_path; /* redis-server to run; NULL = first on PATH, then /usr/bin */
    const char *appendfsync; /* NULL = "always"; "everysec"/"no" relax durability, knowingly */
    int start_timeout_ms;    /* wait for the first PING; 0 = 10000 */
    int stop_timeout_ms;     /* wait after SHUTDOWN before SIGKILL; 0 = 10000 */
    int backoff_min_ms;      /* first restart delay; 0 = 100 */
    int backoff_max_ms;      /* restart delay cap; 0 = 5000 */
} redis_embedded_options;

/*
 * Starts redis-server under data_dir (created with mode 0700 when missing,
 * parents included) and waits until it answers PING (while it answers
 * LOADING — reading a large AOF — the wait is extended). opt may be NULL
 * (defaults). On success *out is the running server: stop and free it with
 * redis_embedded_stop(). Fails with TSG_EINVAL (data_dir too long for a socket
 * path, bad option), or TSG_EIO naming the cause: the directory cannot be
 * created or written, it is locked by another gateway, redis-server is not
 * found, an orphan on the socket would not stop, or the server exited or did
 * not answer in time — then with the tail of redis.log in the message. On
 * failure nothing is left running and *out is NULL.
 */
tsg_rc redis_embedded_start(const char *data_dir, const redis_embedded_options *opt,
                            redis_embedded **out, tsg_error *err);

/* The Unix-socket target of the server (valid until redis_embedded_stop). */
const redis_target *redis_embedded_target(const redis_embedded *e);

/* The pid of the current redis-server child, 0 while it is down (between a
 * death and its restart). For diagnostics and tests. */
pid_t redis_embedded_pid(redis_embedded *e);

/* How many times the supervisor restarted the server since start. */
unsigned redis_embedded_restarts(redis_embedded *e);

/*
 * Stops supervision, asks the server to SHUTDOWN (which fsyncs the AOF; SIGTERM
 * when the socket does not answer), waits up to stop_timeout_ms, then SIGKILLs
 * it; reaps it, releases the directory lock and frees e. NULL is ignored.
 * Clients of the server should be freed (or at least idle) first.
 */
void redis_embedded_stop(redis_embedded *e);

/* ------------------------------------------------------------------------
 * The client
 * ------------------------------------------------------------------------ */

typedef struct redis_client redis_client;

typedef struct redis_client_options {
    int connect_timeout_ms; /* 0 = 1000 */
    int command_timeout_ms; /* socket read/write timeout; 0 = 2000 */
    int backoff_min_ms;     /* first window after a failed connect; 0 = 100 */
    int backoff_max_ms;     /* window cap; 0 = 1000 (so calls work again within 1 s of
                               Redis coming back: a probe is one cheap connect) */
} redis_client_options;

/*
 * Creates a client of target t (copied) with opt (NULL = defaults). No
 * connection is made here: each thread connects on its first call. Returns
 * TSG_OK and *out (free with redis_client_free), TSG_ENOMEM, or TSG_EIO when
 * the thread-local key cannot be created.
 */
tsg_rc redis_client_new(const redis_target *t, const redis_client_options *opt, redis_client **out,
                        tsg_error *err);

/*
 * Closes every thread's connection and frees the client. Call it only when no
 * other thread uses the client any more and none is exiting concurrently (stop
 * and join the HTTP server and workers first). NULL is ignored.
 */
void redis_client_free(redis_client *c);

/*
 * Runs one command (binary-safe argv; argvlen NULL = strlen of each) on the
 * calling thread's connection. On TSG_OK *reply is the reply (never an error
 * reply). On a server error reply returns TSG_EIO with "redis: <message>" and
 * *reply is that error reply. On a connection failure, a timeout or an open
 * backoff window returns TSG_EIO and *reply is NULL. The caller frees *reply
 * with freeReplyObject (NULL is harmless).
 */
tsg_rc redis_command_argv(redis_client *c, int argc, const char **argv, const size_t *argvlen,
                          redisReply **reply, tsg_error *err);

/* One command of a pipeline (argvlen NULL = strlen of each argument). */
typedef struct redis_cmd {
    int argc;
    const char **argv;
    const size_t *argvlen;
} redis_cmd;

/*
 * Sends n commands in one write and reads their n replies into replies[0..n).
 * Returns TSG_OK when all replies arrived and none is an error; TSG_EIO with
 * the first error reply's message when some is (all replies are still there:
 * the caller frees every replies[i] with freeReplyObject); TSG_EIO with every
 * replies[i] NULL on a connection failure (the connection is dropped: whether
 * the commands ran is unknown, as with any lost connection). A MULTI … EXEC
 * sequence in one pipeline is one round trip and atomic.
 */
tsg_rc redis_pipeline(redis_client *c, size_t n, const redis_cmd *cmds, redisReply **replies,
                      tsg_error *err);

/*
 * A Lua script run by EVALSHA. Define it once, statically:
 *   static redis_script put_script = REDIS_SCRIPT("store_put", "return redis.call(...)");
 * Its SHA1 is computed on first use (thread-safe) and cached in the struct.
 */
typedef struct redis_script {
    const char *name;   /* for error messages */
    const char *source; /* the Lua text */
    int ready;          /* sha1 computed (accessed atomically) */
    char sha1[41];      /* lowercase hex */
} redis_script;

#define REDIS_SCRIPT(name, source)                                                                 \
    {                                                                                              \
        (name), (source), 0,                                                                       \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* The script's SHA1 in hex (as Redis computes it), computing it if needed. */
const char *redis_script_sha1(redis_script *s);

/*
 * Runs script s with EVALSHA over nkeys keys and nargs arguments (lengths NULL
 * = strlen). When the server does not know the script (NOSCRIPT: after a
 * restart or SCRIPT FLUSH) it is loaded with SCRIPT LOAD and the EVALSHA is
 * retried once. Returns and fails as redis_command_argv; an error raised by the
 * script is TSG_EIO "redis: <message>" with the error reply in *reply.
 */
tsg_rc redis_eval_script(redis_client *c, redis_script *s, int nkeys, const char **keys,
                         const size_t *keylens, int nargs, const char **args, const size_t *arglens,
                         redisReply **reply, tsg_error *err);

/*
 * PING on the calling thread's connection, for /readyz: TSG_OK when the server
 * answers PONG, TSG_EIO with the reason otherwise (down, backoff window open,
 * loading its data, authentication refused).
 */
tsg_rc redis_client_ready(redis_client *c, tsg_error *err);

/* Counters for /metrics (monotonic since redis_client_new). */
typedef struct redis_client_stats {
    uint64_t commands;   /* commands sent (a pipeline counts each command) */
    uint64_t errors;     /* failed calls: error replies, I/O errors, fast failures */
    uint64_t connects;   /* connections opened */
    uint64_t reconnects; /* connections opened to replace one that was lost */
    uint64_t fast_fails; /* calls refused at once inside a backoff window */
} redis_client_stats;

/* A snapshot of the counters (each read atomically). */
void redis_client_stats_get(redis_client *c, redis_client_stats *out);

/* ------------------------------------------------------------------------
 * Configuration as `serve` gets it
 * ------------------------------------------------------------------------ */

/*
 * The Redis of the gateway: url NULL or "" (TSUNAGU_REDIS_URL unset) starts the
 * embedded server under data_dir (NULL = "./var") and connects to it; any
 * other url is parsed and used as it is (*emb is then NULL). opt/copt may be
 * NULL. An external server is not contacted here: serve starts even while it
 * is down, and /readyz (redis_client_ready) tells when it is reachable. On
 * success the caller owns *client (free first) and *emb (stop after).
 * Fails as redis_target_parse, redis_embedded_start or redis_client_new, with
 * nothing left running.
 */
tsg_rc redis_open(const char *url, const char *data_dir, const redis_embedded_options *opt,
                  const redis_client_options *copt, redis_embedded **emb, redis_client **client,
                  tsg_error *err);

#endif
