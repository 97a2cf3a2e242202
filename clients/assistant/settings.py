"""The assistant's behaviour in a room (a light module: the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from barrage.v1 import event_pb2


@dataclass(frozen=True)
class Settings:
    window_s: float = 30.0
    """A group of repeated questions is answered once per window."""
    refresh_s: float = 5.0
    """...and again inside it only when its facts changed, at most this often."""
    rate_per_s: float = 2.0
    """Answers per second per room (the server allows a stream 10/s, bursts of 20)."""
    burst: int = 5
    total_rate_per_s: float = 8.0
    """Answers per second over all rooms of the stream."""
    total_burst: int = 16
    max_delay_s: float = 2.0
    """An answer that the rate limit would hold longer than this is dropped."""
    user_interval_s: float = 5.0
    """One viewer gets at most one answer per this interval (floods, spam)."""
    max_question_age_s: float = 15.0
    """Older questions (history replayed on join, a long reconnect) are not answered."""
    max_question_chars: int = 200
    answer_roles: frozenset[int] = frozenset({event_pb2.ROLE_VIEWER})
    """Whose questions are answered (viewers; not hosts, staff or bots)."""
    history: int = 200
    """Events replayed on a fresh join, to learn recent live prices and stock."""
    max_in_flight: int = 64
    """Answers being sent at once; more questions than this are dropped."""
    send_timeout_s: float = 10.0
    mute_fallback_s: float = 60.0
    """How long to stay quiet after a MUTED refusal that carries no end time."""
    private_replies: bool = False
    """Answer the asker alone, with a whisper (reply_to_event_id: the question), instead of
    a threaded public comment. Repeated questions are then not grouped: each asker needs
    its own answer (the rate limits still hold)."""
