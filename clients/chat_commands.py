"""Slash commands of `barrage chat`: what a participant can do besides commenting.

Each command builds the Payload the app would send; the server decides whether this
user may send it in this room (its refusal is shown like any refused send).
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import duration_pb2, timestamp_pb2

from barrage.clients.chat_view import RoomView
from barrage.v1 import event_pb2


class UsageError(ValueError):
    """The command's arguments are wrong; the message says how to write it."""


@dataclass(frozen=True)
class Command:
    usage: str
    help: str
    staff: bool
    build: Callable[[list[str], RoomView], event_pb2.Payload]


def _timestamp_in(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(int((time.time() + seconds) * 1000))
    return ts


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what} must be a number, not {text!r}") from None
    if value < 0:
        raise UsageError(f"{what} must not be negative")
    return value


def _price(text: str, currency: str = "CNY") -> event_pb2.Money:
    return event_pb2.Money(amount_minor=round(_number(text, "price") * 100), currency=currency)


def _need(args: list[str], count: int, usage: str) -> None:
    if len(args) < count:
        raise UsageError(f"usage: {usage}")


def _like(args: list[str], _view: RoomView) -> event_pb2.Payload:
    count = int(_number(args[0], "count")) if args else 1
    return event_pb2.Payload(like=event_pb2.Like(count=max(1, min(count, 100))))


def _vote(args: list[str], view: RoomView) -> event_pb2.Payload:
    poll = view.open_poll()
    if poll is None:
        raise UsageError("no poll is open")
    _need(args, 1, "/vote N")
    option = int(_number(args[0], "N")) - 1
    if not 0 <= option < len(poll.options):
        raise UsageError(f"choose 1 to {len(poll.options)}")
    return event_pb2.Payload(poll_vote=event_pb2.PollVote(poll_id=poll.poll_id, option=option))


def _enter(_args: list[str], view: RoomView) -> event_pb2.Payload:
    lottery = view.open_lottery()
    if lottery is None:
        raise UsageError("no lottery is open")
    return event_pb2.Payload(lottery_entry=event_pb2.LotteryEntry(lottery_id=lottery.lottery_id))


def _pin(args: list[str], _view: RoomView) -> event_pb2.Payload:
    _need(args, 3, "/pin PRODUCT_ID PRICE TITLE...")
    product = event_pb2.Product(product_id=args[0], price=_price(args[1]), title=" ".join(args[2:]))
    return event_pb2.Payload(product_pinned=event_pb2.ProductPinned(product=product))


def _unpin(args: list[str], _view: RoomView) -> event_pb2.Payload:
    _need(args, 1, "/unpin PRODUCT_ID")
    return event_pb2.Payload(product_unpinned=event_pb2.ProductUnpinned(product_id=args[0]))


def _flash(args: list[str], _view: RoomView) -> event_pb2.Payload:
    _need(args, 5, "/flash PRODUCT_ID PRICE STOCK MINUTES TITLE...")
    product = event_pb2.Product(product_id=args[0], price=_price(args[1]), title=" ".join(args[4:]))
    sale = event_pb2.FlashSaleStarted(
        sale_id=f"sale-{uuid.uuid4().hex[:8]}",
        product=product,
        stock=int(_number(args[2], "STOCK")),
        start_time=_timestamp_in(0),
        end_time=_timestamp_in(60 * _number(args[3], "MINUTES")),
    )
    return event_pb2.Payload(flash_sale_started=sale)


def _poll(args: list[str], _view: RoomView) -> event_pb2.Payload:
    usage = '/poll MINUTES "QUESTION" OPTION OPTION...'
    _need(args, 4, usage)
    poll = event_pb2.PollStarted(
        poll_id=f"poll-{uuid.uuid4().hex[:8]}",
        question=args[1],
        options=args[2:],
        end_time=_timestamp_in(60 * _number(args[0], "MINUTES")),
    )
    return event_pb2.Payload(poll_started=poll)


def _lottery(args: list[str], _view: RoomView) -> event_pb2.Payload:
    _need(args, 3, "/lottery MINUTES WINNERS PRIZE... [--keyword WORD]")
    keyword = ""
    if "--keyword" in args:
        at = args.index("--keyword")
        keyword = " ".join(args[at + 1 : at + 2])
        args = args[:at] + args[at + 2 :]
    lottery = event_pb2.LotteryStarted(
        lottery_id=f"lottery-{uuid.uuid4().hex[:8]}",
        prize=" ".join(args[2:]),
        winners_count=int(_number(args[1], "WINNERS")),
        end_time=_timestamp_in(60 * _number(args[0], "MINUTES")),
        keyword=keyword,
    )
    return event_pb2.Payload(lottery_started=lottery)


def _mute(args: list[str], _view: RoomView) -> event_pb2.Payload:
    _need(args, 2, "/mute USER_ID MINUTES [REASON...]")
    muted = event_pb2.UserMuted(
        user_id=args[0], until=_timestamp_in(60 * _number(args[1], "MINUTES")), reason=" ".join(args[2:])
    )
    return event_pb2.Payload(user_muted=muted)


def _ban(args: list[str], _view: RoomView) -> event_pb2.Payload:
    _need(args, 1, "/ban USER_ID [REASON...]")
    return event_pb2.Payload(user_banned=event_pb2.UserBanned(user_id=args[0], reason=" ".join(args[1:])))


def _delete(args: list[str], _view: RoomView) -> event_pb2.Payload:
    _need(args, 1, "/delete EVENT_ID [REASON...]")
    return event_pb2.Payload(message_deleted=event_pb2.MessageDeleted(event_id=args[0], reason=" ".join(args[1:])))


def _slow(args: list[str], _view: RoomView) -> event_pb2.Payload:
    _need(args, 1, "/slow SECONDS (0: off)")
    interval = duration_pb2.Duration()
    interval.FromMilliseconds(int(_number(args[0], "SECONDS") * 1000))
    return event_pb2.Payload(slow_mode=event_pb2.SlowMode(min_interval=interval))


STAFF_AUDIENCE = "staff"
"""`/w staff TEXT`: a whisper to the room's staff (the only one a viewer may send)."""


def whisper(line: str) -> event_pb2.Payload:
    """`/w USER TEXT...`: a private message to one user, or to the staff (USER "staff").

    The text is the rest of the line as typed (no shell quoting), so apostrophes and
    quotes go through unchanged."""
    parts = line.split(None, 2)
    if len(parts) < 3 or not parts[2].strip():
        raise UsageError("usage: /w USER TEXT... (USER: a user id, or staff)")
    target, text = parts[1], parts[2]
    if target.lower() == STAFF_AUDIENCE:
        return event_pb2.Payload(whisper=event_pb2.Whisper(text=text, to_staff=True))
    return event_pb2.Payload(whisper=event_pb2.Whisper(text=text, recipient_user_id=target))


def _whisper(args: list[str], _view: RoomView) -> event_pb2.Payload:
    # parse() builds /w from the raw line; this is for callers holding split words.
    return whisper(" ".join(["/w", *args]))


COMMANDS: dict[str, Command] = {
    "w": Command("/w USER|staff TEXT...", "a private message (viewers: /w staff only)", False, _whisper),
    "like": Command("/like [N]", "tap like (N times)", False, _like),
    "vote": Command("/vote N", "vote for option N of the open poll", False, _vote),
    "enter": Command("/enter", "enter the open lottery", False, _enter),
    "pin": Command("/pin PRODUCT_ID PRICE TITLE...", "pin a product card", True, _pin),
    "unpin": Command("/unpin PRODUCT_ID", "take the product card down", True, _unpin),
    "flash": Command("/flash PRODUCT_ID PRICE STOCK MINUTES TITLE...", "start a flash sale", True, _flash),
    "poll": Command('/poll MINUTES "QUESTION" OPTION OPTION...', "open a poll", True, _poll),
    "lottery": Command("/lottery MINUTES WINNERS PRIZE... [--keyword W]", "start a lottery", True, _lottery),
    "mute": Command("/mute USER_ID MINUTES [REASON]", "mute a user", True, _mute),
    "ban": Command("/ban USER_ID [REASON]", "remove a user from the room", True, _ban),
    "delete": Command("/delete EVENT_ID [REASON]", "delete a message", True, _delete),
    "slow": Command("/slow SECONDS", "slow mode (0: off)", True, _slow),
}


def help_text(staff: bool) -> str:
    lines = ["commands:"]
    for command in COMMANDS.values():
        if staff or not command.staff:
            lines.append(f"  {command.usage:<48} {command.help}")
    lines.append(f"  {'/help':<48} this list")
    lines.append(f"  {'/quit':<48} leave the chat")
    return "\n".join(lines)


def parse(line: str, view: RoomView) -> event_pb2.Payload:
    """The payload a /command line stands for; UsageError when it cannot be built."""
    if line[1:].split(None, 1)[:1] in (["w"], ["W"]):
        return whisper(line)
    try:
        words = shlex.split(line[1:])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not words:
        raise UsageError("type /help for the commands")
    command = COMMANDS.get(words[0].lower())
    if command is None:
        raise UsageError(f"unknown command /{words[0]}: type /help for the list")
    return command.build(words[1:], view)
