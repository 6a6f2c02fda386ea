/*
 * model_internal.h — helpers shared by the JSON and XML readers and writers.
 * Not part of the module's public interface (model.h).
 */
#ifndef TSG_MODEL_INTERNAL_H
#define TSG_MODEL_INTERNAL_H

#include "model.h"

/*
 * Checks the lexical form of a primitive value of type t that both formats
 * must agree on, because JSON writes it bare: integer, positiveInt and
 * unsignedInt (an optional minus, digits, no leading zeros, within 32 bits;
 * positiveInt ≥ 1, unsignedInt ≥ 0), decimal (the R4 decimal grammar, which is
 * also JSON's number grammar), boolean (`true`/`false`), date, dateTime,
 * instant and time (the R4 regexes, and the day must exist in its month), id,
 * code (no leading, trailing or doubled whitespace), oid and uuid (their
 * `urn:` prefixes). Other types only need to be non-empty. Returns TSG_OK or
 * TSG_EINVAL with err->message set (location left to the caller).
 */
tsg_rc model_check_lexical(const model_type *t, const char *s, size_t n, tsg_error *err);

/*
 * Checks that s[0..n) is one well-formed XHTML fragment as FHIR allows it for
 * Narrative.div: a single root element `div` in the XHTML namespace (declared
 * with xmlns="http://www.w3.org/1999/xhtml"), no DOCTYPE, no entity references
 * other than the five predefined and character references, valid UTF-8.
 * Attributes are unprefixed or `xml:` (FHIR forbids xlink and the like in
 * narratives). Implemented in xml_read.c with the same tokenizer as the XML
 * reader. Returns TSG_OK; TSG_EINVAL with err->message (and err->column) set;
 * TSG_ELIMIT when the div nests deeper than TSG_LIMIT_DEPTH; TSG_ENOMEM.
 */
tsg_rc model_check_xhtml(const char *s, size_t n, tsg_error *err);

/*
 * Appends s[0..n) to b as XML character data: in an attribute value (attr)
 * & < > " and TAB LF CR become references, in text & < > and CR; other C0
 * controls (which FHIR refuses on input) become references too. One escaper
 * for the XML writer and the narrative re-serialiser. Failures are recorded
 * in the buffer (tsg_buf_rc).
 */
void model_xml_escape(tsg_buf *b, const char *s, size_t n, int attr);

#endif
