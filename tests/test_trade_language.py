"""General shopping language on trades no evaluation shop covers (cosmetics, pet food,
clothing) and on the ways a question's words differ from its listing's.

The catalogue (tests/data/trades_catalogue.yaml) was written for this test; nothing in
shoplang names its products. Each case is a question viewers of that trade ask, and what a
reply must hold (or that it must decline: the listing does not say).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from barrage.clients.assistant.answerer_v2 import CatalogueAnswerer
from barrage.clients.assistant.state import LiveState
from barrage.shoplang import lang as L
from barrage.shoplang.catalogue import load_catalogue
from barrage.shoplang.evaluation import is_decline
from barrage.shoplang.understand import ProductNames, Understanding
from tests.insights_room import ask, group_of

CATALOGUE = Path(__file__).resolve().parent / "data" / "trades_catalogue.yaml"
SHOPS = Path(__file__).resolve().parent.parent / "evals" / "shops"


@pytest.fixture(scope="module")
def answerer() -> CatalogueAnswerer:
    return CatalogueAnswerer(load_catalogue(CATALOGUE))


@pytest.mark.parametrize(
    ("text", "must"),
    [
        # cosmetics
        ("面霜敏感肌能用吗", "敏感肌"),
        ("面霜开封后能放多久", "12个月"),
        ("面霜油不油", "不油腻"),  # texture, in the listing's words
        ("口红有几个色号", "豆沙色"),
        ("口红有豆沙色吗", "02豆沙色"),  # a shade the catalogue lists, not a basic colour word
        ("口红沾杯吗", "不易沾杯"),
        ("面霜适合什么肤质", "干皮和敏感肌"),  # which: the listed audiences
        ("which skin type is the cream for", "dry and sensitive skin"),
        ("lipstick shades?", "rosewood"),
        # pet food
        ("猫粮3个月的猫能吃吗", "4个月以上"),
        ("猫粮什么口味", "鸡肉味"),
        ("猫粮大包多少钱", "¥329"),
        # clothing
        ("连衣裙160 50kg穿什么码", "M码"),  # a bare 160 in a size question is a height
        ("身高158体重45穿哪个码", "S码"),  # nothing pinned: the one product with a size chart
        ("dress size for 165cm 52kg", "M ("),
        ("连衣裙起球吗", "不易起球"),
        ("连衣裙能机洗吗", "冷水手洗"),
        ("裙子透不透", "不透"),
        ("连衣裙是纯棉的吗", "100%棉"),
        ("is the dress cotton", "100% cotton"),
    ],
)
def test_questions_of_other_trades_are_answered_from_the_listing(
    answerer: CatalogueAnswerer, text: str, must: str
) -> None:
    reply = ask(answerer, text)
    assert must in reply, (text, reply)


def test_both_sizes_of_a_chart_are_checked_together(answerer: CatalogueAnswerer) -> None:
    reply = ask(answerer, "dress size for 165cm 52kg")
    assert "L (" not in reply  # 165 cm alone would also be L; 52 kg is not


@pytest.mark.parametrize(
    "text",
    [
        "口红有奶茶色吗",
        "连衣裙有XL吗",
        "裙子会掉色吗",
        "面霜含酒精吗",
        "面霜孕妇可以用吗",
        "面霜混油皮能用吗",
        "can pregnant women use the cream",
    ],
)
def test_what_the_listing_does_not_say_is_declined(answerer: CatalogueAnswerer, text: str) -> None:
    reply = ask(answerer, text)
    assert is_decline(reply), (text, reply)


def test_a_product_name_is_not_the_thing_asked() -> None:
    """ "保温壶能装碳酸饮料吗": 保温 is in the flask's name, not a question about keeping warm."""
    answerer = CatalogueAnswerer(load_catalogue(SHOPS / "outdoor" / "catalogue.yaml"))
    assert is_decline(ask(answerer, "保温壶能装碳酸饮料吗", pinned="out-flask"))
    assert "12小时" in ask(answerer, "保温壶能保温多久", pinned="out-flask")


def test_a_measure_points_at_the_product_sized_by_it() -> None:
    """A foot length while the jacket is pinned: the boots' chart (one value per size)."""
    answerer = CatalogueAnswerer(load_catalogue(SHOPS / "outdoor" / "catalogue.yaml"))
    reply = ask(answerer, "脚长253穿多大码", pinned="out-jacket")
    assert "41码" in reply and "out-shoes" in reply, reply


@pytest.mark.parametrize(
    ("text", "intents", "concepts"),
    [
        ("秒杀还剩多久", ("time_left", "sale"), ()),  # not 还剩 = stock
        ("几天到", ("delivery_time",), ()),  # not 几天 = battery
        ("冬天零下能穿吗", ("suitable",), ("temperature", "season")),
        ("能睡几个人", (), ("occupancy",)),
        ("包油吗", ("fee",), ()),  # a pinyin slip of 包邮
        ("运废多少", ("fee",), ()),
    ],
)
def test_what_is_asked_longest_cue_first_and_through_pinyin_slips(
    text: str, intents: tuple[str, ...], concepts: tuple[str, ...]
) -> None:
    reading = Understanding(products=[ProductNames("p", ("某商品",))]).read(text)
    assert reading.intents == intents
    assert reading.concepts == concepts


@pytest.mark.parametrize(
    ("text", "asks"),
    [("瑜伽垫多厚", True), ("鞋子偏大还是偏小", True), ("买黑色还是白色好", True), ("我还是喜欢黑色", False),
     ("好多厚衣服", False), ("还是算了", False)],
)  # fmt: skip
def test_questions_without_a_marker(text: str, asks: bool) -> None:
    understanding = Understanding(load_catalogue(SHOPS / "outdoor" / "catalogue.yaml"))
    assert understanding.read(text).question is asks


@pytest.mark.parametrize(
    ("text", "asks"),
    [("价格", True), ("尺码", True), ("运费", True), ("link", True), ("颜色好看", False), ("想要黑色", True),
     ("好想要啊", False), ("谁买了", True), ("秒杀", False), ("我是敏感肌", False), ("求口红链接", True),
     ("麻烦试色02", True), ("我家猫超爱吃这个猫粮", False), ("口红哑光还是滋润", True), ("为什么我抢不到啊", False),
     ("价格可以", False), ("颜色不错", False),
     ("怎么又没抢到", False)],
)  # fmt: skip
def test_one_word_questions_wishes_and_statements_of_other_trades(text: str, asks: bool) -> None:
    assert Understanding(load_catalogue(CATALOGUE)).read(text).question is asks


def test_a_kind_the_room_does_not_sell_is_not_the_product_on_screen(answerer: CatalogueAnswerer) -> None:
    """ "衬衫多少钱" while the dress is pinned: not the dress's price (a wrong-product answer)."""
    assert is_decline(ask(answerer, "衬衫多少钱", pinned="dress"))
    assert "¥229" in ask(answerer, "这件衬衫多少钱", pinned="dress")  # pointing: what the host shows
    # What it is used with is not what is asked about: the pinned product still answers.
    assert not answerer.understanding.read("苹果手机能用吗").other_kind
    assert answerer.understanding.read("有没有手机").other_kind


def test_a_chinese_head_noun_names_the_product() -> None:
    """徒步鞋 is a kind of 鞋: "鞋子防水吗" is about the boots, not the jacket on screen."""
    understanding = Understanding(load_catalogue(SHOPS / "outdoor" / "catalogue.yaml"))
    assert understanding.read("鞋子防水吗").named == ("out-shoes",)


# ---------------------------------------------------------------- insights groups


def test_paraphrases_and_typos_of_one_question_join_and_different_questions_do_not() -> None:
    groups = group_of(
        load_catalogue(CATALOGUE),
        ["连衣裙起球吗", "裙子会不会起毛球", "does the dress pill", "连衣裙怎么洗", "裙子能机洗吗", "裙子透不透",
         "有内衬吗", "连衣裙包油吗", "包邮吗", "主播试一下这个颜色", "麻烦主播试色"],
        pinned="dress",
    )  # fmt: skip
    pilling, washing, lining, shipping = groups[0:3], groups[3:5], groups[5:7], groups[7:9]
    host = groups[9:11]
    assert len(set(host)) == 1 and host[0].startswith("host@"), groups
    for same in (pilling, washing, lining, shipping):
        assert len(set(same)) == 1, groups
    assert len({pilling[0], washing[0], lining[0], shipping[0]}) == 4, groups


def test_the_general_lexicon_names_no_product_of_a_shop() -> None:
    """What is asked is read with general words: none of them is a product name of the test
    catalogue or the outdoor shop (kinds of product are in KIND_SYNONYMS, not here)."""
    cues = " ".join(c for table in (L.INTENTS, L.CONCEPTS) for cues in table.values() for c in cues)
    for name in ("积雪草", "丝绒", "冻干猫粮", "碎花", "三合一", "速开"):
        assert name not in cues


def test_the_counting_word_of_one_products_variants_names_it() -> None:
    """ "喝几段": only the formula's variants are counted in 段 (1段, 2段, 3段)."""
    understanding = Understanding(load_catalogue(SHOPS / "baby" / "catalogue.yaml"))
    assert understanding.read("我宝宝8个月喝几段").named == ("baby-formula",)


@pytest.mark.parametrize("text", ["炒锅今天169", "直播间到手549", "券后99"])
def test_a_host_stating_a_price_answers_price_questions(text: str) -> None:
    assert "price" in L.answer_intents(L.normalize(text))


def test_a_number_inside_a_longer_number_names_no_variant(answerer: CatalogueAnswerer) -> None:
    """ "165 55公斤选M还是L" is a viewer's weight, not the cat food's 5公斤 bag."""
    reply = ask(answerer, "165 55公斤选M还是L", pinned="dress")
    assert "catfood" not in reply and "M码" in reply, reply
    assert "¥329" in ask(answerer, "猫粮5kg多少钱")  # the 5 kg bag, written the English way


def test_sound_alone_does_not_make_a_question_word_a_cue() -> None:
    """ "腰围多少" is not "喂多少" (how much to feed): only 多少 is the same character."""
    understanding = Understanding(load_catalogue(CATALOGUE))
    assert understanding.read("腰围多少").concepts == ()
    assert understanding.read("what's it made of").sizes == ()  # the s of what's is no size S


def test_a_general_kind_of_spec_is_asked_of_the_product_on_screen(answerer: CatalogueAnswerer) -> None:
    """ "保质期多久" while the cat food (no shelf life listed) is pinned: declined, never the
    cream's shelf life (a wrong-product answer); a part only one product has still finds it."""
    assert is_decline(ask(answerer, "保质期多久", pinned="catfood"))
    home = CatalogueAnswerer(load_catalogue(SHOPS / "home" / "catalogue.yaml"))
    assert "拆洗" in ask(home, "枕套能拆下来洗吗", pinned="home-wok")


@pytest.mark.parametrize(
    ("text", "must"),
    [("how much protein", "40%"), ("how much is it", "¥159"), ("几个月的猫可以吃", "4个月"), ("大包小包价格", "¥329")],
)
def test_how_much_of_what(answerer: CatalogueAnswerer, text: str, must: str) -> None:
    assert must in ask(answerer, text, pinned="catfood")


@pytest.mark.parametrize(
    ("text", "intents", "concepts"),
    [
        ("whats the prise", ("price",), ()),
        ("is it waterprof", (), ("waterproof",)),
        ("retrun policy", ("returns",), ()),
    ],
)
def test_english_typos_of_what_is_asked(text: str, intents: tuple[str, ...], concepts: tuple[str, ...]) -> None:
    reading = Understanding(products=[ProductNames("p", ("某商品",))]).read(text)
    assert (reading.intents, reading.concepts) == (intents, concepts)


def test_random_questions_of_shopping_words_never_fail_and_every_number_is_grounded() -> None:
    """300 questions glued from cue words, product names and quantities, on the trades
    catalogue with a random product pinned: no exception, every stated number sourced."""
    import random

    from barrage.clients.assistant.grounding import ungrounded

    rng = random.Random(15)
    catalogue = load_catalogue(CATALOGUE)
    answerer = CatalogueAnswerer(catalogue)
    words = [c for table in (L.INTENTS, L.CONCEPTS) for cues in table.values() for c in cues if not c.startswith("re:")]
    words += ["这个", "吗", "?", "55公斤", "175", "体重110", "3个月", "XL", "豆沙色", "奶茶色", "新疆", "5kg"]
    words += [p.name.zh for p in catalogue.products] + [p.category.en for p in catalogue.products]
    for _ in range(300):
        text = "".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
        reply = answerer.answer(text, _pinned(rng.choice([None, *(p.id for p in catalogue.products)])), 0)
        if reply.outcome == "answer":
            sources = tuple(source for fact in reply.facts for source in fact.sources)
            assert not ungrounded(reply.text, sources), (text, reply.text)


def _pinned(product_id: str | None) -> LiveState:
    state = LiveState()
    state.pinned_id = product_id
    return state


def test_whether_pets_like_it_is_not_the_flavour(answerer: CatalogueAnswerer) -> None:
    assert is_decline(ask(answerer, "猫咪爱吃吗", pinned="catfood"))  # the listing does not say
    assert "鸡肉味" in ask(answerer, "什么口味", pinned="catfood")
