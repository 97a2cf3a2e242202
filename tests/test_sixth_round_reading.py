"""How a question finds a version, a bound, an audience or a chart cell — the mechanisms added
after reading the office, crafts, party, hardware, fishing, haircare, baking, cycling and
swimwear shops' failures (issue 15, sixth round).

The catalogue is written here, for this test, in trades of its own (curtains, a tent, candles,
a laptop sleeve, a kids' scooter, a fishing line, a kettle, a rice cooker, an air purifier);
nothing in shoplang names its products. Each case states one mechanism.
"""

from __future__ import annotations

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.evaluation import is_decline
from barrage.shoplang.understand import Understanding, is_question
from tests.insights_room import ask

CATALOGUE = """
format: 2
shop: {zh: 安居小铺, en: Anju store}
currency: CNY
shipping:
  ships_from: {zh: 浙江金华, en: "Jinhua, Zhejiang"}
  regions: [{zh: 中国大陆, en: mainland China}]
  excluded: [{zh: 西藏, en: Tibet}]
  carrier: {zh: 圆通速递, en: YTO Express}
  dispatch_hours: 48
  delivery_days: [2, 4]
  fee: 5
  free_over: 49
returns: {days: 7, note: {zh: 未使用可7天无理由退货, en: unused items can be returned within 7 days}}
products:
  - id: curtain
    name: {zh: 遮光窗帘, en: Blackout Curtain}
    category: {zh: 窗帘, en: curtain}
    price: 99
    variants:
      - {id: small, name: {zh: 宽1.5米×高2米, en: 1.5 m wide × 2 m high}, price: 99}
      - {id: large, name: {zh: 宽3米×高2.7米, en: 3 m wide × 2.7 m high}, price: 189}
    shipping:
      ships_from: {zh: 江苏南通, en: "Nantong, Jiangsu"}
      regions: [{zh: 中国大陆, en: mainland China}]
      carrier: {zh: 韵达快递, en: Yunda Express}
      dispatch_hours: 72
      delivery_days: [3, 5]
      fee: 0
  - id: tent
    name: {zh: 自动速开帐篷, en: Pop-up Tent}
    category: {zh: 帐篷, en: tent}
    price: 259
    variants:
      - {id: t2, name: {zh: 双人款（适合1-2人）, en: "2-person (for 1-2 people)"}, price: 259}
      - {id: t4, name: {zh: 家庭款（适合3-4人）, en: "family (for 3-4 people)"}, price: 359}
    suitable_for:
      - who: {zh: 2-4人家庭露营, en: camping families of 2-4}
    not_for:
      - who: {zh: 暴雨天气, en: heavy rain}
  - id: candle
    name: {zh: 香薰蜡烛, en: Scented Candle}
    category: {zh: 蜡烛, en: candle}
    price: 39
    variants:
      - {id: one, name: {zh: 1只, en: single}, price: 39}
      - {id: three, name: {zh: 3只装, en: pack of 3}, price: 99}
    not_for:
      - who: {zh: 无人看管的房间（明火）, en: rooms left unattended (open flame)}
  - id: sleeve
    name: {zh: 防震电脑内胆包, en: Padded Laptop Sleeve}
    category: {zh: 电脑包, en: laptop sleeve}
    price: 69
    specs:
      - key: fits
        name: {zh: 可放, en: fits}
        value: {zh: 可放14英寸及以下笔记本, en: laptops up to 14 inches}
        keywords: [放得下, 能放, 装得下, fit]
  - id: scooter
    name: {zh: 儿童滑板车, en: Kids' Scooter}
    category: {zh: 滑板车, en: scooter}
    price: 199
    not_for:
      - who: {zh: 3岁以下儿童, en: children under 3}
        limit: {quantity: age, unit: years, max: 3}
    suitable_for:
      - who: {zh: 身高150厘米以下的孩子, en: children under 150 cm}
        limit: {quantity: other, unit: cm, max: 150}
  - id: line
    name: {zh: 尼龙鱼线, en: Nylon Fishing Line}
    category: {zh: 鱼线, en: fishing line}
    price: 19
    aliases: [5号链接]
    size_chart:
      columns:
        - {zh: 线径（毫米）, en: diameter (mm)}
        - {zh: 拉力（公斤）, en: breaking strength (kg)}
      rows:
        "1.0号": ["0.165", "2.7"]
        "1.5号": ["0.205", "3.9"]
  - id: kettle
    name: {zh: 不锈钢电水壶, en: Stainless Kettle}
    category: {zh: 电水壶, en: kettle}
    price: 89
    colours: [{zh: 白色, en: white}, {zh: 银色, en: silver}]
    specs:
      - key: stove
        name: {zh: 底座, en: base}
        value: {zh: 360度旋转底座，配电源线, en: "360° swivel base, power cord included"}
      - key: travel
        name: {zh: 出行, en: travel}
        value: {zh: 双电压旅行使用不支持, en: "dual-voltage travel use not supported"}
  - id: cooker
    name: {zh: 电饭煲, en: Rice Cooker}
    category: {zh: 电饭煲, en: rice cooker}
    price: 299
    variants:
      - {id: c3, name: {zh: 3L（1-3人）, en: 3 L (1-3 people)}, price: 299}
      - {id: c5, name: {zh: 5L（4-8人）, en: 5 L (4-8 people)}, price: 399}
  - id: purifier
    name: {zh: 空气净化器 AP300, en: Air Purifier AP300}
    category: {zh: 空气净化器, en: air purifier}
    price: 899
    variants:
      - {id: p20, name: {zh: 标准版（适用10–20㎡）, en: standard (rooms of 10–20 m²)}}
      - {id: p40, name: {zh: 大户型版（适用20–40㎡）, en: large (rooms of 20–40 m²)}, price: 1299}
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
        # versions
        ("3米×2.7米的窗帘多少钱", None, "¥189"),  # a version named by its sides, in any unit
        ("窗帘3x2.7的多少", None, "¥189"),  # the sides without a unit
        ("蜡烛多少钱一只", None, "¥39"),  # the price of one is the single one's
        ("蜡烛3个装多少钱", None, "¥99"),  # a pack however it is counted (个 for 只)
        ("candles 3 pack how much", None, "¥99"),
        ("窗帘多少钱", None, "¥189"),  # versions priced differently, none named: each one's price
        ("窗帘多少前", None, "¥189"),  # 多少前 is 多少钱 (after 多少 the sound tells)
        ("帐篷最大号多少钱", None, "¥359"),  # the biggest of them
        ("我家三口人 帐篷选哪个", None, "家庭款"),  # the version whose range holds the people counted
        ("客厅30平 净化器选哪个", None, "大户型版"),  # the version whose room size holds the area
        ("15平米卧室买净化器多少钱", "purifier", "¥899"),  # a version without a price: the product's
        ("预算300 帐篷推荐哪个", None, "¥259"),  # within a budget: the dearest version that fits
        ("2人和4人的帐篷有啥区别", None, "¥359"),  # versions compared
        # bounds and audiences
        ("内胆包能放15.6寸电脑吗", None, "不行"),  # an amount against a bound a fact gives
        ("内胆包能放13寸的电脑吗", None, "可以"),
        ("滑板车两岁宝宝能玩吗", None, "3岁以下"),  # an age inside a warning's limit
        ("我家toddler能玩滑板车吗", None, "3岁以下"),  # a child however said, for a warning
        ("蜡烛能在没人的房间点吗", None, "无人看管"),  # a word of the audience's own (房间)
        ("the tent ok in heavy rain?", None, "not for heavy rain"),
        ("我家三口人 这个够住吗", "tent", "2-4人"),  # the people counted inside an audience's range
        # terms, colours, charts
        ("包邮吗", "curtain", "满¥49包邮"),  # its own terms on screen, and the shop's threshold
        ("新疆能发吗 几天到", None, "2到4天"),  # whether it goes there and how long it takes
        ("电水壶有白的吗", None, "白色"),  # a colour said without 色
        ("电水壶几个颜色 有白的不", None, "银色"),  # all colours asked beside one named
        ("1.5号线拉力多少", None, "3.9"),  # a size chart's row and column
        ("1.5号线径多少", None, "0.205毫米"),  # with the unit its heading gives
        ("AP300多少钱", None, "空气净化器"),  # a model-like token names its product
        ("does the kettle come with a power cord", None, "Yes"),  # every word listed, none negated
    ],
)
def test_sixth_round_answers(answerer: CatalogueAnswerer, text: str, pinned: str | None, must: str) -> None:
    reply = ask(answerer, text, pinned)
    assert must in reply, reply


@pytest.mark.parametrize(
    ("text", "pinned", "forbid"),
    [
        ("帐篷有6人的吗", None, "¥"),  # a count in the versions' unit that none of them has
        ("窗帘有4x3的吗", None, "¥189"),  # sides none of them has
        ("窗帘多重", None, "窗帘："),  # a weight asked that no fact gives
        ("周末发货吗", None, "周末发货"),  # weekends: the terms say nothing of them
        ("能让孩子变聪明吗", "scooter", "适合"),  # a claim, not a fact
    ],
)
def test_sixth_round_declines(answerer: CatalogueAnswerer, text: str, pinned: str | None, forbid: str) -> None:
    reply = ask(answerer, text, pinned)
    assert is_decline(reply) and forbid not in reply, reply


def test_no_yes_when_the_listing_negates_what_is_asked(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "does the kettle support dual-voltage travel use", None)
    assert "Yes" not in reply, reply


def test_a_link_number_is_not_the_end_of_another_number(catalogue: Catalogue) -> None:
    u = Understanding(catalogue)
    assert u.read("5号链接多少钱").named == ("line",)
    assert "5号" not in [u.read("2.5号的呢").text[a:b] for a, b in u.read("2.5号的呢").name_spans]


def test_a_metre_and_its_tenths_are_one_length(catalogue: Catalogue) -> None:
    u = Understanding(catalogue)
    assert u.read("窗帘有2米7高的吗").variants == {"curtain": "large"}  # 2米7 is 2.7 m, not 2 m
    assert u.read("有2米7高的吗").variants == {}  # (no product named: no "2米" variant either)


def test_how_many_of_a_thing_are_left_asks_the_stock(catalogue: Catalogue) -> None:
    reading = Understanding(catalogue).read("how many candles left")
    assert reading.named == ("candle",) and "stock" in reading.intents


def test_questions_that_had_no_reply_and_talk_that_is_no_question(catalogue: Catalogue) -> None:
    u = Understanding(catalogue)
    for text in ("我220斤能骑不😂", "折叠后能到多小", "200斤的人站上去没事吧", "我头发到腰 25还是32的",
                 "保证能用十年吧", "窗帘拿出来看看呗", "降价了是吧 99那个"):  # fmt: skip
        assert is_question(text, u.read(text)), text
    for text in ("为什么我现在才刷到", "有没有搞错 这么便宜", "好家伙 这承重可以", "what a deal on that tent",
                 "how is this so cheap lol"):  # fmt: skip
        assert not is_question(text, u.read(text)), text
