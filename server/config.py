"""Server settings: defaults, then BARRAGE_* environment variables, then CLI flags."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from barrage.server.auth import TokenVerifier

DEV_SECRET = "barrage-dev-secret-for-local-use-only"
"""Used when no key is configured, so `barrage serve` and `barrage token` work out of
the box on loopback. The server refuses it on any other address."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BARRAGE_", extra="forbid")

    listen: str = Field("127.0.0.1:50051", description="gRPC listen address HOST:PORT")
    log: str = Field("embedded:./data", description="room log URL: embedded:DIR or kafka://HOST:PORT[,...]/TOPIC")
    node_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    workers: int = Field(1, ge=1, description="gateway processes on one port (SO_REUSEPORT); needs the Kafka log")
    reuse_port: bool = Field(False, description="share the port with other processes (set for --workers children)")
    # Browsers (server/transport/web.py, docs/web.md): the room stream over WebSocket and
    # the unary RPCs over the Connect protocol, on one HTTP port.
    web_listen: str | None = Field(None, description="serve WebSocket and Connect (browsers) on HOST:PORT")
    web_allowed_origins: str | None = Field(
        None, description="comma-separated browser origins allowed on --web-listen, or *; default same-origin only"
    )

    jwt_secret: str | None = Field(None, description="HS256 secret for development tokens")
    jwt_public_key: str | None = Field(None, description="PEM file with the identity provider's public key")
    jwt_jwks_url: str | None = Field(None, description="JWKS URL of the identity provider")
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    batch_interval_ms: float = Field(25.0, ge=0, description="per-room coalescing window when a room is busy")
    write_budget_per_s: float = Field(
        10_000.0, gt=0, description="stream writes a second the node aims for; busy rooms batch longer beyond it"
    )
    max_frame_bytes: int = Field(256 * 1024, ge=4096, description="largest ConnectResponse the server writes")
    outbox_max_bytes: int = Field(1024 * 1024, ge=16 * 1024, description="per-stream queued bytes before shedding")
    recent_events_per_room: int = Field(2048, ge=16, description="live events kept per room for joins and resumes")

    viewer_budget_per_s: float = Field(30.0, gt=0, description="normal events a second a viewer is sent in hot rooms")
    word_filter: str | None = Field(None, description="file of blocked words, one per line")
    lottery_secret: str | None = Field(None, description="secret from which lottery seeds are derived (all nodes)")
    checkpoint_every: int = Field(
        5_000, ge=10, description="events between a room's state checkpoints (bounds a node's rebuild)"
    )
    big_gift_minor: int = Field(10_000, description="gift value (minor units) from which a gift is critical")
    boards: bool = Field(True, description="publish rooms' live leaderboards and audience lists")
    leaderboard_size: int = Field(20, ge=1, le=100, description="gifters in a room's leaderboard (1-100)")
    audience_size: int = Field(20, ge=1, le=100, description="people in a room's audience list (1-100)")
    audience_interval_ms: int = Field(
        3_000, ge=500, le=5_000, description="least time between two audience lists of a room (ms)"
    )
    audience_order: Literal["recent", "contributors"] = Field(
        "recent", description="audience list order: newest arrivals, or present gifters by rank first"
    )

    # Room insights (server/insights, docs/insights.md).
    insights: bool = Field(True, description="fold rooms into insights and serve RoomInsightsService")
    insights_bucket_s: float = Field(60.0, gt=0, description="width of an insights bucket (seconds)")
    insights_merge_s: float = Field(30.0, ge=0, description="a leave and rejoin within this is a reconnect")
    insights_poll_s: float = Field(0.5, gt=0, description="how often insights read new records of followed rooms")
    insights_follow_watched: bool = Field(
        False, description="fold every watched room continuously, not only rooms someone asks about"
    )
    insights_idle_s: float = Field(600.0, gt=0, description="forget a room's insights this long after the last ask")
    insights_aliases: str | None = Field(None, description="JSON file of product id -> aliases for insights")

    # The platform's moderation hook (barrage.v1.ModerationHookService; docs/commerce.md).
    moderation_hook: str | None = Field(None, description="HOST:PORT of the platform's ModerationHookService")
    moderation_hook_timeout_ms: float = Field(50.0, gt=0, le=10_000, description="deadline of one hook call")
    moderation_hook_failure: Literal["open", "closed"] = Field(
        "open", description="a slow, down or wrong hook: open appends unreviewed, closed refuses (UNAVAILABLE)"
    )
    moderation_hook_max_pending: int = Field(
        256, ge=1, description="hook calls in flight at once; beyond it content is handled as on a failure"
    )

    max_text_chars: int = 500
    sends_per_second: float = 10.0
    send_burst: int = 20
    user_sends_per_second: float | None = Field(None, description="per user on a node; default 1.5 x sends_per_second")
    user_send_burst: int | None = Field(None, description="default 1.5 x send_burst")
    max_history_limit: int = 200
    max_rooms_per_stream: int = 16
    max_pending_sends: int = 256

    # Stream bounds (docs/protocol.md, "Limits"): what one client can make a node hold.
    frames_per_second: float = Field(
        50.0, gt=0, description="client frames a second one stream may send (any kind); at least 2 x sends_per_second"
    )
    frame_burst: int = Field(100, ge=1, description="frames a stream may send at once; at least 2 x send_burst")
    stream_errors_per_second: float = Field(
        5.0, gt=0, description="refused frames a second a stream may cause before it is ended"
    )
    stream_error_burst: int = Field(100, ge=1, description="refused frames in a row a stream may cause at once")
    stalled_stream_s: float = Field(
        30.0, gt=0, description="a stream whose unread answers stay above outbox_max_bytes this long is ended"
    )
    max_streams: int = Field(20_000, ge=1, description="open streams on this node")
    max_streams_per_user: int = Field(
        20, ge=1, description="open streams of one user on this node (service tokens: only the node's limit)"
    )

    shutdown_grace_s: float = Field(5.0, description="time between GoAway and closing streams")
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="after the grace, time to close the log; then the process exits regardless"
    )
    log_level: str = "INFO"
    log_format: str = Field("text", description="log lines as text or json (both carry trace and span ids)")

    # Telemetry (server/telemetry, docs/observability.md); OTEL_* variables work as usual too.
    trace_file: str | None = Field(None, description="write spans to this file as OTLP JSON lines (no collector)")
    metrics_listen: str | None = Field(None, description="serve Prometheus metrics on HOST:PORT (/metrics)")
    delivery_trace_ratio: float = Field(
        0.01, ge=0, le=1, description="share of per-subscriber writes that get a span (when tracing)"
    )

    def token_verifier(self) -> TokenVerifier:
        return TokenVerifier(
            secret=DEV_SECRET if self.uses_dev_secret() else self.jwt_secret,
            public_key_path=self.jwt_public_key,
            jwks_url=self.jwt_jwks_url,
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
        )

    def user_rate(self) -> tuple[float, float]:
        """(rate, burst) of the per-user budget shared by a user's streams on one node."""
        rate = self.user_sends_per_second or 1.5 * self.sends_per_second
        burst = self.user_send_burst or int(1.5 * self.send_burst)
        return rate, float(burst)

    def lottery_secret_bytes(self) -> bytes:
        """Every node of a cluster must derive the same seeds: falls back to the token secret."""
        secret = self.lottery_secret or self.jwt_secret or DEV_SECRET
        return secret.encode()

    def uses_dev_secret(self) -> bool:
        """True when tokens are checked with the built-in development secret, whether by
        default or because it was given as the secret (flag, environment or settings):
        anyone can mint tokens with it, so the node refuses it off loopback."""
        if self.jwt_secret is not None and self.jwt_secret.strip() == DEV_SECRET:
            return True
        return not (self.jwt_secret or self.jwt_public_key or self.jwt_jwks_url)
