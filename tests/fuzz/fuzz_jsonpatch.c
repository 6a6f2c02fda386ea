/*
 * fuzz_jsonpatch.c — libFuzzer target for JSON Patch (RFC 6902) as PATCH
 * applies it (gateway/rest/fhir_patch.c, rest_patch_apply).
 *
 * Any bytes are applied as a patch to a fixed Patient. The answer must be 0
 * with a tree (or NULL for a patch that changes nothing) or an HTTP status of
 * 400, 422 or 500 with a message; a tree must still be that Patient (same id)
 * and write back as JSON. Never a crash, leak or hang.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest/rest_internal.h"

static const char patient[] = "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
                              "\"name\":[{\"family\":\"Yamada\",\"given\":[\"Taro\",\"Jiro\"]}],"
                              "\"identifier\":[{\"system\":\"urn:a/b~c\",\"value\":\"1\"}],"
                              "\"telecom\":[{\"system\":\"phone\",\"value\":\"0129-01-0001\"}],"
                              "\"birthDate\":\"1940-02-03\"}";

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_jsonpatch: broken property: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tsg_arena *a = tsg_arena_new(0);
    if (!a) return 0;
    fhir_node *out = NULL;
    tsg_error err;
    int st = rest_patch_apply(a, "Patient", "p1", patient, sizeof patient - 1, (const char *)data,
                              size, &out, &err);
    if (st == 0) {
        if (out) {
            check(!strcmp(out->type->name, "Patient"), "still a Patient");
            const char *id = rest_child_value(out, "id");
            check(id && !strcmp(id, "p1"), "the id is kept");
            tsg_buf b;
            tsg_buf_init(&b, 0);
            check(fhir_json_write(out, &b, 0) == TSG_OK, "the result writes back");
            tsg_buf_free(&b);
        }
    } else {
        check(st == 400 || st == 422 || st == 500, "a known status");
        check(err.message[0] != 0, "a failure says why");
    }
    tsg_arena_free(a);
    return 0;
}
