#!/usr/bin/env bash
# The mixin in CI: the committed alerts, dashboards, PrometheusRule and dashboards' ConfigMaps
# are what it generates (with Debian's jsonnet), its sources are jsonnetfmt-formatted, a job
# name of the user's own works through _config (its rules pass own-job.test.yml; its output
# passes mixin/tests/output.py: every series selection carries the selector, colour steps
# ascend), the README's and the runbook's examples do what they say, and a _config it cannot
# render truthfully (an empty selector, critical thresholds not inside warning ones) is refused.
# The committed files' own checks (promtool tests, tests/dashboards/check.py) run after this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The PyYAML of deploy/check/requirements.txt: the rules' layout is its emitter's.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r deploy/check/requirements.txt

python3 mixin/build.py --check
mapfile -t sources < <(find mixin -name '*.libsonnet' -o -name '*.jsonnet' | sort)
unformatted=()
for source in "${sources[@]}"; do
    jsonnetfmt --test "$source" || unformatted+=("$source")
done
if [ ${#unformatted[@]} -gt 0 ]; then
    echo "mixin: not jsonnetfmt-formatted (run jsonnetfmt -i): ${unformatted[*]}" >&2
    exit 1
fi
python3 mixin/tests/output.py . 'job=~".*cms.*xmpp.*"'

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 mixin/build.py --mixin mixin/tests/own-job.jsonnet --out "$scratch"
promtool check rules "$scratch/alerts/cms-xmpp.rules.yml"
cp mixin/tests/own-job.test.yml "$scratch/"
promtool test rules "$scratch/own-job.test.yml"
python3 mixin/tests/output.py "$scratch" 'job="xmpp-monitoring"'

# The README's example, both ways it shows: build.py, and jsonnet alone; the same rules.
awk '/^```jsonnet/ {f = 1; next} /^```/ {f = 0} f' mixin/README.md >"$scratch/my-mixin.jsonnet"
python3 mixin/build.py --mixin "$scratch/my-mixin.jsonnet" --out "$scratch/readme"
python3 mixin/tests/output.py "$scratch/readme" 'job="xmpp-monitoring"'
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

# A _config the mixin cannot render truthfully is refused, naming the field.
refused() { # refused OVERRIDE MESSAGE
    echo "(import 'mixin.libsonnet') + { _config+:: $1 }" >"$scratch/bad.jsonnet"
    if python3 mixin/build.py --mixin "$scratch/bad.jsonnet" --out "$scratch/bad" 2>"$scratch/err"; then
        echo "mixin: _config+:: $1 was accepted" >&2
        exit 1
    elif ! grep -qF "$2" "$scratch/err"; then
        echo "mixin: _config+:: $1 failed without saying: $2" >&2
        cat "$scratch/err" >&2
        exit 1
    fi
    echo "mixin: _config+:: $1 is refused: $2"
}
refused "{ selector: ' ' }" "_config.selector must be PromQL label matchers"
refused "{ thresholds+:: { certExpiryCriticalDays: 21 } }" "certExpiryCriticalDays must be below certExpiryWarningDays"
refused "{ thresholds+:: { dnssecExpiryWarningDays: 1 } }" "dnssecExpiryCriticalDays must be below dnssecExpiryWarningDays"
