/*
 * test_util.c — arena, bounded buffer, UTF-8 checks, errors, file reading.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

static void test_arena(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(0);
    assert_non_null(a);
    char *p = tsg_arena_alloc(a, 3);
    char *q = tsg_arena_alloc(a, 5);
    assert_true(((uintptr_t)p % 16) == 0 && ((uintptr_t)q % 16) == 0);
    assert_true(q >= p + 3);
    /* large allocations get their own block and stay usable */
    char *big = tsg_arena_alloc(a, 1u << 20);
    assert_non_null(big);
    memset(big, 'x', 1u << 20);
    char *s = tsg_arena_strndup(a, "hello world", 5);
    assert_string_equal(s, "hello");
    int *z = tsg_arena_zalloc(a, 100 * sizeof(int));
    for (int i = 0; i < 100; i++) assert_int_equal(z[i], 0);
    assert_true(tsg_arena_used(a) >= (1u << 20));
    tsg_arena_free(a);
    tsg_arena_free(NULL); /* harmless */
}

static void test_arena_cap(void **state)
{
    (void)state;
    tsg_arena *a = tsg_arena_new(1000);
    assert_non_null(tsg_arena_alloc(a, 900));
    assert_null(tsg_arena_alloc(a, 200)); /* over the cap: refused, not grown */
    assert_non_null(tsg_arena_alloc(a, 50));
    assert_null(tsg_arena_alloc(a, SIZE_MAX)); /* no overflow */
    tsg_arena_free(a);
}

static void test_buf(void **state)
{
    (void)state;
    tsg_buf b;
    tsg_buf_init(&b, 0);
    tsg_buf_puts(&b, "ab");
    tsg_buf_putc(&b, 'c');
    tsg_buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "abc42-x");
    /* a long printf goes past the small stack buffer */
    char longs[1000];
    memset(longs, 'y', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    tsg_buf_printf(&b, "%s", longs);
    assert_int_equal(b.len, 7 + 999);
    assert_int_equal(tsg_buf_rc(&b), TSG_OK);
    size_t n;
    char *taken = tsg_buf_take(&b, &n);
    assert_int_equal(n, 1006);
    assert_null(b.data);
    free(taken);
    tsg_buf_free(&b);

    /* the maximum is hard: the buffer fails and stays failed */
    tsg_buf_init(&b, 8);
    tsg_buf_puts(&b, "12345678");
    assert_int_equal(tsg_buf_rc(&b), TSG_OK);
    tsg_buf_putc(&b, '9');
    assert_int_equal(tsg_buf_rc(&b), TSG_ELIMIT);
    tsg_buf_puts(&b, "x");
    assert_int_equal(b.len, 8);
    tsg_buf_reset(&b);
    assert_int_equal(tsg_buf_rc(&b), TSG_OK);
    assert_int_equal(b.len, 0);
    tsg_buf_free(&b);
}

static void test_utf8(void **state)
{
    (void)state;
    const char ok[] = "ascii only, then 山田 ヤマダ ﾔﾏﾀﾞ \xf0\x9f\x98\x80 end";
    assert_int_equal(tsg_utf8_valid_prefix(ok, strlen(ok)), strlen(ok));
    struct {
        const char *s;
        size_t valid;
    } bad[] = {
        {"ab\xff", 2},           /* invalid byte */
        {"ab\xc0\xaf", 2},       /* overlong */
        {"\xed\xa0\x80", 0},     /* surrogate */
        {"\xf4\x90\x80\x80", 0}, /* above U+10FFFF */
        {"abcdefgh\xe5\xb1", 8}, /* truncated after the ASCII fast path */
        {"\x80", 0},             /* lone continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(tsg_utf8_valid_prefix(bad[i].s, strlen(bad[i].s)), bad[i].valid);
    char out[4];
    assert_int_equal(tsg_utf8_encode(0x41, out), 1);
    assert_int_equal(tsg_utf8_encode(0x5c71, out), 3);
    assert_memory_equal(out, "\xe5\xb1\xb1", 3);
    assert_int_equal(tsg_utf8_encode(0x1F600, out), 4);
    assert_memory_equal(out, "\xf0\x9f\x98\x80", 4);
}

static void test_error(void **state)
{
    (void)state;
    tsg_error e;
    tsg_error_clear(&e);
    assert_int_equal(e.rc, TSG_OK);
    assert_int_equal(tsg_error_set(&e, TSG_EINVAL, NULL, "bad %s", "thing"), TSG_EINVAL);
    assert_string_equal(e.message, "bad thing");
    assert_string_equal(e.code, "invalid");
    assert_int_equal(tsg_error_set(NULL, TSG_ELIMIT, NULL, "x"), TSG_ELIMIT);
    /* an over-long message is visibly cut, never overflows */
    char big[2000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tsg_error_set(&e, TSG_EINVAL, "value", "%s", big);
    assert_int_equal(strlen(e.message), TSG_ERR_MESSAGE_MAX - 1);
    assert_string_equal(e.message + TSG_ERR_MESSAGE_MAX - 4, "...");
}

/* A message that quotes input cut in the middle of a UTF-8 sequence stays valid UTF-8. */
static void test_error_utf8(void **state)
{
    (void)state;
    tsg_error err;
    const char *s = "\xe5\xb1\xb1\xe7\x94\xb0"; /* 山田 */
    tsg_error_set(&err, TSG_EINVAL, "value", "'%.*s' is not a decimal", 4, s);
    assert_string_equal(err.message, "'\xe5\xb1\xb1?' is not a decimal");
    assert_int_equal(tsg_utf8_valid_prefix(err.message, strlen(err.message)), strlen(err.message));
    tsg_error_set(&err, TSG_EINVAL, "value", "'%s' is fine", s);
    assert_string_equal(err.message, "'\xe5\xb1\xb1\xe7\x94\xb0' is fine");
}

static void test_read_file(void **state)
{
    (void)state;
    char path[] = "/tmp/tsunagu-util-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char data[200000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)('a' + i % 26);
    assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
    close(fd);
    char *got;
    size_t n;
    tsg_error e;
    assert_int_equal(tsg_read_file(path, sizeof data, &got, &n, &e), TSG_OK);
    assert_int_equal(n, sizeof data);
    assert_memory_equal(got, data, n);
    assert_int_equal(got[n], '\0');
    free(got);
    assert_int_equal(tsg_read_file(path, sizeof data - 1, &got, &n, &e), TSG_ELIMIT);
    assert_null(got);
    assert_non_null(strstr(e.message, "max_body_bytes"));
    unlink(path);
    assert_int_equal(tsg_read_file(path, 100, &got, &n, &e), TSG_EIO);
    assert_non_null(strstr(e.message, path));
}

/* tsg_mkdir_p: missing parents made, an existing folder accepted, a file refused. */
static void test_mkdir_p(void **state)
{
    (void)state;
    char base[] = "/tmp/tsg-mkdir-XXXXXX";
    assert_non_null(mkdtemp(base));
    char deep[256], file[256];
    snprintf(deep, sizeof deep, "%s/a/b/c", base);
    assert_int_equal(tsg_mkdir_p(deep), 0);
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(tsg_mkdir_p(deep), 0); /* again: already there */
    snprintf(file, sizeof file, "%s/f", base);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    errno = 0;
    assert_int_equal(tsg_mkdir_p(file), -1);
    assert_int_equal(errno, ENOTDIR);
    char below[300];
    snprintf(below, sizeof below, "%s/x", file);
    assert_int_equal(tsg_mkdir_p(below), -1);
    unlink(file);
    for (int i = 0; i < 3; i++) {
        rmdir(deep);
        *strrchr(deep, '/') = '\0';
    }
    assert_int_equal(rmdir(base), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena),     cmocka_unit_test(test_arena_cap),
        cmocka_unit_test(test_buf),       cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_error),     cmocka_unit_test(test_error_utf8),
        cmocka_unit_test(test_read_file), cmocka_unit_test(test_mkdir_p),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
