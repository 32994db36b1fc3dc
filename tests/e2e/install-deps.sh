#!/usr/bin/env bash
# Installs, as root, the Debian 12 packages the tests need: the end-to-end suite
# (tests/e2e/run.sh), the integration tests' openssl, the image check's buildah, the
# monitoring mixin's jsonnet, and the Debian package's build and checks.
# The packages' own services are kept from starting: a temporary /usr/sbin/policy-rc.d that
# exits 101 is in place during the install and removed afterwards, also on failure.
# Idempotent: when everything is installed already it returns at once without apt.
set -euo pipefail

PACKAGES=(
    dnsmasq-base      # authoritative test DNS (the binary only, no service)
    bind9             # named: signed zones for the DNSSEC tests (tests/support/bind.rs), started by them
    bind9-utils       # dnssec-keygen, dnssec-signzone, dnssec-dsfromkey: the zones signed offline (tests/support/bind.rs, corpus.rs, keytrap.rs)
    bind9-dnsutils    # dig: named's readiness; delv: BIND's validator, the DNSSEC corpus's reference
    prosody           # the XMPP server (0.12 in Debian 12), brings lua5.x and its Lua modules
    ejabberd          # the other XMPP server (23.01 in Debian 12), brings Erlang
    lua-sec           # TLS for Prosody (Depends already, listed to be explicit)
    stunnel4          # serves the bad certificates in front of Prosody's plaintext port
    prometheus        # scrapes the exporter; brings promtool
    openssl           # makes the test PKI at run time; RSA 1024, SHA-1, OCSP, s_server in tests
    buildah           # builds and inspects the container image without a daemon (deploy/check)
    curl              # reads /metrics and the Prometheus API
    iproute2          # a network namespace as "another host" (ip netns, veth)
    python3           # small helpers: metrics parsing, the wiretap, name holder
    ca-certificates
    chromium          # renders the status page (tests/browser/check-status-page.sh)
    debhelper         # builds the Debian package (deploy/debian/build.sh), brings dpkg-dev
    help2man          # its man page, from the CLI's --help
    lintian           # judges the package (deploy/check/debian.sh)
    adduser           # the package's postinst makes its system user with it
    systemd           # systemd-analyze: the unit's security rating and verify (not run as PID 1)
    jsonnet           # the monitoring mixin (mixin/): renders the rules and dashboards, jsonnetfmt
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: must run as root (sudo $0)" >&2
    exit 1
fi

POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if [ "$created_policy" = 1 ]; then
        rm -f "$POLICY"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# temporary, from tests/e2e/install-deps.sh: no service starts during install\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    created_policy=1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do # a mirror hiccup should not fail CI
    apt-get update -qq && break
    [ "$attempt" = 3 ] && exit 1
    sleep 5
done
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
