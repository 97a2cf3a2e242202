"""What a post becomes, given the room's state: checks that need the room, server-set
fields, and the dedupe keys that make "one per user" hold across nodes.

A post turns into zero or more log entries (a comment carrying a lottery keyword also
enters its author; likes are counted, not logged). "One vote per user" and "one entry
per user" are checked against the folded state for a clear answer, and also enforced
by the log's dedupe key (poll/lottery id + user), which holds when two nodes accept
the same user's vote at the same moment.
"""

from __future__ import annotations

import re

from barrage.server.auth import Identity
from barrage.server.commerce import giveaways, lottery
from barrage.server.commerce.state import RoomState
from barrage.server.commerce.wordfilter import WordFilter
from barrage.server.core import dedupe_keys, policy, whisper
from barrage.server.core.errors import ApiError, Code, invalid
from barrage.server.core.posts import Entry
from barrage.v1 import event_pb2

_QUESTION = re.compile(
    r"[?？]\s*$|吗|怎么|多少|什么|哪|几|为什么|\b(how|what|which|when|where|why|who|is there|can i|do you)\b"
)


def is_question(text: str) -> bool:
    return bool(_QUESTION.search(text.lower()))


class Interactions:
    def __init__(self, *, word_filter: WordFilter, lottery_secret: bytes, big_gift_minor: int) -> None:
        self._words = word_filter
        self.lottery_secret = lottery_secret
        self._big_gift_minor = big_gift_minor

    def prepare(
        self, state: RoomState | None, who: Identity, room_id: str, kind: str, payload: event_pb2.Payload, key: str,
        now_ms: int, standing: str = policy.S_VIEWER,
    ) -> list[Entry]:  # fmt: skip
        """Entries for one validated post (kind already checked by policy)."""
        user = who.user_id
        own_key = dedupe_keys.user_key(user, key)
        # Services are never held back by a ban or mute (one issued before the room
        # knew the user as a service does not count).
        if state is not None and standing != policy.S_SERVICE:
            if user in state.banned:
                raise ApiError(Code.PERMISSION_DENIED, "BANNED", "you are banned from this room")
            until = state.muted(user, now_ms)
            if until and kind in ("comment", "lottery_entry", "poll_vote"):
                raise ApiError(
                    Code.PERMISSION_DENIED, "MUTED", "you are muted in this room", metadata={"until_ms": str(until)}
                )
        priority = policy.PRIORITY[kind]
        if kind == "comment":
            return self._comment(state, who, payload, own_key, now_ms, standing)
        if kind in giveaways.POSTED_KINDS:
            secret = self.lottery_secret
            return [giveaways.prepare(state, who, room_id, kind, payload, own_key, now_ms, standing, secret)]
        if kind == "gift":
            gift = payload.gift
            if gift.count * gift.unit_value.amount_minor >= self._big_gift_minor:
                priority = policy.CRITICAL
        elif kind == "lottery_started":
            started = payload.lottery_started
            if started.end_time.ToMilliseconds() <= now_ms:
                raise invalid("INVALID_FIELD", "end_time must be in the future", "payload.lottery_started.end_time")
            payload = event_pb2.Payload()
            payload.lottery_started.CopyFrom(started)
            seed = lottery.seed_for(self.lottery_secret, room_id, started.lottery_id)
            payload.lottery_started.commitment = lottery.commitment(seed)
            own_key = dedupe_keys.server_key("lottery-start", started.lottery_id)
        elif kind == "lottery_entry":
            lottery_id = payload.lottery_entry.lottery_id
            self._check_lottery_open(state, lottery_id, user, now_ms)
            own_key = dedupe_keys.server_key("lottery", lottery_id, user)
        elif kind == "poll_started":
            started_poll = payload.poll_started
            if started_poll.end_time.ToMilliseconds() <= now_ms:
                raise invalid("INVALID_FIELD", "end_time must be in the future", "payload.poll_started.end_time")
            own_key = dedupe_keys.server_key("poll-start", started_poll.poll_id)
        elif kind == "poll_vote":
            vote = payload.poll_vote
            poll = state.polls.get(vote.poll_id) if state is not None else None
            if poll is None or poll.started.end_time.ToMilliseconds() <= now_ms:
                raise ApiError(Code.FAILED_PRECONDITION, "NOT_OPEN", f"no open poll {vote.poll_id!r}")
            if vote.option >= len(poll.started.options):
                raise invalid("INVALID_FIELD", "no such option", "payload.poll_vote.option")
            if user in poll.voters:
                raise ApiError(Code.ALREADY_EXISTS, "ALREADY_DONE", "you already voted in this poll")
            own_key = dedupe_keys.server_key("poll", vote.poll_id, user)
        return [Entry(payload, priority, own_key)]

    def _comment(
        self, state: RoomState | None, who: Identity, payload: event_pb2.Payload, key: str, now_ms: int, standing: str
    ) -> list[Entry]:
        text = payload.comment.text
        blocked = self._words.find(text)
        if blocked is not None:
            raise invalid("TEXT_BLOCKED", "the comment contains a blocked word", "payload.comment.text")
        user = who.user_id
        if state is not None and state.slow_mode_ms and standing in (policy.S_VIEWER, policy.S_BOT):
            wait_ms = state.last_comment_ms.get(user, 0) + state.slow_mode_ms - now_ms
            if wait_ms > 0:
                raise ApiError(
                    Code.RESOURCE_EXHAUSTED, "SLOW_MODE", "slow mode: wait before commenting again",
                    retry_after_s=wait_ms / 1000,
                )  # fmt: skip
            # Count this comment now, so a burst through one node is refused at once.
            state.last_comment_ms[user] = now_ms
        payload = event_pb2.Payload(comment=payload.comment)
        payload.comment.question = is_question(text)
        entries = [Entry(payload, policy.NORMAL, key)]
        if state is not None:
            for lottery_id, open_lottery in state.lotteries.items():
                keyword = open_lottery.started.keyword
                if keyword and keyword.casefold() in text.casefold():
                    try:
                        self._check_lottery_open(state, lottery_id, user, now_ms)
                    except ApiError:
                        continue
                    entry = event_pb2.Payload(lottery_entry=event_pb2.LotteryEntry(lottery_id=lottery_id))
                    entries.append(Entry(entry, policy.NORMAL, dedupe_keys.server_key("lottery", lottery_id, user)))
        return entries

    @staticmethod
    def check_authority(
        state: RoomState, owner_user_id: str, standing: str, who: Identity, kind: str, payload: event_pb2.Payload
    ) -> None:
        """Room authority beyond the kind table: moderation acts only on lower ranks
        (nobody below the owner on the owner, no moderator on another, nobody on a
        service), and a room's moderators are bounded."""

        def rank_of(user_id: str) -> str:
            moderators = state.moderators | state.platform_moderators
            return policy.target_standing(user_id, owner_user_id, moderators, state.services)

        if kind in ("user_muted", "user_banned"):
            policy.require_outranks(standing, rank_of(getattr(payload, kind).user_id))
        elif kind == "message_deleted":
            author = state.staff_messages.get(payload.message_deleted.event_id)
            if author is not None and author != who.user_id:
                policy.require_outranks(standing, rank_of(author))
        elif kind == "whisper":
            whisper.check_post(who, standing, payload.whisper)
        elif kind == "moderator_appointed":
            appointed = payload.moderator_appointed.user_id
            if appointed not in state.moderators and len(state.moderators) >= policy.MAX_MODERATORS:
                raise ApiError(
                    Code.RESOURCE_EXHAUSTED,
                    "TOO_MANY_MODERATORS",
                    f"a room has at most {policy.MAX_MODERATORS} moderators",
                )

    @staticmethod
    def _check_lottery_open(state: RoomState | None, lottery_id: str, user: str, now_ms: int) -> None:
        open_lottery = state.lotteries.get(lottery_id) if state is not None else None
        if open_lottery is None or open_lottery.started.end_time.ToMilliseconds() <= now_ms:
            raise ApiError(Code.FAILED_PRECONDITION, "NOT_OPEN", f"no open lottery {lottery_id!r}")
        if user in open_lottery.entrants:
            raise ApiError(Code.ALREADY_EXISTS, "ALREADY_DONE", "you already entered this lottery")
