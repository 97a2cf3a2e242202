"""Text for room insights: normalisation, segmentation, phrase matching, question signatures.

- Normalised text: Unicode NFKC (folds full-width letters, digits and punctuation) and
  casefold, so "ＨＯＷ　ＭＵＣＨ？" reads as "how much?".
- Segmentation: jieba-rs through `rjieba` (a maintained Rust port of jieba with its
  dictionary built in; ~1 µs a comment). Its default dictionary is never changed at run
  time, so a room's fold does not depend on what other rooms did (rebuilds are exact).
- Phrases (intents, answer cues, product aliases) are matched in one regex pass each:
  phrases with Chinese characters as substrings of the *compact* text (no spaces or
  punctuation: "多 少 钱" still says 多少钱), Latin phrases as whole words of the
  *spaced* text, an optional plural "s"/"es" allowed ("prices", "lipsticks").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import rjieba

from barrage.server.insights.lexicon import ANSWER_CUES, DEICTIC, GENERIC_TITLE_WORDS, INTENTS, STOP_WORDS

_SEPARATORS = re.compile(r"[\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_PHRASE = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*")
_WORD = re.compile(r"\w", re.UNICODE)


def normalize(text: str) -> str:
    """NFKC and casefold."""
    return unicodedata.normalize("NFKC", text).casefold()


def compact(normalized: str) -> str:
    """Without spaces, punctuation and symbols (for Chinese phrases)."""
    return _SEPARATORS.sub("", normalized)


_SCRIPT_EDGE = re.compile(r"(?<=[\u3400-\u9fff])(?=[a-z0-9])|(?<=[a-z0-9])(?=[\u3400-\u9fff])")


def spaced(normalized: str) -> str:
    """Words separated by single spaces, padded with one space each side (for Latin phrases).
    A change between Chinese and Latin letters or digits separates words too ("999还有吗")."""
    return f" {_SCRIPT_EDGE.sub(' ', _SEPARATORS.sub(' ', normalized)).strip()} "


def is_cjk(token: str) -> bool:
    return _CJK.search(token) is not None


def segment(normalized: str) -> list[str]:
    """Words of a normalised text (jieba), without spaces and punctuation."""
    return [token for token in rjieba.cut(normalized) if _WORD.search(token)]


def singular(word: str) -> str:
    """English plural to singular, roughly: "prices" -> "price", "boxes" -> "box", "glass" stays."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "shes", "ches")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class PhraseMatcher:
    """Finds which labels' phrases occur in a text, in order of first occurrence."""

    def __init__(self, phrases: Mapping[str, Iterable[str]]) -> None:
        self._label: dict[str, str] = {}
        cjk: list[str] = []
        latin: list[str] = []
        symbols: list[str] = []
        for label, words in phrases.items():
            for phrase in words:
                key = normalize(phrase).strip()
                if not key or key in self._label:
                    continue
                if is_cjk(key):
                    key = compact(key)
                    cjk.append(key)
                elif _LATIN_PHRASE.fullmatch(key):
                    key = " ".join(singular(w) for w in key.split())
                    latin.append(key)
                else:
                    symbols.append(key)
                self._label.setdefault(key, label)
        self._cjk = _alternation(cjk, r"", r"")
        self._latin = _alternation(latin, r"(?<= )", r"(?:s|es)?(?= )")
        self._symbols = _alternation(symbols, r"", r"")

    def find(self, normalized: str) -> list[str]:
        """Labels found, each once, ordered by where they first occur (relative position)."""
        hits: dict[str, float] = {}
        for pattern, text in ((self._cjk, compact(normalized)), (self._latin, spaced(normalized))):
            if pattern is None or not text:
                continue
            for match in pattern.finditer(text):
                phrase = match.group(0)
                label = (
                    self._label.get(phrase)
                    or self._label.get(phrase.removesuffix("es"))
                    or self._label.get(phrase.removesuffix("s"))
                )
                if label is not None and label not in hits:
                    hits[label] = match.start() / len(text)
        if self._symbols is not None:
            for match in self._symbols.finditer(normalized):
                label = self._label[match.group(0)]
                hits.setdefault(label, match.start() / max(1, len(normalized)))
        return sorted(hits, key=lambda label: (hits[label], label))


def _alternation(phrases: list[str], before: str, after: str) -> re.Pattern[str] | None:
    if not phrases:
        return None
    body = "|".join(re.escape(p) for p in sorted(set(phrases), key=lambda p: (-len(p), p)))
    return re.compile(f"{before}(?:{body}){after}")


QUESTION_INTENTS = PhraseMatcher(INTENTS)
ANSWER_INTENTS = PhraseMatcher({label: (*INTENTS.get(label, ()), *ANSWER_CUES.get(label, ())) for label in INTENTS})


def latin_singular_text(normalized: str) -> str:
    """The spaced text with every Latin word singular (so "lipsticks" finds alias "lipstick")."""
    return " ".join(singular(w) for w in spaced(normalized).split())


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one comment says, as the insights need it."""

    normalized: str
    intents: tuple[str, ...]
    """Question intents in order of occurrence (empty: none of the known ones)."""
    topic: frozenset[str]
    """Content words: segmented, without stop words, pointing words, and single Chinese characters."""
    terms: tuple[str, ...]
    """Distinct trending-term candidates, in order of first occurrence."""


def analyse(text: str, *, answer: bool = False, names: AliasIndex | None = None) -> Analysis:
    """Normalise, segment and match a comment once (answer=True: also an answer's cue words).

    Product names (`names`) are masked before intents are matched, so the name cannot
    lend its characters to an intent ("口红包邮吗" asks about 包邮, not 红包)."""
    normalized = normalize(text)
    words = segment(normalized)
    topic: set[str] = set()
    terms: dict[str, None] = {}
    for raw in words:
        word = raw if is_cjk(raw) else singular(raw)
        if word in STOP_WORDS or word in DEICTIC or raw in STOP_WORDS:
            continue
        if is_cjk(word):
            if len(word) < 2:
                continue
        elif word.isdigit():
            if len(word) < 3:
                continue
        elif len(word) < 2:
            continue
        topic.add(word)
        if is_cjk(word) or len(word) >= 3:
            terms.setdefault(word, None)
    matcher = ANSWER_INTENTS if answer else QUESTION_INTENTS
    masked = names.mask(normalized) if names is not None else normalized
    return Analysis(normalized, tuple(matcher.find(masked)), frozenset(topic), tuple(terms))


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """The share of the shorter set's words the other holds (0 if either is empty): a short
    question ("油皮能用不") is near a longer one that holds all of it ("想知道油皮用这个闷不闷痘")."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def title_aliases(title: str) -> set[str]:
    """Names a viewer may use for a product, from its title: the whole title (compact) and
    its distinctive words (Chinese words of 2+ characters, Latin words of 4+ letters,
    model numbers of 3+ digits), without generic words such as 新款 or "set"."""
    normalized = normalize(title)
    aliases: set[str] = set()
    whole = compact(normalized)
    if 2 <= len(whole) <= 40:
        aliases.add(whole)
    for raw in segment(normalized):
        word = raw if is_cjk(raw) else singular(raw)
        if word in GENERIC_TITLE_WORDS or word in STOP_WORDS or word in DEICTIC:
            continue
        shortest = 2 if is_cjk(word) else 3 if word.isdigit() else 4
        if len(word) >= shortest:
            aliases.add(word)
    return aliases


_MASK = "\u3007"
"""Stands in for a masked product name: a word character that is in no phrase."""


class AliasIndex:
    """Product aliases -> product ids; finds the products a text names, in order."""

    def __init__(self) -> None:
        self._aliases: dict[str, set[str]] = {}
        self._matcher: PhraseMatcher | None = None
        self._masker: re.Pattern[str] | None = None

    def add(self, product_id: str, aliases: Iterable[str]) -> None:
        changed = False
        for alias in aliases:
            key = normalize(alias).strip()
            if not key:
                continue
            owners = self._aliases.setdefault(key, set())
            if product_id not in owners:
                owners.add(product_id)
                changed = True
        if changed:
            self._matcher = None
            self._masker = None

    def mask(self, normalized: str) -> str:
        """The text with every alias replaced by a placeholder character."""
        if not self._aliases:
            return normalized
        if self._masker is None:
            parts = sorted(self._aliases, key=lambda a: (-len(a), a))
            latin = r"(?<![a-z0-9]){}(?:s|es)?(?![a-z0-9])"
            body = "|".join(re.escape(a) if is_cjk(a) else latin.format(re.escape(a)) for a in parts)
            self._masker = re.compile(body)
        return self._masker.sub(_MASK, normalized)

    def aliases_of(self, product_id: str) -> list[str]:
        return sorted(alias for alias, owners in self._aliases.items() if product_id in owners)

    def find(self, normalized: str, on_screen: Iterable[str] = ()) -> list[str]:
        """Products named in the text, first named first. An alias several products share
        counts for the one on screen among them, else for none."""
        if not self._aliases:
            return []
        if self._matcher is None:
            self._matcher = PhraseMatcher({alias: (alias,) for alias in self._aliases})
        screen = set(on_screen)
        found: list[str] = []
        for alias in self._matcher.find(normalized):
            owners = self._aliases.get(alias, set())
            if len(owners) == 1:
                (product,) = owners
            else:
                shown = sorted(owners & screen)
                if not shown:
                    continue
                product = shown[0]
            if product not in found:
                found.append(product)
        return found
