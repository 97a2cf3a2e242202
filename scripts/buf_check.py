"""buf lint and buf breaking on the public protos, offline.

protos/buf.yaml declares googleapis as a Buf Schema Registry dependency (what client
teams expect), which buf would fetch over the network. This machine and CI have no
such network, so this script runs the same rules on a staged workspace: barrage/ and
the google/rpc protos that scripts/gen_protos.py vendors into protos/third_party/ from
the installed googleapis-common-protos package.

    python scripts/buf_check.py lint
    python scripts/buf_check.py breaking        # against protos/breaking-baseline.binpb
    python scripts/buf_check.py baseline REF    # rebuild that image from a git ref

The baseline image holds the protos of the last landed release (commit a11667b), so the
breaking check works on a fresh clone without git history. After a release, rebuild it
from the release's ref and commit it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.gen_protos import PROTOS, ROOT, vendor_googleapis

BUF = Path(sys.executable).parent / "buf"
BASELINE = PROTOS / "breaking-baseline.binpb"

# The rules of protos/buf.yaml, with googleapis resolved locally and not linted.
OFFLINE_CONFIG = """\
version: v2
modules:
  - path: .
    excludes: [third_party]
  - path: third_party
lint:
  use: [STANDARD]
  ignore: [third_party]
breaking:
  use: [WIRE_JSON]
"""


def _stage(barrage_dir: Path, into: Path) -> Path:
    """A buf workspace in `into`: barrage/ from `barrage_dir`, google/rpc vendored."""
    shutil.copytree(barrage_dir, into / "barrage", ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__"))
    shutil.copytree(vendor_googleapis(), into / "third_party")
    (into / "buf.yaml").write_text(OFFLINE_CONFIG)
    return into


def _buf(*args: str, cwd: Path) -> int:
    return subprocess.run([str(BUF), *args], cwd=cwd, check=False).returncode


def lint() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return _buf("lint", cwd=_stage(PROTOS / "barrage", Path(tmp)))


def breaking(against: Path = BASELINE) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return _buf("breaking", "--against", str(against), cwd=_stage(PROTOS / "barrage", Path(tmp)))


def baseline(ref: str, out: Path = BASELINE) -> int:
    """Build the image of the public protos as they were at git `ref`."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(
            ["git", "archive", ref, "protos/barrage/v1"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        workspace = _stage(tree / "protos" / "barrage", Path(tmp) / "ws")
        # Without source info: the image is compared for wire and JSON compatibility only.
        return _buf("build", "--exclude-source-info", "-o", str(out.resolve()), cwd=workspace)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lint", help="buf lint (STANDARD)")
    sub.add_parser("breaking", help="buf breaking (WIRE_JSON) against the committed baseline image")
    base = sub.add_parser("baseline", help="rebuild the baseline image from a git ref")
    base.add_argument("ref")
    args = parser.parse_args()
    if args.command == "lint":
        return lint()
    if args.command == "breaking":
        return breaking()
    return baseline(args.ref)


if __name__ == "__main__":
    sys.exit(main())
