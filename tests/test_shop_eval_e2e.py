"""The evaluation shops end to end: a real server on loopback, the room's live state
published by a host service, the assistant (v2 answerer) as a bot, viewers asking every
question of a shop through their own streams; the replies are scored from their text
alone (shoplang/evaluation.py), as docs/assistant.md reports them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from barrage.v1 import event_pb2
from clients.admin import AdminClient
from clients.assistant.answerer_v2 import CatalogueAnswerer
from clients.assistant.catalog import Catalogue
from clients.assistant.settings import Settings
from clients.assistant.shop_eval import room_events
from shoplang.convert_v1 import catalogue_v1
from shoplang.evaluation import EvalShop, Score, load_shop, score_replies, summary
from tests.server_process import ServerProcess
from tests.test_assistant_e2e import Viewer, assistant

SHOPS = Path(__file__).resolve().parent.parent / "evals" / "shops"
SETTINGS = Settings(window_s=0.01, refresh_s=0.01, rate_per_s=8.0, burst=16, user_interval_s=0.0, max_delay_s=5.0)
"""Every question counts on its own: no grouping of repeated questions, no per-viewer spacing."""
ASK_INTERVAL_S = 0.15
VIEWERS = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("shops") / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def admin(server: ServerProcess) -> AsyncIterator[AdminClient]:
    async with AdminClient(server.target, server.token("shop", role="service")) as client:
        yield client


def _seen(viewer: Viewer, event_id: str) -> Callable[[], event_pb2.Event | None]:
    return lambda: next((e for e in viewer.events if e.event_id == event_id), None)


async def run_shop(server: ServerProcess, admin: AdminClient, shop: EvalShop) -> tuple[Score, list[float]]:
    room = f"shop-{shop.name}-{uuid.uuid4().hex[:8]}"
    await admin.create_room(room, title=shop.name)
    now_ms = int(time.time() * 1000)
    v1 = Catalogue.model_validate(catalogue_v1(shop.catalogue))
    for event in room_events(shop.questions.state, v1, now_ms):
        await admin.publish(room, event.payload)
    replies: dict[str, str] = {}
    latencies: list[float] = []
    async with assistant(server, room, CatalogueAnswerer(shop.catalogue), SETTINGS) as _bot:
        viewers = [Viewer(server, room, f"viewer-{i}") for i in range(VIEWERS)]
        for viewer in viewers:
            await viewer.__aenter__()
        try:
            asked: list[tuple[str, Viewer, str]] = []
            for i, question in enumerate(shop.questions.questions):
                viewer = viewers[i % VIEWERS]
                asked.append((question.id, viewer, await viewer.ask(question.q)))
                await asyncio.sleep(ASK_INTERVAL_S)
            for qid, viewer, event_id in asked:
                try:
                    reply = await viewer.reply(event_id, timeout=5.0)
                except TimeoutError:
                    continue
                replies[qid] = reply.payload.comment.text
                question_event = await viewer.wait(_seen(viewer, event_id))
                # Server clock both: the question accepted -> its reply accepted.
                latencies.append(
                    (reply.publish_time.ToMilliseconds() - question_event.publish_time.ToMilliseconds()) / 1000
                )
        finally:
            for viewer in viewers:
                await viewer.__aexit__(None, None, None)
    return score_replies(shop, replies, now_ms), latencies


@pytest.mark.parametrize("name", ["groceries", "electronics", "baby"])
async def test_every_question_of_a_shop_gets_a_grounded_reply_through_a_node(
    server: ServerProcess, admin: AdminClient, name: str
) -> None:
    shop = load_shop(SHOPS / name)
    score, latencies = await run_shop(server, admin, shop)
    figures = score.figures()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        summary(f"{name} (end to end)", score),
        f"; reply p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
    )
    assert p99 < 1.0
    assert figures["no_reply"] == 0, [v.question.q for v in score.verdicts if not v.replied]
    assert figures["invented_facts"] == 0
    if name != "baby":  # tuned on; baby is held out (its figure is measured, docs/assistant.md)
        assert figures["answerable_pct"] >= 90 and figures["declined_pct"] >= 90
        assert figures["wrong_product"] == 0
