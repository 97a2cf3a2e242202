"""The evaluation shops written for issue 15 on 2026-12-06 and 2026-12-07 by engineers who had
not read the matching code (beauty, pets, fashion; toys, jewelry; appliances, tea, furniture;
auto, garden, fitness; digital, snacks, kitchen; cleaning, eyewear, bags; books, lighting, music;
office, crafts, party; hardware, fishing, haircare; baking, cycling, swimwear; coffee, golf,
ceramics, nails; flowers, umbrellas, drones, curtains; wigs, beautydevices, powerstations,
downjackets; candles, smartlocks, massagers, frozenfood; projectors, mattresses, protein, hats).

Only their shape is checked here — they load, are complete and convert to the first format, and
never a score. Their first runs are recorded in docs/assistant.md and docs/insights.md; which were
tuned on since, and which are still unread, is in evals/shops/README.md. tests/test_understanding.py
scores the tuned shops that meet the bar.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from barrage.clients.assistant.catalog import Catalogue as CatalogueV1
from barrage.shoplang.convert_v1 import catalogue_v1
from barrage.shoplang.evaluation import load_shop

SHOPS = Path(__file__).resolve().parent.parent / "evals" / "shops"
FRESH = [
    "beauty", "pets", "fashion", "toys", "jewelry", "appliances", "tea", "furniture", "auto", "garden", "fitness",
    "digital", "snacks", "kitchen", "cleaning", "eyewear", "bags", "books", "lighting", "music", "office", "crafts",
    "party", "hardware", "fishing", "haircare", "baking", "cycling", "swimwear", "coffee", "golf", "ceramics", "nails",
    "flowers", "umbrellas", "drones", "curtains", "wigs", "beautydevices", "powerstations", "downjackets",
    "candles", "smartlocks", "massagers", "frozenfood", "projectors", "mattresses", "protein", "hats",
]  # fmt: skip


@pytest.mark.parametrize("name", FRESH)
def test_a_fresh_shop_is_complete_and_converts_to_the_first_format(name: str) -> None:
    shop = load_shop(SHOPS / name)
    questions = shop.questions.questions
    assert len(questions) >= 65
    assert 8 <= len(shop.catalogue.products) <= 12
    assert {q.lang for q in questions} == {"zh", "en", "mixed"}
    assert sum(q.lang == "zh" for q in questions) / len(questions) >= 0.6
    assert sum(q.decline for q in questions) / len(questions) >= 0.15
    assert all(q.product is None or shop.catalogue.product(q.product) for q in questions)
    comments = shop.chatter.comments
    assert 50 <= len(comments) <= 60
    assert sum(c.question for c in comments) >= 35
    assert 20 <= len({c.user for c in comments if c.user != "host"}) <= 30
    assert CatalogueV1.model_validate(catalogue_v1(shop.catalogue)).products
