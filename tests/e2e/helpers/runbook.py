#!/usr/bin/env python3
"""Prints the shell code blocks of one section of the runbook, as written, for the end-to-end
suite to run with the placeholders set.

    runbook.py FILE SECTION    the ```sh blocks under "## SECTION", until the next "## "

Exit 1 when the section or a block in it is missing: a renamed section must not turn the
check into one that runs nothing.
"""
import sys


def blocks(text: str, section: str) -> list[str]:
    found, inside, in_block, current, result = False, False, False, [], []
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip() == section
            found = found or inside
            continue
        if not inside:
            continue
        if in_block:
            if line.strip() == "```":
                result.append("\n".join(current))
                in_block, current = False, []
            else:
                current.append(line)
        elif line.strip() == "```sh":
            in_block = True
    if not found:
        sys.exit(f"no section '## {section}' in the runbook")
    if not result:
        sys.exit(f"no ```sh block in the runbook's section {section}")
    return result


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    for block in blocks(text, sys.argv[2]):
        print(block)


if __name__ == "__main__":
    main()
