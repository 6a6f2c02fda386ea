#!/usr/bin/env python3
"""HTTPS in the gateway and the transport settings (issue 5, item 5; gateway/rest/http.h
"HTTPS", gateway/net/outbound.h), against the real `tsunagu serve` with its embedded Redis.

Certificates are made in a temporary folder with the `openssl` command (skipped, 77, without
it); the client trusts exactly that certificate (Python's ssl, hostname checked).

- A certificate file with its chain (leaf, intermediate) is served whole.
- With TSUNAGU_TLS_CERT and TSUNAGU_TLS_KEY: /fhir/metadata, a 404 and a create answer over
  HTTPS, each with `Strict-Transport-Security: max-age=31536000`; Location says https even when
  the client sends X-Forwarded-Proto: http; TLS 1.2 and 1.3 work, TLS 1.1 and a CBC cipher
  suite do not; plain HTTP to the port gets no HTTP answer.
- Bad TLS settings (one of the two, a missing file, a key of another certificate, files swapped,
  an encrypted key, an expired certificate) stop serve with exit 1 and a message naming the
  setting, before Redis starts (the data folder is never created).
- The outbound settings: a valid policy starts, a bad one stops serve with exit 1.
"""
import datetime
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HSTS = "max-age=31536000"


class S:
    binary = None
    dir = None


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, "openssl %s: %s" % (" ".join(args), r.stderr.decode())


def path(name):
    return os.path.join(S.dir, name)


def make_certs():
    """cert.pem/key.pem: RSA 2048, CN and SAN localhost + 127.0.0.1; other-key.pem: an EC key
    of no certificate; enc-key.pem: key.pem encrypted; expired.pem/expired-key.pem when the
    python cryptography package is there (openssl req cannot back-date)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("key.pem"),
            "-out", path("cert.pem"), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", path("other-key.pem"))
    openssl("pkey", "-in", path("key.pem"), "-aes256", "-passout", "pass:secret",
            "-out", path("enc-key.pem"))
    # a chain: root CA -> intermediate -> leaf; chain.pem = leaf + intermediate
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca_ext = path("ca.ext")
    with open(ca_ext, "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
    leaf_ext = path("leaf.ext")
    with open(leaf_ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-x509", *ec, "-keyout", path("root-key.pem"), "-out", path("root.pem"),
            "-days", "2", "-subj", "/CN=tsunagu test root", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", *ec, "-keyout", path("int-key.pem"), "-out", path("int.csr"),
            "-subj", "/CN=tsunagu test intermediate")
    openssl("x509", "-req", "-in", path("int.csr"), "-CA", path("root.pem"), "-CAkey",
            path("root-key.pem"), "-CAcreateserial", "-days", "2", "-out", path("int.pem"),
            "-extfile", ca_ext)
    openssl("req", *ec, "-keyout", path("leaf-key.pem"), "-out", path("leaf.csr"),
            "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", path("leaf.csr"), "-CA", path("int.pem"), "-CAkey",
            path("int-key.pem"), "-CAcreateserial", "-days", "2", "-out", path("leaf.pem"),
            "-extfile", leaf_ext)
    with open(path("chain.pem"), "w") as out:
        for name in ("leaf.pem", "int.pem"):
            with open(path(name)) as f:
                out.write(f.read())
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(now - datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    with open(path("expired.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path("expired-key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def client_context(min_version=None, max_version=None, ciphers=None, ca="cert.pem"):
    ctx = ssl.create_default_context(cafile=path(ca))
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point of the test
        warnings.simplefilter("ignore", DeprecationWarning)
        if min_version:
            ctx.minimum_version = min_version
        if max_version:
            ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def tls_env(cert="cert.pem", key="key.pem"):
    env = {}
    if cert:
        env["TSUNAGU_TLS_CERT"] = path(cert)
    if key:
        env["TSUNAGU_TLS_KEY"] = path(key)
    return env


def expect(r, status, what):
    assert r.status == status, "%s: expected %d, got %r" % (what, status, r)
    assert r.header("Strict-Transport-Security") == HSTS, \
        "%s: HSTS header is %r" % (what, r.header("Strict-Transport-Security"))


def handshake(port, ctx):
    """The TLS version negotiated with ctx, or the ssl/OS error raised."""
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        version = conn.sock.version()
        conn.close()
        assert r.status == 200, r.status
        return version
    except (ssl.SSLError, OSError) as e:
        return e


def t_https():
    env = tls_env()
    # a valid outbound policy starts too (the settings the delivery tests will use)
    env.update({"TSUNAGU_OUTBOUND_ALLOW": "127.0.0.1,*.example.jp",
                "TSUNAGU_OUTBOUND_ALLOW_PRIVATE": "on", "TSUNAGU_OUTBOUND_ALLOW_HTTP": "on"})
    with harness.Gateway(S.binary, env=env, tls=client_context()) as gw:
        assert gw.base.startswith("https://"), gw.base
        assert "with HTTPS only" in gw.log(), gw.log_tail()
        r = gw.get("/fhir/metadata")
        expect(r, 200, "GET /fhir/metadata over HTTPS")
        assert r.json["resourceType"] == "CapabilityStatement", r
        expect(gw.get("/fhir/Nothing/here"), 404, "a 404 (an answer of the layer)")
        expect(gw.get("/healthz"), 200, "GET /healthz")
        r = gw.request("POST", "/fhir/Patient", {"resourceType": "Patient"},
                       headers={"X-Forwarded-Proto": "http"})
        expect(r, 201, "POST /fhir/Patient")
        loc = r.header("Location")
        assert loc and loc.startswith("https://127.0.0.1:%d/fhir/Patient/" % gw.port), loc

        # plain HTTP to the TLS port: no HTTP answer
        try:
            r = harness.request(gw.port, "GET", "/fhir/metadata", timeout=10)
        except (OSError, http.client.HTTPException):
            pass
        else:
            raise AssertionError("plain HTTP to the HTTPS port answered %r" % r)

        # versions and cipher suites
        v = handshake(gw.port, client_context(ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3))
        assert v == "TLSv1.3", "TLS 1.3: %r" % v
        v = handshake(gw.port, client_context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2))
        assert v == "TLSv1.2", "TLS 1.2: %r" % v
        # the client offers TLS 1.1 (security level 0 lets OpenSSL 3 do that); the server
        # must refuse
        old = client_context(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")
        v = handshake(gw.port, old)
        assert isinstance(v, Exception), "TLS 1.1 was accepted"
        cbc = client_context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2,
                             "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA")
        v = handshake(gw.port, cbc)
        assert isinstance(v, Exception), "a CBC cipher suite was accepted (%r)" % v
        # a client that does not trust the certificate fails (it is not a public one)
        v = handshake(gw.port, ssl.create_default_context())
        assert isinstance(v, ssl.SSLCertVerificationError), "untrusted certificate: %r" % v


def t_chain():
    """A certificate file with the chain after the server's certificate (as Let's Encrypt's
    fullchain.pem): the client trusts only the root, so the intermediate must be sent."""
    with harness.Gateway(S.binary, env=tls_env("chain.pem", "leaf-key.pem"),
                         tls=client_context(ca="root.pem")) as gw:
        expect(gw.get("/fhir/metadata"), 200, "GET /fhir/metadata with a chain")
    refused(tls_env("leaf.pem", "int-key.pem"), ["is not the key of the certificate"],
            "the intermediate's key for the leaf")


def refused(env, words, what):
    g = harness.Gateway(S.binary, env=env)
    try:
        try:
            g.start(timeout=30)
        except RuntimeError as e:
            text = str(e)
            assert "exited with 1" in text, "%s: %s" % (what, text)
            for w in words:
                assert w in text, "%s: %r not in the message:\n%s" % (what, w, text)
            assert not os.path.exists(g.data_dir), \
                "%s: serve stopped only after starting Redis" % what
        else:
            raise AssertionError("%s: serve started" % what)
    finally:
        g.close()


def t_bad_tls():
    refused(tls_env(key=None), ["tls_key is missing"], "a certificate without a key")
    refused(tls_env(cert=None), ["tls_cert is missing"], "a key without a certificate")
    refused(tls_env(cert="nope.pem"), ["tls_cert", "nope.pem", "No such file"],
            "a missing certificate file")
    refused(tls_env(key="other-key.pem"), ["other-key.pem", "is not the key of the certificate"],
            "the key of another certificate")
    refused(tls_env(cert="key.pem", key="cert.pem"), ["tls_cert", "no PEM certificate"],
            "the files swapped")
    refused(tls_env(key="enc-key.pem"), ["enc-key.pem", "encrypted"], "an encrypted key")
    if os.path.exists(path("expired.pem")):
        refused(tls_env(cert="expired.pem", key="expired-key.pem"), ["has expired"],
                "an expired certificate")
    os.chmod(path("other-key.pem"), 0)
    if os.geteuid() != 0:  # root reads files of mode 0
        refused(tls_env(key="other-key.pem"), ["tls_key", "Permission denied"],
                "an unreadable key")


def t_bad_outbound():
    refused({"TSUNAGU_OUTBOUND_ALLOW": "*"}, ["outbound_allow", "*.suffix"], "allowlist '*'")
    refused({"TSUNAGU_OUTBOUND_ALLOW": "fhir.example.jp,,x.jp"}, ["outbound_allow", "empty"],
            "an empty pattern")
    refused({"TSUNAGU_OUTBOUND_ALLOW": "127.1"}, ["outbound_allow", "127.1"],
            "an inet_aton address")
    refused({"TSUNAGU_OUTBOUND_ALLOW_PRIVATE": "yes"}, ["outbound_allow_private"],
            "allow_private yes")
    refused({"TSUNAGU_OUTBOUND_ALLOW_HTTP": "1"}, ["outbound_allow_http"], "allow_http 1")


def main():
    if len(sys.argv) != 2:
        print("usage: test_tls.py PATH/TO/tsunagu", file=sys.stderr)
        return 2
    if not shutil.which("openssl"):
        print("SKIP: no openssl command to make certificates")
        return 77
    S.binary = sys.argv[1]
    S.dir = tempfile.mkdtemp(prefix="tsg-tls-")
    try:
        make_certs()
        checks = harness.Checks()
        for name, fn in (("https", t_https), ("chain", t_chain), ("bad_tls", t_bad_tls),
                         ("bad_outbound", t_bad_outbound)):
            checks.run(name, fn)
        return checks.finish()
    finally:
        shutil.rmtree(S.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
