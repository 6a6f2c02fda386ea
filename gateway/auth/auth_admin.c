/*
 * auth_admin.c — `tsunagu admin …`: client registration and key rotation on
 * the Redis of `serve` (auth.h, auth_admin_main).
 *
 * Which Redis: TSUNAGU_REDIS_URL (or the config file's redis_url) when set;
 * otherwise the embedded server of the data directory (TSUNAGU_DATA_DIR,
 * default ./var): its socket <data_dir>/redis.sock when `serve` runs, else
 * this command starts the embedded redis-server on that directory itself for
 * the time of the command (taking the directory's lock, as serve does: a
 * serve started at that very moment waits for nothing and fails clearly).
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "../rest/http.h"
#include "../store/redis.h"

#define EXIT_INVALID 1
#define EXIT_USAGE   2

static const char admin_usage[] =
    "usage: tsunagu admin client create --org Organization/ID --name NAME --scope \"SCOPES\"\n"
    "                                   [--role member|admin] [--area AREA] [--jwks FILE]\n"
    "       tsunagu admin client list\n"
    "       tsunagu admin client revoke CLIENT_ID\n"
    "       tsunagu admin client rotate CLIENT_ID\n"
    "       tsunagu admin key rotate\n"
    "Redis: TSUNAGU_REDIS_URL, else the embedded one under TSUNAGU_DATA_DIR (default ./var).\n";

static int usage(const char *msg)
{
    if (msg) fprintf(stderr, "tsunagu admin: %s\n", msg);
    fputs(admin_usage, stderr);
    return EXIT_USAGE;
}

/* Opens the Redis of serve (see the top comment). */
static tsg_rc open_redis(redis_embedded **emb, redis_client **client, tsg_error *err)
{
    *emb = NULL;
    *client = NULL;
    http_config cfg;
    tsg_rc rc = http_config_load(&cfg, NULL, err);
    if (rc) return rc;
    redis_target t;
    if (cfg.redis_url[0]) {
        if ((rc = redis_target_parse(cfg.redis_url, &t, err))) return rc;
        if ((rc = redis_client_new(&t, NULL, client, err))) return rc;
        if ((rc = redis_client_ready(*client, err))) {
            redis_client_free(*client);
            *client = NULL;
        }
        return rc;
    }
    char sock[HTTP_PATH_MAX + 16];
    snprintf(sock, sizeof sock, "%s/redis.sock", cfg.data_dir);
    if (redis_target_unix(sock, &t, NULL) == TSG_OK &&
        redis_client_new(&t, NULL, client, NULL) == TSG_OK) {
        tsg_error e;
        tsg_error_clear(&e);
        if (redis_client_ready(*client, &e) == TSG_OK) return TSG_OK;
        redis_client_free(*client);
        *client = NULL;
    }
    /* serve is not running: run the embedded server for this command */
    return redis_open(NULL, cfg.data_dir, NULL, NULL, emb, client, err);
}

/* Prints {"client_id":…,"client_secret":…}. */
static void print_credentials(const char *id, const char *secret)
{
    json_t *o = json_pack("{s:s,s:s}", "client_id", id, "client_secret", secret);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

static int client_create(redis_client *c, int argc, char **argv)
{
    auth_client_info in;
    memset(&in, 0, sizeof in);
    snprintf(in.role, sizeof in.role, "%s", "member");
    const char *jwks_file = NULL;
    bool has_org = false, has_name = false, has_scope = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *dst = NULL;
        size_t cap = 0;
        if (!strcmp(a, "--org"))
            dst = in.org, cap = sizeof in.org, has_org = true;
        else if (!strcmp(a, "--name"))
            dst = in.name, cap = sizeof in.name, has_name = true;
        else if (!strcmp(a, "--scope"))
            dst = in.scope, cap = sizeof in.scope, has_scope = true;
        else if (!strcmp(a, "--role"))
            dst = in.role, cap = sizeof in.role;
        else if (!strcmp(a, "--area"))
            dst = in.area, cap = sizeof in.area;
        else if (!strcmp(a, "--jwks")) {
            if (!v) return usage("client create: --jwks needs a FILE");
            jwks_file = v;
            i++;
            continue;
        } else {
            fprintf(stderr, "tsunagu admin: client create: unknown argument %s\n", a);
            return EXIT_USAGE;
        }
        if (!v) {
            fprintf(stderr, "tsunagu admin: client create: %s needs a value\n", a);
            return EXIT_USAGE;
        }
        if (strlen(v) >= cap) {
            fprintf(stderr, "tsunagu admin: client create: %s is longer than %zu bytes\n", a,
                    cap - 1);
            return EXIT_INVALID;
        }
        memcpy(dst, v, strlen(v) + 1);
        i++;
    }
    if (!has_org || !has_name || !has_scope)
        return usage("client create needs --org, --name and --scope");
    tsg_error err;
    tsg_error_clear(&err);
    char *jwks = NULL;
    size_t jl = 0;
    if (jwks_file && tsg_read_file(jwks_file, AUTH_JWKS_MAX_BYTES, &jwks, &jl, &err)) {
        fprintf(stderr, "tsunagu admin: --jwks: %s\n", err.message);
        return EXIT_INVALID;
    }
    char id[AUTH_ID_MAX], secret[64];
    tsg_rc rc = auth_client_create(c, &in, jwks, id, secret, &err);
    free(jwks);
    if (rc) {
        fprintf(stderr, "tsunagu admin: client create: %s\n", err.message);
        return EXIT_INVALID;
    }
    print_credentials(id, secret);
    OPENSSL_cleanse(secret, sizeof secret);
    return 0;
}

static int client_list(redis_client *c)
{
    auth_client_info *a = NULL;
    size_t n = 0;
    tsg_error err;
    tsg_error_clear(&err);
    if (auth_client_list(c, &a, &n, &err)) {
        fprintf(stderr, "tsunagu admin: client list: %s\n", err.message);
        return EXIT_INVALID;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:I}", "client_id", a[i].id, "org",
                              a[i].org, "name", a[i].name, "scope", a[i].scope, "role", a[i].role,
                              "area", a[i].area, "jwks", a[i].has_jwks, "revoked", a[i].revoked,
                              "created_ms", (json_int_t)a[i].created_ms);
        json_array_append_new(arr, o);
    }
    char *s = json_dumps(arr, JSON_INDENT(2));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(arr);
    free(a);
    return 0;
}

int auth_admin_main(int argc, char **argv)
{
    /* argv[0] = "admin" */
    if (argc < 3) return usage(NULL);
    const char *what = argv[1], *verb = argv[2];
    bool client = !strcmp(what, "client"), key = !strcmp(what, "key");
    if (!client && !key) return usage("admin: expected 'client' or 'key'");
    if (client && strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "revoke") &&
        strcmp(verb, "rotate"))
        return usage("admin client: expected create, list, revoke or rotate");
    if (key && strcmp(verb, "rotate")) return usage("admin key: expected rotate");
    if (client && (!strcmp(verb, "revoke") || !strcmp(verb, "rotate")) && argc != 4)
        return usage("admin client revoke|rotate takes one CLIENT_ID");
    if ((key || !strcmp(verb, "list")) && argc != 3) return usage("admin: too many arguments");

    redis_embedded *emb = NULL;
    redis_client *c = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    if (open_redis(&emb, &c, &err)) {
        fprintf(stderr, "tsunagu admin: redis: %s\n", err.message);
        return EXIT_INVALID;
    }
    int status = EXIT_INVALID;
    if (key) {
        char kid[48];
        if (auth_key_rotate(c, kid, &err))
            fprintf(stderr, "tsunagu admin: key rotate: %s\n", err.message);
        else {
            printf("{\"kid\":\"%s\"}\n", kid);
            status = 0;
        }
    } else if (!strcmp(verb, "create")) {
        status = client_create(c, argc - 3, argv + 3);
    } else if (!strcmp(verb, "list")) {
        status = client_list(c);
    } else if (!strcmp(verb, "revoke")) {
        if (auth_client_revoke(c, argv[3], &err))
            fprintf(stderr, "tsunagu admin: client revoke: %s\n", err.message);
        else {
            printf("{\"client_id\":\"%s\",\"revoked\":true}\n", argv[3]);
            status = 0;
        }
    } else {
        char secret[64];
        if (auth_client_rotate(c, argv[3], secret, &err))
            fprintf(stderr, "tsunagu admin: client rotate: %s\n", err.message);
        else {
            print_credentials(argv[3], secret);
            OPENSSL_cleanse(secret, sizeof secret);
            status = 0;
        }
    }
    if (fflush(stdout) != 0) status = EXIT_INVALID;
    redis_client_free(c);
    if (emb) redis_embedded_stop(emb);
    return status;
}
