#!/usr/bin/env python3
"""Carry out the repository's Dockerfile without a Docker engine.

This machine (and CI) is Debian 12 with the same Rust toolchain as the Dockerfile's build
image, so the build stage can run here for real: the script reads the Dockerfile, checks that
its build image matches the local toolchain, copies the build context (honouring
.dockerignore) into a work directory standing for the stage's WORKDIR, and runs each RUN
instruction there with the stage's ENV. The final `FROM scratch` stage is assembled into an
empty root directory from its COPY instructions, and its runtime settings (USER, EXPOSE, ENV,
HEALTHCHECK, ENTRYPOINT, CMD, LABEL) are written to a JSON file for the checks that run it.

Only the instructions this project's Dockerfile uses are supported; anything else is an
error, so the emulation can never silently drift from the real file.

Usage: dockerfile.py [--dockerfile Dockerfile] [--context .] --work DIR --out-json FILE
Exit status: 0 when the image was assembled, 1 otherwise.
"""

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

SUPPORTED = {
    "ARG", "FROM", "WORKDIR", "ENV", "COPY", "RUN", "LABEL", "USER", "EXPOSE",
    "HEALTHCHECK", "ENTRYPOINT", "CMD",
}


class DockerfileError(Exception):
    pass


def instructions(text):
    """(keyword, arguments, line number) for each instruction; comments and continuations
    handled as Docker does (a comment line inside a continuation is dropped)."""
    result = []
    pending, start = None, 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if re.match(r"^\s*#", line):
            continue
        if not line.strip() and pending is None:
            continue
        if pending is None:
            pending, start = "", number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.strip().partition(" ")
        result.append((keyword.upper(), rest.strip(), start))
        pending = None
    if pending is not None:
        raise DockerfileError(f"line {start}: unterminated continuation")
    return result


def substitute(value, variables):
    def repl(match):
        name = match.group(1) or match.group(2)
        return variables.get(name, "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, value)


def key_values(rest, variables):
    """ENV / LABEL / ARG arguments: KEY=VALUE pairs with shell-like quoting."""
    pairs = {}
    for token in shlex.split(rest, posix=True):
        if "=" not in token:
            raise DockerfileError(f"expected KEY=VALUE, got {token!r}")
        key, _, value = token.partition("=")
        pairs[key] = substitute(value, variables)
    return pairs


def dockerignore_patterns(context):
    path = context / ".dockerignore"
    patterns = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            patterns.append((negate, pattern))
    return patterns


def pattern_matches(pattern, path):
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def excluded(rel, patterns):
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, pattern in patterns:
        if any(pattern_matches(pattern, candidate) for candidate in candidates):
            result = not negate
    return result


def context_files(context, patterns):
    files = []
    for root, dirs, names in os.walk(context):
        rel_root = os.path.relpath(root, context)
        rel_root = "" if rel_root == "." else rel_root
        kept = []
        for d in dirs:
            rel = f"{rel_root}/{d}".lstrip("/")
            # Prune an excluded directory unless an exception could re-include below it.
            if excluded(rel, patterns) and not any(
                negate and (p == rel or p.startswith(rel + "/")) for negate, p in patterns
            ):
                continue
            kept.append(d)
        dirs[:] = kept
        for name in names:
            rel = f"{rel_root}/{name}".lstrip("/")
            if not excluded(rel, patterns):
                files.append(rel)
    return sorted(files)


def copy_into(sources, dest_dir, dest_is_dir):
    """COPY semantics: a directory source copies its contents; a file lands in dest."""
    for source, rel in sources:
        target = dest_dir / rel if dest_is_dir else dest_dir
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def local_toolchain():
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=True)
    version = rustc.stdout.split()[1]
    codename = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            codename = line.split("=", 1)[1].strip('"')
    return version, codename


class Stage:
    def __init__(self, name, image, root, base_env):
        self.name = name
        self.image = image
        self.root = root          # stands for "/" of the stage
        self.workdir = "/"
        self.env = {}
        self.base_env = base_env
        self.args = {}
        self.labels = {}
        self.user = None
        self.expose = []
        self.healthcheck = None
        self.entrypoint = None
        self.cmd = None

    def path(self, absolute):
        return self.root / absolute.lstrip("/")

    def variables(self):
        return {**self.args, **self.env}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dockerfile", default="Dockerfile")
    parser.add_argument("--context", default=".")
    parser.add_argument("--work", required=True)
    parser.add_argument("--out-json", required=True)
    options = parser.parse_args()

    context = Path(options.context).resolve()
    work = Path(options.work).resolve()
    text = Path(options.dockerfile).read_text()
    patterns = dockerignore_patterns(context)
    files = context_files(context, patterns)
    print(f"build context: {len(files)} files after .dockerignore")

    rust_version, codename = local_toolchain()
    global_args = {}
    stages = []
    stage = None
    host_env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_")}
    # Docker's build image has no terminal and no CI variables that change cargo's behaviour.
    host_env.pop("RUSTFLAGS", None)

    for keyword, rest, line in instructions(text):
        if keyword not in SUPPORTED:
            raise DockerfileError(f"line {line}: {keyword} is not supported by this emulation")
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            target = global_args if stage is None else stage.args
            value = default.strip('"') if default else ""
            target[name] = substitute(value, global_args if stage is None else stage.variables())
            if stage is not None and name in global_args and not default:
                stage.args[name] = global_args[name]
            continue
        if keyword == "FROM":
            words = substitute(rest, global_args).split()
            image = words[0]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            if image == "scratch":
                root = work / f"stage-{name}"
            else:
                match = re.fullmatch(r"rust:(\d+\.\d+\.\d+)-([a-z]+)", image)
                if not match:
                    raise DockerfileError(
                        f"line {line}: build image {image} must be pinned as rust:X.Y.Z-<debian>"
                    )
                if (match.group(1), match.group(2)) != (rust_version, codename):
                    raise DockerfileError(
                        f"line {line}: {image} but this machine has rustc {rust_version} on "
                        f"Debian {codename}: the emulation would not build the same binary"
                    )
                print(f"FROM {image}: matches the local rustc {rust_version} on Debian {codename}")
                root = work / f"stage-{name}"
            if image == "scratch" and root.exists():
                shutil.rmtree(root)
            root.mkdir(parents=True, exist_ok=True)
            stage = Stage(name, image, root, host_env)
            stages.append(stage)
            continue
        if stage is None:
            raise DockerfileError(f"line {line}: {keyword} before FROM")
        variables = stage.variables()
        if keyword == "WORKDIR":
            stage.workdir = os.path.join(stage.workdir, substitute(rest, variables))
            workdir = stage.path(stage.workdir)
            # A fresh WORKDIR, but keep cargo's target/ as Docker keeps a cached layer.
            if workdir.exists() and stage.image != "scratch":
                for entry in workdir.iterdir():
                    if entry.name != "target":
                        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            stage.env.update(key_values(rest, variables))
        elif keyword == "LABEL":
            stage.labels.update(key_values(rest, variables))
        elif keyword == "COPY":
            words = shlex.split(substitute(rest, variables))
            source_stage = None
            while words and words[0].startswith("--"):
                flag = words.pop(0)
                if flag.startswith("--from="):
                    source_stage = next(s for s in stages if s.name == flag.split("=", 1)[1])
                else:
                    raise DockerfileError(f"line {line}: COPY {flag} is not supported")
            *sources, dest = words
            dest_abs = dest if dest.startswith("/") else os.path.join(stage.workdir, dest)
            dest_dir = stage.path(dest_abs)
            dest_is_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
            for source in sources:
                if source_stage is None:
                    rel = os.path.normpath(source).rstrip("/")
                    chosen = [f for f in files if f == rel or f.startswith(rel + "/")]
                    if not chosen:
                        raise DockerfileError(f"line {line}: COPY {source}: not in the build context")
                    if chosen == [rel]:
                        pairs = [(context / rel, Path(rel).name)]
                    else:
                        pairs = [(context / f, os.path.relpath(f, rel)) for f in chosen]
                        dest_is_dir = True
                    copy_into(pairs, dest_dir, dest_is_dir)
                else:
                    origin = source_stage.path(source)
                    if not origin.is_dir():
                        raise DockerfileError(f"line {line}: COPY --from={source_stage.name} {source}: not a directory")
                    shutil.copytree(origin, dest_dir, symlinks=True, dirs_exist_ok=True)
            print(f"COPY {' '.join(sources)} -> {dest_abs}")
        elif keyword == "RUN":
            if stage.image == "scratch":
                raise DockerfileError(f"line {line}: RUN in a scratch stage has no shell")
            env = {**stage.base_env, **stage.env}
            print(f"RUN {rest}", flush=True)
            done = subprocess.run(["/bin/sh", "-c", rest], cwd=stage.path(stage.workdir), env=env)
            if done.returncode != 0:
                raise DockerfileError(f"line {line}: RUN exited with {done.returncode}")
        elif keyword == "USER":
            stage.user = substitute(rest, variables)
        elif keyword == "EXPOSE":
            stage.expose += substitute(rest, variables).split()
        elif keyword == "HEALTHCHECK":
            words = rest.split()
            health_options = {}
            while words and words[0].startswith("--"):
                key, _, value = words.pop(0)[2:].partition("=")
                health_options[key] = value
            if not words or words[0].upper() != "CMD":
                raise DockerfileError(f"line {line}: HEALTHCHECK must be CMD [...]")
            command = rest[rest.upper().index("CMD") + 3:].strip()
            # Stored as Docker stores it: ["CMD", executable, arguments...].
            stage.healthcheck = {"options": health_options, "test": ["CMD"] + json.loads(command)}
        elif keyword in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError as error:
                raise DockerfileError(f"line {line}: {keyword} must be exec form (JSON): {error}")
            setattr(stage, keyword.lower(), value)

    final = stages[-1]
    if final.image != "scratch":
        raise DockerfileError("the final stage must be FROM scratch for this emulation")
    description = {
        "root": str(final.root),
        "user": final.user,
        "expose": final.expose,
        "env": final.env,
        "labels": final.labels,
        "healthcheck": final.healthcheck,
        "entrypoint": final.entrypoint,
        "cmd": final.cmd,
        "build_env": stages[0].env,
    }
    Path(options.out_json).write_text(json.dumps(description, indent=2) + "\n")
    print(f"final image assembled in {final.root}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DockerfileError as error:
        print(f"dockerfile.py: {error}", file=sys.stderr)
        sys.exit(1)
