"""Grouping viewers' questions, and noticing when the host or the assistant answered them.

A question (a viewer's comment the server flagged `question`) is put in a group by:
1. its product: the first product it names (AliasIndex), else the product on screen
   when it was asked ("这个多少钱" while the lipstick is pinned is about the lipstick);
2. its intent: the first known intent phrase in it (text.INTENTS: price, shipping,
   size, ...), so "多少钱", "这个多少钱？" and "how much is it" are one group
   `price@<product>`;
3. word similarity: a question whose intent group does not exist yet, or that has no
   known intent, first joins the group of the same product whose words are most like its
   own (overlap of content words — the shorter set's share the other holds — at or above
   the threshold, 0.5): "油皮能用不" (suitable) and "想知道油皮用这个闷不闷痘" (breathable)
   are one group; else it starts its intent's group, or a new group `q<n>@<product>`.
A group's signature is its first question's words, so membership never changes later.

Answers. A comment by the host (or a moderator) or by a bot answers:
- the group of the question it replies to (reply_to_event_id), or
- every group of the same product with a question since its last answer that the
  comment addresses: the same intent (answer cues count: "299元" answers price), or, for a
  similarity group, at least half of the group's words.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from barrage.server.insights.text import Analysis, overlap


@dataclass(slots=True)
class Answer:
    event_id: str
    role: int
    text: str
    at: int


@dataclass
class Group:
    group_id: str
    intent: str
    product_id: str
    topic: frozenset[str]
    times: list[int] = field(default_factory=list)
    """Time (ms) of every question, in log order (never decreasing: the fold keeps time monotonic)."""
    askers: set[str] = field(default_factory=set)
    askers_by_bucket: dict[int, set[str]] = field(default_factory=dict)
    example: tuple[str, str] = ("", "")
    """(text, event id) of the first question."""
    variants: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    @property
    def last_asked(self) -> int:
        return self.times[-1] if self.times else -1

    @property
    def last_answered(self) -> int:
        return self.answers[-1].at if self.answers else -1


MAX_VARIANTS = 4


@dataclass
class Questions:
    similarity: float = 0.5
    max_groups: int = 5000
    groups: dict[str, Group] = field(default_factory=dict)
    by_event: dict[str, str] = field(default_factory=dict)
    """Question event id -> group id (for replies)."""
    _similar: dict[str, list[Group]] = field(default_factory=lambda: defaultdict(list))
    """Product id -> its groups with words, oldest first."""
    _open: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Product id -> groups with a question after their last answer."""
    overflow: int = 0
    """Questions not grouped because the room reached max_groups."""

    def ask(
        self, event_id: str, asker: str, text: str, at: int, bucket: int, analysis: Analysis, product_id: str
    ) -> Group | None:
        group = self._group_for(analysis, product_id)
        if group is None:
            self.overflow += 1
            return None
        if not group.times:
            group.example = (text, event_id)
        elif len(group.variants) < MAX_VARIANTS and text != group.example[0] and text not in group.variants:
            group.variants.append(text)
        group.times.append(at)
        group.askers.add(asker)
        group.askers_by_bucket.setdefault(bucket, set()).add(asker)
        self.by_event[event_id] = group.group_id
        self._open[group.product_id].add(group.group_id)
        return group

    def _group_for(self, analysis: Analysis, product_id: str) -> Group | None:
        intent = analysis.intents[0] if analysis.intents else ""
        group_id = f"{intent}@{product_id}" if product_id else intent
        if intent and group_id in self.groups:
            return self.groups[group_id]
        best: Group | None = None
        best_score = 0.0
        for candidate in self._similar[product_id]:
            score = overlap(analysis.topic, candidate.topic)
            if score >= self.similarity and score > best_score:
                best, best_score = candidate, score
        if best is not None:
            return best
        if len(self.groups) >= self.max_groups:
            return None
        if not intent and not analysis.topic:
            # nothing to tell them apart ("？？", "在吗"): one group of the product
            group_id = f"q0@{product_id}" if product_id else "q0"
            if group_id in self.groups:
                return self.groups[group_id]
        elif not intent:
            n = sum(1 for g in self._similar[product_id] if not g.intent) + 1
            group_id = f"q{n}@{product_id}" if product_id else f"q{n}"
        group = self.groups[group_id] = Group(group_id, intent, product_id, analysis.topic)
        if analysis.topic:
            self._similar[product_id].append(group)
        return group

    def comment_by_staff(
        self, event_id: str, role: int, text: str, at: int, reply_to: str, analysis: Analysis, products: list[str]
    ) -> None:
        """A host, moderator or bot comment: does it answer questions?"""
        answer = Answer(event_id, role, text, at)
        if reply_to:
            group_id = self.by_event.get(reply_to)
            if group_id is not None:
                self._answered(self.groups[group_id], answer)
            return
        intents = set(analysis.intents)
        for product_id in products:
            for group_id in sorted(self._open.get(product_id, ())):
                group = self.groups[group_id]
                if group.intent:
                    addressed = group.intent in intents
                else:
                    shared = len(group.topic & analysis.topic)
                    addressed = bool(group.topic) and shared * 2 >= len(group.topic)
                if addressed:
                    self._answered(group, answer)

    def _answered(self, group: Group, answer: Answer) -> None:
        group.answers.append(answer)
        self._open[group.product_id].discard(group.group_id)
