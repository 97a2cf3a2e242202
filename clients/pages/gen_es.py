"""Generate the protobuf-es (v2) TypeScript types of barrage/v1/*.proto into gen/.

Offline, like scripts/gen_protos.py: protoc from grpcio-tools, google/rpc/*.proto from the
installed googleapis-common-protos, the protoc-gen-es plugin from this package's node_modules.
Run by `npm run build` with the repository's .venv Python.
"""

from __future__ import annotations

import sys
from pathlib import Path

import google.rpc
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
PROTOS = HERE.parent.parent / "protos"


def main() -> None:
    googleapis = Path(next(iter(google.rpc.__path__))).parent.parent
    out = HERE / "gen"
    out.mkdir(exist_ok=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "barrage" / "v1").glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{googleapis}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--plugin=protoc-gen-es={HERE / 'node_modules' / '.bin' / 'protoc-gen-es'}",
        f"--es_out={out}",
        "--es_opt=target=ts",
        *sources,
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


if __name__ == "__main__":
    main()
