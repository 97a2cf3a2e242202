"""What the listing does not say — the mechanisms of the thirteenth round of issue 15: a person's
height said in metres and the rest ("我一米八五") is a height, and one character shared with a
listed audience names that audience only in a two-character word ("油皮", "男生"); in a longer
chunk it shares the character by accident ("下雨天" with "150厘米以下", "粉笔写" with "记号笔"), so
the group asked about is not listed and the reply says so. And a question about what the shop
will do later — its next show, tomorrow's price, a sale to come back — is declined: no listing
or live state knows it, unless the shop's FAQ tells its show times; so are the host's own size
(unless a listing gives it), a shop to visit in person (unless the FAQ names one), and a kind
of size the listing does not give ("有儿童码吗" of adult sizes, "有半码吗" of whole ones, "men's"
of a women's set). A yes/no question about the product is not answered by who it is for
unless what it asks is said there ("去屑吗" of a shampoo for oily scalps). And a product whose every
price reaches the free-shipping threshold ships free on its own, and where a product is made is
not answered by facts that name no origin. A nickname naming two products is blanked out once,
and "212 F" asks a temperature.

The catalogue is written here, for this test (a bicycle, stationery and shampoo shop); nothing in
shoplang names its products. Each case states one mechanism.
"""

from __future__ import annotations

import pytest
import yaml

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.shoplang import lang as L
from barrage.shoplang.catalogue import Catalogue
from tests.insights_room import ask

CATALOGUE = """
format: 2
shop: {zh: 骑行与文具小铺, en: Ride and write}
currency: CNY
shipping:
  ships_from: {zh: 江苏苏州, en: "Suzhou, Jiangsu"}
  regions: [{zh: 中国大陆, en: mainland China}]
  carrier: {zh: 圆通快递, en: YTO Express}
  dispatch_hours: 48
  delivery_days: [2, 5]
  fee: 8
  free_over: 99
returns: {days: 7}
faq:
  - id: shows
    question: {zh: 每天几点直播？, en: "When are the live shows?"}
    keywords: [几点直播, 几点开播, 下一场, when is the next live]
    answer: {zh: 每晚8点开播。, en: "Every evening at 8 pm."}
  - id: showroom
    question: {zh: 有实体店吗？, en: "Is there a showroom?"}
    keywords: [实体店, 线下店, 门店, physical store]
    answer: {zh: 苏州有线下门店：姑苏区十全街18号。, en: "Our physical store is at 18 Shiquan Street, Suzhou."}
products:
  - id: bike
    name: {zh: 城市通勤自行车, en: City commuter bike}
    category: {zh: 自行车, en: bicycle}
    price: 899
    suitable_for:
      - who: {zh: 身高150-190厘米的成人（男女通用）, en: "adults 150-190 cm tall (men and women)"}
        limit: {quantity: height, unit: cm, min: 150, max: 190}
    not_for:
      - who: {zh: 身高150厘米以下的人, en: people under 150 cm}
        limit: {quantity: height, unit: cm, max: 150}
  - id: jersey
    name: {zh: 女款速干骑行服, en: Women's quick-dry cycling jersey}
    category: {zh: 骑行服, en: cycling jersey}
    price: 199
    sizes: [S, M, L, XL]
    variants:
      - {id: short, name: {zh: 短袖, en: short sleeves}}
      - {id: long, name: {zh: 长袖, en: long sleeves}, price: 229}
    specs:
      - key: host
        name: {zh: 主播上身, en: on the host}
        value: {zh: 主播身高170穿L码, en: "the host, 170 cm, wears L"}
  - id: helmet
    name: {zh: 儿童骑行头盔, en: Kids' cycling helmet}
    category: {zh: 头盔, en: helmet}
    price: 89
    sizes: [S, M]
  - id: shampoo
    name: {zh: 控油洗发水, en: Oil-control shampoo}
    category: {zh: 洗发水, en: shampoo}
    aliases: [ky]
    price: 59
    suitable_for:
      - {who: {zh: 油性头皮、头发容易扁塌的人, en: oily scalps and flat hair}}
    not_for:
      - {who: {zh: 孕妇, en: pregnant women}}
  - id: conditioner
    name: {zh: 控油护发素, en: Oil-control conditioner}
    category: {zh: 护发素, en: conditioner}
    aliases: [ky]
    price: 49
    suitable_for:
      - {who: {zh: 头发干枯毛躁的人, en: dry and frizzy hair}}
  - id: board
    name: {zh: 磁性白板, en: Magnetic whiteboard}
    category: {zh: 白板, en: whiteboard}
    price: 159
    not_for:
      - {who: {zh: 油性记号笔（会留痕）, en: "oil-based markers (they leave marks)"}}
    suitable_for:
      - {who: {zh: 会议室和小办公室, en: meeting rooms and small offices}}
"""

NOT_LISTED = "没有列出"


@pytest.fixture(scope="module")
def answerer() -> CatalogueAnswerer:
    return CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))


@pytest.mark.parametrize(
    ("text", "cm"),
    [("我一米八五能骑吗", 185.0), ("身高1米7穿什么码", 170.0), ("我1米65", 165.0), ("个子一米六", 160.0)],
)
def test_a_height_in_metres_and_the_rest_is_a_height(text: str, cm: float) -> None:
    assert L.quantities(text) == [("height", cm)]


def test_a_bed_of_one_metre_eight_is_no_one_s_height() -> None:
    assert L.quantities("1米8的床有吗") == []


def test_a_height_in_metres_is_answered_by_the_listed_range(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "我一米八五能骑吗", "bike")
    assert "190" in reply and NOT_LISTED not in reply, reply


@pytest.mark.parametrize(("text", "pinned"), [("下雨天能骑吗", "bike"), ("白板能用粉笔写吗", "board")])
def test_a_longer_chunk_sharing_one_character_with_an_audience_is_not_that_audience(
    answerer: CatalogueAnswerer, text: str, pinned: str
) -> None:
    reply = ask(answerer, text, pinned)
    assert NOT_LISTED in reply, reply


def test_a_two_character_group_sharing_one_character_is_that_audience(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "男生能骑吗", "bike")
    assert "男女通用" in reply, reply


@pytest.mark.parametrize(
    "text",
    [
        "明天还是这个价吗 我发工资再买",
        "秒杀结束了还会再有吗",
        "will there be another flash sale on the bike later tonight?",
        "when is the next gen bike coming out",
    ],
)
def test_what_the_shop_will_do_later_is_declined(answerer: CatalogueAnswerer, text: str) -> None:
    reply = ask(answerer, text, "bike")
    assert "不清楚" in reply or "don't know" in reply, reply
    assert "[product:" not in reply, reply


def test_the_shop_s_faq_of_show_times_answers_the_next_show(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "下一场什么时候播", "bike")
    assert "8点" in reply, reply


@pytest.mark.parametrize(("text", "said"), [("秒杀结束以后多少钱", "899"), ("明天能发货吗", "48")])
def test_after_a_sale_and_tomorrow_s_delivery_are_no_later_show(
    answerer: CatalogueAnswerer, text: str, said: str
) -> None:
    reply = ask(answerer, text, "bike")
    assert said in reply, reply


@pytest.mark.parametrize("text", ["主播自己穿多大码", "主播多高"])
def test_the_host_s_own_size_is_declined_when_no_listing_gives_it(answerer: CatalogueAnswerer, text: str) -> None:
    reply = ask(answerer, text, "bike")
    assert NOT_LISTED in reply and "[product:" not in reply, reply


def test_the_host_s_own_size_is_answered_from_a_listing_that_gives_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "主播自己穿多大码", "jersey")
    assert "L码" in reply, reply


def test_a_shop_to_visit_is_the_faq_s_answer_not_a_product_s() -> None:
    without_faq = yaml.safe_load(CATALOGUE)
    without_faq["faq"] = [e for e in without_faq["faq"] if e["id"] != "showroom"]
    bare = CatalogueAnswerer(Catalogue.model_validate(without_faq))
    assert NOT_LISTED in ask(bare, "有线下门店吗 坏了能去店里修吗", "bike")
    full = CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))
    assert "十全街" in ask(full, "有线下门店吗 坏了能去店里修吗", "bike")


@pytest.mark.parametrize("text", ["骑行服有儿童码吗", "骑行服有半码吗", "does the jersey come in a men's version?"])
def test_a_kind_of_size_the_listing_does_not_give_is_not_listed(answerer: CatalogueAnswerer, text: str) -> None:
    reply = ask(answerer, text, "jersey")
    assert NOT_LISTED in reply or "not listed" in reply, reply


def test_a_kind_of_size_the_listing_gives_is_answered(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "头盔有儿童码吗", "helmet")
    assert NOT_LISTED not in reply and "S、M" in reply, reply


def test_a_yes_no_question_is_not_answered_by_who_it_is_for_alone(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "洗发水去屑吗 我头皮屑很多", "shampoo")
    assert NOT_LISTED in reply, reply


def test_a_group_asked_about_is_answered_by_the_audience_naming_it(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "孕妇能用这个洗发水吗", "shampoo")
    assert "孕妇" in reply and NOT_LISTED not in reply, reply


def test_a_product_over_the_free_shipping_threshold_ships_free(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "这个包邮吗", "bike")
    assert reply.startswith("城市通勤自行车 包邮"), reply


def test_a_product_under_the_threshold_gets_the_fee_and_the_threshold(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "这个包邮吗", "shampoo")
    assert "运费" in reply and "满" in reply, reply


@pytest.mark.parametrize("text", ["这件是哪产的 短袖还是长袖", "骑行服哪里产的 短袖多少钱"])
def test_where_it_is_made_is_not_answered_by_other_facts(answerer: CatalogueAnswerer, text: str) -> None:
    # what is listed (the versions, a price) is said, and that the origin is not listed
    reply = ask(answerer, text, "jersey")
    assert "199" in reply and NOT_LISTED in reply, reply


def test_a_nickname_naming_two_products_blanks_only_itself() -> None:
    answerer = CatalogueAnswerer(Catalogue.model_validate(yaml.safe_load(CATALOGUE)))
    reading = answerer.understanding.read("ky孕妇能用吗")
    assert set(reading.named) == {"shampoo", "conditioner"}
    assert reading.without_names() == "  孕妇能用吗"


def test_a_group_no_audience_names_is_not_listed_after_a_shared_nickname(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "ky孕妇能用吗", "conditioner")
    assert NOT_LISTED in reply, reply


@pytest.mark.parametrize(("text", "temperature"), [("can it go up to 212 F?", True), ("3c认证有吗", False)])
def test_degrees_fahrenheit_ask_a_temperature(answerer: CatalogueAnswerer, text: str, temperature: bool) -> None:
    assert ("temperature" in answerer.understanding.read(text).concepts) is temperature


def test_something_that_will_still_be_there_is_no_later_show(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "洗了还会有味道吗", "shampoo")
    assert "不清楚" not in reply, reply
