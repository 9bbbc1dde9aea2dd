"""General gaps found by the third blind set: negation with its own subject, damage to things,
deposits, collisions without a vehicle and verbal quarrels. Sentences are written for each pattern.
"""

from __future__ import annotations

import pytest

from services.triage.rules import Rules

from .conftest import triage

# (1) "没有人/无人/没人 … 扬言 …": the cue carries its subject and negates its whole clause
NOT_THREATENED = [
    "两兄弟为分家吵了几句，并没有人威胁要跳河，只是互不说话",
    "母子为装修的事闹别扭，家里无人扬言要寻短见或者离家出走",
    "夫妻俩吵嘴后各自回房，没人说过要喝农药之类的话",
]
STILL_THREATENED = [
    "没有人管他，他就扬言要从楼顶跳下去",
    "催了半年没人理，今天他说要跳楼",
]


@pytest.mark.parametrize("text", NOT_THREATENED)
def test_subject_negation_covers_the_clause(rules: Rules, text: str) -> None:
    d = triage(rules, text)
    assert d.severity != "critical", d


@pytest.mark.parametrize("text", STILL_THREATENED)
def test_subject_negation_stops_at_a_new_clause_or_breaker(rules: Rules, text: str) -> None:
    assert triage(rules, text).severity == "critical"


# (2) a scratch or knock that falls on a thing is damage to property, not an injury
DAMAGE_ONLY = [
    "停在楼下的电动车被人故意划伤车身，车主要求对方赔修理费三百元",
    "装修工人搬柜子时碰伤了邻居家的木门，双方为赔多少钱争执",
    "孩子玩球把对面商铺的玻璃门砸伤一道裂痕，店主找家长要赔偿",
]
STILL_INJURED = [
    "两人推搡中一方被玻璃划伤手臂，去诊所包扎",
    "骑车的老人被后面的小车撞伤了腿",
]


@pytest.mark.parametrize("text", DAMAGE_ONLY)
def test_scratch_on_a_thing_is_not_injury(rules: Rules, text: str) -> None:
    d = triage(rules, text)
    assert not any(f.factor == "injury" for f in d.factors), d.factors


@pytest.mark.parametrize("text", STILL_INJURED)
def test_scratch_on_a_person_is_injury(rules: Rules, text: str) -> None:
    d = triage(rules, text)
    assert any(f.factor == "injury" for f in d.factors), d.factors


# (3) a deposit paid to a shop or dealer is consumer; one between people for a flat is a contract
def test_deposit_to_a_dealer_is_consumer_not_court(rules: Rules) -> None:
    d = triage(
        rules,
        "市民在家电卖场的门店交了两万元订金订购一套厨电，商家迟迟不发货也不退订金",
        source="110",
        parties=(("某某电器销售有限公司", "respondent"),),
    )
    assert d.dispute_type == "consumer"
    assert d.channel != "court"


def test_car_deposit_at_a_dealer_is_consumer(rules: Rules) -> None:
    d = triage(rules, "他在车行交了一万定金订车，车行说没货了却不肯退定金", source="12345")
    assert d.dispute_type == "consumer"


def test_flat_deposit_between_people_is_contract(rules: Rules) -> None:
    d = triage(rules, "王某向个人业主李某买二手房，付了三万定金，李某反悔不卖，定金也不退")
    assert d.dispute_type == "debt_contract"
    assert d.channel == "people"


# (4) a collision with no vehicle in it is not a traffic accident
def test_child_knocked_down_by_classmate_is_not_traffic(rules: Rules) -> None:
    d = triage(rules, "体育课上一个学生跑步时把同学撞倒，膝盖擦破了皮，家长找学校理论")
    assert d.dispute_type != "traffic"


def test_vehicle_collision_is_still_traffic(rules: Rules) -> None:
    assert triage(rules, "一辆面包车在村口把骑自行车的人撞倒了").dispute_type == "traffic"


# (5) a verbal quarrel between strangers with nothing underneath is public order
@pytest.mark.parametrize(
    "text",
    [
        "两位乘客在公交站为谁先上车发生争吵，未动手，民警到场劝离",
        "地铁站里两个陌生人因为碰了一下肩膀吵架，民警到场调解",
    ],
)
def test_stranger_quarrel_is_public_order(rules: Rules, text: str) -> None:
    d = triage(rules, text, source="110")
    assert d.dispute_type == "public_order"
    assert d.channel == "police"


def test_quarrel_over_an_underlying_dispute_keeps_that_type(rules: Rules) -> None:
    d = triage(rules, "楼上楼下因为漏水的事争吵，楼下要楼上赔天花板")
    assert d.dispute_type == "neighbour"
