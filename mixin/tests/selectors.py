#!/usr/bin/env python3
"""Every series the mixin's output selects carries the configured selector.

    python3 mixin/tests/selectors.py DIR SELECTOR

DIR holds the mixin's output (alerts/cms-xmpp.rules.yml, dashboards/*.json), SELECTOR the
_config.selector it was built with. Checked: every rule expression, every query in the
alerts' summaries and descriptions (where the selector is escaped for Go's printf), every
dashboard query and variable query. Each `up` or cms_xmpp_* series must be written
`name{SELECTOR, ...}` or `name{SELECTOR}`: a source that forgot the SELECTOR marker would
select another job's series. Prints each miss; exits 1 when there is one.
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
        if not (rest.startswith("{" + selector + ",") or rest.startswith("{" + selector + ", ")
                or rest.startswith("{" + selector + "}")):
            found.append(match.group(1))
    return found


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
    for path in sorted((root / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        queries = [(f"variable {v['name']}", v["query"]["query"])
                   for v in dashboard["templating"]["list"] if v["type"] == "query"]
        for panel in dashboard["panels"]:
            queries += [(f"panel {panel['title']!r}", t["expr"]) for t in panel.get("targets", [])]
        for where, expr in queries:
            checked += 1
            for series in misses(expr, selector):
                problems.append(f"{path.name}, {where}: selects {series} without the selector")
    for problem in problems:
        print(f"FAIL  {problem}")
    print(f"selectors: {checked} expressions and queries checked for {selector}, {len(problems)} misses")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
