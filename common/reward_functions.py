"""Rule-based rewards for math and GSM8K, with verl's custom reward signature.

Run the self-check (from any directory):

    python common/reward_functions.py

Use it in training (verl 0.9.1 reads these keys; the old top-level ``custom_reward_function``
is silently ignored). The launcher wraps it in common/reward_guard.py (``REWARD_GUARD=true``):

    reward.custom_reward_function.path=$REPO/common/reward_functions.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.format_weight=0.1

What it offers:

- ``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)``:
  verl's signature; dispatches on ``data_source`` like verl's ``default_compute_score`` and
  returns a dict with the fixed keys ``REWARD_KEYS`` (``score`` first), within ``timeout_s``
  for the whole call.
- ``format_reward(text)``: 1.0 / 0.5 / 0.0 for the ``<think>``/``<answer>`` convention.
- ``length_penalty(length, max_len, buffer_len, penalty_factor)``: DAPO's linear overlong penalty.
- ``combine_score(acc, fmt, penalty, format_weight, length_penalty_weight)``: the weighted sum.
- ``extract_boxed``, ``extract_math_answer``, ``extract_gsm8k_answer``: answer extraction.
- ``math_equal(pred, gold, timeout_s)``: exact forms first (common/math_answer.py), then
  math-verify under a hard time limit that works off the main thread (persistent worker
  processes of common/workers.py, killed on overrun; the limit covers a worker's start too).
- ``gsm8k_accuracy(pred, gold)``: exact numeric comparison.
- ``shutdown_verifiers()``: stop the math-verify worker processes of this process (at most
  ``REWARD_VERIFY_WORKERS``, default min(4, CPUs)).
- ``KNOWN_DATA_SOURCES``, ``REWARD_KEYS``, ``UnknownDataSourceError``.

The keys of every result (``REWARD_KEYS``, in this order):

- ``score``: ``acc + format_weight * format + length_penalty_weight * length_penalty``.
- ``acc``: 1.0 when the extracted answer matches the ground truth, else 0.0.
- ``format``: ``format_reward`` of the response (reported whatever its weight).
- ``pred``: the extracted answer ("" when none; at most 1,000 characters).
- ``timeout``: 1.0 when the math-verify check ran out of time (``acc`` is then 0.0).
- ``length_penalty``: the overlong penalty (0.0 unless ``length_penalty_weight`` > 0).

Bounded: whatever the response, a call returns within ``timeout_s`` (5 s by default) and never
raises on a string: answers are looked for in the last ``SCAN_CHARS`` (16 KB) of a response with
linear scans, the format rule is four ``str.find``s, numbers past 300 digits stay strings, and
math-verify runs in a worker process that is killed when the time is up. It raises only on a
bad configuration or a bad data row (unknown ``data_source``, a missing ground truth, an unknown
reward kwarg), with a message naming the field; common/reward_guard.py turns that into a
counted ``reward_error`` during training, and the preflight catches it before launch.

verl decodes responses with ``skip_special_tokens=True``: a tokenizer that marks ``<think>`` or
``<answer>`` as special tokens strips them before scoring, and ``format`` is then always 0.0
(Qwen3's tokenizer keeps them: they are added tokens, not special ones).
"""

import importlib.util
import logging
import math
import os
import sys
import threading
import time
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple


def _load_sibling(name: str):
    """Import common/<name>.py whether this file was imported as ``common.reward_functions`` or by path."""
    key = f"_posttrain_{name}"
    if key not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


if __package__:
    from . import math_answer, workers
else:  # loaded by path (verl's loader) or run as a script (the self-check)
    math_answer = _load_sibling("math_answer")
    workers = _load_sibling("workers")

__all__ = [
    "KNOWN_DATA_SOURCES",
    "REWARD_KEYS",
    "UnknownDataSourceError",
    "Verdict",
    "combine_score",
    "compute_score",
    "extract_boxed",
    "extract_gsm8k_answer",
    "extract_math_answer",
    "format_reward",
    "gsm8k_accuracy",
    "length_penalty",
    "math_equal",
    "shutdown_verifiers",
]

logger = logging.getLogger(__name__)

# verl takes the metric keys from the first sample of a batch, so every call returns exactly
# these keys, in this order, whatever the data source or input.
REWARD_KEYS = ("score", "acc", "format", "pred", "timeout", "length_penalty")

# Same groups as verl 0.9.1 `verl/utils/reward_score/__init__.py::default_compute_score`.
_MATH_SOURCES = frozenset(
    {
        "math",
        "math_dapo",
        "math_dapo_reasoning",
        "lighteval/math",
        "digitallearninggmbh/math-lighteval",
        "huggingfaceh4/math-500",
        "numina_aops_forum",
        "numina_synthetic_math",
        "numina_amc_aime",
        "numina_synthetic_amc",
        "numina_cn_k12",
        "numina_olympiads",
    }
)
# Prefixes: aime2024, aime_2025, lighteval/MATH-Hard, numina_* variants.
_MATH_PREFIXES = ("aime", "lighteval/math", "numina_")
_GSM8K_SOURCES = frozenset({"gsm8k", "openai/gsm8k"})
KNOWN_DATA_SOURCES = {
    "math": sorted(_MATH_SOURCES) + [p + "*" for p in _MATH_PREFIXES],
    "gsm8k": sorted(_GSM8K_SOURCES),
}

# Keyword arguments verl's reward managers pass on their own (reward-model routing, sandbox);
# accepted and ignored. Anything else unknown is a typo in reward_kwargs and raises.
_VERL_PASSTHROUGH_KWARGS = frozenset(
    {"reward_router_address", "reward_model_tokenizer", "sandbox_fusion_url", "concurrent_semaphore", "memory_limit_mb"}
)

# math-verify's own default per-operation limit is 5 s; a whole reward call stays within the same.
DEFAULT_TIMEOUT_S = 5.0
# `pred` is reported in verl's generation dumps: a whole 16 KB <answer> block would bloat them.
_MAX_PRED_CHARS = math_answer.MAX_ANSWER_CHARS
SCAN_CHARS = math_answer.SCAN_CHARS


class UnknownDataSourceError(ValueError, NotImplementedError):
    """Raised for a data_source this module does not score.

    Both a ValueError and a NotImplementedError, the latter being what verl's default scorer
    raises, so callers written for either keep working.
    """


class Verdict(NamedTuple):
    """Outcome of one equivalence check: ``equal``, ``timed_out``, and ``via`` ("fast" or "math_verify")."""

    equal: bool
    timed_out: bool
    via: str


# ---------------------------------------------------------------------------------------------
# Format and length
# ---------------------------------------------------------------------------------------------


def format_reward(text: str) -> float:
    """Score the reasoning format: 1.0, 0.5 or 0.0.

    ``<think>...</think>`` followed by ``<answer>...</answer>`` (each pair opened then closed, the
    think pair first) gives 0.5; with a ``\\boxed{}`` inside the answer, 1.0; anything else 0.0.
    Four ``str.find`` calls, linear in the text (the regex it replaces backtracked for a minute
    on 250 repeated tag pairs).

    >>> format_reward("<think>2+2</think><answer>\\\\boxed{4}</answer>")
    1.0
    >>> format_reward("<think>2+2</think> <answer>4</answer>")
    0.5
    >>> format_reward("<answer>4</answer><think>late</think>")
    0.0
    >>> format_reward("\\\\boxed{4}")
    0.0
    """
    if not isinstance(text, str):
        return 0.0
    # The first of each tag after the previous one: the leftmost match of
    # <think>.*?</think>.*?<answer>(.*?)</answer>, found without backtracking.
    think = text.find("<think>")
    end_think = text.find("</think>", think + len("<think>")) if think != -1 else -1
    answer = text.find("<answer>", end_think + len("</think>")) if end_think != -1 else -1
    end_answer = text.find("</answer>", answer + len("<answer>")) if answer != -1 else -1
    if end_answer == -1:
        return 0.0
    return 1.0 if extract_boxed(text[answer + len("<answer>") : end_answer]) is not None else 0.5


def length_penalty(length: float, max_len: float, buffer_len: float, penalty_factor: float = 1.0) -> float:
    """DAPO's linear overlong penalty, in [-penalty_factor, 0].

    Zero up to ``max_len - buffer_len``, then falls linearly to ``-penalty_factor`` at
    ``max_len`` (the formula of verl's dapo reward manager); beyond ``max_len`` it stays at
    ``-penalty_factor``.

    >>> length_penalty(3000, max_len=4096, buffer_len=1024)
    0.0
    >>> length_penalty(3584, max_len=4096, buffer_len=1024)
    -0.5
    >>> length_penalty(5000, max_len=4096, buffer_len=1024, penalty_factor=2.0)
    -2.0
    """
    for name, value in (("length", length), ("max_len", max_len), ("buffer_len", buffer_len)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ValueError(f"length_penalty: {name} must be a finite number >= 0, got {value!r}")
    if not 0 < buffer_len <= max_len:
        raise ValueError(
            f"length_penalty: need 0 < buffer_len <= max_len, got buffer_len={buffer_len!r}, max_len={max_len!r}; "
            "set overlong_buffer_len to a positive value no larger than max_response_len"
        )
    if not isinstance(penalty_factor, int | float) or not math.isfinite(penalty_factor) or penalty_factor < 0:
        raise ValueError(f"length_penalty: penalty_factor must be a finite number >= 0, got {penalty_factor!r}")
    exceed = length - (max_len - buffer_len)
    penalty = min(-exceed / buffer_len * penalty_factor, 0.0)
    return max(penalty, -float(penalty_factor)) + 0.0  # + 0.0 turns -0.0 into 0.0


def combine_score(
    acc: float,
    fmt: float = 0.0,
    penalty: float = 0.0,
    format_weight: float = 0.0,
    length_penalty_weight: float = 0.0,
) -> float:
    """``score = acc + format_weight * fmt + length_penalty_weight * penalty``.

    With the default weights the score is the accuracy, as with verl's default scorer.

    >>> combine_score(1.0)
    1.0
    >>> combine_score(0.0, fmt=1.0, format_weight=0.1)
    0.1
    >>> combine_score(1.0, fmt=0.5, penalty=-0.5, format_weight=0.5, length_penalty_weight=1.0)
    0.75
    """
    return float(acc + format_weight * fmt + length_penalty_weight * penalty)


# ---------------------------------------------------------------------------------------------
# Answer extraction
# ---------------------------------------------------------------------------------------------


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces kept), else None.

    >>> extract_boxed("so \\\\boxed{1} or rather \\\\boxed{\\\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> extract_boxed("\\\\fbox{7}")
    '7'
    >>> extract_boxed("\\\\boxed 5."), extract_boxed("\\\\boxed{unclosed")
    ('5', None)
    """
    boxes = math_answer.find_boxes(text) if isinstance(text, str) else []
    return boxes[-1] if boxes else None


def extract_math_answer(text: str, strict_boxed: bool = False) -> str:
    """The final answer of a math response, or "" when there is none.

    Order: the last ``\\boxed{}``/``\\fbox{}`` (several boxes written as one answer, "\\boxed{1}
    and \\boxed{2}", become the list "1, 2"); else the last ``<answer>`` tag; else the last
    final-answer phrase ("The final answer is X", "Answer: X", "#### X"); else the last LaTeX
    span or number. ``strict_boxed=True`` keeps only the box. A response cut off inside its
    last box has no answer.

    >>> extract_math_answer("... so the area is \\\\boxed{\\\\dfrac{3}{4}}.")
    '\\\\dfrac{3}{4}'
    >>> extract_math_answer("<think>hmm</think><answer>42</answer>")
    '42'
    >>> extract_math_answer("Final Answer: The final answer is $18$. I hope it is correct.")
    '18'
    >>> extract_math_answer("Answer: 7"), extract_math_answer("Answer: 7", strict_boxed=True)
    ('7', '')
    >>> extract_math_answer("I am not sure.")
    ''
    """
    return math_answer.extract_answer(text, strict_boxed=strict_boxed).text


def extract_gsm8k_answer(text: str, strict_boxed: bool = False) -> str:
    """The numeric answer of a GSM8K response as a plain number string, or "".

    Order: the first number after the last ``####`` (GSM8K's own marker); else the last number
    in the last ``\\boxed{}``; else in the last ``<answer>`` tag; else the last number in the
    response. ``strict_boxed=True`` keeps only the two explicit markers, ``####`` and
    ``\\boxed{}``. Commas, "$" and units go. Only the last ``SCAN_CHARS`` are read.

    >>> extract_gsm8k_answer("She pays $1,234.50 in total.\\n#### $1,234.50")
    '1234.50'
    >>> extract_gsm8k_answer("Natalia sold 72 clips"), extract_gsm8k_answer("Natalia sold 72 clips", strict_boxed=True)
    ('72', '')
    >>> extract_gsm8k_answer("The change is -3 degrees.")
    '-3'
    >>> extract_gsm8k_answer("no number here")
    ''
    """
    if not isinstance(text, str):
        return ""
    tail = text[-SCAN_CHARS:]
    candidates = []
    marker = tail.rfind("####")
    if marker != -1:
        candidates.append((tail[marker + 4 : marker + 4 + 200], "first"))
    boxed = extract_boxed(tail)
    if boxed is not None:
        candidates.append((boxed, "last"))
    if not strict_boxed:
        close = tail.rfind("</answer>")
        start = tail.rfind("<answer>", 0, close) if close != -1 else -1
        if start != -1:
            candidates.append((tail[start + len("<answer>") : close], "last"))
        candidates.append((tail, "last"))
    for chunk, which in candidates:
        numbers = math_answer.numbers(chunk)
        if numbers:
            number = numbers[0] if which == "first" else numbers[-1]
            number = math_answer.decimal_comma(number) or number  # "2,74" is 2.74; "1,234" is 1234
            return number.replace(",", "").replace("\\%", "")
    return ""


# ---------------------------------------------------------------------------------------------
# Equivalence: math-verify in killable worker processes
# ---------------------------------------------------------------------------------------------


def _verifier():
    """A math-verify worker's setup (common/workers.py): math-verify imported and warmed up; the check it serves."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from math_verify import parse, verify

    # Its own timeouts use SIGALRM; the pool enforces the limit by killing the worker instead.
    verify(parse("$1$", parsing_timeout=None), parse("$1$", parsing_timeout=None), timeout_seconds=None)

    def check(gold: str, pred: str) -> tuple[bool, str]:
        try:
            gold_parsed = parse(f"${gold}$", parsing_timeout=None)
            pred_parsed = parse(f"${pred}$", parsing_timeout=None)
            return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None)), ""
        except Exception as exc:  # a parse/verify bug on one answer is a wrong answer, not a crash
            return False, f"{type(exc).__name__}: {exc}"[:300]

    return check, None


_POOL = None
_POOL_LOCK = threading.Lock()


def _pool():
    """This process's math-verify workers (a common/workers.py WorkerPool)."""
    global _POOL
    with _POOL_LOCK:
        # After a fork the child must not share the parent's sockets: start a fresh pool.
        if _POOL is None or _POOL.pid != os.getpid():
            # verl runs a sync reward function in a thread pool (loop.run_in_executor), so several
            # checks can be in flight; 4 workers x ~150 MB each is the cap per reward process.
            size = int(os.environ.get("REWARD_VERIFY_WORKERS", min(4, os.cpu_count() or 1)))
            if size < 1:
                raise ValueError(f"REWARD_VERIFY_WORKERS must be >= 1, got {size}")
            # Importing sympy + math-verify takes ~1-3 s on a busy 2-core machine: a check waits
            # for it only until its own deadline (the start goes on in the background), and the
            # 120 s start limit only guards against a wedged interpreter.
            _POOL = workers.WorkerPool(("common.reward_functions", "_verifier", ()), size, name="math-verify",
                                       start_timeout_s=120.0)
        return _POOL


def _verify(gold: str, pred: str, timeout_s: float) -> tuple[bool, bool]:
    """(equal, timed_out) from math-verify within ``timeout_s``, a worker's start included."""
    try:
        equal, error = _pool().call((gold, pred), None, timeout_s, start_in_limit=True)
    except workers.CallTimeout:
        return False, True  # no answer in time, or no worker ready in time (all busy, or starting)
    except workers.WorkerStartError as exc:  # math-verify missing or broken: every check must say so
        raise RuntimeError(f"reward_functions: {exc}; install it with `pip install math-verify==0.9.0` "
                           "in the training environment") from None
    except (workers.WorkerError, workers.CallError) as exc:
        # e.g. killed by the OOM killer on a giant expression: a wrong answer, not a crash
        logger.warning("math-verify could not check an answer (%s); scoring it 0", exc)
        return False, False
    if error:
        logger.debug("math-verify error on pred=%r gold=%r: %s", pred[:80], gold[:80], error)
    return equal, False


def shutdown_verifiers() -> None:
    """Stop this process's math-verify workers (they also exit on their own when it exits).

    >>> shutdown_verifiers()  # safe to call any time; the next slow check starts a new worker
    """
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None and pool.pid == os.getpid():
        pool.close()


def _normalize_for_verify(answer: str) -> str:
    # Inside "$...$" for math-verify: an unescaped "$" would end the math early.
    return answer.replace("\\$", "").replace("$", "").strip()


def _check_timeout(timeout_s: float) -> None:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not (0 < timeout_s < math.inf):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")


@lru_cache(maxsize=8192)
def _canonical(answer: str):
    # Ground truths repeat across the ROLLOUT_N responses of a prompt, and answers across
    # responses: parse each string once. Entries are capped at MAX_ANSWER_CHARS, 8 MB in all.
    return math_answer.canonical(answer)


def math_equal(pred: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Verdict:
    """Is the extracted answer ``pred`` equivalent to ``gold``?

    Exact forms decide whenever math-verify's verdict is certain (numbers, percentages,
    ``x = a``, sets, tuples, intervals: see common/math_answer.py); the rest goes to
    math-verify in a worker process that is killed if it runs past ``timeout_s`` (works from
    any thread).

    >>> math_equal("\\\\dfrac{1}{2}", "0.5")
    Verdict(equal=True, timed_out=False, via='fast')
    >>> math_equal("1,000", "999")
    Verdict(equal=False, timed_out=False, via='fast')
    """
    _check_timeout(timeout_s)
    if not pred.strip():
        return Verdict(False, False, "fast")
    short = len(pred) <= math_answer.MAX_ANSWER_CHARS and len(gold) <= math_answer.MAX_ANSWER_CHARS
    fast = math_answer.compare(_canonical(pred), _canonical(gold)) if short else None
    if fast is not True and short and _decimal_comma_equal(pred, gold):
        return Verdict(True, False, "fast")
    if fast is not None:
        return Verdict(fast, False, "fast")
    equal, timed_out = _verify(_normalize_for_verify(gold), _normalize_for_verify(pred), timeout_s)
    return Verdict(equal, timed_out, "math_verify")


def _decimal_comma_equal(pred: str, gold: str) -> bool:
    """ "1000,99" against the number 1000.99 (either side): a decimal comma, as math-verify reads
    a number outside LaTeX. Only against one plain number, so "-2,1" stays a pair against a pair."""
    for one, other in ((pred, gold), (gold, pred)):
        decimal = math_answer.decimal_comma(one)
        if decimal is not None and isinstance(_canonical(other), math_answer.Num):
            return bool(math_answer.compare(_canonical(decimal), _canonical(other)))
    return False


def gsm8k_accuracy(pred: str, gold: str) -> float:
    """1.0 when the extracted number equals the gold number exactly ("1,234.50" == "1234.5").

    >>> gsm8k_accuracy("1234.50", "1,234.5")
    1.0
    >>> gsm8k_accuracy("", "3")
    0.0
    """
    gold_value = _gsm8k_number(gold)
    if gold_value is None:
        raise ValueError(
            f"gsm8k ground_truth must be a number, got {gold[:80]!r}; "
            "fix reward_model.ground_truth in the data (e.g. the text after '####')"
        )
    pred_value = _gsm8k_number(pred)
    return 1.0 if pred_value is not None and pred_value == gold_value else 0.0


def _gsm8k_number(text: str) -> Fraction | str | None:
    s = text.strip().replace("$", "").replace(",", "").replace("\\%", "").rstrip("%")
    if len(s) > 300:
        # Past 300 digits a number stays a string (int() refuses 4,300+ digits): compare it as
        # written, without leading zeros.
        body = s.lstrip("+-")
        return s[: len(s) - len(body)].replace("+", "") + (body.lstrip("0") or "0") if body.isascii() and body.isdigit() else None
    try:
        if math_answer.PLAIN_NUMBER_RE.fullmatch(s):
            return Fraction(s)
        top, slash, bottom = s.partition("/")
        if slash and math_answer.PLAIN_NUMBER_RE.fullmatch(top) and bottom.isascii() and bottom.isdigit():
            return Fraction(top) / int(bottom)
    except (ValueError, ZeroDivisionError):
        pass
    return None


# ---------------------------------------------------------------------------------------------
# verl entry point
# ---------------------------------------------------------------------------------------------


def _task_of(data_source: str) -> str:
    name = str(data_source).strip().lower()
    if name in _MATH_SOURCES or name.startswith(_MATH_PREFIXES):
        return "math"
    if name in _GSM8K_SOURCES:
        return "gsm8k"
    known = "; ".join(f"{task}: {', '.join(names)}" for task, names in KNOWN_DATA_SOURCES.items())
    raise UnknownDataSourceError(
        f"reward_functions.compute_score: unknown data_source {str(data_source)[:80]!r}. Known ({known}). "
        "Set the parquet column data_source to one of these, or point "
        "reward.custom_reward_function.path at a scorer for this dataset."
    )


def _gold_list(ground_truth) -> list[str]:
    # Some datasets store several accepted answers (list / numpy array); any one may match.
    if isinstance(ground_truth, str | int | float) and not isinstance(ground_truth, bool):
        golds = [ground_truth]
    elif hasattr(ground_truth, "__iter__") and not isinstance(ground_truth, dict | bytes):
        golds = list(ground_truth)[:64]
    else:
        golds = []
    golds = [_number_str(g) if not isinstance(g, str) else g.strip() for g in golds
             if isinstance(g, str | int | float) and not isinstance(g, bool)]
    # A gold stored as "\boxed{5}" means 5; "\boxed{1} and \boxed{2}" the set {1, 2}.
    golds = [(math_answer.extract_answer(g).text or g) if "\\boxed" in g or "\\fbox" in g else g for g in golds]
    if not golds or not all(g.strip() for g in golds):
        raise ValueError(
            f"ground_truth must be a non-empty string or number (or a list of them), got {str(ground_truth)[:80]!r}; "
            "fix reward_model.ground_truth in the data"
        )
    return golds


def _number_str(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 72.0 from a float column means 72
    if isinstance(value, int) and value.bit_length() > 996:
        return "huge integer"  # str() refuses past 4,300 digits; no answer will match it
    return str(value)


@lru_cache(maxsize=4)
def _tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path)


def _weight(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"reward_kwargs.{name} must be a finite number, got {value!r}")
    return float(value)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth,
    extra_info: dict | None = None,
    *,
    format_weight: float = 0.0,
    length_penalty_weight: float = 0.0,
    max_response_len: int | None = None,
    overlong_buffer_len: int | None = None,
    overlong_penalty_factor: float = 1.0,
    length_tokenizer: str | None = None,
    strict_boxed: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **kwargs,
) -> dict:
    """Score one response; verl's custom reward signature.

    ``score = acc + format_weight * format + length_penalty_weight * length_penalty``

    - ``acc``: 1.0 when the extracted answer (``pred``) matches ``ground_truth``, else 0.0
      (math: exact forms then math-verify; gsm8k: exact number). A math check that runs out of
      the ``timeout_s`` seconds of the whole call gives ``acc`` 0.0 and ``timeout`` 1.0.
    - ``format``: ``format_reward(solution_str)``, always reported, weighted by ``format_weight``.
    - ``length_penalty``: ``length_penalty(len, max_response_len, overlong_buffer_len,
      overlong_penalty_factor)`` when ``length_penalty_weight`` > 0, else 0.0. ``len`` counts
      tokens of ``length_tokenizer`` (a Hugging Face name or path) if given, else characters.
    - ``strict_boxed``: only a ``\\boxed{}`` answer counts (math), only ``####`` or
      ``\\boxed{}`` (gsm8k): format pressure for those who want it. Default: any final answer.

    Defaults give ``score == acc``, like verl's default scorer. Keyword arguments arrive from
    ``reward.custom_reward_function.reward_kwargs``; an unknown one raises TypeError.

    >>> r = compute_score("math", "... \\\\boxed{\\\\frac{1}{2}}", "0.5")
    >>> list(r) == list(REWARD_KEYS), r["score"], r["pred"]
    (True, 1.0, '\\\\frac{1}{2}')
    >>> compute_score("openai/gsm8k", "<think>3*24</think><answer>72 clips</answer>", "72",
    ...               format_weight=0.1)["score"]
    1.05
    >>> compute_score("math", "So x = -5", "-5")["acc"], compute_score("math", "So x = -5", "-5", strict_boxed=True)["acc"]
    (1.0, 0.0)
    """
    started = time.monotonic()
    unknown = set(kwargs) - _VERL_PASSTHROUGH_KWARGS
    if unknown:
        raise TypeError(
            f"compute_score got unknown reward_kwargs {sorted(unknown)}; accepted: format_weight, "
            "length_penalty_weight, max_response_len, overlong_buffer_len, overlong_penalty_factor, "
            "length_tokenizer, strict_boxed, timeout_s"
        )
    format_weight = _weight("format_weight", format_weight)
    length_penalty_weight = _weight("length_penalty_weight", length_penalty_weight)
    _check_timeout(timeout_s)
    if not isinstance(strict_boxed, bool):
        raise ValueError(f"reward_kwargs.strict_boxed must be true or false, got {strict_boxed!r}")
    if not isinstance(solution_str, str):
        raise TypeError(f"solution_str must be a str, got {type(solution_str).__name__}")
    task = _task_of(data_source)
    golds = _gold_list(ground_truth)
    deadline = started + timeout_s

    acc, timed_out = 0.0, 0.0
    if task == "math":
        pred = extract_math_answer(solution_str, strict_boxed=strict_boxed)
        if pred:
            for gold in golds:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = 1.0
                    break
                verdict = math_equal(pred, gold, timeout_s=remaining)
                if verdict.timed_out:
                    timed_out = 1.0
                    break
                if verdict.equal:
                    acc = 1.0
                    break
    else:
        pred = extract_gsm8k_answer(solution_str, strict_boxed=strict_boxed)
        acc = max(gsm8k_accuracy(pred, gold) for gold in golds)

    fmt = format_reward(solution_str)
    penalty = 0.0
    if length_penalty_weight:
        if max_response_len is None or overlong_buffer_len is None:
            raise ValueError(
                "length_penalty_weight > 0 needs reward_kwargs.max_response_len and "
                "reward_kwargs.overlong_buffer_len (e.g. data.max_response_length and a quarter of it)"
            )
        if length_tokenizer:
            length = len(_tokenizer(length_tokenizer).encode(solution_str, add_special_tokens=False))
        else:
            length = len(solution_str)
        penalty = length_penalty(length, max_response_len, overlong_buffer_len, overlong_penalty_factor)
    score = combine_score(acc, fmt, penalty, format_weight, length_penalty_weight)
    return {"score": score, "acc": acc, "format": fmt, "pred": pred[:_MAX_PRED_CHARS], "timeout": timed_out,
            "length_penalty": penalty}


# ---------------------------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------------------------

_SELF_CHECK = [
    ("math", "The area is \\boxed{\\dfrac{3}{4}}.", "0.75"),
    ("HuggingFaceH4/MATH-500", "so x \\in \\boxed{[0, 1)}", "[0,1)"),
    ("math_dapo", "Answer: 1,000", "1000"),
    ("math", "The roots are $\\boxed{2}$ and $\\boxed{-1}$.", "-1, 2"),
    ("math", "Subtracting gives -5", "-5"),
    ("aime2024", "<think>...</think><answer>\\boxed{(x+1)^2}</answer>", "x^2+2x+1"),
    ("math", "The final answer is $\\frac{\\sqrt{2}}{2}$. I hope it is correct.", "\\frac{1}{\\sqrt{2}}"),
    ("math", "I give up.", "5"),
    ("openai/gsm8k", "Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
    ("gsm8k", "The total is $1,234.50", "1234.5"),
]


def _self_check() -> int:
    print(f"{'data_source':<24} {'score':>5} {'acc':>4} {'fmt':>4} {'timeout':>7}  pred  <- response")
    failures = 0
    try:
        for source, response, gold in _SELF_CHECK:
            r = compute_score(source, response, gold)
            expected = 0.0 if "give up" in response else 1.0
            failures += r["acc"] != expected
            scores = f"{r['score']:>5.2f} {r['acc']:>4.1f} {r['format']:>4.1f} {r['timeout']:>7.1f}"
            print(f"{source:<24} {scores}  {r['pred']!r}  <- {response!r}")
        # A pathological answer (sympy would expand 10^(10^10)) under a 1 s limit, off the main thread.
        box: dict = {}
        thread = threading.Thread(
            target=lambda: box.update(compute_score("math", "\\boxed{10^{10^{10}}}", "1", timeout_s=1.0))
        )
        t0 = time.monotonic()
        thread.start()
        thread.join()
        print(f"pathological answer from a worker thread: timeout={box['timeout']} after {time.monotonic() - t0:.2f} s")
        failures += box["timeout"] != 1.0
        # The format rule on 250 repeated tag pairs (the old regex backtracked for ~55 s here).
        t0 = time.monotonic()
        compute_score("math", "<think>a</think><answer>" * 250, "1")
        print(f"250 repeated <think>/<answer> tags: {1000 * (time.monotonic() - t0):.1f} ms")
    finally:
        shutdown_verifiers()
    print("self-check", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(_self_check())
