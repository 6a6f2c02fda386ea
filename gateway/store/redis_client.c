/*
 * redis_client.c — the shared Redis client: one hiredis connection per thread,
 * connect/AUTH/SELECT with timeouts, the client-wide backoff window, commands,
 * pipelines, readiness and counters; and redis_open(). See redis.h.
 */
#include "redis.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* One thread's connection. Registered in the client's list so that
 * redis_client_free can close the connections of threads still alive. */
typedef struct redis_conn {
    redis_client *client;
    redisContext *ctx;  /* NULL = not connected */
    int had_connection; /* a later connect is a reconnect */
    struct redis_conn *prev, *next;
} redis_conn;

struct redis_client {
    redis_target target;
    redis_client_options opt;
    char desc[REDIS_URL_MAX];
    pthread_key_t key;

    pthread_mutex_t mu; /* the list and the backoff state */
    redis_conn *conns;
    int backoff_ms;                   /* current window length, 0 = healthy */
    int64_t window_start;             /* when the current window opened */
    char down_reason[256];            /* why the window is open */
    _Atomic int_least64_t down_until; /* monotonic ms; 0 = no window */

    atomic_uint_least64_t n_commands, n_errors, n_connects, n_reconnects, n_fast_fails;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static void count(atomic_uint_least64_t *n, uint64_t by)
{
    atomic_fetch_add_explicit(n, by, memory_order_relaxed);
}

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

/* Thread-exit destructor of a connection. */
static void conn_destroy(void *p)
{
    redis_conn *conn = p;
    redis_client *c = conn->client;
    pthread_mutex_lock(&c->mu);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        c->conns = conn->next;
    if (conn->next) conn->next->prev = conn->prev;
    pthread_mutex_unlock(&c->mu);
    if (conn->ctx) redisFree(conn->ctx);
    free(conn);
}

static redis_conn *conn_get(redis_client *c)
{
    redis_conn *conn = pthread_getspecific(c->key);
    if (conn) return conn;
    conn = calloc(1, sizeof *conn);
    if (!conn) return NULL;
    conn->client = c;
    if (pthread_setspecific(c->key, conn) != 0) {
        free(conn);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    conn->next = c->conns;
    if (c->conns) c->conns->prev = conn;
    c->conns = conn;
    pthread_mutex_unlock(&c->mu);
    return conn;
}

static void conn_drop(redis_conn *conn)
{
    if (conn->ctx) redisFree(conn->ctx);
    conn->ctx = NULL;
}

/* Opens (or extends) the client-wide window during which calls fail at once. */
static void client_mark_down(redis_client *c, const char *reason)
{
    int64_t now = now_ms();
    pthread_mutex_lock(&c->mu);
    if (c->backoff_ms == 0) {
        c->backoff_ms = c->opt.backoff_min_ms;
        c->window_start = now;
    } else if (now >= c->window_start + c->backoff_ms) {
        /* the last window has run out and it failed again: double. Several
         * threads failing at the same moment count as one failure. */
        c->backoff_ms =
            c->backoff_ms * 2 > c->opt.backoff_max_ms ? c->opt.backoff_max_ms : c->backoff_ms * 2;
        c->window_start = now;
    }
    snprintf(c->down_reason, sizeof c->down_reason, "%s", reason);
    atomic_store(&c->down_until, c->window_start + c->backoff_ms);
    pthread_mutex_unlock(&c->mu);
}

static void client_mark_up(redis_client *c)
{
    if (atomic_load_explicit(&c->down_until, memory_order_relaxed) == 0) return;
    pthread_mutex_lock(&c->mu);
    c->backoff_ms = 0;
    c->down_reason[0] = '\0';
    atomic_store(&c->down_until, 0);
    pthread_mutex_unlock(&c->mu);
}

/* TSG_OK when calls may proceed. Inside an open window: TSG_EIO at once. When
 * the window has just closed, one caller wins the probe and the others keep
 * failing fast until it has connected or failed (no stampede of connects). */
static tsg_rc client_check_window(redis_client *c, tsg_error *err)
{
    int_least64_t until = atomic_load(&c->down_until);
    if (until == 0) return TSG_OK;
    int64_t now = now_ms();
    if (now >= until) {
        int_least64_t probe_end = now + c->opt.connect_timeout_ms + c->opt.command_timeout_ms;
        if (atomic_compare_exchange_strong(&c->down_until, &until, probe_end)) return TSG_OK;
        until = atomic_load(&c->down_until);
        if (until == 0) return TSG_OK;
    }
    count(&c->n_fast_fails, 1);
    count(&c->n_errors, 1);
    char reason[256];
    pthread_mutex_lock(&c->mu);
    snprintf(reason, sizeof reason, "%s", c->down_reason);
    pthread_mutex_unlock(&c->mu);
    int64_t left = until - now_ms();
    return tsg_error_set(err, TSG_EIO, "transient",
                         "redis unavailable (%s): %s; retrying in %lld ms", c->desc, reason,
                         (long long)(left > 0 ? left : 0));
}

/* Runs one command on a fresh connection during setup (AUTH, SELECT). */
static int setup_command(redisContext *ctx, int argc, const char **argv, char *why, size_t n,
                         const char *what)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        snprintf(why, n, "%s: %s", what, ctx->errstr);
        return -1;
    }
    int bad = r->type == REDIS_REPLY_ERROR;
    if (bad) snprintf(why, n, "%s failed: %s", what, r->str);
    freeReplyObject(r);
    return bad ? -1 : 0;
}

/* Connects conn: connect timeout, socket timeout, AUTH, SELECT. On failure the
 * window opens and the error says why. */
static tsg_rc conn_connect(redis_client *c, redis_conn *conn, tsg_error *err)
{
    const redis_target *t = &c->target;
    struct timeval ctv = ms_tv(c->opt.connect_timeout_ms);
    redisContext *ctx = t->kind == REDIS_TARGET_UNIX
                            ? redisConnectUnixWithTimeout(t->path, ctv)
                            : redisConnectWithTimeout(t->host, t->port, ctv);
    char why[300] = "";
    if (!ctx) {
        snprintf(why, sizeof why, "cannot allocate a connection");
    } else if (ctx->err) {
        snprintf(why, sizeof why, "connect: %s", ctx->errstr);
    } else if (redisSetTimeout(ctx, ms_tv(c->opt.command_timeout_ms)) != REDIS_OK) {
        /* every connect, reconnect included, gets the socket timeout */
        snprintf(why, sizeof why, "cannot set the socket timeout: %s", ctx->errstr);
    } else if (t->password[0]) {
        const char *auth_user[] = {"AUTH", t->username, t->password};
        const char *auth[] = {"AUTH", t->password};
        if (t->username[0])
            setup_command(ctx, 3, auth_user, why, sizeof why, "AUTH");
        else
            setup_command(ctx, 2, auth, why, sizeof why, "AUTH");
    }
    if (!why[0] && t->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", t->db);
        const char *sel[] = {"SELECT", db};
        setup_command(ctx, 2, sel, why, sizeof why, "SELECT");
    }
    if (why[0]) {
        if (ctx) redisFree(ctx);
        client_mark_down(c, why);
        count(&c->n_errors, 1);
        return tsg_error_set(err, TSG_EIO, "transient", "redis unavailable (%s): %s", c->desc, why);
    }
    conn->ctx = ctx;
    count(&c->n_connects, 1);
    if (conn->had_connection) count(&c->n_reconnects, 1);
    conn->had_connection = 1;
    client_mark_up(c);
    return TSG_OK;
}

/* Whether the server closed ctx while it was idle (Redis restarted): a
 * non-blocking peek sees EOF or an error. Data waiting unasked is a desync. */
static int conn_is_dead(redisContext *ctx)
{
    char b;
    ssize_t r = recv(ctx->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0) return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    return 1;
}

/* The calling thread's live connection, connecting when needed. */
static tsg_rc conn_ready(redis_client *c, redis_conn **out, tsg_error *err)
{
    tsg_rc rc = client_check_window(c, err);
    if (rc != TSG_OK) return rc;
    redis_conn *conn = conn_get(c);
    if (!conn) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    if (conn->ctx && conn_is_dead(conn->ctx)) conn_drop(conn);
    if (!conn->ctx) rc = conn_connect(c, conn, err);
    *out = conn;
    return rc;
}

/* A failed exchange: drop the connection (its protocol state is unknown);
 * a timeout also opens the window, so other threads do not wait as well. */
static tsg_rc conn_failed(redis_client *c, redis_conn *conn, tsg_error *err)
{
    char why[200];
    int timeout =
        conn->ctx->err == REDIS_ERR_IO && strcmp(conn->ctx->errstr, strerror(EAGAIN)) == 0;
    if (timeout)
        snprintf(why, sizeof why, "no answer within %d ms", c->opt.command_timeout_ms);
    else if (conn->ctx->err == REDIS_ERR_EOF)
        snprintf(why, sizeof why, "the server closed the connection");
    else
        snprintf(why, sizeof why, "%s", conn->ctx->errstr);
    conn_drop(conn);
    /* a timeout opens the window; so does any failure of a probe (a window
     * is in effect), else the probe's long slot would keep others out */
    if (timeout || atomic_load(&c->down_until) != 0) client_mark_down(c, why);
    count(&c->n_errors, 1);
    return tsg_error_set(err, TSG_EIO, "transient", "redis unavailable (%s): %s", c->desc, why);
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

tsg_rc redis_client_new(const redis_target *t, const redis_client_options *opt, redis_client **out,
                        tsg_error *err)
{
    *out = NULL;
    redis_client *c = calloc(1, sizeof *c);
    if (!c) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    c->target = *t;
    if (opt) c->opt = *opt;
    if (c->opt.connect_timeout_ms <= 0) c->opt.connect_timeout_ms = 1000;
    if (c->opt.command_timeout_ms <= 0) c->opt.command_timeout_ms = 2000;
    if (c->opt.backoff_min_ms <= 0) c->opt.backoff_min_ms = 100;
    if (c->opt.backoff_max_ms <= 0) c->opt.backoff_max_ms = 1000;
    if (c->opt.backoff_max_ms < c->opt.backoff_min_ms)
        c->opt.backoff_max_ms = c->opt.backoff_min_ms;
    redis_target_describe(t, c->desc, sizeof c->desc);
    /* hiredis writes with write(): a server that died between our liveness
     * peek and the write must give EPIPE, not kill the gateway */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    int pr = pthread_key_create(&c->key, conn_destroy);
    if (pr != 0) {
        free(c);
        return tsg_error_set(err, TSG_EIO, "exception", "pthread_key_create: %s", strerror(pr));
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return TSG_OK;
}

void redis_client_free(redis_client *c)
{
    if (!c) return;
    /* no destructor may run after this: threads still alive lose their slot */
    pthread_key_delete(c->key);
    redis_conn *conn = c->conns;
    while (conn) {
        redis_conn *next = conn->next;
        if (conn->ctx) redisFree(conn->ctx);
        free(conn);
        conn = next;
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

tsg_rc redis_command_argv(redis_client *c, int argc, const char **argv, const size_t *argvlen,
                          redisReply **reply, tsg_error *err)
{
    redis_cmd cmd = {argc, argv, argvlen};
    return redis_pipeline(c, 1, &cmd, reply, err);
}

/* Writes "<t><n>\r\n" at p (at most 24 bytes); returns its length. */
static size_t resp_header(char *p, char t, size_t n)
{
    p[0] = t;
    size_t k = 1 + tsg_fmt_ll(p + 1, (long long)n);
    p[k++] = '\r';
    p[k++] = '\n';
    return k;
}

tsg_rc redis_pipeline(redis_client *c, size_t n, const redis_cmd *cmds, redisReply **replies,
                      tsg_error *err)
{
    for (size_t i = 0; i < n; i++) replies[i] = NULL;
    if (n == 0) return TSG_OK;
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].argc < 1 || !cmds[i].argv) {
            count(&c->n_errors, 1);
            return tsg_error_set(err, TSG_EINVAL, "exception", "empty Redis command");
        }
    }
    /* The whole pipeline as RESP in one buffer, appended to the connection
     * once: hiredis' own formatting (sdscatfmt per argument) cost a tenth of a
     * Bundle ingest's gateway time. */
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += 16;
        for (int j = 0; j < cmds[i].argc; j++)
            bytes += 24 + (cmds[i].argvlen ? cmds[i].argvlen[j] : strlen(cmds[i].argv[j]));
    }
    char *resp = malloc(bytes);
    if (!resp) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k += resp_header(resp + k, '*', (size_t)cmds[i].argc);
        for (int j = 0; j < cmds[i].argc; j++) {
            size_t len = cmds[i].argvlen ? cmds[i].argvlen[j] : strlen(cmds[i].argv[j]);
            k += resp_header(resp + k, '$', len);
            memcpy(resp + k, cmds[i].argv[j], len);
            k += len;
            resp[k++] = '\r';
            resp[k++] = '\n';
        }
    }
    redis_conn *conn;
    tsg_rc rc = conn_ready(c, &conn, err);
    if (rc != TSG_OK) {
        free(resp);
        return rc;
    }
    int appended = redisAppendFormattedCommand(conn->ctx, resp, k);
    free(resp);
    if (appended != REDIS_OK) return conn_failed(c, conn, err);
    count(&c->n_commands, n);
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(conn->ctx, &r) != REDIS_OK) {
            for (size_t j = 0; j < i; j++) {
                freeReplyObject(replies[j]);
                replies[j] = NULL;
            }
            return conn_failed(c, conn, err);
        }
        replies[i] = r;
    }
    client_mark_up(c);
    for (size_t i = 0; i < n; i++) {
        if (replies[i]->type == REDIS_REPLY_ERROR) {
            count(&c->n_errors, 1);
            return tsg_error_set(err, TSG_EIO, "exception", "redis: %s", replies[i]->str);
        }
    }
    return TSG_OK;
}

tsg_rc redis_client_ready(redis_client *c, tsg_error *err)
{
    const char *argv[] = {"PING"};
    redisReply *r = NULL;
    tsg_rc rc = redis_command_argv(c, 1, argv, NULL, &r, err);
    if (rc == TSG_OK && !(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0))
        rc = tsg_error_set(err, TSG_EIO, "exception", "redis answered PING with something else");
    freeReplyObject(r);
    return rc;
}

void redis_client_stats_get(redis_client *c, redis_client_stats *out)
{
    out->commands = atomic_load_explicit(&c->n_commands, memory_order_relaxed);
    out->errors = atomic_load_explicit(&c->n_errors, memory_order_relaxed);
    out->connects = atomic_load_explicit(&c->n_connects, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&c->n_reconnects, memory_order_relaxed);
    out->fast_fails = atomic_load_explicit(&c->n_fast_fails, memory_order_relaxed);
}

tsg_rc redis_open(const char *url, const char *data_dir, const redis_embedded_options *opt,
                  const redis_client_options *copt, redis_embedded **emb, redis_client **client,
                  tsg_error *err)
{
    *emb = NULL;
    *client = NULL;
    redis_target target;
    const redis_target *t = &target;
    tsg_rc rc;
    if (url && url[0]) {
        rc = redis_target_parse(url, &target, err);
        if (rc != TSG_OK) return rc;
    } else {
        rc = redis_embedded_start(data_dir, opt, emb, err);
        if (rc != TSG_OK) return rc;
        t = redis_embedded_target(*emb);
    }
    rc = redis_client_new(t, copt, client, err);
    if (rc != TSG_OK) {
        redis_embedded_stop(*emb);
        *emb = NULL;
    }
    return rc;
}
