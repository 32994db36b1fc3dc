#!/usr/bin/env bash
# The mixin in CI: the committed alerts, dashboards and PrometheusRule are what it generates
# (with Debian's jsonnet), its sources are jsonnetfmt-formatted, a job name of the user's own
# works through _config (its rules pass own-job.test.yml; every series selection of its rules
# and dashboards carries the selector), and a selector that selects nothing is refused.
# The committed files' own checks (promtool tests, tests/dashboards/check.py) run after this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The same PyYAML as deploy/check/manifests.sh: the rules' layout is its emitter's.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore PyYAML==6.0.3

python3 mixin/build.py --check
mapfile -t sources < <(find mixin -name '*.libsonnet' -o -name '*.jsonnet' | sort)
jsonnetfmt --test "${sources[@]}" || {
    echo "mixin: not jsonnetfmt-formatted (run jsonnetfmt -i on them): $(jsonnetfmt --test "${sources[@]}" 2>&1)" >&2
    exit 1
}
python3 mixin/tests/selectors.py . 'job=~".*cms.*xmpp.*"'

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 mixin/build.py --mixin mixin/tests/own-job.jsonnet --out "$scratch"
promtool check rules "$scratch/alerts/cms-xmpp.rules.yml"
cp mixin/tests/own-job.test.yml "$scratch/"
promtool test rules "$scratch/own-job.test.yml"
python3 mixin/tests/selectors.py "$scratch" 'job="xmpp-monitoring"'

# The README's example, both ways it shows: build.py, and jsonnet alone; the same rules.
awk '/^```jsonnet/ {f = 1; next} /^```/ {f = 0} f' mixin/README.md >"$scratch/my-mixin.jsonnet"
python3 mixin/build.py --mixin "$scratch/my-mixin.jsonnet" --out "$scratch/readme"
(cd "$scratch" && jsonnet -J "$OLDPWD/mixin" -S -e "
  local m = (import 'my-mixin.jsonnet');
  std.manifestYamlDoc({ groups: m.prometheusRules.groups + m.prometheusAlerts.groups })
" >"$scratch/alone.yml")
promtool check rules "$scratch/alone.yml"
python3 - "$scratch/readme/alerts/cms-xmpp.rules.yml" "$scratch/alone.yml" <<'PY'
import sys, yaml
built, alone = (yaml.safe_load(open(path, encoding="utf-8")) for path in sys.argv[1:])
if built != alone or 'job="xmpp-monitoring"' not in str(built) or "vector(30)" not in str(built):
    sys.exit("mixin/README.md: its example gives other rules with jsonnet alone than with build.py, "
             "or not its selector and threshold")
print("mixin: the README's example gives the same rules both ways, with its selector and threshold")
PY

# The runbook's example of a selector of one's own evaluates, and selects with it.
awk '/^ *```jsonnet/ {f = 1; next} /^ *```/ {f = 0} f' docs/runbook.md >"$scratch/runbook.jsonnet"
jsonnet -J mixin -e "(import '$scratch/runbook.jsonnet').prometheusAlerts" >"$scratch/runbook.json"
grep -qF 'up{job=\"xmpp-monitoring\"}' "$scratch/runbook.json" || {
    echo "docs/runbook.md: its jsonnet example does not give rules selecting job=\"xmpp-monitoring\"" >&2
    exit 1
}
echo "mixin: the runbook's example selects its job"

echo "(import 'mixin.libsonnet') + { _config+:: { selector: ' ' } }" >"$scratch/empty.jsonnet"
if python3 mixin/build.py --mixin "$scratch/empty.jsonnet" --out "$scratch/empty" 2>"$scratch/err"; then
    echo "mixin: an empty _config.selector was accepted" >&2
    exit 1
elif ! grep -q '_config.selector must be PromQL label matchers' "$scratch/err"; then
    echo "mixin: an empty _config.selector failed without naming the field:" >&2
    cat "$scratch/err" >&2
    exit 1
fi
echo "mixin: an empty _config.selector is refused, naming the field"
