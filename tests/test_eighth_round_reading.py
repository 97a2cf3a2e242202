"""Which product a question means when it names none by its own name: by an amount, sides or
a code only some listings give, and by the head noun of a word many names hold — the
mechanisms added for the wrong-product answers of issue 15 (eighth round).

The catalogue is written here, for this test (a camera and desk shop); nothing in shoplang
names its products. Each case states one mechanism.
"""

from __future__ import annotations

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.understand import is_question
from barrage.shoplang.units import marks
from tests.insights_room import ask, fold, group_of

CATALOGUE = """
format: 2
shop: {zh: 拾光影像小铺, en: Glimmer camera store}
currency: CNY
shipping:
  ships_from: {zh: 广东深圳, en: "Shenzhen, Guangdong"}
  regions: [{zh: 中国大陆, en: mainland China}]
  carrier: {zh: 顺丰速运, en: SF Express}
  dispatch_hours: 24
  delivery_days: [1, 3]
returns: {days: 7}
products:
  - id: compact
    name: {zh: 口袋卡片相机, en: Pocket compact camera}
    category: {zh: 卡片相机, en: compact camera}
    price: 2999
    specs:
      - {key: sensor, name: {zh: 传感器, en: sensor}, value: {zh: 1英寸CMOS, en: 1-inch CMOS}}
      - {key: waterproof, name: {zh: 防水, en: waterproof}, value: {zh: 机身不防水, en: not waterproof}}
  - id: battery
    name: {zh: 相机电池, en: Camera battery}
    category: {zh: 相机电池, en: camera battery}
    price: 199
    specs:
      - {key: capacity, name: {zh: 容量, en: capacity}, value: {zh: 2280mAh, en: 2280 mAh}}
  - id: cleankit
    name: {zh: 相机清洁套装, en: Camera cleaning kit}
    category: {zh: 清洁套装, en: cleaning kit}
    price: 59
  - id: gimbal
    name: {zh: 三轴手机稳定器, en: Three-axis phone gimbal}
    category: {zh: 稳定器, en: gimbal}
    price: 499
    specs:
      - {key: load, name: {zh: 适配手机重量, en: phone weight}, value: {zh: 170-290g, en: 170-290 g}}
  - id: bag
    name: {zh: 双肩摄影包, en: Camera backpack}
    category: {zh: 摄影包, en: camera bag}
    price: 399
    specs:
      - {key: volume, name: {zh: 容量, en: volume}, value: {zh: 20L, en: 20 L}}
      - {key: outside, name: {zh: 外尺寸, en: outside size}, value: {zh: 45×30×20cm, en: 45×30×20 cm}}
  - id: lightmouse
    name: {zh: 轻量无线鼠标, en: Lightweight wireless mouse}
    category: {zh: 鼠标, en: mouse}
    price: 299
    specs:
      - {key: weight, name: {zh: 重量, en: weight}, value: {zh: 58g, en: 58 g}}
      - {key: link, name: {zh: 连接, en: connection}, value: {zh: 2.4G无线和蓝牙, en: 2.4G wireless and Bluetooth}}
  - id: wiredmouse
    name: {zh: 有线电竞鼠标, en: Wired gaming mouse}
    category: {zh: 鼠标, en: mouse}
    price: 129
    colours:
      - {zh: 樱花粉, en: sakura pink}
      - {zh: 曜石黑, en: obsidian black}
    specs:
      - {key: weight, name: {zh: 重量, en: weight}, value: {zh: 89g, en: 89 g}}
  - id: pad
    name: {zh: 桌垫, en: Desk mat}
    category: {zh: 桌垫, en: desk mat}
    price: 39
    sizes: [M, L]
    size_chart:
      columns: [{zh: 尺寸(cm), en: size (cm)}]
      rows: {M: ["45×40"], L: ["90×40"]}
  - id: anchors
    name: {zh: 膨胀螺丝, en: Wall anchors}
    category: {zh: 螺丝, en: anchors}
    price: 19
    variants:
      - {id: m6, name: {zh: M6 20个, en: M6 x20}}
      - {id: m8, name: {zh: M8 10个, en: M8 x10}, price: 25}
  - id: bike
    name: {zh: 折叠自行车, en: Folding bike}
    category: {zh: 自行车, en: bike}
    price: 1199
    specs:
      - {key: brakes, name: {zh: 刹车, en: brakes}, value: {zh: 前后机械碟刹, en: front and rear disc brakes}}
  - id: taillight
    name: {zh: 刹车感应尾灯, en: Brake-sensing tail light}
    category: {zh: 尾灯, en: tail light}
    price: 69
    specs:
      - {key: sensing, name: {zh: 刹车感应, en: brake sensing}, value: {zh: 减速时自动高亮, en: brightens when slowing}}
"""


@pytest.fixture(scope="module")
def answerer() -> CatalogueAnswerer:
    return CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))


def test_an_amount_is_one_mark_whatever_its_unit_word() -> None:
    assert marks("20升那个包") == marks("容量 20L")
    assert marks("45乘40厘米的") & marks("M: 45×40")
    assert ("code", "m8") in marks("M8的多少钱")


@pytest.mark.parametrize(
    ("text", "pinned", "product"),
    [
        # An amount, sides or a code only some listings give names them
        ("那个58g的鼠标多少钱", "gimbal", "lightmouse"),  # (two mice: the one that weighs 58 g)
        ("20升那个包外面尺寸多大", "gimbal", "bag"),
        ("45乘40厘米的是哪个码", "gimbal", "pad"),
        ("M8的多少钱", "gimbal", "anchors"),
        # A word many names hold names the product it is the head noun of
        ("相机防水吗", "gimbal", "compact"),
        ("这个相机传感器多大", "gimbal", "compact"),
        # ... unless the product on screen is such a thing itself
        ("相机能用多久", "battery", "battery"),
        # The viewer's own amount (an amount to convert) names nothing: what is on screen
        ("290g是几斤", "gimbal", "gimbal"),
    ],
)
def test_a_question_naming_no_product_means_the_one_its_words_single_out(
    answerer: CatalogueAnswerer, text: str, pinned: str, product: str
) -> None:
    reply = ask(answerer, text, pinned)
    others = {f"[product:{p['id']}]" for p in yaml.safe_load(CATALOGUE)["products"]} - {f"[product:{product}]"}
    assert not any(other in reply for other in others), reply
    if "[product:" in reply or product != pinned:
        assert f"[product:{product}]" in reply, reply


def test_an_amount_asked_for_in_is_there_asks_of_the_product_on_screen_that_lists_that_measure(
    answerer: CatalogueAnswerer,
) -> None:
    understanding = answerer.understanding
    # the gimbal lists a weight (170-290g): "is there a 20L one" is no weight, "a 58g one" is
    assert understanding.holders_of_marks(understanding.read("有20L的吗"), "gimbal") == {"bag"}
    assert understanding.holders_of_marks(understanding.read("有58g的吗"), "gimbal") == set()
    # an amount that describes the thing, not what is asked for, still names it
    assert understanding.holders_of_marks(understanding.read("那个58g的鼠标有蓝牙吗"), "gimbal") == {"lightmouse"}


def test_a_measure_the_pinned_listing_gives_keeps_the_pinned_product(answerer: CatalogueAnswerer) -> None:
    # 170-290g is the gimbal's: neither mouse (58 g, 89 g) takes the question
    reply = ask(answerer, "290g的手机能用吗", "gimbal")
    assert "[product:gimbal]" in reply, reply


@pytest.mark.parametrize(
    ("text", "product"),
    [
        # 刹车 only qualifies the tail light's name; 碟刹 is the bike's listing, not the light's
        ("刹车是碟刹还是v刹", "bike"),
        # the light's own word, or nothing else to go by: the light
        ("尾灯刹车会自己变亮吗", "taillight"),
        ("刹车感应的多少钱", "taillight"),
    ],
)
def test_a_word_that_only_qualifies_a_name_yields_to_the_listing_on_screen(
    answerer: CatalogueAnswerer, text: str, product: str
) -> None:
    reply = ask(answerer, text, "bike")
    assert f"[product:{product}]" in reply, reply


def test_viewers_asking_for_one_colour_are_one_group_whatever_they_call_it(answerer: CatalogueAnswerer) -> None:
    texts = ["粉色的还有吗", "想看看樱花粉的", "is the pink one still in stock?", "黑色的还有吗", "有什么颜色"]
    pink1, pink2, pink3, black, colours = group_of(answerer.catalogue, texts, "wiredmouse")
    assert pink1 == pink2 == pink3
    assert len({pink1, black, colours}) == 3


def test_a_host_naming_a_colour_answers_that_colours_group(answerer: CatalogueAnswerer) -> None:
    engine = fold(answerer.catalogue, ["想看看粉色的", "有黑色的吗", "host:樱花粉现在还有货"], "wiredmouse")
    pink, black = (engine.questions.groups[engine.questions.by_event[q]] for q in ("q0", "q1"))
    assert pink.answers and not black.answers


@pytest.mark.parametrize(
    ("first", "second"),
    [("稳定器多少钱", "稳定器降价了吗 现在多少"), ("多少钱", "现在啥价"), ("还有货吗", "抢完了吗")],
)
def test_a_price_or_stock_question_is_one_group_however_it_is_put(
    answerer: CatalogueAnswerer, first: str, second: str
) -> None:
    one, other = group_of(answerer.catalogue, [first, second], "gimbal")
    assert one == other, (one, other)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("秒杀还剩几分钟", "秒杀啥时候结束"),
        ("秒杀还有多久结束", "秒杀几点截止"),
        ("秒杀限购几个", "can I buy 3 backpacks in the flash sale?"),
        ("限购几个", "how many backpacks can I buy"),
    ],
)
def test_the_sales_end_and_its_limit_are_asked_in_many_ways(
    answerer: CatalogueAnswerer, first: str, second: str
) -> None:
    one, other = group_of(answerer.catalogue, [first, second], "gimbal", sale="bag")
    assert one == other, (one, other)


def test_a_host_giving_the_minutes_left_in_words_answers_when_the_sale_ends(answerer: CatalogueAnswerer) -> None:
    engine = fold(answerer.catalogue, ["秒杀几点结束", "host:秒杀还有二十来分钟就结束了"], "gimbal", sale="wiredmouse")
    assert engine.questions.groups[engine.questions.by_event["q0"]].answers


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        # talk in a live room: wonder, laments, rallying cries
        ("主播加油！！！怎么画得这么快！", False),
        ("什么鬼 这么好看", False),
        ("冲冲冲 为什么不早说这么便宜哈哈", False),
        ("为什么我手速这么慢啊啊啊", False),
        ("好想要但是没钱啊怎么办😭", False),
        ("多少人跟我一样蹲秒杀的hhh", False),
        ("谁还没下单呢 冲啊！", False),
        ("这么好看的包谁不爱呢", False),
        ("what?? why is it so cheap lol", False),
        ("how cute is that pink one!", False),
        ("hello from Malaysia, what a nice stream", False),
        # questions put the same ways
        ("这个真皮不真皮", True),
        ("主播喝一口 好不好喝啊", True),
        ("能拍两套不 给我妈也买一个", True),
        ("20㎡ bedroom which size", True),
        ("白色表盘上手看看", True),
        ("what? is it waterproof", True),
        ("怎么卖", True),
    ],
)
def test_a_question_is_told_from_talk(answerer: CatalogueAnswerer, text: str, asks: bool) -> None:
    assert is_question(text, answerer.understanding.read(text)) is asks


@pytest.mark.parametrize(
    ("question", "statement", "answers"),
    [
        ("稳定器多少钱", "host:稳定器直播价499", True),
        ("稳定器保修多久", "host:稳定器质保12个月", True),
        ("稳定器送什么", "host:稳定器下单加送三脚架", True),
        ("秒杀还有多久", "host:秒杀还剩差不多20分钟", True),
        ("新疆能发吗", "host:新疆西藏暂时发不了，抱歉", True),
        ("新疆能发吗", "host:稳定器是从深圳发的", False),
        ("想看看稳定器", "host:等下拿出来给大家看", True),
    ],
)
def test_a_host_statement_answers_what_it_tells(
    answerer: CatalogueAnswerer, question: str, statement: str, answers: bool
) -> None:
    engine = fold(answerer.catalogue, [question, statement], "gimbal", sale="bag")
    group = engine.questions.groups[engine.questions.by_event["q0"]]
    assert bool(group.answers) is answers, group.group_id


def test_what_a_product_without_versions_comes_in_is_its_colours(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "what shades does the wired gaming mouse come in", "gimbal")
    assert "sakura pink" in reply and "obsidian black" in reply, reply
