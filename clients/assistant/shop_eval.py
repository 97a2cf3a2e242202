"""Run the assistant on evaluation shops and score its replies from their text alone.

    python -m barrage.clients.assistant.shop_eval evals/shops/groceries [more sets] [-v] [--v1] [--out replies.jsonl]

The room's live state is set by folding the events a host would publish (pinned card at
a live price, product updates, a running flash sale). `--v1` converts the v2 catalogue to
the first catalogue format (shoplang/convert_v1.py) and runs the answerer on that: how
the first run, before format v2 existed, was made. Scoring: shoplang/evaluation.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from barrage.clients.assistant import evaluate as legacy
from barrage.clients.assistant.answerer import Answerer, RetrievalAnswerer
from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.clients.assistant.catalog import Catalogue
from barrage.clients.assistant.state import LiveState
from barrage.shoplang.convert_v1 import catalogue_v1
from barrage.shoplang.evaluate import print_score
from barrage.shoplang.evaluation import EvalShop, Score, State, load_shop, score_replies
from barrage.v1 import event_pb2


def room_events(state: State, catalogue: Catalogue, now_ms: int) -> list[event_pb2.Event]:
    spec = legacy.ScenarioState.model_validate(state.model_dump())
    return legacy.scenario_events(spec, catalogue, now_ms)


def replies_of(shop: EvalShop, answerer: Answerer, catalogue: Catalogue, now_ms: int) -> dict[str, str]:
    live = LiveState()
    for event in room_events(shop.questions.state, catalogue, now_ms):
        live.apply(event)
    return {q.id: answerer.answer(q.q, live, now_ms).text for q in shop.questions.questions}


def run(folder: Path, now_ms: int, v1: bool = False) -> tuple[EvalShop, dict[str, str], Score]:
    shop = load_shop(folder)
    catalogue = Catalogue.model_validate(catalogue_v1(shop.catalogue))
    answerer: Answerer = RetrievalAnswerer(catalogue) if v1 else CatalogueAnswerer(shop.catalogue)
    replies = replies_of(shop, answerer, catalogue, now_ms)
    return shop, replies, score_replies(shop, replies, now_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m barrage.clients.assistant.shop_eval",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("sets", type=Path, nargs="+", help="evaluation shop folders (evals/shops/...)")
    parser.add_argument("--v1", action="store_true", help="through the first catalogue format")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the replies as JSON lines (for barrage.shoplang.evaluate score)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = parser.parse_args(argv)
    now_ms = int(time.time() * 1000)
    failed = False
    lines = [json.dumps({"now_ms": now_ms})]
    for folder in args.sets:
        if not folder.is_dir():
            continue  # `evals/shops/*` also matches README.md
        shop, replies, score = run(folder, now_ms, args.v1)
        print_score(shop.name, score, args.verbose)
        failed |= not score.passed()
        lines += [json.dumps({"set": shop.name, "id": k, "reply": v}, ensure_ascii=False) for k, v in replies.items()]
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
