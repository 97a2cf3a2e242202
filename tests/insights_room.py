"""The shared understanding in process: the assistant asked with a product on screen, and insights
on a room with a catalogue registered, a pinned product and chatter.

Shared by the tests of the shared understanding (tests/test_trade_language.py,
tests/test_listing_mechanisms.py, tests/test_listing_reading.py).
"""

from __future__ import annotations

import time

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.clients.assistant.state import LiveState
from barrage.server.insights.engine import InsightsConfig, RoomInsights
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.understand import names_of
from barrage.v1 import event_pb2


def ask(answerer: CatalogueAnswerer, text: str, pinned: str | None = None) -> str:
    """The assistant's reply to a question, the product `pinned` on screen."""
    state = LiveState()
    state.pinned_id = pinned
    return answerer.answer(text, state, int(time.time() * 1000)).text


def group_of(catalogue: Catalogue, texts: list[str], pinned: str, sale: str | None = None) -> list[str]:
    engine = fold(catalogue, texts, pinned, sale)
    return [engine.questions.by_event.get(f"q{i}", "") for i in range(len(texts))]


def fold(catalogue: Catalogue, texts: list[str], pinned: str, sale: str | None = None) -> RoomInsights:
    """A room with the catalogue registered: viewers' comments, and "host:..." the host's."""
    engine = RoomInsights("r", InsightsConfig())
    registered = event_pb2.CatalogueRegistered()
    for entry in names_of(catalogue):
        product = registered.products.add(product_id=entry.product_id, names=entry.names, categories=entry.categories)
        for key, text in entry.topics:
            product.topics.add(key=key, text=text)
    events = [
        event_pb2.Event(event_id="cat", payload=event_pb2.Payload(catalogue_registered=registered)),
        event_pb2.Event(
            event_id="pin",
            payload=event_pb2.Payload(
                product_pinned=event_pb2.ProductPinned(product=event_pb2.Product(product_id=pinned))
            ),
        ),
    ]
    if sale is not None:
        started = event_pb2.FlashSaleStarted(sale_id="s", product=event_pb2.Product(product_id=sale), stock=5)
        events.append(event_pb2.Event(event_id="sale", payload=event_pb2.Payload(flash_sale_started=started)))
    for i, text in enumerate(texts):
        host = text.startswith("host:")
        comment = event_pb2.Comment(text=text.removeprefix("host:"))
        event = event_pb2.Event(event_id=f"q{i}", payload=event_pb2.Payload(comment=comment))
        if not host:
            event.sender.user_id, event.sender.role = f"u{i}", event_pb2.ROLE_VIEWER
        events.append(event)
    for position, event in enumerate(events):
        event.room_id = "r"
        event.publish_time.FromMilliseconds(1_800_000_000_000 + position * 1000)
        if not event.sender.user_id:
            event.sender.user_id, event.sender.role = "host", event_pb2.ROLE_HOST
        engine.fold(position, event)
    return engine
