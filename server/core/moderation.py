"""The platform's moderation hook, as the ingest path sees it (docs/commerce.md, "Moderation hook").

Which posts are reviewed, what the request carries, how a verdict changes the post,
and what a failed review means (the failure policy). The call itself is the
transport's (server/transport/moderation_hook.py): it answers a ReviewResponse or
raises HookFailure naming what went wrong; this module knows no gRPC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from barrage.server.auth import Identity
from barrage.server.core import observer, policy
from barrage.server.core import text as text_rules
from barrage.server.core.errors import ApiError, Code
from barrage.v1 import event_pb2
from barrage.v1 import moderation_hook_pb2 as mh

REVIEWED_KINDS = frozenset({"comment"})
"""Payload kinds that carry user content a participant writes. Other kinds a viewer or
bot may post (like, lottery_entry, poll_vote) carry no text; staff kinds are skipped."""
REVIEWED_STANDINGS = frozenset({policy.S_VIEWER, policy.S_BOT})
"""Standings whose posts are reviewed: the room's staff (owner, moderators) and services
answer for their own posts and skip the hook."""
MAX_MESSAGE_CHARS = 200
_LABEL_CHARS = 64
_RETRY_AFTER_S = 1.0


class HookFailure(Exception):
    """The hook gave no usable answer. `outcome` names why, as counted in
    barrage.moderation_hook.calls: timeout, unavailable, error, overloaded,
    circuit_open (the transport's), invalid (an answer this module cannot apply)."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


class PostLike(Protocol):
    """A post as Gateway.post holds it (barrage.server.core.posts.Post)."""

    @property
    def key(self) -> str: ...

    @property
    def payload(self) -> event_pb2.Payload: ...


class Reviewer(Protocol):
    """The hook's client (server/transport/moderation_hook.py)."""

    async def review(self, request: mh.ReviewRequest) -> mh.ReviewResponse:
        """The hook's answer, or HookFailure."""
        ...

    async def close(self) -> None:
        """Release the channel."""
        ...


@dataclass(frozen=True, slots=True)
class Reviewed:
    """The outcome of a review for the post: its text was replaced, or not."""

    replaced_text: str | None = None


NOT_REPLACED = Reviewed()


class Moderation:
    """Applies the hook's verdicts to posts (Gateway.post calls `review`)."""

    def __init__(self, reviewer: Reviewer, *, fail_open: bool, max_text_chars: int) -> None:
        self.reviewer = reviewer
        self.fail_open = fail_open
        self._max_text_chars = max_text_chars

    @staticmethod
    def needs_review(where: str, kind: str) -> bool:
        return kind in REVIEWED_KINDS and where in REVIEWED_STANDINGS

    async def review_posts(
        self, who: Identity, room_id: str, where: str, posts: Sequence[PostLike], kinds: Mapping[int, str]
    ) -> tuple[dict[int, ApiError], dict[int, str]]:
        """Review the posts of one batch that need it, all at once (a batch of N comments
        waits for the slowest answer, not for N answers in a row). Returns the refused
        posts' errors and the replaced posts' new text, by index."""
        indexes = [i for i, kind in kinds.items() if self.needs_review(where, kind)]
        if not indexes:
            return {}, {}
        outcomes = await asyncio.gather(
            *(self.review(who, room_id, where, kinds[i], posts[i].payload, posts[i].key) for i in indexes),
            return_exceptions=True,
        )
        refused: dict[int, ApiError] = {}
        replaced: dict[int, str] = {}
        for i, outcome in zip(indexes, outcomes, strict=True):
            if isinstance(outcome, ApiError):
                refused[i] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            elif outcome.replaced_text is not None:
                replaced[i] = outcome.replaced_text
        return refused, replaced

    async def review(
        self, who: Identity, room_id: str, where: str, kind: str, payload: event_pb2.Payload, key: str
    ) -> Reviewed:
        """Ask the hook about a validated post. Allow: nothing changes. Replace: the
        payload's text is replaced in place. Reject: ApiError CONTENT_REJECTED. A failure:
        nothing changes (fail-open) or ApiError MODERATION_UNAVAILABLE (fail-closed)."""
        request = _request(who, room_id, where, kind, payload, key)
        started = time.perf_counter()
        try:
            answer = await self.reviewer.review(request)
            outcome, reviewed = self._apply(answer, payload)
        except HookFailure as failure:
            effect = "failed_open" if self.fail_open else "failed_closed"
            if observer.ON:
                observer.current.moderation_reviewed(failure.outcome, effect, time.perf_counter() - started)
            if self.fail_open:
                return NOT_REPLACED
            raise ApiError(
                Code.UNAVAILABLE,
                "MODERATION_UNAVAILABLE",
                f"content moderation is unavailable ({failure.outcome}); retry later",
                metadata={"outcome": failure.outcome},
                retry_after_s=_RETRY_AFTER_S,
            ) from None
        except ApiError:
            if observer.ON:
                observer.current.moderation_reviewed("reject", "rejected", time.perf_counter() - started)
            raise
        if observer.ON:
            observer.current.moderation_reviewed(outcome, _EFFECT[outcome], time.perf_counter() - started)
        return reviewed

    def _apply(self, answer: mh.ReviewResponse, payload: event_pb2.Payload) -> tuple[str, Reviewed]:
        verdict = answer.verdict
        if verdict == mh.REVIEW_VERDICT_ALLOW:
            return "allow", NOT_REPLACED
        if verdict == mh.REVIEW_VERDICT_REJECT:
            # Shown to the sender as it is: nothing that could break or disguise a layout.
            printable = "".join(ch for ch in answer.message if ch.isprintable())
            message = text_rules.normalize(printable)[:MAX_MESSAGE_CHARS] or "the platform refused this content"
            metadata = {"label": answer.label} if _is_label(answer.label) else None
            raise ApiError(Code.PERMISSION_DENIED, "CONTENT_REJECTED", message, metadata=metadata)
        if verdict == mh.REVIEW_VERDICT_REPLACE:
            replacement = text_rules.normalize(answer.replacement_text)
            comment = payload.comment
            # The replacement is stored as the user's text: it must pass the same checks.
            try:
                if replacement or not (comment.sticker_id or comment.HasField("image")):
                    policy.check_text(replacement, self._max_text_chars, "replacement_text")
            except ApiError as err:
                raise HookFailure("invalid", f"replacement_text refused: {err.message}") from None
            comment.text = replacement
            return "replace", Reviewed(replaced_text=replacement)
        raise HookFailure("invalid", f"unknown verdict {int(verdict)}")


_EFFECT = {"allow": "allowed", "replace": "replaced"}


def _is_label(label: str) -> bool:
    return 0 < len(label) <= _LABEL_CHARS and label.isascii() and label.isprintable()


def _request(
    who: Identity, room_id: str, where: str, kind: str, payload: event_pb2.Payload, key: str
) -> mh.ReviewRequest:
    comment = payload.comment
    request = mh.ReviewRequest(
        room_id=room_id,
        sender=who.sender(),
        standing=where,
        kind=kind,
        text=comment.text,
        sticker_id=comment.sticker_id,
        reply_to_event_id=comment.reply_to_event_id,
        mention_user_ids=comment.mention_user_ids,
        client_msg_id=key,
    )
    if comment.HasField("image"):
        request.image.CopyFrom(comment.image)
    return request
