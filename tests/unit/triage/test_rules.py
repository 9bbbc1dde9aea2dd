from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from services.triage.rules import DEFAULT_RULES_PATH, RulesError, RulesStore, load_rules


def _write(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    mutate(data)  # type: ignore[operator]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_packaged_rules_load() -> None:
    rules = load_rules()
    assert rules.version
    assert [r.id for r in rules.routing] == ["R1", "R2", "R3", "R4", "R5", "R6", "R7"]


def test_missing_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d.pop("thresholds"))
    with pytest.raises(RulesError, match="thresholds"):
        load_rules(path)


def test_bad_channel_is_named_with_its_path(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["routing"][2].update(channel="mayor"))
    with pytest.raises(RulesError, match=r"routing\.2\.channel"):
        load_rules(path)


def test_bad_regex_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["severity_factors"][0]["patterns"].append("(unclosed"))
    with pytest.raises(RulesError, match=r"severity_factors\.0.*regex"):
        load_rules(path)


def test_incomplete_deadlines(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["deadlines"]["sign_for_minutes"].pop("high"))
    with pytest.raises(RulesError, match="sign_for_minutes"):
        load_rules(path)


def test_unknown_key_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d.update(colour="red"))
    with pytest.raises(RulesError, match="colour"):
        load_rules(path)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(RulesError, match="invalid YAML"):
        load_rules(bad)
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml")
    top = tmp_path / "list.yaml"
    top.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(RulesError, match="mapping"):
        load_rules(top)


def test_store_reloads_and_keeps_old_rules_on_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    shutil.copy(DEFAULT_RULES_PATH, path)
    store = RulesStore(path)
    old = store.version
    text = path.read_text(encoding="utf-8").replace(f'version: "{old}"', 'version: "9999.1"')
    path.write_text(text, encoding="utf-8")
    assert store.reload().version == "9999.1"
    assert store.current.version == "9999.1"
    path.write_text("version: [broken", encoding="utf-8")
    with pytest.raises(RulesError):
        store.reload()
    assert store.current.version == "9999.1"


def test_reload_changes_decisions_without_code_change(tmp_path: Path) -> None:
    from .conftest import triage

    path = _write(tmp_path, lambda d: d["thresholds"].update(money_medium_yuan=1000))
    store = RulesStore(DEFAULT_RULES_PATH)
    assert triage(store.current, "邻居借了三千元不还").severity == "low"
    assert triage(load_rules(path), "邻居借了三千元不还").severity == "medium"


def test_number_words_come_from_the_rules_file(tmp_path: Path) -> None:
    from .conftest import triage

    text = "几十名村民聚集在村委会门口"
    assert triage(load_rules(), text).severity == "critical"  # 几十 → 30 by default
    path = _write(tmp_path, lambda d: d["thresholds"].update(vague_digit=2))
    rules = load_rules(path)
    rules.attach_danger_model(None)  # the number words alone: a crowd of 20 is high
    assert triage(rules, text).severity == "high"  # 几十 → 20


def test_missing_number_words_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["numbers"].pop("digits"))
    with pytest.raises(RulesError, match=r"numbers\.digits"):
        load_rules(path)


def test_bad_vulnerable_regex_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["vulnerable"]["minor"].append("re:(unclosed"))
    with pytest.raises(RulesError, match=r"vulnerable.*minor.*regex"):
        load_rules(path)


def test_other_anchors_come_from_the_rules_file(tmp_path: Path) -> None:
    from .conftest import triage

    text = "他家低保被取消了，跑到对面的镇政府门口吵"
    assert triage(load_rules(), text).dispute_type == "other"
    path = _write(tmp_path, lambda d: d.pop("other_anchors"))
    assert triage(load_rules(path), text).dispute_type == "neighbour"  # 对面 alone


def test_traffic_needs_a_collision_word_from_the_rules_file(tmp_path: Path) -> None:
    from .conftest import triage

    text = "村民家的三轮车和摩托车都不见了"
    assert triage(load_rules(), text).dispute_type != "traffic"
    path = _write(tmp_path, lambda d: d["dispute_types"]["traffic"].pop("requires_any"))
    assert triage(load_rules(path), text).dispute_type == "traffic"


def test_traditional_pairs_must_be_two_characters(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["traditional"].update(pairs="車车 見"))
    with pytest.raises(RulesError, match="traditional"):
        load_rules(path)


def test_traditional_table_maps_each_character() -> None:
    table = load_rules().compiled.simplify
    assert "物業費漲了".translate(table) == "物业费涨了"
    assert "82歲".translate(table) == "82岁"
