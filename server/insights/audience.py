"""Who is in the room: arrivals, departures, concurrency and retention, from presence events.

Facts come from the log's `viewer_joined` / `viewer_left` events (one per stream joining
or leaving) and `room_closed`. Rules, applied in log order so every rebuild is exact:

- A viewer is present while at least one of their streams is in the room.
- A *resumed* join of a viewer already present changes nothing: it is a reconnect whose
  old stream's leave was never recorded (its node died). A fresh join of a present
  viewer is a second stream (another device).
- A departure that is followed, within the merge window, by a join of the same viewer
  was a reconnect: the departure is undone (it never counts as a leave, and the return
  is not an arrival). Undoing is exact because every figure below is a sum of counters.
- room_closed ends every presence at its time, for good.

A presence is an interval [arrival, departure). Figures derived from the intervals:
- joins / leaves per bucket: arrivals and departures by the bucket of their time;
- concurrency: +1 at arrival, -1 at departure, kept per *slot* (1/60 of a bucket) in log
  order, so the viewers at a bucket's end are exact and so is the peak: the most viewers
  present at once, found by walking each slot's steps in order. A crowd that arrives and
  leaves within one slot (a one-bucket show closed the moment it filled) is a peak, not a
  net zero; departures just before arrivals in one slot are not counted twice;
- retention: cohort b = arrivals in bucket b; remaining[k] = the cohort's intervals still
  open at the end of bucket b+k. A closed interval ending at e survived
  floor(e / W) - b bucket ends (W = bucket width; "at the end" means just before the
  boundary), kept as a histogram per cohort; an open interval survives every end so far.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

SLOTS_PER_BUCKET = 60


@dataclass(slots=True)
class Viewer:
    streams: int = 0
    since: int = -1
    """Start of the open presence interval (ms), -1 when absent."""
    left_at: int = -1
    """End of the last closed interval while it may still be undone (ms), else -1."""
    left_since: int = -1
    """Start of that closed interval."""


@dataclass(frozen=True, slots=True)
class Presence:
    """What one presence event changed, for listeners such as the product funnel."""

    user_id: str
    arrived: bool
    """The viewer became present (an arrival, or an undone departure)."""


@dataclass
class Audience:
    bucket_ms: int
    merge_ms: int
    viewers: dict[str, Viewer] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)
    joins: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    leaves: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    slot_steps: dict[int, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    """(viewer, +1 or -1) per slot in log order: the peak inside a slot depends on the order."""
    _slot_shape: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Cache per slot of (net change, highest rise within it), dropped when its steps change."""
    open_by_cohort: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    survived: dict[int, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    """cohort bucket -> bucket ends survived by a closed interval -> intervals."""
    closed_ms: int = 0
    """Total length of closed intervals."""
    open_since_sum: int = 0
    """Sum of the start times of open intervals (their total length is n * now - this)."""
    intervals: dict[int, list[tuple[str, int, int]]] = field(default_factory=lambda: defaultdict(list))
    """Not used for figures: closed (user, start, end) by end bucket, for windowed queries."""

    def bucket(self, ms: int) -> int:
        return ms // self.bucket_ms

    def slot(self, ms: int) -> int:
        return ms * SLOTS_PER_BUCKET // self.bucket_ms

    def _ends_survived(self, start: int, end: int) -> int:
        return max(0, end // self.bucket_ms - self.bucket(start))

    def joined(self, user_id: str, at: int, resumed: bool) -> Presence | None:
        viewer = self.viewers.get(user_id)
        if viewer is None:
            viewer = self.viewers[user_id] = Viewer()
        if viewer.streams > 0:
            if not resumed:
                viewer.streams += 1
            return None
        viewer.streams = 1
        if viewer.left_at >= 0 and at - viewer.left_at <= self.merge_ms:
            self._undo_leave(user_id, viewer)
        else:
            self._open(user_id, viewer, at)
        return Presence(user_id, arrived=True)

    def left(self, user_id: str, at: int) -> Presence | None:
        viewer = self.viewers.get(user_id)
        if viewer is None or viewer.streams == 0:
            return None
        viewer.streams -= 1
        if viewer.streams > 0:
            return None
        self._close(user_id, viewer, at, final=False)
        return Presence(user_id, arrived=False)

    def room_closed(self, at: int) -> list[Presence]:
        """Every presence ends now, for good."""
        gone = []
        for user_id in sorted(self.present):
            viewer = self.viewers[user_id]
            viewer.streams = 0
            self._close(user_id, viewer, at, final=True)
            gone.append(Presence(user_id, arrived=False))
        for viewer in self.viewers.values():
            viewer.left_at = -1
        return gone

    def _open(self, user_id: str, viewer: Viewer, at: int) -> None:
        viewer.since = at
        viewer.left_at = -1
        self.present.add(user_id)
        self.joins[self.bucket(at)] += 1
        self._step(at, user_id, 1)
        self.open_by_cohort[self.bucket(at)] += 1
        self.open_since_sum += at

    def _close(self, user_id: str, viewer: Viewer, at: int, final: bool) -> None:
        start = viewer.since
        at = max(at, start)  # clocks of two nodes may disagree by a little
        self.present.discard(user_id)
        self.leaves[self.bucket(at)] += 1
        self._step(at, user_id, -1)
        cohort = self.bucket(start)
        self.open_by_cohort[cohort] -= 1
        self.survived[cohort][self._ends_survived(start, at)] += 1
        self.open_since_sum -= start
        self.closed_ms += at - start
        self.intervals[self.bucket(at)].append((user_id, start, at))
        viewer.since = -1
        viewer.left_at = -1 if final else at
        viewer.left_since = start

    def _step(self, at: int, user_id: str, step: int) -> None:
        self.slot_steps[self.slot(at)].append((user_id, step))
        self._slot_shape.pop(self.slot(at), None)

    def _shape(self, slot: int) -> tuple[int, int]:
        shape = self._slot_shape.get(slot)
        if shape is None:
            net = rise = 0
            for _, step in self.slot_steps[slot]:
                net += step
                rise = max(rise, net)
            shape = self._slot_shape[slot] = (net, rise)
        return shape

    def _undo_leave(self, user_id: str, viewer: Viewer) -> None:
        start, end = viewer.left_since, viewer.left_at
        self.leaves[self.bucket(end)] -= 1
        steps = self.slot_steps[self.slot(end)]
        # The departure being undone is the viewer's last one in its slot.
        del steps[len(steps) - 1 - steps[::-1].index((user_id, -1))]
        self._slot_shape.pop(self.slot(end), None)
        cohort = self.bucket(start)
        self.open_by_cohort[cohort] += 1
        self.survived[cohort][self._ends_survived(start, end)] -= 1
        self.open_since_sum += start
        self.closed_ms -= end - start
        self.intervals[self.bucket(end)].remove((user_id, start, end))
        viewer.since = start
        viewer.left_at = -1
        self.present.add(user_id)

    # ------------------------------------------------------------------ figures

    def concurrency(self, first_bucket: int, end_bucket: int, as_of: int) -> tuple[list[int], list[int], int, int]:
        """Viewers at each bucket's end (as_of for the current one), peak per bucket,
        overall peak and the time it was first reached, for buckets [first, end).

        Inside a slot the steps are walked in log order: the peak is the most present at once."""
        slots = sorted(s for s, steps in self.slot_steps.items() if steps)
        end_of: list[int] = []
        peaks: list[int] = []
        running = 0
        i = 0
        first_slot = first_bucket * SLOTS_PER_BUCKET
        while i < len(slots) and slots[i] < first_slot:
            running += self._shape(slots[i])[0]
            i += 1
        as_of_slot = self.slot(as_of)
        best, best_slot = running, first_slot
        for b in range(first_bucket, end_bucket):
            peak = running
            limit = (b + 1) * SLOTS_PER_BUCKET
            while i < len(slots) and slots[i] < limit and slots[i] <= as_of_slot:
                net, rise = self._shape(slots[i])
                peak = max(peak, running + rise)
                if running + rise > best:
                    best, best_slot = running + rise, slots[i]
                running += net
                i += 1
            end_of.append(running)
            peaks.append(peak)
        peak_ms = -(-best_slot * self.bucket_ms // SLOTS_PER_BUCKET)
        return end_of, peaks, best, peak_ms

    def retention(
        self, first_bucket: int, end_bucket: int, as_of: int, closed: bool
    ) -> list[tuple[int, int, list[int]]]:
        """(cohort bucket, arrivals, remaining per bucket end up to as_of) for cohorts in [first, end).

        Bucket ends reached so far: the end of bucket cohort + k is (cohort + k + 1) * W <= as_of.
        In a closed room every interval is closed: the end of the closing bucket is known too."""
        out = []
        for cohort in range(first_bucket, end_bucket):
            hist = self.survived.get(cohort, {})
            opened = self.open_by_cohort.get(cohort, 0)
            arrivals = opened + sum(hist.values())
            if arrivals <= 0:
                continue
            known = max(0, as_of // self.bucket_ms - cohort + (1 if closed else 0))
            remaining = []
            tail = sum(hist.values())
            for k in range(known):
                tail -= hist.get(k, 0)
                remaining.append(opened + tail)
            out.append((cohort, arrivals, remaining))
        return out

    def watch_ms(self, start_ms: int, end_ms: int, as_of: int, whole: bool) -> tuple[int, int]:
        """Total presence time within [start, min(end, as_of)) and distinct viewers present then
        (whole: the window covers the whole show, answered from running sums)."""
        if whole:
            return self.closed_ms + len(self.present) * as_of - self.open_since_sum, len(self.viewers)
        stop = min(end_ms, as_of)
        total = 0
        users: set[str] = set()
        for bucket, closed in self.intervals.items():
            if (bucket + 1) * self.bucket_ms <= start_ms:
                continue
            for user_id, since, until in closed:
                overlap = min(until, stop) - max(since, start_ms)
                if overlap > 0 or (since < stop and until > start_ms):
                    total += max(0, overlap)
                    users.add(user_id)
        for user_id in self.present:
            since = self.viewers[user_id].since
            if since < stop:
                total += max(0, stop - max(since, start_ms))
                users.add(user_id)
        return total, len(users)
