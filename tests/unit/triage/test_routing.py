from __future__ import annotations

from datetime import timedelta

import pytest

from services.triage.rules import Rules

from .conftest import NOW, triage


def test_r1_critical_goes_to_police_with_the_type_channel(rules: Rules) -> None:
    d = triage(rules, "三十多名农民工聚集在工地门口讨要工资，把路堵了")
    assert (d.dispute_type, d.severity, d.channel, d.rule_id) == (
        "labour",
        "critical",
        "police",
        "R1",
    )
    assert d.co_channels == ("labour",)
    assert d.tier == "county"


def test_r2_fight_reported_to_12345_goes_to_police(rules: Rules) -> None:
    d = triage(rules, "市民来电反映：其在烧烤摊被几名醉酒男子殴打，打伤了脸", source="12345")
    assert (d.dispute_type, d.channel, d.rule_id) == ("public_order", "police", "R2")


def test_r2_traffic(rules: Rules) -> None:
    d = triage(rules, "电动车与轿车剐蹭，双方为赔偿争执，没人受伤")
    assert (d.dispute_type, d.channel, d.rule_id, d.tier) == ("traffic", "police", "R2", "grid")


def test_r3_labour_before_source_110(rules: Rules) -> None:
    d = triage(rules, "报警人称老板拖欠其工资三千元", source="110")
    assert (d.dispute_type, d.channel, d.rule_id) == ("labour", "labour", "R3")


def test_r3_workers_against_property_company(rules: Rules) -> None:
    d = triage(rules, "物业公司的保安反映公司拖欠两个月工资")
    assert (d.dispute_type, d.channel) == ("labour", "labour")


def test_r4_medical(rules: Rules) -> None:
    d = triage(rules, "患者在诊所拔牙后感染，要求诊所赔偿")
    assert (d.dispute_type, d.channel, d.rule_id) == ("medical", "medical", "R4")


def test_r5_large_debt_goes_to_court(rules: Rules) -> None:
    d = triage(rules, "朋友借款15万元写了借条，到期不还")
    assert (d.dispute_type, d.channel, d.rule_id) == ("debt_contract", "court", "R5")


def test_r5_company_party_whatever_the_sum(rules: Rules) -> None:
    d = triage(
        rules,
        "其为对方加工零件，对方拖欠加工费3000元，多次催讨无果",
        source="12345",
        parties=[("张三", "applicant"), ("某某机械有限公司", "respondent")],
    )
    assert (d.dispute_type, d.channel, d.rule_id) == ("debt_contract", "court", "R5")


def test_small_private_debt_from_110_goes_to_police_then_people(rules: Rules) -> None:
    assert triage(rules, "朋友借了两千元不还", source="110").rule_id == "R6"
    d = triage(rules, "朋友借了两千元不还", source="grid")
    assert (d.channel, d.rule_id) == ("people", "R7")


def test_r6_and_r7_for_neighbours(rules: Rules) -> None:
    assert triage(rules, "楼上漏水，邻居不管", source="110").channel == "police"
    assert triage(rules, "楼上漏水，邻居不管", source="12345").channel == "people"


@pytest.mark.parametrize(
    ("severity_text", "tier"),
    [("楼上漏水", "grid"), ("楼上漏水，70岁老人", "town"), ("楼上漏水，老人摔伤", "town")],
)
def test_tier_by_severity(rules: Rules, severity_text: str, tier: str) -> None:
    assert triage(rules, severity_text).tier == tier


def test_returned_channel_is_skipped(rules: Rules) -> None:
    d = triage(rules, "老板拖欠工资", excluded_channels=frozenset({"labour"}), return_count=1)
    assert d.channel == "people"
    assert d.rule_id == "R7"
    assert d.tier == "grid"


def test_returned_critical_falls_to_next_rule(rules: Rules) -> None:
    d = triage(rules, "男子拿着菜刀在邻居门口叫骂", excluded_channels=frozenset({"police"}))
    assert d.channel == "people"
    assert "police" not in d.co_channels


def test_all_matching_channels_returned_falls_back_in_order(rules: Rules) -> None:
    d = triage(rules, "楼上漏水", source="110", excluded_channels=frozenset({"police", "people"}))
    assert (d.channel, d.rule_id) == ("court", "R8-fallback")
    d = triage(rules, "楼上漏水", excluded_channels=frozenset({"people"}))
    assert (d.channel, d.rule_id) == ("court", "R8-fallback")
    d = triage(rules, "楼上漏水", excluded_channels=frozenset({"people", "court", "police"}))
    assert d.channel == "people"


def test_returned_twice_goes_to_county_for_manual_assignment(rules: Rules) -> None:
    d = triage(rules, "楼上漏水", excluded_channels=frozenset({"people"}), return_count=2)
    assert d.tier == "county"
    assert d.rule_id == "R0-manual"


def test_deadlines(rules: Rules) -> None:
    low = triage(rules, "楼上漏水")
    assert low.sign_for_due == NOW + timedelta(hours=24)
    assert low.mediation_due == NOW + timedelta(days=30)
    crit = triage(rules, "男子拿着菜刀在邻居门口叫骂")
    assert crit.sign_for_due == NOW + timedelta(minutes=15)
    assert crit.mediation_due == NOW + timedelta(days=15)
    labour = triage(rules, "老板拖欠工资五千元")
    assert labour.sign_for_due == NOW + timedelta(hours=24)
    assert labour.mediation_due == NOW + timedelta(days=15)
    medium = triage(rules, "物业费纠纷，涉及两万元")
    assert medium.sign_for_due == NOW + timedelta(hours=4)
    deadlines = crit.to_dict()["deadlines"]
    assert deadlines["sign_for_minutes"] == 15 and deadlines["mediation_days"] == 15


def test_to_dict_carries_reasons_for_every_step(rules: Rules) -> None:
    d = triage(rules, "包工头拖欠12名农民工工资").to_dict()
    kinds = {r["kind"] for r in d["reasons"]}
    assert {"type", "severity", "channel", "tier", "deadline"} <= kinds
    assert d["rules_version"] == rules.version
    assert isinstance(d["co_channels"], list)


def test_firm_against_firm_over_goods_is_a_contract_for_court(rules: Rules) -> None:
    d = triage(
        rules,
        "其公司向另一家建材公司采购了一批瓷砖，质量不合格，对方拒绝退货退款，货款12万元",
        source="12345",
    )
    assert (d.dispute_type, d.channel, d.rule_id) == ("debt_contract", "court", "R5")


def test_a_workplace_named_in_passing_is_not_a_company_party(rules: Rules) -> None:
    d = triage(rules, "其在某公司上班的朋友向其借款5000元，至今不还", source="12345")
    assert (d.dispute_type, d.channel, d.rule_id) == ("debt_contract", "people", "R7")


def test_a_company_named_in_the_text_as_debtor_counts(rules: Rules) -> None:
    d = triage(rules, "某广告有限公司拖欠其印刷费3500元，多次催讨无果", source="12345")
    assert (d.dispute_type, d.channel, d.rule_id) == ("debt_contract", "court", "R5")


def test_a_fight_over_a_neighbour_dispute_is_neighbour(rules: Rules) -> None:
    d = triage(rules, "张家和李家为门前排水沟干仗，张家老二头上被打了个口子，流了不少血")
    assert (d.dispute_type, d.severity, d.channel) == ("neighbour", "high", "people")


def test_a_fight_with_no_dispute_underneath_is_public_order(rules: Rules) -> None:
    d = triage(rules, "两名男子在网吧因琐事打架，一人被打伤")
    assert (d.dispute_type, d.channel, d.rule_id) == ("public_order", "police", "R2")
