"""A ModerationHookService that allows everything at once, for measuring what the hook
costs a node on ingest (loadtest/moderation_hook_bench.py; docs/performance.md).

    .venv/bin/python -m barrage.loadtest.moderation_hook_server --listen 127.0.0.1:50061

Its answer is serialised once: what it costs per call is gRPC's own work, about the
least a real hook (in Python) could cost. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
import uvloop

from barrage.v1 import moderation_hook_pb2 as mh

_ALLOW = mh.ReviewResponse(verdict=mh.REVIEW_VERDICT_ALLOW).SerializeToString()


async def _review(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
    return _ALLOW


async def serve(listen: str) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(_review)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("barrage.v1.ModerationHookService", {"Review": handler}),)
    )
    if server.add_insecure_port(listen) == 0:
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"moderation hook listening on {listen}", flush=True)
    await stop.wait()
    await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m barrage.loadtest.moderation_hook_server", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:50061", help="HOST:PORT (loopback)")
    args = parser.parse_args()
    uvloop.run(serve(args.listen))


if __name__ == "__main__":
    main()
