"""The node's periodic room work: like bursts, poll tallies, deadlines, viewer counts.

Runs four times a second over the rooms this node watches. Everything it appends is
keyed so that several nodes doing the same work append it once (a poll's end, a
lottery's draw), or is harmless to repeat (tallies and counts: latest value wins).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from barrage.server.commerce import giveaways, lottery
from barrage.server.commerce.boards import Publisher
from barrage.server.commerce.state import RoomState, checkpoint_payload
from barrage.server.core.errors import ApiError
from barrage.v1 import event_pb2

if TYPE_CHECKING:
    from barrage.server.core.gateway import Gateway

log = logging.getLogger(__name__)

TICK_S = 0.25
TALLY_EVERY_S = 1.0
VIEWERS_EVERY_S = 2.0
VIEWERS_REFRESH_S = 4.0
"""Publish the node's viewer count at least this often, changed or not, so that the
room's total (which forgets nodes silent for 15 s) keeps counting this node."""


class RoomTicker:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._tallies: dict[str, tuple[float, list[int]]] = {}
        self._viewers: dict[str, tuple[float, int]] = {}
        self._coupons_seen: dict[str, tuple[float, int]] = {}
        """"room/batch" -> (when, claimed) of the last remaining count published."""
        self._boards = Publisher(gateway)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self.tick(time.time())
            except ApiError as err:
                if err.reason != "LOG_UNAVAILABLE":  # the log reports that once per episode
                    log.warning("room ticker: %s", err.message)
            except Exception:
                log.exception("room ticker failed")

    async def tick(self, now: float) -> None:
        gateway = self._gateway
        likes, gateway.likes = gateway.likes, {}
        # Forget rooms this node stopped watching and polls that closed.
        self._viewers = {room: seen for room, seen in self._viewers.items() if room in gateway.states}
        open_polls = {poll for state in gateway.states.values() for poll in state.polls}
        self._tallies = {poll: seen for poll, seen in self._tallies.items() if poll in open_polls}
        jobs: list[Awaitable[object]] = [self._like_burst(room_id, delta) for room_id, delta in likes.items()]
        self._boards.forget(set(gateway.states))
        for room_id, state in list(gateway.states.items()):
            if state.board.closed:
                continue  # room_closed is a room's last event: nothing more is published
            jobs.extend(self._room_jobs(room_id, state, now))
            jobs.extend(self._boards.room_jobs(room_id, state, int(now * 1000)))
        if jobs:
            await asyncio.gather(*jobs)

    async def _like_burst(self, room_id: str, delta: int) -> None:
        state = self._gateway.states.get(room_id)
        if state is not None and state.board.closed:
            return
        total = (state.like_total if state is not None else 0) + delta
        burst = event_pb2.Payload(like_burst=event_pb2.LikeBurst(delta=delta, total=total))
        await self._gateway.post_system(room_id, "like_burst", burst, f"likes:{time.time_ns()}")

    def _room_jobs(self, room_id: str, state: RoomState, now: float) -> list[Awaitable[object]]:
        gateway = self._gateway
        now_ms = int(now * 1000)
        jobs: list[Awaitable[object]] = []

        def system(kind: str, payload: event_pb2.Payload, key: str) -> None:
            jobs.append(gateway.post_system(room_id, kind, payload, key))

        for poll_id, poll in list(state.polls.items()):
            if poll.started.end_time.ToMilliseconds() <= now_ms:
                system(
                    "poll_ended",
                    event_pb2.Payload(poll_ended=event_pb2.PollEnded(poll_id=poll_id, counts=poll.counts)),
                    f"poll-end:{poll_id}",
                )
                continue
            last = self._tallies.get(poll_id)
            if (last is None or last[1] != poll.counts) and (last is None or now - last[0] >= TALLY_EVERY_S):
                self._tallies[poll_id] = (now, list(poll.counts))
                tally = event_pb2.PollTally(poll_id=poll_id, counts=poll.counts)
                system("poll_tally", event_pb2.Payload(poll_tally=tally), f"tally:{poll_id}:{now_ms}")
        for lottery_id, running in list(state.lotteries.items()):
            started = running.started
            if started.end_time.ToMilliseconds() > now_ms:
                continue
            seed = lottery.seed_for(gateway.interactions.lottery_secret, room_id, lottery_id)
            eligible = [u for u in running.entrants if u not in state.banned and not state.muted(u, now_ms)]
            entrants, winners = lottery.draw(seed, eligible, started.winners_count)
            drawn = event_pb2.LotteryDrawn(
                lottery_id=lottery_id, seed=seed.hex(), entrant_user_ids=entrants, winner_user_ids=winners
            )
            system("lottery_drawn", event_pb2.Payload(lottery_drawn=drawn), f"lottery-draw:{lottery_id}")
        sale = state.flash_sale
        if sale is not None and (sale.end_time.ToMilliseconds() <= now_ms or state.flash_stock <= 0):
            ended = event_pb2.FlashSaleEnded(
                sale_id=sale.sale_id, sold_out=state.flash_stock <= 0, sold=max(0, sale.stock - state.flash_stock)
            )
            system("flash_sale_ended", event_pb2.Payload(flash_sale_ended=ended), f"sale-end:{sale.sale_id}")
        jobs.extend(giveaways.ticker_jobs(gateway, room_id, state, now, self._coupons_seen))
        if state.since_checkpoint >= gateway.settings.checkpoint_every:
            state.since_checkpoint = 0
            checkpoint = checkpoint_payload(state.checkpoint(gateway.epoch(room_id)))
            system("room_checkpoint", checkpoint, f"checkpoint:{state.position}")
        local = len(gateway.members(room_id))
        published = self._viewers.get(room_id)
        # A room watched only for admin calls (no member here yet) has no audience to report.
        if published is None and not local:
            return jobs
        if published is None or (
            now - published[0] >= VIEWERS_EVERY_S and (published[1] != local or now - published[0] >= VIEWERS_REFRESH_S)
        ):
            self._viewers[room_id] = (now, local)
            others = sum(
                count for node, (count, at) in state.viewers_by_node.items()
                if node != gateway.node_id and now_ms - at <= 15_000
            )  # fmt: skip
            count = event_pb2.ViewerCount(viewers=others + local, node_id=gateway.node_id, node_viewers=local)
            system("viewer_count", event_pb2.Payload(viewer_count=count), f"viewers:{gateway.node_id}:{now_ms}")
        return jobs
