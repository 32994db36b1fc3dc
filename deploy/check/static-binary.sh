#!/usr/bin/env bash
# Proves the container image without a Docker engine.
#
# 1. deploy/check/dockerfile.py carries out the Dockerfile itself: its build stage runs here on
#    the same Debian 12 + Rust toolchain as the build image (same RUSTFLAGS and target, read
#    from the Dockerfile), and the final `scratch` stage is assembled into an empty root
#    directory holding exactly the image's files.
# 2. The binary must be fully static (no INTERP, no NEEDED) and the image settings right
#    (numeric non-root USER, EXPOSE 9523, exec-form HEALTHCHECK and ENTRYPOINT, OCI labels).
# 3. The exporter runs chrooted in a copy of that root, as the image's USER, with the image's
#    ENV only, in a private network namespace (like a container), given only what a runtime
#    and Kubernetes add: /etc/resolv.conf, the config file (ConfigMap) and the secret
#    (Secret volume, with its ..data symlink layout). Loopback XEP-0114 peers (plain and
#    direct TLS) are the probed servers. It must start, load the config, serve /metrics,
#    probe (registration succeeds, the TLS target's chain is trusted through the image's CA
#    bundle), answer the image's HEALTHCHECK, pick up a rotated secret on POST /-/reload, and
#    stop cleanly on SIGTERM.
#
# Runs as root (chroot, unshare). The build uses target/dockerfile/ (cargo's cache between
# runs, like Docker's layer cache). Prints `N passed, M failed`; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
WORK=$REPO/target/dockerfile
mkdir -p "$WORK"

# shellcheck source=deploy/check/checks.sh
. deploy/check/checks.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "static-binary.sh needs root (chroot, unshare --net)" >&2
    exit 1
fi
for tool in cargo python3 file ldd readelf openssl curl ip unshare chroot buildah; do
    command -v "$tool" > /dev/null || { echo "static-binary.sh needs $tool" >&2; exit 1; }
done

# ---------------------------------------------------------------------------------------------
echo "== build: the Dockerfile, without Docker"
START=$(date +%s)
if python3 deploy/check/dockerfile.py --dockerfile Dockerfile --context . \
    --work "$WORK" --out-json "$WORK/image.json"; then
    pass "Dockerfile build stage ran and the final image was assembled ($(($(date +%s) - START)) s)"
else
    fail "Dockerfile build stage ran and the final image was assembled"
    finish
    exit 1
fi

json() { python3 -c "import json,sys; d=json.load(open('$WORK/image.json')); print(eval(sys.argv[1]))" "$1"; }
ROOT=$(json 'd["root"]')
ENTRY=$(json 'd["entrypoint"][0]')
BIN=$ROOT$ENTRY
USERSPEC=$(json 'd["user"]')

echo "== the image's files"
(cd "$ROOT" && find . -mindepth 1 | sort | sed 's/^/  /')
EXPECTED_FILES="./etc ./etc/cms-xmpp-exporter ./etc/group ./etc/passwd ./etc/ssl ./etc/ssl/certs ./etc/ssl/certs/ca-certificates.crt ./usr ./usr/local ./usr/local/bin ./usr/local/bin/cms-xmpp-exporter"
check "the image holds the binary, the CA bundle, passwd/group and the config directory, nothing else" \
    test "$(cd "$ROOT" && find . -mindepth 1 | sort | tr '\n' ' ' | sed 's/ $//')" = "$EXPECTED_FILES"
CERTS=$(grep -c 'BEGIN CERTIFICATE' "$ROOT/etc/ssl/certs/ca-certificates.crt" || true)
check "the CA bundle holds the Debian roots ($CERTS certificates)" test "$CERTS" -gt 100

echo "== static binary"
SIZE=$(stat -c %s "$BIN")
echo "binary: $SIZE bytes ($((SIZE / 1024)) KiB)"
file "$BIN"
check "file(1) says statically linked" bash -c "file '$BIN' | grep -Eq 'static(-pie)? linked|statically linked'"
check "ldd finds no shared library" bash -c "ldd '$BIN' 2>&1 | grep -Eq 'statically linked|not a dynamic executable'"
check "no program interpreter (PT_INTERP)" bash -c "! readelf -lW '$BIN' | grep -q INTERP"
check "no NEEDED shared library" bash -c "! readelf -dW '$BIN' | grep -q NEEDED"
check "the binary is stripped" bash -c "file '$BIN' | grep -q ', stripped'"
check "the binary is under 16 MiB" test "$SIZE" -lt 16777216

echo "== image settings"
CARGO_VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
# The real program, not the Dockerfile's dependency-caching placeholder.
check "the binary is the exporter (--version prints $CARGO_VERSION)" \
    bash -c "'$BIN' --version | grep -qx 'cms-xmpp-exporter $CARGO_VERSION'"
check "USER is numeric and non-root (65532:65532)" test "$USERSPEC" = "65532:65532"
check "EXPOSE 9523" bash -c "python3 -c \"import json; assert '9523' in json.load(open('$WORK/image.json'))['expose']\""
check "ENTRYPOINT is the binary, exec form" test "$ENTRY" = /usr/local/bin/cms-xmpp-exporter
check "HEALTHCHECK is exec form and runs the binary's healthcheck" \
    test "$(json '" ".join(d["healthcheck"]["test"])')" = "CMD $ENTRY healthcheck"
check "label version = Cargo.toml version ($CARGO_VERSION)" \
    test "$(json 'd["labels"]["org.opencontainers.image.version"]')" = "$CARGO_VERSION"
check "label licenses = Apache-2.0 (as Cargo.toml)" bash -c \
    "test '$(json 'd["labels"]["org.opencontainers.image.licenses"]')' = Apache-2.0 && grep -q '^license = \"Apache-2.0\"' Cargo.toml"
check "label source is set" test -n "$(json 'd["labels"].get("org.opencontainers.image.source", "")')"
check "ENV names the config at /etc/cms-xmpp-exporter/config.yaml" \
    test "$(json 'd["env"].get("CMS_XMPP_EXPORTER_CONFIG", "")')" = /etc/cms-xmpp-exporter/config.yaml

# ---------------------------------------------------------------------------------------------
echo "== the image, built by buildah without a daemon, from the Dockerfile's final stage"
# The Dockerfile's `FROM scratch` stage as it is, fed the root assembled above instead of the
# build stage's: the image a registry would get, with its real config.
BUILDAH=$WORK/buildah
BH=(buildah --storage-driver vfs --root "$BUILDAH/storage" --runroot "$BUILDAH/run")
IMAGE=localhost/cms-xmpp-exporter:$CARGO_VERSION
"${BH[@]}" rm --all > /dev/null 2>&1 || true
rm -rf "$BUILDAH"
mkdir -p "$BUILDAH/context"
cp -a "$ROOT" "$BUILDAH/context/rootfs"
sed -n '/^FROM scratch/,$p' Dockerfile | sed 's|^COPY --from=build /src/rootfs/ /|COPY rootfs/ /|' \
    > "$BUILDAH/context/Containerfile"
check "the final stage takes the assembled root (one COPY of rootfs/)" \
    grep -qx 'COPY rootfs/ /' "$BUILDAH/context/Containerfile"
if "${BH[@]}" build --quiet --isolation chroot --format docker --build-arg "VERSION=$CARGO_VERSION" \
    -f "$BUILDAH/context/Containerfile" -t "$IMAGE" "$BUILDAH/context" > "$BUILDAH/build.log" 2>&1; then
    pass "buildah built $IMAGE (vfs storage, chroot isolation, no daemon)"
else
    fail "buildah built $IMAGE"
    cat "$BUILDAH/build.log"
    finish
    exit 1
fi
"${BH[@]}" inspect --type image "$IMAGE" > "$BUILDAH/inspect.json"
inspect() { python3 -c "import json,sys; c=json.load(open('$BUILDAH/inspect.json'))['Docker']['config']; print(eval(sys.argv[1]))" "$1"; }
check "image USER 65532:65532" test "$(inspect 'c["User"]')" = "65532:65532"
check "image ENTRYPOINT [$ENTRY]" test "$(inspect '" ".join(c["Entrypoint"])')" = "$ENTRY"
check "image HEALTHCHECK runs '$ENTRY healthcheck'" \
    test "$(inspect '" ".join(c["Healthcheck"]["Test"])')" = "CMD $ENTRY healthcheck"
check "image exposes 9523/tcp" test "$(inspect '" ".join(c["ExposedPorts"])')" = "9523/tcp"
check "image label version = $CARGO_VERSION" \
    test "$(inspect 'c["Labels"]["org.opencontainers.image.version"]')" = "$CARGO_VERSION"
check "image ENV names the config" \
    test "$(inspect '"CMS_XMPP_EXPORTER_CONFIG=/etc/cms-xmpp-exporter/config.yaml" in c["Env"]')" = True
# What a registry stores and a node pulls: the gzip-compressed layer; and the image unpacked.
"${BH[@]}" push --quiet --compression-format gzip "$IMAGE" "oci:$BUILDAH/oci:$CARGO_VERSION" > /dev/null
IMAGE_COMPRESSED=$(python3 deploy/check/oci-size.py "$BUILDAH/oci")
CONTAINER=$("${BH[@]}" from --quiet "$IMAGE")
MOUNT=$("${BH[@]}" mount "$CONTAINER")
IMAGE_UNPACKED=$(du -sb "$MOUNT" | cut -f1)
echo "image: $IMAGE_COMPRESSED bytes compressed (registry, pull), $IMAGE_UNPACKED bytes unpacked"
check "the image is under 15 MB compressed ($IMAGE_COMPRESSED bytes) and unpacked ($IMAGE_UNPACKED bytes)" \
    test "$IMAGE_COMPRESSED" -lt 15000000 -a "$IMAGE_UNPACKED" -lt 15000000
check "the image has no shell (no sh, bash, ash or busybox anywhere)" \
    test -z "$(find "$MOUNT" \( -name sh -o -name bash -o -name busybox -o -name ash \) -print -quit)"
check "the image's files are the assembled root's" diff -r "$MOUNT" "$ROOT"

# ---------------------------------------------------------------------------------------------
echo "== run the image's root filesystem (buildah mount)"
RUN=$WORK/run
rm -rf "$RUN"
mkdir -p "$RUN"
RUNROOT=$RUN/root
cp -a "$MOUNT/." "$RUNROOT"
TMP=$RUN/tmp
mkdir -p "$TMP"

# What the container runtime adds: resolv.conf (never asked here: the targets are addresses).
echo "nameserver 127.0.0.1" > "$RUNROOT/etc/resolv.conf"

# A test CA, standing for an organisation's internal CA added to the system bundle.
# shellcheck source=deploy/check/test-pki.sh
. deploy/check/test-pki.sh
make_test_pki "$TMP" "static-binary test CA"
cat "$TMP/ca.pem" >> "$RUNROOT/etc/ssl/certs/ca-certificates.crt"

# The Secret volume as the kubelet lays it out: files are symlinks through ..data.
SECRET_DIR=$RUNROOT/run/secrets/cms-probe
mkdir -p "$SECRET_DIR/..v1"
printf 's3cret-static-binary\n' > "$TMP/peer-secret"
printf 's3cret-static-binary\n' > "$SECRET_DIR/..v1/secret"
printf 'an-old-secret\n' > "$SECRET_DIR/..v1/rotated"
ln -s ..v1 "$SECRET_DIR/..data"
ln -s ..data/secret "$SECRET_DIR/secret"
ln -s ..data/rotated "$SECRET_DIR/rotated"

# The ConfigMap, mounted at the image's config path.
cat > "$RUNROOT/etc/cms-xmpp-exporter/config.yaml" <<'EOF'
listen_address: "0.0.0.0:9523"
interval: 1s
timeout: 1s
targets:
  - name: plain-a
    domain: probe.test
    server_address: "127.0.0.1:15347"
    component: probe.probe.test
    secret_file: /run/secrets/cms-probe/secret
    tls: {mode: none}
  - name: plain-b
    domain: probe.test
    server_address: "127.0.0.1:15348"
    component: probe.probe.test
    secret_file: /run/secrets/cms-probe/secret
    tls: {mode: none}
  - name: tls-system-roots
    domain: probe.test
    server_address: "127.0.0.1:15223"
    component: probe.probe.test
    secret_file: /run/secrets/cms-probe/secret
    tls: {mode: direct, server_name: xmpp.probe.test}
  - name: rotated
    domain: probe.test
    server_address: "127.0.0.1:15349"
    component: probe.probe.test
    secret_file: /run/secrets/cms-probe/rotated
    tls: {mode: none}
EOF
printf 'targets: [{name: broken}]\n' > "$RUNROOT/etc/cms-xmpp-exporter/broken.yaml"

# Everything below runs in a private network namespace: the exporter binds 9523 as in the
# image, the peers listen on its loopback, and nothing else on this machine is reachable.
cat > "$RUN/inside.sh" <<'INSIDE'
set -uo pipefail
ip link set lo up
RUNROOT=$1; TMP=$2; REPO=$3; IMAGE_JSON=$4
# Its own tally (a shell of its own), reported back through $TMP/counts.
# shellcheck source=deploy/check/checks.sh
. "$REPO/deploy/check/checks.sh"

USERSPEC=$(python3 -c "import json; print(json.load(open('$IMAGE_JSON'))['user'])")
mapfile -t IMAGE_ENV < <(python3 -c "import json; [print(f'{k}={v}') for k, v in json.load(open('$IMAGE_JSON'))['env'].items()]")
mapfile -t ENTRYPOINT < <(python3 -c "import json; d=json.load(open('$IMAGE_JSON')); [print(a) for a in d['entrypoint'] + (d['cmd'] or [])]")
mapfile -t HEALTH < <(python3 -c "import json; [print(a) for a in json.load(open('$IMAGE_JSON'))['healthcheck']['test'][1:]]")
# As `docker run`: the image's ENV and a default PATH, nothing from this shell.
in_image() {
    exec_in_image "$@" &
    wait $!
}
exec_in_image() {
    exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOSTNAME=exporter \
        "${IMAGE_ENV[@]}" chroot --userspec="$USERSPEC" "$RUNROOT" "$@"
}

python3 "$REPO/deploy/check/xmpp_peer.py" --secret-file "$TMP/peer-secret" \
    --plain 15347 --plain 15348 --plain 15349 --tls 15223 \
    --cert "$TMP/server.pem" --key "$TMP/server.key" --lifetime 120 \
    --ready-file "$TMP/peer-ready" > "$TMP/peer.log" 2>&1 &
PEER=$!
EXPORTER=
trap 'kill $PEER $EXPORTER 2>/dev/null' EXIT
wait_for 5 test -f "$TMP/peer-ready" || true

check "check-config accepts the config (exit 0)" in_image "${ENTRYPOINT[0]}" check-config
in_image "${ENTRYPOINT[0]}" check-config --config /etc/cms-xmpp-exporter/broken.yaml > "$TMP/broken.out" 2>&1
code=$?
check "check-config rejects a broken config (exit 2)" test "$code" -eq 2

exec_in_image "${ENTRYPOINT[@]}" --web.enable-lifecycle > "$TMP/exporter.log" 2>&1 &
EXPORTER=$!
check "the exporter started and /-/ready answers 200 after the first probe cycle" \
    wait_for 10 curl -fsS -o /dev/null http://127.0.0.1:9523/-/ready
check "/-/healthy answers 200" curl -fsS -o /dev/null http://127.0.0.1:9523/-/healthy
metric() { # metric 'name{labels}' -> value or empty
    python3 - "$TMP/metrics.txt" "$1" <<'PY'
import sys
name = sys.argv[2]
for line in open(sys.argv[1]):
    if line.split(" ")[0] == name:
        print(line.split()[-1]); break
PY
}
# A fresh scrape in $TMP/metrics.txt; succeeds once every registering target registers.
registering_targets_register() {
    curl -fsS http://127.0.0.1:9523/metrics > "$TMP/metrics.txt" || return 1
    for target in plain-a plain-b tls-system-roots; do
        [ "$(metric "cms_xmpp_probe_success{target=\"$target\"}")" = 1 ] || return 1
    done
}
wait_for 10 registering_targets_register || true # the checks below say what is missing
check "/metrics serves cms_xmpp_build_info" grep -q '^cms_xmpp_build_info{' "$TMP/metrics.txt"
for target in plain-a plain-b tls-system-roots; do
    probes=$(metric "cms_xmpp_probes_total{target=\"$target\"}")
    check "target $target was probed (cms_xmpp_probes_total=$probes)" \
        python3 -c "import sys; sys.exit(0 if float('${probes:-0}') >= 1 else 1)"
    check "target $target registers (cms_xmpp_probe_success=1)" \
        test "$(metric "cms_xmpp_probe_success{target=\"$target\"}")" = 1
done
check "the TLS chain is trusted through the image's CA bundle (cms_xmpp_cert_trusted=1)" \
    grep -Eq '^cms_xmpp_cert_trusted\{[^}]*target="tls-system-roots"[^}]*\} 1$' "$TMP/metrics.txt"
check "the target with the old secret fails with not_authorized" \
    bash -c "grep -E '^cms_xmpp_failing_step_info\\{.*\\} 1$' '$TMP/metrics.txt' | grep -F 'target=\"rotated\"' | grep -qF 'reason=\"not_authorized\"'"
check "the secret appears neither in /metrics nor in the log" \
    bash -c "! grep -q s3cret-static-binary '$TMP/metrics.txt' '$TMP/exporter.log'"

# The image's HEALTHCHECK, exactly as Docker would run it (exec form, image user and env).
check "the image's HEALTHCHECK command succeeds (${HEALTH[*]})" in_image "${HEALTH[@]}"
in_image "${HEALTH[0]}" healthcheck --url http://127.0.0.1:1/-/healthy > /dev/null 2>&1
code=$?
check "healthcheck fails (exit 1) when nothing answers" test "$code" -eq 1

# Rotate the secret as the kubelet does (a new ..data target, swapped atomically), reload.
SECRET_DIR=$RUNROOT/run/secrets/cms-probe
mkdir "$SECRET_DIR/..v2"
cp "$TMP/peer-secret" "$SECRET_DIR/..v2/secret"
cp "$TMP/peer-secret" "$SECRET_DIR/..v2/rotated"
ln -s ..v2 "$SECRET_DIR/..data_tmp" && mv -T "$SECRET_DIR/..data_tmp" "$SECRET_DIR/..data"
rm -rf "$SECRET_DIR/..v1"
check "POST /-/reload answers 200" curl -fsS -o /dev/null -X POST http://127.0.0.1:9523/-/reload
rotated=0
for _ in $(seq 50); do
    curl -fsS http://127.0.0.1:9523/metrics > "$TMP/metrics.txt"
    if [ "$(metric 'cms_xmpp_probe_success{target="rotated"}')" = 1 ]; then rotated=1; break; fi
    sleep 0.1
done
check "after the reload the rotated secret registers (cms_xmpp_probe_success=1)" test "$rotated" -eq 1

RSS=$(awk '/VmRSS/ {print $2}' "/proc/$EXPORTER/status" 2>/dev/null || echo 0)
echo "exporter VmRSS at the end of the checks (4 targets, 1 s interval): ${RSS} kB"

kill -TERM "$EXPORTER"
code=124
for _ in $(seq 50); do
    if ! kill -0 "$EXPORTER" 2>/dev/null; then wait "$EXPORTER"; code=$?; break; fi
    sleep 0.1
done
kill -KILL "$EXPORTER" 2>/dev/null || true
check "SIGTERM stops the exporter cleanly (exit $code)" test "$code" -eq 0
kill "$PEER" 2>/dev/null; wait "$PEER" 2>/dev/null
if [ "$FAILED" -ne 0 ]; then
    echo "--- exporter log"; tail -n 40 "$TMP/exporter.log"
    echo "--- check-config on the broken config"; cat "$TMP/broken.out"
fi
echo "$PASSED $FAILED" > "$TMP/counts"
INSIDE

unshare --net bash "$RUN/inside.sh" "$RUNROOT" "$TMP" "$REPO" "$WORK/image.json" || true
if [ -f "$TMP/counts" ]; then
    read -r inner_passed inner_failed < "$TMP/counts"
    PASSED=$((PASSED + inner_passed))
    FAILED=$((FAILED + inner_failed))
else
    fail "the run in the empty root finished"
fi

# ---------------------------------------------------------------------------------------------
echo "== the Kubernetes examples' configs load in the image"
# Each variant's ConfigMap and Secret, mounted where its Deployment mounts them, in a copy of
# the image root; `check-config` runs as the image's user with the image's ENV.
for variant in deploy/kubernetes/*/; do
    variant=${variant%/}
    [ -f "$variant/configmap.yaml" ] || continue
    VROOT=$RUN/$(basename "$variant")
    rm -rf "$VROOT"
    cp -a "$ROOT" "$VROOT"
    if ! python3 - "$variant" "$VROOT" <<'PY'
import sys
from pathlib import Path
import yaml
variant, root = Path(sys.argv[1]), Path(sys.argv[2])
docs = {}
for path in variant.glob("*.yaml"):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and "kind" in doc:
            docs.setdefault(doc["kind"], []).append(doc)
(deployment,) = docs["Deployment"]
pod = deployment["spec"]["template"]["spec"]
(exporter,) = [c for c in pod["containers"] if c["name"] == "cms-xmpp-exporter"]
volumes = {v["name"]: v for v in pod["volumes"]}
configmaps = {c["metadata"]["name"]: c for c in docs.get("ConfigMap", [])}
secrets = {s["metadata"]["name"]: s for s in docs.get("Secret", [])}
for mount in exporter["volumeMounts"]:
    volume = volumes[mount["name"]]
    if "configMap" in volume:
        files = configmaps[volume["configMap"]["name"]]["data"]
    else:
        secret = secrets[volume["secret"]["secretName"]]
        files = dict(secret.get("stringData", {}))
    target = root / mount["mountPath"].lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (target / name).write_text(content)
PY
    then
        fail "$variant: its ConfigMap and Secret can be laid out as mounted"
        continue
    fi
    # kubelet mounts the pod's resolv.conf into every container; check-config sets up the
    # resolver as serving would.
    echo "nameserver 127.0.0.1" > "$VROOT/etc/resolv.conf"
    if env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CMS_XMPP_EXPORTER_CONFIG=/etc/cms-xmpp-exporter/config.yaml \
        chroot --userspec="$USERSPEC" "$VROOT" "$ENTRY" check-config > "$RUN/check-config.out" 2>&1; then
        pass "$variant: the ConfigMap's config.yaml passes check-config in the image ($(cat "$RUN/check-config.out"))"
    else
        fail "$variant: the ConfigMap's config.yaml passes check-config in the image"
        cat "$RUN/check-config.out"
    fi
done

# ---------------------------------------------------------------------------------------------
echo "== the example config in the image: it loads, serves and is healthy"
XROOT=$RUN/example
cp -a "$MOUNT/." "$XROOT"
cp config.example.yaml "$XROOT/etc/cms-xmpp-exporter/config.yaml"
echo "nameserver 127.0.0.1" > "$XROOT/etc/resolv.conf"
# The files and the variable it names, as a Deployment would mount and set them.
for file in run/secrets/cms-probe/secret run/secrets/cms-monitor/password run/secrets/prosody-probe/secret; do
    mkdir -p "$(dirname "$XROOT/$file")"
    printf 'example-secret\n' > "$XROOT/$file"
done
mkdir -p "$XROOT/etc/cms" "$XROOT/run/secrets/callbridge"
cp "$TMP/ca.pem" "$XROOT/etc/cms/ca.pem"
cp "$TMP/ca.pem" "$XROOT/etc/cms/c2w-ca.pem"
# The C2W target's client certificate: any certificate and key do for loading.
cp "$TMP/server.pem" "$XROOT/run/secrets/callbridge/cert.pem"
cp "$TMP/server.key" "$XROOT/run/secrets/callbridge/key.pem"
chmod 0644 "$XROOT/run/secrets/callbridge/cert.pem" "$XROOT/run/secrets/callbridge/key.pem"
cat > "$RUN/example.sh" <<'EXAMPLE'
set -uo pipefail
ip link set lo up
XROOT=$1; USERSPEC=$2; ENTRY=$3; LOG=$4
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOSTNAME=exporter CMS_PARIS_PROBE_SECRET=example-secret \
    CMS_XMPP_EXPORTER_CONFIG=/etc/cms-xmpp-exporter/config.yaml \
    chroot --userspec="$USERSPEC" "$XROOT" "$ENTRY" > "$LOG" 2>&1 &
EXPORTER=$!
healthy=1
for _ in $(seq 100); do
    if curl -fs -o /dev/null http://127.0.0.1:9523/-/healthy; then healthy=0; break; fi
    sleep 0.1
done
kill -TERM "$EXPORTER" 2>/dev/null
wait "$EXPORTER"
exit $healthy
EXAMPLE
if unshare --net bash "$RUN/example.sh" "$XROOT" "$USERSPEC" "$ENTRY" "$RUN/example.log"; then
    pass "the image's root with config.example.yaml starts and /-/healthy answers 200"
else
    fail "the image's root with config.example.yaml starts and /-/healthy answers 200"
    tail -n 20 "$RUN/example.log"
fi

"${BH[@]}" umount "$CONTAINER" > /dev/null
"${BH[@]}" rm "$CONTAINER" > /dev/null
rm -rf "$RUN"
echo "binary size: $SIZE bytes; image: $IMAGE_COMPRESSED bytes compressed, $IMAGE_UNPACKED bytes unpacked"
finish
