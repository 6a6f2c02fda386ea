#!/usr/bin/env python3
"""test_rest.py BINARY — FHIR REST CRUD end to end against the real `tsunagu serve` with its
embedded Redis: create, read (JSON, XML, _pretty, _summary, _elements), vread, update,
If-Match, create-on-update, delete, history (instance/type/system, _since, _count + next),
Prefer, HEAD, OPTIONS, 405/413/415, errors as OperationOutcome, /metadata, /metrics, /healthz,
Redis down → 503 at once and /readyz 503, data surviving a restart.

Exit status 0 when every check passed. Uses harness.py (same folder)."""

import email.utils
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"


def expect(r, status, what=""):
    assert r.status == status, "%s: expected %d, got %r" % (what, status, r)


def expect_outcome(r, status, what=""):
    """status, and the body is an OperationOutcome with at least one issue."""
    expect(r, status, what)
    assert r.json and r.json.get("resourceType") == "OperationOutcome", \
        "%s: no OperationOutcome: %r" % (what, r)
    issues = r.json.get("issue") or []
    assert issues and issues[0].get("severity") and issues[0].get("code"), \
        "%s: OperationOutcome without a proper issue: %r" % (what, r)
    return issues[0]


def strip_meta(res):
    """res without id and meta (what the client sent, to compare content)."""
    return {k: v for k, v in res.items() if k not in ("id", "meta")}


def path_of(url):
    """/fhir/... from an absolute URL the server wrote (Location, links)."""
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.392.100495.20.3.51.11311234567",
                    "value": "00000001"}],
    "active": True,
    "name": [{"use": "official", "family": "山田", "given": ["太郎"],
              "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation",
                             "valueCode": "IDE"}]},
             {"use": "official", "family": "ヤマダ", "given": ["タロウ"]}],
    "gender": "male",
    "birthDate": "1970-01-01",
    "contact": [{"name": {"family": "山田", "given": ["花子"]}}],
}


def observation(subject, value):
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                             "display": "Heart rate"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2024-04-01T09:00:00+09:00",
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org",
                          "code": "/min"},
    }


class State:
    pass


S = State()


# ------------------------------------------------------------------------------------------
# Tests (each uses the shared gateway S.gw; later ones use what earlier ones created)
# ------------------------------------------------------------------------------------------

def t_health_and_metadata():
    gw = S.gw
    expect(gw.get("/healthz"), 200, "/healthz")
    expect(gw.get("/readyz"), 200, "/readyz")
    r = gw.get("/fhir/metadata")
    expect(r, 200, "metadata")
    assert r.header("Content-Type").startswith(FHIR_JSON), r.headers
    cs = r.json
    assert cs["resourceType"] == "CapabilityStatement", cs.get("resourceType")
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance"
    assert set(cs["format"]) >= {"json", "xml"}, cs["format"]
    res = {x["type"]: x for x in cs["rest"][0]["resource"]}
    assert len(res) >= 140, "only %d resource types" % len(res)
    for t in ("Patient", "Observation", "Encounter", "CareTeam"):
        codes = {i["code"] for i in res[t]["interaction"]}
        assert codes >= {"read", "vread", "create", "update", "delete", "history-instance",
                         "history-type"}, (t, codes)
    assert res["Patient"]["updateCreate"] is True
    r = gw.get("/fhir/metadata?_format=xml")
    expect(r, 200, "metadata xml")
    assert r.header("Content-Type").startswith(FHIR_XML)
    assert b"<CapabilityStatement" in r.body and b'xmlns="http://hl7.org/fhir"' in r.body


def t_create():
    gw = S.gw
    r = gw.request("POST", "/fhir/Patient", PATIENT)
    expect(r, 201, "create")
    loc = r.header("Location")
    m = re.search(r"/fhir/Patient/([A-Za-z0-9.-]{1,64})/_history/1$", loc or "")
    assert m, "Location %r" % loc
    assert loc.startswith("http://127.0.0.1:%d/fhir/" % gw.port), loc
    pid = m.group(1)
    assert r.header("ETag") == 'W/"1"', r.header("ETag")
    lm = r.header("Last-Modified")
    assert lm and email.utils.parsedate_to_datetime(lm), lm
    body = r.json
    # Last-Modified is meta.lastUpdated (to the second)
    lu = body["meta"]["lastUpdated"]
    assert email.utils.parsedate_to_datetime(lm).strftime("%Y-%m-%dT%H:%M:%S") == lu[:19], (lm, lu)
    assert body["id"] == pid, (body["id"], pid)
    assert body["meta"]["versionId"] == "1"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$",
                    body["meta"]["lastUpdated"]), body["meta"]
    assert strip_meta(body) == strip_meta(PATIENT), body
    S.pid = pid
    S.p_lastupdated = body["meta"]["lastUpdated"]

    # a client id in the body of a POST is ignored: the server assigns a new one
    withid = dict(PATIENT, id="client-chosen")
    r = gw.request("POST", "/fhir/Patient", withid)
    expect(r, 201, "create with an id in the body")
    assert r.json["id"] != "client-chosen", r.json["id"]

    # XML in, JSON out
    xml = ('<Patient xmlns="http://hl7.org/fhir"><active value="true"/>'
           '<name><family value="佐藤"/><given value="花子"/></name>'
           '<birthDate value="1980-02-03"/></Patient>')
    r = gw.request("POST", "/fhir/Patient", xml, headers={"Content-Type": FHIR_XML})
    expect(r, 201, "create from XML")
    assert r.json["name"] == [{"family": "佐藤", "given": ["花子"]}], r.json
    assert r.json["birthDate"] == "1980-02-03"


def t_read():
    gw = S.gw
    r = gw.get("/fhir/Patient/%s" % S.pid)
    expect(r, 200, "read")
    assert r.header("Content-Type").startswith(FHIR_JSON), r.headers
    assert r.header("ETag") == 'W/"1"'
    assert r.header("Last-Modified")
    assert r.json["id"] == S.pid and r.json["meta"]["versionId"] == "1"
    assert strip_meta(r.json) == strip_meta(PATIENT)

    for how, path, hdrs in (("_format=xml", "/fhir/Patient/%s?_format=xml" % S.pid, None),
                            ("_format=application/fhir+xml",
                             "/fhir/Patient/%s?_format=application/fhir%%2Bxml" % S.pid, None),
                            ("Accept", "/fhir/Patient/%s" % S.pid, {"Accept": FHIR_XML})):
        r = gw.request("GET", path, headers=hdrs)
        expect(r, 200, "read as XML by " + how)
        assert r.header("Content-Type").startswith(FHIR_XML), (how, r.headers)
        text = r.body.decode("utf-8")
        assert text.lstrip().startswith("<Patient") and 'xmlns="http://hl7.org/fhir"' in text, text
        assert '<id value="%s"/>' % S.pid in text, text
        assert '<family value="山田"/>' in text and '<versionId value="1"/>' in text, text

    # _format wins over Accept
    r = gw.request("GET", "/fhir/Patient/%s?_format=json" % S.pid, headers={"Accept": FHIR_XML})
    expect(r, 200, "_format=json with Accept xml")
    assert r.header("Content-Type").startswith(FHIR_JSON)

    r = gw.get("/fhir/Patient/%s?_pretty=true" % S.pid)
    expect(r, 200, "_pretty")
    assert b"\n" in r.body and b"\n  " in r.body, r.body[:200]
    assert json.loads(r.body) == gw.get("/fhir/Patient/%s" % S.pid).json
    r = gw.get("/fhir/Patient/%s?_pretty=false" % S.pid)
    assert b"\n" not in r.body.strip(), r.body[:200]
    r = gw.get("/fhir/Patient/%s?_format=xml&_pretty=true" % S.pid)
    expect(r, 200, "xml _pretty")
    assert b"\n" in r.body.strip() and b"<Patient" in r.body

    expect_outcome(gw.get("/fhir/Patient/%s?_pretty=maybe" % S.pid), 400, "_pretty=maybe")
    expect_outcome(gw.request("GET", "/fhir/Patient/%s" % S.pid,
                              headers={"Accept": "text/html"}), 406, "Accept text/html")
    expect_outcome(gw.get("/fhir/Patient/does-not-exist"), 404, "read unknown id")


def t_summary_elements():
    gw = S.gw
    r = gw.get("/fhir/Patient/%s?_summary=true" % S.pid)
    expect(r, 200, "_summary=true")
    b = r.json
    assert "contact" not in b, "contact is not a summary element: %r" % b
    assert b["name"] == PATIENT["name"] and b["birthDate"] == "1970-01-01"
    assert b["id"] == S.pid
    tags = [t.get("code") for t in b.get("meta", {}).get("tag", [])]
    assert "SUBSETTED" in tags, b.get("meta")

    r = gw.get("/fhir/Patient/%s?_elements=name" % S.pid)
    expect(r, 200, "_elements=name")
    b = r.json
    assert b["resourceType"] == "Patient" and b["id"] == S.pid
    assert b["name"] == PATIENT["name"]
    for absent in ("birthDate", "gender", "contact", "identifier", "active"):
        assert absent not in b, (absent, b)
    assert "SUBSETTED" in [t.get("code") for t in b.get("meta", {}).get("tag", [])]

    r = gw.get("/fhir/Patient/%s?_elements=name,birthDate" % S.pid)
    expect(r, 200, "_elements=name,birthDate")
    assert set(r.json) >= {"name", "birthDate"} and "gender" not in r.json, r.json

    # _summary=data drops the narrative, text keeps only it (and id/meta/mandatory)
    narr = dict(PATIENT, text={"status": "generated",
                               "div": '<div xmlns="http://www.w3.org/1999/xhtml">山田 太郎</div>'})
    r = gw.request("POST", "/fhir/Patient", narr)
    expect(r, 201)
    nid = r.json["id"]
    r = gw.get("/fhir/Patient/%s?_summary=data" % nid)
    expect(r, 200, "_summary=data")
    assert "text" not in r.json and r.json["contact"] == PATIENT["contact"], r.json
    r = gw.get("/fhir/Patient/%s?_summary=text" % nid)
    expect(r, 200, "_summary=text")
    assert r.json["text"] == narr["text"] and "name" not in r.json, r.json
    r = gw.get("/fhir/Patient/%s?_summary=false" % nid)
    assert strip_meta(r.json) == strip_meta(narr), r.json
    expect_outcome(gw.get("/fhir/Patient/%s?_summary=bogus" % nid), 400, "_summary=bogus")


def t_update_vread():
    gw = S.gw
    p2 = dict(PATIENT, id=S.pid, birthDate="1970-01-02")
    r = gw.request("PUT", "/fhir/Patient/%s" % S.pid, p2)
    expect(r, 200, "update")
    assert r.header("ETag") == 'W/"2"', r.header("ETag")
    assert r.json["meta"]["versionId"] == "2" and r.json["birthDate"] == "1970-01-02"
    assert (r.header("Location") or "").endswith("/fhir/Patient/%s/_history/2" % S.pid), \
        r.header("Location")

    r = gw.get("/fhir/Patient/%s/_history/1" % S.pid)
    expect(r, 200, "vread 1")
    assert r.json["meta"]["versionId"] == "1" and r.json["birthDate"] == "1970-01-01"
    assert r.header("ETag") == 'W/"1"'
    r = gw.get("/fhir/Patient/%s/_history/2" % S.pid)
    expect(r, 200, "vread 2")
    assert r.json["birthDate"] == "1970-01-02"
    expect_outcome(gw.get("/fhir/Patient/%s/_history/99" % S.pid), 404, "vread 99")
    expect_outcome(gw.get("/fhir/Patient/%s/_history/x" % S.pid), 400, "vread x")

    # If-Match: the current version succeeds, a stale one is 412 and changes nothing
    p3 = dict(p2, gender="other")
    r = gw.request("PUT", "/fhir/Patient/%s" % S.pid, p3, headers={"If-Match": 'W/"2"'})
    expect(r, 200, "If-Match current")
    assert r.header("ETag") == 'W/"3"'
    r = gw.request("PUT", "/fhir/Patient/%s" % S.pid, dict(p2, gender="female"),
                   headers={"If-Match": 'W/"2"'})
    expect_outcome(r, 412, "If-Match stale")
    r = gw.get("/fhir/Patient/%s" % S.pid)
    assert r.json["gender"] == "other" and r.json["meta"]["versionId"] == "3", r.json
    expect_outcome(gw.request("PUT", "/fhir/Patient/%s" % S.pid, p3,
                              headers={"If-Match": "garbage"}), 400, "If-Match garbage")

    # create-on-update with a client id
    cid = "it-client-%d" % os.getpid()
    r = gw.request("PUT", "/fhir/Patient/%s" % cid, dict(PATIENT, id=cid))
    expect(r, 201, "create-on-update")
    assert r.header("ETag") == 'W/"1"' and r.json["id"] == cid
    assert (r.header("Location") or "").endswith("/fhir/Patient/%s/_history/1" % cid)
    r = gw.get("/fhir/Patient/%s" % cid)
    expect(r, 200, "read client id")
    S.cid = cid
    # If-Match on an absent resource
    expect_outcome(gw.request("PUT", "/fhir/Patient/absent-1", dict(PATIENT, id="absent-1"),
                              headers={"If-Match": 'W/"1"'}), 412, "If-Match on absent")


def t_bad_requests():
    gw = S.gw
    r = gw.request("PUT", "/fhir/Patient/%s" % S.pid, dict(PATIENT, id="other-id"))
    expect_outcome(r, 400, "body id != URL id")
    r = gw.request("PUT", "/fhir/Patient/%s" % S.pid, PATIENT)
    expect_outcome(r, 400, "update without id")
    r = gw.request("POST", "/fhir/Patient", observation("Patient/x", 1))
    expect_outcome(r, 400, "wrong resourceType (POST)")
    r = gw.request("PUT", "/fhir/Patient/%s" % S.pid, dict(observation("Patient/x", 1), id=S.pid))
    expect_outcome(r, 400, "wrong resourceType (PUT)")
    for bad in ('{"resourceType":"Patient", "name": [{"family": 5}]}',
                '{"resourceType":"Patient", "foo": 1}',
                '{"resourceType":"Patient", "name": [{"family": "x"}'):
        r = gw.request("POST", "/fhir/Patient", bad, headers={"Content-Type": FHIR_JSON})
        issue = expect_outcome(r, 400, "invalid JSON %s" % bad)
        loc = issue.get("expression") or issue.get("location")
        assert loc and loc[0].startswith("Patient"), "no location for %s: %r" % (bad, r)
    r = gw.request("POST", "/fhir/Patient", "not json", headers={"Content-Type": FHIR_JSON})
    expect_outcome(r, 400, "not JSON")
    r = gw.request("POST", "/fhir/Patient", b"", headers={"Content-Type": FHIR_JSON})
    expect_outcome(r, 400, "empty body")
    expect_outcome(gw.get("/fhir/Foo/1"), 404, "unknown type")
    expect_outcome(gw.request("POST", "/fhir/Foo", PATIENT), 404, "create unknown type")
    expect_outcome(gw.get("/fhir/Patient/a_b"), 400, "bad id (underscore)")
    expect_outcome(gw.get("/fhir/Patient/" + "a" * 65), 400, "bad id (65 chars)")
    expect_outcome(gw.request("PUT", "/fhir/Patient/a%20b", dict(PATIENT, id="a b")), 400,
                   "bad id in PUT")
    expect_outcome(gw.get("/fhir/Patient/1/2/3/4/5"), 404, "unknown path")
    # a NUL byte (%00) would cut the text short for every reader: refused in path and query
    expect_outcome(gw.get("/fhir/Patient/%s%%00x" % S.pid), 400, "%00 in the path")
    expect_outcome(gw.get("/fhir/Patient?name=a%00b"), 400, "%00 in the query")
    # request targets: not a path or an absolute URL is 400; asterisk-form is the root
    import socket
    for target, want in ((b"fhir/metadata", b"400"), (b"*", None)):
        with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sk:
            method = b"OPTIONS " if target == b"*" else b"GET "
            sk.sendall(method + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = sk.recv(4096)
            assert head.startswith(b"HTTP/1.1 "), head[:200]
            status = head[9:12]
            assert (status == want) if want else status in (b"200", b"204", b"404"), \
                (target, head[:300])
    expect(gw.get("/readyz"), 200)
    r = gw.request("POST", "/fhir/Patient", "hello", headers={"Content-Type": "text/plain"})
    expect_outcome(r, 415, "text/plain body")
    r = gw.request("POST", "/fhir/Patient", json.dumps(PATIENT),
                   headers={"Content-Type": "application/fhir+json; charset=iso-8859-1"})
    expect_outcome(r, 415, "charset latin-1")
    # errors follow the negotiated format
    r = gw.request("GET", "/fhir/Patient/does-not-exist", headers={"Accept": FHIR_XML})
    expect(r, 404, "404 as XML")
    assert r.header("Content-Type").startswith(FHIR_XML) and b"<OperationOutcome" in r.body


def t_invalid_primitives():
    """Values that break their type's regular expression (R4 datatypes) are refused, not
    stored: a create answers 400 with an OperationOutcome pointing at the element."""
    gw = S.gw
    bad = []
    for field, value in (("birthDate", "not a date"), ("birthDate", "2024-13-45"),
                         ("birthDate", "1970-1-1"), ("gender", ""), ("active", "yes"),
                         ("multipleBirthInteger", 1.5)):
        r = gw.request("POST", "/fhir/Patient", dict(PATIENT, **{field: value}))
        try:
            issue = expect_outcome(r, 400, "Patient.%s = %r" % (field, value))
            loc = issue.get("expression") or issue.get("location") or [""]
            assert field in loc[0], "location %r for %s" % (loc, field)
        except AssertionError as e:
            bad.append(str(e)[:160])
    assert not bad, "invalid values accepted:\n  " + "\n  ".join(bad)


def t_prefer():
    gw = S.gw
    r = gw.request("POST", "/fhir/Patient", PATIENT, headers={"Prefer": "return=minimal"})
    expect(r, 201, "Prefer minimal")
    assert r.body == b"", r.body
    assert r.header("Location") and r.header("ETag") == 'W/"1"'
    pid = re.search(r"/Patient/([^/]+)/_history", r.header("Location")).group(1)
    expect(gw.get("/fhir/Patient/%s" % pid), 200, "read after minimal")
    r = gw.request("POST", "/fhir/Patient", PATIENT,
                   headers={"Prefer": "return=OperationOutcome"})
    expect(r, 201, "Prefer OperationOutcome")
    assert r.json["resourceType"] == "OperationOutcome", r
    assert r.header("Location")
    r = gw.request("POST", "/fhir/Patient", PATIENT,
                   headers={"Prefer": "return=representation"})
    expect(r, 201, "Prefer representation")
    assert r.json["resourceType"] == "Patient"
    r = gw.request("PUT", "/fhir/Patient/%s" % pid, dict(PATIENT, id=pid),
                   headers={"Prefer": "return=minimal"})
    expect(r, 200, "update minimal")
    assert r.body == b"" and r.header("ETag") == 'W/"2"'


def t_methods():
    gw = S.gw
    r = gw.request("HEAD", "/fhir/Patient/%s" % S.pid)
    expect(r, 200, "HEAD")
    assert r.body == b"", r.body
    g = gw.get("/fhir/Patient/%s" % S.pid)
    assert r.header("Content-Length") == str(len(g.body)), (r.header("Content-Length"), len(g.body))
    assert r.header("ETag") == 'W/"3"' and r.header("Content-Type").startswith(FHIR_JSON)
    expect(gw.request("HEAD", "/fhir/Patient/nope"), 404, "HEAD 404")
    r = gw.request("OPTIONS", "/fhir/Patient")
    assert r.status in (200, 204), r
    allow = {m.strip() for m in (r.header("Allow") or "").split(",")}
    assert allow >= {"GET", "POST", "PUT", "DELETE"}, allow
    # a method the route does not take at all (layer)
    r = gw.request("POST", "/metrics")
    expect_outcome(r, 405, "POST /metrics")
    assert "GET" in (r.header("Allow") or ""), r.headers
    # a method a FHIR path does not take: RFC 9110 §15.5.6 — a 405 MUST carry Allow
    r = gw.request("DELETE", "/fhir/metadata")
    expect_outcome(r, 405, "DELETE /fhir/metadata")
    assert r.header("Allow"), "405 for DELETE /fhir/metadata without Allow: %r" % dict(r.headers)
    assert "GET" in r.header("Allow")
    r = gw.request("PUT", "/fhir/Patient/%s/_history" % S.pid, PATIENT)
    expect_outcome(r, 405, "PUT on _history")
    assert r.header("Allow"), "405 for PUT /fhir/Patient/id/_history without Allow"


def t_delete():
    gw = S.gw
    r = gw.request("POST", "/fhir/Patient", PATIENT)
    expect(r, 201)
    did = r.json["id"]
    r = gw.request("DELETE", "/fhir/Patient/%s" % did)
    assert r.status in (200, 204), r
    r = gw.get("/fhir/Patient/%s" % did)
    expect_outcome(r, 410, "read after delete")
    r = gw.request("DELETE", "/fhir/Patient/%s" % did)
    assert r.status in (200, 204), "delete again: %r" % r
    r = gw.request("DELETE", "/fhir/Patient/never-existed")
    assert r.status in (200, 204), "delete of absent: %r" % r
    expect(gw.get("/fhir/Patient/%s/_history/1" % did), 200, "vread of a deleted resource's v1")
    r = gw.get("/fhir/Patient/%s/_history" % did)
    expect(r, 200, "history of deleted")
    es = r.json["entry"]
    assert r.json["total"] == 2 and len(es) == 2, r.json
    assert es[0]["request"]["method"] == "DELETE" and "resource" not in es[0], es[0]
    assert es[1]["resource"]["meta"]["versionId"] == "1"
    # If-Match on delete: stale → 412
    r = gw.request("POST", "/fhir/Patient", PATIENT)
    did2 = r.json["id"]
    r = gw.request("DELETE", "/fhir/Patient/%s" % did2, headers={"If-Match": 'W/"7"'})
    expect_outcome(r, 412, "delete If-Match stale")
    expect(gw.get("/fhir/Patient/%s" % did2), 200, "still there after 412")
    # re-create after delete: a new version of the same id
    r = gw.request("PUT", "/fhir/Patient/%s" % did, dict(PATIENT, id=did))
    assert r.status in (200, 201), r
    assert r.json["meta"]["versionId"] == "3", r.json["meta"]


def t_history():
    gw = S.gw
    r = gw.get("/fhir/Patient/%s/_history" % S.pid)
    expect(r, 200, "history instance")
    b = r.json
    assert b["resourceType"] == "Bundle" and b["type"] == "history", b.get("type")
    assert b["total"] == 3, b["total"]
    vs = [e["resource"]["meta"]["versionId"] for e in b["entry"]]
    assert vs == ["3", "2", "1"], vs
    assert b["entry"][2]["request"]["method"] == "POST"
    assert b["entry"][0]["request"]["method"] == "PUT"
    assert all(e["fullUrl"].endswith("/fhir/Patient/%s" % S.pid) for e in b["entry"])
    expect_outcome(gw.get("/fhir/Patient/never-there/_history"), 404, "history of unknown")

    # type history with _count and a next link; pages cover everything once
    subj = "Patient/%s" % S.pid
    created = []
    for i in range(5):
        r = gw.request("POST", "/fhir/Observation", observation(subj, 60 + i))
        expect(r, 201)
        created.append(r.json["id"])
        time.sleep(0.005)
    r = gw.get("/fhir/Observation/_history?_count=2")
    expect(r, 200, "history type _count=2")
    b = r.json
    assert b["total"] == 5 and len(b["entry"]) == 2, (b["total"], len(b["entry"]))
    seen = [e["resource"]["id"] for e in b["entry"]]
    links = {l["relation"]: l["url"] for l in b["link"]}
    assert "self" in links and "next" in links, links
    pages = 1
    while "next" in links:
        r = gw.get(path_of(links["next"]))
        expect(r, 200, "next page")
        seen += [e["resource"]["id"] for e in r.json.get("entry", [])]
        links = {l["relation"]: l["url"] for l in r.json["link"]}
        pages += 1
        assert pages < 10
    assert pages == 3, pages
    assert seen == list(reversed(created)), (seen, created)

    # _since: only what changed at or after that instant
    since = gw.get("/fhir/Observation/%s" % created[3]).json["meta"]["lastUpdated"]
    r = gw.get("/fhir/Observation/_history?_since=" + urllib.parse.quote(since))
    expect(r, 200, "_since")
    got = [e["resource"]["id"] for e in r.json["entry"]]
    assert got == [created[4], created[3]], (got, since)
    r = gw.get("/fhir/Observation/_history?_since=2999-01-01T00:00:00Z")
    assert r.json["total"] == 0 and not r.json.get("entry"), r.json
    expect_outcome(gw.get("/fhir/Observation/_history?_since=yesterday"), 400, "bad _since")
    expect_outcome(gw.get("/fhir/Observation/_history?_count=-1"), 400, "bad _count")
    expect_outcome(gw.get("/fhir/Observation/_history?foo=1"), 400, "unknown history param")

    # system history
    r = gw.get("/fhir/_history?_count=1")
    expect(r, 200, "history system")
    b = r.json
    assert b["type"] == "history" and b["total"] >= 15 and len(b["entry"]) == 1, b["total"]
    assert b["entry"][0]["resource"]["resourceType"] in ("Observation", "Patient")
    assert any(l["relation"] == "next" for l in b["link"])
    r = gw.get("/fhir/_history?_since=" + urllib.parse.quote(since))
    types = {e["resource"]["resourceType"] for e in r.json["entry"] if "resource" in e}
    assert r.json["total"] >= 2 and "Observation" in types, r.json["total"]
    r = gw.get("/fhir/_history?_format=xml&_count=2")
    expect(r, 200, "history as XML")
    assert b"<Bundle" in r.body and b'<type value="history"/>' in r.body


def t_concurrent_updates():
    """Optimistic concurrency end to end: N clients update one resource at once. With
    If-Match on the same version exactly one wins (the others 412); without If-Match every
    update lands as its own version (or 409 after the retries), never a lost version."""
    import threading
    gw = S.gw
    rid = "conc-%d" % os.getpid()
    r = gw.request("PUT", "/fhir/Patient/%s" % rid, dict(PATIENT, id=rid))
    expect(r, 201)
    n = 8
    results = [None] * n
    barrier = threading.Barrier(n)

    def upd(i, if_match):
        body = dict(PATIENT, id=rid, birthDate="1970-01-%02d" % (i + 1))
        hdrs = {"If-Match": 'W/"1"'} if if_match else None
        barrier.wait()
        try:
            results[i] = gw.request("PUT", "/fhir/Patient/%s" % rid, body, headers=hdrs).status
        except Exception as e:  # recorded and asserted below
            results[i] = repr(e)

    ths = [threading.Thread(target=upd, args=(i, True)) for i in range(n)]
    [t.start() for t in ths]
    [t.join(30) for t in ths]
    assert sorted(results) == [200] + [412] * (n - 1), results
    r = gw.get("/fhir/Patient/%s" % rid)
    assert r.json["meta"]["versionId"] == "2", r.json["meta"]

    barrier = threading.Barrier(n)
    results = [None] * n
    ths = [threading.Thread(target=upd, args=(i, False)) for i in range(n)]
    [t.start() for t in ths]
    [t.join(30) for t in ths]
    assert all(x in (200, 409) for x in results), results
    ok = results.count(200)
    r = gw.get("/fhir/Patient/%s" % rid)
    assert r.json["meta"]["versionId"] == str(2 + ok), (r.json["meta"], results)
    h = gw.get("/fhir/Patient/%s/_history?_count=100" % rid).json
    assert h["total"] == 2 + ok, (h["total"], results)
    days = sorted(e["resource"]["birthDate"] for e in h["entry"][:ok])
    assert len(set(days)) == ok, days


def t_concurrent_conditional_create():
    """Conditional create under concurrency: 8 clients POST the same new patient with the
    same If-None-Exist at once; exactly one is created (201), the others get it (200), and a
    search finds one patient, not several."""
    import threading
    gw = S.gw
    ident = "cc-%d" % os.getpid()
    body = dict(PATIENT, identifier=[{"system": "urn:test:cc", "value": ident}])
    body.pop("id", None)
    n = 8
    results = [None] * n
    barrier = threading.Barrier(n)

    def create(i):
        barrier.wait()
        try:
            results[i] = gw.request("POST", "/fhir/Patient", body,
                                    headers={"If-None-Exist": "identifier=urn:test:cc|" + ident}).status
        except Exception as e:  # recorded and asserted below
            results[i] = repr(e)

    ths = [threading.Thread(target=create, args=(i,)) for i in range(n)]
    [t.start() for t in ths]
    [t.join(30) for t in ths]
    assert sorted(results) == [200] * (n - 1) + [201], results
    r = gw.get("/fhir/Patient?identifier=urn:test:cc|" + ident)
    expect(r, 200)
    assert r.json.get("total") == 1, r.json.get("total")


def t_keep_alive():
    """Many requests on one keep-alive connection, errors among them."""
    import http.client
    gw = S.gw
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        for i in range(40):
            if i % 4 == 0:
                c.request("GET", "/fhir/Patient/%s" % S.pid, headers={"Accept": FHIR_JSON})
                want = 200
            elif i % 4 == 1:
                c.request("GET", "/fhir/Patient/nope-%d" % i)
                want = 404
            elif i % 4 == 2:
                c.request("POST", "/fhir/Patient", body=json.dumps(PATIENT).encode(),
                          headers={"Content-Type": FHIR_JSON})
                want = 201
            else:
                c.request("POST", "/fhir/Patient", body=b"{", headers={"Content-Type": FHIR_JSON})
                want = 400
            r = c.getresponse()
            body = r.read()
            assert r.status == want, (i, r.status, body[:200])
            if want != 201:
                assert json.loads(body)["resourceType"] in ("Patient", "OperationOutcome")
    finally:
        c.close()


def t_metrics():
    gw = S.gw
    r = gw.get("/metrics")
    expect(r, 200, "/metrics")
    text = r.body.decode()
    assert r.header("Content-Type").startswith("text/plain"), r.headers

    def counter(interaction, code):
        m = re.search(r'^tsunagu_http_requests_total\{interaction="%s",code="%s"\} (\d+)$'
                      % (interaction, code), text, re.M)
        return int(m.group(1)) if m else 0

    assert counter("create", "201") >= 10, counter("create", "201")
    assert counter("read", "200") >= 5
    assert counter("read", "404") >= 1
    assert counter("vread", "200") >= 2
    assert counter("update", "200") >= 2
    assert counter("update", "412") >= 1
    assert counter("delete", "200") >= 1
    assert counter("history-type", "200") >= 3
    assert "tsunagu_http_request_duration_seconds_bucket" in text
    assert re.search(r"^tsunagu_redis_commands_total \d+$", text, re.M)
    assert re.search(r"^tsunagu_redis_errors_total \d+$", text, re.M)


def t_redis_down():
    gw = S.gw
    path = "/fhir/Patient/%s" % S.pid
    expect(gw.get(path), 200)
    rpid = gw.sigstop_redis()
    try:
        t0 = time.monotonic()
        r = gw.get(path, timeout=15)
        first = time.monotonic() - t0
        expect_outcome(r, 503, "read while Redis is frozen")
        assert first < 5.0, "the first read took %.2fs" % first
        worst = 0.0
        for _ in range(5):  # later requests fail at once (backoff window) or one probe
            t0 = time.monotonic()
            r = gw.get(path, timeout=15)
            worst = max(worst, time.monotonic() - t0)
            expect_outcome(r, 503, "read while frozen")
        assert worst < 5.0, worst
        t0 = time.monotonic()
        r = gw.request("POST", "/fhir/Patient", PATIENT, timeout=15)
        expect_outcome(r, 503, "create while frozen")
        assert time.monotonic() - t0 < 5.0
        t0 = time.monotonic()
        r = gw.get("/readyz", timeout=15)
        expect(r, 503, "/readyz while frozen")
        assert time.monotonic() - t0 < 5.0
        expect(gw.get("/healthz", timeout=15), 200, "/healthz while frozen")
        print("  frozen Redis: first read 503 in %.2fs, later ones at most %.2fs"
              % (first, worst), flush=True)
    finally:
        gw.sigcont_redis(rpid)
    assert gw.wait_ready(15), "/readyz not 200 within 15 s of SIGCONT"
    expect(gw.get(path), 200, "read after resume")
    r = gw.get("/metrics")
    m = re.search(r"^tsunagu_redis_errors_total (\d+)$", r.body.decode(), re.M)
    assert m and int(m.group(1)) >= 1, "no Redis errors counted"


def _redis_ping(sock):
    import socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(1)
            c.connect(sock)
            c.sendall(b"PING\r\n")
            return c.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def t_external_redis():
    """TSUNAGU_REDIS_URL=unix:///…: a redis-server of our own; stopping it entirely (not
    frozen) gives 503 at once and /readyz 503; started again on the same AOF, the gateway
    recovers without a restart and the data is there."""
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="tsg-it-redis-")
    sock = os.path.join(d, "r.sock")

    def start_redis():
        p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock,
                              "--unixsocketperm", "700", "--dir", d, "--appendonly", "yes",
                              "--appendfsync", "always", "--save", ""],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _redis_ping(sock):
            time.sleep(0.05)
        assert _redis_ping(sock), "redis-server did not start"
        return p

    red = start_redis()
    try:
        with harness.Gateway(S.binary, env={"TSUNAGU_REDIS_URL": "unix://" + sock}) as gw:
            assert "Redis unix://" in gw.log() or "Redis " in gw.log(), gw.log()
            assert gw.redis_pid() is None, "an embedded redis-server runs despite the URL"
            r = gw.request("PUT", "/fhir/Patient/ext-1", dict(PATIENT, id="ext-1"))
            expect(r, 201, "create on external Redis")
            red.terminate()  # SHUTDOWN: AOF fsynced
            red.wait(15)
            worst = 0.0
            for i in range(6):
                t0 = time.monotonic()
                r = gw.get("/fhir/Patient/ext-1", timeout=15)
                worst = max(worst, time.monotonic() - t0)
                expect_outcome(r, 503, "read with Redis stopped (%d)" % i)
            assert worst < 5.0, "a read took %.2fs with Redis stopped" % worst
            t0 = time.monotonic()
            expect_outcome(gw.request("PUT", "/fhir/Patient/ext-2", dict(PATIENT, id="ext-2"),
                                      timeout=15), 503, "write with Redis stopped")
            expect(gw.get("/readyz", timeout=15), 503, "/readyz with Redis stopped")
            assert time.monotonic() - t0 < 5.0
            print("  stopped Redis: reads 503 in at most %.3fs" % worst, flush=True)
            red = start_redis()
            assert gw.wait_ready(15), "/readyz not 200 after Redis came back"
            r = gw.get("/fhir/Patient/ext-1")
            expect(r, 200, "read after Redis came back")
            assert r.json["meta"]["versionId"] == "1"
            expect(gw.get("/fhir/Patient/ext-2"), 404, "the refused write is absent")
    finally:
        if red.poll() is None:
            red.kill()
            red.wait()
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def _without_version(res):
    """res with meta.versionId and meta.lastUpdated removed (the server sets those)."""
    out = dict(res)
    meta = {k: v for k, v in (res.get("meta") or {}).items()
            if k not in ("versionId", "lastUpdated")}
    out.pop("meta", None)
    if meta:
        out["meta"] = meta
    return out


def t_corpus_roundtrip():
    """Every R4 example and JP Core example of the shared corpus, stored by PUT with its own
    id and read back (JSON and XML): the content is what was sent, meta aside. Validation on
    write is off here: this is about storage fidelity, and a few official examples fail the
    base validation (tests/validate lists them; test_validate_rest.py tests the 422)."""
    corpus = os.environ.get("TSUNAGU_CORPUS", os.path.join(os.path.dirname(__file__),
                                                           "../../../shared/corpus"))
    files = []
    for sub in ("r4-examples/json", "jp-core-examples"):
        d = os.path.join(corpus, sub)
        if os.path.isdir(d):
            files += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".json")]
    if not files:
        raise harness.Skip("no corpus at %s (TSUNAGU_CORPUS)" % corpus)
    bad, stored, noid = [], 0, 0
    with harness.Gateway(S.binary, env={"TSUNAGU_VALIDATE": "off"}) as gw:
        for f in files:
            with open(f, encoding="utf-8") as fh:
                res = json.load(fh)
            typ, rid = res.get("resourceType"), res.get("id")
            if not typ or not rid:
                noid += 1
                continue
            name = os.path.basename(f)
            path = "/fhir/%s/%s" % (typ, urllib.parse.quote(rid))
            r = gw.request("PUT", path, res)
            if r.status not in (200, 201):
                bad.append("%s: PUT %s -> %r" % (name, path, r))
                continue
            r = gw.get(path)
            if r.status != 200 or _without_version(r.json) != _without_version(res):
                bad.append("%s: read back differs: %r" % (name, r))
                continue
            x = gw.get(path + "?_format=xml")
            if x.status != 200 or not x.body.lstrip().startswith(b"<" + typ.encode()):
                bad.append("%s: XML read %r" % (name, x))
                continue
            stored += 1
    print("  %d of %d corpus resources stored and read back unchanged (%d without an id)"
          % (stored, len(files) - noid, noid), flush=True)
    assert not bad, "%d corpus resources failed:\n  %s" % (len(bad), "\n  ".join(
        b[:300] for b in bad[:15]))


def t_second_gateway_same_dir():
    """A second gateway on a data dir in use refuses to start (exit 1, a clear message) and
    leaves the first one serving."""
    g2 = harness.Gateway(S.binary, data_dir=S.gw.data_dir)
    try:
        try:
            g2.start(timeout=30)
        except RuntimeError as e:
            msg = str(e)
            assert "exited with 1" in msg and "in use by another tsunagu" in msg, msg
        else:
            raise AssertionError("a second gateway started on the same data dir")
    finally:
        g2.close()
    expect(S.gw.get("/readyz"), 200, "the first gateway after the refused second one")
    expect(S.gw.get("/fhir/Patient/%s" % S.pid), 200)


def t_body_limit():
    with harness.Gateway(S.binary, env={"TSUNAGU_MAX_BODY_BYTES": "2048"}) as gw:
        small = dict(PATIENT)
        expect(gw.request("POST", "/fhir/Patient", small), 201, "small body")
        big = dict(PATIENT, name=[{"family": "x" * 3000}])
        r = gw.request("POST", "/fhir/Patient", big)
        expect_outcome(r, 413, "body over the limit")
        r = gw.request("PUT", "/fhir/Patient/big1", dict(big, id="big1"))
        expect_outcome(r, 413, "PUT over the limit")
        expect(gw.get("/fhir/Patient/big1"), 404, "nothing stored")
        expect(gw.get("/readyz"), 200)
        # without a Content-Length (chunked) the body is read to its end and dropped: 413,
        # and the connection goes on serving
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        try:
            data = json.dumps(dict(big, id="big2")).encode()
            c.request("PUT", "/fhir/Patient/big2", body=iter([data[i:i + 700] for i in
                                                             range(0, len(data), 700)]),
                      headers={"Content-Type": FHIR_JSON}, encode_chunked=True)
            r = c.getresponse()
            body = r.read()
            assert r.status == 413 and b"2048" in body, (r.status, body[:300])
            c.request("GET", "/fhir/Patient/big2")
            r = c.getresponse()
            r.read()
            assert r.status == 404, r.status
            # a chunked body just under the limit is taken whole
            data = json.dumps(dict(small, id="fits")).encode()
            c.request("PUT", "/fhir/Patient/fits", body=iter([data[:9], data[9:]]),
                      headers={"Content-Type": FHIR_JSON}, encode_chunked=True)
            r = c.getresponse()
            body = r.read()
            assert r.status == 201, (r.status, body[:300])
        finally:
            c.close()
        # Expect: 100-continue with a declared length over the limit: 413 before any body
        import socket
        with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sk:
            sk.sendall(b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: " +
                       FHIR_JSON.encode() + b"\r\nContent-Length: 999999999\r\n"
                       b"Expect: 100-continue\r\n\r\n")
            head = sk.recv(4096)
            assert head.startswith(b"HTTP/1.1 413"), head[:200]
        expect(gw.get("/readyz"), 200)


def t_headers():
    """Repeated header fields are one list (RFC 9110 §5.3); a value that is not UTF-8 counts
    as absent; HEAD carries GET's headers without the body."""
    import http.client
    gw = S.gw
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        c.putrequest("GET", "/fhir/Patient/%s" % S.pid)
        c.putheader("Accept", "text/plain")
        c.putheader("Accept", FHIR_JSON)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        assert r.status == 200 and r.getheader("Content-Type").startswith(FHIR_JSON), (
            "two Accept fields: the second must count", r.status, body[:200])
        c.putrequest("GET", "/fhir/Patient/%s" % S.pid)
        c.putheader("Accept", b"\xff\xfe")
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        assert r.status == 200 and json.loads(body)["id"] == S.pid, (r.status, body[:200])
        c.request("HEAD", "/fhir/Patient/%s" % S.pid, headers={"Accept": FHIR_JSON})
        r = c.getresponse()
        assert r.read() == b"" and r.status == 200, r.status
        n = int(r.getheader("Content-Length"))
        c.request("GET", "/fhir/Patient/%s" % S.pid, headers={"Accept": FHIR_JSON})
        r = c.getresponse()
        assert len(r.read()) == n, n
    finally:
        c.close()


def t_restart_keeps_data():
    gw = S.gw
    before = {p: gw.get(p).json for p in ("/fhir/Patient/%s" % S.pid, "/fhir/Patient/%s" % S.cid)}
    hist = gw.get("/fhir/_history?_count=1").json["total"]
    rc = gw.stop()
    assert rc == 0, "gateway exit status %r after SIGTERM:\n%s" % (rc, gw.log_tail())
    assert "stopped" in gw.log(), gw.log_tail()
    gw.restart()
    for p, b in before.items():
        r = gw.get(p)
        expect(r, 200, "read after restart " + p)
        assert r.json == b, (r.json, b)
    assert gw.get("/fhir/_history?_count=1").json["total"] == hist
    r = gw.get("/fhir/Patient/%s/_history/2" % S.pid)
    expect(r, 200, "vread after restart")


def t_data_format():
    """Data of another format (tsg:format, store.h) stops serve with exit 1 and a message
    naming both formats; data of the first format (an outbox, no tsg:format) too."""
    with harness.Gateway(S.binary) as gw:
        expect(gw.request("POST", "/fhir/Patient", PATIENT), 201, "a write")
        sock = os.path.join(gw.data_dir, "redis.sock")
        for setup, want in ((["SET", "tsg:format", "9"], "format 9"),
                            (["DEL", "tsg:format"], "earlier tsunagu (format 1)")):
            out = subprocess.run(["redis-cli", "-s", sock] + setup, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            assert gw.stop() == 0, gw.log_tail()
            try:
                gw.start(timeout=30)
            except RuntimeError as e:
                msg = str(e)
                assert "exited with 1" in msg and want in msg, msg
            else:
                raise AssertionError("serve started on data of another format (%s)" % want)
            # put the format back and start again: the data is served (each step waits for
            # the one before: the gateway's Redis gone, ours up, the SET done, ours gone)
            for _ in range(200):
                if subprocess.run(["redis-cli", "-s", sock, "PING"],
                                  capture_output=True).returncode != 0:
                    break
                time.sleep(0.05)
            env = dict(os.environ)
            out = subprocess.run(["redis-server", os.path.join(gw.data_dir, "redis.conf"),
                                  "--daemonize", "yes", "--pidfile",
                                  os.path.join(gw.data_dir, "fix.pid")],
                                 capture_output=True, text=True, env=env)
            assert out.returncode == 0, out.stderr
            for _ in range(100):
                if subprocess.run(["redis-cli", "-s", sock, "PING"],
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.05)
            out = subprocess.run(["redis-cli", "-s", sock, "SET", "tsg:format", "2"],
                                 check=True, capture_output=True, text=True)
            assert out.stdout.strip() == "OK", out
            with open(os.path.join(gw.data_dir, "fix.pid")) as f:
                fix = int(f.read().strip())
            subprocess.run(["redis-cli", "-s", sock, "SHUTDOWN"], capture_output=True)
            for _ in range(200):
                try:
                    os.kill(fix, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            gw.start(timeout=30)
            expect(gw.get("/readyz"), 200, "after the format was put back")


def main():
    if len(sys.argv) != 2:
        print("usage: test_rest.py PATH/TO/tsunagu", file=sys.stderr)
        return 2
    S.binary = sys.argv[1]
    checks = harness.Checks()
    S.gw = harness.Gateway(S.binary)
    try:
        S.gw.start()
        for name, fn in (("metadata", t_health_and_metadata), ("create", t_create),
                         ("read", t_read), ("summary_elements", t_summary_elements),
                         ("update_vread", t_update_vread), ("bad_requests", t_bad_requests),
                         ("invalid_primitives", t_invalid_primitives),
                         ("prefer", t_prefer), ("methods", t_methods), ("delete", t_delete),
                         ("history", t_history), ("concurrent_updates", t_concurrent_updates),
                         ("concurrent_conditional_create", t_concurrent_conditional_create),
                         ("keep_alive", t_keep_alive), ("headers", t_headers),
                         ("metrics", t_metrics),
                         ("redis_down", t_redis_down),
                         ("second_gateway", t_second_gateway_same_dir), ("restart", t_restart_keeps_data)):
            checks.run(name, fn)
        checks.run("body_limit", t_body_limit)
        checks.run("external_redis", t_external_redis)
        checks.run("corpus_roundtrip", t_corpus_roundtrip)
        checks.run("data_format", t_data_format)
    finally:
        if checks.failed:
            S.gw.print_logs()
        try:
            S.gw.close()
        except AssertionError as e:
            checks.failed.append("sanitizer")
            print("FAIL sanitizer: %s" % e)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
