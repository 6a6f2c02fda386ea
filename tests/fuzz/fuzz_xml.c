/*
 * fuzz_xml.c — libFuzzer target for the FHIR XML reader and writer.
 *
 * Each input is parsed with fhir_xml_parse into a fresh arena. When it parses,
 * it is written back (compact or pretty, chosen by the input's length), and
 * the output must parse again into an equal tree: whatever the reader accepts,
 * the writer must be able to express, and every narrative div it produced
 * must pass model_check_xhtml. The input is also given to
 * model_check_xhtml, the narrative check the JSON reader uses. Any failed
 * check aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/model_internal.h"

static int tree_equal(const fhir_node *a, const fhir_node *b)
{
    if (a->elem != b->elem || a->type != b->type || a->pos != b->pos || a->nkids != b->nkids ||
        (a->value == NULL) != (b->value == NULL) || a->value_len != b->value_len ||
        (a->value && memcmp(a->value, b->value, a->value_len) != 0))
        return 0;
    for (uint32_t i = 0; i < a->nkids; i++)
        if (!tree_equal(&a->kids[i], &b->kids[i])) return 0;
    return 1;
}

/* Every narrative the reader produced must pass the check the JSON reader
 * applies to a div, so that XML→JSON output is always readable again. */
static int divs_ok(const fhir_node *n)
{
    if (n->elem && (n->elem->flags & MODEL_ELEM_XHTML) && n->value &&
        model_check_xhtml(n->value, n->value_len, NULL) != TSG_OK)
        return 0;
    for (uint32_t i = 0; i < n->nkids; i++)
        if (!divs_ok(&n->kids[i])) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    tsg_error err;
    (void)model_check_xhtml(text, size, &err);

    tsg_arena *a = tsg_arena_new(0);
    if (!a) return 0;
    fhir_node *root = NULL;
    if (fhir_xml_parse(a, text, size, NULL, &root, &err) == TSG_OK) {
        if (!divs_ok(root)) {
            fprintf(stderr, "a narrative div fails model_check_xhtml\n");
            abort();
        }
        tsg_buf out;
        tsg_buf_init(&out, 0);
        unsigned flags = (size & 1) ? FHIR_WRITE_PRETTY | FHIR_WRITE_XML_DECL : 0;
        if (fhir_xml_write(root, &out, flags) != TSG_OK) abort();
        fhir_node *again = NULL;
        tsg_arena *b = tsg_arena_new(0);
        if (!b) abort();
        if (fhir_xml_parse(b, out.data, out.len, NULL, &again, &err) != TSG_OK) {
            fprintf(stderr, "written XML does not parse: %s at %s (%u:%u)\n%.*s\n", err.message,
                    err.location, err.line, err.column, (int)out.len, out.data);
            abort();
        }
        if (!tree_equal(root, again)) {
            fprintf(stderr, "round trip changed the tree:\n%.*s\n", (int)out.len, out.data);
            abort();
        }
        tsg_arena_free(b);
        tsg_buf_free(&out);
    }
    tsg_arena_free(a);
    return 0;
}
