"""Reply latency of the v2 assistant in a busy room: the electronics shop's 66 questions at ~6.7/s
while 12 other viewers post chatter at ~5/s each (on demand, not in the test suite):

    .venv/bin/python evals/busy_room.py
"""

import asyncio
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from clients.admin import AdminClient
from clients.assistant.answerer_v2 import CatalogueAnswerer
from clients.assistant.catalog import Catalogue
from clients.assistant.shop_eval import room_events
from shoplang.convert_v1 import catalogue_v1
from shoplang.evaluation import load_shop, score_replies, summary
from tests.server_process import ServerProcess
from tests.test_assistant_e2e import Viewer, assistant
from tests.test_shop_eval_e2e import SETTINGS, SHOPS, _seen


async def main() -> None:
    proc = ServerProcess(Path(tempfile.mkdtemp(prefix="busy-room-")))
    proc.start()
    try:
        shop = load_shop(SHOPS / "electronics")
        async with AdminClient(proc.target, proc.token("shop", role="service")) as admin:
            room = "busy-" + uuid.uuid4().hex[:6]
            await admin.create_room(room, title="busy")
            now_ms = int(time.time() * 1000)
            v1 = Catalogue.model_validate(catalogue_v1(shop.catalogue))
            for e in room_events(shop.questions.state, v1, now_ms):
                await admin.publish(room, e.payload)
            chatter = [c.text for c in shop.chatter.comments if not c.question] + [
                "666",
                "哈哈哈",
                "主播好美",
                "来了",
                "冲冲冲",
            ]
            async with assistant(proc, room, CatalogueAnswerer(shop.catalogue), SETTINGS):
                askers = [Viewer(proc, room, f"asker-{i}") for i in range(6)]
                noisy = [Viewer(proc, room, f"noise-{i}") for i in range(12)]
                for v in (*askers, *noisy):
                    await v.__aenter__()
                stop = asyncio.Event()
                sent = 0

                async def noise(v: Viewer) -> None:
                    nonlocal sent
                    while not stop.is_set():
                        await v.ask(random.choice(chatter))
                        sent += 1
                        await asyncio.sleep(0.2)

                tasks = [asyncio.create_task(noise(v)) for v in noisy]
                t0 = time.time()
                asked = []
                for i, q in enumerate(shop.questions.questions):
                    v = askers[i % 6]
                    asked.append((q.id, v, await v.ask(q.q)))
                    await asyncio.sleep(0.15)
                replies, lat = {}, []
                for qid, v, eid in asked:
                    try:
                        r = await v.reply(eid, timeout=5)
                    except TimeoutError:
                        continue
                    replies[qid] = r.payload.comment.text
                    qe = await v.wait(_seen(v, eid))
                    lat.append((r.publish_time.ToMilliseconds() - qe.publish_time.ToMilliseconds()) / 1000)
                stop.set()
                await asyncio.gather(*tasks)
                dur = time.time() - t0
                for v in (*askers, *noisy):
                    await v.__aexit__(None, None, None)
            lat.sort()
            print(summary("electronics busy", score_replies(shop, replies, now_ms)))
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"chatter {sent} comments in {dur:.1f}s ({sent / dur:.0f}/s) besides {len(asked)} questions")
            print(f"reply p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
    finally:
        proc.stop()


asyncio.run(main())
