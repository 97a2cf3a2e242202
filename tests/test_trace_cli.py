"""`barrage trace` renders a real exported journey: a server's --trace-file and the SDK
clients' span files, read back by the CLI as a user would run it."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

from tests.server_process import ROOT
from tests.test_tracing import send_one_comment, traced_server


def barrage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "barrage.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


async def test_trace_renders_one_message_journey_as_a_waterfall(tmp_path: Path) -> None:
    server_file, sender_file, viewer_file = (
        tmp_path / "node.jsonl",
        tmp_path / "sender.jsonl",
        tmp_path / "viewer.jsonl",
    )
    server = traced_server(tmp_path / "data", server_file)
    server.start()
    try:
        room = f"room-{uuid.uuid4().hex[:8]}"
        journey = await send_one_comment(server, server, [server_file], room, (sender_file, viewer_file))
    finally:
        server.stop()
    node = f"test-{server.port}"
    files = ("--from", str(server_file), "--from", str(sender_file), "--from", str(viewer_file))

    shown = barrage("trace", journey.ack.event_id, *files)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"message {journey.ack.event_id} in room {room}: ")
    assert f"{node}" in lines[0] and "sender-app" in lines[0] and "viewer-app" in lines[0]
    hops = [line for line in lines if "|" in line]
    names = [re.split(r"\s{2,}", line.strip())[0].lstrip("↳ ") for line in hops]
    # The tree, depth first: the client's send, the node's ingest and append, the node's
    # read, its flush and the writes, then the viewer's receive.
    order = [names.index(n) for n in (f"send {room}", f"ingest {room}", f"append {room}", f"flush {room}")]
    assert order == sorted(order)
    # The node's read and the viewer's receipt (and the sender's, if it was still connected).
    assert names.count(f"receive {room}") >= 2
    assert names.count(f"write {room}") >= 2  # sampled at ratio 1: the sender's and the viewer's streams
    indent = {name: len(line) - len(line.lstrip()) for name, line in zip(names, hops, strict=True)}
    assert indent[f"send {room}"] < indent[f"ingest {room}"] < indent[f"append {room}"]
    for line in hops:
        assert re.search(r"\d+\.\d ms\s+\d+\.\d\d ms\s+\|[ █]+\|", line), line
    ingest = next(line for line in hops if f"ingest {room}" in line)
    assert node in ingest
    receipt = next(line for line in hops if f"receive {room}" in line and "viewer-app" in line)
    assert receipt
    assert re.match(r"total \d+\.\d ms .*slowest hop below the root: ", lines[-1])

    # The cursor finds the same journey; an unknown key is a clear error.
    by_cursor = barrage("trace", journey.ack.cursor, *files)
    assert by_cursor.returncode == 0 and by_cursor.stdout.splitlines()[1:] == lines[1:]
    missing = barrage("trace", "no-such-event", "--from", str(server_file))
    assert missing.returncode == 1 and "no span mentions 'no-such-event'" in missing.stderr
