"""Generate the Python API package (protos/barrage/v1/*_pb2*.py) from the .proto files,
and the server's internal records (server/commerce/checkpoint_pb2.py, not public API).

The generated modules are committed so that `pip install -e .` needs no code
generation step; tests/test_protos.py fails when they are stale. Run after editing
a .proto:  python scripts/gen_protos.py

It also fills protos/third_party/ (git-ignored) with google/rpc/*.proto from the
installed googleapis-common-protos package so that protoc and `buf lint` resolve
imports offline.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import google.rpc
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
THIRD_PARTY = PROTOS / "third_party"
API_DIR = PROTOS / "barrage" / "v1"
INTERNAL_PROTOS = ("server/commerce/checkpoint.proto",)
"""Server-only protos, named from the repository root (their Python module path)."""
BIN = Path(sys.executable).parent


def vendor_googleapis() -> Path:
    source = Path(next(iter(google.rpc.__path__)))
    target = THIRD_PARTY / "google" / "rpc"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("status.proto", "error_details.proto"):
        shutil.copyfile(source / name, target / name)
    return THIRD_PARTY


def generate(out: Path) -> None:
    proto_include = Path(protoc.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in API_DIR.glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{vendor_googleapis()}",
        f"-I{proto_include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        # Connect-protocol routing for browsers (server/transport/connect.py, docs/web.md).
        f"--plugin=protoc-gen-connect-python={BIN / 'protoc-gen-connect-python'}",
        f"--connect-python_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Internal records: messages only (no services), next to the code that uses them.
    internal = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{ROOT}",
        f"-I{proto_include}",
        f"--python_out={out}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--mypy_out={out}",
        *INTERNAL_PROTOS,
    ]
    if protoc.main(internal) != 0:
        raise SystemExit("protoc failed on the internal protos")


def generated_files(api_root: Path, internal_root: Path) -> dict[str, Path]:
    """Generated modules by destination (relative to the repository): the API's under
    `api_root`/barrage/v1, the internal ones under `internal_root`."""
    api = api_root / "barrage" / "v1"
    found = {
        f"protos/barrage/v1/{p.name}": p
        for p in api.iterdir()
        if p.name.endswith((".py", ".pyi")) and ("_pb2" in p.name or "_connect" in p.name)
    }
    for proto in INTERNAL_PROTOS:
        stem = proto.removesuffix(".proto")
        for suffix in ("_pb2.py", "_pb2.pyi"):
            if (internal_root / f"{stem}{suffix}").exists():
                found[f"{stem}{suffix}"] = internal_root / f"{stem}{suffix}"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = generated_files(Path(tmp), Path(tmp))
        if check:
            current = generated_files(PROTOS, ROOT)
            stale = sorted(
                name
                for name in fresh.keys() | current.keys()
                if name not in fresh
                or name not in current
                or not filecmp.cmp(fresh[name], current[name], shallow=False)
            )
            if stale:
                print("stale generated stubs (run python scripts/gen_protos.py):", *stale, file=sys.stderr)
                return 1
            return 0
        for old in generated_files(PROTOS, ROOT).values():
            old.unlink()
        for name, path in fresh.items():
            shutil.copyfile(path, ROOT / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
