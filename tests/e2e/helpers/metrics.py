#!/usr/bin/env python3
"""Reads a Prometheus text exposition (or a Prometheus API answer) and checks series in it.

    metrics.py check FILE 'SELECTOR [OP VALUE]...'   exit 0 when the check holds
    metrics.py absent FILE 'SELECTOR'                exit 0 when no series matches
    metrics.py count FILE 'SELECTOR' OP N            exit 0 when the number of matches compares
    metrics.py lines FILE 'SELECTOR'                 print the matching series
    metrics.py value FILE 'SELECTOR'                 print the value of the single match
    metrics.py from-api FILE                         turn a /api/v1/query JSON answer (vector)
                                                     into exposition lines on stdout
    metrics.py free-ports N HOST...                  print N TCP ports free on every HOST

SELECTOR is PromQL-like: name{label="v",label!="v",label=~"regex"}. A label that a series
lacks counts as "" (as in PromQL). `check` holds when at least one series matches and every
matching series satisfies every comparison (OP is one of == != > >= < <=).
`check` and `count` print the matching series when they fail, so the caller can show them.
"""
import json
import operator
import re
import socket
import sys

OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_labels(text: str, pos: int):
    """Parses `{...}` starting at text[pos] == '{'; returns (list of (k, op, v), end)."""
    assert text[pos] == "{"
    pos += 1
    labels = []
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        m = LABEL_RE.match(text, pos)
        if not m:
            raise ValueError(f"cannot parse labels at {text[pos:pos + 40]!r}")
        labels.append((m.group(1), m.group(2), unescape(m.group(3))))
        pos = m.end()


def parse_exposition(text: str):
    """Yields (name, {label: value}, value, line)."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = NAME_RE.match(line)
        if not m:
            continue
        name, pos = m.group(0), m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            parsed, pos = parse_labels(line, pos)
            labels = {k: v for k, _, v in parsed}
        rest = line[pos:].split()
        if not rest:
            continue
        try:
            value = float(rest[0])
        except ValueError:
            continue
        yield name, labels, value, line


def parse_selector(text: str):
    """Returns (name, matchers, comparisons) from 'name{...} OP V OP V'."""
    text = text.strip()
    m = NAME_RE.match(text)
    if not m:
        raise ValueError(f"bad selector {text!r}")
    name, pos = m.group(0), m.end()
    matchers = []
    if pos < len(text) and text[pos] == "{":
        matchers, pos = parse_labels(text, pos)
    tokens = text[pos:].split()
    if len(tokens) % 2:
        raise ValueError(f"comparisons must be OP VALUE pairs: {tokens}")
    comparisons = []
    for op, value in zip(tokens[::2], tokens[1::2]):
        if op not in OPS:
            raise ValueError(f"unknown operator {op}")
        comparisons.append((op, float(value)))
    return name, matchers, comparisons


def matches(labels: dict, matchers) -> bool:
    for key, op, want in matchers:
        have = labels.get(key, "")
        if op == "=" and have != want:
            return False
        if op == "!=" and have == want:
            return False
        if op == "=~" and not re.fullmatch(want, have):
            return False
    return True


def select(path: str, selector: str):
    name, matchers, comparisons = parse_selector(selector)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = [
        (labels, value, line)
        for n, labels, value, line in parse_exposition(text)
        if n == name and matches(labels, matchers)
    ]
    return found, comparisons


def from_api(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        answer = json.load(f)
    if answer.get("status") != "success":
        print(f"# query failed: {answer}")
        return
    data = answer["data"]
    if data["resultType"] != "vector":
        print(f"# not a vector: {data['resultType']}")
        return
    for item in data["result"]:
        metric = dict(item["metric"])
        name = metric.pop("__name__", "result")
        # JSON string escaping of " and \ is the exposition format's escaping too.
        labels = ",".join(f'{k}="{json.dumps(v)[1:-1]}"' for k, v in sorted(metric.items()))
        print(f"{name}{{{labels}}} {item['value'][1]}")


def free_ports(count: int, hosts) -> None:
    """Ports the kernel hands out for port 0 on the first host, free on the others too."""
    chosen, held = [], []
    while len(chosen) < count:
        first = socket.socket()
        first.bind((hosts[0], 0))
        port = first.getsockname()[1]
        held.append(first)
        ok = True
        for host in hosts[1:]:
            other = socket.socket()
            try:
                other.bind((host, port))
                held.append(other)
            except OSError:
                ok = False
                other.close()
        if ok:
            chosen.append(port)
    for s in held:
        s.close()
    print(" ".join(str(p) for p in chosen))


def main() -> int:
    cmd = sys.argv[1]
    if cmd == "from-api":
        from_api(sys.argv[2])
        return 0
    if cmd == "free-ports":
        free_ports(int(sys.argv[2]), sys.argv[3:] or ["127.0.0.1"])
        return 0
    path, selector = sys.argv[2], sys.argv[3]
    found, comparisons = select(path, selector)
    if cmd == "lines":
        for _, _, line in found:
            print(line)
        return 0
    if cmd == "value":
        if len(found) != 1:
            return 1
        print(repr(found[0][1]) if found[0][1] != int(found[0][1]) else int(found[0][1]))
        return 0
    if cmd == "absent":
        ok = not found
    elif cmd == "count":
        op, want = sys.argv[4], float(sys.argv[5])
        ok = OPS[op](len(found), want)
    elif cmd == "check":
        ok = bool(found) and all(
            OPS[op](value, want) for _, value, _ in found for op, want in comparisons
        )
    else:
        raise SystemExit(f"unknown command {cmd}")
    if not ok:
        for _, _, line in found:
            print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
