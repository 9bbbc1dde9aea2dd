"""The normalisation layer: each table and rewrite, with what it must leave alone.

Wordings are written for these tests (none are taken from a labelled set).
"""

from __future__ import annotations

import pytest

from services.triage.normalise import Normaliser, NormaliseSpec
from services.triage.rules import Rules
from services.triage.signals import _lexicon_hits

from .conftest import triage

CHANGED = [
    # full-width letters and digits fold to half-width; Chinese punctuation stays
    ("欠了３８００元，ＡＢ栋", "欠了3800元，AB栋"),
    # traditional characters
    ("鄰居拿著刀衝過來", "邻居拿著刀冲过来"),
    # Cantonese
    ("佢喺屋企揸住把菜刀", "他在家里拿着把菜刀"),
    ("佢哋冇嚟", "他们没有来"),
    ("嗰条友拎住铁通，而家仲喺度", "那条友拎着铁管，现在还在"),
    ("细路仔喺度喊", "孩子在喊"),
    # Southwest Mandarin
    ("娃娃在屋头哭", "孩子在家里哭"),
    ("莫得钱还", "没有钱还"),
    # Northeastern
    ("你嘎哈呢", "你干啥呢"),
    # Wu
    ("侬讲啥", "你讲啥"),
    # voice-to-text homophones
    ("物叶公司不管", "物业公司不管"),
    ("老板欠心三个月", "老板欠薪三个月"),
    # pinyin initials in field notes
    ("已告知sq和wy", "已告知社区和物业"),
    ("找了CWH调解", "找了村委会调解"),
    # context rewrites: Cantonese progressive, 搁 as 在, 撵 as chase, 抽起 a weapon
    ("两兄弟打紧交", "两兄弟正在打"),
    ("他正搁院子里骂", "他正在院子里骂"),
    ("搁门口堵着", "在门口堵着"),
    ("拿扫帚撵着他跑", "拿扫帚追着他跑"),
    ("抽起板凳要砸", "拿起板凳要砸"),
    ("拎起锄头就冲", "拎着锄头就冲"),
    # dialect words of the north, the southwest, Minnan and Cantonese notes
    ("两个后生在坝子里打捶", "两个后生在坝子里打架"),
    ("他堂客回娘家了", "他老婆回娘家了"),
    ("碎娃遭婆姨骂", "孩子遭老婆骂"),
    ("嘎查长去苏木开会", "村长去乡开会"),
    ("俩人撕巴起来", "俩人打架起来"),
    ("厝边的囝仔", "邻居的孩子"),
    ("两公婆冇出粮", "夫妻没有发工资"),
    # lg / lp in phone-typed notes are 老公 / 老婆
    ("lp说lg喝多了", "老婆说老公喝多了"),
    ("已告知SQ和Wy", "已告知社区和物业"),
    # a note typed word by word is joined: its spaces separate words, not clauses
    ("老周 说 不 赔 就 烧 了 他 的 店", "老周说不赔就烧了他的店"),
]

UNCHANGED = [
    # initials inside a longer Latin word or a code are not initials
    "网格WY12-03号楼",
    "busy",
    # 撵走 / 撵出去 is driving someone away, not chasing
    "把他撵走了",
    "被撵出去",
    # 紧 after a non-action word is "tight/urgent"
    "手头很紧",
    "时间紧张",
    # 搁 before an object is "put", not a place
    "把东西搁下",
    # initials inside a Latin word are not initials
    "blog里说的",
    # 起 after a verb with no weapon following is left alone
    "提起诉讼",
    # a letter that folds to an ASCII one only under Unicode case rules (long s, or Kelvin K)
    # is not an initial (they made the lookup fail: a report the consumer could never decide)
    "ſq说楼上漏水",
    # a note whose spaces end clauses keeps them
    "张家和李家为门前排水沟吵架 张家老二头上被划了个口子 流了不少血",
]


@pytest.mark.parametrize(("text", "expected"), CHANGED)
def test_normalises(rules: Rules, text: str, expected: str) -> None:
    assert rules.compiled.normalise(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_leaves_alone(rules: Rules, text: str) -> None:
    assert rules.compiled.normalise(text) == text


def test_spec_without_tables_only_folds_widths() -> None:
    n = Normaliser.build(None, {ord("車"): ord("车")})
    assert n("Ｗ車") == "W车"


def test_bad_rewrite_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="rewrites"):
        NormaliseSpec(rewrites={"([": "x"})


def test_initials_must_be_letters() -> None:
    with pytest.raises(ValueError, match="initials"):
        NormaliseSpec(initials={"s1": "x"})


def test_term_inside_another_word_does_not_count(rules: Rules) -> None:
    # 工人 straddles 施工|人员: no labour evidence; a real 工人 still counts
    assert "labour" not in _lexicon_hits("施工人员把路挖断了", rules, segmented=True)
    assert "labour" in _lexicon_hits("三个工人没拿到钱", rules, segmented=True)
    # a term at the start of a longer word still counts (物业 in 物业费)
    hits = _lexicon_hits("他家拖着物业费不交", rules, segmented=True)
    assert ("物业", 4.0) in hits["property_mgmt"]


def test_roadworks_crew_is_not_a_labour_case(rules: Rules) -> None:
    d = triage(rules, "施工人员在楼下挖路，挡住了我家车位，和楼下邻居吵起来")
    assert d.dispute_type != "labour"


def test_dialect_report_reads_like_standard(rules: Rules) -> None:
    std = triage(rules, "他拿着菜刀在家里追他老婆")
    dia = triage(rules, "佢揸住菜刀喺屋企撵佢老婆")
    assert (dia.dispute_type, dia.severity) == (std.dispute_type, std.severity)
    assert dia.severity == "critical"


def test_word_by_word_note_is_read_as_one(rules: Rules) -> None:
    d = triage(rules, "村民 王某 扬言 再 不 给 钱 就 去 跳 河")
    assert d.severity == "critical"
