#!/usr/bin/env python3
"""test_auth.py BINARY — authentication end to end (gateway/auth/auth.h) against the real
`tsunagu serve` with auth on and its embedded Redis:

  - the admin command: client create (argument errors too), list, revoke, rotate, key rotate;
  - POST /auth/token by HTTP Basic and by private_key_jwt (ES384 and RS384 assertions made
    with python `cryptography`), with every OAuth error (invalid_request, invalid_client,
    unsupported_grant_type, invalid_scope, replayed jti, assertion exp too far ahead, wrong
    aud, unregistered key, HS256 assertion);
  - the gate: what is public, 401 without a token, every token rejection (alg none, algorithm
    confusion, unknown kid, a foreign key with our kid, expired, not yet valid, wrong audience,
    oversized, malformed, revoked client), 403 on scope (read/search/create/update/delete,
    history, $everything, transactions entry by entry), /metrics for admins only;
  - key rotation (old tokens still accepted, both keys in the JWKS);
  - the audit trail: one record per request (refusals and token requests too, probes not),
    AuditEvent search and read for admins only, valid R4, filters, paging, and a request
    answered 503 when its record cannot be written;
  - the per-client rate limit (429 with Retry-After).

Tokens with chosen claims are forged with the gateway's own private key, read from its Redis
(tsg:auth:keys) — the test plays an attacker who could sign, to reach the checks behind the
signature. Exit status 0 when every check passed (77 when `cryptography` is missing)."""

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    from cryptography.hazmat.primitives import hashes, hmac, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:  # pragma: no cover
    print("SKIP: python3 cryptography is not installed")
    sys.exit(77)

FORM = "application/x-www-form-urlencoded"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class S:
    binary = None
    gw = None


# -- JOSE helpers ------------------------------------------------------------------------------

def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_int(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def ec_sign(key, data, hash_alg, size):
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_alg)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def jwt(header, claims, key=None, alg=None):
    """A compact JWS; key: an EC/RSA private key, bytes (HMAC secret) or None (no signature)."""
    h = b64u(json.dumps(header, separators=(",", ":")))
    p = b64u(json.dumps(claims, separators=(",", ":")))
    si = ("%s.%s" % (h, p)).encode()
    alg = alg or header.get("alg")
    if key is None:
        sig = b""
    elif isinstance(key, bytes):
        m = hmac.HMAC(key, hashes.SHA256())
        m.update(si)
        sig = m.finalize()
    elif isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(si, padding.PKCS1v15(), hashes.SHA384())
    elif alg == "ES256":
        sig = ec_sign(key, si, hashes.SHA256(), 32)
    else:
        sig = ec_sign(key, si, hashes.SHA384(), 48)
    return "%s.%s.%s" % (h, p, b64u(sig))


def ec_jwk(key, kid):
    n = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    return {"kty": "EC", "crv": "P-384" if size == 48 else "P-256", "kid": kid,
            "x": b64u_int(n.x, size), "y": b64u_int(n.y, size)}


def rsa_jwk(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "n": b64u_int(n.n), "e": b64u_int(n.e)}


# -- gateway helpers ---------------------------------------------------------------------------

def redis_cli(gw, *args):
    out = subprocess.run(["redis-cli", "-s", os.path.join(gw.data_dir, "redis.sock"), "--raw"]
                         + list(args), capture_output=True, timeout=10)
    return out.stdout.decode()


def gateway_key(gw):
    """(kid, private key object) of the gateway's current signing key, from its Redis."""
    kid = redis_cli(gw, "GET", "tsg:auth:key:current").strip()
    rec = json.loads(redis_cli(gw, "HGET", "tsg:auth:keys", kid))
    jwk = rec["jwk"]
    d = int.from_bytes(unb64u(jwk["d"]), "big")
    return kid, ec.derive_private_key(d, ec.SECP256R1())


def aud(gw):
    return "http://127.0.0.1:%d/fhir" % gw.port


def token_url(gw):
    return "http://127.0.0.1:%d/auth/token" % gw.port


def claims(gw, client_id, scope="system/*.cruds", **over):
    now = int(time.time())
    c = {"iss": aud(gw), "sub": client_id, "aud": aud(gw), "exp": now + 300, "iat": now,
         "jti": str(uuid.uuid4()), "scope": scope, "org": "Organization/test", "role": "member",
         "area": ""}
    c.update(over)
    return c


def post_token(gw, form, basic=None, headers=None):
    h = {"Content-Type": FORM}
    if basic:
        h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % basic).encode()).decode()
    h.update(headers or {})
    return gw.request("POST", "/auth/token", urllib.parse.urlencode(form), headers=h)


def expect(r, status, what=""):
    assert r.status == status, "%s: expected %d, got %r" % (what, status, r)


def expect_oauth(r, status, error, what=""):
    expect(r, status, what)
    assert r.json and r.json.get("error") == error, "%s: expected %s: %r" % (what, error, r)
    assert r.header("Cache-Control") == "no-store", "%s: Cache-Control %r" % (
        what, r.header("Cache-Control"))


def expect_401(r, what, invalid_token=True):
    expect(r, 401, what)
    assert r.json and r.json.get("resourceType") == "OperationOutcome", "%s: %r" % (what, r)
    wa = r.header("WWW-Authenticate") or ""
    assert wa.startswith("Bearer"), "%s: WWW-Authenticate %r" % (what, wa)
    if invalid_token:
        assert 'error="invalid_token"' in wa, "%s: WWW-Authenticate %r" % (what, wa)
    return r.json["issue"][0].get("diagnostics", "")


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


# -- tests -------------------------------------------------------------------------------------

def t_public():
    gw = S.gw
    for path in ("/fhir/metadata", "/healthz", "/readyz", "/.well-known/smart-configuration",
                 "/auth/jwks"):
        expect(gw.get(path), 200, path)
    conf = gw.get("/.well-known/smart-configuration").json
    assert conf["token_endpoint"] == token_url(gw), conf
    assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"], conf
    assert "client-confidential-asymmetric" in conf["capabilities"], conf
    keys = gw.get("/auth/jwks").json["keys"]
    assert keys and all("d" not in k for k in keys), keys
    assert keys[0]["alg"] == "ES256" and keys[0]["kty"] == "EC", keys
    # everything else needs a token
    for method, path in (("GET", "/fhir/Patient"), ("GET", "/fhir/Patient/x"),
                         ("POST", "/fhir/Patient"), ("GET", "/fhir/_history"),
                         ("GET", "/metrics"), ("POST", "/fhir"),
                         ("GET", "/fhir/Patient/x/$everything")):
        body = {"resourceType": "Patient"} if method == "POST" else None
        r = gw.request(method, path, body)
        expect_401(r, "%s %s" % (method, path), invalid_token=False)
        assert r.header("WWW-Authenticate") == 'Bearer realm="tsunagu"', r.header(
            "WWW-Authenticate")


def t_admin_cli():
    gw = S.gw
    cid, sec = gw.create_client(org="Organization/clinic-1", name="Clinic one",
                                scope="system/Patient.rs", area="north")
    rc, out, err = gw.admin("client", "list")
    assert rc == 0, err
    rows = {c["client_id"]: c for c in json.loads(out)}
    c = rows[cid]
    assert c["org"] == "Organization/clinic-1" and c["name"] == "Clinic one", c
    assert c["scope"] == "system/Patient.rs" and c["role"] == "member" and c["area"] == "north", c
    r = post_token(gw, {"grant_type": "client_credentials"}, (cid, sec))
    expect(r, 200, "token of a client with an area")
    body = json.loads(unb64u(r.json["access_token"].split(".")[1]))
    assert body["area"] == "north" and body["org"] == "Organization/clinic-1", body
    assert not c["revoked"] and not c["jwks"] and "secret" not in json.dumps(c), c
    # the secret is stored only as a slow hash
    stored = redis_cli(gw, "HGET", "tsg:auth:client:" + cid, "secret")
    assert stored.startswith("pbkdf2-sha256$") and sec not in stored, stored
    # argument errors: exit 2 for usage, 1 for bad values, with a message
    for args, want in ((["client", "create", "--org", "Organization/x"], 2),
                       (["client", "create", "--org", "Patient/x", "--name", "n", "--scope",
                         "system/*.rs"], 1),
                       (["client", "create", "--org", "Organization/x", "--name", "n", "--scope",
                         "patient/*.rs"], 1),
                       (["client", "create", "--org", "Organization/x", "--name", "n", "--scope",
                         "system/*.rs", "--role", "root"], 1),
                       (["client", "create", "--org", "Organization/x", "--name", "n", "--scope",
                         "system/*.rs", "--jwks", "/nonexistent"], 1),
                       (["client", "revoke", "nosuchclient"], 1),
                       (["client", "rotate", "nosuchclient"], 1),
                       (["client", "frobnicate"], 2), (["key"], 2)):
        rc, out, err = gw.admin(*args)
        assert rc == want and err.strip(), "admin %s: rc %d, %r" % (args, rc, err)
    # a private key in a JWKS is refused
    k = ec.generate_private_key(ec.SECP384R1())
    priv = ec_jwk(k, "p")
    priv["d"] = b64u_int(k.private_numbers().private_value, 48)
    path = os.path.join(gw.data_dir, "..", "priv.json")
    with open(path, "w") as f:
        json.dump({"keys": [priv]}, f)
    rc, out, err = gw.admin("client", "create", "--org", "Organization/x", "--name", "n",
                            "--scope", "system/*.rs", "--jwks", path)
    assert rc == 1 and "private" in err, (rc, err)

    # rotate: the old secret stops working, the new one works
    tok = gw.token(cid, sec)
    rc, out, err = gw.admin("client", "rotate", cid)
    assert rc == 0, err
    new = json.loads(out)
    assert new["client_id"] == cid and new["client_secret"] != sec, new
    expect_oauth(post_token(gw, {"grant_type": "client_credentials"}, (cid, sec)), 401,
                 "invalid_client", "old secret")
    gw.token(cid, new["client_secret"])
    # revoke: no new tokens, and tokens already issued are refused
    expect(gw.get("/fhir/Patient", headers=bearer(tok)), 200, "before revoke")
    rc, out, err = gw.admin("client", "revoke", cid)
    assert rc == 0 and json.loads(out)["revoked"] is True, (out, err)
    time.sleep(1.2)  # the gateway trusts a client's state for AUTH_REVOCATION_CACHE_MS
    expect_oauth(post_token(gw, {"grant_type": "client_credentials"},
                            (cid, new["client_secret"])), 401, "invalid_client", "revoked")
    msg = expect_401(gw.get("/fhir/Patient", headers=bearer(tok)), "revoked client's token")
    assert "revoked" in msg, msg
    rc, out, err = gw.admin("client", "list")
    assert [c for c in json.loads(out) if c["client_id"] == cid][0]["revoked"], out


def t_token_basic():
    gw = S.gw
    cid, sec = gw.create_client(scope="system/Patient.rs system/Observation.cruds")
    r = post_token(gw, {"grant_type": "client_credentials"}, (cid, sec))
    expect(r, 200, "token")
    t = r.json
    assert t["token_type"] == "Bearer" and t["expires_in"] == 300, t
    assert t["scope"] == "system/Patient.rs system/Observation.cruds", t
    hdr = json.loads(unb64u(t["access_token"].split(".")[0]))
    body = json.loads(unb64u(t["access_token"].split(".")[1]))
    assert hdr["alg"] == "ES256" and hdr["kid"] == gw.get("/auth/jwks").json["keys"][0]["kid"]
    for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "scope", "org"):
        assert claim in body, (claim, body)
    # every request carries the token: nothing in it twice, no empty or default claim (auth.h)
    assert "area" not in body and "role" not in body and "typ" not in hdr, (hdr, body)
    assert len(hdr["kid"]) == 16 and len(body["jti"]) == 16, (hdr, body)
    # an administrator's token says so; a member's (no role) is refused what needs one
    acid, asec = gw.create_client(scope="system/*.rs", role="admin")
    at = post_token(gw, {"grant_type": "client_credentials"}, (acid, asec)).json["access_token"]
    assert json.loads(unb64u(at.split(".")[1]))["role"] == "admin"
    expect(gw.get("/metrics", headers={"Authorization": "Bearer " + at}), 200, "admin /metrics")
    expect(gw.get("/metrics", headers={"Authorization": "Bearer " + t["access_token"]}), 403,
           "member /metrics")
    assert body["sub"] == cid and body["aud"] == aud(gw) and body["exp"] - body["iat"] == 300
    # a narrower scope
    r = post_token(gw, {"grant_type": "client_credentials", "scope": "system/Patient.r"},
                   (cid, sec))
    expect(r, 200, "narrower scope")
    assert r.json["scope"] == "system/Patient.r", r.json
    # errors
    expect_oauth(post_token(gw, {"grant_type": "client_credentials",
                                 "scope": "system/Patient.c"}, (cid, sec)),
                 400, "invalid_scope", "wider scope")
    expect_oauth(post_token(gw, {"grant_type": "client_credentials", "scope": "patient/*.rs"},
                            (cid, sec)), 400, "invalid_scope", "patient scope")
    expect_oauth(post_token(gw, {"grant_type": "client_credentials"}, (cid, "wrong")), 401,
                 "invalid_client", "wrong secret")
    r = post_token(gw, {"grant_type": "client_credentials"}, ("nobody", sec))
    expect_oauth(r, 401, "invalid_client", "unknown client")
    assert r.header("WWW-Authenticate", ).startswith("Basic"), r.header("WWW-Authenticate")
    expect_oauth(post_token(gw, {"grant_type": "client_credentials"}), 401, "invalid_client",
                 "no authentication")
    expect_oauth(post_token(gw, {"grant_type": "password"}, (cid, sec)), 400,
                 "unsupported_grant_type", "grant type")
    expect_oauth(post_token(gw, {}, (cid, sec)), 400, "invalid_request", "no grant_type")
    expect_oauth(post_token(gw, {"grant_type": "client_credentials", "client_secret": sec,
                                 "client_id": cid}), 400, "invalid_request", "secret in the form")
    r = gw.request("POST", "/auth/token", "grant_type=client_credentials&grant_type=x",
                   headers={"Content-Type": FORM})
    expect_oauth(r, 400, "invalid_request", "repeated field")
    r = gw.request("POST", "/auth/token", "grant_type=%zz", headers={"Content-Type": FORM})
    expect_oauth(r, 400, "invalid_request", "bad escape")
    r = gw.request("POST", "/auth/token", {"grant_type": "client_credentials"})
    expect_oauth(r, 400, "invalid_request", "JSON body")
    r = gw.request("POST", "/auth/token", "grant_type=client_credentials",
                   headers={"Content-Type": FORM, "Authorization": "Basic %%%"})
    expect_oauth(r, 401, "invalid_client", "bad Basic")
    expect(gw.get("/auth/token"), 405, "GET /auth/token")
    expect(gw.get("/auth/nothing"), 404, "/auth/nothing")


def t_token_private_key_jwt():
    gw = S.gw
    k384 = ec.generate_private_key(ec.SECP384R1())
    krsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = {"keys": [ec_jwk(k384, "ec-1"), rsa_jwk(krsa, "rsa-1")]}
    cid, _ = gw.create_client(scope="system/*.rs", jwks=jwks)

    def assertion(key, kid, alg, **over):
        now = int(time.time())
        c = {"iss": cid, "sub": cid, "aud": token_url(gw), "exp": now + 240,
             "jti": str(uuid.uuid4())}
        c.update(over)
        h = {"alg": alg, "typ": "JWT"}
        if kid:
            h["kid"] = kid
        return jwt(h, c, key)

    def ask(a, **form):
        f = {"grant_type": "client_credentials", "scope": "system/Patient.rs",
             "client_assertion_type": JWT_BEARER, "client_assertion": a}
        f.update(form)
        return post_token(gw, f)

    for key, kid, alg in ((k384, "ec-1", "ES384"), (krsa, "rsa-1", "RS384"), (k384, None, "ES384")):
        r = ask(assertion(key, kid, alg))
        expect(r, 200, "%s assertion" % alg)
        expect(gw.get("/fhir/Patient", headers=bearer(r.json["access_token"])), 200, "use")
    # replay: the same assertion (same jti) twice
    a = assertion(k384, "ec-1", "ES384")
    expect(ask(a), 200, "first use")
    expect_oauth(ask(a), 401, "invalid_client", "replayed jti")
    now = int(time.time())
    cases = (
        ("exp too far ahead", assertion(k384, "ec-1", "ES384", exp=now + 3600)),
        ("expired", assertion(k384, "ec-1", "ES384", exp=now - 120)),
        ("wrong aud", assertion(k384, "ec-1", "ES384", aud="http://elsewhere/auth/token")),
        ("no jti", jwt({"alg": "ES384", "kid": "ec-1"},
                       {"iss": cid, "sub": cid, "aud": token_url(gw), "exp": now + 60}, k384)),
        ("iss != sub", assertion(k384, "ec-1", "ES384", iss="someone")),
        ("unknown kid", assertion(k384, "ec-9", "ES384")),
        ("unregistered key", assertion(ec.generate_private_key(ec.SECP384R1()), "ec-1",
                                       "ES384")),
        ("ES384 signature under the RSA kid", assertion(k384, "rsa-1", "ES384")),
        ("RS384 signature under the EC kid", assertion(krsa, "ec-1", "RS384")),
        ("alg none", jwt({"alg": "none"}, {"iss": cid, "sub": cid, "aud": token_url(gw),
                                           "exp": now + 60, "jti": "n"})),
        ("HS256 keyed with the public JWK",
         jwt({"alg": "HS256", "kid": "ec-1"},
             {"iss": cid, "sub": cid, "aud": token_url(gw), "exp": now + 60, "jti": "h"},
             json.dumps(jwks["keys"][0]).encode())),
        ("ES256 (not allowed for assertions)",
         assertion(ec.generate_private_key(ec.SECP256R1()), None, "ES256")),
        ("malformed", "a.b"),
        ("oversized", "x" * 9000),
    )
    for what, a in cases:
        r = ask(a)
        assert r.status in (400, 401) and r.json and r.json.get("error") in (
            "invalid_client", "invalid_request"), "%s: %r" % (what, r)
    expect_oauth(ask(assertion(k384, "ec-1", "ES384"), client_assertion_type="urn:x"), 400,
                 "invalid_request", "assertion type")
    expect_oauth(ask(assertion(k384, "ec-1", "ES384"), scope="system/Patient.c"), 400,
                 "invalid_scope", "scope beyond the grant")
    # a client without a JWKS cannot use assertions
    cid2, _ = gw.create_client(scope="system/*.rs")
    a = jwt({"alg": "ES384"}, {"iss": cid2, "sub": cid2, "aud": token_url(gw),
                               "exp": int(time.time()) + 60, "jti": "x"}, k384)
    expect_oauth(ask(a), 401, "invalid_client", "no JWKS")


def t_gate_rejections():
    gw = S.gw
    cid, sec = gw.create_client(scope="system/*.cruds")
    good = gw.token(cid, sec)
    expect(gw.get("/fhir/Patient", headers=bearer(good)), 200, "good token")
    expect(gw.get("/fhir/Patient", headers={"Authorization": "bearer " + good}), 200,
           "scheme is case-insensitive")
    kid, key = gateway_key(gw)
    forged_ok = jwt({"alg": "ES256", "kid": kid, "typ": "JWT"}, claims(gw, cid), key)
    expect(gw.get("/fhir/Patient", headers=bearer(forged_ok)), 200, "control: our key signs")
    now = int(time.time())
    pub = gw.get("/auth/jwks").json["keys"][0]
    other = ec.generate_private_key(ec.SECP256R1())
    h_good, p_good, s_good = good.split(".")
    cases = (
        ("alg none", jwt({"alg": "none", "kid": kid}, claims(gw, cid)), "not allowed"),
        ("alg none with our signature", "%s.%s.%s" % (b64u('{"alg":"none","kid":"%s"}' % kid),
                                                      p_good, s_good), "not allowed"),
        ("HS256 keyed with our public JWK (algorithm confusion)",
         jwt({"alg": "HS256", "kid": kid}, claims(gw, cid), json.dumps(pub).encode()),
         "not allowed"),
        ("ES384 header (alg/key mismatch)",
         jwt({"alg": "ES384", "kid": kid}, claims(gw, cid), ec.generate_private_key(
             ec.SECP384R1())), "not allowed"),
        ("unknown kid", jwt({"alg": "ES256", "kid": "nope"}, claims(gw, cid), other),
         "kid"),
        ("no kid", jwt({"alg": "ES256"}, claims(gw, cid), key), "kid"),
        ("foreign key under our kid", jwt({"alg": "ES256", "kid": kid}, claims(gw, cid), other),
         "bad signature"),
        ("changed payload", "%s.%s.%s" % (h_good, b64u(json.dumps(claims(
            gw, cid, scope="system/*.cruds", role="admin"))), s_good), "bad signature"),
        ("expired", jwt({"alg": "ES256", "kid": kid}, claims(gw, cid, exp=now - 120,
                                                            iat=now - 420), key), "expired"),
        ("not yet valid (nbf)", jwt({"alg": "ES256", "kid": kid},
                                    claims(gw, cid, nbf=now + 600, exp=now + 900), key),
         "not yet valid"),
        ("issued in the future", jwt({"alg": "ES256", "kid": kid},
                                     claims(gw, cid, iat=now + 600, exp=now + 900), key),
         "not yet valid"),
        ("lifetime beyond the maximum", jwt({"alg": "ES256", "kid": kid},
                                            claims(gw, cid, exp=now + 86400), key), "too far"),
        ("wrong audience", jwt({"alg": "ES256", "kid": kid},
                               claims(gw, cid, aud="https://other.example/fhir"), key),
         "audience"),
        ("no exp", jwt({"alg": "ES256", "kid": kid},
                       {k: v for k, v in claims(gw, cid).items() if k != "exp"}, key), "exp"),
        ("unknown client", jwt({"alg": "ES256", "kid": kid}, claims(gw, "nosuchclient"), key),
         "revoked"),
        ("no scope claim", jwt({"alg": "ES256", "kid": kid},
                               {k: v for k, v in claims(gw, cid).items() if k != "scope"}, key),
         "lacks"),
        ("oversized", "a" * 9000, "oversized"),
        ("malformed: two parts", "%s.%s" % (h_good, p_good), "three parts"),
        ("malformed: four parts", good + ".x", "three parts"),
        ("malformed: not base64url", good.replace(".", ".*", 1), "base64url"),
        ("malformed: padding", good + "=", "base64url"),
        ("empty", "", "empty"),
    )
    for what, tok, want in cases:
        r = gw.get("/fhir/Patient/abc", headers=bearer(tok))
        msg = expect_401(r, what)
        assert want in msg, "%s: message %r lacks %r" % (what, msg, want)
    expect_401(gw.get("/fhir/Patient", headers={"Authorization": "Basic " + good}),
               "Basic on the API", invalid_token=False)
    # a 401 says nothing about the resource: same answer for an id that exists and one that
    # does not
    aid, asec = gw.create_client(scope="system/*.cruds", role="admin")
    r = gw.request("PUT", "/fhir/Patient/exists", {"resourceType": "Patient", "id": "exists"},
                   headers=bearer(gw.token(aid, asec)))
    assert r.status in (200, 201), r
    a = gw.get("/fhir/Patient/exists")
    b = gw.get("/fhir/Patient/doesnotexist")
    assert a.status == b.status == 401 and a.body == b.body, (a, b)


def t_scopes():
    gw = S.gw
    admin_id, admin_sec = gw.create_client(scope="system/*.cruds", role="admin")
    adm = gw.token(admin_id, admin_sec)
    r = gw.request("PUT", "/fhir/Patient/p1", {"resourceType": "Patient", "id": "p1"},
                   headers=bearer(adm))
    assert r.status in (200, 201), r
    # the clients' Organization/test cares for p1 with the patient's consent (the access rule
    # of test_access.py; this test is about scopes)
    r = gw.request("PUT", "/fhir/CareTeam/ct1", {
        "resourceType": "CareTeam", "id": "ct1", "status": "active",
        "subject": {"reference": "Patient/p1"},
        "participant": [{"member": {"reference": "Organization/test"}}]}, headers=bearer(adm))
    assert r.status in (200, 201), r
    r = gw.request("PUT", "/fhir/Consent/c1", {
        "resourceType": "Consent", "id": "c1", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"}, "policyRule": {"text": "network"},
        "provision": {"type": "permit"}}, headers=bearer(adm))
    assert r.status in (200, 201), r
    r = gw.request("POST", "/fhir/Observation",
                   {"resourceType": "Observation", "status": "final",
                    "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}},
                   headers=bearer(adm))
    expect(r, 201, "admin creates an Observation")
    cid, sec = gw.create_client(scope="system/Patient.rs system/Observation.c")
    t = bearer(gw.token(cid, sec))
    allowed = (("GET", "/fhir/Patient/p1", None), ("GET", "/fhir/Patient?_id=p1", None),
               ("POST", "/fhir/Patient/_search", "_id=p1"),
               ("GET", "/fhir/Patient/p1/_history", None),
               ("GET", "/fhir/Patient/p1/_history/1", None),
               ("GET", "/fhir/Patient/_history", None),
               ("POST", "/fhir/Observation", {"resourceType": "Observation", "status": "final",
                                              "code": {"text": "y"},
                                              "subject": {"reference": "Patient/p1"}}))
    for method, path, body in allowed:
        h = dict(t)
        if isinstance(body, str):
            h["Content-Type"] = FORM
        r = gw.request(method, path, body, headers=h)
        assert r.status < 300, "%s %s: %r" % (method, path, r)
    forbidden = (("GET", "/fhir/Observation?subject=Patient/p1", None),
                 ("GET", "/fhir/Encounter/e1", None),
                 ("POST", "/fhir/Patient", {"resourceType": "Patient"}),
                 ("PUT", "/fhir/Patient/p1", {"resourceType": "Patient", "id": "p1"}),
                 ("PATCH", "/fhir/Patient/p1", None),
                 ("DELETE", "/fhir/Patient/p1", None),
                 ("DELETE", "/fhir/Patient?_id=p1", None),
                 ("GET", "/fhir/_history", None),
                 ("GET", "/fhir/Patient/p1/$everything", None),
                 ("POST", "/fhir/Patient", {"resourceType": "Patient"}),
                 ("GET", "/metrics", None))
    for method, path, body in forbidden:
        r = gw.request(method, path, body, headers=t)
        assert r.status == 403, "%s %s: expected 403, got %r" % (method, path, r)
        assert r.json and r.json["issue"][0]["code"] == "forbidden", r
        assert 'error="insufficient_scope"' in (r.header("WWW-Authenticate") or ""), r
    # paths the gate does not map (future operations, malformed paths): deny by default
    for method, path in (("POST", "/fhir/Patient/$validate"), ("GET", "/fhir/Patient/p1/x/y/z"),
                         ("GET", "/fhir")):
        body = {"resourceType": "Patient"} if method == "POST" else None
        expect(gw.request(method, path, body, headers=t), 403, "unmapped %s %s" % (method, path))
        r = gw.request(method, path, body, headers=bearer(adm))
        assert r.status not in (401, 403), "unmapped %s %s for *.cruds: %r" % (method, path, r)
        # a conditional create reads what it finds: it needs r and s too
    h = dict(t)
    h["If-None-Exist"] = "code=y"
    r = gw.request("POST", "/fhir/Observation", {"resourceType": "Observation",
                                                 "status": "final", "code": {"text": "y"}},
                   headers=h)
    expect(r, 403, "conditional create without read")
    # transactions: every entry is checked
    ok = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "z"},
                      "subject": {"reference": "Patient/p1"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "Patient/p1"}}]}
    r = gw.request("POST", "/fhir", {**ok, "type": "batch"}, headers=t)
    expect(r, 200, "batch within the scopes")
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [
        ok["entry"][0],
        {"resource": {"resourceType": "Patient", "id": "p1"},
         "request": {"method": "PUT", "url": "Patient/p1"}}]}
    r = gw.request("POST", "/fhir", bad, headers=t)
    expect(r, 403, "transaction with an entry beyond the scopes")
    assert "Bundle.entry[1]" in json.dumps(r.json), r
    # admins see /metrics; $everything needs system/*.s
    expect(gw.get("/metrics", headers=bearer(adm)), 200, "metrics for admin")
    expect(gw.get("/fhir/Patient/p1/$everything", headers=bearer(adm)), 200, "$everything")
    # XML transactions are not inspected: only *.cruds may post them
    r = gw.request("POST", "/fhir", '<Bundle xmlns="http://hl7.org/fhir"><type value="batch"/>'
                   '</Bundle>', headers={**t, "Content-Type": "application/fhir+xml"})
    expect(r, 403, "XML batch")


def t_key_rotation():
    gw = S.gw
    cid, sec = gw.create_client(scope="system/*.rs")
    old_tok = gw.token(cid, sec)
    old_kid = json.loads(unb64u(old_tok.split(".")[0]))["kid"]
    rc, out, err = gw.admin("key", "rotate")
    assert rc == 0, err
    new_kid = json.loads(out)["kid"]
    assert new_kid != old_kid
    new_tok = gw.token(cid, sec)
    assert json.loads(unb64u(new_tok.split(".")[0]))["kid"] == new_kid
    kids = {k["kid"] for k in gw.get("/auth/jwks").json["keys"]}
    assert {old_kid, new_kid} <= kids, kids
    expect(gw.get("/fhir/Patient", headers=bearer(old_tok)), 200, "token of the retired key")
    expect(gw.get("/fhir/Patient", headers=bearer(new_tok)), 200, "token of the new key")


def t_rate_limit():
    with harness.Gateway(S.binary, auth=True,
                         env={"TSUNAGU_AUTH_RATE": "5", "TSUNAGU_AUTH_BURST": "5"}) as gw:
        cid, sec = gw.create_client(scope="system/*.rs")
        t = bearer(gw.token(cid, sec))
        statuses = [gw.get("/fhir/Patient", headers=t) for _ in range(12)]
        codes = [r.status for r in statuses]
        assert codes.count(200) >= 5 and 429 in codes, codes
        r = [x for x in statuses if x.status == 429][0]
        assert r.json["issue"][0]["code"] == "throttled", r
        ra = int(r.header("Retry-After"))
        assert 1 <= ra <= 2, ra
        # another client has its own bucket
        cid2, sec2 = gw.create_client(scope="system/*.rs")
        expect(gw.get("/fhir/Patient", headers=bearer(gw.token(cid2, sec2))), 200, "other")
        time.sleep(ra + 0.2)
        expect(gw.get("/fhir/Patient", headers=t), 200, "after Retry-After")
        # the bucket is not written to the AOF (no fsync per request)
        aof = open(os.path.join(gw.data_dir, "appendonlydir",
                                [f for f in os.listdir(os.path.join(gw.data_dir, "appendonlydir"))
                                 if ".incr." in f][0]), "rb").read()
        # (an idle bucket's expiry may reach it as a DEL; its writes must not)
        import re
        assert not re.search(rb"(HSET|PEXPIRE)\r\n\$\d+\r\ntsg:auth:rl:", aof), \
            "rate bucket writes reached the AOF"


def t_audit():
    gw = S.gw
    adm_id, adm_sec = gw.create_client(org="Organization/region-office", scope="system/*.cruds",
                                       role="admin")
    mem_id, mem_sec = gw.create_client(org="Organization/clinic-9", scope="system/Patient.rs")
    adm = bearer(gw.token(adm_id, adm_sec))
    mem = bearer(gw.token(mem_id, mem_sec))
    before = len(gw.audit_records())
    # a known sequence of requests: each must leave exactly one record
    seq = [("GET", "/fhir/Patient/p-audit", mem, 404),
           ("GET", "/fhir/Patient?name=audit", mem, 200),
           ("POST", "/fhir/Patient", mem, 403),
           ("GET", "/fhir/Patient/p-audit", {}, 401),
           ("GET", "/fhir/Patient/p-audit", bearer("not.a.token"), 401)]
    for method, path, h, want in seq:
        body = {"resourceType": "Patient"} if method == "POST" else None
        expect(gw.request(method, path, body, headers=h), want, "%s %s" % (method, path))
    r = gw.request("PUT", "/fhir/Patient/p-audit", {"resourceType": "Patient", "id": "p-audit"},
                   headers=adm)
    assert r.status in (200, 201), r
    expect_oauth(post_token(gw, {"grant_type": "client_credentials"}, (mem_id, "wrong")), 401,
                 "invalid_client", "bad secret")
    # probes and public documents are not recorded
    for path in ("/healthz", "/readyz", "/fhir/metadata", "/auth/jwks",
                 "/.well-known/smart-configuration"):
        gw.get(path)
    recs = gw.audit_records(before + len(seq) + 2)
    assert len(recs) - before == len(seq) + 2, (before, len(recs), recs[before:])
    # each says what was asked and answered, with the gateway's clock (in the stream by
    # arrival: a write's record arrives with the write, the others' from the journal)
    got = [(r["m"], r["p"], r["s"]) for r in sorted(recs[before:], key=lambda r: r["t"])]
    got = got[:len(seq)]
    assert got == [(m, p.split("?")[0], st) for m, p, _, st in seq], got
    assert all(abs(r["t"] / 1e6 - time.time()) < 120 for r in recs[before:]), recs[before:]
    # … and the client's address as the gateway saw it
    assert all(r["a"] == "127.0.0.1" for r in recs[before:]), [r["a"] for r in recs[before:]]

    # members may not read the trail
    r = gw.get("/fhir/AuditEvent", headers=mem)
    expect(r, 403, "member reads AuditEvent")
    expect_401(gw.get("/fhir/AuditEvent"), "AuditEvent without a token", invalid_token=False)
    # admins search it, newest first
    r = gw.get("/fhir/AuditEvent?_count=30", headers=adm)
    expect(r, 200, "admin searches AuditEvent")
    evs = [e["resource"] for e in r.json["entry"]]
    # the newest records are the two refused reads of the trail just above
    descs = [e["outcomeDesc"] for e in evs]
    assert descs[0].startswith("GET /fhir/AuditEvent -> HTTP 401"), descs
    assert descs[1].startswith("GET /fhir/AuditEvent -> HTTP 403"), descs
    tok = [e for e in evs if e["type"]["code"] == "110114"]
    assert tok and tok[0]["outcome"] == "4" and tok[0]["agent"][0]["who"]["identifier"][
        "value"] == mem_id, tok
    # (a write's record names the version it wrote)
    put = [e for e in evs if e.get("subtype", [{}])[0].get("code") in ("update", "create")
           and e.get("entity", [{}])[0].get("what", {}).get("reference", "").startswith(
               "Patient/p-audit/_history/")]
    assert put and put[0]["action"] in ("U", "C") and put[0]["outcome"] == "0", evs
    assert {"reference": "Organization/region-office"} in [a.get("who") for a in put[0]["agent"]]
    refused = [e for e in evs if e["outcome"] == "4" and "not.a.token" not in json.dumps(e)
               and "401" in e["outcomeDesc"]]
    assert len(refused) >= 2, descs
    search = [e for e in evs if e.get("subtype", [{}])[0].get("code") == "search-type"
              and "name=audit" in e["outcomeDesc"]]
    assert search and base64.b64decode(search[0]["entity"][0]["query"]) == b"name=audit", search
    # every AuditEvent is valid R4 (the model-checked reader of `tsunagu convert`)
    for ev in evs:
        p = subprocess.run([S.binary, "convert", "--to", "xml", "-"], input=json.dumps(ev).encode(),
                           capture_output=True, timeout=30)
        assert p.returncode == 0, (ev, p.stderr.decode())
    # filters, read by id, paging
    r = gw.get("/fhir/AuditEvent?agent=%s" % mem_id, headers=adm)
    assert r.status == 200 and r.json["entry"] and all(
        e["resource"]["agent"][0]["who"]["identifier"]["value"] == mem_id
        for e in r.json["entry"]), r
    r = gw.get("/fhir/AuditEvent?entity=Patient/p-audit&outcome=4", headers=adm)
    assert r.status == 200 and len(r.json["entry"]) >= 3, r
    r = gw.get("/fhir/AuditEvent?date=ge2000-01-01&date=lt2001-01-01", headers=adm)
    assert r.status == 200 and r.json["entry"] == [], r
    eid = evs[1]["id"]
    r = gw.get("/fhir/AuditEvent/" + eid, headers=adm)
    assert r.status == 200 and r.json["id"] == eid, r
    expect(gw.get("/fhir/AuditEvent/1-0", headers=adm), 404, "unknown AuditEvent")
    r = gw.get("/fhir/AuditEvent?_count=2", headers=adm)
    nxt = [l["url"] for l in r.json.get("link", []) if l["relation"] == "next"][0]
    r2 = gw.get(nxt[nxt.index("/fhir/"):], headers=adm)
    assert r2.status == 200, r2
    ids1 = [e["resource"]["id"] for e in r.json["entry"]]
    ids2 = [e["resource"]["id"] for e in r2.json["entry"]]
    assert len(ids1) == 2 and not set(ids1) & set(ids2), (ids1, ids2)
    for bad in ("date=yesterday", "foo=1", "_count=0", "agent=a&agent=b"):
        r = gw.get("/fhir/AuditEvent?" + bad, headers=adm)
        assert r.status == 400 and r.json["resourceType"] == "OperationOutcome", (bad, r)
    expect(gw.request("POST", "/fhir/AuditEvent", {"resourceType": "AuditEvent"}, headers=adm),
           405, "AuditEvent cannot be written through the API")

    # a write and its record are one step: the record is in the write's MULTI … EXEC block
    # of the AOF and names the new resource's id and version; a read's record says what
    # the read answered; none of them is recorded twice
    before = len(gw.audit_records())
    r = gw.request("POST", "/fhir/Patient", {"resourceType": "Patient"}, headers=adm)
    assert r.status == 201, r
    nid = r.header("Location").split("/Patient/")[1].split("/")[0]
    r = gw.request("PUT", "/fhir/Patient/" + nid, {"resourceType": "Patient", "id": nid,
                                                  "active": True}, headers=adm)
    assert r.status == 200, r
    expect(gw.request("DELETE", "/fhir/Patient/" + nid, headers=adm), 200, "delete")
    expect(gw.get("/fhir/Patient/" + nid, headers=adm), 410, "read of the deleted")
    assert len(gw.audit_records(before + 4)) - before == 4
    r = gw.get("/fhir/AuditEvent?entity=Patient/" + nid, headers=adm)
    assert r.status == 200, r
    got = [(e["resource"]["subtype"][0]["code"], e["resource"]["outcome"],
            e["resource"]["entity"][0]["what"]["reference"],
            e["resource"]["outcomeDesc"].split(":")[0]) for e in r.json["entry"]]
    want = [("read", "4", "Patient/" + nid, "GET /fhir/Patient/%s -> HTTP 410" % nid),
            ("delete", "0", "Patient/%s/_history/3" % nid, "DELETE /fhir/Patient/%s -> HTTP 200" % nid),
            ("update", "0", "Patient/%s/_history/2" % nid, "PUT /fhir/Patient/%s -> HTTP 200" % nid),
            ("create", "0", "Patient/%s/_history/1" % nid, "POST /fhir/Patient -> HTTP 201")]
    assert got == want, got
    # a transaction's record is committed with it too; a batch is recorded once, after it
    before = len(gw.audit_records())
    for kind in ("transaction", "batch"):
        tx = {"resourceType": "Bundle", "type": kind, "entry": [
            {"resource": {"resourceType": "Patient", "identifier": [
                {"system": "urn:audit-tx", "value": kind}]},
             "request": {"method": "POST", "url": "Patient"}}]}
        expect(gw.request("POST", "/fhir", tx, headers=adm), 200, kind)
    assert len(gw.audit_records(before + 2)) - before == 2
    aofdir = os.path.join(gw.data_dir, "appendonlydir")
    aof = b"".join(open(os.path.join(aofdir, f), "rb").read() for f in sorted(os.listdir(aofdir))
                   if ".incr." in f)
    blocks = [b.split(b"$4\r\nEXEC\r\n")[0] for b in aof.split(b"$5\r\nMULTI\r\n")[1:]]
    for v in (1, 2, 3):
        mine = [b for b in blocks if b"\r\ntsg:r:Patient/" + nid.encode() + b"\r\n" in b
                and b"\r\nv\r\n$1\r\n%d\r\n" % v in b]
        assert len(mine) == 1 and b"\r\ntsg:audit\r\n" in mine[0], (v, mine)
    mine = [b for b in blocks if b"urn:audit-tx" in b]
    assert len(mine) == 2, mine
    # (the record is a frame: its texts are u16-length-prefixed)
    assert sum(b"\r\ntsg:audit\r\n" in b and b"\x0b\x00transaction" in b for b in mine) == 1
    assert not any(b"\x05\x00batch" in b for b in mine), mine

    # Redis refusing the records (tsg:audit is not a stream): reads are answered, their
    # records wait in the journal; the audit search, which needs them in Redis, and a write,
    # whose record is in its own EXEC, fail with 503; once Redis takes records again, every
    # waiting one arrives, exactly once
    before = len(gw.audit_records())
    redis_cli(gw, "RENAME", "tsg:audit", "tsg:audit-saved")
    redis_cli(gw, "SET", "tsg:audit", "not a stream")
    try:
        for i in range(5):
            expect(gw.get("/fhir/Patient/p-audit?_n=%d" % i, headers=adm), 200, "read, journal")
        r = gw.get("/fhir/AuditEvent", headers=adm)
        assert r.status == 503 and "audit" in json.dumps(r.json), r
        r = gw.request("POST", "/fhir/Patient", {"resourceType": "Patient"}, headers=adm)
        assert r.status == 503 and "audit" in json.dumps(r.json), r
        assert "shipping records to Redis" in gw.log(), gw.log_tail()
    finally:
        # one step (RENAME replaces the blocker): between a DEL and a RENAME the drain could
        # ship into a new tsg:audit that the RENAME then overwrote
        redis_cli(gw, "RENAME", "tsg:audit-saved", "tsg:audit")
    recs = gw.audit_records(before + 7)
    mine = [r for r in recs[before:] if r["p"] == "/fhir/Patient/p-audit" and r["s"] == 200]
    assert sorted(r["q"] for r in mine) == ["_n=%d" % i for i in range(5)], recs[before:]
    assert [r["s"] for r in recs[before:] if r["p"] == "/fhir/AuditEvent"] == [503], recs
    assert [r["s"] for r in recs[before:] if r["m"] == "POST"] == [503], recs
    expect(gw.get("/fhir/AuditEvent?_count=1", headers=adm), 200, "audit search works again")


def t_audit_journal_limit():
    # the journal holds at most audit_journal_max_mb of records Redis has not taken: past
    # it, requests fail with 503 (their records cannot be kept); once Redis takes records
    # again, requests are answered and every answered one has its record
    with harness.Gateway(S.binary, auth=True, env={"TSUNAGU_AUDIT_JOURNAL_MAX_MB": "1",
                                                   "TSUNAGU_AUTH_RATE": "0"}) as gw:
        cid, sec = gw.create_client(org="Organization/o", scope="system/*.cruds", role="admin")
        h = bearer(gw.token(cid, sec))
        gw.audit_records()
        redis_cli(gw, "SET", "tsg:audit", "not a stream")
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        answered, refused = 0, None
        pad = "x" * 2000  # a long query: ~2.1 KB per record, the limit in ~500 requests
        for i in range(3000):
            conn.request("GET", "/fhir/Patient/lim?_n=%d&pad=%s" % (i, pad), headers=h)
            r = conn.getresponse()
            body = r.read()
            if r.status == 503:
                refused = json.loads(body)
                break
            assert r.status in (400, 404), (r.status, body[:200])
            answered += 1
        conn.close()
        assert refused and "audit_journal_max_mb" in json.dumps(refused), (answered, refused)
        assert 300 < answered < 1000, answered
        redis_cli(gw, "DEL", "tsg:audit")
        deadline = time.time() + 10
        while gw.get("/fhir/Patient/lim?_n=after", headers=h).status == 503:
            assert time.time() < deadline, "still refused after Redis took records again"
            time.sleep(0.1)
        # (the stream was replaced: only these requests' records are in it now)
        recs = gw.audit_records(answered + 1)
        lim = [r for r in recs if r["p"] == "/fhir/Patient/lim" and r["s"] != 503]
        ns = [r["q"].split("&")[0] for r in lim]
        assert ns[:answered] == ["_n=%d" % i for i in range(answered)], ns[:5]
        # operators see it in /metrics
        m = gw.get("/metrics", headers=h).body.decode()
        vals = dict(l.split(" ", 1) for l in m.splitlines() if l.startswith("tsunagu_audit_"))
        assert int(vals["tsunagu_audit_refused_total"]) >= 1, vals
        assert int(vals["tsunagu_audit_ship_failures_total"]) >= 1, vals
        assert int(vals["tsunagu_audit_records_total"]) >= answered, vals


def t_audit_crash():
    # kill -9 while records wait in the journal (Redis refuses them): after the restart the
    # new gateway drains the dead one's journal — every answered request has its record,
    # exactly once, also those answered just before the kill (shipping worked then)
    gw = harness.Gateway(S.binary, auth=True, keep_dir=True)
    try:
        gw.start()
        cid, sec = gw.create_client(org="Organization/o", scope="system/*.cruds", role="admin")
        h = bearer(gw.token(cid, sec))
        for i in range(50):
            expect(gw.get("/fhir/Patient/crash-a%d" % i, headers=h), 404, "read")
        # the a-records reach Redis (the shipper's interval) before it starts refusing them
        deadline = time.time() + 10
        while len([r for r in gw.audit_records() if r["p"].startswith("/fhir/Patient/crash-a")]) \
                < 50:
            assert time.time() < deadline, "the a-records were not shipped"
            time.sleep(0.05)
        redis_cli(gw, "RENAME", "tsg:audit", "tsg:audit-saved")
        redis_cli(gw, "SET", "tsg:audit", "not a stream")
        for i in range(50):
            expect(gw.get("/fhir/Patient/crash-b%d" % i, headers=h), 404, "read, journal")
        jdir = os.path.join(gw.data_dir, "audit-journal")
        assert any(f.endswith(".journal") for f in os.listdir(jdir)), os.listdir(jdir)
        gw.kill9()
        gw.restart()
        time.sleep(0.5)
        # one step (RENAME replaces the blocker): between a DEL and a RENAME the drain could
        # ship into a new tsg:audit that the RENAME then overwrote
        redis_cli(gw, "RENAME", "tsg:audit-saved", "tsg:audit")
        want = ["/fhir/Patient/crash-a%d" % i for i in range(50)] + \
               ["/fhir/Patient/crash-b%d" % i for i in range(50)]
        deadline = time.time() + 30
        while True:
            got = [r["p"] for r in gw.audit_records() if r["p"].startswith("/fhir/Patient/crash-")]
            if sorted(got) == sorted(want) or time.time() > deadline:
                break
            time.sleep(0.3)
        assert sorted(got) == sorted(want), (len(got), len(set(got)), len(want))
        assert "shipped" in gw.log(), gw.log_tail()
        # the dead gateway's journal is gone once shipped; only the live one's remains
        deadline = time.time() + 15
        while len([f for f in os.listdir(jdir) if f.endswith(".journal")]) > 1:
            assert time.time() < deadline, os.listdir(jdir)
            time.sleep(0.2)
    finally:
        gw.close()
        shutil.rmtree(gw.data_dir, ignore_errors=True)


def t_audit_fsync_always():
    # audit_fsync always: every answer waits for its record's fdatasync, which concurrent
    # requests share (group commit); after a kill -9 every answered request has its record
    gw = harness.Gateway(S.binary, auth=True, keep_dir=True,
                         env={"TSUNAGU_AUDIT_FSYNC": "always", "TSUNAGU_AUTH_RATE": "0"})
    try:
        gw.start()
        cid, sec = gw.create_client(org="Organization/o", scope="system/*.cruds", role="admin")
        h = bearer(gw.token(cid, sec))
        answered = []

        def worker(t):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
            for i in range(60):
                path = "/fhir/Patient/always-%d-%d" % (t, i)
                conn.request("GET", path, headers=h)
                r = conn.getresponse()
                r.read()
                assert r.status == 404, r.status
                answered.append(path)
            conn.close()

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(answered) == 480, len(answered)
        m = gw.get("/metrics", headers=h).body.decode()
        vals = dict(l.split(" ", 1) for l in m.splitlines() if l.startswith("tsunagu_audit_"))
        syncs, recs = int(vals["tsunagu_audit_fsyncs_total"]), int(vals["tsunagu_audit_records_total"])
        assert 0 < syncs <= recs and recs >= 480, vals
        print("  480 reads from 8 connections: %d records, %d fdatasyncs" % (recs, syncs))
        gw.kill9()
        gw.restart()
        deadline = time.time() + 30
        while True:
            got = [r["p"] for r in gw.audit_records() if r["p"].startswith("/fhir/Patient/always-")]
            if sorted(got) == sorted(answered) or time.time() > deadline:
                break
            time.sleep(0.3)
        assert sorted(got) == sorted(answered), (len(got), len(set(got)), len(answered))
    finally:
        gw.close()
        shutil.rmtree(gw.data_dir, ignore_errors=True)


def t_audit_retention():
    # records past the retention are trimmed after the first recorded request (then at most
    # once a minute), whichever way records are written
    with harness.Gateway(S.binary, auth=True, env={"TSUNAGU_AUDIT_RETENTION_DAYS": "1"}) as gw:
        old = ["XADD", "tsg:audit", "1-0", "i", "read", "s", "200"]
        for i in range(1, 301):
            old[2] = "%d-0" % i
            redis_cli(gw, *old)
        assert int(redis_cli(gw, "XLEN", "tsg:audit").strip()) == 300
        expect_401(gw.get("/fhir/Patient/x"), "no token", invalid_token=False)
        n = int(redis_cli(gw, "XLEN", "tsg:audit").strip())
        assert n < 300, n  # XTRIM MINID ~ drops whole nodes (100 entries each)
        gw.audit_records(1)  # (the request's own record arrives from the journal)
        old_left = [int(e[0].split(b"-")[0]) for e in gw.redis("XRANGE", "tsg:audit", "-", "+")
                    if int(e[0].split(b"-")[0]) <= 300]
        assert not old_left or old_left[0] > 100, old_left[:3]


def t_admin_without_serve():
    # the admin command on a data dir no gateway runs on starts the embedded Redis itself;
    # the gateway started afterwards knows the client
    gw = harness.Gateway(S.binary, auth=True)
    try:
        os.makedirs(gw.data_dir, exist_ok=True)
        cid, sec = gw.create_client(scope="system/*.rs")
        rc, out, err = gw.admin("client", "list")
        assert rc == 0 and cid in out, (rc, err)
        gw.start()
        expect(gw.get("/fhir/Patient", headers=bearer(gw.token(cid, sec))), 200, "token")
    finally:
        gw.close()


def t_login_failures():
    # failed client authentications are counted per address and per client id; past 20 in
    # five minutes the token endpoint answers 429 with Retry-After without checking (each check
    # costs a PBKDF2): its own gateway, since the address 127.0.0.1 stays locked
    with harness.Gateway(S.binary, auth=True) as gw:
        cid, sec = gw.create_client(scope="system/*.rs")
        other, osec = gw.create_client(scope="system/*.rs")
        for i in range(20):
            r = post_token(gw, {"grant_type": "client_credentials"}, basic=(cid, "wrong%d" % i))
            expect_oauth(r, 401, "invalid_client", "wrong secret %d" % i)
        r = post_token(gw, {"grant_type": "client_credentials"}, basic=(cid, sec))
        expect(r, 429, "the right secret after 20 failures")
        assert int(r.header("Retry-After")) > 0, r
        r = post_token(gw, {"grant_type": "client_credentials"}, basic=(other, osec))
        expect(r, 429, "another client from the same address")
        # the client id stays locked from another address: clear the address' count
        redis_cli(gw, "DEL", "tsg:auth:fail:a:127.0.0.1")
        expect(post_token(gw, {"grant_type": "client_credentials"}, basic=(cid, sec)), 429,
               "the locked client id")
        r = post_token(gw, {"grant_type": "client_credentials"}, basic=(other, osec))
        expect(r, 200, "another client once the address is clear")
        audit = gw.create_client(scope="system/*.rs", role="admin")
        redis_cli(gw, "DEL", "tsg:auth:fail:a:127.0.0.1")
        adm = bearer(gw.token(*audit))
        b = gw.get("/fhir/AuditEvent?agent=%s&_count=100" % cid, headers=adm).json
        outcomes = [e["resource"]["outcome"] for e in b["entry"]]
        # 20 failures and the client-id refusal name the client (the address refusal comes
        # before the credentials are read: its record has the address only)
        assert len(outcomes) == 21 and all(o == "4" for o in outcomes), outcomes


def t_auth_off():
    with harness.Gateway(S.binary) as gw:
        expect(gw.get("/fhir/Patient"), 200, "auth off: no token needed")
        expect(gw.get("/auth/jwks"), 404, "auth off: no token endpoint")
        assert "authentication is OFF" in gw.log(), gw.log_tail()


def main():
    if len(sys.argv) != 2:
        print("usage: test_auth.py PATH/TO/tsunagu", file=sys.stderr)
        return 2
    S.binary = sys.argv[1]
    checks = harness.Checks()
    S.gw = harness.Gateway(S.binary, auth=True, env={"TSUNAGU_AUTH_RATE": "100000"})
    try:
        S.gw.start()
        for name, fn in (("public", t_public), ("admin_cli", t_admin_cli),
                         ("token_basic", t_token_basic),
                         ("token_private_key_jwt", t_token_private_key_jwt),
                         ("gate_rejections", t_gate_rejections), ("scopes", t_scopes),
                         ("key_rotation", t_key_rotation), ("audit", t_audit)):
            checks.run(name, fn)
        checks.run("rate_limit", t_rate_limit)
        checks.run("login_failures", t_login_failures)
        checks.run("audit_retention", t_audit_retention)
        checks.run("audit_journal_limit", t_audit_journal_limit)
        checks.run("audit_crash", t_audit_crash)
        checks.run("audit_fsync_always", t_audit_fsync_always)
        checks.run("admin_without_serve", t_admin_without_serve)
        checks.run("auth_off", t_auth_off)
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
