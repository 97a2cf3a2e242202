"""What user text is stored as and what is refused (docs/protocol.md, "Limits").

Unit rules first (server/core/policy.py, server/core/text.py), then the same rules seen
by a client of a real node: the stored text is the normalised one.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator

import pytest

from barrage.server.core import policy
from barrage.server.core.errors import ApiError
from barrage.v1 import event_pb2
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, error_info

MAX = 500


def prepared_comment(text: str) -> event_pb2.Payload:
    payload = event_pb2.Payload(comment=event_pb2.Comment(text=text))
    policy.prepare_payload(payload)
    return payload


def refusal(text: str) -> tuple[str, str]:
    """(reason, message) of the refusal of a comment with this text."""
    with pytest.raises(ApiError) as caught:
        policy.check_payload(prepared_comment(text), MAX)
    return caught.value.reason, caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "\u200b",  # zero width space
        "\u200d\u200d\u200d",  # zero width joiners
        "\ufeff",  # byte order mark
        "\u3164\u3164",  # Hangul filler
        "\u115f\u1160\uffa0",  # more Hangul fillers
        "\u2800",  # braille blank
        " \u200b \u2060 \u00ad ",  # spaces, word joiner, soft hyphen
        "\ufe0f\u034f",  # a variation selector and a grapheme joiner with nothing to join
        "\u200e\u200f",  # direction marks alone
    ],
)
def test_text_with_nothing_visible_is_empty(text: str) -> None:
    assert refusal(text)[0] == "TEXT_EMPTY"


@pytest.mark.parametrize("control", list("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
def test_bidi_embeddings_overrides_and_isolates_are_refused(control: str) -> None:
    reason, message = refusal(f"price {control}001$ only")
    assert reason == "INVALID_FIELD"
    assert f"U+{ord(control):04X}" in message


def test_a_right_to_left_override_cannot_hide_inside_an_otherwise_valid_comment() -> None:
    assert refusal("nice \u202egnp.exe")[0] == "INVALID_FIELD"


def test_combining_marks_are_bounded_per_character() -> None:
    eight = "x" + "\u0301" * 8
    policy.check_payload(prepared_comment(eight), MAX)  # the limit itself is fine
    reason, message = refusal("x" + "\u0301" * 9)
    assert reason == "INVALID_FIELD"
    assert "combining marks" in message
    assert refusal("z" + "\u0336" * 499)[0] == "INVALID_FIELD"  # the audit's 499 marks on one letter


@pytest.mark.parametrize(
    "text",
    [
        "مرحبا hello שלום",  # mixed directions need no controls
        "\u200fمرحبا\u200f 42",  # implicit marks are allowed
        "👨\u200d👩\u200d👧 family",  # joiners inside an emoji sequence
        "❤\ufe0f",  # a heart with its emoji presentation selector
        "Tiếng Việt có dấu",  # stacked Vietnamese marks
        "नमस्ते",  # Devanagari with its signs
        "line one\nline two\twith tab",
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland: tag characters
    ],
)
def test_real_text_in_any_script_passes(text: str) -> None:
    payload = prepared_comment(text)
    assert policy.check_payload(payload, MAX) == "comment"
    assert payload.comment.text == unicodedata.normalize("NFC", text).strip()


def test_the_server_stores_nfc_and_trims_blanks_and_invisible_fillers_at_the_ends() -> None:
    decomposed = "cafe\u0301"
    payload = prepared_comment(f" \u200b\u3164 {decomposed} \ufeff\n")
    assert payload.comment.text == "caf\u00e9"


def test_length_is_counted_after_normalising_and_trimming() -> None:
    # 500 decomposed é (1000 code points) are 500 characters once composed.
    policy.check_payload(prepared_comment("e\u0301" * MAX), MAX)
    policy.check_payload(prepared_comment("   " + "x" * MAX + "   "), MAX)
    assert refusal("x" * (MAX + 1))[0] == "TEXT_TOO_LONG"


def test_poll_and_lottery_texts_follow_the_same_rules() -> None:
    poll = event_pb2.Payload(
        poll_started=event_pb2.PollStarted(poll_id="p1", question=" Which? ", options=["red\u200b", "\u200b"])
    )
    policy.prepare_payload(poll)
    assert poll.poll_started.question == "Which?"
    with pytest.raises(ApiError) as caught:
        policy.check_payload(poll, MAX)
    assert caught.value.metadata["field"] == "payload.poll_started.options"
    started = event_pb2.LotteryStarted(lottery_id="l1", prize="TV\u202e", winners_count=1)
    prize = event_pb2.Payload(lottery_started=started)
    policy.prepare_payload(prize)
    with pytest.raises(ApiError) as caught:
        policy.check_payload(prize, MAX)
    assert caught.value.metadata["field"] == "payload.lottery_started.prize"


# ----------------------------------------------------------- over the wire


@pytest.fixture
async def alice(server: ServerProcess, room_id: str) -> AsyncIterator[RawStream]:
    admin = Admin(server.target, server.token("ops", role="service"))
    await admin.create_room(room_id)
    await admin.close()
    stream = RawStream(server.target)
    await stream.hello(server.token("alice"))
    await stream.join(room_id)
    yield stream
    await stream.close()


async def test_a_node_refuses_invisible_and_spoofing_text_and_stores_the_normalised_form(
    server: ServerProcess, room_id: str, alice: RawStream
) -> None:
    empty = await alice.send_comment(room_id, "zw", "\u200b\u200d\ufeff\u3164")
    assert error_info(empty.status).reason == "TEXT_EMPTY"
    spoof = await alice.send_comment(room_id, "rlo", "hi \u202eevil")
    assert error_info(spoof.status).reason == "INVALID_FIELD"
    ok = await alice.send_comment(room_id, "nfc", "  cafe\u0301 \u200b")
    assert ok.status.code == 0
    admin = Admin(server.target, server.token("ops", role="service"))
    try:
        stored = await admin.all_events(room_id, "comment")
    finally:
        await admin.close()
    assert [e.payload.comment.text for e in stored] == ["caf\u00e9"]
