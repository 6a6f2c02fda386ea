/*
 * http_config.c — the gateway configuration: defaults, the JSON file, the
 * environment; and listen address parsing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/outbound.h"
#include "http.h"

void http_config_default(http_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen, sizeof cfg->listen, "%s", "127.0.0.1:8080");
    cfg->threads = 0;
    cfg->max_connections = 1024;
    cfg->connection_timeout_s = 30;
    cfg->max_body_bytes = TSG_LIMIT_BODY_BYTES;
    cfg->drain_timeout_s = 10;
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", "./var");
    cfg->redis_url[0] = '\0';
    snprintf(cfg->auth, sizeof cfg->auth, "%s", "on");
    cfg->auth_token_lifetime_s = 300;
    cfg->auth_rate_per_s = 200;
    cfg->auth_rate_burst = 0;
    cfg->public_url[0] = '\0';
    snprintf(cfg->audit, sizeof cfg->audit, "%s", "on");
    snprintf(cfg->audit_fsync, sizeof cfg->audit_fsync, "%s", "interval");
    cfg->audit_retention_days = 1825;
    cfg->audit_journal_max_mb = 1024;
    snprintf(cfg->validate, sizeof cfg->validate, "%s", "base");
    snprintf(cfg->profile_paths, sizeof cfg->profile_paths, "%s", "profiles");
    cfg->type_profiles[0] = '\0';
    snprintf(cfg->consent_default, sizeof cfg->consent_default, "%s", "deny");
    cfg->tls_cert[0] = '\0';
    cfg->tls_key[0] = '\0';
    cfg->outbound_allow[0] = '\0';
    snprintf(cfg->outbound_allow_private, sizeof cfg->outbound_allow_private, "%s", "off");
    snprintf(cfg->outbound_allow_http, sizeof cfg->outbound_allow_http, "%s", "off");
}

tsg_rc http_listen_parse(const char *s, struct sockaddr_storage *addr, socklen_t *addr_len,
                         tsg_error *err)
{
    if (!s || !*s) return tsg_error_set(err, TSG_EINVAL, "invalid", "listen address is empty");
    const char *colon;
    char host[INET6_ADDRSTRLEN + 1];
    bool v6 = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "listen address '%s': expected [ipv6]:port", s);
        size_t hl = (size_t)(close - s - 1);
        if (hl == 0 || hl >= sizeof host)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "listen address '%s': bad IPv6 address", s);
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        colon = close + 1;
        v6 = true;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "listen address '%s': expected host:port (e.g. 127.0.0.1:8080)",
                                 s);
        size_t hl = (size_t)(colon - s);
        if (hl >= sizeof host || memchr(s, ':', hl))
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "listen address '%s': an IPv6 address needs brackets ([::1]:8080)",
                                 s);
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "%s", "127.0.0.1");
    }
    const char *ps = colon + 1;
    if (*ps == '\0')
        return tsg_error_set(err, TSG_EINVAL, "invalid", "listen address '%s': no port", s);
    unsigned long port = 0;
    for (const char *p = ps; *p; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "listen address '%s': port must be a number 0-65535", s);
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "listen address '%s': port must be a number 0-65535", s);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (v6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "listen address '%s': '%s' is not an IPv6 address", s, host);
        len = sizeof *a6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "listen address '%s': '%s' is not an IPv4 address", s, host);
        len = sizeof *a4;
    }
    if (addr) *addr = ss;
    if (addr_len) *addr_len = len;
    return TSG_OK;
}

/* Parses a decimal unsigned number in [lo, hi]. */
static bool parse_num(const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

#define MAX_BODY_LIMIT ((unsigned long long)TSG_LIMIT_BODY_BYTES * 16u)

typedef struct num_key {
    const char *json;
    const char *env;
    unsigned long long lo, hi;
    size_t off;
    bool is_size;
} num_key;

static const num_key NUM_KEYS[] = {
    {"threads", "TSUNAGU_THREADS", 0, 1024, offsetof(http_config, threads), false},
    {"max_connections", "TSUNAGU_MAX_CONNECTIONS", 1, 1000000,
     offsetof(http_config, max_connections), false},
    {"connection_timeout_s", "TSUNAGU_CONNECTION_TIMEOUT", 1, 86400,
     offsetof(http_config, connection_timeout_s), false},
    {"max_body_bytes", "TSUNAGU_MAX_BODY_BYTES", 1, MAX_BODY_LIMIT,
     offsetof(http_config, max_body_bytes), true},
    {"drain_timeout_s", "TSUNAGU_DRAIN_TIMEOUT", 0, 3600, offsetof(http_config, drain_timeout_s),
     false},
    {"auth_token_lifetime_s", "TSUNAGU_AUTH_TOKEN_LIFETIME", 60, 3600,
     offsetof(http_config, auth_token_lifetime_s), false},
    {"auth_rate_per_s", "TSUNAGU_AUTH_RATE", 0, 1000000, offsetof(http_config, auth_rate_per_s),
     false},
    {"auth_rate_burst", "TSUNAGU_AUTH_BURST", 0, 10000000, offsetof(http_config, auth_rate_burst),
     false},
    {"audit_retention_days", "TSUNAGU_AUDIT_RETENTION_DAYS", 0, 36500,
     offsetof(http_config, audit_retention_days), false},
    {"audit_journal_max_mb", "TSUNAGU_AUDIT_JOURNAL_MAX_MB", 1, 1048576,
     offsetof(http_config, audit_journal_max_mb), false},
};

typedef struct str_key {
    const char *json;
    const char *env;
    size_t off;
    size_t size;
    bool empty_ok;
} str_key;

static const str_key STR_KEYS[] = {
    {"listen", "TSUNAGU_LISTEN", offsetof(http_config, listen), HTTP_LISTEN_MAX, false},
    {"data_dir", "TSUNAGU_DATA_DIR", offsetof(http_config, data_dir), HTTP_PATH_MAX, false},
    {"redis_url", "TSUNAGU_REDIS_URL", offsetof(http_config, redis_url), HTTP_URL_MAX, true},
    {"auth", "TSUNAGU_AUTH", offsetof(http_config, auth), 8, false},
    {"audit", "TSUNAGU_AUDIT", offsetof(http_config, audit), 8, false},
    {"audit_fsync", "TSUNAGU_AUDIT_FSYNC", offsetof(http_config, audit_fsync), 16, false},
    {"public_url", "TSUNAGU_PUBLIC_URL", offsetof(http_config, public_url), HTTP_URL_MAX, true},
    {"validate", "TSUNAGU_VALIDATE", offsetof(http_config, validate), HTTP_URL_MAX, false},
    {"profile_paths", "TSUNAGU_PROFILE_PATHS", offsetof(http_config, profile_paths), HTTP_PATH_MAX,
     true},
    {"consent_default", "TSUNAGU_CONSENT_DEFAULT", offsetof(http_config, consent_default), 16,
     false},
    {"type_profiles", "TSUNAGU_TYPE_PROFILES", offsetof(http_config, type_profiles), HTTP_PATH_MAX,
     true},
    {"tls_cert", "TSUNAGU_TLS_CERT", offsetof(http_config, tls_cert), HTTP_PATH_MAX, true},
    {"tls_key", "TSUNAGU_TLS_KEY", offsetof(http_config, tls_key), HTTP_PATH_MAX, true},
    {"outbound_allow", "TSUNAGU_OUTBOUND_ALLOW", offsetof(http_config, outbound_allow),
     HTTP_PATH_MAX, true},
    {"outbound_allow_private", "TSUNAGU_OUTBOUND_ALLOW_PRIVATE",
     offsetof(http_config, outbound_allow_private), 8, false},
    {"outbound_allow_http", "TSUNAGU_OUTBOUND_ALLOW_HTTP",
     offsetof(http_config, outbound_allow_http), 8, false},
};

static void set_num(http_config *cfg, const num_key *k, unsigned long long v)
{
    char *p = (char *)cfg + k->off;
    if (k->is_size)
        *(size_t *)(void *)p = (size_t)v;
    else
        *(unsigned *)(void *)p = (unsigned)v;
}

static tsg_rc set_str(http_config *cfg, const str_key *k, const char *v, const char *src,
                      tsg_error *err)
{
    size_t n = strlen(v);
    if (n >= k->size)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "%s: '%s' is too long (max %zu bytes)",
                             src, k->json, k->size - 1);
    if (n == 0 && !k->empty_ok)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "%s: '%s' must not be empty", src,
                             k->json);
    memcpy((char *)cfg + k->off, v, n + 1);
    return TSG_OK;
}

static tsg_rc load_file(http_config *cfg, const char *file, tsg_error *err)
{
    char *text;
    size_t len;
    tsg_rc rc = tsg_read_file(file, 1u << 20, &text, &len, err);
    if (rc != TSG_OK) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "%s:%d:%d: %s", file, jerr.line,
                             jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return tsg_error_set(err, TSG_EINVAL, "invalid", "%s: the configuration must be an object",
                             file);
    }
    const char *key;
    json_t *val;
    rc = TSG_OK;
    json_object_foreach(root, key, val)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof NUM_KEYS / sizeof NUM_KEYS[0] && !known; i++) {
            const num_key *k = &NUM_KEYS[i];
            if (strcmp(key, k->json) != 0) continue;
            known = true;
            json_int_t v = json_is_integer(val) ? json_integer_value(val) : -1;
            if (v < 0 || (unsigned long long)v < k->lo || (unsigned long long)v > k->hi) {
                rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                                   "%s: \"%s\" must be an integer %llu-%llu", file, key, k->lo,
                                   k->hi);
                goto out;
            }
            set_num(cfg, k, (unsigned long long)v);
        }
        for (size_t i = 0; i < sizeof STR_KEYS / sizeof STR_KEYS[0] && !known; i++) {
            const str_key *k = &STR_KEYS[i];
            if (strcmp(key, k->json) != 0) continue;
            known = true;
            if (!json_is_string(val)) {
                rc = tsg_error_set(err, TSG_EINVAL, "invalid", "%s: \"%s\" must be a string", file,
                                   key);
                goto out;
            }
            rc = set_str(cfg, k, json_string_value(val), file, err);
            if (rc != TSG_OK) goto out;
        }
        if (!known) {
            rc = tsg_error_set(
                err, TSG_EINVAL, "invalid",
                "%s: unknown key \"%s\" (known: listen, threads, max_connections, "
                "connection_timeout_s, max_body_bytes, drain_timeout_s, "
                "data_dir, redis_url, auth, auth_token_lifetime_s, "
                "auth_rate_per_s, auth_rate_burst, public_url, audit, audit_fsync, "
                "audit_retention_days, "
                "audit_journal_max_mb, "
                "validate, profile_paths, type_profiles, consent_default, tls_cert, tls_key, "
                "outbound_allow, outbound_allow_private, outbound_allow_http)",
                file, key);
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

tsg_rc http_config_load(http_config *cfg, const char *file, tsg_error *err)
{
    http_config_default(cfg);
    if (!file) {
        file = getenv("TSUNAGU_CONFIG");
        if (file && !*file) file = NULL;
    }
    if (file) {
        tsg_rc rc = load_file(cfg, file, err);
        if (rc != TSG_OK) return rc;
    }
    for (size_t i = 0; i < sizeof NUM_KEYS / sizeof NUM_KEYS[0]; i++) {
        const num_key *k = &NUM_KEYS[i];
        const char *v = getenv(k->env);
        if (!v || !*v) continue;
        unsigned long long n;
        if (!parse_num(v, k->lo, k->hi, &n))
            return tsg_error_set(err, TSG_EINVAL, "invalid",
                                 "%s='%s': must be an integer %llu-%llu", k->env, v, k->lo, k->hi);
        set_num(cfg, k, n);
    }
    for (size_t i = 0; i < sizeof STR_KEYS / sizeof STR_KEYS[0]; i++) {
        const str_key *k = &STR_KEYS[i];
        const char *v = getenv(k->env);
        if (!v || (!*v && !k->empty_ok)) continue;
        tsg_rc rc = set_str(cfg, k, v, k->env, err);
        if (rc != TSG_OK) return rc;
    }
    if (strcmp(cfg->audit, "on") && strcmp(cfg->audit, "off"))
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "audit must be \"on\" or \"off\", not '%s'", cfg->audit);
    if (strcmp(cfg->audit_fsync, "always") && strcmp(cfg->audit_fsync, "interval"))
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "audit_fsync must be \"always\" or \"interval\", not '%s'",
                             cfg->audit_fsync);
    if (strcmp(cfg->consent_default, "deny") && strcmp(cfg->consent_default, "care-team"))
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "consent_default must be \"deny\" or \"care-team\", not '%s'",
                             cfg->consent_default);
    if (strcmp(cfg->auth, "on") && strcmp(cfg->auth, "off"))
        return tsg_error_set(err, TSG_EINVAL, "invalid", "auth must be \"on\" or \"off\", not '%s'",
                             cfg->auth);
    size_t pl = strlen(cfg->public_url);
    if (pl &&
        ((strncmp(cfg->public_url, "http://", 7) && strncmp(cfg->public_url, "https://", 8)) ||
         cfg->public_url[pl - 1] == '/' || strpbrk(cfg->public_url, "\" ?#")))
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "public_url must be http(s)://host[:port] without a trailing '/', "
                             "not '%s'",
                             cfg->public_url);
    if (!cfg->tls_cert[0] != !cfg->tls_key[0])
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "tls_cert and tls_key (TSUNAGU_TLS_CERT, TSUNAGU_TLS_KEY) must be "
                             "set together: %s is missing",
                             cfg->tls_cert[0] ? "tls_key" : "tls_cert");
    tsg_error e2;
    tsg_error_clear(&e2);
    if (http_listen_parse(cfg->listen, NULL, NULL, &e2) != TSG_OK)
        return tsg_error_set(err, TSG_EINVAL, "invalid", "%s", e2.message);
    /* the outbound policy (net/outbound.h): built by its users, checked here */
    outbound_policy pol;
    tsg_rc prc = outbound_policy_parse(&pol, cfg->outbound_allow, cfg->outbound_allow_private,
                                       cfg->outbound_allow_http, &e2);
    if (prc != TSG_OK) return tsg_error_set(err, prc, "invalid", "%s", e2.message);
    return TSG_OK;
}
