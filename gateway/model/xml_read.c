#include "model.h"
#include "model_internal.h"
/* In progress (XML helper): the XML reader. */
tsg_rc fhir_xml_parse(tsg_arena *a, const char *text, size_t len, const tsg_limits *lim,
                      fhir_node **out, tsg_error *err)
{
    (void)a, (void)text, (void)len, (void)lim;
    *out = NULL;
    return tsg_error_set(err, TSG_ENOTSUP, "not-supported", "the XML reader is not built yet");
}
tsg_rc model_check_xhtml(const char *s, size_t n, tsg_error *err)
{
    (void)s, (void)n;
    return tsg_error_set(err, TSG_ENOTSUP, "not-supported", "XHTML checking is not built yet");
}
