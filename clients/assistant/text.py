"""Text handling for viewers' questions: normalisation, language, segmentation, and
typo-tolerant phrase matching in both languages.

- Chinese is segmented with jieba (its own Tokenizer instance, with the catalogue's
  names added as words); typos from pinyin input ("精化液" for 精华液, "包油" for 包邮)
  are caught by matching phrases on their toneless pinyin (pypinyin), as long as at
  least half of the phrase's characters match exactly.
- English words are stemmed (Snowball: "sizes" → size, "running" → run) after chat
  shorthand is expanded ("u" → you, "dis" → this, "rn" → right now), and a word the
  assistant does not know matches a known one one typo away (Damerau-Levenshtein 1, 2 for
  long words, same first letter). A word it knows ("flash") never matches another one
  ("flask") by typo.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import jieba
import snowballstemmer
from pypinyin import lazy_pinyin

from barrage.clients.assistant.catalog import Lang

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ALL_CJK = re.compile(f"(?:{_CJK.pattern})+")
_LATIN_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_SEPARATORS = re.compile(r"[\s\W_]+", re.UNICODE)

SHORTHAND: dict[str, str] = {
    "u": "you",
    "ya": "you",
    "ur": "your",
    "r": "are",
    "dis": "this",
    "dat": "that",
    "da": "the",
    "pls": "please",
    "plz": "please",
    "rn": "right now",
    "wat": "what",
    "wut": "what",
    "whats": "what is",
    "what's": "what is",
    "hw": "how",
    "abt": "about",
    "avail": "available",
    "thx": "thanks",
    "w/": "with",
    "bc": "because",
    "cuz": "because",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "got to",
    "it's": "it is",
    "its": "it is",
    "doesnt": "does not",
    "doesn't": "does not",
    "dont": "do not",
    "don't": "do not",
    "isnt": "is not",
    "isn't": "is not",
    "cant": "can not",
    "can't": "can not",
    "im": "i am",
    "i'm": "i am",
    "ship's": "ships",
}


def normalize(text: str) -> str:
    """NFKC (folds full-width letters and digits) and casefold."""
    return unicodedata.normalize("NFKC", text).casefold()


def compact(text: str) -> str:
    """Normalised, without spaces and punctuation (for matching Chinese phrases)."""
    return _SEPARATORS.sub("", normalize(text))


def cjk_count(text: str) -> int:
    return len(_CJK.findall(text))


def language(text: str) -> Lang:
    """Chinese when the text has Chinese characters at least as many as Latin words
    ("这个有XL吗" is Chinese, "is the 精华 in stock" is English)."""
    cjk = cjk_count(text)
    if cjk == 0:
        return "en"
    words = len(_LATIN_WORD.findall(_CJK.sub(" ", normalize(text))))
    return "zh" if cjk >= words else "en"


_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=16384)
def stem(word: str) -> str:
    return str(_STEMMER.stemWord(word)) if word.isalpha() else word


def raw_words(text: str) -> list[str]:
    """Lower-case Latin words and numbers, with chat shorthand expanded."""
    words: list[str] = []
    for word in _LATIN_WORD.findall(normalize(text).replace("’", "'")):
        words.extend(SHORTHAND.get(word, word).split())
    return words


def latin_words(text: str) -> list[str]:
    """Stemmed lower-case Latin words and numbers, with chat shorthand expanded."""
    return [stem(word) for word in raw_words(text)]


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, capped at limit + 1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def word_matches(query_word: str, phrase_word: str) -> bool:
    """Equal, or a likely typo of it (never for numbers): two letters swapped from 4
    letters ("sise" is not "size", but "szie" is), one edit from 5, two from 8; the
    first letter must be right unless it is swapped with the second."""
    if query_word == phrase_word:
        return True
    if phrase_word.isdigit() or query_word.isdigit() or len(phrase_word) < 4 or len(query_word) < 3:
        return False
    if query_word[0] != phrase_word[0] and query_word[:2] != phrase_word[1::-1]:
        return False
    if len(phrase_word) == 4:
        return sorted(query_word) == sorted(phrase_word) and edit_distance(query_word, phrase_word, 1) <= 1
    allowed = 2 if len(phrase_word) >= 8 else 1
    return edit_distance(query_word, phrase_word, allowed) <= allowed


@lru_cache(maxsize=16384)
def char_pinyin(char: str) -> str:
    """Toneless pinyin of one character (its default reading), or the character itself.

    Character by character, not by context: a query and a phrase must read a polyphone
    (还: hai/huan) the same way for their pinyin to be compared."""
    return lazy_pinyin(char)[0] if _CJK.match(char) else char


def pinyin_of(chars: str) -> tuple[str, ...]:
    return tuple(char_pinyin(ch) for ch in chars)


@dataclass(frozen=True)
class Query:
    """A viewer's text prepared once for all the matching the assistant does on it."""

    raw: str
    norm: str
    flat: str
    """Normalised, without spaces or punctuation."""
    words: tuple[str, ...]
    """Latin words, shorthand expanded, stemmed."""
    typed: tuple[str, ...] = field(repr=False)
    """The same words unstemmed (typos are judged on what was typed)."""
    flat_pinyin: tuple[str, ...] = field(repr=False)
    """Pinyin of each character of `flat` (non-Chinese characters as themselves)."""
    known: frozenset[str] = frozenset()
    """Stems of the query that are words the assistant knows: they only match exactly."""

    @staticmethod
    def of(text: str, known: frozenset[str] | set[str] = frozenset()) -> Query:
        flat = compact(text)
        raw = tuple(raw_words(text))
        words = tuple(stem(word) for word in raw)
        return Query(
            text, normalize(text), flat, words, raw, pinyin_of(flat), frozenset(w for w in words if w in known)
        )

    def word_matches(self, index: int, phrase_stem: str, phrase_raw: str) -> bool:
        """Whether the query's word at `index` is the phrase word (or a typo of it)."""
        word = self.words[index]
        if word == phrase_stem:
            return True
        return word not in self.known and word_matches(self.typed[index], phrase_raw)

    def token_matches(self, token: str, phrase_stem: str, phrase_raw: str) -> bool:
        """The same for a word that is not at a known position (residual tokens)."""
        if stem(token) == phrase_stem:
            return True
        return stem(token) not in self.known and word_matches(token, phrase_raw)


@dataclass(frozen=True)
class Phrase:
    """A word or phrase to look for in a query, in either language.

    Chinese phrases (any Chinese character) match as a substring of the query without
    separators, or by pinyin when at least half of the characters are exact; Latin
    phrases match as a run of words, each tolerating a typo. `regex` phrases (written
    `re:...`) match the normalised text as a regular expression.
    """

    text: str
    flat: str
    words: tuple[str, ...]
    """Stemmed."""
    raw: tuple[str, ...]
    pinyin: tuple[str, ...]
    """Empty: no pinyin matching (not all Chinese, or exact only)."""
    pattern: re.Pattern[str] | None
    gapped: re.Pattern[str] | None = None
    """Chinese phrases of 3+ characters also match with one character slipped in
    ("多大瓶" in "多大一瓶", "几天到" in "几天能到")."""

    @staticmethod
    def of(text: str, *, exact: bool = False) -> Phrase:
        """`exact`: Chinese only as written (for short function words like 那个, whose
        pinyin equals the question word 哪个)."""
        if text.startswith("re:"):
            return Phrase(text, "", (), (), (), re.compile(text[3:]))
        flat = compact(text)
        is_cjk = bool(_CJK.search(flat))
        syllables = pinyin_of(flat) if is_cjk and not exact and _ALL_CJK.fullmatch(flat) else ()
        raw = () if is_cjk else tuple(raw_words(text))
        gapped = None
        if syllables and len(flat) >= 3:
            gap = f"(?:{_CJK.pattern})"
            gapped = re.compile("|".join(re.escape(flat[:i]) + gap + re.escape(flat[i:]) for i in range(1, len(flat))))
        return Phrase(text, flat, tuple(stem(w) for w in raw), raw, syllables, None, gapped)

    @property
    def weight(self) -> float:
        """How specific a match is: Chinese characters count 1, Latin words 2."""
        if self.pattern is not None:
            return 2.0
        if self.words:
            return 2.0 * len(self.words)
        return float(len(self.flat))

    def found_in(self, query: Query) -> bool:
        if self.pattern is not None:
            return bool(self.pattern.search(query.norm))
        if self.words:
            return _has_run(query, self)
        if not self.flat:
            return False
        if self.flat in query.flat:
            return True
        if self.gapped is not None and self.gapped.search(query.flat):
            return True
        return len(self.pinyin) >= 2 and _pinyin_run(query, self)


def _has_run(query: Query, phrase: Phrase) -> bool:
    n = len(phrase.words)
    for start in range(len(query.words) - n + 1):
        if all(query.word_matches(start + k, phrase.words[k], phrase.raw[k]) for k in range(n)):
            return True
    return False


def _pinyin_run(query: Query, phrase: Phrase) -> bool:
    n = len(phrase.pinyin)
    syllables = query.flat_pinyin
    for start in range(len(syllables) - n + 1):
        if syllables[start : start + n] == phrase.pinyin:
            exact = sum(1 for k in range(n) if query.flat[start + k] == phrase.flat[k])
            if exact * 2 >= n:
                return True
    return False


def best_match(query: Query, phrases: Iterable[Phrase]) -> Phrase | None:
    """The most specific phrase found in the query."""
    best: Phrase | None = None
    for phrase in phrases:
        if (best is None or phrase.weight > best.weight) and phrase.found_in(query):
            best = phrase
    return best


class Segmenter:
    """jieba segmentation for ranking (Chinese words plus Latin words), with a private
    dictionary: the catalogue's names are added as words so they stay whole."""

    _lock = threading.Lock()

    def __init__(self, extra_words: Iterable[str] = ()) -> None:
        jieba.setLogLevel(logging.WARNING)
        self._tokenizer = jieba.Tokenizer()
        with self._lock:
            self._tokenizer.initialize()
        for word in map(compact, extra_words):
            if _CJK.search(word):
                self._tokenizer.add_word(word)

    def tokens(self, text: str, *, stemmed: bool = True) -> list[str]:
        """Search-mode segmentation: long words and their parts ("精华液" → 精华, 精华液),
        then the Latin words (stemmed unless asked not to)."""
        out: list[str] = []
        norm = normalize(text)
        for chunk in re.split(r"[^\u3400-\u9fff\uf900-\ufaff]+", norm):
            if chunk:
                out.extend(t for t in self._tokenizer.cut_for_search(chunk) if t.strip())
        rest = _CJK.sub(" ", norm)
        out.extend(latin_words(rest) if stemmed else raw_words(rest))
        return out
