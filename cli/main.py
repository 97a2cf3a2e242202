"""The `barrage` command: serve, token, and client tools built on the SDK."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from barrage.clients.sdk.client import TokenSource

DEFAULT_TARGET = "127.0.0.1:50051"


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit status 1 (or `status`)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from barrage.server.config import Settings

    overrides = {name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        flag = f"--{name.replace('_', '-')} (env BARRAGE_{name.upper()})"
        raise CommandError(f"bad value for {flag}: {first['msg']}") from None
    _check_can_serve(settings.listen, settings.log)
    if settings.web_listen:
        _check_can_serve(settings.web_listen, settings.log)
    from barrage.server.app import run
    from barrage.server.log.kafka_session import KafkaStartupError

    try:
        run(settings)
    except KafkaStartupError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _check_can_serve(listen: str, log_url: str) -> None:
    """Refuse, before anything is created on disk, what would only fail later with a traceback."""
    import socket

    if not log_url.split("?", 1)[0].startswith(("embedded:", "kafka://")):
        raise CommandError(f"unknown log URL {log_url!r}: use embedded:DIR or kafka://HOST:PORT[,...]/TOPIC")
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit():
        raise CommandError(f"bad listen address {listen!r}: use HOST:PORT, for example 127.0.0.1:50051")
    host = host.strip("[]") or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CommandError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # SO_REUSEADDR as gRPC sets it, so a port in TIME_WAIT is not refused here but free there.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            why = "the port is in use (is a node already running?)" if exc.errno == 98 else exc.strerror
            raise CommandError(f"cannot listen on {listen}: {why}") from None


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per server setting (--batch-interval-ms for batch_interval_ms, ...)."""
    try:
        from barrage.server.config import Settings
    except ModuleNotFoundError as missing:
        # The base install is the SDK: `barrage --help` and the client commands still work.
        parser.description = f"needs the node's packages ({missing.name} is missing): {_install_hint('server')}"
        return

    for name, field in Settings.model_fields.items():
        kinds = set(getattr(field.annotation, "__args__", (field.annotation,)))
        kind: Callable[[str], object] = int if int in kinds else float if float in kinds else str
        default = None if field.default_factory is not None else field.get_default()
        described = field.description or name.replace("_", " ")
        shown = f"; default {default}" if default is not None else ""
        help_text = f"{described} (env BARRAGE_{name.upper()}{shown})"
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=help_text)


def _token(args: argparse.Namespace) -> int:
    from barrage.server.auth import issue_dev_token
    from barrage.server.config import DEV_SECRET

    secret = args.secret or os.environ.get("BARRAGE_JWT_SECRET") or DEV_SECRET
    rooms = args.rooms or None
    print(
        issue_dev_token(
            secret,
            user_id=args.user,
            role=args.role,
            name=args.name,
            ttl_s=args.ttl,
            rooms=rooms,
            level=args.level,
            badges=args.badges or None,
        )
    )
    return 0


# ------------------------------------------------------------------ client tools


def _dev_token(role: str, rooms: list[str] | None = None) -> str:
    """A development token for the local user, signed with the development secret, which a
    server started with `barrage serve` on loopback accepts."""
    from barrage.server.auth import issue_dev_token
    from barrage.server.config import DEV_SECRET

    user = f"cli-{getpass.getuser()}"
    secret = os.environ.get("BARRAGE_JWT_SECRET") or DEV_SECRET
    return issue_dev_token(secret, user_id=user, role=role, name=user, ttl_s=3600, rooms=rooms)


def _fixed_token(args: argparse.Namespace, role: str, rooms: list[str] | None = None) -> str:
    """--token, else BARRAGE_TOKEN, else a development token."""
    token: str | None = args.token or os.environ.get("BARRAGE_TOKEN")
    return token or _dev_token(role, rooms)


def _client_token(args: argparse.Namespace, role: str) -> TokenSource:
    """As _fixed_token, but development tokens are minted anew before they expire, so a long
    `chat` or `tail` never stops."""
    token: str | None = args.token or os.environ.get("BARRAGE_TOKEN")
    if token:
        return token

    async def mint() -> str:
        return _dev_token(role)

    return mint


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run a client coroutine; SIGINT or SIGTERM ends it cleanly (exit status 0)."""
    import logging

    # The SDK logs reconnects at INFO; a terminal user only needs warnings.
    logging.basicConfig(level=os.environ.get("BARRAGE_LOG_LEVEL", "WARNING"), format="barrage: %(message)s")

    async def runner() -> int:
        task = asyncio.current_task()
        assert task is not None
        stopped = False

        def stop() -> None:
            nonlocal stopped
            stopped = True
            task.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        try:
            return await main
        except asyncio.CancelledError:
            if stopped:
                return 0
            raise

    return asyncio.run(runner())


def _require_server(target: str, timeout_s: float = 3.0) -> None:
    """Say at once that nothing answers at `target`, rather than retrying a first connection
    that never worked (reconnecting is for connections that were once up)."""
    import grpc

    async def probe() -> bool:
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                await asyncio.wait_for(channel.channel_ready(), timeout_s)
            except TimeoutError:
                return False
            return True

    if not asyncio.run(probe()):
        raise CommandError(
            f"nothing answers at {target}: start a node with scripts/serve.sh (or barrage serve), or pass --target"
        )


def _status(args: argparse.Namespace) -> int:
    """Exit 0 once the node at --target reports SERVING (waiting up to --wait seconds)."""
    import time

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def check() -> str:
        async with grpc.aio.insecure_channel(args.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0, wait_for_ready=False)
            except grpc.aio.AioRpcError as exc:
                return "UNREACHABLE" if exc.code() is grpc.StatusCode.UNAVAILABLE else exc.code().name
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    deadline = time.monotonic() + args.wait
    while True:
        status = asyncio.run(check())
        if status == "SERVING" or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if status == "SERVING":
        print(f"{args.target}: SERVING")
        return 0
    if status == "UNREACHABLE":
        raise CommandError(f"nothing answers at {args.target}: start a node with scripts/serve.sh (or barrage serve)")
    raise CommandError(f"{args.target}: {status}")


def _chat(args: argparse.Namespace) -> int:
    from barrage.clients.chat import chat

    return _run(chat(args.target, _client_token(args, "viewer"), args.room, history=args.history))


def media_time_arg(value: str, flag: str = "--media-time") -> Any:
    """`history --media-time`: "live-1@3600.5" (a timeline and seconds on it), or "3600.5" (any timeline)."""
    from barrage.v1 import event_pb2

    timeline, _, seconds = value.rpartition("@")
    try:
        nanos = round(float(seconds) * 1e9)
    except ValueError:
        raise CommandError(f"bad value for {flag}: {value!r} (expected [TIMELINE@]SECONDS)") from None
    at = event_pb2.MediaTime(timeline_id=timeline)
    at.position.FromNanoseconds(nanos)
    return at


def _kinds(args: argparse.Namespace) -> Callable[[Any], bool]:
    from barrage.clients.tail import kind_filter

    try:
        return kind_filter(args.kind, args.all)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _tail(args: argparse.Namespace) -> int:
    from barrage.clients.tail import tail

    token = _client_token(args, "viewer")
    wanted = _kinds(args)
    cursor = args.from_cursor or ""
    return _run(tail(args.target, token, args.room, from_cursor=cursor, history=args.history, wanted=wanted))


def _assistant(args: argparse.Namespace) -> int:
    from barrage.clients.assistant.command import assistant_command

    # A bot token acts only in the rooms it lists.
    return _run(assistant_command(args, args.target, _fixed_token(args, "bot", rooms=list(args.room))))


def _catalogue(args: argparse.Namespace) -> int:
    from barrage.clients.assistant.command import register_command

    return _run(register_command(args, args.target, _fixed_token(args, "service")))


def _insights(args: argparse.Namespace) -> int:
    from barrage.clients.insights import run

    token = _fixed_token(args, "service")
    return _run(run(args.target, token, args.room, args.interval, args.recent, args.once))


def _report(args: argparse.Namespace) -> int:
    from datetime import datetime
    from pathlib import Path

    from barrage.clients.report import write_report

    if (args.media_from or args.media_to) and (args.start or args.end):
        raise CommandError("give wall times (--start/--end) or stream times (--media-from/--media-to), not both")
    start = datetime.fromisoformat(args.start).astimezone() if args.start else None
    end = datetime.fromisoformat(args.end).astimezone() if args.end else None
    media_from = media_time_arg(args.media_from, "--media-from") if args.media_from else None
    media_to = media_time_arg(args.media_to, "--media-to") if args.media_to else None

    async def command() -> int:
        token = _fixed_token(args, "service")
        try:
            path = await write_report(
                args.target, token, args.room, Path(args.out), start, end, media_from=media_from, media_to=media_to
            )
        except LookupError as missing:
            raise CommandError(str(missing)) from None
        print(path)
        return 0

    return _run(command())


def _admin_command(args: argparse.Namespace) -> int:
    from barrage.clients.admin import AdminClient
    from barrage.clients.tail import to_json_line

    async def command() -> int:
        async with AdminClient(args.target, _client_token(args, "service")) as admin:
            if args.command == "room":
                if args.room_command == "create":
                    room = await admin.create_room(args.room, title=args.title, host_user_id=args.host)
                elif args.room_command == "close":
                    room = await admin.close_room(args.room, reason=args.reason)
                else:
                    room = await admin.get_room(args.room)
                print(to_json_line(room))
            elif args.command == "publish":
                print(to_json_line(await admin.announce(args.room, args.text, request_id=args.request_id)))
            else:
                wanted, left = _kinds(args), args.limit
                at = media_time_arg(args.media_time) if args.media_time else None
                async for event in admin.history(args.room, cursor=args.cursor, backward=args.backward, media_time=at):
                    if left <= 0:
                        break
                    if wanted(event):
                        print(to_json_line(event), flush=True)
                        left -= 1
        return 0

    return _run(command())


def _trace(args: argparse.Namespace) -> int:
    from barrage.cli.trace import trace_command

    return trace_command(args.key, args.paths, width=args.width)


def _log_command(args: argparse.Namespace) -> int:
    """Check or repair an embedded log's data directory (no node needed; repair needs it stopped)."""
    from barrage.server.log.embedded_check import CheckError, check, repair

    try:
        if args.log_command == "check":
            report = check(args.data_dir)
            print("\n".join(report.lines()))
            # Non-zero on any damage: 1 if the node will not start on it, 3 for a torn tail only.
            return 1 if report.corrupt else 3 if report.findings else 0
        result = repair(args.data_dir, new_epoch=args.new_epoch)
    except (CheckError, OSError) as error:
        print(f"barrage log {args.log_command}: {error}", file=sys.stderr)
        return 2
    print("\n".join([*result.report.lines()[:-1], *result.lines()]))
    return 0


def _add_log_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = commands.add_parser("log", help="check or repair an embedded log's data directory")
    log_commands = logs.add_subparsers(dest="log_command", required=True)
    check = log_commands.add_parser(
        "check", help="report damaged bytes in the segments (exit 1: corruption, 3: a torn tail only, 0: none)"
    )
    check.add_argument("data_dir", metavar="DIR", help="the embedded log's data directory")
    repair = log_commands.add_parser(
        "repair", help="keep every intact record, move damaged segments aside into DIR/damaged/ (node stopped)"
    )
    repair.add_argument("data_dir", metavar="DIR", help="the embedded log's data directory")
    repair.add_argument(
        "--new-epoch", action="store_true", help="also start a new epoch (e.g. after restoring a backup)"
    )
    logs.set_defaults(func=_log_command)


def _add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=os.environ.get("BARRAGE_TARGET", DEFAULT_TARGET),
        help=f"server HOST:PORT (env BARRAGE_TARGET, default {DEFAULT_TARGET})",
    )
    common.add_argument("--token", help="bearer token (env BARRAGE_TOKEN; default: a local development token)")

    chat = commands.add_parser("chat", parents=[common], help="interactive chat in a room")
    chat.add_argument("room")
    chat.add_argument("--history", type=int, default=20, help="recent events to show first (default 20)")
    chat.set_defaults(func=_chat)

    tail = commands.add_parser("tail", parents=[common], help="print a room's events as JSON lines, then follow")
    tail.add_argument("room")
    tail.add_argument(
        "--from", dest="from_cursor", metavar="CURSOR",
        help='every event after this cursor (the "cursor" of an event printed by tail or history), then live',
    )  # fmt: skip
    tail.add_argument("--history", type=int, default=0, help="without --from: recent events to print first")
    _add_kind_options(tail)
    tail.set_defaults(func=_tail)

    room = commands.add_parser("room", help="create, read or close a room")
    room_commands = room.add_subparsers(dest="room_command", required=True)
    create = room_commands.add_parser("create", parents=[common], help="create a room (host or service token)")
    create.add_argument("room")
    create.add_argument("--title", default="", help="title for display")
    create.add_argument("--host", default="", help="user id of the host who will own the room (service tokens)")
    get = room_commands.add_parser("get", parents=[common], help="print a room as JSON")
    get.add_argument("room")
    close = room_commands.add_parser("close", parents=[common], help="close a room (host or service token)")
    close.add_argument("room")
    close.add_argument("--reason", default="", help="shown to viewers")
    room.set_defaults(func=_admin_command)

    publish = commands.add_parser("publish", parents=[common], help="publish an announcement (host or service)")
    publish.add_argument("room")
    publish.add_argument("text")
    publish.add_argument("--request-id", help="idempotency key (default: a new one); reuse it to retry safely")
    publish.set_defaults(func=_admin_command)

    history = commands.add_parser("history", parents=[common], help="print a room's history as JSON lines")
    history.add_argument("room")
    history.add_argument("--cursor", default="", help="start after (or, with --backward, before) this cursor")
    history.add_argument("--backward", action="store_true", help="newest first")
    history.add_argument("--limit", type=int, default=100, help="events to print (default 100)")
    history.add_argument(
        "--media-time", metavar="[TIMELINE@]SECONDS", help="from where the show's stream reached this point (replays)"
    )
    _add_kind_options(history)
    history.set_defaults(func=_admin_command)

    insights = commands.add_parser("insights", parents=[common], help="a room's insights as a live dashboard")
    insights.add_argument("room")
    insights.add_argument("--interval", type=float, default=2.0, help="seconds between updates (default 2, at least 1)")
    insights.add_argument("--recent", type=int, default=0, help="only the last N buckets (default: the whole show)")
    insights.add_argument("--once", action="store_true", help="print the dashboard once and exit")
    insights.set_defaults(func=_insights)

    report = commands.add_parser("report", parents=[common], help="write a room's insights as an HTML report")
    report.add_argument("room")
    report.add_argument("--out", required=True, help="directory for report.html (and insights.json)")
    report.add_argument("--start", help="window start, ISO 8601 (default: the room's first event)")
    report.add_argument("--end", help="window end, ISO 8601 (default: now)")
    report.add_argument("--media-from", metavar="[TIMELINE@]SECONDS", help="window start: a point of the stream")
    report.add_argument("--media-to", metavar="[TIMELINE@]SECONDS", help="window end: a point of the stream")
    report.set_defaults(func=_report)

    from barrage.clients.assistant.command import add_arguments as add_assistant_arguments

    assistant = commands.add_parser(
        "assistant", parents=[common], help="answer viewers' questions in a room from a catalogue (a bot token)"
    )
    add_assistant_arguments(assistant)
    assistant.set_defaults(func=_assistant)

    catalogue = commands.add_parser(
        "catalogue", parents=[common], help="register a room's products for insights (host or service token)"
    )
    catalogue.add_argument("room")
    catalogue.add_argument("--catalog", required=True, help="catalogue YAML (format 2 or the assistant's first format)")
    catalogue.set_defaults(func=_catalogue)


def _add_kind_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", action="append", default=[], metavar="KIND[,KIND]",
        help="only these event kinds (comment, gift, product_pinned, ...); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--all", action="store_true", help="also viewer counts, joins and leaves, like bursts, tallies (not by default)"
    )


def _install_hint(extra: str) -> str:
    """The base install is the SDK; commands beyond it need extras (README, "Installing parts of it")."""
    return f"pip install 'barrage[{extra}]'"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="barrage", description="Barrage: real-time messaging for live-shopping rooms")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a gateway node")
    _add_settings(serve)
    serve.set_defaults(func=_serve)

    token = commands.add_parser("token", help="print a DEVELOPMENT token (HS256, shared secret)")
    token.add_argument("--user", required=True, help="user id (the token's subject)")
    token.add_argument("--name", help="display name")
    token.add_argument("--role", default="viewer", choices=["viewer", "host", "moderator", "service", "bot"])
    token.add_argument(
        "--room", dest="rooms", action="append", default=[], help="a bot's room (repeatable; '*': every room)"
    )
    token.add_argument("--level", type=int, help="fan level claim, 0 to 100 (shown in every Sender)")
    token.add_argument(
        "--badge", dest="badges", action="append", default=[], help="a badge claim (repeatable, at most 5)"
    )
    token.add_argument("--ttl", type=float, default=24 * 3600, help="lifetime in seconds")
    token.add_argument("--secret", help="signing secret (default: BARRAGE_JWT_SECRET or the built-in dev secret)")
    token.set_defaults(func=_token)
    _add_client_commands(commands)
    _add_log_commands(commands)

    trace = commands.add_parser("trace", help="one message's journey from trace files, as a waterfall")
    trace.add_argument("key", metavar="EVENT_ID_OR_CURSOR", help="event id, cursor or client_msg_id of the message")
    trace.add_argument(
        "--from", dest="paths", metavar="PATH", action="append", required=True,
        help="OTLP JSON lines file (serve --trace-file); repeat to combine nodes and clients",
    )  # fmt: skip
    trace.add_argument("--width", type=int, default=40, help="timeline width in characters (default 40)")
    trace.set_defaults(func=_trace)

    status = commands.add_parser("status", help="is a node answering? exit 0 once it reports SERVING")
    status.add_argument(
        "--target",
        default=os.environ.get("BARRAGE_TARGET", DEFAULT_TARGET),
        help=f"server HOST:PORT (env BARRAGE_TARGET, default {DEFAULT_TARGET})",
    )
    status.add_argument("--wait", type=float, default=0.0, help="seconds to wait for SERVING (default: ask once)")
    status.set_defaults(func=_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from barrage.clients.sdk.errors import BarrageError

    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "target", None) and args.func not in (_status, _trace):
            _require_server(args.target)
        result: int = args.func(args)
    except CommandError as error:
        print(f"barrage {args.command}: {error}", file=sys.stderr)
        return error.status
    except BarrageError as error:
        if error.reason == "TOKEN_EXPIRED":
            print(f"barrage {args.command}: your token has expired: get a new one (for development: "
                  "barrage token --user ID), or leave out --token and BARRAGE_TOKEN", file=sys.stderr)  # fmt: skip
        else:
            print(f"barrage {args.command}: {error.code.name} {error.reason or '-'}: {error.message}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as missing:
        if missing.name is None or missing.name.partition(".")[0] == "barrage":
            raise  # one of ours: a bug, not an extra left out
        print(f"barrage {args.command}: needs {missing.name}, which is not installed: {_install_hint('all')}",
              file=sys.stderr)  # fmt: skip
        return 1
    except BrokenPipeError:
        # The reader went away (`barrage tail ... | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
