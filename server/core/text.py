"""What user text is stored as, and what is refused (docs/protocol.md, "Limits").

The reference is Unicode's security guidance: UTS #39 (security mechanisms: default
ignorables and runs of nonspacing marks), UTS #55 (source-code spoofing: bidi
controls), UAX #15 (normalization, stream-safe text: bounded runs of marks).

- The server normalises to NFC (the form every platform renders and compares) and trims
  leading and trailing blanks (white space and invisible fillers), then stores that.
- Text that is only blanks or invisible characters (ZERO WIDTH SPACE, ZERO WIDTH
  JOINER, BOM, HANGUL FILLER, variation selectors ...) is empty.
- Bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) are refused:
  they can make what others see differ from what was typed (U+202E reverses it); the
  implicit marks (LRM, RLM, ALM) that mixed-direction text needs are kept.
- A run of more than MAX_COMBINING_RUN combining marks is refused ("Zalgo" text that
  paints over neighbouring lines); real scripts stack a handful at most.
"""

from __future__ import annotations

import unicodedata

MAX_COMBINING_RUN = 8
"""Longest run of combining marks (categories Mn, Me) one character may carry."""

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""LRE RLE PDF LRO RLO and LRI RLI FSI PDI."""

# Characters that render as nothing, or as blank space, and are not white space to
# str.isspace(): default ignorables (UTS #39, DerivedCoreProperties) and the fillers
# that are used to fake empty names and messages.
_BLANK_FILLERS = frozenset(
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u2800"  # braille pattern blank
    "\u180e"  # Mongolian vowel separator
    "\u200b\u200c\u200d\u2060\ufeff"  # zero width space / non-joiner / joiner, word joiner, BOM
    "\u034f"  # combining grapheme joiner
    "\u17b4\u17b5"  # Khmer inherent vowels
)
_TRIM = "".join(sorted(_BLANK_FILLERS - {"\u034f"}))


def is_invisible(char: str) -> bool:
    """True for white space and characters that draw nothing on their own."""
    if char.isspace() or char in _BLANK_FILLERS:
        return True
    category = unicodedata.category(char)
    if category == "Cf":  # format characters: LRM, tags, soft hyphen, ...
        return True
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or 0x180B <= code <= 0x180F  # variation selectors


def normalize(text: str) -> str:
    """The form the server stores: NFC, without leading and trailing blanks."""
    text = unicodedata.normalize("NFC", text)
    return text.strip().strip(_TRIM).strip()


def is_blank(text: str) -> bool:
    """True when nothing in the text would be visible."""
    return all(is_invisible(char) for char in text)


def bidi_control(text: str) -> str | None:
    """The first bidi embedding/override/isolate in the text, if any."""
    for char in text:
        if char in BIDI_CONTROLS:
            return char
    return None


def longest_combining_run(text: str) -> int:
    """The longest run of consecutive combining marks (Mn or Me)."""
    longest = run = 0
    for char in text:
        if unicodedata.category(char) in ("Mn", "Me"):
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    return longest
