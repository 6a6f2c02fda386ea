/*
 * fuzz_text.c — libFuzzer target for search folding (gateway/text/text.h).
 *
 * Any input is folded. Invalid UTF-8 must be rejected with TSG_EINVAL and
 * nothing appended; valid input must fold to valid UTF-8 without NUL,
 * control characters, leading/trailing space or double spaces, and folding
 * must be idempotent: fold(fold(x)) == fold(x). A small buffer limit must give
 * TSG_ELIMIT, never a crash, and agree with the unlimited result's length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/text.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_text: broken property: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    int valid = tsg_utf8_valid_prefix(s, size) == size;
    tsg_buf one;
    tsg_buf_init(&one, 0);
    tsg_error err;
    tsg_rc rc = text_fold_err(s, size, &one, &err);
    if (!valid) {
        check(rc == TSG_EINVAL, "invalid UTF-8 is TSG_EINVAL");
        check(err.rc == TSG_EINVAL && err.message[0], "invalid UTF-8 has a message");
        check(one.len == 0, "nothing appended on invalid UTF-8");
        tsg_buf_free(&one);
        return 0;
    }
    check(rc == TSG_OK, "valid UTF-8 folds");
    check(tsg_utf8_valid_prefix(one.data, one.len) == one.len, "output is valid UTF-8");
    for (size_t i = 0; i < one.len; i++) {
        unsigned char c = (unsigned char)one.data[i];
        check(c >= 0x20 && c != 0x7F, "no control bytes in the output");
        check(!(c == ' ' && (i == 0 || i + 1 == one.len || one.data[i + 1] == ' ')),
              "no leading, trailing or double space");
    }

    tsg_buf two;
    tsg_buf_init(&two, 0);
    check(text_fold(one.data, one.len, &two) == TSG_OK, "folded text folds again");
    check(one.len == two.len && (one.len == 0 || memcmp(one.data, two.data, one.len) == 0),
          "folding is idempotent");

    /* a limit just below the result's size must fail cleanly */
    if (one.len > 1) { /* (a maximum of 0 means the default, 1 GiB) */
        tsg_buf small;
        tsg_buf_init(&small, one.len - 1);
        check(text_fold(s, size, &small) == TSG_ELIMIT, "limit below result is TSG_ELIMIT");
        tsg_buf_free(&small);
        tsg_buf_init(&small, one.len);
        check(text_fold(s, size, &small) == TSG_OK, "limit equal to result is enough");
        tsg_buf_free(&small);
    }
    tsg_buf_free(&one);
    tsg_buf_free(&two);
    return 0;
}
