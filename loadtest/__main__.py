"""Barrage load generator: `python -m barrage.loadtest --scenario NAME ... --out DIR`.

Drives a Barrage node on loopback (one it spawns, or one given by --target and
--server-pid) with thousands of viewer streams and scheduled senders, for a bounded
time, and writes DIR/result.json, DIR/summary.md and two PNGs. See docs/performance.md.

    python -m barrage.loadtest --scenario mega-room --spawn-server "" --out results/mega
    python -m barrage.loadtest --scenario hot-room --rate 2000 --spawn-server "--batch-interval-ms 50" --out r
    python -m barrage.loadtest --scenario quiet-room --target 127.0.0.1:50051 --server-pid 1234 --out results/quiet

Scenarios and their defaults (viewers, rooms, comments/s, critical/s, seconds):
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from pathlib import Path

from barrage.loadtest import report
from barrage.loadtest.runner import RunConfig, run
from barrage.loadtest.scenarios import SCENARIOS
from barrage.server.config import DEV_SECRET


def _doc() -> str:
    rows = [
        f"  {name:<13} {d.viewers:>5} viewers, {d.rooms:>3} rooms, {d.rate:>5g}/s, {d.critical_rate:g} critical/s, "
        f"{d.duration:g} s: {d.about}"
        for name, d in SCENARIOS.items()
    ]
    return (__doc__ or "") + "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m barrage.loadtest", description=_doc(), formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    p.add_argument("--viewers", type=int, help="viewer streams (all rooms)")
    p.add_argument("--rooms", type=int, help="rooms")
    p.add_argument("--rate", type=float, help="comments per second, all rooms together (ingest: 0 = closed loop)")
    p.add_argument("--critical-rate", type=float, help="critical announcements per second, all rooms together")
    p.add_argument("--duration", type=float, help="seconds of sending (the measured window adds the drain)")
    p.add_argument("--like-rate", type=float, help="likes per second, all rooms together")
    p.add_argument("--gift-rate", type=float, help="gifts per second, all rooms together")
    p.add_argument(
        "--claim-rate", type=float, help="coupon claims per second, all rooms (of one 10,000-coupon batch per room)"
    )
    p.add_argument("--media-clock-rate", type=float, help="media clock reports per second per room (issue 19)")
    p.add_argument("--senders", type=int, help="sender streams")
    p.add_argument("--sample", type=int, help="viewers that decode and check every event (the rest drain)")
    p.add_argument("--slow-fraction", type=float, help="slow-viewers: fraction of viewers that stop reading")
    p.add_argument("--churn-fraction", type=float, help="churn: fraction of viewers that keep leaving and resuming")
    p.add_argument("--window", type=int, help="closed-loop sends in flight per sender stream (when --rate is 0)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", help="HOST:PORT of a running server (loopback only); needs --server-pid")
    where.add_argument(
        "--spawn-server",
        metavar="SERVE_ARGS",
        help='start `python -m barrage.server SERVE_ARGS` (may be "")',
    )
    p.add_argument("--server-pid", type=int, default=0, help="pid of the --target server (CPU and RSS from /proc)")
    p.add_argument("--jwt-secret", default=DEV_SECRET, help="--target's token secret (default: the dev secret)")
    p.add_argument("--client-procs", type=int, default=2, help="viewer worker processes (plus one for senders)")
    p.add_argument("--streams-per-connection", type=int, default=1, help="viewer streams sharing one TCP connection")
    p.add_argument("--frame-sample-every", type=int, default=8, help="drain viewers decode 1 frame in N")
    p.add_argument("--drain", type=float, default=15.0, help="max seconds to wait for deliveries after sending")
    p.add_argument("--connect-concurrency", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--web-fraction",
        type=float,
        default=0.0,
        help="share of drain and sample viewers on WebSocket (spawns the node with --web-listen)",
    )
    p.add_argument("--profile", type=float, default=0.0, metavar="S", help="py-spy the server for S s (needs py-spy)")
    p.add_argument("--profile-native", action="store_true", help="py-spy --native (C frames of grpc too)")
    p.add_argument("--kafka", action="store_true", help="start the test Kafka broker and spawn the server on it")
    p.add_argument(
        "--cpu-cap", type=float, default=0.0, metavar="CORES", help="cap each server process at CORES (cgroup; root)"
    )
    p.add_argument("--out", required=True, type=Path, help="directory for result.json, summary.md, PNGs")
    return p


def config(args: argparse.Namespace) -> RunConfig:
    d = SCENARIOS[args.scenario]

    if args.target and not args.server_pid:
        raise SystemExit("--target needs --server-pid (server CPU and RSS are read from /proc)")
    given = {k: v for k, v in vars(args).items() if v is not None}
    return RunConfig(
        scenario=args.scenario,
        viewers=int(given.get("viewers", d.viewers)),
        rooms=max(1, int(given.get("rooms", d.rooms))),
        rate=float(given.get("rate", d.rate)),
        critical_rate=float(given.get("critical_rate", d.critical_rate)),
        duration=float(given.get("duration", d.duration)),
        senders=int(given.get("senders", d.senders)),
        sample=int(given.get("sample", d.sample)),
        slow_fraction=float(given.get("slow_fraction", d.slow_fraction)),
        churn_fraction=float(given.get("churn_fraction", d.churn_fraction)),
        window=int(given.get("window", d.window)),
        likes=float(given.get("like_rate", d.likes)),
        gifts=float(given.get("gift_rate", d.gifts)),
        media_clock=float(given.get("media_clock_rate", 0.0)),
        claims=float(given.get("claim_rate", 0.0)),
        out=args.out,
        target=args.target or "",
        server_pid=args.server_pid,
        spawn_server=args.spawn_server,
        jwt_secret=args.jwt_secret,
        client_procs=args.client_procs,
        streams_per_connection=args.streams_per_connection,
        frame_sample_every=max(1, args.frame_sample_every),
        drain_s=args.drain,
        connect_concurrency=args.connect_concurrency,
        seed=args.seed,
        profile_s=args.profile,
        profile_native=args.profile_native,
        kafka=args.kafka,
        cpu_cap=args.cpu_cap,
        web_fraction=args.web_fraction,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cfg = config(args)
    result = asyncio.run(run(cfg))
    command = "python -m barrage.loadtest " + shlex.join(sys.argv[1:] if argv is None else argv)
    report.write(result, cfg.out, command)
    f = result["figures"]
    print(
        json.dumps(
            {
                "scenario": cfg.scenario,
                "valid": result["valid"],
                "invalid_reasons": result["invalid_reasons"],
                "deliveries_per_s": f["deliveries_per_s"],
                "server_cpu_us_per_delivery": f["server_cpu_us_per_delivery"],
                "server_cpu_us_per_delivered_or_omitted": f["server_cpu_us_per_delivered_or_omitted"],
                "omitted": f["omitted_reported"],
                "latency_ms": f["latency_ms"]["from_publish_time"],
                "latency_ms_intended": f["latency_ms"]["from_intended_send_time"],
                "acked_per_s": f["acked_per_s"],
                "critical_lost": f["critical_lost"],
                "order_violations": f["order_violations"],
                "duplicates": f["duplicates"],
                "rss_per_stream_kb": f.get("rss_per_stream_kb"),
                "out": str(cfg.out),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
