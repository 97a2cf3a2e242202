"""What each role may do, and what valid input looks like.

The permission table is documented in docs/protocol.md; keep the two in step.
"""

from __future__ import annotations

import re

from barrage.v1 import event_pb2
from server.core.errors import ApiError, Code, invalid

VIEWER = event_pb2.ROLE_VIEWER
HOST = event_pb2.ROLE_HOST
MODERATOR = event_pb2.ROLE_MODERATOR
SERVICE = event_pb2.ROLE_SERVICE
BOT = event_pb2.ROLE_BOT
EVERYONE = frozenset({VIEWER, HOST, MODERATOR, SERVICE, BOT})

STAFF = frozenset({HOST, MODERATOR, SERVICE})
SELLERS = frozenset({HOST, SERVICE})
SERVICES = frozenset({SERVICE})
PARTICIPANTS = frozenset({VIEWER, HOST, MODERATOR, BOT})

# Payload kind (the Payload oneof field name) -> roles that may post it. Kinds not
# listed (like_burst, lottery_drawn, poll_tally, poll_ended, viewer_count, room_closed)
# are only ever produced by the server.
POST: dict[str, frozenset[int]] = {
    "comment": EVERYONE,
    "like": PARTICIPANTS,
    "announcement": SELLERS,
    "gift": SERVICES,
    "purchase": SERVICES,
    "product_pinned": SELLERS,
    "product_unpinned": SELLERS,
    "product_updated": SELLERS,
    "flash_sale_started": SELLERS,
    "flash_sale_stock": SELLERS,
    "flash_sale_ended": SELLERS,
    "lottery_started": SELLERS,
    "lottery_entry": PARTICIPANTS,
    "poll_started": SELLERS,
    "poll_vote": PARTICIPANTS,
    "user_muted": STAFF,
    "user_banned": STAFF,
    "message_deleted": STAFF,
    "slow_mode": STAFF,
    "catalogue_registered": SELLERS,
}

# Admin and stream actions -> roles.
ACTIONS: dict[str, frozenset[int]] = {
    "create_room": SELLERS,
    "close_room": SELLERS,
    "list_events": STAFF,
    "get_room": EVERYONE,
    "join": EVERYONE,
}

EPHEMERAL = event_pb2.PRIORITY_EPHEMERAL
INTERNAL = event_pb2.PRIORITY_INTERNAL
NORMAL = event_pb2.PRIORITY_NORMAL
CRITICAL = event_pb2.PRIORITY_CRITICAL

# Priority class of each payload kind (DESIGN.md, "priority classes"). Gifts are
# critical or normal by value (server/commerce/interactions.py).
PRIORITY: dict[str, int] = {
    "comment": NORMAL,
    "announcement": CRITICAL,
    "room_closed": CRITICAL,
    "like_burst": EPHEMERAL,
    "gift": NORMAL,
    "product_pinned": CRITICAL,
    "product_unpinned": CRITICAL,
    "product_updated": EPHEMERAL,
    "flash_sale_started": CRITICAL,
    "flash_sale_stock": EPHEMERAL,
    "flash_sale_ended": CRITICAL,
    "purchase": NORMAL,
    "lottery_started": CRITICAL,
    "lottery_entry": NORMAL,
    "lottery_drawn": CRITICAL,
    "poll_started": CRITICAL,
    "poll_vote": NORMAL,
    "poll_tally": EPHEMERAL,
    "poll_ended": CRITICAL,
    "viewer_count": EPHEMERAL,
    "user_muted": CRITICAL,
    "user_banned": CRITICAL,
    "message_deleted": CRITICAL,
    "slow_mode": CRITICAL,
    "viewer_joined": EPHEMERAL,
    "viewer_left": EPHEMERAL,
    "room_checkpoint": INTERNAL,
    "catalogue_registered": CRITICAL,
}

_ROLE_NAMES: dict[int, str] = {int(value): name.removeprefix("ROLE_").lower() for name, value in event_pb2.Role.items()}
_ROOM_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,64}")
# Control characters other than newline and tab break clients' layouts; refuse them
# rather than rewrite the user's words.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def role_name(role: int) -> str:
    return _ROLE_NAMES.get(role, str(role))


def require(role: int, action: str) -> None:
    if role not in ACTIONS[action]:
        raise ApiError(
            Code.PERMISSION_DENIED,
            "ROLE_FORBIDDEN",
            f"role {role_name(role)} may not {action.replace('_', ' ')}",
            metadata={"action": action, "role": role_name(role)},
        )


def require_post(role: int, kind: str) -> None:
    allowed = POST.get(kind)
    if allowed is None:
        raise invalid("INVALID_FIELD", f"event type {kind!r} cannot be posted", "payload")
    if role not in allowed:
        raise ApiError(
            Code.PERMISSION_DENIED,
            "ROLE_FORBIDDEN",
            f"role {role_name(role)} may not post {kind}",
            metadata={"action": f"post:{kind}", "role": role_name(role)},
        )


def check_room_id(room_id: str) -> None:
    if not _ROOM_ID.fullmatch(room_id):
        raise invalid("INVALID_FIELD", "room_id must be 1-128 characters of A-Z a-z 0-9 . _ : -", "room_id")


def check_client_id(value: str, field: str) -> None:
    if not _CLIENT_ID.fullmatch(value):
        raise invalid("INVALID_FIELD", f"{field} must be 1-64 printable ASCII characters", field)


def check_text(text: str, max_chars: int, field: str = "text") -> None:
    if not text.strip():
        raise invalid("TEXT_EMPTY", "text is empty", field)
    if len(text) > max_chars:
        raise invalid("TEXT_TOO_LONG", f"text is longer than {max_chars} characters", field)
    if _CONTROL.search(text):
        raise invalid("INVALID_FIELD", "text contains control characters", field)


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise invalid("INVALID_FIELD", message, field)


def _check_id(value: str, field: str) -> None:
    _require(bool(_CLIENT_ID.fullmatch(value)), field, f"{field} must be 1-64 printable ASCII characters")


def _check_money(money: event_pb2.Money, field: str) -> None:
    _require(money.amount_minor >= 0, field, "amount must not be negative")
    _require(len(money.currency) == 3 and money.currency.isalpha(), field, "currency must be an ISO 4217 code")


def _check_product(product: event_pb2.Product, field: str) -> None:
    _check_id(product.product_id, f"{field}.product_id")
    _require(0 < len(product.title) <= 200, f"{field}.title", "title must be 1-200 characters")
    _check_money(product.price, f"{field}.price")
    _require(len(product.image_url) <= 1024, f"{field}.image_url", "image_url is too long")
    _require(not product.image_url or product.image_url.startswith("https://"), f"{field}.image_url", "https only")
    _require(product.stock >= -1, f"{field}.stock", "stock must be -1 (untracked) or more")


def _check_short_text(text: str, field: str, limit: int = 200) -> None:
    _require(len(text.strip()) > 0 and len(text) <= limit, field, f"must be 1-{limit} characters")
    _require(not _CONTROL.search(text), field, "contains control characters")


def check_payload(payload: event_pb2.Payload, max_chars: int) -> str:
    """Validate a payload on its own (no room state) and return its kind."""
    kind = payload.WhichOneof("kind")
    if kind is None:
        raise invalid("INVALID_FIELD", "payload is empty", "payload")
    if kind == "comment":
        check_text(payload.comment.text, max_chars, "payload.comment.text")
        _require(len(payload.comment.mention_user_ids) <= 20, "payload.comment.mention_user_ids", "at most 20")
        _require(len(payload.comment.reply_to_event_id) <= 64, "payload.comment.reply_to_event_id", "too long")
        _require(len(payload.comment.product_ids) <= 5, "payload.comment.product_ids", "at most 5")
        for product_id in payload.comment.product_ids:
            _check_id(product_id, "payload.comment.product_ids")
    elif kind == "announcement":
        check_text(payload.announcement.text, max_chars, "payload.announcement.text")
    elif kind == "like":
        _require(1 <= payload.like.count <= 100, "payload.like.count", "count must be 1-100")
    elif kind == "gift":
        gift = payload.gift
        _check_id(gift.gift_id, "payload.gift.gift_id")
        _require(1 <= gift.count <= 10_000, "payload.gift.count", "count must be 1-10000")
        _check_money(gift.unit_value, "payload.gift.unit_value")
        _check_id(gift.giver.user_id, "payload.gift.giver.user_id")
    elif kind == "purchase":
        _check_id(payload.purchase.buyer.user_id, "payload.purchase.buyer.user_id")
        _check_id(payload.purchase.product_id, "payload.purchase.product_id")
        _require(payload.purchase.quantity >= 1, "payload.purchase.quantity", "quantity must be at least 1")
    elif kind == "product_pinned":
        _check_product(payload.product_pinned.product, "payload.product_pinned.product")
    elif kind == "product_unpinned":
        _check_id(payload.product_unpinned.product_id, "payload.product_unpinned.product_id")
    elif kind == "product_updated":
        update = payload.product_updated
        _check_id(update.product_id, "payload.product_updated.product_id")
        if update.HasField("price"):
            _check_money(update.price, "payload.product_updated.price")
        _require(not update.HasField("stock") or update.stock >= -1, "payload.product_updated.stock", "bad stock")
    elif kind == "flash_sale_started":
        sale = payload.flash_sale_started
        _check_id(sale.sale_id, "payload.flash_sale_started.sale_id")
        _check_product(sale.product, "payload.flash_sale_started.product")
        _require(sale.stock >= 0, "payload.flash_sale_started.stock", "stock must not be negative")
        _require(
            sale.end_time.ToMilliseconds() > sale.start_time.ToMilliseconds(),
            "payload.flash_sale_started.end_time",
            "end_time must be after start_time",
        )
    elif kind == "flash_sale_stock":
        _check_id(payload.flash_sale_stock.sale_id, "payload.flash_sale_stock.sale_id")
        _require(payload.flash_sale_stock.stock >= 0, "payload.flash_sale_stock.stock", "stock must not be negative")
    elif kind == "flash_sale_ended":
        _check_id(payload.flash_sale_ended.sale_id, "payload.flash_sale_ended.sale_id")
    elif kind == "lottery_started":
        lottery = payload.lottery_started
        _check_id(lottery.lottery_id, "payload.lottery_started.lottery_id")
        _check_short_text(lottery.prize, "payload.lottery_started.prize")
        _require(1 <= lottery.winners_count <= 1000, "payload.lottery_started.winners_count", "must be 1-1000")
        _require(len(lottery.keyword) <= 32, "payload.lottery_started.keyword", "keyword is too long")
    elif kind == "lottery_entry":
        _check_id(payload.lottery_entry.lottery_id, "payload.lottery_entry.lottery_id")
    elif kind == "poll_started":
        poll = payload.poll_started
        _check_id(poll.poll_id, "payload.poll_started.poll_id")
        _check_short_text(poll.question, "payload.poll_started.question")
        _require(2 <= len(poll.options) <= 10, "payload.poll_started.options", "2 to 10 options")
        for option in poll.options:
            _check_short_text(option, "payload.poll_started.options", 100)
    elif kind == "poll_vote":
        _check_id(payload.poll_vote.poll_id, "payload.poll_vote.poll_id")
    elif kind in ("user_muted", "user_banned"):
        target = getattr(payload, kind)
        _check_id(target.user_id, f"payload.{kind}.user_id")
        _require(len(target.reason) <= 200, f"payload.{kind}.reason", "reason is too long")
    elif kind == "message_deleted":
        _check_id(payload.message_deleted.event_id, "payload.message_deleted.event_id")
    elif kind == "slow_mode":
        interval = payload.slow_mode.min_interval.ToMilliseconds()
        _require(0 <= interval <= 3_600_000, "payload.slow_mode.min_interval", "must be 0 to 1 hour")
    elif kind == "catalogue_registered":
        products = payload.catalogue_registered.products
        _require(1 <= len(products) <= 200, "payload.catalogue_registered.products", "1 to 200 products")
        for i, product in enumerate(products):
            where = f"payload.catalogue_registered.products[{i}]"
            _check_id(product.product_id, f"{where}.product_id")
            counts_ok = 1 <= len(product.names) <= 20 and len(product.categories) <= 10
            _require(counts_ok, where, "1-20 names, 0-10 categories")
            for name in (*product.names, *product.categories):
                _check_short_text(name, f"{where}.names", 100)
            _require(len(product.topics) <= 50, f"{where}.topics", "at most 50 topics")
            for topic in product.topics:
                _require(
                    re.fullmatch(r"[a-z0-9_]{1,64}", topic.key) is not None, f"{where}.topics.key", "[a-z0-9_]{1,64}"
                )
                _check_short_text(topic.text, f"{where}.topics.text", 500)
    return kind
