"""Where the answer sits in a listing and which product a kind-word means — the mechanisms
added in the ninth round of issue 15: a kind of thing asked looked for in every field of the
listing, each spec a many-part question names, a size chart's age column, a count the
product's name gives, a word heading several products' names, and what a live-room comment
asks (written A-not-A, a name called at the end, a purchase told).

The catalogue is written here, for this test (a hanfu and games shop); nothing in shoplang
names its products. Each case states one mechanism.
"""

from __future__ import annotations

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.server.insights.questions import Questions
from barrage.server.insights.text import Analysis
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.understand import is_question
from tests.insights_room import ask, fold

CATALOGUE = """
format: 2
shop: {zh: 云裳汉服桌游铺, en: Yunshang hanfu and games}
currency: CNY
shipping:
  ships_from: {zh: 浙江杭州, en: "Hangzhou, Zhejiang"}
  regions: [{zh: 中国大陆, en: mainland China}]
  carrier: {zh: 中通快递, en: ZTO Express}
  dispatch_hours: 48
  delivery_days: [2, 5]
  fee: 6
  free_over: 99
  note: {zh: 可备注改发顺丰，补差价12元, en: "SF Express on request, 12 extra"}
returns: {days: 7}
faq:
  - id: custom-size
    question: {zh: 可以定做或者改尺寸吗, en: "Can you make it to measure or alter the size?"}
    keywords: [定做, 改尺寸]
    answer: {zh: 不支持定做和改尺寸, en: We don't make to measure or alter sizes}
products:
  - id: ruqun
    name: {zh: 齐胸襦裙, en: Chest-high ruqun}
    category: {zh: 汉服, en: hanfu}
    price: 239
    sizes: [S, M]
    size_chart:
      columns: [{zh: 身高（厘米）, en: height (cm)}]
      rows: {S: ["150-158"], M: ["158-165"]}
    specs:
      - {key: hem, name: {zh: 裙摆, en: hem width}, value: {zh: 约4米摆, en: about 4 m around}}
  - id: mamian
    name: {zh: 织金马面裙, en: Gold-woven mamian skirt}
    category: {zh: 马面裙, en: mamian skirt}
    price: 299
    variants:
      - {id: printed, name: {zh: 印花款, en: printed}, price: 199}
      - {id: woven, name: {zh: 织金款, en: gold-woven}, price: 299}
      - {id: brocade, name: {zh: 妆花款, en: brocade}, price: 459}
    sizes: ["90cm", "95cm"]
    size_chart:
      columns: [{zh: 裙长（厘米）, en: skirt length (cm)}, {zh: 建议身高（厘米）, en: height (cm)}]
      rows: {"90cm": ["90", "158-165"], "95cm": ["95", "165-172"]}
  - id: jacket
    name: {zh: 加厚袄裙, en: Padded jacket set}
    category: {zh: 袄裙, en: jacket set}
    price: 569
    shipping:
      ships_from: {zh: 浙江杭州, en: "Hangzhou, Zhejiang"}
      regions: [{zh: 中国大陆, en: mainland China}]
      carrier: {zh: 中通快递, en: ZTO Express}
      dispatch_hours: 360
      delivery_days: [2, 5]
  - id: shoes
    name: {zh: 绣花鞋, en: Embroidered shoes}
    category: {zh: 绣花鞋, en: embroidered shoes}
    price: 129
    sizes: ["36", "37"]
    size_chart:
      columns: [{zh: 脚长（毫米）, en: foot length (mm)}]
      rows: {"36": ["230"], "37": ["235"]}
    specs:
      - {key: heel, name: {zh: 鞋跟, en: heel}, value: {zh: 内增高3厘米, en: 3 cm inner lift}}
      - {key: sole, name: {zh: 鞋底, en: sole}, value: {zh: 防滑牛筋底, en: non-slip rubber}}
  - id: kids
    name: {zh: 儿童汉服, en: Kids' hanfu}
    category: {zh: 童装, en: kids' wear}
    price: 139
    sizes: ["100", "110", "120"]
    size_chart:
      columns: [{zh: 身高（厘米）, en: height (cm)}, {zh: 参考年龄（岁）, en: age (years)}]
      rows: {"100": ["95-105", "3-4"], "110": ["105-115", "4-5"], "120": ["115-125", "6-7"]}
  - id: buyao
    name: {zh: 流苏步摇, en: Tassel hairpin}
    category: {zh: 发饰, en: hair ornament}
    price: 59
    specs:
      - {key: length, name: {zh: 长度, en: length}, value: {zh: 钗身15厘米, en: 15 cm pin}}
    warranty:
      months: 6
      note: {zh: 电镀保色半年，期间褪色免费换新, en: plating colour kept for 6 months; replaced free if it fades}
  - id: hairpin
    name: {zh: 绿檀木簪, en: Sandalwood hairpin}
    category: {zh: 木簪, en: wooden hairpin}
    price: 39
    specs:
      - {key: length, name: {zh: 长度, en: length}, value: {zh: 18厘米, en: 18 cm}}
  - id: fan
    name: {zh: 刺绣团扇, en: Embroidered round fan}
    category: {zh: 团扇, en: round fan}
    price: 69
    shipping:
      ships_from: {zh: 江苏苏州, en: "Suzhou, Jiangsu"}
      regions: [{zh: 中国大陆, en: mainland China}]
      carrier: {zh: 顺丰速运, en: SF Express}
      dispatch_hours: 24
      delivery_days: [1, 3]
      note: {zh: 从苏州绣坊直发顺丰, en: sent by SF straight from the Suzhou workshop}
  - id: starry
    name: {zh: 星空拼图, en: Starry night jigsaw}
    category: {zh: 拼图, en: jigsaw}
    price: 89
    gift_with_purchase: {zh: 送6个拼图分拣盘, en: six free sorting trays}
    variants:
      - {id: p500, name: {zh: 500片, en: 500 pieces}, price: 59}
      - {id: p1000, name: {zh: 1000片, en: 1000 pieces}}
    specs:
      - {key: grade, name: {zh: 纸板, en: board}, value: {zh: 2mm灰板（AAA级）, en: 2 mm greyboard (grade AAA)}}
  - id: tower
    name: {zh: 木质3D立体拼图, en: Wooden 3D jigsaw}
    category: {zh: 拼图, en: 3D jigsaw}
    price: 129
    gift_with_purchase: {zh: 送备用零件板, en: a spare parts board}
  - id: stacker
    name: {zh: 动物叠叠乐, en: Animal stacking game}
    category: {zh: 儿童桌游, en: kids' game}
    price: 168
    specs:
      - {key: players, name: {zh: 游戏人数, en: players}, value: {zh: 2-4人, en: "2-4"}, keywords: [人数, players]}
      - {key: age, name: {zh: 适合年龄, en: age}, value: {zh: 4岁以上, en: 4+}, keywords: [年龄, age]}
      - {key: origin, name: {zh: 产地, en: made in}, value: {zh: 德国, en: Germany}, keywords: [产地, made in]}
    suitable_for:
      - who: {zh: 4岁以上的孩子, en: children 4 and up}
        limit: {quantity: age, unit: years, min: 4}
  - id: strategy
    name: {zh: 策略桌游, en: Strategy board game}
    category: {zh: 策略游戏, en: strategy game}
    price: 259
    suitable_for:
      - who: {zh: 10岁以上的玩家, en: players 10 and up}
        limit: {quantity: age, unit: years, min: 10}
  - id: soup
    name: {zh: 冻干银耳羹 15g×10杯, en: "Freeze-dried tremella soup, 10 cups × 15 g"}
    category: {zh: 银耳羹, en: tremella soup}
    price: 49.9
  - id: tank
    name: {zh: 超白一体鱼缸, en: Ultra-clear aquarium tank}
    category: {zh: 鱼缸, en: aquarium tank}
    price: 359
    shipping:
      ships_from: {zh: 广东佛山, en: "Foshan, Guangdong"}
      regions: [{zh: 中国大陆, en: mainland China}]
      carrier: {zh: 德邦物流, en: Deppon}
      dispatch_hours: 72
      delivery_days: [3, 7]
    returns:
      days: 7
      note: {zh: 运输破损请在签收48小时内凭开箱视频联系客服补发, en: "transit damage: unboxing video within 48 hours"}
  - id: filter
    name: {zh: 鱼缸过滤器, en: Aquarium filter}
    category: {zh: 过滤器, en: filter}
    price: 99
"""


@pytest.fixture(scope="module")
def answerer() -> CatalogueAnswerer:
    return CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))


def test_a_kind_of_thing_asked_is_found_in_a_warranty_note(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "步摇戴久了会掉色吗", "ruqun")
    assert "褪色免费换新" in reply and "[product:buyao]" in reply, reply


def test_a_way_of_asking_where_it_is_from_is_not_answered_by_where_it_ships_from(answerer: CatalogueAnswerer) -> None:
    # the fan's shipping note says 从苏州…发: that is where it ships from, not where it is made
    reply = ask(answerer, "团扇是哪里产的", "ruqun")
    assert "苏州" not in reply and "咨询客服" in reply, reply


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stacking game made in germany? age?", ["Germany", "4+"]),
        ("叠叠乐几个人玩 产地哪里", ["2-4", "德国"]),
    ],
)
def test_every_spec_a_many_part_question_names_is_answered(
    answerer: CatalogueAnswerer, text: str, expected: list[str]
) -> None:
    reply = ask(answerer, text, "ruqun")
    assert all(fact in reply for fact in expected), reply


def test_a_measure_asked_of_a_named_spec_is_that_spec_not_the_shops_size_faq_or_the_size_chart(
    answerer: CatalogueAnswerer,
) -> None:
    reply = ask(answerer, "鞋跟多高", "ruqun")
    assert "内增高3厘米" in reply, reply
    assert "定做" not in reply and "230" not in reply, reply


def test_an_age_in_years_is_read_against_a_charts_age_column_in_years(answerer: CatalogueAnswerer) -> None:
    # 5 years old and 112 cm: the kids' 110 (105-115 cm, 4-5 years), not the pinned adult ruqun
    reply = ask(answerer, "5岁 身高112 穿多大", "ruqun")
    assert "110" in reply and "[product:kids]" in reply, reply


def test_a_count_the_products_name_gives_answers_how_many_come_in_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "银耳羹一盒几杯", "ruqun")
    assert "10杯" in reply and "[product:soup]" in reply, reply


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("到货碎了咋办", "48小时"),  # damage in transit: the pinned tank's own returns note
        ("鱼缸发什么快递", "德邦"),
    ],
)
def test_the_pinned_products_own_terms_answer_its_shipping_and_damage(
    answerer: CatalogueAnswerer, text: str, expected: str
) -> None:
    reply = ask(answerer, text, "tank")
    assert expected in reply, reply
    assert "中通" not in reply, reply  # (the shop's carrier is for the other products)


def test_anything_free_asks_for_the_gift(answerer: CatalogueAnswerer) -> None:
    assert "sorting trays" in ask(answerer, "does the starry jigsaw come with anything free?", "ruqun")


def test_a_word_heading_several_products_names_is_answered_for_each(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "拼图拍了送啥", "ruqun")
    assert "分拣盘" in reply and "零件板" in reply, reply
    assert "[product:starry]" in reply and "[product:tower]" in reply, reply


def test_insights_charge_a_kind_word_to_the_product_of_that_kind_on_sale(answerer: CatalogueAnswerer) -> None:
    engine = fold(answerer.catalogue, ["拼图还有货没"], "ruqun", sale="tower")
    assert engine.questions.by_event["q0"].endswith("@tower")


def test_what_to_play_for_a_childs_age_is_a_recommendation_that_fits_the_age(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "4岁宝宝玩什么桌游好", "ruqun")
    assert "[product:stacker]" in reply, reply
    assert "[product:strategy]" not in reply, reply  # (10 and up)


@pytest.mark.parametrize(
    ("text", "intent"),
    [("斗篷还有几件", "stock"), ("5岁穿多大", "sizes"), ("到手就裂了怎么办", "returns")],
)
def test_everyday_phrasings_ask_the_usual_things(answerer: CatalogueAnswerer, text: str, intent: str) -> None:
    assert intent in answerer.understanding.read(text).intents


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("拼图垫有无粉色", True),  # the written A-not-A
        ("能否开发票", True),
        ("发新疆不主播", True),  # a name called at the end
        ("5个人玩得了不", True),
        ("咋这么便宜！", False),  # wonder
        ("多少有点心动了", False),  # 多少 = somewhat
        ("1号链接拍了 已付款", False),  # telling of a purchase, not asking for the link
        ("拍了什么时候发", True),
        ("求链接", True),
        ("germ rice do I need to keep it in the fridge after opening", True),  # a name, then the question
        ("it is so good", False),
    ],
)
def test_what_a_live_room_comment_asks(text: str, asks: bool) -> None:
    assert is_question(text) is asks


def test_a_gift_for_someone_with_what_they_like_asks_for_a_pick(answerer: CatalogueAnswerer) -> None:
    reading = answerer.understanding.read("送男朋友 他喜欢玩桌游")
    assert reading.question, reading


def test_a_question_joins_the_group_whose_words_hold_its_own_whatever_its_intent() -> None:
    def analysis(intent: str, words: set[str]) -> Analysis:
        return Analysis("", (intent,) if intent else (), frozenset(words), ())

    questions = Questions()
    oily = questions.ask("a", "u1", "油皮能用不", 0, 0, analysis("suitable", {"油皮"}), "cream")
    # another intent, more words, all of the first's: the same viewers' worry
    acne = questions.ask("b", "u2", "想知道油皮用这个闷不闷痘", 1, 0, analysis("breathable", {"油皮", "闷痘"}), "cream")
    price = questions.ask("c", "u3", "多少钱", 2, 0, analysis("price", set()), "cream")
    other = questions.ask("d", "u4", "干皮能用吗", 3, 0, analysis("suitable", {"干皮"}), "cream")
    elsewhere = questions.ask("e", "u5", "油皮能用不", 4, 0, analysis("suitable", {"油皮"}), "serum")
    assert oily is acne is other  # (an intent's group, once there, takes its intent whatever the words)
    assert price is not None and price is not oily
    assert elsewhere is not None and elsewhere is not oily  # another product's


def test_which_of_two_is_longer_is_each_ones_length(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "步摇和木簪哪个长", "ruqun")
    assert "15厘米" in reply and "18厘米" in reply, reply


def test_a_spec_named_on_the_product_on_screen_is_asked_of_it_not_of_the_shops_terms(
    answerer: CatalogueAnswerer,
) -> None:
    # "多大" is a kind of thing the shop's sizing FAQ is about too; the hem is the skirt's
    reply = ask(answerer, "裙摆多大 几米摆", "ruqun")
    assert "约4米摆" in reply and "定做" not in reply, reply


def test_a_carrier_asked_is_answered_by_the_note_that_names_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "能发顺丰吗", "ruqun")
    assert "补差价12元" in reply, reply


def test_a_dispatch_time_of_days_is_said_in_days_too(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "袄裙什么时候发货", "ruqun")
    assert "360小时内（15天）" in reply, reply


@pytest.mark.parametrize(("text", "price"), [("马面裙最便宜的款多少", "199"), ("马面裙最贵的多少钱", "459")])
def test_the_cheapest_or_dearest_version_is_asked_by_its_price(
    answerer: CatalogueAnswerer, text: str, price: str
) -> None:
    reply = ask(answerer, text, "ruqun")
    assert price in reply and "[product:mamian]" in reply, reply


def test_how_long_to_wear_for_ones_height_is_the_size_for_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "我168穿多长的马面", "ruqun")
    assert "95cm" in reply, reply


def test_a_quality_asked_a_not_a_is_answered_by_the_field_stating_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "绣花鞋滑不滑", "ruqun")
    assert "防滑牛筋底" in reply, reply
    # a word of amount or likeness is no quality a listing states
    assert "[product:" not in ask(answerer, "绣花鞋和别家的像不像", "ruqun")


def test_the_meaning_of_a_term_is_the_field_that_holds_it_whichever_product_lists_it(
    answerer: CatalogueAnswerer,
) -> None:
    reply = ask(answerer, "AAA是啥意思", "ruqun")
    assert "2mm灰板" in reply and "[product:starry]" in reply, reply


def test_a_count_no_version_has_is_not_listed_however_it_is_followed(answerer: CatalogueAnswerer) -> None:
    assert "咨询客服" in ask(answerer, "星空拼图有4000片的吗", "ruqun")
    assert "咨询客服" not in ask(answerer, "星空拼图500片的多少钱", "ruqun")
