"""Issue 3 at the gateway: several `barrage serve` processes on one Kafka broker.

Real gRPC on loopback, real server processes (tests/server_process.py), one real test
broker (tests/kafka_broker.py, Tansu). What is proven here, the Kafka log itself being
covered by tests/test_kafka_log.py and tests/conformance/:

- one order: senders on two nodes, viewers on three, every viewer sees the history's order;
- kill -9 of a node: its SDK clients resume on another node without gap or duplicate,
  every acknowledged event is in history exactly once, and a send whose ack was lost is
  answered with the first cursor when retried on another node;
- broker outage (SIGSTOP): sends answer UNAVAILABLE quickly, streams stay open, delivery
  and sends resume on thaw without duplicates; a node started while the broker is down
  waits for it, or fails with a clear message after `startup_timeout_s`;
- `--workers 2`: two processes on one port share the log, and SIGTERM stops both;
- commerce across nodes: the viewer count sums the nodes, one vote per user holds
  when one user votes through two nodes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from barrage.clients.sdk import Ack, Client, Subscription
from barrage.server.auth import issue_dev_token
from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import OK, Cluster, closing, connect, eventually, joined, ping, send_payload
from tests.kafka_broker import KafkaBroker, running_broker
from tests.server_process import ROOT, TEST_SECRET, ServerProcess, free_port
from tests.wire_client import Admin, RawStream, end_status, error_info

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS.value[0]
DELIVERY_TIMEOUT_S = 30.0


def new_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    """One broker for the module's tests that do not freeze it."""
    with running_broker() as started:
        yield started


@pytest.fixture(scope="module")
def shared_cluster(broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(broker, tmp_path_factory.mktemp("cluster"), new_topic("rooms"), 3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    """Three nodes on the module's broker, all running (a node killed by an earlier test is restarted)."""
    shared_cluster.ensure_running()
    return shared_cluster


@pytest.fixture
async def admin(cluster: Cluster, room_id: str) -> AsyncIterator[Admin]:
    """Admin API on node 0 (never killed); the room is created."""
    client = Admin(cluster[0].target, cluster.token("ops", role="service"))
    try:
        await client.create_room(room_id, "cluster room", host_user_id="the-host")  # "the-host" owns it
        yield client
    finally:
        await client.close()


def cursors(events: list[ev.Event]) -> list[str]:
    return [event.cursor for event in events]


def comments(events: list[ev.Event]) -> list[ev.Event]:
    return [event for event in events if event.payload.WhichOneof("kind") == "comment"]


# ================================================================== one order


async def test_viewers_on_three_nodes_see_one_order_whichever_node_each_sender_used(
    cluster: Cluster, room_id: str, admin: Admin
) -> None:
    per_sender, senders_count = 15, 8
    viewers: list[RawStream] = []
    senders: list[RawStream] = []
    async with closing(viewers), closing(senders):
        for node in range(3):
            for i in range(2):
                viewers.append(await connect(cluster[node].target, cluster.token(f"viewer-{node}-{i}"), room_id))
        # Senders alternate between node 0 and node 1; node 2 only has viewers.
        for i in range(senders_count):
            senders.append(await connect(cluster[i % 2].target, cluster.token(f"sender-{i}"), room_id))

        async def burst(index: int, stream: RawStream) -> list[str]:
            results = await asyncio.gather(
                *(stream.send_comment(room_id, f"m{index}-{n}", f"{index}:{n}", timeout=20) for n in range(per_sender))
            )
            assert all(r.status.code == OK for r in results), [r.status for r in results if r.status.code != OK]
            return [r.cursor for r in results]

        acked = [c for batch in await asyncio.gather(*(burst(i, s) for i, s in enumerate(senders))) for c in batch]
        total = per_sender * senders_count
        sequences = [
            cursors(await stream.wait_events(room_id, total, timeout=DELIVERY_TIMEOUT_S, kind="comment"))
            for stream in viewers + senders
        ]
        history = await admin.all_events(room_id, "comment")
    assert len(history) == total
    assert len(set(cursors(history))) == total
    assert sorted(acked) == sorted(cursors(history))
    for index, sequence in enumerate(sequences):
        assert sequence == cursors(history), f"stream {index} (viewers first, then senders) saw another order"
    # Both sending nodes' events are in the one order, and each sender's own comments
    # keep the order it sent them in.
    texts = [event.payload.comment.text for event in history]
    for index in range(senders_count):
        assert [t for t in texts if t.startswith(f"{index}:")] == [f"{index}:{n}" for n in range(per_sender)]


# ================================================================ kill -9


async def collect(subscription: Subscription, into: list[ev.Event]) -> None:
    """Every event the SDK hands the application, until the subscription ends."""
    async for item in subscription:
        if isinstance(item, ev.Event):
            into.append(item)


async def test_kill_9_clients_resume_on_another_node_with_no_gap_no_duplicate_and_no_lost_ack(
    cluster: Cluster, room_id: str, admin: Admin
) -> None:
    victim = cluster[2]
    victim_id, survivor_id = cluster.node_id(2), cluster.node_id(0)

    # `fan` gives the SDK a gRPC target with two addresses (victim first): every reconnect
    # opens a new channel, whose pick_first policy skips the dead node.
    fan = Client(f"ipv4:{victim.target},{cluster[0].target}", cluster.token("fan"))
    # `watcher` has one address: after the kill a new client on node 1 resumes from its cursor.
    watcher = Client(victim.target, cluster.token("watcher"))
    resumed_watcher = Client(cluster[1].target, cluster.token("watcher"))
    fan_seen: list[ev.Event] = []
    watcher_seen: list[ev.Event] = []
    resumed_seen: list[ev.Event] = []
    collectors: list[asyncio.Task[None]] = []
    stop_senders = asyncio.Event()
    background_acks: list[str] = []

    async def keep_sending(stream: RawStream, name: str) -> None:
        n = 0
        while not stop_senders.is_set():
            result = await stream.send_comment(room_id, f"{name}-{n}", f"{name} {n}", timeout=20)
            assert result.status.code == OK, result.status
            background_acks.append(result.cursor)
            n += 1
            await asyncio.sleep(0.15)

    try:
        await fan.connect()
        await watcher.connect()
        assert fan.welcome is not None and fan.welcome.node_id == victim_id
        assert watcher.welcome is not None and watcher.welcome.node_id == victim_id
        fan_room = await fan.join(room_id)
        watcher_room = await watcher.join(room_id)
        collectors += [
            asyncio.create_task(collect(fan_room, fan_seen)),
            asyncio.create_task(collect(watcher_room, watcher_seen)),
        ]
        members = ((0, "sender-a"), (1, "sender-b"), (2, "retrier"), (0, "observer"), (1, "retrier"))
        async with joined(room_id, *((cluster[node].target, cluster.token(user)) for node, user in members)) as (
            sender_a,
            sender_b,
            retrier,
            observer,
            retrier_again,
        ):
            background = [
                asyncio.create_task(keep_sending(sender_a, "a")),
                asyncio.create_task(keep_sending(sender_b, "b")),
            ]
            fan_acks: list[Ack] = [await fan.send(room_id, f"fan before {n}") for n in range(5)]

            # A send the victim appends but whose ack the client never reads.
            retrier.pause()
            await retrier.send(
                rs.ConnectRequest(
                    send=rs.Send(
                        room_id=room_id,
                        client_msg_id="lost-ack",
                        payload=ev.Payload(comment=ev.Comment(text="was my ack lost?")),
                    )
                )
            )
            await eventually(
                lambda: any(e.client_msg_id == "lost-ack" for e in observer.events(room_id, "comment")),
                "the unacknowledged send to reach a viewer on another node",
            )
            lost = next(e for e in observer.events(room_id, "comment") if e.client_msg_id == "lost-ack")
            assert lost.sender.user_id == "retrier"

            # Sends in flight when the node dies: the SDK writes them again on the next node.
            in_flight = [asyncio.create_task(fan.send(room_id, f"fan in flight {n}")) for n in range(10)]
            await asyncio.sleep(0.01)
            victim.kill()
            killed_at = time.monotonic()

            await eventually(
                lambda: fan.welcome is not None and fan.welcome.node_id == survivor_id,
                "the SDK client to reconnect to another node",
            )
            failover_s = time.monotonic() - killed_at
            fan_acks += await asyncio.gather(*in_flight)
            fan_acks += [await fan.send(room_id, f"fan after {n}") for n in range(5)]

            # The single-address client cannot reach its node: resume its room elsewhere.
            await watcher.close()
            await asyncio.wait_for(collectors[1], 10)
            assert watcher_room.cursor == [e.cursor for e in watcher_seen if e.cursor][-1]
            await resumed_watcher.connect()
            assert resumed_watcher.welcome is not None and resumed_watcher.welcome.node_id == cluster.node_id(1)
            resumed_room = await resumed_watcher.join(room_id, resume_cursor=watcher_room.cursor)
            assert resumed_room.resume_outcome == rs.RESUME_OUTCOME_RESUMED
            collectors.append(asyncio.create_task(collect(resumed_room, resumed_seen)))

            # The lost ack: retried on another node, answered with the first cursor.
            retried = await retrier_again.send_comment(room_id, "lost-ack", "was my ack lost?", timeout=20)
            assert retried.status.code == OK, retried.status
            assert (retried.cursor, retried.event_id, retried.duplicate) == (lost.cursor, lost.event_id, True)

            await asyncio.sleep(0.5)  # the other nodes' senders keep the room busy meanwhile
            stop_senders.set()
            await asyncio.gather(*background)

        history = await admin.all_events(room_id, "comment")
        expected = cursors(history)
        await eventually(lambda: len(comments(fan_seen)) >= len(history), "the failed-over client to catch up")
        await eventually(
            lambda: len(comments(watcher_seen)) + len(comments(resumed_seen)) >= len(history),
            "the resumed client to catch up",
        )
        await asyncio.sleep(0.3)  # nothing more may arrive
    finally:
        for client in (fan, watcher, resumed_watcher):
            await client.close()
        for task in collectors:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 10)

    # No acknowledged event is lost, none is stored twice.
    acked = [ack.cursor for ack in fan_acks] + background_acks + [retried.cursor]
    assert len(expected) == len(set(expected))
    assert sorted(set(acked)) == sorted(expected)
    assert len({(e.sender.user_id, e.client_msg_id) for e in history}) == len(history)
    assert sum(1 for e in history if e.client_msg_id == "lost-ack") == 1
    # The failed-over client: the whole history, in order, each of its own sends once.
    assert cursors(comments(fan_seen)) == expected
    for ack in fan_acks:
        assert cursors(fan_seen).count(ack.cursor) == 1
    assert fan.stats.welcomes >= 2
    assert fan.stats.duplicates_dropped == 0, "the server replayed events the client already had"
    # The manually resumed client: before the kill on one node, after it on another,
    # together exactly the history (every logged event, presence included, once).
    assert cursors(comments(watcher_seen + resumed_seen)) == expected
    together = [e.cursor for e in watcher_seen + resumed_seen if e.cursor]
    assert len(together) == len(set(together))
    assert failover_s < 15
    print(
        f"\nfailover after {failover_s:.2f} s; {len(expected)} comments; fan sends rewritten "
        f"{fan.stats.sends_rewritten}, answered as duplicates {sum(a.duplicate for a in fan_acks)}"
    )


# ========================================================== broker outages


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A broker of the test's own, for tests that freeze it."""
    with running_broker() as started:
        yield started


@pytest.fixture
def outage_pair(own_broker: KafkaBroker, tmp_path: Path) -> Iterator[Cluster]:
    # Short timeouts so a frozen broker is noticed quickly (a send's dedupe catch-up is a read).
    pair = Cluster(own_broker, tmp_path, "outage", 2, options="append_timeout_ms=1500&read_timeout_ms=1500")
    try:
        pair.start()
        yield pair
    finally:
        if own_broker.frozen:
            own_broker.thaw()
        pair.stop()


async def send_until_ok(stream: RawStream, room_id: str, client_msg_id: str, text: str) -> rs.SendResult:
    """Retry a send with the same id while the log is unavailable (what a client does)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        result = await stream.send_comment(room_id, client_msg_id, text, timeout=20)
        if result.status.code != UNAVAILABLE or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.2)


async def test_a_frozen_broker_fails_sends_quickly_keeps_streams_open_and_delivery_resumes(
    own_broker: KafkaBroker, outage_pair: Cluster, room_id: str
) -> None:
    pair = outage_pair
    admin = Admin(pair[0].target, pair.token("ops", role="service"))
    sdk = Client(pair[1].target, pair.token("sdk-fan"))
    try:
        await admin.create_room(room_id)
        async with joined(
            room_id,
            (pair[0].target, pair.token("s0")),
            (pair[1].target, pair.token("s1")),
            (pair[0].target, pair.token("v0")),
            (pair[1].target, pair.token("v1")),
        ) as streams:
            s0, s1, v0, v1 = streams
            await sdk.connect()
            await sdk.join(room_id)
            assert (await s0.send_comment(room_id, "before", "before the outage")).status.code == OK
            for viewer in (v0, v1):
                await viewer.wait_events(room_id, 1, timeout=DELIVERY_TIMEOUT_S, kind="comment")

            with own_broker.frozen_for():
                started = time.monotonic()
                refused = await asyncio.gather(
                    s0.send_comment(room_id, "during-0", "sent during the outage", timeout=20),
                    s1.send_comment(room_id, "during-1", "sent during the outage", timeout=20),
                )
                refused_after_s = time.monotonic() - started
                for result in refused:
                    assert result.status.code == UNAVAILABLE, result.status
                    assert error_info(result.status).reason == "LOG_UNAVAILABLE"
                assert refused_after_s < 8.0, f"sends hung {refused_after_s:.1f} s"
                # The SDK retries such a send by itself, with the same client_msg_id.
                sdk_send = asyncio.create_task(sdk.send(room_id, "sdk during", client_msg_id="sdk-during"))
                for nonce, stream in enumerate(streams, 1):
                    await ping(stream, nonce, timeout=5)
                assert not any(stream.done for stream in streams)
                assert await sdk.ping(timeout_s=5) < 5
                await eventually(lambda: sdk.stats.sends_rewritten >= 1, "the SDK to retry its refused send")
                frozen_s = time.monotonic() - started

            # Thawed: the same ids are appended once (their timed-out produces may land now).
            again = [
                await send_until_ok(s0, room_id, "during-0", "sent during the outage"),
                await send_until_ok(s1, room_id, "during-1", "sent during the outage"),
            ]
            assert all(result.status.code == OK for result in again), [r.status for r in again]
            sdk_ack = await asyncio.wait_for(sdk_send, DELIVERY_TIMEOUT_S)
            after = await send_until_ok(s1, room_id, "after", "after the outage")
            assert after.status.code == OK

            history = await admin.all_events(room_id, "comment")
            assert [e.client_msg_id for e in history].count("during-0") == 1
            assert sorted(e.client_msg_id for e in history) == sorted(
                ["before", "during-0", "during-1", "sdk-during", "after"]
            )
            by_id = {e.client_msg_id: e.cursor for e in history}
            assert by_id["during-0"] == again[0].cursor
            assert by_id["during-1"] == again[1].cursor
            assert by_id["sdk-during"] == sdk_ack.cursor
            assert by_id["after"] == after.cursor
            # Delivery resumed on both nodes, in the history's order, without the late copies.
            for stream in streams:
                await stream.wait_events(room_id, len(history), timeout=DELIVERY_TIMEOUT_S, kind="comment")
            await asyncio.sleep(0.3)
            for stream in streams:
                assert cursors(stream.events(room_id, "comment")) == cursors(history)
    finally:
        await sdk.close()
        await admin.close()
    print(f"\nsends refused after {refused_after_s:.2f} s; broker frozen {frozen_s:.1f} s")


async def test_reads_while_the_broker_is_frozen_answer_unavailable_and_a_resume_completes_after(
    own_broker: KafkaBroker, outage_pair: Cluster, room_id: str
) -> None:
    pair = outage_pair
    admin0 = Admin(pair[0].target, pair.token("ops", role="service"))
    admin1 = Admin(pair[1].target, pair.token("ops", role="service"))
    try:
        await admin0.create_room(room_id)
        async with joined(room_id, (pair[0].target, pair.token("s0"))) as (sender,):
            for i in range(3):
                assert (await sender.send_comment(room_id, f"c{i}", f"comment {i}")).status.code == OK
            first = (await admin0.all_events(room_id, "comment"))[0]
            with own_broker.frozen_for():
                # Node 1 does not serve the room: history must come from the broker.
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await admin1.history(room_id)
                status = end_status(raised.value)
                assert status.code == UNAVAILABLE, status
                assert error_info(status).reason == "LOG_UNAVAILABLE"
                # A resuming join is answered either way, never left hanging: OK (its
                # replay waits for the log) or UNAVAILABLE (retry the join).
                viewer = await connect(pair[1].target, pair.token("v1"))
                result = await asyncio.wait_for(viewer.join(room_id, resume_cursor=first.cursor), 20)
                assert result.status.code in (OK, UNAVAILABLE), result.status
                assert not viewer.done
            if result.status.code == UNAVAILABLE:
                assert error_info(result.status).reason == "LOG_UNAVAILABLE"
                result = await viewer.join(room_id, resume_cursor=first.cursor)
                assert result.status.code == OK, result.status
            # Everything after the cursor arrives, once and in order.
            await viewer.wait_events(room_id, 2, timeout=DELIVERY_TIMEOUT_S, kind="comment")
            await asyncio.sleep(0.3)
            assert [e.client_msg_id for e in viewer.events(room_id, "comment")] == ["c1", "c2"]
            await viewer.close()
    finally:
        await admin0.close()
        await admin1.close()


async def test_a_node_started_while_the_broker_is_frozen_waits_for_it(own_broker: KafkaBroker, tmp_path: Path) -> None:
    node = ServerProcess(tmp_path / "late", log_url=own_broker.url("late"))
    try:
        with own_broker.frozen_for():
            starting = asyncio.create_task(asyncio.to_thread(node.start, 60.0))
            await asyncio.sleep(3.0)  # well past a connection attempt, well within startup_timeout_s (30 s)
            assert not starting.done(), "the node gave up (or served) while the broker was down"
            assert node.proc is not None and node.proc.poll() is None
        await starting
        room_id = f"room-{uuid.uuid4().hex[:12]}"
        admin = Admin(node.target, node.token("ops", role="service"))
        try:
            await admin.create_room(room_id)
        finally:
            await admin.close()
        async with joined(room_id, (node.target, node.token("alice"))) as (alice,):
            assert (await alice.send_comment(room_id, "m", "the node works")).status.code == OK
            await alice.wait_events(room_id, 1, timeout=DELIVERY_TIMEOUT_S, kind="comment")
    finally:
        node.stop()


def test_a_node_without_a_broker_fails_after_startup_timeout_with_a_clear_message(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    node = ServerProcess(tmp_path / "orphan", log_url=f"kafka://127.0.0.1:{port}/rooms?startup_timeout_s=2")
    started = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match="server exited") as failed:
            node.start(timeout_s=30.0)
    finally:
        node.stop()
    assert time.monotonic() - started < 20
    assert node.proc is not None and node.proc.returncode != 0
    assert f"cannot reach Kafka at 127.0.0.1:{port} (waited 2 s, startup_timeout_s)" in str(failed.value)


# ================================================================ --workers


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Workers:
    """`python -m barrage.server --workers 2` on one port: the supervisor and its two worker processes."""

    def __init__(self, broker: KafkaBroker, tmp_path: Path) -> None:
        self.target = f"127.0.0.1:{free_port()}"
        self.output = tmp_path / "workers.log"
        command = [
            sys.executable, "-m", "barrage.server", "--workers", "2", "--listen", self.target,
            "--log", broker.url(new_topic("workers")), "--jwt-secret", TEST_SECRET, "--node-id", "wk",
        ]  # fmt: skip
        with self.output.open("ab") as out:
            self.supervisor = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT
            )
        self.workers: list[int] = []

    def wait_serving(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        serving = health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.supervisor.poll() is not None:
                    raise RuntimeError(f"supervisor exited with {self.supervisor.returncode}:\n{self.logs()}")
                # Serving on the port, and both workers listening (the first may answer alone for a while).
                listening = all(f"barrage node wk-w{i} listening" in self.logs() for i in range(2))
                with contextlib.suppress(grpc.RpcError):
                    if listening and stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status == serving:
                        self.workers = children_of(self.supervisor.pid)
                        return
                time.sleep(0.05)
        raise TimeoutError(f"not serving after {timeout_s} s:\n{self.logs()}")

    def logs(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        """Kill whatever is still running (the test stops them gracefully itself)."""
        if self.supervisor.poll() is None:
            self.supervisor.kill()
            self.supervisor.wait(10)
        for pid in self.workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def workers(broker: KafkaBroker, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(broker, tmp_path)
    try:
        started.wait_serving()
        yield started
    finally:
        started.stop()


def token(user: str, role: str = "viewer") -> str:
    return issue_dev_token(TEST_SECRET, user_id=user, role=role)


async def one_stream_per_worker(target: str, spare: list[RawStream]) -> dict[str, RawStream]:
    """Open streams until each worker has welcomed one; every stream opened is added to `spare`."""
    by_node: dict[str, RawStream] = {}
    while len(by_node) < 2:
        assert len(spare) < 200, f"only {sorted(by_node)} answered {len(spare)} streams"
        # A channel of its own (gRPC shares connections between channels to the same target
        # by default): a new connection, which the kernel hashes to one of the workers.
        stream = RawStream(target, options=(("grpc.use_local_subchannel_pool", 1),))
        spare.append(stream)
        welcome = await stream.hello(token(f"user-{len(spare)}"))
        by_node.setdefault(welcome.node_id, stream)
    return by_node


async def test_two_workers_on_one_port_share_the_log_and_stop_together(workers: Workers) -> None:
    assert len(workers.workers) == 2, workers.workers
    spare: list[RawStream] = []
    async with closing(spare):
        by_node = await one_stream_per_worker(workers.target, spare)
        assert sorted(by_node) == ["wk-w0", "wk-w1"]
        room_id = f"room-{uuid.uuid4().hex[:12]}"
        admin = Admin(workers.target, token("ops", role="service"))
        try:
            await admin.create_room(room_id)
        finally:
            await admin.close()
        first, second = by_node["wk-w0"], by_node["wk-w1"]
        for stream in (first, second):
            assert (await stream.join(room_id)).status.code == OK
        assert (await first.send_comment(room_id, "from-w0", "through worker 0")).status.code == OK
        assert (await second.send_comment(room_id, "from-w1", "through worker 1")).status.code == OK
        for stream in (first, second):
            events = await stream.wait_events(room_id, 2, timeout=DELIVERY_TIMEOUT_S, kind="comment")
            assert [e.client_msg_id for e in events] == ["from-w0", "from-w1"]

        workers.supervisor.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(workers.supervisor.wait, 30)
        # Both workers told their clients to go away before stopping.
        for stream in (first, second):
            await stream.expect("go_away", timeout=5)
    assert code == 0, workers.logs()
    assert not any(alive(pid) for pid in workers.workers), workers.logs()
    print(f"\nstreams opened to see both workers: {len(spare)}")


async def test_sigterm_lets_a_slower_worker_finish_draining(workers: Workers) -> None:
    first, slower = workers.workers
    workers.supervisor.send_signal(signal.SIGTERM)
    await eventually(
        lambda: workers.logs().count("shutting down: telling clients to reconnect") == 2,
        "both workers to start draining",
    )
    # Make one worker the slower one, deterministically: frozen until the other has exited.
    os.kill(slower, signal.SIGSTOP)
    try:
        await eventually(lambda: not Path(f"/proc/{first}").exists(), "the first worker to exit and be reaped")
        await asyncio.sleep(0.2)  # the supervisor acts on the exit in the same loop turn it reaps it
    finally:
        os.kill(slower, signal.SIGCONT)
    code = await asyncio.to_thread(workers.supervisor.wait, 30)
    assert code == 0
    assert "second signal" not in workers.logs(), workers.logs()[-3000:]
    assert "Unclosed AIOKafkaProducer" not in workers.logs()


# ================================================================ commerce


async def test_the_viewer_count_sums_the_viewers_of_every_node(cluster: Cluster, room_id: str, admin: Admin) -> None:
    started = time.monotonic()
    async with joined(
        room_id,
        (cluster[0].target, cluster.token("count-0")),
        (cluster[0].target, cluster.token("count-1")),
        (cluster[1].target, cluster.token("count-2")),
    ) as viewers:

        def reported_total(stream: RawStream) -> bool:
            return any(e.payload.viewer_count.viewers == 3 for e in stream.events(room_id, "viewer_count"))

        # Each node publishes its count every 2 s when it changed: the total is due within ~6 s
        # (8 s allowed on a noisy machine).
        await eventually(lambda: all(reported_total(v) for v in viewers), "a viewer count of 3 on both nodes", 8)
        took_s = time.monotonic() - started
        counts = [e.payload.viewer_count for v in viewers for e in v.events(room_id, "viewer_count")]
    assert all(count.viewers <= 3 for count in counts)
    # Whichever node said 3, it counted the other node's viewers too: neither has 3 itself. (Which
    # node's counts reach a viewer is not fixed: a newer viewer_count replaces one not yet sent.)
    local = {cluster.node_id(0): 2, cluster.node_id(1): 1}
    totals = [count for count in counts if count.viewers == 3]
    assert totals and all(count.node_viewers == local[count.node_id] for count in totals), totals
    print(f"\nviewer count of both nodes reached every viewer after {took_s:.2f} s")


async def test_one_vote_per_user_when_a_user_votes_through_two_nodes_at_once(
    cluster: Cluster, room_id: str, admin: Admin
) -> None:
    users = [f"voter-{i}" for i in range(6)]
    hosts: list[RawStream] = []
    via_1: list[RawStream] = []  # each user once through node 1 ...
    via_2: list[RawStream] = []  # ... and once through node 2
    async with closing(hosts), closing(via_1), closing(via_2):
        hosts.append(await connect(cluster[0].target, cluster.token("the-host", role="host"), room_id))
        host = hosts[0]
        for user in users:
            via_1.append(await connect(cluster[1].target, cluster.token(user), room_id))
            via_2.append(await connect(cluster[2].target, cluster.token(user), room_id))
        end = time.time() + 4.0
        poll = ev.Payload(poll_started=ev.PollStarted(poll_id="p1", question="Which colour?", options=["red", "pink"]))
        poll.poll_started.end_time.FromMilliseconds(int(end * 1000))
        assert (await send_payload(host, room_id, "poll", poll)).status.code == OK
        for stream in via_1 + via_2:
            await stream.wait_events(room_id, 1, timeout=DELIVERY_TIMEOUT_S, kind="poll_started")

        async def vote_twice(one: RawStream, two: RawStream) -> tuple[rs.SendResult, rs.SendResult]:
            # Both frames are written before either answer is read: the same moment.
            for stream, option in ((one, 0), (two, 1)):
                vote = ev.Payload(poll_vote=ev.PollVote(poll_id="p1", option=option))
                await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id="vote", payload=vote)))
            return await one.send_result("vote", 20), await two.send_result("vote", 20)

        results = await asyncio.gather(*(vote_twice(a, b) for a, b in zip(via_1, via_2, strict=True)))
        assert time.time() < end, "the votes came after the poll's end: the machine was too slow"
        expected = [0, 0]
        for user, (first, second) in zip(users, results, strict=True):
            answers = ((0, first), (1, second))
            counted = [(option, r) for option, r in answers if r.status.code == OK and not r.duplicate]
            assert len(counted) == 1, (user, first, second)
            option, winner = counted[0]
            expected[option] += 1
            loser = second if option == 0 else first
            assert loser.status.code == ALREADY_EXISTS or (loser.status.code == OK and loser.cursor == winner.cursor), (
                user,
                loser,
            )
        (ended,) = await host.wait_events(room_id, 1, timeout=DELIVERY_TIMEOUT_S, kind="poll_ended")
        assert list(ended.payload.poll_ended.counts) == expected
        tallies = [e.payload.poll_tally for s in (host, *via_1, *via_2) for e in s.events(room_id, "poll_tally")]
        assert all(sum(t.counts) <= len(users) for t in tallies)
        history = await admin.all_events(room_id)
    votes = [e for e in history if e.payload.WhichOneof("kind") == "poll_vote"]
    assert sorted(e.sender.user_id for e in votes) == users
    assert [e.payload.WhichOneof("kind") for e in history].count("poll_ended") == 1
