"""General shopping language in Chinese and English, for any shop.

Nothing here names a shop's products: these are the words viewers of any live room use
to ask for a price, stock, shipping, sizes, colours ..., to point at the product on
screen, the everyday names of product kinds in both languages, colours, regions and
medical claims. A shop's own words come from its catalogue (shoplang/understand.py).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[a-z][a-z0-9'’-]*|\d+(?:\.\d+)?[a-z]*")


def normalize(text: str) -> str:
    """NFKC (full-width letters and digits folded) and casefold; Chinese punctuation kept."""
    folded = unicodedata.normalize("NFKC", text).casefold().strip()
    return _SLANG.sub(lambda m: _SLANG_OF[m.group(0)], folded) if _SLANG.search(folded) else folded


_SLANG_OF = {"肿么": "怎么", "神马": "什么", "木有": "没有"}
"""Internet spellings of everyday words, same length ("肿么办" is 怎么办)."""
_SLANG = re.compile("|".join(_SLANG_OF))


def language(text: str) -> str:
    """zh when Chinese characters are at least as many as Latin words, else en."""
    cjk = len(CJK.findall(text))
    latin = len(re.findall(r"[A-Za-z]{2,}", text))
    return "zh" if cjk and cjk >= latin else "en"


def en_words(text: str) -> list[str]:
    return [singular(w.strip("'’-")) for w in LATIN_WORD.findall(normalize(text))]


def stem(word: str) -> str:
    """A cheap English stem: painted -> paint, relaxing -> relax, boxes -> box."""
    for suffix in ("ing", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return singular(word)


def singular(word: str) -> str:
    """A cheap English singular: earbuds -> earbud, boxes -> box, batteries -> battery."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def edit1(a: str, b: str) -> bool:
    """At most one insertion, deletion, substitution or adjacent swap between a and b."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    return any(a == b[:i] + b[i + 1 :] for i in range(len(b)))


# ------------------------------------------------------------------ pointing at a product

DEIXIS_ZH = ("这个", "这款", "这件", "这条", "这双", "这套", "这瓶", "这盒", "这只", "这支", "这台", "这些", "这箱", "这包",
             "它", "这", "现在这个", "屏幕上", "正在讲", "讲的这个", "上车的", "小黄车", "这盆", "那盆",
             "re:(主播)?(手上|手里|桌上|身上|旁边|脸上|头上|脚上|脚下)(拿|戴|穿|用|背)?的?(那|这)(个|盆|只|件|款|瓶|盒|台|支|条|双|套|把|罐|包|副|本|张|盏)",
             "这副", "那副", "这本", "那本")  # fmt: skip
DEIXIS_EN = (
    "this",
    "these",
    "it",
    "this one",
    "on screen",
    "the one on screen",
    "the one shown",
    "current one",
    "that one",
)
SALE_WORDS = ("秒杀", "抢购", "限时", "flash", "deal", "秒")
"""Words that point at the running flash sale's product."""

# ------------------------------------------------------------------ what is asked

INTENTS: dict[str, tuple[str, ...]] = {
    # Each entry: cue words or regular expressions (prefix "re:") in either language.
    # "host" and "show" first: a request to the host ("主播试穿一下", "主播多高穿几码") is its
    # own question even when it names a size or colour.
    # Two kinds: the host wearing it (and so the host's own height, weight and size:
    # "主播多高穿几码" goes with "试穿一下") and a showing or demonstration of the thing
    # ("想看看键盘", "主播试一下键盘", turn round, closer) — different requests, different answers.
    "host": ("re:主播.{0,4}(穿|戴|涂|背|抹|擦)(一)?下", "背上", "戴上", "穿上", "试穿", "上身", "试色", "上嘴", "试戴",
             "主播多高", "主播身高", "主播体重", "主播多重", "主播穿", "主播戴", "re:\\bhost'?s? (height|weight|size|wearing)",
             "re:try (it )?on", "model wearing", "host wearing", "how tall is the host"),
    "show": ("re:主播(?!.{0,4}(穿|戴|涂|背|抹|擦)(一)?下).{0,8}(一下|看看(?!我)|个身)", "试一下", "试用一下", "主播用的", "想看",
             "转个身", "想看看", "展示一下", "给我们看", "给我看", "看看细节", "近一点", "拿近", "背面", "背后",
             "re:show (me|us|it)"),
    "list_price": ("原价", "划线价", "专柜价", "市场价", "日常价", "平时多少", "原来多少", "original price", "list price",
                   "rrp", "retail price", "usual price", "normal price", "was it"),
    "price": ("多少钱", "哪个贵", "哪个便宜", "哪个更贵", "re:which (is|one is) (cheaper|more expensive)",
              "re:(更|more )expensive", "cheaper", "几块", "几元", "什么价", "啥价", "价格", "价钱", "多钱", "多少米", "怎么卖", "咋卖", "贵不贵", "贵吗", "售价",
              "到手价", "现价", "多少一", "降价", "降到多少", "re:现在(多少|啥价)(?![件个只台斤克度号码米天分张片])", "啥价位", "一个价", "同价", "价格一样", "一样的价", "same price", "jg", "dsq", "duoshaoqian", "going for", "re:\\bstill\\s*[¥$]?\\d+",
              "re:how much(?=\\s*(is|are|does|do|did|for|would|will|it|this|these|that|the|now|today|pls|please|each|per|in|\\?|$))",
              "price", "cost", "pricing", "re:\\bhm\\b", "re:\\$\\?"),
    "stock": ("还有吗", "还有货", "还有没", "有没有货", "re:还(有|剩)(几|多少)(件|个|套|双|盒|瓶|只|条|支|份|箱|袋|罐|台|把|本)", "有货", "有现货", "现货", "库存", "还剩", "剩多少", "剩几", "卖完", "售罄", "缺货", "抢光", "抢完",
              "还有多少", "in stock", "any left", "re:\\bany\\s+(\\w+\\s+){0,2}left\\b", "sold out", "how many left", "re:how many\\s+(\\w+\\s+){0,2}(left|remaining)", "stock", "still available", "available"),
    "time_left": ("re:(还|只)?剩(下)?(几|多少|多长)?(分钟|小时|时间|多久)", "re:(啥|什么|几)(时候|点)(结束|截止)", "几分钟", "多久结束", "还有多久", "还剩多久", "多长时间", "剩几分钟",
                  "re:how (long|many minutes)(?=.*\\b(left|end|ends|sale|deal|flash|remain|remaining|over|go)\\b)",
                  "minutes left", "time left", "re:when does .*end", "ends"),
    "limit": ("限购", "能买几", "买几个", "抢几个", "能抢几", "能买多少", "可以买几", "每人", "一人", "re:能买几[份件个]",
              "re:(能|可以)(拍|买|抢|下单|囤)[两2三3四4五5几多][只个件双条份单盒箱瓶袋台桶罐支张把套斤]",
              "limit", "re:how many\\s+(\\w+\\s+){0,3}can (i|we|you) (buy|get|order|grab)", "per person",
              "re:can (i|we) (buy|get|order|grab) (\\d+|two|three|four|five|more than one|several|multiple)\\b"),
    "sale": ("秒杀", "抢购", "限时", "特价", "活动价", "flash", "deal", "on sale", "sale"),
    "ships_from": ("哪里发", "哪发", "从哪", "发货地", "哪个仓", "什么地方发", "re:ships? from", "where .*ship",
                   "re:where .*(sent|dispatch)"),
    "carrier": ("什么快递", "哪家快递", "啥快递", "快递是", "物流是", "发什么", "冷链", "顺丰", "courier", "carrier",
                # China's carriers by name and by the letters viewers type ("走SF吗", "发京东吗")
                "京东", "中通", "圆通", "申通", "韵达", "极兔", "邮政", "德邦", "ems", "sf", "jd", "zto", "yto", "sto",
                "j&t", "re:走(什么|啥|哪家?)?(快递|物流)",
                "re:which (express|delivery)", "cold chain"),
    "delivery_time": ("几天到", "多久到", "几天能到", "多久能到", "到货时间", "多久发货", "什么时候发货", "几天发货",
                      "re:发货(快|慢|速度|时间)", "re:(到货|物流)(快|慢)",
                      "多久发", "几天", "re:(几天|多久|多长时间|什么时候|啥时候|何时)(能|可以|才|会|就)?发(货|出)",
                      "re:(几天|多久|多长时间|什么时候|啥时候|何时)(能|可以|才|会|就)?收到", "re:how (long|many days)(?=.*\\b(take|arriv|ship|deliver|get (it|here|there|mine)|come)\\b)",
                      "re:when .*(arrive|ship|get it)", "arrive"),
    "fee": ("包邮", "运费", "邮费", "免运费", "满多少", "包不包邮", "re:(?<=[\u4e00-\u9fff])by(?![a-z])|(?<![a-z])by(?=[吗不没])", "free shipping", "shipping fee", "postage",
            "re:ship(s|ping)? (for )?free", "delivery fee"),
    "region": ("寄到", "发到", "送到", "能寄", "re:能发(?!货)", "re:(能|可以)(配)?送(?!啥|什么|礼|人|给|赠|货|的)", "配送到", "ship to", "deliver to", "re:ship(s|ping)? .*to "),
    "shipping": ("发货", "快递", "物流", "配送", "寄", "shipping", "ship", "deliver", "delivery"),
    "returns": ("运费险", "退货险", "退货", "退换", "换货", "能退", "可以退", "售后", "无理由", "坏了怎么办", "坏了", "破损", "坏果", "退款", "re:(到货|收到|到手|运输|快递|路上).{0,4}(碎|破|裂|漏)",
                "re:换(个|一个|一下)?(码|尺码|颜色|大一|小一)",
                "return", "refund", "exchange", "damaged", "broken", "spoiled"),
    "warranty": ("保修", "质保", "保固", "包换", "re:(?<![a-z])bx(?![a-z])", "re:保(几|多久|多少)(年|个月|天)?", "保不保", "re:(管|包)不(管|包)修", "开胶", "脱胶", "掉底", "断线", "维修", "re:(给|能|可以|免费|包|管)修",
                 "warranty", "guarantee", "repair"),
    "gift": ("赠品", "送什么", "送啥", "有送", "赠送", "送不送", "有没有送", "福利", "礼品", "re:送.{1,6}(吗|不)", "re:送几",
             "free gift", "gift",
             "freebie", "bonus", "what do i get free", "re:\\b(anything|something) (free|extra)\\b",
             "re:\\bcomes? with (a|any) (free )?gifts?\\b"),
    "sizes": ("尺码", "码数", "什么码", "哪个码", "几码", "多大码", "码", "选码", "size", "re:(穿|选|拿|买|要|戴)几号",
              "re:(尺寸|大小|圈口|号)(怎么|咋|如何)选", "re:选(多大|哪个尺寸|什么尺寸)", "re:穿多[大长](的|码)?"),
    "colours": ("颜色", "什么色", "几个色", "几种色", "色号", "re:(啥|哪些|哪几种?|多少种?)(颜)?色", "colour", "color", "shade"),
    "materials": ("成分", "材质", "材料", "面料", "配料", "原料", "纯棉", "全棉", "re:(纯|全|含)(棉|麻|羊毛|羊绒|真丝|桑蚕丝)", "什么棉",
                  "re:\\b(is it|are they|made of|100%?) ?(cotton|wool|silk|linen|leather|cashmere)\\b", "里面有什么", "有什么东西", "含有", "什么做的", "用料",
                  "re:什么(钢|木|布|棉|皮|料|质|塑料|玻璃)",
                  "re:是(纯|全)?(棉|麻|羊毛|羊绒|真丝|蚕丝|真皮|牛皮|羊皮|不锈钢|实木|塑料|玻璃|陶瓷|硅胶|乳胶|聚酯|涤纶|纯棉|全棉|蓝宝石)(的)?(吗|么|嘛|不)",
                  "re:\\b(glass|case|band|strap|lens|frame|sole|upper)\\s+(sapphire|mineral|steel|leather|plastic|glass)\\b",
                  "made of", "material", "ingredient", "fabric", "re:what'?s in", "what is in", "contain",
                  "re:what\\s+([a-z]+\\s+)?(are|is) in\\b",
                  # Is it the real thing: what it is made of answers it ("are the pearls real")
                  "是真的吗", "真的假的", "是不是真的", "re:\\b(real|fake|genuine)\\b"),
    "suitable": ("re:what (age|height|weight|size of (baby|child|kid))s? is .* for", "re:for what (age|height|weight)",
                 "肤质", "孕期", "孕妈", "哺乳期", "几个月", "多大的猫", "多大的狗", "skin type", "pregnant", "breastfeeding",
                 "nursing mother", "what age", "how old",
                 "适合多大", "几岁", "多大的宝宝", "多大的孩子", "适合", "适不适合", "能用吗", "能吃吗", "能喝吗", "能穿吗", "能坐吗", "能戴吗", "可以用吗", "可以吃吗",
                 "可以喝吗", "能不能用", "能不能吃", "过敏", "不耐受", "孕妇", "婴儿能", "宝宝能", "孩子能", "老人能",
                 "suitable", "good for", "ok for", "safe for", "allergic", "intolerant", "re:can (my|a) (baby|kid|child)",
                 "left-handed", "左手",
                 # "能吃这个猫粮吗": the verb of use and the question particle apart
                 "re:(能|可以)(自己)?(用|吃|喝|穿|戴|涂|坐|睡|玩|骑|养|种|烫|洗|煮|吹)(?=[^吗?？]{0,8}(吗|不$))",
                 "re:(能不能|可不可以)(用|吃|喝|穿|戴|涂|坐|睡|玩|骑|养|种|烫|洗|煮|吹)",
                 "re:放.{1,10}(行不行|行吗|可以吗|可以不|ok吗)", "re:\\bcan (it|the [a-z ]+?) (hold|fit|take)\\b"),
    "link": ("链接", "lj", "怎么买", "怎么下单", "在哪买", "哪里买", "re:几号(?!戒指|鞋|衣|生产|到|发)", "怎么拍", "link", "how to buy", "how do i (buy|order)"),
    "count": ("几片", "多少片", "几包", "re:(?<!满)多少包", "几个装", "几支", "几盒", "多少盒", "几罐", "多少个一", "一包多少", "一盒多少",
              # "一包几双", "每盒多少粒", "几双": how many come in one pack
              "re:(几|多少)[双片粒颗张卷抽贴]",
              "re:[一每](包|盒|袋|箱|套|瓶|罐|组|份|提)(有|是)?(几|多少)[双片支粒颗个只条张袋包]?",
              "re:how many (\\w+ )?(pack|piece|pc|sheet|wipe|bag|cup|pod|capsule|sachet|stick)s?\\b", "re:how many\\s+(\\w+\\s+)?(are\\s+)?(in|per)\\s+(a|one|each)\\s+(box|pack|bag|set)"),
    "variants": ("规格", "款式", "哪几款", "有几款", "几种规格", "哪些规格", "什么规格", "options", "variants", "versions",
                 "re:(什么|啥|哪种|哪些|几种|哪几种)[轴段版型款]",
                 # "拼图有几种图", "圈口有哪几个": the choices a product comes in
                 "re:(几|哪几|多少)种(?!颜?色)", "re:哪几(个|款|样)", "which ones", "what kinds",
                 "re:几(斤|公斤|克|升|毫升)装",  # "是几斤装的": the packs it comes in (几片装 is a count)
                 # "礼盒里都有啥", "what's in the box": what it comes with
                 "re:(都|里面|里)有(啥|什么|哪些)(?!颜色|尺码|颜)", "re:包含(啥|什么|哪些)",
                 "re:(什么|啥|哪些|几种|哪几种)(口味|味儿)", "re:what flavou?rs",
                 "re:(几|哪几|多少)(个|种)?(尺寸|规格|容量|型号|版本)", "分别多少", "各多少",
                 "re:what (?!colou?rs?\\b|sizes?\\b)[a-z ]+ (does|do) (it|they|the [a-z ]+) come in", "区别", "差别", "difference between",
                 "re:what'?s the difference"),
    "recommend": ("推荐", "有什么适合", "哪款适合", "哪个适合", "哪个好", "哪款好", "送什么好", "买什么好", "买啥好", "re:买(啥|什么)(合适|呢|$)", "re:买(点|些)(啥|什么)", "礼物",
                  "送人", "re:送(妈妈|爸爸|老婆|老公|女朋友|男朋友|朋友|长辈|老人|孩子|宝宝)", "re:\\d+\\s*(元|块)?\\s*(以内|以下|左右)",
                  "recommend", "suggest", "something for", "good gift", "a gift", "re:what should i (buy|get)",
                  "re:(under|below|less than)\\s*[¥$]?\\s*\\d+", "budget",
                  "最便宜", "最实惠", "cheapest", "re:(买|选|挑)哪[个款种套本件双把台只支瓶盒条]", "re:送.{1,4}(什么|啥)好", "有没有适合", "re:(带|买|选|拿)哪(个|款|种).{0,6}好", "re:有(什么|啥)(吃|喝|玩|用)的", "re:用(啥|什么|哪个)好", "re:(玩|吃|喝|穿|戴|看|读|练)(点)?(啥|什么)(桌游|游戏|玩具|书)?(比较)?好", "gift for", "re:\\bany \\w+ for (my|a|kids?|children)\\b",
                  "what can help", "want something", "looking for something", "need something", "re:anything (to|that) help",
                  "有什么能帮", "re:(穿|戴|用|吃|盖|选)哪(个|款|种|双|件|条|只|套)(好|合适|比较好)",
                  "re:有(什么|啥)能(吃|喝|玩|用|盖|穿|戴|送)的", "re:\\banything (good )?(for|to)\\b", "re:\\bwhich (one|pair) (should|would)\\b"),
    "invoice": ("发票", "开票", "专票", "invoice", "receipt", "fapiao"),
}  # fmt: skip

CONCEPTS: dict[str, tuple[str, ...]] = {
    # Kinds of specification, by the words of both the question and the spec's name.
    # A question's words and a listing's often differ ("零下能穿吗" / 适用温度; "能睡几个人"
    # / sleeps): each kind holds both sides' everyday words, in both languages.
    "alcohol": ("酒精度", "度数", "高度酒", "低度", "几度的酒", "abv", "alcohol content", "how much alcohol",
                "proof", "% vol", "%vol"),
    "temperature": ("温度", "零下", "几度", "多少度", "保暖", "暖和", "冷不冷", "冷吗", "御寒", "抗寒", "防寒", "保温", "保冷",
                    "冰感", "凉快", "凉感", "热不热", "热吗", "会热", "temperature", "freezing", "below zero", "degrees", "°c", "warm", "keep hot",
                    "keeps hot", "cold", "fahrenheit", "celsius", "°f", "re:\\b\\d{2,3}\\s*°?\\s*f\\b"),
    "season": ("季节", "四季", "三季", "冬季", "冬天", "夏天", "夏季", "春秋", "雪地", "下雪", "雪天", "season", "winter",
               "summer", "snow", "all year"),
    "occupancy": ("几个人", "几人", "多少人", "人数", "睡几", "住几", "坐几", "容纳", "住得下", "睡得下", "坐得下", "几口人",
                  "re:[一二两三四五六七八九\\d]\\s*(口人|口之家|个人)", "够用吗", "够不够用",
                  "sleeps", "how many people", "re:\\bfits? \\d+ (people|persons|adults)", "occupancy"),
    "thickness": ("厚度", "多厚", "厚不厚", "厚吗", "薄吗", "厚薄", "厚实", "re:[挺很太好比较]厚", "thickness", "thick", "thin"),
    "setup": ("搭建", "re:搭(?!配)", "安装", "组装", "拼装", "装起来", "好装", "怎么装", "难装", "好不好装", "拆装", "收起来", "set up", "setup",
              "自己装", "要装", "需要装",
              "assemble", "assembly", "install", "pitch"),
    "fit": ("偏大", "偏小", "正码", "码数准", "尺码准", "码准", "合脚", "挤脚", "脚宽", "宽脚", "大一码", "小一码", "版型",
            "尺码建议", "run small", "run large", "runs small", "runs large", "true to size", "fits small",
            "fits large"),
    "washing": ("洗涤", "怎么洗", "re:(咋|如何|怎样)(清)?洗", "机洗", "手洗", "水洗", "干洗", "洗衣机", "洗碗机", "清洗", "好洗", "拆洗", "能洗", "可以洗", "wash", "washing",
                "dishwasher", "cleaning"),
    "pilling": ("起球", "毛球", "起毛", "掉毛", "掉絮", "钻绒", "跑绒", "pilling", "pill", "shed", "shedding"),
    "fading": ("掉色", "褪色", "染色", "串色", "fade", "fading", "colourfast", "colorfast", "bleed"),
    "breathable": ("透气", "闷", "闷热", "捂脚", "breathable", "breathability", "breathe", "stuffy"),
    "texture": ("质地", "油不油", "油腻", "黏不黏", "粘不粘", "黏腻", "清爽", "厚重", "好吸收", "吸收", "好推开", "搓泥",
                "texture", "greasy", "sticky", "absorb"),
    "see_through": ("透不透", "透吗", "会透", "透光", "透肉", "内衬", "走光", "see-through", "see through", "sheer",
                    "lining", "lined"),
    "recline": ("平躺", "躺平", "可躺", "能躺", "靠背", "放平", "躺下", "recline", "lie flat", "lie down", "backrest"),
    "opening": ("好剥", "难剥", "手剥", "去壳", "手捏", "好开", "难开", "easy to peel", "peel", "crack"),
    "usage": ("怎么用", "用法", "使用方法", "怎么使用", "怎么吃", "怎么喂", "喂多少", "一天几次", "how to use", "how do i use",
              "directions", "how much to feed", "喂食", "食量", "喂几", "re:一天(吃|喂)(几|多少)", "feeding"),
    "makeup_wear": ("持妆", "脱妆", "掉妆", "不脱妆", "持久", "斑驳", "long-lasting", "long lasting", "last all day",
                    "wear time", "smudge"),
    "coverage": ("遮瑕", "遮盖", "盖得住", "遮得住", "遮痘印", "coverage", "full cover"),
    "shrink": ("缩水", "变形", "洗了会小", "shrink", "shrinkage"),
    "wrinkle": ("起皱", "易皱", "免烫", "熨烫", "wrinkle", "iron"),
    "clumping": ("结团", "成团", "结块", "clump", "clumping"),
    "dust": ("粉尘", "灰尘", "掉渣", "dust", "dusty"),
    "stretch": ("弹力", "弹性", "有弹", "紧不紧", "勒", "stretch", "stretchy", "elastic"),
    "weight": ("重量", "多重", "重不重", "多少克", "几克", "几斤", "多少斤", "净含量", "分量", "车重", "克", "个头", "一个多大",
               "单个", "单果", "weigh", "weight",
               "heavy", "gram", "how many g", "kg", "net weight", "轻"),
    "volume": ("容量", "几升", "多少毫升", "几毫升", "多少ml", "毫升", "升", "ml", "litre", "liter", "capacity", "volume",
               "re:how much .*\\bhold", "装多少", "装得多", "能装多少",
               "多大一瓶", "多大瓶"),
    "battery": ("续航", "电池", "用多久", "能用多久", "待机", "充一次", "充满", "多少天", "几天", "多少小时", "几个小时", "battery",
                "last", "charge", "hours"),
    "waterproof": ("防水", "防汗", "出汗", "淋雨", "游泳", "下雨", "大雨", "雨天", "湿透", "渗水", "漏水", "进水", "涉水",
                   "re:过.{0,2}[溪河水]", "泼水", "防泼", "waterproof", "water", "swim", "rain", "sweat", "pool", "wading",
                   "wade", "stream"),
    "origin": ("产地", "哪里产", "哪产", "产自", "哪里的", "原产", "奶源", "进口", "哪个国家", "哪里生产", "origin", "made in",
               "source", "where is it from", "where .* from", "re:\\bfrom\\b"),
    "shelf_life": ("保质期", "放多久", "过期", "能放多久", "保存多久", "放几天", "花期", "瓶插期", "能开几天", "开几天", "shelf life", "expire", "expiry", "best before"),
    "storage": ("储存", "保存", "存放", "冷冻", "冷藏", "store", "storage", "插卡", "存储卡", "内存卡", "sd卡", "tf卡",
                "memory card", "sd card", "microsd"),
    "area": ("面积", "平米", "几平", "平方", "re:\\d+\\s*平(?![方米底板衡])", "re:多大的?(房间|屋子?|客厅|卧室|空间)", "多大房间", "room size", "square met",
             "sq m", "m²", "re:how big (a|of a) room"),
    "dimensions": ("尺寸", "多大", "大小", "长宽", "多长", "长度", "多宽", "宽度", "多高", "高度", "口径", "直径", "面积", "折叠",
                   "dimension", "folded", "how big", "size", "length", "diameter", "width",
                   "height", "how tall", "how wide"),
    # Whether it may go on a plane is a rule about the thing (battery, size), not its size:
    # a cord's length does not answer it.
    "flight": ("上飞机", "坐飞机", "登机", "乘机", "托运", "随身带", "plane", "flight", "cabin", "carry-on", "airplane",
               "airport"),
    "noise": ("噪音", "声音", "吵", "分贝", "静音", "noise", "loud", "quiet", "noisy", "db"),
    "contents": ("包含", "包括", "有哪些", "里面有什么", "一套几", "几件", "件数", "几个装", "一套有", "规格", "what's in",
                 "what is in", "what comes in", "comes with", "included", "include", "contents", "pieces", "how many in"),
    "power": ("功率", "瓦", "几瓦", "多少瓦", "多少w", "watt", "wattage", "power", "output", "快充", "fast charg"),
    "ports": ("接口", "几个口", "插口", "re:(?<![圈径门])口(?![味感径红罩])", "port", "usb"),
    # Whether it goes with something else the viewer has ("积木能和乐高混着拼吗").
    # Looking after a plant or a thing that needs watering / feeding on a schedule.
    "watering": ("浇水", "多久浇", "几天浇", "浇一次", "re:how often (do|should) i water", "watering", "water it"),
    "compatible": ("兼容", "通用", "混着", "混拼", "适配", "配套", "搭配使用", "compatible", "compatibility", "works with",
                   "fit with", "fits with"),
    # Engraving and personalising: a service a listing must offer itself.
    "engraving": ("刻字", "刻名", "re:刻.{0,4}(字|名)", "定制", "engrav", "personalis", "personaliz", "monogram"),
    "smell": ("有味道", "味道大", "味儿", "气味", "异味", "臭", "刺鼻", "难闻", "甲醛", "smell", "odor", "odour", "stink",
              "香味", "香调", "香型", "什么香", "scent", "fragrance"),
    # How much it carries or bears (a bag, a shelf, a pet carrier): not its own weight.
    "load": ("承重", "承载", "能装多重", "装多重", "re:(能|可以)?(放|挂|承受)多重", "能装下", "装得下", "装下", "放得下", "max load", "load", "weight limit",
             "hold up to", "re:how (heavy|much weight) can it (hold|carry|take)"),
    # Fleas, ticks, mites: whether it keeps them off (a claim the listing must make itself).
    "pests": ("跳蚤", "驱虫", "虱子", "蜱虫", "螨虫", "除螨", "防虫", "flea", "tick", "lice", "mite", "parasite"),
    # How much of one ingredient: a percentage in the listing ("浓度多少" / 5%烟酰胺).
    "concentration": ("浓度", "含量", "百分之", "占比", "percent", "percentage", "concentration", "content"),
    # Being seen in the dark: reflective strips, lights.
    "visibility": ("看得见", "看得到", "看不见", "看不到", "夜里", "夜间", "晚上", "天黑", "反光", "reflective", "visible",
                   "at night", "in the dark"),
    "taste": ("甜", "甜度", "re:酸(不酸|吗|的|甜|味)|(偏|太|很|有点|好|不)酸", "辣", "口感", "好吃", "味道", "口味", "sweet", "taste", "flavour", "flavor", "spicy"),
    "palatability": ("适口", "爱吃", "挑食", "爱不爱吃", "喜欢吃", "不吃", "palatab", "picky", "re:(cats?|dogs?|pets?) (like|love|eat)"),
    "fresh": ("新米", "新货", "新鲜", "今年", "生产日期", "加工日期", "采收", "new crop", "fresh", "harvest", "milling"),
}  # fmt: skip

MEDICAL = ("治", "治疗", "治愈", "疗效", "药", "处方", "提高免疫力", "免疫力", "补脑", "长高", "降血糖", "降血压", "测血糖",
           "血压", "防辐射", "辐射", "抗癌", "减肥", "排毒", "失眠", "湿疹", "咳嗽", "糖尿病", "高血压", "祛痘", "治痘",
           "re:(去|除|吸|净化|清除)甲醛", "re:remove[s]? formaldehyde",
           "抑郁", "焦虑", "depression", "anxiety", "cure", "treat",
           "heal", "immune", "immunity", "eczema", "cancer", "blood pressure", "blood sugar", "glucose", "diabetes",
           "medicine", "medical", "sore throat", "insomnia", "radiation",
           "智商", "变聪明", "智力", "天才", "genius", "re:保证.{0,6}(考|过|学会|变)", "发炎", "感染", "inflam", "infection", "re:吞(下|了|进)", "swallow", "re:\\bfix(es)? (my |your |the )?\\w+ pain")  # fmt: skip
"""Health claims no shop assistant may make: such questions are declined."""

COLOURS_ZH = ("黑", "白", "灰", "蓝", "绿", "黄", "粉", "紫", "橙", "棕", "咖啡", "卡其", "米", "金", "银", "红", "青", "藏青",
              "酒红", "墨绿", "雾霾", "透明", "彩")  # fmt: skip
COLOURS_EN = ("black", "white", "grey", "gray", "blue", "green", "yellow", "pink", "purple", "orange", "brown", "khaki",
              "beige", "gold", "silver", "red", "navy", "teal", "clear", "transparent", "rose")  # fmt: skip
COLOUR_ZH_OF = {
    "black": "黑", "white": "白", "grey": "灰", "gray": "灰", "blue": "蓝", "green": "绿", "yellow": "黄", "pink": "粉",
    "purple": "紫", "orange": "橙", "brown": "棕", "red": "红", "silver": "银",
}  # fmt: skip
"""An English colour's Chinese character ("in purple?" of 薰衣草紫)."""
_COLOUR_ZH = re.compile(
    r"(藏青|酒红|墨绿|雾霾灰|浅蓝|深蓝|天蓝|咖啡|卡其|米白|奶白|玫红|宝蓝|军绿|香槟|[黑白灰蓝绿黄粉紫橙棕金银红青米杏驼咖])色"
)
_COLOUR_BARE_ZH = re.compile(r"(?:有|要|拿|来个|想要)([黑白红蓝绿黄粉紫灰])的(?=[吗没不么嘛呢?？\s]|$)")
""""有白的吗": a colour said without 色."""
_COLOUR_EN = re.compile(r"(?<![a-z])(" + "|".join(COLOURS_EN) + r")(?![a-z])")  # ("有black吗": no \b beside Chinese)

REGIONS: dict[str, tuple[str, ...]] = {
    # Region -> its names; "mainland" regions are inside 中国大陆 / mainland China.
    "xinjiang": ("新疆", "乌鲁木齐", "xinjiang"), "tibet": ("西藏", "拉萨", "tibet"), "qinghai": ("青海", "qinghai"),
    "hainan": ("海南", "三亚", "海口", "hainan"), "inner mongolia": ("内蒙", "inner mongolia"), "gansu": ("甘肃", "gansu"),
    "ningxia": ("宁夏", "ningxia"), "beijing": ("北京", "beijing"), "shanghai": ("上海", "shanghai"),
    "guangdong": ("广东", "广州", "深圳", "guangdong"), "heilongjiang": ("黑龙江", "哈尔滨", "heilongjiang"),
    "hong kong": ("香港", "hong kong", "hk"), "macau": ("澳门", "macau", "macao"), "taiwan": ("台湾", "taiwan"),
    "overseas": ("海外", "国外", "美国", "日本", "韩国", "新加坡", "马来西亚", "加拿大", "澳洲", "澳大利亚", "英国", "欧洲",
                 "overseas", "abroad", "international", "usa", "the us", "america", "japan", "korea", "singapore",
                 "malaysia", "canada", "australia", "uk", "europe"),
}  # fmt: skip
MAINLAND = ("xinjiang", "tibet", "qinghai", "hainan", "inner mongolia", "gansu", "ningxia", "beijing", "shanghai",
            "guangdong", "heilongjiang")  # fmt: skip

GENERIC_HEADS = "子品装套盒包件款个只"
"""Last characters that say no kind ("礼盒", "套装"): a Chinese noun's head is its kind otherwise."""

GENERIC_NAME_WORDS = {
    "新款", "正品", "官方", "套装", "礼盒", "直播", "款", "体重", "身高", "年龄", "set", "official", "new", "pro", "plus", "pack", "the", "and", "with",
    "for", "of", "a", "an", "mini", "max", "piece", "pieces", "pcs", "pc",
}  # fmt: skip

STOP_EN = {
    "the", "a", "an", "is", "are", "it", "this", "these", "that", "does", "do", "did", "can", "could", "i", "my", "me",
    "you", "your", "we", "have", "has", "there", "any", "in", "on", "of", "for", "to", "with", "and", "or", "be", "will",
    "would", "what", "which", "how", "much", "many", "whats", "what's", "they", "them", "one", "get", "come", "it's",
    "its", "please", "pls", "plz", "hi", "hello", "host", "still", "really", "also", "so", "very", "about", "at", "by",
    "if", "am", "was", "were", "just", "want", "need", "know", "tell", "us", "here", "now", "right", "ok", "okay",
    "work", "support", "use", "good", "make", "made", "long", "until", "when", "after", "before", "then", "than",
    "should", "some", "something", "thing", "things", "every", "from", "into", "only", "more", "most", "other", "while", "during", "since",
}  # fmt: skip
QUESTION_WORDS_ZH = ("多久", "多少", "多大", "多长", "多高", "多重", "什么", "怎么", "怎样", "如何", "哪里", "哪个", "哪些", "哪",
                     "几", "要不要", "是不是", "能不能", "可不可以", "有没有", "吗")  # fmt: skip
"""Taken out of a question before looking for what it names."""
PARTICLES_ZH = (
    "吗呢吧啊呀嘛么哦哇啦了的得地是有没不能会可以还都也就很太挺要想请问一下主播宝贝亲家们我你他她它这那个些款件"
)

# Everyday names of product kinds (general knowledge, both languages): a viewer saying
# any of these means the catalogue product whose category or name holds another.
USE_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("晚上", "夜间", "夜里", "夜晚", "night", "at night"),
    ("开车", "驾驶", "driving", "drive"),
    ("宝宝", "婴儿", "新生儿", "婴幼儿", "baby", "babies", "newborn", "infant"),
    ("孕妇", "怀孕", "孕期", "备孕", "哺乳", "pregnant", "pregnancy", "breastfeeding", "nursing"),
    ("老人", "老年人", "长辈", "elderly", "seniors"),
    ("洗碗机", "dishwasher"),
    ("空运", "航空", "坐飞机", "上飞机", "air freight", "by air", "plane", "flight"),
    ("户外", "室外", "outdoor", "outdoors", "outside"),
    ("浴室", "卫生间", "洗手间", "淋浴", "bathroom", "shower"),
    ("地毯", "carpet", "rug"),
    ("微波炉", "microwave"),
    ("烤箱", "oven"),
    ("冰箱", "冷冻", "fridge", "freezer"),
    ("宠物", "猫", "狗", "pet", "pets"),
    ("过敏", "敏感", "allergy", "allergic", "sensitive"),
)  # fmt: skip
"""Everyday words for where, when and by whom a thing is used, as listings' audiences say them."""

KIND_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("纸尿裤", "尿不湿", "尿布", "diaper", "nappy", "nappies"),
    ("拉拉裤", "pull-up", "pull-ups"),
    ("湿巾", "湿纸巾", "wipe", "wet wipe"),
    ("奶粉", "配方奶", "formula", "milk powder"),
    ("奶瓶", "bottle", "baby bottle"),
    ("婴儿车", "推车", "童车", "遛娃车", "stroller", "pram", "pushchair", "buggy"),
    ("安全座椅", "座椅", "car seat", "carseat"),
    ("连体衣", "哈衣", "爬服", "bodysuit", "onesie", "romper"),
    ("润肤乳", "身体乳", "润肤露", "lotion", "body lotion", "moisturiser", "moisturizer"),
    ("耳机", "蓝牙耳机", "耳塞", "earbud", "earphone", "headphone", "airpod"),
    ("充电宝", "移动电源", "power bank", "powerbank", "portable charger"),
    ("充电器", "充电头", "快充头", "charger", "adapter", "charging brick", "plug"),
    ("手表", "智能手表", "表", "watch", "smartwatch", "smart watch"),
    ("键盘", "keyboard"),
    ("刀具", "刀", "菜刀", "knife", "knives"),
    ("炒锅", "锅", "平底锅", "不粘锅", "wok", "pan", "frying pan"),
    ("四件套", "床品", "床上用品", "床单", "被套", "被罩", "bedding", "bed linen", "bed sheet", "duvet cover"),
    ("枕头", "枕", "pillow"),
    ("拖把", "拖布", "mop"),
    ("收纳袋", "压缩袋", "storage bag", "vacuum bag"),
    ("电水壶", "水壶", "热水壶", "烧水壶", "kettle"),
    ("空气净化器", "净化器", "air purifier", "purifier"),
    ("电饭煲", "rice cooker"),
    ("鼠标", "mouse"),
    ("音箱", "音响", "喇叭", "speaker"),
    ("摄像头", "监控", "camera", "security camera", "cam"),
    ("芒果", "mango"),
    ("核桃", "walnut"),
    ("大米", "米", "rice"),
    ("牛奶", "纯奶", "milk"),
    ("坚果", "nut", "mixed nut"),
    ("牛排", "steak"),
    ("橄榄油", "olive oil"),
    ("食用油", "油", "oil", "cooking oil"),
    ("蜂蜜", "honey"),
    ("面霜", "cream", "face cream"),
    ("精华", "精华液", "serum"),
    ("面膜", "mask", "sheet mask"),
    ("洗面奶", "洁面", "洁面乳", "洁面膏", "cleanser", "face wash"),
    ("防晒", "防晒霜", "sunscreen", "sunblock"),
    ("口红", "唇膏", "lipstick"),
    ("行李箱", "拉杆箱", "箱子", "suitcase", "luggage"),
    ("羽绒服", "puffer", "down jacket"),
    ("外套", "jacket", "coat"),
    ("卫衣", "hoodie", "sweatshirt"),
    ("牛仔裤", "jeans", "denim"),
    ("鞋", "鞋子", "跑鞋", "运动鞋", "shoe", "sneaker", "trainer", "boot", "footwear"),
    ("保温杯", "水杯", "杯子", "thermos", "tumbler", "flask", "cup"),
    ("毛巾", "towel"),
    ("咖啡", "coffee"),
    ("茶", "茶叶", "tea"),
    ("零食", "snack"),
    ("平板", "平板电脑", "tablet", "ipad"),
    ("手机", "phone", "smartphone"),
    ("笔记本", "笔记本电脑", "laptop", "notebook"),
    ("玩具", "toy"),
    ("水果", "fruit"),
    ("榴莲", "durian"),
    # cosmetics and personal care
    ("粉底", "粉底液", "foundation"), ("眼影", "eyeshadow", "eye shadow"), ("腮红", "blush", "blusher"),
    ("睫毛膏", "mascara"), ("眉笔", "eyebrow pencil", "brow pencil"), ("卸妆", "卸妆水", "卸妆油", "makeup remover"),
    ("爽肤水", "化妆水", "toner"), ("乳液", "emulsion"), ("香水", "perfume"), ("洗发水", "shampoo"),
    ("护发素", "conditioner"), ("沐浴露", "body wash", "shower gel"), ("牙膏", "toothpaste"),
    ("护手霜", "hand cream"), ("眼霜", "eye cream"), ("唇釉", "唇泥", "lip gloss", "lip glaze"), ("散粉", "蜜粉", "setting powder"),
    ("粉饼", "pressed powder"), ("遮瑕", "遮瑕膏", "concealer"), ("眉粉", "brow powder"), ("卸妆巾", "makeup wipes"),
    ("发膜", "hair mask"), ("精油", "essential oil"), ("化妆刷", "makeup brush"),
    # pets
    ("猫粮", "cat food"), ("狗粮", "dog food"), ("猫砂", "cat litter", "litter"), ("罐头", "主食罐", "canned food", "wet food"),
    ("冻干", "freeze-dried"), ("牵引绳", "狗绳", "leash"), ("猫爬架", "cat tree"), ("宠物窝", "猫窝", "狗窝", "pet bed"),
    ("逗猫棒", "cat teaser", "wand toy"), ("猫抓板", "scratcher", "scratching board"), ("饮水机", "water fountain"),
    ("驱虫", "驱虫药", "dewormer", "flea treatment"), ("猫条", "cat treat", "lickable treat"), ("猫薄荷", "catnip"),
    ("宠物梳", "梳子", "pet brush", "grooming brush"), ("指甲剪", "nail clipper"), ("航空箱", "猫包", "pet carrier"),
    ("尿垫", "pee pad", "training pad"), ("胸背", "胸背带", "harness"), ("宠物零食", "狗零食", "pet treat", "dog treat"),
    ("羊奶粉", "goat milk powder"), ("鱼油", "fish oil"),
    # clothing and accessories
    ("连衣裙", "裙子", "dress"), ("半身裙", "skirt"), ("衬衫", "衬衣", "shirt", "blouse"), ("t恤", "短袖", "tee", "t-shirt"),
    ("裤子", "长裤", "trousers", "pants"), ("毛衣", "针织衫", "sweater", "jumper", "knit"), ("风衣", "trench coat"),
    ("西装", "blazer", "suit jacket"), ("袜子", "sock"), ("围巾", "scarf"), ("腰带", "皮带", "belt"),
    ("内衣", "文胸", "bra"), ("睡衣", "pajamas", "pyjamas"), ("大衣", "overcoat"), ("短裤", "shorts"),
    ("打底裤", "leggings"), ("运动裤", "卫裤", "joggers", "sweatpants"), ("马甲", "背心", "vest", "tank top"), ("polo衫", "polo"),
    ("凉鞋", "sandal"), ("拖鞋", "slipper"), ("高跟鞋", "heels", "high heels"), ("手套", "glove"), ("墨镜", "太阳镜", "sunglasses"),
    ("耳环", "耳钉", "earring"), ("项链", "necklace"), ("手链", "bracelet"), ("丝巾", "silk scarf"), ("针织开衫", "开衫", "cardigan"), ("冲锋衣", "hardshell", "rain jacket", "shell jacket"),
    ("帐篷", "tent"), ("背包", "双肩包", "登山包", "backpack", "rucksack"), ("瑜伽垫", "yoga mat"), ("跳绳", "jump rope"),
)  # fmt: skip


def _cue_source(cue: str) -> str:
    if cue.startswith("re:"):
        return f"(?:{cue[3:]})"
    if CJK.search(cue):
        return re.escape(cue)
    # "washable", "washed", "reflective" ...: an English cue with the endings words take.
    return r"(?<![a-z])" + re.escape(cue) + r"(?:e?s|able|ed|ing)?(?![a-z])"


@lru_cache(maxsize=8192)
def cues_pattern(cues: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled alternation for a group of cues (compiled once, searched once)."""
    return re.compile("|".join(_cue_source(cue) for cue in cues))


def cue_matches(cue: str, text: str) -> bool:
    return cues_pattern((cue,)).search(text) is not None


def any_cue(cues: tuple[str, ...], text: str) -> bool:
    return cues_pattern(cues).search(text) is not None


def intents_of(text: str) -> list[str]:
    """The intents whose cues the normalised text holds, in INTENTS order."""
    return list(asked_of(text)[0])


def concepts_of(text: str) -> list[str]:
    return list(asked_of(text)[1])


@lru_cache(maxsize=4096)
def asked_of(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(intents, kinds of spec) the normalised text asks about, in table order. A cue that
    lies inside a longer cue of another entry does not count: "还剩多久" asks how long the
    sale lasts, not (还剩) the stock; "几天到" is delivery time, not (几天) battery life."""
    found: list[tuple[str, str, list[tuple[int, int]]]] = []
    for family, table in (("intent", INTENTS), ("concept", CONCEPTS)):
        for name, cues in table.items():
            spans = [m.span() for m in cues_pattern(cues).finditer(text) if m.end() > m.start()]
            if spans:
                found.append((family, name, spans))
    longest = [(s, e, name) for _, name, spans in found for s, e in spans]

    def covered(name: str, start: int, end: int) -> bool:
        return any(s <= start and end <= e and e - s > end - start and n != name for s, e, n in longest)

    kept = [(family, name) for family, name, spans in found if not all(covered(name, s, e) for s, e in spans)]
    return tuple(n for f, n in kept if f == "intent"), tuple(n for f, n in kept if f == "concept")


def is_medical(text: str) -> bool:
    return any_cue(MEDICAL, text)


_SHADE_ZH = re.compile(r"([\u4e00-\u9fff]{2})色(?!号|系|差)")
_NOT_SHADE = set("显掉褪染出特变串颜什么啥几哪个种好本杂成很不会易容有是的这那吗试")


def colours_named(text: str, listed: tuple[str, ...] = ()) -> list[str]:
    """Colours the text names: basic colour words, a shade of the catalogue's own ("豆沙色"
    when 02豆沙色 is listed), and any other "XX色" shade ("奶茶色", to be declined if unlisted)."""
    found = [m.group(0) for m in _COLOUR_ZH.finditer(text)]
    found += [m.group(1) + "色" for m in _COLOUR_BARE_ZH.finditer(text) if m.group(1) + "色" not in found]
    found += [m.group(1) for m in _COLOUR_EN.finditer(text)]
    for name in listed:
        core = re.sub(r"^[\w]*?\d+\s*", "", normalize(name)).removesuffix("色")
        # "earth tone" for the listed "earth tones": English names in the singular too.
        one = " ".join(singular(w) for w in core.split()) if not CJK.search(core) else core
        said = core if core in text else one if one in text else ""
        if len(core) >= 2 and said and not any(core in f or f.removesuffix("色") in core for f in found):
            found.append(core)
    for m in _SHADE_ZH.finditer(text):
        shade = m.group(0)
        if not (set(m.group(1)) & _NOT_SHADE) and not any(f.removesuffix("色") in shade for f in found):
            found.append(shade)
    return found


def regions_named(text: str) -> list[str]:
    return [region for region, names in REGIONS.items() if any_cue(names, text)]


# ------------------------------------------------------------------ numbers with units

_CN_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
_QUANTITY = re.compile(
    r"(\d+(?:\.\d+)?|[一二两三四五六七八九十百]+)(半)?\s*"
    r"(公斤|千克|kg|斤|克|g|厘米|cm|公分|米|岁|years?|yrs?|个月|months?|周|天|小时|毫升|ml|升)(半)?"
)


def cn_number(text: str) -> float:
    if text.isdigit() or re.fullmatch(r"\d+\.\d+", text):
        return float(text)
    if text == "半":
        return 0.5
    if "千" in text:  # "一千", "两千五"
        thousands, _, rest = text.partition("千")
        value = float((_CN_DIGITS.get(thousands, 1) if thousands else 1) * 1000)
        if rest:
            value += cn_number(rest) * (100 if len(rest) == 1 and rest not in "十百" else 1)
        return value
    if "百" in text:  # "二百斤", "一百二"
        hundreds, _, rest = text.partition("百")
        value = float((_CN_DIGITS.get(hundreds, 1) if hundreds else 1) * 100)
        if rest:
            value += cn_number(rest) * (10 if len(rest) == 1 and rest != "十" else 1)
        return float(value)
    if text == "十":
        return 10
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_CN_DIGITS.get(tens, 1) if tens else 1) * 10 + (_CN_DIGITS.get(ones, 0) if ones else 0)
    return float(_CN_DIGITS.get(text, 0))


_PACK = re.compile(
    r"(\d+(?:\.\d+)?|[一二两三四五六七八九十]+|半)\s*(公斤|千克|kg|斤|克|g|毫升|ml|升|l)\s*(?:装|的?(?:袋|包|瓶|罐|盒|桶))"
)
"""An amount that is a pack size ("十斤装", "1公斤装", "500ml的瓶"): what is bought, not the viewer's measure."""
_GIRTH = re.compile(
    r"(胸围|腰围|臀围|头围|bust|chest|waist|hips?|head)\s*(?:是|有|大概|约)?\s*"
    r"(?:([一二两三四五六七八九\d])尺([一二三四五六七八九\d])?|(\d+(?:\.\d+)?)\s*(厘米|cm|公分|寸|inch(?:es)?)?)"
)
_GIRTH_KIND = {"胸围": "chest", "bust": "chest", "chest": "chest", "腰围": "waist", "waist": "waist",
               "臀围": "hip", "hip": "hip", "hips": "hip", "头围": "head", "head": "head"}  # fmt: skip


def packs(text: str) -> list[tuple[str, float]]:
    """Pack sizes named ("十斤装" = ("weight", 5.0) kg, "500ml的瓶" = ("volume", 500.0) ml)."""
    out: list[tuple[str, float]] = []
    for match in _PACK.finditer(text):
        value, unit = cn_number(match.group(1)), match.group(2)
        out.append(_amount_of(value, unit))
    return out


def _amount_of(value: float, unit: str) -> tuple[str, float]:
    """An amount in the unit variants are compared in: kg for weights, ml for volumes."""
    if unit in ("公斤", "千克", "kg"):
        return ("weight", value)
    if unit == "斤":
        return ("weight", value / 2)
    if unit in ("克", "g"):
        return ("weight", value / 1000)
    if unit in ("升", "l"):
        return ("volume", value * 1000)
    return ("volume", value)


def amounts(text: str) -> list[tuple[str, float]]:
    """Every weight or volume in a text with its unit ("5公斤", "1.5 kg", "500毫升"), for
    comparing a variant's name with a pack size asked in other units."""
    out = []
    for match in re.finditer(
        r"(\d+(?:\.\d+)?|[一二两三四五六七八九十]+)\s*(公斤|千克|kg|斤|克|g|毫升|ml|升|l)(?![a-z])", text
    ):
        out.append(_amount_of(cn_number(match.group(1)), match.group(2)))
    return out


def _girths(text: str) -> list[tuple[str, float]]:
    """Body girths in cm: "胸围45厘米", "腰围2尺7" (2.7 尺; a 尺 is a third of a metre), "waist 30 inches"."""
    out = []
    for match in _GIRTH.finditer(text):
        kind = _GIRTH_KIND[match.group(1)]
        if match.group(2) is not None:
            chi = cn_number(match.group(2)) + (cn_number(match.group(3)) / 10 if match.group(3) else 0)
            out.append((kind, round(chi * 100 / 3, 1)))
        else:
            value, unit = float(match.group(4)), match.group(5) or ""
            out.append((kind, value * 2.54 if unit.startswith(("寸", "inch")) else value))
    return out


def quantities(text: str) -> list[tuple[str, float]]:
    """("weight", kg) / ("height", cm) / ("age", months) / ("chest" | "waist" | "hip", cm) /
    ... named in the text ("20斤" is 10 kg). A pack size ("1公斤装") is not one of them."""
    out: list[tuple[str, float]] = _girths(text)
    # Girths and pack sizes are not heights or body weights: take them out first.
    text = _GIRTH.sub(" ", _PACK.sub(" ", text))
    for match in _QUANTITY.finditer(text):
        value = cn_number(match.group(1)) + (0.5 if match.group(2) or match.group(4) else 0)
        unit = match.group(3)
        if unit in ("公斤", "千克", "kg"):
            out.append(("weight", value))
        elif unit == "斤":
            out.append(("weight", value / 2))
        elif unit in ("厘米", "cm", "公分"):
            out.append(("height", value))
        elif unit in ("岁", "year", "years", "yr", "yrs"):
            out.append(("age", value * 12))
        elif unit in ("个月", "month", "months"):
            out.append(("age", value))
    for match in re.finditer(r"(?:身高|高)\s*(\d{2,3})(?!\d)(?!\s*(?:公斤|kg|斤))", text):
        out.append(("height", float(match.group(1))))
    # "我一米八五", "身高1米7": a person's height in metres and the tens-and-ones of centimetres
    # (not "1米8的床", a bed's width: only after 我 / 身高 / 个子 / 高).
    for match in re.finditer(r"(?:我|身高|个子|高)\s*(?:一|1)\s*米\s*([一二三四五六七八九\d]{1,2})(?![\d米])", text):
        digits = "".join(c if c.isdigit() else str(_CN_DIGITS[c]) for c in match.group(1))
        out.append(("height", 100.0 + int(digits.ljust(2, "0"))))
    # "体重110" without a unit: Chinese viewers give their weight in 斤 (110斤 = 55 kg) from 100 up.
    for match in re.finditer(r"体重\s*(\d{2,3}(?:\.\d)?)(?![\d.]|\s*(?:公斤|千克|kg|斤|g|克))", text):
        value = float(match.group(1))
        out.append(("weight", value / 2 if value >= 100 else value))
    # "175 70公斤穿什么码", "160 50kg": a bare 140-199 in a size question is a height in cm.
    if re.search(r"码|尺码|size|穿|选", text) and not any(kind == "height" for kind, _ in out):
        for match in re.finditer(
            r"(?<![\d.])(1[4-9]\d)(?![\d.]|\s*(?:元|块|kg|公斤|千克|斤|g|克|ml|毫升|mm|毫米|号|码))", text
        ):
            out.append(("height", float(match.group(1))))
    # Foot length ("脚长255", "foot length 25.5cm"): in millimetres, as size charts give it.
    for match in re.finditer(
        r"(?:脚长|foot length|feet are|foot is)\s*(\d{2,3}(?:\.\d)?)\s*(mm|毫米|cm|厘米|公分)?", text
    ):
        value, unit = float(match.group(1)), match.group(2) or ""
        out.append(("foot", value * 10 if unit in ("cm", "厘米", "公分") or value < 40 else value))
    # Shoe size ("我45码的脚", "穿40码的鞋", "鞋码38", "EU 40"): for charts by shoe size (socks, insoles)
    for match in re.finditer(
        r"(?<![\d.])(\d{2}(?:\.5)?)\s*码的?[脚鞋]|穿\s*(\d{2}(?:\.5)?)\s*码的?鞋|鞋码\s*是?\s*(\d{2}(?:\.5)?)"
        r"|\beu\s*(\d{2}(?:\.5)?)\b|\bshoe size\s*(\d{2}(?:\.5)?)\b",
        text,
    ):
        out.append(("shoe", float(next(g for g in match.groups() if g))))
    return out


ANSWER_CUES: dict[str, tuple[str, ...]] = {
    # What a host's or bot's statement answers ("现在35.9一箱" answers a price question).
    "price": (
        "re:[¥$]\\s*\\d",
        "re:\\d+(\\.\\d+)?\\s*(元|块)",
        "re:(现在|今天|只要|到手|秒杀价?|特价|活动价|券后|直播间)\\s*\\d",
        "re:价\\s*\\d",  # "直播价269"
        "re:\\d+\\.\\d+",
        "re:\\d+\\s*一(包|箱|盒|件|个|瓶|罐|袋|套|支)",
    ),
    "stock": ("re:(还有|还剩|剩|仅剩)\\s*\\d", "re:\\d+\\s*(份|件|个|单)", "售罄", "sold out", "re:\\d+ left"),
    "link": ("re:\\d+\\s*号", "链接", "link"),
    "time_left": (
        # ("还有二十来分钟", "还剩差不多20分钟")
        "re:(还有|还剩|剩|只剩)(差不多|大概|大约|不到)?\\s*[\\d一二两三四五六七八九十几半]+\\s*来?个?(分钟|小时)",
        "re:\\d+\\s*分钟(后)?结束",
        "re:\\d+ ?(minutes|mins) (left|to go)",
    ),
    "delivery_time": (
        "re:\\d+\\s*(到|-|~)\\s*\\d+\\s*天",
        "re:\\d+\\s*小时内?(发|出)",
        "re:\\d+\\s*天(内)?(到|发)",
        "re:\\d+\\s*(-|to)\\s*\\d+ days",
        "re:with(in)? \\d+ hours",
    ),
    "variants": (
        "规格",
        "款式",
        "options",
        "re:有.{1,4}和.{1,4}(两|几)?(种|款)?$",
        "re:([两三四五六七八九十]|\\d+)\\s*(个|种|款)\\s*(口味|味道?|颜色|色|规格|款式|尺寸|尺码)",
    ),
    "warranty": ("质保", "保修", "包换", "warranty", "guarantee"),
    "gift": ("re:(加|赠|附|还)送", "赠品", "赠送", "free gift"),
    # Showing it, or trying it on, for the room ("等下拿出来给大家看", "再给大家冲一泡").
    "show": ("re:给(大家|你们)(看|试|冲|泡|展示|演示)", "拿出来", "re:等(下|会儿?).{0,6}(看|试|展示)"),
    "host": ("re:给(大家|你们)(看|试|穿|戴|涂)", "re:(主播|我)(穿|戴)的?是?\\w{0,3}码"),
    # Who it is for, stated with a limit: "10个月以上的小型犬吃", "for dogs over 10 months".
    "suitable": (
        "适合",
        "不适合",
        "re:\\d+\\s*(个月|岁|公斤|kg|斤)(以上|以下|之内|内)",
        "re:(over|under) \\d+ ?(months?|years?|kg)",
    ),
}


UNITS: tuple[tuple[str, ...], ...] = (
    # One unit per row, its Chinese and English spellings: "几秒" and "10 seconds" meet in 秒.
    ("克拉", "carat", "carats", "ct"), ("秒", "second", "seconds", "sec", "s"), ("分钟", "minute", "minutes", "min"),
    ("小时", "hour", "hours", "h", "hr"), ("天", "day", "days"), ("年", "year", "years"), ("个月", "month", "months"),
    ("克", "gram", "grams", "g"), ("公斤", "千克", "kg", "kilo", "kilos"), ("毫升", "ml"), ("升", "litre", "liter", "l"),
    ("瓦", "watt", "watts", "w"), ("分贝", "decibel", "decibels", "db"), ("毫安", "mah"), ("伏", "volt", "volts", "v"),
    ("厘米", "公分", "centimetre", "centimeter", "cm"), ("毫米", "millimetre", "millimeter", "mm"),
    ("米", "metre", "meter", "metres", "meters", "m"), ("英寸", "inch", "inches"), ("档", "level", "levels", "setting", "settings"),
    ("磅", "lb", "lbs", "pound", "pounds"), ("盎司", "oz", "ounce", "ounces"),
    ("度", "degree", "degrees", "°"), ("片", "piece", "pieces", "pcs"), ("层", "layer", "layers"),
)  # fmt: skip
_UNIT_ASKED = re.compile(
    r"(?:几|多少|how many|how much)\s*个?\s*("
    + "|".join(sorted((re.escape(u) for row in UNITS for u in row), key=len, reverse=True))
    + r")(?![a-z])"
)


def units_asked(text: str) -> list[tuple[str, ...]]:
    """The units a question counts in ("机械表一天差几秒" -> 秒, "how many carats" -> 克拉)."""
    return [row for m in _UNIT_ASKED.finditer(text) for row in UNITS if m.group(1) in row]


_UNIT_GIVEN = re.compile(
    r"\d(?:\.\d+)?\s*("
    + "|".join(
        sorted((re.escape(u) for row in UNITS[:-3] for u in row if len(u) > 1 or CJK.match(u)), key=len, reverse=True)
    )
    + r")(?![a-z])"
)


def units_given(text: str) -> list[tuple[str, ...]]:
    """The units of amounts the viewer gives ("有6mm", "2.5米高"), not counting-words."""
    return [row for m in _UNIT_GIVEN.finditer(text) for row in UNITS if m.group(1) in row]


def says_amount_in(value: str, unit: tuple[str, ...]) -> bool:
    """The value gives a number in that unit ("日差-10~+20秒", "1 ct")."""
    spelled = "|".join(sorted((re.escape(u) for u in unit), key=len, reverse=True))
    return re.search(r"\d\s*(?:" + spelled + r")(?![a-z])", value) is not None


def answer_intents(text: str) -> list[str]:
    return [name for name, cues in ANSWER_CUES.items() if any_cue(cues, text)]


_BUDGET = re.compile(
    r"(\d+(?:\.\d+)?)\s*(?:元|块)?\s*(?:以内|以下|之内|左右)|(?:under|below|less than|within)\s*[¥$]?\s*(\d+(?:\.\d+)?)"
    r"|(?:预算|budget(?: of| is| around| about)?)\s*[¥$]?\s*(\d+(?:\.\d+)?)"
    r"|(?:around|about|within)\s*[¥$]?\s*(\d+(?:\.\d+)?)(?=\s*(?:元|块|yuan|rmb|¥|$|,))"
)


CHILD_WORDS = ("孩子", "小孩", "宝宝", "儿子", "女儿", "小朋友", "儿童", "小学生", "幼儿", "kid", "kids", "child", "children",
               "son", "daughter", "baby", "toddler", "toddlers")  # fmt: skip
"""A child, as a viewer says it."""
CHILD_LISTED = ("儿童", "宝宝", "孩子", "小孩", "小朋友", "kids", "children", "child", "baby")
"""A child, as a listing says it."""

RECIPIENTS: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    # (who the viewer buys for, words a listing uses for them, words of listings for the others)
    (("妈妈", "老婆", "女朋友", "女友", "闺蜜", "姐姐", "妹妹", "奶奶", "外婆", "婆婆", "mum", "mom", "mother", "wife",
      "girlfriend", "sister", "her"),
     ("女", "女士", "女款", "女性", "women", "woman", "ladies", "female", "her"), ("男士", "男款", "men's", "mens", "for men")),
    (("爸爸", "老公", "男朋友", "男友", "哥哥", "弟弟", "爷爷", "外公", "dad", "father", "husband", "boyfriend",
      "brother", "him"),
     ("男", "男士", "男款", "男性", "men", "man", "mens", "male", "him"), ("女士", "女款", "women's", "womens", "for women")),
    (CHILD_WORDS, CHILD_LISTED, ()),
    (("老人", "长辈", "父母", "爸妈", "parents", "elderly", "grandparents"),
     ("老人", "长辈", "中老年", "elderly", "parents", "seniors"), ()),
)  # fmt: skip
"""General knowledge of gifts: who a viewer names and how listings speak of them."""


NEEDS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    # (a need or trouble as viewers say it, the words of a listing that meets it): general
    # knowledge of what things are for, in any trade.
    (("脏", "打扫", "卫生", "灰尘", "清洁", "拖地", "dirty", "dust", "crumbs", "clean", "mopping"),
     ("清洁", "吸尘", "除尘", "清理", "拖把", "clean", "vacuum", "dust", "mop")),
    (("掉毛", "全是毛", "猫毛", "狗毛", "宠物毛", "pet hair", "dog hair", "cat hair", "fur everywhere"),
     ("粘毛", "除毛", "除尘", "静电", "lint", "hair")),
    (("没电", "亏电", "打不着", "dead battery", "won't start", "wont start", "flat battery"),
     ("启动", "搭电", "应急", "jump", "starter")),
    (("晒", "太热", "暴晒", "too much sun", "too hot"), ("遮阳", "防晒", "隔热", "shade", "uv", "upf")),
    (("没阳光", "不见光", "光线不好", "采光差", "采光不好", "no sun", "no sunlight", "dark room", "not enough light"),
     ("补光", "植物灯", "grow light", "plant light")),
    (("腰", "背疼", "久坐", "坐久", "back pain", "sitting", "sit for"), ("腰靠", "护腰", "坐垫", "靠垫", "lumbar", "cushion")),
    (("异味", "臭", "味道大", "smell", "smells", "odour", "odor"), ("香", "除味", "fragrance", "scent", "aroma")),
    (("碰瓷", "事故", "剐蹭", "accident", "scam", "crash"), ("记录", "录像", "record", "camera", "dash cam")),
    (("爆胎", "没气", "漏气", "胎压", "flat tyre", "flat tire", "puncture"), ("充气", "打气", "胎压", "inflat", "pump")),
    (("冷", "冻", "cold", "freezing"), ("保暖", "加热", "发热", "warm", "heat", "thermal")),
    (("吵", "噪音", "noisy", "noise"), ("静音", "降噪", "quiet", "silent", "noise")),
    (("新手", "入门", "小白", "beginner", "first time", "new to"), ("新手", "入门", "易", "beginner", "easy")),
    (("小户型", "地方小", "空间小", "租房", "small apartment", "small flat", "small space"),
     ("折叠", "收纳", "小巧", "不占", "compact", "fold", "small space")),
    (("办公室", "上班", "office", "desk", "work"), ("办公", "桌面", "office", "desk")),
    (("网课", "看电脑", "看手机", "盯屏幕", "screen", "computer"), ("防蓝光", "蓝光", "blue light", "blue-light")),
    (("开直播", "直播用", "拍视频", "化妆", "streaming", "makeup", "vlog"), ("补光", "环形", "美颜", "ring light", "fill light")),
    (("喝的", "饮料", "drinks", "something to drink"), ("饮", "水", "茶", "奶", "咖啡", "drink", "water", "tea", "juice")),
    (("出差", "旅行", "旅游", "travel", "trip"), ("便携", "旅行", "折叠", "portable", "travel")),
    (("跑步", "跑个", "慢跑", "马拉松", "半马", "running", "marathon", "jog", "jogging"), ("跑", "running", "runner")),
    (("床太硬", "太硬了", "硬板床", "睡着硬", "too hard", "too firm"), ("软", "床垫", "soft", "topper")),
    (("尿床", "尿湿", "wets the bed", "wetting the bed", "bedwetting", "bed-wetting"),
     ("隔尿", "防水", "waterproof", "protector")),
    (("烧烤", "烤肉", "bbq", "barbecue", "grill"), ("烧烤", "铁板", "bbq", "barbecue", "grill")),
    (("能盖的", "盖的", "盖着", "to cover", "sleep under"), ("被", "毯", "duvet", "quilt", "blanket")),
    (("带点跟", "有跟", "高跟", "显高", "heels", "heeled"), ("跟", "heel")),
)  # fmt: skip


def needs(text: str) -> list[tuple[str, ...]]:
    """For each need the question names, the listing words that meet it."""
    return [meets for said, meets in NEEDS if any(cue_matches(w, text) for w in said)]


def recipients(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """For each person the question buys for: (words that suit them, words for someone else)."""
    out = []
    for asked, fits, others in RECIPIENTS:
        if any(cue_matches(a, text) for a in asked):
            out.append((fits, others))
    return out


def without_budget(text: str) -> str:
    return _BUDGET.sub(" ", text)


def with_digits(text: str, followed_by: str = "", numerals: str = "一二两三四五六七八九十百千") -> str:
    """Chinese numerals as digits ("五磅" -> "5磅", "两瓶装" -> "2瓶装"), only those followed by
    `followed_by` (a pattern) when it is given."""
    pattern = f"[{numerals}]+" + (f"(?={followed_by})" if followed_by else "")
    return re.sub(pattern, lambda m: f"{cn_number(m.group(0)):g}", text)


def lengths(text: str) -> list[float]:
    """Lengths in cm: "1米2" and "一米八" (1.2 m, 1.8 m), "1.5m", "120厘米", and every side of
    "120 × 90 cm" or "3x2米" (a unit after the last side is every side's)."""
    text = re.sub(
        r"米([一二两三四五六七八九])(?![\u4e00-\u9fff]*[米厘])", lambda m: f"米{cn_number(m.group(1)):g}", text
    )
    text = with_digits(text, followed_by="米")
    out: list[float] = []
    for match in _SIDES.finditer(text):
        unit = match.group("unit")
        if unit:
            out += [_in_cm(float(side), unit) for side in re.findall(r"\d+(?:\.\d+)?", match.group("sides"))]
    for match in _LENGTH.finditer(_SIDES.sub(" ", text)):
        if match.group("tenths") is not None:
            out.append((float(match.group("value")) + float(match.group("tenths")) / 10) * 100)
        else:
            out.append(_in_cm(float(match.group("value")), match.group("unit")))
    return out


def people(text: str) -> list[float]:
    """How many people a text counts: "三口人", "两个人", "一个人住", "4口之家", "family of 4", "3 people"."""
    text = with_digits(text, followed_by=r"\s*(?:口|个人|人)")
    found = [float(n) for n in re.findall(r"(\d+)\s*(?:口人|口之家|个人|口)(?!份)", text)]
    found += [float(a or b) for a, b in re.findall(r"(\d+)\s*(?:people|persons)\b|family of (\d+)", text)]
    return found


PEOPLE_RANGE = re.compile(r"(\d+)\s*[-–~～到至]\s*(\d+)\s*(?:人|people|persons)")
AREA_RANGE = re.compile(r"(\d+(?:\.\d+)?)\s*[-–~～到至]\s*(\d+(?:\.\d+)?)\s*(?:平方米|平米|平方|平|㎡|m²|m2|sqm)")
AREA_ASKED = re.compile(r"(\d+(?:\.\d+)?)\s*(?:个)?(?:平方米|平米|平方|平|㎡|m²|m2|sqm|square met)")


def in_ranges(text: str, asked: list[float], ranges: re.Pattern[str]) -> bool | None:
    """Whether every amount asked is inside one of the ranges a text gives (None: it gives none)."""
    found = [(float(a), float(b)) for a, b in ranges.findall(text)]
    if not found or not asked:
        return None
    return all(any(low <= x <= high for low, high in found) for x in asked)


def sides(text: str) -> list[tuple[float, ...]]:
    """The sides of each "3x2" / "60×45" in a text, with or without a unit."""
    return [tuple(float(n) for n in re.findall(r"\d+(?:\.\d+)?", m.group("sides"))) for m in _SIDES.finditer(text)]


def _in_cm(value: float, unit: str) -> float:
    return value * {"米": 100, "m": 100, "毫米": 0.1, "mm": 0.1}.get(unit, 1)


_UNIT_OF_LENGTH = r"(?P<unit>厘米|公分|cm|毫米|mm|米|m(?![a-z]))"
_SIDES = re.compile(
    rf"(?P<sides>\d+(?:\.\d+)?(?:\s*(?:cm|厘米)?\s*[×xX*＊]\s*\d+(?:\.\d+)?){{1,2}})\s*{_UNIT_OF_LENGTH}?"
)
_LENGTH = re.compile(rf"(?<![\d.])(?P<value>\d+(?:\.\d+)?)\s*(?:米(?P<tenths>\d)(?!\d)|{_UNIT_OF_LENGTH})")


def budget(text: str) -> float | None:
    """ "200以内", "一百以内", "under ¥150": the most a viewer wants to spend."""
    text = with_digits(text, followed_by=r"\s*(?:元|块|以内|以下|左右|之内)")
    match = _BUDGET.search(text)
    if match is None:
        return None
    return float(next(g for g in match.groups() if g))
