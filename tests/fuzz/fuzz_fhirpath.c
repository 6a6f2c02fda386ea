/*
 * fuzz_fhirpath.c — libFuzzer target for the FHIRPath compiler.
 *
 * Any bytes must either compile — and then dump to a non-empty S-expression
 * within a tree no higher than FP_LIMIT_DEPTH — or fail with a message, a
 * column inside the expression (0 only for the length limit and out of
 * memory) and no tree; never crash, leak or hang.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fhirpath/fhirpath.h"
#include "fhirpath/fp_ast.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_fhirpath: broken property: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fp_expr *e = NULL;
    tsg_error err;
    tsg_rc rc = fp_compile((const char *)data, size, &e, &err);
    if (rc == TSG_OK) {
        check(e != NULL && e->root != NULL, "a tree on success");
        check(e->root->height >= 1 && e->root->height <= FP_LIMIT_DEPTH, "bounded height");
        tsg_buf b;
        tsg_buf_init(&b, 0);
        size_t n = fp_expr_dump(e, &b);
        check(tsg_buf_rc(&b) == TSG_OK && n > 0 && n == b.len, "a dump");
        tsg_buf_free(&b);
        fp_expr_free(e);
    } else {
        check(e == NULL, "no tree on failure");
        check(err.rc == rc && err.message[0] != '\0', "an error has a message");
        check(err.column <= size + 1, "the column is inside the expression");
        check(err.column > 0 || rc == TSG_ELIMIT || rc == TSG_ENOMEM,
              "a syntax error has a column");
    }
    return 0;
}
