"""The learned danger reader: features as the trainer counts them, scores, loading, and how
triage uses it (raise only below critical, always for review; a band that only queues)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sklearn.feature_extraction.text import CountVectorizer

from services.triage.domain import decide, input_from_report
from services.triage.learned import (
    NGRAM_MAX,
    DangerModel,
    char_ngrams,
    is_content_gram,
    load_danger_model,
)
from services.triage.rules import RulesError, load_rules
from services.triage.train import _fit, corpus_digest, corpus_files

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
RULES_DIR = Path(__file__).resolve().parents[3] / "services" / "triage" / "rules"


def toy(weights: dict[str, float], threshold: float = 0.5, review_from: float = 0.3) -> DangerModel:
    return DangerModel("toy", -2.0, weights, NGRAM_MAX, threshold, review_from)


@pytest.mark.parametrize("text", ["他说今晚  就让这房子亮堂", "ABC 汽油桶", "a", ""])
def test_features_are_the_trainers_features(text: str) -> None:
    vec = CountVectorizer(analyzer="char", ngram_range=(1, NGRAM_MAX), binary=True)
    if text.strip():
        vec.fit([text])
        assert char_ngrams(text, NGRAM_MAX) == set(vec.vocabulary_)
    else:
        assert char_ngrams(text, NGRAM_MAX) <= {" "}


def test_score_is_a_probability_with_the_strongest_cues() -> None:
    model = toy({"亮堂": 3.0, "今晚": 1.5, "房子": -0.5, "亮": 0.2})
    p, cues = model.score("钱不退，这房子今晚就亮堂了")
    assert 0.9 < p < 1.0
    assert cues == ("亮堂", "今晚")  # strongest first; single characters and negatives left out
    p_plain, cues_plain = model.score("邻居家空调外机噪音大")
    assert p_plain == pytest.approx(1 / (1 + 2.718281828**2), rel=1e-3)
    assert cues_plain == ()


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"version": "x", "weights": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a danger model"):
        load_danger_model(bad)
    rules = (RULES_DIR / "rules.yaml").read_text(encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    (tmp_path / "danger_model.json").write_text("{}", encoding="utf-8")
    with pytest.raises(RulesError, match="danger model"):
        load_rules(tmp_path / "rules.yaml")


def test_the_shipped_model_was_trained_on_the_corpus_as_it_is() -> None:
    shipped = json.loads((RULES_DIR / "danger_model.json").read_text(encoding="utf-8"))
    assert shipped["corpus_digest"] == corpus_digest(corpus_files()), (
        "services/triage/training changed: run `python -m services.triage.train`"
    )
    assert load_rules(None).danger is not None


def _decide(text: str, model: DangerModel | None, source: str = "grid"):  # type: ignore[no-untyped-def]
    rules = load_rules(None)
    rules.attach_danger_model(model)
    return decide(input_from_report({"source": source, "text": text}), rules, NOW)


def test_a_confident_model_raises_to_critical_for_review() -> None:
    text = "他说钱不退，这房子今晚就亮堂了"
    assert _decide(text, None).severity != "critical"
    d = _decide(text, toy({"亮堂": 4.0}))
    assert d.severity == "critical" and d.tier == "county" and d.channel == "police"
    assert [f.factor for f in d.factors if f.level == "critical"] == ["learned_danger"]
    assert "亮堂" in d.factors[-1].evidence
    assert d.review and any("亮堂" in c for c in d.review_cues)


def test_an_unsure_model_only_queues_for_review() -> None:
    text = "他说钱不退，这房子今晚就亮堂了"
    plain = _decide(text, None)
    d = _decide(text, toy({"亮堂": 1.5}))  # p ≈ 0.38: between review_from and threshold
    assert d.severity == plain.severity
    assert d.review and any("可能危险" in c for c in d.review_cues)
    quiet = _decide(text, toy({"亮堂": 0.5}))
    assert quiet.severity == plain.severity and quiet.review == plain.review


def test_what_the_grammar_finds_critical_stays_critical_with_its_own_reasons() -> None:
    text = "男子手持菜刀在村委会门口追砍他人，现在还在追"
    d = _decide(text, toy({"菜刀": -9.0}))
    assert d.severity == "critical"
    assert "learned_danger" not in [f.factor for f in d.factors]


def test_the_shipped_model_reads_danger_in_words_the_grammar_lacks() -> None:
    """Wordings invented for this test (not in any corpus or set), both ways."""
    rules = load_rules(None)
    model = rules.danger
    assert model is not None
    danger = [
        "讨薪的老汉把一壶柴油拎到了老板办公室，说今天就在这儿把账算清，谁也别想走",
        "他前妻讲孩子抚养费不给，她就抱着孩子从桥上下去，人已经站到栏杆边上",
    ]
    calm = [
        "小区业主反映物业费上涨，希望物业公开收支明细",
        "两家因为院墙边的排水沟堵了吵了几句，没动手",
    ]
    for text in danger:
        assert model.score(rules.compiled.normalise(text))[0] >= model.review_from, text
    for text in calm:
        assert model.score(rules.compiled.normalise(text))[0] < model.review_from, text


@pytest.mark.parametrize("gram", ["刀", "汽油", "把刀", "烧了", "拿着", "a", "11"])
def test_content_grams_are_weighed(gram: str) -> None:
    assert is_content_gram(gram)


@pytest.mark.parametrize("gram", ["把", "就", "我就", "还在", "那个", "，我", "。", " ", "了。"])
def test_grams_of_grammatical_words_only_are_not(gram: str) -> None:
    assert not is_content_gram(gram)


@pytest.mark.parametrize(
    "gram",
    ["派出", "派出所", "一名", "男子", "微信", "网格员", "请求", "接警员", "市民", "人称", "警员"],
)
def test_grams_of_the_reports_genre_are_not(gram: str) -> None:
    # how a report is filed (by whom, naming whom, by what channel) is no sign of danger
    assert not is_content_gram(gram)


def test_a_neutral_institutional_note_is_not_raised_by_the_shipped_model() -> None:
    # written for this test: a grid note naming the police station, a man and a chat app
    rules = load_rules(None)
    text = (
        "网格员上报：一名男子最近常在村口小卖部门口加路过妇女的微信，有人觉得不舒服，"
        "目前未发现其他出格行为，家属请求派出所提醒一下。"
    )
    d = _decide(text, rules.danger, source="grid")
    assert d.severity != "critical"
    assert "learned_danger" not in [f.factor for f in d.factors]


def test_the_trainer_weighs_no_gram_of_grammatical_words_only() -> None:
    texts = [
        "他把刀拿着就冲过来了",
        "我就想让他们把树剪一剪",
        "他把汽油拎着就来了",
        "我就是想问问",
    ] * 2
    vec, clf = _fit(texts, [True, False, True, False] * 2)
    assert "把刀" in vec.vocabulary_ and "汽油" in vec.vocabulary_
    assert not {"把", "就", "我就", "他把"} & set(vec.vocabulary_)
    assert len(clf.coef_[0]) == len(vec.vocabulary_)


# An upset caller who talks at length about a nuisance, in figures of anger, is not a danger;
# the same call with a threat in it is. Wordings written for this test (no corpus, no set).
RAMBLE = (
    "你听我说，我今年七十多了，说话啰嗦你别嫌。我们楼上那家天天半夜拖椅子，咚咚咚的，"
    "我找了物业三回，物业就是不管，我真是气得要死，肺都气炸了。我就想让他们晚上轻一点，"
    "这不过分吧？我跟我老伴说，这日子过得窝囊，可我也不想跟人家闹僵，就想有人出面说说。"
)
THREAT = "他再不管，我就拎桶汽油上去把他家门点了，大家都别想过好日子。"


def test_a_long_angry_call_without_danger_is_not_raised() -> None:
    d = _decide(RAMBLE, load_rules(None).danger, source="12345")
    assert d.severity != "critical"
    assert "learned_danger" not in [f.factor for f in d.factors]


def test_the_same_call_with_a_threat_is_critical() -> None:
    d = _decide(RAMBLE[:60] + THREAT + RAMBLE[60:], load_rules(None).danger, source="12345")
    assert d.severity == "critical"


@pytest.mark.parametrize(
    ("text", "critical"),
    [
        # a condition and a harm act: a threat
        ("工钱再不结，不然我就去他厂里跟他同归于尽", True),
        ("钱不退我就把他的店点了", True),
        # anger in figures of speech, a harm act denied, a lawful next step
        ("为了物业费的事我气得要死，天天睡不着", False),
        ("两家吵了几句，谁也没动手，也没拿东西", False),
        ("钱不退我就去法院起诉他", False),
    ],
)
def test_threat_against_hyperbole_and_complaint(text: str, critical: bool) -> None:
    d = _decide(text, load_rules(None).danger)
    assert (d.severity == "critical") is critical


def test_a_planned_crowd_is_not_raised_by_the_model_but_queued() -> None:
    sure = toy({"横幅": 6.0, "耗子药": 6.0})
    planned = _decide("四十多个工人约好后天一起去镇政府门口拉横幅讨薪", sure)
    assert planned.severity == "high"
    assert "learned_danger" not in [f.factor for f in planned.factors]
    assert any("计划中" in c for c in planned.review_cues)
    # the same crowd there now is critical by the grammar itself
    assert _decide("四十多个工人现在就在镇政府门口拉着横幅", sure).severity == "critical"
    # a plan with no crowd in it is read by the model as before
    alone = _decide("他说后天背着耗子药去镇政府门口讨个说法", sure)
    assert "learned_danger" in [f.factor for f in alone.factors]


@pytest.mark.parametrize(
    "text",
    [
        "他拿了汽油卡去加油站加油，被多扣了钱",
        "他买了农药给菜地打虫，药味飘进了邻居家",
        "我妈失眠，医生给她开了安眠药，一次只让吃半片",
    ],
)
def test_a_danger_object_in_its_ordinary_use_is_only_queued(text: str) -> None:
    """The model weighs the object's name (汽油, 农药); the grammar reads its ordinary use."""
    d = _decide(text, toy({"汽油": 4.0, "农药": 4.0, "安眠药": 4.0}))
    assert d.severity != "critical"
    assert d.review and any("日常用途" in c for c in d.review_cues)


@pytest.mark.parametrize(
    "text",
    [
        "他在加油站灌了一桶汽油，扬言晚上去老板家",
        "他拎着一桶汽油在厂门口转来转去",
        "她说安眠药已经吃了一把，让我们别找她",
    ],
)
def test_a_danger_object_out_of_its_ordinary_use_is_raised(text: str) -> None:
    d = _decide(text, toy({"汽油": 4.0, "安眠药": 4.0}))
    assert d.severity == "critical"
