"""The assistant as a bot in a room: the SDK's stream in, threaded replies out.

One `Assistant` holds one SDK client (one stream) and answers in one or more rooms.
For each room it folds the events into the live state, picks out viewers' questions
(not its own messages, not other bots, not spam), answers them with the answerer
(optionally phrased by a language model) as replies to the question
(`Comment.reply_to_event_id`), once per group of repeated questions per window, under
a per-room rate limit, and stops answering when muted; a ban or the room closing ends
the room. Every reply carries `client_msg_id = "assistant:<question event id>"`, so a
retry, a reconnect or a restarted assistant never answers one question twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from barrage.clients.assistant.answerer import Answer, Answerer
from barrage.clients.assistant.llm import Phraser
from barrage.clients.assistant.settings import Settings
from barrage.clients.assistant.state import LiveState
from barrage.clients.assistant.throttle import Groups, RateLimiter, Recent, is_spam, looks_like_question
from barrage.clients.sdk import (
    BarrageError,
    Client,
    ClientOptions,
    Omitted,
    ResumeGap,
    SendError,
    Subscription,
    SubscriptionEnded,
    TokenSource,
)
from barrage.v1 import event_pb2

log = logging.getLogger("barrage.assistant")

MSG_ID_PREFIX = "assistant:"


@dataclass
class Stats:
    questions: int = 0
    answered: int = 0
    """Replies posted with facts."""
    abstained: int = 0
    """Replies posted saying the assistant does not know."""
    silent: int = 0
    """Unknown answers not posted (silent setting) and comments that were not shopping questions."""
    grouped: int = 0
    """Questions not replied to because their group was answered in this window."""
    rate_limited: int = 0
    spam: int = 0
    ignored: int = 0
    """Own messages, other bots, staff, non-questions, stale questions."""
    muted: int = 0
    """Questions dropped while muted."""
    send_errors: int = 0
    phrased: int = 0
    """Replies worded by the language model (others used the template)."""
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Question publish time to reply acknowledged, per reply."""

    def latency_p(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        values = sorted(self.latencies_s)
        return values[min(len(values) - 1, int(len(values) * q))]

    def summary(self) -> str:
        p50 = statistics.median(self.latencies_s) if self.latencies_s else 0.0
        p95 = self.latency_p(0.95) or 0.0
        return (
            f"questions {self.questions}, answered {self.answered}, said unknown {self.abstained}, "
            f"grouped {self.grouped}, rate-limited {self.rate_limited}, spam {self.spam}, ignored {self.ignored}, "
            f"muted {self.muted}, send errors {self.send_errors}; reply latency p50 {p50 * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms"
        )


@dataclass
class Room:
    room_id: str
    state: LiveState
    limiter: RateLimiter
    groups: Groups
    users: Recent[str]
    answered_questions: Recent[str]
    muted_until: float = 0.0
    """Local monotonic-free wall time (seconds) until which the assistant is muted."""
    ended: bool = False


class Assistant:
    """Runs the assistant in rooms until it is stopped, banned or the rooms close."""

    def __init__(
        self,
        target: str,
        token: TokenSource,
        rooms: Sequence[str],
        answerer: Answerer,
        *,
        settings: Settings | None = None,
        phraser: Phraser | None = None,
        client_options: ClientOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not rooms:
            raise ValueError("at least one room")
        self.target = target
        self.settings = settings or Settings()
        self.answerer = answerer
        self.phraser = phraser
        self.stats = Stats()
        self.client = Client(target, token, options=client_options)
        self.room_ids = list(dict.fromkeys(rooms))
        self.rooms: dict[str, Room] = {}
        self.user_id = ""
        self._clock = clock
        self._server_offset = 0.0
        self._total = RateLimiter(self.settings.total_rate_per_s, self.settings.total_burst)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()
        """Replies handed to the stream, waiting for their acknowledgement."""
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        """Set once every room is joined and its state loaded."""

    # ------------------------------------------------------------------ public

    def stop(self) -> None:
        """End run(): replies still waiting to be sent are cancelled; those already sent
        get their acknowledgement (up to the send timeout), so the stats count them."""
        self._stopping.set()

    async def run(self) -> Stats:
        """Connect, join the rooms, answer until stopped or every room ended."""
        settings = self.settings
        try:
            welcome = await self.client.connect()
            self.user_id = welcome.user.user_id
            self._server_offset = welcome.server_time.ToMilliseconds() / 1000 - self._clock()
            for room_id in self.room_ids:
                sub = await self.client.join(room_id, history_limit=settings.history)
                self.rooms[room_id] = self._room(room_id, sub)
            self.ready.set()
            reader = asyncio.ensure_future(self._read())
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (reader, stopping):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]  # The connection failed for good.
        finally:
            for task in self._tasks - self._sending:
                task.cancel()
            if self._sending:
                await asyncio.wait(self._sending, timeout=settings.send_timeout_s)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.client.close()
            log.info("assistant stopped: %s", self.stats.summary())
        return self.stats

    # ----------------------------------------------------------------- events

    async def _read(self) -> None:
        async for item in self.client.events():
            self._handle(item)
            if all(room.ended for room in self.rooms.values()):
                return

    def _room(self, room_id: str, sub: Subscription) -> Room:
        state = LiveState()
        if sub.snapshot is not None:
            state.reset(sub.snapshot)
        settings = self.settings
        return Room(
            room_id=room_id,
            state=state,
            limiter=RateLimiter(settings.rate_per_s, settings.burst),
            groups=Groups(settings.window_s, settings.refresh_s),
            users=Recent(),
            answered_questions=Recent(),
        )

    def _now(self) -> float:
        """The server's clock, as best known (event publish times are the server's)."""
        return self._clock() + self._server_offset

    def _handle(self, item: object) -> None:
        if isinstance(item, SubscriptionEnded):
            room = self.rooms.get(item.room_id)
            if room is not None:
                room.ended = True
                log.info("room %s ended%s", item.room_id, f": {item.error}" if item.error else "")
            return
        if isinstance(item, ResumeGap):
            room = self.rooms.get(item.room_id)
            if room is not None:
                room.state.reset(item.snapshot)
            return
        if isinstance(item, Omitted) or not isinstance(item, event_pb2.Event):
            return
        room = self.rooms.get(item.room_id)
        if room is None or room.ended:
            return
        self._on_event(room, item)

    def _on_event(self, room: Room, event: event_pb2.Event) -> None:
        room.state.apply(event)
        kind = event.payload.WhichOneof("kind")
        if kind == "user_muted" and event.payload.user_muted.user_id == self.user_id:
            until = event.payload.user_muted.until.ToMilliseconds() / 1000
            room.muted_until = until if until > self._now() else 0.0
            log.warning("room %s: muted until %s", room.room_id, until)
        elif kind == "user_banned" and event.payload.user_banned.user_id == self.user_id:
            log.warning("room %s: banned; leaving", room.room_id)
            self._end(room)
        elif kind == "comment":
            self._on_comment(room, event)

    def _end(self, room: Room) -> None:
        room.ended = True
        self._spawn(self._leave(room.room_id))

    async def _leave(self, room_id: str) -> None:
        with contextlib.suppress(BarrageError):
            await asyncio.wait_for(self.client.leave(room_id), 5.0)

    def _on_comment(self, room: Room, event: event_pb2.Event) -> None:
        comment = event.payload.comment
        stats, settings = self.stats, self.settings
        if event.sender.user_id == self.user_id:
            if comment.reply_to_event_id:
                room.answered_questions.put(comment.reply_to_event_id, self._now())  # Our own earlier answer.
            return
        if event.sender.role not in settings.answer_roles:
            stats.ignored += 1  # Other bots, hosts, staff.
            return
        text = comment.text.strip()
        # An answerer that reads questions itself (the v2 answerer: requests and statements
        # that ask count) sees every viewer comment; it returns "ignore" for chatter.
        reads = getattr(self.answerer, "reads_questions", False)
        if not (comment.question or reads or looks_like_question(text)):
            stats.ignored += 1
            return
        stats.questions += 1
        now = self._now()
        if event.event_id in room.answered_questions:
            stats.ignored += 1
            return
        asked = event.publish_time.ToMilliseconds() / 1000 if event.HasField("publish_time") else now
        if now - asked > settings.max_question_age_s:
            stats.ignored += 1  # Replayed history or a long outage: the moment has passed.
            return
        if is_spam(text, settings.max_question_chars):
            stats.spam += 1
            return
        if now < room.muted_until:
            stats.muted += 1
            return
        last = room.users.get(event.sender.user_id)
        if last is not None and now - last < settings.user_interval_s:
            stats.spam += 1
            return
        answer = self.answerer.answer(text, room.state, int(now * 1000))
        if answer.outcome == "ignore" or not answer.text:
            stats.silent += 1
            return
        if not settings.private_replies and not room.groups.should_answer(answer.signature, answer.values, now):
            stats.grouped += 1
            return
        if len(self._tasks) >= settings.max_in_flight:
            stats.rate_limited += 1
            return
        gap = room.state.slow_mode_s
        delay = room.limiter.reserve(now, max_wait=settings.max_delay_s, min_gap=gap)
        if delay is None:
            stats.rate_limited += 1
            return
        total = self._total.reserve(now + delay, max_wait=settings.max_delay_s)
        if total is None:
            stats.rate_limited += 1
            return
        room.groups.record(answer.signature, answer.values, now)
        room.users.put(event.sender.user_id, now)
        room.answered_questions.put(event.event_id, now)
        self._spawn(self._reply(room, event, answer, delay + total))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- replies

    async def _reply(self, room: Room, event: event_pb2.Event, answer: Answer, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if room.ended or self._now() < room.muted_until:
            self.stats.muted += 1
            room.groups.forget(answer.signature)
            return
        text = answer.text
        if self.phraser is not None and answer.outcome == "answer":
            phrased = await self.phraser.phrase(answer)
            if phrased is not None:
                text = phrased
                self.stats.phrased += 1
        current = asyncio.current_task()
        assert current is not None
        self._sending.add(current)
        try:
            if self.settings.private_replies:
                # Only the asker (and this bot) receive it: docs/commerce.md, "Whispers".
                whisper = event_pb2.Whisper(
                    text=text, recipient_user_id=event.sender.user_id, reply_to_event_id=event.event_id
                )
                payload = event_pb2.Payload(whisper=whisper)
            else:
                reply = event_pb2.Comment(
                    text=text, reply_to_event_id=event.event_id, product_ids=list(answer.products)[:5]
                )
                payload = event_pb2.Payload(comment=reply)
            await self.client.send_payload(
                room.room_id,
                payload,
                client_msg_id=f"{MSG_ID_PREFIX}{event.event_id}",
                timeout_s=self.settings.send_timeout_s,
            )
        except SendError as error:
            self.stats.send_errors += 1
            room.groups.forget(answer.signature)
            self._refused(room, error)
            return
        except BarrageError as error:
            self.stats.send_errors += 1
            room.groups.forget(answer.signature)
            log.warning("room %s: reply failed: %s", room.room_id, error)
            return
        finally:
            self._sending.discard(current)
        if answer.outcome == "answer":
            self.stats.answered += 1
        else:
            self.stats.abstained += 1
        if event.HasField("publish_time"):
            self.stats.latencies_s.append(self._now() - event.publish_time.ToMilliseconds() / 1000)

    def _refused(self, room: Room, error: SendError) -> None:
        if error.reason == "MUTED":
            until_ms = error.metadata.get("until_ms", "")
            until = int(until_ms) / 1000 if until_ms.isdigit() else self._now() + self.settings.mute_fallback_s
            room.muted_until = max(room.muted_until, until)
            log.warning("room %s: muted (refused)", room.room_id)
        elif error.code == grpc.StatusCode.PERMISSION_DENIED or error.reason in ("ROOM_CLOSED", "NOT_JOINED"):
            log.warning("room %s: %s; leaving", room.room_id, error)
            self._end(room)
        else:
            log.warning("room %s: reply refused: %s", room.room_id, error)
