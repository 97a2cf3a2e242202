"""What `barrage chat` shows: one line per event, the way a live-room app would show it.

A `RoomView` remembers what later events refer to (poll options, product titles,
lotteries) so a vote reads "Bob voted Red" and a draw names its prize, and keeps the
room's like count for the status line instead of printing every burst.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from barrage.clients.sdk import Omitted, ResumeGap, SubscriptionEnded
from barrage.clients.sdk.items import RoomItem
from barrage.v1 import event_pb2

_CURRENCY_SIGNS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_BAR_WIDTH = 20


def money(value: event_pb2.Money) -> str:
    sign = _CURRENCY_SIGNS.get(value.currency)
    amount = f"{value.amount_minor / 100:,.2f}".removesuffix(".00")
    return f"{sign}{amount}" if sign else f"{amount} {value.currency}".strip()


def _who(sender: event_pb2.Sender) -> str:
    return sender.display_name or sender.user_id or "someone"


def _clock(ts: event_pb2.Event) -> str:
    return datetime.fromtimestamp(ts.publish_time.ToMilliseconds() / 1000, UTC).astimezone().strftime("%H:%M:%S")


def _bars(options: list[str], counts: list[int]) -> list[str]:
    total = sum(counts) or 1
    width = max((len(option) for option in options), default=0)
    lines = []
    for index, option in enumerate(options):
        count = counts[index] if index < len(counts) else 0
        filled = round(_BAR_WIDTH * count / total)
        lines.append(f"    {option:<{width}} {'█' * filled}{'░' * (_BAR_WIDTH - filled)} {count}")
    return lines


@dataclass
class RoomView:
    """Formats a room's items for a terminal and keeps the little state that takes."""

    polls: dict[str, event_pb2.PollStarted] = field(default_factory=dict)
    lotteries: dict[str, event_pb2.LotteryStarted] = field(default_factory=dict)
    products: dict[str, str] = field(default_factory=dict)
    likes: int = 0
    viewers: int = 0
    names: dict[str, str] = field(default_factory=dict)
    """user id -> display name, from the events seen, so winners and mutes read as names."""

    def open_poll(self) -> event_pb2.PollStarted | None:
        return next(reversed(self.polls.values()), None)

    def open_lottery(self) -> event_pb2.LotteryStarted | None:
        return next(reversed(self.lotteries.values()), None)

    def status(self) -> str:
        return f"♥ {self.likes:,}   👤 {self.viewers:,}"

    def name(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)

    def format(self, item: RoomItem) -> str | None:
        """The text to show (several lines for polls), or None for what updates in place."""
        if isinstance(item, Omitted):
            return f"  … {item.count} messages skipped (busy room)"
        if isinstance(item, ResumeGap):
            return "  … could not catch up after the connection came back: some messages may be missing"
        if isinstance(item, SubscriptionEnded):
            return f"*** left the room: {item.error}" if item.error else "*** left the room"
        if item.sender.user_id and item.sender.display_name:
            self.names[item.sender.user_id] = item.sender.display_name
        text = self._event(item)
        return None if text is None else f"[{_clock(item)}] {text}"

    def _event(self, event: event_pb2.Event) -> str | None:
        p = event.payload
        kind = p.WhichOneof("kind")
        who = _who(event.sender)
        if kind == "comment":
            return f"{who}: {p.comment.text}"
        if kind == "announcement":
            return f"📢 {who}: {p.announcement.text}"
        if kind == "whisper":
            # Shown apart from the public chat: only its audience ever receives one.
            w = p.whisper
            to = "staff" if w.to_staff else self.name(w.recipient_user_id)
            return f"🔒 [whisper] {who} → {to}: {w.text}"
        if kind == "gift":
            g = p.gift
            giver = _who(g.giver) if g.giver.user_id else who
            total = event_pb2.Money(amount_minor=g.unit_value.amount_minor * g.count, currency=g.unit_value.currency)
            return f"🎁 {giver} sent {g.count} × {g.gift_name or g.gift_id} ({money(total)})"
        if kind == "product_pinned":
            product = p.product_pinned.product
            self.products[product.product_id] = product.title
            stock = f" · {product.stock} left" if product.stock else ""
            return f"🛒 now selling: {product.title} — {money(product.price)}{stock}"
        if kind == "product_unpinned":
            return f"🛒 {self.products.get(p.product_unpinned.product_id, p.product_unpinned.product_id)} taken down"
        if kind == "flash_sale_started":
            sale = p.flash_sale_started
            self.products[sale.product.product_id] = sale.product.title
            ends = datetime.fromtimestamp(sale.end_time.seconds, UTC).astimezone().strftime("%H:%M:%S")
            limit = f", {sale.limit_per_user} per person" if sale.limit_per_user else ""
            price = money(sale.product.price)
            return f"⚡ flash sale: {sale.product.title} at {price}, {sale.stock} in stock{limit}, until {ends}"
        if kind == "flash_sale_ended":
            ended = p.flash_sale_ended
            return f"⚡ flash sale over: {'sold out' if ended.sold_out else 'time is up'} ({ended.sold} sold)"
        if kind == "purchase":
            buy = p.purchase
            title = buy.product_title or self.products.get(buy.product_id, buy.product_id)
            return f"🛍 {_who(buy.buyer)} just bought {buy.quantity} × {title}"
        if kind == "lottery_started":
            lottery = p.lottery_started
            self.lotteries[lottery.lottery_id] = lottery
            how = f'comment "{lottery.keyword}" or type /enter' if lottery.keyword else "type /enter"
            return f"🎰 lottery: {lottery.winners_count} × {lottery.prize} — {how} to join"
        if kind == "lottery_entry":
            return f"🎰 {who} joined the lottery"
        if kind == "lottery_drawn":
            drawn = p.lottery_drawn
            started = self.lotteries.pop(drawn.lottery_id, None)
            prize = f" {started.prize}" if started is not None else ""
            winners = ", ".join(self.name(user) for user in drawn.winner_user_ids) or "nobody (no entries)"
            return f"🎉 lottery{prize} drawn among {len(drawn.entrant_user_ids)}: {winners}"
        if kind == "poll_started":
            poll = p.poll_started
            self.polls[poll.poll_id] = poll
            choices = "  ".join(f"{index + 1}) {option}" for index, option in enumerate(poll.options))
            return f"📊 poll: {poll.question}   {choices}   (/vote N)"
        if kind == "poll_vote":
            voted = self.polls.get(p.poll_vote.poll_id)
            option = p.poll_vote.option
            chosen = voted.options[option] if voted is not None and option < len(voted.options) else f"#{option + 1}"
            return f"📊 {who} voted {chosen}"
        if kind == "poll_ended":
            closed = self.polls.pop(p.poll_ended.poll_id, None)
            counts = list(p.poll_ended.counts)
            options = list(closed.options) if closed is not None else [f"#{i + 1}" for i in range(len(counts))]
            title = closed.question if closed is not None else "poll"
            return "\n".join([f"📊 {title} — final:", *_bars(options, counts)])
        if kind == "user_muted":
            muted = p.user_muted
            until = datetime.fromtimestamp(muted.until.seconds, UTC).astimezone().strftime("%H:%M")
            reason = f" ({muted.reason})" if muted.reason else ""
            return f"🔇 {self.name(muted.user_id)} muted until {until} by {who}{reason}"
        if kind == "user_banned":
            banned = p.user_banned
            reason = f" ({banned.reason})" if banned.reason else ""
            return f"⛔ {self.name(banned.user_id)} removed by {who}{reason}"
        if kind == "message_deleted":
            return f"🗑 a message was deleted by {who}"
        if kind == "slow_mode":
            seconds = p.slow_mode.min_interval.ToTimedelta().total_seconds()
            return f"🐢 slow mode: one comment every {seconds:g} s" if seconds else "🐢 slow mode off"
        if kind == "room_closed":
            reason = p.room_closed.reason
            return "*** the room was closed" + (f": {reason}" if reason else "")
        if kind == "like_burst":
            self.likes = max(self.likes, p.like_burst.total)
        elif kind == "viewer_count":
            self.viewers = p.viewer_count.viewers
        # Other ephemeral updates (stock, tallies, presence) and kinds this version does not know.
        return None
