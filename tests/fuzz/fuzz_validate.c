/*
 * fuzz_validate.c — libFuzzer target for the base validator.
 *
 * Any bytes are read as FHIR JSON (XML when they start with '<') and, when
 * they read, validated against the base R4 definitions: validation never
 * crashes, never fails other than by memory, and its OperationOutcome is
 * itself FHIR JSON that the reader accepts. validate_text() is used so the
 * reader-failure path (a fatal issue with line/column) is exercised too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "validate/validate.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_validate: broken property: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tsg_arena *a = tsg_arena_new(256u << 20);
    if (!a) return 0;
    validate_result r;
    validate_result_init(&r, a);
    tsg_rc rc = validate_text(a, (const char *)data, size, NULL, &r, NULL);
    check(rc == TSG_OK || rc == TSG_ENOMEM, "validation fails only for memory");
    if (rc == TSG_OK) {
        check(r.count > 0 || !validate_result_failed(&r), "a failure has an issue");
        tsg_buf out;
        tsg_buf_init(&out, 0);
        check(validate_outcome_json(&r, &out, 0) == TSG_OK, "outcome written");
        fhir_node *oo = NULL;
        tsg_error err;
        check(fhir_json_parse(a, out.data, out.len, NULL, &oo, &err) == TSG_OK,
              "the OperationOutcome reads as FHIR JSON");
        tsg_buf_free(&out);
    }
    tsg_arena_free(a);
    return 0;
}
