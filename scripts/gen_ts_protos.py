"""Generate the TypeScript SDK's protobuf types (clients/ts/src/gen/) from the .proto files.

protobuf-es (`@bufbuild/protoc-gen-es`, installed by `npm ci` in clients/ts) run by the
same protoc as the Python stubs (grpc_tools). The output is committed, like the Python
stubs, so that building the SDK needs no code generation; tests/test_ts_sdk.py fails
when it is stale. Run after editing a .proto:  python scripts/gen_ts_protos.py
(needs `npm ci` in clients/ts first; scripts/install_node.sh gets Node itself).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.gen_protos import API_DIR, PROTOS, vendor_googleapis  # noqa: E402

TS = ROOT / "clients" / "ts"
GEN = TS / "src" / "gen"
PLUGIN = TS / "node_modules" / ".bin" / "protoc-gen-es"
GOOGLE_RPC = ("google/rpc/status.proto", "google/rpc/error_details.proto")
"""Referenced by the API (google.rpc.Status in results; ErrorInfo and RetryInfo in its
details): generated too, so the SDK can decode error reasons."""


def generate(out: Path) -> None:
    if not PLUGIN.exists():
        raise SystemExit(f"{PLUGIN} missing: run `npm ci` in {TS}")
    proto_include = Path(protoc.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in API_DIR.glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{vendor_googleapis()}",
        f"-I{proto_include}",
        f"--plugin=protoc-gen-es={PLUGIN}",
        f"--es_out={out}",
        # TypeScript sources with ".js" import suffixes: what tsc's NodeNext ESM output needs.
        "--es_opt=target=ts,import_extension=js",
        *sources,
        *GOOGLE_RPC,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*.ts")} if root.exists() else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed TypeScript is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh, current = files(Path(tmp)), files(GEN)
        if check:
            stale = sorted(
                name
                for name in fresh.keys() | current.keys()
                if name not in fresh
                or name not in current
                or not filecmp.cmp(fresh[name], current[name], shallow=False)
            )
            if stale:
                print("stale generated TypeScript (run python scripts/gen_ts_protos.py):", *stale, file=sys.stderr)
                return 1
            return 0
        shutil.rmtree(GEN, ignore_errors=True)
        for name, path in fresh.items():
            (GEN / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, GEN / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
