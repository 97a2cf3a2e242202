"""What a client that floods without reading costs a node (issue 14, "Size and memory bounds").

Starts a node on loopback, opens one stream, sends hello and then N frames of one kind
as fast as gRPC takes them, reads nothing for a while, and prints one JSON line: the
node's RSS before and during the flood, and the status the stream ended with.

    python -m barrage.loadtest.flood_rss --frames 200000 --kind empty
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess

_FRAMES = {
    "empty": b"",
    "ping": rs.ConnectRequest(ping=rs.Ping(nonce=1)).SerializeToString(),
    "leave": rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id="nowhere")).SerializeToString(),
    "undecodable": b"\xff\xff\xff\xff",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--kind", choices=sorted(_FRAMES), default="empty")
    parser.add_argument("--unread-s", type=float, default=15.0, help="how long the client reads nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        node = ServerProcess(Path(tmp) / "data", args=("--insights", "false"))
        node.start()
        try:
            time.sleep(2.0)
            before = node.rss_bytes()
            token = node.token("flooder")

            def frames() -> Iterator[bytes]:
                yield rs.ConnectRequest(hello=rs.Hello(token=token)).SerializeToString()
                for _ in range(args.frames):
                    yield _FRAMES[args.kind]

            with grpc.insecure_channel(node.target, options=(("grpc.http2.bdp_probe", 0),)) as channel:
                call = channel.stream_stream("/barrage.v1.RoomService/Connect")(frames(), timeout=args.unread_s + 60)
                time.sleep(args.unread_s)
                during = node.rss_bytes()
                status = "OK"
                try:
                    for _ in call:
                        pass
                except grpc.RpcError:
                    status = f"{call.code().name}: {call.details()}"
            print(
                json.dumps(
                    {
                        "kind": args.kind,
                        "frames": args.frames,
                        "rss_before_mb": round(before / 2**20, 1),
                        "rss_during_mb": round(during / 2**20, 1),
                        "growth_mb": round((during - before) / 2**20, 1),
                        "stream_ended": status,
                    }
                )
            )
        finally:
            node.stop()


if __name__ == "__main__":
    main()
