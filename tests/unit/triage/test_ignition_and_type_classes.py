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
