"""The words that tell what a viewer asks, in Chinese and English (slang included).

Each intent is a list of phrases (see text.Phrase: Chinese by substring or pinyin,
English by words with typo tolerance, `re:` for regular expressions over the
normalised text). Products' own names, spec keywords and FAQ keywords come from the
catalogue; these are the shop-independent words.
"""

from __future__ import annotations

from typing import Final

# fmt: off
INTENTS: Final[dict[str, tuple[str, ...]]] = {
    "price": (
        "多少钱", "多钱", "几块", "几钱", "价格", "价钱", "咋卖", "怎么卖", "售价", "啥价", "什么价", "到手价",
        "贵吗", "贵不贵", "多少米", "几米", "多少一",
        "便宜吗", "哪个贵", "哪个便宜", "定价", "现价", "卖多少", "how much", "price", "prices", "pricing", "cost",
        "costs",
        "re:\\$\\$", "expensive", "cheap", "cheaper", "how mch", "hw much", "priced",
    ),
    "stock": (
        "库存", "还有吗", "还有没有", "还有货", "有货", "有没有货", "没货", "卖完", "售罄", "还剩", "剩多少", "剩几",
        "抢完", "抢光", "断货", "还能买", "还能抢",
        "有现货", "现货", "剩下", "还有多少", "卖光", "in stock", "stock", "sold out", "left", "available", "any left",
        "still have", "still available", "out of stock", "how many left", "remaining", "soldout",
        "re:还有(几|多少)", "re:剩(几|多少|下)", "re:还有.{0,4}(没|不|么|嘛)$", "还能拍",
    ),
    "sizes": (
        "尺码", "码数", "码子", "几码", "什么码", "哪个码", "多大码", "大码", "小码", "选码", "re:[0-9a-z]+码",
        "偏大", "偏小", "正码", "尺寸表",
        "size", "sizes", "sizing", "fit", "fits", "runs small", "runs large", "runs big", "true to size",
        "re:(?<![a-z0-9])(xs|xl|xxl|xxxl|[2-4]xl)(?![a-z0-9])", "re:(?<![a-z])[sml](码|号)",
        "re:(大|小)(一|半)?码", "拍大", "拍小",
    ),
    "colours": (
        "颜色", "色号", "什么色", "几个色", "几种颜色", "配色", "哪些色", "啥色", "几色", "colour", "colours",
        "color", "colors", "shade",
        "shades",
        "re:(?<![a-z])(red|pink|blue|green|black|white|grey|gray|purple|yellow|orange|brown|beige|navy|khaki|gold|silver)(?![a-z])",
        "re:[红橙黄绿青蓝紫粉黑白灰棕咖金银米卡驼杏藏][色]",
    ),
    "ingredients": (
        "成分", "配方", "含酒精", "酒精", "香精", "防腐剂", "添加剂", "含不含", "含有", "有没有加", "配料", "原料",
        "ingredient", "ingredients",
        "contain", "contains", "alcohol", "fragrance", "paraben", "parabens", "made of what", "additives",
        "fragrance free", "alcohol free", "sugar free", "unscented",
        "re:what(s| is|'s) in (it|this|the)\\b(?! (flash |live )?(sale|deal|live|stream|room|box|package))",
        "re:(有|加|含|放)(没有|不)?糖",
        "材质", "面料", "材料", "纯棉", "全棉", "含棉", "什么做的", "啥做的", "material", "fabric", "cotton",
        "made of", "made from",
    ),
    "shipping": (
        "发货", "包邮", "邮费", "运费", "快递", "几天到", "多久到", "什么时候到", "物流", "顺丰", "寄", "发什么快递",
        "配送", "送到", "偏远", "发出",
        "re:(几天|多久|多长时间|什么时候|哪天)(能|可以|才|会)?(到|收到|送到|发)", "ship", "ships", "shipping",
        "delivery", "deliver", "arrive",
        "postage", "courier", "free shipping",
    ),
    "returns": (
        "退货", "退换", "退款", "换货", "无理由", "可以退", "能退", "能换", "可以换", "售后", "不喜欢怎么办",
        "return", "returns", "refund",
        "refunds", "exchange", "send it back", "money back",
    ),
    "suitable": (
        "适合", "适用", "能用吗", "可以用吗", "能用不", "合适吗", "re:(能|可以)(一起)?(用|穿|吃|喝|戴)(?!多久|几|多长)",
        "适合什么人", "男女同款", "unisex",
        "for men", "for women", "for kids", "suitable", "good for", "ok for", "okay for", "work for", "works for",
        "safe for", "suit", "suits",
    ),
    "about": (
        "是什么", "是啥", "介绍", "讲讲", "怎么样", "好用吗", "好不好", "干嘛用", "什么东西", "有什么用",
        "what is this", "what is it",
        "tell me about", "is it good", "details", "info",
    ),
    "on_sale": (
        "秒杀", "在卖什么", "在卖啥", "卖的什么", "卖的是什么", "卖的啥", "现在卖", "正在卖", "正在讲", "在讲",
        "上的什么", "上的是什么", "什么活动", "有活动", "打折",
        "特价", "优惠", "几号链接", "哪个链接", "现在是什么", "现在这个是", "福利", "上车", "哪个在", "在秒", "抢购",
        "限购", "re:链接是?(哪|几)", "开抢", "开始",
        "结束", "几点", "flash sale", "on sale", "deal", "deals", "discount", "promo", "promotion", "selling now",
        "what are you selling", "current product", "which link", "special offer", "sale", "limit",
        "how many can i buy", "start", "starts", "end", "ends", "what time",
    ),
    "recommend": (
        "推荐", "安利", "种草", "求个", "哪款好", "哪个好", "哪款适合", "哪个适合", "送礼", "送人", "送妈妈",
        "送女朋友", "送男朋友", "送爸", "送长辈", "礼物",
        "re:有(没有|无)?(什么|啥|哪些|哪款)?.{0,10}适合", "re:适合.{1,12}的(吗|呢|么|嘛|不)?[?？]*$",
        "re:有(没有|没)?.{0,4}(什么|啥).{0,8}的",
        "re:有没有.{1,10}的", "什么好", "recommend", "recommendation", "suggest", "suggestion", "something for",
        "anything for", "looking for", "something good for", "best for", "do you have a", "do you have an",
        "do you have any", "do you have something", "do you have", "do you sell", "got any", "need something", "gift",
        "something to", "anything to", "something that", "re:\\bany\\b.{1,30}\\bfor\\b", "what do you have",
        "re:^有没有",
        "想要", "想买", "想找", "要一个", "i want", "i need", "need a", "want a",
    ),
}
"""intent -> phrases. `recommend` and `on_sale` do not need a product; the others are
about one (named, or the pinned one)."""

PRODUCT_INTENTS: Final = frozenset({"price", "stock", "sizes", "colours", "ingredients", "suitable", "about"})
"""Intents that need a product to answer."""

SHOP_INTENTS: Final = frozenset({"shipping", "returns"})
"""Answered from the shop's policy, or the product's own when one is named."""

DEICTIC: Final[tuple[str, ...]] = (
    "这个", "这款", "这件", "这条", "这双", "这瓶", "这套", "这只", "这盒", "这是", "这东西", "那个", "那款", "那件",
    "当前", "现在这", "主播手上", "手上的",
    "正在讲的", "上的这", "它", "this", "this one", "it", "that one", "the one", "current", "pinned", "this item",
    "this product",
)
"""Words pointing at the pinned product ("这个多少钱"); matched as written, never by pinyin."""

SALE_REFERENCE: Final[tuple[str, ...]] = (
    "秒杀", "在秒", "抢购", "flash sale", "flash deal", "the sale", "sale price",
)
"""Words pointing at the running flash sale's product."""

ABOUT_THE_HOST: Final[tuple[str, ...]] = (
    "re:主播(穿|用|戴|身高|体重|多高|多重|几码|多大|自己)", "host wearing", "host wear", "the host's", "host use",
)
"""Questions about the host in person: answered only by a FAQ entry, never from a product."""

SPECIFIC_ASK: Final[tuple[str, ...]] = (
    "多久", "多少", "几", "什么时候", "哪里", "哪儿", "为什么", "谁", "how long", "how many", "how much", "when",
    "where", "why",
    "who", "which",
)
"""Question words that ask for something specific: a bare product name with one of these
("毛巾能用多久") is not a request for the product's description."""

ASK_WORDS: Final[tuple[str, ...]] = (
    "吗", "呢", "么", "嘛", "啥", "什么", "怎么", "多少", "哪", "几", "是否", "能不能", "可不可以", "有没有", "有无",
    "什么时候", "时候", "几点", "多久",
    "how", "what", "which", "when", "where", "why", "who", "is there", "are there", "can i", "can you", "do you",
    "does it", "does this", "is it", "is this", "are they", "any", "recommend", "tell me",
    "re:^(is|are|does|do|did|can|could|will|would|has|have|should)\\b", "re:(.)[不没]\\1",
)
"""Question words (besides a question mark) that make a comment a question."""

STOPWORDS: Final = frozenset({
    "今天", "今晚", "today", "tonight", "todays",
    "还有", "平时", "一般", "想要", "需要", "请问", "感觉", "觉得", "好看", "拍", "下单", "要是", "如果", "的话",
    "那种", "这种", "一样", "有点", "真的", "大家", "老师", "亲", "呀呀",
    "一", "一下", "一个", "一点", "下", "不", "东西", "个", "为", "主播", "么", "也", "买", "了", "产品", "什么",
    "什么样", "从", "他", "他们", "们",
    "件", "会", "你", "再", "几", "到", "卖", "又", "双", "只", "可以", "吃", "吖", "吗", "吧", "呀", "呃", "呐",
    "呗", "呢", "咋", "和",
    "咯", "哈", "哦", "哪", "哪个", "哪款", "商品", "啊", "啥", "啦", "喔", "喝", "嗯", "嘛", "噢", "在", "地", "多",
    "太", "她", "她们", "好",
    "姐姐", "它", "宝宝", "家人", "家人们", "对", "少", "就", "带", "很", "得", "您", "想", "我", "才", "把", "拿",
    "推荐", "是", "有", "有没有",
    "条", "款", "比较", "求", "没", "没有", "现在", "瓶", "用", "的", "着", "穿", "给", "能", "能不能", "被", "要",
    "让", "诶", "请", "谁", "跟",
    "过", "还", "这", "这个", "适合", "那", "那个", "都", "问", "a", "about", "also", "am", "an", "and", "any",
    "anything", "are",
    "as", "at", "be", "been", "best", "better", "buy", "by", "can", "cant", "come", "comes", "could", "did", "do",
    "doe", "does", "doesnt", "dont", "for", "from", "get", "gift", "go", "goes", "good", "got", "great", "guys",
    "has", "have", "hey", "hi", "how", "i", "if", "in", "is", "isnt", "it", "item", "items", "just", "know", "less",
    "let", "like", "lol", "looking", "many", "me", "more", "much", "my", "need", "nice", "no", "not", "now", "of",
    "ok", "okay", "on", "one", "ones", "or", "our", "out", "please", "pls", "product", "products", "really",
    "recommend", "recommendation", "right", "say", "sell", "should", "so", "some", "something", "still", "suggest",
    "suitable", "tell", "thanks", "that", "the", "them", "there", "these", "they", "thing", "things", "this", "those",
    "to", "too", "up", "us", "very", "want", "was", "we", "well", "were", "what", "which", "will", "with", "would",
    "you", "your",
})
"""Words that name nothing a viewer could be asking about."""

SPAM: Final[tuple[str, ...]] = (
    r'https?://',
    r'www\.',
    r'\.(com|cn|net|top|xyz|vip)\b',
    r't\.me/',
    r'加\s*(v|微|薇|vx|wx|q)',
    r'(vx|wx|v信|微信|薇信|qq|扣扣|telegram|whatsapp)\s*[:：]?\s*[a-z0-9_-]{5,}',
    r'私聊|私信我|兼职|刷单|日赚|代购|低价出|返利|赚钱|加群|进群',
    r'\b(dm me|follow me|check my|free money|crypto|giveaway winner|click here)\b',
)
"""Patterns of promotion and contact-swapping that the assistant never answers."""

PRICE_FALLBACK: Final[tuple[str, ...]] = (
    "re:多少[?？啊呀呢]*$", "re:价[?？]*$", "re:几(个|件)?[?？]*$",
)
"""Bare "多少？" reads as a price question only when nothing more specific was asked."""

SYNONYMS: Final[dict[str, str]] = {
    "天天": "每天", "吃的": "食品", "喝的": "饮品", "每日": "每天", "多长时间": "多久", "咋样": "怎么样",
    "啥时候": "什么时候", "几时": "什么时候",
    "木有": "没有", "米有": "没有", "么有": "没有", "肿么": "怎么", "神马": "什么", "肿么样": "怎么样",
}
"""Spoken and internet forms, rewritten before matching."""

GROUPS: Final[tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = (
    (
        ("男", "men"),
        (
            "男生", "男士", "男人", "男的", "男孩", "男朋友", "老公", "men", "man", "guy", "guys", "male",
            "boyfriend", "unisex",
        ),
    ),
    (
        ("女", "women"),
        (
            "女生", "女士", "女人", "女的", "女孩", "女朋友", "老婆", "women", "woman", "girl", "girls", "female",
            "girlfriend",
            "unisex",
        ),
    ),
    (
        ("婴", "儿童", "babies", "baby", "kids"),
        (
            "宝宝", "婴儿", "新生儿", "小孩", "儿童", "孩子", "baby", "babies", "toddler", "kid", "kids", "child",
        ),
    ),
    (
        ("孕", "pregnan"),
        (
            "孕妇", "孕期", "怀孕", "pregnant", "pregnancy",
        ),
    ),
    (
        ("男女", "men and women"),
        ("情侣", "couple", "couples"),
    ),
    (
        ("所有肤质", "all skin types"),
        (
            "油皮", "干皮", "混油", "混干", "混合皮", "敏感肌", "中性皮", "oily skin", "dry skin", "combination skin",
            "sensitive skin",
        ),
    ),
)
"""Who a product is for, said in other words: a suitable_for item containing one of the
markers is matched by any of the words."""
# fmt: on
