#!/usr/bin/env python3
"""test_access.py — the authorisation matrix of issue 5: who sees and writes whose records.

The real `tsunagu serve` with an embedded Redis. A small region is loaded as the gateway's own
adapters would write it (auth off), then served with auth on — organisations inside and outside care teams, taking part as the member Organization
or through a PractitionerRole, with participant and role periods that have ended or not
begun, an inactive care team, and the consent patterns of gateway/rest/rest_internal.h
"Access" (network-wide with an opt-out, a facility list, per facility with one withdrawn, no
consent at all) — then every organisation's client runs every kind of interaction against
every patient and the test asserts that what it may not see does not appear anywhere: reads,
vreads, history, $everything, searches with _total and _summary=count, _include,
_revinclude, chains, paging and snapshots, batches and transactions, writes; and that a
hidden resource answers exactly as an unknown one. Then care-team and consent changes take
effect on the next request (on another gateway of the same Redis within a second),
administrators' area limits hold, the consent_default "care-team" variant, and every request
of a client leaves one AuditEvent.

Usage: test_access.py <path to tsunagu>
"""

import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CITY = "白樺郡桜丘町"
OTHER_CITY = "白樺郡緑川町"
PATIENTS = ["pat-a", "pat-b", "pat-c", "pat-d", "pat-e"]
ORGS = ["org-in", "org-role", "org-out", "org-optout", "org-ended", "org-future", "org-listed",
        "org-roleended"]
# who sees which patient (see region() for why)
VISIBLE = {
    "org-in": {"pat-a", "pat-b"},
    "org-role": {"pat-a"},
    "org-out": {"pat-d"},
    "org-optout": set(),
    "org-ended": set(),
    "org-future": set(),
    "org-listed": set(),
    "org-roleended": set(),
}
IRCP = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP"}]}


def ref(r):
    return {"reference": r}


def org(oid, city=CITY):
    return {"resourceType": "Organization", "id": oid, "name": oid,
            "address": [{"city": city}]}


def member(r, **period):
    p = {"member": ref(r)}
    if period:
        p["period"] = period
    return p


def careteam(ctid, pid, participants, status="active"):
    return {"resourceType": "CareTeam", "id": ctid, "status": status,
            "subject": ref("Patient/" + pid), "participant": participants}


def consent(cid, pid, provision, status="active"):
    return {"resourceType": "Consent", "id": cid, "status": status,
            "scope": {"coding": [{"system":
                                  "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": ref("Patient/" + pid), "policyRule": {"text": "regional network"},
            "provision": provision}


def actors(*orgs):
    return [{"role": IRCP, "reference": ref("Organization/" + o)} for o in orgs]


def region():
    """The resources, each as (Type/id, resource)."""
    res = [org(o) for o in ORGS] + [org("net-admin"), org("far-clinic", OTHER_CITY)]
    res += [{"resourceType": "Practitioner", "id": "prac-2", "name": [{"text": "看護 花子"}]},
            {"resourceType": "PractitionerRole", "id": "role-2", "active": True,
             "practitioner": ref("Practitioner/prac-2"),
             "organization": ref("Organization/org-role")},
            {"resourceType": "PractitionerRole", "id": "role-ended", "active": True,
             "practitioner": ref("Practitioner/prac-2"),
             "organization": ref("Organization/org-roleended"),
             "period": {"start": "2019-01-01", "end": "2020-01-01"}}]
    for p in PATIENTS:
        res.append({"resourceType": "Patient", "id": p, "name": [{"family": "患者" + p[-1]}],
                    "address": [{"city": CITY}],
                    "managingOrganization": ref("Organization/org-in")})
    # pat-a: org-in (member), org-role (through role-2), org-optout (opted out), org-ended
    # (participant period over), org-future (not begun), org-roleended (its role ended)
    res.append(careteam("ct-a", "pat-a", [
        member("Organization/org-in"), member("PractitionerRole/role-2"),
        member("Organization/org-optout"),
        member("Organization/org-ended", start="2019-01-01", end="2020-01-01"),
        member("Organization/org-future", start="2099-01-01"),
        member("PractitionerRole/role-ended")]))
    res.append(consent("consent-a", "pat-a", {
        "type": "permit", "provision": [{"type": "deny", "actor": actors("org-optout")}]}))
    # pat-b: facility list [org-in, org-out]; org-out is not in the team, org-listed is but
    # is not listed
    res.append(careteam("ct-b", "pat-b", [member("Organization/org-in"),
                                          member("Organization/org-listed")]))
    res.append(consent("consent-b", "pat-b", {"type": "permit",
                                              "actor": actors("org-in", "org-out")}))
    # pat-c: a team but no consent (deny by default)
    res.append(careteam("ct-c", "pat-c", [member("Organization/org-in"),
                                          member("PractitionerRole/role-2")]))
    # pat-d: per facility; org-in's consent was withdrawn
    res.append(careteam("ct-d", "pat-d", [member("Organization/org-in"),
                                          member("Organization/org-out")]))
    res.append(consent("consent-d1", "pat-d", {"type": "permit", "actor": actors("org-out")}))
    res.append(consent("consent-d2", "pat-d", {"type": "permit", "actor": actors("org-in")},
                       status="inactive"))
    # pat-e: the team is inactive
    res.append(careteam("ct-e", "pat-e", [member("Organization/org-in")], status="inactive"))
    res.append(consent("consent-e", "pat-e", {"type": "permit"}))
    # outside R4's compartment but about a patient: a Binary belongs to its securityContext's
    # patient (none: nobody's), a Device to Device.patient
    res.append({"resourceType": "Binary", "id": "fax-1", "contentType": "text/plain",
                "data": "5L2T5rip"})
    res.append({"resourceType": "Binary", "id": "fax-a", "contentType": "text/plain",
                "securityContext": ref("Patient/pat-a"), "data": "5L2T5rip"})
    res.append({"resourceType": "Device", "id": "dev-1", "patient": ref("Patient/pat-a"),
                "deviceName": [{"name": "在宅酸素濃縮器", "type": "user-friendly-name"}]})
    res.append({"resourceType": "Bundle", "id": "doc-1", "type": "collection"})
    for p in PATIENTS:
        res.append({"resourceType": "Observation", "id": "obs-" + p, "status": "final",
                    "code": {"text": "体温"}, "subject": ref("Patient/" + p),
                    "performer": [ref("Organization/org-in")],
                    "valueQuantity": {"value": 36.5, "unit": "Cel",
                                      "system": "http://unitsofmeasure.org", "code": "Cel"}})
        res.append({"resourceType": "Encounter", "id": "enc-" + p, "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                              "code": "HH"}, "subject": ref("Patient/" + p)})
    return res


def region_late():
    """What names records of region(): loaded after it (a Binary whose securityContext is
    another resource takes that resource's patient when it is written)."""
    return [{"resourceType": "Binary", "id": "fax-b", "contentType": "text/plain",
             "securityContext": ref("Observation/obs-pat-b"), "data": "5L2T5rip"}]


def transaction(resources):
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": "%s/%s" % (r["resourceType"],
                                                                        r["id"])}}
        for r in resources]}


class World:
    pass


W = World()


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def call(who, method, path, body=None, headers=None):
    h = dict(bearer(W.tokens[who]))
    h.update(headers or {})
    W.sent[who] = W.sent.get(who, 0) + 1
    return W.gw.request(method, path, body, headers=h)


def expect(r, status, what):
    assert r.status == status, "%s: expected %d, got %r" % (what, status, r)
    return r


def ids_of(bundle, mode=None, rtype=None):
    out = set()
    for e in bundle.get("entry", []):
        r = e.get("resource", {})
        if mode and e.get("search", {}).get("mode") != mode:
            continue
        if rtype and r.get("resourceType") != rtype:
            continue
        out.add("%s/%s" % (r.get("resourceType"), r.get("id")))
    return out


def patient_of(resource):
    if resource["resourceType"] == "Patient":
        return resource["id"]
    for k in ("subject", "patient"):
        v = resource.get(k)
        if isinstance(v, dict) and v.get("reference", "").startswith("Patient/"):
            return v["reference"][8:]
    return None


def same_404(a, b, a_id, b_id, what):
    """a (a hidden resource) answers exactly as b (an unknown one), ids aside."""
    assert a.status == b.status == 404, "%s: %r vs %r" % (what, a, b)
    ta = a.body.decode().replace(a_id, "<id>")
    tb = b.body.decode().replace(b_id, "<id>")
    assert ta == tb, "%s: a hidden resource answers differently from an unknown one:\n%s\n%s" % (
        what, ta, tb)


# ----------------------------------------------------------------------------------------


def t_reads():
    for o in ORGS:
        for p in PATIENTS:
            vis = p in VISIBLE[o]
            for path, unknown in (("/fhir/Patient/%s" % p, "/fhir/Patient/nobody"),
                                  ("/fhir/Observation/obs-%s" % p, "/fhir/Observation/nothing"),
                                  ("/fhir/Encounter/enc-%s" % p, "/fhir/Encounter/nothing"),
                                  ("/fhir/Observation/obs-%s/_history/1" % p,
                                   "/fhir/Observation/nothing/_history/1"),
                                  ("/fhir/Observation/obs-%s/_history" % p,
                                   "/fhir/Observation/nothing/_history"),
                                  ("/fhir/Patient/%s/$everything" % p,
                                   "/fhir/Patient/nobody/$everything")):
                r = call(o, "GET", path)
                what = "%s GET %s" % (o, path)
                if vis:
                    expect(r, 200, what)
                else:
                    hid = path.split("/")[3]
                    unk = unknown.split("/")[3]
                    same_404(r, call(o, "GET", unknown), hid, unk, what)
            if vis:  # $everything holds the patient's records and nothing else's
                b = call(o, "GET", "/fhir/Patient/%s/$everything?_count=100" % p).json
                got = ids_of(b, "match")
                assert {"Patient/" + p, "Observation/obs-" + p, "Encounter/enc-" + p} <= got, got
                for e in b["entry"]:
                    pp = patient_of(e["resource"])
                    assert pp in (None, p) or pp in VISIBLE[o], (o, p, e["resource"]["id"])
    # registry resources: everyone
    for o in ORGS:
        expect(call(o, "GET", "/fhir/Organization/org-out"), 200, "%s reads the registry" % o)
        expect(call(o, "GET", "/fhir/PractitionerRole/role-2"), 200, o)
        b = expect(call(o, "GET", "/fhir/Organization?_total=accurate"), 200, o).json
        assert b["total"] == len(ORGS) + 2, b["total"]
    # Binary by securityContext, Device by patient; other types outside the compartments
    # (a Bundle) are for administrators; a Binary without a context is nobody's
    for o in ORGS:
        vis = VISIBLE[o]
        for path, owner in (("/fhir/Binary/fax-1", None), ("/fhir/Binary/fax-a", "pat-a"),
                            ("/fhir/Binary/fax-b", "pat-b"), ("/fhir/Device/dev-1", "pat-a"),
                            ("/fhir/Bundle/doc-1", None)):
            unknown = path.rsplit("/", 1)[0] + "/nothing"
            r = call(o, "GET", path)
            if owner in vis:
                expect(r, 200, "%s GET %s" % (o, path))
            else:
                same_404(r, call(o, "GET", unknown), path.split("/")[3], "nothing",
                         "%s GET %s" % (o, path))
        b = call(o, "GET", "/fhir/Device?_total=accurate").json
        assert b["total"] == (1 if "pat-a" in vis else 0), (o, b)
        b = call(o, "GET", "/fhir/Binary?_total=accurate").json
        assert b["total"] == len(vis & {"pat-a", "pat-b"}), (o, b)
        if "pat-a" in vis:
            b = call(o, "GET", "/fhir/Patient/pat-a/$everything?_count=100").json
            assert {"Binary/fax-a", "Device/dev-1"} <= ids_of(b), (o, ids_of(b))
    expect(call("admin", "GET", "/fhir/Bundle/doc-1"), 200, "admin reads a Bundle")
    expect(call("admin", "GET", "/fhir/Binary/fax-1"), 404, "a Binary without a context")
    # administrators see every patient, care team and consent, but no clinical record
    for p in PATIENTS:
        expect(call("admin", "GET", "/fhir/Patient/" + p), 200, "admin reads Patient")
        expect(call("admin", "GET", "/fhir/Observation/obs-" + p), 404, "admin reads clinical")
    b = call("admin", "GET", "/fhir/CareTeam?_total=accurate").json
    assert b["total"] == 5, b
    b = call("admin", "GET", "/fhir/Observation?_total=accurate").json
    assert b["total"] == 0, b


def t_searches():
    for o in ORGS:
        vis = VISIBLE[o]
        want_obs = {"Observation/obs-" + p for p in vis}
        b = expect(call(o, "GET", "/fhir/Observation?_total=accurate&_count=100"), 200, o).json
        assert ids_of(b) == want_obs and b["total"] == len(vis), (o, ids_of(b), b.get("total"))
        b = call(o, "GET", "/fhir/Patient?_total=accurate").json
        assert ids_of(b) == {"Patient/" + p for p in vis} and b["total"] == len(vis), (o, b)
        b = call(o, "GET", "/fhir/CareTeam?_total=accurate").json
        assert b["total"] == len(vis), (o, b)
        for p in PATIENTS:
            n = 1 if p in vis else 0
            for q in ("Observation?subject=Patient/%s&_total=accurate" % p,
                      "Observation?patient=%s&_total=accurate" % p,
                      "Encounter?subject=Patient/%s&_summary=count" % p,
                      "Observation?subject:Patient.name=%s&_total=accurate" % urllib.parse.quote(
                          "患者" + p[-1]),
                      "Patient?_id=%s&_total=accurate" % p,
                      "Patient?family=%s&_total=accurate" % urllib.parse.quote("患者" + p[-1]),
                      "Patient?_has:Observation:subject:code:text=%s&_total=accurate"
                      % urllib.parse.quote("体温") + "&_id=" + p,
                      "Observation?code:text=%s&subject=Patient/%s&_total=accurate"
                      % (urllib.parse.quote("体温"), p)):
                b = expect(call(o, "GET", "/fhir/" + q), 200, "%s %s" % (o, q)).json
                assert b["total"] == n, "%s %s: total %r, want %d" % (o, q, b["total"], n)
                if "_summary=count" not in q:
                    assert len(ids_of(b, "match")) == n, (o, q, b)
        # reverse chains from the registry must not tell of hidden patients
        for p in PATIENTS:
            n = 1 if p in vis else 0
            for q in ("Organization?_has:Patient:organization:family=%s&_total=accurate"
                      % urllib.parse.quote("患者" + p[-1]),
                      "Organization?_has:Observation:performer:subject=Patient/%s"
                      "&_total=accurate" % p):
                b = expect(call(o, "GET", "/fhir/" + q), 200, "%s %s" % (o, q)).json
                assert b["total"] == n, "%s %s: total %r, want %d" % (o, q, b["total"], n)
        # includes and revincludes bring nothing the client may not see
        for q in ("Observation?_include=Observation:subject&_count=100",
                  "Patient?_revinclude=Observation:subject&_count=100",
                  "Patient?_revinclude=CareTeam:subject&_revinclude=Consent:patient&_count=100",
                  "Organization?_id=org-in&_revinclude=Patient:organization"
                  "&_revinclude:iterate=Observation:subject&_count=100",
                  "Observation?performer=Organization/org-in&_include=Observation:performer"
                  "&_count=100"):
            b = expect(call(o, "GET", "/fhir/" + q), 200, "%s %s" % (o, q)).json
            for e in b.get("entry", []):
                pp = patient_of(e["resource"])
                assert pp is None or pp in vis, "%s %s: leaked %s/%s" % (
                    o, q, e["resource"]["resourceType"], e["resource"]["id"])
        b = call(o, "GET", "/fhir/Organization?_id=org-in&_revinclude=Patient:organization").json
        assert ids_of(b, "include") == {"Patient/" + p for p in vis}, (o, b)
        # POST _search the same
        r = call(o, "POST", "/fhir/Observation/_search", "_total=accurate",
                 {"Content-Type": "application/x-www-form-urlencoded"})
        assert expect(r, 200, o).json["total"] == len(vis)


def t_paging():
    """_count=1 pages through exactly the visible matches; snapshots are the client's own."""
    for o in ("org-in", "org-role", "org-optout"):
        vis = VISIBLE[o]
        url = "/fhir/Observation?_count=1&_total=accurate"
        seen, pages = set(), 0
        first = None
        while url and pages < 20:
            b = expect(call(o, "GET", url), 200, o).json
            assert b["total"] == len(vis), (o, b["total"])
            seen |= ids_of(b, "match")
            nxt = [ln["url"] for ln in b.get("link", []) if ln["relation"] == "next"]
            url = None
            if nxt:
                u = urllib.parse.urlsplit(nxt[0])
                url = u.path + "?" + u.query
                first = first or url
            pages += 1
        assert seen == {"Observation/obs-" + p for p in vis}, (o, seen)
        if first:  # another organisation cannot use the snapshot
            r = call("org-out", "GET", first)
            assert r.status in (404, 410) and "obs-" not in r.body.decode(), r


def t_history():
    for o in ORGS:
        vis = VISIBLE[o]
        for path in ("/fhir/Observation/_history?_count=100", "/fhir/_history?_count=1000",
                     "/fhir/Patient/_history?_count=100"):
            b = expect(call(o, "GET", path), 200, "%s %s" % (o, path)).json
            for e in b.get("entry", []):
                res = e.get("resource")
                if not res:
                    continue
                pp = patient_of(res)
                if res["resourceType"] in ("Observation", "Encounter", "Patient", "CareTeam",
                                           "Consent"):
                    assert pp in vis, "%s %s: leaked %s/%s" % (o, path, res["resourceType"],
                                                               res["id"])
            assert b["total"] == len(b.get("entry", [])), (o, path, b["total"])
        b = call(o, "GET", "/fhir/Observation/_history?_count=100").json
        assert b["total"] == len(vis), (o, b["total"])


def t_bundles():
    o = "org-role"  # sees pat-a only
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Observation/obs-pat-a"}},
        {"request": {"method": "GET", "url": "Observation/obs-pat-b"}},
        {"request": {"method": "GET", "url": "Observation?subject=Patient/pat-b"}},
        {"request": {"method": "GET", "url": "Observation/obs-pat-b/_history/1"}}]}
    b = expect(call(o, "POST", "/fhir", batch), 200, "batch").json
    st = [e["response"]["status"] for e in b["entry"]]
    assert st[0].startswith("200") and st[1].startswith("404") and st[3].startswith("404"), st
    assert b["entry"][2]["resource"]["total"] == 0, b["entry"][2]
    before = call("org-in", "GET", "/fhir/Observation?_summary=count").json["total"]
    obs = lambda p: {"resourceType": "Observation", "status": "final",  # noqa: E731
                     "code": {"text": "脈拍"}, "subject": ref("Patient/" + p)}
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": obs("pat-a"), "request": {"method": "POST", "url": "Observation"}},
        {"resource": obs("pat-b"), "request": {"method": "POST", "url": "Observation"}}]}
    r = expect(call(o, "POST", "/fhir", tx), 403, "transaction touching a hidden patient")
    assert "Bundle.entry[1]" in r.body.decode(), r
    after = call("org-in", "GET", "/fhir/Observation?_summary=count").json["total"]
    assert before == after, "a refused transaction stored something"
    tx["entry"] = tx["entry"][:1]
    expect(call(o, "POST", "/fhir", tx), 200, "transaction within the visible patients")
    # a transaction deleting or patching what the client may not see: it looks absent
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Observation/obs-pat-b"}}]}
    expect(call(o, "POST", "/fhir", tx), 200, "transaction delete of a hidden resource")
    expect(call("org-in", "GET", "/fhir/Observation/obs-pat-b"), 200, "…deleted nothing")


def t_writes():
    def obs(p):
        return {"resourceType": "Observation", "status": "final", "code": {"text": "血圧"},
                "subject": ref("Patient/" + p)}
    for o in ORGS:
        for p in PATIENTS:
            vis = p in VISIBLE[o]
            r = call(o, "POST", "/fhir/Observation", obs(p))
            expect(r, 201 if vis else 403, "%s creates for %s" % (o, p))
            body = dict(obs(p), id="obs-" + p, status="amended")
            r = call(o, "PUT", "/fhir/Observation/obs-" + p, body)
            expect(r, 200 if vis else 403, "%s updates obs-%s" % (o, p))
            r = call(o, "PATCH", "/fhir/Observation/obs-" + p,
                     [{"op": "replace", "path": "/status", "value": "final"}],
                     {"Content-Type": "application/json-patch+json"})
            if vis:
                expect(r, 200, "%s patches obs-%s" % (o, p))
            else:
                same_404(r, call(o, "PATCH", "/fhir/Observation/nothing",
                                 [{"op": "replace", "path": "/status", "value": "final"}],
                                 {"Content-Type": "application/json-patch+json"}),
                         "obs-" + p, "nothing", "%s patches obs-%s" % (o, p))
            # moving a visible record to a hidden patient
            if vis:
                moved = dict(obs("pat-c"), id="obs-" + p)
                expect(call(o, "PUT", "/fhir/Observation/obs-" + p, moved), 403,
                       "%s moves obs-%s to pat-c" % (o, p))
    # members never write the registry, patients, care teams or consents
    o = "org-in"
    expect(call(o, "PUT", "/fhir/Organization/org-in", org("org-in")), 403, "member: registry")
    expect(call(o, "POST", "/fhir/Patient", {"resourceType": "Patient"}), 403, "member: Patient")
    expect(call(o, "PUT", "/fhir/CareTeam/ct-a", careteam("ct-a", "pat-a", [
        member("Organization/org-in")])), 403, "member: CareTeam")
    expect(call(o, "PUT", "/fhir/Consent/consent-b", consent("consent-b", "pat-b", {
        "type": "permit"})), 403, "member: Consent")
    expect(call(o, "DELETE", "/fhir/Patient/pat-a"), 403, "member deletes a patient")
    expect(call(o, "POST", "/fhir/Binary", {"resourceType": "Binary", "contentType": "text/plain",
                                            "data": "eA=="}), 403, "a Binary without a context")
    expect(call(o, "POST", "/fhir/Binary", {"resourceType": "Binary", "contentType": "text/plain",
                                            "securityContext": ref("Patient/pat-c"),
                                            "data": "eA=="}), 403, "a Binary of a hidden patient")
    expect(call(o, "POST", "/fhir/Binary", {"resourceType": "Binary", "contentType": "text/plain",
                                            "securityContext": ref("Observation/obs-pat-a"),
                                            "data": "eA=="}), 201, "a Binary of a visible record")
    expect(call(o, "POST", "/fhir/Bundle", {"resourceType": "Bundle", "type": "collection"}), 403,
           "member writes a Bundle")
    r = call(o, "PUT", "/fhir/Patient/pat-a", {"resourceType": "Patient", "id": "pat-a",
                                               "name": [{"family": "患者a"}],
                                               "address": [{"city": CITY}],
                                               "managingOrganization": ref(
                                                   "Organization/org-in")})
    expect(r, 200, "a care-team member updates the patient")
    # a record without a patient: nobody but unrestricted callers
    expect(call(o, "POST", "/fhir/Observation", {"resourceType": "Observation",
                                                 "status": "final", "code": {"text": "x"}}),
           403, "clinical record without a patient")
    # deletes: a hidden one looks absent and stays
    expect(call("org-role", "DELETE", "/fhir/Encounter/enc-pat-b"), 200, "hidden delete")
    expect(call("org-in", "GET", "/fhir/Encounter/enc-pat-b"), 200, "…it is still there")
    expect(call("org-in", "DELETE", "/fhir/Encounter/enc-pat-b"), 200, "visible delete")
    expect(call("org-in", "GET", "/fhir/Encounter/enc-pat-b"), 410, "…gone for who saw it")
    r = call("org-role", "GET", "/fhir/Encounter/enc-pat-b")
    same_404(r, call("org-role", "GET", "/fhir/Encounter/nothing"), "enc-pat-b", "nothing",
             "a deleted hidden resource")
    # conditional delete matches only what the client sees
    a = call("org-role", "DELETE", "/fhir/Encounter?subject=Patient/pat-d")
    b = call("org-role", "DELETE", "/fhir/Encounter?subject=Patient/nobody")
    assert a.status == b.status == 200 and a.body == b.body, ("conditional delete", a, b)
    expect(call("org-out", "GET", "/fhir/Encounter/enc-pat-d"), 200, "…still there")


def t_changes():
    """Care-team and consent changes take effect on the next request."""
    expect(call("org-in", "GET", "/fhir/Patient/pat-b"), 200, "before")
    r = call("admin", "PUT", "/fhir/CareTeam/ct-b", careteam("ct-b", "pat-b", [
        member("Organization/org-listed"), member("Organization/org-out")]))
    expect(r, 200, "admin updates ct-b")
    expect(call("org-in", "GET", "/fhir/Patient/pat-b"), 404, "org-in left the team")
    expect(call("org-out", "GET", "/fhir/Patient/pat-b"), 200, "org-out joined and is listed")
    expect(call("org-listed", "GET", "/fhir/Patient/pat-b"), 404, "org-listed not consented")
    r = call("admin", "PUT", "/fhir/Consent/consent-b", consent("consent-b", "pat-b", {
        "type": "permit", "actor": actors("org-out", "org-listed")}))
    expect(r, 200, "admin updates consent-b")
    expect(call("org-listed", "GET", "/fhir/Patient/pat-b"), 200, "org-listed now consented")
    # withdrawal of the network-wide consent: nobody sees pat-a any more
    r = call("admin", "PUT", "/fhir/Consent/consent-a", consent("consent-a", "pat-a", {
        "type": "permit"}, status="inactive"))
    expect(r, 200, "withdraw consent-a")
    expect(call("org-in", "GET", "/fhir/Patient/pat-a"), 404, "after withdrawal")
    expect(call("org-role", "GET", "/fhir/Observation?subject=Patient/pat-a"), 200, "search")
    assert call("org-role", "GET", "/fhir/Observation?_summary=count").json["total"] == 0
    # a PractitionerRole moving to another organisation moves the access with it
    expect(call("admin", "PUT", "/fhir/Consent/consent-a", consent("consent-a", "pat-a", {
        "type": "permit"})), 200, "consent-a again")
    expect(call("org-role", "GET", "/fhir/Patient/pat-a"), 200, "org-role through role-2")
    r = call("admin", "PUT", "/fhir/PractitionerRole/role-2", {
        "resourceType": "PractitionerRole", "id": "role-2", "active": True,
        "practitioner": ref("Practitioner/prac-2"), "organization": ref("Organization/org-out")})
    expect(r, 200, "role-2 moves")
    expect(call("org-role", "GET", "/fhir/Patient/pat-a"), 404, "org-role lost it")
    expect(call("org-out", "GET", "/fhir/Patient/pat-a"), 200, "org-out gained it")


def t_admin_area():
    gw = W.gw
    cid, sec = gw.create_client(org="Organization/net-admin", name="area admin",
                                scope="system/*.cruds", role="admin", area=OTHER_CITY)
    t = bearer(gw.token(cid, sec))
    r = gw.request("PUT", "/fhir/Organization/far-clinic", org("far-clinic", OTHER_CITY),
                   headers=t)
    expect(r, 200, "admin writes in its area")
    r = gw.request("PUT", "/fhir/Organization/org-out", org("org-out"), headers=t)
    expect(r, 403, "admin writes outside its area")
    r = gw.request("PUT", "/fhir/Organization/org-out", org("org-out", OTHER_CITY), headers=t)
    expect(r, 403, "admin moves a resource into its area")
    r = gw.request("PUT", "/fhir/PractitionerRole/role-far", {
        "resourceType": "PractitionerRole", "id": "role-far",
        "organization": ref("Organization/org-in")}, headers=t)
    expect(r, 403, "a role of an organisation outside the area")
    r = gw.request("PUT", "/fhir/PractitionerRole/role-far", {
        "resourceType": "PractitionerRole", "id": "role-far",
        "organization": ref("Organization/far-clinic")}, headers=t)
    expect(r, 201, "a role of an organisation inside the area")
    r = gw.request("POST", "/fhir/Patient", {"resourceType": "Patient",
                                             "address": [{"city": OTHER_CITY}]}, headers=t)
    expect(r, 201, "a patient in the area")
    r = gw.request("POST", "/fhir/Patient", {"resourceType": "Patient",
                                             "address": [{"city": CITY}]}, headers=t)
    expect(r, 403, "a patient outside the area")
    r = gw.request("PUT", "/fhir/Patient/pat-a", {"resourceType": "Patient", "id": "pat-a",
                                                  "address": [{"city": CITY}]}, headers=t)
    expect(r, 403, "updating a patient outside the area")
    r = gw.request("PUT", "/fhir/CareTeam/ct-a", careteam("ct-a", "pat-a", [
        member("Organization/far-clinic")]), headers=t)
    expect(r, 403, "a care team of a patient outside the area")
    r = gw.request("PUT", "/fhir/Practitioner/prac-9", {"resourceType": "Practitioner",
                                                        "id": "prac-9"}, headers=t)
    expect(r, 201, "a Practitioner has no area")


def t_audit_complete():
    """Every request of every client in this run left its AuditEvent."""
    for who, n in sorted(W.sent.items()):
        got, url = 0, "/fhir/AuditEvent?agent=%s&_count=1000" % W.clients[who]
        while url:
            b = expect(W.gw.request("GET", url, headers=bearer(W.audit_token)), 200,
                       "audit of " + who).json
            got += len(b.get("entry", []))
            nxt = [ln["url"] for ln in b.get("link", []) if ln["relation"] == "next"]
            url = None
            if nxt:
                u = urllib.parse.urlsplit(nxt[0])
                url = u.path + "?" + u.query
        # + 1: the token request
        assert got == n + 1, "%s: %d requests (+1 token) but %d AuditEvents" % (who, n, got)


def t_consent_default_care_team(binary):
    """consent_default care-team: a team without any consent shares with its members."""
    env = {"TSUNAGU_CONSENT_DEFAULT": "care-team", "TSUNAGU_AUTH": "on"}
    import tempfile
    d = tempfile.mkdtemp(prefix="tsg-access-")
    with harness.Gateway(binary, data_dir=d) as gw:
        expect(gw.request("POST", "/fhir", transaction(region())), 200, "load")
    with harness.Gateway(binary, data_dir=d, env=env) as gw:
        mid, msec = gw.create_client(org="Organization/org-in")
        t = bearer(gw.token(mid, msec))
        expect(gw.request("GET", "/fhir/Patient/pat-c", headers=t), 200, "no consent: team")
        expect(gw.request("GET", "/fhir/Patient/pat-d", headers=t), 404,
               "a consent in force still decides (withdrawn for org-in)")
        expect(gw.request("GET", "/fhir/Patient/pat-e", headers=t), 404, "inactive team")
    import shutil
    shutil.rmtree(d, ignore_errors=True)
    r = harness.Gateway(binary, env={"TSUNAGU_CONSENT_DEFAULT": "maybe", "TSUNAGU_AUTH": "on"})
    try:
        r.start(timeout=20)
        raise AssertionError("a bad consent_default started")
    except RuntimeError as e:
        assert "consent_default" in str(e), e
    finally:
        r.close()


def t_two_gateways(binary):
    """Two gateways on one Redis: a care-team change made through one reaches the other
    within REST_ACCESS_POLL_MS (1 s), through tsg:acl:gen."""
    import subprocess
    import tempfile
    import time
    d = tempfile.mkdtemp(prefix="tsg-access-2gw-")
    sock = os.path.join(d, "redis.sock")
    redis = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock,
                              "--unixsocketperm", "700", "--dir", d, "--save", "",
                              "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gws = []
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        url = "unix://" + sock
        with harness.Gateway(binary, env={"TSUNAGU_REDIS_URL": url}) as gw:
            expect(gw.request("POST", "/fhir", transaction(region())), 200, "load")
        env = {"TSUNAGU_REDIS_URL": url, "TSUNAGU_AUTH": "on"}
        a = harness.Gateway(binary, env=env)
        gws.append(a)
        a.start()
        b = harness.Gateway(binary, env=env)
        gws.append(b)
        b.start()
        cid, sec = a.create_client(org="Organization/net-admin", role="admin")
        adm = bearer(a.token(cid, sec))
        mid, msec = a.create_client(org="Organization/org-in")
        mem = bearer(b.token(mid, msec))
        expect(b.request("GET", "/fhir/Patient/pat-b", headers=mem), 200, "B: before")
        r = a.request("PUT", "/fhir/CareTeam/ct-b", careteam("ct-b", "pat-b", [
            member("Organization/org-listed")]), headers=adm)
        expect(r, 200, "A: org-in leaves ct-b")
        t0 = time.monotonic()
        while b.request("GET", "/fhir/Patient/pat-b", headers=mem).status == 200:
            assert time.monotonic() - t0 < 3, "gateway B still shows pat-b after 3 s"
            time.sleep(0.05)
        print("  B saw the change after %.2f s" % (time.monotonic() - t0))
    finally:
        for g in gws:
            g.close()
        redis.terminate()
        redis.wait(10)
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = sys.argv[1]
    checks = harness.Checks()
    import tempfile
    data = tempfile.mkdtemp(prefix="tsg-access-")
    # the records are loaded as the gateway's own adapters would write them (no client:
    # administrators do not write clinical records), then the gateway serves with auth on
    with harness.Gateway(binary, data_dir=os.path.join(data, "d")) as gw:
        expect(gw.request("POST", "/fhir", transaction(region())), 200, "load the region")
        expect(gw.request("POST", "/fhir", transaction(region_late())), 200, "load the rest")
    with harness.Gateway(binary, data_dir=os.path.join(data, "d"), auth=True) as gw:
        W.gw = gw
        W.sent = {}
        W.tokens = {}
        W.clients = {}
        cid, sec = gw.create_client(org="Organization/net-admin", name="network office",
                                    scope="system/*.cruds", role="admin")
        W.tokens["admin"], W.clients["admin"] = gw.token(cid, sec), cid
        for o in ORGS:
            cid, sec = gw.create_client(org="Organization/" + o, name=o, scope="system/*.cruds")
            W.tokens[o], W.clients[o] = gw.token(cid, sec), cid
        aid, asec = gw.create_client(org="Organization/net-admin", name="auditor",
                                     scope="system/*.rs", role="admin")
        W.audit_token = gw.token(aid, asec)
        checks.run("reads", t_reads)
        checks.run("searches", t_searches)
        checks.run("paging", t_paging)
        checks.run("history", t_history)
        checks.run("bundles", t_bundles)
        checks.run("writes", t_writes)
        checks.run("changes", t_changes)
        checks.run("admin_area", t_admin_area)
        checks.run("audit_complete", t_audit_complete)
    checks.run("consent_default_care_team", t_consent_default_care_team, binary)
    checks.run("two_gateways", t_two_gateways, binary)
    import shutil
    shutil.rmtree(data, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
