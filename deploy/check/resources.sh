#!/usr/bin/env bash
# Measures what the exporter needs, to size the Kubernetes requests and limits: the image's
# static binary (built by static-binary.sh into target/dockerfile/) probes TARGETS loopback
# XEP-0114 peers (a third of them over direct TLS) every INTERVAL while /metrics is scraped
# every second, for SECONDS, in a private network namespace. Prints the resident memory
# (VmRSS now, VmHWM peak) and the CPU used.
#
#   deploy/check/resources.sh [TARGETS=12] [INTERVAL=1s] [SECONDS=60]
#   BIN=/path/to/cms-xmpp-exporter deploy/check/resources.sh ...   (another build)
#
# The default interval is 30 times the exporter's default (30s), so the CPU figure is an
# upper bound for real configurations.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
TARGETS=${1:-12}
INTERVAL=${2:-1s}
DURATION=${3:-60}
# BIN=path overrides the binary (e.g. to compare builds).
BIN=${BIN:-$(python3 -c "import json; d=json.load(open('target/dockerfile/image.json')); print(d['root'] + d['entrypoint'][0])")}
[ -x "$BIN" ] || { echo "run deploy/check/static-binary.sh first" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# shellcheck source=deploy/check/test-pki.sh
. deploy/check/test-pki.sh
make_test_pki "$TMP" "resources test CA"
printf 'resources-secret\n' > "$TMP/secret"

PEER_ARGS=()
{
    echo "listen_address: 127.0.0.1:9523"
    echo "interval: $INTERVAL"
    echo "timeout: 1s"
    echo "targets:"
    for i in $(seq 1 "$TARGETS"); do
        port=$((16000 + i))
        if [ $((i % 3)) -eq 0 ]; then
            PEER_ARGS+=(--tls "$port")
            tls="{mode: direct, server_name: xmpp.probe.test, ca_file: $TMP/ca.pem}"
        else
            PEER_ARGS+=(--plain "$port")
            tls="{mode: none}"
        fi
        echo "  - {name: t$i, domain: probe.test, server_address: \"127.0.0.1:$port\", component: probe.probe.test, secret_file: $TMP/secret, tls: $tls}"
    done
} > "$TMP/config.yaml"

cat > "$TMP/inside.sh" <<'INSIDE'
set -euo pipefail
ip link set lo up
REPO=$1; TMP=$2; BIN=$3; DURATION=$4; shift 4
python3 "$REPO/deploy/check/xmpp_peer.py" --secret-file "$TMP/secret" "$@" \
    --cert "$TMP/server.pem" --key "$TMP/server.key" --lifetime $((DURATION + 30)) \
    --ready-file "$TMP/ready" > "$TMP/peer.log" 2>&1 &
PEER=$!
for _ in $(seq 50); do [ -f "$TMP/ready" ] && break; sleep 0.1; done
env -i SSL_CERT_FILE=/nonexistent "$BIN" --config "$TMP/config.yaml" --log-level warn > "$TMP/exporter.log" 2>&1 &
EXPORTER=$!
trap 'kill $EXPORTER $PEER 2>/dev/null' EXIT
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$EXPORTER/stat"; }
start_ticks=$(ticks)
for _ in $(seq "$DURATION"); do
    curl -fsS -o /dev/null http://127.0.0.1:9523/metrics
    sleep 1
done
end_ticks=$(ticks)
hz=$(getconf CLK_TCK)
curl -fsS http://127.0.0.1:9523/metrics > "$TMP/metrics.txt"
succeeded=$(grep -c '^cms_xmpp_probe_success{.*} 1$' "$TMP/metrics.txt" || true)
cycles=$(awk '/^cms_xmpp_probes_total\{target="t1"\}/ {print $2}' "$TMP/metrics.txt")
echo "targets: $(grep -c '^cms_xmpp_probe_success{' "$TMP/metrics.txt"), succeeding: $succeeded, cycles of t1: $cycles"
grep -E '^(VmRSS|VmHWM|Threads)' "/proc/$EXPORTER/status"
echo "exposition: $(wc -c < "$TMP/metrics.txt") bytes, $(grep -vc '^#' "$TMP/metrics.txt") series"
awk -v t=$((end_ticks - start_ticks)) -v hz="$hz" -v d="$DURATION" \
    'BEGIN { printf "CPU: %.1f ms per second (%.1f millicores) over %d s\n", 1000 * t / hz / d, 1000 * t / hz / d, d }'
INSIDE
unshare --net bash "$TMP/inside.sh" "$REPO" "$TMP" "$BIN" "$DURATION" "${PEER_ARGS[@]}"
