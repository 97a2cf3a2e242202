"""Numbers, counting words and short asks — the mechanisms added in the tenth round of issue 15:
a number beside a size chart's column read in that column's ranges (and never as a size label
when it is a decimal), Chinese numerals before a version's counting word, "how many are left"
asking stock rather than naming a left-hand product, "what is it" answered with what it is, a
dispatch time asked in days, a unit no intent covers ("几倍", "几头", "够几个人", "含量多少") beside
another clause, a head noun right after "这", the price a flash sale goes back to, a use said in
one row of a size chart, what a budget buys, an amount a name holds over the counting word of
another's versions, a kind of thing asked beside what is answered, "yes" to a part of a chunk,
a shade typed with a pinyin slip, a version that a one-character quality starts, a version's
whole name over another product's shorter alias, a "why" asked of a shipping note, every version
when all are asked beside one, a numbered part a spec label names, a version by the child's
height, "pieces" naming no product, internet spellings and a question followed by praise still
asked, "the one the host is holding", and a place named beside something else asked being no
delivery question, "the pinned X", an English word before a Chinese head noun ("golf伞"), and a
word that starts a named product's version naming no other product.

The catalogue is written here, for this test (a golf and tableware shop); nothing in shoplang
names its products. Each case states one mechanism.
"""

from __future__ import annotations

import time

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.clients.assistant.state import LiveState
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.understand import Understanding, is_question
from barrage.v1 import event_pb2
from tests.insights_room import ask

CATALOGUE = """
format: 2
shop: {zh: 青峰球具餐具铺, en: Qingfeng golf and tableware}
currency: CNY
shipping:
  ships_from: {zh: 福建厦门, en: "Xiamen, Fujian"}
  regions: [{zh: 中国大陆, en: mainland China}]
  carrier: {zh: 顺丰速运, en: SF Express}
  dispatch_hours: 48
  delivery_days: [1, 4]
  fee: 12
  free_over: 299
returns: {days: 7}
products:
  - id: driver
    name: {zh: 青峰一号木, en: Qingfeng Driver}
    category: {zh: 一号木, en: driver}
    aliases: [一号木, 发球木, driver, "1号链接"]
    price: 1799
    specs:
      - {key: loft, name: {zh: 杆面角, en: loft}, value: {zh: 10.5度, en: 10.5 degrees}}
  - id: glove
    name: {zh: 羊皮高尔夫手套（左手）, en: Leather Golf Glove (left hand)}
    category: {zh: 高尔夫手套, en: golf glove}
    aliases: [手套, glove, "2号链接"]
    price: 69
    variants:
      - {id: single, name: {zh: 单只装, en: single glove}}
      - {id: pack3, name: {zh: 3只装, en: pack of 3}, price: 179}
    sizes: ["21", "22", "23", "24"]
    size_chart:
      columns: [{zh: 掌围（厘米）, en: palm circumference (cm)}, {zh: 国际码, en: international size}]
      rows: {"21": ["18-19", "S"], "22": ["19-20", "S"], "23": ["20-21", "M"], "24": ["21-22", "ML"]}
  - id: balls
    name: {zh: 青峰三层比赛球, en: Qingfeng 3-piece tour balls}
    category: {zh: 高尔夫球, en: golf balls}
    aliases: [球, 比赛球, 高尔夫球, golf balls, "3号链接"]
    price: 199
    specs:
      - {key: layers, name: {zh: 结构, en: construction}, value: {zh: 三层（3层）, en: 3-piece}}
      - {key: cover, name: {zh: 外皮, en: cover}, value: {zh: 聚氨酯, en: urethane}}
  - id: rangefinder
    name: {zh: 青峰激光测距仪, en: Qingfeng laser rangefinder}
    category: {zh: 测距仪, en: rangefinder}
    aliases: [测距仪, rangefinder, "4号链接"]
    price: 1299
    description: {zh: 测距600米，旗杆锁定震动提示, en: "600 m range, vibrates on locking the flag"}
    specs:
      - {key: zoom, name: {zh: 放大倍数, en: magnification}, value: {zh: 6倍, en: 6x}}
      - key: eyepiece
        name: {zh: 目镜, en: eyepiece}
        value: {zh: 可调焦，戴眼镜也可使用, en: "adjustable; fine with glasses"}
  - id: dinner
    name: {zh: 骨瓷餐具套装, en: Bone china dinnerware set}
    category: {zh: 餐具套装, en: dinnerware set}
    aliases: [餐具套装, 碗碟套装, dinner set, "5号链接"]
    price: 399
    variants:
      - {id: p28, name: {zh: 28头（4人食）, en: 28 pieces (for 4)}}
      - {id: p48, name: {zh: 48头（8人食）, en: 48 pieces (for 8)}, price: 599}
    materials:
      - {zh: 骨瓷（骨粉含量≥40%）, en: bone china (at least 40% bone ash)}
  - id: vase
    name: {zh: 哑光陶瓷花瓶, en: Matte ceramic vase}
    category: {zh: 花瓶, en: vase}
    price: 79
    sizes: [S, L]
    size_chart:
      columns: [{zh: 高度（厘米）, en: height (cm)}, {zh: 适合, en: good for}]
      rows: {S: ["15", "单支花、干花"], L: ["30", "大束花、龟背竹"]}
  - id: dish
    name: {zh: 陶瓷调味碟, en: Ceramic sauce dish}
    category: {zh: 调味碟, en: sauce dish}
    price: 19.9
  - id: capsules
    name: {zh: 咖啡胶囊50颗, en: "Coffee capsules, 50"}
    category: {zh: 咖啡胶囊, en: coffee capsules}
    price: 79
    specs:
      - {key: count, name: {zh: 数量, en: count}, value: {zh: 50颗：5种口味各10颗, en: "50: 5 flavours, 10 each"}}
  - id: instant
    name: {zh: 冻干速溶咖啡, en: Freeze-dried instant coffee}
    category: {zh: 速溶咖啡, en: instant coffee}
    price: 59
    variants:
      - {id: c24, name: {zh: 24颗, en: 24 pieces}}
      - {id: c48, name: {zh: 48颗, en: 48 pieces}, price: 109}
    specs:
      - key: brew
        name: {zh: 冲调, en: how to make}
        value: {zh: 1颗加200ml冷水、牛奶或热水, en: "one in 200 ml of cold water, milk or hot water"}
  - id: moka
    name: {zh: 八角摩卡壶, en: Octagonal moka pot}
    category: {zh: 摩卡壶, en: moka pot}
    price: 139
    materials: [{zh: 铝合金壶身, en: aluminium body}]
    not_for: [{who: {zh: 洗碗机清洗, en: the dishwasher}}]
    shipping:
      ships_from: {zh: 福建厦门, en: "Xiamen, Fujian"}
      regions: [{zh: 中国大陆, en: mainland China}]
      carrier: {zh: 顺丰速运, en: SF Express}
      dispatch_hours: 48
      delivery_days: [1, 4]
      note: {zh: 含易燃的酒精炉，只走陆运不发空运, en: "comes with a spirit burner: by land only, never by air"}
  - id: gel
    name: {zh: 猫眼甲油胶, en: Cat-eye gel polish}
    aliases: [猫眼胶, 甲油胶]
    category: {zh: 甲油胶, en: gel polish}
    price: 29.9
    variants:
      - {id: one, name: {zh: 单瓶, en: one bottle}}
      - {id: all6, name: {zh: 6色全套, en: all 6 colours}, price: 149}
    colours: [{zh: 星空蓝, en: starry blue}, {zh: 玫瑰金, en: rose gold}]
  - id: kit
    name: {zh: 新手美甲工具箱, en: Beginner manicure kit}
    aliases: [全套, 工具箱]
    category: {zh: 美甲套装, en: manicure kit}
    price: 199
  - id: irons
    name: {zh: 青峰铁杆组, en: Qingfeng iron set}
    category: {zh: 铁杆组, en: iron set}
    price: 3299
    specs:
      - {key: loft7, name: {zh: 7号铁角度, en: 7-iron loft}, value: {zh: 30°, en: 30°}}
      - {key: length7, name: {zh: 7号铁长度, en: 7-iron length}, value: {zh: 37英寸, en: 37 in}}
  - id: junior
    name: {zh: 青少年球杆套装, en: Junior club set}
    aliases: [儿童杆, 儿童球杆]
    category: {zh: 儿童球杆, en: junior clubs}
    price: 1599
    variants:
      - {id: small, name: {zh: 小号（身高115–135厘米）, en: small (height 115–135 cm)}}
      - {id: large, name: {zh: 大号（身高135–155厘米）, en: large (height 135–155 cm)}, price: 1799}
  - id: putter
    name: {zh: 青峰推杆, en: Qingfeng putter}
    aliases: [推杆]
    category: {zh: 推杆, en: putter}
    price: 899
    variants:
      - {id: l33, name: {zh: 33英寸（约83.8厘米）, en: 33 in (about 83.8 cm)}}
      - {id: l34, name: {zh: 34英寸（约86.4厘米）, en: 34 in (about 86.4 cm)}}
  - id: blind
    name: {zh: 遮光卷帘, en: Roller blind}
    aliases: [卷帘]
    category: {zh: 卷帘, en: roller blind}
    price: 69
    variants:
      - {id: half, name: {zh: 半遮光（每平方米）, en: half blackout (per m²)}}
      - {id: full, name: {zh: 全遮光PVC涂层（每平方米）, en: full blackout PVC (per m²)}, price: 89}
  - id: curtain
    name: {zh: 加厚全遮光窗帘, en: Thick full-blackout curtain}
    aliases: [全遮光, 遮光帘]
    category: {zh: 窗帘, en: curtain}
    price: 45
  - id: umbrella
    name: {zh: 双层防风高尔夫长柄伞, en: Double-canopy golf umbrella}
    category: {zh: 长柄伞, en: golf umbrella}
    price: 129
    specs:
      - key: open
        name: {zh: 开收方式, en: opening}
        value: {zh: 自动开、手动收, en: "opens automatically, closes by hand"}
        keywords: [全自动, 自动, 手动]
  - id: kids
    name: {zh: 儿童餐具三件套, en: "Kids' tableware, 3 pieces"}
    category: {zh: 儿童餐具, en: kids' tableware}
    price: 69
  - id: nails
    name: {zh: 手工穿戴甲, en: Press-on nails}
    aliases: [穿戴甲]
    category: {zh: 穿戴甲, en: press-on nails}
    price: 19.9
    variants:
      - {id: short, name: {zh: 短款方圆, en: short squoval}}
      - {id: mid, name: {zh: 中长款杏仁, en: medium almond}, price: 22.9}
      - {id: long, name: {zh: 长款芭蕾, en: long ballerina}, price: 25.9}
"""


@pytest.fixture(scope="module")
def answerer() -> CatalogueAnswerer:
    return CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))


@pytest.fixture(scope="module")
def understanding(answerer: CatalogueAnswerer) -> Understanding:
    return answerer.understanding


def test_a_number_beside_a_chart_column_picks_the_row_whose_range_holds_it(answerer: CatalogueAnswerer) -> None:
    # 21.5 cm of palm is in 24's 21-22; the 21 of "21.5" is no size 21
    reply = ask(answerer, "手套掌围21.5厘米戴几号", "driver")
    assert "24" in reply and "18-19" not in reply, reply


@pytest.mark.parametrize("text", ["手套三只装多少", "三只装手套多少钱"])
def test_a_chinese_numeral_before_a_counting_word_names_the_version(answerer: CatalogueAnswerer, text: str) -> None:
    reply = ask(answerer, text, "driver")
    assert "179" in reply and "69" not in reply, reply


def test_how_many_are_left_asks_stock_and_names_no_left_hand_product(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "how much is the driver now and how many are left", "driver")
    assert "1799" in reply and "[product:glove]" not in reply, reply


@pytest.mark.parametrize("text", ["4号链接是啥", "what's link 4?", "介绍一下4号链接"])
def test_asking_what_a_product_is_gets_its_name_price_and_description(answerer: CatalogueAnswerer, text: str) -> None:
    reply = ask(answerer, text, "driver")
    assert "1299" in reply and ("600" in reply) and "[product:rangefinder]" in reply, reply


def test_a_spec_named_after_what_is_it_is_not_a_description_ask(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "一号木杆面角是多少", "balls")
    assert "10.5" in reply, reply


def test_days_to_dispatch_and_the_carrier_are_both_answered(answerer: CatalogueAnswerer) -> None:
    # "几天" is also how long a battery lasts; beside 发货 it is the dispatch time
    reply = ask(answerer, "这个几天能发货 发什么快递", "driver")
    assert "48" in reply and "顺丰" in reply, reply


def test_a_unit_no_intent_covers_is_answered_beside_another_clause(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "rangefinder几倍的 戴眼镜能看吗", "driver")
    assert "6倍" in reply and "戴眼镜" in reply, reply


def test_a_unit_counted_in_version_names_gives_the_versions(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "餐具套装是几头的", "driver")
    assert "28头" in reply and "48头" in reply and "599" in reply, reply


def test_a_head_noun_right_after_this_is_the_thing_itself(answerer: CatalogueAnswerer) -> None:
    # the driver is on screen; "这球" is the ball
    reply = ask(answerer, "这球几层的", "driver")
    assert "[product:balls]" in reply and "三层" in reply, reply


def test_the_price_after_the_flash_sale_is_the_one_it_goes_back_to(answerer: CatalogueAnswerer) -> None:
    now = int(time.time() * 1000)
    state = LiveState()
    card = event_pb2.Product(product_id="balls", price=event_pb2.Money(amount_minor=14900, currency="CNY"))
    started = event_pb2.FlashSaleStarted(sale_id="s", product=card, stock=50)
    started.start_time.FromMilliseconds(now - 60_000)
    started.end_time.FromMilliseconds(now + 600_000)
    state.apply(event_pb2.Event(event_id="sale", payload=event_pb2.Payload(flash_sale_started=started)))
    for text in ("秒杀结束以后比赛球多少钱", "what will the balls cost after the sale?"):
        reply = answerer.answer(text, state, now).text
        assert "199" in reply and "149" not in reply, reply
    assert "149" in answerer.answer("比赛球秒杀价多少", state, now).text


def test_how_many_people_a_set_serves_is_read_from_its_versions(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "主播手上这套够几个人用的", "dinner")
    assert "4人" in reply and "8人" in reply, reply


def test_a_share_asked_is_found_in_the_materials(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "骨粉含量多少", "dinner")
    assert "40%" in reply, reply


def test_a_use_said_in_one_row_of_a_size_chart_picks_that_size(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "插龟背竹买哪个号", "driver")
    assert "L号" in reply and "[product:vase]" in reply and "S号" not in reply, reply


def test_what_a_budget_buys_is_a_recommendation(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "预算20块能买点啥", "driver")
    assert "19.9" in reply and "1799" not in reply, reply


def test_an_amount_a_name_holds_names_it_over_another_counted_that_way(answerer: CatalogueAnswerer) -> None:
    # the instant coffee's versions count in 颗 (24颗 / 48颗); "50颗" is in the capsules' name
    reply = ask(answerer, "50颗是几种口味 每种几颗", "driver")
    assert "[product:capsules]" in reply and "10颗" in reply, reply


def test_a_kind_of_thing_asked_beside_what_is_answered_comes_from_its_field(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "摩卡壶什么材质的 能进洗碗机吗", "driver")
    assert "铝合金" in reply and "不适合" in reply and "洗碗机" in reply, reply


def test_yes_when_the_listing_says_the_core_of_what_is_asked(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "冻干能用冷水冲吗", "driver")
    assert reply.startswith("可以") and "冷水" in reply, reply


def test_a_shade_typed_with_a_pinyin_slip_is_the_listed_shade(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "猫眼胶有星空篮吗", "driver")
    assert "星空蓝" in reply and "咨询客服" not in reply, reply


def test_a_one_character_quality_names_the_version_it_starts(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "穿戴甲有短的吗", "driver")
    assert "短款方圆" in reply and "19.9" in reply, reply


def test_a_versions_whole_name_beats_another_products_shorter_alias(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "6色全套多少", "driver")
    assert "[product:gel]" in reply and "149" in reply and "[product:kit]" not in reply, reply


def test_why_it_ships_that_way_is_read_in_the_shipping_note(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "摩卡壶为啥只能走陆运", "driver")
    assert "易燃" in reply, reply


def test_every_version_is_listed_when_all_are_asked_beside_one(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "推杆有几种长度 34寸是多少厘米", "driver")
    assert "33英寸" in reply and "86.4" in reply, reply


def test_a_numbered_part_a_spec_label_starts_with_names_its_product(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "7号铁多长", "driver")
    assert "[product:irons]" in reply and "37" in reply, reply


def test_a_childs_height_picks_the_version_whose_range_holds_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "孩子8岁 身高130 儿童杆买哪个", "driver")
    assert "小号" in reply and "大号" not in reply, reply


def test_pieces_counted_in_a_name_do_not_name_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "How many pieces in the bigger set and how much is it?", "dinner")
    assert "[product:dinner]" in reply and "599" in reply and "[product:kids]" not in reply, reply


@pytest.mark.parametrize("text", ["推杆第二天就松了肿么办", "主播今天的帽子啥牌子 好好看"])
def test_internet_spellings_and_a_question_before_praise_are_questions(understanding: Understanding, text: str) -> None:
    assert is_question(text, understanding.read(text)), text


@pytest.mark.parametrize("text", ["哪里找的宝藏店铺 爱了爱了", "哇 多少人在抢推杆啊 太火了"])
def test_a_question_word_inside_delight_is_no_question(understanding: Understanding, text: str) -> None:
    assert not is_question(text, understanding.read(text)), text


def test_the_one_the_host_is_holding_is_the_one_on_screen(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "how much is the one the host is holding rn?", "rangefinder")
    assert "1299" in reply and "[product:rangefinder]" in reply, reply


def test_a_place_named_beside_something_else_asked_is_no_delivery_question(answerer: CatalogueAnswerer) -> None:
    assert "可以发" not in ask(answerer, "西藏海拔5000米 测距仪能用吗", "rangefinder")
    assert "可以发西藏" in ask(answerer, "西藏呢", "rangefinder")
    assert "可以发新疆" in ask(answerer, "新疆能送测距仪吗", "rangefinder")


def test_the_pinned_thing_is_the_one_on_screen(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "is the pinned curtain priced per metre? how much", "curtain")
    assert "[product:curtain]" in reply and "45" in reply, reply


def test_an_english_word_before_a_chinese_head_noun_names_the_product(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "golf伞是全自动吗", "driver")
    assert "[product:umbrella]" in reply and "手动收" in reply and not reply.startswith("可以"), reply


def test_a_word_starting_a_named_products_version_names_no_other(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "卷帘全遮光的多少一平 半遮光呢", "driver")
    assert "89" in reply and "69" in reply and "[product:curtain]" not in reply, reply
