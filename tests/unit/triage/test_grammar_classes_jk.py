"""Classes of wording from blind sets J (speech-recognition transcripts of calls) and K (dialect
words written in characters, non-native Mandarin, terse grid notes), each with its harmless
look-alike. Every wording here was written for this test; none is taken from a labelled set.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.triage.domain import TriageDecision, decide, input_from_report
from services.triage.learned import NGRAM_MAX, DangerModel
from services.triage.rules import Rules, load_rules
from services.triage.signals import extract

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _sev(rules: Rules, text: str) -> str:
    return extract(text, None, (), 1, rules).severity


# a vehicle as the weapon, and "together we all end" after an act of harm
VEHICLE_THREATS = [
    "退款的事拖了半年，我总有一天把车直接开进他们展厅",
    "他在电话里说 哪天开着大货车 撞进村委会的大门",
    "我真想一脚油门踩到底冲进他们售楼处，大家一起完蛋",
    "赔偿谈不拢，他说要开着拖拉机冲进厂里，跟老板一块完蛋",
    "那个司机喝了酒开着面包车在人家门口来回冲，见人就往上撞",
]
VEHICLE_HARMLESS = [
    "哪天有空把车开到店里保养一下，顺便问问保修",
    "我把车开进他们4S店修了三回还是异响，要求换车",
    "昨天一辆小货车失控冲进了路边的水果店，撞坏了玻璃柜台",
    "公司再亏下去大家一起完蛋，老板要我们降薪",
    "不知道哪天才能把这笔货款要回来",
]


@pytest.mark.parametrize("text", VEHICLE_THREATS)
def test_a_vehicle_driven_into_a_place_or_at_people_is_critical(rules: Rules, text: str) -> None:
    assert _sev(rules, text) == "critical"


@pytest.mark.parametrize("text", VEHICLE_HARMLESS)
def test_a_car_taken_to_a_garage_an_accident_or_a_business_failing_is_not(
    rules: Rules, text: str
) -> None:
    assert _sev(rules, text) != "critical"


# a fight word, then the same sentence says no blow was struck; who struck first is a claim
@pytest.mark.parametrize(
    "text",
    [
        "两兄弟为分房子干起来了，只动嘴没动手，嗓门大得整条街都听见",
        "两家为排水沟吵起来打起来了，其实没打起来，就是吵",
        "保安推了他一把，物业现在说是业主先动手的，要看监控",
    ],
)
def test_a_row_with_no_blow_or_a_claim_of_who_struck_first_is_no_violence_now(
    rules: Rules, text: str
) -> None:
    assert _sev(rules, text) != "critical"


@pytest.mark.parametrize(
    "text",
    [
        "两兄弟为分房子干起来了，弟弟拿板凳砸哥哥",
        "两家为排水沟打起来了，快来人",
        "物业的保安现在还在打业主，快来",
    ],
)
def test_the_same_rows_with_blows_stay_critical(rules: Rules, text: str) -> None:
    assert _sev(rules, text) == "critical"


def _decide(text: str, model: DangerModel | None) -> TriageDecision:
    rules = load_rules(None)
    rules.attach_danger_model(model)
    return decide(input_from_report({"source": "110", "text": text}), rules, NOW)


SURE = DangerModel("toy", -2.0, {"鼻血": 6.0, "门口": 6.0, "院子": 6.0}, NGRAM_MAX, 0.5, 0.3)


@pytest.mark.parametrize(
    "text",
    [
        # the attacker gone, an injury already done
        "在菜场门口被一个陌生男人打出了鼻血，打人的已经跑了，我自己去了医院",
        # no blow struck, no trouble made
        "两口子在院子里吵到半夜，邻居说没有打人，就是吵，吵得大家睡不着",
        "我坐在他家门口等他还钱，我没闹，就想有人来作个证",
        # the parties gone home
        "两家在院子里为晒谷场吵了一架，后来各自回家了，明天村里再调",
    ],
)
def test_a_report_that_says_the_danger_is_over_is_only_queued_by_the_model(text: str) -> None:
    d = _decide(text, SURE)
    assert d.severity != "critical"
    assert d.review and any("未见危险" in c for c in d.review_cues)


@pytest.mark.parametrize(
    "text",
    [
        "他把我堵在院子门口打出了鼻血，现在还拿着砖头不让走",
        "打人的在门口转悠，说等会儿还要回来",
        "老板刚开车来到厂门口，工人们围着他不让走",
    ],
)
def test_danger_not_said_to_be_over_is_raised_by_a_sure_model(text: str) -> None:
    assert _decide(text, SURE).severity == "critical"


# dialect words the normaliser reads, and the Mandarin words that look like them
@pytest.mark.parametrize(
    ("dialect", "standard"),
    [
        ("两个人冇郁手", "两个人没有动手"),
        ("吵完各自返屋企", "吵完各自回家"),
        ("今朝一早又来了", "今天一早又来了"),
        ("伊翁食酒食醉转来", "她老公喝酒喝醉转来"),
        ("伊讲欲去告伊", "他讲要去告他"),
        ("保安毋予伊入", "保安不给他入"),
        ("阮阿母佇病院", "我阿母在医院"),
        ("伊共我拍", "他共我打"),
        ("媳妇有身六个月", "媳妇怀孕六个月"),
        ("他额头遭撞到", "他额头被撞到"),
        ("你给老子等到！", "你给老子等着！"),
        ("你等住睇。", "你等着看。"),
        ("廿几个业主", "二十几个业主"),
        ("三十外个村民", "三十多个村民"),
        ("借了两万箍", "借了两万块"),
        ("这个月第三摆来", "这个月第三次来"),
        ("老人企唔起身", "老人站不起身"),
        ("屋里小囡交关吵", "屋里孩子很吵"),
    ],
)
def test_dialect_words_are_read(rules: Rules, dialect: str, standard: str) -> None:
    assert rules.compiled.normalise(dialect) == standard


@pytest.mark.parametrize(
    "text",
    [
        "他去伊朗出差了，带回来一个木乃伊模型",
        "申请劳动仲裁前先问企业要了工资条",
        "随心所欲的食欲，给予奖励，予以批评，毋庸置疑",
        "他揣着一瓶汽油，拍照发了朋友圈",
        "大家靠拢一点，带上身份证，有身份的人",
        "等到明天再说",
        "打电话要他还钱",
    ],
)
def test_mandarin_look_alikes_are_left_alone(rules: Rules, text: str) -> None:
    assert rules.compiled.normalise(text) == text


# severity read from dialect and ASR wording: a blow, a threat short of harm, a pregnancy
@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("两个人佇门口相推，无人受伤", "medium"),
        ("伊讲：汝等住睇，看我按怎收拾汝", "high"),
        ("厂里叫有身七个月的女工家己写辞职书", "medium"),
        ("廿几个业主喺管理处门口嗌咗成个钟，冇郁手", "high"),
    ],
)
def test_dialect_wordings_get_their_severity(rules: Rules, text: str, severity: str) -> None:
    assert _sev(rules, text) == severity


# repeats said in words, and an old person's age said without 岁
@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("楼上半夜蹦迪，这个月我都报了三回警了", "high"),
        ("隔壁狗天天叫，我月初报过一次，今天又叫了一夜", "medium"),
        ("对门装修噪音大，这礼拜第二趟来反映了", "medium"),
        ("我今年六十七了，隔壁把柴火堆在我家门口", "medium"),
        ("我妈都七十多了，被卖保健品的骗了钱", "medium"),
    ],
)
def test_repeats_and_old_age_said_in_words(rules: Rules, text: str, severity: str) -> None:
    assert _sev(rules, text) == severity


@pytest.mark.parametrize(
    "text",
    [
        "我去年报过一次，后来对门搬走了，今天新住户又装修",
        "他欠了我八十了，一直拖着不给",
        "我跟他说了三回了他就是不挪车",
    ],
)
def test_an_old_report_a_small_debt_or_telling_him_thrice_are_not(rules: Rules, text: str) -> None:
    assert _sev(rules, text) == "low"


# what the dispute is about, told in dialect or in a terse note
@pytest.mark.parametrize(
    ("text", "dispute_type"),
    [
        ("停在路边的车被一辆泥头车刮花了车门，对方司机说公司会赔，一直拖着", "traffic"),
        ("坐公交时司机一脚急刹，我在车厢里跌倒扭了腰，公交公司不理", "traffic"),
        ("我们几户起了个标会，会头说会钱都借出去收不回来了", "debt_contract"),
        ("两个人合伙买了辆三轮车拉货，说好一人一半，他那份一直没给", "debt_contract"),
        ("五楼冷气机的水天天滴到我家阳台上，说了也不接水管", "neighbour"),
        ("单位安排去体检中心体检，报告拖了一个月还没出，要求退费", "medical"),
        ("有个男的天天跟着我到单位楼下，我很害怕", "public_order"),
        ("快递站长扣了他两百块，说是有客户投诉他", "labour"),
        ("老爸过身后，小弟说老房子全归他，我们姐妹一分没有", "marriage_family"),
    ],
)
def test_the_dispute_is_read_from_what_it_is_about(
    rules: Rules, text: str, dispute_type: str
) -> None:
    assert extract(text, None, (), 1, rules).type_choice.code == dispute_type


@pytest.mark.parametrize(
    ("text", "not_type"),
    [
        ("营业厅给老人办了个套餐，每月多扣了三十九元话费", "labour"),
        ("两户为门口车位互相推搡，已劝开", "public_order"),
        ("家属把遗体停在医院大厅门口，要医院赔钱", "neighbour"),
        ("孩子在走廊追逐被同学推倒，家长为医药费争执", "neighbour"),
    ],
)
def test_look_alikes_keep_their_type(rules: Rules, text: str, not_type: str) -> None:
    assert extract(text, None, (), 1, rules).type_choice.code != not_type


# severity: harm that lasts, a hospital stay beside its cause, a shove, the people said to be
# there or not, ages beside a word, parties counted by households or firms
@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("做完近视手术以后右眼就看不见了，医院说是个体差异", "high"),
        ("孩子生下来胳膊一直抬不起来，医生说是神经损伤", "high"),
        ("店主一巴掌扇过来，我门牙磕掉半颗，满嘴血", "high"),
        ("被小舅子打得住了五天院，医药费他一分不出", "high"),
        ("婆婆跟小姑一起动手，我额头破了去缝两针", "high"),
        ("排队时他就推我，我差点摔倒，没受伤", "medium"),
        ("下棋的两个老头吵起来了，一个八十多了", "medium"),
        ("上星期我也打过110的，他今天又在楼道里骂", "medium"),
        ("那家公司欠我们十一家供应商的材料款，谁也拿不到钱", "high"),
    ],
)
def test_severity_said_in_other_words(rules: Rules, text: str, severity: str) -> None:
    assert _sev(rules, text) == severity


@pytest.mark.parametrize(
    "text",
    [
        "我住了三天院，出院结算时多收了六百块护理费",
        "我肺炎住了五天院，现在好了，就是觉得诊所耽误了要退钱",
        "网购的衣服退不了，平台客服跟商家推来推去",
        "楼上那对夫妻上夜班，家里没有孩子，就是走路声音大",
        "兼职的学生妹（20岁）说老板扣了她两百块",
    ],
)
def test_a_bill_a_buck_passed_nobody_vulnerable_are_low(rules: Rules, text: str) -> None:
    assert _sev(rules, text) == "low"
