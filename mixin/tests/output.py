#!/usr/bin/env python3
"""What must hold of the mixin's output whatever its _config.

    python3 mixin/tests/output.py DIR SELECTOR

DIR holds the mixin's output (alerts/cms-xmpp.rules.yml, dashboards/*.json), SELECTOR the
_config.selector it was built with.

- Every series it selects carries the selector: every rule expression, every query in the
  alerts' summaries and descriptions (where the selector is escaped for Go's printf), every
  dashboard query and variable query. Each `up` or cms_xmpp_* series must be written
  `name{SELECTOR, ...}` or `name{SELECTOR}`: a source that forgot the SELECTOR marker would
  select another job's series.
- Every dashboard's colour thresholds ascend: Grafana takes the last step at or below a value,
  so a step out of order (a threshold from _config overtaking a fixed one) paints a healthy
  value in an alarming colour.

Prints each problem; exits 1 when there is one.
"""

import json
import re
import sys
from pathlib import Path

import yaml

SERIES = re.compile(r"\b(cms_xmpp_[a-z0-9_]+|up)\b(?![:(a-z0-9_])")
TEMPLATE_QUERY = re.compile(r'query\s+(?:\(\s*printf\s+)?"((?:[^"\\]|\\.)*)"')


def misses(expr, selector):
    """The series names in expr not followed by `{selector` (then `,` or `}`)."""
    found = []
    for match in SERIES.finditer(expr):
        rest = expr[match.end():]
        if not (rest.startswith("{" + selector + ",") or rest.startswith("{" + selector + "}")):
            found.append(match.group(1))
    return found


def threshold_steps(node, where):
    """(where, [step values]) of every `thresholds` object under node."""
    if isinstance(node, dict):
        # fieldConfig.defaults.thresholds, or an override's {"id": "thresholds", "value": ...}
        found = node.get("value") if node.get("id") == "thresholds" else node.get("thresholds")
        if isinstance(found, dict) and isinstance(found.get("steps"), list):
            yield where, [step.get("value") for step in found["steps"]]
        for key, value in node.items():
            yield from threshold_steps(value, where)
    elif isinstance(node, list):
        for item in node:
            yield from threshold_steps(item, where)


def go_escaped(selector):
    return selector.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def main():
    root, selector = Path(sys.argv[1]), sys.argv[2]
    checked, problems = 0, []
    rules = yaml.safe_load((root / "alerts" / "cms-xmpp.rules.yml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            checked += 1
            for series in misses(rule["expr"], selector):
                problems.append(f"rule {name}: expr selects {series} without the selector")
            for key, text in (rule.get("annotations") or {}).items():
                for query in TEMPLATE_QUERY.findall(text):
                    checked += 1
                    for series in misses(query, go_escaped(selector)):
                        problems.append(f"rule {name}: a query in its {key} selects {series} without the selector")
    dashboards = sorted((root / "dashboards").glob("*.json"))
    thresholds = 0
    for path in dashboards:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        queries = [(f"variable {v['name']}", v["query"]["query"])
                   for v in dashboard["templating"]["list"] if v["type"] == "query"]
        for panel in dashboard["panels"]:
            queries += [(f"panel {panel['title']!r}", t["expr"]) for t in panel.get("targets", [])]
        for where, expr in queries:
            checked += 1
            for series in misses(expr, selector):
                problems.append(f"{path.name}, {where}: selects {series} without the selector")
        for panel in dashboard["panels"]:
            for where, values in threshold_steps(panel, f"panel {panel['title']!r}"):
                numbers = [v for v in values if v is not None]
                checked += 1
                thresholds += 1
                if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
                    problems.append(f"{path.name}, {where}: threshold steps {values} do not ascend")
    if not dashboards or not thresholds:
        problems.append(f"{root}: no dashboards or no threshold lists to check: the check read nothing")
    for problem in problems:
        print(f"FAIL  {problem}")
    print(f"mixin output: {checked} expressions, queries and threshold lists checked "
          f"(selector {selector}), {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
