#!/usr/bin/env python3
"""Validation on write and $validate over HTTP (issue 6, item 6; gateway/rest/fhir_validate.c),
against the real `tsunagu serve` with its embedded Redis.

- validate=base (the default): an invalid create, update, conditional create, PATCH result or
  transaction entry is refused with 422 and an OperationOutcome whose issues carry the
  element's expression; nothing is stored; warnings do not refuse; a valid resource is stored.
- Type=level exceptions (`base,Patient=off`) and level `profiles` with type_profiles (the
  region's own patient profile from profiles/region).
- $validate at system, type and instance level, with `profile` as a query or Parameters
  parameter; 200 with the OperationOutcome either way; an unknown profile is an error issue.
- A bad `validate` setting stops serve with exit 1 and a message.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
REGION_PATIENT = "https://tsunagu.example.jp/fhir/StructureDefinition/tsunagu-patient"

BAD_PATIENT = {"resourceType": "Patient", "gender": "xyz", "name": [{"family": "Yamada"}]}
GOOD_PATIENT = {"resourceType": "Patient", "gender": "female", "name": [{"family": "Yamada"}]}


class S:
    binary = None


def expect(r, status, what):
    assert r.status == status, "%s: expected %d, got %r" % (what, status, r)


def issues(r):
    oo = r.json
    assert oo and oo.get("resourceType") == "OperationOutcome", "not an OperationOutcome: %r" % r
    return oo["issue"]


def errors(r):
    return [i for i in issues(r) if i["severity"] in ("error", "fatal")]


def t_write_base():
    with harness.Gateway(S.binary, env={"TSUNAGU_PROFILE_PATHS": os.path.join(ROOT, "profiles")}) as gw:
        r = gw.request("POST", "/fhir/Patient", BAD_PATIENT)
        expect(r, 422, "create of an invalid Patient")
        e = errors(r)
        assert e and e[0]["expression"] == ["Patient.gender"] and e[0]["code"] == "code-invalid", e
        assert gw.get("/fhir/Patient?gender=xyz").json.get("total", 0) == 0, "nothing stored"
        r = gw.request("POST", "/fhir/Patient", GOOD_PATIENT)
        expect(r, 201, "create of a valid Patient (its dom-6 warning does not refuse)")
        pid = r.json["id"]
        r = gw.request("PUT", "/fhir/Patient/%s" % pid, dict(BAD_PATIENT, id=pid))
        expect(r, 422, "update to an invalid Patient")
        assert gw.get("/fhir/Patient/%s" % pid).json["gender"] == "female", "unchanged"
        r = gw.request("PUT", "/fhir/Patient/v-new", dict(BAD_PATIENT, id="v-new"))
        expect(r, 422, "create-on-update of an invalid Patient")
        expect(gw.get("/fhir/Patient/v-new"), 404, "not created")
        r = gw.request("POST", "/fhir/Patient", BAD_PATIENT,
                       headers={"If-None-Exist": "family=nobody-such"})
        expect(r, 422, "conditional create of an invalid Patient")
        patch = [{"op": "replace", "path": "/gender", "value": "nonsense"}]
        r = gw.request("PATCH", "/fhir/Patient/%s" % pid, patch,
                       headers={"Content-Type": "application/json-patch+json"})
        expect(r, 422, "PATCH whose result is invalid")
        assert gw.get("/fhir/Patient/%s" % pid).json["gender"] == "female", "unchanged by PATCH"
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:0b6a4c2e-0000-4000-8000-000000000001", "resource": GOOD_PATIENT,
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "nonsense",
                          "code": {"text": "x"}},
             "request": {"method": "POST", "url": "Observation"}}]}
        before = gw.get("/fhir/Patient?_summary=count").json["total"]
        r = gw.request("POST", "/fhir", tx)
        expect(r, 422, "a transaction with an invalid entry")
        assert "Bundle.entry[1]" in json.dumps(r.json) and "Observation.status" in json.dumps(r.json), r
        assert gw.get("/fhir/Patient?_summary=count").json["total"] == before, "nothing stored"
        batch = dict(tx, type="batch")
        r = gw.request("POST", "/fhir", batch)
        expect(r, 200, "the same entries as a batch")
        st = [e["response"]["status"] for e in r.json["entry"]]
        assert st[0].startswith("201") and st[1].startswith("422"), st
        # XML answers for a refused write
        r = gw.request("POST", "/fhir/Patient?_format=xml", BAD_PATIENT)
        expect(r, 422, "refused, XML")
        assert r.body.lstrip().startswith(b"<OperationOutcome"), r.body[:80]


def t_type_levels():
    with harness.Gateway(S.binary, env={"TSUNAGU_VALIDATE": "base,Patient=off"}) as gw:
        expect(gw.request("POST", "/fhir/Patient", BAD_PATIENT), 201, "Patient=off")
        obs = {"resourceType": "Observation", "status": "nonsense", "code": {"text": "x"}}
        expect(gw.request("POST", "/fhir/Observation", obs), 422, "Observation at base")
    with harness.Gateway(S.binary, env={"TSUNAGU_VALIDATE": "off"}) as gw:
        expect(gw.request("POST", "/fhir/Patient", BAD_PATIENT), 201, "validation off")
    env = {"TSUNAGU_VALIDATE": "base,Patient=profiles",
           "TSUNAGU_PROFILE_PATHS": os.path.join(ROOT, "profiles"),
           "TSUNAGU_TYPE_PROFILES": "Patient=" + REGION_PATIENT}
    with harness.Gateway(S.binary, env=env) as gw:
        r = gw.request("POST", "/fhir/Patient", GOOD_PATIENT)
        expect(r, 422, "a Patient without the region's identifier, kana name, birthDate")
        exprs = [x.get("expression", [""])[0] for x in errors(r)]
        assert any(x.startswith("Patient.identifier") or x == "Patient" for x in exprs), exprs
        # the demo region's patients conform
        with open(os.path.join(ROOT, "fixtures/region/region.json"), encoding="utf-8") as fh:
            region = json.load(fh)
        pats = [e["resource"] for e in region["entry"] if e["resource"]["resourceType"] == "Patient"]
        p = dict(pats[0])
        p.pop("id", None)
        r = gw.request("POST", "/fhir/Patient", p)
        expect(r, 201, "a region patient under the region profile")


def t_validate_op():
    with harness.Gateway(S.binary, env={"TSUNAGU_PROFILE_PATHS": os.path.join(ROOT, "profiles")}) as gw:
        r = gw.request("POST", "/fhir/$validate", BAD_PATIENT)
        expect(r, 200, "system $validate of an invalid resource")
        assert errors(r)[0]["expression"] == ["Patient.gender"], issues(r)
        r = gw.request("POST", "/fhir/Patient/$validate", GOOD_PATIENT)
        expect(r, 200, "type $validate of a valid resource")
        assert not errors(r), issues(r)
        params = {"resourceType": "Parameters", "parameter": [
            {"name": "resource", "resource": GOOD_PATIENT},
            {"name": "profile", "valueUri": REGION_PATIENT}]}
        r = gw.request("POST", "/fhir/Patient/$validate", params)
        expect(r, 200, "$validate against the region patient profile")
        assert errors(r), "the region profile finds what a bare Patient lacks: %r" % issues(r)
        r = gw.request("POST", "/fhir/Patient/$validate?profile=http://example.org/none",
                       GOOD_PATIENT)
        expect(r, 200, "$validate with an unknown profile")
        assert any("not loaded" in x["details"]["text"] for x in errors(r)), issues(r)
        expect(gw.request("POST", "/fhir/Observation/$validate", GOOD_PATIENT), 400,
               "a Patient on Observation/$validate")
        expect(gw.request("POST", "/fhir/$validate", b"{not json",
                          headers={"Content-Type": "application/fhir+json"}), 400, "not FHIR")
        expect(gw.request("POST", "/fhir/$validate", {"resourceType": "Parameters",
                                                      "parameter": [{"name": "mode",
                                                                     "valueCode": "create"}]}),
               400, "Parameters without a resource")
        pid = gw.request("POST", "/fhir/Patient", GOOD_PATIENT).json["id"]
        r = gw.get("/fhir/Patient/%s/$validate" % pid)
        expect(r, 200, "instance $validate of the stored version")
        assert not errors(r), issues(r)
        expect(gw.get("/fhir/Patient/nobody/$validate"), 404, "instance $validate, unknown id")
        r = gw.request("DELETE", "/fhir/$validate")
        expect(r, 405, "DELETE $validate")


def t_bad_config():
    g = harness.Gateway(S.binary, env={"TSUNAGU_VALIDATE": "base,Patient=sometimes"})
    try:
        try:
            g.start(timeout=30)
        except RuntimeError as e:
            assert "exited with 1" in str(e) and "Type=level" in str(e), str(e)
        else:
            raise AssertionError("serve started with a bad validate setting")
    finally:
        g.close()


def main():
    if len(sys.argv) != 2:
        print("usage: test_validate_rest.py PATH/TO/tsunagu", file=sys.stderr)
        return 2
    S.binary = sys.argv[1]
    checks = harness.Checks()
    for name, fn in (("write_base", t_write_base), ("type_levels", t_type_levels),
                     ("validate_op", t_validate_op), ("bad_config", t_bad_config)):
        checks.run(name, fn)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
