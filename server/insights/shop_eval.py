"""Room insights on the evaluation shops' chatter: `python -m barrage.server.insights.shop_eval SET...`.

The chatter (evals/shops/<name>/chatter.yaml) is folded through RoomInsights as the room
log would carry it: viewers join, the shop's product service registers the catalogue
(`catalogue_registered`; not with --no-catalogue, as in the first run), the labelled
product is pinned (its catalogue title on the card) and the flash sale starts, then every
comment with the `question` flag the server sets (server/commerce/interactions.is_question),
staff answers with the host role. A comment counts as a question when insights grouped it.
What insights made of each comment (a question? about which product? which group?
answered?) is scored against the labels (shoplang/evaluation.score_chatter).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from barrage.server.commerce.interactions import is_question
from barrage.server.insights.engine import InsightsConfig, RoomInsights
from barrage.shoplang.evaluation import ChatPrediction, EvalShop, chatter_summary, load_shop, score_chatter
from barrage.shoplang.understand import names_of
from barrage.v1 import event_pb2

START_MS = 1_800_000_000_000


def catalogue_event(shop: EvalShop) -> event_pb2.Payload:
    """The room's catalogue as the shop's product service registers it (names and kinds)."""
    registered = event_pb2.CatalogueRegistered()
    for entry in names_of(shop.catalogue):
        product = registered.products.add(product_id=entry.product_id, names=entry.names, categories=entry.categories)
        for key, text in entry.topics[:50]:
            product.topics.add(key=key, text=text[:500])
    return event_pb2.Payload(catalogue_registered=registered)


def chatter_events(shop: EvalShop, register: bool = True) -> list[event_pb2.Event]:
    chatter = shop.chatter
    events: list[event_pb2.Event] = []
    at = START_MS

    def add(payload: event_pb2.Payload, user: str, role: int, event_id: str = "") -> None:
        nonlocal at
        at += 1000
        event = event_pb2.Event(room_id=shop.name, event_id=event_id or f"e{len(events)}", payload=payload)
        event.sender.user_id, event.sender.role = user, role  # type: ignore[assignment]
        event.publish_time.FromMilliseconds(at)
        events.append(event)

    for user in sorted({c.user for c in chatter.comments if c.role == "viewer"}):
        add(event_pb2.Payload(viewer_joined=event_pb2.ViewerJoined()), user, event_pb2.ROLE_VIEWER)
    if register:
        add(catalogue_event(shop), "shop-service", event_pb2.ROLE_SERVICE)
    for product_id, kind in ((chatter.pinned, "pin"), (chatter.flash_sale, "sale")):
        product = shop.catalogue.product(product_id) if product_id else None
        if product is None:
            continue
        card = event_pb2.Product(product_id=product.id, title=product.name.zh)
        if kind == "pin":
            add(event_pb2.Payload(product_pinned=event_pb2.ProductPinned(product=card)), "host", event_pb2.ROLE_HOST)
        else:
            sale = event_pb2.FlashSaleStarted(sale_id="sale", product=card, stock=10)
            add(event_pb2.Payload(flash_sale_started=sale), "host", event_pb2.ROLE_HOST)
    for line in chatter.comments:
        role = event_pb2.ROLE_VIEWER if line.role == "viewer" else event_pb2.ROLE_HOST
        comment = event_pb2.Comment(text=line.text, question=line.role == "viewer" and is_question(line.text))
        add(event_pb2.Payload(comment=comment), line.user, role, line.id)
    return events


def predictions(shop: EvalShop, engine: RoomInsights, events: list[event_pb2.Event]) -> dict[str, ChatPrediction]:
    out: dict[str, ChatPrediction] = {}
    for event in events:
        if event.payload.WhichOneof("kind") != "comment":
            continue
        group_id = engine.questions.by_event.get(event.event_id)
        if group_id is None:
            out[event.event_id] = ChatPrediction(question=False)
            continue
        group = engine.questions.groups[group_id]
        at = event.publish_time.ToMilliseconds()
        answered = any(answer.at >= at for answer in group.answers)
        out[event.event_id] = ChatPrediction(True, group.product_id or None, group_id, answered)
    return out


def run(folder: Path, register: bool = True, verbose: bool = False) -> tuple[EvalShop, dict[str, float | int]]:
    shop = load_shop(folder)
    engine = RoomInsights(shop.name, InsightsConfig())
    events = chatter_events(shop, register)
    for position, event in enumerate(events):
        engine.fold(position, event)
    predicted = predictions(shop, engine, events)
    if verbose:
        print_mistakes(shop, predicted)
    return shop, score_chatter(shop.chatter, predicted)


def print_mistakes(shop: EvalShop, predicted: dict[str, ChatPrediction]) -> None:
    """Each comment read wrongly, and each labelled group split over several found groups."""
    viewers = [c for c in shop.chatter.comments if c.role == "viewer"]
    for c in viewers:
        p = predicted[c.id]
        if p.question != c.question:
            print(f"  question {p.question} (label {c.question}): {c.id} {c.text!r}")
        elif c.question and c.product is not None and p.product != c.product:
            print(f"  product {p.product} (label {c.product}): {c.id} {c.text!r}")
    labels: dict[str, list[str]] = {}
    for c in viewers:
        if c.question and c.group is not None and predicted[c.id].question:
            labels.setdefault(c.group, []).append(c.id)
    by_id = {c.id: c for c in viewers}
    for label, ids in labels.items():
        found = {predicted[i].group for i in ids}
        if len(found) > 1:
            print(f"  split {label}: " + " | ".join(f"{by_id[i].text!r}->{predicted[i].group}" for i in ids))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m barrage.server.insights.shop_eval",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("sets", type=Path, nargs="+")
    parser.add_argument("--no-catalogue", action="store_true", help="no catalogue_registered event (the first run)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each comment read wrongly")
    args = parser.parse_args(argv)
    for folder in args.sets:
        if not folder.is_dir():
            continue  # `evals/shops/*` also matches README.md
        shop, figures = run(folder, not args.no_catalogue, args.verbose)
        print(chatter_summary(shop.name, figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
