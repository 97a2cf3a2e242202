"""How a question reaches the part of a listing that answers it — the mechanisms added after
reading the toys and jewelry shops' failures (issue 15, fifth round).

The catalogue is written here, for this test, in trades of its own (luggage, a watch, a ring,
a board game, a raincoat); nothing in shoplang names its products. Each case states one
mechanism: the product on screen's own terms; every part of a two-part question; a name's head
before its comma; a variant's bare number is not another amount; FAQs by what they ask;
repairs are the warranty's; variants and size-chart columns answer a measure; the unit a
question counts in; gifts for a person; "is there X" when only part of X is listed; the
product whose listing holds the question's words; and for insights, requests and questions
ending in 不.
"""

from __future__ import annotations

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.evaluation import is_decline
from barrage.shoplang.understand import Understanding, is_question
from tests.insights_room import ask, group_of

CATALOGUE = """
format: 2
shop: {zh: 远行杂货铺, en: Far Trip store}
currency: CNY
shipping:
  ships_from: {zh: 浙江宁波, en: "Ningbo, Zhejiang"}
  regions: [{zh: 中国大陆, en: mainland China}]
  excluded: [{zh: 西藏, en: Tibet}]
  carrier: {zh: 中通快递, en: ZTO Express}
  dispatch_hours: 48
  delivery_days: [2, 5]
  fee: 8
  free_over: 99
returns: {days: 7, note: {zh: 未使用可7天无理由退货, en: unused items can be returned within 7 days}}
products:
  - id: case
    name: {zh: 铝框拉杆箱, en: "Aluminium-Frame Suitcase, 4 Wheels"}
    category: {zh: 拉杆箱, en: suitcase}
    price: 459
    variants:
      - {id: s20, name: {zh: 20寸, en: 20 inch}, price: 459}
      - {id: s24, name: {zh: 24寸, en: 24 inch}, price: 559}
    colours: [{zh: 银色, en: silver}, {zh: 玫瑰金色, en: rose gold}]
    warranty:
      months: 36
      note: {zh: 箱体三年保修，轮子是易损件不保, en: "shell covered for three years; wheels are wear parts"}
    returns: {days: 15, note: {zh: 未托运使用可15天退, en: "15-day returns if it has not been checked in"}}
    specs:
      - {key: lock, name: {zh: 锁, en: lock}, value: {zh: TSA海关密码锁, en: TSA combination lock}}
      - {key: shell, name: {zh: 箱体, en: shell}, value: {zh: PC材质，铝合金框, en: "PC shell, aluminium frame"}}
    faq:
      - id: cabin
        question: {zh: 能带上飞机吗, en: can I take it on a plane}
        answer: {zh: 20寸可以登机，24寸需要托运, en: "the 20-inch fits the cabin; the 24-inch must be checked in"}
  - id: watch
    name: {zh: 男士机械表, en: "Men's Mechanical Watch"}
    category: {zh: 机械表, en: mechanical watch}
    price: 899
    description: {zh: 男士商务款, en: "for men, business style"}
    specs:
      - {key: accuracy, name: {zh: 走时精度, en: accuracy}, value: {zh: 日差-10~+20秒, en: -10 to +20 seconds a day}}
      - {key: strap, name: {zh: 表带, en: strap}, value: {zh: 精钢表带, en: stainless steel strap}}
  - id: ring
    name: {zh: 银戒指, en: Silver Ring}
    category: {zh: 戒指, en: ring}
    price: 199
    suitable_for: [{who: {zh: 女士, en: women}}]
    materials: [{zh: S925银, en: S925 silver}, {zh: 锆石, en: zircon}]
    sizes: ["10", "12", "14"]
    size_chart:
      columns:
        - {zh: 圈口, en: ring size}
        - {zh: 内周长（毫米）, en: inner circumference (mm)}
        - {zh: 重量（克）, en: weight (g)}
      rows:
        "10": ["10", "50", "2.1"]
        "12": ["12", "52", "2.3"]
        "14": ["14", "54", "2.5"]
    specs:
      - {key: pin, name: {zh: 戒托, en: setting}, value: {zh: 四爪镶嵌, en: four-prong setting}}
    faq:
      - id: resize
        question: {zh: 大了能改圈吗, en: can it be resized}
        keywords: [改圈, resize]
        answer: {zh: 30天内免费改圈一次, en: one free resize within 30 days}
  - id: game
    name: {zh: 星际拓荒桌游, en: Star Frontier Board Game}
    category: {zh: 桌游, en: board game}
    price: 168
    variants:
      - {id: base, name: {zh: 基础版120张卡, en: base set 120 cards}, price: 168}
      - {id: big, name: {zh: 扩展版, en: expansion}, price: 238}
    specs:
      - {key: players, name: {zh: 人数, en: players}, value: {zh: 2-6人, en: 2-6 players}}
    faq:
      - id: setup
        question: {zh: 需要自己组装吗, en: does it need assembling}
        answer: {zh: 开盒即玩，只需把底座插上, en: "ready to play; only the stand clips in"}
  - id: coat
    name: {zh: 轻薄雨衣, en: Light Raincoat}
    category: {zh: 雨衣, en: raincoat}
    price: 89
    colours: [{zh: 雾霾蓝, en: haze blue}, {zh: 樱花粉, en: sakura pink}]
    variants:
      - {id: m, name: {zh: 120厘米, en: 120 cm}, price: 89}
      - {id: l, name: {zh: 140厘米, en: 140 cm}, price: 99}
"""


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(CATALOGUE))


@pytest.fixture(scope="module")
def answerer(catalogue: Catalogue) -> CatalogueAnswerer:
    return CatalogueAnswerer(catalogue)


@pytest.mark.parametrize(
    ("text", "pinned", "must"),
    [
        ("用过了还能退吗", "case", "未托运"),  # the product on screen's own returns, not the shop's
        ("满多少包邮", "case", "99"),  # a threshold is the shop's
        ("多少钱 包邮不", "ring", "¥199"),  # the price beside the shop's shipping terms
        ("多少钱 包邮不", "ring", "99"),
        ("what colours does the suitcase come in", None, "rose gold"),  # its head is before the comma
        ("箱子有啥色", None, "银色"),  # 啥色 asks the colours
        ("桌游有几种", None, "扩展版"),  # 几种: the variants it comes in
        ("要自己装吗", "game", "开盒即玩"),  # the FAQ asks the same kind of thing (setting up)
        ("轮子坏了保修吗", "case", "易损件"),  # a repair is the warranty's, not a return
        ("雨衣有多大的", None, "140厘米"),  # variants that are lengths answer 多大
        ("how heavy is the ring", None, "2.3"),  # the size chart's weight column
        ("机械表一天差几秒", None, "20秒"),  # the spec counted in the unit asked
        ("预算300送妈妈 推荐个", None, "银戒指"),  # a gift for a woman within the budget
        ("送男朋友的礼物有啥推荐", None, "机械表"),  # a gift for a man: not the women's ring
        ("戴着大了能改圈吗", "case", "免费改圈"),  # another product's FAQ holds it
        ("戒托是几爪的", "case", "四爪"),  # the product whose listing holds the words
        ("一百以内推荐个", None, "轻薄雨衣"),  # a budget in Chinese numerals
        ("how much is the 24 inch suitcase", None, "¥559"),  # an inch variant, as English writes it
        ("散光150的戒指多少钱", None, "¥199"),  # a bare number names no variant of a product not named
    ],
)
def test_listing_answers(answerer: CatalogueAnswerer, text: str, pinned: str | None, must: str) -> None:
    reply = ask(answerer, text, pinned)
    assert must in reply, reply


@pytest.mark.parametrize(
    ("text", "pinned", "forbid"),
    [
        ("雨衣有100厘米的吗", None, "¥"),  # an amount of the variants' kind that none of them is
        ("机械表能用几年", None, "秒"),  # counted in years: nothing listed in years
        ("机械表有皮表带的吗", None, "皮表带："),  # the strap is listed, leather is not
        ("箱子有金色的吗", None, "玫瑰金"),  # rose gold is no gold
        ("有黑雨衣吗", None, "雾霾蓝"),  # a colour said as the name's first character
    ],
)
def test_listing_declines(answerer: CatalogueAnswerer, text: str, pinned: str | None, forbid: str) -> None:
    reply = ask(answerer, text, pinned)
    assert is_decline(reply) and forbid not in reply, reply


def test_a_bare_variant_number_is_not_another_amount(catalogue: Catalogue) -> None:
    u = Understanding(catalogue)
    assert u.read("桌游120张的多少钱").variants == {"game": "base"}
    assert u.read("我120斤能穿吗").variants == {}  # 120 斤 is the viewer's weight


def test_requests_and_questions_ending_in_bu(catalogue: Catalogue) -> None:
    u = Understanding(catalogue)
    for text in ("桌游跟别的扩展通用不", "箱子带密码锁不", "主播把箱子打开给我们看看", "不知道戴几号怎么办",
                 "一年级的小朋友玩基础版还是扩展版啊"):  # fmt: skip
        assert is_question(text, u.read(text)), text
    for text in ("不知道选哪个颜色好", "怎么这么好看"):
        assert not is_question(text, u.read(text)), text


def test_insights_group_paraphrases_and_charge_the_product_whose_words_they_use(catalogue: Catalogue) -> None:
    groups = group_of(
        catalogue,
        ["发西藏吗", "西藏能发货不",  # a region asked two ways
         "主播戴上给我们看看", "想看上手效果",  # wearing it: the host's
         "戒托是几爪的"],  # the ring's words while the suitcase is pinned
        pinned="case",
    )  # fmt: skip
    assert groups[0] == groups[1]
    assert groups[4].endswith("@ring"), groups
