"""One client stream's protocol state machine (see room_service.proto).

The transport feeds it raw request frames in order and writes whatever its outbox
yields; the session never touches gRPC. A fatal problem sets `fatal` and closes the
outbox: the transport then ends the stream with that status.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque

from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError

from barrage.server.auth import Identity, TokenVerifier
from barrage.server.core import observer, policy, wire
from barrage.server.core.errors import OK_STATUS, ApiError, Code, invalid, log_unavailable
from barrage.server.core.gateway import Gateway
from barrage.server.core.member import Member
from barrage.server.core.outbox import Outbox
from barrage.server.core.posts import Post, Posted, timestamp_now
from barrage.server.core.ratelimit import TokenBucket
from barrage.server.log.base import LogUnavailableError
from barrage.v1 import room_service_pb2 as rs

log = logging.getLogger(__name__)

_MAX_MALFORMED = 20
"""Undecodable frames tolerated on one stream before it is ended."""
_JOINS_PER_SECOND = 2.0
_JOIN_BURST = 20
_FLOOD_FACTOR = 10
"""A stream refused this many bursts' worth of frames in a row is ended."""


def _message(**kind: object) -> bytes:
    return wire.response_entry(rs.ServerMessage(**kind).SerializeToString())  # type: ignore[arg-type]


class Session:
    __slots__ = (
        "_bucket",
        "_errors",
        "_expiry",
        "_frames",
        "_gateway",
        "_join_bucket",
        "_malformed",
        "_refused_in_a_row",
        "_removed",
        "_sender",
        "_sends",
        "_sends_ready",
        "_settings",
        "_verifier",
        "fatal",
        "id",
        "identity",
        "members",
        "outbox",
        "peer",
    )

    def __init__(self, gateway: Gateway, verifier: TokenVerifier, peer: str = "") -> None:
        settings = gateway.settings
        self.id = uuid.uuid4().hex[:16]
        self.peer = peer
        self.outbox = Outbox(settings.outbox_max_bytes, settings.max_frame_bytes)
        self.identity: Identity | None = None
        self.members: dict[str, Member] = {}
        self.fatal: ApiError | None = None
        self._gateway = gateway
        self._verifier = verifier
        self._settings = settings
        self._bucket = TokenBucket(settings.sends_per_second, settings.send_burst)
        # Joins read the log: a separate, smaller budget so a join/leave storm cannot
        # cost more than sends do, without taking from the send budget.
        self._join_bucket = TokenBucket(_JOINS_PER_SECOND, _JOIN_BURST)
        self._refused_in_a_row = 0
        self._malformed = 0
        # Every frame after hello, of any kind, takes from _frames; every refusal that is
        # not a request's own result (an over-budget frame, a stream_error) takes from
        # _errors, and a stream that empties it is ended: what a stream can make the node
        # queue stays bounded however it floods (docs/protocol.md, "Limits").
        # A node configured for more sends (benchmarks, services) gets room for them.
        self._frames = TokenBucket(
            max(settings.frames_per_second, 2 * settings.sends_per_second),
            max(settings.frame_burst, 2 * settings.send_burst),
        )
        self._errors = TokenBucket(settings.stream_errors_per_second, settings.stream_error_burst)
        # Most viewers never send: the queue and its send loop come with the first send.
        self._sends: deque[rs.Send] | None = None
        self._sends_ready: asyncio.Event | None = None
        self._sender: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        """Ends the stream when its token expires (moved by each refresh)."""
        self._removed: dict[str, ApiError] = {}
        """Rooms the server removed this stream from (closed, or a ban), with the refusal
        a send to one gets: why, not NOT_JOINED."""

    # ------------------------------------------------------------- lifecycle

    def end(self, error: ApiError) -> None:
        """End the stream with an error status after what is already queued."""
        if self.fatal is None:
            self.fatal = error
            log.info("ending stream %s: %s", self.id, error.message)
        self.outbox.close()

    def close(self) -> None:
        """Release everything (the stream is gone)."""
        self.outbox.close()
        if self._expiry is not None:
            self._expiry.cancel()
        if self._sender is not None:
            self._sender.cancel()
        for member in self.members.values():
            self._gateway.unsubscribe(member)
        self.members.clear()

    def go_away(self, reason: str, delay_s: float) -> None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(delay_s * 1000))
        self.outbox.put_control(_message(go_away=rs.GoAway(reason=reason, reconnect_delay=delay)))

    # ---------------------------------------------------------------- frames

    async def on_frame(self, raw: bytes) -> None:
        """Handle one client frame. Expected errors are answered; bugs propagate."""
        try:
            request = rs.ConnectRequest.FromString(raw)
        except DecodeError as exc:
            self._malformed_frame(str(exc))
            return
        kind = request.WhichOneof("kind")
        if self.identity is None:
            if kind != "hello":
                self.end(ApiError(Code.FAILED_PRECONDITION, "HANDSHAKE_REQUIRED", "the first frame must be hello"))
                return
            self._hello(request.hello)
            return
        if not self._admit_frame(request, kind):
            return
        try:
            if kind == "send":
                self._send(request.send)
            elif kind == "join_room":
                await self._join(request.join_room)
            elif kind == "leave_room":
                self._leave(request.leave_room)
            elif kind == "ping":
                self.outbox.put_control(_message(pong=rs.Pong(nonce=request.ping.nonce, server_time=timestamp_now())))
            elif kind == "refresh_token":
                self._refresh(request.refresh_token.token)
            elif kind == "hello":
                # The stream keeps its first identity; a new token goes in refresh_token.
                raise ApiError(
                    Code.FAILED_PRECONDITION, "HANDSHAKE_REQUIRED", "hello was already received; use refresh_token"
                )
            else:
                raise invalid("INVALID_FIELD", "frame has no recognised request", "kind")
        except ApiError as err:
            self._stream_error(err)

    def _admit_frame(self, request: rs.ConnectRequest, kind: str | None) -> bool:
        """Take the frame from the stream's frame budget; refuse it (answered) when empty."""
        wait = self._frames.take()
        if not wait:
            return True
        error = ApiError(
            Code.RESOURCE_EXHAUSTED,
            "RATE_LIMITED",
            "too many frames on this stream; retry after the given delay",
            retry_after_s=wait,
        )
        if kind == "send":
            if self._count_error():
                self._send_result(request.send, error)  # exactly one result per send
        else:
            self._stream_error(error)
        return False

    def _count_error(self) -> bool:
        """Count one refusal; False (and the stream ends) once the stream has used them up."""
        if not self._errors.take():
            return True
        self.end(
            ApiError(
                Code.RESOURCE_EXHAUSTED,
                "STREAM_OVERLOADED",
                "the stream kept sending frames that were refused; reconnect and respect the limits",
            )
        )
        return False

    def _stream_error(self, error: ApiError) -> None:
        if self._count_error():
            self.outbox.put_control(_message(stream_error=rs.StreamError(status=error.to_status())))

    def _malformed_frame(self, detail: str) -> None:
        self._malformed += 1
        self._frames.take()  # undecodable frames cost budget like any other
        error = ApiError(
            Code.INVALID_ARGUMENT,
            "MALFORMED_FRAME",
            f"frame could not be decoded (bad protobuf or invalid UTF-8): {detail}",
        )
        if self.identity is None or self._malformed > _MAX_MALFORMED:
            self.end(error)
        else:
            self._stream_error(error)

    def _hello(self, hello: rs.Hello) -> None:
        try:
            identity = self._verifier.verify(hello.token)
        except ApiError as err:
            self.end(err)
            return
        if hello.user_id and hello.user_id != identity.user_id:
            self.end(ApiError(Code.PERMISSION_DENIED, "IDENTITY_MISMATCH", "hello.user_id is not the token's subject"))
            return
        self.identity = identity
        self._expire_at(identity.expires_at)
        settings = self._settings
        expire = timestamp_now()
        expire.FromSeconds(int(identity.expires_at))
        welcome = rs.Welcome(
            session_id=self.id,
            user=identity.sender(),
            server_time=timestamp_now(),
            node_id=self._gateway.node_id,
            limits=rs.Limits(
                max_text_chars=settings.max_text_chars,
                sends_per_second=settings.sends_per_second,
                send_burst=settings.send_burst,
                max_history_limit=settings.max_history_limit,
                max_rooms_per_stream=settings.max_rooms_per_stream,
                # Viewers may be sampled in hot rooms; other roles get every event (Member.full).
                normal_events_per_second=settings.viewer_budget_per_s if identity.role == policy.VIEWER else 0.0,
            ),
            token_expire_time=expire,
        )
        self.outbox.put_control(_message(welcome=welcome))

    def _refresh(self, token: str) -> None:
        """Replace the token. Refused (the old one stays) unless it is valid and names the
        same user with the same role: a refresh extends a stream, it never changes who
        holds it or what it may do (joins were checked against the first role)."""
        assert self.identity is not None
        identity = self._verifier.verify(token)
        if identity.user_id != self.identity.user_id:
            raise ApiError(Code.PERMISSION_DENIED, "IDENTITY_MISMATCH", "a refreshed token must be for the same user")
        if identity.role != self.identity.role:
            raise ApiError(
                Code.PERMISSION_DENIED,
                "IDENTITY_MISMATCH",
                "a refreshed token must have the same role; open a new stream for another role",
                metadata={"role": policy.role_name(identity.role)},
            )
        self.identity = identity
        self._expire_at(identity.expires_at)

    def _expire_at(self, expires_at: float) -> None:
        """End the stream with UNAUTHENTICATED (TOKEN_EXPIRED) when the token expires,
        unless a refresh moves the deadline first."""
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(0.0, expires_at - time.time())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._token_expired)

    def _token_expired(self) -> None:
        self.end(ApiError(Code.UNAUTHENTICATED, "TOKEN_EXPIRED", "the token expired; reconnect with a new one"))

    def _rate_limit(self, bucket: TokenBucket | None = None) -> None:
        wait = (bucket or self._bucket).take()
        if not wait:
            self._refused_in_a_row = 0
            return
        self._refused_in_a_row += 1
        error = ApiError(
            Code.RESOURCE_EXHAUSTED,
            "RATE_LIMITED",
            "rate limit exceeded; retry after the given delay",
            retry_after_s=wait,
        )
        if self._refused_in_a_row > _FLOOD_FACTOR * self._settings.send_burst:
            self.end(ApiError(Code.RESOURCE_EXHAUSTED, "RATE_LIMITED", "flood: the stream ignored rate limits"))
        raise error

    # ------------------------------------------------------------------ rooms

    async def _join(self, join: rs.JoinRoom) -> None:
        room_id = join.room_id
        try:
            self._rate_limit(self._join_bucket)
            policy.check_room_id(room_id)
            if room_id in self.members:
                raise ApiError(Code.FAILED_PRECONDITION, "ALREADY_JOINED", f"already joined {room_id!r}")
            if len(self.members) >= self._settings.max_rooms_per_stream:
                raise ApiError(Code.RESOURCE_EXHAUSTED, "TOO_MANY_ROOMS", "too many rooms joined on this stream")
            assert self.identity is not None
            member = Member(room_id, self.identity, self.outbox, self)
            self.members[room_id] = member
            try:
                result = await self._gateway.subscribe(member, join.resume_cursor, join.history_limit)
            except BaseException:
                self.members.pop(room_id, None)
                self._gateway.unsubscribe(member)
                raise
            self._removed.pop(room_id, None)
        except ApiError as err:
            result = rs.JoinResult(room_id=room_id, status=err.to_status())
        except LogUnavailableError as exc:
            result = rs.JoinResult(room_id=room_id, status=log_unavailable(exc, "the join").to_status())
        # The replay task starts at the next await: the result is queued before any event.
        self.outbox.put_control(_message(join_result=result))

    def _leave(self, leave: rs.LeaveRoom) -> None:
        member = self.members.pop(leave.room_id, None)
        if member is None:
            error = ApiError(Code.FAILED_PRECONDITION, "NOT_JOINED", f"not joined to {leave.room_id[:128]!r}")
            status = error.to_status()
        else:
            self._gateway.unsubscribe(member)
            self.outbox.drop_room(leave.room_id)
            status = OK_STATUS
        self.outbox.put_control(_message(leave_result=rs.LeaveResult(room_id=leave.room_id, status=status)))

    def removed_from_room(self, room_id: str) -> None:
        member = self.members.pop(room_id, None)
        if member is not None:
            # The gateway removes members for two reasons only: a ban (folded into the
            # room's state by now) or the room's closing.
            state = self._gateway.states.get(room_id)
            if state is not None and member.identity.user_id in state.banned:
                why = ApiError(Code.PERMISSION_DENIED, "BANNED", "you are banned from this room")
            else:
                why = ApiError(Code.FAILED_PRECONDITION, "ROOM_CLOSED", f"room {room_id[:128]!r} is closed")
            self._removed[room_id] = why
            self._gateway.unsubscribe(member)

    def room_lagged(self, room_id: str) -> None:
        member = self.members.pop(room_id, None)
        if member is None:
            return
        self._gateway.unsubscribe(member)
        self.outbox.drop_room(room_id)
        cursor = self.outbox.delivered.get(room_id, "")
        log.info("stream %s fell behind room %s; asking it to resume from %s", self.id, room_id, cursor)
        self.outbox.put_control(_message(resume_required=rs.ResumeRequired(room_id=room_id, cursor=cursor)))

    # ------------------------------------------------------------------ sends

    def _send(self, send: rs.Send) -> None:
        if observer.ON and self.identity is not None:
            observer.current.send_received(self.identity.user_id, send)
        try:
            self._rate_limit()
            # The user's budget across streams and the admin API: Gateway.post.
            policy.check_client_id(send.client_msg_id, "client_msg_id")
            if send.room_id not in self.members:
                raise self._removed.get(send.room_id) or ApiError(
                    Code.FAILED_PRECONDITION, "NOT_JOINED", "join the room before sending to it"
                )
            assert self.identity is not None
            if self.identity.expires_at < time.time():
                raise ApiError(Code.UNAUTHENTICATED, "TOKEN_EXPIRED", "token has expired; send refresh_token")
            if self._sends is not None and len(self._sends) >= self._settings.max_pending_sends:
                raise ApiError(Code.RESOURCE_EXHAUSTED, "RATE_LIMITED", "too many sends in flight", retry_after_s=0.1)
        except ApiError as err:
            self._send_result(send, err)
            return
        if self._sends is None or self._sends_ready is None:
            self._sends, self._sends_ready = deque(), asyncio.Event()
            self._sender = asyncio.create_task(self._send_loop(), name=f"sender:{self.id}")
        self._sends.append(send)
        self._sends_ready.set()

    def _send_result(self, send: rs.Send, outcome: Posted | ApiError) -> None:
        if observer.ON and self.identity is not None:
            observer.current.send_answered(self.identity.user_id, send, outcome)
        if isinstance(outcome, ApiError):
            result = rs.SendResult(room_id=send.room_id, client_msg_id=send.client_msg_id, status=outcome.to_status())
        else:
            result = rs.SendResult(
                room_id=send.room_id,
                client_msg_id=send.client_msg_id,
                status=OK_STATUS,
                cursor=outcome.cursor,
                event_id=outcome.event_id,
                duplicate=outcome.duplicate,
                claim_id=outcome.claim_id,
                grabbed=outcome.grabbed,
                replaced=outcome.replaced,
                replaced_text=outcome.replaced_text,
            )
        self.outbox.put_control(_message(send_result=result))

    async def _send_loop(self) -> None:
        try:
            await self._append_sends()
        except Exception:
            log.exception("send loop of stream %s failed", self.id)
            self.end(ApiError(Code.INTERNAL, "INTERNAL", "internal error while appending"))

    async def _append_sends(self) -> None:
        """Append queued sends, batched per room, one append in flight per stream.

        While an append waits for the log, further sends queue up and go out together
        in the next one: a busy stream gets bigger appends, not more of them.
        """
        queue, ready = self._sends, self._sends_ready
        assert queue is not None
        assert ready is not None
        while True:
            while not queue:
                ready.clear()
                await ready.wait()
            batch: dict[str, list[rs.Send]] = {}
            while queue:
                send = queue.popleft()
                batch.setdefault(send.room_id, []).append(send)
            for room_id, sends in batch.items():
                assert self.identity is not None
                posts = [Post(s.client_msg_id, s.payload, s.traceparent, s.tracestate) for s in sends]
                outcomes = await self._gateway.post(self.identity, room_id, posts)
                for send, outcome in zip(sends, outcomes, strict=True):
                    self._send_result(send, outcome)
