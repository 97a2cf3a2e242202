"""Evaluate the assistant on the question set: `python -m barrage.clients.assistant.evaluate`.

Each scenario's live state is built by folding real protobuf events (product_pinned,
product_updated, flash_sale_started) into a LiveState, exactly as the bot does; then
every question is answered and scored:

- accuracy: answerable questions answered with the expected fact about an expected
  product, in the question's language, containing the expected values;
- abstention precision and recall: abstaining (saying "don't know", asking which
  product, or staying silent) on the questions marked `abstain`;
- invented facts: numbers stated in an answer that are not in the catalogue or live
  values it was built from — checked twice: against the answer's own sources, and
  against every number in the catalogue file and the scenario's state.

`--check` exits 1 when a bar is missed (accuracy ≥ 90%, abstention precision and
recall ≥ 90%, 0 invented facts).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from barrage.clients.assistant.answerer import Answer, RetrievalAnswerer
from barrage.clients.assistant.catalog import DATA_DIR, SAMPLE_CATALOGUE, Catalogue, Lang, load_catalogue
from barrage.clients.assistant.grounding import numbers, ungrounded
from barrage.clients.assistant.state import LiveState
from barrage.v1 import event_pb2

SAMPLE_EVAL = DATA_DIR / "eval.yaml"
BARS = {"accuracy": 0.90, "abstention_precision": 0.90, "abstention_recall": 0.90}


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: list[str] = []
    fact: list[str] = Field(min_length=1)
    says: list[str] = []

    _lists = field_validator("product", "fact", mode="before")(_listify)


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str
    lang: Lang
    expect: Expect | None = None
    abstain: bool = False


class Pinned(BaseModel):
    id: str
    title: str = ""
    price: float | None = None
    stock: int = -1


class Update(BaseModel):
    id: str
    price: float | None = None
    stock: int | None = None


class Sale(BaseModel):
    sale_id: str
    id: str
    title: str = ""
    price: float
    stock: int
    limit: int = 0
    starts_in_s: float = 0
    ends_in_s: float = 0


class ScenarioState(BaseModel):
    pinned: Pinned | None = None
    updates: list[Update] = []
    flash_sale: Sale | None = None


class Scenario(BaseModel):
    name: str
    state: ScenarioState = ScenarioState()
    questions: list[Question]


class EvalSet(BaseModel):
    scenarios: list[Scenario]


def load_eval(path: Path) -> EvalSet:
    return EvalSet.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def _money(amount: float, currency: str) -> event_pb2.Money:
    return event_pb2.Money(amount_minor=round(amount * 100), currency=currency)


def _ts(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def scenario_events(spec: ScenarioState, catalogue: Catalogue, now_ms: int) -> list[event_pb2.Event]:
    """The events a host or product service would have published to get this state."""
    events: list[event_pb2.Payload] = []
    if spec.pinned is not None:
        product = event_pb2.Product(product_id=spec.pinned.id, title=spec.pinned.title, stock=spec.pinned.stock)
        if spec.pinned.price is not None:
            product.price.CopyFrom(_money(spec.pinned.price, catalogue.currency))
        events.append(event_pb2.Payload(product_pinned=event_pb2.ProductPinned(product=product)))
    for update in spec.updates:
        updated = event_pb2.ProductUpdated(product_id=update.id)
        if update.price is not None:
            updated.price.CopyFrom(_money(update.price, catalogue.currency))
        if update.stock is not None:
            updated.stock = update.stock
        events.append(event_pb2.Payload(product_updated=updated))
    if spec.flash_sale is not None:
        sale = spec.flash_sale
        started = event_pb2.FlashSaleStarted(
            sale_id=sale.sale_id,
            product=event_pb2.Product(
                product_id=sale.id, title=sale.title, price=_money(sale.price, catalogue.currency), stock=sale.stock
            ),
            stock=sale.stock,
            limit_per_user=sale.limit,
            start_time=_ts(now_ms + int(sale.starts_in_s * 1000)),
            end_time=_ts(now_ms + int(sale.ends_in_s * 1000)),
        )
        events.append(event_pb2.Payload(flash_sale_started=started))
    return [event_pb2.Event(room_id="eval", payload=payload) for payload in events]


def world_numbers(catalogue_path: Path, events: list[event_pb2.Event], catalogue: Catalogue, now_ms: int) -> set[str]:
    """Every number the catalogue file and the room's live values hold (for the second check)."""
    from barrage.clients.assistant.facts import FactBook

    found = numbers(catalogue_path.read_text(encoding="utf-8"))
    for product in catalogue.products:
        found |= numbers(str(product.price))
    for event in events:
        found |= numbers(str(event.payload))
    state = LiveState()
    for event in events:
        state.apply(event)
    for fact in FactBook(catalogue).sale_facts(state, now_ms):
        for source in fact.sources:
            found |= numbers(source)  # Clock times of the sale, rendered in the shop's zone.
    for pid in state.products:
        price = FactBook(catalogue).price(pid, state)
        if price is not None:
            found |= numbers(f"{price.amount_minor / 100}")
    return found


@dataclass
class Result:
    scenario: str
    question: Question
    answer: Answer
    seconds: float
    correct: bool
    invented: set[str] = field(default_factory=set)
    why: str = ""


def judge(question: Question, answer: Answer) -> tuple[bool, str]:
    if question.abstain:
        ok = answer.outcome != "answer"
        return ok, "" if ok else "answered; should abstain"
    expect = question.expect
    assert expect is not None
    if answer.outcome != "answer":
        return False, f"{answer.outcome} ({answer.reason})"
    if answer.lang != question.lang:
        return False, f"answered in {answer.lang}"
    matching = [
        fact
        for fact in answer.facts
        if fact.kind in expect.fact and (not expect.product or fact.product_id in expect.product)
    ]
    if not matching:
        return False, "expected fact missing: got " + ", ".join(f"{f.kind}/{f.product_id}" for f in answer.facts)
    if "recommend" in expect.fact and answer.facts[0].product_id not in expect.product:
        return False, f"first recommendation {answer.facts[0].product_id} not expected"
    absent = [text for text in expect.says if text not in answer.text]
    if absent:
        return False, f"does not say {absent}"
    return True, ""


@dataclass
class Report:
    results: list[Result]

    @property
    def answerable(self) -> list[Result]:
        return [r for r in self.results if not r.question.abstain]

    @property
    def unanswerable(self) -> list[Result]:
        return [r for r in self.results if r.question.abstain]

    def figures(self) -> dict[str, Any]:
        answerable, unanswerable = self.answerable, self.unanswerable
        abstained = [r for r in self.results if r.answer.outcome != "answer"]
        right_abstentions = [r for r in abstained if r.question.abstain]
        times = sorted(r.seconds for r in self.results)
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        zh = sum(1 for r in self.results if r.question.lang == "zh")
        return {
            "questions": len(self.results),
            "chinese": zh,
            "english": len(self.results) - zh,
            "answerable": len(answerable),
            "should_abstain": len(unanswerable),
            "accuracy": sum(r.correct for r in answerable) / max(len(answerable), 1),
            "abstention_precision": len(right_abstentions) / max(len(abstained), 1),
            "abstention_recall": len(right_abstentions) / max(len(unanswerable), 1),
            "invented_facts": sum(len(r.invented) for r in self.results),
            "answer_ms_p50": statistics.median(times) * 1000,
            "answer_ms_p95": p95 * 1000,
        }

    def passed(self) -> bool:
        figures = self.figures()
        return all(figures[name] >= bar for name, bar in BARS.items()) and figures["invented_facts"] == 0


def run(catalogue_path: Path = SAMPLE_CATALOGUE, eval_path: Path = SAMPLE_EVAL) -> Report:
    catalogue = load_catalogue(catalogue_path)
    answerer = RetrievalAnswerer(catalogue)
    results: list[Result] = []
    now_ms = int(time.time() * 1000)
    for scenario in load_eval(eval_path).scenarios:
        events = scenario_events(scenario.state, catalogue, now_ms)
        state = LiveState()
        for event in events:
            state.apply(event)
        world = world_numbers(catalogue_path, events, catalogue, now_ms)
        for question in scenario.questions:
            started = time.perf_counter()
            answer = answerer.answer(question.q, state, now_ms)
            seconds = time.perf_counter() - started
            correct, why = judge(question, answer)
            invented = ungrounded(answer.text, answer.sources) | (numbers(answer.text) - world)
            results.append(Result(scenario.name, question, answer, seconds, correct, invented, why))
    return Report(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m barrage.clients.assistant.evaluate",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--catalog", type=Path, default=SAMPLE_CATALOGUE, help="catalogue YAML")
    parser.add_argument("--eval", type=Path, default=SAMPLE_EVAL, help="evaluation set YAML")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every question and answer")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = parser.parse_args(argv)

    report = run(args.catalog, args.eval)
    for result in report.results:
        if args.verbose or not result.correct or result.invented:
            mark = "ok  " if result.correct else "FAIL"
            print(f"{mark} [{result.scenario}] {result.question.q!r} -> {result.answer.outcome}: {result.answer.text}")
            if result.why:
                print(f"       {result.why}")
            if result.invented:
                print(f"       INVENTED numbers: {sorted(result.invented)}")
    figures = report.figures()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"questions: {figures['questions']} ({figures['chinese']} Chinese, {figures['english']} English); "
            f"answerable {figures['answerable']}, should abstain {figures['should_abstain']}"
        )
        print(f"accuracy on answerable questions: {figures['accuracy']:.1%}")
        print(f"abstention precision: {figures['abstention_precision']:.1%}")
        print(f"abstention recall: {figures['abstention_recall']:.1%}")
        print(f"invented facts: {figures['invented_facts']}")
        print(f"answer time in-process: p50 {figures['answer_ms_p50']:.2f} ms, p95 {figures['answer_ms_p95']:.2f} ms")
    if args.check and not report.passed():
        print("evaluation bars missed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
