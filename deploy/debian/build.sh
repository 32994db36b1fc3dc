#!/usr/bin/env bash
# Builds the Debian package from the release binary: target/debian/cms-xmpp-exporter_<version>_<arch>.deb
#
#   bash deploy/debian/build.sh
#
# A debian/ directory built with dpkg-buildpackage and debhelper, not cargo-deb: both are
# Debian's own (no tool to fetch and build first), debhelper writes the maintainer-script parts
# Debian expects (enabling and starting the unit where systemd runs, restarting it on upgrade,
# conffiles) rather than us, and lintian judges the result by the same rules. The binary is
# cargo's release build; dpkg-buildpackage compiles nothing (debian/rules).
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in cargo dpkg-buildpackage dh help2man python3; do
    command -v "$tool" >/dev/null || { echo "build.sh needs $tool (apt install debhelper help2man)" >&2; exit 1; }
done

VERSION=$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["packages"][0]["version"])')
CHANGELOG=$(dpkg-parsechangelog -l deploy/debian/debian/changelog -S Version)
if [ "$CHANGELOG" != "$VERSION" ]; then
    echo "deploy/debian/debian/changelog is at $CHANGELOG, Cargo.toml at $VERSION: add a changelog entry" >&2
    exit 1
fi

cargo build --release --locked
BINARY=target/release/cms-xmpp-exporter

OUT=target/debian
STAGE=$OUT/cms-xmpp-exporter-$VERSION
rm -rf "$STAGE" "$OUT"/cms-xmpp-exporter_*
mkdir -p "$STAGE/dist/etc/cms-xmpp-exporter" "$STAGE/dist/etc/default" "$STAGE/dist/share/alerts" \
    "$STAGE/dist/share/dashboards" "$STAGE/dist/doc"
cp -r deploy/debian/debian "$STAGE/"
cp "$BINARY" "$STAGE/dist/"
cp deploy/debian/config.yaml "$STAGE/dist/etc/cms-xmpp-exporter/config.yaml"
cp deploy/debian/cms-xmpp-exporter.default "$STAGE/dist/etc/default/cms-xmpp-exporter"
cp alerts/cms-xmpp.rules.yml "$STAGE/dist/share/alerts/"
cp dashboards/*.json "$STAGE/dist/share/dashboards/"
# The mixin's jsonnet, for rules and dashboards with the operator's own job name (mixin/README.md).
mkdir -p "$STAGE/dist/share/mixin"
cp -r mixin/*.libsonnet mixin/README.md mixin/alerts mixin/dashboards mixin/lib "$STAGE/dist/share/mixin/"
cp config.example.yaml "$STAGE/dist/"
cp README.md docs/*.md "$STAGE/dist/doc/"
# The man page from the CLI's own --help and --version.
help2man --no-info --section 1 --version-string "$VERSION" \
    --name "Prometheus exporter for Cisco Meeting Server XMPP registration" \
    --output "$STAGE/dist/cms-xmpp-exporter.1" "$BINARY"

(cd "$STAGE" && dpkg-buildpackage --build=binary --unsigned-source --unsigned-changes \
    --no-sign >/dev/null)
ls "$OUT"/cms-xmpp-exporter_"$VERSION"_*.deb
