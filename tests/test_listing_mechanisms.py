"""How a question is matched against a listing that words things differently, on a shop of
trades no evaluation shop covers (cycling wear, tea, a desk lamp, yoga socks, a running belt).

The catalogue is written here, for this test; nothing in shoplang names its products. Each
case states one mechanism (issue 15, after tuning on beauty, pets and fashion): a value the
product does not list declines instead of listing the others; a pack size in other units names
its variant; a bare 多少 is the price; a dimension asked by its adjective picks that spec; a
group of people named by the character that tells it apart; a substance asked by its head
character; a count in the measure word asked; body girths against a size chart; pinyin
initials; requests to the host and showings; grouping by what is asked of which product.
"""

from __future__ import annotations

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.evaluation import is_decline
from barrage.shoplang.understand import Understanding, is_question
from tests.insights_room import ask, fold, group_of

CATALOGUE = """
format: 2
shop: {zh: 慢活生活馆, en: Slow Living live shop}
currency: CNY
shipping:
  ships_from: {zh: 福建厦门, en: "Xiamen, Fujian"}
  regions: [{zh: 中国大陆, en: mainland China}]
  excluded: [{zh: 新疆, en: Xinjiang}, {zh: 海南, en: Hainan}]
  carrier: {zh: 顺丰速运, en: SF Express}
  dispatch_hours: 24
  delivery_days: [1, 3]
  fee: 0
returns: {days: 7}
products:
  - id: jersey
    name: {zh: 美利奴羊毛骑行服, en: Merino Cycling Jersey}
    category: {zh: 骑行服, en: cycling jersey}
    price: 399
    sizes: [S, M, L]
    size_chart:
      columns: [{zh: 胸围, en: chest}, {zh: 建议体重, en: weight}]
      rows:
        S: ["84-92cm", "50-60kg"]
        M: ["92-100cm", "60-70kg"]
        L: ["100-108cm", "70-80kg"]
    colours: [{zh: 荧光绿, en: neon green}, {zh: 午夜蓝, en: midnight blue}]
    materials: [{zh: 85%美利奴羊毛，15%锦纶, en: "85% merino wool, 15% nylon"}]
    specs:
      - {key: reflective, name: {zh: 反光, en: reflective}, value: {zh: 背部有反光条, en: reflective strip on the back}}
  - id: tea
    name: {zh: 安溪铁观音, en: Anxi Tieguanyin Oolong}
    category: {zh: 乌龙茶, en: oolong tea}
    price: 128
    variants:
      - {id: 250g, name: {zh: 250克, en: 250 g}, price: 128}
      - {id: 500g, name: {zh: 500克, en: 500 g}, price: 238}
    specs:
      - {key: brew, name: {zh: 冲泡, en: brewing}, value: {zh: 95度水冲泡，可泡7次, en: "95 °C water, 7 infusions"}}
    suitable_for: [{who: {zh: 成年人, en: adults}}]
    not_for: [{who: {zh: 对咖啡因敏感的人, en: people sensitive to caffeine}}]
  - id: lamp
    name: {zh: 护眼台灯, en: Eye-care Desk Lamp}
    category: {zh: 台灯, en: desk lamp}
    price: 199
    description: {zh: 学生写作业和上班族加班都适用, en: for students' homework and office overtime}
    specs:
      - {key: cord, name: {zh: 线长, en: cord length}, value: {zh: 1.5米, en: 1.5 m}}
      - {key: base, name: {zh: 底座宽度, en: base width}, value: {zh: 15厘米, en: 15 cm}}
      - {key: power, name: {zh: 功率, en: power}, value: {zh: 12瓦, en: 12 W}}
    faq:
      - id: temp
        question: {zh: 能调色温吗, en: can I change the colour temperature}
        keywords: [色温, colour temperature]
        answer: {zh: 三档色温可调, en: three colour temperatures}
  - id: socks
    name: {zh: 防滑瑜伽袜, en: Non-slip Yoga Socks}
    category: {zh: 瑜伽袜, en: yoga socks}
    price: 39
    specs:
      - {key: pairs, name: {zh: 双数, en: pairs}, value: {zh: 3双, en: 3 pairs}}
      - {key: grip, name: {zh: 防滑颗粒, en: grip dots}, value: {zh: 脚底硅胶颗粒, en: silicone dots on the sole}}
      - key: colours
        name: {zh: 配色, en: colours}
        value: {zh: 颜色随机，不可选, en: "random colours, cannot be chosen"}
  - id: belt
    name: {zh: 跑步腰包, en: Running Belt}
    category: {zh: 腰包, en: running belt}
    price: 59
    sizes: [S, L]
    size_chart:
      columns: [{zh: 适合腰围, en: fits waist}]
      rows:
        S: ["70cm"]
        L: ["90cm"]
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
        ("茶叶一斤装多少钱", None, "¥238"),  # 一斤 = 500 g: the 500克 variant
        ("台灯多少", None, "¥199"),  # a bare 多少 after a product: its price
        ("台灯现在多少", None, "¥199"),
        ("台灯底座多宽", None, "15厘米"),  # 多宽: the width, not the cord's length
        ("how long is the cord on the lamp", None, "1.5 m"),  # a length, not the time left
        ("学生能用吗", "lamp", "学生"),  # no audiences listed: the description names students
        ("骑行服是纯羊毛吗", None, "85%美利奴羊毛"),  # 羊毛 is the substance listed
        ("瑜伽袜一包几双", None, "3双"),  # the count in the measure word asked
        ("瑜伽袜能选颜色吗", None, "不可选"),  # no colour list: the spec about colours
        ("台灯能调色温吗", None, "三档"),  # the product's own FAQ
        ("腰包 腰围两尺五选哪个码", None, "L码"),  # 2.5 尺 = 83 cm: the nearest waist, 90 cm
        ("胸围96穿几号", "jersey", "M码"),  # a chest girth against the chart's ranges
        ("晚上骑车看得见吗", "jersey", "反光"),  # seen in the dark: the reflective spec
        ("铁观音能发海南吗", None, "不发海南"),  # an excluded region is a plain no
        ("咖啡因敏感的人能喝这个茶吗", "tea", "不适合"),  # a group named apart from the verb of use
        ("铁观音怎么泡", None, "可泡7次"),  # the one verb asked (泡) names the spec (冲泡)
        ("瑜伽袜几双", None, "3双"),
        ("茶叶有1斤装吗", None, "¥238"),  # 1斤 is the 500克 variant
        ("防滑效果怎么样", "socks", "硅胶"),  # a word of the name is what is asked when nothing else is
    ],
)
def test_listing_answers(answerer: CatalogueAnswerer, text: str, pinned: str | None, must: str) -> None:
    reply = ask(answerer, text, pinned)
    assert must in reply, reply


@pytest.mark.parametrize(
    ("text", "pinned", "forbid"),
    [
        ("骑行服有XXL吗", None, "S"),  # a size the product does not come in: not the chart of the others
        ("骑行服有XL吗", None, "尺码"),  # XL is a size word, not listed for this product
        ("腰包有M码吗", None, "L"),  # M is the jersey's size, not the belt's (S / L)
        ("茶叶有1公斤装吗", None, "¥"),  # a pack size that is no variant
        ("台灯能带上飞机吗", None, "线长"),  # the cord's length does not answer a flight question
        ("骑行服是意大利羊毛吗", None, "美利奴"),  # the qualifier (Italian) is not listed
        ("孕妇能用吗", "lamp", "学生"),  # a group the listing does not name
        ("防滑瑜伽袜能当拖鞋吗", None, "硅胶"),  # 防滑 names the socks; 当拖鞋 is asked, and not listed
    ],
)
def test_listing_declines(answerer: CatalogueAnswerer, text: str, pinned: str | None, forbid: str) -> None:
    reply = ask(answerer, text, pinned)
    assert is_decline(reply) and forbid not in reply, reply


def test_a_listed_size_is_answered(answerer: CatalogueAnswerer) -> None:
    assert "M" in ask(answerer, "骑行服有M码吗") and not is_decline(ask(answerer, "骑行服有M码吗"))


def test_questions_and_exclamations() -> None:
    u = Understanding(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))
    for text in ("台灯能用不", "主播穿一下骑行服", "主播转个身看看背面", "瑜伽袜一包几双", "tgy多少钱"):
        assert u.read(text).question, text
    for text in ("为什么这么贵", "有没有神仙面霜推荐"):  # still questions
        assert is_question(text, u.read(text)), text
    for text in ("好便宜啊怎么做到的", "这是什么神仙颜色啊绝了", "主播看看我", "大家快看看"):
        assert not is_question(text, u.read(text)), text


def test_pinyin_initials_name_products_and_the_sale(catalogue: Catalogue) -> None:
    u = Understanding(catalogue)
    assert u.read("tgy多少钱").named == ("tea",)  # 铁观音
    assert u.read("ms还剩几分钟").sale and u.read("ms还剩几分钟").intents == ("time_left",)
    assert u.read("多少ml").named == ()  # a unit is no one's initials


def test_a_shade_only_one_product_has_names_it(catalogue: Catalogue) -> None:
    assert Understanding(catalogue).read("有午夜蓝吗").named == ("jersey",)


def test_insights_group_by_what_is_asked_of_which_product(catalogue: Catalogue) -> None:
    groups = group_of(
        catalogue,
        ["骑行服是纯羊毛吗", "骑行服羊毛的吗",  # a substance: materials, however it is asked
         "主播穿一下骑行服", "主播多高穿的几码",  # the host wearing it
         "想看看台灯", "主播展示一下台灯",  # a showing: another request
         "台灯多少", "台灯什么价",  # a bare 多少 is the price
         "穿什么码"],  # a size question: the product on screen that comes in sizes
        pinned="lamp",
        sale="jersey",
    )  # fmt: skip
    assert groups[0] == groups[1] == "materials@jersey", groups
    assert groups[2] == groups[3] and groups[2].startswith("host@"), groups
    assert groups[4] == groups[5] and groups[4].startswith("show@"), groups
    assert groups[6] == groups[7] == "price@lamp", groups
    assert groups[8] == "sizes@jersey", groups


def test_a_host_statement_answers_every_part_of_the_listing_it_talks_about(catalogue: Catalogue) -> None:
    engine = fold(catalogue, ["台灯线有多长", "台灯功率多大", "host:台灯线长1.5米，功率12瓦"], pinned="lamp")
    groups = [engine.questions.groups[engine.questions.by_event[f"q{i}"]] for i in range(2)]
    assert groups[0].group_id != groups[1].group_id
    assert all(group.answers for group in groups), [g.group_id for g in groups]


def test_initials_are_read_only_beside_chinese(catalogue: Catalogue) -> None:
    u = Understanding(catalogue)
    assert u.read("tgy还有吗").named == ("tea",)
    assert u.read("is tgy in stock").named == ()  # Latin letters alone: an English word or a code
