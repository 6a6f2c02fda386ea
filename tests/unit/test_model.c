/*
 * test_model.c — completeness and lookups of the embedded R4 model (model.h).
 *
 * The model is generated from the official R4 (4.0.1) definitions; these tests
 * check that what the gateway carries is all of R4 — every resource, data type
 * and primitive, with the element order, cardinality, choice types,
 * contentReference, bindings and constraints of the specification — and
 * nothing that is not R4.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "model/model.h"

/* R4 4.0.1 has 146 concrete resource types: the codes of the value set
 * http://hl7.org/fhir/ValueSet/resource-types (148) less the abstract Resource
 * and DomainResource. */
#define R4_CONCRETE_RESOURCES 146u

#define RESOURCE_TYPES_VS "http://hl7.org/fhir/ValueSet/resource-types"

static const char *const r4_primitives[] = {
    "base64Binary", "boolean",     "canonical", "code",     "date", "dateTime",    "decimal",
    "id",           "instant",     "integer",   "markdown", "oid",  "positiveInt", "string",
    "time",         "unsignedInt", "uri",       "url",      "uuid", "xhtml",
};

/* clang-format off */
static const char *const r4_complex[] = {
    "Address", "Age", "Annotation", "Attachment", "BackboneElement", "CodeableConcept", "Coding",
    "ContactDetail", "ContactPoint", "Contributor", "Count", "DataRequirement", "Distance",
    "Dosage", "Duration", "Element", "ElementDefinition", "Expression", "Extension", "HumanName",
    "Identifier", "MarketingStatus", "Meta", "Money", "Narrative", "ParameterDefinition", "Period",
    "Population", "ProdCharacteristic", "ProductShelfLife", "Quantity", "Range", "Ratio",
    "Reference", "RelatedArtifact", "SampledData", "Signature", "SubstanceAmount", "Timing",
    "TriggerDefinition", "UsageContext",
};
/* clang-format on */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static const model_type *type_named(const char *name)
{
    return model_type_find(name, strlen(name));
}

/* The element `path` ("Patient.name", "Questionnaire.item.item"): the part
 * after the last dot is looked up in the type named by the part before it. */
static const model_elem *elem_at(const char *path)
{
    const char *dot = strrchr(path, '.');
    assert_non_null(dot);
    const model_type *t = model_type_find(path, (size_t)(dot - path));
    if (!t) fail_msg("no type %.*s", (int)(dot - path), path);
    const model_elem *e = model_elem_find(t, dot + 1);
    if (!e) fail_msg("no element %s", path);
    return e;
}

static const model_constraint *constraint_of(const model_constraint *const *cs, uint16_t n,
                                             const char *key)
{
    for (uint16_t i = 0; i < n; i++)
        if (strcmp(cs[i]->key, key) == 0) return cs[i];
    return NULL;
}

static int is_concrete_resource(const model_type *t)
{
    return t->kind == MODEL_RESOURCE && !(t->flags & MODEL_TYPE_ABSTRACT);
}

/* ------------------------------------------------------------------------
 * Completeness
 * ------------------------------------------------------------------------ */

static void test_all_resources_present(void **state)
{
    (void)state;
    const model *m = model_r4();
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->ntypes; i++)
        if (is_concrete_resource(&m->types[i])) n++;
    assert_int_equal(n, R4_CONCRETE_RESOURCES);

    /* The abstract bases are types but not instantiable resources. */
    const char *abstract[] = {"Resource", "DomainResource"};
    for (size_t i = 0; i < COUNT(abstract); i++) {
        const model_type *t = type_named(abstract[i]);
        assert_non_null(t);
        assert_int_equal(t->kind, MODEL_RESOURCE);
        assert_true(t->flags & MODEL_TYPE_ABSTRACT);
        assert_null(model_resource_find(abstract[i], strlen(abstract[i])));
    }
    assert_ptr_equal(type_named("Patient")->base, type_named("DomainResource"));
    assert_ptr_equal(type_named("DomainResource")->base, type_named("Resource"));
    assert_ptr_equal(type_named("Bundle")->base, type_named("Resource"));
}

/* Every R4 resource type (the resource-types value set, itself R4 data) is a
 * concrete resource of the model, and the model has no resource type that R4
 * does not list. */
static void test_resources_match_resource_types(void **state)
{
    (void)state;
    const model *m = model_r4();
    const model_valueset *vs = model_valueset_find(RESOURCE_TYPES_VS);
    assert_non_null(vs);
    assert_null(vs->unavailable);
    assert_int_equal(vs->ncodes, R4_CONCRETE_RESOURCES + 2);
    for (uint32_t i = 0; i < vs->ncodes; i++) {
        const char *c = vs->codes[i].code;
        if (!strcmp(c, "Resource") || !strcmp(c, "DomainResource")) continue;
        if (!model_resource_find(c, strlen(c))) fail_msg("R4 resource %s is missing", c);
    }
    for (uint32_t i = 0; i < m->ntypes; i++) {
        const model_type *t = &m->types[i];
        if (is_concrete_resource(t) && !model_valueset_has(vs, NULL, t->name))
            fail_msg("the model has resource %s, which is not an R4 resource type", t->name);
    }
}

static void test_all_primitives_present(void **state)
{
    (void)state;
    const model *m = model_r4();
    for (size_t i = 0; i < COUNT(r4_primitives); i++) {
        const model_type *t = type_named(r4_primitives[i]);
        if (!t) fail_msg("primitive %s is missing", r4_primitives[i]);
        assert_int_equal(t->kind, MODEL_PRIMITIVE);
        assert_non_null(t->system_type);
        assert_non_null(t->url);
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->ntypes; i++) n += m->types[i].kind == MODEL_PRIMITIVE;
    assert_int_equal(n, COUNT(r4_primitives));

    /* how JSON writes them, and what FHIRPath sees */
    const char *numbers[] = {"integer", "decimal", "positiveInt", "unsignedInt"};
    for (size_t i = 0; i < COUNT(numbers); i++)
        assert_true(type_named(numbers[i])->flags & MODEL_TYPE_JSON_NUMBER);
    assert_true(type_named("boolean")->flags & MODEL_TYPE_JSON_BOOL);
    assert_false(type_named("string")->flags & (MODEL_TYPE_JSON_NUMBER | MODEL_TYPE_JSON_BOOL));
    assert_true(type_named("xhtml")->flags & MODEL_TYPE_XHTML);
    assert_string_equal(type_named("date")->system_type, "System.Date");
    assert_string_equal(type_named("decimal")->system_type, "System.Decimal");
    assert_string_equal(type_named("boolean")->system_type, "System.Boolean");
    assert_non_null(type_named("date")->regex);
    /* derived primitives */
    assert_true(model_type_is(type_named("code"), type_named("string")));
    assert_true(model_type_is(type_named("positiveInt"), type_named("integer")));
    assert_true(model_type_is(type_named("canonical"), type_named("uri")));
    assert_false(model_type_is(type_named("string"), type_named("code")));
}

static void test_all_complex_types_present(void **state)
{
    (void)state;
    const model *m = model_r4();
    for (size_t i = 0; i < COUNT(r4_complex); i++) {
        const model_type *t = type_named(r4_complex[i]);
        if (!t) fail_msg("data type %s is missing", r4_complex[i]);
        assert_int_equal(t->kind, MODEL_COMPLEX);
        assert_true(t->nelems >= 2); /* at least id and extension */
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->ntypes; i++) n += m->types[i].kind == MODEL_COMPLEX;
    assert_int_equal(n, COUNT(r4_complex));

    assert_true(type_named("Element")->flags & MODEL_TYPE_ABSTRACT);
    assert_true(type_named("BackboneElement")->flags & MODEL_TYPE_ABSTRACT);
    assert_false(type_named("HumanName")->flags & MODEL_TYPE_ABSTRACT);
    /* the constraint profiles on Quantity */
    const char *profiles[] = {"SimpleQuantity", "MoneyQuantity"};
    for (size_t i = 0; i < COUNT(profiles); i++) {
        const model_type *t = type_named(profiles[i]);
        assert_non_null(t);
        assert_int_equal(t->kind, MODEL_PROFILE);
        assert_ptr_equal(t->base, type_named("Quantity"));
    }
    assert_true(model_type_is(type_named("Age"), type_named("Quantity")));
    assert_true(model_type_is(type_named("Dosage"), type_named("BackboneElement")));
    assert_true(model_type_is(type_named("HumanName"), type_named("Element")));
    assert_false(model_type_is(type_named("HumanName"), type_named("Quantity")));
}

/* Internal consistency over every type and element: owners, indices, paths,
 * types, and unique property names within a type. */
static void test_every_element_well_formed(void **state)
{
    (void)state;
    const model *m = model_r4();
    uint32_t nelems = 0;
    for (uint32_t i = 0; i < m->ntypes; i++) {
        const model_type *t = &m->types[i];
        assert_int_equal(t->id, i);
        assert_ptr_equal(type_named(t->name), t);
        if (t->kind == MODEL_BACKBONE) {
            assert_non_null(t->base);
            assert_non_null(strchr(t->name, '.'));
        }
        for (uint16_t k = 0; k < t->nelems; k++) {
            const model_elem *e = &t->elems[k];
            nelems++;
            assert_ptr_equal(e->owner, t);
            assert_int_equal(e->index, k);
            assert_true(e->ntypes >= 1);
            assert_true(e->max == MODEL_MANY || e->min <= e->max);
            for (uint16_t j = 0; j < e->ntypes; j++) assert_non_null(e->types[j].type);
            if (!(e->flags & MODEL_ELEM_CHOICE)) assert_int_equal(e->ntypes, 1);
            assert_true(strncmp(e->path, t->name, strlen(t->name)) == 0);
            /* every property name of the element leads back to it */
            for (uint16_t j = 0; j < e->ntypes; j++) {
                char name[128];
                size_t len = model_property_name(e, e->types[j].type, name, sizeof name);
                assert_true(len > 0);
                const model_type *ct = NULL;
                const model_elem *found = model_child(t, name, len, &ct);
                if (found != e)
                    fail_msg("%s: property %s does not find its element", e->path, name);
                assert_ptr_equal(ct, e->types[j].type);
            }
            for (uint16_t j = 0; j < k; j++)
                if (!strcmp(t->elems[j].name, e->name)) fail_msg("%s twice", e->path);
        }
    }
    assert_true(nelems > 5000);
}

/* ------------------------------------------------------------------------
 * Structure of particular types
 * ------------------------------------------------------------------------ */

static void test_patient_element_order(void **state)
{
    (void)state;
    static const char *const order[] = {
        "id",
        "meta",
        "implicitRules",
        "language",
        "text",
        "contained",
        "extension",
        "modifierExtension",
        "identifier",
        "active",
        "name",
        "telecom",
        "gender",
        "birthDate",
        "deceased",
        "address",
        "maritalStatus",
        "multipleBirth",
        "photo",
        "contact",
        "communication",
        "generalPractitioner",
        "managingOrganization",
        "link",
    };
    const model_type *p = model_resource_find("Patient", 7);
    assert_non_null(p);
    assert_int_equal(p->kind, MODEL_RESOURCE);
    assert_int_equal(p->nelems, COUNT(order));
    for (size_t i = 0; i < COUNT(order); i++) assert_string_equal(p->elems[i].name, order[i]);
    assert_string_equal(p->url, "http://hl7.org/fhir/StructureDefinition/Patient");

    static const char *const contact[] = {
        "id",      "extension", "modifierExtension", "relationship", "name", "telecom",
        "address", "gender",    "organization",      "period"};
    const model_type *c = type_named("Patient.contact");
    assert_non_null(c);
    assert_int_equal(c->kind, MODEL_BACKBONE);
    assert_ptr_equal(c->base, type_named("BackboneElement"));
    assert_int_equal(c->nelems, COUNT(contact));
    for (size_t i = 0; i < COUNT(contact); i++) assert_string_equal(c->elems[i].name, contact[i]);
    assert_ptr_equal(elem_at("Patient.contact")->types[0].type, c);
}

/* Data types carry exactly their R4 elements: Meta in particular is in every
 * resource, so an element added there would be accepted everywhere. */
static void test_meta_and_binary_exactly_r4(void **state)
{
    (void)state;
    static const char *const meta[] = {"id",     "extension", "versionId", "lastUpdated",
                                       "source", "profile",   "security",  "tag"};
    const model_type *t = type_named("Meta");
    for (size_t i = 0; i < COUNT(meta) && i < t->nelems; i++)
        assert_string_equal(t->elems[i].name, meta[i]);
    if (t->nelems != COUNT(meta))
        fail_msg("Meta has %u elements, R4 has %zu (first extra: %s)", t->nelems, COUNT(meta),
                 t->nelems > COUNT(meta) ? t->elems[COUNT(meta)].name : "-");

    static const char *const binary[] = {
        "id", "meta", "implicitRules", "language", "contentType", "securityContext", "data"};
    t = type_named("Binary");
    for (size_t i = 0; i < COUNT(binary) && i < t->nelems; i++)
        assert_string_equal(t->elems[i].name, binary[i]);
    if (t->nelems != COUNT(binary))
        fail_msg("Binary has %u elements, R4 has %zu", t->nelems, COUNT(binary));
}

/* What the redistributing npm package changed in the R4 files is undone (see
 * gen_r4_model.py): R5 shapes, narrowed types and R5 bindings. */
static void test_r4_shapes_not_r5(void **state)
{
    (void)state;
    const model_type *t = model_resource_find("ResearchStudy", 13);
    assert_null(model_elem_find(t, "label"));
    assert_null(model_elem_find(t, "recruitment"));
    assert_null(model_elem_find(type_named("ResearchStudy.objective"), "description"));
    assert_null(model_elem_find(type_named("HealthcareService"), "offeredIn"));

    const model_elem *e = elem_at("EvidenceVariable.characteristic");
    assert_int_equal(e->min, 1);
    const model_type *ct = NULL;
    t = type_named("EvidenceVariable.characteristic");
    assert_non_null(model_child(t, "definitionTriggerDefinition", 27, &ct));
    assert_ptr_equal(ct, type_named("TriggerDefinition"));
    assert_non_null(model_child(t, "participantEffectiveTiming", 26, &ct));
    assert_null(model_child(t, "definitionByCombination", 23, &ct));
    assert_int_equal(elem_at("EvidenceVariable.characteristic.definition")->min, 1);
    assert_non_null(elem_at("EvidenceVariable.characteristic.groupMeasure")->binding->valueset);

    assert_ptr_equal(elem_at("Bundle.entry.response.outcome")->types[0].type,
                     type_named("Resource"));

    /* R4 binds DetectedIssue.status to ObservationStatus (detectedissue-status is R5) */
    e = elem_at("DetectedIssue.status");
    assert_string_equal(e->binding->valueset_url,
                        "http://hl7.org/fhir/ValueSet/observation-status");
    assert_int_equal(e->binding->valueset->ncodes, 8);
}

static void test_cardinality(void **state)
{
    (void)state;
    const model_elem *e = elem_at("Patient.name");
    assert_int_equal(e->min, 0);
    assert_int_equal(e->max, MODEL_MANY);
    e = elem_at("Observation.status");
    assert_int_equal(e->min, 1);
    assert_int_equal(e->max, 1);
    assert_true(e->flags & MODEL_ELEM_MODIFIER);
    assert_true(e->flags & MODEL_ELEM_SUMMARY);
    e = elem_at("Observation.code");
    assert_int_equal(e->min, 1);
    assert_int_equal(e->max, 1);
    e = elem_at("Bundle.type");
    assert_int_equal(e->min, 1);
    e = elem_at("Patient.birthDate");
    assert_int_equal(e->min, 0);
    assert_int_equal(e->max, 1);
    assert_ptr_equal(e->types[0].type, type_named("date"));
    e = elem_at("Extension.url");
    assert_int_equal(e->min, 1);
    assert_int_equal(e->max, 1);
    e = elem_at("Narrative.div");
    assert_int_equal(e->min, 1);
    /* SimpleQuantity forbids a comparator */
    e = elem_at("SimpleQuantity.comparator");
    assert_int_equal(e->max, 0);
}

static void test_types_and_targets(void **state)
{
    (void)state;
    /* Resource.id is `id` (the published snapshots say string; the spec says id) */
    assert_ptr_equal(elem_at("Resource.id")->types[0].type, type_named("id"));
    assert_ptr_equal(elem_at("Patient.id")->types[0].type, type_named("id"));
    assert_ptr_equal(elem_at("Element.id")->types[0].type, type_named("string"));

    const model_elem *e = elem_at("Patient.generalPractitioner");
    assert_ptr_equal(e->types[0].type, type_named("Reference"));
    assert_int_equal(e->types[0].ntargets, 3);
    assert_string_equal(e->types[0].targets[0], "Organization");
    assert_string_equal(e->types[0].targets[1], "Practitioner");
    assert_string_equal(e->types[0].targets[2], "PractitionerRole");

    e = elem_at("Patient.contained");
    assert_ptr_equal(e->types[0].type, type_named("Resource"));
    e = elem_at("Bundle.entry.resource");
    assert_ptr_equal(e->types[0].type, type_named("Resource"));
}

static void test_choice_lookup(void **state)
{
    (void)state;
    const model_type *obs = model_resource_find("Observation", 11);
    const model_type *ct = NULL;

    const model_elem *e = model_child(obs, "valueQuantity", 13, &ct);
    assert_non_null(e);
    assert_string_equal(e->name, "value");
    assert_string_equal(e->path, "Observation.value[x]");
    assert_true(e->flags & MODEL_ELEM_CHOICE);
    assert_ptr_equal(ct, type_named("Quantity"));
    assert_int_equal(e->ntypes, 11);

    e = model_child(obs, "effectiveDateTime", 17, &ct);
    assert_non_null(e);
    assert_string_equal(e->name, "effective");
    assert_ptr_equal(ct, type_named("dateTime"));

    e = model_child(obs, "valueString", 11, &ct);
    assert_ptr_equal(ct, type_named("string"));
    e = model_child(obs, "valueSampledData", 16, &ct);
    assert_ptr_equal(ct, type_named("SampledData"));

    const model_type *pat = model_resource_find("Patient", 7);
    e = model_child(pat, "deceasedBoolean", 15, &ct);
    assert_non_null(e);
    assert_string_equal(e->name, "deceased");
    assert_ptr_equal(ct, type_named("boolean"));
    e = model_child(pat, "deceasedDateTime", 16, &ct);
    assert_ptr_equal(ct, type_named("dateTime"));
    e = model_child(pat, "multipleBirthInteger", 20, &ct);
    assert_ptr_equal(ct, type_named("integer"));

    /* not a property: the bare choice name, a type it does not allow, wrong case */
    assert_null(model_child(obs, "value", 5, &ct));
    assert_null(model_child(obs, "valueMoney", 10, &ct));
    assert_null(model_child(obs, "valuequantity", 13, &ct));
    assert_null(model_child(pat, "deceasedInteger", 15, &ct));
    assert_null(model_child(obs, "value[x]", 8, &ct));

    /* Extension.value[x] allows every primitive and most data types */
    e = elem_at("Extension.value");
    assert_true(e->flags & MODEL_ELEM_CHOICE);
    assert_int_equal(e->ntypes, 50);
    assert_non_null(model_child(type_named("Extension"), "valueBase64Binary", 17, &ct));
    assert_ptr_equal(ct, type_named("base64Binary"));

    /* a non-choice element gives its single type */
    e = model_child(pat, "name", 4, &ct);
    assert_non_null(e);
    assert_ptr_equal(ct, type_named("HumanName"));
}

static void test_content_reference(void **state)
{
    (void)state;
    const model_type *item = type_named("Questionnaire.item");
    assert_non_null(item);
    assert_int_equal(item->kind, MODEL_BACKBONE);
    const model_type *ct = NULL;
    const model_elem *e = model_child(item, "item", 4, &ct);
    assert_non_null(e);
    assert_ptr_equal(ct, item);
    assert_ptr_equal(e->types[0].type, item);
    assert_int_equal(e->max, MODEL_MANY);
    /* and the nested one really has the backbone's children */
    assert_non_null(model_child(ct, "linkId", 6, NULL));
    assert_non_null(model_child(ct, "answerValueSet", 14, NULL));

    /* other contentReferences: to a sibling backbone, and to a far one */
    assert_ptr_equal(elem_at("Bundle.entry.link")->types[0].type, type_named("Bundle.link"));
    assert_ptr_equal(elem_at("ValueSet.compose.exclude")->types[0].type,
                     type_named("ValueSet.compose.include"));
    assert_ptr_equal(elem_at("ClaimResponse.adjudication")->types[0].type,
                     type_named("ClaimResponse.item.adjudication"));
    assert_ptr_equal(elem_at("QuestionnaireResponse.item.answer.item")->types[0].type,
                     type_named("QuestionnaireResponse.item"));
}

static void test_bindings(void **state)
{
    (void)state;
    const model_elem *e = elem_at("Patient.gender");
    assert_non_null(e->binding);
    assert_int_equal(e->binding->strength, MODEL_BIND_REQUIRED);
    assert_string_equal(e->binding->valueset_url,
                        "http://hl7.org/fhir/ValueSet/administrative-gender");
    const model_valueset *vs = e->binding->valueset;
    assert_non_null(vs);
    assert_null(vs->unavailable);
    assert_int_equal(vs->ncodes, 4);
    const char *codes[] = {"female", "male", "other", "unknown"}; /* sorted by code */
    for (size_t i = 0; i < COUNT(codes); i++) {
        assert_string_equal(vs->codes[i].code, codes[i]);
        assert_string_equal(vs->codes[i].system, "http://hl7.org/fhir/administrative-gender");
        assert_true(model_valueset_has(vs, NULL, codes[i]));
        assert_true(model_valueset_has(vs, "http://hl7.org/fhir/administrative-gender", codes[i]));
    }
    assert_false(model_valueset_has(vs, NULL, "Male"));
    assert_false(model_valueset_has(vs, NULL, "x"));
    assert_false(model_valueset_has(vs, NULL, ""));
    assert_false(model_valueset_has(vs, "http://example.org/other", "male"));

    /* lookup by URL, with and without a version */
    assert_ptr_equal(model_valueset_find("http://hl7.org/fhir/ValueSet/administrative-gender"), vs);
    assert_ptr_equal(
        model_valueset_find("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"), vs);

    e = elem_at("Observation.status");
    assert_int_equal(e->binding->strength, MODEL_BIND_REQUIRED);
    vs = e->binding->valueset;
    assert_non_null(vs);
    assert_int_equal(vs->ncodes, 8);
    assert_true(model_valueset_has(vs, NULL, "final"));
    assert_true(model_valueset_has(vs, NULL, "entered-in-error"));
    assert_false(model_valueset_has(vs, NULL, "done"));

    /* weaker strengths keep the URL but no codes */
    e = elem_at("Patient.maritalStatus");
    assert_int_equal(e->binding->strength, MODEL_BIND_EXTENSIBLE);
    assert_null(e->binding->valueset);
    e = elem_at("Patient.language");
    assert_int_equal(e->binding->strength, MODEL_BIND_PREFERRED);
    e = elem_at("Observation.code");
    assert_int_equal(e->binding->strength, MODEL_BIND_EXAMPLE);
    assert_null(elem_at("Patient.birthDate")->binding);

    /* codes from nested concepts of a code system are there too */
    vs = model_valueset_find("http://hl7.org/fhir/ValueSet/bundle-type");
    assert_non_null(vs);
    assert_true(model_valueset_has(vs, NULL, "transaction"));
    assert_true(model_valueset_has(vs, NULL, "searchset"));
}

/* Every required binding has its value set in the model, with codes, or with
 * the reason its codes are not enumerated. */
static void test_every_required_binding_has_codes(void **state)
{
    (void)state;
    const model *m = model_r4();
    uint32_t nreq = 0, nunavailable = 0;
    for (uint32_t i = 0; i < m->ntypes; i++) {
        const model_type *t = &m->types[i];
        for (uint16_t k = 0; k < t->nelems; k++) {
            const model_binding *b = t->elems[k].binding;
            if (!b || b->strength != MODEL_BIND_REQUIRED) continue;
            nreq++;
            if (!b->valueset)
                fail_msg("%s: required value set %s is not in the model", t->elems[k].path,
                         b->valueset_url);
            if (b->valueset->unavailable)
                nunavailable++;
            else if (b->valueset->ncodes == 0)
                fail_msg("%s: value set %s has no codes", t->elems[k].path, b->valueset_url);
        }
    }
    assert_true(nreq > 300);
    /* only external code systems (mime types, currencies, UCUM, …) go unenumerated */
    assert_true(nunavailable < 40);
    for (uint32_t v = 0; v < m->nvaluesets; v++) {
        const model_valueset *vs = &m->valuesets[v];
        for (uint32_t c = 1; c < vs->ncodes; c++)
            assert_true(strcmp(vs->codes[c - 1].code, vs->codes[c].code) <= 0);
    }
}

static void test_constraints(void **state)
{
    (void)state;
    const model_type *c = type_named("Patient.contact");
    const model_constraint *k = constraint_of(c->constraints, c->nconstraints, "pat-1");
    assert_non_null(k);
    assert_string_equal(k->severity, "error");
    assert_string_equal(k->expression, "name.exists() or telecom.exists() or address.exists() or "
                                       "organization.exists()");
    assert_non_null(strstr(k->human, "contact's details"));
    /* the element that carries the backbone shows it too */
    const model_elem *e = elem_at("Patient.contact");
    assert_non_null(constraint_of(e->constraints, e->nconstraints, "pat-1"));

    /* ele-1 on ordinary elements, ext-1 on extensions */
    e = elem_at("Patient.name");
    k = constraint_of(e->constraints, e->nconstraints, "ele-1");
    assert_non_null(k);
    assert_string_equal(k->expression, "hasValue() or (children().count() > id.count())");
    e = elem_at("Patient.extension");
    assert_non_null(constraint_of(e->constraints, e->nconstraints, "ext-1"));

    /* resource-level invariants */
    const model_type *p = type_named("Patient");
    k = constraint_of(p->constraints, p->nconstraints, "dom-2");
    assert_non_null(k);
    assert_string_equal(k->expression, "contained.contained.empty()");
    k = constraint_of(p->constraints, p->nconstraints, "dom-6");
    assert_non_null(k);
    assert_string_equal(k->severity, "warning");
    const model_type *o = type_named("Observation");
    assert_non_null(constraint_of(o->constraints, o->nconstraints, "obs-6"));
    assert_non_null(constraint_of(o->constraints, o->nconstraints, "obs-7"));
    assert_non_null(constraint_of(type_named("Extension")->constraints,
                                  type_named("Extension")->nconstraints, "ext-1"));
}

static void test_xml_flags(void **state)
{
    (void)state;
    assert_true(elem_at("Element.id")->flags & MODEL_ELEM_XML_ATTR);
    assert_true(elem_at("Extension.url")->flags & MODEL_ELEM_XML_ATTR);
    assert_true(elem_at("Extension.id")->flags & MODEL_ELEM_XML_ATTR);
    assert_true(elem_at("Patient.contact.id")->flags & MODEL_ELEM_XML_ATTR);
    assert_true(elem_at("HumanName.id")->flags & MODEL_ELEM_XML_ATTR);
    /* a resource id is an element with a value attribute, not an attribute */
    assert_false(elem_at("Resource.id")->flags & MODEL_ELEM_XML_ATTR);
    assert_false(elem_at("Patient.id")->flags & MODEL_ELEM_XML_ATTR);
    assert_false(elem_at("Extension.value")->flags & MODEL_ELEM_XML_ATTR);

    const model_elem *div = elem_at("Narrative.div");
    assert_true(div->flags & MODEL_ELEM_XHTML);
    assert_ptr_equal(div->types[0].type, type_named("xhtml"));
    assert_false(elem_at("Narrative.status")->flags & MODEL_ELEM_XHTML);

    /* the only attributes and XHTML elements are those */
    const model *m = model_r4();
    for (uint32_t i = 0; i < m->ntypes; i++) {
        const model_type *t = &m->types[i];
        for (uint16_t k = 0; k < t->nelems; k++) {
            const model_elem *e = &t->elems[k];
            if ((e->flags & MODEL_ELEM_XML_ATTR) && strcmp(e->name, "id") != 0 &&
                strcmp(e->path, "Extension.url") != 0)
                fail_msg("%s is flagged an XML attribute", e->path);
            if ((e->flags & MODEL_ELEM_XHTML) && strcmp(e->path, "Narrative.div") != 0)
                fail_msg("%s is flagged XHTML", e->path);
        }
    }
}

static void test_unknown_names(void **state)
{
    (void)state;
    assert_null(model_type_find("Nope", 4));
    assert_null(model_type_find("patient", 7));
    assert_null(model_type_find("", 0));
    assert_null(model_resource_find("HumanName", 9)); /* a type, not a resource */
    assert_null(model_resource_find("Patient.contact", 15));
    assert_null(model_resource_find("Patien", 6));
    assert_null(model_resource_find("Patients", 8));
    assert_non_null(model_resource_find("Patients", 7)); /* length, not NUL, ends the name */
    const model_type *p = model_resource_find("Patient", 7);
    assert_null(model_child(p, "nope", 4, NULL));
    assert_null(model_child(p, "_birthDate", 10, NULL));
    assert_null(model_child(p, "resourceType", 12, NULL));
    assert_null(model_child(p, "", 0, NULL));
    assert_null(model_elem_find(p, "nope"));
    assert_null(model_elem_find(p, "deceasedBoolean"));
    assert_non_null(model_elem_find(p, "deceased"));
    assert_null(model_valueset_find("http://example.org/ValueSet/nope"));
    /* a value set bound only with weaker strength is not carried */
    assert_null(model_valueset_find("http://hl7.org/fhir/ValueSet/marital-status"));
}

static void test_property_name(void **state)
{
    (void)state;
    char out[64];
    const model_elem *v = elem_at("Observation.value");
    assert_int_equal(model_property_name(v, type_named("Quantity"), out, sizeof out), 13);
    assert_string_equal(out, "valueQuantity");
    assert_int_equal(model_property_name(v, type_named("dateTime"), out, sizeof out), 13);
    assert_string_equal(out, "valueDateTime");
    /* exactly enough room, and one byte short */
    assert_int_equal(model_property_name(v, type_named("Quantity"), out, 14), 13);
    assert_int_equal(model_property_name(v, type_named("Quantity"), out, 13), 0);

    const model_elem *n = elem_at("Patient.name");
    assert_int_equal(model_property_name(n, type_named("HumanName"), out, sizeof out), 4);
    assert_string_equal(out, "name");
    assert_int_equal(model_property_name(n, type_named("HumanName"), out, 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_resources_present),
        cmocka_unit_test(test_resources_match_resource_types),
        cmocka_unit_test(test_all_primitives_present),
        cmocka_unit_test(test_all_complex_types_present),
        cmocka_unit_test(test_every_element_well_formed),
        cmocka_unit_test(test_patient_element_order),
        cmocka_unit_test(test_meta_and_binary_exactly_r4),
        cmocka_unit_test(test_r4_shapes_not_r5),
        cmocka_unit_test(test_cardinality),
        cmocka_unit_test(test_types_and_targets),
        cmocka_unit_test(test_choice_lookup),
        cmocka_unit_test(test_content_reference),
        cmocka_unit_test(test_bindings),
        cmocka_unit_test(test_every_required_binding_has_codes),
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_xml_flags),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_property_name),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
