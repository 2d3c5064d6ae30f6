"""Math answers without sympy: find the final answer in a response, and decide equivalence exactly.

Used by common/reward_functions.py; the self-check there covers this module too:

    python common/reward_functions.py

What it offers:

- ``extract_answer(text, strict_boxed=False) -> Answer``: the final answer of a response, looked
  for in this order: the last ``\\boxed{}`` (several boxes joined by "and", "or" or commas form a
  set; a "Final Answer: ... is X" sentence after the last box wins over it, as in math-verify),
  else the last ``<answer>`` tag, else the last final-answer phrase ("The final answer is",
  "Answer:", "####"), else the last LaTeX span or number. ``strict_boxed=True`` keeps the box only.
- ``find_boxes(text)``: the contents of the last run of ``\\boxed{}``/``\\fbox{}``, in order.
- ``numbers(text)``: every number a reader would see in ``text`` ("-1,234.5", "1 000", "2,74",
  "3/4", "12\\%").
- ``decimal_comma(answer)``: "2,74" read as 2.74 (used only against one plain number).
- ``canonical(answer)``: an exact form of the answer, or None when it is outside the grammar below.
- ``compare(pred, gold) -> bool | None``: True/False when the exact forms decide it the way
  math-verify would, None to leave it to math-verify.
- ``SCAN_CHARS``, ``MAX_ANSWER_CHARS``: the input caps (why: see below).

The exact forms. A number is ``q * sqrt(m) * pi^k`` with ``q`` an exact fraction, ``m`` a
square-free integer and ``k`` an integer, read from integers with thousands separators, decimals,
``\\frac``/``\\dfrac``/``\\tfrac``, ``a/b``, mixed numbers (``2\\frac{1}{2}``), ``c\\sqrt{s}``,
multiples and powers of pi, integer powers (``2^{10}``), ``\\times``/``\\cdot`` products, a sign,
and a trailing percent sign, degree sign or ``\\text{unit}``. On top of numbers: ``x = a``, sets
``\\{a, b\\}`` and bare comma lists (sets, as math-verify reads them), tuples, intervals with
infinities, and unions of disjoint intervals.

``compare`` answers only when math-verify's own rules give the same verdict (checked against
math-verify 0.9.0 pair by pair in tests/common/test_reward_functions.py and
benchmarks/bench_reward.py): exact values compare exactly; when a decimal is involved
math-verify rounds both sides to 6 decimals (an integer against a decimal must be exactly equal),
so values near a rounding tie, decimals beyond 15 significant digits, and magnitudes past 1e9
are left to it. Everything else (symbols, matrices, mixed kinds such as a set against an
interval) returns None.

Every function here is linear in its input and never raises on a string: no regex with nested
quantifiers, no recursion on braces, no ``int()`` on more than ``_MAX_DIGITS`` digits (Python
refuses to convert past 4,300 digits).
"""

import math
import re
from fractions import Fraction
from typing import NamedTuple

__all__ = [
    "MAX_ANSWER_CHARS",
    "PLAIN_NUMBER_RE",
    "SCAN_CHARS",
    "Answer",
    "canonical",
    "compare",
    "decimal_comma",
    "extract_answer",
    "find_boxes",
    "numbers",
]

# Answers sit in the last few hundred characters of every response layout we know; 16 KB
# (about 4,000 tokens) also holds a long <answer> block, and keeps a scan of a 1 MB response
# at ~0.1 ms. A box that starts before the last 16 KB is not seen.
SCAN_CHARS = 16_384
# An answer longer than this is no number or short list: it goes to math-verify (in a killable
# worker) rather than through the exact forms.
MAX_ANSWER_CHARS = 1_000
# Integers are converted with int() only up to this many digits; longer ones compare as digit
# strings (CPython refuses str -> int past 4,300 digits).
_MAX_DIGITS = 300
# Boxes of one answer run ("\boxed{1} and \boxed{2}"): more is no list of answers.
_MAX_RUN = 16
# A phrase's answer is read from at most this many characters after it.
_PHRASE_CHARS = 400


class Answer(NamedTuple):
    """An extracted answer: ``text`` ("" when none), ``how`` it was found."""

    text: str
    how: str  # "boxed", "boxes", "tag", "phrase", "last", "none", "cut" (an unclosed last box)


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# What may stand between two boxes of one answer: "$\boxed{1}$, $\boxed{2}$ and \boxed{3}".
# Also "\) and \(", "y_2 =", a unit word before "and" ("\boxed{1} papers and \boxed{2} bins") and
# a short label in \text{} that ends in "and" or a comma ("\text{ for part (a) and }").
_CONNECTOR_RE = re.compile(
    r"(?:\s|\$|,|;|\\quad|\\qquad|\\[()\[\]]|\\text\{[^{}]{0,30}?(?:\band|\bor|,)\s*\}|\band\b|\bor\b|\\[,;! ]"
    r"|\b[A-Za-z](?:_\{?\w{1,3}\}?)?\s*=|\b[A-Za-z]{2,12}(?=\s+(?:and|or)\b))*"
)


def _box_content(text: str, start: int) -> tuple[str, int] | None:
    """(content, end index) of the box whose command ends at ``start``; None if unclosed.

    >>> _box_content("\\\\boxed{a{b}c} d", 6)
    ('a{b}c', 13)
    """
    i, n = start, len(text)
    while i < n and text[i] == " ":
        i += 1
    if i < n and text[i] != "{":
        # "\boxed 5" (MATH's unbraced form): the token up to whitespace or "$".
        j = i
        while j < n and not text[j].isspace() and text[j] != "$":
            j += 1
        return (text[i:j].rstrip("."), j) if j > i and i > start else None
    if i >= n:
        return None
    depth, j = 0, i
    while j < n:
        ch = text[j]
        if ch == "\\":
            j += 2  # "\{" and "\}" do not count
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip(), j + 1
        j += 1
    return None


def find_boxes(text: str) -> list[str] | None:
    """Contents of the last run of boxes, in order; [] when there is none, None when the last is unclosed.

    A run is boxes separated only by spaces, "$", commas, "and", "or": one answer written as
    several boxes. An earlier box followed by more text is a draft, not part of the answer.

    >>> find_boxes("so \\\\boxed{1}. No wait: $\\\\boxed{2}$ and $\\\\boxed{3}$.")
    ['2', '3']
    >>> find_boxes("no box"), find_boxes("cut off \\\\boxed{12")
    ([], None)
    """
    return _box_run(text[-SCAN_CHARS:])[0]


def _box_run(tail: str) -> tuple[list[str] | None, int]:
    """(find_boxes's answer for ``tail``, where its last box ends: 0 when there is none)."""
    starts = list(_BOX_RE.finditer(tail))
    if not starts:
        return [], 0
    last = _box_content(tail, starts[-1].end())
    if last is None:
        return None, 0
    contents, begin = [last[0]], starts[-1].start()
    for m in reversed(starts[:-1]):
        if len(contents) >= _MAX_RUN:
            break
        box = _box_content(tail, m.end())
        if box is None or box[1] > begin:
            break
        gap = tail[box[1] : begin]
        if len(gap) > 40 or _CONNECTOR_RE.fullmatch(gap) is None:
            break
        contents.append(box[0])
        begin = m.start()
    contents.reverse()
    return contents, last[1]


_FINAL_RE = re.compile(r"final\s+answer", re.IGNORECASE)


def _answer_tag(tail: str) -> str | None:
    close = tail.rfind("</answer>")
    if close == -1:
        return None
    open_ = tail.rfind("<answer>", 0, close)
    return None if open_ == -1 else tail[open_ + len("<answer>") : close]


# "The final answer is", "Final answer:", "Answer:", "answer is", "**Answer:**", "Answer $$ 9 $$", "####".
_PHRASE_RE = re.compile(
    r"final\s+answer(?:\s+is)?\s*[:：]?|answer\s*(?:is\b|[:：=])|answer(?=\s*(?:\$|\\\(|\\\[|\*\*))|####",
    re.IGNORECASE,
)
# Digit runs; signs, fractions and percent signs are read around them in _numbers.
_DIGITS_RE = re.compile(r"[0-9][0-9.,]*")
_FRACTION_TAIL_RE = re.compile(r"\s*/\s*[0-9]+")
# "1 000" and "12 345.5": groups of three digits after single spaces.
_SHORT_INT_RE = re.compile(r"[1-9][0-9]{0,2}")
_SPACED_GROUPS_RE = re.compile(r"(?: [0-9]{3})+(?![0-9])(?:\.[0-9]+)?")
_PERCENT_TAIL_RE = re.compile(r"\s*\\?%")
_HOPE = "i hope it is correct"
_COPULA_RE = re.compile(r"\s(?:is|are|equals)\b:?")
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)")
# Phrases read per response, from the last: a final answer sits in one of the last few.
_MAX_PHRASES = 64
# A word of two letters or more that is not a LaTeX command: the chunk is prose, not math.
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_TEXT_RE = re.compile(r"\\(?:text|mathrm|mbox|textbf)\{[^{}]*\}")
_JOIN_WORDS = frozenset({"and", "or"})
_DELIM_RE = re.compile(r"\\[()\[\]$\\]|\$\$|\$|\n")


def _math_spans(chunk: str) -> list[tuple[int, int, int, int]]:
    """(start, end, content start, content end) of $$..$$, $..$, \\(..\\), \\[..\\] spans, in order.

    One pass over the delimiters (a C-speed regex skips the text between them). "$" spans stop
    at a newline, as in math-verify, and "\\$" is a dollar sign, not a delimiter.

    >>> _math_spans("cost \\\\$5, so $x=2$.")
    [(13, 18, 14, 17)]
    """
    spans, open_at, closer, content = [], -1, "", -1
    for m in _DELIM_RE.finditer(chunk):
        token = m.group(0)
        if token == "\n":
            if closer == "$":
                open_at, closer = -1, ""
            continue
        if open_at == -1:
            if token in ("$", "$$", "\\(", "\\["):
                open_at, content = m.start(), m.end()
                closer = {"\\(": "\\)", "\\[": "\\]"}.get(token, token)
        elif token == closer:
            spans.append((open_at, m.end(), content, m.start()))
            open_at, closer = -1, ""
    return spans


def _numbers(chunk: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of every number a reader would see: "-1,234.5", ".5", "3/4", "12%".

    Digits glued to a letter, "_", "^" or "\\" ("x2", "a_1", "x^2") are not numbers. A comma
    run that is no thousands grouping ("1,2,3") is a list: each element is a number; one comma
    with no space ("2,74") stays one token (a decimal comma or a pair: see ``decimal_comma``).
    Groups of three digits after single spaces are one number ("1 000" is 1000).

    >>> [t for _, _, t in _numbers("x^2 = 1,000.5 or -3/4 of 12% of 1,2,3.")]
    ['1,000.5', '-3/4', '12\\\\%', '1', '2', '3']
    >>> [t for _, _, t in _numbers("so 1 000 or 2,74 or (1,2)")]
    ['1000', '2,74', '1', '2']
    """
    found, consumed = [], 0
    for m in _DIGITS_RE.finditer(chunk):
        start, token = m.start(), m.group(0).rstrip(".,")
        prev = chunk[start - 1] if start else " "
        if start < consumed or prev.isalpha() or prev in "_^\\":
            continue
        if prev == "." and (start < 2 or not _ascii_digits(chunk[start - 2])):
            start, token, prev = start - 1, "." + token, chunk[start - 2] if start >= 2 else ""
        after = chunk[start + len(token) : start + len(token) + 1]
        whole = ("," not in token or _THOUSANDS_RE.fullmatch(token)
                 or _DECIMAL_COMMA_RE.fullmatch(token) and prev not in "([{," and after != ",")
        pieces = [token] if whole else token.split(",")
        offset = start
        for piece in pieces:
            if not piece or piece.count(".") > 1:
                offset += len(piece) + 1
                continue
            begin, end, text = offset, offset + len(piece), piece
            before = chunk[begin - 1] if begin else " "
            if before in "-−" and (begin < 2 or not (chunk[begin - 2].isalnum() or chunk[begin - 2] in ")}")):
                begin, text = begin - 1, "-" + text
            if piece is pieces[-1]:
                spaced = _SPACED_GROUPS_RE.match(chunk, end) if _SHORT_INT_RE.fullmatch(piece) else None
                if spaced:  # "1 000 000", as math-verify reads a number outside LaTeX
                    end, text = spaced.end(), text + spaced.group(0).replace(" ", "")
                frac = _FRACTION_TAIL_RE.match(chunk, end)
                if frac:
                    end, text = frac.end(), text + "/" + frac.group(0).split("/")[1].strip()
                pct = _PERCENT_TAIL_RE.match(chunk, end)
                if pct:
                    end, text = pct.end(), text + "\\%"
            found.append((begin, end, text))
            consumed = end
            offset += len(piece) + 1
    return found


# Undelimited LaTeX numbers: "\frac{3}{4}", "2\sqrt{3}", "\frac{\pi}{2}". Starts only where a
# digit run starts (the lookbehind), so the scan stays linear on long digit runs.
_LATEX_NUMBER_RE = re.compile(
    r"(?<![\d\\A-Za-z])-?\d*(?:\\[dt]?frac\{[^{}$\n]{1,40}\}\{[^{}$\n]{1,40}\}|\\sqrt\{[^{}$\n]{1,40}\}|\\pi(?![A-Za-z]))"
    r"(?:\\sqrt\{[^{}$\n]{1,40}\}|\\pi(?![A-Za-z]))*",
    re.ASCII,
)
_ASSIGNED_RE = re.compile(r"^[A-Za-z]\s*=\s*")


def _candidates(chunk: str) -> list[tuple[int, int, str]]:
    """Numbers and undelimited LaTeX numbers, ordered by where they end (a number inside a
    ``\\frac`` ends before the fraction does, so the fraction wins the "last" place)."""
    found = _numbers(chunk) + [(m.start(), m.end(), m.group(0)) for m in _LATEX_NUMBER_RE.finditer(chunk)]
    found.sort(key=lambda c: (c[1], -c[0]))
    return found


def numbers(text: str) -> list[str]:
    """The numbers of ``text`` as written, in order (see ``_numbers``).

    >>> numbers("She paid $1,234.50, then -3/4 of it.")
    ['1,234.50', '-3/4']
    """
    return [t for _, _, t in _numbers(text)]


def _is_mathlike(s: str) -> bool:
    """No prose words (two letters or more outside LaTeX commands and \\text{}), save "and"/"or"."""
    bare = _TEXT_RE.sub("", s)
    return any(c.isalnum() for c in bare) and all(w.group(0).lower() in _JOIN_WORDS for w in _WORD_RE.finditer(bare))


def _without_hope(chunk: str) -> str:
    """``chunk`` stripped, without Minerva's closing "I hope it is correct." """
    chunk = chunk.strip()
    if chunk.rstrip(".").lower().endswith(_HOPE):
        chunk = chunk.rstrip(".")[: -len(_HOPE)].strip()
    return chunk


def _span_run(text: str, spans: list[tuple[int, int, int, int]], backward: bool) -> str:
    """The spans joined by connectors ("$1$ and $2$") from the first span on, or back from the
    last one, as one list answer "1, 2" (a lone span as written; "x = " dropped from list items)."""
    order = spans[::-1] if backward else spans
    items, lo, hi = [text[order[0][2] : order[0][3]].strip()], order[0][0], order[0][1]
    for span in order[1:_MAX_RUN]:
        gap = text[span[1] : lo] if backward else text[hi : span[0]]
        if len(gap) > 40 or _CONNECTOR_RE.fullmatch(gap) is None:
            break
        items.append(text[span[2] : span[3]].strip())
        lo, hi = min(lo, span[0]), max(hi, span[1])
    if backward:
        items.reverse()
    if len(items) > 1:
        items = [_ASSIGNED_RE.sub("", item, count=1) for item in items]
    return ", ".join(dict.fromkeys(i for i in items if i))


def _from_chunk(chunk: str, first: bool) -> str:
    """The answer inside a chunk of text that holds one: a math span, the whole chunk, or a number."""
    chunk = _without_hope(chunk).strip("*").strip()
    spans = _math_spans(chunk)
    if spans and first:
        return _span_run(chunk, spans, backward=False)  # "$12$ and $13$" is one list answer
    if spans:
        return chunk[spans[-1][2] : spans[-1][3]].strip()
    candidate = chunk.rstrip(".").strip()
    if candidate and _is_mathlike(candidate):
        return candidate
    found = _candidates(chunk)
    if not found:
        return ""
    if first:
        start = min(c[0] for c in found)
        return max((c for c in found if c[0] == start), key=lambda c: c[1])[2]
    return found[-1][2]


def _after_copula(chunk: str) -> str:
    """ "Final Answer: The volume of $V$ is 120." -> "120" (math-verify's "final answer ... is X")."""
    chunk = _without_hope(chunk)
    sentence = _SENTENCE_END_RE.search(chunk)  # "Final answer: 42. This is why" has no copula
    m = _COPULA_RE.search(chunk, 0, min(120, sentence.start() if sentence else len(chunk)))
    return _from_chunk(chunk[m.end() :], first=True) if m else ""


def _phrase_answer(tail: str, final_only: bool = False) -> str:
    for m in list(_PHRASE_RE.finditer(tail))[::-1][:_MAX_PHRASES]:
        phrase = m.group(0).lower()
        final = phrase.startswith("final")
        if final_only and not final:
            continue
        rest = tail[m.end() : m.end() + _PHRASE_CHARS]
        rest = rest.lstrip(" \t*:：")
        # The answer ends at a blank line, or at the end of its line unless a display opens there.
        stop = rest.find("\n\n")
        line_end = rest.find("\n")
        if line_end != -1 and not rest[:line_end].rstrip().endswith(("$$", "\\[")) and rest[:line_end].strip():
            stop = line_end
        chunk = rest if stop == -1 else rest[:stop]
        with_is = phrase.rstrip(": ：").endswith("is")
        found = _after_copula(chunk) if final and not with_is else ""
        if not found and (with_is or not final_only):  # after a box only "final answer ... is X" counts
            found = _from_chunk(chunk, first=True)
        if found:
            return found
    return ""


def _last_answer(tail: str) -> str:
    """The last LaTeX span or number, whichever ends later (math-verify's rightmost match).

    Spans joined by "and", "or" or commas ("$1$ and $2$") are one list answer, as boxes are.

    >>> _last_answer("so $x = 1$ or $x = 2$."), _last_answer("We get $x$ = 3 cm")
    ('1, 2', '3')
    """
    spans = _math_spans(tail)
    span = spans[-1] if spans else None
    after = _candidates(tail[span[1] :] if span else tail)
    if after:
        return after[-1][2]
    if span is None:
        return ""
    return _span_run(tail, spans, backward=True)


def extract_answer(text: str, strict_boxed: bool = False) -> Answer:
    """The final answer of a math response (see the module docstring for the order).

    >>> extract_answer("So the area is $\\\\boxed{\\\\dfrac{3}{4}}$.")
    Answer(text='\\\\dfrac{3}{4}', how='boxed')
    >>> extract_answer("The roots are \\\\boxed{1} and \\\\boxed{2}.")
    Answer(text='1, 2', how='boxes')
    >>> extract_answer("<think>...</think><answer>5 apples</answer>")
    Answer(text='5', how='tag')
    >>> extract_answer("Final Answer: The final answer is $10,455$. I hope it is correct.")
    Answer(text='10,455', how='phrase')
    >>> extract_answer("Subtracting, we get -5")
    Answer(text='-5', how='last')
    >>> extract_answer("Subtracting, we get -5", strict_boxed=True)
    Answer(text='', how='none')
    """
    if not isinstance(text, str) or not text:
        return Answer("", "none")
    tail = text[-SCAN_CHARS:]
    boxes, after_box = _box_run(tail)
    if boxes is None:
        return Answer("", "cut")  # the response stops inside its last box: no answer
    if boxes and not strict_boxed:
        # A "final answer ... is X" after the last box wins over it, as in math-verify: "\boxed{255}
        # of interest, so she has $10,455. Final Answer: The final answer is $10,455$."
        found = _phrase_answer(tail[after_box:], final_only=True) if _FINAL_RE.search(tail, after_box) else ""
        if found:
            return Answer(found, "phrase")
    if boxes:
        distinct = list(dict.fromkeys(b for b in boxes if b))
        if len(distinct) > 1:
            return Answer(", ".join(distinct), "boxes")
        return Answer(distinct[0] if distinct else "", "boxed")
    if strict_boxed:
        return Answer("", "none")
    tag = _answer_tag(tail)
    if tag is not None and tag.strip():
        found = _from_chunk(tag, first=False)
        if found:
            return Answer(found, "tag")
    found = _phrase_answer(tail)
    if found:
        return Answer(found, "phrase")
    found = _last_answer(tail)
    return Answer(found, "last") if found else Answer("", "none")


# ---------------------------------------------------------------------------------------------
# Exact forms
# ---------------------------------------------------------------------------------------------


class Num(NamedTuple):
    """``q * sqrt(m) * pi^k``; ``decimal`` when written with a decimal point (math-verify's Float)."""

    q: Fraction
    m: int = 1
    k: int = 0
    decimal: bool = False
    digits: str = ""  # a long integer kept as its digit string (with sign); q is then 0
    pct: bool = False  # written with a bare "%": math-verify keeps it as a factor 1/100
    long: bool = False  # a decimal past a double's 15 digits: only "far apart" is certain

    @property
    def rational(self) -> bool:
        return self.m == 1 and self.k == 0 and not self.digits


class Assign(NamedTuple):
    var: str
    value: Num


class Interval(NamedTuple):
    lo: Num | None  # None: -infinity
    hi: Num | None  # None: +infinity
    lo_closed: bool
    hi_closed: bool


class Collection(NamedTuple):
    kind: str  # "set", "tuple", "union"
    items: tuple


_STRIP_RE = re.compile(
    r"\\(?:left|right|displaystyle|textstyle|big|Big|bigl|bigr|Bigl|Bigr)(?![A-Za-z])|\\[!,;: ]|\\q?quad(?![A-Za-z])"
)
_UNIT_RE = re.compile(r"\\(?:text|mathrm|mbox|textrm|operatorname)\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\{?[23]\}?)?$")
_DEGREE_RE = re.compile(r"(?:\^\{?\\circ\}?|°|\\degree)$")
_SPACED_DIGITS_RE = re.compile(r"\d(?:\s|\\[,;:! ]|~)+\d", re.ASCII)
_THOUSANDS_RE = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?", re.ASCII)
# "1000,99", "2,74", "0,111": one comma that is no thousands grouping, no space after it: a
# decimal comma when the other side of the comparison is a plain number (math-verify's reading
# of such a number outside LaTeX); a list otherwise.
_DECIMAL_COMMA_RE = re.compile(r"[-+]?\d+,\d+", re.ASCII)
_SPACED_COMMA_RE = re.compile(r"\d\s*,(?:\s|\\[,;:! ]|~)+[-+]?\d")


def decimal_comma(answer: str) -> str | None:
    """``answer`` with its comma read as a decimal point, if it is one number with a decimal comma.

    >>> decimal_comma("1000,99"), decimal_comma("0,111"), decimal_comma("1,000"), decimal_comma("1, 2")
    ('1000.99', '0.111', None, None)
    """
    s = answer.strip().strip("$").strip() if isinstance(answer, str) else ""
    if len(s) > 64 or not _DECIMAL_COMMA_RE.fullmatch(s) or _THOUSANDS_RE.fullmatch(s):
        return None
    return s.replace(",", ".")
_PLAIN_RE = PLAIN_NUMBER_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_MIXED_RE = re.compile(r"[-+]*\d+\\frac\{\d+\}\{\d+\}", re.ASCII)
_EXCLUDED_VARS = frozenset("eEiI")  # Euler's number and the imaginary unit, not variables


def _normalize(answer: str) -> str | None:
    """Drop LaTeX spacing, sizing, dollars, units and degree signs; None if digits are spaced apart."""
    s = answer.strip()
    if _SPACED_DIGITS_RE.search(s):
        return None  # "1 000" / "1\,000": math-verify reads a product here, not 1000
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("−", "-")
    s = s.replace("\\$", "").replace("$", "").replace("{,}", ",")
    s = _STRIP_RE.sub("", s)
    s = "".join(s.split())
    if s.startswith("\\(") and s.endswith("\\)") or s.startswith("\\[") and s.endswith("\\]"):
        s = s[2:-2]
    for _ in range(3):
        before = s
        s = s.rstrip(".")
        s = _UNIT_RE.sub("", s)
        s = _DEGREE_RE.sub("", s)
        if s == before:
            break
    return s


def _split_top(s: str, sep: str = ",") -> list[str] | None:
    """Split on ``sep`` outside braces, parentheses and brackets; None if they do not balance."""
    parts, depth, last = [], 0, 0
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(s[last:i])
            last = i + 1
        if depth < -1:
            return None
        i += 1
    parts.append(s[last:])
    return parts


def _squarefree(n: int) -> tuple[int, int] | None:
    """(c, m) with n = c^2 * m and m square-free; None for n beyond 10^12 (trial division cost)."""
    if n < 0 or n > 10**12:
        return None
    if n == 0:
        return 0, 1
    c, m, p = 1, 1, 2
    while p * p * p <= n:
        while n % (p * p) == 0:
            n //= p * p
            c *= p
        if n % p == 0:
            n //= p
            m *= p
        p += 1 if p == 2 else 2
    # What is left has at most two prime factors: a square of one prime, or square-free.
    r = math.isqrt(n)
    if r * r == n and n > 1:
        return c * r, m
    return c, m * n


def _int_token(s: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(s) and _ascii_digits(s[j]):
        j += 1
    return s[i:j], j


def _braced_or_digit(s: str, i: int) -> tuple[str, int] | None:
    """The argument of a command: "{...}" (no nesting beyond one level checked) or a single digit."""
    if i < len(s) and s[i] == "{":
        depth, j = 0, i
        while j < len(s):
            if s[j] == "{":
                depth += 1
            elif s[j] == "}":
                depth -= 1
                if depth == 0:
                    return s[i + 1 : j], j + 1
            j += 1
        return None
    if i < len(s) and _ascii_digits(s[i]):
        return s[i], i + 1
    return None


def _ascii_digits(text: str) -> bool:
    """Digits 0-9 only: ``str.isdigit`` and ``\\d`` also take other scripts' digits ("४२"), which
    math-verify does not read as numbers."""
    return text.isascii() and text.isdigit()


def _small_int(text: str) -> int | None:
    if re.fullmatch(r"[-+]?[0-9]{1,4}", text):
        return int(text)
    return None


class _Product(NamedTuple):
    q: Fraction
    m: int
    k: int
    decimal: bool
    literal: str  # the leading number literal, "" if none
    fracs: int  # how many \frac factors
    long: bool = False  # a decimal of more than 15 significant digits


def _product(s: str, depth: int = 0) -> _Product | None:
    """A product of factors: one leading number, \\sqrt{n}, \\pi (with a power), \\frac{..}{..}, a^{b}."""
    q, m, k, decimal, literal, fracs, long = Fraction(1), 1, 0, False, "", 0, False
    i, n, first, times = 0, len(s), True, False
    if not s:
        return None
    while i < n:
        if s.startswith("\\times", i) or s.startswith("\\cdot", i) or s[i] == "*":
            if first or times:
                return None
            i += 6 if s.startswith("\\times", i) else 5 if s.startswith("\\cdot", i) else 1
            if i >= n:
                return None
            times = True
            continue
        ch = s[i]
        if _ascii_digits(ch) or ch == ".":
            if not first and not times:
                return None  # "\sqrt{2}3": a digit glued after a factor
            j = i
            while j < n and (_ascii_digits(s[j]) or s[j] == "."):
                j += 1
            token = s[i:j]
            if token.count(".") > 1 or token == ".":
                return None
            if len(token) > _MAX_DIGITS:
                return None
            if "." in token:
                if not first:
                    return None  # "2\pi 0.5": math-verify's Float arithmetic, not ours
                decimal = True
                long = sum(_ascii_digits(c) for c in token.strip("0.")) > 15
                value = Fraction(token if not token.endswith(".") else token[:-1] or "0")
            else:
                value = Fraction(int(token))
            i = j
            if i < n and s[i] == "^":  # an integer power: 2^{10}, 10^{-3}
                arg = _braced_or_digit(s, i + 1)
                if arg is None or "." in token:
                    return None
                exp = _small_int(arg[0])
                if exp is None or abs(exp) > 64 or (value == 0 and exp < 0):
                    return None
                if value.numerator > 1 and exp * math.log10(value.numerator) > _MAX_DIGITS:
                    return None
                value = value**exp
                i = arg[1]
            elif first:
                literal = token
            q *= value
        elif s.startswith("\\sqrt", i):
            i += 5
            if i < n and s[i] == "[":
                return None  # cube roots and beyond
            arg = _braced_or_digit(s, i)
            if arg is None or not _ascii_digits(arg[0]) or len(arg[0]) > 13:
                return None
            split = _squarefree(int(arg[0]))
            if split is None:
                return None
            c, root = split
            q *= c
            m *= root
            i = arg[1]
            if i < n and s[i] == "^":
                return None
        elif s.startswith("\\pi", i) and not (i + 3 < n and s[i + 3].isalpha()):
            i += 3
            power = 1
            if i < n and s[i] == "^":
                arg = _braced_or_digit(s, i + 1)
                if arg is None:
                    return None
                power = _small_int(arg[0])
                if power is None or abs(power) > 9:
                    return None
                i = arg[1]
            k += power
        elif s.startswith("\\frac", i):
            if depth > 0:
                return None
            i += 5
            num = _braced_or_digit(s, i)
            if num is None:
                return None
            den = _braced_or_digit(s, num[1])
            if den is None:
                return None
            top, bottom = _signed_product(num[0], depth + 1), _signed_product(den[0], depth + 1)
            if top is None or bottom is None or bottom.q == 0 or top.decimal or bottom.decimal:
                return None
            quotient = _divide(top, bottom)
            if quotient is None:
                return None
            q, m, k = q * quotient.q, m * quotient.m, k + quotient.k
            fracs += 1
            i = den[1]
            if i < n and s[i] == "^":
                return None
        else:
            return None
        first, times = False, False
    if times:
        return None
    if decimal and (m != 1 or k != 0 or fracs or len(s) != len(literal)):
        return None  # a decimal times anything else: math-verify's Float arithmetic, not ours
    # sqrt(a) * sqrt(b) = c * sqrt(squarefree part)
    if m != 1:
        split = _squarefree(m)
        if split is None:
            return None
        q, m = q * split[0], split[1]
    return _Product(q, m, k, decimal, literal, fracs, long)


def _signed_product(s: str, depth: int = 0) -> _Product | None:
    sign = 1
    while s[:1] in ("-", "+"):
        sign = -sign if s[0] == "-" else sign
        s = s[1:]
    p = _product(s, depth)
    if p is None:
        return None
    return p._replace(q=p.q * sign) if sign == -1 else p


def _divide(top: _Product, bottom: _Product) -> _Product | None:
    if bottom.q == 0:
        return None
    # 1 / (c sqrt(m)) = sqrt(m) / (c m)
    q = top.q / (bottom.q * bottom.m)
    split = _squarefree(top.m * bottom.m)
    if split is None:
        return None
    return _Product(q * split[0], split[1], top.k - bottom.k, False, "", 1)


def _scalar(s: str) -> Num | None:
    """One number in the exact form, or None."""
    if not s or len(s) > MAX_ANSWER_CHARS:
        return None
    pct = False
    if s.endswith("%"):
        # math-verify reads "50\%" as 50, but "50%" as 50 * 1/100 (equal to 50 only between
        # integers): the sign goes, on plain numbers only, and a bare "%" is remembered.
        pct = not s.endswith("\\%")
        s = s[:-1] if pct else s[:-2]
        if not (_PLAIN_RE.fullmatch(s) or _THOUSANDS_RE.fullmatch(s)):
            return None
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    body = s.lstrip("+-")
    if _ascii_digits(body) and len(body) > _MAX_DIGITS:
        negative = s[: len(s) - len(body)].count("-") % 2 == 1
        digits = body.lstrip("0") or "0"
        return Num(Fraction(0), digits=("-" if negative and digits != "0" else "") + digits)
    slash = _split_top(s, "/")
    if slash is None or len(slash) > 2:
        return None
    if len(slash) == 2:
        top, bottom = _signed_product(slash[0]), _signed_product(slash[1])
        if top is None or bottom is None or top.decimal or bottom.decimal or bottom.q == 0:
            return None
        p = _divide(top, bottom)
    else:
        p = _signed_product(s)
        if p is None:
            return None
        # A number then a fraction: math-verify reads "2\frac{1}{2}" as the mixed number 5/2;
        # any other "3\frac{\pi}{4}" is left to it.
        if p.literal and p.fracs:
            whole = Fraction(int(p.literal)) if _ascii_digits(p.literal) else Fraction(0)
            part = abs(p.q) / whole if whole else Fraction(0)
            if not (0 < part < 1) or not _MIXED_RE.fullmatch(s):
                return None
            p = p._replace(q=(whole + part) * (1 if p.q > 0 else -1))
    if p is None:
        return None
    if p.q == 0 and not p.decimal and not pct:
        return Num(Fraction(0))
    return Num(p.q, p.m, p.k, p.decimal, pct=pct, long=p.long)


def _endpoint(s: str) -> Num | str | None:
    if s in ("\\infty", "+\\infty", "\\infin", "∞", "+∞", "oo"):
        return "+inf"
    if s in ("-\\infty", "-\\infin", "-∞", "-oo"):
        return "-inf"
    return _scalar(s)


def _interval(s: str) -> Interval | None:
    if len(s) < 5 or s[0] not in "([" or s[-1] not in ")]":
        return None
    parts = _split_top(s[1:-1])
    if parts is None or len(parts) != 2:
        return None
    lo, hi = _endpoint(parts[0]), _endpoint(parts[1])
    if lo is None or hi is None or lo == "+inf" or hi == "-inf":
        return None
    lo_num = None if lo == "-inf" else lo
    hi_num = None if hi == "+inf" else hi
    if any(x is not None and (x.digits or x.pct) for x in (lo_num, hi_num)):
        return None
    if lo_num is not None and hi_num is not None and not _value(lo_num) < _value(hi_num) - Fraction(1, 10**6):
        return None  # empty or degenerate, or "(2,1)" which math-verify reads as a tuple
    # Infinite ends are open whatever bracket is written (sympy's Interval does the same).
    return Interval(lo_num, hi_num, s[0] == "[" and lo_num is not None, s[-1] == "]" and hi_num is not None)


def canonical(answer: str):
    """The exact form of an answer (Num, Assign, Interval or Collection), or None.

    >>> canonical("\\\\dfrac{3\\\\sqrt{8}}{4}")[:3]  # 3/2 * sqrt(2) * pi^0
    (Fraction(3, 2), 2, 0)
    >>> canonical("1,000.50").q, canonical("x = -2").value.q, canonical("45^\\\\circ").q
    (Fraction(2001, 2), Fraction(-2, 1), Fraction(45, 1))
    >>> canonical("\\\\{3, 1\\\\}").kind, canonical("(-\\\\infty, 2) \\\\cup (3, \\\\infty)").kind
    ('set', 'union')
    >>> canonical("x^2+1") is None
    True
    """
    if not isinstance(answer, str) or len(answer) > MAX_ANSWER_CHARS:
        return None
    s = _normalize(answer)
    if not s:
        return None
    if "=" in s:
        lhs, _, rhs = s.partition("=")
        if len(lhs) != 1 or not lhs.isalpha() or not lhs.isascii() or lhs in _EXCLUDED_VARS or "=" in rhs:
            return None
        value = _scalar(rhs)
        return Assign(lhs, value) if value is not None else None
    if "\\cup" in s:
        parts = s.split("\\cup")
        intervals = [_interval(p) for p in parts]
        if any(iv is None for iv in intervals) or len(intervals) > 16:
            return None
        ordered = sorted(intervals, key=lambda iv: _value(iv.lo) if iv.lo is not None else -math.inf)
        for left, right in zip(ordered, ordered[1:]):
            if left.hi is None or right.lo is None:
                return None
            gap = _value(right.lo) - _value(left.hi)
            if gap < 0 or gap == 0 and (left.hi_closed or right.lo_closed):
                return None  # overlapping, or touching at a closed end: sympy merges them, we do not
        return Collection("union", tuple(ordered))
    if s.startswith("\\{") and s.endswith("\\}"):
        parts = _split_top(s[2:-2])
        return _collection("set", parts)
    if s[0] in "([" and s[-1] in ")]":
        interval = _interval(s)
        if interval is not None:
            return interval
        parts = _split_top(s[1:-1])
        if s[0] == "(" and s[-1] == ")" and parts is not None and len(parts) >= 2:
            return _collection("tuple", parts)
        return None
    core = s[:-2] if s.endswith("\\%") else s[:-1] if s.endswith("%") else s
    if "," in s and _SPACED_COMMA_RE.search(answer):
        # "32, 349" is the pair {32, 349} (math-verify's reading), never 32349.
        return _collection("set", _split_top(s))
    if "," in s and not _THOUSANDS_RE.fullmatch(core):
        parts = _split_top(s)
        # "1,234,5": is "234" a thousands group or an element? math-verify guesses; we do not.
        if parts is None or any(re.fullmatch(r"[0-9]{3}", p) for p in parts[1:]):
            return None
        return _collection("set", parts)
    return _scalar(s)


def _collection(kind: str, parts: list[str] | None):
    if parts is None or not parts or len(parts) > 64 or any(not p for p in parts):
        return None
    items = [_scalar(p) for p in parts]
    if any(item is None or item.digits for item in items):
        return None
    return Collection(kind, tuple(items))


# ---------------------------------------------------------------------------------------------
# Comparison, math-verify's way
# ---------------------------------------------------------------------------------------------

# pi to 60 digits; sqrt via integer square roots at 10^-40: far below every tolerance used.
_PI = Fraction("3.141592653589793238462643383279502884197169399375105820974944")
_SCALE = 10**40


def _value(x: Num | None) -> Fraction:
    """A rational within 1e-30 of the number's value."""
    if x is None:
        return Fraction(0)
    v = x.q
    if x.m != 1:
        v *= Fraction(math.isqrt(x.m * _SCALE * _SCALE), _SCALE)
    if x.k:
        v *= _PI**x.k
    return v


def _round6(v: Fraction) -> Fraction | None:
    """``v`` rounded to 6 decimals, None when it sits within 1e-6 of a rounding tie."""
    scaled = v * 10**6
    floor = math.floor(scaled)
    frac = scaled - floor
    # A double carries ~16 digits: the tie zone widens with the magnitude.
    if abs(frac - Fraction(1, 2)) < Fraction(1, 10**6) + abs(scaled) / 10**13:
        return None
    return Fraction(floor + (1 if frac > Fraction(1, 2) else 0), 10**6)


def _is_int(x: Num) -> bool:
    return x.rational and not x.decimal and x.q.denominator == 1


def _far(va: Fraction, vb: Fraction) -> bool:
    """Apart by more than any 6-decimal rounding or 15-digit Float error could bridge."""
    return abs(va - vb) > Fraction(1, 10**5) + max(abs(va), abs(vb)) / 10**12


def _num_verdict(a: Num, b: Num) -> bool | None:
    if a.digits or b.digits:
        return True if a.digits and a.digits == b.digits else None
    if a.pct or b.pct:
        return _pct_verdict(a, b)
    if not a.decimal and not b.decimal:
        if (a.q, a.m, a.k) == (b.q, b.m, b.k):
            return True
        if a.rational and b.rational:
            return False  # sympy compares Integer/Rational exactly
        va, vb = _value(a), _value(b)
        # Distinct exact forms are distinct numbers; math-verify subtracts at 15 digits and
        # chops, so tiny differences are its call.
        scale = max(abs(va), abs(vb), Fraction(1))
        return False if abs(va - vb) > scale * Fraction(1, 10**9) else None
    va, vb = _value(a), _value(b)
    if _far(va, vb):
        return False  # rounding both to 6 decimals cannot make them equal
    if a.long or b.long or abs(va) >= 10**9 or abs(vb) >= 10**9:
        return None  # past a double's precision: math-verify's Float, not our fraction
    if _is_int(a) or _is_int(b):
        # An integer against a decimal: sympy's Float never equals an Integer, and math-verify
        # then accepts only a difference that simplifies to exactly 0.
        return va == vb
    ra, rb = _round6(va), _round6(vb)
    if ra is None or rb is None:
        return None
    return ra == rb


def _pct_verdict(a: Num, b: Num) -> bool | None:
    """A bare "%" on either side: math-verify reads "50%" as 50 * (1/100) kept unevaluated, so
    two integers are equal as written ("50%" == "50") and, failing that, by value through its
    symbolic step ("100%" == "1"); anything else compares by value, the "%" side divided by 100
    ("50%" == "1/2" == "0.5")."""
    va = a.q / 100 if a.pct else _value(a)
    vb = b.q / 100 if b.pct else _value(b)
    if _is_int(a) and _is_int(b):
        return a.q == b.q or va == vb
    if not a.decimal and not b.decimal:
        return va == vb if a.rational and b.rational else False
    if _far(va, vb):
        return False
    if a.long or b.long or (va.denominator == 1 and not a.decimal) or (vb.denominator == 1 and not b.decimal):
        return None  # an exact integer against a Float: sympy's symbolic step decides
    ra, rb = _round6(va), _round6(vb)
    if ra is None or rb is None:
        return None
    return ra == rb


def _items_verdict(xs, ys) -> bool | None:
    if len(xs) != len(ys):
        return False
    verdicts = [_num_verdict(x, y) for x, y in zip(xs, ys)]
    if all(v is True for v in verdicts):
        return True
    return None if any(v is None for v in verdicts) else False


def _end_verdict(x: Num | None, y: Num | None) -> bool | None:
    if x is None or y is None:
        return x is None and y is None
    return _num_verdict(x, y)


def compare(pred, gold) -> bool | None:
    """math-verify's verdict on two exact forms when it is certain, else None.

    >>> compare(canonical("\\\\frac{1}{2}"), canonical("0.5")), compare(canonical("3"), canonical("3.0000001"))
    (True, False)
    >>> compare(canonical("\\\\{2, 1\\\\}"), canonical("1,2")), compare(canonical("(x+1)^2"), canonical("x^2+2x+1"))
    (True, None)
    """
    if pred is None or gold is None:
        return None
    if isinstance(pred, Assign) and isinstance(gold, Assign):
        return _num_verdict(pred.value, gold.value) if pred.var == gold.var else None
    if isinstance(pred, Assign) and isinstance(gold, Num):
        return _num_verdict(pred.value, gold)
    if isinstance(gold, Assign) and isinstance(pred, Num):
        return _num_verdict(pred, gold.value)
    if isinstance(pred, Num) and isinstance(gold, Num):
        return _num_verdict(pred, gold)
    if isinstance(pred, Interval) != isinstance(gold, Interval) and isinstance(pred, Interval | Collection) \
            and isinstance(gold, Interval | Collection):
        interval, other = (pred, gold) if isinstance(pred, Interval) else (gold, pred)
        return _interval_vs_items(interval, other)
    if isinstance(pred, Interval) and isinstance(gold, Interval):
        if (pred.lo_closed, pred.hi_closed) != (gold.lo_closed, gold.hi_closed):
            return False
        return _items_verdict_ends(pred, gold)
    if isinstance(pred, Collection) and isinstance(gold, Collection) and pred.kind == gold.kind:
        if pred.kind == "tuple":
            return _items_verdict(pred.items, gold.items)
        if pred.kind == "union":
            if len(pred.items) != len(gold.items):
                return None
            verdicts = [compare(p, g) for p, g in zip(pred.items, gold.items)]
            if all(v is True for v in verdicts):
                return True
            return None if any(v is None for v in verdicts) else False
        return _set_verdict(pred.items, gold.items)
    return None


def _items_verdict_ends(p: Interval, g: Interval) -> bool | None:
    verdicts = [_end_verdict(p.lo, g.lo), _end_verdict(p.hi, g.hi)]
    if all(v is True for v in verdicts):
        return True
    return None if any(v is None for v in verdicts) else False


def _interval_vs_items(interval: Interval, other: Collection) -> bool | None:
    """math-verify compares an open interval with a pair, "(1,2)" against "1, 2", as (start, end)."""
    if other.kind == "union":
        return False  # disjoint pieces sympy does not merge are never one interval
    items = other.items
    if other.kind == "set":
        if any(x.decimal or x.pct or not x.rational for x in items):
            return None
        items = tuple(sorted(set(items), key=lambda x: x.q))  # a sympy FiniteSet: distinct, sorted
    if len(items) != 2 or interval.lo_closed or interval.hi_closed:
        return False
    if interval.lo is None or interval.hi is None:
        return False  # an infinite end against a finite element
    return _items_verdict((interval.lo, interval.hi), items)


def _set_verdict(xs, ys) -> bool | None:
    if any(x.decimal or x.pct or not x.rational for x in (*xs, *ys)):
        # Decimals and surds: math-verify sorts by value then compares with rounding; leave it.
        return None
    return {x.q for x in xs} == {y.q for y in ys}
