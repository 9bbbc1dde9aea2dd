"""Colloquial, dialect and traditional-character wording: type and severity, one case per line.

Each line is written for its pattern (not taken from a labelled set).
"""

from __future__ import annotations

import pytest

from services.triage.rules import Rules

from .conftest import triage

TYPES = [
    # violence at home between family members, named as they are at home
    ("marriage_family", "我爸喝醉了在家里追着打我妈，邻居听到喊声"),
    # loud music of a square dance bothering residents is a neighbour matter
    ("neighbour", "空地上跳广场舞的音响开得震天响，晚上九点多还在放"),
    # shared drains, pipes and lighting of an estate are for the property company
    ("property_mgmt", "楼里的公共排水管堵了，污水从地漏冒出来，一直没人来修"),
    ("property_mgmt", "小區電梯壞了一個禮拜，物業一直拖著不修"),
    # a fight or a queue quarrel in a place is public order, not the place's type
    ("public_order", "两个小伙子在台球厅为抢球桌打了一架"),
    ("public_order", "在银行排队取钱时有人插队，两人吵起来要民警处理"),
    ("public_order", "两个年轻人在路边把一个学生打了一顿，学生已送到卫生院"),
    ("public_order", "上网时跟邻座的人打了一架，被网管拉开了"),
    ("public_order", "两个老头打牌时吵起来，推了几下就被人劝开了"),
    # customers quarrelling with staff over a bill are consumers
    ("consumer", "在酒吧喝酒，账单上多算了三百块，和服务员争起来"),
    # a school that vanishes with the fees is a consumer case, whoever is called 老板
    ("consumer", "健身房老板跑路了，会员们找不到人"),
    ("consumer", "舞蹈培训学校突然关门，老板跑路了，家长交的学费要不回来"),
    # working as staff still is labour
    ("labour", "在饭店当服务员，老板两个月没发工资"),
    # a rider or a livestock collision on the road is a traffic accident
    ("traffic", "送快递的小哥骑电动车在路口蹭到了一个老人，老人说腿疼"),
    ("traffic", "他骑摩托夜里回村，撞死了邻居家的一只羊，对方要赔两千"),
    # vendors or scavengers quarrelling over a spot or a pile of cardboard
    ("other", "两个卖水果的为抢路口那个摊位吵了半天，没动手"),
    ("other", "两个收废品的在超市门口为抢一堆纸板吵起来了"),
]

SEVERITY = [
    # money in colloquial forms
    ("medium", "工头还差我1w8没结，说过完年再说"),
    ("medium", "装修定金交了两万五，公司现在说不退"),
    ("medium", "借给表弟1.5万，说好半年还"),
    # crowds counted with 号
    ("critical", "百来号村民堵在镇政府门口要说法"),
    ("high", "几十号村民在村委会吵着要分红"),
    # repeat counts after a period word, without a report word
    ("high", "两家为院墙的事这个月第三回吵到社区了"),
    ("medium", "本周第二次了，楼上还是半夜拖凳子"),
    # injuries already done, in plain words
    ("high", "他被人推了一把，额头破了"),
    ("high", "小孩在游乐场摔了一跤，膝盖擦破了皮，家长找商家"),
    ("high", "吃了诊所配错的药，浑身过敏，住了五天院"),
    ("high", "两口子昨晚吵架，女的脸上青了一块"),
    # a stated age under 60 outweighs an elderly kinship word
    ("low", "婆婆今年才五十五，跟儿媳为做饭的事拌了几句嘴，婆婆说儿媳懒"),
    ("low", "56岁的大爷和邻居为晾衣服吵了几句"),
    ("medium", "走訪：他們82歲的老娘住在老房子裡，幾個子女為房子鬧翻了"),
    # a stone or brick aimed at a thing is damage to property, not a weapon
    ("low", "喝多了拿石头砸了邻居家的窗户，没伤到人"),
    ("critical", "他拿着砖头追着对方要砸"),
]


@pytest.mark.parametrize(("expected", "text"), TYPES)
def test_dialect_type(rules: Rules, expected: str, text: str) -> None:
    assert triage(rules, text).dispute_type == expected


@pytest.mark.parametrize(("expected", "text"), SEVERITY)
def test_dialect_severity(rules: Rules, expected: str, text: str) -> None:
    assert triage(rules, text).severity == expected


def test_traditional_text_reads_as_simplified(rules: Rules) -> None:
    decision = triage(rules, "鄰居家裝修噪音太大，這個月第二次報警了")
    assert decision.dispute_type == "neighbour"
    assert decision.severity == "medium"


def test_watts_are_not_money(rules: Rules) -> None:
    assert triage(rules, "网购的65W快充充电器用两天就坏了，商家不退").severity == "low"
