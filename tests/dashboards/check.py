#!/usr/bin/env python3
"""Keeps the Grafana dashboards and the Prometheus alert rules honest.

    python3 tests/dashboards/check.py [--prometheus URL [--require-data]] [--promtool PATH]

Offline (always):
  - every dashboards/*.json parses and is a sound Grafana model: schemaVersion >= 39, a uid that
    is unique across the files, a `datasource` variable (type datasource, prometheus) and the
    `target` and `server` variables, every `$var` used somewhere is defined (or a Grafana
    built-in `$__...`), every panel has the `${datasource}` datasource (on the panel and on each
    query) and a unit (fieldConfig.defaults.unit), links between the dashboards resolve;
  - every PromQL expression of the dashboards (panel queries; variable queries, of which
    `label_values(SELECTOR, label)` contributes SELECTOR), with the variables substituted
    ($target, ${server}, ... -> .*; $__rate_interval, $__interval, $__range -> 5m), parses:
    they are written as recording rules to a temporary rules file and `promtool check rules`
    reads it (a real PromQL parse);
  - every metric such an expression names is defined in docs/metrics.md (histogram metrics
    also with _bucket/_sum/_count), or is `up`, or is a recording rule of the alert rules file;
    label matchers on a contract metric use that metric's labels (plus job, instance, and le on
    _bucket), and literal step / reason / role values are ones docs/metrics.md lists;
  - alerts/cms-xmpp.rules.yml: `promtool check rules` passes; the same metric check on every
    `expr` and on every `query` in the annotation templates (which also must parse); every
    alert has a severity (critical|warning|info), summary, description and a runbook_url whose
    anchor is its lowercased name and exists in docs/runbook.md; every alert is shown to fire
    and to stay quiet by alerts/tests/*.yml.

With --prometheus URL (a live Prometheus that scrapes the exporter):
  - every dashboard expression, every alert expression and every annotation query is run
    through URL/api/v1/query and must not error;
  - with --require-data, every dashboard expression must also return data (the ones that
    return nothing are listed).

Prints one line per check, "PASS  ..." or "FAIL  ...", and at the end exactly
"N passed, M failed"; exits 1 when anything failed. Standard library only (no PyYAML): the
rules file is read by a small reader that only extracts what it needs, and promtool reads
the real YAML.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

MIN_SCHEMA_VERSION = 39
REQUIRED_VARIABLES = ("datasource", "target", "server")
DATASOURCE_UID = "${datasource}"
SUBSTITUTE_DURATION = "5m"
# Panels that hold no query: no datasource or unit needed.
NON_QUERY_PANELS = {"row", "text", "dashlist", "news", "alertlist", "annolist"}
SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")
EXTRA_LABELS = {"job", "instance", "__name__"}
TEMPLATE_VALUE = "TEMPLATE_ARG"  # stands for a %q argument in an annotation's query (printf ...)

PASSED = 0
FAILED = 0


def report(ok, what, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"PASS  {what}")
    else:
        FAILED += 1
        print(f"FAIL  {what}" + (f": {detail}" if detail else ""))
    sys.stdout.flush()
    return ok


def rel(path):
    return os.path.relpath(path, ROOT)


# --------------------------------------------------------------------------- the contract


class Contract:
    """Metric names, types and labels, and label values, from docs/metrics.md."""

    def __init__(self, path):
        self.metrics = {}  # name -> (type, set of labels)
        self.values = {"step": set(), "reason": set(), "role": set()}
        section = ""
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
            for n, line in enumerate(lines):
                if n + 1 < len(lines) and re.fullmatch(r"\|[\s\-:|]+\|", lines[n + 1].strip()):
                    continue  # a table's header row
                heading = re.match(r"^#+\s+(.*)", line)
                if heading:
                    section = heading.group(1).strip().lower()
                    continue
                cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
                if len(cells) < 2:
                    continue
                first = re.fullmatch(r"`([a-z_][a-z0-9_]*)`", cells[0])
                if not first:
                    continue
                name = first.group(1)
                if name.startswith("cms_xmpp_") and len(cells) >= 3:
                    labels = set(re.findall(r"[a-z_]+", cells[2])) if cells[2] not in ("—", "-", "") else set()
                    self.metrics[name] = (cells[1].lower(), labels)
                elif section == "steps":
                    self.values["step"].add(name)
                elif section == "reasons":
                    self.values["reason"].add(name)
            self.values["role"].update(re.findall(r'role="([a-z_]+)"', "\n".join(lines)))

    def resolve(self, name):
        """(base metric, type, labels, suffix) for a contract name, or None."""
        if name in self.metrics:
            kind, labels = self.metrics[name]
            return name, kind, labels, ""
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in self.metrics and self.metrics[base][0] == "histogram":
                return base, "histogram", self.metrics[base][1], suffix
        return None


# --------------------------------------------------------------------------- PromQL scanning

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>(?:0x[0-9a-fA-F]+)|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[a-zA-Z0-9]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@,(){}\[\]])
  """,
    re.X,
)
AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
               "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "atan2", "inf", "nan", "start", "end"}


def tokens(expr):
    pos = 0
    out = []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot scan {expr[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        out.append((kind, m.group(kind)))
    return out


def unquote(s):
    if s.startswith("`"):
        return s[1:-1]
    body = s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def selectors(expr):
    """[(metric name or None, [(label, op, value)])] for every vector selector in expr."""
    toks = tokens(expr)
    out = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and text.lower() in KEYWORDS:
            if text.lower() in ("by", "without", "on", "ignoring", "group_left", "group_right") and nxt == "(":
                depth = 0
                while i < len(toks):  # skip the label list
                    if toks[i][1] == "(":
                        depth += 1
                    elif toks[i][1] == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    i += 1
            i += 1
            continue
        if kind == "ident" and (nxt == "(" or (text in AGGREGATORS and nxt in ("by", "without"))):
            i += 1  # a function or an aggregation
            continue
        if kind == "op" and text == "[":
            while i < len(toks) and toks[i][1] != "]":
                i += 1
            i += 1
            continue
        if kind == "ident" or (kind == "op" and text == "{"):
            name = text if kind == "ident" else None
            matchers = []
            if kind == "ident" and nxt == "{":
                i += 1
            if toks[i][1] == "{":
                i += 1
                while i < len(toks) and toks[i][1] != "}":
                    if toks[i][0] in ("ident", "string") and i + 2 < len(toks) and toks[i + 1][1] in ("=", "!=", "=~", "!~"):
                        label = toks[i][1] if toks[i][0] == "ident" else unquote(toks[i][1])
                        matchers.append((label, toks[i + 1][1], unquote(toks[i + 2][1])))
                        i += 3
                    else:
                        i += 1
            if name is None:
                for label, op, value in matchers:
                    if label == "__name__" and op == "=":
                        name = value
            out.append((name, matchers))
        i += 1
    return out


def check_names(expr, contract, recorded):
    """Problems with the metrics and label matchers expr uses; [] when none."""
    problems = []
    try:
        sels = selectors(expr)
    except ValueError as e:
        return [str(e)]
    if not sels:
        pass
    for name, matchers in sels:
        if name is None:
            problems.append("a selector without a metric name")
            continue
        if name == "up" or name in recorded:
            continue
        found = contract.resolve(name)
        if found is None:
            problems.append(f"metric {name} is not in docs/metrics.md")
            continue
        base, kind, labels, suffix = found
        allowed = labels | EXTRA_LABELS | ({"le"} if suffix == "_bucket" else set())
        for label, op, value in matchers:
            if label not in allowed:
                problems.append(f"{name} has no label {label} (docs/metrics.md: {', '.join(sorted(labels)) or 'none'})")
            elif label in contract.values and op in ("=", "=~") and contract.values[label]:
                alternatives = [value] if op == "=" else (value.split("|") if re.fullmatch(r"[A-Za-z0-9_|]*", value) else [])
                for alt in alternatives:
                    if alt and alt != TEMPLATE_VALUE and alt not in contract.values[label]:
                        problems.append(f'{label}="{alt}" is not a {label} value in docs/metrics.md')
    return problems


# --------------------------------------------------------------------------- Grafana variables

BUILTIN_PREFIX = "__"
VAR_REF = re.compile(r"\$\{([A-Za-z0-9_]+)(?:[:.][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]")


def substitute(expr):
    """Grafana variables replaced by values that keep the PromQL valid and match everything."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in ("__rate_interval", "__interval", "__range", "__auto"):
            return SUBSTITUTE_DURATION
        if name in ("__range_s", "__interval_s"):
            return "300"
        if name in ("__range_ms", "__interval_ms"):
            return "300000"
        return ".*"
    return VAR_REF.sub(repl, expr)


def label_values_selector(query):
    """The metric selector of label_values(SELECTOR, label); None for label_values(label)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query, re.S)
    if m:
        return m.group(1).strip()
    if re.fullmatch(r"\s*label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query):
        return None
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S)
    if m:
        return m.group(1).strip()
    m = re.fullmatch(r"\s*(?:metrics|label_names)\((.*)\)\s*", query, re.S)
    if m:
        return None
    return query.strip()


def walk_strings(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk_strings(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def all_panels(panels):
    for p in panels or []:
        yield p
        yield from all_panels(p.get("panels"))


# --------------------------------------------------------------------------- the rules file


def closing_quote(text, quote):
    """Index of the quote that closes a YAML quoted scalar whose opening quote was cut off."""
    i = 0
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return None


def read_rules(path):
    """[{kind: alert|record, name, expr, block}] from a Prometheus rules file, without PyYAML.

    Enough YAML for rules files: `- alert:`/`- record:` items, and `expr:` as a plain,
    single- or double-quoted, or block (| >) scalar. promtool reads the file for real."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rules = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)-\s+(alert|record):\s*(.+?)\s*$", lines[i])
        if m:
            rules.append({"kind": m.group(2), "name": m.group(3).strip("'\""), "expr": None, "start": i, "block": ""})
        m = re.match(r"^(\s*)(?:-\s+)?expr:\s?(.*)$", lines[i])
        if m and rules:
            indent = len(m.group(1))
            value = m.group(2)
            body = []
            j = i + 1
            if re.match(r"^[|>][-+0-9]*\s*(#.*)?$", value):
                while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                    body.append(lines[j])
                    j += 1
                expr = "\n".join(b.strip() for b in body).strip()
            elif value.startswith("'") or value.startswith('"'):
                quote, text = value[0], value[1:]
                while closing_quote(text, quote) is None and j < len(lines):
                    text += "\n" + lines[j].strip()
                    j += 1
                inner = text[: closing_quote(text, quote)]
                expr = inner.replace("''", "'") if quote == "'" else unquote('"' + inner + '"')
                expr = re.sub(r"\s*\n\s*", " ", expr)
            else:
                body = [re.sub(r"\s+#.*$", "", value)]
                while j < len(lines) and lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) > indent \
                        and not re.match(r"^\s*[A-Za-z_]+:\s", lines[j]):
                    body.append(re.sub(r"\s+#.*$", "", lines[j].strip()))
                    j += 1
                expr = " ".join(body).strip()
            rules[-1]["expr"] = expr
            i = j
            continue
        if rules and not re.match(r"^\s*-\s+name:", lines[i]):
            rules[-1]["block"] += lines[i] + "\n"
        i += 1
    return rules


def template_queries(text):
    """PromQL of every `query "..."` / `query (printf "..." ...)` in alert templates, %q -> a placeholder."""
    out = []
    for m in re.finditer(r'query\s+(?:\(\s*printf\s+)?("(?:[^"\\]|\\.)*")', text):
        q = unquote(m.group(1))
        q = q.replace("%q", '"' + TEMPLATE_VALUE + '"').replace("%s", "x").replace("%d", "1").replace("%%", "%")
        if q not in out:
            out.append(q)
    return out


def github_anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def runbook_anchors(path):
    anchors = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
            if m:
                anchors.add(github_anchor(m.group(1)))
            for a in re.findall(r'<a\s+(?:name|id)="([^"]+)"', line):
                anchors.add(a)
    return anchors


def alert_test_coverage(test_files):
    """{alertname: {"fire": n, "quiet": n}} from promtool unit test files."""
    cov = {}
    for path in test_files:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        current = None
        for line in lines:
            m = re.match(r"^\s*(?:-\s+)?alertname:\s*(\S+)\s*$", line)
            if m:
                current = m.group(1).strip("'\"")
                continue
            m = re.match(r"^\s*exp_alerts:\s*(.*?)\s*$", line)
            if m and current:
                kind = "quiet" if m.group(1) == "[]" else "fire"
                cov.setdefault(current, {"fire": 0, "quiet": 0})[kind] += 1
                current = None
    return cov


# --------------------------------------------------------------------------- promtool and Prometheus


def promtool_parse(promtool, exprs):
    """{index: error} for the expressions promtool cannot parse (as recording rules)."""
    def run(batch):
        rules = {"groups": [{"name": "check-dashboards", "rules": [
            {"record": f"check:expr:{i}", "expr": e} for i, e in batch]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".rules.yml", delete=False) as tmp:
            json.dump(rules, tmp)  # JSON is YAML
            name = tmp.name
        try:
            proc = subprocess.run([promtool, "check", "rules", name], capture_output=True, text=True, timeout=120)
        finally:
            os.unlink(name)
        return proc.returncode, (proc.stdout + proc.stderr).strip()

    code, out = run(list(enumerate(exprs)))
    if code == 0:
        return {}
    errors = {}
    for i, e in enumerate(exprs):  # find the culprits one by one
        c, o = run([(i, e)])
        if c != 0:
            lines = [ln.strip() for ln in o.splitlines() if "parse" in ln or "error" in ln.lower()]
            errors[i] = (lines[-1] if lines else o.splitlines()[-1])[:300]
    if not errors:
        errors[-1] = out[-300:]
    return errors


def prom_query(base, expr):
    """(ok, number of results or error message)."""
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except Exception:
            return False, f"HTTP {e.code}"
    except Exception as e:  # connection refused, timeout
        return False, str(e)
    if body.get("status") != "success":
        return False, f"{body.get('errorType', '')}: {body.get('error', body)}"
    data = body.get("data", {})
    result = data.get("result")
    if data.get("resultType") in ("scalar", "string"):
        return True, 1
    return True, len(result or [])


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", metavar="URL", help="also run every expression against this Prometheus")
    ap.add_argument("--require-data", action="store_true", help="with --prometheus: every dashboard expression must return data")
    ap.add_argument("--promtool", default=os.environ.get("PROMTOOL", "promtool"), help="promtool binary (default: promtool on PATH)")
    ap.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.require_data and not args.prometheus:
        ap.error("--require-data needs --prometheus URL")
    root = os.path.abspath(args.root)

    contract = Contract(os.path.join(root, "docs", "metrics.md"))
    report(len(contract.metrics) > 10 and all(contract.values.values()),
           f"docs/metrics.md: {len(contract.metrics)} metrics, {len(contract.values['step'])} steps, "
           f"{len(contract.values['reason'])} reasons, roles {', '.join(sorted(contract.values['role']))}",
           "could not read the metric, step, reason or role tables")

    rules_path = os.path.join(root, "alerts", "cms-xmpp.rules.yml")
    rules = read_rules(rules_path)
    with open(rules_path, encoding="utf-8") as f:
        rules_text = f.read()
    recorded = {r["name"] for r in rules if r["kind"] == "record"}
    promtool = shutil.which(args.promtool) or (args.promtool if os.path.exists(args.promtool) else None)
    report(promtool is not None, f"promtool found ({promtool or args.promtool})",
           "install it: apt-get install prometheus (Debian 12), or pass --promtool PATH")

    # ------------------------------------------------------------------ dashboards: the model
    dash_dir = os.path.join(root, "dashboards")
    files = sorted(os.path.join(dash_dir, f) for f in os.listdir(dash_dir) if f.endswith(".json"))
    report(len(files) >= 2, f"dashboards: {len(files)} files in dashboards/", "expected the overview and the certificates & DNS dashboards")
    dashboards = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                dashboards[path] = json.load(f)
            report(True, f"{rel(path)}: valid JSON")
        except (OSError, ValueError) as e:
            report(False, f"{rel(path)}: valid JSON", str(e))

    uids = {}
    for path, d in dashboards.items():
        uids.setdefault(d.get("uid"), []).append(rel(path))
    for uid, paths in sorted(uids.items(), key=lambda kv: str(kv[0])):
        report(bool(uid) and len(paths) == 1, f"uid {uid!r} set and unique", f"used by {', '.join(paths)}")

    dash_exprs = []  # (where, raw expression)
    runbook_path = os.path.join(root, "docs", "runbook.md")
    anchors = runbook_anchors(runbook_path) if os.path.exists(runbook_path) else set()
    report(os.path.exists(runbook_path), "docs/runbook.md exists")

    for path, d in dashboards.items():
        name = rel(path)
        sv = d.get("schemaVersion")
        report(isinstance(sv, int) and sv >= MIN_SCHEMA_VERSION, f"{name}: schemaVersion {sv} >= {MIN_SCHEMA_VERSION}")
        report(bool(d.get("title")), f"{name}: has a title")

        variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        problems = [v for v in REQUIRED_VARIABLES if v not in variables]
        ds = variables.get("datasource", {})
        if ds and (ds.get("type") != "datasource" or ds.get("query") != "prometheus"):
            problems.append("datasource is not a prometheus datasource variable")
        for v in ("target", "server"):
            var = variables.get(v, {})
            if var and not (var.get("multi") and var.get("includeAll")):
                problems.append(f"{v} is not multi-value with All")
            if var and (var.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                problems.append(f"{v} does not query {DATASOURCE_UID}")
        report(not problems, f"{name}: variables {', '.join(REQUIRED_VARIABLES)} defined", "; ".join(problems))

        undefined = set()
        for where, s in walk_strings(d):
            for m in VAR_REF.finditer(s):
                var = m.group(1) or m.group(2) or m.group(3)
                if not var.startswith(BUILTIN_PREFIX) and var not in variables:
                    undefined.add(f"${var} ({where})")
        report(not undefined, f"{name}: every $variable used is defined", "; ".join(sorted(undefined)))

        for v in variables.values():
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or v.get("definition", ""))
            sel = label_values_selector(q)
            if sel:
                dash_exprs.append((f"{name}: variable {v.get('name')}", sel, False))

        links = [l for l in d.get("links", [])]
        to_dash = [l for l in links if l.get("type") == "link" and str(l.get("url", "")).startswith("/d/")]
        bad = [l["url"] for l in to_dash if l["url"].split("/")[2].split("?")[0] not in uids]
        others = {u for u in uids if u != d.get("uid")}
        linked = {l["url"].split("/")[2].split("?")[0] for l in to_dash}
        report(not bad and others <= linked, f"{name}: links to the other dashboards ({', '.join(sorted(others))}) resolve",
               f"unknown uid in {bad}" if bad else f"missing links to {sorted(others - linked)}")

        for p in all_panels(d.get("panels")):
            title = f"{name}: panel {p.get('id')} {p.get('title')!r}"
            if p.get("type") in NON_QUERY_PANELS:
                continue
            problems = []
            if (p.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                problems.append(f"panel datasource is {p.get('datasource')!r}, not {DATASOURCE_UID}")
            unit = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
            if not unit:
                problems.append("no fieldConfig.defaults.unit")
            targets = p.get("targets") or []
            if not targets:
                problems.append("no queries")
            for t in targets:
                if (t.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                    problems.append(f"query {t.get('refId')} datasource is {t.get('datasource')!r}")
                if not t.get("expr"):
                    problems.append(f"query {t.get('refId')} has no expr")
                else:
                    dash_exprs.append((f"{title} query {t.get('refId')}", t["expr"], True))
            report(not problems, f"{title}: datasource {DATASOURCE_UID}, unit {unit!r}, {len(targets)} queries", "; ".join(problems))

        for where, s in walk_strings(d):
            for m in re.finditer(r"docs/runbook\.md#([\w\-]+)", s):
                report(m.group(1) in anchors, f"{name}: link to docs/runbook.md#{m.group(1)} resolves", f"no such heading ({where})")

    # ------------------------------------------------------------------ the runbook's panels
    # A sentence of the runbook that mentions a dashboard names panels in double quotes; each
    # must exist ("Step latency" stands for "Step latency: $step", one panel per value).
    titles = {p.get("title", "") for d in dashboards.values() for p in all_panels(d.get("panels"))}
    titles |= {t.split(":")[0] for t in titles if "$" in t}
    if os.path.exists(runbook_path):
        with open(runbook_path, encoding="utf-8") as f:
            prose = re.sub(r"```.*?```", " ", f.read(), flags=re.S)
        sentences = re.split(r"(?<=[.?!])\s+", re.sub(r"\s+", " ", prose))
        named = [q for s in sentences if "dashboard" in s.lower() for q in re.findall(r'"([^"]+)"', s)]
        for name in named:
            report(name in titles, f"docs/runbook.md names dashboard panel {name!r}: it exists", "no panel has that title")
        report(bool(named), f"docs/runbook.md names {len(named)} dashboard panels", "none found: the check reads nothing")

    # ------------------------------------------------------------------ dashboards: the PromQL
    substituted = [(where, substitute(e), need) for where, e, need in dash_exprs]
    for where, e, _ in substituted:
        problems = check_names(e, contract, recorded)
        report(not problems, f"{where}: metrics in docs/metrics.md", "; ".join(problems) + f" in {e}")

    if promtool:
        errors = promtool_parse(promtool, [e for _, e, _ in substituted])
        if -1 in errors:
            report(False, "promtool parses the dashboard expressions", errors[-1])
        for i, (where, e, _) in enumerate(substituted):
            report(i not in errors, f"{where}: PromQL parses (promtool)", f"{errors.get(i)}: {e}")

    # ------------------------------------------------------------------ alert rules
    if promtool:
        proc = subprocess.run([promtool, "check", "rules", rules_path], capture_output=True, text=True)
        out = (proc.stdout + proc.stderr).strip().splitlines()
        report(proc.returncode == 0, f"promtool check rules {rel(rules_path)}" + (f" ({out[-1].strip()})" if out else ""),
               " | ".join(out[-5:]))

    n_items = len(re.findall(r"^\s*-\s+(?:alert|record):", rules_text, re.M))
    report(len(rules) == n_items and all(r["expr"] for r in rules),
           f"{rel(rules_path)}: read {len(rules)} rules with an expr", f"{n_items} rules in the file")

    alerts = [r for r in rules if r["kind"] == "alert"]
    for r in rules:
        problems = check_names(r["expr"] or "", contract, recorded)
        report(not problems, f"{r['kind']} {r['name']}: metrics in docs/metrics.md", "; ".join(problems))

    tqueries = template_queries(rules_text)
    for q in tqueries:
        problems = check_names(q, contract, recorded)
        report(not problems, f"annotation query {q!r}: metrics in docs/metrics.md", "; ".join(problems))
    if promtool and tqueries:
        errors = promtool_parse(promtool, tqueries)
        report(not errors, f"{len(tqueries)} annotation template queries parse (promtool)",
               "; ".join(f"{tqueries[i] if i >= 0 else ''}: {err}" for i, err in errors.items()))

    for r in alerts:
        block = r["block"]
        problems = []
        if not re.match(r"^CmsXmpp[A-Z][A-Za-z0-9]*$", r["name"]):
            problems.append("name is not CamelCase with the CmsXmpp prefix")
        sev = re.search(r"^\s*severity:\s*['\"]?(\w+)", block, re.M)
        if not sev or sev.group(1) not in SEVERITIES:
            problems.append(f"severity {sev.group(1) if sev else 'missing'} (want one of {', '.join(sorted(SEVERITIES))})")
        for a in REQUIRED_ANNOTATIONS:
            if not re.search(rf"^\s*{a}:", block, re.M):
                problems.append(f"no {a} annotation")
        url = re.search(r"^\s*runbook_url:\s*(\S+)", block, re.M)
        if url:
            anchor = url.group(1).split("#", 1)[1] if "#" in url.group(1) else ""
            if anchor != r["name"].lower():
                problems.append(f"runbook_url anchor #{anchor} is not #{r['name'].lower()}")
            elif anchor not in anchors:
                problems.append(f"docs/runbook.md has no section #{anchor}")
        report(not problems, f"alert {r['name']}: severity {sev.group(1) if sev else '?'}, summary, description, runbook_url", "; ".join(problems))

    test_files = sorted(os.path.join(root, "alerts", "tests", f) for f in os.listdir(os.path.join(root, "alerts", "tests"))
                        if f.endswith((".yml", ".yaml"))) if os.path.isdir(os.path.join(root, "alerts", "tests")) else []
    cov = alert_test_coverage(test_files)
    for name in sorted({r["name"] for r in alerts}):
        c = cov.get(name, {"fire": 0, "quiet": 0})
        report(c["fire"] > 0 and c["quiet"] > 0, f"alert {name}: unit tests show it firing ({c['fire']}) and quiet ({c['quiet']})",
               "add both cases to alerts/tests/*.yml")

    # ------------------------------------------------------------------ a live Prometheus
    if args.prometheus:
        ok, _ = prom_query(args.prometheus, "vector(1)")
        if not report(ok, f"Prometheus answers at {args.prometheus}", str(_)):
            return finish()
        empty = []
        for where, e, need in substituted:
            ok, res = prom_query(args.prometheus, e)
            report(ok, f"{where}: evaluates on Prometheus" + (f" ({res} series)" if ok else ""), f"{res}: {e}")
            if ok and res == 0 and args.require_data and need:
                empty.append(where)
                report(False, f"{where}: returns data", f"no data for {e}")
        for r in rules:
            ok, res = prom_query(args.prometheus, r["expr"])
            report(ok, f"{r['kind']} {r['name']}: evaluates on Prometheus ({res if ok else 'error'})", f"{res}")
        for q in tqueries:
            ok, res = prom_query(args.prometheus, q)
            report(ok, f"annotation query {q!r}: evaluates on Prometheus", f"{res}")
        if args.require_data:
            report(not empty, f"every dashboard expression returns data ({len([s for s in substituted if s[2]])} expressions)",
                   f"{len(empty)} without data: " + "; ".join(empty))
    return finish()


def finish():
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
