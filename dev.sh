#!/usr/bin/env bash
# dev.sh — the project's commands (README.md). Each installs the Debian packages it needs
# when they are missing (apt-get, with sudo when not root), then builds.
#
#   ./dev.sh run              build (Release, build/) and run the gateway with the demo region
#   ./dev.sh test [ARGS...]   build with clang + ASan/UBSan (build-test/) and run every test;
#                             ARGS go to ctest (e.g. -R model, -L unit, -LE fuzz)
#   ./dev.sh bench [CORPUS]   run the benchmarks (Release, build/); see tests/bench/
#
# Environment: TSUNAGU_CORPUS names the shared corpus folder (default ../shared/corpus).
set -euo pipefail

cd "$(dirname "$0")"

die() {
    echo "dev.sh: $*" >&2
    exit 1
}

# What a build needs (the tests' CMake files need cmocka even for a Release build).
BUILD_PKGS=(build-essential cmake pkg-config libcmocka-dev libjansson-dev libxml2-dev
    libulfius-dev libmicrohttpd-dev libhiredis-dev libutf8proc-dev zlib1g-dev redis-server libssl-dev)
# What the test command adds: clang with libFuzzer and the sanitizer runtimes; python3 for
# the check that the committed R4 model is what the generator writes; clang-format for the
# source checks (tests/lint).
TEST_PKGS=(clang libclang-rt-14-dev clang-format python3)

# Installs the Debian packages among "$@" that are not installed.
need_pkgs() {
    local missing=() p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_install "${missing[@]}"
}

apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: install $* by hand"
        sudo=(sudo)
    fi
    echo "dev.sh: installing missing Debian packages: $*" >&2
    "${sudo[@]}" apt-get update || die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" ||
        die "apt-get install $* failed"
}

# Node.js and npm, for the benchmark's peer only. Checked by command rather than by package:
# a Node.js from another Debian repository (nodesource) provides npm itself and conflicts with
# Debian's npm package.
need_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        apt_install nodejs npm
    fi
}

# Waits until the gateway at $1 answers /readyz (at most 60 s); 1 when it does not.
wait_ready() {
    local base=$1 i
    for i in $(seq 1 120); do
        curl -sf "$base/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}

cmd_run() {
    need_pkgs "${BUILD_PKGS[@]}" curl
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTSUNAGU_SANITIZE=OFF
    cmake --build build -j2
    local listen=${TSUNAGU_LISTEN:-127.0.0.1:8080}
    export TSUNAGU_LISTEN=$listen TSUNAGU_DATA_DIR=${TSUNAGU_DATA_DIR:-./var}
    local base="http://$listen"
    build/tsunagu serve &
    server_pid=$!
    trap 'kill -TERM $server_pid 2>/dev/null; wait $server_pid' INT TERM
    wait_ready "$base" || die "the gateway did not become ready (see the messages above)"
    # Authentication (on unless TSUNAGU_AUTH=off): an administrator client of the demo,
    # created once, its credentials in $TSUNAGU_DATA_DIR/demo-admin.json (mode 0600), and an
    # access token for the requests below.
    local creds="$TSUNAGU_DATA_DIR/demo-admin.json" auth=() get_token="" h=""
    if [ "${TSUNAGU_AUTH:-on}" != off ]; then
        if [ ! -s "$creds" ]; then
            (umask 077 && build/tsunagu admin client create --org Organization/demo-admin \
                --name "demo administrator" --scope 'system/*.cruds' --role admin >"$creds") ||
                die "creating the demo administrator client failed"
        fi
        local id secret token
        id=$(sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p' "$creds")
        secret=$(sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p' "$creds")
        get_token="curl -s -u '$id:$secret' -d grant_type=client_credentials $base/auth/token | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p'"
        token=$(eval "$get_token")
        [ -n "$token" ] || die "no access token for the demo administrator (see $creds)"
        auth=(-H "Authorization: Bearer $token")
        h=' -H "Authorization: Bearer $TOKEN"'
    fi
    # The demo region, once: its entries are PUTs with fixed ids, so loading it again would
    # only add versions; a marker resource tells whether it is there.
    if curl -sf -o /dev/null "${auth[@]}" "$base/fhir/Organization/clinic-1"; then
        echo "dev.sh: the demo region is already loaded in $TSUNAGU_DATA_DIR" >&2
    else
        echo "dev.sh: loading the demo region (fixtures/region/region.json)…" >&2
        curl -sf -o /dev/null -X POST -H 'Content-Type: application/fhir+json' "${auth[@]}" \
            --data-binary @fixtures/region/region.json "$base/fhir" ||
            die "loading the demo region failed"
    fi
    if [ -n "$get_token" ]; then
        cat >&2 <<EOT

Authentication is on. The demo administrator's credentials are in $creds; a token for the
examples below (valid 5 minutes; run it again for a new one):

  TOKEN=\$($get_token)
EOT
    fi
    cat >&2 <<EOT

tsunagu is running on $base (FHIR base $base/fhir), data in $TSUNAGU_DATA_DIR. Try:

  curl -s '$base/fhir/metadata?_summary=true'
  curl -s$h '$base/fhir/Patient/p-001?_pretty=true'
  curl -s$h '$base/fhir/Patient?name=ヤマダ&_count=5'
  curl -s$h '$base/fhir/CareTeam?patient=Patient/p-001'
  curl -s$h '$base/fhir/Patient/p-001/\$everything'
  curl -s$h -H 'Accept: application/fhir+xml' '$base/fhir/Organization/clinic-1'
  curl -s$h '$base/fhir/Patient/p-001/_history'
  curl -s$h '$base/metrics'

Ctrl-C stops it (the embedded Redis stops with it; the data stays in $TSUNAGU_DATA_DIR).
EOT
    wait $server_pid
}

cmd_test() {
    need_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
    local corpus=()
    [ -n "${TSUNAGU_CORPUS:-}" ] && corpus=(-DTSUNAGU_CORPUS="$TSUNAGU_CORPUS")
    # The README's build (Release, the default compiler: gcc) must stay warning-free too:
    # gcc -O2 warns about things clang does not.
    cmake -S . -B build-gcc -DCMAKE_BUILD_TYPE=Release -DTSUNAGU_SANITIZE=OFF >/dev/null
    cmake --build build-gcc -j2 >/dev/null || {
        cmake --build build-gcc -j1 2>&1 | grep -E 'error|warning' | head -20 >&2
        die "the Release build (default compiler) fails"
    }
    cmake -S . -B build-test -DCMAKE_C_COMPILER=clang -DTSUNAGU_SANITIZE=ON "${corpus[@]}"
    cmake --build build-test -j2
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
    ctest --test-dir build-test --output-on-failure --no-tests=error "$@"
}

cmd_bench() {
    need_pkgs "${BUILD_PKGS[@]}"
    need_node
    exec tests/bench/convert/run "$@"
}

case "${1:-}" in
run) shift; [ $# -eq 0 ] || die "run takes no arguments"; cmd_run ;;
test) shift; cmd_test "$@" ;;
bench) shift; cmd_bench "$@" ;;
*)
    echo "usage: ./dev.sh run | test [CTEST-ARGS...] | bench [CORPUS]" >&2
    exit 2
    ;;
esac
