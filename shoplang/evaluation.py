"""Evaluation shops and a scorer that judges replies from their text alone.

A set is a folder (evals/shops/<name>/) with `catalogue.yaml` (format v2),
`questions.yaml` (the room's live state and viewer questions with what a reply must and
must not say) and `chatter.yaml` (room comments labelled for insights). The scorer
needs nothing but the reply texts, so anyone can score any assistant from outside:

    python -m barrage.shoplang.evaluate score evals/shops/groceries replies.jsonl

(one JSON object a line: {"id": "g01", "reply": "..."}; a missing id or an empty reply
is "no reply"). A reply is judged by:
- expected facts: every `expect` item in the text (an item that is a list: any of them);
- forbidden strings: none of `forbid` in the text;
  (a clock time in the reply, "（23:59结束）", says neither an expected nor a forbidden "59"
  unless the item itself is written with a colon: the reply's wording must say it);
- a decline where the answer is unknown (`decline: true`): the text says it is not
  listed / not known / to ask customer service (DECLINE_MARKERS);
- no wrong product: a reply whose product references (`[product:ID]`) do not include the
  product the question is about;
- no invented number: every number in the reply is in the catalogue file, the live state
  (prices, stock, limits, the sale's end as a clock time or as minutes left) or the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from barrage.shoplang.catalogue import Catalogue, load_catalogue

SetLang = Literal["zh", "en", "mixed"]
PRODUCT_TOKEN = re.compile(r"\[product:([A-Za-z0-9._-]+)\]")
DECLINE_MARKERS = re.compile(
    "|".join(
        [
            r"不清楚", r"不确定", r"没有列出", r"未列出", r"没有标注", r"未标注", r"没有写", r"没有相关信息",
            r"暂无(相关)?信息", r"咨询客服", r"问客服", r"联系客服", r"请等主播", r"没有找到",
            r"不在(配送|发货)范围", r"不(支持)?(配送|发货|发)(到)?", r"没有(这个|该)?(颜色|尺码|码|款|规格)",
            r"不能(保证|承诺)", r"无法(判断|保证|承诺)", r"不是药", r"请遵医嘱", r"咨询医生",
            r"don't know", r"do not know", r"not sure", r"not listed", r"isn't listed", r"is not listed",
            r"no information", r"customer service", r"the host will", r"couldn't find", r"can't find",
            r"could not find", r"(don't|do not|doesn't|does not|cannot|can't) ship", r"doesn't come in",
            r"does not come in", r"not available in", r"not a medicine", r"ask (a|your) doctor",
            r"can't (promise|claim)", r"cannot (promise|claim)",
        ]
    ),
    re.IGNORECASE,
)  # fmt: skip
"""Ways to say "that is not something I can answer", in the two languages."""
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
TIMEZONE = ZoneInfo("Asia/Shanghai")


def _listify(value: object) -> object:
    return [value] if isinstance(value, str) else value


class Pinned(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str = ""
    price: float | None = None
    stock: int = -1


class Update(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    price: float | None = None
    stock: int | None = None


class Sale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sale_id: str
    id: str
    title: str = ""
    price: float
    stock: int
    limit: int = 0
    starts_in_s: float = -60
    ends_in_s: float = 600


class State(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pinned: Pinned | None = None
    updates: list[Update] = []
    flash_sale: Sale | None = None


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    q: str
    lang: SetLang
    product: str | None = None
    expect: list[list[str]] = []
    forbid: list[str] = []
    decline: bool = False

    @field_validator("expect", mode="before")
    @classmethod
    def _alternatives(cls, value: object) -> object:
        if isinstance(value, list):
            return [_listify(item) for item in value]
        return value


class QuestionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: State = State()
    questions: list[Question] = Field(min_length=1)


class ChatLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    user: str
    text: str
    role: Literal["viewer", "host"] = "viewer"
    question: bool = False
    product: str | None = None
    group: str | None = None
    answers: list[str] = []
    """For staff lines: the question groups this line answers."""


class Chatter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pinned: str | None = None
    flash_sale: str | None = None
    comments: list[ChatLine]


@dataclass
class EvalShop:
    name: str
    folder: Path
    catalogue: Catalogue
    questions: QuestionSet
    chatter: Chatter

    @property
    def catalogue_path(self) -> Path:
        return self.folder / "catalogue.yaml"


def load_shop(folder: str | Path) -> EvalShop:
    path = Path(folder)

    def read(name: str) -> object:
        return yaml.safe_load((path / name).read_text(encoding="utf-8"))

    return EvalShop(
        name=path.name,
        folder=path,
        catalogue=load_catalogue(path / "catalogue.yaml"),
        questions=QuestionSet.model_validate(read("questions.yaml")),
        chatter=Chatter.model_validate(read("chatter.yaml")),
    )


# ---------------------------------------------------------------- the assistant's replies


def numbers(text: str) -> set[str]:
    """Numbers as values ("35.90" and "35.9" are one), product references left out."""
    text = PRODUCT_TOKEN.sub(" ", text).replace(",", "")
    out = set()
    for match in _NUMBER.findall(text):
        value = float(match)
        out.add(f"{value:g}")
    return out


def world_numbers(shop: EvalShop, question: Question, now_ms: int) -> set[str]:
    """Every number a reply to this question may state without inventing it."""
    found = numbers(shop.catalogue_path.read_text(encoding="utf-8")) | numbers(question.q)
    state = shop.questions.state
    found |= numbers(state.model_dump_json())
    if state.flash_sale is not None:
        sale = state.flash_sale
        for offset in (sale.starts_in_s, sale.ends_in_s):
            at = datetime.fromtimestamp(now_ms / 1000, TIMEZONE) + timedelta(seconds=offset)
            found |= numbers(at.strftime("%H:%M %H:%M:%S"))
            for delta in (-1, 0, 1):
                found.add(f"{max(0, int(offset // 60) + delta):g}")
    return found


def is_decline(text: str) -> bool:
    return bool(DECLINE_MARKERS.search(text))


@dataclass
class Verdict:
    question: Question
    reply: str
    ok: bool
    why: list[str] = field(default_factory=list)
    invented: set[str] = field(default_factory=set)
    wrong_product: bool = False

    @property
    def replied(self) -> bool:
        return bool(self.reply.strip())


_CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?![\d:])")


def _says(reply: str, text: str) -> bool:
    """The reply holds the text, not only inside a clock time (unless the text is one)."""
    hay = reply if ":" in text else _CLOCK.sub(" ", reply)
    return text.lower() in hay.lower()


def judge(question: Question, reply: str, world: set[str]) -> Verdict:
    why: list[str] = []
    if not reply.strip():
        return Verdict(question, reply, False, ["no reply"])
    refs = PRODUCT_TOKEN.findall(reply)
    wrong = bool(question.product and refs and question.product not in refs)
    if wrong:
        why.append(f"about {refs}, not {question.product}")
    invented = numbers(reply) - world
    if invented:
        why.append(f"invented numbers {sorted(invented)}")
    bad = [text for text in question.forbid if _says(reply, text)]
    if bad:
        why.append(f"says forbidden {bad}")
    if question.decline:
        if not is_decline(reply):
            why.append("does not decline")
    else:
        missing = [alts for alts in question.expect if not any(_says(reply, a) for a in alts)]
        if missing:
            why.append(f"missing {missing}")
    return Verdict(question, reply, not why, why, invented, wrong)


@dataclass
class Score:
    verdicts: list[Verdict]

    def figures(self) -> dict[str, float | int]:
        answerable = [v for v in self.verdicts if not v.question.decline]
        unanswerable = [v for v in self.verdicts if v.question.decline]
        out: dict[str, float | int] = {
            "questions": len(self.verdicts),
            "answerable": len(answerable),
            "unanswerable": len(unanswerable),
            "answerable_correct": sum(v.ok for v in answerable),
            "unanswerable_declined": sum(v.ok for v in unanswerable),
            "invented_facts": sum(1 for v in self.verdicts if v.invented),
            "wrong_product": sum(1 for v in self.verdicts if v.wrong_product),
            "no_reply": sum(1 for v in self.verdicts if not v.replied),
        }
        out["answerable_pct"] = 100 * out["answerable_correct"] / max(len(answerable), 1)
        out["declined_pct"] = 100 * out["unanswerable_declined"] / max(len(unanswerable), 1)
        for lang in ("zh", "en", "mixed"):
            mine = [v for v in answerable if v.question.lang == lang]
            out[f"answerable_{lang}"] = len(mine)
            out[f"answerable_correct_{lang}"] = sum(v.ok for v in mine)
        return out

    def passed(self) -> bool:
        f = self.figures()
        return (
            f["answerable_pct"] >= 90 and f["declined_pct"] >= 90 and f["invented_facts"] == 0
            and f["wrong_product"] == 0 and f["no_reply"] == 0
        )  # fmt: skip


def score_replies(shop: EvalShop, replies: dict[str, str], now_ms: int) -> Score:
    verdicts = []
    for question in shop.questions.questions:
        verdicts.append(judge(question, replies.get(question.id, ""), world_numbers(shop, question, now_ms)))
    return Score(verdicts)


def summary(name: str, score: Score) -> str:
    f = score.figures()
    return (
        f"{name}: answerable correct {f['answerable_correct']}/{f['answerable']} ({f['answerable_pct']:.1f}%; "
        f"zh {f['answerable_correct_zh']}/{f['answerable_zh']}, en {f['answerable_correct_en']}/{f['answerable_en']}, "
        f"mixed {f['answerable_correct_mixed']}/{f['answerable_mixed']}), "
        f"unanswerable declined {f['unanswerable_declined']}/{f['unanswerable']} ({f['declined_pct']:.1f}%), "
        f"invented facts {f['invented_facts']}, wrong product {f['wrong_product']}, no reply {f['no_reply']}"
    )


# ---------------------------------------------------------------- insights' reading of the chatter


@dataclass
class ChatPrediction:
    question: bool
    product: str | None = None
    group: str | None = None
    answered: bool = False


def score_chatter(chatter: Chatter, predicted: dict[str, ChatPrediction]) -> dict[str, float | int]:
    """Question detection per language, product attribution, grouping and 'answered'."""
    out: dict[str, float | int] = {}
    viewers = [c for c in chatter.comments if c.role == "viewer"]
    for lang in ("zh", "en"):
        mine = [c for c in viewers if _chat_lang(c.text) == lang]
        tp = sum(1 for c in mine if c.question and predicted[c.id].question)
        fp = sum(1 for c in mine if not c.question and predicted[c.id].question)
        fn = sum(1 for c in mine if c.question and not predicted[c.id].question)
        out[f"questions_{lang}"] = sum(1 for c in mine if c.question)
        out[f"precision_{lang}"] = tp / max(tp + fp, 1)
        out[f"recall_{lang}"] = tp / max(tp + fn, 1)
    asked = [c for c in viewers if c.question]
    named = [c for c in asked if c.product is not None]
    out["attributed"] = sum(1 for c in named if predicted[c.id].product == c.product)
    out["attributable"] = len(named)
    off_screen = [c for c in named if c.product not in (chatter.pinned, chatter.flash_sale)]
    out["attributed_off_screen"] = sum(1 for c in off_screen if predicted[c.id].product == c.product)
    out["off_screen"] = len(off_screen)
    # Grouping, over pairs of detected questions: same label and same group.
    found = [c for c in asked if predicted[c.id].question]
    same_label = same_group = both = 0
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            label = a.group == b.group
            group = predicted[a.id].group == predicted[b.id].group
            same_label += label
            same_group += group
            both += label and group
    out["grouping_recall"] = both / max(same_label, 1)
    out["grouping_precision"] = both / max(same_group, 1)
    answered_labels = {label for c in chatter.comments for label in c.answers}
    right = sum(
        1 for c in found if predicted[c.id].answered == (c.group in answered_labels and _after_answer(chatter, c))
    )
    out["answered_agree"] = right
    out["answered_of"] = len(found)
    return out


def _after_answer(chatter: Chatter, question: ChatLine) -> bool:
    """Whether a staff line answering the question's group comes after it."""
    index = [c.id for c in chatter.comments].index(question.id)
    return any(question.group in c.answers for c in chatter.comments[index + 1 :])


def _chat_lang(text: str) -> str:
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    latin = len(re.findall(r"[A-Za-z]+", text))
    return "zh" if cjk >= latin and cjk > 0 else "en"


def chatter_summary(name: str, f: dict[str, float | int]) -> str:
    return (
        f"{name}: question detection zh P {f['precision_zh']:.2f} R {f['recall_zh']:.2f} "
        f"({f['questions_zh']} questions), "
        f"en P {f['precision_en']:.2f} R {f['recall_en']:.2f} ({f['questions_en']}); "
        f"product attribution {f['attributed']}/{f['attributable']} "
        f"(not on screen {f['attributed_off_screen']}/{f['off_screen']}); "
        f"grouping pairs P {f['grouping_precision']:.2f} R {f['grouping_recall']:.2f}; "
        f"answered right {f['answered_agree']}/{f['answered_of']}"
    )
