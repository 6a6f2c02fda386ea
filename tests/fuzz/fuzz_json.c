/*
 * fuzz_json.c — libFuzzer target for the FHIR JSON reader.
 *
 * Any input must either be rejected with an error (and no leak), or be read
 * into a tree whose JSON form reads back to the same JSON form (the writer's
 * output is always valid FHIR JSON and the canonical form is a fixed point),
 * and whose XML form reads back to the same JSON form too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_json: broken property: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tsg_limits lim;
    lim = tsg_limits_default;
    lim.max_depth = 64;
    tsg_arena *a = tsg_arena_new(64u << 20);
    if (!a) return 0;
    fhir_node *root = NULL;
    tsg_error err;
    tsg_rc rc = fhir_json_parse(a, (const char *)data, size, &lim, &root, &err);
    if (rc == TSG_OK) {
        tsg_buf one, two, xml, three;
        tsg_buf_init(&one, 0);
        tsg_buf_init(&two, 0);
        tsg_buf_init(&xml, 0);
        tsg_buf_init(&three, 0);
        check(fhir_json_write(root, &one, 0) == TSG_OK, "write");
        fhir_node *again = NULL;
        rc = fhir_json_parse(a, one.data, one.len, &lim, &again, &err);
        check(rc == TSG_OK, "canonical JSON must read back");
        check(fhir_json_write(again, &two, 0) == TSG_OK, "write again");
        check(one.len == two.len && memcmp(one.data, two.data, one.len) == 0,
              "canonical JSON is a fixed point");
        if (fhir_xml_write(root, &xml, 0) == TSG_OK) {
            fhir_node *fromxml = NULL;
            rc = fhir_xml_parse(a, xml.data, xml.len, &lim, &fromxml, &err);
            check(rc == TSG_OK, "our XML must read back");
            check(fhir_json_write(fromxml, &three, 0) == TSG_OK, "write from XML");
            check(one.len == three.len && memcmp(one.data, three.data, one.len) == 0,
                  "JSON -> XML -> JSON is the identity");
        }
        tsg_buf_free(&one);
        tsg_buf_free(&two);
        tsg_buf_free(&xml);
        tsg_buf_free(&three);
    } else {
        check(root == NULL, "no tree on failure");
        check(err.message[0] != '\0', "an error has a message");
    }
    tsg_arena_free(a);
    return 0;
}
