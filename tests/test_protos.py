"""The API definition: lint-clean under buf STANDARD and the committed stubs are fresh."""

import subprocess
import sys
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from barrage.server.commerce import checkpoint_pb2
from barrage.server.commerce.state import INTERNAL_PRIORITY, checkpoint_payload, read_checkpoint
from barrage.v1 import event_pb2

ROOT = Path(__file__).resolve().parent.parent


def test_generated_stubs_match_the_protos() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_protos.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def _buf_check(command: str) -> subprocess.CompletedProcess[str]:
    # Offline: protos/buf.yaml's googleapis dependency is resolved from the installed
    # googleapis-common-protos package (scripts/buf_check.py).
    return subprocess.run(
        [sys.executable, "scripts/buf_check.py", command], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_buf_lint_standard_is_clean() -> None:
    result = _buf_check("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_against_the_last_landed_protos_is_clean() -> None:
    """WIRE_JSON compatibility with the protos of commit a11667b (protos/breaking-baseline.binpb)."""
    result = _buf_check("breaking")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_message_field_and_enum_value_is_documented() -> None:
    undocumented = []
    protos = [*(ROOT / "protos" / "barrage" / "v1").glob("*.proto"), ROOT / "server" / "commerce" / "checkpoint.proto"]
    for proto in sorted(protos):
        lines = proto.read_text().splitlines()
        for number, line in enumerate(lines):
            stripped = line.strip()
            declares = stripped.startswith(("message ", "enum ", "service ", "rpc ", "oneof ")) or (
                " = " in stripped and stripped.endswith(";") and not stripped.startswith(("syntax", "option"))
            )
            if declares and not lines[number - 1].strip().startswith("//"):
                undocumented.append(f"{proto.name}:{number + 1}: {stripped}")
    assert not undocumented, "\n".join(undocumented)


def _baseline_event_class() -> type[Message]:
    """barrage.v1.Event as the last landed protos (the baseline image) define it."""
    files = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "protos" / "breaking-baseline.binpb").read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("barrage.v1.Event"))


def test_checkpoints_written_by_the_last_release_are_read_by_the_internal_proto() -> None:
    old_event = _baseline_event_class()
    written: Any = old_event()
    written.room_id, written.priority = "r", 4
    written.payload.room_checkpoint.position = 41
    written.payload.room_checkpoint.epoch = "e1"
    written.payload.room_checkpoint.banned_user_ids.append("mallory")
    written.payload.room_checkpoint.polls.add().counts.extend([3, 4])

    checkpoint = read_checkpoint(written.SerializeToString())

    assert checkpoint.position == 41 and checkpoint.epoch == "e1"
    assert list(checkpoint.banned_user_ids) == ["mallory"]
    assert list(checkpoint.polls[0].counts) == [3, 4]


def test_checkpoints_written_now_are_read_by_the_last_release() -> None:
    checkpoint = checkpoint_pb2.RoomCheckpoint(position=7, epoch="e2", like_total=99, banned_user_ids=["eve"])
    event = event_pb2.Event(room_id="r", priority=INTERNAL_PRIORITY, payload=checkpoint_payload(checkpoint))  # type: ignore[arg-type]

    old: Any = _baseline_event_class().FromString(event.SerializeToString())

    assert old.priority == 4
    assert old.payload.WhichOneof("kind") == "room_checkpoint"
    assert old.payload.room_checkpoint.like_total == 99
    assert list(old.payload.room_checkpoint.banned_user_ids) == ["eve"]


def test_the_public_protos_carry_no_internal_type() -> None:
    assert "room_checkpoint" not in event_pb2.Payload.DESCRIPTOR.fields_by_name
    assert 4 not in event_pb2.Priority.values()
    names = event_pb2.DESCRIPTOR.message_types_by_name
    assert not {"RoomCheckpoint", "PollCheckpoint", "LotteryCheckpoint"} & set(names)
    for proto in (ROOT / "protos" / "barrage" / "v1").glob("*.proto"):
        text = proto.read_text()
        assert "server/" not in text and ".py" not in text, f"{proto.name} names server source"
