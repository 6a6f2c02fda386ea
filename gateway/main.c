#include "model/model.h"
#include <stdio.h>
#include <string.h>
int main(void){
  const model *m = model_r4();
  printf("types %u constraints %u vs %u\n", m->ntypes, m->nconstraints, m->nvaluesets);
  const model_type *t = model_resource_find("Observation", 11); const model_type *ct;
  const model_elem *e = model_child(t, "valueQuantity", 13, &ct);
  printf("%s %s %s\n", e->path, ct->name, ct->base->name);
  e = model_child(model_type_find("Questionnaire.item",18), "item", 4, &ct);
  printf("%s %s %u\n", e->path, ct->name, ct->nelems);
  const model_valueset *vs = model_valueset_find("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1");
  printf("%u %d %d\n", vs->ncodes, model_valueset_has(vs, NULL, "female"), model_valueset_has(vs, NULL, "xx"));
  return 0;}
