/*
 * main.c — the tsunagu command (DESIGN.md §6).
 *
 * Exit status: 0 success, 1 invalid input or failed check (a message on
 * stderr), 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "fhirpath/fhirpath.h"
#include "rest/rest.h"
#include "model/model.h"
#include "util/util.h"
#include "validate/profile.h"
#include "validate/validate.h"

#define EXIT_INVALID 1
#define EXIT_USAGE   2

static const char usage_text[] =
    "usage: tsunagu <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve [--config FILE]                     run the gateway\n"
    "  convert [--to json|xml] [--pretty] [FILE|-]\n"
    "                                            convert a FHIR resource (JSON <-> XML)\n"
    "  validate [--profile URL]... [FILE|-]      validate a resource; OperationOutcome on stdout\n"
    "  fhirpath [--input FILE] EXPRESSION        evaluate FHIRPath\n"
    "  map MAPPING [FILE|-]                      run a mapping; the resulting Bundle on stdout\n"
    "  admin client create|list|revoke|rotate …  manage API clients (tsunagu admin for help)\n"
    "  admin key rotate                          a new signing key for access tokens\n"
    "  version                                   print the version\n";

static int usage(const char *msg)
{
    if (msg) fprintf(stderr, "tsunagu: %s\n", msg);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* Prints err as "tsunagu CMD: SOURCE:LINE:COL: LOCATION: MESSAGE" on stderr. */
static void report(const char *cmd, const char *source, const tsg_error *err)
{
    fprintf(stderr, "tsunagu %s: %s", cmd, source);
    if (err->line) fprintf(stderr, ":%u:%u", err->line, err->column);
    if (err->location[0]) fprintf(stderr, ": %s", err->location);
    fprintf(stderr, ": %s\n", err->message[0] ? err->message : tsg_rc_name(err->rc));
}

/* First non-whitespace byte after an optional BOM, or 0. */
static char first_byte(const char *s, size_t n)
{
    size_t i = 0;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
    return i < n ? s[i] : 0;
}

/* ------------------------------------------------------------------------
 * convert
 * ------------------------------------------------------------------------ */

static int cmd_convert(int argc, char **argv)
{
    const char *to = NULL, *file = NULL;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--to")) {
            if (++i >= argc) return usage("convert: --to needs json or xml");
            to = argv[i];
        } else if (!strncmp(a, "--to=", 5)) {
            to = a + 5;
        } else if (!strcmp(a, "--pretty")) {
            flags |= FHIR_WRITE_PRETTY;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return usage(NULL);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tsunagu convert: unknown option %s\n", a);
            return EXIT_USAGE;
        } else if (!file) {
            file = a;
        } else {
            return usage("convert: only one input file");
        }
    }
    if (to && strcmp(to, "json") && strcmp(to, "xml"))
        return usage("convert: --to must be json or xml");
    if (!file) file = "-";
    const char *source = strcmp(file, "-") ? file : "<stdin>";

    tsg_error err;
    tsg_error_clear(&err);
    char *data = NULL;
    size_t len = 0;
    tsg_rc rc = tsg_read_file(file, tsg_limits_default.max_body_bytes, &data, &len, &err);
    if (rc) {
        fprintf(stderr, "tsunagu convert: %s\n", err.message);
        return EXIT_INVALID;
    }
    char first = first_byte(data, len);
    int from_xml = first == '<';
    if (first != '<' && first != '{') {
        fprintf(stderr,
                "tsunagu convert: %s: neither FHIR JSON nor FHIR XML (expected '{' or '<')\n",
                source);
        free(data);
        return EXIT_INVALID;
    }
    int to_xml = to ? !strcmp(to, "xml") : !from_xml;

    tsg_arena *arena = tsg_arena_new(0);
    fhir_node *root = NULL;
    int status = EXIT_INVALID;
    tsg_buf out;
    tsg_buf_init(&out, 0);
    if (!arena) {
        fprintf(stderr, "tsunagu convert: out of memory\n");
        goto done;
    }
    rc = from_xml ? fhir_xml_parse(arena, data, len, NULL, &root, &err)
                  : fhir_json_parse(arena, data, len, NULL, &root, &err);
    if (rc) {
        report("convert", source, &err);
        goto done;
    }
    rc = to_xml ? fhir_xml_write(root, &out, flags | FHIR_WRITE_XML_DECL)
                : fhir_json_write(root, &out, flags);
    if (rc) {
        fprintf(stderr, "tsunagu convert: cannot write the output: %s\n", tsg_rc_name(rc));
        goto done;
    }
    if (out.len && out.data[out.len - 1] != '\n') tsg_buf_putc(&out, '\n');
    if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        fprintf(stderr, "tsunagu convert: cannot write to standard output\n");
        goto done;
    }
    status = 0;
done:
    tsg_buf_free(&out);
    tsg_arena_free(arena);
    free(data);
    return status;
}

/* ------------------------------------------------------------------------
 * fhirpath
 * ------------------------------------------------------------------------ */

/* Caps of the fhirpath command: the result printed, and the evaluation arena. */
#define FHIRPATH_OUTPUT_MAX (256u * 1024u * 1024u)
#define FHIRPATH_ARENA_MAX  (1024u * 1024u * 1024u)

/* trace() of the fhirpath command: `trace NAME: [items as JSON]` on stderr. */
static void fhirpath_trace(void *user, const char *name, size_t name_len, const fp_collection *c)
{
    (void)user;
    tsg_buf b;
    tsg_buf_init(&b, FHIRPATH_OUTPUT_MAX);
    fp_collection_write_json(c, &b);
    if (tsg_buf_rc(&b) == TSG_OK)
        fprintf(stderr, "trace %.*s: %.*s\n", (int)name_len, name, (int)b.len, b.data);
    else
        fprintf(stderr, "trace %.*s: (%zu items, too large to print)\n", (int)name_len, name,
                c->count);
    tsg_buf_free(&b);
}

/*
 * tsunagu fhirpath [--input FILE] EXPRESSION: evaluates EXPRESSION against the
 * resource in FILE (JSON or XML; none: the empty context) and prints the
 * result as DESIGN.md §6 says; trace() writes to stderr. Exit 1 with the reason when the input, the
 * expression or its evaluation fails; 2 on usage errors.
 */
static int cmd_fhirpath(int argc, char **argv)
{
    const char *file = NULL, *expr = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--input")) {
            if (++i >= argc) return usage("fhirpath: --input needs a FILE");
            file = argv[i];
        } else if (!expr) {
            expr = argv[i];
        } else {
            return usage("fhirpath: one EXPRESSION only");
        }
    }
    if (!expr) return usage("fhirpath: missing EXPRESSION");

    int status = EXIT_INVALID;
    tsg_error err;
    tsg_error_clear(&err);
    char *text = NULL;
    size_t len = 0;
    fp_expr *compiled = NULL;
    fhir_node *root = NULL;
    tsg_buf out;
    tsg_buf_init(&out, FHIRPATH_OUTPUT_MAX);
    tsg_arena *a = tsg_arena_new(FHIRPATH_ARENA_MAX);
    if (!a) {
        fprintf(stderr, "tsunagu fhirpath: out of memory\n");
        goto done;
    }
    if (fp_compile(expr, strlen(expr), &compiled, &err) != TSG_OK) {
        fprintf(stderr, "tsunagu fhirpath: expression:%u: %s\n", err.column, err.message);
        goto done;
    }
    if (file) {
        if (tsg_read_file(file, TSG_LIMIT_BODY_BYTES, &text, &len, &err) != TSG_OK) {
            report("fhirpath", file, &err);
            goto done;
        }
        tsg_rc rc = first_byte(text, len) == '<' ? fhir_xml_parse(a, text, len, NULL, &root, &err)
                                                 : fhir_json_parse(a, text, len, NULL, &root, &err);
        if (rc != TSG_OK) {
            report("fhirpath", file, &err);
            goto done;
        }
    }
    fp_collection result;
    fp_env env = {.trace = fhirpath_trace};
    if (fp_eval(compiled, root, root, &env, a, &result, &err) != TSG_OK) {
        fprintf(stderr, "tsunagu fhirpath: expression:%u: %s\n", err.column, err.message);
        goto done;
    }
    fp_collection_write_json(&result, &out);
    tsg_buf_putc(&out, '\n');
    if (tsg_buf_rc(&out) != TSG_OK) {
        fprintf(stderr, "tsunagu fhirpath: result: %s\n", tsg_rc_name(tsg_buf_rc(&out)));
        goto done;
    }
    fwrite(out.data, 1, out.len, stdout);
    status = fflush(stdout) == 0 ? 0 : EXIT_INVALID;
done:
    tsg_buf_free(&out);
    fp_expr_free(compiled);
    tsg_arena_free(a);
    free(text);
    return status;
}

/* tsunagu serve [--config FILE]: the gateway (rest.h). 1 when it cannot start. */
static int cmd_serve(int argc, char **argv)
{
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (++i >= argc) return usage("serve: --config needs a FILE");
            config = argv[i];
        } else {
            return usage("serve: unknown argument");
        }
    }
    return rest_serve(config);
}

/* ------------------------------------------------------------------------
 * validate
 * ------------------------------------------------------------------------ */

/* Profiles one validate command may name (--profile). */
#define VALIDATE_CLI_MAX_PROFILES 64

/*
 * tsunagu validate [--profile URL]... [FILE|-]: validates the resource (JSON
 * or XML) against the base R4 definitions and the named profiles (validate.h)
 * and prints the OperationOutcome (JSON) on stdout. Exit 0 when it holds no
 * error or fatal issue, 1 otherwise (unreadable or unparsable input
 * included: a fatal issue with line and column), 2 on usage errors.
 */
static int cmd_validate(int argc, char **argv)
{
    const char *file = NULL;
    const char *profiles[VALIDATE_CLI_MAX_PROFILES];
    size_t nprofiles = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--profile") || !strncmp(a, "--profile=", 10)) {
            const char *url = a[9] == '=' ? a + 10 : NULL;
            if (!url) {
                if (++i >= argc) return usage("validate: --profile needs a URL");
                url = argv[i];
            }
            if (!url[0]) return usage("validate: --profile needs a URL");
            if (nprofiles == VALIDATE_CLI_MAX_PROFILES)
                return usage("validate: too many --profile options (at most 64)");
            profiles[nprofiles++] = url;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return usage(NULL);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tsunagu validate: unknown option %s\n", a);
            return EXIT_USAGE;
        } else if (!file) {
            file = a;
        } else {
            return usage("validate: only one input file");
        }
    }
    if (!file) file = "-";
    const char *source = strcmp(file, "-") ? file : "<stdin>";

    tsg_arena *arena = tsg_arena_new(0);
    if (!arena) {
        fprintf(stderr, "tsunagu validate: out of memory\n");
        return EXIT_INVALID;
    }
    validate_result r;
    validate_result_init(&r, arena);
    validate_options opt;
    memset(&opt, 0, sizeof opt);
    opt.profiles = profiles;
    opt.nprofiles = nprofiles;
    opt.meta_profiles = 1;
    /* the packages to validate against: TSUNAGU_PROFILE_PATHS (':'-separated folders and
     * .tgz), as serve reads it, or the profiles/ folder when it is there */
    profile_registry *reg = NULL;
    {
        const char *paths = getenv("TSUNAGU_PROFILE_PATHS");
        tsg_error perr;
        tsg_error_clear(&perr);
        if (profile_registry_open_list(paths && *paths ? paths : PROFILE_DEFAULT_PATHS, NULL, NULL,
                                       &reg, &perr)) {
            fprintf(stderr, "tsunagu validate: profiles: %s\n", perr.message);
            tsg_arena_free(arena);
            return EXIT_INVALID;
        }
        if (reg) {
            opt.profile_validate = profile_registry_validate;
            opt.profile_ctx = reg;
        }
    }

    tsg_error err;
    tsg_error_clear(&err);
    char *data = NULL;
    size_t len = 0;
    tsg_rc rc = tsg_read_file(file, tsg_limits_default.max_body_bytes, &data, &len, &err);
    if (rc) {
        fprintf(stderr, "tsunagu validate: %s\n", err.message);
        validate_result_add(&r, VALIDATE_FATAL, tsg_rc_code(rc), "", err.message);
    } else {
        rc = validate_text(arena, data, len, &opt, &r, NULL);
        if (rc) {
            fprintf(stderr, "tsunagu validate: %s: %s\n", source, tsg_rc_name(rc));
            validate_result_add(&r, VALIDATE_FATAL, tsg_rc_code(rc), "", tsg_rc_name(rc));
        }
    }
    tsg_buf out;
    tsg_buf_init(&out, 0);
    int status = validate_result_failed(&r) ? EXIT_INVALID : 0;
    if (validate_outcome_json(&r, &out, FHIR_WRITE_PRETTY) != TSG_OK) {
        fprintf(stderr, "tsunagu validate: cannot write the OperationOutcome\n");
        status = EXIT_INVALID;
    } else {
        tsg_buf_putc(&out, '\n');
        if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
            fprintf(stderr, "tsunagu validate: cannot write to standard output\n");
            status = EXIT_INVALID;
        }
    }
    tsg_buf_free(&out);
    profile_registry_free(reg);
    tsg_arena_free(arena);
    free(data);
    return status;
}

/* ------------------------------------------------------------------------
 * Commands that later issues build
 * ------------------------------------------------------------------------ */

static int not_supported(const char *cmd, const char *issue)
{
    fprintf(stderr, "tsunagu %s: not supported yet in this build (%s)\n", cmd, issue);
    return EXIT_INVALID;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "validate")) return cmd_validate(argc - 1, argv + 1);
    if (!strcmp(cmd, "fhirpath")) return cmd_fhirpath(argc - 1, argv + 1);
    if (!strcmp(cmd, "map")) return not_supported(cmd, "mappings");
    if (!strcmp(cmd, "admin")) return auth_admin_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("tsunagu 0.1.0 (FHIR 4.0.1)\n");
        return 0;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    fprintf(stderr, "tsunagu: unknown command '%s'\n", cmd);
    return usage(NULL);
}
