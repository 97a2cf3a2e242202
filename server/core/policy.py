"""Who may do what in a room, and what valid input looks like.

Authority is the room's (DESIGN.md "Who may act, and where"). A caller's *standing*
in a room comes from its token's role and its relation to the room:

- service: a service token, platform-wide, in every room;
- owner: a host token whose user owns the room (RoomInfo.creator_user_id: its
  creator, or the host a service named at CreateRoom);
- moderator: a user the owner appointed for the room (the room state's moderators),
  or a moderator token (a platform moderator, in every room);
- bot: a bot token in a room its `rooms` claim lists; outsider in any other room;
- viewer: everyone else, including a host in a room it does not own.

The tables below say which standings may post which payload kind and take which
action; docs/commerce.md "Roles and permissions" is the same matrix for readers, and
tests/test_authority.py checks every cell over real gRPC. Moderation also compares
ranks: nobody acts on a target of equal or higher rank (target_rank).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

from barrage.server.auth import Identity
from barrage.server.commerce import checkpoint_pb2
from barrage.server.core import ranges
from barrage.server.core import text as text_rules
from barrage.server.core.errors import ApiError, Code, invalid
from barrage.v1 import event_pb2

VIEWER = event_pb2.ROLE_VIEWER
HOST = event_pb2.ROLE_HOST
MODERATOR = event_pb2.ROLE_MODERATOR
SERVICE = event_pb2.ROLE_SERVICE
BOT = event_pb2.ROLE_BOT

# Standings (a caller's role in one room).
S_SERVICE = "service"
S_OWNER = "owner"
S_MODERATOR = "moderator"
S_BOT = "bot"
S_VIEWER = "viewer"
S_OUTSIDER = "outsider"
"""A bot in a room its token does not give it: may do nothing there."""

RANK: dict[str, int] = {S_OUTSIDER: 0, S_VIEWER: 1, S_BOT: 1, S_MODERATOR: 2, S_OWNER: 3, S_SERVICE: 4}
"""Moderation needs a higher rank than its target's (nobody acts on an equal)."""

EVERYONE = frozenset({S_VIEWER, S_BOT, S_MODERATOR, S_OWNER, S_SERVICE})
PARTICIPANTS = frozenset({S_VIEWER, S_BOT, S_MODERATOR, S_OWNER})
"""Those who take part in the show (not services)."""
MODERATORS = frozenset({S_MODERATOR, S_OWNER, S_SERVICE})
SELLERS = frozenset({S_OWNER, S_SERVICE})
SERVICES = frozenset({S_SERVICE})

# Payload kind (the Payload oneof field name) -> standings that may post it. Kinds not
# listed (like_burst, lottery_drawn, poll_tally, poll_ended, viewer_count, room_closed,
# viewer_joined, viewer_left, room_checkpoint) are only ever produced by the server.
POST: dict[str, frozenset[str]] = {
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
    "user_muted": MODERATORS,
    "user_banned": MODERATORS,
    "message_deleted": MODERATORS,
    "slow_mode": MODERATORS,
    "moderator_appointed": SELLERS,
    "moderator_removed": SELLERS,
    "media_clock": SELLERS,
    "catalogue_registered": SELLERS,
    "comment_pinned": MODERATORS,
    "comment_unpinned": MODERATORS,
    "whisper": EVERYONE,  # a viewer only to the staff (server/core/whisper.py)
    "coupon_batch_dropped": SELLERS,
    "coupon_claim": EVERYONE,
    "red_packet_sent": SELLERS,
    "red_packet_grab": EVERYONE,
}

# Room actions -> standings. PublishEvent also needs the kind's POST entry.
ACTIONS: dict[str, frozenset[str]] = {
    "join": EVERYONE,
    "get_room": frozenset({S_BOT, S_MODERATOR, S_OWNER, S_SERVICE}),
    "list_events": MODERATORS,
    "publish_event": MODERATORS,
    "close_room": SELLERS,
    "update_room": SELLERS,
    "read_insights": MODERATORS,
    "verify_coupon": SELLERS,
    "redeem_coupon": SERVICES,
    "read_leaderboard": EVERYONE,
}

CREATE_ROOM = frozenset({HOST, SERVICE})
"""Token roles that may create rooms (no room yet, so no standing)."""

MAX_MODERATORS = 100
"""Appointed moderators per room (TOO_MANY_MODERATORS beyond)."""

EPHEMERAL = event_pb2.PRIORITY_EPHEMERAL
INTERNAL = checkpoint_pb2.INTERNAL_PRIORITY_INTERNAL  # the server's own records, never sent
WHISPER = 120
"""A whisper's log record priority (server/core/whisper.py); its Event says CRITICAL."""
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
    "moderator_appointed": CRITICAL,
    "moderator_removed": CRITICAL,
    "viewer_joined": EPHEMERAL,
    "viewer_left": EPHEMERAL,
    "room_checkpoint": INTERNAL,
    "media_clock": EPHEMERAL,
    "catalogue_registered": CRITICAL,
    "comment_pinned": CRITICAL,
    "comment_unpinned": CRITICAL,
    "room_updated": CRITICAL,
    "whisper": WHISPER,
    "coupon_batch_dropped": CRITICAL,
    "coupon_claim": NORMAL,
    "coupon_remaining": EPHEMERAL,
    "coupon_redeemed": NORMAL,
    "coupon_batch_ended": CRITICAL,
    "red_packet_sent": CRITICAL,
    "red_packet_grab": NORMAL,
    "red_packet_finished": CRITICAL,
    "leaderboard": EPHEMERAL,  # the final one, at close, is appended as critical
    "audience": EPHEMERAL,
}

_ROLE_NAMES: dict[int, str] = {int(value): name.removeprefix("ROLE_").lower() for name, value in event_pb2.Role.items()}
_ROOM_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,64}")
# Control characters other than newline and tab break clients' layouts; refuse them
# rather than rewrite the user's words.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def role_name(role: int) -> str:
    return _ROLE_NAMES.get(role, str(role))


def standing(who: Identity, room_id: str, owner_user_id: str, moderators: Collection[str]) -> str:
    """The caller's standing in a room (see the module docstring)."""
    if who.role == SERVICE:
        return S_SERVICE
    if who.role == BOT:
        return S_BOT if who.given_room(room_id) else S_OUTSIDER
    if who.role == HOST and who.user_id == owner_user_id:
        return S_OWNER
    if who.role == MODERATOR or who.user_id in moderators:
        return S_MODERATOR
    return S_VIEWER


def target_standing(user_id: str, owner_user_id: str, moderators: Collection[str], services: Collection[str]) -> str:
    """What the room knows of a moderation target: its owner, a moderator, a service
    (seen posting as one), or else a viewer."""
    if user_id in services:
        return S_SERVICE
    if user_id == owner_user_id:
        return S_OWNER
    if user_id in moderators:
        return S_MODERATOR
    return S_VIEWER


def _forbidden(who: Identity, where: str, action: str, what: str) -> ApiError:
    if where == S_OUTSIDER:
        message = f"this token is not given this room (it may not {what} here)"
    else:
        message = f"a {where} may not {what} in this room"
    return ApiError(
        Code.PERMISSION_DENIED,
        "ROLE_FORBIDDEN",
        message,
        metadata={"action": action, "role": role_name(who.role), "standing": where},
    )


def require(who: Identity, where: str, action: str) -> None:
    """Raise ROLE_FORBIDDEN unless standing `where` may take `action` (ACTIONS)."""
    if where not in ACTIONS[action]:
        raise _forbidden(who, where, action, action.replace("_", " "))


def require_create(who: Identity) -> None:
    if who.role not in CREATE_ROOM:
        raise ApiError(
            Code.PERMISSION_DENIED,
            "ROLE_FORBIDDEN",
            f"role {role_name(who.role)} may not create rooms",
            metadata={"action": "create_room", "role": role_name(who.role)},
        )


def require_post(who: Identity, where: str, kind: str | None) -> None:
    """Raise ROLE_FORBIDDEN unless standing `where` may post this payload kind.

    Called before the payload's content is validated: a request that is both
    forbidden and invalid is answered ROLE_FORBIDDEN."""
    if kind is None:
        raise invalid("INVALID_FIELD", "payload is empty", "payload")
    allowed = POST.get(kind)
    if allowed is None:
        raise invalid("INVALID_FIELD", f"event type {kind!r} cannot be posted", "payload")
    if where not in allowed:
        raise _forbidden(who, where, f"post:{kind}", f"post {kind}")


def require_outranks(where: str, target: str) -> None:
    """Moderation: the caller must rank above the target (TARGET_PROTECTED)."""
    if RANK[target] >= RANK[where]:
        raise ApiError(
            Code.PERMISSION_DENIED,
            "TARGET_PROTECTED",
            f"a {where} may not act on a {target} of this room",
            metadata={"target": target, "standing": where},
        )


def check_room_id(room_id: str) -> None:
    if not _ROOM_ID.fullmatch(room_id):
        raise invalid("INVALID_FIELD", "room_id must be 1-128 characters of A-Z a-z 0-9 . _ : -", "room_id")


def check_client_id(value: str, field: str) -> None:
    if not _CLIENT_ID.fullmatch(value):
        raise invalid("INVALID_FIELD", f"{field} must be 1-64 printable ASCII characters", field)


# Largest encoded Payload (unknown fields dropped) each postable kind may have. The
# field limits below keep valid payloads well inside; this bounds what they do not
# (free-form names, repeated ids). A stored Event adds at most ENVELOPE_MAX_BYTES.
# Server-made kinds are bounded by what they are made from. docs/protocol.md, "Limits".
MAX_PAYLOAD_BYTES: dict[str, int] = {
    "comment": 6144,
    "announcement": 4096,
    "like": 64,
    "gift": 1024,
    "purchase": 1024,
    "product_pinned": 4096,
    "product_unpinned": 256,
    "product_updated": 256,
    "flash_sale_started": 4096,
    "flash_sale_stock": 256,
    "flash_sale_ended": 256,
    "lottery_started": 2048,
    "lottery_entry": 256,
    "poll_started": 8192,
    "poll_vote": 256,
    "user_muted": 1024,
    "user_banned": 1024,
    "message_deleted": 256,
    "slow_mode": 256,
    "moderator_appointed": 256,
    "moderator_removed": 256,
    "media_clock": 256,
    "catalogue_registered": 48 * 1024,
    "comment_pinned": 4096,
    "comment_unpinned": 256,
    "whisper": 6144,
    "coupon_batch_dropped": 4096,
    "coupon_claim": 256,
    "red_packet_sent": 1024,
    "red_packet_grab": 256,
}
ENVELOPE_MAX_BYTES = 2048
"""Event fields around the payload: ids, sender, time, trace context, priority."""


def prepare_payload(payload: event_pb2.Payload) -> None:
    """Make a posted payload what would be stored, in place, before it is checked.

    Unknown fields (in the payload and every sub-message) are dropped: a client built
    from newer protos still gets its known fields through, and nobody can pad a stored
    event with bytes no reader understands. Free text is normalised (server/core/text.py).
    """
    payload.DiscardUnknownFields()
    kind = payload.WhichOneof("kind")
    if kind == "comment":
        payload.comment.text = text_rules.normalize(payload.comment.text)
    elif kind == "announcement":
        payload.announcement.text = text_rules.normalize(payload.announcement.text)
    elif kind == "comment_pinned":
        payload.comment_pinned.text = text_rules.normalize(payload.comment_pinned.text)
    elif kind == "whisper":
        payload.whisper.text = text_rules.normalize(payload.whisper.text)
    elif kind == "lottery_started":
        payload.lottery_started.prize = text_rules.normalize(payload.lottery_started.prize)
    elif kind == "coupon_batch_dropped":
        payload.coupon_batch_dropped.title = text_rules.normalize(payload.coupon_batch_dropped.title)
    elif kind == "red_packet_sent":
        payload.red_packet_sent.title = text_rules.normalize(payload.red_packet_sent.title)
    elif kind == "poll_started":
        poll = payload.poll_started
        poll.question = text_rules.normalize(poll.question)
        options = [text_rules.normalize(option) for option in poll.options]
        del poll.options[:]
        poll.options.extend(options)


def check_payload_size(payload: event_pb2.Payload, kind: str) -> None:
    limit = MAX_PAYLOAD_BYTES[kind]  # every postable kind has one (tests/test_abuse.py)
    if payload.ByteSize() > limit:
        raise ApiError(
            Code.INVALID_ARGUMENT,
            "PAYLOAD_TOO_LARGE",
            f"a {kind} payload may be at most {limit} bytes encoded",
            metadata={"field": "payload", "max_bytes": str(limit)},
        )


def check_text(text: str, max_chars: int, field: str = "text") -> None:
    """Text as prepare_payload leaves it: something visible, within the limits."""
    if text_rules.is_blank(text):
        raise invalid("TEXT_EMPTY", "text is empty (nothing in it is visible)", field)
    if len(text) > max_chars:
        raise invalid("TEXT_TOO_LONG", f"text is longer than {max_chars} characters", field)
    _check_characters(text, field)


def _check_characters(text: str, field: str) -> None:
    if _CONTROL.search(text):
        raise invalid("INVALID_FIELD", "text contains control characters", field)
    control = text_rules.bidi_control(text)
    if control is not None:
        raise invalid(
            "INVALID_FIELD", f"text contains the bidi control U+{ord(control):04X} (it can disguise text)", field
        )
    if text_rules.longest_combining_run(text) > text_rules.MAX_COMBINING_RUN:
        limit = text_rules.MAX_COMBINING_RUN
        raise invalid("INVALID_FIELD", f"text stacks more than {limit} combining marks on a character", field)


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise invalid("INVALID_FIELD", message, field)


def _check_id(value: str, field: str) -> None:
    _require(bool(_CLIENT_ID.fullmatch(value)), field, f"{field} must be 1-64 printable ASCII characters")


def _check_money(money: event_pb2.Money, field: str) -> None:
    # amount_minor's range is in server/core/ranges.py, with every other number.
    _require(len(money.currency) == 3 and money.currency.isalpha(), field, "currency must be an ISO 4217 code")


def _check_product(product: event_pb2.Product, field: str) -> None:
    _check_id(product.product_id, f"{field}.product_id")
    _require(0 < len(product.title) <= 200, f"{field}.title", "title must be 1-200 characters")
    _check_money(product.price, f"{field}.price")
    _require(len(product.image_url) <= 1024, f"{field}.image_url", "image_url is too long")
    _require(not product.image_url or product.image_url.startswith("https://"), f"{field}.image_url", "https only")


def _check_short_text(text: str, field: str, limit: int = 200) -> None:
    _require(not text_rules.is_blank(text) and len(text) <= limit, field, f"must be 1-{limit} characters")
    _check_characters(text, field)


IMAGE_CONTENT_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""Media types an ImageRef may name: what every app can show."""
MAX_IMAGE_URL_CHARS = 1024
MAX_BADGES = 5
"""Badges a Sender carries at most (the token's `badges` claim, server/auth.py)."""
BADGE = re.compile(r"[A-Za-z0-9._:-]{1,32}")
"""One badge id: short, printable, safe to use as a CSS class or an asset key."""


def check_sender_badges(badges: Collection[str], field: str) -> None:
    """Badges as a Sender may carry them (MAX_BADGES ids matching BADGE)."""
    _require(len(badges) <= MAX_BADGES, field, f"at most {MAX_BADGES} badges")
    for badge in badges:
        _require(BADGE.fullmatch(badge) is not None, field, "each badge is 1-32 characters of A-Z a-z 0-9 . _ : -")


def _check_media_text(comment: event_pb2.Comment | event_pb2.CommentPinned, max_chars: int, where: str) -> None:
    """Text, sticker id and image of a comment (or of a pinned comment's copy). A sticker
    or an image needs no caption; Barrage stores the reference, never the media."""
    has_image = comment.HasField("image")
    if comment.text or not (comment.sticker_id or has_image):
        check_text(comment.text, max_chars, f"{where}.text")
    _require(not (comment.sticker_id and has_image), f"{where}.image", "a sticker or an image, not both")
    if comment.sticker_id:
        _check_id(comment.sticker_id, f"{where}.sticker_id")
    if has_image:
        image = comment.image
        # width and height are range-checked (server/core/ranges.py) before this.
        _check_image_url(image.url, f"{where}.image.url")
        _require(
            image.content_type in IMAGE_CONTENT_TYPES,
            f"{where}.image.content_type",
            f"content_type must be one of {', '.join(sorted(IMAGE_CONTENT_TYPES))}",
        )


def _check_image_url(url: str, field: str) -> None:
    """https only (a client must never be made to fetch plain http, file: or data:), with a
    host, bounded, and nothing that hides what it points to (white space, credentials)."""
    _require(0 < len(url) <= MAX_IMAGE_URL_CHARS, field, f"url must be 1-{MAX_IMAGE_URL_CHARS} characters")
    _require(url.isascii() and url.isprintable() and " " not in url, field, "url must be printable ASCII")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # a malformed bracketed host or port
        raise invalid("INVALID_FIELD", "url does not parse", field) from None
    _require(parts.scheme == "https", field, "url must be https://")
    _require(bool(host) and "@" not in parts.netloc, field, "url must name a host (no user:password@)")


def check_payload(payload: event_pb2.Payload, max_chars: int, now_s: float | None = None) -> str:
    """Validate a payload on its own (no room state) and return its kind.

    Every number, time, duration and enum is checked against its range first
    (server/core/ranges.py); then what needs more than a range (ids, text, currency,
    the order of two times)."""
    kind = payload.WhichOneof("kind")
    if kind is None:
        raise invalid("INVALID_FIELD", "payload is empty", "payload")
    ranges.check_fields(getattr(payload, kind), f"payload.{kind}", now_s)
    if kind == "comment":
        comment = payload.comment
        _check_media_text(comment, max_chars, "payload.comment")
        _require(len(payload.comment.mention_user_ids) <= 20, "payload.comment.mention_user_ids", "at most 20")
        _require(len(payload.comment.reply_to_event_id) <= 64, "payload.comment.reply_to_event_id", "too long")
        _require(len(payload.comment.product_ids) <= 5, "payload.comment.product_ids", "at most 5")
        for product_id in payload.comment.product_ids:
            _check_id(product_id, "payload.comment.product_ids")
    elif kind == "announcement":
        check_text(payload.announcement.text, max_chars, "payload.announcement.text")
    elif kind == "whisper":
        whisper = payload.whisper
        check_text(whisper.text, max_chars, "payload.whisper.text")
        if whisper.recipient_user_id:
            _check_id(whisper.recipient_user_id, "payload.whisper.recipient_user_id")
        _require(
            bool(whisper.recipient_user_id) != whisper.to_staff,
            "payload.whisper.recipient_user_id",
            "a whisper names one recipient_user_id or sets to_staff (exactly one)",
        )
        _require(len(whisper.reply_to_event_id) <= 64, "payload.whisper.reply_to_event_id", "too long")
    elif kind == "comment_pinned":
        pin = payload.comment_pinned
        _check_id(pin.event_id, "payload.comment_pinned.event_id")
        _check_media_text(pin, max_chars, "payload.comment_pinned")
        _check_id(pin.author.user_id, "payload.comment_pinned.author.user_id")
        _require(len(pin.author.display_name) <= 64, "payload.comment_pinned.author.display_name", "at most 64")
        check_sender_badges(pin.author.badges, "payload.comment_pinned.author.badges")
    elif kind == "comment_unpinned":
        _check_id(payload.comment_unpinned.event_id, "payload.comment_unpinned.event_id")
    elif kind == "gift":
        gift = payload.gift
        _check_id(gift.gift_id, "payload.gift.gift_id")
        _check_money(gift.unit_value, "payload.gift.unit_value")
        _check_id(gift.giver.user_id, "payload.gift.giver.user_id")
    elif kind == "purchase":
        _check_id(payload.purchase.buyer.user_id, "payload.purchase.buyer.user_id")
        _check_id(payload.purchase.product_id, "payload.purchase.product_id")
    elif kind == "product_pinned":
        _check_product(payload.product_pinned.product, "payload.product_pinned.product")
    elif kind == "product_unpinned":
        _check_id(payload.product_unpinned.product_id, "payload.product_unpinned.product_id")
    elif kind == "product_updated":
        update = payload.product_updated
        _check_id(update.product_id, "payload.product_updated.product_id")
        if update.HasField("price"):
            _check_money(update.price, "payload.product_updated.price")
    elif kind == "flash_sale_started":
        sale = payload.flash_sale_started
        _check_id(sale.sale_id, "payload.flash_sale_started.sale_id")
        _check_product(sale.product, "payload.flash_sale_started.product")
        _require(
            sale.end_time.ToMilliseconds() > sale.start_time.ToMilliseconds(),
            "payload.flash_sale_started.end_time",
            "end_time must be after start_time",
        )
    elif kind == "flash_sale_stock":
        _check_id(payload.flash_sale_stock.sale_id, "payload.flash_sale_stock.sale_id")
    elif kind == "flash_sale_ended":
        _check_id(payload.flash_sale_ended.sale_id, "payload.flash_sale_ended.sale_id")
    elif kind == "lottery_started":
        lottery = payload.lottery_started
        _check_id(lottery.lottery_id, "payload.lottery_started.lottery_id")
        _check_short_text(lottery.prize, "payload.lottery_started.prize")
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
    elif kind in ("moderator_appointed", "moderator_removed"):
        _check_id(getattr(payload, kind).user_id, f"payload.{kind}.user_id")
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


# A room's directory metadata (UpdateRoom; docs/commerce.md "Rooms as a directory").
MAX_TITLE_CHARS = 200
MAX_ROOM_ANNOUNCEMENT_CHARS = 500
MAX_LABELS = 10
LABEL = re.compile(r"[A-Za-z0-9._:-]{1,32}")


def check_room_metadata(title: str, cover_url: str, labels: Collection[str], announcement: str) -> None:
    """INVALID_FIELD naming the first field of UpdateRoomRequest that is out of bounds."""
    _require(len(title) <= MAX_TITLE_CHARS, "title", f"title is longer than {MAX_TITLE_CHARS} characters")
    _check_characters(title, "title")
    if cover_url:
        _check_image_url(cover_url, "cover_url")
    _require(len(labels) <= MAX_LABELS, "labels", f"at most {MAX_LABELS} labels")
    for label in labels:
        _require(LABEL.fullmatch(label) is not None, "labels", "each label is 1-32 characters of A-Z a-z 0-9 . _ : -")
    _require(len(set(labels)) == len(labels), "labels", "labels must not repeat")
    _require(
        len(announcement) <= MAX_ROOM_ANNOUNCEMENT_CHARS,
        "announcement",
        f"announcement is longer than {MAX_ROOM_ANNOUNCEMENT_CHARS} characters",
    )
    _check_characters(announcement, "announcement")
