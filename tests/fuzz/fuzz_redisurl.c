/*
 * fuzz_redisurl.c — libFuzzer target for the Redis URL parser
 * (gateway/store/redis.h, TSUNAGU_REDIS_URL).
 *
 * Any input is parsed as a URL. It must be accepted or refused with an error
 * message, never crash; an accepted target must describe itself without the
 * password, and its description must parse again to the same place.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_redisurl: broken property: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    if (!url) return 0;
    memcpy(url, data, size);
    url[size] = 0;
    redis_target t;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = redis_target_parse(url, &t, &err);
    if (rc != TSG_OK) {
        check(err.message[0] != 0, "a refused URL has a message");
    } else {
        char d[REDIS_URL_MAX + 64];
        redis_target_describe(&t, d, sizeof d);
        if (t.password[0]) check(strstr(d, "***") != NULL, "the description masks the password");
        redis_target again;
        if (redis_target_parse(d, &again, &err) == TSG_OK) {
            check(again.kind == t.kind, "the description parses to the same kind");
            check(again.db == t.db, "the description parses to the same db");
        }
    }
    free(url);
    return 0;
}
