"""Client settings and the gRPC channel they imply."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider


@dataclass(frozen=True, slots=True)
class ClientOptions:
    client_agent: str = "barrage-python/0.1"
    """Sent in Hello, for the server's logs."""

    keepalive_s: float = 20.0
    """HTTP/2 ping interval. Mobile NATs forget idle mappings after ~30 s; the server
    accepts pings every 10 s or slower."""
    keepalive_timeout_s: float = 10.0
    """A ping unanswered this long declares the connection dead (and we reconnect)."""
    handshake_timeout_s: float = 10.0
    """From opening a stream to its Welcome; longer counts as a failed attempt."""
    go_away_grace_s: float = 10.0
    """After GoAway, how long to let the old stream finish before abandoning it."""

    backoff_base_s: float = 0.2
    backoff_max_s: float = 30.0
    stable_after_s: float = 2.0
    """A stream that lived this long after its Welcome resets the backoff; one that died
    sooner keeps widening it (a node that welcomes and then fails must not be hammered)."""

    send_timeout_s: float | None = 60.0
    """Default time send() waits for its ack, across reconnects. None: no limit."""
    join_timeout_s: float = 30.0
    """Time join() waits for the first JoinResult, across reconnects."""
    max_send_attempts: int = 8
    """Writes of one send after which a retryable refusal is raised, not retried."""
    retry_rate_limited: bool = True
    """Retry RATE_LIMITED sends after the server's RetryInfo delay (sends are paced to
    the advertised limits anyway, so this only covers clock skew and other streams)."""
    max_pending_sends: int = 256
    """Sends awaiting an ack at once; send() waits for a slot beyond that."""

    queue_size: int = 1000
    """Items buffered per subscription before the room is paused and later resumed."""
    dedupe_window: int = 4096
    """Event ids remembered per room to drop duplicates."""
    extra_channel_options: tuple[tuple[str, int | str], ...] = ()
    """More gRPC channel arguments, applied after (and overriding) the ones above."""

    tracer_provider: TracerProvider | None = None
    """OpenTelemetry tracer provider for send and receive spans (default: the global one)."""
    meter_provider: MeterProvider | None = None
    """OpenTelemetry meter provider for the receive latency histogram (default: the global one)."""

    def channel_options(self) -> list[tuple[str, int | str]]:
        options: list[tuple[str, int | str]] = [
            ("grpc.keepalive_time_ms", int(self.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            # Keep pinging a quiet stream: silence is exactly when a NAT drops us.
            ("grpc.http2.max_pings_without_data", 0),
            # The SDK owns reconnection (new channel per attempt, jittered backoff);
            # keep gRPC's own backoff short so it never adds a long hidden wait.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 5000),
            # Idempotent retries need the same client_msg_id, which only we know.
            ("grpc.enable_retries", 0),
        ]
        overridden = {name for name, _ in self.extra_channel_options}
        return [option for option in options if option[0] not in overridden] + list(self.extra_channel_options)


def open_channel(
    target: str, options: ClientOptions, credentials: grpc.ChannelCredentials | None = None
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options.channel_options())
    return grpc.aio.secure_channel(target, credentials, options=options.channel_options())
