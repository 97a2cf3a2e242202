"""The platform's moderation hook (issue 17, item 8; docs/commerce.md "Moderation hook").

A REAL hook: a grpc.aio server implementing barrage.v1.ModerationHookService in this
test process (on its own thread and event loop, so that it answers whatever the test's
loop is doing), on loopback; real `barrage serve` nodes call it (tests/server_process.py):

- allow, reject (the sender sees the hook's reason, nobody else sees anything) and
  replace (everyone sees the masked text, the sender's ack says so);
- what the hook is asked: room, sender, standing, kind, text, sticker and image;
- staff and services skip the hook;
- a hook slower than the deadline, down (nothing listening) or wrong (an unknown verdict,
  bytes that are not a ReviewResponse, an error status, an unusable replacement):
  fail-open appends the comment as it was, fail-closed refuses it with UNAVAILABLE
  MODERATION_UNAVAILABLE; both counted in barrage.moderation_hook.calls;
- a hook that hangs: at most --moderation-hook-max-pending calls wait on it, the rest are
  answered at once; pings, other rooms and staff posts are answered meanwhile; after
  repeated failures the circuit opens and the hook is left alone;
- the same on the Kafka log (replace).
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeAlias

import grpc
import pytest
from google.rpc import status_pb2
from prometheus_client.parser import text_string_to_metric_families

from barrage.server.transport.moderation_hook import CircuitBreaker
from barrage.v1 import event_pb2 as ev
from barrage.v1 import moderation_hook_pb2 as mh
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import ping
from tests.kafka_broker import running_broker
from tests.server_process import ServerProcess, free_port
from tests.wire_client import Admin, RawStream, error_info, retry_delay_s

OK = 0
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
TIMEOUT_MS = 300
"""The test nodes' deadline: the default (50 ms) is for production hooks; this shared
2-core machine can stall a loopback call for longer, which would turn a fast-path test
into a failure-path one."""

Answer: TypeAlias = "mh.ReviewResponse | bytes | grpc.StatusCode"
Behaviour: TypeAlias = Callable[[mh.ReviewRequest], Awaitable[Answer]]


async def allow(_: mh.ReviewRequest) -> Answer:
    return mh.ReviewResponse(verdict=mh.REVIEW_VERDICT_ALLOW)


async def judge(request: mh.ReviewRequest) -> Answer:
    """A platform's rules in miniature: "spam" is refused, "darn" is masked."""
    if "spam" in request.text:
        return mh.ReviewResponse(verdict=mh.REVIEW_VERDICT_REJECT, message="no ads in this room", label="spam")
    if "darn" in request.text:
        return mh.ReviewResponse(
            verdict=mh.REVIEW_VERDICT_REPLACE, replacement_text=request.text.replace("darn", "****")
        )
    return mh.ReviewResponse(verdict=mh.REVIEW_VERDICT_ALLOW)


class HookServer:
    """ModerationHookService on loopback, on its own thread and event loop. `behaviour`
    answers each request: a ReviewResponse, raw bytes (sent as the reply as they are), or
    a status code to fail with. Every request is kept in `requests`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.behaviour: Behaviour = judge
        self.requests: list[mh.ReviewRequest] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._release: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="hook-server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise TimeoutError("the hook server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def release(self) -> None:
        """Wake requests that hang (see `hang`)."""
        assert self._loop is not None and self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    async def hang(self, _: mh.ReviewRequest) -> Answer:
        """Never answer in time: wait until released (bounded, so the thread can end)."""
        assert self._release is not None
        self._release.clear()
        try:
            async with asyncio.timeout(10):
                await self._release.wait()
        except TimeoutError:
            pass
        return mh.ReviewResponse(verdict=mh.REVIEW_VERDICT_ALLOW)

    async def _review(self, request: mh.ReviewRequest, context: grpc.aio.ServicerContext) -> bytes:
        self.requests.append(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            answer = await self.behaviour(request)
        finally:
            self.in_flight -= 1
        if isinstance(answer, grpc.StatusCode):
            await context.abort(answer, "the hook failed on purpose")
        return answer if isinstance(answer, bytes) else answer.SerializeToString()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop, self._release = asyncio.Event(), asyncio.Event()
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            self._review, request_deserializer=mh.ReviewRequest.FromString, response_serializer=None
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("barrage.v1.ModerationHookService", {"Review": handler}),)
        )
        server.add_insecure_port(self.target)
        await server.start()
        self._started.set()
        await self._stop.wait()
        await server.stop(0)


@pytest.fixture(scope="module")
def hook() -> Iterator[HookServer]:
    server = HookServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def fresh_hook(hook: HookServer) -> None:
    hook.behaviour = judge
    hook.requests.clear()
    hook.most_in_flight = 0


class Node(ServerProcess):
    """A node with a moderation hook and a Prometheus endpoint."""

    def __init__(self, data_dir: Path, *, log_url: str | None, args: tuple[str, ...]) -> None:
        self.metrics_port = free_port()
        # No drain on stop: the tests close their streams first.
        more = ("--metrics-listen", f"127.0.0.1:{self.metrics_port}", "--shutdown-grace-s", "0")
        super().__init__(data_dir, log_url=log_url, args=(*args, *more))


def node(base: Path, hook_target: str, failure: str, *extra: str, log_url: str | None = None) -> Node:
    base.mkdir(parents=True, exist_ok=True)
    server = Node(
        base / "data",
        log_url=log_url,
        args=(
            "--moderation-hook", hook_target,
            "--moderation-hook-timeout-ms", str(TIMEOUT_MS),
            "--moderation-hook-failure", failure,
            *extra,
        ),
    )  # fmt: skip
    server.start()
    return server


@pytest.fixture(scope="module")
def open_node(tmp_path_factory: pytest.TempPathFactory, hook: HookServer) -> Iterator[Node]:
    server = node(tmp_path_factory.mktemp("open"), hook.target, "open")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def closed_node(tmp_path_factory: pytest.TempPathFactory, hook: HookServer) -> Iterator[Node]:
    server = node(tmp_path_factory.mktemp("closed"), hook.target, "closed")
    try:
        yield server
    finally:
        server.stop()


async def new_room(server: ServerProcess, owner: str = "hana") -> str:
    room_id = f"room-{uuid.uuid4().hex[:10]}"
    admin = Admin(server.target, server.token(owner, role="host"))
    try:
        await admin.create_room(room_id, "show")
    finally:
        await admin.close()
    return room_id


async def connect(server: ServerProcess, room_id: str, token: str) -> RawStream:
    stream = RawStream(server.target)
    await stream.hello(token)
    joined = await stream.join(room_id)
    assert joined.status.code == OK, joined.status
    return stream


async def close_all(streams: list[RawStream]) -> None:
    for stream in streams:
        await stream.close()
    streams.clear()


@pytest.fixture
async def streams() -> AsyncIterator[list[RawStream]]:
    opened: list[RawStream] = []
    try:
        yield opened
    finally:
        await close_all(opened)


async def comment(stream: RawStream, room_id: str, text: str, **fields: object) -> rs.SendResult:
    msg_id = uuid.uuid4().hex
    payload = ev.Payload(comment=ev.Comment(text=text, **fields))  # type: ignore[arg-type]
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=msg_id, payload=payload)))
    return await stream.send_result(msg_id, timeout=15)


def reason(status: status_pb2.Status) -> tuple[int, str]:
    return (status.code, error_info(status).reason if status.code else "")


def texts(stream: RawStream, room_id: str) -> list[str]:
    return [e.payload.comment.text for e in stream.events(room_id, "comment")]


def scrape(server: Node) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset((k, v) for k, v in s.labels.items() if not k.startswith("otel_scope"))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def calls(server: Node, outcome: str, effect: str) -> float:
    labels = frozenset({("barrage_moderation_hook_outcome", outcome), ("barrage_moderation_hook_effect", effect)})
    return scrape(server).get(("barrage_moderation_hook_calls_total", labels), 0.0)


# ------------------------------------------------------------------------ verdicts


async def test_an_allowed_comment_is_appended_as_sent_and_the_hook_sees_what_it_needs(
    open_node: Node, hook: HookServer, streams: list[RawStream]
) -> None:
    room = await new_room(open_node)
    vic = await connect(open_node, room, open_node.token("vic", name="Vic"))
    streams.append(vic)
    image = ev.ImageRef(url="https://cdn.example/a.png", width=10, height=20, content_type="image/png")
    assert (await comment(vic, room, "  is this in red?  ", mention_user_ids=["hana"])).status.code == OK
    assert (await comment(vic, room, "", sticker_id="wave-01")).status.code == OK
    assert (await comment(vic, room, "look", image=image)).status.code == OK
    await vic.wait_events(room, 3, kind="comment")
    assert texts(vic, room) == ["is this in red?", "", "look"]

    first, sticker, picture = hook.requests
    assert first.room_id == room and first.kind == "comment" and first.standing == "viewer"
    assert (first.sender.user_id, first.sender.display_name, first.sender.role) == ("vic", "Vic", ev.ROLE_VIEWER)
    assert first.text == "is this in red?"  # normalised, as it would be stored
    assert list(first.mention_user_ids) == ["hana"] and first.client_msg_id
    assert sticker.sticker_id == "wave-01"
    assert picture.image == image


async def test_a_rejected_comment_tells_the_sender_why_and_nobody_sees_it(
    open_node: Node, streams: list[RawStream]
) -> None:
    room = await new_room(open_node)
    vic = await connect(open_node, room, open_node.token("vic"))
    ann = await connect(open_node, room, open_node.token("ann"))
    streams.extend([vic, ann])

    refused = await comment(vic, room, "cheap spam here")
    assert reason(refused.status) == (PERMISSION_DENIED, "CONTENT_REJECTED")
    assert refused.status.message == "no ads in this room"
    assert error_info(refused.status).metadata["label"] == "spam"
    assert not refused.event_id and not refused.cursor
    assert (await comment(vic, room, "after the refusal")).status.code == OK
    # Events of a room arrive in order: had the refused one been appended, it came first.
    await ann.wait_events(room, 1, kind="comment")
    await vic.wait_events(room, 1, kind="comment")
    assert texts(ann, room) == texts(vic, room) == ["after the refusal"]
    admin = Admin(open_node.target, open_node.token("hana", role="host"))
    try:
        assert [e.payload.comment.text for e in await admin.all_events(room, "comment")] == ["after the refusal"]
    finally:
        await admin.close()


async def test_a_replaced_comment_is_stored_masked_and_the_sender_is_told(
    open_node: Node, streams: list[RawStream]
) -> None:
    room = await new_room(open_node)
    vic = await connect(open_node, room, open_node.token("vic"))
    ann = await connect(open_node, room, open_node.token("ann"))
    streams.extend([vic, ann])

    result = await comment(vic, room, "darn, sold out again")
    assert result.status.code == OK and result.event_id
    assert result.replaced and result.replaced_text == "****, sold out again"
    plain = await comment(vic, room, "fine then")
    assert plain.status.code == OK and not plain.replaced and not plain.replaced_text

    for viewer in (ann, vic):
        masked, _ = await viewer.wait_events(room, 2, kind="comment")
        assert masked.event_id == result.event_id
        assert masked.payload.comment.text == "****, sold out again"
    admin = Admin(open_node.target, open_node.token("hana", role="host"))
    try:
        stored = [e.payload.comment.text for e in await admin.all_events(room, "comment")]
    finally:
        await admin.close()
    assert stored == ["****, sold out again", "fine then"]


async def test_staff_and_services_skip_the_hook(open_node: Node, hook: HookServer, streams: list[RawStream]) -> None:
    room = await new_room(open_node)
    hana = await connect(open_node, room, open_node.token("hana", role="host"))  # the owner
    ops = await connect(open_node, room, open_node.token("ops", role="service"))
    bot = await connect(open_node, room, open_node.token("helper", role="bot", rooms=[room]))
    streams.extend([hana, ops, bot])
    assert (await comment(hana, room, "spam from the owner is the owner's business")).status.code == OK
    assert (await comment(ops, room, "darn (a service)")).status.code == OK
    assert reason((await comment(bot, room, "bot spam")).status) == (PERMISSION_DENIED, "CONTENT_REJECTED")
    assert [(r.sender.user_id, r.standing) for r in hook.requests] == [("helper", "bot")]


async def test_a_streams_queued_comments_are_reviewed_together_and_kept_in_order(
    open_node: Node, hook: HookServer, streams: list[RawStream]
) -> None:
    """Sends that queue on a stream while its previous append waits go out as one batch:
    their reviews run at once (a batch waits for its slowest answer, not the sum)."""

    async def unhurried(request: mh.ReviewRequest) -> Answer:
        await asyncio.sleep(0.1)
        return await judge(request)

    room = await new_room(open_node)
    vic = await connect(open_node, room, open_node.token("vic"))
    streams.append(vic)
    hook.behaviour = unhurried
    words = ["one", "two darn", "three spam", "four", "five", "six"]
    ids = [f"m{i}-{uuid.uuid4().hex[:6]}" for i in range(len(words))]
    for msg_id, text in zip(ids, words, strict=True):
        payload = ev.Payload(comment=ev.Comment(text=text))
        await vic.send(rs.ConnectRequest(send=rs.Send(room_id=room, client_msg_id=msg_id, payload=payload)))
    results = [await vic.send_result(msg_id, timeout=15) for msg_id in ids]
    assert [reason(r.status) for r in results] == [(OK, "")] * 2 + [(PERMISSION_DENIED, "CONTENT_REJECTED")] + [
        (OK, "")
    ] * 3
    await vic.wait_events(room, 5, kind="comment")
    assert texts(vic, room) == ["one", "two ****", "four", "five", "six"]
    assert hook.most_in_flight >= 2


# ------------------------------------------------------------------ a failing hook


async def slow(_: mh.ReviewRequest) -> Answer:
    await asyncio.sleep(3 * TIMEOUT_MS / 1000)
    return mh.ReviewResponse(verdict=mh.REVIEW_VERDICT_REJECT, message="too late to matter")


async def unknown_verdict(_: mh.ReviewRequest) -> Answer:
    return mh.ReviewResponse(verdict=42)  # type: ignore[arg-type]


async def garbage(_: mh.ReviewRequest) -> Answer:
    return b"\xff\xff\xff\xff not a protobuf"


async def error_status(_: mh.ReviewRequest) -> Answer:
    return grpc.StatusCode.INTERNAL


async def blank_replacement(_: mh.ReviewRequest) -> Answer:
    return mh.ReviewResponse(verdict=mh.REVIEW_VERDICT_REPLACE, replacement_text=" \u200b ")


async def no_verdict(_: mh.ReviewRequest) -> Answer:
    return mh.ReviewResponse()


FAILURES: dict[str, tuple[Behaviour, str]] = {
    "slow": (slow, "timeout"),
    "unknown verdict": (unknown_verdict, "invalid"),
    "no verdict": (no_verdict, "invalid"),
    "garbage": (garbage, "invalid"),
    "error status": (error_status, "error"),
    "blank replacement": (blank_replacement, "invalid"),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_fail_open_appends_what_a_failing_hook_could_not_judge(
    open_node: Node, hook: HookServer, streams: list[RawStream], failure: str
) -> None:
    behaviour, outcome = FAILURES[failure]
    room = await new_room(open_node)
    vic = await connect(open_node, room, open_node.token("vic"))
    ann = await connect(open_node, room, open_node.token("ann"))
    streams.extend([vic, ann])
    counted = calls(open_node, outcome, "failed_open")

    hook.behaviour = behaviour
    started = time.monotonic()
    result = await comment(vic, room, "darn spam, unjudged")
    waited = time.monotonic() - started
    assert result.status.code == OK and not result.replaced
    if failure == "slow":
        assert waited < 2 * TIMEOUT_MS / 1000 + 1.0  # the deadline, not the hook, decided
    (seen,) = await ann.wait_events(room, 1, kind="comment")
    assert seen.payload.comment.text == "darn spam, unjudged"
    assert calls(open_node, outcome, "failed_open") == counted + 1

    hook.behaviour = judge  # the next comment is reviewed again
    assert reason((await comment(vic, room, "spam again")).status) == (PERMISSION_DENIED, "CONTENT_REJECTED")


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_fail_closed_refuses_what_a_failing_hook_could_not_judge(
    closed_node: Node, hook: HookServer, streams: list[RawStream], failure: str
) -> None:
    behaviour, outcome = FAILURES[failure]
    room = await new_room(closed_node)
    vic = await connect(closed_node, room, closed_node.token("vic"))
    streams.append(vic)

    hook.behaviour = behaviour
    refused = await comment(vic, room, "fine words")
    assert reason(refused.status) == (UNAVAILABLE, "MODERATION_UNAVAILABLE")
    assert error_info(refused.status).metadata["outcome"] == outcome
    assert retry_delay_s(refused.status) == pytest.approx(1.0)
    assert calls(closed_node, outcome, "failed_closed") >= 1

    hook.behaviour = judge  # a retry once the hook is well is reviewed and appended
    assert (await comment(vic, room, "fine words")).status.code == OK
    (seen,) = await vic.wait_events(room, 1, kind="comment")
    assert seen.payload.comment.text == "fine words"


async def test_a_hook_that_is_down_fails_at_once_by_policy(tmp_path: Path, streams: list[RawStream]) -> None:
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens here
    closed, opened = await asyncio.gather(  # started side by side
        asyncio.to_thread(node, tmp_path / "closed", nobody, "closed"),
        asyncio.to_thread(node, tmp_path / "open", nobody, "open"),
    )
    try:
        room, other = await new_room(closed), await new_room(opened)
        vic = await connect(closed, room, closed.token("vic"))
        ann = await connect(opened, other, opened.token("ann"))
        streams.extend([vic, ann])
        started = time.monotonic()
        refused = await comment(vic, room, "anyone there?")
        assert reason(refused.status) == (UNAVAILABLE, "MODERATION_UNAVAILABLE")
        assert error_info(refused.status).metadata["outcome"] == "unavailable"
        assert time.monotonic() - started < 2.0
        assert (await comment(ann, other, "anyone there?")).status.code == OK
        (seen,) = await ann.wait_events(other, 1, kind="comment")
        assert seen.payload.comment.text == "anyone there?"
        assert calls(opened, "unavailable", "failed_open") == 1
    finally:
        await close_all(streams)
        await asyncio.gather(asyncio.to_thread(closed.stop), asyncio.to_thread(opened.stop))


# ------------------------------------------------------------------ a hook that hangs


async def test_a_hook_that_hangs_holds_a_bounded_few_sends_and_nothing_else(
    tmp_path: Path, hook: HookServer, streams: list[RawStream]
) -> None:
    """Deadline 3 s, at most 4 calls pending: 10 viewers comment at once while the hook
    hangs. 4 wait for the deadline, 6 are refused at once (overloaded); meanwhile pings,
    a join, another room's viewers and the owner's comments are answered. Those timeouts
    and a few errors then open the circuit: the next comments do not call the hook."""
    server = ServerProcess(
        tmp_path / "data",
        args=(
            "--moderation-hook", hook.target,
            "--moderation-hook-timeout-ms", "3000",
            "--moderation-hook-max-pending", "4",
            "--moderation-hook-failure", "closed",
            "--shutdown-grace-s", "0",
        ),
    )  # fmt: skip
    server.start()
    try:
        room, other = await new_room(server), await new_room(server, owner="otto")
        viewers = [await connect(server, room, server.token(f"v{i}")) for i in range(10)]
        hana = await connect(server, room, server.token("hana", role="host"))
        otto = await connect(server, other, server.token("otto", role="host"))
        streams.extend([*viewers, hana, otto])
        hook.behaviour = hook.hang

        started = time.monotonic()
        sends = [asyncio.create_task(comment(v, room, f"hello {i}")) for i, v in enumerate(viewers)]
        await asyncio.sleep(0.3)  # the hook now holds what it will hold
        # The node stays responsive while calls hang: pings, joins, other rooms, staff.
        await ping(hana, 7, timeout=1.0)
        late = await connect(server, other, server.token("late"))
        streams.append(late)
        assert (await comment(otto, other, "other room, owner")).status.code == OK
        assert (await comment(hana, room, "same room, owner")).status.code == OK
        # ... all before the hanging calls' deadline: those four sends still wait.
        assert sum(not send.done() for send in sends) == 4
        assert time.monotonic() - started < 3.0
        results = await asyncio.gather(*sends)
        assert hook.most_in_flight == 4
        outcomes = sorted(error_info(r.status).metadata["outcome"] for r in results)
        assert outcomes == ["overloaded"] * 6 + ["timeout"] * 4
        assert all(reason(r.status) == (UNAVAILABLE, "MODERATION_UNAVAILABLE") for r in results)
        assert [e.payload.comment.text for e in await otto.wait_events(other, 1, kind="comment")] == [
            "other room, owner"
        ]

        # 4 of the last calls timed out; when 10 of the last 20 have failed the circuit
        # opens, and then the hook is not called at all.
        hook.release()
        await asyncio.sleep(0.1)
        asked = len(hook.requests)
        hook.behaviour = error_status
        outcomes = [error_info((await comment(viewers[0], room, f"n{i}")).status).metadata["outcome"] for i in range(7)]
        assert outcomes == ["error"] * 6 + ["circuit_open"]
        assert len(hook.requests) == asked + 6
        # After the open period one probe goes through; its success closes the circuit.
        hook.behaviour = judge
        await asyncio.sleep(0.5)
        assert (await comment(viewers[2], room, "probe")).status.code == OK
        assert (await comment(viewers[3], room, "and after")).status.code == OK
    finally:
        hook.release()
        await close_all(streams)
        server.stop()


# ------------------------------------------------------------------ the circuit breaker


def test_the_circuit_opens_on_a_failing_share_not_on_a_few_late_answers() -> None:
    breaker = CircuitBreaker(window=20, trip_at=10, open_s=0.05, max_open_s=0.15)
    for i in range(200):  # 1 call in 10 fails: a saturated node's few late answers
        assert breaker.allow()
        breaker.failed() if i % 10 == 0 else breaker.succeeded()
    for _ in range(8):  # now the hook is down: 1 + 8 + 1 failures among the last 20 calls
        assert breaker.allow()
        breaker.failed()
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow()  # open
    time.sleep(0.06)
    assert breaker.allow()  # one probe ...
    assert not breaker.allow()  # ... at a time
    breaker.failed()  # the probe failed: open again, twice as long
    time.sleep(0.06)
    assert not breaker.allow()
    time.sleep(0.05)
    assert breaker.allow()
    breaker.abandoned()  # the probe's caller went away: the next call probes instead
    assert breaker.allow()
    breaker.succeeded()  # the probe answered: closed, failures forgotten
    assert all(breaker.allow() for _ in range(5))
    for _ in range(9):
        breaker.failed()
    assert breaker.allow()


# ------------------------------------------------------------------------ Kafka


async def test_a_replaced_comment_on_the_kafka_log(tmp_path: Path, hook: HookServer, streams: list[RawStream]) -> None:
    with running_broker() as broker:
        server = node(tmp_path, hook.target, "closed", log_url=broker.url(f"hook-{uuid.uuid4().hex[:6]}"))
        try:
            room = await new_room(server)
            vic = await connect(server, room, server.token("vic"))
            ann = await connect(server, room, server.token("ann"))
            streams.extend([vic, ann])
            result = await comment(vic, room, "darn it")
            assert result.status.code == OK and result.replaced_text == "**** it"
            refused = await comment(vic, room, "spam")
            assert reason(refused.status) == (PERMISSION_DENIED, "CONTENT_REJECTED")
            (seen,) = await ann.wait_events(room, 1, kind="comment")
            assert seen.payload.comment.text == "**** it"
        finally:
            await close_all(streams)
            server.stop()
