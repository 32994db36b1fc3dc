#!/usr/bin/env bash
# End-to-end suite: the release binary against real, unmodified servers from Debian's packages
# (dnsmasq, BIND 9 signing zones, two Prosody 0.12 instances, ejabberd 23.01, stunnel4,
# Prometheus), all on loopback,
# started and stopped by this script. See tests/e2e/README.md. Runs as root: ejabberdctl runs
# ejabberd as its system user.
#
#   tests/e2e/run.sh            (after: sudo tests/e2e/install-deps.sh)
#
# Prints PASS/FAIL per check and, at the end, exactly one line "N passed, M failed"; exits
# non-zero when anything failed. Leaves no process and no file behind (everything lives in a
# mktemp -d directory that the EXIT trap removes, after stopping exactly the PIDs it started).
#
# Environment:
#   E2E_EXPORTER_BIN=PATH   use this exporter binary instead of building target/release
#   E2E_KEEP_TMP=1          keep the temp dir (configs, certificates, logs) for debugging

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
HELPERS="$HERE/helpers"
PY="${PYTHON:-python3}"

DOMAIN="e2e.test"
XMPP1="xmpp1.$DOMAIN" # Prosody 1 on 127.0.0.1 (stopped and restarted by the failover check)
XMPP2="xmpp2.$DOMAIN" # Prosody 2 on 127.0.0.2 (stays up; the single-server scenarios use it)
DOMAIN2="fleet.test"  # a second XMPP domain on the same servers, known only to Prometheus (/probe?module=)
SIGNED="signed.test"  # a zone BIND signs itself (dnssec-policy), with TLSA records: DNSSEC and DANE
EXPIRED_ZONE="expired.test" # a zone signed offline with signatures that expired in 2020: bogus
FORGED="forged.test"  # a zone signed offline whose TLSA record was changed after signing
RUNBOOK_DNS="127.0.0.1" # BIND again, on port 53: the runbook's `dig @"$DNS"` and `delv` as written
IP1="127.0.0.1"
IP2="127.0.0.2"
SRV_PRIO1=10 SRV_WEIGHT1=60 SRV_PRIO2=20 SRV_WEIGHT2=40
WAIT=20 # default deadline in seconds for a metric to reach its expected value
# On-call's promise, a change on /metrics within 5 s, as a deadline: bash counts whole seconds
# (SECONDS), so 6 lasts between 5 and 6 s. tests/integration/watch_session.rs holds the 5 s exactly.
PROMISE=6

PASSED=0
FAILED=0
T0=$SECONDS # reset after the build: scenario times count from the start of the peers
WORK=""
EJ_DIR="" # ejabberd's directory, outside $WORK: ejabberd runs as its own system user
PROM_STARTED=0 # when Prometheus started (Unix seconds)
NETNS=""  # a network namespace of this run's own: a client on "another host"
declare -a PIDS=()          # every process this script started, in start order
declare -A PID_NAME=()      # pid -> name, for messages

log() { printf '%s\n' "$*"; }
die_setup() {
    FAILED=$((FAILED + 1))
    log "FAIL  setup: $*"
    show_all_logs
    summary_and_exit
}

summary_and_exit() {
    log ""
    log "$PASSED passed, $FAILED failed"
    if [ "$FAILED" -gt 0 ]; then exit 1; fi
    exit 0
}

# ---------------------------------------------------------------- processes and cleanup

# start NAME LOGFILE COMMAND...: runs COMMAND in the background, output to LOGFILE.
start() {
    local name="$1" logfile="$2"
    shift 2
    "$@" >>"$logfile" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    PID_NAME[$pid]="$name"
}

# stop_pid PID: TERM, up to 5 s, then KILL; reaps it and forgets it.
stop_pid() {
    local pid="$1" i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "  (${PID_NAME[$pid]:-?} pid $pid ignored SIGTERM; killing it)"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null
    local kept=() p
    for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && kept+=("$p"); done
    PIDS=("${kept[@]+"${kept[@]}"}")
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    [ -n "$EJ_DIR" ] && stop_ejabberd
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}"
    done
    [ -n "$NETNS" ] && remove_netns
    local dir
    for dir in "$WORK" "$EJ_DIR"; do
        [ -n "$dir" ] && [ -d "$dir" ] || continue
        if [ "${E2E_KEEP_TMP:-}" = 1 ]; then
            log "kept $dir"
        else
            rm -rf "$dir"
        fi
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pid_of() { # pid_of NAME: the pid of a started process by name
    local p
    for p in "${PIDS[@]}"; do
        [ "${PID_NAME[$p]:-}" = "$1" ] && { echo "$p"; return 0; }
    done
    return 1
}

# wait_until DEADLINE_SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

alive() { kill -0 "$1" 2>/dev/null; }
tcp_open() { "$PY" -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$1" "$2"; }
http_ok() { curl -sf --max-time 2 -o /dev/null "$1"; }

# ---------------------------------------------------------------- output on failure

CTX_TARGET=""
CTX_SHOWN=0              # the logs were shown for this scenario already
declare -a CTX_LOGS=()   # entries "FILE|PATTERN" (PATTERN: grep -E, empty = last lines)

scenario() { # scenario TITLE TARGET [FILE|PATTERN]...
    log ""
    log "== $1 (at $((SECONDS - T0))s)"
    CTX_TARGET="$2"
    CTX_SHOWN=0
    shift 2
    CTX_LOGS=("$@")
}

show_log() { # show_log FILE [PATTERN]
    local file="$1" pattern="${2:-}"
    [ -f "$file" ] || return 0
    log "      --- ${file#"$WORK"/}${pattern:+ (lines matching /$pattern/)}, last lines:"
    if [ -n "$pattern" ]; then
        grep -E -- "$pattern" "$file" | tail -n 12 | sed 's/^/      | /'
    else
        tail -n 12 "$file" | sed 's/^/      | /'
    fi
}

show_all_logs() {
    [ -n "$WORK" ] && [ -d "$WORK/logs" ] || return 0
    local f
    for f in "$WORK"/logs/*.log "$WORK"/logs/*.stderr; do show_log "$f"; done
}

# explain EXPR: after a failed check, what the exporter shows: the check's own series, then
# why the target fails (failing_step_info, up), then, once per scenario, the exporter's state
# changes for the target (with the failure detail) and the peers' log lines.
explain() {
    local expr="$1" name selector got
    name="${expr%%[{ ]*}"
    selector="$name"
    [[ "$expr" == *"{"* ]] && selector="${expr%%\}*}}"
    log "      expected: $expr"
    got="$("$PY" "$HELPERS/metrics.py" lines "$WORK/scrape.prom" "$selector" 2>/dev/null | head -n 12)"
    [ -n "$got" ] || got="$("$PY" "$HELPERS/metrics.py" lines "$WORK/scrape.prom" \
        "$name${CTX_TARGET:+{target=\"$CTX_TARGET\"\}}" 2>/dev/null | grep -v '_bucket{' | head -n 12)"
    log "      got:      ${got:-(no $name series${CTX_TARGET:+ for target $CTX_TARGET})}" | sed '2,$s/^/                /'
    [ -n "$CTX_TARGET" ] || return 0
    log "      --- exporter /metrics: state of target=\"$CTX_TARGET\""
    grep -F "target=\"$CTX_TARGET\"" "$WORK/scrape.prom" |
        grep -E '^cms_xmpp_(probe_success|server_up|failing_step_info|srv_records)\{' |
        head -n 12 | sed 's/^/      | /'
    [ "$CTX_SHOWN" = 1 ] && return 0
    CTX_SHOWN=1
    show_log "$WORK/logs/exporter.log" "(INFO|WARN|ERROR).*target=\"$CTX_TARGET\""
    local entry
    for entry in "${CTX_LOGS[@]+"${CTX_LOGS[@]}"}"; do
        show_log "${entry%%|*}" "${entry#*|}"
    done
}

pass() { PASSED=$((PASSED + 1)); log "PASS  $1"; }
fail() { FAILED=$((FAILED + 1)); log "FAIL  $1"; }

# ---------------------------------------------------------------- metric checks

LAST_SCRAPE=0 # microseconds
scrape() {
    curl -sf --max-time 3 "http://$EXPORTER_ADDR/metrics" -o "$WORK/scrape.prom.new" &&
        mv "$WORK/scrape.prom.new" "$WORK/scrape.prom" && LAST_SCRAPE=${EPOCHREALTIME/./}
}
# recent_scrape: a scrape at most half a second old (one-shot checks in a row share it).
recent_scrape() { [ $((${EPOCHREALTIME/./} - LAST_SCRAPE)) -lt 500000 ] || scrape; }

metric_holds() { # metric_holds EXPR: on the last scrape (see metrics.py for the syntax)
    "$PY" "$HELPERS/metrics.py" check "$WORK/scrape.prom" "$1" >/dev/null 2>&1
}
metric_absent() { "$PY" "$HELPERS/metrics.py" absent "$WORK/scrape.prom" "$1" >/dev/null 2>&1; }

# poll_scrape SECONDS CHECK ARG: scrapes /metrics until `CHECK ARG` holds, or SECONDS pass.
poll_scrape() {
    local deadline=$((SECONDS + $1))
    while true; do
        if scrape && "$2" "$3"; then
            return 0
        fi
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.5
    done
}

# wait_for_metric DESCRIPTION EXPR [DEADLINE]: polls /metrics until EXPR holds.
wait_for_metric() {
    if poll_scrape "${3:-$WAIT}" metric_holds "$2"; then
        pass "$1"
        return 0
    fi
    fail "$1 (not within ${3:-$WAIT}s)"
    explain "$2"
    return 1
}

# expect_metric DESCRIPTION EXPR: checks EXPR on a recent scrape (at most 0.5 s old).
expect_metric() {
    if recent_scrape && metric_holds "$2"; then
        pass "$1"
    else
        fail "$1"
        explain "$2"
        return 1
    fi
}

# wait_for_absent DESCRIPTION SELECTOR [DEADLINE]: polls /metrics until no series matches.
wait_for_absent() {
    if poll_scrape "${3:-$WAIT}" metric_absent "$2"; then
        pass "$1"
        return 0
    fi
    fail "$1 (still present after ${3:-$WAIT}s)"
    explain "$2 (absent)"
    return 1
}

# expect_count DESCRIPTION SELECTOR N: exactly N series match, on a recent scrape.
expect_count() {
    if recent_scrape && "$PY" "$HELPERS/metrics.py" count "$WORK/scrape.prom" "$2" == "$3" >/dev/null 2>&1; then
        pass "$1"
    else
        fail "$1"
        explain "$2 (exactly $3 series)"
        return 1
    fi
}

# metric_sum SELECTOR: the sum of the matching series on a fresh scrape (0 when none match).
metric_sum() {
    scrape && "$PY" "$HELPERS/metrics.py" lines "$WORK/scrape.prom" "$1" | awk '{ n += $NF } END { print n + 0 }'
}

# expect_retries_paced DESCRIPTION SELECTOR: over a window, the failing logins counted by
# SELECTOR go on (at least one) but no faster than the watch's backoff allows: each waits at
# least 0.75 x the ping interval (2 s). It would double per failure up to the target's
# interval, but the e2e targets' interval (1 s) is below the ping interval, so here the bound
# catches a login loop, not a backoff that fails to double (the integration test does that).
expect_retries_paced() {
    local before after window=6
    before="$(metric_sum "$2")"
    sleep "$window" # a measuring window: the count over it is the check
    after="$(metric_sum "$2")"
    local tried=$((after - before)) most=$((window * 10 / 15 + 1))
    if [ "$tried" -ge 1 ] && [ "$tried" -le "$most" ]; then
        pass "$1 ($tried failed logins in ${window} s, at most $most allowed)"
    else
        fail "$1 ($tried failed logins in ${window} s: expected 1 to $most)"
    fi
}

# expect_failure TARGET SERVER STEP REASON: failing_step_info names that step and reason (and
# no other), probe_success is 0 and the failure counter went up.
expect_failure() {
    local target="$1" server="$2" step="$3" reason="$4"
    local sel="target=\"$target\",server=\"$server\",step=\"$step\",reason=\"$reason\""
    wait_for_metric "$target: fails at step $step with reason $reason" \
        "cms_xmpp_failing_step_info{$sel} == 1" || return 1
    expect_metric "$target: cms_xmpp_probe_success is 0" "cms_xmpp_probe_success{target=\"$target\"} == 0"
    expect_metric "$target: cms_xmpp_probe_failures_total counts $step/$reason" \
        "cms_xmpp_probe_failures_total{$sel} >= 1"
    expect_count "$target: no other failing step" "cms_xmpp_failing_step_info{target=\"$target\"}" 1
}

# ---------------------------------------------------------------- Prometheus queries

PROM_FILE=""
prom_query() { # prom_query PROMQL: answer as exposition lines in $PROM_FILE
    PROM_FILE="$WORK/prom-answer.prom"
    curl -sf --max-time 3 -G "http://$PROM_ADDR/api/v1/query" --data-urlencode "query=$1" -o "$WORK/prom-answer.json" &&
        "$PY" "$HELPERS/metrics.py" from-api "$WORK/prom-answer.json" >"$PROM_FILE"
}

# wait_for_query DESCRIPTION PROMQL CHECK [DEADLINE]: CHECK is a metrics.py selector on the
# query's result series (the result of a function has the name "result").
wait_for_query() {
    local desc="$1" query="$2" check="$3" deadline=$((SECONDS + ${4:-$WAIT}))
    while true; do
        if prom_query "$query" && "$PY" "$HELPERS/metrics.py" check "$PROM_FILE" "$check" >/dev/null 2>&1; then
            pass "$desc"
            return 0
        fi
        [ "$SECONDS" -ge "$deadline" ] && break
        sleep 0.5
    done
    fail "$desc (not within ${4:-$WAIT}s)"
    log "      query:    $query"
    log "      expected: $check"
    log "      got:"
    sed 's/^/      | /' "$PROM_FILE" 2>/dev/null | head -n 30
    show_log "$WORK/logs/prometheus.log"
    return 1
}

# ---------------------------------------------------------------- setup: build, PKI, configs

build() {
    if [ -n "${E2E_EXPORTER_BIN:-}" ]; then
        BIN="$E2E_EXPORTER_BIN"
        log "using exporter binary $BIN"
    else
        log "building the release binary (cargo build --release --locked)"
        (cd "$ROOT" && cargo build --release --locked) || die_setup "cargo build --release failed"
        local target_dir="${CARGO_TARGET_DIR:-target}"
        [[ "$target_dir" = /* ]] || target_dir="$ROOT/$target_dir"
        BIN="$target_dir/release/cms-xmpp-exporter"
    fi
    [ -x "$BIN" ] || die_setup "no exporter binary at $BIN"
    [ "$(id -u)" = 0 ] || die_setup "run as root: ejabberdctl runs ejabberd as its system user"
    local tool
    for tool in dnsmasq named dnssec-keygen dnssec-signzone dig prosody ejabberdctl stunnel4 prometheus promtool openssl curl ip "$PY"; do
        command -v "$tool" >/dev/null || die_setup "$tool is not installed: run sudo tests/e2e/install-deps.sh"
    done
}

allocate_ports() {
    local ports line
    line="$("$PY" "$HELPERS/metrics.py" free-ports 19 "$IP1" "$IP2")" || die_setup "cannot find free ports"
    read -r -a ports <<<"$line"
    DNS_PORT=${ports[0]}
    XMPP_TLS_PORT=${ports[1]}     # Prosody direct TLS (net_multiplex ssl_ports), as CMS's 5223
    XMPP_PLAIN_PORT=${ports[2]}   # Prosody component_ports (plaintext XEP-0114)
    EXPIRED_PORT=${ports[3]}      # stunnel (OpenSSL) with an expired certificate, in front of Prosody 2
    EXPORTER_ADDR="$IP1:${ports[4]}"
    PROM_ADDR="$IP1:${ports[5]}"
    WIRE_PORT=${ports[6]}         # recording proxy in front of Prosody 2's plaintext port
    C2S_PORT=${ports[7]}          # Prosody 2's client port (STARTTLS), for the watch
    EJ_C2S_PORT=${ports[8]}       # ejabberd's client port (STARTTLS), on $IP1
    EJ_COMPONENT_PORT=${ports[9]} # ejabberd_service with TLS from the first byte, for the probes
    EJ_CB1_PORT=${ports[10]}      # ejabberd_service for cb1 alone (connected)
    EJ_CB2_PORT=${ports[11]}      # ejabberd_service for cb2 alone (never connected)
    EJ_DIST_PORT=${ports[12]}     # Erlang distribution for ejabberdctl, instead of epmd
    LEGACY_PORT=${ports[13]}      # stunnel still accepting TLS 1.0 and 1.1 (and 1.2+), before Prosody 2
    OLDTLS_PORT=${ports[14]}      # stunnel speaking TLS 1.0 and 1.1 only, before Prosody 2
    EJ_SHARED_PORT=${ports[15]}   # ejabberd_service for cb3 and cb4 together (only cb4 connected)
    BIND_PORT=${ports[16]}        # BIND 9, authoritative for the signed zones; dnsmasq forwards to it
    C2W_PORT=${ports[17]}         # a Web Bridge 3's C2W port (openssl s_server), on $IP2
    RNDC_PORT=${ports[18]}        # BIND's control channel, for the runbook's rndc commands
    "$PY" -c 'import socket, sys
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    socket.socket(socket.AF_INET, kind).bind((sys.argv[1], 53))' "$RUNBOOK_DNS" 2>/dev/null ||
        die_setup "port 53 on $RUNBOOK_DNS is taken: the runbook's dig and delv commands ask BIND there"
}

# The test PKI: a CA, a good server certificate whose SANs cover the domain and both FQDNs,
# and the bad ones. `openssl ca` sets any validity window, also one in the past.
make_pki() {
    local pki="$WORK/pki"
    mkdir -p "$pki"
    export CA_DIR="$pki/ca" # read by openssl.cnf; `issue` names the CA per call
    cat >"$pki/openssl.cnf" <<EOF
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ ca ]
default_ca = this_ca
[ this_ca ]
dir = \$ENV::CA_DIR
database = \$dir/index.txt
new_certs_dir = \$dir
serial = \$dir/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
EOF
    local ca
    # ca issues the servers' certificates; cbca the Callbridges' own (C2W client certificates).
    for ca in ca cbca; do
        mkdir -p "$pki/$ca"
        : >"$pki/$ca/index.txt"
        openssl rand -hex 8 >"$pki/$ca/serial"
        openssl req -config "$pki/openssl.cnf" -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$pki/$ca.key" -out "$pki/$ca.crt" -days 30 -subj "/CN=cms-xmpp-exporter e2e $ca" \
            -extensions v3_ca 2>>"$WORK/logs/openssl.log" || die_setup "openssl: cannot make $ca"
    done
    GOOD_SANS="$DOMAIN,$XMPP1,$XMPP2,$DOMAIN2,$SIGNED,xmpp.$SIGNED,renewed.$SIGNED,stale.$SIGNED,$FORGED,xmpp.$FORGED"
    local sans="DNS:${GOOD_SANS//,/,DNS:}"
    issue good ca "$sans" "$(utc '-1 day')" "$(utc '+30 days')"
    issue expired ca "$sans" "$(utc '-30 days')" "$(utc '-1 day')"
    issue callbridge cbca "DNS:callbridge.$DOMAIN" "$(utc '-1 day')" "$(utc '+30 days')" clientAuth
    # A client certificate from a CA the Web Bridge does not trust.
    issue stranger ca "DNS:stranger.$DOMAIN" "$(utc '-1 day')" "$(utc '+30 days')" clientAuth
    # As `openssl x509 -serial` prints it, in lowercase: what cms_xmpp_cert_info says.
    GOOD_SERIAL="$(openssl x509 -in "$pki/good.crt" -noout -serial | sed 's/.*=//' | tr 'A-F' 'a-f')"
    EXPIRED_NOT_AFTER="$(date -u -d "$(openssl x509 -in "$pki/expired.crt" -noout -enddate | sed 's/notAfter=//')" +%s)"
}

utc() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

issue() { # issue NAME CA SANS NOT_BEFORE NOT_AFTER [EXTENDED_KEY_USAGE, serverAuth by default]
    local pki="$WORK/pki" name="$1" ca="$2" sans="$3"
    printf 'subjectAltName = %s\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = %s\n' \
        "$sans" "${6:-serverAuth}" >"$pki/$name.ext"
    openssl req -config "$pki/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$pki/$name.key" -out "$pki/$name.csr" -subj "/CN=$name.$DOMAIN" 2>>"$WORK/logs/openssl.log" &&
        CA_DIR="$pki/$ca" openssl ca -config "$pki/openssl.cnf" -batch -notext \
            -cert "$pki/$ca.crt" -keyfile "$pki/$ca.key" -in "$pki/$name.csr" -out "$pki/$name.crt" \
            -startdate "$4" -enddate "$5" -extfile "$pki/$name.ext" >>"$WORK/logs/openssl.log" 2>&1 ||
        die_setup "openssl: cannot issue the $name certificate"
}

make_secrets() {
    SECRET="e2e-secret-$(openssl rand -hex 12)"
    WRONG_SECRET="e2e-wrong-$(openssl rand -hex 12)"
    WATCH_PASSWORD="e2e-password-$(openssl rand -hex 12)"
    WRONG_PASSWORD="e2e-wrong-password-$(openssl rand -hex 12)"
    # What an administrator changes the monitoring user's password to (and back from).
    CHANGED_PASSWORD="e2e-changed-password-$(openssl rand -hex 12)"
    printf '%s\n' "$SECRET" >"$WORK/secret"
    printf '%s\n' "$WRONG_SECRET" >"$WORK/wrong-secret"
    printf '%s\n' "$WATCH_PASSWORD" >"$WORK/watch-password"
    printf '%s\n' "$WRONG_PASSWORD" >"$WORK/wrong-password"
    chmod 600 "$WORK/secret" "$WORK/wrong-secret" "$WORK/watch-password" "$WORK/wrong-password"
}

# ---------------------------------------------------------------- peers

start_dnsmasq() {
    local s="_xmpp-component._tcp"
    start dnsmasq "$WORK/logs/dnsmasq.stderr" dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --no-resolv --no-hosts --bind-interfaces --listen-address="$IP1" --port="$DNS_PORT" \
        --user=root --local-ttl=5 --local="/$DOMAIN/" --local="/$DOMAIN2/" --log-queries \
        --log-facility="$WORK/logs/dnsmasq.log" \
        --srv-host="$s.$DOMAIN,$XMPP1,$XMPP_TLS_PORT,$SRV_PRIO1,$SRV_WEIGHT1" \
        --srv-host="$s.$DOMAIN,$XMPP2,$XMPP_TLS_PORT,$SRV_PRIO2,$SRV_WEIGHT2" \
        --srv-host="$s.$DOMAIN2,$XMPP1,$XMPP_TLS_PORT,10,50" \
        --srv-host="$s.$DOMAIN2,$XMPP2,$XMPP_TLS_PORT,10,50" \
        --srv-host="_xmpp-client._tcp.$DOMAIN,$XMPP2,$C2S_PORT,0,0" \
        --host-record="$XMPP1,$IP1" \
        --host-record="$XMPP2,$IP2" \
        --server="/$SIGNED/$IP1#$BIND_PORT" --server="/$EXPIRED_ZONE/$IP1#$BIND_PORT" \
        --server="/$FORGED/$IP1#$BIND_PORT"
    wait_until 10 "$PY" "$HELPERS/dnsq.py" "$IP1" "$DNS_PORT" "$s.$DOMAIN" SRV ||
        die_setup "dnsmasq did not answer on $IP1:$DNS_PORT"
    log "dnsmasq answers on $IP1:$DNS_PORT"
}

# The `3 1 1` TLSA digest of a certificate's key: SHA-256 of its SubjectPublicKeyInfo.
spki_sha256() {
    openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1
}

start_bind() {
    local dir="$WORK/bind" key
    mkdir -p "$dir/keys"
    # signed.test: BIND signs it. Its SRV answers, addresses and TLSA records are secure; the
    # TLSA record of stale.signed.test names a key the server no longer has (the expired
    # certificate's): the certificate was renewed, the record not.
    cat >"$dir/signed.db" <<EOF
\$TTL 60
@ IN SOA ns.$SIGNED. hostmaster.$SIGNED. 1 3600 600 86400 60
@ IN NS ns.$SIGNED.
ns IN A $IP1
_xmpp-component._tcp IN SRV 10 10 $XMPP_TLS_PORT xmpp.$SIGNED.
xmpp IN A $IP2
_$XMPP_TLS_PORT._tcp.xmpp IN TLSA 3 1 1 $(spki_sha256 "$WORK/pki/good.crt")
_xmpp-component._tcp.renewed IN SRV 10 10 $XMPP_TLS_PORT stale.$SIGNED.
stale IN A $IP2
_$XMPP_TLS_PORT._tcp.stale IN TLSA 3 1 1 $(spki_sha256 "$WORK/pki/expired.crt")
EOF
    # expired.test: signed offline, by a key of its own, with signatures valid in January 2020.
    key="$(cd "$dir" && dnssec-keygen -q -K keys -a ECDSAP256SHA256 -f KSK -n ZONE "$EXPIRED_ZONE")" ||
        die_setup "dnssec-keygen failed"
    {
        printf '$TTL 60\n@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n@ IN NS ns.%s.\n' \
            "$SIGNED" "$SIGNED" "$SIGNED"
        printf '_xmpp-component._tcp IN SRV 10 10 %s xmpp.%s.\nxmpp IN A %s\n' \
            "$XMPP_TLS_PORT" "$EXPIRED_ZONE" "$IP2"
        cat "$dir/keys/$key.key"
    } >"$dir/expired.db"
    (cd "$dir" && dnssec-signzone -q -z -P -K keys -o "$EXPIRED_ZONE" -s 20200101000000 \
        -e 20200201000000 -f expired.db.signed expired.db "$key") >>"$WORK/logs/bind.log" 2>&1 ||
        die_setup "dnssec-signzone failed"
    # forged.test: signed offline (valid from an hour ago for 30 days, one record per line),
    # then its TLSA record edited: the SRV and address answers are secure, the TLSA answer bogus.
    local forged
    forged="$(cd "$dir" && dnssec-keygen -q -K keys -a ECDSAP256SHA256 -f KSK -n ZONE "$FORGED")" ||
        die_setup "dnssec-keygen failed"
    {
        printf '$TTL 60\n@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n@ IN NS ns.%s.\n' \
            "$SIGNED" "$SIGNED" "$SIGNED"
        printf '_xmpp-component._tcp IN SRV 10 10 %s xmpp.%s.\nxmpp IN A %s\n' \
            "$XMPP_TLS_PORT" "$FORGED" "$IP2"
        printf '_%s._tcp.xmpp IN TLSA 3 1 1 %s\n' "$XMPP_TLS_PORT" "$(spki_sha256 "$WORK/pki/good.crt")"
        cat "$dir/keys/$forged.key"
    } >"$dir/forged.db"
    (cd "$dir" && dnssec-signzone -q -z -O full -K keys -o "$FORGED" -f forged.db.signed forged.db "$forged") \
        >>"$WORK/logs/bind.log" 2>&1 || die_setup "dnssec-signzone failed for $FORGED"
    sed -i -E 's/(IN TLSA\s+3 1 1 )[0-9A-F]{8}/\1DEADBEEF/' "$dir/forged.db.signed"
    grep -q 'IN TLSA.*3 1 1 DEADBEEF' "$dir/forged.db.signed" || die_setup "could not edit $FORGED's TLSA record"
    # rndc as on-call runs it on the signer: its key and /etc/bind/rndc.conf (in the runbook
    # commands' mount namespace), the control channel on a free port.
    rndc-confgen -a -c "$dir/rndc.key" -k rndc-key >>"$WORK/logs/bind.log" 2>&1 || die_setup "rndc-confgen failed"
    mkdir -p "$WORK/etc-bind"
    printf 'include "%s";\noptions { default-key "rndc-key"; default-server %s; default-port %s; };\n' \
        "$dir/rndc.key" "$IP1" "$RNDC_PORT" >"$WORK/etc-bind/rndc.conf"
    cat >"$dir/named.conf" <<EOF
include "$dir/rndc.key";
options {
    directory "$dir";
    key-directory "$dir/keys";
    listen-on port $BIND_PORT { $IP1; };
    listen-on port 53 { $RUNBOOK_DNS; };
    listen-on-v6 { none; };
    pid-file none;
    session-keyfile none;
    recursion no;
    dnssec-validation no;
    allow-transfer { none; };
    notify no;
};
controls { inet $IP1 port $RNDC_PORT allow { $IP1; } keys { rndc-key; }; };
zone "$SIGNED" { type primary; file "signed.db"; dnssec-policy default; inline-signing yes; };
zone "$EXPIRED_ZONE" { type primary; file "expired.db.signed"; };
zone "$FORGED" { type primary; file "forged.db.signed"; };
EOF
    start bind "$WORK/logs/bind.log" named -g -c "$dir/named.conf"
    wait_until 30 bind_signed || die_setup "BIND did not serve a signed $SIGNED on $IP1:$BIND_PORT"
    # The trust anchors: the key BIND signs signed.test with, and expired.test's.
    cat "$dir"/keys/K"$SIGNED".+*.key "$dir/keys/$key.key" "$dir/keys/$forged.key" >"$dir/trust-anchors.keys"
    log "BIND serves signed $SIGNED, $EXPIRED_ZONE and $FORGED on $IP1:$BIND_PORT and $RUNBOOK_DNS:53"
}

bind_signed() {
    dig @"$IP1" -p "$BIND_PORT" +dnssec +norec +short +time=1 SOA "$SIGNED" 2>/dev/null | grep -q '^SOA '
}

write_prosody_config() { # write_prosody_config N IP
    local n="$1" ip="$2" dir="$WORK/prosody$1" c2s_ports="{}"
    # Prosody 2 also serves clients: the watch's monitoring user logs in there.
    [ "$n" = 2 ] && c2s_ports="{ $C2S_PORT }"
    mkdir -p "$dir/data" "$dir/certs"
    cat >"$dir/prosody.cfg.lua" <<EOF
-- Prosody $n for the e2e suite: the component listeners (and on Prosody 2 the client port), on $ip.
run_as_root = true
daemonize = false
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
certificates = "$dir/certs"
log = { debug = "$WORK/logs/prosody$n.log" }
default_storage = "memory"
storage = { accounts = "internal" } -- prosodyctl registers the monitoring user before the start
interfaces = { "$ip" }
c2s_ports = $c2s_ports
c2s_direct_tls_ports = {}
s2s_ports = {}
s2s_direct_tls_ports = {}
legacy_ssl_ports = {}
-- Direct TLS from the first byte, as a Callbridge on 5223: net_multiplex routes
-- jabber:component:accept streams to mod_component.
-- STARTTLS, SASL (SCRAM-SHA-1 from internal_hashed), disco and XEP-0199 for the client path.
-- admin_shell: \`prosodyctl shell user password\` changes the monitoring user's password in the
-- running server, as an administrator does (Prosody then resets the user's sessions).
modules_enabled = { "net_multiplex", "tls", "saslauth", "disco", "ping", "admin_shell" }
ssl_ports = { $XMPP_TLS_PORT }
ssl_interfaces = { "$ip" }
ssl = { certificate = "$WORK/pki/good.crt", key = "$WORK/pki/good.key" }
-- Plaintext XEP-0114.
-- (Prosody keeps Nagle on by default, network_settings.nagle: over TLS its stream header
-- waits for an ACK of the client's delayed-ACK timer, so the stream step takes ~40 ms there.)
component_ports = { $XMPP_PLAIN_PORT }
component_interfaces = { "$ip" }

-- Every name a client sends as TLS SNI must be a host, or Prosody answers unrecognized_name.
VirtualHost "$DOMAIN"
VirtualHost "$XMPP1"
VirtualHost "$XMPP2"
VirtualHost "xmpp.$SIGNED"
VirtualHost "stale.$SIGNED"
VirtualHost "xmpp.$FORGED"

EOF
    local c
    # cb1-cb3 are the "production Callbridges" of the watch: cb1 and cb3 are connected by
    # start_callbridges, cb2 never is.
    for c in ready probe plain rapid wrongsecret held wire watch badpw legacy fleet dnssec stale forged cb1 cb2 cb3; do
        printf 'Component "%s.%s"\n    component_secret = "%s"\n' "$c" "$DOMAIN" "$SECRET" >>"$dir/prosody.cfg.lua"
    done
    printf 'Component "fleet.%s"\n    component_secret = "%s"\n' "$DOMAIN2" "$SECRET" >>"$dir/prosody.cfg.lua"
    prosodyctl --config "$dir/prosody.cfg.lua" register monitor "$DOMAIN" "$WATCH_PASSWORD" \
        >>"$WORK/logs/prosodyctl.log" 2>&1 || die_setup "prosodyctl could not register monitor@$DOMAIN"
}

start_prosody() { # start_prosody N IP FQDN
    local n="$1" ip="$2" fqdn="$3"
    start "prosody$n" "$WORK/logs/prosody$n.stderr" prosody -F --config "$WORK/prosody$n/prosody.cfg.lua"
    # Ready means a real XEP-0114 handshake, over direct TLS (with SNI) and over plaintext.
    if ! wait_until 20 "$PY" "$HELPERS/component.py" "$ip" "$XMPP_TLS_PORT" "ready.$DOMAIN" "$WORK/secret" \
        --tls "$WORK/pki/ca.crt" "$fqdn"; then
        log "      prosody$n: no component handshake over TLS on $ip:$XMPP_TLS_PORT"
        return 1
    fi
    if ! wait_until 10 "$PY" "$HELPERS/component.py" "$ip" "$XMPP_PLAIN_PORT" "ready.$DOMAIN" "$WORK/secret"; then
        log "      prosody$n: no component handshake on $ip:$XMPP_PLAIN_PORT"
        return 1
    fi
    log "prosody$n accepts component handshakes on $ip:$XMPP_TLS_PORT (TLS) and $ip:$XMPP_PLAIN_PORT"
}

# OpenSSL's TLS in front of Prosody 2: an expired certificate, a server that still accepts
# TLS 1.0/1.1 (security level 0, as old deployments run), one that speaks nothing newer.
start_stunnel() {
    local conf="$WORK/stunnel.conf"
    printf 'foreground = yes\npid =\ndebug = info\n' >"$conf"
    local old=("sslVersionMin = TLSv1" "ciphers = DEFAULT:@SECLEVEL=0")
    stunnel_service expired "$EXPIRED_PORT" expired >>"$conf"
    stunnel_service legacy "$LEGACY_PORT" good "${old[@]}" >>"$conf"
    stunnel_service oldtls "$OLDTLS_PORT" good "${old[@]}" "sslVersionMax = TLSv1.1" >>"$conf"
    start stunnel "$WORK/logs/stunnel.log" stunnel4 "$conf"
    local port
    for port in "$EXPIRED_PORT" "$LEGACY_PORT" "$OLDTLS_PORT"; do
        wait_until 10 tcp_open "$IP2" "$port" || die_setup "stunnel does not listen on $IP2:$port"
    done
    log "stunnel serves the expired certificate on $IP2:$EXPIRED_PORT, TLS 1.0+ on $LEGACY_PORT, TLS 1.0-1.1 on $OLDTLS_PORT"
}

stunnel_service() { # stunnel_service NAME PORT CERT [OPTION...]: TLS before Prosody 2's plaintext port
    local name="$1" port="$2" cert="$WORK/pki/$3"
    shift 3
    printf '\n[%s]\naccept = %s:%s\nconnect = %s:%s\ncert = %s.crt\nkey = %s.key\n' \
        "$name" "$IP2" "$port" "$IP2" "$XMPP_PLAIN_PORT" "$cert" "$cert"
    [ $# -eq 0 ] || printf '%s\n' "$@"
}

# A Web Bridge 3's C2W port: TLS that requires a client certificate from the Callbridges' CA, as
# `webbridge3 c2w trust` makes it. OpenSSL issues session tickets once it accepts one.
start_web_bridge() {
    start webbridge "$WORK/logs/webbridge.log" openssl s_server -accept "$IP2:$C2W_PORT" \
        -cert "$WORK/pki/good.crt" -key "$WORK/pki/good.key" -Verify 1 -verify_return_error \
        -CAfile "$WORK/pki/cbca.crt" -www -quiet
    wait_until 10 tcp_open "$IP2" "$C2W_PORT" || die_setup "openssl s_server does not listen on $IP2:$C2W_PORT"
    log "the Web Bridge stand-in serves C2W on $IP2:$C2W_PORT"
}

start_wiretap() { # records what the probe puts on the wire, on its way to Prosody 2
    start wiretap "$WORK/logs/wiretap.log" "$PY" "$HELPERS/wiretap.py" proxy "$IP1" "$WIRE_PORT" \
        "$IP2" "$XMPP_PLAIN_PORT" "$WORK/wire.jsonl"
    wait_until 10 tcp_open "$IP1" "$WIRE_PORT" || die_setup "the wiretap did not start"
}

start_holder() { # holds held.e2e.test on Prosody 2 so that the probe meets a real conflict
    start holder "$WORK/logs/holder.log" "$PY" "$HELPERS/component.py" "$IP2" "$XMPP_PLAIN_PORT" \
        "held.$DOMAIN" "$WORK/secret" --hold
    wait_until 10 grep -qx ready "$WORK/logs/holder.log" || die_setup "the holder did not register held.$DOMAIN"
    log "held.$DOMAIN is registered by a held connection (pid $(pid_of holder))"
}

start_callbridge() { # start_callbridge NAME ANSWER: a component that answers pings (result|error)
    : >"$WORK/logs/$1.log"
    start "$1" "$WORK/logs/$1.log" "$PY" "$HELPERS/component.py" "$IP2" "$XMPP_PLAIN_PORT" \
        "$1.$DOMAIN" "$WORK/secret" --hold --answer "$2"
    wait_until 10 grep -qx ready "$WORK/logs/$1.log" || die_setup "$1.$DOMAIN did not register"
}

start_callbridges() {
    start_callbridge cb1 result
    start_callbridge cb3 error # answers with an error of its own: still registered
    log "cb1.$DOMAIN and cb3.$DOMAIN are registered and answer pings; cb2.$DOMAIN is not"
}

# ejabberdctl with this run's node, configuration, spool and logs.
ejabberdctl_e2e() {
    ejabberdctl --config-dir "$EJ_DIR" --config "$EJ_DIR/ejabberd.yml" \
        --ctl-config "$EJ_DIR/ejabberdctl.cfg" --spool "$EJ_DIR/spool" --logs "$EJ_DIR/logs" "$@"
}

# ejabberd 23.01 on $IP1: a client port (STARTTLS, SCRAM), a TLS component listener for the
# probes, one listener per production Callbridge, and one listener for two (ejabberd routes
# every host of a listener to whichever component is connected to it: cb4 gets cb3's pings). Its s2s asks dnsmasq, so a name that
# is not connected fails fast (NXDOMAIN) instead of waiting on the machine's resolver.
start_ejabberd() {
    EJ_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cms-xmpp-e2e-ejabberd.XXXXXX")" || die_setup "mktemp failed"
    mkdir -p "$EJ_DIR/spool" "$EJ_DIR/logs"
    cat "$WORK/pki/good.crt" "$WORK/pki/ca.crt" "$WORK/pki/good.key" >"$EJ_DIR/server.pem"
    cat >"$EJ_DIR/ejabberd.yml" <<EOF
hosts: ["$DOMAIN"]
loglevel: info
certfiles: ["$EJ_DIR/server.pem"]
auth_method: internal
auth_password_format: scram
listen:
  - {port: $EJ_C2S_PORT, ip: "$IP1", module: ejabberd_c2s, starttls_required: true}
  - port: $EJ_COMPONENT_PORT
    ip: "$IP1"
    module: ejabberd_service
    tls: true
    certfile: "$EJ_DIR/server.pem" # without it, ejabberd resets every TLS handshake here
    hosts:
      "probe-ej.$DOMAIN": {password: "$SECRET"}
      "badpw-ej.$DOMAIN": {password: "$SECRET"}
      "probe-ejs.$DOMAIN": {password: "$SECRET"}
  - {port: $EJ_CB1_PORT, ip: "$IP1", module: ejabberd_service, hosts: {"cb1.$DOMAIN": {password: "$SECRET"}}}
  - {port: $EJ_CB2_PORT, ip: "$IP1", module: ejabberd_service, hosts: {"cb2.$DOMAIN": {password: "$SECRET"}}}
  - port: $EJ_SHARED_PORT
    ip: "$IP1"
    module: ejabberd_service
    hosts:
      "cb3.$DOMAIN": {password: "$SECRET"}
      "cb4.$DOMAIN": {password: "$SECRET"}
modules:
  mod_admin_extra: {} # change_password and kick_user for the password scenario
  mod_disco: {}
  mod_ping: {}
EOF
    cat >"$EJ_DIR/ejabberdctl.cfg" <<EOF
ERLANG_NODE=cms-xmpp-e2e@localhost
ERL_DIST_PORT=$EJ_DIST_PORT
INET_DIST_INTERFACE=$IP1
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
EOF
    cat >"$EJ_DIR/inetrc" <<EOF
{file, hosts, "/etc/hosts"}.
{lookup, [file, dns]}.
{resolv_conf, ""}.
{nameserver, {${IP1//./,}}, $DNS_PORT}.
EOF
    chown -R ejabberd: "$EJ_DIR"
    chmod 700 "$EJ_DIR"
    run_ejabberd
    ejabberdctl_e2e register monitor "$DOMAIN" "$WATCH_PASSWORD" >>"$WORK/logs/ejabberdctl.log" 2>&1 ||
        die_setup "ejabberdctl could not register monitor@$DOMAIN"
    start_ejabberd_callbridges
    log "ejabberd serves clients on $IP1:$EJ_C2S_PORT; cb1.$DOMAIN and cb4.$DOMAIN are connected, cb2.$DOMAIN and cb3.$DOMAIN are not"
}

run_ejabberd() { # the VM of start_ejabberd's configuration and spool (kept over a restart)
    start ejabberd "$WORK/logs/ejabberd.stdout" ejabberdctl_e2e foreground
    wait_until 30 tcp_open "$IP1" "$EJ_C2S_PORT" || die_setup "ejabberd does not listen on $IP1:$EJ_C2S_PORT"
}

start_ejabberd_callbridges() {
    start_ejabberd_callbridge
    # cb4 answers under its own name, as a component that knows it does.
    : >"$WORK/logs/ejcb4.log"
    start ejcb4 "$WORK/logs/ejcb4.log" "$PY" "$HELPERS/component.py" "$IP1" "$EJ_SHARED_PORT" \
        "cb4.$DOMAIN" "$WORK/secret" --hold --answer result --own-name
    wait_until 10 grep -qx ready "$WORK/logs/ejcb4.log" || die_setup "cb4.$DOMAIN did not register with ejabberd"
}

start_ejabberd_callbridge() {
    : >"$WORK/logs/ejcb1.log"
    start ejcb1 "$WORK/logs/ejcb1.log" "$PY" "$HELPERS/component.py" "$IP1" "$EJ_CB1_PORT" \
        "cb1.$DOMAIN" "$WORK/secret" --hold --answer result
    wait_until 10 grep -qx ready "$WORK/logs/ejcb1.log" || die_setup "cb1.$DOMAIN did not register with ejabberd"
}

# `ejabberdctl foreground` runs the VM under su: stop it through its node, then make sure.
stop_ejabberd() {
    ejabberdctl_e2e stop >>"$WORK/logs/ejabberdctl.log" 2>&1 || true
    local pid
    pid="$(pid_of ejabberd)" || return 0
    wait_until 10 bash -c "! kill -0 $pid" || true
    pkill -KILL -f -- "$EJ_DIR/spool" || true # a VM that ignored the stop
    stop_pid "$pid"
}

# ---------------------------------------------------------------- the exporter and Prometheus

write_exporter_config() {
    local cfg="$WORK/exporter.yaml"
    cat >"$cfg" <<EOF
listen_address: "$EXPORTER_ADDR"
interval: 1s
timeout: 1s
dns:
  nameservers: ["$IP1:$DNS_PORT"]
  dnssec:
    trust_anchors_file: $WORK/bind/trust-anchors.keys
targets:
EOF
    #      name              domain          server_address                 component              tls     secret        interval timeout
    target happy             "$DOMAIN"       ""                             "probe.$DOMAIN"        direct  secret
    target plain             "$DOMAIN"       "$XMPP2:$XMPP_PLAIN_PORT"      "plain.$DOMAIN"        none    secret
    target rapid             "$DOMAIN"       "$XMPP2:$XMPP_TLS_PORT"        "rapid.$DOMAIN"        direct  secret        500ms 500ms
    target wrong-secret      "$DOMAIN"       "$XMPP2:$XMPP_TLS_PORT"        "wrongsecret.$DOMAIN"  direct  wrong-secret
    target unknown-component "$DOMAIN"       "$XMPP2:$XMPP_TLS_PORT"        "nobody.$DOMAIN"       direct  secret
    target conflict          "$DOMAIN"       "$XMPP2:$XMPP_TLS_PORT"        "held.$DOMAIN"         direct  secret
    target nxdomain          "nx.$DOMAIN"    ""                             "probe.$DOMAIN"        direct  secret
    target cert-expired      "$DOMAIN"       "$XMPP2:$EXPIRED_PORT"         "probe.$DOMAIN"        direct  secret
    target legacy-tls        "$DOMAIN"       "$XMPP2:$LEGACY_PORT"          "legacy.$DOMAIN"       direct  secret
    tls_option "check_legacy_versions: true"
    target old-tls           "$DOMAIN"       "$XMPP2:$OLDTLS_PORT"          "probe.$DOMAIN"        direct  secret
    target wire              "$DOMAIN"       "$IP1:$WIRE_PORT"              "wire.$DOMAIN"         none    secret
    target watch             "$DOMAIN"       "$XMPP2:$XMPP_TLS_PORT"        "watch.$DOMAIN"        direct  secret
    watch_block ""                  watch-password cb1 cb2 cb3
    target badpw             "$DOMAIN"       "$XMPP2:$XMPP_TLS_PORT"        "badpw.$DOMAIN"        direct  secret
    watch_block "$XMPP2:$C2S_PORT"  wrong-password cb1
    target ejabberd          "$DOMAIN"       "$XMPP1:$EJ_COMPONENT_PORT"    "probe-ej.$DOMAIN"     direct  secret
    watch_block "$XMPP1:$EJ_C2S_PORT" watch-password cb1 cb2
    target ejbadpw           "$DOMAIN"       "$XMPP1:$EJ_COMPONENT_PORT"    "badpw-ej.$DOMAIN"     direct  secret
    watch_block "$XMPP1:$EJ_C2S_PORT" wrong-password cb1
    target ejshared          "$DOMAIN"       "$XMPP1:$EJ_COMPONENT_PORT"    "probe-ejs.$DOMAIN"    direct  secret
    watch_block "$XMPP1:$EJ_C2S_PORT" watch-password cb3 cb4
    # DNSSEC and DANE: answers from BIND (through dnsmasq), validated against its zones' keys.
    target dnssec-dane       "$SIGNED"       ""                             "dnssec.$DOMAIN"       direct  secret
    printf '    dnssec: true\n' >>"$cfg"
    target dane-stale        "renewed.$SIGNED" ""                           "stale.$DOMAIN"        direct  secret
    printf '    dnssec: true\n' >>"$cfg"
    target dnssec-expired    "$EXPIRED_ZONE" ""                             "probe.$DOMAIN"        direct  secret
    printf '    dnssec: true\n' >>"$cfg"
    target tlsa-forged       "$FORGED"       ""                             "forged.$DOMAIN"       direct  secret
    printf '    dnssec: true\n' >>"$cfg"
    # CMS 3's C2W link, as a Callbridge opens it to a Web Bridge 3, with its certificate.
    cat >>"$cfg" <<EOF
  - name: c2w
    protocol: tls
    server_address: "c2w://$XMPP2:$C2W_PORT"
    tls:
      ca_file: $WORK/pki/ca.crt
      client_cert_file: $WORK/pki/callbridge.crt
      client_key_file: $WORK/pki/callbridge.key
EOF
    # For the domains only Prometheus knows (the cms-xmpp-fleet job): /probe?module=cms.
    cat >>"$cfg" <<EOF
modules:
  cms:
    component: "fleet.{domain}"
    secret_file: $WORK/secret
    timeout: 5s
    tls:
      ca_file: $WORK/pki/ca.crt
EOF
}

tls_option() { # tls_option LINE: one more setting in the tls block of the target above
    printf '      %s\n' "$1" >>"${CONFIG_FILE:-$WORK/exporter.yaml}"
}

watch_block() { # watch_block SERVER_ADDRESS PASSWORD COMPONENT...: for the target above
    local address="$1" password="$2" components
    shift 2
    components="$(printf '%s.'"$DOMAIN"', ' "$@")"
    {
        printf '    watch:\n      jid: monitor@%s\n      password_file: %s\n' "$DOMAIN" "$WORK/$password"
        printf '      server_address: "%s"\n' "$address"
        printf '      tls: {mode: starttls, ca_file: %s}\n' "$WORK/pki/ca.crt"
        printf '      components: [%s]\n' "${components%, }"
    } >>"${CONFIG_FILE:-$WORK/exporter.yaml}"
}

target() { # see the table in write_exporter_config
    local name="$1" domain="$2" address="$3" component="$4" mode="$5" secret="$6"
    {
        printf '  - name: %s\n    domain: %s\n' "$name" "$domain"
        [ -n "$address" ] && printf '    server_address: "%s"\n' "$address"
        printf '    component: %s\n    secret_file: %s\n' "$component" "$WORK/$secret"
        [ -n "${7:-}" ] && printf '    interval: %s\n    timeout: %s\n' "$7" "$8"
        if [ "$mode" = none ]; then
            printf '    tls:\n      mode: none\n'
        else
            printf '    tls:\n      mode: direct\n      ca_file: %s\n' "$WORK/pki/ca.crt"
        fi
    } >>"${CONFIG_FILE:-$WORK/exporter.yaml}"
}

start_exporter() {
    write_exporter_config
    # NO_COLOR: plain log lines for the greps below, whatever the build decides about colour.
    start exporter "$WORK/logs/exporter.log" env NO_COLOR=1 "$BIN" --config "$WORK/exporter.yaml" --log-level debug
    wait_until 15 http_ok "http://$EXPORTER_ADDR/metrics" || die_setup "the exporter does not serve http://$EXPORTER_ADDR/metrics"
    log "the exporter serves http://$EXPORTER_ADDR/metrics (pid $(pid_of exporter))"
}

start_prometheus() {
    mkdir -p "$WORK/prometheus-data"
    cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["$ROOT/alerts/cms-xmpp.rules.yml"]
scrape_configs:
  - job_name: cms-xmpp-exporter
    static_configs:
      - targets: ["$EXPORTER_ADDR"]
EOF
    # The shipped fleet job (deploy/prometheus/fleet.yml): Prometheus knows the XMPP domains,
    # the exporter probes each through /probe?module=cms. Only addresses and pace are ours.
    sed -n '/^  - job_name/,$p' "$ROOT/deploy/prometheus/fleet.yml" |
        sed -e "s|cms-xmpp-exporter.monitoring.svc:9523|$EXPORTER_ADDR|" \
            -e "s|/etc/prometheus/cms-domains/\*.json|$WORK/fleet-targets.json|" \
            >>"$WORK/prometheus.yml"
    grep -q 'scrape_interval: 30s' "$WORK/prometheus.yml" ||
        die_setup "deploy/prometheus/fleet.yml: the shipped 30 s pace was not found"
    { [ "$(grep -c "$EXPORTER_ADDR" "$WORK/prometheus.yml")" -ge 2 ] && grep -q fleet-targets.json "$WORK/prometheus.yml"; } ||
        die_setup "deploy/prometheus/fleet.yml: its exporter address or target files were not found to set"
    printf '[{"targets": ["%s", "%s"], "labels": {"cluster": "lab"}}]\n' "$DOMAIN" "$DOMAIN2" \
        >"$WORK/fleet-targets.json"
    PROM_STARTED=$(date +%s)
    start prometheus "$WORK/logs/prometheus.log" prometheus --config.file="$WORK/prometheus.yml" \
        --storage.tsdb.path="$WORK/prometheus-data" --web.listen-address="$PROM_ADDR" \
        --log.level=info
    wait_until 30 http_ok "http://$PROM_ADDR/-/ready" || die_setup "Prometheus is not ready on $PROM_ADDR"
    log "Prometheus is ready on http://$PROM_ADDR"
}

# ---------------------------------------------------------------- scenarios

happy_path() {
    scenario "Happy path: SRV with two servers over direct TLS" happy \
        "$WORK/logs/prosody1.log|probe\\.$DOMAIN|[[:space:]](warn|error)[[:space:]]" \
        "$WORK/logs/prosody2.log|probe\\.$DOMAIN|[[:space:]](warn|error)[[:space:]]" \
        "$WORK/logs/dnsmasq.log|_xmpp-component._tcp.$DOMAIN"
    local t='target="happy"' s1="$XMPP1:$XMPP_TLS_PORT" s2="$XMPP2:$XMPP_TLS_PORT" s step
    wait_for_metric "happy: cms_xmpp_probe_success is 1" "cms_xmpp_probe_success{$t} == 1"
    wait_for_metric "happy: both servers up" "cms_xmpp_server_up{$t} == 1"
    expect_count "happy: exactly two servers (from SRV)" "cms_xmpp_server_up{$t}" 2
    expect_metric "happy: cms_xmpp_srv_records is 2" "cms_xmpp_srv_records{$t} == 2"
    expect_metric "happy: step srv ran (server=\"\"), duration plausible (0 < d < 1s)" \
        "cms_xmpp_step_last_duration_seconds{$t,server=\"\",step=\"srv\"} > 0 < 1"
    for s in "$s1" "$s2"; do
        for step in resolve connect tls stream handshake; do
            expect_metric "happy: $s step $step ran, duration plausible (0 < d < 1s timeout)" \
                "cms_xmpp_step_last_duration_seconds{$t,server=\"$s\",step=\"$step\"} > 0 < 1"
        done
        expect_metric "happy: $s certificate trusted" "cms_xmpp_cert_trusted{$t,server=\"$s\"} == 1"
        expect_metric "happy: $s SANs cover the domain" \
            "cms_xmpp_cert_san_covered{$t,server=\"$s\",role=\"domain\",name=\"$DOMAIN\"} == 1"
        expect_metric "happy: $s SANs cover the FQDN" \
            "cms_xmpp_cert_san_covered{$t,server=\"$s\",role=\"fqdn\",name=\"${s%%:*}\"} == 1"
        expect_metric "happy: $s TLS 1.2 or 1.3" "cms_xmpp_tls_info{$t,server=\"$s\",version=~\"TLSv1\\.[23]\"} == 1"
        expect_metric "happy: $s cert_info has the leaf's serial (as openssl prints it) and SANs" \
            "cms_xmpp_cert_info{$t,server=\"$s\",serial=\"$GOOD_SERIAL\",sans=\"$GOOD_SANS\"} == 1"
        expect_metric "happy: $s last success timestamp is recent" \
            "cms_xmpp_last_success_timestamp_seconds{$t,server=\"$s\"} > $(($(date +%s) - 30))"
    done
    expect_metric "happy: server_info of $s1 (srv, priority $SRV_PRIO1, weight $SRV_WEIGHT1, preferred, at 127.0.0.1)" \
        "cms_xmpp_server_info{$t,server=\"$s1\",source=\"srv\",priority=\"$SRV_PRIO1\",weight=\"$SRV_WEIGHT1\",preferred=\"true\",address=\"$IP1:$XMPP_TLS_PORT\"} == 1"
    expect_metric "happy: server_info of $s2 (srv, priority $SRV_PRIO2, weight $SRV_WEIGHT2, not preferred, at 127.0.0.2)" \
        "cms_xmpp_server_info{$t,server=\"$s2\",source=\"srv\",priority=\"$SRV_PRIO2\",weight=\"$SRV_WEIGHT2\",preferred=\"false\",address=\"$IP2:$XMPP_TLS_PORT\"} == 1"
    expect_count "happy: no cms_xmpp_failing_step_info" "cms_xmpp_failing_step_info{$t}" 0
    expect_metric "happy: cms_xmpp_probe_duration_seconds plausible (0 < d < 1s)" \
        "cms_xmpp_probe_duration_seconds{$t} > 0 < 1"
    expect_metric "happy: cms_xmpp_last_probe_timestamp_seconds is recent" \
        "cms_xmpp_last_probe_timestamp_seconds{$t} > $(($(date +%s) - 10))"
    expect_metric "happy: cms_xmpp_probes_total counts cycles" "cms_xmpp_probes_total{$t} >= 1"
    expect_metric "exporter: cms_xmpp_config_last_reload_successful is 1" "cms_xmpp_config_last_reload_successful == 1"
    expect_metric "exporter: cms_xmpp_build_info present" "cms_xmpp_build_info == 1"
}

plaintext() {
    scenario "Plaintext mode (tls.mode: none) against Prosody's component port" plain \
        "$WORK/logs/prosody2.log|component|stream:error"
    local t='target="plain"' s="$XMPP2:$XMPP_PLAIN_PORT" step
    wait_for_metric "plain: cms_xmpp_probe_success is 1" "cms_xmpp_probe_success{$t} == 1"
    expect_metric "plain: server up" "cms_xmpp_server_up{$t,server=\"$s\"} == 1"
    for step in resolve connect stream handshake; do
        expect_metric "plain: step $step ran" "cms_xmpp_step_last_duration_seconds{$t,server=\"$s\",step=\"$step\"} >= 0"
    done
    expect_metric "plain: server_info source static, preferred" \
        "cms_xmpp_server_info{$t,server=\"$s\",source=\"static\",priority=\"\",weight=\"\",preferred=\"true\"} == 1"
    if metric_absent "cms_xmpp_step_last_duration_seconds{$t,step=~\"tls|srv\"}" && metric_absent "cms_xmpp_tls_info{$t}" &&
        metric_absent "cms_xmpp_cert_info{$t}"; then
        pass "plain: no srv or tls step series, no TLS or certificate facts"
    else
        fail "plain: no srv or tls step series, no TLS or certificate facts"
        explain "cms_xmpp_step_last_duration_seconds{$t,step=~\"tls|srv\"} (absent)"
    fi
}

xmpp_failures() {
    local s="$XMPP2:$XMPP_TLS_PORT"
    scenario "Wrong secret" wrong-secret "$WORK/logs/prosody2.log|not-authorized|Invalid component handshake"
    expect_failure wrong-secret "$s" handshake not_authorized
    expect_metric "wrong-secret: the stream step ran before (the failing step is the handshake)" \
        "cms_xmpp_step_last_duration_seconds{target=\"wrong-secret\",server=\"$s\",step=\"stream\"} > 0"

    scenario "Unknown component name" unknown-component "$WORK/logs/prosody2.log|host-unknown"
    expect_failure unknown-component "$s" stream host_unknown

    scenario "Duplicate name (held by another connection)" conflict "$WORK/logs/prosody2.log|conflict" \
        "$WORK/logs/holder.log|"
    expect_failure conflict "$s" handshake conflict
    if alive "$(pid_of holder)"; then
        pass "conflict: the holder's connection survives (kick_new: the probe is refused, not the holder)"
    else
        fail "conflict: the holder's connection survives"
        show_log "$WORK/logs/holder.log"
    fi
}

dnssec_dane() { # the other DNSSEC and DANE cases are proven against BIND in tests/integration
    scenario "DNSSEC and DANE: BIND signs the zone, dnsmasq forwards it" dnssec-dane \
        "$WORK/logs/dnsmasq.log|$SIGNED|$EXPIRED_ZONE"
    local t='target="dnssec-dane"' s="xmpp.$SIGNED:$XMPP_TLS_PORT" stale="stale.$SIGNED:$XMPP_TLS_PORT"
    wait_for_metric "dnssec: a signed zone's target registers" "cms_xmpp_probe_success{$t} == 1"
    expect_metric "dnssec: its SRV answer is secure" "cms_xmpp_dnssec_info{$t,server=\"\",state=\"secure\"} == 1"
    expect_metric "dnssec: its server's addresses are secure" "cms_xmpp_dnssec_info{$t,server=\"$s\",state=\"secure\"} == 1"
    expect_metric "dnssec: the first signature expires in more than a day (BIND signs for two weeks)" \
        "cms_xmpp_dnssec_signature_expiry_timestamp_seconds{$t} > $(($(date +%s) + 86400))"
    expect_metric "dane: the 3 1 1 record matches the key Prosody serves" "cms_xmpp_dane_valid{$t,server=\"$s\"} == 1"
    expect_count "dane: no finding for it" "cms_xmpp_finding_info{$t}" 0
    t='target="dane-stale"'
    wait_for_metric "dane: a record left from the certificate before is no match" \
        "cms_xmpp_dane_valid{$t,server=\"$stale\"} == 0"
    expect_metric "dane: ... found as dane_mismatch" "cms_xmpp_finding_info{$t,server=\"$stale\",finding=\"dane_mismatch\"} == 1"
    expect_metric "dane: ... while a Callbridge, which checks no DANE, still registers" "cms_xmpp_probe_success{$t} == 1"
    t='target="tlsa-forged"'
    local forged="xmpp.$FORGED:$XMPP_TLS_PORT"
    wait_for_metric "dane: a TLSA record changed after signing is the finding dane_tlsa_bogus" \
        "cms_xmpp_finding_info{$t,server=\"$forged\",finding=\"dane_tlsa_bogus\"} == 1"
    expect_metric "dane: ... while the target registers (a Callbridge asks no TLSA)" "cms_xmpp_probe_success{$t} == 1"
    expect_metric "dane: ... and its addresses stay secure" \
        "cms_xmpp_dnssec_info{$t,server=\"$forged\",state=\"secure\"} == 1"
    expect_count "dane: ... and DANE is not judged" "cms_xmpp_dane_valid{$t}" 0
    t='target="dnssec-expired"'
    expect_failure dnssec-expired "" srv dnssec_bogus
    expect_metric "dnssec: expired signatures make the SRV answer bogus" \
        "cms_xmpp_dnssec_info{$t,server=\"\",state=\"bogus\"} == 1"
    local debug page
    debug="$(curl -fsS "http://$EXPORTER_ADDR/probe?target=dnssec-expired&debug=true")"
    if grep -q "expired at 2020-02-01" <<<"$debug"; then
        pass "dnssec: the probe says which signature expired, and when"
    else
        fail "dnssec: the probe says which signature expired, and when"
        head -n 20 <<<"$debug" | sed 's/^/      | /'
    fi
    debug="$(curl -fsS "http://$EXPORTER_ADDR/probe?target=dane-stale&debug=true")"
    if grep -q "TLSA 3 1 1 .*: matches nothing" <<<"$debug"; then
        pass "dane: the probe shows the record and that it matches nothing"
    else
        fail "dane: the probe shows the record and that it matches nothing"
        grep -n "DANE\|TLSA" <<<"$debug" | sed 's/^/      | /'
    fi
    page="$(curl -fsS "http://$EXPORTER_ADDR/")"
    if grep -q "DNSSEC: SRV answer secure" <<<"$page" && grep -q "DANE NOT valid" <<<"$page"; then
        pass "dnssec and dane: the status page shows both"
    else
        fail "dnssec and dane: the status page shows both"
    fi
}

c2w_link() { # the other verdicts (TLS 1.2, refusals, closes, resets) are in tests/integration
    scenario "C2W: a TLS link to a Web Bridge 3 (openssl s_server -Verify) with the Callbridge's certificate" \
        c2w "$WORK/logs/webbridge.log|"
    local t='target="c2w"' s="server=\"$XMPP2:$C2W_PORT\"" debug
    wait_for_metric "c2w: the Web Bridge accepts the Callbridge's certificate: the link is up" \
        "cms_xmpp_server_up{$t,$s} == 1"
    expect_metric "c2w: the handshake alone is step tls (no wait counted in it)" \
        "cms_xmpp_step_last_duration_seconds{$t,$s,step=\"tls\"} < 0.5"
    expect_metric "c2w: the verdict is step client_cert, over at the session ticket" \
        "cms_xmpp_step_last_duration_seconds{$t,$s,step=\"client_cert\"} < 0.5"
    expect_metric "c2w: the client certificate's end is exported" \
        "cms_xmpp_client_cert_not_after_timestamp_seconds{$t} > $(($(date +%s) + 29 * 86400))"
    expect_count "c2w: no finding" "cms_xmpp_finding_info{$t}" 0
    debug="$(curl -fsS "http://$EXPORTER_ADDR/probe?target=c2w&debug=true")"
    if grep -Eq '^  client_cert .* ok .* session_ticket$' <<<"$debug"; then
        pass "c2w: the probe says what showed the verdict (a session ticket)"
    else
        fail "c2w: the probe says what showed the verdict (a session ticket)"
        head -n 20 <<<"$debug" | sed 's/^/      | /'
    fi
}

# run_runbook SECTION NAME=VALUE...: every ```sh block of the runbook's section, as written, with
# its placeholders set, in a mount namespace whose /etc/hosts knows the lab's names (as an
# on-call host's resolver knows the XMPP servers). Output in $WORK/runbook-<SECTION>.out.
RUNBOOK_OUT=""
RUNBOOK_SCRIPT=""
run_runbook() {
    local section="$1" script="$WORK/runbook-$1.sh"
    shift
    RUNBOOK_OUT="$WORK/runbook-$section.out"
    RUNBOOK_SCRIPT="$script"
    if ! "$PY" "$HELPERS/runbook.py" "$ROOT/docs/runbook.md" "$section" >"$script" 2>"$RUNBOOK_OUT"; then
        fail "runbook: $section has shell commands to run ($(cat "$RUNBOOK_OUT"))"
        return 1
    fi
    env "$@" unshare --mount bash -c 'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/bind &&
        exec bash "$2"' "$WORK/hosts" "$WORK/etc-bind" "$script" >"$RUNBOOK_OUT" 2>&1
    # A command the tools refuse is the runbook's fault, whatever else it printed.
    if grep -Eq 'command not found|[Uu]sage:|[Ii]nvalid option|[Uu]nknown option|syntax error|No such file|bad variable' "$RUNBOOK_OUT"; then
        fail "runbook: $section's commands run as written"
        sed 's/^/      | /' "$RUNBOOK_OUT" | head -n 30
        return 1
    fi
    pass "runbook: $section's commands run as written"
}

# runbook_shows DESCRIPTION PATTERN...: every PATTERN (grep -E) is in the last run_runbook output.
runbook_shows() {
    local desc="$1" pattern
    shift
    for pattern in "$@"; do
        if ! grep -Eq -- "$pattern" "$RUNBOOK_OUT"; then
            fail "$desc (no /$pattern/)"
            sed 's/^/      | /' "$RUNBOOK_OUT" | head -n 40
            return 1
        fi
    done
    pass "$desc"
}

# runbook_lacks DESCRIPTION PATTERN [COMMAND]: PATTERN (grep -E) is not in the last run_runbook
# output, and COMMAND (grep -F), when given, is among the commands that ran.
runbook_lacks() {
    if [ -n "${3:-}" ] && ! grep -qF -- "$3" "$RUNBOOK_SCRIPT"; then
        fail "$1 (the runbook no longer runs $3)"
        return 1
    fi
    if grep -Eq -- "$2" "$RUNBOOK_OUT"; then
        fail "$1"
        grep -E -- "$2" "$RUNBOOK_OUT" | head -n 5 | sed 's/^/      | /'
        return 1
    fi
    pass "$1"
}

runbook_commands() { # the DNSSEC, DANE and C2W sections' commands, against BIND and the Web Bridge
    scenario "The runbook's DNSSEC, DANE and C2W commands, as written" ""
    printf '127.0.0.1 localhost\n%s %s\n%s %s xmpp.%s stale.%s xmpp.%s\n' "$IP1" "$XMPP1" \
        "$IP2" "$XMPP2" "$SIGNED" "$SIGNED" "$FORGED" >"$WORK/hosts"
    local common=(EXPORTER="http://$EXPORTER_ADDR" PROM="http://$PROM_ADDR" DNS="$RUNBOOK_DNS"
        ANCHORS="$WORK/bind/trust-anchors.keys" PORT="$XMPP_TLS_PORT")
    run_runbook CmsXmppDnssecBogus "${common[@]}" TARGET=dnssec-expired DOMAIN="$EXPIRED_ZONE" \
        ZONE="$EXPIRED_ZONE" &&
        runbook_shows "runbook: CmsXmppDnssecBogus's commands show the expired signature (debug, dig +cd) and delv with the anchors refuses it" \
            'expired at 2020-02-01' 'RRSIG[[:space:]]+SRV 13 .* 20200201000000 ' 'DNSKEY[[:space:]]+257 3 13 ' \
            'resolution failed'
    run_runbook CmsXmppDnssecBogus "${common[@]}" TARGET=dnssec-dane DOMAIN="$SIGNED" ZONE="$SIGNED" &&
        runbook_shows "runbook: ... and on a healthy island delv with the anchors fully validates" \
            '^; fully validated' 'RRSIG[[:space:]]+SRV ' &&
        runbook_lacks "runbook: ... and rndc sign re-signs the zone BIND signs" '^rndc: ' 'rndc sign "$DOMAIN"'
    run_runbook CmsXmppDnssecSignaturesExpiring "${common[@]}" TARGET=dnssec-dane DOMAIN="$SIGNED" \
        SERVER="xmpp.$SIGNED" &&
        runbook_shows "runbook: CmsXmppDnssecSignaturesExpiring's commands name the first answer to expire, show each RRSIG and the signer's status" \
            '^first DNSSEC signature to expire: (SRV|A/AAAA|TLSA) ' 'RRSIG[[:space:]]+SRV ' 'RRSIG[[:space:]]+A ' \
            'RRSIG[[:space:]]+TLSA ' '^secure: yes$' '^next resign time: '
    run_runbook CmsXmppDaneMismatch "${common[@]}" TARGET=dane-stale SERVER="stale.$SIGNED" &&
        runbook_shows "runbook: CmsXmppDaneMismatch's commands show the record, the mismatch and the served key's digest" \
            'matches nothing' 'TLSA[[:space:]]+3 1 1 ' "= $(spki_sha256 "$WORK/pki/good.crt")\$"
    run_runbook CmsXmppDaneTlsaBogus "${common[@]}" TARGET=tlsa-forged SERVER="xmpp.$FORGED" &&
        runbook_shows "runbook: CmsXmppDaneTlsaBogus's commands say why the TLSA answer is bogus and show its RRSIG" \
            'TLSA .*(bogus|does not verify|signature)' 'TLSA[[:space:]]+3 1 1 DEADBEEF' 'RRSIG[[:space:]]+TLSA '
    local c2w=(SERVER="$XMPP2" PORT="$C2W_PORT" CLIENT_KEY="$WORK/pki/callbridge.key" TARGET=c2w)
    run_runbook CmsXmppClientCertificateExpiring "${common[@]}" "${c2w[@]}" \
        CLIENT_CERT="$WORK/pki/callbridge.crt" &&
        runbook_shows "runbook: CmsXmppClientCertificateExpiring's commands show the client certificate's end" \
            '^notAfter=' 'target="c2w".* => (29|30)\.'
    run_runbook CmsXmppRegistrationFailing "${common[@]}" "${c2w[@]}" CLIENT_CERT="$WORK/pki/callbridge.crt" &&
        runbook_shows "runbook: the C2W verdict by hand: a session ticket for the Callbridge's certificate" \
            'Post-Handshake New Session Ticket'
    run_runbook CmsXmppRegistrationFailing "${common[@]}" "${c2w[@]}" CLIENT_CERT="$WORK/pki/stranger.crt" \
        CLIENT_KEY="$WORK/pki/stranger.key" &&
        runbook_shows "runbook: ... and an alert for another CA's" 'alert (unknown ca|bad certificate)'
    run_runbook CmsXmppTlsFinding "${common[@]}" "${c2w[@]}" CLIENT_CERT="$WORK/pki/callbridge.crt" &&
        runbook_shows "runbook: CmsXmppTlsFinding's client-certificate check lists the CA names the Web Bridge asks for" \
            'cms-xmpp-exporter e2e cbca'
}

tls_policy() { # the certificate findings are proven with rcgen and openssl (tests/integration)
    scenario "A server that speaks TLS 1.0/1.1 only (stunnel, sslVersionMax TLSv1.1)" old-tls \
        "$WORK/logs/stunnel.log|oldtls|SSL"
    expect_failure old-tls "$XMPP2:$OLDTLS_PORT" tls tls_version
    scenario "A server that still accepts TLS 1.0/1.1, checked (stunnel, sslVersionMin TLSv1)" legacy-tls \
        "$WORK/logs/stunnel.log|legacy|SSL"
    local t='target="legacy-tls"' s="$XMPP2:$LEGACY_PORT"
    wait_for_metric "legacy-tls: registration works over TLS 1.2+" "cms_xmpp_server_up{$t,server=\"$s\"} == 1"
    wait_for_metric "legacy-tls: finding legacy_tls" "cms_xmpp_finding_info{$t,server=\"$s\",finding=\"legacy_tls\"} == 1"
    expect_count "legacy-tls: no other finding" "cms_xmpp_finding_info{$t}" 1
    expect_count "happy: not asked, no finding" 'cms_xmpp_finding_info{target="happy"}' 0
}

dns_failures() { # the other DNS reasons are proven against an in-process server (tests/integration)
    scenario "NXDOMAIN (dnsmasq)" nxdomain "$WORK/logs/dnsmasq.log|nx\\.$DOMAIN"
    expect_failure nxdomain "" srv nxdomain
    expect_metric "nxdomain: cms_xmpp_srv_records is 0" 'cms_xmpp_srv_records{target="nxdomain"} == 0'
    expect_count "nxdomain: no per-server series" 'cms_xmpp_step_last_duration_seconds{target="nxdomain",server!=""}' 0
}

cert_failures() { # the other certificate reasons are proven with rcgen certificates (tests/integration)
    scenario "Expired certificate (openssl-made, served by stunnel)" cert-expired "$WORK/logs/stunnel.log|expired|SSL"
    local t='target="cert-expired"' s="$XMPP2:$EXPIRED_PORT"
    expect_failure cert-expired "$s" cert cert_expired
    expect_metric "cert-expired: the tls step itself ran" "cms_xmpp_step_last_duration_seconds{$t,server=\"$s\",step=\"tls\"} > 0"
    expect_metric "cert-expired: not_after is exported and in the past" \
        "cms_xmpp_cert_not_after_timestamp_seconds{$t,server=\"$s\"} == $EXPIRED_NOT_AFTER"
    expect_metric "cert-expired: still trusted apart from expiry" "cms_xmpp_cert_trusted{$t,server=\"$s\"} == 1"
    expect_metric "cert-expired: the chain ends with the leaf (position 0), at its not_after" \
        "cms_xmpp_cert_chain_not_after_timestamp_seconds{$t,server=\"$s\",position=\"0\"} == $EXPIRED_NOT_AFTER"
}

wire_format() {
    scenario "On the wire: lowercase digest, clean close (recorded between the probe and Prosody)" wire \
        "$WORK/logs/prosody2.log|wire\\.$DOMAIN"
    local t='target="wire"' s="$IP1:$WIRE_PORT" out deadline=$((SECONDS + WAIT))
    wait_for_metric "wire: cms_xmpp_probe_success is 1 (IP literal server, plaintext)" "cms_xmpp_probe_success{$t} == 1"
    expect_metric "wire: the resolve step of an IP literal ran (and, the server being up, passed)" \
        "cms_xmpp_step_last_duration_seconds{$t,server=\"$s\",step=\"resolve\"} >= 0"
    local ok=1
    until out="$("$PY" "$HELPERS/wiretap.py" check "$WORK/wire.jsonl" "$WORK/secret" "wire.$DOMAIN" 5 2>&1)"; do
        if [ "$SECONDS" -ge "$deadline" ]; then ok=0; break; fi
        sleep 0.5
    done
    if [ "$ok" = 1 ]; then
        pass "wire: $out"
    else
        fail "wire: what the probe sent is not what XEP-0114 asks for"
        sed 's/^/      /' <<<"$out"
        show_log "$WORK/logs/prosody2.log" "wire\\.$DOMAIN"
    fi
}

timing() {
    scenario "Timings measure the server: the stream step against Prosody over TLS 1.3" happy \
        "$WORK/logs/prosody1.log|probe\\.$DOMAIN" "$WORK/logs/prosody2.log|probe\\.$DOMAIN"
    local t='target="happy"' window=20
    expect_count "timing: both servers of happy negotiate TLS 1.3" "cms_xmpp_tls_info{$t,version=\"TLSv1.3\"}" 2
    # Prosody keeps Nagle on: without quick ACKs its stream header waited ~40 ms for our
    # delayed ACK of its session ticket. Every probe of the last 20 s, as Prometheus saw them.
    wait_for_query "timing: Prometheus holds ${window}s of happy's stream steps" \
        "count_over_time(cms_xmpp_step_last_duration_seconds{$t,step=\"stream\"}[${window}s])" 'result >= 15' 40
    wait_for_query "timing: the stream step stayed under 10 ms on both servers (max over ${window}s)" \
        "max_over_time(cms_xmpp_step_last_duration_seconds{$t,step=\"stream\"}[${window}s])" 'result < 0.01'
    wait_for_query "timing: ... on both of them" \
        "count(max_over_time(cms_xmpp_step_last_duration_seconds{$t,step=\"stream\"}[${window}s]) < 0.01)" 'result == 2'
}

many_cycles() {
    scenario "Many consecutive cycles never meet our own name (clean close)" rapid \
        "$WORK/logs/prosody2.log|conflict"
    wait_for_metric "rapid: at least 25 cycles at a 500ms interval" 'cms_xmpp_probes_total{target="rapid"} >= 25' 40
    expect_metric "rapid: last probe succeeded" 'cms_xmpp_probe_success{target="rapid"} == 1'
    if metric_absent 'cms_xmpp_probe_failures_total{target="rapid"}'; then
        pass "rapid: no failed cycle at all"
    else
        fail "rapid: no failed cycle at all"
        explain 'cms_xmpp_probe_failures_total{target="rapid"} (absent)'
    fi
    if metric_absent 'cms_xmpp_probe_failures_total{target!="conflict",reason="conflict"}'; then
        pass "no target but 'conflict' ever saw reason=\"conflict\" (the probe closes its stream cleanly)"
    else
        fail "no target but 'conflict' ever saw reason=\"conflict\""
        CTX_TARGET="" explain 'cms_xmpp_probe_failures_total{reason="conflict"} (absent)'
    fi
}

failover() {
    scenario "Failover: stop Prosody 1, the target stays up; restart it, it recovers" happy \
        "$WORK/logs/prosody1.log|" "$WORK/logs/prosody1.stderr|"
    local t='target="happy"' s1="$XMPP1:$XMPP_TLS_PORT" s2="$XMPP2:$XMPP_TLS_PORT"
    wait_for_metric "failover: both servers up before" "cms_xmpp_server_up{$t} == 1" || return
    local pid
    FAILOVER_STARTED=$(date +%s)
    pid="$(pid_of prosody1)"
    stop_pid "$pid"
    log "      stopped prosody1 (pid $pid)"
    local deadline=$((SECONDS + WAIT)) zero_seen=0 ok=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        if scrape; then
            metric_holds "cms_xmpp_probe_success{$t} == 1" || zero_seen=1
            if metric_holds "cms_xmpp_failing_step_info{$t,server=\"$s1\",step=\"connect\",reason=\"refused\"} == 1"; then
                ok=1
                break
            fi
        fi
        sleep 0.3
    done
    if [ "$ok" = 1 ]; then pass "failover: $s1 fails at step connect with reason refused"; else
        fail "failover: $s1 fails at step connect with reason refused"
        explain "cms_xmpp_failing_step_info{$t,server=\"$s1\",step=\"connect\",reason=\"refused\"} == 1"
    fi
    expect_metric "failover: $s1 is down" "cms_xmpp_server_up{$t,server=\"$s1\"} == 0"
    expect_metric "failover: $s2 is still up" "cms_xmpp_server_up{$t,server=\"$s2\"} == 1"
    expect_metric "failover: the target stays successful" "cms_xmpp_probe_success{$t} == 1"
    expect_metric "failover: $s1 keeps its last certificate facts" "cms_xmpp_cert_trusted{$t,server=\"$s1\"} == 1"
    expect_metric "failover: the refused connects are counted" \
        "cms_xmpp_probe_failures_total{$t,server=\"$s1\",step=\"connect\",reason=\"refused\"} >= 1"

    if start_prosody 1 "$IP1" "$XMPP1"; then
        pass "failover: prosody1 restarted and accepts handshakes again"
    else
        fail "failover: prosody1 restarted and accepts handshakes again"
        show_log "$WORK/logs/prosody1.stderr"
        show_log "$WORK/logs/prosody1.log"
    fi
    wait_for_metric "failover: $s1 recovers after the restart" "cms_xmpp_server_up{$t,server=\"$s1\"} == 1" &&
        wait_for_absent "failover: no failing step left" "cms_xmpp_failing_step_info{$t}"
    if [ "$zero_seen" = 0 ] && metric_holds "cms_xmpp_probe_success{$t} == 1"; then
        pass "failover: cms_xmpp_probe_success stayed 1 in every scrape while $s1 went down"
    else
        fail "failover: cms_xmpp_probe_success stayed 1 in every scrape while $s1 went down"
    fi
}

live_registration() {
    scenario "Live registration: the monitoring user logs in (SRV, STARTTLS, SCRAM) and pings cb1-cb3" watch \
        "$WORK/logs/prosody2.log|monitor@|cb[123]\\.$DOMAIN|[[:space:]](warn|error)[[:space:]]" \
        "$WORK/logs/dnsmasq.log|_xmpp-client"
    local t='target="watch"' s="$XMPP2:$C2S_PORT" step
    wait_for_metric "watch: cms_xmpp_watch_success is 1" "cms_xmpp_watch_success{$t} == 1"
    expect_metric "watch: the SRV step of the login ran (server=\"\")" \
        "cms_xmpp_watch_step_last_duration_seconds{$t,server=\"\",step=\"srv\"} > 0 < 1"
    for step in resolve connect starttls tls sasl bind; do
        expect_metric "watch: $s step $step ran, duration plausible (0 <= d < 1s)" \
            "cms_xmpp_watch_step_last_duration_seconds{$t,server=\"$s\",step=\"$step\"} >= 0 < 1"
    done
    expect_count "watch: no failing login step" "cms_xmpp_watch_failing_step_info{$t}" 0
    expect_metric "watch: cb1 (answers pings) is registered" "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1"
    expect_metric "watch: cb3 (answers with an error of its own) is registered" \
        "cms_xmpp_component_registered{$t,component=\"cb3.$DOMAIN\"} == 1"
    expect_metric "watch: cb2 (not connected) is not registered" "cms_xmpp_component_registered{$t,component=\"cb2.$DOMAIN\"} == 0"
    expect_metric "watch: cb2 fails with reason component_unavailable" \
        "cms_xmpp_component_failing_info{$t,component=\"cb2.$DOMAIN\",reason=\"component_unavailable\"} == 1"
    expect_count "watch: only cb2 fails" "cms_xmpp_component_failing_info{$t}" 1
    expect_metric "watch: cb1's round trip is plausible (0 < d < 1s)" \
        "cms_xmpp_component_ping_seconds{$t,component=\"cb1.$DOMAIN\"} > 0 < 1"
    expect_metric "watch: the component flow of the same target is unaffected" "cms_xmpp_probe_success{$t} == 1"

    scenario "Live registration: cb1 goes away and comes back" watch "$WORK/logs/cb1.log|" \
        "$WORK/logs/prosody2.log|cb1\\.$DOMAIN"
    stop_pid "$(pid_of cb1)"
    log "      stopped cb1's component connection"
    # Within two intervals (1 s each) of the stop, give or take a scrape.
    wait_for_metric "watch: cb1 is not registered within two intervals" \
        "cms_xmpp_component_failing_info{$t,component=\"cb1.$DOMAIN\",reason=\"component_unavailable\"} == 1" 3
    expect_metric "watch: cms_xmpp_component_registered of cb1 is 0" "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 0"
    expect_metric "watch: the login itself still works" "cms_xmpp_watch_success{$t} == 1"
    start_callbridge cb1 result
    wait_for_metric "watch: cb1 is registered again within two intervals" \
        "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1" 3

    scenario "Live registration: cb1 hangs with its connection open, then recovers" watch \
        "$WORK/logs/cb1.log|" "$WORK/logs/prosody2.log|cb1\\.$DOMAIN"
    local sessions
    recent_scrape
    sessions="$("$PY" "$HELPERS/metrics.py" value "$WORK/scrape.prom" "cms_xmpp_watch_sessions_total{$t}")"
    kill -STOP "$(pid_of cb1)"
    log "      stopped cb1's process (SIGSTOP): its TCP connection to Prosody stays open"
    # The kept session's defaults: a round every 2 s, 2 s for the answers.
    wait_for_metric "watch: a hung cb1 reads not registered (timeout) within 5 s" \
        "cms_xmpp_component_failing_info{$t,component=\"cb1.$DOMAIN\",reason=\"timeout\"} == 1" "$PROMISE"
    expect_metric "watch: ... while the session itself lives" "cms_xmpp_watch_success{$t} == 1"
    kill -CONT "$(pid_of cb1)"
    wait_for_metric "watch: cb1 answering again reads registered within 5 s" \
        "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1" "$PROMISE"
    expect_metric "watch: all of it over the session kept since the login" \
        "cms_xmpp_watch_sessions_total{$t} == $sessions"

    scenario "Live registration: a wrong password" badpw "$WORK/logs/prosody2.log|monitor@|SASL|auth"
    t='target="badpw"'
    wait_for_metric "badpw: the login fails at step sasl with reason not_authorized" \
        "cms_xmpp_watch_failing_step_info{$t,server=\"$s\",step=\"sasl\",reason=\"not_authorized\"} == 1"
    expect_metric "badpw: cms_xmpp_watch_success is 0" "cms_xmpp_watch_success{$t} == 0"
    expect_metric "badpw: the failed logins are counted" \
        "cms_xmpp_watch_failures_total{$t,server=\"$s\",step=\"sasl\",reason=\"not_authorized\"} >= 1"
    expect_metric "badpw: nothing was pinged, so cb1 counts as not registered" \
        "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 0"
    expect_metric "badpw: the component flow is unaffected" "cms_xmpp_probe_success{$t} == 1"
    # The probe command registers a name of its own: the exporter's probes hold watch.e2e.test.
    local out
    printf 'dns:\n  nameservers: ["%s"]\ntargets:\n' "$IP1:$DNS_PORT" >"$WORK/probe.yaml"
    CONFIG_FILE="$WORK/probe.yaml" target watch "$DOMAIN" "$XMPP2:$XMPP_TLS_PORT" "ready.$DOMAIN" direct secret
    CONFIG_FILE="$WORK/probe.yaml" watch_block "" watch-password cb1 cb2 cb3
    out="$(env NO_COLOR=1 "$BIN" --config "$WORK/probe.yaml" probe --target watch 2>&1)"
    if [ $? = 1 ] && grep -q "cb2.$DOMAIN  NOT registered: component_unavailable" <<<"$out" &&
        grep -q "cb1.$DOMAIN  registered" <<<"$out"; then
        pass "probe --target watch: prints each component, exits 1 for cb2"
    else
        fail "probe --target watch: prints each component, exits 1 for cb2"
        sed 's/^/      | /' <<<"$out" | tail -n 30
    fi
    printf '%s\n' "$out" >"$WORK/logs/probe-watch.log"
    curl -sf --max-time 3 "http://$EXPORTER_ADDR/" -o "$WORK/logs/page.html" || true
    if grep -q 'data-component="cb2.e2e.test"' "$WORK/logs/page.html"; then
        pass "status page: the watch's components are drawn"
    else
        fail "status page: the watch's components are drawn"
    fi
}

ejabberd_live_registration() {
    scenario "ejabberd: the probe over a TLS ejabberd_service, the watch over its c2s" ejabberd \
        "$EJ_DIR/logs/ejabberd.log|monitor@|cb[12]\\.$DOMAIN|probe-ej|\\[(warning|error)\\]"
    local t='target="ejabberd"' s="$XMPP1:$EJ_C2S_PORT" step
    wait_for_metric "ejabberd: the registration probe succeeds" "cms_xmpp_probe_success{$t} == 1"
    wait_for_metric "ejabberd: cms_xmpp_watch_success is 1" "cms_xmpp_watch_success{$t} == 1"
    for step in resolve connect starttls tls sasl bind; do
        expect_metric "ejabberd: $s step $step ran, duration plausible (0 <= d < 1s)" \
            "cms_xmpp_watch_step_last_duration_seconds{$t,server=\"$s\",step=\"$step\"} >= 0 < 1"
    done
    if grep -q "Accepted c2s SCRAM-SHA-1 authentication for monitor@$DOMAIN" "$EJ_DIR/logs/ejabberd.log"; then
        pass "ejabberd: the monitoring user logged in with SCRAM-SHA-1 (ejabberd's log)"
    else
        fail "ejabberd: the monitoring user logged in with SCRAM-SHA-1 (ejabberd's log)"
    fi
    # The watch keeps its session: ejabberd accepted as many logins as the exporter opened
    # sessions (ejabberd and ejshared), and closed none of them.
    local log="$EJ_DIR/logs/ejabberd.log" logins sessions closes
    logins="$(grep -c "Accepted c2s SCRAM-SHA-1 authentication for monitor@$DOMAIN" "$log")"
    sessions="$(metric_sum 'cms_xmpp_watch_sessions_total{target=~"ejabberd|ejshared"}')"
    closes="$(grep -c "Closing c2s session for monitor@$DOMAIN" "$log" || true)"
    if [ "$logins" = "$sessions" ] && [ "$sessions" -ge 2 ] && [ "$closes" = 0 ]; then
        pass "ejabberd: the monitoring user keeps one session per watch ($logins logins, none closed)"
    else
        fail "ejabberd: the monitoring user keeps one session per watch ($logins logins, $sessions sessions, $closes closed)"
        grep "Closing c2s session for monitor@$DOMAIN" "$log" | tail -n 3 | sed 's/^/      | /'
    fi
    expect_metric "ejabberd: cb1 (connected to its listener) is registered" \
        "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1"
    expect_metric "ejabberd: cb2 (never connected) is not registered" \
        "cms_xmpp_component_registered{$t,component=\"cb2.$DOMAIN\"} == 0"
    expect_metric "ejabberd: cb2 fails with reason component_unavailable (remote-server-not-found)" \
        "cms_xmpp_component_failing_info{$t,component=\"cb2.$DOMAIN\",reason=\"component_unavailable\"} == 1"
    expect_count "ejabberd: only cb2 fails" "cms_xmpp_component_failing_info{$t}" 1

    scenario "ejabberd: cb1 goes away and comes back" ejabberd "$WORK/logs/ejcb1.log|" \
        "$EJ_DIR/logs/ejabberd.log|cb1\\.$DOMAIN"
    stop_pid "$(pid_of ejcb1)"
    log "      stopped cb1's component connection to ejabberd"
    wait_for_metric "ejabberd: cb1 is not registered within two intervals" \
        "cms_xmpp_component_failing_info{$t,component=\"cb1.$DOMAIN\",reason=\"component_unavailable\"} == 1" 3
    expect_metric "ejabberd: the login itself still works" "cms_xmpp_watch_success{$t} == 1"
    start_ejabberd_callbridge
    wait_for_metric "ejabberd: cb1 is registered again within two intervals" \
        "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1" 3

    scenario "ejabberd: cb1 hangs with its connection open, then recovers" ejabberd \
        "$WORK/logs/ejcb1.log|" "$EJ_DIR/logs/ejabberd.log|cb1\\.$DOMAIN"
    kill -STOP "$(pid_of ejcb1)"
    log "      stopped cb1's process (SIGSTOP): its TCP connection to ejabberd stays open"
    wait_for_metric "ejabberd: a hung cb1 reads not registered (timeout) within 5 s" \
        "cms_xmpp_component_failing_info{$t,component=\"cb1.$DOMAIN\",reason=\"timeout\"} == 1" "$PROMISE"
    expect_metric "ejabberd: ... while the session itself lives" "cms_xmpp_watch_success{$t} == 1"
    kill -CONT "$(pid_of ejcb1)"
    wait_for_metric "ejabberd: cb1 answering again reads registered within 5 s" \
        "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1" "$PROMISE"

    scenario "ejabberd: a wrong password" ejbadpw "$EJ_DIR/logs/ejabberd.log|monitor@|[Ff]ailed"
    t='target="ejbadpw"'
    wait_for_metric "ejbadpw: the login fails at step sasl with reason not_authorized" \
        "cms_xmpp_watch_failing_step_info{$t,server=\"$s\",step=\"sasl\",reason=\"not_authorized\"} == 1"
    expect_metric "ejbadpw: cms_xmpp_watch_success is 0" "cms_xmpp_watch_success{$t} == 0"
    expect_metric "ejbadpw: the component flow is unaffected" "cms_xmpp_probe_success{$t} == 1"

    scenario "ejabberd: one listener for cb3 and cb4, only cb4 connected" ejshared \
        "$WORK/logs/ejcb4.log|" "$EJ_DIR/logs/ejabberd.log|cb[34]\\.$DOMAIN"
    t='target="ejshared"'
    wait_for_metric "ejshared: cms_xmpp_watch_success is 1" "cms_xmpp_watch_success{$t} == 1"
    wait_for_metric "ejshared: cb4 (connected) is registered" \
        "cms_xmpp_component_registered{$t,component=\"cb4.$DOMAIN\"} == 1"
    expect_metric "ejshared: cb3 (answered by cb4, under cb4's name) is not registered" \
        "cms_xmpp_component_registered{$t,component=\"cb3.$DOMAIN\"} == 0"
    expect_metric "ejshared: cb3 fails with reason wrong_sender" \
        "cms_xmpp_component_failing_info{$t,component=\"cb3.$DOMAIN\",reason=\"wrong_sender\"} == 1"
    expect_count "ejshared: only cb3 fails" "cms_xmpp_component_failing_info{$t}" 1
    local lines
    lines="$(grep -c "component is not registered.*target=\"ejshared\" component=cb3\.$DOMAIN reason=wrong_sender detail=the ping was answered from cb4\.$DOMAIN" "$WORK/logs/exporter.log")"
    if [ "$lines" = 1 ]; then
        pass "ejshared: the exporter's log has one warning for cb3, naming cb4 as the sender"
    else
        fail "ejshared: the exporter's log has one warning for cb3, naming cb4 as the sender ($lines lines)"
    fi

    ejabberd_restart_and_password
}

# The XMPP server restarts, then the monitoring user's password changes, as the kept sessions
# of the watches on ejabberd (ejabberd's and ejshared's) meet them.
ejabberd_restart_and_password() {
    local t='target="ejabberd"' both='target=~"ejabberd|ejshared"' s="$XMPP1:$EJ_C2S_PORT"
    local log="$EJ_DIR/logs/ejabberd.log" accepted="Accepted c2s SCRAM-SHA-1 authentication for monitor@$DOMAIN"
    local sessions logins down now lost
    scenario "ejabberd restarts: each watch's session is lost and opened again, once" ejabberd \
        "$log|monitor@|[Ff]ailed|Accepted|[Ss]topp"
    wait_for_metric "ejabberd: both watches logged in before the restart" "cms_xmpp_watch_success{$both} == 1"
    sessions="$(metric_sum "cms_xmpp_watch_sessions_total{$both}")"
    logins="$(grep -c "$accepted" "$log")"
    lost="$(metric_sum "cms_xmpp_watch_failures_total{$t,server=\"$s\",step=\"session\",reason=\"stream_error\"}")"
    stop_ejabberd
    down=$SECONDS
    log "      stopped ejabberd"
    wait_for_metric "ejabberd: the lost sessions read cms_xmpp_watch_success 0 within 5 s" \
        "cms_xmpp_watch_success{$both} == 0" "$PROMISE"
    expect_metric "ejabberd: the loss fails step session with reason stream_error (system-shutdown)" \
        "cms_xmpp_watch_failures_total{$t,server=\"$s\",step=\"session\",reason=\"stream_error\"} >= $((lost + 1))"
    expect_metric "ejabberd: no component reads registered without a session" \
        "cms_xmpp_component_registered{$both} == 0"
    stop_pid "$(pid_of ejcb1)"
    stop_pid "$(pid_of ejcb4)"
    run_ejabberd
    start_ejabberd_callbridges
    log "      ejabberd is back after $((SECONDS - down)) s"
    wait_for_metric "ejabberd: both watches are logged in again" "cms_xmpp_watch_success{$both} == 1"
    wait_for_metric "ejabberd: cb1 reads registered again" \
        "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1"
    expect_one_login_each "ejabberd: one login per watch after the restart, no storm" 2 \
        "cms_xmpp_watch_sessions_total{$both}" "$sessions" "$log" "$accepted" "$logins"

    # ejabberd keeps a user's sessions when the password changes (as of 23.01): the session's
    # next login is the one that fails, and kick_user makes it come now.
    scenario "ejabberd: the monitoring user's password is changed" ejabberd "$log|monitor@|[Ff]ailed"
    sessions="$(metric_sum "cms_xmpp_watch_sessions_total{$both}")"
    ejabberd_password "$CHANGED_PASSWORD"
    ejabberdctl_e2e kick_user monitor "$DOMAIN" >>"$WORK/logs/ejabberdctl.log" 2>&1 ||
        fail "ejabberdctl kick_user monitor $DOMAIN"
    wait_for_metric "ejabberd: the kicked session reads cms_xmpp_watch_success 0 within 5 s" \
        "cms_xmpp_watch_success{$both} == 0" "$PROMISE"
    wait_for_metric "ejabberd: the next login fails at step sasl with reason not_authorized" \
        "cms_xmpp_watch_failing_step_info{$t,server=\"$s\",step=\"sasl\",reason=\"not_authorized\"} == 1" 10
    expect_retries_paced "ejabberd: the failing login is retried, never in a loop" \
        "cms_xmpp_watch_failures_total{$t,step=\"sasl\",reason=\"not_authorized\"}"
    ejabberd_password "$WATCH_PASSWORD"
    wait_for_metric "ejabberd: with the password back, both watches log in again" \
        "cms_xmpp_watch_success{$both} == 1" 10
    now="$(metric_sum "cms_xmpp_watch_sessions_total{$both}")"
    if [ "$now" = $((sessions + 2)) ]; then
        pass "ejabberd: one session more per watch"
    else
        fail "ejabberd: one session more per watch ($((now - sessions)) more)"
    fi
}

ejabberd_password() { # ejabberd_password PASSWORD: the monitoring user's new password
    ejabberdctl_e2e change_password monitor "$DOMAIN" "$1" >>"$WORK/logs/ejabberdctl.log" 2>&1 ||
        fail "ejabberdctl change_password monitor $DOMAIN"
}

# The monitoring user's password changes, then the XMPP server restarts, as the kept session of
# the watch on Prosody 2 meets them. Last of the suite's scenarios on Prosody 2: its restart
# takes every component connection (cb1, cb3, the holder) with it; they are started again.
prosody_password_and_restart() {
    local t='target="watch"' s="$XMPP2:$C2S_PORT" log="$WORK/logs/prosody2.log"
    local sessions logins down lost
    scenario "Prosody: the monitoring user's password is changed" watch \
        "$log|monitor@|Password changed|SASL|not-authorized"
    wait_for_metric "watch: logged in before the change" "cms_xmpp_watch_success{$t} == 1"
    sessions="$(metric_sum "cms_xmpp_watch_sessions_total{$t}")"
    lost="$(metric_sum "cms_xmpp_watch_failures_total{$t,server=\"$s\",step=\"session\",reason=\"stream_error\"}")"
    prosody_password "$CHANGED_PASSWORD"
    # Prosody resets the sessions of a user whose password changed (stream error reset).
    wait_for_metric "watch: the reset session reads cms_xmpp_watch_success 0 within 5 s" \
        "cms_xmpp_watch_success{$t} == 0" "$PROMISE"
    expect_metric "watch: the loss fails step session with reason stream_error" \
        "cms_xmpp_watch_failures_total{$t,server=\"$s\",step=\"session\",reason=\"stream_error\"} >= $((lost + 1))"
    wait_for_metric "watch: the next login fails at step sasl with reason not_authorized" \
        "cms_xmpp_watch_failing_step_info{$t,server=\"$s\",step=\"sasl\",reason=\"not_authorized\"} == 1" 10
    expect_metric "watch: no component reads registered without a session" \
        "cms_xmpp_component_registered{$t} == 0"
    expect_retries_paced "watch: the failing login is retried, never in a loop" \
        "cms_xmpp_watch_failures_total{$t,step=\"sasl\",reason=\"not_authorized\"}"
    prosody_password "$WATCH_PASSWORD"
    wait_for_metric "watch: with the password back, the watch logs in again" "cms_xmpp_watch_success{$t} == 1" 10
    expect_metric "watch: cb1 reads registered again" "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1"
    expect_metric "watch: one session more" "cms_xmpp_watch_sessions_total{$t} == $((sessions + 1))"

    scenario "Prosody restarts: the session is lost and opened again, once" watch \
        "$log|monitor@|Authenticated|shutdown"
    sessions="$(metric_sum "cms_xmpp_watch_sessions_total{$t}")"
    logins="$(grep -c "Authenticated as monitor@$DOMAIN" "$log")"
    lost="$(metric_sum "cms_xmpp_watch_failures_total{$t,server=\"$s\",step=\"session\",reason=\"stream_error\"}")"
    stop_pid "$(pid_of prosody2)"
    down=$SECONDS
    log "      stopped Prosody 2"
    wait_for_metric "watch: the lost session reads cms_xmpp_watch_success 0 within 5 s" \
        "cms_xmpp_watch_success{$t} == 0" "$PROMISE"
    # Prosody says goodbye with a stream error (system-shutdown) before it closes.
    expect_metric "watch: the loss fails step session with reason stream_error" \
        "cms_xmpp_watch_failures_total{$t,server=\"$s\",step=\"session\",reason=\"stream_error\"} >= $((lost + 1))"
    local name
    for name in holder cb1 cb3; do stop_pid "$(pid_of "$name")"; done
    start_prosody 2 "$IP2" "$XMPP2" || fail "Prosody 2 is ready again"
    start_holder
    start_callbridges
    log "      Prosody 2 is back after $((SECONDS - down)) s"
    wait_for_metric "watch: logged in again after the restart" "cms_xmpp_watch_success{$t} == 1"
    wait_for_metric "watch: cb1 reads registered again" \
        "cms_xmpp_component_registered{$t,component=\"cb1.$DOMAIN\"} == 1"
    expect_one_login_each "watch: one login after the restart, no storm" 1 \
        "cms_xmpp_watch_sessions_total{$t}" "$sessions" "$log" "Authenticated as monitor@$DOMAIN" "$logins"
}

# expect_one_login_each DESCRIPTION WATCHES SELECTOR SESSIONS LOG PATTERN LOGINS: since the
# counts SESSIONS (the sum of SELECTOR) and LOGINS (lines of LOG with PATTERN), one more session
# and one more login per watch: the exporter's count and the server's agree.
expect_one_login_each() {
    local now logins
    now=$(($(metric_sum "$3") - $4))
    logins=$(($(grep -c -- "$6" "$5") - $7))
    if [ "$now" = "$2" ] && [ "$logins" = "$2" ]; then
        pass "$1 ($logins in the server's log)"
    else
        fail "$1 ($now sessions, $logins logins in the server's log; expected $2)"
    fi
}

prosody_password() { # prosody_password PASSWORD: the monitoring user's new one, in the running Prosody 2
    local out
    out="$(prosodyctl --config "$WORK/prosody2/prosody.cfg.lua" shell user password "monitor@$DOMAIN" "$1" 2>&1)"
    printf '%s\n' "$out" >>"$WORK/logs/prosodyctl.log"
    grep -q "User password changed" <<<"$out" || fail "prosodyctl shell user password monitor@$DOMAIN: $out"
}

promtool_check() {
    scenario "promtool check metrics" ""
    scrape
    local out rc
    out="$(promtool check metrics <"$WORK/scrape.prom" 2>&1)"
    rc=$?
    if [ "$rc" = 0 ] && [ -z "$out" ]; then
        pass "promtool check metrics finds no problem ($(grep -vc '^#' "$WORK/scrape.prom") series)"
    else
        fail "promtool check metrics (exit $rc)"
        printf '%s\n' "$out" | head -n 30 | sed 's/^/      | /'
    fi
}

prometheus_checks() {
    scenario "Prometheus scrapes the exporter" "" "$WORK/logs/prometheus.log|level=(warn|error)"
    wait_for_query "prometheus: up{job=\"cms-xmpp-exporter\"} == 1" 'up{job="cms-xmpp-exporter"}' 'up == 1'
    local target
    for target in happy plain rapid wire legacy-tls c2w tlsa-forged; do
        wait_for_query "prometheus: cms_xmpp_probe_success{target=\"$target\"} is 1" \
            "cms_xmpp_probe_success{target=\"$target\"}" 'cms_xmpp_probe_success == 1'
    done
    for target in wrong-secret unknown-component conflict nxdomain cert-expired old-tls; do
        wait_for_query "prometheus: cms_xmpp_probe_success{target=\"$target\"} is 0" \
            "cms_xmpp_probe_success{target=\"$target\"}" 'cms_xmpp_probe_success == 0'
    done
    wait_for_query "prometheus: 21 targets, 14 successful" \
        'sum(cms_xmpp_probe_success{job="cms-xmpp-exporter"}) * 100 + count(cms_xmpp_probe_success{job="cms-xmpp-exporter"})' \
        'result == 1421'
    wait_for_query "prometheus: CmsXmppDnssecBogus is pending for dnssec-expired's SRV answer" \
        'count by (target, state) (ALERTS{alertname="CmsXmppDnssecBogus"})' \
        'result{target="dnssec-expired",state="bogus"} == 1'
    wait_for_query "prometheus: ... and for nothing else" 'count(ALERTS{alertname="CmsXmppDnssecBogus"})' 'result == 1'
    wait_for_query "prometheus: CmsXmppDaneMismatch is pending for dane-stale's server" \
        'count by (target, server) (ALERTS{alertname="CmsXmppDaneMismatch"})' \
        "result{target=\"dane-stale\",server=\"stale.$SIGNED:$XMPP_TLS_PORT\"} == 1"
    wait_for_query "prometheus: ... and for nothing else" 'count(ALERTS{alertname="CmsXmppDaneMismatch"})' 'result == 1'
    wait_for_query "prometheus: CmsXmppDaneTlsaBogus is pending for tlsa-forged's server, and for nothing else" \
        'count by (target, server) (ALERTS{alertname="CmsXmppDaneTlsaBogus"})' \
        "result{target=\"tlsa-forged\",server=\"xmpp.$FORGED:$XMPP_TLS_PORT\"} == 1"
    # The alerts' `for` is minutes; that they fire for the right series is what counts here.
    for target in watch ejabberd; do
        wait_for_query "prometheus: CmsXmppCallbridgeNotRegistered is pending for $target's cb2" \
            'count by (target, component) (ALERTS{alertname="CmsXmppCallbridgeNotRegistered"})' \
            "result{target=\"$target\",component=\"cb2.$DOMAIN\"} == 1"
    done
    wait_for_query "prometheus: CmsXmppCallbridgeNotRegistered is pending for ejshared's cb3 (wrong_sender)" \
        'count by (target, component) (ALERTS{alertname="CmsXmppCallbridgeNotRegistered"})' \
        "result{target=\"ejshared\",component=\"cb3.$DOMAIN\"} == 1"
    wait_for_query "prometheus: ... and for no other component" \
        'count(ALERTS{alertname="CmsXmppCallbridgeNotRegistered"})' 'result == 3'
    for target in badpw ejbadpw; do
        wait_for_query "prometheus: CmsXmppWatchLoginFailing is pending for $target" \
            'count by (target) (ALERTS{alertname="CmsXmppWatchLoginFailing"})' "result{target=\"$target\"} == 1"
    done
    local domain
    for domain in "$DOMAIN" "$DOMAIN2"; do
        wait_for_query "prometheus: the fleet job (file_sd, relabelling) registers at $domain through /probe?module=cms" \
            'cms_xmpp_probe_success{job="cms-xmpp-fleet"}' "cms_xmpp_probe_success{instance=\"$domain\",target=\"$domain\",cluster=\"lab\"} == 1" 45
    done
    wait_for_query "prometheus: ... one series per domain, both servers of each up" \
        'count(cms_xmpp_server_up{job="cms-xmpp-fleet"} == 1)' 'result == 4' 45
    wait_for_query "prometheus: CmsXmppTlsFinding is pending for legacy-tls's legacy_tls" \
        'count by (target, finding) (ALERTS{alertname="CmsXmppTlsFinding"})' \
        'result{target="legacy-tls",finding="legacy_tls"} == 1'
    wait_for_query "prometheus: ... and for nothing else" 'count(ALERTS{alertname="CmsXmppTlsFinding"})' 'result == 1'
    # The shipped alert rules load and evaluate on the real Prometheus; the dashboards'
    # expressions return data against real peers.
    if curl -fsS "http://$PROM_ADDR/api/v1/rules" | "$PY" -c '
import json, sys
rules = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
bad = [r["name"] + ": " + r.get("lastError", "") for r in rules if r.get("health") != "ok"]
print(len(rules), "rules;", "; ".join(bad) or "all healthy")
sys.exit(1 if bad or not rules else 0)' >"$WORK/rules-health.log" 2>&1; then
        pass "prometheus: the alert rules load and evaluate ($(cat "$WORK/rules-health.log"))"
    else
        fail "prometheus: the alert rules load and evaluate"
        sed 's/^/      | /' "$WORK/rules-health.log"
    fi
    if "$PY" "$ROOT/tests/dashboards/check.py" --prometheus "http://$PROM_ADDR" --require-data \
        >"$WORK/dashboards-check.log" 2>&1; then
        pass "prometheus: every dashboard and alert expression evaluates, dashboards return data ($(tail -n 1 "$WORK/dashboards-check.log"))"
    else
        fail "prometheus: every dashboard and alert expression evaluates, dashboards return data"
        grep -E '^FAIL' "$WORK/dashboards-check.log" | head -n 20 | sed 's/^/      | /'
    fi
    if [ -n "${FAILOVER_STARTED:-}" ]; then
        # The window reaches back to just before prosody1 was stopped.
        local window=$(($(date +%s) - FAILOVER_STARTED + 2))
        wait_for_query "prometheus: cms_xmpp_probe_success{target=\"happy\"} stayed 1 through the failover (min_over_time ${window}s)" \
            "min_over_time(cms_xmpp_probe_success{target=\"happy\"}[${window}s])" 'result == 1'
        wait_for_query "prometheus: cms_xmpp_server_up of $XMPP1 was 0 during the failover (min_over_time ${window}s)" \
            "min_over_time(cms_xmpp_server_up{target=\"happy\",server=\"$XMPP1:$XMPP_TLS_PORT\"}[${window}s])" 'result == 0'
    fi
}

# ---------------------------------------------------------------- another host

# A network namespace of this run's own, joined to this one by a veth pair: the exporter side
# 10.213.77.1, the "other host" 10.213.77.2. Nothing leaves the machine.
NETNS_HOST_IP=10.213.77.1
NETNS_PEER_IP=10.213.77.2
make_netns() {
    NETNS="cms-xmpp-e2e-$$"
    ip netns add "$NETNS" &&
        ip link add "cmsx$$h" type veth peer name "cmsx$$n" &&
        ip link set "cmsx$$n" netns "$NETNS" &&
        ip addr add "$NETNS_HOST_IP/30" dev "cmsx$$h" &&
        ip link set "cmsx$$h" up &&
        ip netns exec "$NETNS" ip addr add "$NETNS_PEER_IP/30" dev "cmsx$$n" &&
        ip netns exec "$NETNS" ip link set "cmsx$$n" up
}

remove_netns() {
    ip link del "cmsx$$h" 2>/dev/null || true
    ip netns del "$NETNS" 2>/dev/null || true
}

# POST /-/reload from another host: refused without a web config, though the lifecycle API
# is on; from the pod itself (loopback) it works (tests/integration/web.rs).
lifecycle_from_another_host() {
    scenario "/-/reload from another host (a network namespace)" ""
    if ! make_netns; then
        fail "create a network namespace and a veth pair (ip netns add: run as root)"
        return
    fi
    local port addr out
    port="$("$PY" "$HELPERS/metrics.py" free-ports 1 "$NETNS_HOST_IP")"
    addr="$NETNS_HOST_IP:$port"
    # A target of its own that reaches no XMPP server: the main exporter's names stay its own.
    printf 'targets:\n' >"$WORK/lifecycle.yaml"
    CONFIG_FILE="$WORK/lifecycle.yaml" target idle "$DOMAIN" "$IP1:$("$PY" "$HELPERS/metrics.py" free-ports 1 "$IP1")" "idle.$DOMAIN" none secret
    start exporter-lifecycle "$WORK/logs/exporter-lifecycle.log" env NO_COLOR=1 "$BIN" \
        --config "$WORK/lifecycle.yaml" --listen-address "$addr" --web.enable-lifecycle
    if ! wait_until 15 http_ok "http://$addr/-/healthy"; then
        fail "the second exporter serves http://$addr/-/healthy"
        return
    fi
    if ip netns exec "$NETNS" curl -s --max-time 5 "http://$addr/-/healthy" | grep -qx OK; then
        pass "from $NETNS_PEER_IP, GET /-/healthy answers (the veth pair carries HTTP)"
    else
        fail "from $NETNS_PEER_IP, GET /-/healthy answers (the veth pair carries HTTP)"
    fi
    out="$(ip netns exec "$NETNS" curl -s --max-time 5 -w ' %{http_code}' -X POST "http://$addr/-/reload")"
    if [[ "$out" == *"only clients on this host"*" 403" ]]; then
        pass "from $NETNS_PEER_IP, POST /-/reload is refused with 403 (no web config)"
    else
        fail "from $NETNS_PEER_IP, POST /-/reload is refused with 403 (no web config): $out"
    fi
    if grep -q "configuration reloaded" "$WORK/logs/exporter-lifecycle.log"; then
        fail "the refused request reloaded nothing"
    else
        pass "the refused request reloaded nothing"
    fi
    stop_pid "$(pid_of exporter-lifecycle)"
    remove_netns
    NETNS=""
}

# The shipped fleet job scrapes every 30 s; a run's timeout is 9.5 s at most. Between two
# scrapes the last probe grows 30 s old: the stale rule must know that Prometheus sets a fleet
# target's pace. The rule is evaluated at every second of the run, so no phase escapes.
fleet_never_stale() {
    scenario "The fleet job at its shipped pace: never stale, at any phase" ""
    wait_for_query "prometheus: each fleet domain scraped at least twice (30 s apart)" \
        'count_over_time(cms_xmpp_last_probe_timestamp_seconds{job="cms-xmpp-fleet"}[10m])' \
        'result >= 2' 75
    local window=$(($(date +%s) - PROM_STARTED + 1)) stale
    wait_for_query "prometheus: between scrapes a fleet probe grows older than 3 x 9.5 s (the run's timeout)" \
        "max_over_time((time() - cms_xmpp_last_probe_timestamp_seconds{job=\"cms-xmpp-fleet\"})[${window}s:1s])" \
        'result > 28.5'
    stale="$(awk '/- alert: CmsXmppProbeStale/ {f = 1; next} f && /^ *for:/ {exit} f && !/expr:/' \
        "$ROOT/alerts/cms-xmpp.rules.yml" | tr -s ' \n' ' ')"
    if [ -z "${stale// /}" ]; then
        fail "the CmsXmppProbeStale expression is read from alerts/cms-xmpp.rules.yml"
    elif prom_query "count_over_time(($stale)[${window}s:1s])" &&
        ! grep -q 'job="cms-xmpp-fleet"' "$PROM_FILE"; then
        pass "prometheus: CmsXmppProbeStale's expression holds at no second of the last ${window}s for the fleet job"
    else
        fail "prometheus: CmsXmppProbeStale's expression holds at no second of the last ${window}s for the fleet job"
        sed 's/^/      | /' "$PROM_FILE" | head -n 5
    fi
    wait_for_query "prometheus: ... while it still evaluates for the scheduled targets" \
        "count(cms_xmpp_probe_interval_seconds{job=\"cms-xmpp-exporter\"})" 'result == 21'
}

secrets_check() {
    scenario "Secrets appear nowhere" ""
    scrape
    local where
    curl -sf --max-time 3 "http://$EXPORTER_ADDR/" -o "$WORK/logs/page.html" || true
    curl -sf --max-time 5 "http://$EXPORTER_ADDR/probe?target=badpw&debug=true" -o "$WORK/logs/probe-debug.txt" || true
    for where in "$WORK/scrape.prom" "$WORK/logs/exporter.log" "$WORK/logs/page.html" \
        "$WORK/logs/probe-debug.txt" "$WORK/logs/probe-watch.log"; do
        local found=(-e "$SECRET" -e "$WRONG_SECRET" -e "$WATCH_PASSWORD" -e "$WRONG_PASSWORD" -e "$CHANGED_PASSWORD")
        if [ ! -s "$where" ]; then
            fail "no secret in ${where#"$WORK"/} (it is empty or missing)"
        elif grep -qF "${found[@]}" "$where"; then
            fail "no secret in ${where#"$WORK"/}"
            grep -nF "${found[@]}" "$where" | head -n 5 | sed 's/^/      | /'
        else
            pass "no secret in ${where#"$WORK"/} ($(wc -l <"$where") lines)"
        fi
    done
}

# ---------------------------------------------------------------- main

main() {
    build
    T0=$SECONDS
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/cms-xmpp-e2e.XXXXXX")" || die_setup "mktemp failed"
    mkdir -p "$WORK/logs"
    log "temp dir $WORK"
    allocate_ports
    make_pki
    make_secrets
    start_bind
    start_dnsmasq
    write_prosody_config 1 "$IP1"
    write_prosody_config 2 "$IP2"
    start_prosody 1 "$IP1" "$XMPP1" || die_setup "prosody1 is not ready"
    start_prosody 2 "$IP2" "$XMPP2" || die_setup "prosody2 is not ready"
    start_stunnel
    start_web_bridge
    start_wiretap
    start_holder
    start_callbridges
    start_ejabberd
    start_exporter
    start_prometheus
    log "peers up after $((SECONDS - T0))s"

    happy_path
    plaintext
    xmpp_failures
    dns_failures
    cert_failures
    tls_policy
    dnssec_dane
    c2w_link
    runbook_commands
    wire_format
    many_cycles
    timing
    failover
    live_registration
    ejabberd_live_registration
    promtool_check
    prometheus_checks
    fleet_never_stale
    lifecycle_from_another_host
    prosody_password_and_restart
    secrets_check

    local pid dead=()
    for pid in "${PIDS[@]}"; do
        alive "$pid" || dead+=("${PID_NAME[$pid]} (pid $pid)")
    done
    if [ ${#dead[@]} = 0 ]; then
        pass "every peer and the exporter ran to the end (${#PIDS[@]} processes)"
    else
        fail "processes died during the run: ${dead[*]}"
        show_all_logs
    fi
    log ""
    log "suite took $((SECONDS - T0))s"
    summary_and_exit
}

main "$@"
