"""Which product, which version, and a plain no — the mechanisms added in the twelfth round of
issue 15: a pronoun inside a nickname ("千瓦时那个") naming nothing, "the one" of an amount
only one product's name gives, a word many products share narrowing two named ones when it
comes before the name (and not when it comes after, saying what is asked), the one version
whose name holds every number asked, "no" said first when a can-question names who or what
a product is not for, and "is this one A or B" about the thing on screen, not the product
called B — with whatever else the comment asks; a free gift asked as "does it come with a
gift", every colour when "any other colour" follows one, a link number settling which of two
products a shared word names, and "便宜的那个多少" asking a price; the passage of a listing holding
most of a question's own words when nothing else answers; and questions asked without a question
mark by "how high" after the name, "多亮" or "真的假的"; and "does it come with X" answered from
the part of the listing that names X, with the rest of the comment; and a word that names one
product by its nickname and the one on screen as part of another nickname ("人脸锁") naming the one
on screen.

The catalogue is written here, for this test (a camping-power and hairpiece shop); nothing in
shoplang names its products. Each case states one mechanism.
"""

from __future__ import annotations

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.shoplang.catalogue import Catalogue
from barrage.shoplang.understand import Understanding, is_question
from tests.insights_room import ask, group_of

CATALOGUE = """
format: 2
shop: {zh: 远行电源与发饰铺, en: Faraway power and hairpieces}
currency: CNY
shipping:
  ships_from: {zh: 浙江杭州, en: "Hangzhou, Zhejiang"}
  regions: [{zh: 中国大陆, en: mainland China}]
  carrier: {zh: 中通快递, en: ZTO Express}
  dispatch_hours: 48
  delivery_days: [1, 4]
  fee: 8
  free_over: 99
returns: {days: 7}
products:
  - id: station
    name: {zh: 远行户外电源1度电, en: Faraway power station 1 kWh}
    category: {zh: 户外电源, en: power station}
    aliases: [户外电源, 千瓦时那个, "1号链接"]
    price: 2999
    not_for:
      - {who: {zh: 电吹风、电热水壶等超过1500W的电器, en: "hair dryers, kettles and other loads over 1500 W"}}
    suitable_for:
      - {who: {zh: 露营照明和车载冰箱, en: camping lights and car fridges}}
    specs:
      - key: box
        name: {zh: 包装清单, en: in the box}
        value: {zh: 主机、车充线、说明书, en: "the station, a car charging cable, a manual"}
  - id: panel100
    name: {zh: 远行100W折叠太阳能板, en: Faraway 100W folding solar panel}
    category: {zh: 太阳能板, en: solar panel}
    aliases: ["2号链接"]
    price: 599
    specs:
      - {key: ip, name: {zh: 防水等级, en: water resistance}, value: IP65, keywords: [防水, waterproof]}
      - key: box
        name: {zh: 包装清单, en: in the box}
        value: {zh: 太阳能板（支架另购）, en: "the panel (stand sold separately)"}
      - key: mount
        name: {zh: 安装, en: installation}
        value:
          zh: 需用膨胀螺丝固定在墙上，不含安装服务
          en: "fixed to a wall with anchor bolts; installation not included"
    description: {zh: 可墙装, en: "Wall installation"}
  - id: panel200
    name: {zh: 远行200W折叠太阳能板, en: Faraway 200W folding solar panel}
    category: {zh: 太阳能板, en: solar panel}
    aliases: ["3号链接"]
    price: 999
    specs:
      - {key: ip, name: {zh: 防水等级, en: water resistance}, value: IP67, keywords: [防水, waterproof]}
  - id: bob-fibre
    name: {zh: 高温丝短发头套, en: Fibre bob wig}
    category: {zh: 假发头套, en: wig}
    aliases: [短发, 短发头套, "4号链接"]
    price: 99
  - id: bob-real
    name: {zh: 真人发短发头套, en: Real hair bob wig}
    category: {zh: 假发头套, en: wig}
    aliases: [真发头套, 真发短发, "5号链接"]
    price: 899
  - id: epilator
    name: {zh: 冰点脱毛仪Pro, en: Ice-cool IPL epilator Pro}
    category: {zh: 脱毛仪, en: IPL epilator}
    aliases: [冰点脱毛仪, "10号链接"]
    price: 1099
  - id: epilator-lite
    name: {zh: 入门款脱毛仪, en: Entry IPL epilator}
    category: {zh: 脱毛仪, en: IPL epilator}
    aliases: ["11号链接", "11号"]
    price: 499
  - id: topper
    name: {zh: 真发头顶补发片, en: Real hair crown topper}
    category: {zh: 补发片, en: topper}
    aliases: [补发片, 真发补发片, "6号链接"]
    price: 399
    variants:
      - {id: s25, name: {zh: 底座10x12cm 发长25cm, en: "base 10x12 cm, 25 cm hair"}}
      - {id: s35, name: {zh: 底座10x12cm 发长35cm, en: "base 10x12 cm, 35 cm hair"}, price: 459}
      - {id: l25, name: {zh: 底座13x15cm 发长25cm, en: "base 13x15 cm, 25 cm hair"}, price: 499}
      - {id: l35, name: {zh: 底座13x15cm 发长35cm, en: "base 13x15 cm, 35 cm hair"}, price: 569}
  - id: bangs
    name: {zh: 真发刘海片, en: Real hair bangs}
    category: {zh: 刘海片, en: bangs}
    aliases: [刘海片, "7号链接"]
    price: 129
  - id: cleanser
    name: {zh: 硅胶洁面仪, en: Silicone cleansing brush}
    category: {zh: 洁面仪, en: cleansing brush}
    aliases: [小方块, "12号链接"]
    price: 199
    description: {zh: 全硅胶刷面，适合敏感肌。, en: "All-silicone brush face, fine for sensitive skin."}
    specs:
      - key: head
        name: {zh: 刷头, en: brush face}
        value: {zh: 一体硅胶刷面，无需更换刷头, en: "one-piece silicone face, no heads to replace"}
  - id: heads
    name: {zh: 声波洁面仪替换刷头, en: Sonic brush replacement heads}
    category: {zh: 替换刷头, en: brush heads}
    aliases: [刷头, 替换刷头, "13号链接"]
    price: 59
  - id: lock-pro
    name: {zh: 可视猫眼智能锁Pro, en: Peephole smart lock Pro}
    category: {zh: 智能门锁, en: smart lock}
    aliases: [可视人脸锁, "14号链接"]
    price: 1699
  - id: lock
    name: {zh: 标准款智能锁, en: Standard smart lock}
    category: {zh: 智能门锁, en: smart lock}
    aliases: [人脸锁, "15号链接"]
    price: 1499
  - id: goose
    name: {zh: 白鹅绒长款羽绒服, en: White goose down long coat}
    category: {zh: 羽绒服, en: down coat}
    aliases: [鹅绒长款, "8号链接"]
    price: 999
    colours: [{zh: 黑色, en: black}, {zh: 燕麦色, en: oatmeal}]
    warranty: {months: 12}
    gift_with_purchase: {zh: 送羊毛围巾一条, en: a wool scarf}
    specs:
      - {key: down, name: {zh: 绒子, en: down}, value: {zh: 白鹅绒, en: white goose down}}
      - {key: fill, name: {zh: 蓬松度, en: fill power}, value: "750+", keywords: [蓬松, fill power]}
  - id: duck
    name: {zh: 白鸭绒长款羽绒服, en: White duck down long coat}
    category: {zh: 羽绒服, en: down coat}
    aliases: [鸭绒长款, 长款鸭绒, "9号链接"]
    price: 599
    specs:
      - {key: down, name: {zh: 绒子, en: down}, value: {zh: 白鸭绒, en: white duck down}}
  - id: duck-vest
    name: {zh: 白鸭绒轻薄马甲, en: White duck down light vest}
    category: {zh: 羽绒马甲, en: down vest}
    price: 179
  - id: duck-pants
    name: {zh: 鸭绒羽绒裤, en: Duck down trousers}
    category: {zh: 羽绒裤, en: down trousers}
    price: 299
"""


@pytest.fixture(scope="module")
def answerer() -> CatalogueAnswerer:
    return CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))


@pytest.fixture(scope="module")
def understanding(answerer: CatalogueAnswerer) -> Understanding:
    return answerer.understanding


@pytest.mark.parametrize("text", ["秒杀的是哪个 多少钱", "那个多少钱"])
def test_a_pronoun_inside_a_nickname_names_no_product(understanding: Understanding, text: str) -> None:
    # the station's nickname "千瓦时那个" holds 那个; said alone it points, it names nothing
    assert understanding.read(text).named == ()


def test_the_one_of_an_amount_only_one_name_gives_is_that_product(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "100w那个防水吗", "station")
    assert "IP65" in reply and "IP67" not in reply, reply


def test_an_amount_asked_for_names_no_other_product(understanding: Understanding) -> None:
    # "有100W的吗" asks whether the one on screen comes so: no panel is named by it
    assert understanding.read("有100W的吗").named == ()


def test_a_shared_word_before_a_name_picks_the_named_product_it_is_true_of(answerer: CatalogueAnswerer) -> None:
    # 短发 names both bobs (the fibre one more strongly); 真发 before it says which
    reply = ask(answerer, "真发那个短发多少钱", "station")
    assert "899" in reply and "¥99" not in reply, reply


def test_english_words_before_a_shared_name_pick_the_product_they_are_true_of(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "how much is the real hair bob", "station")
    assert "899" in reply and "¥99" not in reply, reply


def test_a_shared_word_said_without_picks_the_named_product_it_is_not_true_of(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "不是真发的那个短发多少钱", "station")
    assert "¥99" in reply and "899" not in reply, reply


def test_a_shared_word_after_a_name_says_what_is_asked_not_which_product(understanding: Understanding) -> None:
    reading = understanding.read("短发头套是真发吗")
    assert reading.named == ("bob-fibre",), reading.named


@pytest.mark.parametrize(
    ("text", "price", "other"),
    [
        ("6号13x15的35cm多少", "569", "459"),
        ("补发片 10x12 35cm 多少钱", "459", "569"),
        ("price of the 13x15 topper with 25cm hair?", "499", "569"),
    ],
)
def test_the_version_whose_name_holds_every_number_asked(
    answerer: CatalogueAnswerer, text: str, price: str, other: str
) -> None:
    reply = ask(answerer, text, "station")
    assert price in reply and other not in reply, reply


@pytest.mark.parametrize(("text", "no"), [("这个能带吹风机吗", "不建议"), ("can this one run a kettle?", "No.")])
def test_a_can_question_naming_what_it_is_not_for_gets_no_first(
    answerer: CatalogueAnswerer, text: str, no: str
) -> None:
    reply = ask(answerer, text, "station")
    assert reply.startswith(no), reply


def test_a_can_question_naming_what_it_suits_gets_no_no(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "这个能带车载冰箱吗", "station")
    assert "不建议" not in reply and "车载冰箱" in reply, reply


def test_is_this_one_a_or_b_is_about_the_thing_on_screen(answerer: CatalogueAnswerer) -> None:
    # 鸭绒 ends the duck coat's nickname, but "这件是…还是…" asks what the goose coat on screen is
    reply = ask(answerer, "主播手上这件是鹅绒还是鸭绒啊", "goose")
    assert "鹅绒" in reply and "[product:goose]" in reply and "[product:duck]" not in reply, reply


def test_a_choice_is_answered_with_the_rest_of_the_comment(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "is the pinned one goose or duck? what fill power?", "goose")
    assert "goose" in reply and "750" in reply, reply


def test_does_it_come_with_a_gift_asks_the_free_gift_not_for_gift_ideas(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "does the goose coat come with a gift? and the warranty?", "station")
    assert "scarf" in reply and "12" in reply, reply


@pytest.mark.parametrize(
    "text", ["does the goose coat come in black? any other colour?", "鹅绒长款有黑色吗 还有别的颜色吗"]
)
def test_any_other_colour_after_one_lists_them_all(answerer: CatalogueAnswerer, text: str) -> None:
    reply = ask(answerer, text, "station")
    assert ("oatmeal" in reply or "燕麦" in reply) and ("black" in reply or "黑" in reply), reply


def test_a_link_number_settles_which_product_a_shared_word_names(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "11号那个便宜的脱毛仪多少", "station")
    assert "499" in reply and "1099" not in reply, reply


def test_the_passage_holding_most_of_the_question_answers_when_nothing_else_does(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "小方块那个要换刷头吗", "station")
    assert "无需更换刷头" in reply and "[product:cleanser]" in reply, reply


def test_a_passage_holding_too_little_of_the_question_is_no_answer(answerer: CatalogueAnswerer) -> None:
    # 硅胶 is in the listing, 耐高温 and 消毒 are not: the brush lists nothing of boiling it
    reply = ask(answerer, "小方块的硅胶耐高温吗 能煮沸消毒吗", "station")
    assert "没有列出" in reply, reply


@pytest.mark.parametrize("text", ["memory foam pillow how high", "小方块那个多亮", "听说吃肌酸会脱发 真的假的"])
def test_questions_without_a_question_mark_are_questions(text: str) -> None:
    assert is_question(text)


@pytest.mark.parametrize("text", ["这灯多亮啊", "主播好美", "真的好看"])
def test_exclamations_and_praise_are_not_questions(text: str) -> None:
    assert not is_question(text)


@pytest.mark.parametrize(
    ("text", "said"), [("这个带车充线吗", "有。"), ("does it come with a car charging cable?", "Yes.")]
)
def test_does_it_come_with_a_thing_the_listing_names_is_yes_with_that_part(
    answerer: CatalogueAnswerer, text: str, said: str
) -> None:
    reply = ask(answerer, text, "station")
    assert reply.startswith(said) and ("车充线" in reply or "car charging cable" in reply), reply


def test_a_thing_the_listing_says_is_sold_separately_is_no_yes(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "100w那个带支架吗", "station")
    assert "另购" in reply and not reply.startswith("有"), reply


def test_does_it_come_with_is_answered_beside_the_rest_of_the_comment(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "这个多少钱 带车充线吗", "station")
    assert "2999" in reply and "车充线" in reply, reply


def test_what_it_can_power_is_no_question_of_what_comes_with_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "这个能带车载冰箱吗", "station")
    assert not reply.startswith("有。"), reply


def test_any_part_saying_a_thing_is_not_included_answers_with_no_yes(answerer: CatalogueAnswerer) -> None:
    # the description mentions "installation" too; the installation spec says it is not included
    reply = ask(answerer, "does the 100W panel come with installation?", "station")
    assert "installation not included" in reply and not reply.startswith("Yes"), reply


def test_a_word_naming_the_product_on_screen_less_strongly_is_about_the_one_on_screen(
    answerer: CatalogueAnswerer,
) -> None:
    # 人脸锁 is the standard lock's nickname and part of the Pro's (可视人脸锁); the Pro is on screen
    assert "1699" in ask(answerer, "人脸锁多少钱", "lock-pro")
    assert "1499" in ask(answerer, "人脸锁多少钱", "station")


def test_insights_charge_such_a_question_to_the_product_on_screen() -> None:
    catalogue = Catalogue.model_validate(yaml.safe_load(CATALOGUE))
    assert group_of(catalogue, ["人脸锁多少钱"], "lock-pro") == ["price@lock-pro"]
