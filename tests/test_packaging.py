"""What `pip install barrage` brings: the Python SDK and the API, and nothing heavier.

The node, the assistant, the report, Kafka and telemetry are extras (pyproject.toml;
README "Installing parts of it"). These tests hold the base dependencies to what the
SDK imports, and check that importing the SDK loads none of the extras' packages.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDK = ROOT / "clients" / "sdk"
API = ROOT / "protos" / "barrage" / "v1"
SDK_PACKAGE = "barrage.clients.sdk"
CLI_MODULE = "barrage.cli.main"

DISTRIBUTION_OF = {
    "grpc": "grpcio",
    "google.protobuf": "protobuf",
    "google.rpc": "googleapis-common-protos",
    "google.api": "googleapis-common-protos",
    "opentelemetry": "opentelemetry-api",
}
"""Third-party modules the SDK and the generated API may import, by the distribution holding them."""

HEAVY = (
    "matplotlib", "jieba", "rjieba", "pypinyin", "rank_bm25", "snowballstemmer", "aiokafka", "opentelemetry.sdk",
    "opentelemetry.exporter", "opentelemetry.instrumentation", "prometheus_client", "pydantic", "pydantic_settings",
    "aiohttp", "connect", "yaml", "rich", "prompt_toolkit", "uvloop", "jwt", "sortedcontainers", "ahocorasick",
)  # fmt: skip
"""Packages of the extras: none may load with the SDK."""


def _base_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}


def _third_party_imports(files: list[Path]) -> set[str]:
    first_party = {"barrage", "server", "clients", "cli", "loadtest", "shoplang"}
    found: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in first_party and top not in sys.stdlib_module_names and top != "__future__":
                    found.add(name)
    return found


def _distribution(module: str) -> str:
    for prefix, distribution in DISTRIBUTION_OF.items():
        if module == prefix or module.startswith(prefix + "."):
            return distribution
    raise AssertionError(f"the SDK imports {module}, which no base dependency provides")


def test_base_dependencies_are_exactly_what_the_sdk_and_the_api_import() -> None:
    # The generated *_connect.py modules serve browsers from the node (barrage[server]).
    api = [file for file in API.glob("*.py") if not file.name.endswith("_connect.py")]
    imported = _third_party_imports([*SDK.rglob("*.py"), *api])
    assert {_distribution(module) for module in imported} == _base_dependencies()


def test_importing_the_sdk_loads_no_extra() -> None:
    modules = [
        ".".join((SDK_PACKAGE, *file.relative_to(SDK).with_suffix("").parts)).removesuffix(".__init__")
        for file in sorted(SDK.rglob("*.py"))
    ]
    probe = f"""
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
heavy = {HEAVY!r}
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert len(modules) > 10
    assert json.loads(result.stdout) == []


def _cli_without_extras(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `barrage` command as on a base install: every extra's package fails to import."""
    probe = f"""
import importlib.abc, sys
heavy = {HEAVY!r}
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == h or name.startswith(h + ".") for h in heavy):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Missing())
from {CLI_MODULE} import main
sys.exit(main(sys.argv[1:]))
"""
    return subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_helps_on_a_base_install_and_names_the_extra_a_subcommand_needs() -> None:
    helped = _cli_without_extras("--help")
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout
    serve = _cli_without_extras("serve", "--help")
    assert serve.returncode == 0, serve.stderr
    assert "pip install 'barrage[server]'" in serve.stdout
    served = _cli_without_extras("serve")
    assert served.returncode == 1
    assert "pip install 'barrage[all]'" in served.stderr
    assert "Traceback" not in served.stderr
