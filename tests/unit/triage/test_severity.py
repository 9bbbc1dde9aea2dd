from __future__ import annotations

import pytest

from services.triage.rules import Rules

from .conftest import triage


def factors(rules: Rules, text: str, **kw: object) -> set[str]:
    return {f.factor for f in triage(rules, text, **kw).factors}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "factor", "severity"),
    [
        ("对方说不给钱就从楼上跳下去", "extreme_threat", "critical"),
        ("扬言要和老板同归于尽", "extreme_threat", "critical"),
        ("他说再不赔就一把火烧了他家", "extreme_threat", "critical"),
        ("男子拿着菜刀站在门口", "weapon", "critical"),
        ("一村民提着一桶汽油来到村委会", "weapon", "critical"),
        ("带了一瓶农药来到工地", "weapon", "critical"),
        ("两人正在门口打，请速来", "ongoing_violence", "critical"),
        ("现场两家人已经打起来了", "ongoing_violence", "critical"),
        ("三十多名工人聚集在工地门口", "crowd", "critical"),
        ("村民堵路，约上百人", "crowd", "critical"),
        ("家属在医院大厅停尸，要求赔偿", "body_pressure", "critical"),
        ("被打伤住院", "injury", "high"),
        ("摔成骨折", "injury", "high"),
        ("工人在工地上摔下死亡", "death", "high"),
        ("手术后瘫痪在床", "injury", "high"),
        ("十五名业主代表去物业办公室", "many_people", "high"),
        ("对方说给我等着", "revenge_threat", "high"),
        ("欠款两万元", "money", "medium"),
        ("70岁的老人", "vulnerable", "medium"),
        ("孩子才三岁", "vulnerable", "medium"),
        ("女方怀孕五个月", "vulnerable", "medium"),
        ("其儿子是残疾人", "vulnerable", "medium"),
        ("双方发生推搡", "scuffle", "medium"),
    ],
)
def test_factor_found(rules: Rules, text: str, factor: str, severity: str) -> None:
    d = triage(rules, text)
    assert factor in {f.factor for f in d.factors}
    assert d.severity == severity


@pytest.mark.parametrize(
    "text",
    [
        "双方争吵，无人受伤",
        "经检查未受伤",
        "对方未携带凶器",
        "两人吵了几句，没有动手",
        "双方没有打架，只是口角",
        "没人受伤，已经散了",
        "均未受伤",
    ],
)
def test_negations_leave_severity_low(rules: Rules, text: str) -> None:
    assert triage(rules, text).severity == "low"


def test_negation_stops_at_punctuation(rules: Rules) -> None:
    assert triage(rules, "对方没有道歉，还打伤了他").severity == "high"


def test_negation_does_not_cross_a_noun_phrase(rules: Rules) -> None:
    assert "injury" in factors(rules, "被邻居家没拴绳的狗咬伤腿部")


def test_background_death_in_inheritance_is_not_harm(rules: Rules) -> None:
    d = triage(rules, "父亲去世后兄弟两人为分遗产争执")
    assert d.dispute_type == "marriage_family"
    assert d.severity == "low"


def test_repeat_from_text_and_from_merged_count(rules: Rules) -> None:
    assert triage(rules, "邻居噪音扰民，本月第二次来电").severity == "medium"
    assert triage(rules, "邻居噪音扰民，这是第三次报警").severity == "high"
    assert triage(rules, "邻居噪音扰民", repeat_count=3).severity == "high"
    assert triage(rules, "邻居噪音扰民，已多次协商").severity == "low"


def test_wage_arrears_for_ten_workers(rules: Rules) -> None:
    d = triage(rules, "包工头拖欠12名农民工工资")
    assert d.dispute_type == "labour"
    assert "wage_arrears_group" in {f.factor for f in d.factors}
    assert d.severity == "high"


def test_gathering_under_thirty_is_high(rules: Rules) -> None:
    assert triage(rules, "二十多名村民聚集在村委会").severity == "high"


def test_big_money_alone_is_medium(rules: Rules) -> None:
    d = triage(rules, "朋友借了十二万元不还")
    assert d.amount_yuan == 120_000
    assert d.severity == "medium"


@pytest.mark.parametrize(
    "text",
    [
        "老板再不给钱就跟他拼了",
        "他说要开车撞死对方",
        "扬言要去镇政府门口自焚",
        "称再不解决就喝药死在村委会",
    ],
)
def test_indirect_extreme_threats(rules: Rules, text: str) -> None:
    assert triage(rules, text).severity == "critical"


@pytest.mark.parametrize(
    "text",
    [
        "医生说需要开刀，手术后恢复不好",
        "儿子还在打工，儿媳要离婚",
        "他拿了汽油卡去加油站加油，被多扣了钱",
        "店家说这把菜刀质量没问题，不给退",
        "邻居喷农药飘到我家菜地",
        "楼上装修吵死了",
        "对方还在打官司",
    ],
)
def test_trigger_words_in_harmless_senses_are_not_critical(rules: Rules, text: str) -> None:
    assert triage(rules, text).severity != "critical"


def test_repeat_phrase_without_number(rules: Rules) -> None:
    assert triage(rules, "市民再次来电反映楼上噪音").severity == "medium"


def test_an_animal_dying_is_not_a_death_in_the_dispute(rules: Rules) -> None:
    assert triage(rules, "在宠物店买的小狗一周后死亡，店家拒绝赔偿").severity == "low"


def test_working_hard_is_not_a_threat(rules: Rules) -> None:
    assert triage(rules, "他跟着老板拼命干活，老板却拖欠工资").severity != "critical"
    assert triage(rules, "王某扬言回来要跟弟弟拼命").severity == "critical"


def test_onlookers_are_not_parties(rules: Rules) -> None:
    assert triage(rules, "现场围观群众二十多人，双方口角").severity == "low"


@pytest.mark.parametrize(
    "text",
    [
        "农民工爬上塔吊讨要工钱",
        "她说活不下去了，要打开煤气",
        "男子操起扳手冲向对方",
        "有人在砸门，屋里有老人",
        "全村村民聚集在镇政府门口",
        "五十多名业主拉横幅堵在售楼部",
    ],
)
def test_more_critical_wordings(rules: Rules, text: str) -> None:
    assert triage(rules, text).severity == "critical"


@pytest.mark.parametrize("text", ["对方说这事跟你没完", "扬言要让他付出代价"])
def test_more_revenge_wordings(rules: Rules, text: str) -> None:
    assert triage(rules, text).severity == "high"


def test_a_planned_gathering_is_not_yet_a_crowd(rules: Rules) -> None:
    d = triage(rules, "公司拖欠32名工人工资，工人们准备去市政府上访")
    assert d.severity == "high"
    assert triage(rules, "32名工人在市政府门口聚集讨薪").severity == "critical"


def test_a_deceased_elder_is_not_a_vulnerable_party(rules: Rules) -> None:
    assert triage(rules, "老人去世后，几个子女为丧葬费怎么分摊争执不下").severity == "low"
    assert triage(rules, "老人被儿子赶出家门").severity == "medium"


@pytest.mark.parametrize(
    "text",
    [
        "邻居拿着一把砍骨刀在楼道里追砍其丈夫，请速来",
        "讨薪的工人爬到了在建楼房的顶楼，说不给钱就跳下来",
        "丈夫用皮带抽打她，现在还没停手",
        "要是再来催债就要让催债的人有来无回",
        "患者家属在医院大厅摆放花圈、设灵堂，要求赔偿",
    ],
)
def test_critical_wordings_with_negation_characters_or_long_gaps(rules: Rules, text: str) -> None:
    assert triage(rules, text).severity == "critical"


def test_a_kitchen_knife_bought_in_a_shop_is_not_a_weapon(rules: Rules) -> None:
    assert triage(rules, "在菜市场买的菜刀用了一周就卷刃，商家拒绝退货").severity == "low"


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("被对方打得住进了医院", "high"),
        ("他被打得牙齿掉了两颗", "high"),
        ("两人推推搡搡", "medium"),
        ("双方动了手", "medium"),
        ("上小学的儿子被同学欺负", "medium"),
        ("其家人在医院住院12天，费用清单有误", "low"),
    ],
)
def test_injury_and_scuffle_variants(rules: Rules, text: str, severity: str) -> None:
    assert triage(rules, text).severity == severity


@pytest.mark.parametrize(
    "text",
    [
        "前夫闯进其家，把她母亲推倒在地后开始砸家具",
        "一名男子在护士站用输液架打护士，现场保安正在制止",
        "农民工说如果这周再拿不到钱，就去工地的塔吊上不下来",
        "村民拿着一瓶敌敌畏，说不给解决就喝",
    ],
)
def test_violence_starting_or_being_stopped_and_threats_to_climb(rules: Rules, text: str) -> None:
    assert triage(rules, text).severity == "critical"
