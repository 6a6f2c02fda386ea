/*
 * test_cli.c — the tsunagu command as users call it (DESIGN.md §6): the real
 * binary, its exit codes, stdout and stderr.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

typedef struct result {
    int status;
    char *out;
    char *err;
} result;

/* Runs `tsunagu ARGS` in dir (ARGS is shell text), optionally with stdin from a file. */
static result run(const char *args, const char *stdin_file)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s <%s >out.txt 2>err.txt", dir, TSUNAGU_BINARY,
             args, stdin_file ? stdin_file : "/dev/null");
    int st = system(cmd);
    result r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    char path[512];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    r.out = read_all(path);
    snprintf(path, sizeof path, "%s/err.txt", dir);
    r.err = read_all(path);
    return r;
}

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

static const char patient_json[] = "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{"
                                   "\"family\":\"山田\",\"given\":[\"太郎\"]}],"
                                   "\"birthDate\":\"1940-02-03\"}";

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tsunagu-cli-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    write_file("patient.json", patient_json);
    write_file("bad.json", "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",\"\"]}]}");
    write_file("notfhir.txt", "hello");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_convert_json_to_json(void **state)
{
    (void)state;
    result r = run("convert --to json patient.json", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{\"family\":"
                               "\"山田\",\"given\":[\"太郎\"]}],\"birthDate\":\"1940-02-03\"}\n");
    assert_string_equal(r.err, "");
    result_free(&r);
    /* from standard input, "-" or no file */
    r = run("convert --to=json -", "patient.json");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"family\":\"山田\""));
    result_free(&r);
    r = run("convert --to json --pretty", "patient.json");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\n  \"id\": \"p1\",\n"));
    result_free(&r);
}

static void test_convert_both_ways(void **state)
{
    (void)state;
    /* JSON -> XML by default, and back */
    result r = run("convert patient.json", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "<Patient xmlns=\"http://hl7.org/fhir\">"));
    assert_non_null(strstr(r.out, "<family value=\"山田\"/>"));
    write_file("patient.xml", r.out);
    result_free(&r);
    r = run("convert patient.xml", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{\"family\":"
                               "\"山田\",\"given\":[\"太郎\"]}],\"birthDate\":\"1940-02-03\"}\n");
    result_free(&r);
}

static void test_convert_errors(void **state)
{
    (void)state;
    result r = run("convert bad.json", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "bad.json:1:"));
    assert_non_null(strstr(r.err, "Patient.name[0].given[1]"));
    result_free(&r);
    r = run("convert notfhir.txt", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "neither FHIR JSON nor FHIR XML"));
    result_free(&r);
    r = run("convert missing.json", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "missing.json"));
    result_free(&r);
    r = run("convert", NULL); /* empty standard input */
    assert_int_equal(r.status, 1);
    result_free(&r);
}

static void test_usage_errors(void **state)
{
    (void)state;
    const char *cases[] = {"",
                           "convert --to yaml patient.json",
                           "convert --bogus patient.json",
                           "convert a.json b.json",
                           "convert --to",
                           "frobnicate"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        result r = run(cases[i], NULL);
        if (r.status != 2) fail_msg("'%s' gave %d, want 2", cases[i], r.status);
        assert_non_null(strstr(r.err, "usage") ? r.err : strstr(r.err, "unknown"));
        result_free(&r);
    }
}

static void test_not_yet_supported(void **state)
{
    (void)state;
    /* validate works now: tests/unit/test_validate.c runs it as a binary */
    const char *cases[] = {"map x"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        result r = run(cases[i], NULL);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "not supported"));
        result_free(&r);
    }
}

/* serve that cannot start says why on stderr and exits 1 (the running
 * server is tested in tests/integration); usage errors exit 2. */
static void test_serve_cannot_start(void **state)
{
    (void)state;
    result r = run("serve --config /nonexistent/tsunagu.json", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "configuration"));
    result_free(&r);
    r = run("serve --bogus", NULL);
    assert_int_equal(r.status, 2);
    result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert_json_to_json), cmocka_unit_test(test_convert_both_ways),
        cmocka_unit_test(test_convert_errors),       cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_not_yet_supported),    cmocka_unit_test(test_serve_cannot_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
