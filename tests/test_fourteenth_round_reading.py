"""Which product a viewer means — the mechanisms of the fourteenth round of issue 15.

Pinyin initials that several products' names share ("hj": 红酒, 黄酒, 花椒) name none of them
alone, so they are no product's name; but they still say that the viewer means one of those
products, not the one on screen. The reply answers for each of them (as for a head noun that
several products share), never for the product on screen that the viewer did not name.

A live price (the pinned card, a product update) is the price of the version listed at the
product's own price: "6双多少钱" of chopsticks listed at ¥29.9 for six pairs, on screen at ¥25 now,
is ¥25; the twelve pairs keep their own ¥49.9. An English word of a spec's name asks for that
spec ("is the brewing natural" -> "brewing method"), and "lol" ends questions as well as
wonder ("how much is the soy sauce lol" asks; "why is it so cheap lol" does not).

A product listed as "5号链接" is "5号" too, before what is asked ("5号还剩多少"), not before
a noun the number counts ("5号电池").

Nor does the reply say what the listing denies: "是涂层的还是激光纹的" of chopsticks with "激光
防滑纹，免涂层" is not "coated", and "镜片蔡司的吗" is no "yes" because the lenses are listed:
what is left of the words asked ("蔡司") must be said too.

The reply does not depend on the process: which words of a version's name a question says
("12双" of "黑色 12双", not "12") was taken from a set in whatever order its hashes gave, so
"12双装多少" was a price in one process and "how much does it hold" in another.

And what is asked: "运费多少钱" asks the shipping fee (not the price), and "多久能收到" the
delivery time, so each is one question with its paraphrases ("包邮吗", "几天能到").

The catalogue is written here, for this test (a kitchen shop); nothing in shoplang names its
products. Each case states one mechanism.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer, _core_said
from barrage.clients.assistant.state import LiveProduct, LiveState, Price
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.understand import is_question
from tests.insights_room import ask, group_of

CATALOGUE = """
format: 2
shop: {zh: 厨房调味小铺, en: Kitchen pantry}
currency: CNY
shipping:
  ships_from: {zh: 浙江杭州, en: "Hangzhou, Zhejiang"}
  regions: [{zh: 中国大陆, en: mainland China}]
  carrier: {zh: 中通快递, en: ZTO Express}
  dispatch_hours: 48
  delivery_days: [2, 4]
  fee: 6
returns: {days: 7}
products:
  - id: sugar
    name: {zh: 云南白糖1kg, en: Yunnan white sugar 1 kg}
    category: {zh: 白糖, en: sugar}
    price: 12.9
  - id: wine
    name: {zh: 波尔多红酒750ml, en: Bordeaux red wine 750 ml}
    category: {zh: 红酒, en: red wine}
    price: 128
  - id: yellow
    name: {zh: 绍兴黄酒500ml, en: Shaoxing yellow wine 500 ml}
    category: {zh: 黄酒, en: yellow wine}
    price: 25
  - id: pepper
    name: {zh: 汉源花椒100g, en: Hanyuan Sichuan pepper 100 g}
    category: {zh: 花椒, en: Sichuan pepper}
    price: 19.9
  - id: soy
    name: {zh: 头道酱油500ml, en: First-press soy sauce 500 ml}
    category: {zh: 酱油, en: soy sauce}
    price: 15.8
    specs:
      - key: brewing
        name: {zh: 酿造工艺, en: brewing method}
        value: {zh: 高盐稀态发酵180天, en: "high-salt liquid-state fermentation, 180 days"}
  - id: chopsticks
    name: {zh: 不锈钢筷子, en: Steel chopsticks}
    aliases: [5号链接]
    category: {zh: 筷子, en: chopsticks}
    price: 29.9
    variants:
      - {id: six, name: {zh: 黑色 6双, en: "black, 6 pairs"}, price: 29.9}
      - {id: twelve, name: {zh: 黑色 12双, en: "black, 12 pairs"}, price: 49.9}
    specs:
      - key: finish
        name: {zh: 表面, en: finish}
        value: {zh: 激光防滑纹，免涂层, en: "laser-etched non-slip grooves, no coating"}
      - key: material
        name: {zh: 材质, en: material}
        value: {zh: 304不锈钢, en: 304 stainless steel}
"""


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(CATALOGUE))


@pytest.fixture(scope="module")
def answerer(catalogue: Catalogue) -> CatalogueAnswerer:
    return CatalogueAnswerer(catalogue)


def _products(reply: str) -> set[str]:
    return set(re.findall(r"\[product:([^\]]+)\]", reply))


def test_initials_many_products_share_are_not_the_product_on_screen(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "hj多少钱", "sugar")
    assert _products(reply) == {"wine", "yellow", "pepper"}, reply
    assert "128" in reply and "25" in reply and "12.9" not in reply, reply


def test_initials_one_product_has_name_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "jy多少钱", "sugar")
    assert _products(reply) == {"soy"} and "15.8" in reply, reply


def test_shared_initials_of_the_product_on_screen_keep_to_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "hj多少钱", "yellow")
    assert _products(reply) == {"yellow"} and "25" in reply, reply


def test_how_much_the_shipping_is_asks_the_fee_not_the_price(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "运费多少钱", "sugar")
    assert "6" in reply and "12.9" not in reply, reply


def test_when_it_will_be_received_asks_the_delivery_time(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "多久能收到啊", "sugar")
    assert "2到4天" in reply, reply


def test_paraphrases_of_the_fee_and_of_the_delivery_time_are_one_question_each(catalogue: Catalogue) -> None:
    fee, fee_again, days, days_again = group_of(
        catalogue, ["包邮吗", "运费多少钱", "多久能收到啊", "几天能到"], "sugar"
    )
    assert fee == fee_again and days == days_again and fee != days


def test_the_reply_is_the_same_whatever_the_process_s_hash_seed() -> None:
    program = (
        "import yaml\n"
        "from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer\n"
        "from barrage.shoplang.catalogue import Catalogue\n"
        "from tests.insights_room import ask\n"
        "from tests.test_fourteenth_round_reading import CATALOGUE\n"
        "answerer = CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))\n"
        "print(ask(answerer, '筷子 12双装多少', 'sugar'))\n"
    )
    replies = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(4)
    }
    assert len(replies) == 1, replies
    assert "49.9" in replies.pop()


@pytest.mark.parametrize(
    ("text", "said", "not_said"), [("筷子6双多少钱", "25", "29.9"), ("筷子12双多少钱", "49.9", "25")]
)
def test_a_live_price_is_the_price_of_the_version_listed_at_the_product_s_price(
    answerer: CatalogueAnswerer, text: str, said: str, not_said: str
) -> None:
    state = LiveState(pinned_id="chopsticks")
    state.products["chopsticks"] = LiveProduct("chopsticks", price=Price(2500, "CNY"))
    reply = answerer.answer(text, state, int(time.time() * 1000)).text
    assert said in reply and not_said not in reply, reply


def test_an_english_word_of_a_spec_s_name_asks_for_that_spec(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "is the brewing natural, the soy sauce", "sugar")
    assert "180" in reply, reply


def test_a_question_ending_in_lol_is_a_question_and_wonder_is_not() -> None:
    assert is_question("how much is the soy sauce lol")
    assert is_question("how many clicks before it breaks lol")
    assert not is_question("why is it so cheap lol")
    assert not is_question("lol the host is funny")


def test_a_link_number_alone_names_the_link_before_what_is_asked(answerer: CatalogueAnswerer) -> None:
    assert _products(ask(answerer, "5号多少钱", "sugar")) == {"chopsticks"}
    assert "chopsticks" not in _products(ask(answerer, "5号电池多少钱", "sugar"))


def test_an_option_the_listing_denies_is_not_the_one_it_says(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "筷子是涂层的还是激光纹的", "sugar")
    assert "是涂层的" not in reply and "激光" in reply, reply


@pytest.mark.parametrize(
    ("asked", "listing", "said"),
    [
        ("镜片蔡司", "镜片宽度：58mm", ""),  # the lenses are listed, Zeiss is not
        ("冷水冲", "加150ml冷水", "冷水"),  # a verb of using is no part of what is asked
        ("苹果手机", "苹果和安卓手机都能用", "苹果"),  # the rest is said elsewhere
    ],
)
def test_a_yes_needs_every_word_asked_not_only_its_start(asked: str, listing: str, said: str) -> None:
    assert _core_said(asked, listing) == said
