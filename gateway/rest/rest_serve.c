/*
 * rest_serve.c — `tsunagu serve`: configuration, Redis (embedded or external),
 * the store, the HTTP server and its routes, readiness and metrics hooks, and
 * an orderly stop (rest.h).
 */
#include "rest_internal.h"

#include "../auth/auth_http.h"
#include "../store/redis.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /readyz: Redis answers PING on this thread's connection. */
static bool ready(void *user_data, tsg_buf *why)
{
    rest_ctx *ctx = user_data;
    tsg_error err;
    tsg_error_clear(&err);
    if (redis_client_ready(ctx->redis, &err) == TSG_OK) return true;
    tsg_buf_puts(why, err.message);
    return false;
}

/* /metrics: the Redis client's counters. */
static auth_journal *metrics_journal; /* the audit journal, for /metrics (NULL: none) */

static void metrics(tsg_buf *out, void *user_data)
{
    rest_ctx *ctx = user_data;
    redis_client_stats st;
    redis_client_stats_get(ctx->redis, &st);
    tsg_buf_printf(out,
                   "# HELP tsunagu_redis_commands_total Redis commands sent.\n"
                   "# TYPE tsunagu_redis_commands_total counter\n"
                   "tsunagu_redis_commands_total %llu\n"
                   "# HELP tsunagu_redis_errors_total Failed Redis calls (error replies, I/O "
                   "errors, calls refused while Redis is unreachable).\n"
                   "# TYPE tsunagu_redis_errors_total counter\n"
                   "tsunagu_redis_errors_total %llu\n"
                   "# HELP tsunagu_redis_reconnects_total Redis connections reopened after a "
                   "loss.\n"
                   "# TYPE tsunagu_redis_reconnects_total counter\n"
                   "tsunagu_redis_reconnects_total %llu\n",
                   (unsigned long long)st.commands, (unsigned long long)st.errors,
                   (unsigned long long)st.reconnects);
    if (!metrics_journal) return;
    auth_journal_stats js;
    auth_journal_stats_get(metrics_journal, &js);
    tsg_buf_printf(out,
                   "# HELP tsunagu_audit_records_total Audit records written to the journal.\n"
                   "# TYPE tsunagu_audit_records_total counter\n"
                   "tsunagu_audit_records_total %llu\n"
                   "# HELP tsunagu_audit_backlog_bytes Audit records in the journal that Redis "
                   "does not have yet.\n"
                   "# TYPE tsunagu_audit_backlog_bytes gauge\n"
                   "tsunagu_audit_backlog_bytes %llu\n"
                   "# HELP tsunagu_audit_fsyncs_total fdatasyncs of the audit journal.\n"
                   "# TYPE tsunagu_audit_fsyncs_total counter\n"
                   "tsunagu_audit_fsyncs_total %llu\n"
                   "# HELP tsunagu_audit_shipments_total Batches of audit records shipped to "
                   "Redis.\n"
                   "# TYPE tsunagu_audit_shipments_total counter\n"
                   "tsunagu_audit_shipments_total %llu\n"
                   "# HELP tsunagu_audit_ship_failures_total Shipments Redis refused or missed "
                   "(retried).\n"
                   "# TYPE tsunagu_audit_ship_failures_total counter\n"
                   "tsunagu_audit_ship_failures_total %llu\n"
                   "# HELP tsunagu_audit_journal_failures_total Journal writes or fdatasyncs that "
                   "failed.\n"
                   "# TYPE tsunagu_audit_journal_failures_total counter\n"
                   "tsunagu_audit_journal_failures_total %llu\n"
                   "# HELP tsunagu_audit_refused_total Requests refused because the journal held "
                   "its limit.\n"
                   "# TYPE tsunagu_audit_refused_total counter\n"
                   "tsunagu_audit_refused_total %llu\n"
                   "# HELP tsunagu_audit_orphans_total Journals of stopped gateways drained.\n"
                   "# TYPE tsunagu_audit_orphans_total counter\n"
                   "tsunagu_audit_orphans_total %llu\n",
                   js.records, js.backlog_bytes, js.syncs, js.shipments, js.ship_failures,
                   js.failures, js.refused, js.orphans);
}

int rest_serve(const char *config_file)
{
    /* SIGTERM/SIGINT are taken by http_server_run(); block them before any
     * thread (Redis supervisor, HTTP pool) starts so they inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit fails the write (EFBIG), not the process */

    tsg_error err;
    tsg_error_clear(&err);
    http_config cfg;
    if (http_config_load(&cfg, config_file, &err)) {
        fprintf(stderr, "tsunagu serve: configuration: %s\n", err.message);
        return 1;
    }
    search_params_load();
    /* Requests allocate arenas of several MB (a Bundle, its trees, index
     * entries) and free them at once. With glibc's defaults such blocks are
     * mmap()ed and unmapped each time, so every request pays page faults on
     * fresh memory (a quarter of the CPU of a Bundle ingest). Keep them in
     * the heap for reuse instead. */
    mallopt(M_MMAP_THRESHOLD, REST_MALLOC_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, REST_MALLOC_TRIM_THRESHOLD);
    /* A request holds its thread while it waits for Redis (and, on a write,
     * for the AOF fsync), so the FHIR gateway wants many more threads than
     * cores: more writes in flight let Redis fsync them together (creates/s
     * here: 16 threads 2,500, 64 threads 3,400). */
    if (!cfg.threads) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned want = cpus > 0 ? (unsigned)cpus * 32 : REST_DEFAULT_THREADS;
        cfg.threads = want < REST_DEFAULT_THREADS       ? REST_DEFAULT_THREADS
                      : want > REST_MAX_DEFAULT_THREADS ? REST_MAX_DEFAULT_THREADS
                                                        : want;
    }

    int status = 1;
    redis_embedded *emb = NULL;
    redis_client *client = NULL;
    store *st = NULL;
    http_server *srv = NULL;
    rest_ctx ctx = {0};
    rest_validation *val = NULL;
    auth_service *auth = NULL;
    auth_audit *audit = NULL;
    auth_journal *journal = NULL;
    static auth_http auth_web;
    /* the server first (nothing listens yet): a bad TLS certificate or key
     * stops serve before Redis or the profiles are loaded */
    if (!(srv = http_server_new(&cfg, &err))) {
        fprintf(stderr, "tsunagu serve: %s\n", err.message);
        goto done;
    }
    ctx.srv = srv;
    if (redis_open(cfg.redis_url[0] ? cfg.redis_url : NULL, cfg.data_dir, NULL, NULL, &emb, &client,
                   &err)) {
        fprintf(stderr, "tsunagu serve: redis: %s\n", err.message);
        goto done;
    }
    if (store_new(client, &st, &err)) {
        fprintf(stderr, "tsunagu serve: %s\n", err.message);
        goto done;
    }
    tsg_rc frc = store_format_check(st, &err);
    if (frc == TSG_EIO) {
        fprintf(stderr, "tsunagu serve: WARNING: could not check the data format: %s\n",
                err.message);
    } else if (frc) {
        fprintf(stderr, "tsunagu serve: %s\n", err.message);
        goto done;
    }
    ctx.st = st;
    ctx.redis = client;
    ctx.max_bundle_entries = REST_LIMIT_BUNDLE;
    if (rest_validation_open(cfg.validate, cfg.profile_paths, cfg.type_profiles, &val, &err)) {
        fprintf(stderr, "tsunagu serve: %s\n", err.message);
        goto done;
    }
    ctx.val = val;
    {
        char what[256];
        rest_validation_describe(val, what, sizeof what);
        fprintf(stderr, "tsunagu serve: %s\n", what);
    }
    if (http_route_add(srv, "/fhir", HTTP_GET | HTTP_POST | HTTP_PUT | HTTP_DELETE | HTTP_PATCH,
                       HTTP_ROUTE_NEGOTIATE, fhir_handle, &ctx, &err)) {
        fprintf(stderr, "tsunagu serve: %s\n", err.message);
        goto done;
    }
    /* Authentication (gateway/auth/auth.h): on unless configured off. */
    if (!strcmp(cfg.auth, "on")) {
        auth_config acfg = {.enabled = true,
                            .token_lifetime_s = cfg.auth_token_lifetime_s,
                            .rate_per_s = cfg.auth_rate_per_s,
                            .rate_burst = cfg.auth_rate_burst};
        snprintf(acfg.audience, sizeof acfg.audience, "%s", cfg.public_url);
        if (auth_service_new(client, &acfg, &auth, &err)) {
            fprintf(stderr, "tsunagu serve: auth: %s\n", err.message);
            goto done;
        }
        auth_web.svc = auth;
        snprintf(auth_web.public_url, sizeof auth_web.public_url, "%s", cfg.public_url);
        if (http_route_add(srv, "/auth", HTTP_GET | HTTP_POST, 0, auth_http_handle, &auth_web,
                           &err) ||
            http_route_add(srv, "/.well-known", HTTP_GET, 0, auth_http_wellknown, &auth_web,
                           &err)) {
            fprintf(stderr, "tsunagu serve: %s\n", err.message);
            goto done;
        }
        http_server_set_gate(srv, auth_http_gate, &auth_web);
        /* whose data each client sees: care teams and consents (rest_internal.h, "Access") */
        if (rest_access_new(client, st, cfg.consent_default, &ctx.access, &err)) {
            fprintf(stderr, "tsunagu serve: %s\n", err.message);
            goto done;
        }
        /* the audit trail (auth.h, "Audit"): a record per request before its answer */
        if (!strcmp(cfg.audit, "on")) {
            char jdir[sizeof cfg.data_dir + 16];
            snprintf(jdir, sizeof jdir, "%s/audit-journal", cfg.data_dir);
            auth_journal_options jo = {.dir = jdir,
                                       .max_backlog_bytes = (uint64_t)cfg.audit_journal_max_mb
                                                            << 20,
                                       .fsync_always = !strcmp(cfg.audit_fsync, "always")};
            if (auth_journal_open(client, &jo, &journal, &err) ||
                auth_audit_new(client, journal, cfg.audit_retention_days, &audit, &err) ||
                http_route_add(srv, "/fhir/AuditEvent", HTTP_GET, 0, auth_http_audit, &auth_web,
                               &err)) {
                fprintf(stderr, "tsunagu serve: audit: %s\n", err.message);
                goto done;
            }
            auth_web.audit = audit;
            metrics_journal = journal;
            http_server_set_finish(srv, auth_http_finish, &auth_web);
            /* a write's record goes into its own MULTI … EXEC (rest_commit) */
            ctx.record = auth_http_record;
            ctx.record_ud = &auth_web;
        } else {
            fprintf(stderr, "tsunagu serve: WARNING: the audit trail is OFF (TSUNAGU_AUDIT=off): "
                            "requests leave no record\n");
        }
    } else {
        fprintf(stderr, "tsunagu serve: WARNING: authentication is OFF (TSUNAGU_AUTH=off): "
                        "every request is served without a token; never do this with real "
                        "data\n");
    }
    http_server_set_ready(srv, ready, &ctx);
    http_server_set_metrics_hook(srv, metrics, &ctx);
    if (http_server_start(srv, &err)) {
        fprintf(stderr, "tsunagu serve: %s\n", err.message);
        goto done;
    }
    char where[REDIS_URL_MAX + 64] = "";
    if (!emb) {
        redis_target t;
        if (redis_target_parse(cfg.redis_url, &t, NULL) == TSG_OK)
            redis_target_describe(&t, where, sizeof where);
    }
    /* never the URL as configured: it may hold the password */
    fprintf(stderr, "tsunagu serve: listening on %s (port %u)%s, Redis %s, auth %s, audit %s\n",
            cfg.listen, (unsigned)http_server_port(srv), cfg.tls_cert[0] ? " with HTTPS only" : "",
            emb ? "embedded" : where, cfg.auth, strcmp(cfg.auth, "on") ? "off" : cfg.audit);
    int sig = http_server_run(srv);
    fprintf(stderr, "tsunagu serve: stopped%s\n", sig ? " on a signal" : "");
    status = 0;
done:
    if (srv) http_server_stop(srv);
    http_server_free(srv);
    metrics_journal = NULL;
    auth_journal_close(journal); /* after the last request; ships while Redis still runs */
    rest_access_free(ctx.access);
    store_free(st);
    auth_audit_free(audit);
    auth_service_free(auth);
    redis_client_free(client);
    rest_validation_free(val);
    if (emb) redis_embedded_stop(emb);
    return status;
}
