#!/usr/bin/env bash
# Loads the live status page in headless Chromium from a running exporter (the lab example,
# with one target made to fail and one production Callbridge disconnected), checks the rendered text for each step's state, and saves
# screenshots (phone and desktop) as CI artifacts.
#
#   tests/browser/check-status-page.sh        # needs: chromium (Debian package), python3
#
# Artifacts go to $ARTIFACTS_DIR (default: ./artifacts).
set -euo pipefail
cd "$(dirname "$0")/../.."

artifacts="${ARTIFACTS_DIR:-artifacts}"
mkdir -p "$artifacts"
work="$(mktemp -d)"
lab_pid=""
cleanup() {
    if [[ -n "$lab_pid" ]]; then
        kill "$lab_pid" 2>/dev/null || true
        wait "$lab_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

chromium="$(command -v chromium || command -v chromium-browser || true)"
if [[ -z "$chromium" ]]; then
    echo "FAIL: chromium is not installed (apt-get install chromium)"
    echo "0 passed, 1 failed"
    exit 1
fi

cargo build --locked --quiet --example lab
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:${port}"
./target/debug/examples/lab --listen "127.0.0.1:${port}" --fault wrong-secret --fault callbridge-down >"$work/lab.log" 2>&1 &
lab_pid=$!

deadline=$((SECONDS + 60))
until curl -fsS "$url/-/ready" >/dev/null 2>&1; do
    if ((SECONDS > deadline)) || ! kill -0 "$lab_pid" 2>/dev/null; then
        echo "FAIL: the lab never became ready"; tail -20 "$work/lab.log"
        echo "0 passed, 1 failed"; exit 1
    fi
    sleep 0.2
done

browse() {
    # The flags keep Chromium off the network it cannot reach here.
    "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$work/profile-$1" "${@:2}" 2>>"$work/chromium.log"
}
browse dom --dump-dom "$url/" >"$work/dom.html"
browse phone --window-size=412,1400 --screenshot="$artifacts/status-page-phone.png" "$url/" >/dev/null
browse desktop --window-size=1280,1000 --screenshot="$artifacts/status-page-desktop.png" "$url/" >/dev/null

python3 - "$work/dom.html" "$artifacts" <<'PY'
import html.parser, os, sys

class Page(html.parser.HTMLParser):
    """Collects, per target section and flow, the state of each step chip, each watched
    component's state, and the visible text."""
    def __init__(self):
        super().__init__()
        self.target = None
        self.flow = None
        self.steps = {}      # (target, server, step) -> state, for the component flow
        self.login = {}      # (target, server, step) -> state, for the watch's login
        self.components = {} # (target, component) -> state
        self.text = {}       # target -> visible text
        self.server = None
        self.component = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-target" in a:
            self.target = a["data-target"]
        if "data-flow" in a:
            self.flow = a["data-flow"]
        if "data-server" in a:
            self.server, self.component = a["data-server"], None
        if "data-component" in a:
            self.component = a["data-component"]
        if "data-step" in a:
            chips = self.login if self.flow == "watch" else self.steps
            chips[(self.target, self.server, a["data-step"])] = a.get("data-state")
        elif "data-state" in a and self.component:
            self.components[(self.target, self.component)] = a["data-state"]
    def handle_data(self, data):
        if self.target:
            self.text[self.target] = self.text.get(self.target, "") + data

page = Page()
page.feed(open(sys.argv[1], encoding="utf-8").read())
passed = failed = 0
def check(ok, what):
    global passed, failed
    print(("PASS: " if ok else "FAIL: ") + what)
    passed, failed = passed + ok, failed + (not ok)

healthy = [k for k in page.steps if k[0] == "lab-srv"]
check(len(healthy) == 13, f"lab-srv shows the SRV step and six steps for each of its two servers ({len(healthy)} chips)")
check(all(page.steps[k] == "ok" for k in healthy), "every step of lab-srv is ok")
single = {k[2]: v for k, v in page.steps.items() if k[0] == "lab-single"}
expected = {"resolve": "ok", "connect": "ok", "tls": "ok", "cert": "ok", "stream": "ok", "handshake": "fail"}
check(single == expected, f"lab-single steps are {expected} (got {single})")
text = page.text.get("lab-single", "")
check("registration FAILING" in text, "lab-single says registration is failing")
check("not_authorized" in text and "xmpp callbridge add-secret" in text, "lab-single names the reason and the MMP command to fix it")
check("registration OK" in page.text.get("lab-srv", ""), "lab-srv says registration is OK")
login = {k[2]: v for k, v in page.login.items() if k[0] == "lab-srv"}
expected = dict.fromkeys(["resolve", "connect", "starttls", "tls", "cert", "sasl", "bind"], "ok")
check(login == expected, f"lab-srv's watch draws its login beside the component flow, all ok (got {login})")
components = {k[1]: v for k, v in page.components.items() if k[0] == "lab-srv"}
expected = {"cb1.example.test": "ok", "cb2.example.test": "fail"}
check(components == expected, f"the watched Callbridges are {expected} (got {components})")
text = page.text.get("lab-srv", "")
check("logged in" in text and "NOT registered" in text and "component_unavailable" in text,
      "lab-srv says the monitoring user is logged in and cb2 is NOT registered, with the reason")
check("xmpp status" in text, "the page tells how to confirm on CMS (xmpp status)")
for shot in ("status-page-phone.png", "status-page-desktop.png"):
    path = os.path.join(sys.argv[2], shot)
    ok = os.path.exists(path) and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 10_000
    check(ok, f"screenshot {path} saved")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
