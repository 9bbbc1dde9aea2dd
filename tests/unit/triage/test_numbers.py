from __future__ import annotations

import pytest

from services.triage.numbers import (
    attached_age,
    find_ages,
    find_money,
    find_people_counts,
    find_repeat_count,
    parse_number,
)


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("十二万", 120_000),
        ("3.5万", 35_000),
        ("120000", 120_000),
        ("1.2万", 12_000),
        ("二十多", 20),
        ("上百", 100),
        ("30余", 30),
        ("几十", 30),
        ("两千", 2000),
        ("八千", 8000),
        ("五六十", 50),
        ("十几", 11),
        ("一万二", 12_000),
        ("三千五", 3500),
        ("两万三千", 23_000),
        ("二十五万", 250_000),
        ("十七", 17),
        ("百余", 100),
        ("2,000", 2000),
    ],
)
def test_parse_number(token: str, value: int) -> None:
    assert parse_number(token) == value


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("欠款3.5万元未还", 35_000),
        ("拖欠工资120000元", 120_000),
        ("借了两千块", 2000),
        ("损失八千元", 8000),
        ("借给他十二万", 120_000),
        ("一千多块的服装费", 1000),
        ("借了二十五万元，只还了三万元", 220_000),
    ],
)
def test_money(text: str, amount: int) -> None:
    assert find_money(text, None)[0] == amount


def test_money_per_person_needs_a_head_count() -> None:
    assert find_money("每人几百块", None)[0] is None
    people = max(q.value for q in find_people_counts("20名工人每人欠3000元"))
    assert find_money("20名工人每人欠3000元", people)[0] == 60_000


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("二十多名工人", 20),
        ("上百人聚集", 100),
        ("30余人", 30),
        ("几十人围堵", 30),
        ("五六十人", 50),
        ("其与另外十七名司机", 18),
        ("20户村民", 20),
    ],
)
def test_people(text: str, count: int) -> None:
    assert max(q.value for q in find_people_counts(text)) == count


def test_no_people_in_months_floors_or_ages() -> None:
    assert find_people_counts("拖了三个月，住在12楼，70岁") == []


def test_ages_and_repeats() -> None:
    assert [q.value for q in find_ages("70岁的大爷和三岁的孩子")] == [70, 3]
    repeat = find_repeat_count("这是本月第三次报警", ("报警",))
    assert repeat is not None and repeat.value == 3
    assert find_repeat_count("第二次手术后", ("报警",)) is None


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("月薪5000元，老板拖欠了三个月", 15_000),
        ("每月房租2500元，已经欠了5个月", 12_500),
        ("每月工资3000元", 3000),
        ("一个月工资4000元，欠了三个月", 12_000),
        ("拖欠其两个月工资共计9000元", 9000),
    ],
)
def test_monthly_sum_times_months_owed(text: str, amount: int) -> None:
    assert find_money(text, None)[0] == amount


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("借给同学二十五万元买房，对方至今只还了三万元", 220_000),
        ("借款12万元，已还5万元", 70_000),
        ("工程款32万元，已付20万，尚欠12万元", 120_000),
        ("借了10万，还欠3万元没还", 30_000),
    ],
)
def test_money_at_stake_after_repayments(text: str, amount: int) -> None:
    assert find_money(text, None)[0] == amount


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("工头还差我1w8没结", 18_000),
        ("一共花了2W，", 20_000),
        ("订金交了1.5w", 15_000),
        ("借了他1.5万，说好年底还", 15_000),  # decimals kept before 万 is applied
        ("欠我3万5，一直不还", 35_000),
        ("首付差两万五", 25_000),
        ("他借了一万一", 11_000),
    ],
)
def test_colloquial_ten_thousands(text: str, amount: int) -> None:
    assert find_money(text, None)[0] == amount


def test_watts_and_months_after_wan_are_not_money_digits() -> None:
    assert find_money("买的65W快充头坏了", None)[0] is None
    assert find_money("赔了3万2个月还没到账", None)[0] == 30_000


@pytest.mark.parametrize(
    ("text", "count"),
    [("百来号村民", 100), ("几十号人围着", 30), ("二十来号工人", 20)],
)
def test_people_counted_with_hao(text: str, count: int) -> None:
    assert max(q.value for q in find_people_counts(text)) == count


def test_house_numbers_are_not_people() -> None:
    assert find_people_counts("3号楼住户反映，五号楼住户也说") == []


def test_repeat_after_a_period_word() -> None:
    periods = ("这个月", "本周")
    repeat = find_repeat_count("两家这个月第三回吵了", (), periods=periods)
    assert repeat is not None and repeat.value == 3
    repeat = find_repeat_count("本周第二次了", (), periods=periods)
    assert repeat is not None and repeat.value == 2
    assert find_repeat_count("第二回合他输了", (), periods=periods) is None
    repeat = find_repeat_count("他第三次报到社区", ("报到",))
    assert repeat is not None and repeat.value == 3


@pytest.mark.parametrize(
    ("text", "word", "age"),
    [
        ("婆婆才58，身体好", "婆婆", 58),
        ("五十六岁的大爷", "大爷", 56),
        ("老人今年七十了", "老人", 70),
        ("奶奶3个孙子都在外地", "奶奶", None),
        ("大爷六十好几了", "大爷", None),
    ],
)
def test_age_attached_to_a_word(text: str, word: str, age: int | None) -> None:
    start = text.find(word)
    assert attached_age(text, start, start + len(word)) == age


def test_digits_with_a_vague_tail_are_a_lower_bound() -> None:
    from services.triage.numbers import find_people_counts, parse_number

    assert parse_number("30几") == 31
    assert [q.value for q in find_people_counts("门口有40几个村民")] == [41]
    # a count whose noun is left out before what the people do
    assert [q.value for q in find_people_counts("四十几个围住了大门")] == [41]


def test_people_counted_by_mouths() -> None:
    from services.triage.numbers import find_people_counts

    assert [q.value for q in find_people_counts("来了三十几口人")] == [31]
    assert [q.value for q in find_people_counts("亲戚四五十口子都来了")] == [40]
