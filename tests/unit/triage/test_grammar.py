"""The danger grammar, element by element: what each must find and what it must leave alone.

Every wording here was written for this test (not taken from a labelled set or the issue).
"""

from __future__ import annotations

import pytest

from services.triage.grammar import DangerGrammar
from services.triage.rules import Rules
from services.triage.signals import extract


def _factors(rules: Rules, text: str) -> dict[str, str]:
    sig = extract(text, None, (), 1, rules)
    return {f.factor: f.level for f in sig.factors}


def _critical(rules: Rules, text: str) -> bool:
    return extract(text, None, (), 1, rules).severity == "critical"


# element → (positive wordings, negative wordings); positives are critical, negatives are not
ELEMENTS: dict[str, tuple[list[str], list[str]]] = {
    "threats.strong_intent": (
        [
            "老周喝了酒放话说要去弄死那个包工头",
            "她在电话里哭着说不想拖累家里，准备去跳河",
            "男的嚷着要放把火把养鸡场烧了",
            "债主撂话说再拖一天就要他的命",
            "他声称要开着三轮车撞那家人",
            "妹夫提着一桶液化气进了拆迁办，说再不签就点",
            "那人企图拿打火机点燃加油站的油桶",
            "他在村群里发语音说要去幼儿园报复",
            "承包户扬言要炸毁那座拦水坝",
        ],
        [
            "他说想要回自己的那份钱",
            "他说要砍他家那棵挡光的树",
            "他扬言要到法院告学校",
            "老人病得很重，医生说怕是要不行了",
            "她打算下个月去法院起诉",
        ],
    ),
    "threats.weak_intent": (
        [
            "你们再这样拖，我就一把火把这个破棚子点了",
            "他说这次赔不了，那就去死在你们公司",
        ],
        [
            "他前天就把自家地里的秸秆烧了，村里罚了款",
            "她公公就死在那家医院的病床上了",
            "司机没减速就开过去了",
            "他几年前讲过要砍人，那回派出所已处理，这次来问低保",
            "我就想问问工钱什么时候给",
        ],
    ),
    "threats.conditions": (
        [
            "不给个说法，我就死在你们厂门口",
            "再不赔钱，我就拉着他一块死",
            "要是不把工钱结清，我们就开车冲进项目部",
        ],
        [
            "再不交物业费就要停水停电",
            "如果不还钱就去法院起诉他",
        ],
    ),
    "threats.standalone": (
        [
            "这事今天不解决，大家都别想过好日子",
            "他说你们要是敢强拆，就从他身上碾过去",
            "讨薪的人在塔吊上蹲着不肯下来",
            "一个讨工钱的人爬上了村口的电线杆",
            "老汉说自己活够了，三天不吃不喝",
            "一辆面包车冲向人群，撞倒了几个赶集的",
            "他说我要是过不下去，你们一家也别想安生",
            "老汉放话：大不了一命抵一命",
        ],
        [
            "大家都别急，坐下来慢慢说",
        ],
    ),
    # poison, a corrosive or petrol got hold of and aimed at a person nearby
    "means.aimed": (
        [
            "前夫放话说他买了一瓶硫酸，要让我这辈子见不得人",
            "他说已经弄来两桶汽油，要找村主任算账",
        ],
        [
            "他拿了汽油卡去加油站加油，被多扣了钱",
            "厂里买了硫酸做电镀，味道飘到我们小区",
            "买了农药去地里打虫，让他别往我家菜地喷",
        ],
    ),
    # …or stockpiled, carried or sought with a quiet goodbye in the text
    "means.farewell": (
        [
            "她这几个月一直在攒安眠药，还把存折交给了女儿，说以后就拜托你了",
            "老汉把一瓶敌敌畏藏在身上，说他要是走了，地就留给孙子",
            "向小店老板打听哪里能买到老鼠药，还说孩子就托付给你们了",
        ],
        [
            "我妈失眠，医生给她开了安眠药，她把存折交给我保管，说以后就拜托你了",
            "我在农资店买了两瓶百草枯准备除草，结果是假的",
            "老人买了农药给果园打虫，说要是走了以后果园就归小儿子",
        ],
    ),
    # arson threats said of the place, in writing or sideways
    "threats.arson": (
        [
            "门缝里塞了张纸，写着再不还钱，就让你家房子烧干净",
            "他发短信说小心你家房子哪天着火",
        ],
        [
            "他说要去烧烤店吃夜宵，吵到我们了",
            "电动车在楼道充电，小心着火，物业不管",
        ],
    ),
    # 打 in compounds that are no blow
    "aspect.not_a_blow": (
        [
            "她男人还在屋里打她，快来人",
        ],
        [
            "隔壁装修每天早上七点就开始打电钻",
            "邻居几个人还在打扑克，吵到半夜",
            "我被推倒了 手腕摔断了 现在在医院打石膏",
            "我朋友被打了 现在在医院 打人的走了 我们知道是谁",
            "楼下工地还在打桩，震得墙都裂了",
        ],
    ),
    "preparations": (
        [
            "他说绝笔信已经写好了，放在枕头底下",
            "那人身上揣着一瓶汽油在售楼部转来转去",
            "老太太把打火机攥在手里坐在拆迁办门口",
        ],
        [
            "买的农药是假的，打了以后庄稼全死了",
            "汽油价格又涨了，跑运输不赚钱",
            "老人的遗嘱写好了，子女对分法不满",
        ],
    ),
    "weapons.arms": (
        [
            "男的揸住把西瓜刀喺村口等人",
            "他拎着根钢管在楼下转",
            "那小子操着一根甩棍冲过来",
            "拿着菜刀撵着他砍",
            "她被前男友用碎玻璃划伤了胳膊",
        ],
        [
            "在五金店买的菜刀质量不行，用两天就卷刃了，要退货",
            "厨房的刀被邻居借走了一直没还",
        ],
    ),
    "weapons.tools": (
        [
            "两家吵起来，男的举起锄头就冲过来",
            "他抡起扁担要打隔壁老王",
        ],
        [
            "他扛着锄头下地干活，路过时被狗咬了一口",
            "那人拿石头砸了他家窗户玻璃",
        ],
    ),
    "aspect.progressive": (
        [
            "她男人还在屋里打她，娃娃在哭",
            "他儿子正搁院坝头打老汉",
            "两兄弟喺门口打紧交",
            "那个醉汉仍在追着老太太骂着打",
            "他妈正被他爸在灶屋里打，哭得厉害",
            "男的还在院里骂，砸了碗，又打孩子",
        ],
        [
            "正月里两人打了一架，后来和好了",
            "他还在外地打工，没空来调解",
            "他一直在追讨那笔欠款",
            "楼上还在敲打地板，吵得睡不着",
        ],
    ),
    "aspect.completed_now": (
        [
            "两伙人在工地门口打起来了，快来人",
            "两家男人在田边打得正凶",
        ],
        [
            "上周两家打起来了，村里已调解",
        ],
    ),
    "aspect.urgent": (
        [
            "她爸喝了酒拿皮带抽她妈，快来人",
            "有人在楼道里打老人，快点来",
            "她前夫掐住她喉咙往墙上撞",
        ],
        [
            "老人摔倒了，赶紧打120救命",
            "上个月他打过我一次，快来帮我调解",
        ],
    ),
    "protest": (
        [
            "死者家属抬着棺材到了镇政府门口",
            "老人在卫生院走了，家属把人送到卫生院门口摆着不走",
            "亲属十几个人推着遗体进了乡政府大院",
            "矿工出事身亡，家属不准拉去火化，要矿上先赔钱",
        ],
        [
            "供货商把货拉到公司门口放着，说不给钱不拉走",
            "老人去世了，兄弟几个为丧葬费分摊吵架，迟迟不肯下葬",
        ],
    ),
    "hit_and_run": (
        [
            "货车撞倒骑车的老人后司机想跑，周围村民越来越多把车围住了，老人腿在流血",
        ],
        [
            "电动车撞伤了行人，肇事者想走被一个路人拦下",
        ],
    ),
    "crowd": (
        [
            "五六十号村民在项目部门口和保安对峙",
            "黑压压一片人围在镇政府门口",
            "上百号人把进村的路堵了",
            "讨债的差不多三十几个堵住了厂门",
            "七八十个村民在国道上拦截大货车",
            "三四十个乡亲把乡政府的大门围了",
        ],
        [
            "厂里有五十多名员工，老板来了以后说下个月一起发",
            "村里准备组织四十多人去镇上反映",
        ],
    ),
}

CASES = [(e, t, True) for e, (pos, _) in ELEMENTS.items() for t in pos] + [
    (e, t, False) for e, (_, neg) in ELEMENTS.items() for t in neg
]


@pytest.mark.parametrize(("element", "text", "critical"), CASES)
def test_grammar_element(rules: Rules, element: str, text: str, critical: bool) -> None:
    got = extract(text, None, (), 1, rules)
    assert (got.severity == "critical") is critical, (element, got.factors)


@pytest.mark.parametrize(
    "text",
    [
        "这物业真是烦死人了，电梯三天两头坏",
        "就是打死我也不会在这个协议上签字",
        "工资拖这么久，累死累活白干了",
        "我快被这个物业搞死了，天天停水",
        "两人吵架时她骂对方去死",
        "被这个开发商拖得跳河的心都有了",
        "她说被老公气得要跳楼，两人为回家晚的事吵",
        "物业三回都不管，我肺都气炸了",
        "商场门口挂着跳楼价大甩卖的横幅，买的鞋开胶了",
        "讨债时对方喊有种你弄死我，双方都没受伤",
        "他说要砍死我，事后说那是气话",
        "楼上每天半夜拿菜刀在案板上剁馅，吵得睡不着",
    ],
)
def test_hyperbole_is_not_danger(rules: Rules, text: str) -> None:
    assert not _critical(rules, text)


@pytest.mark.parametrize(
    "text",
    [
        # the same words as the hyperbole above, but a threat or a blade turned on people
        "她说再不离婚她就去跳楼，人已经站到窗台上了",
        "他扬言要弄死我，现在拿着刀在门口",
        "他说要砍死我，拿着刀在门口转",
        "他拿着菜刀追着邻居砍",
        "他说再不赔钱就把厂子炸了",
    ],
)
def test_threats_beside_the_hyperbole_still_count(rules: Rules, text: str) -> None:
    assert _critical(rules, text)


def test_hyperbole_that_looked_like_a_threat_is_a_review_cue(rules: Rules) -> None:
    sig = extract("我就要被这个破物业整死了，天天停水", None, (), 1, rules)
    assert sig.severity != "critical"
    assert any("夸张" in c for c in sig.review_cues)


@pytest.mark.parametrize(
    "text",
    [
        # settled after the event, in the same sentence
        "去年他放话要烧了对方的房子，后来经村里调解已和好",
        # a past fight, not going on
        "前天晚上两口子在家里打起来了，今天来问离婚怎么办",
    ],
)
def test_past_and_settled_danger_is_not_critical(rules: Rules, text: str) -> None:
    assert not _critical(rules, text)


def test_settled_then_back_again_is_critical(rules: Rules) -> None:
    assert _critical(rules, "两家上个月已调解，但今天男的又提着砍刀堵在门口")


@pytest.mark.parametrize(
    "text",
    [
        "他并没有拿刀，只是在门口骂了几句",
        "对方不会跳楼的，就是吓唬人",
    ],
)
def test_negated_danger_is_not_critical_and_asks_for_review(rules: Rules, text: str) -> None:
    sig = extract(text, None, (), 1, rules)
    assert sig.severity != "critical"
    assert sig.review_cues


def test_weapon_noun_without_handling_asks_for_review(rules: Rules) -> None:
    sig = extract("两家吵得很凶，他家案板上就放着一把菜刀", None, (), 1, rules)
    assert sig.severity != "critical"
    assert any("凶器" in c for c in sig.review_cues)


def test_weapon_as_goods_asks_nothing(rules: Rules) -> None:
    sig = extract("网购的水果刀质量太差，商家不给退货", None, (), 1, rules)
    assert not any("凶器" in c for c in sig.review_cues)


def test_split_type_evidence_asks_for_review(rules: Rules) -> None:
    # a wall between neighbours that is also a homestead boundary: neighbour or land?
    sig = extract("隔壁邻居把围墙往我家宅基地这边挪了半米", None, (), 1, rules)
    assert any("类型证据分歧" in c for c in sig.review_cues)


def test_clear_case_asks_nothing(rules: Rules) -> None:
    sig = extract("楼上装修每天电钻响到晚上十点，邻居劝了不听", None, (), 1, rules)
    assert sig.review_cues == []


@pytest.mark.parametrize(
    ("context", "who"),
    [
        ("我就死在你们门口", "first_person"),
        ("他老婆说要喝药", "relative"),
        ("对方扬言报复", "other_party"),
        ("门口停着车", None),
    ],
)
def test_who(rules: Rules, context: str, who: str | None) -> None:
    assert rules.danger_grammar is not None
    assert rules.danger_grammar.who_of(context) == who


def test_bad_grammar_regex_names_the_element(rules: Rules) -> None:
    assert rules.danger_grammar is not None
    data = rules.danger_grammar.model_dump()
    data["threats"]["harm_acts"]["die"] = "死在(["
    with pytest.raises(ValueError, match="threats.harm_acts.die"):
        DangerGrammar.model_validate(data)


def test_each_element_is_a_factor_of_its_own(rules: Rules) -> None:
    elements = {spec.element for spec in rules.compiled.factors if spec.element}
    assert {
        "threats.strong_intent",
        "threats.weak_intent",
        "threats.conditions",
        "threats.standalone",
        "preparations",
        "means.aimed",
        "means.farewell",
        "weapons.arms",
        "weapons.tools",
        "aspect.progressive",
        "aspect.completed_now",
        "aspect.urgent",
        "protest",
        "protest.moved_to_place",
        "protest.kept_unburied",
        "hit_and_run",
    } <= elements


def test_threat_evidence_says_who_makes_it(rules: Rules) -> None:
    sig = extract("女儿打电话说她老公扬言要把她娘家烧了", None, (), 1, rules)
    [threat] = [f for f in sig.factors if f.factor == "extreme_threat"]
    assert threat.evidence.endswith("（亲属）")


@pytest.mark.parametrize(
    "text",
    [
        "他提着那桶加错的柴油去加油站找老板，说油有问题",
        "拎着刚买的斧头回五金店要求换货",
    ],
)
def test_goods_in_dispute_are_no_weapon_but_asked_about(rules: Rules, text: str) -> None:
    sig = extract(text, None, (), 1, rules)
    assert sig.severity != "critical"
    assert any("争议商品" in c for c in sig.review_cues)


def test_goods_used_to_threaten_are_a_weapon(rules: Rules) -> None:
    assert _critical(rules, "他拿着在店里买的水果刀指着店主，要店主退钱")
