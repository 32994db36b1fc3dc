#!/usr/bin/env bash
# Proves the Debian package as installed, on this machine (Debian 12, as root):
#
# 1. deploy/debian/build.sh builds it; lintian finds no error or warning (each override is
#    justified in debian/cms-xmpp-exporter.lintian-overrides); its unit rates 1.5 or lower in
#    `systemd-analyze security --offline=yes` (Debian's own prometheus unit is rated beside it).
# 2. dpkg -i installs it: files, owners and modes, the conffiles, the system user, the secrets
#    directory only that user reads, the unit enabled; `systemd-analyze verify` finds nothing.
# 3. The installed binary runs as the package's user with the unit's ExecStart line and the
#    environment of /etc/default/cms-xmpp-exporter against a real Prosody on loopback, until
#    /metrics shows a registration and the notification socket READY=1; SIGHUP reloads a
#    changed configuration (RELOADING=1, READY=1). No systemd is PID 1 here, so the sandbox of
#    the unit is not applied: what it allows is judged by systemd-analyze above.
# 4. dpkg --purge leaves nothing behind but the system user (Debian keeps system users: files
#    it owned elsewhere keep a name).
#
# Prints `N passed, M failed`; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)

# shellcheck source=deploy/check/checks.sh
. deploy/check/checks.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "debian.sh needs root (dpkg -i, a system user)" >&2
    exit 1
fi
for tool in dpkg-buildpackage lintian systemd-analyze prosody setpriv curl python3; do
    command -v "$tool" >/dev/null || { echo "debian.sh needs $tool" >&2; exit 1; }
done

NAME=cms-xmpp-exporter
UNIT=/lib/systemd/system/$NAME.service
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cms-xmpp-debian.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    dpkg --purge "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
bash deploy/debian/build.sh
DEB=$(ls target/debian/${NAME}_*.deb)
check "lintian: no error, no warning" lintian --fail-on error,warning "$DEB"

echo "== the unit's sandbox"
rating() { # the exposure level systemd-analyze gives a unit file
    systemd-analyze security --offline=yes "$1" 2>/dev/null |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p'
}
dpkg-deb -x "$DEB" "$WORK/unpacked"
OURS=$(rating "$WORK/unpacked$UNIT")
check "systemd-analyze security rates the unit $OURS, 1.5 or lower" \
    python3 -c "import sys; sys.exit(not (0 < float('${OURS:-99}') <= 1.5))"
for debian in /lib/systemd/system/prometheus.service /lib/systemd/system/prometheus-node-exporter.service \
    /lib/systemd/system/prometheus-blackbox-exporter.service; do
    [ -f "$debian" ] && echo "  for comparison, Debian's $(basename "$debian"): $(rating "$debian")"
done

echo "== installed"
dpkg --purge "$NAME" >/dev/null 2>&1 || true
check "dpkg -i installs it" dpkg -i "$DEB"
mode() { stat -c '%a %U:%G' "$1"; }
check "/usr/bin/$NAME: 755 root:root" test "$(mode /usr/bin/$NAME)" = "755 root:root"
check "the configuration: 644 root:root, a conffile" bash -c \
    "[ \"\$(stat -c '%a %U:%G' /etc/$NAME/config.yaml)\" = '644 root:root' ] &&
     dpkg-query -W -f='\${Conffiles}' $NAME | grep -q ' /etc/$NAME/config.yaml '"
check "/etc/default/$NAME: a conffile with ARGS=" bash -c \
    "grep -q '^ARGS=' /etc/default/$NAME && dpkg-query -W -f='\${Conffiles}' $NAME | grep -q ' /etc/default/$NAME '"
check "the system user $NAME: no login, no home" bash -c \
    "getent passwd $NAME | grep -Eq '^$NAME:x:[0-9]+:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$'"
check "the secrets directory: 700, the exporter's user only" \
    test "$(mode /etc/$NAME/secrets)" = "700 $NAME:$NAME"
check "the alert rules and dashboards under /usr/share/$NAME" bash -c \
    "cmp -s /usr/share/$NAME/alerts/cms-xmpp.rules.yml alerts/cms-xmpp.rules.yml &&
     for d in dashboards/*.json; do cmp -s /usr/share/$NAME/\$d \$d || exit 1; done"
# The packaged mixin, with jsonnet alone as mixin/README.md shows: a job of one's own in every
# selection, rules that promtool accepts.
mixin_renders_own_job() {
    cat >"$WORK/own-job.jsonnet" <<'JSONNET'
(import 'mixin.libsonnet') + { _config+:: { selector: 'job="xmpp-monitoring"' } }
JSONNET
    (cd "$WORK" && jsonnet -J "/usr/share/$NAME/mixin" -S -e "
        local m = (import 'own-job.jsonnet');
        std.manifestYamlDoc({ groups: m.prometheusRules.groups + m.prometheusAlerts.groups })" \
        >"$WORK/own-job.rules.yml") &&
        promtool check rules "$WORK/own-job.rules.yml" >/dev/null &&
        grep -qF 'up{job=\"xmpp-monitoring\"}' "$WORK/own-job.rules.yml" &&
        ! grep -qF '.*cms.*xmpp.*' "$WORK/own-job.rules.yml"
}
check "the mixin under /usr/share/$NAME/mixin renders rules for a job of one's own" mixin_renders_own_job
check "the man page, from the CLI" bash -c "zgrep -q healthcheck /usr/share/man/man1/$NAME.1.gz"
check "the unit is enabled (systemd is not running here: not started)" \
    test -L /etc/systemd/system/multi-user.target.wants/$NAME.service
VERIFY=$(systemd-analyze verify "$UNIT" 2>&1 || true)
check "systemd-analyze verify finds nothing${VERIFY:+: $VERIFY}" test -z "$VERIFY"
check "the packaged configuration is valid as installed" \
    setpriv --reuid=$NAME --regid=$NAME --init-groups /usr/bin/$NAME check-config --config /etc/$NAME/config.yaml

echo "== run as installed, against Prosody"
read -r XMPP_PORT WEB_PORT < <(python3 tests/e2e/helpers/metrics.py free-ports 2 127.0.0.1)
SECRET="deb-$(openssl rand -hex 12)"
mkdir -p "$WORK/prosody"
cat >"$WORK/prosody/prosody.cfg.lua" <<LUA
run_as_root = true
daemonize = false
pidfile = "$WORK/prosody/prosody.pid"
data_path = "$WORK/prosody"
log = { info = "$WORK/prosody.log" }
default_storage = "memory"
interfaces = { "127.0.0.1" }
c2s_ports = {}
s2s_ports = {}
c2s_direct_tls_ports = {}
s2s_direct_tls_ports = {}
legacy_ssl_ports = {}
component_ports = { $XMPP_PORT }
component_interfaces = { "127.0.0.1" }
VirtualHost "deb.test"
Component "probe.deb.test"
    component_secret = "$SECRET"
Component "second.deb.test"
    component_secret = "$SECRET"
LUA
prosody -F --config "$WORK/prosody/prosody.cfg.lua" >"$WORK/prosody.stderr" 2>&1 &
PIDS+=($!)
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$XMPP_PORT" ||
    { fail "Prosody listens on 127.0.0.1:$XMPP_PORT"; finish; exit 1; }

install -m 0600 -o $NAME -g $NAME /dev/null /etc/$NAME/secrets/probe
printf '%s\n' "$SECRET" >/etc/$NAME/secrets/probe
target() { # target NAME COMPONENT: one plaintext XEP-0114 target on Prosody
    printf '  - name: %s\n    domain: deb.test\n    server_address: "127.0.0.1:%s"\n    component: %s\n    secret_file: /etc/%s/secrets/probe\n    interval: 1s\n    timeout: 1s\n    tls:\n      mode: none\n' \
        "$1" "$XMPP_PORT" "$2" "$NAME"
}
{ printf 'listen_address: "127.0.0.1:%s"\ntargets:\n' "$WEB_PORT"; target deb probe.deb.test; } >/etc/$NAME/config.yaml
printf 'ARGS="--log-format json"\n' >/etc/default/$NAME

# The unit's ExecStart line and environment, as systemd would run them (without its sandbox).
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
# The notification socket, where the exporter's user reaches it (as systemd's /run/systemd/notify).
mkdir -m 0755 "$WORK/run"
chmod 0711 "$WORK"
NOTIFY=$WORK/run/notify.sock
python3 - "$NOTIFY" "$WORK/notify.log" "$NAME" <<'PY' &
import os, pwd, socket, sys
path, log, user = sys.argv[1:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chown(path, pwd.getpwnam(user).pw_uid, -1)
with open(log, "a", buffering=1) as out:
    while True:
        out.write(sock.recv(4096).decode().replace("\n", " ").strip() + "\n")
PY
PIDS+=($!)
wait_for 5 test -S "$NOTIFY"
setpriv --reuid=$NAME --regid=$NAME --init-groups --inh-caps=-all -- \
    env -i PATH=/usr/bin:/bin NOTIFY_SOCKET="$NOTIFY" bash -c "set -a; . /etc/default/$NAME; exec $EXEC" \
    >"$WORK/exporter.log" 2>&1 &
EXPORTER=$!
PIDS+=("$EXPORTER")
metrics() { curl -sf --max-time 2 "http://127.0.0.1:$WEB_PORT/metrics"; }
registered() { metrics | grep -qx "cms_xmpp_probe_success{target=\"$1\"} 1"; }
check "the installed exporter registers probe.deb.test with Prosody (/metrics)" wait_for 20 registered deb
check "systemd would hear READY=1" wait_for 5 grep -q '^READY=1' "$WORK/notify.log"
check "it runs as $NAME" test "$(ps -o user= -p "$EXPORTER")" = "$NAME"
check "it logs JSON, as ARGS in /etc/default asked" bash -c "head -n 1 '$WORK/exporter.log' | grep -q '^{'"
target second second.deb.test >>/etc/$NAME/config.yaml
kill -HUP "$EXPORTER"
check "after SIGHUP (the unit's ExecReload) the changed configuration is in force" wait_for 20 registered second
check "systemd would hear RELOADING=1, then READY=1" wait_for 5 bash -c \
    "grep -q '^RELOADING=1 MONOTONIC_USEC=' '$WORK/notify.log' && [ \$(grep -c '^READY=1' '$WORK/notify.log') = 2 ]"
kill -TERM "$EXPORTER"
check "SIGTERM stops it within 10 s" wait_for 10 bash -c "! kill -0 $EXPORTER 2>/dev/null"
check "... with exit 0" wait "$EXPORTER"
check "systemd would hear STOPPING=1" grep -q '^STOPPING=1' "$WORK/notify.log"

echo "== purged"
check "dpkg --purge removes it" dpkg --purge "$NAME"
LEFT=$(ls -d /etc/$NAME /etc/default/$NAME /usr/bin/$NAME /usr/share/$NAME /usr/share/doc/$NAME \
    "$UNIT" /etc/systemd/system/multi-user.target.wants/$NAME.service /usr/share/man/man1/$NAME.1.gz 2>/dev/null || true)
check "nothing is left behind${LEFT:+: $LEFT}" test -z "$LEFT"
check "the system user is kept" bash -c "getent passwd $NAME >/dev/null"
finish
