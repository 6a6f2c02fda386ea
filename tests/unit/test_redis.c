/*
 * test_redis.c — Redis targets, the embedded redis-server (persistence,
 * supervision after kill -9, leftovers of a crashed gateway, parent death) and
 * the client (threads, fast failure, timeouts, EVALSHA recovery, external
 * servers by Unix socket and by TCP with a password), against real
 * redis-server processes in a temporary directory.
 *
 * Every test runs between setup and teardown: teardown frees the client, stops
 * the embedded server, kills the external servers a test started and removes
 * the directory, so a failed assertion leaves no redis-server behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/redis.h"

/* ------------------------------------------------------------------------
 * Fixture
 * ------------------------------------------------------------------------ */

#define MAX_EXTERNAL 4

typedef struct fixture {
    char dir[64];
    redis_embedded *emb;
    redis_client *client;
    redis_client *client2;
    pid_t external[MAX_EXTERNAL];
    int n_external;
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
    snprintf(f->dir, sizeof f->dir, "/tmp/tsg-redis-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    redis_client_free(f->client);
    redis_client_free(f->client2);
    redis_embedded_stop(f->emb);
    for (int i = 0; i < f->n_external; i++) {
        if (f->external[i] <= 0) continue;
        kill(f->external[i], SIGKILL);
        waitpid(f->external[i], NULL, 0);
    }
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

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

/* Runs a command given as words; returns rc and the reply (caller frees). */
static tsg_rc cmd(redis_client *c, redisReply **r, tsg_error *e, int argc, ...)
{
    const char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 16; i++) argv[i] = va_arg(ap, const char *);
    va_end(ap);
    return redis_command_argv(c, argc, argv, NULL, r, e);
}

/* SET key value; asserts success. */
static void set_ok(redis_client *c, const char *key, const char *value)
{
    redisReply *r;
    tsg_error e;
    assert_int_equal(cmd(c, &r, &e, 3, "SET", key, value), TSG_OK);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* GET key; asserts it equals want (NULL = nil). */
static void get_is(redis_client *c, const char *key, const char *want)
{
    redisReply *r;
    tsg_error e;
    tsg_rc rc = cmd(c, &r, &e, 2, "GET", key);
    if (rc != TSG_OK) fail_msg("GET %s: %s", key, e.message);
    if (want) {
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_string_equal(r->str, want);
    } else {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    }
    freeReplyObject(r);
}

/* Starts an external redis-server with extra arguments (NULL-terminated) and
 * waits until it answers on sock (when not NULL) or on 127.0.0.1:port. */
static pid_t start_external(fixture *f, const char *sock, int port, const char *password, ...)
{
    const char *argv[32];
    int argc = 0;
    argv[argc++] = "/usr/bin/redis-server";
    va_list ap;
    va_start(ap, password);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 30) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* even if this test process crashes, the server goes with it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null_fd = open("/dev/null", O_RDWR);
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    assert_true(f->n_external < MAX_EXTERNAL);
    f->external[f->n_external++] = pid;
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        struct timeval tv = {0, 200000};
        redisContext *ctx = sock ? redisConnectUnixWithTimeout(sock, tv)
                                 : redisConnectWithTimeout("127.0.0.1", port, tv);
        if (ctx && !ctx->err) {
            redisReply *r = password ? redisCommand(ctx, "AUTH %s", password) : NULL;
            if (r) freeReplyObject(r);
            r = redisCommand(ctx, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r) freeReplyObject(r);
            redisFree(ctx);
            if (ok) return pid;
        } else if (ctx) {
            redisFree(ctx);
        }
        if (now_ms() > deadline) fail_msg("external redis-server did not come up");
        sleep_ms(20);
    }
}

/* A TCP port free right now on 127.0.0.1. */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t n = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* Whether pid has ended: gone, or a zombie its (new) parent has not reaped. */
static int process_gone(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH) return 1;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

/* ------------------------------------------------------------------------
 * Targets and SHA1 (no server)
 * ------------------------------------------------------------------------ */

static void test_url_good(void **state)
{
    (void)state;
    redis_target t;
    tsg_error e;
    assert_int_equal(redis_target_parse("redis://127.0.0.1:6380/3", &t, &e), TSG_OK);
    assert_int_equal(t.kind, REDIS_TARGET_TCP);
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 6380);
    assert_int_equal(t.db, 3);
    assert_string_equal(t.password, "");

    assert_int_equal(redis_target_parse("redis://:s%40cret@redis.example-1.jp:7000", &t, &e),
                     TSG_OK);
    assert_string_equal(t.password, "s@cret");
    assert_string_equal(t.username, "");
    assert_string_equal(t.host, "redis.example-1.jp");
    assert_int_equal(t.db, 0);

    assert_int_equal(redis_target_parse("redis://app:p:w@h/", &t, &e), TSG_OK);
    assert_string_equal(t.username, "app");
    assert_string_equal(t.password, "p:w");
    assert_int_equal(t.port, 6379);

    assert_int_equal(redis_target_parse("redis://[::1]:6390/15", &t, &e), TSG_OK);
    assert_string_equal(t.host, "::1");
    assert_int_equal(t.port, 6390);
    assert_int_equal(t.db, 15);

    assert_int_equal(redis_target_parse("unix:///var/run/redis.sock", &t, &e), TSG_OK);
    assert_int_equal(t.kind, REDIS_TARGET_UNIX);
    assert_string_equal(t.path, "/var/run/redis.sock");
    assert_int_equal(t.db, 0);

    assert_int_equal(redis_target_parse("unix:///tmp/r.sock?db=2&password=x%26y", &t, &e), TSG_OK);
    assert_string_equal(t.path, "/tmp/r.sock");
    assert_int_equal(t.db, 2);
    assert_string_equal(t.password, "x&y");

    /* descriptions never show the password */
    char d[256];
    assert_int_equal(redis_target_parse("redis://:topsecret@h:1/2", &t, &e), TSG_OK);
    redis_target_describe(&t, d, sizeof d);
    assert_string_equal(d, "redis://:***@h:1/2");
    assert_null(strstr(d, "topsecret"));
}

static void expect_bad(const char *url, const char *words)
{
    redis_target t;
    tsg_error e;
    tsg_rc rc = redis_target_parse(url, &t, &e);
    if (rc == TSG_OK) fail_msg("accepted: %s", url ? url : "(null)");
    if (!strstr(e.message, words))
        fail_msg("%s: message \"%s\" lacks \"%s\"", url, e.message, words);
    assert_null(strstr(e.message, "hunter2")); /* never the password */
    assert_int_equal(t.port, 0);               /* zeroed on failure */
}

static void test_url_bad(void **state)
{
    (void)state;
    expect_bad(NULL, "empty");
    expect_bad("", "empty");
    expect_bad("http://h:1", "scheme");
    expect_bad("redis:/h", "scheme");
    expect_bad("redis://", "host is missing");
    expect_bad("redis://:hunter2@", "host is missing");
    expect_bad("redis://h:0", "port");
    expect_bad("redis://h:65536", "port");
    expect_bad("redis://h:12ab", "port");
    expect_bad("redis://h:", "port");
    expect_bad("redis://h:99999999999999999999", "port");
    expect_bad("redis://h:1/x", "database");
    expect_bad("redis://h:1/-1", "database");
    expect_bad("redis://h:1/1000001", "database");
    expect_bad("redis://h o:1", "spaces");
    expect_bad("redis://h\xc3\xa9:1", "non-ASCII");
    expect_bad("redis://h$:1", "bad character in the host");
    expect_bad("redis://[::1:1", "unclosed");
    expect_bad("redis://[::1]x", "after the IPv6");
    expect_bad("redis://hunter2@h", "colon");
    expect_bad("redis://:hunter2%zz@h", "escape");
    expect_bad("redis://:hunter2%00@h", "escape");
    expect_bad("redis://user:@h", "without a password");
    expect_bad("rediss://h:1", "TLS");
    expect_bad("unix://", "absolute socket path");
    expect_bad("unix://relative.sock", "absolute socket path");
    expect_bad("unix://host/tmp/x.sock", "three slashes");
    expect_bad("unix:///tmp/x.sock?db=abc", "database");
    expect_bad("unix:///tmp/x.sock?timeout=1", "unknown query parameter");
    expect_bad("unix:///", "socket path");
    char longp[300] = "unix:///";
    memset(longp + 8, 'a', 200);
    longp[208] = '\0';
    expect_bad(longp, "too long");
    char *huge = malloc(5000);
    assert_non_null(huge);
    memset(huge, 'a', 4999);
    memcpy(huge, "redis://", 8);
    huge[4999] = '\0';
    expect_bad(huge, "longer than");
    free(huge);
    redis_target t;
    tsg_error e;
    assert_int_equal(redis_target_parse("rediss://h", &t, &e), TSG_ENOTSUP);
    assert_int_equal(redis_target_parse("ftp://h", &t, &e), TSG_EINVAL);
    assert_int_equal(redis_target_parse("ftp://h", &t, NULL), TSG_EINVAL); /* err may be NULL */
}

/* Random and mutated URLs: never a crash (ASan watches), and whatever is
 * accepted is well-formed. */
static void test_url_random(void **state)
{
    (void)state;
    static const char alphabet[] = "redis:/unix@[]?&=%0123456789abcdefAF.-_:/ \x01\x7f\xff";
    static const char *const seeds[] = {"redis://:pw@host:6379/2", "unix:///tmp/r.sock?db=1",
                                        "redis://u:p@[::1]:1/0", "unix://:p@/x?password=a%20b"};
    unsigned seed = 12345;
    char url[96];
    for (int i = 0; i < 200000; i++) {
        size_t n;
        if (i % 2) {
            const char *base = seeds[(size_t)i / 2 % 4];
            n = strlen(base);
            memcpy(url, base, n);
            for (int k = 0; k < 3; k++) {
                seed = seed * 1103515245u + 12345u;
                url[(seed >> 8) % n] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
            }
        } else {
            seed = seed * 1103515245u + 12345u;
            n = (seed >> 8) % (sizeof url - 1);
            for (size_t k = 0; k < n; k++) {
                seed = seed * 1103515245u + 12345u;
                url[k] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
            }
        }
        url[n] = '\0';
        redis_target t;
        tsg_error e;
        tsg_rc rc = redis_target_parse(url, &t, &e);
        if (rc != TSG_OK) {
            assert_true(e.message[0] != '\0');
            continue;
        }
        if (t.kind == REDIS_TARGET_TCP) {
            assert_true(t.host[0] != '\0');
            assert_true(t.port >= 1 && t.port <= 65535);
        } else {
            assert_int_equal(t.path[0], '/');
        }
        assert_true(t.db >= 0 && t.db <= REDIS_DB_MAX);
        char d[REDIS_URL_MAX];
        redis_target_describe(&t, d, sizeof d);
    }
}

static void test_sha1(void **state)
{
    (void)state;
    redis_script a = REDIS_SCRIPT("abc", "abc");
    assert_string_equal(redis_script_sha1(&a), "a9993e364706816aba3e25717850c26c9cd0d89d");
    redis_script empty = REDIS_SCRIPT("empty", "");
    assert_string_equal(redis_script_sha1(&empty), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    redis_script two = REDIS_SCRIPT(
        "two-blocks", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"); /* 56 bytes */
    assert_string_equal(redis_script_sha1(&two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

/* ------------------------------------------------------------------------
 * The embedded server
 * ------------------------------------------------------------------------ */

static const redis_embedded_options fast_opts = {
    .backoff_min_ms = 50, .backoff_max_ms = 400, .start_timeout_ms = 10000};

static void start_embedded(fixture *f, const redis_embedded_options *opt)
{
    char data[128];
    snprintf(data, sizeof data, "%s/data", f->dir);
    tsg_error e;
    tsg_rc rc = redis_embedded_start(data, opt, &f->emb, &e);
    if (rc != TSG_OK) fail_msg("embedded start: %s", e.message);
    rc = redis_client_new(redis_embedded_target(f->emb), NULL, &f->client, &e);
    assert_int_equal(rc, TSG_OK);
}

static void stop_embedded(fixture *f)
{
    redis_client_free(f->client);
    f->client = NULL;
    pid_t pid = redis_embedded_pid(f->emb);
    redis_embedded_stop(f->emb);
    f->emb = NULL;
    assert_true(process_gone(pid)); /* stopped and reaped */
}

static void test_embedded_persists(void **state)
{
    fixture *f = *state;
    start_embedded(f, &fast_opts);
    char path[160];
    struct stat st;
    snprintf(path, sizeof path, "%s/data", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/data/redis.sock", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(redis_client_ready(f->client, NULL), TSG_OK);

    /* the server runs with the settings we wrote */
    redisReply *r;
    tsg_error e;
    assert_int_equal(cmd(f->client, &r, &e, 3, "CONFIG", "GET", "appendfsync"), TSG_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[1]->str, "always");
    freeReplyObject(r);
    assert_int_equal(cmd(f->client, &r, &e, 3, "CONFIG", "GET", "port"), TSG_OK);
    assert_string_equal(r->element[1]->str, "0");
    freeReplyObject(r);

    set_ok(f->client, "patient:1", "山田太郎");
    stop_embedded(f);
    snprintf(path, sizeof path, "%s/data/redis.sock", f->dir);
    assert_int_not_equal(access(path, F_OK), 0); /* SHUTDOWN removed its socket */

    start_embedded(f, &fast_opts);
    get_is(f->client, "patient:1", "山田太郎"); /* from the AOF */
    stop_embedded(f);
}

static void test_embedded_kill9_restart(void **state)
{
    fixture *f = *state;
    start_embedded(f, &fast_opts);
    set_ok(f->client, "k", "survives");
    pid_t old = redis_embedded_pid(f->emb);
    assert_true(old > 0);
    assert_int_equal(kill(old, SIGKILL), 0);

    /* calls fail (fast) until the supervisor has restarted it, then work */
    int64_t deadline = now_ms() + 15000, t0;
    int failures = 0;
    for (;;) {
        redisReply *r;
        tsg_error e;
        t0 = now_ms();
        tsg_rc rc = cmd(f->client, &r, &e, 2, "GET", "k");
        assert_true(now_ms() - t0 < 3000);
        if (rc == TSG_OK) {
            assert_int_equal(r->type, REDIS_REPLY_STRING);
            assert_string_equal(r->str, "survives");
            freeReplyObject(r);
            break;
        }
        assert_int_equal(rc, TSG_EIO);
        assert_null(r);
        assert_non_null(strstr(e.message, "redis unavailable"));
        failures++;
        if (now_ms() > deadline) fail_msg("no recovery after kill -9: %s", e.message);
        sleep_ms(10);
    }
    assert_true(failures >= 1);
    pid_t now = redis_embedded_pid(f->emb);
    assert_true(now > 0 && now != old);
    assert_true(redis_embedded_restarts(f->emb) >= 1);
    redis_client_stats st;
    redis_client_stats_get(f->client, &st);
    assert_true(st.reconnects >= 1);
    assert_true(st.errors >= 1);
    assert_true(st.commands >= 2);
}

/* Redis restarted while a connection sat idle: the next call notices the
 * closed connection before sending and succeeds on a new one — no failed
 * request, nothing sent twice. */
static void test_embedded_restart_between_calls(void **state)
{
    fixture *f = *state;
    start_embedded(f, &fast_opts);
    set_ok(f->client, "k", "1");
    pid_t old = redis_embedded_pid(f->emb);
    assert_int_equal(kill(old, SIGKILL), 0);
    int64_t deadline = now_ms() + 15000;
    for (;;) {
        pid_t now = redis_embedded_pid(f->emb);
        if (now > 0 && now != old) {
            struct timeval tv = {0, 200000};
            redisContext *ctx =
                redisConnectUnixWithTimeout(redis_embedded_target(f->emb)->path, tv);
            redisReply *r = ctx && !ctx->err ? redisCommand(ctx, "PING") : NULL;
            int up = r && r->type == REDIS_REPLY_STATUS;
            if (r) freeReplyObject(r);
            if (ctx) redisFree(ctx);
            if (up) break;
        }
        if (now_ms() > deadline) fail_msg("redis-server was not restarted");
        sleep_ms(10);
    }
    get_is(f->client, "k", "1");
    redis_client_stats st;
    redis_client_stats_get(f->client, &st);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.reconnects, 1);
}

static void test_embedded_down_fails_fast(void **state)
{
    fixture *f = *state;
    /* a long restart delay keeps the server down for a while */
    redis_embedded_options o = fast_opts;
    o.backoff_min_ms = 4000;
    o.backoff_max_ms = 4000;
    start_embedded(f, &o);
    set_ok(f->client, "k", "v");
    pid_t old = redis_embedded_pid(f->emb);
    assert_int_equal(kill(old, SIGKILL), 0);
    int64_t deadline = now_ms() + 10000;
    while (redis_embedded_pid(f->emb) == old && now_ms() < deadline) sleep_ms(5);
    assert_int_not_equal(redis_embedded_pid(f->emb), old);

    for (int i = 0; i < 5; i++) {
        redisReply *r = NULL;
        tsg_error e;
        int64_t t0 = now_ms();
        tsg_rc rc = cmd(f->client, &r, &e, 2, "GET", "k");
        int64_t took = now_ms() - t0;
        assert_int_equal(rc, TSG_EIO);
        assert_null(r);
        assert_non_null(strstr(e.message, "redis unavailable"));
        assert_true(took < 3000); /* a bound, not a benchmark: normally about 0 ms */
        assert_int_equal(redis_client_ready(f->client, &e), TSG_EIO);
    }
    redis_client_stats st;
    redis_client_stats_get(f->client, &st);
    assert_true(st.fast_fails >= 4); /* after the first failure, no connect is tried */
}

typedef struct worker {
    redis_client *client;
    int id;
    int failures;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 200; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "w%d:%d", w->id, i);
        snprintf(val, sizeof val, "%d", i * w->id);
        const char *set[] = {"SET", key, val};
        const char *get[] = {"GET", key};
        const char *incr[] = {"INCR", "counter"};
        redisReply *r;
        if (redis_command_argv(w->client, 3, set, NULL, &r, NULL) != TSG_OK) w->failures++;
        freeReplyObject(r);
        if (redis_command_argv(w->client, 2, get, NULL, &r, NULL) != TSG_OK ||
            r->type != REDIS_REPLY_STRING || strcmp(r->str, val) != 0)
            w->failures++;
        freeReplyObject(r);
        if (redis_command_argv(w->client, 2, incr, NULL, &r, NULL) != TSG_OK) w->failures++;
        freeReplyObject(r);
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture *f = *state;
    start_embedded(f, &fast_opts);
    enum { N = 8 };
    pthread_t th[N];
    worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){f->client, i + 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    get_is(f->client, "counter", "1600");
    redis_client_stats st;
    redis_client_stats_get(f->client, &st);
    assert_true(st.connects >= N + 1); /* one connection per thread */
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.reconnects, 0);
}

/* connected_clients of the server, asked through c */
static long connected_clients(redis_client *c)
{
    redisReply *r;
    tsg_error e;
    assert_int_equal(cmd(c, &r, &e, 2, "INFO", "clients"), TSG_OK);
    const char *p = strstr(r->str, "connected_clients:");
    assert_non_null(p);
    long n = strtol(p + 18, NULL, 10);
    freeReplyObject(r);
    return n;
}

typedef struct holder {
    redis_client *client;
    pthread_barrier_t *connected, *release;
    tsg_rc rc;
} holder;

static void *holder_run(void *arg)
{
    holder *h = arg;
    h->rc = redis_client_ready(h->client, NULL);
    pthread_barrier_wait(h->connected);
    pthread_barrier_wait(h->release);
    return NULL; /* the thread's connection is closed as it exits */
}

static void test_thread_exit_closes(void **state)
{
    fixture *f = *state;
    start_embedded(f, &fast_opts);
    long base = connected_clients(f->client);
    enum { N = 4 };
    pthread_barrier_t connected, release;
    pthread_barrier_init(&connected, NULL, N + 1);
    pthread_barrier_init(&release, NULL, N + 1);
    pthread_t th[N];
    holder h[N];
    for (int i = 0; i < N; i++) {
        h[i] = (holder){f->client, &connected, &release, TSG_EINTERNAL};
        assert_int_equal(pthread_create(&th[i], NULL, holder_run, &h[i]), 0);
    }
    pthread_barrier_wait(&connected);
    assert_int_equal(connected_clients(f->client), base + N); /* one connection per thread */
    pthread_barrier_wait(&release);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(h[i].rc, TSG_OK);
    }
    int64_t deadline = now_ms() + 5000;
    while (connected_clients(f->client) != base && now_ms() < deadline) sleep_ms(10);
    assert_int_equal(connected_clients(f->client), base);
    pthread_barrier_destroy(&connected);
    pthread_barrier_destroy(&release);
}

static void test_pipeline(void **state)
{
    fixture *f = *state;
    start_embedded(f, &fast_opts);
    const char *multi[] = {"MULTI"}, *set[] = {"SET", "a", "1"}, *incr[] = {"INCR", "a"},
               *exec[] = {"EXEC"};
    redis_cmd cmds[] = {{1, multi, NULL}, {3, set, NULL}, {2, incr, NULL}, {1, exec, NULL}};
    redisReply *rep[4];
    tsg_error e;
    assert_int_equal(redis_pipeline(f->client, 4, cmds, rep, &e), TSG_OK);
    assert_int_equal(rep[3]->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep[3]->elements, 2);
    assert_int_equal(rep[3]->element[1]->integer, 2);
    for (int i = 0; i < 4; i++) freeReplyObject(rep[i]);

    /* an error reply in the middle: TSG_EIO naming it, every reply present */
    const char *bad[] = {"LPUSH", "a", "x"}, *get[] = {"GET", "a"};
    redis_cmd cmds2[] = {{3, bad, NULL}, {2, get, NULL}};
    assert_int_equal(redis_pipeline(f->client, 2, cmds2, rep, &e), TSG_EIO);
    assert_non_null(strstr(e.message, "WRONGTYPE"));
    assert_int_equal(rep[0]->type, REDIS_REPLY_ERROR);
    assert_string_equal(rep[1]->str, "2");
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);

    /* a single error reply is handed back too; the connection stays usable */
    redisReply *r;
    assert_int_equal(cmd(f->client, &r, &e, 2, "NOSUCHCOMMAND", "x"), TSG_EIO);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(e.message, "redis: ERR unknown command"));
    freeReplyObject(r);
    get_is(f->client, "a", "2");
    redis_client_stats st;
    redis_client_stats_get(f->client, &st);
    assert_int_equal(st.reconnects, 0);
}

static void test_evalsha_noscript(void **state)
{
    fixture *f = *state;
    start_embedded(f, &fast_opts);
    static redis_script incr =
        REDIS_SCRIPT("incrby", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    const char *keys[] = {"n"}, *args[] = {"5"};
    redisReply *r;
    tsg_error e;
    /* unknown to the server at first: NOSCRIPT, SCRIPT LOAD, retry */
    assert_int_equal(redis_eval_script(f->client, &incr, 1, keys, NULL, 1, args, NULL, &r, &e),
                     TSG_OK);
    assert_int_equal(r->integer, 5);
    freeReplyObject(r);
    assert_int_equal(redis_eval_script(f->client, &incr, 1, keys, NULL, 1, args, NULL, &r, &e),
                     TSG_OK);
    assert_int_equal(r->integer, 10);
    freeReplyObject(r);
    assert_int_equal(cmd(f->client, &r, &e, 2, "SCRIPT", "FLUSH"), TSG_OK);
    freeReplyObject(r);
    assert_int_equal(redis_eval_script(f->client, &incr, 1, keys, NULL, 1, args, NULL, &r, &e),
                     TSG_OK);
    assert_int_equal(r->integer, 15);
    freeReplyObject(r);
    assert_int_equal(cmd(f->client, &r, &e, 3, "SCRIPT", "EXISTS", redis_script_sha1(&incr)),
                     TSG_OK);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);

    /* an error raised by the script */
    static redis_script boom = REDIS_SCRIPT("boom", "return redis.error_reply('ERR boom')");
    assert_int_equal(redis_eval_script(f->client, &boom, 0, NULL, NULL, 0, NULL, NULL, &r, &e),
                     TSG_EIO);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(e.message, "boom"));
    freeReplyObject(r);
}

static void test_leftovers(void **state)
{
    fixture *f = *state;
    char data[128], sock[160];
    snprintf(data, sizeof data, "%s/data", f->dir);
    snprintf(sock, sizeof sock, "%s/redis.sock", data);
    assert_int_equal(mkdir(data, 0700), 0);

    /* a stale socket file with nobody behind it */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    assert_true(strlen(sock) < sizeof a.sun_path);
    memcpy(a.sun_path, sock, strlen(sock) + 1);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    close(s);
    start_embedded(f, &fast_opts);
    set_ok(f->client, "k", "1");

    /* a second gateway on the same directory is refused */
    redis_embedded *second = NULL;
    tsg_error e;
    assert_int_equal(redis_embedded_start(data, &fast_opts, &second, &e), TSG_EIO);
    assert_null(second);
    assert_non_null(strstr(e.message, "in use by another tsunagu"));
    stop_embedded(f);

    /* an orphaned redis-server on our socket (a crashed gateway's) is shut down */
    pid_t orphan = start_external(f, sock, 0, NULL, "--port", "0", "--unixsocket", sock, "--dir",
                                  data, "--appendonly", "yes", "--save", "", NULL);
    start_embedded(f, &fast_opts);
    int status;
    assert_int_equal(waitpid(orphan, &status, 0), orphan);
    f->external[f->n_external - 1] = 0;
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* shut down, not killed */
    assert_true(redis_embedded_pid(f->emb) != orphan);
    get_is(f->client, "k", "1");
}

static void test_start_failures(void **state)
{
    fixture *f = *state;
    redis_embedded *e = NULL;
    tsg_error err;
    char path[200];

    /* redis-server refuses the configuration: the log tail says why */
    redis_embedded_options o = fast_opts;
    o.appendfsync = "sometimes";
    snprintf(path, sizeof path, "%s/a", f->dir);
    assert_int_equal(redis_embedded_start(path, &o, &e, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "appendfsync"));

    o = fast_opts;
    o.server_path = "/bin/false";
    int64_t t0 = now_ms();
    assert_int_equal(redis_embedded_start(path, &o, &e, &err), TSG_EIO);
    assert_true(now_ms() - t0 < 5000);
    assert_null(e);
    assert_non_null(strstr(err.message, "exited with status 1"));

    /* redis-server itself fails (its AOF directory is a file): its own words */
    char aofdir[256];
    snprintf(path, sizeof path, "%s/b", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(aofdir, sizeof aofdir, "%s/appendonlydir", path);
    int afd = open(aofdir, O_CREAT | O_WRONLY, 0600);
    assert_true(afd >= 0);
    close(afd);
    t0 = now_ms();
    assert_int_equal(redis_embedded_start(path, &fast_opts, &e, &err), TSG_EIO);
    assert_true(now_ms() - t0 < 9000);
    assert_null(e);
    assert_non_null(strstr(err.message, "at start"));
    assert_non_null(strstr(err.message, "redis.log says"));
    assert_non_null(strstr(err.message, "appendonlydir"));
    snprintf(path, sizeof path, "%s/a", f->dir);

    o.server_path = "/nonexistent/redis-server";
    assert_int_equal(redis_embedded_start(path, &o, &e, &err), TSG_EIO);
    assert_non_null(strstr(err.message, "not executable"));

    /* the data directory is a file */
    snprintf(path, sizeof path, "%s/file", f->dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_equal(redis_embedded_start(path, NULL, &e, &err), TSG_EIO);
    assert_non_null(strstr(err.message, "cannot create the data directory"));

    /* too long for a socket path */
    char longdir[200];
    int n = snprintf(longdir, sizeof longdir, "%s/", f->dir);
    memset(longdir + n, 'd', 120);
    longdir[n + 120] = '\0';
    assert_int_equal(redis_embedded_start(longdir, NULL, &e, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "too long for a Unix socket"));
}

static void test_parent_death(void **state)
{
    fixture *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* a gateway that starts its Redis and is then killed with -9 */
        char data[128];
        snprintf(data, sizeof data, "%s/data", f->dir);
        redis_embedded *e;
        pid_t rp = 0;
        if (redis_embedded_start(data, &fast_opts, &e, NULL) == TSG_OK) rp = redis_embedded_pid(e);
        ssize_t w = write(p[1], &rp, sizeof rp);
        (void)w;
        for (;;) pause();
    }
    assert_true(f->n_external < MAX_EXTERNAL);
    f->external[f->n_external++] = child; /* teardown kills it if we fail here */
    close(p[1]);
    pid_t rp = 0;
    assert_int_equal(read(p[0], &rp, sizeof rp), (ssize_t)sizeof rp);
    close(p[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    f->external[f->n_external - 1] = 0;
    assert_true(rp > 0);
    int64_t deadline = now_ms() + 10000;
    while (!process_gone(rp) && now_ms() < deadline) sleep_ms(20);
    int gone = process_gone(rp);
    if (!gone) kill(rp, SIGKILL);
    assert_true(gone); /* PR_SET_PDEATHSIG took it down with its parent */

    /* and the directory is usable again (lock released with the process) */
    start_embedded(f, &fast_opts);
    assert_int_equal(redis_client_ready(f->client, NULL), TSG_OK);
}

/* ------------------------------------------------------------------------
 * External servers
 * ------------------------------------------------------------------------ */

static void test_external_unix(void **state)
{
    fixture *f = *state;
    char sock[128], url[200];
    snprintf(sock, sizeof sock, "%s/ext.sock", f->dir);
    pid_t pid = start_external(f, sock, 0, NULL, "--port", "0", "--unixsocket", sock, "--save", "",
                               "--appendonly", "no", "--dir", f->dir, NULL);
    redis_target t;
    tsg_error e;
    snprintf(url, sizeof url, "unix://%s?db=2", sock);
    assert_int_equal(redis_target_parse(url, &t, &e), TSG_OK);
    assert_int_equal(redis_client_new(&t, NULL, &f->client, &e), TSG_OK);
    set_ok(f->client, "only-in-2", "yes");
    snprintf(url, sizeof url, "unix://%s", sock);
    assert_int_equal(redis_target_parse(url, &t, &e), TSG_OK);
    assert_int_equal(redis_client_new(&t, NULL, &f->client2, &e), TSG_OK);
    get_is(f->client2, "only-in-2", NULL); /* SELECT 2 was applied to the first */
    get_is(f->client, "only-in-2", "yes");

    /* a hung server (SIGSTOP): the call times out instead of hanging, and
     * then calls fail at once while the window is open */
    redis_client *quick;
    redis_client_options qo = {.command_timeout_ms = 300, .backoff_min_ms = 2000};
    assert_int_equal(redis_client_new(&t, &qo, &quick, &e), TSG_OK);
    assert_int_equal(redis_client_ready(quick, &e), TSG_OK);
    kill(pid, SIGSTOP);
    redisReply *r;
    int64_t t0 = now_ms();
    tsg_rc rc = cmd(quick, &r, &e, 2, "GET", "x");
    int64_t took = now_ms() - t0;
    kill(pid, SIGCONT);
    assert_int_equal(rc, TSG_EIO);
    assert_null(r);
    assert_non_null(strstr(e.message, "no answer within 300 ms"));
    assert_true(took >= 250 && took < 3000);
    t0 = now_ms();
    assert_int_equal(cmd(quick, &r, &e, 2, "GET", "x"), TSG_EIO);
    assert_true(now_ms() - t0 < 1000); /* at once: no connect, no wait */
    assert_non_null(strstr(e.message, "retrying in"));
    redis_client_free(quick);
}

/* The retry delay an error message announces ("retrying in N ms"), -1 none. */
static long retry_in(const char *msg)
{
    const char *p = strstr(msg, "retrying in ");
    return p ? strtol(p + 12, NULL, 10) : -1;
}

typedef struct prober {
    redis_client *client;
    pthread_barrier_t *go;
    tsg_rc rc;
} prober;

static void *prober_run(void *arg)
{
    prober *p = arg;
    pthread_barrier_wait(p->go);
    p->rc = redis_client_ready(p->client, NULL);
    return NULL;
}

static void test_backoff_window(void **state)
{
    fixture *f = *state;
    char sock[128], url[200];
    snprintf(sock, sizeof sock, "%s/later.sock", f->dir);
    snprintf(url, sizeof url, "unix://%s", sock);
    redis_target t;
    tsg_error e;
    assert_int_equal(redis_target_parse(url, &t, &e), TSG_OK);
    redis_client_options o = {.backoff_min_ms = 500, .backoff_max_ms = 1000};
    assert_int_equal(redis_client_new(&t, &o, &f->client, &e), TSG_OK);

    /* nobody there: the first call tries and opens a 500 ms window */
    assert_int_equal(redis_client_ready(f->client, &e), TSG_EIO);
    assert_int_equal(retry_in(e.message), -1);
    assert_non_null(strstr(e.message, "connect:"));
    assert_int_equal(redis_client_ready(f->client, &e), TSG_EIO);
    long left = retry_in(e.message);
    assert_true(left >= 0 && left <= 500);

    /* after it, many threads at once: one probes, the others fail fast */
    sleep_ms(550);
    redis_client_stats before, after;
    redis_client_stats_get(f->client, &before);
    enum { N = 6 };
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    pthread_t th[N];
    prober p[N];
    for (int i = 0; i < N; i++) {
        p[i] = (prober){f->client, &go, TSG_OK};
        assert_int_equal(pthread_create(&th[i], NULL, prober_run, &p[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(p[i].rc, TSG_EIO);
    }
    pthread_barrier_destroy(&go);
    redis_client_stats_get(f->client, &after);
    assert_int_equal(after.fast_fails - before.fast_fails, N - 1);
    /* the failed probe doubled the window, up to the cap */
    assert_int_equal(redis_client_ready(f->client, &e), TSG_EIO);
    left = retry_in(e.message);
    assert_true(left > 500 && left <= 1000);

    /* the server appears: within one window, calls work again */
    start_external(f, sock, 0, NULL, "--port", "0", "--unixsocket", sock, "--save", "",
                   "--appendonly", "no", "--dir", f->dir, NULL);
    int64_t t0 = now_ms();
    while (redis_client_ready(f->client, &e) != TSG_OK) {
        if (now_ms() - t0 > 3000) fail_msg("no recovery: %s", e.message);
        sleep_ms(10);
    }
    assert_int_equal(redis_client_ready(f->client, &e), TSG_OK);
}

static void test_external_tcp_password(void **state)
{
    fixture *f = *state;
    int port = free_port();
    char ports[16], url[200];
    snprintf(ports, sizeof ports, "%d", port);
    start_external(f, NULL, port, "hunter2", "--port", ports, "--bind", "127.0.0.1",
                   "--requirepass", "hunter2", "--save", "", "--appendonly", "no", "--dir", f->dir,
                   NULL);
    redis_target t;
    tsg_error e;
    snprintf(url, sizeof url, "redis://:hunter2@127.0.0.1:%d/1", port);
    assert_int_equal(redis_target_parse(url, &t, &e), TSG_OK);
    assert_int_equal(redis_client_new(&t, NULL, &f->client, &e), TSG_OK);
    assert_int_equal(redis_client_ready(f->client, &e), TSG_OK);
    set_ok(f->client, "k", "tcp");
    get_is(f->client, "k", "tcp");

    /* Redis 6 ACL form: user "default" */
    snprintf(url, sizeof url, "redis://default:hunter2@127.0.0.1:%d/1", port);
    assert_int_equal(redis_target_parse(url, &t, &e), TSG_OK);
    assert_int_equal(redis_client_new(&t, NULL, &f->client2, &e), TSG_OK);
    get_is(f->client2, "k", "tcp");
    redis_client_free(f->client2);
    f->client2 = NULL;

    /* a wrong password: a clear error, without the password */
    snprintf(url, sizeof url, "redis://:wrong-pw@127.0.0.1:%d", port);
    assert_int_equal(redis_target_parse(url, &t, &e), TSG_OK);
    assert_int_equal(redis_client_new(&t, NULL, &f->client2, &e), TSG_OK);
    assert_int_equal(redis_client_ready(f->client2, &e), TSG_EIO);
    assert_non_null(strstr(e.message, "AUTH failed"));
    assert_non_null(strstr(e.message, "WRONGPASS"));
    assert_null(strstr(e.message, "wrong-pw"));
    redis_client_free(f->client2);
    f->client2 = NULL;

    /* no password at all: the server's NOAUTH comes back as an error reply */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    assert_int_equal(redis_target_parse(url, &t, &e), TSG_OK);
    assert_int_equal(redis_client_new(&t, NULL, &f->client2, &e), TSG_OK);
    redisReply *r;
    assert_int_equal(cmd(f->client2, &r, &e, 2, "GET", "k"), TSG_EIO);
    assert_non_null(strstr(e.message, "NOAUTH"));
    freeReplyObject(r);

    /* nobody listening: refused at once */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    redis_client *none;
    assert_int_equal(redis_target_parse(url, &t, &e), TSG_OK);
    assert_int_equal(redis_client_new(&t, NULL, &none, &e), TSG_OK);
    assert_int_equal(redis_client_ready(none, &e), TSG_EIO);
    assert_non_null(strstr(e.message, "redis unavailable"));
    redis_client_free(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),
        cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_url_random),
        cmocka_unit_test(test_sha1),
        cmocka_unit_test_setup_teardown(test_embedded_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_kill9_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_restart_between_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_down_fails_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_exit_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evalsha_noscript, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_death, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_unix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_tcp_password, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
