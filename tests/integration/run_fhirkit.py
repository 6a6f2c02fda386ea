#!/usr/bin/env python3
"""run_fhirkit.py BINARY NODE_DIR — runs test_fhirkit.js (the npm FHIR client fhir-kit-client)
against a fresh `tsunagu serve`.

NODE_DIR is where fhir-kit-client is installed (`npm install --prefix NODE_DIR
fhir-kit-client@1`, done here when missing; ctest passes <build>/integration-node — never the
repository). When node or npm is missing or npm cannot reach its registry, the test is skipped
with a message and exit status 77 (ctest SKIP_RETURN_CODE). Otherwise the exit status is the
JavaScript test's (0: every step passed)."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SKIP = 77
PACKAGE = "fhir-kit-client@1"


def ensure_client(node_dir):
    """Installs fhir-kit-client into node_dir when absent. Returns None or why it cannot."""
    if not shutil.which("node"):
        return "node is not installed"
    pkg = os.path.join(node_dir, "node_modules", "fhir-kit-client", "package.json")
    if os.path.exists(pkg):
        return None
    if not shutil.which("npm"):
        return "npm is not installed"
    os.makedirs(node_dir, exist_ok=True)
    try:
        p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", node_dir,
                            PACKAGE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=300, cwd=node_dir)
    except subprocess.TimeoutExpired:
        return "npm install %s timed out (registry unreachable?)" % PACKAGE
    if p.returncode != 0 or not os.path.exists(pkg):
        tail = p.stdout.decode("utf-8", "replace").strip().splitlines()[-8:]
        return "npm install %s failed (registry unreachable?):\n  %s" % (PACKAGE,
                                                                        "\n  ".join(tail))
    return None


def main():
    if len(sys.argv) != 3:
        print("usage: run_fhirkit.py PATH/TO/tsunagu NODE_DIR", file=sys.stderr)
        return 2
    binary, node_dir = sys.argv[1], os.path.abspath(sys.argv[2])
    why = ensure_client(node_dir)
    if why:
        print("SKIP fhir-kit-client test: " + why)
        return SKIP
    js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_fhirkit.js")
    env = dict(os.environ, NODE_PATH=os.path.join(node_dir, "node_modules"))
    with harness.Gateway(binary) as gw:
        p = subprocess.run(["node", js, "%s/fhir" % gw.base], env=env, timeout=240)
        rc = p.returncode
    return rc


if __name__ == "__main__":
    sys.exit(main())
