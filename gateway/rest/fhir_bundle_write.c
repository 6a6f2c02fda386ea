/*
 * fhir_bundle_write.c — Bundles written as JSON text (see rest_internal.h).
 */
#include "rest_internal.h"

#include <stdio.h>
#include <string.h>

void rest_bundle_begin(rest_bundle *bb, const char *type, long total)
{
    memset(bb, 0, sizeof *bb);
    tsg_buf_init(&bb->b, TSG_LIMIT_BODY_BYTES * 4);
    char id[37], lu[32];
    rest_new_id(id);
    rest_instant(rest_now_ms(), lu);
    tsg_buf_printf(&bb->b,
                   "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"%s\"},"
                   "\"type\":\"%s\"",
                   id, lu, type);
    if (total >= 0) tsg_buf_printf(&bb->b, ",\"total\":%ld", total);
}

void rest_bundle_link(rest_bundle *bb, const char *rel, const char *url)
{
    tsg_buf_puts(&bb->b, bb->nlinks++ ? ",{\"relation\":\"" : ",\"link\":[{\"relation\":\"");
    http_json_escape(&bb->b, rel, strlen(rel));
    tsg_buf_puts(&bb->b, "\",\"url\":\"");
    http_json_escape(&bb->b, url, strlen(url));
    tsg_buf_puts(&bb->b, "\"}");
}

void rest_bundle_entry(rest_bundle *bb, const char *full_url, const char *res, size_t res_len,
                       const char *extra)
{
    if (bb->nlinks && !bb->entries_open) tsg_buf_putc(&bb->b, ']');
    tsg_buf_puts(&bb->b, bb->nentries++ ? ",{" : ",\"entry\":[{");
    bb->entries_open = 1;
    int sep = 0;
    if (full_url) {
        tsg_buf_puts(&bb->b, "\"fullUrl\":\"");
        http_json_escape(&bb->b, full_url, strlen(full_url));
        tsg_buf_putc(&bb->b, '"');
        sep = 1;
    }
    if (res && res_len) {
        tsg_buf_puts(&bb->b, sep ? ",\"resource\":" : "\"resource\":");
        tsg_buf_append(&bb->b, res, res_len);
        sep = 1;
    }
    if (extra && *extra) {
        if (sep) tsg_buf_putc(&bb->b, ',');
        tsg_buf_puts(&bb->b, extra);
    }
    tsg_buf_putc(&bb->b, '}');
}

void rest_bundle_finish(rest_bundle *bb, const http_request *req, http_response *resp)
{
    if (bb->nlinks && !bb->entries_open) tsg_buf_putc(&bb->b, ']');
    if (bb->entries_open) tsg_buf_putc(&bb->b, ']');
    tsg_buf_putc(&bb->b, '}');
    if (tsg_buf_rc(&bb->b)) {
        tsg_buf_free(&bb->b);
        http_respond_outcome(resp, 500, "error", "too-costly",
                             "the Bundle is larger than the response limit; use a smaller _count",
                             NULL, req->format);
        return;
    }
    resp->status = 200;
    resp->content_type = http_format_content_type(req->format);
    tsg_buf_reset(&resp->body);
    if (req->format == HTTP_FORMAT_JSON && !req->pretty) {
        tsg_buf_append(&resp->body, bb->b.data, bb->b.len);
        tsg_buf_free(&bb->b);
        return;
    }
    fhir_node *root = NULL;
    tsg_error err;
    tsg_rc rc = fhir_json_parse(req->arena, bb->b.data, bb->b.len, NULL, &root, &err);
    if (!rc) {
        unsigned flags = req->pretty ? FHIR_WRITE_PRETTY : 0;
        rc = req->format == HTTP_FORMAT_XML ? fhir_xml_write(root, &resp->body, flags)
                                            : fhir_json_write(root, &resp->body, flags);
    }
    tsg_buf_free(&bb->b);
    if (rc)
        http_respond_outcome(resp, 500, "fatal", "exception",
                             "the Bundle could not be written in the requested format", NULL,
                             req->format);
}
