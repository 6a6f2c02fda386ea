/*
 * fuzz_search.c — libFuzzer target for the search query parser
 * (search_query_parse, gateway/search/search.h).
 *
 * The first byte picks the resource type and whether the parse is lenient;
 * the rest is split like a URL query: pairs on '&', name and value on the
 * first '='. Properties: a strict parse either succeeds with a query whose
 * clauses all have values and a parameter (or _has), or fails with
 * TSG_EINVAL and a message that names a parameter; a lenient parse never
 * fails except for memory, and lists every skipped pair with a reason. Never
 * crash, leak or hang.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/search.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_search: broken property: %s\n", what);
        abort();
    }
}

static const char *const TYPES[] = {"Patient",   "Observation",  "Encounter", "Location",
                                    "Condition", "Practitioner", "ValueSet",  "RiskAssessment"};

#define MAX_PAIRS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *type = TYPES[data[0] % (sizeof TYPES / sizeof TYPES[0])];
    int lenient = (data[0] >> 3) & 1;
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    const char *names[MAX_PAIRS], *values[MAX_PAIRS];
    size_t n = 0;
    char *p = text, *end = text + size - 1;
    while (p < end && n < MAX_PAIRS) {
        char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp) *amp = '\0';
        char *eq = strchr(p, '=');
        if (eq) *eq = '\0';
        names[n] = p;
        values[n] = eq ? eq + 1 : "";
        n++;
        p = amp ? amp + 1 : end;
    }
    tsg_arena *a = tsg_arena_new(64u << 20);
    search_query *q = NULL;
    tsg_error err;
    tsg_rc rc = search_query_parse(type, n, names, values, lenient, a, &q, &err);
    if (rc == TSG_OK) {
        check(q != NULL, "a query on success");
        check(q->nclauses <= n, "no more clauses than pairs");
        for (size_t i = 0; i < q->nclauses; i++) {
            const search_clause *c = &q->clauses[i];
            check(c->nvalues >= 1 && c->values != NULL, "a clause has values");
            check(c->param != NULL || c->has_param != NULL, "a clause has a parameter");
            for (size_t k = 0; k < c->nvalues; k++) {
                check(c->values[k].raw != NULL, "a value has its text");
                if (c->values[k].low || c->values[k].high)
                    check(c->values[k].low < c->values[k].high, "a date range is not empty");
            }
        }
        check(q->count >= -1 && q->count <= SEARCH_COUNT_MAX, "bounded _count");
        check(lenient || q->nignored == 0, "strict parses ignore nothing");
        for (size_t i = 0; i < q->nignored; i++)
            check(q->ignored[i] && q->ignored_why[i] && q->ignored_why[i][0],
                  "an ignored pair has a reason");
    } else {
        check(q == NULL, "no query on failure");
        check(rc == TSG_EINVAL || rc == TSG_ENOMEM, "EINVAL or ENOMEM");
        check(!lenient || rc == TSG_ENOMEM, "lenient fails only for memory");
        check(err.message[0] != '\0', "an error has a message");
    }
    tsg_arena_free(a);
    free(text);
    return 0;
}
