"""Throughput and agreement of common/reward_functions.py against verl's scorers and math-verify.

    .venv/bin/python benchmarks/bench_reward.py                 # 2,000 integers + 400 mixed
    .venv/bin/python benchmarks/bench_reward.py --n-int 500 --n-mixed 100   # quicker

Two sets of responses with a short reasoning preamble and a \\boxed{} answer (gsm8k's scorer
gets the same answer after "####", its native form), about 70% right:

- int: ordinary boxed integers, the bulk of RL math rewards;
- mixed: fractions, decimals, percents, sets, intervals, matrices, surds and polynomials.

For each scorer it prints responses per second, the ratio against plain math-verify
(``verify(parse("$gold$"), parse(response))`` in-process), and how often its 0/1 verdict
agrees with plain math-verify's. All in one process, one after the other, so ratios compare
like with like; absolute numbers depend on the machine.
"""

import argparse
import logging
import random
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import reward_functions as rf  # noqa: E402

PREAMBLES = [
    "Let me work through this step by step. First we simplify the expression, then substitute.",
    "We set up the equation from the problem statement and solve for the unknown quantity.",
    "Counting the cases separately and adding them up gives the total.",
]


def _mixed_pair(rng: random.Random) -> tuple[str, str, str]:
    """(gold, an equivalent prediction, a wrong prediction) with fresh random numbers."""
    a, b = rng.randint(1, 40), rng.randint(41, 90)
    kind = rng.randrange(8)
    if kind == 0:
        return f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{2 * a}}}{{{2 * b}}}", f"\\frac{{{a + 1}}}{{{b}}}"
    if kind == 1:
        return f"{a}.5", f"\\frac{{{2 * a + 1}}}{{2}}", f"{a}.25"
    if kind == 2:
        return f"{a}\\%", f"{a}", f"{a + 1}\\%"
    if kind == 3:
        return f"\\{{{a},{b}\\}}", f"\\{{{b}, {a}\\}}", f"\\{{{a},{b + 1}\\}}"
    if kind == 4:
        return f"[{a},{b})", f"[{a}, {b})", f"[{a},{b}]"
    if kind == 5:
        m = f"\\begin{{pmatrix}}{a}&{b}\\\\{b}&{a}\\end{{pmatrix}}"
        return m, m.replace("&", " & "), m.replace(f"{a}\\end", f"{a + 1}\\end")
    if kind == 6:
        return f"{a}\\sqrt{{2}}", f"\\sqrt{{{2 * a * a}}}", f"{a}\\sqrt{{3}}"
    return f"(x+{a})^2", f"x^2+{2 * a}x+{a * a}", f"x^2+{a * a}"


def make_sets(n_int: int, n_mixed: int, seed: int = 0) -> dict[str, list[tuple[str, str, str]]]:
    """{set name: [(gold, answer written by the model, preamble)]}."""
    rng = random.Random(seed)
    ints = []
    for _ in range(n_int):
        gold = rng.randint(-1000, 100_000)
        answer = gold if rng.random() < 0.7 else gold + rng.choice([-2, -1, 1, 10])
        ints.append((str(gold), str(answer), rng.choice(PREAMBLES)))
    mixed = []
    for _ in range(n_mixed):
        gold, right, wrong = _mixed_pair(rng)
        mixed.append((gold, right if rng.random() < 0.7 else wrong, rng.choice(PREAMBLES)))
    return {"int": ints, "mixed": mixed}


def boxed(preamble: str, answer: str) -> str:
    return f"{preamble}\nTherefore the answer is $\\boxed{{{answer}}}$."


def scorers() -> dict:
    """{name: (fn(gold, response) -> 0/1, how the response is written)}."""
    from math_verify import parse, verify
    from verl.utils.reward_score import gsm8k, math_dapo, math_reward
    from verl.utils.reward_score import math_verify as verl_math_verify

    def gsm8k_form(preamble: str, answer: str) -> str:
        return f"{preamble}\n#### {answer}"

    return {
        "math-verify (plain)": (lambda g, r: float(verify(parse(f"${g}$"), parse(r))), boxed),
        "common.reward_functions": (lambda g, r: rf.compute_score("math", r, g)["acc"], boxed),
        "verl math_verify wrapper": (lambda g, r: float(verl_math_verify.compute_score(r, g)), boxed),
        "verl math_dapo": (lambda g, r: float(math_dapo.compute_score(r, g)["acc"]), boxed),
        "verl math_reward": (lambda g, r: float(math_reward.compute_score(r, g)), boxed),
        "verl gsm8k": (lambda g, r: float(gsm8k.compute_score(r, g)), gsm8k_form),
    }


def run(n_int: int, n_mixed: int) -> None:
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    sets = make_sets(n_int, n_mixed)
    table = scorers()
    for set_name, rows in sets.items():
        reference = None
        print(f"\n== {set_name}: {len(rows)} responses")
        print(f"{'scorer':<26} {'resp/s':>10} {'x math-verify':>14} {'agree':>7}")
        baseline_rate = None
        for name, (fn, render) in table.items():
            if set_name == "mixed" and name == "verl gsm8k":
                continue  # numbers only: LaTeX answers are not its job
            responses = [render(pre, ans) for _, ans, pre in rows]
            fn(rows[0][0], responses[0])  # warm-up: worker processes and imports are not timed
            start = time.perf_counter()
            verdicts = [fn(gold, resp) for (gold, _, _), resp in zip(rows, tqdm(responses, desc=name, leave=False))]
            rate = len(rows) / (time.perf_counter() - start)
            if reference is None:
                reference, baseline_rate = verdicts, rate
            agree = sum(v == r for v, r in zip(verdicts, reference)) / len(rows)
            print(f"{name:<26} {rate:>10,.0f} {rate / baseline_rate:>13.1f}x {agree:>7.1%}")
    rf.shutdown_verifiers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-int", type=int, default=2000, help="boxed-integer responses (default 2000)")
    parser.add_argument("--n-mixed", type=int, default=400, help="mixed LaTeX responses (default 400)")
    args = parser.parse_args()
    if args.n_int < 1 or args.n_mixed < 1:
        parser.error("--n-int and --n-mixed must be >= 1")
    run(args.n_int, args.n_mixed)


if __name__ == "__main__":
    main()
