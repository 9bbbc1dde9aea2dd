"""Chinese number and quantity parsing: amounts of money, head counts, ages, repeat counts.

Vague quantities resolve to a lower bound ("二十多" → 20, "上百" → 100, "十几" → 11),
except "几/数" standing for a digit, which takes ``vague_digit`` (default 3: "几十人" → 30).
The number vocabulary comes from the rules file (``numbers:``); DEFAULT_WORDS mirrors it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.triage.prefilter import required_chars

DEFAULT_DIGITS: dict[str, int] = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "两": 2, "贰": 2, "三": 3, "叁": 3,
    "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
DEFAULT_SMALL_UNITS: dict[str, int] = {
    "十": 10,
    "拾": 10,
    "百": 100,
    "佰": 100,
    "千": 1000,
    "仟": 1000,
}
DEFAULT_BIG_UNITS: dict[str, int] = {"万": 10_000, "亿": 100_000_000}
DEFAULT_PREFIXES: dict[str, int] = {"上百": 100, "上千": 1000, "上万": 10_000, "成百": 100}
# Quantifiers are bounded (no real sum or count is longer) so that a long run of digits or
# numerals is scanned in linear time instead of backtracking from every position.
_NUM = r"(?:\d{1,3}(?:,\d{3}){1,5}|\d{1,15})(?:\.\d{1,6})?"


@dataclass(frozen=True)
class NumberWords:
    """The Chinese number vocabulary (from the rules file) and the patterns built from it."""

    digits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_DIGITS))
    small_units: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SMALL_UNITS))
    big_units: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_BIG_UNITS))
    prefixes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PREFIXES))
    vague: str = "几数"  # stand for an unknown digit: "几十" → vague_digit x 10
    vague_digit: int = 3
    qty: str = field(init=False, repr=False)
    money_re: re.Pattern[str] = field(init=False, repr=False)
    people_re: re.Pattern[str] = field(init=False, repr=False)
    monthly_re: re.Pattern[str] = field(init=False, repr=False)
    months_re: re.Pattern[str] = field(init=False, repr=False)
    age_re: re.Pattern[str] = field(init=False, repr=False)
    age_before_re: re.Pattern[str] = field(init=False, repr=False)
    age_after_re: re.Pattern[str] = field(init=False, repr=False)
    repeat_re: re.Pattern[str] = field(init=False, repr=False)
    elder_age_re: re.Pattern[str] = field(init=False, repr=False)
    # per regex above, characters of which a text must hold one for it to match
    # (prefilter.required_chars: 元/块/万 for money, 岁 for an age…); None: always run it
    needs: dict[str, frozenset[str] | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cn = re.escape("".join([*self.digits, *self.small_units, *self.big_units, self.vague]))
        pre = "|".join(re.escape(p) for p in sorted(self.prefixes, key=len, reverse=True))
        qty = rf"(?:{pre}|好|近|约|大约)?(?:{_NUM}[{cn}]{{0,12}}|[{cn}]{{1,12}})(?:多|余|来)?"
        small = re.escape("".join(d for d, v in self.digits.items() if 2 <= v <= 9))
        ones = re.escape("".join(d for d, v in self.digits.items() if 1 <= v <= 9))
        built = {
            "qty": qty,
            "money_re": re.compile(
                rf"(?P<per>每人|人均|每户|每个人|每名|一人)?[^，。；！？,;]{{0,3}}?"
                rf"(?P<num>{qty})(?:(?:至|到|~|-|—)(?:{qty}))?"
                # "1w2" / "3万5" / "两万五" (no 元 after): 万 or w, then an optional thousands digit
                rf"(?P<unit>万元|万块|(?P<wan>万|(?<=\d)[wW](?=[\d{ones}元块多左右的，。；！？,.;!?\s]|$))"
                rf"(?:(?P<tail>[1-9{ones}])(?![\d个月年天次号人名岁]))?"
                rf"(?![人亩平斤公吨户名个株棵头只米次天年A-Za-z])|元|块钱"
                rf"|块(?![地砖石板头])|圆)"
            ),
            "people_re": re.compile(
                rf"(?P<other>另外|另|其他)?(?P<num>{qty})"
                r"(?:(?:名|位|户)|个(?=[\u4e00-\u9fff]{0,4}?[人工民主户属生客者员友长乡亲姓汉妇众])|(?=人)"
                # "四十几个围住了门口": a count whose noun is left out before what they do
                r"|个(?=[围堵聚冲闹涌赶坐站躺])"
                # "几十口人", "四五十口子": households counted by mouths
                r"|口(?=人|子)"
                # "百来号人", "几十号工人" (not "3号楼住户")
                r"|(?<![\d.])号(?=[\u4e00-\u9fff]?[人工民户属生客者员友长])"
                # "十三家供应商", "十二家住户": parties counted by households or firms
                r"|家(?=供应商|商户|住户|人家|农户|店铺|门店|业主|会员))"
            ),
            "monthly_re": re.compile(
                rf"(?:(?<![个\d{cn}])(?:月薪|月工资|每月工资|每个月工资|每月|每个月|月租)|一个月)"
                rf"[^，。；！？\d共计合总]{{0,4}}?(?P<num>{qty})(?:元|块钱|块)"
            ),
            "months_re": re.compile(
                rf"(?:拖欠|欠|欠了|拖了|共|已有|已经|累计)[^，。；！？\d]{{0,3}}?(?P<num>{qty})个?月"
            ),
            "age_re": re.compile(rf"(?P<num>{qty})(?:周)?岁"),
            # an age attached to a word for a person: "58岁的婆婆", "婆婆才58", "老人今年五十八了"
            "age_before_re": re.compile(rf"(?P<num>{qty})周?岁的?$"),
            "age_after_re": re.compile(
                rf"^(?:[妹仔娃哥姐]?[（(])?(?:今年|才|都|已经|已|也|刚满|刚|快|有|满)*(?P<num>{qty})"
                r"(?:周?岁|了|(?=[，。；！？,.;!?\s]|$))"
            ),
            "repeat_re": re.compile(
                rf"第(?P<num>{qty})(?:次|回|趟)|(?P<num2>[{small}十\d]{{1,8}})(?:次|回)"
                r"(?=报警|来电|投诉|反映|求助|举报|上报|警)"
                # a count after the act: 报了三次警, 这个月打了三次, 投诉过两回
                rf"|(?:报了|报过|打了|打过|反映了|反映过|投诉了|投诉过|举报过|来了)"
                rf"(?P<num3>[{small}十\d]{{1,8}})(?:次|回|趟)"
            ),
            # an old person's age said without 岁: 我今年六十七了, 我妈七十一了, 都七十多了
            "elder_age_re": re.compile(
                r"(?<![欠给花借还收要赔付交])(?<![欠给花借还收要赔付交]了)"
                rf"(?:今年|年纪|已经|都|快|我|他|她|妈|爸|伯|婆|爷|奶|叔|姨|公|头|太|个)\s?"
                rf"(?P<num>[{cn}]{{2,5}}|\d{{2}})(?:多|来)?了"
            ),
        }
        for name, value in built.items():
            object.__setattr__(self, name, value)
        needs = {
            name: required_chars(value.pattern)
            for name, value in built.items()
            if isinstance(value, re.Pattern)
        }
        object.__setattr__(self, "needs", needs)

    def may_match(self, name: str, text: str) -> bool:
        """False when the regex `name` cannot match in text (it lacks every character the regex
        needs): most reports state no sum, age or count, and a scan costs more than this."""
        needs = self.needs.get(name)
        return needs is None or any(ch in text for ch in needs)


DEFAULT_WORDS = NumberWords()


def parse_number(token: str, words: NumberWords = DEFAULT_WORDS) -> int | None:
    """Parse a quantity like "十二万", "3.5万", "二十多", "上百" to a lower-bound int."""
    s = token.strip().replace(",", "").replace("，", "")
    for word in ("大约", "约", "近", "好"):
        if s.startswith(word):
            s = s[len(word) :]
    s = s.rstrip("多余来")
    if not s:
        return None
    for prefix, value in words.prefixes.items():
        if s.startswith(prefix):
            rest = s[len(prefix) :]
            return value * (words.big_units.get(rest[:1], 1) if rest else 1)
    # "30几", "20来" typed with digits: the vague tail is a lower bound, like "三十几"
    m = re.fullmatch(r"(\d+)([" + re.escape(words.vague) + r"]+)", s)
    if m:
        return int(m.group(1)) + 1
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(.*)", s)
    if m:
        base = float(m.group(1))
        scale = _unit_scale(m.group(2), words)
        return None if scale is None else int(round(base * scale))
    return _parse_chinese(s, words)


def _unit_scale(units: str, words: NumberWords) -> int | None:
    """Multiply the units following Arabic digits ("万", "千", "百万")."""
    scale = 1
    for ch in units:
        if ch in words.small_units:
            scale *= words.small_units[ch]
        elif ch in words.big_units:
            scale *= words.big_units[ch]
        else:
            return None
    return scale


def _parse_chinese(s: str, words: NumberWords) -> int | None:
    digits, small_units, big_units = words.digits, words.small_units, words.big_units
    chars = _drop_reduplication(list(s), digits)
    total = 0
    section = 0
    number: int | None = None
    last_unit = 0
    for i, ch in enumerate(chars):
        if ch in digits:
            number = digits[ch]
        elif ch in words.vague:
            # "十几" → 十 + 1 (lower bound); "几十"/"几百" → vague_digit x unit
            number = 1 if i > 0 and chars[i - 1] in small_units else words.vague_digit
        elif ch in small_units:
            unit = small_units[ch]
            section += (1 if number is None else number) * unit
            number = None
            last_unit = unit
        elif ch in big_units:
            big = big_units[ch]
            section += number or 0
            total += (section or 1) * big
            section = 0
            number = None
            last_unit = big
        else:
            return None
    if number is not None:
        # colloquial "一万二" = 12000, "三千五" = 3500, "一百二" = 120
        prev = chars[-2] if len(chars) >= 2 else ""
        if last_unit >= 100 and (prev in small_units or prev in big_units):
            section += number * (last_unit // 10)
        else:
            section += number
    return total + section


def _drop_reduplication(chars: list[str], digits: dict[str, int]) -> list[str]:
    """ "五六十" → "五十", "三四万" → "三万": keep the lower of two adjacent digits."""
    out: list[str] = []
    for ch in chars:
        if out and ch in digits and out[-1] in digits and digits[ch] == digits[out[-1]] + 1:
            continue
        out.append(ch)
    return out


@dataclass(frozen=True)
class Quantity:
    """A number found in text with the words it came from."""

    value: int
    evidence: str


def find_people_counts(text: str, words: NumberWords = DEFAULT_WORDS) -> list[Quantity]:
    """Head counts: "二十多名工人", "30余人", "上百人", "十七名司机" (+1 for "另外")."""
    found: list[Quantity] = []
    if not words.may_match("people_re", text):
        return found
    for m in words.people_re.finditer(text):
        start = m.start("num")
        if start > 0 and text[start - 1] in "第每":
            continue
        value = parse_number(m.group("num"), words)
        if value is None or value <= 0:
            continue
        if m.group("other"):
            value += 1
        found.append(Quantity(value, text[m.start() : m.end() + 3]))
    return found


def find_money(
    text: str, people: int | None, words: NumberWords = DEFAULT_WORDS
) -> tuple[int | None, list[Quantity]]:
    """Total at stake in yuan: what is still owed when stated, else the largest sum less repayments.

    Per-person amounts count only with a known head count ("每人几百块" alone is unknown).
    """
    found: list[Quantity] = []
    owed: list[int] = []
    repaid: list[int] = []
    plain: list[int] = []
    sums = words.money_re.finditer(text) if words.may_match("money_re", text) else ()
    for m in sums:
        value = parse_number(m.group("num"), words)
        if value is None:
            continue
        num = m.group("num")
        if m.group("unit").startswith("万") or m.group("wan"):
            if re.fullmatch(_NUM, num):  # "1.5万" read before the decimals are rounded away
                value = int(round(float(num.replace(",", "")) * 10_000))
            elif not num.endswith("万"):
                value *= 10_000
            tail = m.group("tail")
            if tail:
                value += (int(tail) if tail.isdigit() else words.digits.get(tail, 0)) * 1000
        evidence = text[m.start("num") : m.end()]
        if m.group("per"):
            if people is None:
                continue
            value *= people
            evidence = f"{m.group(0)}×{people}人"
        found.append(Quantity(value, evidence))
        before = _clause_before(text, m.start("num"), 5)
        if REPAID_RE.search(before):
            repaid.append(value)
        elif OWED_RE.search(before):
            owed.append(value)
        else:
            plain.append(value)
    monthly = _monthly_total(text, words)
    if monthly is not None:
        found.append(monthly)
        plain.append(monthly.value)
    if owed:
        return max(owed), found
    if plain:
        top = max(plain)
        rest = top - sum(repaid)
        return (rest if rest > 0 else top), found
    return (max(repaid) if repaid else None), found


REPAID_RE = re.compile(
    r"(?:还了|已还|归还了|偿还了|还款了|已还款|退还了|退了|付了|支付了|已付)[^欠]*$"
)
OWED_RE = re.compile(r"(?:尚欠|还欠|仍欠|剩余|剩下|余款|下欠)[^，。；！？]*$")


def _clause_before(text: str, pos: int, width: int) -> str:
    """Up to width characters before pos, not crossing punctuation."""
    lo = pos
    while lo > max(0, pos - width) and text[lo - 1] not in _CLAUSE_STOPS:
        lo -= 1
    return text[lo:pos]


def _monthly_total(text: str, words: NumberWords) -> Quantity | None:
    """A monthly sum times the months owed: "月薪5000元，拖欠三个月" → 15000."""
    if not (words.may_match("monthly_re", text) and words.may_match("months_re", text)):
        return None
    per_month = words.monthly_re.search(text)
    months = words.months_re.search(text)
    if not per_month or not months:
        return None
    value = parse_number(per_month.group("num"), words)
    count = parse_number(months.group("num"), words)
    if value is None or count is None or not 0 < count < 120:
        return None
    return Quantity(value * count, f"{per_month.group(0)}×{months.group(0)}")


def find_ages(text: str, words: NumberWords = DEFAULT_WORDS) -> list[Quantity]:
    """Ages stated in years: "70岁", "三岁", "六七十岁"."""
    out: list[Quantity] = []
    if not words.may_match("age_re", text):
        return out
    for m in words.age_re.finditer(text):
        value = parse_number(m.group("num"), words)
        if value is not None and value < 130:
            out.append(Quantity(value, m.group(0)))
    return out


def find_elder_ages(text: str, words: NumberWords = DEFAULT_WORDS) -> list[Quantity]:
    """Old people's ages said without 岁 ("我今年六十七了", "我妈七十一了"): 60 to 110 only,
    so that a count or an amount ("欠了八千了") is not read as an age."""
    out: list[Quantity] = []
    if not words.may_match("elder_age_re", text):
        return out
    for m in words.elder_age_re.finditer(text):
        value = parse_number(m.group("num"), words)
        if value is not None and 60 <= value <= 110:
            out.append(Quantity(value, m.group(0)))
    return out


def attached_age(text: str, start: int, end: int, words: NumberWords = DEFAULT_WORDS) -> int | None:
    """The age stated right before or after the word at text[start:end], if any."""
    for m in (
        words.age_before_re.search(text[max(0, start - 8) : start]),
        words.age_after_re.search(text[end : end + 10]),
    ):
        if m:
            value = parse_number(m.group("num"), words)
            if value is not None and 0 < value < 130:
                return value
    return None


def find_repeat_count(
    text: str,
    report_words: tuple[str, ...],
    words: NumberWords = DEFAULT_WORDS,
    periods: tuple[str, ...] = (),
) -> Quantity | None:
    """How many times the same matter has been reported, from "第三次报警" or "三次来电".

    An ordinal right after a period word ("这个月第三回") counts without a report word.
    """
    best: Quantity | None = None
    if not words.may_match("repeat_re", text):
        return best
    for m in words.repeat_re.finditer(text):
        # the report word may sit in the clause or just before it ("报过一次了，这是第二次")
        around = text[max(0, m.start() - 15) : m.start()] + _clause(text, m.start(), m.end())
        just_before = _clause_before(text, m.start(), 8)
        if not any(w in around for w in report_words) and not (
            (m.group("num") or m.group("num3")) and any(p in just_before for p in periods)
        ):
            continue
        value = parse_number(m.group("num") or m.group("num2") or m.group("num3"), words)
        if value is not None and 1 < value < 50 and (best is None or value > best.value):
            best = Quantity(value, m.group(0))
    return best


_CLAUSE_STOPS = "，。；！？,;!?\n 　"


def _clause(text: str, start: int, end: int) -> str:
    """The clause (between punctuation marks) containing text[start:end]."""
    left = max(text.rfind(ch, 0, start) for ch in _CLAUSE_STOPS)
    rights = [i for i in (text.find(ch, end) for ch in _CLAUSE_STOPS) if i >= 0]
    return text[left + 1 : min(rights) if rights else len(text)]
