/*
 * fhirpath_inputs.h — the input files of the FHIRPath R4 suite, read once each
 * (JSON or XML), for the conformance runner and the benchmark.
 */
#ifndef TSG_FHIRPATH_INPUTS_H
#define TSG_FHIRPATH_INPUTS_H

#include "model/model.h"

/* Inputs are read from dir (the suite's folder) into arena a, which the caller
 * owns and frees after the last use of any input. */
void fpi_init(const char *dir, tsg_arena *a);

/* The parsed input file `name` (cached for the whole run); NULL with *why set
 * to a one-line reason when it cannot be read or parsed. */
const fhir_node *fpi_load(const char *name, const char **why);

#endif
