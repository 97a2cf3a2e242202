"""Names that synonyms spread, measures no chart holds, conversions, versions two products
share and picks by need — the mechanisms added after reading the shoes, footwear, bedding,
seafood and watches shops' failures (issue 15, seventh round).

The catalogue is written here, for this test (a sports shop); nothing in shoplang names its
products. Each case states one mechanism.
"""

from __future__ import annotations

import re

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.evaluation import is_decline
from barrage.shoplang.understand import is_question
from barrage.shoplang.units import conversion
from tests.insights_room import ask

CATALOGUE = """
format: 2
shop: {zh: 动起来运动小铺, en: Move sports store}
currency: CNY
shipping:
  ships_from: {zh: 福建晋江, en: "Jinjiang, Fujian"}
  regions: [{zh: 中国大陆, en: mainland China}]
  carrier: {zh: 中通快递, en: ZTO Express}
  dispatch_hours: 48
  delivery_days: [2, 4]
  fee: 6
  free_over: 99
returns: {days: 7, note: {zh: 未穿着可7天无理由退货, en: unworn items can be returned within 7 days}}
faq:
  - id: genuine
    question: {zh: 是正品吗？, en: "Are these authentic?"}
    keywords: [正品, genuine, authentic]
    answer: {zh: 全店品牌授权正品, en: every item is brand-authorised and genuine}
products:
  - id: jogger
    name: {zh: 轻风跑步鞋, en: Breeze running shoes}
    category: {zh: 跑鞋, en: running shoes}
    price: 299
    materials: [{zh: 网面鞋面, en: mesh upper}]
    sizes: ["36", "38", "40", "42", "44"]
    size_chart:
      columns: [{zh: 脚长(cm), en: foot length (cm)}]
      rows: {"36": ["22.5"], "38": ["24.0"], "40": ["25.0"], "42": ["26.5"], "44": ["27.5"]}
  - id: trail
    name: {zh: 越野徒步鞋, en: Trail hiking shoes}
    category: {zh: 徒步鞋, en: hiking shoes}
    price: 399
    colours: [{zh: 酒红, en: burgundy}, {zh: 黑色, en: black}]
  - id: socks
    name: {zh: 纯棉运动袜, en: Cotton sports socks}
    category: {zh: 袜子, en: socks}
    price: 19
    materials: [{zh: 棉85%, en: cotton 85%}]
    sizes: ["39-44"]
    size_chart:
      columns: [{zh: 鞋码, en: shoe size (EU)}]
      rows: {"39-44": ["39-44"]}
  - id: canvas
    name: {zh: 帆布板鞋, en: Canvas skate shoes}
    category: {zh: 板鞋, en: skate shoes}
    price: 129
    colours: [{zh: 白色, en: white}, {zh: 米白, en: cream}]
  - id: insole
    name: {zh: 减震鞋垫, en: Cushioning insoles}
    category: {zh: 鞋垫, en: insoles}
    price: 29
    faq:
      - id: trim
        question: {zh: 鞋垫能剪吗？, en: "Can I trim them?"}
        keywords: [剪, trim, cut]
        answer: {zh: 可以沿裁剪线剪短, en: "yes, trim along the guide lines"}
  - id: toddler
    name: {zh: 儿童学步鞋, en: Toddler first-walker shoes}
    category: {zh: 童鞋, en: kids' shoes}
    price: 99
    sizes: ["20", "21", "22", "23", "24"]
    size_chart:
      columns: [{zh: 脚长(cm), en: foot length (cm)}]
      rows: {"20": ["12.5"], "21": ["13.0"], "22": ["13.5"], "23": ["14.0"], "24": ["14.5"]}
  - id: watch
    name: {zh: 户外运动手表, en: Outdoor sports watch}
    category: {zh: 手表, en: watch}
    price: 599
    variants:
      - {id: black-steel, name: {zh: 黑色钢带, en: black steel bracelet}}
      - {id: silver-steel, name: {zh: 银色钢带, en: silver steel bracelet}}
      - {id: orange-silicone, name: {zh: 橙色硅胶带, en: orange silicone strap}}
  - id: chrono
    name: {zh: 竞速计时腕表, en: Race chronograph}
    category: {zh: 腕表, en: chronograph}
    price: 899
    variants:
      - {id: panda-steel, name: {zh: 熊猫盘钢带, en: panda dial steel bracelet}}
      - {id: black-leather, name: {zh: 黑盘皮带, en: black dial leather strap}}
  - id: case
    name: {zh: 透明手机壳, en: Clear phone case}
    category: {zh: 手机壳, en: phone case}
    price: 29
    sizes: [iPhone 16, iPhone 16 Pro, iPhone 16 Pro Max]
  - id: softcase
    name: {zh: 硅胶手机壳（安卓）, en: Silicone phone case (Android)}
    category: {zh: 手机壳, en: phone case}
    price: 39
    sizes: [HUAWEI Mate 60 Pro, Xiaomi 14]
  - id: rope
    name: {zh: 负重跳绳, en: Weighted jump rope}
    category: {zh: 跳绳, en: jump rope}
    price: 39
    variants:
      - {id: r3, name: {zh: 3米（约10 ft）, en: 3 m (about 10 ft)}}
    shipping:
      ships_from: {zh: 浙江义乌, en: "Yiwu, Zhejiang"}
      regions: [{zh: 中国大陆, en: mainland China}]
      carrier: {zh: 韵达快递, en: Yunda Express}
      dispatch_hours: 24
      delivery_days: [2, 5]
      fee: 0
      note: {zh: 新疆、西藏需补邮费10元, en: Xinjiang and Tibet pay a ¥10 surcharge}
  - id: whey
    name: {zh: 乳清蛋白粉 5磅, en: Whey protein 5 lb}
    category: {zh: 蛋白粉, en: protein powder}
    price: 359
    list_price: 459
    specs:
      - key: protein
        name: {zh: 蛋白含量, en: protein content}
        value: {zh: 每份24克, en: 24 g per serving}
    variants:
      - {id: lb5, name: {zh: 5磅桶装, en: 5 lb tub}, price: 359}
      - {id: lb2, name: {zh: 2磅袋装, en: 2 lb bag}, price: 169}
"""


@pytest.fixture(scope="module")
def answerer() -> CatalogueAnswerer:
    return CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))


@pytest.mark.parametrize(
    ("text", "pinned", "must"),
    [
        # A product's own category stays its name, though a synonym makes every shoe a 跑鞋
        ("跑鞋多少钱", None, "¥299"),
        ("徒步鞋和跑鞋哪个贵", None, "¥299"),
        # A measure only one chart holds: that product's size, not the nearest of another
        ("娃脚长14cm拍几码", "jogger", "23码"),
        # Conversions of an amount the viewer gives
        ("2公斤是几斤", None, "4斤"),
        ("4-5斤是多少公斤啊", None, "2-2.5公斤"),
        ("这个500克是一斤吗", "whey", "是的"),
        ("五磅是多少斤", "whey", "约等于4.5斤"),  # approximate: rounded as listings round
        ("how many feet is the 3m rope", None, "10 ft"),  # the listing says it: no arithmetic
        # Picks by what it is for, and around a budget
        ("平时跑个5公里 穿哪双好", None, "轻风跑步鞋"),
        ("机戒表预算700 推荐哪个", None, "户外运动手表"),  # a mistyped word's head (表)
        # Colours, FAQ keywords, the shop's own kind, shipping notes
        ("板鞋米色有吗", None, "米白"),  # 米色 is a colour, and 米白 its listed shade
        ("鞋垫能剪吗", None, "裁剪线"),  # a one-character keyword the shop gives
        ("are your shoes genuine?", None, "genuine"),  # "shoes" in a shoe shop is no other kind
        ("跳绳能发新疆吗", None, "补邮费10元"),  # the note that names the region asked
        ("板鞋是帆布的还是真皮的", None, "是帆布的"),  # a choice of two: the one the listing says
        ("蛋白粉桶装多少钱 袋装便宜多少", None, "¥169"),  # a version against another: both prices
        ("这个壳有16 pro max的吗", "case", "iPhone 16 Pro Max"),  # a model, however typed, among the options
        ("手机壳有mate60pro的吗", "case", "[product:softcase]"),  # the one product made for it
        ("我45码的脚 袜子能穿吗", None, "39-44"),  # a chart by shoe size, for a shoe size given
        ("I wear EU 40, will the socks fit?", None, "39-44"),
        ("蛋白粉原价多少 现在多少", None, "¥459"),  # the list price and the price now, both
        ("is the toddler shoe red inside?", None, "Sorry"),  # no colour listed, none in its name
        ("徒步鞋从哪发货 新疆能到吗", None, "从福建晋江发货"),  # where from, and whether it goes there
        ("这个是几斤装的", "whey", "5磅桶装"),  # "几斤装": the packs it comes in
    ],
)
def test_seventh_round_answers(answerer: CatalogueAnswerer, text: str, pinned: str | None, must: str) -> None:
    reply = ask(answerer, text, pinned)
    assert must in reply, reply


def test_a_budget_around_an_amount_puts_the_nearest_first(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "预算400左右想买双鞋 推荐哪个", None)
    prices = re.findall(r"¥(\d+)", reply)
    assert prices and prices[0] == "399", reply


def test_a_gift_within_a_budget_puts_the_dearest_that_fits_first(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "送老爸 预算400以内 买啥好", None)
    prices = re.findall(r"¥(\d+)", reply)
    assert prices and prices[0] == "399", reply


def test_a_measure_no_chart_holds_gets_no_size(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "脚长18cm穿几码", "jogger")  # 18 cm: below the adult chart, above the toddler's
    assert "36码" not in reply and "24码" not in reply, reply


@pytest.mark.parametrize(
    ("text", "elsewhere"),
    [
        ("这个是纯棉的吗", "[product:socks]"),  # "this is cotton": a property, not the socks' name
        ("有红色的吗", "[product:trail]"),  # a basic colour names no product (酒红 is one of many reds)
    ],
)
def test_the_product_on_screen_stays_the_subject(answerer: CatalogueAnswerer, text: str, elsewhere: str) -> None:
    reply = ask(answerer, text, "jogger")
    assert elsewhere not in reply, reply


def test_a_model_no_option_is_gets_not_listed(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "这个壳有15 pro的吗", "case")  # 16 Pro is no 15 Pro; 16 Pro Max no 16 Pro
    assert is_decline(reply) and "16 Pro" not in reply, reply


def test_a_version_word_the_product_on_screen_shares_stays_on_screen(answerer: CatalogueAnswerer) -> None:
    # "钢带" names one version of the chronograph, but the watch on screen has steel bracelets too
    reply = ask(answerer, "钢带太长了能截吗", "watch")
    assert "[product:chrono]" not in reply, reply


def test_the_conversion_is_arithmetic_on_the_amount_given() -> None:
    assert conversion("这箱几斤") is None  # no amount given: the listing's weight
    assert conversion("一斤多少钱") is None
    assert conversion("承重多少 两只猫加起来9kg") is None  # 两 before a measure word is two
    found = conversion("1米8是多少厘米")
    assert found is not None and found.sentence("zh") == "1米8等于180厘米"


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("宿舍的床太硬了 有啥推荐", True),  # a complaint, then the question
        ("哇 怎么又降价了", False),  # surprise, not a question
        ("鞋垫的包装拆了没", True),  # X了没
        ("橙子打蜡没", True),  # V没
        ("我还没", False),
    ],
)
def test_a_complaint_then_a_question(text: str, asks: bool) -> None:
    assert is_question(text) is asks
