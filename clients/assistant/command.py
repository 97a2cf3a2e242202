"""`barrage assistant`: run the shopping assistant in a room until stopped;
`barrage catalogue`: register a room's products for room insights."""

from __future__ import annotations

import argparse
import os
import sys

from barrage.clients.assistant.settings import Settings
from barrage.v1 import event_pb2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument("--room", action="append", required=True, help="room to answer in (repeat for several)")
    parser.add_argument("--catalog", required=True, help="catalogue YAML (see docs/assistant.md)")
    parser.add_argument(
        "--silent-unknown", action="store_true", help="post nothing when it does not know (default: say so briefly)"
    )
    parser.add_argument(
        "--window", type=float, default=defaults.window_s, help=f"answer repeated questions once per this many seconds "
        f"(default {defaults.window_s:g})",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=float, default=defaults.rate_per_s,
        help=f"answers per second per room (default {defaults.rate_per_s:g}; the server allows 10)",
    )  # fmt: skip
    parser.add_argument(
        "--private", action="store_true", help="answer each asker with a whisper only it sees (default: in the chat)"
    )
    parser.add_argument("--timezone", default="Asia/Shanghai", help="zone for flash-sale times (default Asia/Shanghai)")
    parser.add_argument("--llm-url", help="OpenAI-compatible API base URL for phrasing (optional)")
    parser.add_argument("--llm-model", default="default", help="model name for --llm-url")
    parser.add_argument("--llm-timeout", type=float, default=0.6, help="seconds to wait for phrasing (default 0.6)")


async def assistant_command(args: argparse.Namespace, target: str, token: str) -> int:
    # Imported here: segmentation dictionaries take a moment to load, other commands need none of it.
    from barrage.clients.assistant.answerer import Answerer, RetrievalAnswerer, Unknown
    from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
    from barrage.clients.assistant.bot import Assistant
    from barrage.clients.assistant.catalog import CatalogueError, load_catalogue
    from barrage.clients.assistant.llm import ChatPhraser

    if not 0 < args.rate <= 9:
        print("barrage assistant: --rate must be above 0 and at most 9 (a stream may send 10/s)", file=sys.stderr)
        return 2
    from barrage.shoplang import catalogue as v2

    unknown: Unknown = "silent" if args.silent_unknown else "say"
    answerer: Answerer
    try:
        if v2.is_v2(args.catalog):  # format: 2 -> the shared understanding (shoplang)
            shop = v2.load_catalogue(args.catalog)
            count = len(shop.products)
            answerer = CatalogueAnswerer(shop, unknown=unknown, tz=args.timezone)
        else:
            catalogue = load_catalogue(args.catalog)
            count = len(catalogue.products)
            answerer = RetrievalAnswerer(catalogue, unknown=unknown, tz=args.timezone)
    except (CatalogueError, v2.CatalogueError) as error:
        print(f"barrage assistant: {error}", file=sys.stderr)
        return 2
    phraser = None
    if args.llm_url:
        key = os.environ.get("BARRAGE_LLM_API_KEY")
        phraser = ChatPhraser(args.llm_url, model=args.llm_model, api_key=key, timeout_s=args.llm_timeout)
    burst = max(1, min(5, int(args.rate * 2)))
    settings = Settings(window_s=args.window, rate_per_s=args.rate, burst=burst, private_replies=args.private)
    assistant = Assistant(target, token, args.room, answerer, settings=settings, phraser=phraser)
    print(
        f"barrage assistant: joining {', '.join(args.room)} with {count} products",
        file=sys.stderr,
        flush=True,
    )
    try:
        await assistant.run()
    finally:
        print(f"barrage assistant: {assistant.stats.summary()}", file=sys.stderr, flush=True)
    return 0


def catalogue_payload(path: str) -> event_pb2.Payload:
    """A catalogue file (format v2 or the first format) as a `catalogue_registered` event."""
    from barrage.clients.assistant.catalog import load_catalogue
    from barrage.shoplang import catalogue as v2
    from barrage.shoplang.understand import names_of

    registered = event_pb2.CatalogueRegistered()
    if v2.is_v2(path):
        for entry in names_of(v2.load_catalogue(path)):
            product = registered.products.add(
                product_id=entry.product_id, names=list(entry.names)[:20], categories=list(entry.categories)[:10]
            )
            for key, text in entry.topics[:50]:
                product.topics.add(key=key, text=text[:500])
    else:
        for p in load_catalogue(path).products:
            names = list(dict.fromkeys([p.name.zh, p.name.en, *p.aliases]))[:20]
            kinds = list(dict.fromkeys([*p.category.zh.split(), *p.category.en.split()]))[:10]
            registered.products.add(product_id=p.id, names=names, categories=kinds)
    return event_pb2.Payload(catalogue_registered=registered)


async def register_command(args: argparse.Namespace, target: str, token: str) -> int:
    """`barrage catalogue ROOM --catalog FILE`: register the room's products (host or service token)."""
    from barrage.clients.admin import AdminClient
    from barrage.clients.assistant.catalog import CatalogueError
    from barrage.shoplang import catalogue as v2

    try:
        payload = catalogue_payload(args.catalog)
    except (CatalogueError, v2.CatalogueError) as error:
        print(f"barrage catalogue: {error}", file=sys.stderr)
        return 2
    async with AdminClient(target, token) as admin:
        await admin.publish(args.room, payload)
    print(f"barrage catalogue: {len(payload.catalogue_registered.products)} products registered in {args.room}")
    return 0
