/*
 * redis_embedded.c — the embedded redis-server: data directory and lock, the
 * configuration, the child process, its supervision and its orderly stop.
 * See redis.h for the behaviour and the files it keeps.
 */
#include "redis.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EMB_STABLE_RUN_MS 10000           /* a run this long resets the restart backoff */
#define EMB_FILE_MAX      (PATH_MAX + 32) /* <dir>/<name of one of our files> */

typedef enum emb_phase { EMB_STARTING, EMB_RUNNING, EMB_FAILED } emb_phase;

struct redis_embedded {
    char dir[PATH_MAX];
    char conf[EMB_FILE_MAX];
    char log[EMB_FILE_MAX];
    char lock[EMB_FILE_MAX];
    char server[PATH_MAX];
    redis_target target;
    redis_embedded_options opt; /* defaults filled in */
    int lock_fd;
    off_t log_start; /* size of redis.log before this start: its tail is ours */

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* under mu: */
    pid_t pid;       /* current child, 0 when none (never a reaped pid) */
    int stopping;    /* stop asked: no more restarts */
    emb_phase phase; /* STARTING until the first PONG */
    int last_status; /* wait status of the last exit, -1 none */
    int spawn_errno; /* fork() failure of the first start */
    unsigned restarts;
};

/* ------------------------------------------------------------------------
 * Small helpers
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
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits on e->cond until the absolute monotonic time deadline (ms). */
static void emb_wait_until(redis_embedded *e, int64_t deadline)
{
    struct timespec ts = {(time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000L};
    pthread_cond_timedwait(&e->cond, &e->mu, &ts);
}

/* The message of a redis.log line, without "pid:role date time level ". */
static const char *log_message(const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon - line > 10) return line;
    static const char *const marks[] = {" # ", " * ", " - ", " . "};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        const char *m = strstr(line, marks[i]);
        if (m && m - line < 48) return m + 3;
    }
    return line;
}

/* Writes the last lines of redis.log written since this start into out, as
 * one line ("a | b | c"), the latest lines first to be kept when cut. */
static void emb_log_tail(const redis_embedded *e, char *out, size_t n)
{
    out[0] = '\0';
    int fd = open(e->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(out, n, "(cannot read redis.log: %s)", strerror(errno));
        return;
    }
    char buf[2048];
    ssize_t got = 0;
    struct stat st;
    if (fstat(fd, &st) == 0) {
        off_t from = st.st_size - (off_t)(sizeof buf - 1);
        if (from < e->log_start) from = e->log_start;
        if (from < 0) from = 0;
        got = pread(fd, buf, sizeof buf - 1, from);
    }
    close(fd);
    if (got <= 0) {
        snprintf(out, n, "(redis.log is empty)");
        return;
    }
    buf[got] = '\0';
    /* split into lines, then keep as many of the last ones as fit */
    const char *lines[64];
    int nl = 0;
    char *p = buf;
    while (*p && nl < 64) {
        char *eol = strchr(p, '\n');
        if (eol) *eol = '\0';
        for (char *q = p; *q; q++)
            if ((unsigned char)*q < ' ') *q = ' ';
        if (*p) lines[nl++] = log_message(p);
        if (!eol) break;
        p = eol + 1;
    }
    int first = nl;
    size_t total = 0;
    while (first > 0 && first > nl - 4) {
        size_t len = strlen(lines[first - 1]) + 3;
        if (total + len >= n && first < nl) break;
        total += len;
        first--;
    }
    size_t o = 0;
    for (int i = first; i < nl && o + 1 < n; i++) {
        int w = snprintf(out + o, n - o, "%s%s", i > first ? " | " : "", lines[i]);
        if (w < 0) break;
        o += (size_t)w;
    }
    if (!out[0]) snprintf(out, n, "(redis.log is empty)");
}

/* Describes a wait status: "exited with status 1", "was killed by signal 9". */
static void describe_status(int status, char *out, size_t n)
{
    if (status < 0)
        snprintf(out, n, "ended (status unknown)");
    else if (WIFEXITED(status))
        snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, n, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, n, "ended (wait status %d)", status);
}

/* Connects to the socket and sends PING: 1 when a server answers (any reply,
 * PONG or an error such as LOADING/NOAUTH), 0 when nothing listens. */
static int socket_answers(const char *path, int timeout_ms, int *pong)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *ctx = redisConnectUnixWithTimeout(path, tv);
    if (pong) *pong = 0;
    if (!ctx) return 0;
    if (ctx->err) {
        redisFree(ctx);
        return 0;
    }
    redisSetTimeout(ctx, tv);
    redisReply *r = redisCommand(ctx, "PING");
    int answered = r != NULL;
    if (r && pong) *pong = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r) freeReplyObject(r);
    redisFree(ctx);
    return answered;
}

/* Sends SHUTDOWN on the socket; 1 when it was sent (the server closes the
 * connection when it goes down), 0 when the socket does not answer. */
static int socket_shutdown(const char *path)
{
    struct timeval tv = {1, 0};
    redisContext *ctx = redisConnectUnixWithTimeout(path, tv);
    if (!ctx) return 0;
    if (ctx->err) {
        redisFree(ctx);
        return 0;
    }
    redisSetTimeout(ctx, tv);
    redisReply *r = redisCommand(ctx, "SHUTDOWN");
    /* success is the connection closing (no reply); an error reply means no */
    int sent = r == NULL || r->type != REDIS_REPLY_ERROR;
    if (r) freeReplyObject(r);
    redisFree(ctx);
    return sent;
}

/* Finds the redis-server executable: opt, then PATH, then /usr/bin. */
static int find_server(const char *given, char *out, size_t n)
{
    if (given) {
        if (access(given, X_OK) != 0) return -1;
        return snprintf(out, n, "%s", given) < (int)n ? 0 : -1;
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len < n - 16) {
            int w = snprintf(out, n, "%.*s/redis-server", (int)len, path);
            if (w > 0 && (size_t)w < n && access(out, X_OK) == 0) return 0;
        }
        path = colon ? colon + 1 : NULL;
    }
    snprintf(out, n, "/usr/bin/redis-server");
    return access(out, X_OK) == 0 ? 0 : -1;
}

/* Appends a quoted config string (Redis config syntax) to b. */
static void conf_quoted(tsg_buf *b, const char *s)
{
    tsg_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') tsg_buf_putc(b, '\\');
        tsg_buf_putc(b, *s);
    }
    tsg_buf_putc(b, '"');
}

/* Writes <dir>/redis.conf (through a temporary file and rename). */
static tsg_rc write_config(redis_embedded *e, tsg_error *err)
{
    tsg_buf b;
    tsg_buf_init(&b, 64 * 1024);
    tsg_buf_puts(&b,
                 "# Written by tsunagu at every start of its embedded Redis: edits are lost.\n"
                 "# Durable by default (DESIGN.md 4.4): AOF, fsync before every reply, no RDB.\n"
                 "port 0\nunixsocket ");
    conf_quoted(&b, e->target.path);
    tsg_buf_puts(&b, "\nunixsocketperm 700\ndir ");
    conf_quoted(&b, e->dir);
    tsg_buf_printf(&b,
                   "\nappendonly yes\nappendfsync %s\n"
                   "# RDB-encoded base file on AOF rewrite: faster restart, same durability\n"
                   "aof-use-rdb-preamble yes\naof-load-truncated yes\n"
                   "# every FHIR write appends tens of index commands: rewrite (a fork and a\n"
                   "# full dump) at 256 MB of growth rather than Redis' 64 MB\n"
                   "auto-aof-rewrite-min-size 256mb\n"
                   "# sorted sets as skiplists from the first member: a small zset kept as a\n"
                   "# listpack parses every score (strtod) on each insert, which was a quarter\n"
                   "# of Redis' instructions on the Synthea ingest; the index zsets are few keys\n"
                   "zset-max-listpack-entries 0\n"
                   "save \"\"\ndaemonize no\nsupervised no\nprotected-mode yes\n"
                   "loglevel notice\nalways-show-logo no\nlogfile ",
                   e->opt.appendfsync);
    conf_quoted(&b, e->log);
    tsg_buf_putc(&b, '\n');
    if (tsg_buf_rc(&b) != TSG_OK) {
        tsg_buf_free(&b);
        return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory writing redis.conf");
    }
    char tmp[EMB_FILE_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", e->conf);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    tsg_rc rc = TSG_OK;
    if (fd < 0) {
        rc = tsg_error_set(err, TSG_EIO, "exception", "cannot write %s: %s", tmp, strerror(errno));
    } else {
        size_t off = 0;
        while (off < b.len) {
            ssize_t w = write(fd, b.data + off, b.len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += (size_t)w;
        }
        int ok = off == b.len && fsync(fd) == 0;
        int saved = errno;
        close(fd);
        if (!ok || rename(tmp, e->conf) != 0) {
            if (ok) saved = errno;
            unlink(tmp);
            rc = tsg_error_set(err, TSG_EIO, "exception", "cannot write %s: %s", e->conf,
                               strerror(saved));
        }
    }
    tsg_buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------------------
 * The child
 * ------------------------------------------------------------------------ */

/* Forks and execs redis-server; called by the supervisor with e->mu held.
 * Returns the child's pid, or -1 with errno. Between fork and exec the child
 * only makes async-signal-safe calls. */
static pid_t emb_spawn(redis_embedded *e)
{
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int log_fd = open(e->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (null_fd < 0 || log_fd < 0) {
        int saved = errno;
        if (null_fd >= 0) close(null_fd);
        if (log_fd >= 0) close(log_fd);
        errno = saved;
        return -1;
    }
    char *argv[] = {e->server, e->conf, NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &dfl, NULL);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(126); /* the gateway died before prctl */
        dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        close_range(3, ~0u, 0);
        execv(argv[0], argv);
        static const char msg[] = "tsunagu: cannot exec redis-server\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(127);
    }
    int saved = errno;
    close(null_fd);
    close(log_fd);
    errno = saved;
    return pid;
}

/* The supervisor: runs the child, waits for it, restarts it with backoff
 * unless it is being stopped (or never came up: start reports that). */
static void *emb_supervise(void *arg)
{
    redis_embedded *e = arg;
    int backoff = e->opt.backoff_min_ms;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (e->stopping) break;
        pid_t pid = emb_spawn(e);
        if (pid < 0) {
            int saved = errno;
            if (e->phase == EMB_STARTING) {
                e->phase = EMB_FAILED;
                e->spawn_errno = saved;
                pthread_cond_broadcast(&e->cond);
                break;
            }
            fprintf(stderr, "tsunagu: cannot start redis-server: %s; retrying in %d ms\n",
                    strerror(saved), backoff);
        } else {
            e->pid = pid;
            pthread_cond_broadcast(&e->cond);
            if (e->phase == EMB_RUNNING)
                fprintf(stderr, "tsunagu: redis-server restarted (pid %d)\n", (int)pid);
            int64_t started = now_ms();
            pthread_mutex_unlock(&e->mu);

            /* wait without reaping, so that e->pid never names a reaped
             * process (stop() may kill it meanwhile, under mu) */
            siginfo_t info;
            int wr;
            do {
                memset(&info, 0, sizeof info);
                wr = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT);
            } while (wr != 0 && errno == EINTR);

            pthread_mutex_lock(&e->mu);
            int status = -1;
            e->pid = 0;
            if (waitpid(pid, &status, 0) != pid) status = -1;
            e->last_status = status;
            pthread_cond_broadcast(&e->cond);
            if (e->stopping || e->phase != EMB_RUNNING) {
                if (e->phase == EMB_STARTING) e->phase = EMB_FAILED;
                break;
            }
            if (now_ms() - started >= EMB_STABLE_RUN_MS) backoff = e->opt.backoff_min_ms;
            char how[64];
            describe_status(status, how, sizeof how);
            fprintf(stderr, "tsunagu: redis-server (pid %d) %s; restarting in %d ms\n", (int)pid,
                    how, backoff);
        }
        int64_t deadline = now_ms() + backoff;
        while (!e->stopping && now_ms() < deadline) emb_wait_until(e, deadline);
        if (e->stopping) break;
        backoff = backoff * 2 > e->opt.backoff_max_ms ? e->opt.backoff_max_ms : backoff * 2;
        e->restarts++;
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------ */

/* A redis-server answering on our socket while we hold the directory lock is
 * an orphan of a previous gateway: SHUTDOWN it (its AOF is fsynced). A socket
 * file nobody answers on is removed. */
static tsg_rc emb_clear_socket(redis_embedded *e, tsg_error *err)
{
    const char *sock = e->target.path;
    struct stat st;
    if (lstat(sock, &st) != 0) return TSG_OK;
    if (!S_ISSOCK(st.st_mode))
        return tsg_error_set(err, TSG_EIO, "exception",
                             "%s exists and is not a socket; move it away", sock);
    if (socket_answers(sock, 500, NULL)) {
        fprintf(stderr,
                "tsunagu: a redis-server of a previous run still answers on %s; "
                "shutting it down (its AOF is fsynced) before starting ours\n",
                sock);
        socket_shutdown(sock);
        int64_t deadline = now_ms() + e->opt.stop_timeout_ms;
        while (socket_answers(sock, 200, NULL)) {
            if (now_ms() >= deadline)
                return tsg_error_set(err, TSG_EIO, "exception",
                                     "a redis-server still answers on %s and did not shut "
                                     "down; stop it (redis-cli -s %s shutdown) and start again",
                                     sock, sock);
            sleep_ms(50);
        }
    }
    if (unlink(sock) != 0 && errno != ENOENT)
        return tsg_error_set(err, TSG_EIO, "exception", "cannot remove the stale socket %s: %s",
                             sock, strerror(errno));
    return TSG_OK;
}

/* Fills e's paths and options; fails when a path does not fit. */
static tsg_rc emb_prepare(redis_embedded *e, const char *data_dir,
                          const redis_embedded_options *opt, tsg_error *err)
{
    redis_embedded_options o = {0};
    if (opt) o = *opt;
    if (!o.appendfsync) o.appendfsync = "always";
    if (strcmp(o.appendfsync, "always") != 0 && strcmp(o.appendfsync, "everysec") != 0 &&
        strcmp(o.appendfsync, "no") != 0)
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "appendfsync must be always, everysec or no (got \"%.40s\")",
                             o.appendfsync);
    if (o.start_timeout_ms <= 0) o.start_timeout_ms = 10000;
    if (o.stop_timeout_ms <= 0) o.stop_timeout_ms = 10000;
    if (o.backoff_min_ms <= 0) o.backoff_min_ms = 100;
    if (o.backoff_max_ms <= 0) o.backoff_max_ms = 5000;
    if (o.backoff_max_ms < o.backoff_min_ms) o.backoff_max_ms = o.backoff_min_ms;
    e->opt = o;

    if (!data_dir || !data_dir[0]) data_dir = "./var";
    for (const char *p = data_dir; *p; p++)
        if ((unsigned char)*p < ' ')
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "the data directory name has a control character");
    if (tsg_mkdir_p(data_dir) != 0)
        return tsg_error_set(err, TSG_EIO, "exception", "cannot create the data directory %s: %s",
                             data_dir, strerror(errno));
    if (!realpath(data_dir, e->dir))
        return tsg_error_set(err, TSG_EIO, "exception", "cannot resolve the data directory %s: %s",
                             data_dir, strerror(errno));
    if (access(e->dir, R_OK | W_OK | X_OK) != 0)
        return tsg_error_set(err, TSG_EIO, "exception", "the data directory %s is not writable: %s",
                             e->dir, strerror(errno));
    size_t dl = strlen(e->dir);
    if (dl + 16 >= sizeof e->conf)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "the data directory path is too long");
    snprintf(e->conf, sizeof e->conf, "%s/redis.conf", e->dir);
    snprintf(e->log, sizeof e->log, "%s/redis.log", e->dir);
    snprintf(e->lock, sizeof e->lock, "%s/tsunagu.lock", e->dir);
    char sock[EMB_FILE_MAX];
    snprintf(sock, sizeof sock, "%s/redis.sock", e->dir);
    if (redis_target_unix(sock, &e->target, err) != TSG_OK)
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "the data directory path %s is too long for a Unix socket "
                             "(%s must be under %d bytes); choose a shorter TSUNAGU_DATA_DIR",
                             e->dir, sock, REDIS_PATH_MAX);
    if (find_server(o.server_path, e->server, sizeof e->server) != 0)
        return tsg_error_set(err, TSG_EIO, "exception",
                             o.server_path ? "redis-server %s is not executable"
                                           : "redis-server not found on PATH nor in /usr/bin%s "
                                             "(install it, or set TSUNAGU_REDIS_URL)",
                             o.server_path ? o.server_path : "");
    return TSG_OK;
}

/* Locks <dir>/tsunagu.lock for the life of e. */
static tsg_rc emb_lock(redis_embedded *e, tsg_error *err)
{
    e->lock_fd = open(e->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (e->lock_fd < 0)
        return tsg_error_set(err, TSG_EIO, "exception", "cannot open %s: %s", e->lock,
                             strerror(errno));
    if (flock(e->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char owner[32] = "";
        ssize_t n = pread(e->lock_fd, owner, sizeof owner - 1, 0);
        owner[n > 0 ? n : 0] = '\0';
        owner[strcspn(owner, "\n")] = '\0';
        close(e->lock_fd);
        e->lock_fd = -1;
        return tsg_error_set(err, TSG_EIO, "exception",
                             "the data directory %s is in use by another tsunagu (pid %s); "
                             "stop it or use another TSUNAGU_DATA_DIR",
                             e->dir, owner[0] ? owner : "unknown");
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(e->lock_fd, 0) == 0 && pwrite(e->lock_fd, pid, (size_t)n, 0) != n) {
        /* the pid is only informative */
    }
    return TSG_OK;
}

/* Kills the child (under mu, only while it is not reaped) and waits for the
 * supervisor to reap it, up to timeout_ms. Returns 1 when it is gone. */
static int emb_wait_gone(redis_embedded *e, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&e->mu);
    while (e->pid != 0 && now_ms() < deadline) emb_wait_until(e, deadline);
    int gone = e->pid == 0;
    pthread_mutex_unlock(&e->mu);
    return gone;
}

static void emb_signal(redis_embedded *e, int sig)
{
    pthread_mutex_lock(&e->mu);
    if (e->pid > 0) kill(e->pid, sig);
    pthread_mutex_unlock(&e->mu);
}

/* Ends the child and the supervisor and releases everything. */
static void emb_teardown(redis_embedded *e)
{
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->stopping = 1;
        pid_t pid = e->pid;
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&e->mu);
        if (pid > 0) {
            if (!socket_shutdown(e->target.path)) emb_signal(e, SIGTERM);
            if (!emb_wait_gone(e, e->opt.stop_timeout_ms)) {
                fprintf(stderr,
                        "tsunagu: redis-server (pid %d) did not stop within %d ms; killing it\n",
                        (int)pid, e->opt.stop_timeout_ms);
                emb_signal(e, SIGKILL);
                emb_wait_gone(e, 5000);
            }
        }
        pthread_join(e->thread, NULL);
    }
    if (e->lock_fd >= 0) close(e->lock_fd);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

tsg_rc redis_embedded_start(const char *data_dir, const redis_embedded_options *opt,
                            redis_embedded **out, tsg_error *err)
{
    *out = NULL;
    redis_embedded *e = calloc(1, sizeof *e);
    if (!e) return tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
    e->lock_fd = -1;
    e->last_status = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);

    tsg_rc rc = emb_prepare(e, data_dir, opt, err);
    if (rc == TSG_OK) rc = emb_lock(e, err);
    if (rc == TSG_OK) rc = emb_clear_socket(e, err);
    if (rc == TSG_OK) rc = write_config(e, err);
    if (rc == TSG_OK) {
        struct stat st;
        e->log_start = stat(e->log, &st) == 0 ? st.st_size : 0;
        e->phase = EMB_STARTING;
        int pr = pthread_create(&e->thread, NULL, emb_supervise, e);
        if (pr != 0)
            rc =
                tsg_error_set(err, TSG_EIO, "exception", "cannot start a thread: %s", strerror(pr));
        else
            e->thread_started = 1;
    }
    /* wait for the first PONG, or for the child to fail */
    int64_t deadline = now_ms() + e->opt.start_timeout_ms;
    while (rc == TSG_OK) {
        pthread_mutex_lock(&e->mu);
        emb_phase phase = e->phase;
        int status = e->last_status, spawn_errno = e->spawn_errno;
        pthread_mutex_unlock(&e->mu);
        if (phase == EMB_FAILED) {
            char tail[300], how[64];
            emb_log_tail(e, tail, sizeof tail);
            describe_status(status, how, sizeof how);
            if (spawn_errno)
                rc = tsg_error_set(err, TSG_EIO, "exception", "cannot start %s: %s", e->server,
                                   strerror(spawn_errno));
            else
                rc = tsg_error_set(err, TSG_EIO, "exception",
                                   "embedded redis-server %s at start; %s says: %s", how, e->log,
                                   tail);
            break;
        }
        int pong = 0;
        int answered = socket_answers(e->target.path, 500, &pong);
        if (answered && !pong) {
            /* LOADING: a large AOF is being read; it is alive, so wait on */
            deadline = now_ms() + e->opt.start_timeout_ms;
        }
        if (answered && pong) {
            pthread_mutex_lock(&e->mu);
            if (e->phase == EMB_STARTING) e->phase = EMB_RUNNING;
            phase = e->phase;
            pthread_mutex_unlock(&e->mu);
            if (phase == EMB_RUNNING) break;
            continue; /* died right after answering: report it */
        }
        if (now_ms() >= deadline) {
            char tail[300];
            emb_log_tail(e, tail, sizeof tail);
            rc = tsg_error_set(err, TSG_EIO, "exception",
                               "embedded redis-server did not answer on %s within %d ms; %s says: "
                               "%s",
                               e->target.path, e->opt.start_timeout_ms, e->log, tail);
            break;
        }
        sleep_ms(20);
    }
    if (rc != TSG_OK) {
        emb_teardown(e);
        return rc;
    }
    *out = e;
    return TSG_OK;
}

const redis_target *redis_embedded_target(const redis_embedded *e)
{
    return &e->target;
}

pid_t redis_embedded_pid(redis_embedded *e)
{
    pthread_mutex_lock(&e->mu);
    pid_t pid = e->pid;
    pthread_mutex_unlock(&e->mu);
    return pid;
}

unsigned redis_embedded_restarts(redis_embedded *e)
{
    pthread_mutex_lock(&e->mu);
    unsigned n = e->restarts;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void redis_embedded_stop(redis_embedded *e)
{
    if (!e) return;
    emb_teardown(e);
}
