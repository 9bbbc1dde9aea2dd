"""Two classes from the round-2 reports: 点火 (ignition) read as arson, and type slips where a
place or bystander word (小区, 物业, 业主群) or a family word outscores what the dispute is about.

Every wording here was written for this test; none is taken from a labelled set.
"""

from __future__ import annotations

import pytest

from services.triage.rules import Rules
from services.triage.signals import extract
from tests.unit.triage.conftest import triage

# lighting a stove, starting an engine, a lighter that will not catch: no danger
IGNITION_HARMLESS = [
    "灶台的旋钮得按住好一会儿才能点火，租的房子房东不肯换",
    "每天五点起来点火做饭，隔壁嫌我抽油烟机吵",
    "三轮车点火打不着，修车铺收了两百还没修好",
    "在超市买的打火机点火点不着，收银员说不退",
    "新装的热水器打开了也不点火，售后说要等三天",
    "工厂锅炉今天点火试运行，附近住户嫌烟大",
]

# fire set to a person, a house or a place; ignition beside petrol, gas or a threat
IGNITION_DANGER = [
    "那男的放话说再不赔钱，今晚就去点火烧他家的仓库",
    "她在村委会门口浇了一圈柴油，手里攥着打火机说谁过来就点火",
    "前夫站在她家门外说要点火，门口放着两个液化气罐",
    "老人拿着打火机说不给补偿就往自己身上点火",
    "他把燃气阀开着故意不点火，把自己关在厨房里",
]


@pytest.mark.parametrize("text", IGNITION_HARMLESS)
def test_ignition_of_a_stove_engine_or_lighter_is_no_danger(rules: Rules, text: str) -> None:
    sig = extract(text, None, (), 1, rules)
    assert sig.severity != "critical", sig.factors
    assert not any(f.factor == "extreme_threat" for f in sig.factors)


@pytest.mark.parametrize("text", IGNITION_DANGER)
def test_ignition_aimed_at_people_or_places_or_with_fuel_is_critical(
    rules: Rules, text: str
) -> None:
    sig = extract(text, None, (), 1, rules)
    assert sig.severity == "critical", sig.factors


@pytest.mark.parametrize("text", IGNITION_DANGER)
def test_ignition_threats_reach_the_police_first(rules: Rules, text: str) -> None:
    d = triage(rules, text, source="12345")
    assert d.severity == "critical"
    assert d.channel == "police"


# 物业 or the estate named only as the place, the chat group or the bystander who declines to
# help: the dispute is the fight, prank or damage (public order) or the neighbours' quarrel
PROPERTY_AS_BYSTANDER = [
    ("停在小区门口的电动车座椅被人用刀划了，物业说门外的不归他们管，想查是谁干的", "public_order"),
    ("小区里总有人凌晨往我家门上贴恶作剧纸条，物业说管不了，已经半个月了", "public_order"),
    ("小区里几个小青年晚上坐在花坛边对着下班的女业主吹口哨，想请派出所多来巡逻", "public_order"),
    ("【转自业主群】楼下两户为了漏水在楼道里吵起来了，谁有物业电话", "neighbour"),
    ("两户为楼道里堆的鞋柜吵了几次，网格员说明天请物业协调一下", "neighbour"),
]

# …while a dispute with the property company itself stays property management
PROPERTY_ITSELF = [
    "物业费一年涨了三百，小区业主不同意，物业说不交就停电梯",
    "小区电梯坏了一个月，找物业报修，物业说没钱修，业主们要求退物业费",
    "地下车库漏水泡了车，物业说不归他们管，业主要求物业公司赔偿",
]

# a village's or community's collective affairs, a school's own arrangements, residents'
# pension insurance: `other`, not a fight, a family, a company or a job
COLLECTIVE_AFFAIRS = [
    "村里重修宗祠，理事会按人头摊派三百块，我户口早迁走了，在群里跟他们吵了几句",
    "社区老年食堂饭钱从四块涨到六块，几个老人不服气在食堂跟管事的吵起来，没动手",
    "村文化礼堂同一天被两家人订了办酒席，村里登记搞错了，两家都不肯让",
    "老年协会活动室被会长锁了，说我们下棋太吵，我们交了会费的凭什么不让进",
    "我女儿个子高，班主任一直让她坐最后一排，她看不清黑板，跟班主任说了几次都不理",
    "我爸的城乡居民养老保险缴费年限少算了四年，每月少领一百多，跑了几趟说要补材料",
    "村里供水站水费从一块二涨到两块，好几户不愿意交，供水站说要停水",
]

# …while a fight or a threat stays public order, and a family or a workplace keeps its type
COLLECTIVE_NOT = [
    ("庙会上两伙人为了抢位置打起来，有一个头被打破了", "public_order"),
    ("两个摊贩为了抢摊位大打出手，一个被打得满脸是血", "public_order"),
    ("单位一直不给我交社保，干了三年了，老板说试用期不交", "labour"),
]


@pytest.mark.parametrize(("text", "expected"), PROPERTY_AS_BYSTANDER)
def test_property_management_named_as_a_bystander_does_not_decide_the_type(
    rules: Rules, text: str, expected: str
) -> None:
    assert triage(rules, text, source="12345").dispute_type == expected


@pytest.mark.parametrize("text", PROPERTY_ITSELF)
def test_a_dispute_with_the_property_company_stays_property_management(
    rules: Rules, text: str
) -> None:
    assert triage(rules, text, source="12345").dispute_type == "property_mgmt"


@pytest.mark.parametrize("text", COLLECTIVE_AFFAIRS)
def test_collective_affairs_schools_and_pensions_are_other(rules: Rules, text: str) -> None:
    d = triage(rules, text, source="12345")
    assert d.dispute_type == "other", [r.evidence for r in d.reasons]
    assert d.channel == "people"


@pytest.mark.parametrize(("text", "expected"), COLLECTIVE_NOT)
def test_a_fight_or_a_job_keeps_its_type_beside_the_collective_words(
    rules: Rules, text: str, expected: str
) -> None:
    assert triage(rules, text, source="12345").dispute_type == expected
