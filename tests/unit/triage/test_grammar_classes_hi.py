"""Classes of wording behind the misses of blind sets H (online submissions, group-chat forwards,
舆情 notes) and I (institutions' genres), each with its harmless look-alikes.

Every wording here was written for this test: the sets gave the classes, not the sentences.
"""

from __future__ import annotations

import pytest

from services.triage.rules import Rules
from services.triage.signals import extract
from tests.unit.triage.conftest import triage

# class → (critical wordings, wordings that must stay below critical)
CLASSES: dict[str, tuple[list[str], list[str]]] = {
    # a stash of medicine and a quiet goodbye: dependants handed over, no day to wait for
    "means with a quiet farewell": (
        [
            "女的说药她早就买好了藏在抽屉里，孩子就交给你了，反正也等不到开庭那天了",
            "电话里她一直说想解脱，药都备着呢，问她在哪也不说",
        ],
        [
            "我妈的降压药都买好了，孩子就交给奶奶带几天，我去医院陪床",
            "药都买好了，就是医保报不了，跑了三趟撑不下去了想问问政策",
            "孩子就交给你了，下午我去药店买点感冒药",
        ],
    ),
    # someone else's goodbye posted or sent, and the sender no longer answers
    "farewell posted by someone unreachable": (
        [
            "儿子凌晨在抖音发了个视频，说对不起爸妈，现在手机一直打不通",
            "她微信给我发了张江边的照片，配了句再见了，之后再也不回消息",
            "男朋友发了条动态，一张大桥上的照片，写着这辈子就这样吧，人联系不上",
        ],
        [
            "他发朋友圈晒了一张楼顶的照片，说天台的夕阳真好看，刚才还给我回了消息",
            "老板朋友圈天天发旅游照片，电话就是不接，工钱拖了半年",
            "我这辈子就这样吧，房子买不起，就想把押金要回来",
        ],
    ),
    # a veiled threat the speaker commits to
    "veiled threat with commitment": (
        [
            "他在窗口拍桌子说不给办就在这闹出点事来，还说我说到做到",
            "他撂下一句后果自负，说我可不是吓唬你们",
            "老汉说镇里再拖，他就去乡政府搞出点大事，这回是认真的",
        ],
        [
            "物业贴了通知，逾期不交费后果自负",
            "他说这回说到做到，下周一定把钱还上",
            "大家都别过年了似的，天天加班到半夜，工资还拖",
        ],
    ),
    # gas opened, or the house taken down with the speaker
    "gas opened, dying with the house": (
        [
            "老汉说拆迁队敢进院子，他就拧开液化气罐，跟这几间房一起没了",
            "他放话说要是强拆，就和这栋楼一起炸上天",
            "户主说谁来推房子，她就把天然气阀门打开",
        ],
        [
            "燃气公司来人把煤气罐阀门打开检查了一下，说没漏气",
            "维修工说天然气阀门要先拧开才能用，教了老人好几遍",
            "厂子和老板一起没了影，工资找谁要",
        ],
    ),
    # violence, then people hiding from it or the attacker still inside
    "hiding from violence": (
        [
            "一个醉汉在饭馆里拿酒瓶砸人，服务员都躲进厨房了",
            "那人冲进办公室砸电脑，现在还在里面，我们不敢进去",
        ],
        [
            "上个月他打了我一顿，我躲在娘家住了两周，现在想离婚",
            "孩子怕打针躲在床底下不敢出来，护士态度很差",
        ],
    ),
    # the dead used to press a claim: a hearse or a coffin left at the other party's door
    "hearse or coffin at a door": (
        [
            "老人在他们厂里出事死了，家属开着灵车停到了厂大门口，说不赔钱不走",
            "家属把死者用冰棺运到包工头家门口停放，要他赔钱",
        ],
        [
            "老人去世了，灵车停在小区门口接人，邻居嫌挡路吵了几句",
            "殡仪馆的车停在医院后门等着，家属在办手续",
        ],
    ),
    # a settled word denied is a commitment; a past word may date the claim, not the threat
    "denied settlement, dated claim": (
        [
            "他说你们不给个说法他就从桥上跳下去，我可不是开玩笑",
            "包工头不结上个月的工钱，工人说就要从脚手架上跳下去",
        ],
        [
            "他说要从桥上跳下去，后来他自己说是开玩笑的",
            "上个月他说过要跳河，家里人劝住了，现在只想要回工钱",
        ],
    ),
    # weapons in gang slang; a life offered as the price of a claim; made to vanish
    "slang of weapons, life and vanishing": (
        [
            "他们在群里说晚上带上家伙去找那家人",
            "他在横幅上写着拿命换个说法，明天镇政府门口见",
            "他撂下话再来要账就让你从这世上消失",
        ],
        [
            "师傅说明天带上家伙什来修水管",
            "我们在工地上是拿命换钱，工资还拖了三个月",
            "她说再烦她就把我拉黑，让我从她的世界消失",
        ],
    ),
}

CASES = [(c, t, True) for c, (pos, _) in CLASSES.items() for t in pos] + [
    (c, t, False) for c, (_, neg) in CLASSES.items() for t in neg
]


@pytest.mark.parametrize(("cls", "text", "critical"), CASES)
def test_class(rules: Rules, cls: str, text: str, critical: bool) -> None:
    got = extract(text, None, (), 1, rules)
    assert (got.severity == "critical") is critical, (cls, got.factors)


@pytest.mark.parametrize(
    "text",
    [
        "快递丢了三次客服还踢皮球 我真的要原地爆炸了",
        "排了三个小时队 号还没叫到 我人没了",
        "天天加班到十二点 老板还扣钱 心态炸了",
        "隔壁装修砸墙 我家墙裂了 我要炸了",
        "爬楼爬得每天腿都废了，电梯还不修",
    ],
)
def test_online_hyperbole_is_no_danger_but_asks(rules: Rules, text: str) -> None:
    sig = extract(text, None, (), 1, rules)
    assert sig.severity != "critical"
    assert sig.severity != "high"


@pytest.mark.parametrize(
    "text",
    [
        "他说再不还钱，我要炸了他的车",
        "送到医院人没了，家属要说法",
    ],
)
def test_beside_the_online_hyperbole_harm_still_counts(rules: Rules, text: str) -> None:
    sig = extract(text, None, (), 1, rules)
    assert sig.severity in ("critical", "high")


@pytest.mark.parametrize(
    "text",
    [
        "目前未发现其带有刀具或动手，建议派出所约谈",
        "民警到场时没看到有人持械或推搡，双方在吵",
    ],
)
def test_an_observation_denied_negates_its_clause(rules: Rules, text: str) -> None:
    sig = extract(text, None, (), 1, rules)
    assert sig.severity in ("low", "medium")
    assert not any(f.factor in ("weapon", "scuffle") for f in sig.factors)


def test_a_denied_observation_does_not_reach_the_next_clause(rules: Rules) -> None:
    assert (
        extract("门口未发现异常，他现在拿着刀在楼道里转", None, (), 1, rules).severity == "critical"
    )


def test_a_village_cooperative_is_no_company_party(rules: Rules) -> None:
    d = triage(rules, "外嫁女反映村股份经济合作社年底分红不给她分，金额三千元", source="12345")
    assert d.channel != "court"
    assert not any("企业当事人" in r.evidence for r in d.reasons)


def test_a_trading_cooperative_is_still_a_company(rules: Rules) -> None:
    d = triage(rules, "农机专业合作社欠我货款两万元，一直拖着不给", source="12345")
    assert d.channel == "court"


def test_a_workplace_named_as_a_place_is_no_company_party(rules: Rules) -> None:
    d = triage(rules, "拼车油费一千二没给，车主在公司门口和他吵了起来后报警", source="110")
    assert d.channel == "police"
    assert not any("企业当事人" in r.evidence for r in d.reasons)


def test_a_bus_ride_is_no_car_purchase(rules: Rules) -> None:
    d = triage(rules, "在公交车上一个男的嫌我挤，下车时推了我一把，没受伤", source="12345")
    assert d.dispute_type == "public_order"
