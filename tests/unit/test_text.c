/*
 * test_text.c — search folding (gateway/text/text.h): every rule of the
 * header with positive and negative cases, invalid UTF-8, the empty string,
 * the buffer limit, chunking of long input, and a rough throughput figure.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/text.h"

/* Folds s (NUL-terminated) and returns the result as a malloc'd string. */
static char *fold(const char *s)
{
    tsg_buf b;
    tsg_buf_init(&b, 1u << 20);
    tsg_error err;
    tsg_rc rc = text_fold_err(s, strlen(s), &b, &err);
    if (rc != TSG_OK) fail_msg("fold(\"%s\") failed: %s", s, err.message);
    size_t n;
    char *r = tsg_buf_take(&b, &n);
    if (!r) r = calloc(1, 1);
    assert_int_equal(strlen(r), n); /* no NUL inside the output */
    tsg_buf_free(&b);
    return r;
}

static void expect_fold(const char *in, const char *want)
{
    char *got = fold(in);
    if (strcmp(got, want) != 0) fail_msg("fold(\"%s\") = \"%s\", expected \"%s\"", in, got, want);
    /* every expectation doubles as an idempotence check */
    char *again = fold(got);
    if (strcmp(again, got) != 0) fail_msg("fold not idempotent on \"%s\": \"%s\"", got, again);
    free(again);
    free(got);
}

static void expect_same(const char *a, const char *b)
{
    char *fa = fold(a), *fb = fold(b);
    if (strcmp(fa, fb) != 0)
        fail_msg("\"%s\" -> \"%s\" but \"%s\" -> \"%s\" (expected equal)", a, fa, b, fb);
    free(fa);
    free(fb);
}

static void expect_differ(const char *a, const char *b)
{
    char *fa = fold(a), *fb = fold(b);
    if (strcmp(fa, fb) == 0) fail_msg("\"%s\" and \"%s\" both fold to \"%s\"", a, b, fa);
    free(fa);
    free(fb);
}

/* Prefix search as the search code does it: fold both, compare bytes. */
static int prefix_match(const char *value, const char *query)
{
    char *v = fold(value), *q = fold(query);
    int r = strncmp(v, q, strlen(q)) == 0;
    free(v);
    free(q);
    return r;
}

static void test_kana_names(void **state)
{
    (void)state;
    expect_fold("ヤマダ", "ヤマダ");
    expect_fold("やまだ", "ヤマダ");
    expect_fold("ﾔﾏﾀﾞ", "ヤマダ");
    expect_same("ヤマダ", "やまだ");
    expect_same("ヤマダ", "ﾔﾏﾀﾞ");
    expect_same("ﾊﾟﾝ", "パン");
    expect_same("ｶﾞ", "ガ");
    expect_same("ヤマダ タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ");
    expect_same("ヤマダ タロウ", "やまだ　たろう");
    expect_differ("ヤマダ", "ヤマタ");
    expect_differ("ヤマダ", "ヤマモト");
    assert_true(prefix_match("ヤマダ タロウ", "ﾔﾏ"));
    assert_true(prefix_match("やまだ たろう", "ヤマダ　タ"));
    assert_false(prefix_match("ヤマダ タロウ", "タロウ"));
}

static void test_voicing_kept(void **state)
{
    (void)state;
    expect_differ("ガ", "カ");
    expect_differ("パ", "ハ");
    expect_differ("バ", "ハ");
    expect_differ("パ", "バ");
    expect_differ("ヴ", "ウ");
    expect_differ("が", "か");
    expect_differ("ｶﾞ", "ｶ");
    /* decomposed input composes; the spacing marks ゛゜ count as voicing */
    expect_fold("カ\xE3\x82\x99", "ガ"); /* カ + U+3099 */
    expect_fold("ハ\xE3\x82\x9A", "パ"); /* ハ + U+309A */
    expect_fold("カ゛", "ガ");
    expect_fold("ハ゜", "パ");
    expect_fold("か゛", "ガ");
    /* a prefix query without the mark does not find the voiced kana */
    assert_false(prefix_match("ガトウ", "カ"));
    assert_true(prefix_match("ガトウ", "が"));
}

static void test_kanji(void **state)
{
    (void)state;
    expect_fold("山田", "山田");
    expect_differ("山田", "山口");
    assert_true(prefix_match("山田 太郎", "山田"));
    assert_false(prefix_match("山田 太郎", "山口"));
}

static void test_whitespace(void **state)
{
    (void)state;
    expect_fold("山田　太郎", "山田 太郎");
    expect_fold("山田 太郎", "山田 太郎");
    expect_fold("山田  太郎", "山田 太郎");
    expect_fold(" \t山田\r\n太郎\u00A0 ", "山田 太郎");
    expect_fold("\u3000\u3000山田\u2003太郎\u2028", "山田 太郎");
    expect_fold("   ", "");
    expect_fold("\u3000", "");
    expect_differ("山田太郎", "山田 太郎");
    expect_fold("a\x0B\x0C"
                "b",
                "a b");
}

static void test_width_and_case(void **state)
{
    (void)state;
    expect_fold("ＡＢＣ１２３", "abc123");
    expect_same("ＡＢＣ１２３", "abc123");
    expect_same("Yamada", "YAMADA");
    expect_same("Yamada", "yamada");
    expect_same("ｙａｍａｄａ", "YAMADA");
    expect_fold("Straße", "strasse");
    expect_differ("yamada", "yamata");
    assert_true(prefix_match("Yamada Taro", "YAM"));
    assert_false(prefix_match("Yamada Taro", "Taro"));
}

static void test_accents(void **state)
{
    (void)state;
    expect_fold("José", "jose");
    expect_same("José", "jose");
    expect_same("JOSÉ", "jose");
    expect_same("Jose\xCC\x81", "jose"); /* e + U+0301 */
    expect_fold("Müller", "muller");
    expect_fold("Ångström", "angstrom");
    expect_fold("ΣΊΣΥΦΟΣ", "σισυφοσ");
    expect_differ("José", "josa");
}

static void test_nfkc(void **state)
{
    (void)state;
    expect_fold("㈱山田", "(株)山田");
    expect_fold("①②", "12");
    expect_fold("Ⅱ", "ii");
    expect_fold("㍻", "平成");
    expect_fold("㋿", "令和");
    expect_fold("\xEF\xA4\xA9", "\xE6\x9C\x97"); /* U+F929 → U+6717 朗 */
    expect_fold("，", ",");
    expect_differ("Ⅱ", "二");
    expect_differ("①", "一");
}

static void test_kana_script(void **state)
{
    (void)state;
    expect_fold("ゔぁいおりん", "ヴァイオリン");
    expect_same("ゔ", "ヴ");
    expect_fold("ゟ", "ヨリ");
    expect_fold("わ\xE3\x82\x99", "ヷ"); /* わ + U+3099 → ヷ through ワ */
    /* iteration marks: folded to katakana, not expanded */
    expect_fold("いすゞ", "イスヾ");
    expect_fold("こゝろ", "コヽロ");
    expect_same("ゝゞ", "ヽヾ");
    expect_differ("いすゞ", "いすず");
    expect_fold("佐々木", "佐々木");
    /* small kana: only ヵヶ fold */
    expect_same("霞ヶ関", "霞ケ関");
    expect_same("一ヵ月", "一カ月");
    expect_same("一ゕ月", "一カ月");
    expect_same("ゖ", "ケ");
    expect_differ("霞ヶ関", "霞が関");
    expect_differ("キョウコ", "キヨウコ");
    expect_differ("ビョウイン", "ビヨウイン");
    expect_differ("ッ", "ツ");
    expect_same("きょうこ", "キョウコ");
}

static void test_hyphens(void **state)
{
    (void)state;
    /* the long vowel mark in kana words */
    expect_fold("ラーメン", "ラーメン");
    expect_same("ラーメン", "ラ−メン");  /* U+2212 */
    expect_same("ラーメン", "ﾗｰﾒﾝ");     /* U+FF70 */
    expect_same("ラーメン", "らーめん"); /* hiragana + ー */
    expect_same("ラーメン", "ラ-メン");  /* ASCII */
    expect_same("ラーメン", "ラ‐メン");  /* U+2010 */
    expect_same("ラーメン", "ラ―メン");  /* U+2015 */
    expect_same("ラーメン", "ラ－メン"); /* U+FF0D */
    expect_fold("ガー", "ガー");
    expect_fold("ｶﾞｰ", "ガー");
    expect_differ("ラーメン", "ラメン");
    /* hyphens in addresses and numbers */
    expect_fold("登呂１ー３ー５", "登呂1-3-5");
    expect_same("登呂１ー３ー５", "登呂1-3-5");
    expect_fold("本郷Ｘ−Ｘ−Ｘ", "本郷x-x-x");
    expect_fold("１２３‐４５６７", "123-4567");
    const char *dashes[] = {"1-2",
                            "1\u20102",
                            "1\u20112",
                            "1\u20122",
                            "1\u20132",
                            "1\u20142",
                            "1\u20152",
                            "1\u20432",
                            "1\u22122",
                            "1\u2E3A2",
                            "1\u2E3B2",
                            "1\uFE582",
                            "1\uFE632",
                            "1\uFF0D2",
                            "1\u30FC2",
                            "1\uFF702",
                            "1\u207B"
                            "2",
                            "1\u208B"
                            "2"};
    for (size_t i = 0; i < sizeof dashes / sizeof *dashes; i++) expect_fold(dashes[i], "1-2");
    expect_fold("ー", "-");       /* at the start: no kana before it */
    expect_fold("ア ー", "ア -"); /* a space is not kana */
    expect_fold("山ー", "山-");   /* a kanji is not kana */
    expect_fold("コーポ-101", "コーポー101");
    expect_same("コーポ-101", "コーポー１０１");
    /* the documented :contains caveat of rule 9 */
    {
        char *v = fold("ヤマダ-1"), *q1 = fold("-1"), *q2 = fold("ダ-1");
        assert_string_equal(v, "ヤマダー1");
        assert_null(strstr(v, q1));
        assert_non_null(strstr(v, q2));
        free(v);
        free(q1);
        free(q2);
        assert_true(prefix_match("ヤマダ-1", "ヤマダ-"));
    }
    expect_differ("1-2", "12");
    expect_differ("1-2", "1~2");
}

static void test_wave_dash(void **state)
{
    (void)state;
    expect_fold("9時〜17時", "9時~17時");
    expect_same("9時〜17時", "9時～17時");
    expect_same("〰", "~");
    expect_same("\u2053", "~");
    expect_differ("〜", "-");
}

static void test_ignorables_and_controls(void **state)
{
    (void)state;
    expect_fold("葛\xF3\xA0\x84\x80", "葛");     /* 葛 + U+E0100 (IVS) */
    expect_fold("葛\xEF\xB8\x80", "葛");         /* + U+FE00 */
    expect_fold("ya\xE2\x80\x8Bmada", "yamada"); /* zero-width space */
    expect_fold("ya\xC2\xAD"
                "mada",
                "yamada");                       /* soft hyphen */
    expect_fold("\xEF\xBB\xBFyamada", "yamada"); /* BOM */
    expect_fold("ya\x01ma\x7F"
                "da",
                "yamada");               /* controls */
    expect_fold("ヤ\xC2\x9Fマ", "ヤマ"); /* C1 control */
    /* a control between a kana and its mark is dropped before composition */
    expect_fold("カ\x01\xE3\x82\x99", "ガ");
    /* NUL bytes inside the input are removed */
    tsg_buf b;
    tsg_buf_init(&b, 0);
    assert_int_equal(text_fold("a\0b", 3, &b), TSG_OK);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "ab", 2);
    tsg_buf_free(&b);
    /* old/variant kanji are not folded (no list in REFERENCE-JP) */
    expect_differ("髙橋", "高橋");
    expect_differ("\xEF\xA8\x91", "崎"); /* U+FA11 﨑 */
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    const char *bad[] = {"\xFF",     "ab\xC3",  "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                         "ヤマ\x80", "\xE3\x83"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tsg_buf b;
        tsg_buf_init(&b, 0);
        tsg_buf_puts(&b, "keep");
        tsg_error err;
        tsg_rc rc = text_fold_err(bad[i], strlen(bad[i]), &b, &err);
        assert_int_equal(rc, TSG_EINVAL);
        assert_int_equal(err.rc, TSG_EINVAL);
        assert_string_equal(err.code, "value");
        assert_non_null(strstr(err.message, "invalid UTF-8 at byte"));
        assert_int_equal(b.len, 4); /* nothing appended */
        assert_int_equal(text_fold(bad[i], strlen(bad[i]), &b), TSG_EINVAL);
        tsg_buf_free(&b);
    }
    tsg_buf b;
    tsg_buf_init(&b, 0);
    tsg_error err;
    assert_int_equal(text_fold_err("abc\xFF", 4, &b, &err), TSG_EINVAL);
    assert_non_null(strstr(err.message, "byte 3"));
    tsg_buf_free(&b);
}

static void test_empty_and_append(void **state)
{
    (void)state;
    tsg_buf b;
    tsg_buf_init(&b, 0);
    assert_int_equal(text_fold("", 0, &b), TSG_OK);
    assert_int_equal(b.len, 0);
    assert_int_equal(text_fold(NULL, 0, &b), TSG_OK);
    assert_int_equal(b.len, 0);
    /* appends after what the buffer holds */
    tsg_buf_puts(&b, "x:");
    assert_int_equal(text_fold("ＡＢ", strlen("ＡＢ"), &b), TSG_OK);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "x:ab", 4);
    tsg_buf_free(&b);
}

static void test_limit(void **state)
{
    (void)state;
    tsg_buf b;
    tsg_buf_init(&b, 8);
    tsg_error err;
    assert_int_equal(text_fold_err("abcdefgh", 8, &b, &err), TSG_OK);
    assert_int_equal(b.len, 8);
    tsg_buf_free(&b);

    tsg_buf_init(&b, 8);
    assert_int_equal(text_fold_err("abcdefghi", 9, &b, &err), TSG_ELIMIT);
    assert_string_equal(err.code, "too-costly");
    assert_non_null(strstr(err.message, "limit"));
    /* a failed buffer stays failed */
    assert_int_equal(text_fold("a", 1, &b), TSG_ELIMIT);
    tsg_buf_free(&b);

    /* expansion counts: ㍻ is 3 bytes in, 6 out */
    tsg_buf_init(&b, 5);
    assert_int_equal(text_fold("㍻", strlen("㍻"), &b), TSG_ELIMIT);
    tsg_buf_free(&b);

    /* a long Japanese value fails cleanly part-way */
    size_t n = 100000;
    char *big = malloc(n * 3 + 1);
    for (size_t i = 0; i < n; i++) memcpy(big + 3 * i, "や", 3);
    tsg_buf_init(&b, 1000);
    assert_int_equal(text_fold(big, n * 3, &b), TSG_ELIMIT);
    tsg_buf_free(&b);
    free(big);
}

/* Long input is processed in chunks: the result must not depend on where the
 * chunks are cut (voicing marks, hyphens and spaces across boundaries). */
static void test_long_input(void **state)
{
    (void)state;
    const char *unit = "ﾔﾏﾀﾞ　ﾀﾛｳ－ｶﾞｰ 1ー2 José ";
    const char *want = "ヤマダ タロウーガー 1-2 jose";
    size_t ul = strlen(unit);
    for (size_t reps = 1; reps < 400; reps = reps * 3 + 1) {
        tsg_buf in, expect;
        tsg_buf_init(&in, 0);
        tsg_buf_init(&expect, 0);
        for (size_t k = 0; k < reps; k++) {
            tsg_buf_append(&in, unit, ul);
            if (k) tsg_buf_putc(&expect, ' ');
            tsg_buf_puts(&expect, want);
        }
        tsg_buf out;
        tsg_buf_init(&out, 0);
        assert_int_equal(text_fold(in.data, in.len, &out), TSG_OK);
        assert_int_equal(out.len, expect.len);
        assert_memory_equal(out.data, expect.data, out.len);
        tsg_buf_free(&in);
        tsg_buf_free(&expect);
        tsg_buf_free(&out);
    }
    /* a dropped control at a chunk boundary must not keep a mark from its
     * base (found by fuzz_text): x…x ヶ U+0001 U+3099 → x…x ゲ */
    for (size_t k = 1000; k < 1040; k++) {
        tsg_buf in, out, expect;
        tsg_buf_init(&in, 0);
        tsg_buf_init(&out, 0);
        tsg_buf_init(&expect, 0);
        for (size_t j = 0; j < k; j++) tsg_buf_putc(&in, 'x');
        tsg_buf_append(&expect, in.data, in.len);
        tsg_buf_puts(&in, "ヶ\x01\xE3\x82\x99");
        tsg_buf_puts(&expect, "ゲ");
        assert_int_equal(text_fold(in.data, in.len, &out), TSG_OK);
        assert_int_equal(out.len, expect.len);
        assert_memory_equal(out.data, expect.data, out.len);
        tsg_buf_free(&in);
        tsg_buf_free(&out);
        tsg_buf_free(&expect);
    }
    /* many combining marks in a row (no safe place to cut) still work */
    tsg_buf in, out;
    tsg_buf_init(&in, 0);
    tsg_buf_init(&out, 0);
    tsg_buf_putc(&in, 'e');
    for (int k = 0; k < 5000; k++) tsg_buf_puts(&in, "\xCC\x81"); /* U+0301 */
    tsg_buf_puts(&in, "\xEF\xB7\xBA");                            /* U+FDFA: 18 code points */
    assert_int_equal(text_fold(in.data, in.len, &out), TSG_OK);
    assert_int_equal(out.data[0], 'e');
    tsg_buf_free(&in);
    tsg_buf_free(&out);
}

/* Not a pass/fail test: prints folding throughput on Japanese text. */
static void test_throughput(void **state)
{
    (void)state;
    const char *sample = "ヤマダ タロウ 山田 太郎 東京都文京区本郷１−２−３ やまだ はなこ ﾔﾏﾀﾞ ﾊﾅｺ "
                         "訪問看護ステーション さくら 居宅介護支援事業所 ";
    tsg_buf in;
    tsg_buf_init(&in, 0);
    while (in.len < 64 * 1024) tsg_buf_puts(&in, sample);
    tsg_buf out;
    tsg_buf_init(&out, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t total = 0;
    for (int r = 0; r < 40; r++) {
        tsg_buf_reset(&out);
        /* values of realistic size: 64 bytes each */
        for (size_t off = 0; off + 64 <= in.len; off += 64) {
            size_t s = off, e = off + 64;
            while (s < in.len && ((unsigned char)in.data[s] & 0xC0) == 0x80) s++;
            while (e < in.len && ((unsigned char)in.data[e] & 0xC0) == 0x80) e++;
            assert_int_equal(text_fold(in.data + s, e - s, &out), TSG_OK);
            total += e - s;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("text_fold throughput: %.1f MB/s on Japanese text (%zu bytes in %.3f s)\n",
           (double)total / sec / 1e6, total, sec);
    tsg_buf_free(&in);
    tsg_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kana_names),
        cmocka_unit_test(test_voicing_kept),
        cmocka_unit_test(test_kanji),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_width_and_case),
        cmocka_unit_test(test_accents),
        cmocka_unit_test(test_nfkc),
        cmocka_unit_test(test_kana_script),
        cmocka_unit_test(test_hyphens),
        cmocka_unit_test(test_wave_dash),
        cmocka_unit_test(test_ignorables_and_controls),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_empty_and_append),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_long_input),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
