/*
 * fuzz_package.c — libFuzzer target for the FHIR package reader and the profile
 * compiler (gateway/validate/package.c, profile.c, profile_check.c).
 *
 * The input is a .tgz (it starts with the gzip magic), a StructureDefinition or other
 * resource as JSON (it starts with '{'), or else an uncompressed tar. Every resource it
 * yields goes into a registry, the registry is compiled, and two fixed resources are
 * validated against every profile the input defined. Any input must end in a clean error
 * or a clean validation: no crash, no leak, no sanitizer report, no unbounded time.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "validate/profile.h"

#define MAX_URLS 16

typedef struct fuzz_ctx {
    profile_registry *r;
    char urls[MAX_URLS][256];
    int n;
} fuzz_ctx;

static void remember(fuzz_ctx *c, const char *data, size_t len)
{
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *u = json_string_value(json_object_get(j, "url"));
    if (u && c->n < MAX_URLS) snprintf(c->urls[c->n++], sizeof c->urls[0], "%s", u);
    json_decref(j);
}

static tsg_rc on_entry(void *vctx, const char *path, const char *data, size_t len, tsg_error *err)
{
    fuzz_ctx *c = vctx;
    (void)path;
    if (profile_registry_add_json(c->r, data, len, path, err) == TSG_OK) remember(c, data, len);
    return TSG_OK;
}

static void on_issue(void *ctx, validate_severity sev, const char *code, const char *expr,
                     const char *msg)
{
    size_t *n = ctx;
    (*n)++;
    (void)sev, (void)code, (void)expr, (void)msg;
}

static const char *const RESOURCES[] = {
    "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"urn:x\",\"valueCode\":\"a\"}],"
    "\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"},{\"system\":\"urn:b\"}],"
    "\"name\":[{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
    "iso21090-EN-representation\",\"valueCode\":\"IDE\"}],\"family\":\"山田\",\"given\":[\"太郎\"]}"
    "],"
    "\"gender\":\"male\",\"address\":[{\"postalCode\":\"099-9213\",\"country\":\"JP\"}],"
    "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o\"}],"
    "\"managingOrganization\":{\"reference\":\"#o\"}}",
    "{\"resourceType\":\"Observation\",\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":"
    "\"urn:c\",\"code\":\"vital-signs\"}]}],\"code\":{\"coding\":[{\"system\":\"http://loinc.org\","
    "\"code\":\"9279-1\"}]},\"subject\":{\"reference\":\"Patient/1\"},"
    "\"valueQuantity\":{\"value\":18,\"unit\":\"/min\"},\"component\":[{\"code\":{\"text\":\"x\"},"
    "\"valueString\":\"y\"}]}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_ctx c;
    memset(&c, 0, sizeof c);
    c.r = profile_registry_new();
    if (!c.r) return 0;
    tsg_error err;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
        package_read_tgz(data, size, on_entry, &c, &err);
    else if (size && data[0] == '{')
        on_entry(&c, "input.json", (const char *)data, size, &err);
    else
        package_read_tar(data, size, on_entry, &c, &err);
    size_t notes = 0;
    profile_registry_compile(c.r, on_issue, &notes, &err);
    tsg_arena *a = tsg_arena_new(16u << 20);
    for (size_t i = 0; a && i < sizeof RESOURCES / sizeof *RESOURCES; i++) {
        fhir_node *root = NULL;
        if (fhir_json_parse(a, RESOURCES[i], strlen(RESOURCES[i]), NULL, &root, &err) != TSG_OK)
            abort(); /* the fixed inputs are valid */
        for (int k = 0; k < c.n; k++) {
            const profile *p = profile_registry_find(c.r, c.urls[k]);
            size_t n = 0;
            if (p) profile_validate(p, root, on_issue, &n);
        }
    }
    tsg_arena_free(a);
    profile_registry_free(c.r);
    return 0;
}
