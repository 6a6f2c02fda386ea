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
    libmicrohttpd-dev libhiredis-dev libutf8proc-dev zlib1g-dev redis-server libssl-dev
    libzstd-dev)
# What the test command adds: clang with libFuzzer and the sanitizer runtimes; python3 for
# the integration tests and the check that the committed R4 model is what the generator
# writes, with zstd for reading the audit trail's packed entries; clang-format
# for the source checks (tests/lint).
TEST_PKGS=(clang libclang-rt-14-dev clang-format python3 zstd)

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

# --- the demo clients (./dev.sh run with authentication on) -----------------------------------
# One administrator client of the network office (Organization/region-admin, area "" = the whole
# region) and one member client per other Organization of the demo region, all with scope
# system/*.cruds (what each member may see is then decided by care teams and consents). Their
# credentials: $TSUNAGU_DATA_DIR/demo-clients.json (mode 0600), one client a line:
#   [{"organization":"Organization/<id>","name":…,"role":"admin"|"member","scope":…,
#     "client_id":…,"client_secret":…}, …]   the administrator first
DEMO_ADMIN_ORG=region-admin
DEMO_SCOPE='system/*.cruds'

# The Organizations of the demo region, "id<TAB>name" a line, in bundle order (region.json has
# one entry a line; an Organization's only "name" is its own; names hold no '"' or '\').
region_orgs() {
    sed -n 's/^{"resource":{"resourceType":"Organization","id":"\([^"]*\)".*,"name":"\([^"]*\)".*/\1\t\2/p' \
        fixtures/region/region.json
}

# The ids of the registered clients that are not revoked, one a line.
live_clients() {
    build/tsunagu admin client list | awk -F'"' '/"client_id":/ { id = $4 } /"revoked": false/ { print id }'
}

# Prints the value of "key" of the line of file $1 whose organization is $2.
demo_client_field() {
    sed -n "s|.*\"organization\":\"$2\".*\"$3\":\"\\([^\"]*\\)\".*|\\1|p" "$1"
}

# True when file $1 holds a client for each Organization of the region and every one of them is
# still registered and not revoked.
demo_clients_ok() {
    local file=$1 ids id live
    [ -s "$file" ] || return 1
    ids=$(sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p' "$file")
    [ "$(grep -c . <<<"$ids")" -eq "$(region_orgs | wc -l)" ] || return 1
    live=$(live_clients) || return 1
    for id in $ids; do
        grep -Fxq -e "$id" <<<"$live" || return 1
    done
}

# Revokes the clients named in file $1 that are still live (so that no stale secret works).
revoke_clients_of() {
    local file=$1 id live
    [ -s "$file" ] || return 0
    live=$(live_clients) || return 1
    for id in $(sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p' "$file"); do
        if grep -Fxq -e "$id" <<<"$live"; then
            build/tsunagu admin client revoke "$id" >/dev/null || return 1
        fi
    done
}

# Creates the demo clients and writes file $1 (see above); replaces and revokes an older file's.
create_demo_clients() {
    local file=$1 tmp="$1.tmp" orgs=() line org name role out sep=""
    # the administrator first
    mapfile -t orgs < <(region_orgs | awk -F'\t' -v a="$DEMO_ADMIN_ORG" '$1 == a'
        region_orgs | awk -F'\t' -v a="$DEMO_ADMIN_ORG" '$1 != a')
    [ ${#orgs[@]} -gt 1 ] && [[ ${orgs[0]} == "$DEMO_ADMIN_ORG"$'\t'* ]] ||
        die "fixtures/region/region.json has no Organization/$DEMO_ADMIN_ORG (regenerate it)"
    revoke_clients_of "$file" || die "revoking the clients of the old $file failed"
    echo "dev.sh: creating the demo clients: an administrator and $((${#orgs[@]} - 1)) members (their secrets are hashed slowly on purpose: 5-20 s)…" >&2
    (umask 077 && printf '[' >"$tmp") || die "cannot write $tmp"
    for line in "${orgs[@]}"; do
        org=${line%%$'\t'*}
        name=${line#*$'\t'}
        role=member
        [ "$org" = "$DEMO_ADMIN_ORG" ] && role="admin"
        out=$(build/tsunagu admin client create --org "Organization/$org" --name "$name" \
            --scope "$DEMO_SCOPE" --role $role) || die "creating the demo client of Organization/$org failed"
        printf '%s\n{"organization":"Organization/%s","name":"%s","role":"%s","scope":"%s",%s' \
            "$sep" "$org" "$name" "$role" "$DEMO_SCOPE" "${out#\{}" >>"$tmp"
        sep=,
    done
    printf '\n]\n' >>"$tmp"
    mv "$tmp" "$file"
}

# The shell command that prints an access token of the client of Organization $2 in file $1
# from the gateway at $3.
token_command() {
    local id secret base=$3
    id=$(demo_client_field "$1" "$2" client_id)
    secret=$(demo_client_field "$1" "$2" client_secret)
    [ -n "$id" ] && [ -n "$secret" ] || die "no client of $2 in $1"
    echo "curl -s -u '$id:$secret' -d grant_type=client_credentials $base/auth/token | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p'"
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
    # Authentication (on unless TSUNAGU_AUTH=off): the demo clients (created once, see above)
    # and an administrator's access token for the requests below.
    local creds="$TSUNAGU_DATA_DIR/demo-clients.json" auth=() get_token="" get_member="" h=""
    local member_org=Organization/clinic-1
    if [ "${TSUNAGU_AUTH:-on}" != off ]; then
        # the single administrator client of earlier versions of this script
        if [ -e "$TSUNAGU_DATA_DIR/demo-admin.json" ]; then
            revoke_clients_of "$TSUNAGU_DATA_DIR/demo-admin.json" && rm -f "$TSUNAGU_DATA_DIR/demo-admin.json" ||
                die "revoking the old demo administrator ($TSUNAGU_DATA_DIR/demo-admin.json) failed"
            echo "dev.sh: revoked the old demo administrator client (demo-admin.json)" >&2
        fi
        if demo_clients_ok "$creds"; then
            echo "dev.sh: the demo clients of $creds are registered" >&2
        else
            create_demo_clients "$creds"
        fi
        local token
        get_token=$(token_command "$creds" "Organization/$DEMO_ADMIN_ORG" "$base")
        get_member=$(token_command "$creds" "$member_org" "$base")
        token=$(eval "$get_token")
        [ -n "$token" ] || die "no access token for the demo administrator (see $creds)"
        auth=(-H "Authorization: Bearer $token")
        h=' -H "Authorization: Bearer $TOKEN"'
    fi
    # The demo region, once: its entries are PUTs with fixed ids, so loading it again would
    # only add versions; a marker resource tells whether it is there (the network office, which
    # came with the consents: a data folder with an older region gets them).
    if curl -sf -o /dev/null "${auth[@]}" "$base/fhir/Organization/$DEMO_ADMIN_ORG"; then
        echo "dev.sh: the demo region is already loaded in $TSUNAGU_DATA_DIR" >&2
    else
        echo "dev.sh: loading the demo region (fixtures/region/region.json)…" >&2
        curl -sf -o /dev/null -X POST -H 'Content-Type: application/fhir+json' "${auth[@]}" \
            --data-binary @fixtures/region/region.json "$base/fhir" ||
            die "loading the demo region failed"
    fi
    if [ -n "$get_token" ]; then
        cat >&2 <<EOT

Authentication is on. The demo clients' credentials are in $creds (mode 0600): the
administrator of the network office (Organization/$DEMO_ADMIN_ORG) and a member client for each
Organization of the region. Tokens (valid 5 minutes; run the line again for a new one) for the
administrator, whom the examples below use, and for the member $member_org:

  TOKEN=\$($get_token)
  MEMBER=\$($get_member)

What a member sees follows the care teams and the patients' consents
(fixtures/region/region-summary.md): $member_org is in the care team of p-001 (network-wide
consent) and of p-083 (no consent), not in that of p-200:

  curl -s -H "Authorization: Bearer \$MEMBER" '$base/fhir/Patient/p-001'
  curl -s -H "Authorization: Bearer \$MEMBER" '$base/fhir/Patient/p-083'
  curl -s -H "Authorization: Bearer \$MEMBER" '$base/fhir/Patient/p-200'
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
