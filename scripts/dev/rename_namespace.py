"""Spell first-party modules under the one installed namespace: `server.x` -> `barrage.server.x`.

The repository keeps its folders at the top (server/, clients/, cli/, loadtest/,
shoplang/); barrage/ names them as subpackages (barrage/__init__.py). This script
rewrites every reference to them by module name, in every tracked text file: imports,
`python -m` commands, module paths in strings (monkeypatch targets, logger names) and
in the docs. File paths (server/core/hub.py) are left alone: the folders did not move.

Idempotent: `barrage.server.x` is never rewritten again, so it is safe to run after
every merge of a branch that still spells the old names:

    python3 scripts/dev/rename_namespace.py            # rewrite, list the files changed
    python3 scripts/dev/rename_namespace.py --check    # exit 1 if anything is left to rewrite

`barrage.server` sorts before `barrage.v1` where `server` sorted after it, so the imports
of the files it changed are sorted again with ruff (`ruff check --select I --fix`), from
.venv or PATH when there is one. Otherwise standard library only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
NAMESPACE = "barrage"
PACKAGES = ("server", "clients", "cli", "loadtest", "shoplang")
"""The repository's top-level Python packages, named `barrage.<package>` once installed."""

SUFFIXES = {".py", ".pyi", ".md", ".sh", ".txt", ".yaml", ".yml", ".cfg", ".ini"}
NAMES = {"run"}
"""Extension-less files to rewrite too (.ci/run)."""
SKIP = (
    "pyproject.toml",  # packaging configuration names the folders (structural, edited by hand)
    "scripts/dev/rename_namespace.py",  # this script, whose patterns name the old spellings
    "tests/test_rename_namespace.py",  # its specification, which shows them as examples
    "docs/performance/",  # measurement records: profiles name the modules as they were then
    "clients/ts/",  # the TypeScript SDK: no Python modules
    "protos/",  # generated code, which already imports barrage.v1
    "server/commerce/checkpoint_pb2.py",  # generated (scripts/gen_protos.py; tests/test_protos.py)
    "barrage/",  # links to the folders above (each file is rewritten once, where it is)
)

_PACKAGE = "|".join(PACKAGES)
DOTTED = re.compile(rf"(?<![\w.\-/])({_PACKAGE})((?:\.[A-Za-z_]\w*)+)")
"""`server.core.hub` (not `barrage.server...`, `self.server.x`, `my-server.x` or `a/server.x`)."""
FROM_PACKAGE = re.compile(rf"\bfrom ({_PACKAGE}) import\b")
"""`from server import app` (the package itself, with no dotted module after it)."""
IMPORT_PACKAGE = re.compile(rf"^(\s*)import ({_PACKAGE})$", re.MULTILINE)
FILE_SUFFIXES = frozenset({
    "log", "py", "pyi", "txt", "json", "jsonl", "md", "yaml", "yml", "sh", "toml", "pid", "lock",
})  # fmt: skip
"""`server.log` in `open("server.log")` is a file, not the package server/log."""
IMPORT_BEFORE = re.compile(r"(?:\bfrom|\bimport|,)\s*$")
RUN_MODULE = re.compile(rf"""(-m(?:\s+|["'],\s*["']))({_PACKAGE})(?![\w.])""")
"""`python -m server`, `"-m", "loadtest"`: the package run as a program."""


def is_module(root: Path, dotted: str) -> bool:
    """Does `server.core.hub` (or a prefix of it: `server.core.hub.Hub`) name a module or
    package in the tree? Guards against variables that share a package's name
    (`server.start()` on a grpc server object)."""
    parts = dotted.split(".")
    first, second = parts[0], parts[1]
    return (root / first / second).is_dir() or (root / first / f"{second}.py").is_file()


def rename(text: str, root: Path = ROOT) -> str:
    """The text with every first-party module spelled under the namespace."""

    def dotted(match: re.Match[str]) -> str:
        name = match.group(1) + match.group(2)
        if not is_module(root, name):
            return name
        last = match.group(2).rpartition(".")[2]
        line_before = match.string[match.string.rfind("\n", 0, match.start()) + 1 : match.start()]
        if name.count(".") == 1 and last in FILE_SUFFIXES and not IMPORT_BEFORE.search(line_before):
            return name  # a file named like a module (server.log), outside an import statement
        return f"{NAMESPACE}.{name}"

    text = DOTTED.sub(dotted, text)
    text = FROM_PACKAGE.sub(rf"from {NAMESPACE}.\1 import", text)
    text = IMPORT_PACKAGE.sub(rf"\1import {NAMESPACE}.\2", text)
    return RUN_MODULE.sub(rf"\1{NAMESPACE}.\2", text)


def tracked_files(root: Path) -> Iterable[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    for name in sorted(listed.decode().split("\0")):
        if not name or name.startswith(SKIP):
            continue
        path = root / name
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix in SUFFIXES or path.name in NAMES:
            yield path


def sort_imports(files: list[str]) -> None:
    local = ROOT / ".venv" / "bin" / "ruff"
    ruff = str(local) if local.is_file() else shutil.which("ruff")
    if ruff is None:
        print("ruff not found: sort the imports of the files above (ruff check --select I --fix)", file=sys.stderr)
        return
    subprocess.run([ruff, "check", "--quiet", "--select", "I", "--fix", *files], cwd=ROOT, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file needs rewriting")
    args = parser.parse_args(argv)
    changed: list[str] = []
    for path in tracked_files(ROOT):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = rename(text)
        if new != text:
            changed.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for name in changed:
        print(name)
    python = [name for name in changed if name.endswith((".py", ".pyi"))]
    if python and not args.check:
        sort_imports(python)
    if args.check and changed:
        print(f"{len(changed)} files still spell modules outside the {NAMESPACE} namespace", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
