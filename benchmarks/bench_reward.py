"""Agreement and speed of common/reward_functions.py against math-verify, and its worst case.

    .venv/bin/python benchmarks/bench_reward.py                   # ~3 minutes on 2 busy cores
    .venv/bin/python benchmarks/bench_reward.py --per-kind 30     # quicker

Everything is measured in one process, one scorer after the other, so the ratios compare like
with like; absolute numbers depend on the machine. It prints:

1. Agreement on the labelled table of tests/common/test_reward_functions.py (LABELLED):
   with the labels, with math-verify's verdict on the answers the reward extracts (the
   "math-verify path": the exact forms must never differ from it), and with plain math-verify
   on the whole response (``verify(parse("$gold$"), parse(response))``, its own extraction).
2. The same on a seeded generator of the ten typical kinds (integers, integers with
   separators, fractions, decimals, radicals, multiples of pi, tuples, equations, percentages,
   intervals): half equivalent pairs, half near misses, written in varied LaTeX; then on
   seeded pairs across kinds (a percent against a fraction, a pair against an interval, ...),
   where only the exact forms' agreement with the math-verify path is counted.
3. Speed on model-like responses of the ten kinds (a reasoning preamble and a final answer in
   a box, a Minerva line, an "Answer:" line or <answer> tags): responses per second and the
   ratio against plain math-verify, for compute_score alone, under common/reward_guard.py
   (worker process and thread), and verl's own scorers for reference; then what the guard
   adds per call on a function that returns a constant.
4. The worst time per call on the adversarial inputs of tests/common/test_reward_functions.py.
"""

import argparse
import logging
import random
import sys
import time
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import math_answer  # noqa: E402
from common import reward_functions as rf  # noqa: E402

KINDS = ("integer", "separators", "fraction", "decimal", "radical", "pi", "tuple", "equation", "percent", "interval")
PREAMBLES = (
    "Let me work through this step by step. First we simplify the expression, then substitute the values.",
    "We set up the equation from the problem statement and solve for the unknown quantity.",
    "Counting the cases separately and adding them up, we check each one: 3 + 4 = 7 and 2 * 5 = 10.",
)


# ---------------------------------------------------------------------------------------------
# The seeded generator of the ten kinds
# ---------------------------------------------------------------------------------------------


def _frac(fr: Fraction, rng: random.Random) -> str:
    sign, fr = ("-" if fr < 0 else ""), abs(fr)
    if fr.denominator == 1:
        return sign + str(fr.numerator)
    style = rng.choice(("frac", "dfrac", "tfrac", "slash", "minus inside"))
    if style == "slash":
        return f"{sign}{fr.numerator}/{fr.denominator}"
    if style == "minus inside" and sign:
        return f"\\frac{{-{fr.numerator}}}{{{fr.denominator}}}"
    return f"{sign}\\{'frac' if style == 'minus inside' else style}{{{fr.numerator}}}{{{fr.denominator}}}"


def _pi(fr: Fraction, style: int) -> str:
    if fr.denominator == 1:
        return "\\pi" if fr.numerator == 1 else f"{fr.numerator}\\pi"
    top = "\\pi" if fr.numerator == 1 else f"{fr.numerator}\\pi"
    return (f"\\frac{{{top}}}{{{fr.denominator}}}", f"\\frac{{{fr.numerator}}}{{{fr.denominator}}}\\pi",
            f"{top}/{fr.denominator}")[style]


def typical_pair(kind: str, rng: random.Random) -> tuple[str, str]:
    """(ground truth, answer) of one kind; the answer is equivalent about half of the time."""
    same = rng.random() < 0.5
    if kind == "integer":
        gold = rng.randint(-500, 5000)
        pred = gold if same else gold + rng.choice((-10, -1, 1, 10))
        return str(gold), rng.choice((str(pred), f"{pred}.0", f"{pred}.00")) if same else str(pred)
    if kind == "separators":
        gold = rng.randint(1000, 10**9)
        pred = gold if same else gold + rng.choice((-1, 1, 9, 1000))
        spellings = (f"{pred:,}", f"{pred:,}".replace(",", "{,}"), str(pred), f"{pred:,}.00")
        return rng.choice((str(gold), f"{gold:,}")), rng.choice(spellings)
    if kind == "fraction":
        gold = Fraction(rng.randint(1, 60), rng.randint(2, 60)) * rng.choice((1, -1))
        pred = gold if same else gold + Fraction(rng.choice((1, -1)), rng.randint(2, 90))
        style = rng.choice(("plain", "unreduced", "decimal"))
        if style == "unreduced":
            k = rng.randint(2, 5)
            text = ("-" if pred < 0 else "") + f"\\frac{{{abs(pred.numerator) * k}}}{{{pred.denominator * k}}}"
        elif style == "decimal":
            text = f"{float(pred):.{rng.choice((1, 2, 3, 4, 6, 7, 8))}f}"
        else:
            text = _frac(pred, rng)
        return _frac(gold, rng), text
    if kind == "decimal":
        gold = Fraction(rng.randint(-99999, 99999), 10 ** rng.randint(1, 4))
        if same:
            pred = rng.choice((str(float(gold)), f"{float(gold):.6f}", _frac(gold, rng)))
        else:
            pred = str(float(gold + Fraction(rng.choice((1, -1, 3)), 10 ** rng.randint(1, 7))))
        return str(float(gold)), pred
    if kind == "radical":
        c, m = rng.randint(1, 9), rng.choice((2, 3, 5, 6, 7, 10, 11))
        gold = rng.choice((f"{c}\\sqrt{{{m}}}" if c > 1 else f"\\sqrt{{{m}}}", f"\\sqrt{{{c * c * m}}}"))
        if same:
            pred = rng.choice((f"\\sqrt{{{c * c * m}}}", f"{c}\\sqrt{{{m}}}", f"\\frac{{{2 * c}\\sqrt{{{m}}}}}{{2}}",
                               f"{c * m ** 0.5:.6f}", f"\\frac{{{c * m}}}{{\\sqrt{{{m}}}}}"))
        else:
            pred = rng.choice((f"{c}\\sqrt{{{m + 1}}}", f"{c + 1}\\sqrt{{{m}}}", f"{c * m ** 0.5:.3f}", f"\\sqrt{{{c * m}}}"))
        return gold, pred
    if kind == "pi":
        fr = Fraction(rng.randint(1, 12), rng.choice((1, 2, 3, 4, 6)))
        gold = _pi(fr, rng.randrange(3))
        if same:
            pred = rng.choice((_pi(fr, rng.randrange(3)), f"{float(fr) * 3.141592653589793:.6f}"))
        else:
            other = fr + Fraction(1, rng.choice((2, 3, 4)))
            pred = rng.choice((_pi(other, rng.randrange(3)), f"{float(fr) * 3.14:.2f}", str(float(fr))))
        return gold, pred
    if kind == "tuple":
        xs = [rng.randint(-9, 9) for _ in range(rng.choice((2, 3)))]
        ys = list(xs)
        if not same:
            ys[rng.randrange(len(ys))] += rng.choice((1, -1))
            if rng.random() < 0.3:
                ys = xs[::-1]
        left, right = rng.choice((("(", ")"), ("\\left(", "\\right)")))
        return "(" + ",".join(map(str, xs)) + ")", left + rng.choice((",", ", ")).join(map(str, ys)) + right
    if kind == "equation":
        var = rng.choice("xyabnkt")
        value = Fraction(rng.randint(-20, 20), rng.choice((1, 1, 2)))
        other = value if same else value + 1
        gold = rng.choice((f"{var}={_frac(value, rng)}", _frac(value, rng)))
        return gold, rng.choice((f"{var} = {_frac(other, rng)}", f"{var}={_frac(other, rng)}", _frac(other, rng)))
    if kind == "percent":
        gold = Fraction(rng.randint(1, 1999), rng.choice((1, 1, 10)))
        pred = gold if same else gold + rng.choice((1, Fraction(1, 10)))
        g, p = f"{float(gold):g}", f"{float(pred):g}"
        return rng.choice((g, g + "\\%", g + "%")), rng.choice((p + "\\%", p, p + "%", p + " \\%"))
    if kind == "interval":
        a = rng.randint(-10, 5)
        b = a + rng.randint(1, 10)
        lo, hi = rng.choice("(["), rng.choice(")]")
        ends = [str(a), str(b)]
        if rng.random() < 0.3:
            ends[0], lo = "-\\infty", "("
        if rng.random() < 0.3:
            ends[1], hi = "\\infty", ")"
        gold = f"{lo}{ends[0]},{ends[1]}{hi}"
        if rng.random() < 0.25 and ends[1] != "\\infty":
            gold += f"\\cup({b + 2},{b + 5}]"
        pred = gold.replace(",", ", ")
        if not same:
            if ends[0] != "-\\infty" and rng.random() < 0.5:
                pred = pred.replace(lo, "[" if lo == "(" else "(", 1)  # the other bracket
            elif ends[0] != "-\\infty":
                pred = pred.replace(f"{ends[0]},", f"{a - 1},", 1)  # the left end moved
            elif ends[1] != "\\infty":
                pred = pred.replace(f", {ends[1]}", f", {b + 1}", 1)
            else:
                pred = "(-\\infty, 0) \\cup (0, \\infty)"  # the whole line but 0
        elif "\\cup" in pred and rng.random() < 0.5:
            first, second = pred.split("\\cup")
            pred = second + " \\cup " + first
        return gold, pred
    raise ValueError(f"unknown kind {kind!r}")


def _spelled_number(rng: random.Random) -> str:
    """One of a few values in one of many spellings, so that equal values meet often."""
    v = rng.choice((0, 1, 2, 3, 5, 10, 12, 25, 50, 100, 150, 200))
    return rng.choice((
        str(v), f"{v}.0", f"-{v}", f"{v / 100:g}", f"{v}%", f"{v}\\%", f"{v}.5%", f"{v / 100:g}%",
        f"\\frac{{{v}}}{{{rng.choice((2, 3, 4, 100))}}}", f"{v}/{rng.choice((2, 4))}", f"{v / 3:.{rng.choice((2, 6, 7))}f}",
        f"{rng.choice(('', '2', '3'))}\\sqrt{{{rng.choice((2, 3, 8, 12))}}}", f"{rng.choice(('', '2', '-'))}\\pi",
        f"{v * 1000:,}",
    ))


def cross_kind_pair(rng: random.Random) -> tuple[str, str]:
    """(ground truth, answer) drawn across kinds: numbers, percents of both kinds, pairs, sets,
    intervals, assignments; a third of the answers repeat the ground truth."""

    def form() -> str:
        a, b = sorted(rng.sample((0, 1, 2, 3, 5), 2))
        return rng.choice((
            _spelled_number(rng), _spelled_number(rng), f"({a},{b})", f"({b},{a})", f"\\{{{a},{b}\\}}",
            rng.choice("[(") + f"{a}," + rng.choice((str(b), "\\infty")) + rng.choice(")]"),
            f"{rng.choice('xy')}={_spelled_number(rng)}",
        ))

    gold = form()
    return gold, gold if rng.random() < 0.3 else form()


def render(answer: str, rng: random.Random) -> str:
    """A model-like response ending in ``answer``: mostly boxed, else another final-answer form."""
    preamble = rng.choice(PREAMBLES)
    form = rng.random()
    if form < 0.7:
        return f"{preamble}\nTherefore the answer is $\\boxed{{{answer}}}$."
    if form < 0.8:
        return f"{preamble}\nFinal Answer: The final answer is ${answer}$. I hope it is correct."
    if form < 0.9:
        return f"<think>{preamble}</think>\n<answer>${answer}$</answer>"
    return f"{preamble}\nAnswer: ${answer}$"


def generated(per_kind: int, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """[(kind, ground truth, answer, response)], ``per_kind`` of each kind."""
    rng = random.Random(seed)
    rows = []
    for kind in KINDS:
        for _ in range(per_kind):
            gold, answer = typical_pair(kind, rng)
            rows.append((kind, gold, answer, render(answer, rng)))
    return rows


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


def _mv():
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    return parse, verify


def plain_math_verify(gold: str, response: str) -> bool:
    """math-verify on the whole response, with its own extraction: the baseline."""
    parse, verify = _mv()
    return bool(verify(parse(f"${gold}$"), parse(response)))


def math_verify_path(gold: str, answer: str) -> bool:
    """math-verify on an extracted answer, as the reward's worker runs it."""
    parse, verify = _mv()
    return bool(verify(parse(f"${rf._normalize_for_verify(gold)}$"), parse(f"${rf._normalize_for_verify(answer)}$")))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def table_agreement() -> None:
    from tests.common.test_reward_functions import KNOWN_MISS, LABELLED

    n = len(LABELLED)
    agree_label = agree_plain = plain_label = decided = fast_wrong = agree_where_plain_right = 0
    for row in tqdm(LABELLED, desc="labelled table", leave=False):
        response, gold, label = row[:3]
        ours = rf.compute_score("math", response, gold)
        plain = plain_math_verify(gold, response)
        agree_label += ours["acc"] == float(label)
        agree_plain += ours["acc"] == float(plain)
        plain_label += plain == label
        agree_where_plain_right += plain == label and ours["acc"] == float(plain)
        pred = ours["pred"]
        if pred:
            for g in rf._gold_list(gold):
                fast = math_answer.compare(rf._canonical(pred), rf._canonical(g))
                if fast is not None:
                    decided += 1
                    fast_wrong += fast != math_verify_path(g, pred)
    misses = sum(1 for row in LABELLED if KNOWN_MISS in row[3:])
    print(f"\n== labelled table: {n} pairs (tests/common/test_reward_functions.py, {misses} marked KNOWN_MISS)")
    print(f"compute_score agrees with the labels        {_pct(agree_label, n):>7}")
    print(f"plain math-verify agrees with the labels    {_pct(plain_label, n):>7}")
    print(f"compute_score agrees with plain math-verify {_pct(agree_plain, n):>7}")
    print(f"  ... on the {plain_label} pairs where plain math-verify matches the label: "
          f"{_pct(agree_where_plain_right, plain_label)} (the other pairs are math-verify's misses)")
    print(f"exact forms decide {decided} answer pairs; they differ from the math-verify path on {fast_wrong} "
          f"({_pct(decided - fast_wrong, decided)} agreement)")


def generator_agreement(per_kind: int, seed: int) -> None:
    rows = generated(per_kind, seed)
    print(f"\n== seeded generator: {per_kind} pairs per kind, seed {seed}")
    print(f"{'kind':<11} {'decided':>8} {'vs math-verify path':>20} {'vs plain math-verify':>21}")
    total_agree = total = 0
    for kind in KINDS:
        decided = same_path = same_plain = count = 0
        for k, gold, answer, response in tqdm([r for r in rows if r[0] == kind], desc=kind, leave=False):
            count += 1
            ours = rf.compute_score("math", response, gold)
            extracted = ours["pred"]
            fast = math_answer.compare(rf._canonical(extracted), rf._canonical(gold)) if extracted else None
            path = math_verify_path(gold, extracted) if extracted else False
            if fast is not None:
                decided += 1
            same_path += ours["acc"] == float(path)
            same_plain += ours["acc"] == float(plain_math_verify(gold, response))
        total_agree += same_plain
        total += count
        print(f"{kind:<11} {_pct(decided, count):>8} {_pct(same_path, count):>20} {_pct(same_plain, count):>21}")
    print(f"{'all':<11} {'':>8} {'':>20} {_pct(total_agree, total):>21}")


def cross_kind_agreement(pairs: int, seed: int) -> None:
    rng = random.Random(seed)
    decided = differ = 0
    for _ in tqdm(range(pairs), desc="cross-kind", leave=False):
        gold, answer = cross_kind_pair(rng)
        fast = math_answer.compare(rf._canonical(answer), rf._canonical(gold))
        if fast is not None:
            decided += 1
            differ += fast != math_verify_path(gold, answer)
    print(f"\n== cross-kind forms: {pairs} pairs, seed {seed} (percent signs of both kinds, pairs against "
          "intervals and sets, ...)")
    print(f"exact forms decide {_pct(decided, pairs)}; they differ from the math-verify path on {differ} "
          f"({_pct(decided - differ, decided)} agreement)")


# ---------------------------------------------------------------------------------------------
# Speed and worst case
# ---------------------------------------------------------------------------------------------


def scorers() -> dict:
    """{name: fn(gold, response) -> 0/1}, all on the same responses."""
    from verl.utils.reward_score import math_dapo, math_reward
    from verl.utils.reward_score import math_verify as verl_math_verify

    from common.reward_guard import RewardGuard

    process = RewardGuard(source=(str(ROOT / "common" / "reward_functions.py"), "compute_score"), timeout_s=30)
    thread = RewardGuard(rf.compute_score, timeout_s=30, isolation="thread")
    return {
        "math-verify (plain)": plain_math_verify,
        "compute_score": lambda g, r: rf.compute_score("math", r, g)["acc"],
        "compute_score, guarded (process)": lambda g, r: process("math", r, g)["acc"],
        "compute_score, guarded (thread)": lambda g, r: thread("math", r, g)["acc"],
        "verl math_verify wrapper": lambda g, r: float(verl_math_verify.compute_score(r, g)),
        "verl math_dapo": lambda g, r: float(math_dapo.compute_score(r, g)["acc"]),
        "verl math_reward": lambda g, r: float(math_reward.compute_score(r, g)),
    }, (process, thread)


def speed(per_kind: int, seed: int) -> None:
    rows = generated(per_kind, seed + 1)
    table, guards = scorers()
    print(f"\n== speed: {len(rows)} model-like responses of the ten kinds")
    print(f"{'scorer':<34} {'resp/s':>9} {'x math-verify':>14} {'agree':>7}")
    reference, base = None, None
    for name, fn in table.items():
        fn(rows[0][1], rows[0][3])  # warm-up: worker processes and imports are not timed
        start = time.perf_counter()
        verdicts = [fn(gold, response) for _, gold, _, response in tqdm(rows, desc=name, leave=False)]
        rate = len(rows) / (time.perf_counter() - start)
        if reference is None:
            reference, base = verdicts, rate
        agree = sum(float(v) == float(r) for v, r in zip(verdicts, reference)) / len(rows)
        print(f"{name:<34} {rate:>9,.0f} {rate / base:>13.1f}x {agree:>7.1%}")
    for guard in guards:
        guard.close()


def constant_reward(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """The cheapest reward there is: what a guarded call costs on top of the function itself."""
    return {"score": 1.0, "acc": 1.0}


def guard_overhead(calls: int = 2000) -> None:
    from common.reward_guard import RewardGuard

    response = "\n".join(PREAMBLES) + "\nTherefore the answer is $\\boxed{42}$."
    print(f"\n== guard cost per call ({calls} calls of a function that returns a constant)")
    for isolation in ("process", "thread"):
        guard = RewardGuard(constant_reward, timeout_s=30, isolation=isolation,
                            source=(str(Path(__file__).resolve()), "constant_reward"))
        guard("math", response, "42")
        start = time.perf_counter()
        for _ in range(calls):
            guard("math", response, "42")
        print(f"{isolation:<8} {1000 * (time.perf_counter() - start) / calls:.3f} ms per call")
        guard.close()


def worst_case() -> None:
    from tests.common.test_reward_functions import ADVERSARIAL

    from common.reward_guard import RewardGuard

    guard = RewardGuard(source=(str(ROOT / "common" / "reward_functions.py"), "compute_score"), timeout_s=30)
    guard("math", "\\boxed{1}", "1")
    print(f"\n== adversarial inputs ({len(ADVERSARIAL)}), compute_score timeout_s=5, guard limit 30 s")
    print(f"{'input':<28} {'direct s':>9} {'guarded s':>10}  outcome")
    worst = 0.0
    for name, source, response, gold in ADVERSARIAL:
        start = time.perf_counter()
        try:
            outcome = str(rf.compute_score(source, response, gold)["acc"])
        except Exception as exc:
            outcome = type(exc).__name__
        direct = time.perf_counter() - start
        start = time.perf_counter()
        guarded = guard.call_checked(source, response, gold)
        guarded_s = time.perf_counter() - start
        worst = max(worst, direct, guarded_s)
        print(f"{name:<28} {direct:>9.3f} {guarded_s:>10.3f}  {outcome}; guarded: {guarded.kind or 'ok'}")
    print(f"worst time per call: {worst:.2f} s")
    guard.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=100, help="generated pairs per kind (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.per_kind < 1:
        parser.error("--per-kind must be >= 1")
    try:
        table_agreement()
        generator_agreement(args.per_kind, args.seed)
        cross_kind_agreement(10 * args.per_kind, args.seed)
        speed(args.per_kind, args.seed)
        guard_overhead()
        worst_case()
    finally:
        rf.shutdown_verifiers()


if __name__ == "__main__":
    main()
