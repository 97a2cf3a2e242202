"""Politeness in a busy room: what to answer, and how often.

- `looks_like_question` and `is_spam` decide whether a comment is for the assistant;
- `RateLimiter` (GCRA) keeps the room's answers under a rate, with a burst, and honours
  slow mode;
- `Groups` answers each group of repeated questions once per window (again inside the
  window only when the answer's facts changed, and not more often than `refresh_s`);
- `Recent` remembers per-user and per-question times in bounded space.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from barrage.clients.assistant import lexicon
from barrage.clients.assistant.text import Phrase, Query, normalize

_SPAM = [re.compile(pattern) for pattern in lexicon.SPAM]
_ASK = [Phrase.of(word) for word in lexicon.ASK_WORDS]
_REQUEST = [Phrase.of(word) for word in lexicon.INTENTS["recommend"]]
_LETTERS = re.compile(r"[a-z\u3400-\u9fff]", re.IGNORECASE)
_REPEAT = re.compile(r"(.)\1{7,}")


def looks_like_question(text: str) -> bool:
    """A question mark, a question word, or a request ("推荐一个适合干皮的")."""
    if re.search(r"[?？]", text):
        return True
    query = Query.of(text)
    return any(phrase.found_in(query) for phrase in _ASK) or any(phrase.found_in(query) for phrase in _REQUEST)


def is_spam(text: str, max_chars: int = 200) -> bool:
    """Links, contact swapping, promotion, walls of text or of one repeated character."""
    norm = normalize(text)
    if len(norm) > max_chars or not _LETTERS.search(norm) or _REPEAT.search(norm):
        return True
    return any(pattern.search(norm) for pattern in _SPAM)


class RateLimiter:
    """Generic cell rate algorithm: `rate` sends a second with bursts of `burst`.

    `reserve(now)` books the earliest allowed send time; the caller waits until then, or
    drops the answer when that is too late to be useful.
    """

    def __init__(self, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate and burst must be positive")
        self.interval = 1.0 / rate_per_s
        self.burst = burst
        self._tat = 0.0
        """Theoretical arrival time of the next send."""
        self._last = -1e18

    def reserve(self, now: float, *, max_wait: float, min_gap: float = 0.0) -> float | None:
        """Book a send: the delay to wait before it (0: now), or None if over max_wait.

        `min_gap`: at least this long after the previous booked send (slow mode)."""
        tolerance = self.interval * (self.burst - 1)
        allowed = max(now, self._tat - tolerance, self._last + min_gap)
        if allowed - now > max_wait:
            return None
        self._tat = max(self._tat, allowed) + self.interval
        self._last = allowed
        return allowed - now


K = TypeVar("K", bound=Hashable)


class Recent(Generic[K]):
    """A bounded map from key to the time it was last seen (oldest forgotten first)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._seen: OrderedDict[K, float] = OrderedDict()
        self._max = max_entries

    def get(self, key: K) -> float | None:
        return self._seen.get(key)

    def put(self, key: K, when: float) -> None:
        self._seen[key] = when
        self._seen.move_to_end(key)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def forget(self, key: K) -> None:
        self._seen.pop(key, None)

    def __contains__(self, key: K) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(slots=True)
class _Answered:
    at: float
    values: tuple[str, ...]


class Groups:
    """Repeated questions ("多少钱" × 200) are answered once per window.

    A group is the answer's signature (language, outcome, which facts about which
    products). Inside the window it is answered again only if the facts' values changed
    (a new price, less stock) and `refresh_s` has passed since its last answer.
    """

    def __init__(self, window_s: float, refresh_s: float, max_entries: int = 4096) -> None:
        self.window_s = window_s
        self.refresh_s = refresh_s
        self._answered: OrderedDict[tuple[object, ...], _Answered] = OrderedDict()
        self._max = max_entries

    def should_answer(self, signature: tuple[object, ...], values: tuple[str, ...], now: float) -> bool:
        last = self._answered.get(signature)
        if last is None or now - last.at >= self.window_s:
            return True
        return values != last.values and now - last.at >= self.refresh_s

    def record(self, signature: tuple[object, ...], values: tuple[str, ...], now: float) -> None:
        self._answered[signature] = _Answered(now, values)
        self._answered.move_to_end(signature)
        while len(self._answered) > self._max:
            self._answered.popitem(last=False)

    def forget(self, signature: tuple[object, ...]) -> None:
        self._answered.pop(signature, None)
