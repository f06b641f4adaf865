"""What a question asks for, and spans of that kind in a sentence.

Rules, not a model: the kinds are few (date, number, amount, person, place, designation, name)
and their surface forms in reports on arms and diplomacy are regular. Each extractor returns
spans with offsets into the sentence, so a short answer is always an exact substring.
"""

from __future__ import annotations

import dataclasses
import re

DATE, NUMBER, MONEY, PERSON, PLACE, DESIGNATION, NAME, REASON, OTHER = (
    "date", "number", "money", "person", "place", "designation", "name", "reason", "other",
)
# Kinds whose span is itself a short answer; a reason is a whole clause.
SHORT_KINDS = frozenset({DATE, NUMBER, MONEY, PERSON, PLACE, DESIGNATION, NAME})
_REASON = re.compile(
    r"\b(?:because(?: of)?|due to|owing to|as a result(?: of)?|caused by|the reason|"
    r"(?:official|real) reason|in order to|so that|led to|thanks to)\b",
    re.I,
)

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan\.|Feb\.|Mar\.|Apr\.|Aug\.|Sept?\.|Oct\.|Nov\.|Dec\.)"
)
_DASH = r"\s*[–—-]\s*"
_YEAR = r"(?:1[6-9]\d\d|20\d\d)"
_DAY_DATE = rf"{_MONTH}\s+\d{{1,2}},?\s+{_YEAR}"
_MONTH_DATE = rf"{_MONTH}(?:{_DASH}{_MONTH})?\s+{_YEAR}"
_DATE_PATTERNS = [
    re.compile(rf"{_DAY_DATE}(?:{_DASH}{_DAY_DATE})?"),
    re.compile(_MONTH_DATE),
    re.compile(rf"\b{_YEAR}s?(?:{_DASH}(?:{_YEAR}|\d\d)s?)\b"),
    re.compile(rf"\b(?:early|mid|late)[- ]{_YEAR}s\b", re.I),
    re.compile(rf"\b{_YEAR}s?\b"),
]
_SCALE = r"(?:thousand|million|billion|trillion)"
_MONEY = re.compile(
    rf"(?:(?:approximately|about|nearly|almost|around|over|under|well under|more than|less than|"
    rf"close to|some)\s+)?[$€£¥]\s?\d[\d,.]*(?:{_DASH}\d[\d,.]*)?(?:\s*{_SCALE})?"
    rf"|\b\d[\d,.]*(?:{_DASH}\d[\d,.]*)?\s*{_SCALE}?\s*(?:dollars|rubles|roubles|yuan|euros|USD)\b",
    re.I,
)
_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred hundreds thousand thousands dozen dozens several"
).split()
_NUMBER = re.compile(
    r"\b\d[\d,]*(?:\.\d+)?(?:-plus|\+)?(?:\s*(?:percent|per cent|%))?"
    rf"(?:\s+{_SCALE})?|\b(?:{'|'.join(_NUMBER_WORDS)})\b",
    re.I,
)
_DESIGNATION = re.compile(
    r"\b(?:Project\s+\d+[A-Z]?"
    r"|[A-Z][A-Za-z]{0,5}-\d+[A-Za-z0-9]*(?:/[A-Z]{1,3}\b)?"
    r"|\d{2,4}[A-Z]{1,3}\b"
    r"|[A-Z][a-z]+-[A-Z]\b)"
)
_QUOTED = re.compile(r"[“\"]([^”\"]{3,80}?)[.,]?[”\"]")
_CAP_WORD = r"(?:[A-Z][a-z’'A-Z]+|[A-Z]{2,}|[A-Z]\.)"
_CAP_PHRASE = re.compile(
    rf"{_CAP_WORD}(?:[ -](?:(?:of|for|and|the|de|on|in)\s+)*{_CAP_WORD})*(?:\s+\([A-Z]{{2,}}\))?"
)
# Capitalised words that start no person's name in these texts.
_NOT_PERSON = frozenset(
    """russia russian russians china chinese soviet soviets union ussr prc federal service ministry
    commission military cooperation treaty organization republic president minister prime vice
    defense defence deputy director head chairman general premier leader the a in on at by for
    of and but however during after before since this that these those it its there state
    states council duma congress national people's peoples team centre center agency company
    corporation airshow air force army navy committee summary feature backgrounder shanghai
    sino united american western january february march april may june july august september
    october november december interfax sukhoi mig rostec rosoboronexport avic kilo sam joint
    statement relations olympic games winter beijing moscow ukraine india algeria vietnam
    venezuela uzbekistan ulyanovsk shenyang zhuhai asian international strategic partnership
    """.split()
)
_ROLE_BEFORE = re.compile(
    r"(?:President|Minister|leader|head|director|chairman|Premier|by|author|wrote|said|stated)\s+$"
)


@dataclasses.dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int
    text: str


def question_kind(question: str) -> str:
    """The kind of thing a question asks for."""
    q = question.lower().strip()
    if re.match(r"\s*why\b|.*\bfor what reason\b|.*\bwhat (?:caused|was the reason)\b", q):
        return REASON
    if re.search(r"\bwhat (?:percentage|share|proportion|fraction|part)\b|\bhow many percent\b", q):
        return NUMBER
    money_words = r"worth|value|cost|price|budget|gdp|revenue|income|spend|paid|pay|amount"
    if re.search(r"\bhow much\b", q) or re.search(
        rf"\b(?:what|which)\b[^?]*\b(?:{money_words})\b", q
    ):
        if re.search(r"\bhow much\b", q) or re.search(rf"\b(?:{money_words})\b", q):
            return MONEY
    if re.search(r"\bhow (?:many|big|large|far|heavy|strong)\b|\bwhat (?:number|size)\b", q):
        return NUMBER
    if re.search(
        r"\bwhen\b|\bwhat (?:year|years|date|month|period|decade)\b|\bwhich (?:year|years|date|"
        r"month|period|decade)\b|\bsince when\b|\bhow long ago\b|\bduring (?:what|which)\b",
        q,
    ):
        return DATE
    if re.match(r"\s*who (?:is|was|are|were) (?!the\b|a\b|an\b)", q) and re.match(
        r"\s*\S+ \S+ [A-Z]", question.strip()
    ):
        return OTHER  # "Who is Xi Jinping?" asks about a person, not for one
    if re.search(r"\bwho(?:m|se)?\b", q):
        return PERSON
    if re.search(
        r"\bwhere\b|\b(?:which|what) (?:city|country|countries|place|region|town|plant|factory|"
        r"company|organi[sz]ation|institution)\b", q
    ):
        return PLACE if not re.search(r"organi[sz]ation|institution|company", q) else NAME
    if re.search(
        r"\b(?:which|what)\b(?: [\w-]+){0,2} (?:engines?|fighters?|aircraft|missiles?|systems?|"
        r"sams?|destroyers?|submarines?|helicopters?|tanks?|bombers?|trainers?|weapons?|jets?|"
        r"transports?|designs?|models?|versions?|platforms?|planes?|ships?|vessels?|variants?|"
        r"turbofans?|shells?)\b",
        q,
    ):
        return DESIGNATION
    if re.search(
        r"\bwhat (?:was|is) the name\b|\bwhat (?:was|is) .* called\b|"
        r"\bwhat (?:was|is|were|are) the\b(?: [\w-]+){0,4} (?:treaty|agreement|organi[sz]ation|"
        r"exercise|document|statement|partnership|memorandum|commission|mission|project|"
        r"programm?e?|company|corporation)\??$|\b(?:which|what)(?: [\w-]+)? (?:treaty|"
        r"agreement|organi[sz]ation|exercise|document|statement|partnership|memorandum|"
        r"commission|name)\b",
        q,
    ):
        return NAME
    return OTHER


def spans(kind: str, sentence: str) -> list[Span]:
    """Spans of `kind` in `sentence`, longest first where they overlap."""
    if kind == DATE:
        found = _non_overlapping(sentence, _DATE_PATTERNS, DATE)
    elif kind == MONEY:
        found = _non_overlapping(sentence, [_MONEY], MONEY)
    elif kind == NUMBER:
        found = _numbers(sentence)
    elif kind == DESIGNATION:
        found = _non_overlapping(sentence, [_DESIGNATION], DESIGNATION)
    elif kind == PERSON:
        found = _people(sentence)
    elif kind == PLACE:
        found = _places(sentence)
    elif kind == NAME:
        found = _names(sentence)
    elif kind == REASON:
        found = _non_overlapping(sentence, [_REASON], REASON)
    else:
        found = []
    return sorted(found, key=lambda s: s.start)


def _non_overlapping(text: str, patterns: list[re.Pattern[str]], kind: str) -> list[Span]:
    taken: list[Span] = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            value = m.group(0).strip().rstrip(".,")
            start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
            end = start + len(value)
            if value and not any(s.start < end and start < s.end for s in taken):
                taken.append(Span(kind, start, end, text[start:end]))
    return taken


def _numbers(text: str) -> list[Span]:
    money = _non_overlapping(text, [_MONEY], MONEY)
    dates = _non_overlapping(text, _DATE_PATTERNS[:2], DATE)
    designations = _non_overlapping(text, [_DESIGNATION], DESIGNATION)
    blocked = money + dates + designations
    out = []
    for m in _NUMBER.finditer(text):
        start, end = m.start(), m.end()
        value = text[start:end].rstrip(".,")
        end = start + len(value)
        if any(b.start <= start < b.end for b in blocked):
            continue
        # "30-mm", "120-mm", "Su-27" are parts of names, not counts.
        if end < len(text) and text[end] == "-" and not value.endswith("plus"):
            continue
        if start > 0 and text[start - 1] in "-/":
            continue
        out.append(Span(NUMBER, start, end, value))
    return out + [Span(NUMBER, s.start, s.end, s.text) for s in money]


def _people(text: str) -> list[Span]:
    out = []
    for m in _CAP_PHRASE.finditer(text):
        words = m.group(0).split()
        # Drop leading role or place words: "Russian Vice Prime Minister Dmitry Rogozin".
        while words and words[0].lower().strip("’'s") in _NOT_PERSON:
            words = words[1:]
        if len(words) > 3:
            # A name closes a run of capitals: "… Current State and Prospects Vasily KASHIN".
            words = [w for w in words if w not in ("and", "of", "for", "the", "on", "in", "de")]
            words = words[-2:]
        if not 2 <= len(words) <= 3:
            continue
        if any(w.lower() in _NOT_PERSON or not w[0].isupper() for w in words):
            continue
        if any(ch.isdigit() for ch in "".join(words)):
            continue
        value = " ".join(words)
        start = text.find(value, m.start())
        if start < 0 or text[max(0, start - 1):start] in ("“", '"', "‘"):
            continue  # a quoted title ("New Era") is not a person
        out.append(Span(PERSON, start, start + len(value), value))
    return out


def _places(text: str) -> list[Span]:
    out = []
    pattern = re.compile(rf"\b(?:in|at|to|from|near|of)\s+(?:the\s+)?({_CAP_PHRASE.pattern})")
    for m in pattern.finditer(text):
        value = m.group(1).rstrip(".,")
        start = m.start(1)
        out.append(Span(PLACE, start, start + len(value), value))
    return out


def _names(text: str) -> list[Span]:
    out = []
    for m in _QUOTED.finditer(text):
        if m.group(1)[:1].isupper():
            out.append(Span(NAME, m.start(1), m.start(1) + len(m.group(1)), m.group(1)))
    if out:
        return out  # a name in quotes ("Peace Mission 2005") is the one the text gives
    for m in _CAP_PHRASE.finditer(text):
        value = m.group(0).rstrip(".,")
        words = value.split()
        if len(words) < 2 or (m.start() == 0 and len(words) < 3):
            continue
        if all(w.lower().strip("’'s") in _NOT_PERSON for w in words):
            continue  # "China and Russia" names the countries, not a thing
        out.append(Span(NAME, m.start(), m.start() + len(value), value))
    return out


_PERIOD_QUESTION = re.compile(
    r"\b(?:period|how long|which years|what years|between which|from when|span)\b", re.I
)


def wants_period(question: str) -> bool:
    return _PERIOD_QUESTION.search(question) is not None


def wants_share(question: str) -> bool:
    return re.search(r"\b(?:percent|percentage|share|proportion|fraction)\b", question, re.I) is not None


@dataclasses.dataclass(frozen=True)
class Wanted:
    """What a question asks for: its kind, and whether a span (a range for "which period",
    a percentage for "what share") answers it better than another of that kind."""

    kind: str
    period: bool = False
    share: bool = False


def wanted(question: str) -> Wanted:
    return Wanted(question_kind(question), wants_period(question), wants_share(question))


def specificity(span: Span, want: Wanted | None = None) -> float:
    """How precisely a span answers: a full date beats a month, a month a year, a year a decade.

    For a question about a period, a range is the precise answer.
    """
    if span.kind == REASON:
        # A reason is often given without a marker; a marker is a hint, not the answer.
        return 0.5 if re.match(r"because|due|owing|caused|the reason|official|real", span.text,
                               re.I) else 0.3
    if span.kind == NUMBER and re.fullmatch(rf"{_YEAR}", span.text):
        return 0.3  # a year is rarely the count asked for
    period = want.period if want else False
    if span.kind == NUMBER and want is not None and want.share:
        return 1.0 if re.search(r"percent|%", span.text) else 0.5
    if span.kind != DATE:
        return 1.0
    text = span.text
    is_range = re.search(r"\d\s*[–—-]\s*(?:[A-Z]|\d)", text) is not None
    if period:
        return 1.0 if is_range else 0.6
    if re.search(r"\d{1,2},?\s+\d{4}", text) and re.match(_MONTH, text):
        return 1.0
    if re.match(_MONTH, text):
        return 0.9
    if is_range:
        return 0.9
    if re.fullmatch(r"\d{4}", text):
        return 0.8
    return 0.5


def refines(precise: str, rough: str) -> bool:
    """Does `precise` say all `rough` says, and more ("October 2, 1949" ⊃ "October 1949")?"""
    a = set(re.findall(r"[a-z0-9]+", precise.lower()))
    b = set(re.findall(r"[a-z0-9]+", rough.lower()))
    return b < a
