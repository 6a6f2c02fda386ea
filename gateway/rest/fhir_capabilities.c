/*
 * fhir_capabilities.c — GET /fhir/metadata: the CapabilityStatement, built
 * from the model (every R4 resource type) and the search-parameter table, and
 * listing only the interactions this build implements.
 */
#include "rest_internal.h"

#include <string.h>

void rest_capabilities(const http_request *req, http_response *resp)
{
    resp->interaction = "capabilities";
    rest_bundle bb; /* only for its bounded buffer */
    memset(&bb, 0, sizeof bb);
    tsg_buf *b = &bb.b;
    tsg_buf_init(b, TSG_LIMIT_BODY_BYTES);
    char now[32];
    rest_instant(rest_now_ms(), now);
    tsg_buf_printf(b,
                   "{\"resourceType\":\"CapabilityStatement\",\"status\":\"active\","
                   "\"date\":\"%s\",\"publisher\":\"tsunagu\",\"kind\":\"instance\","
                   "\"software\":{\"name\":\"tsunagu\",\"version\":\"0.1.0\"},"
                   "\"implementation\":{\"description\":\"tsunagu FHIR R4 gateway\",\"url\":\"",
                   now);
    const char *base = rest_base_url(req);
    http_json_escape(b, base, strlen(base));
    tsg_buf_puts(b, "\"},\"fhirVersion\":\"4.0.1\",\"format\":[\"json\",\"xml\"],"
                    "\"patchFormat\":[\"application/json-patch+json\"],"
                    "\"rest\":[{\"mode\":\"server\",\"resource\":[");
    const model *m = model_r4();
    int first = 1;
    for (uint32_t i = 0; i < m->ntypes; i++) {
        const model_type *t = &m->types[i];
        if (!model_is_resource(t) || !t->url || (t->flags & MODEL_TYPE_ABSTRACT)) continue;
        tsg_buf_printf(b,
                       "%s{\"type\":\"%s\",\"interaction\":[{\"code\":\"read\"},{\"code\":"
                       "\"vread\"},{\"code\":\"update\"},{\"code\":\"patch\"},{\"code\":"
                       "\"delete\"},{\"code\":\"history-instance\"},{\"code\":\"history-type\"},"
                       "{\"code\":\"create\"},{\"code\":\"search-type\"}],"
                       "\"versioning\":\"versioned-update\",\"readHistory\":true,"
                       "\"updateCreate\":true,\"conditionalCreate\":true,"
                       "\"conditionalUpdate\":true,\"conditionalDelete\":\"single\"",
                       first ? "" : ",", t->name);
        first = 0;
        const search_param *const *ps;
        size_t np = search_params_of(t->name, &ps);
        int firstp = 1;
        for (size_t k = 0; k < np; k++) {
            const search_param *p = ps[k];
            if (!p->expr || p->type == SEARCH_COMPOSITE ||
                (p->type == SEARCH_SPECIAL && strcmp(p->code, "near")))
                continue;
            tsg_buf_printf(b, "%s{\"name\":\"%s\",\"type\":\"%s\"}",
                           firstp ? ",\"searchParam\":[" : ",", p->code, search_type_name(p->type));
            firstp = 0;
        }
        if (!firstp) tsg_buf_putc(b, ']');
        tsg_buf_putc(b, '}');
    }
    tsg_buf_puts(b, "],\"interaction\":[{\"code\":\"transaction\"},{\"code\":\"batch\"},"
                    "{\"code\":\"history-system\"}],"
                    "\"operation\":[{\"name\":\"everything\",\"definition\":"
                    "\"http://hl7.org/fhir/OperationDefinition/Patient-everything\"}]}]}");
    if (tsg_buf_rc(b)) {
        tsg_buf_free(b);
        http_respond_outcome(resp, 500, "fatal", "exception", "capabilities too large", NULL,
                             req->format);
        return;
    }
    rest_respond_resource(req, resp, 200, b->data, b->len, 0, 0);
    tsg_buf_free(b);
}
