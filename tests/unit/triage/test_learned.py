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
    WINDOW_CHARS,
    DangerModel,
    char_ngrams,
    load_danger_model,
    windows,
)
from services.triage.rules import RulesError, load_rules
from services.triage.train import corpus_digest, corpus_files

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


def test_a_long_call_is_read_window_by_window() -> None:
    short = "他说钱不退就把店烧了。"
    assert windows(short) == [short]
    ramble = (
        "我今年七十三了，说话你别嫌我啰嗦。" * 4  # 68 characters: the threat starts a run
        + "他昨晚拎着一桶汽油站在我家门口。"
        + "我就想让村里来量一量。" * 6
    )
    runs = windows(ramble)
    assert all(len(r) <= 2 * WINDOW_CHARS for r in runs) and len(runs) > 3
    assert any("拎着一桶汽油" in r for r in runs)
    assert "".join(runs[: (len(runs) + 1) // 2]) == ramble  # the runs cover the text once
    model = toy({"汽油": 4.0, "啰嗦": -3.0})
    whole = model.score_window(ramble)[0]
    assert model.score(ramble)[0] > whole  # the buried threat is not diluted by the ramble
