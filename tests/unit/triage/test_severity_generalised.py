"""Severity and type wording generalised in round 10 (issue 10), each with its counter-case.

Wordings invented for these tests.
"""

from __future__ import annotations

import pytest

from services.triage.rules import Rules

from .conftest import triage

SEVERITY = [
    # a wound seen on the body is an injury; pain alone is not
    ("high", "他媳妇回娘家时胳膊上都是伤，说是男人打的"),
    ("low", "两车蹭了一下，司机下车说脖子有点不舒服"),
    # a bite is an injury, whoever bit
    ("high", "对门的狗把放学的孩子腿上咬破了，打了狂犬疫苗"),
    # harm that outlasts a treatment
    ("high", "做完胆囊手术后留下后遗症，吃饭就疼，医院说正常"),
    # a threat to give someone no peace is a revenge threat
    ("high", "分手后他天天打电话，说要让她不得安宁"),
    ("low", "楼上每晚跺脚，吵得我们全家不得安宁"),
    # northern farm tools in a quarrel are weapons
    ("critical", "两家为浇地吵起来，他拎着镢头站在地头骂"),
    # a blade taken to a tree is about the tree
    ("low", "他说那棵核桃树是他家的，扛着斧头去把树砍了"),
    # a gathering only agreed for tomorrow is many people, not yet a crowd
    ("high", "三十几个工友约好明天一起去劳动局门口拉横幅讨薪"),
    ("critical", "三十几个工友现在就在劳动局门口拉着横幅"),
    # head counts typed with digits and a vague tail
    ("critical", "镇政府门口现在聚了40几个人"),
    # a bump on the head (脑壳 is 头 in the Southwest), a mark of a needle
    ("high", "那家的娃儿推了我孙子，脑壳上鼓了个包"),
    ("high", "托管班阿姨用尺子打孩子，手上都是伤痕"),
    # Northeastern 削 while it goes on; not 削苹果
    ("critical", "她男的喝完酒正在屋里削她"),
    ("low", "邻居削苹果的时候把果皮扔到我家院里"),
    # Wu: 伊 is she after a verb, 面孔 is face
    ("high", "伊男人打伊，面孔都肿了"),
    # "make her whole family sorry"
    ("high", "前夫说要是不给钱就给她全家好看"),
    # crops "burned" by a chemical are a loss, not arson or a death
    ("medium", "用了他家卖的除草剂，三亩稻子全烧死了，损失一万多"),
    ("critical", "他说要是再不赔，就一把火烧了那家农资店"),
    # a reaction after a treatment that needed a hospital is harm done
    ("high", "在村卫生室输液后浑身起疹子、呼吸困难，转到县医院才缓过来"),
    ("medium", "在村卫生室输液后觉得头晕，休息一会儿好了，卫生室不退钱，她已经70岁了"),
    # a suicide attempt long ago, told as background, is not a danger now
    ("low", "她前年吃过安眠药，被救回来了，这次是来问离婚手续"),
    # 万把块 is about ten thousand yuan
    ("medium", "她借给同学万把块钱，同学一直拖着"),
    # "came again to report" is a second report
    ("medium", "前几天投诉过一回，今天又来投诉，隔壁烧烤店油烟太大"),
    # calling people in to deal with someone is a revenge threat
    ("high", "吵完架对方说要喊几个人来收拾他"),
    # a threat said in jest and cleared up is settled
    ("low", "两人喝酒时开玩笑说要弄死对方，被人报了警，到所里说清楚了是误会一场"),
]

TYPES = [
    # two relatives in a police record: a family quarrel
    ("marriage_family", "报警人称其父酒后与其兄争吵，将碗砸碎"),
    # one relative wronged by strangers: not a family case
    ("public_order", "报警人称三名男子在其水果摊拿了东西不给钱，还推搡其妻"),
    # taken to the clinic after a fight: not a medical dispute
    ("public_order", "两名醉汉在路边互殴，一人被抬到镇卫生院缝针"),
    # a fight between strangers at a restaurant table
    ("public_order", "在大排档和邻桌几个人起了冲突，对方掀了桌子"),
    # a knife attack among strangers names no other dispute
    ("public_order", "一名男子在车站门口持刀行凶"),
    # a fare, a renovation crew: the customer's side
    ("consumer", "和网约车司机为车费吵了起来，司机多收了二十块"),
    ("consumer", "装修队收了钱干了一半就不来了"),
    # a field ridge dug away is a land matter
    ("land", "他把我家的地埂挖掉了一截，说那是他的地"),
]


@pytest.mark.parametrize(("severity", "text"), SEVERITY)
def test_severity(rules: Rules, severity: str, text: str) -> None:
    d = triage(rules, text)
    assert d.severity == severity, d.factors


@pytest.mark.parametrize(("dispute_type", "text"), TYPES)
def test_type(rules: Rules, dispute_type: str, text: str) -> None:
    d = triage(rules, text, source="110")
    assert d.dispute_type == dispute_type, d.reasons[0]
