"""Blocked-word matching that case and full-width characters do not fool.

Text and words are normalised the same way (Unicode NFKC, which folds full-width
"ＳＰＡＭ" to "SPAM", then casefold), spaces and common separators are dropped so
"s p a m" still matches, and all words are matched in one pass with an Aho-Corasick
automaton (pyahocorasick), so thousands of words cost no more than a few.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import ahocorasick

_SEPARATORS = re.compile(r"[\s._\-*·•|/\\]+")


def normalise(text: str) -> str:
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).casefold())


class WordFilter:
    def __init__(self, words: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        for word in words:
            key = normalise(word)
            if key:
                self._automaton.add_word(key, word)
        self._empty = len(self._automaton) == 0
        if not self._empty:
            self._automaton.make_automaton()

    @classmethod
    def from_file(cls, path: str) -> WordFilter:
        """One word or phrase per line; blank lines and lines starting with # are ignored."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))

    def find(self, text: str) -> str | None:
        """The first blocked word in the text, or None."""
        if self._empty:
            return None
        for _, word in self._automaton.iter(normalise(text)):
            return str(word)
        return None
