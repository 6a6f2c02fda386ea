/*
 * rest.h — `tsunagu serve`: the FHIR R4 REST gateway (capabilities C4, C12).
 *
 * rest_serve() reads the configuration (TSUNAGU_CONFIG file, overridden by
 * the environment: http.h), opens Redis (embedded unless TSUNAGU_REDIS_URL is
 * set: store/redis.h), and serves until SIGTERM or SIGINT:
 *
 *   /fhir/...   the FHIR REST API (fhir_rest.c: interactions, rest_internal.h)
 *   /healthz    the process runs
 *   /readyz     Redis answers PING
 *   /metrics    Prometheus text: requests by interaction and status, latency,
 *               Redis counters
 *
 * On SIGTERM it stops accepting, drains in-flight requests, stops the
 * embedded Redis (which fsyncs its AOF) and returns.
 */
#ifndef TSG_REST_H
#define TSG_REST_H

/*
 * Runs the gateway with the configuration file config_file (NULL: the
 * TSUNAGU_CONFIG environment variable, else none). Blocks until stopped.
 * Returns 0 after a clean stop, 1 when it could not start (the reason is on
 * stderr).
 */
int rest_serve(const char *config_file);

#endif
