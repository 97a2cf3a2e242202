"""Word lists for room insights: question intents (Chinese and English), the cues an answer
gives, stop words for trending terms, and generic title words that never name a product.

Everything here is data; server/insights/text.py uses it. Phrases are matched on the
normalised text (NFKC, casefold): Chinese phrases as substrings of the text without spaces
and punctuation, English phrases as whole words (a trailing plural "s" is ignored).
"""

from __future__ import annotations


def _words(*lines: str) -> frozenset[str]:
    return frozenset(word for line in lines for word in line.split())


INTENTS: dict[str, tuple[str, ...]] = {
    # Order matters only for ties: a question's intent is the one whose phrase occurs first.
    "price": (
        "多少钱", "多钱", "几块", "几元", "几毛", "价格", "价钱", "价位", "什么价", "啥价", "贵不贵", "贵吗", "多少米",
        "售价", "到手价", "how much", "price", "cost", "pricing", "expensive",
    ),
    "discount": (
        "优惠", "折扣", "打折", "优惠券", "券", "满减", "红包", "便宜点", "能便宜", "赠品", "送什么",
        "discount", "coupon", "promo", "code", "deal", "cheaper", "gift with",
    ),
    "shipping": (
        "包邮", "邮费", "运费", "发货", "快递", "几天到", "多久到", "什么时候到", "什么时候发", "寄到", "顺丰",
        "shipping", "ship", "deliver", "delivery", "postage", "arrive",
    ),
    "size": (
        "尺码", "尺寸", "码数", "几码", "多大", "大小", "容量", "多少ml", "多少毫升", "规格", "多重", "多长",
        "size", "fit", "capacity", "measurement", "how big", "ml",
    ),
    "color": ("颜色", "色号", "什么色", "几个色", "哪个色", "colour", "color", "shade"),
    "stock": (
        "有货", "还有吗", "有没有货", "库存", "没货", "断货", "补货", "卖完", "售罄", "抢不到", "还有货", "上架",
        "in stock", "stock", "sold out", "restock", "available", "any left",
    ),
    "how_to_buy": (
        "链接", "怎么买", "在哪买", "哪里买", "怎么拍", "怎么下单", "下单", "购物车", "小黄车", "几号",
        "link", "where to buy", "how to buy", "how do i buy", "how can i buy", "checkout", "cart", "order",
    ),
    "authenticity": (
        "正品", "真的假的", "假货", "是真的吗", "保真", "授权", "authentic", "genuine", "original", "fake", "real",
    ),
    "quality": (
        "质量", "好用吗", "效果", "保质期", "成分", "材质", "面料", "持久", "掉色", "味道",
        "quality", "ingredient", "material", "last", "durable", "smell",
    ),
    "suitability": (
        "适合", "敏感肌", "油皮", "干皮", "混油", "孕妇", "学生", "男生能", "怎么用", "用法",
        "suitable", "sensitive skin", "oily skin", "dry skin", "how to use", "good for",
    ),
    "returns": (
        "退货", "退换", "售后", "保修", "无理由", "退款", "return", "refund", "exchange", "warranty",
    ),
}  # fmt: skip

ANSWER_CUES: dict[str, tuple[str, ...]] = {
    # Words a host's or assistant's answer uses although the question did not.
    "price": ("元", "块", "¥", "￥", "rmb", "yuan", "dollar", "$", "只要", "only"),
    "shipping": ("今天发", "明天发", "48小时", "24小时", "ships", "shipped"),
    "stock": ("还剩", "剩", "left", "库存"),
    "size": ("码", "cm", "ml", "毫升"),
    "how_to_buy": ("号链接", "点击", "click", "tap"),
}

DEICTIC: frozenset[str] = _words(
    "这个 那个 这款 那款 这件 那件 这 那 它 它们 这些 那些 宝贝 东西 商品 产品 主播 老板 姐妹 家人 亲 ",
    "this that it these those one item product thing host",
)
"""Words that point at the product on screen: they add nothing to a question's topic."""

STOP_WORDS: frozenset[str] = _words(
    # Chinese function words, particles, pronouns and chat filler.
    "的 了 吗 呢 吧 啊 呀 哦 哈 哈哈 哈哈哈 嗯 么 嘛 哇 噢 啦 咯 呗 喔 诶 欸 ",
    "是 在 有 和 与 及 或 也 都 就 还 又 很 太 更 最 挺 好 真 再 才 只 被 把 给 让 对 向 从 到 为 ",
    "我 你 他 她 它 我们 你们 他们 她们 大家 自己 咱们 人家 ",
    "这 那 这个 那个 这些 那些 这里 那里 这样 那样 这么 那么 哪 哪个 哪里 什么 怎么 怎样 怎么样 为什么 多少 几 ",
    "一 一个 一下 一点 一样 没 没有 不 不是 不要 不会 不能 能不能 可不可以 可以 能 会 要 想 去 来 说 看 做 用 给 ",
    "啥 咋 呐 哎 唉 喂 嘿 额 呃 嗨 恩 哟 耶 嘻嘻 呵呵 ",
    "现在 今天 然后 但是 因为 所以 如果 还是 就是 已经 一直 真的 非常 特别 有点 一些 ",
    # English.
    "a an the and or but if of to in on at for with from by as is are was were be been being am ",
    "i you he she it we they me my your our their his her its this that these those there here ",
    "do does did have has had will would can could should may might must shall not no yes so too very ",
    "just what which who whom how when where why all any some more most much many lot lots get got ",
    "please pls plz ok okay oh wow lol haha hi hello hey thanks thank",
)

GENERIC_TITLE_WORDS: frozenset[str] = _words(
    "新款 正品 官方 旗舰 旗舰店 包邮 女 男 女士 男士 款 套装 礼盒 限定 特价 同款 新品 爆款 热卖 经典 ",
    "大容量 小样 组合 系列 专用 升级 版 直播 秒杀 福利 ",
    "new set pack official edition limited classic series special sale kit ",
    "ml g kg cm pcs piece pieces size",
)
"""Words of a product title that are too common to count as naming that product."""
