"""Write the bundled data of every method, so a default run needs no download.

    python -m common.make_bundled_data              # writes grpo/ ppo/ dapo/ gspo/ sft/ data/
    python -m common.make_bundled_data --check      # exit 1 if the files differ from a fresh run

Offers:
- make_problem(rng) -> Problem: one grade-school math word problem with an exact integer answer,
  from one of TEMPLATES (shopping, rates, travel, ages, sums/differences, multi-step, discounts,
  sharing, saving), with a step-by-step solution ending in "#### N" (GSM8K's answer format).
- make_problems(n, seed) -> list[Problem]: n problems with distinct questions, deterministic.
- build_all(seed) -> {relative path: rows}: every bundled file's rows (RL parquet rows in verl's
  schema, SFT `messages` rows, the batch evaluator's test.json rows).
- write_all(out_root, seed): writes them (atomically) plus a README.md per data/ folder.

Real GSM8K cannot be downloaded here, so the problems are synthetic: the same shape
(a short story, 2-4 arithmetic steps, an integer answer), scored by verl's `openai/gsm8k`
scorer, which compares the number after "####" with the ground truth string.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.data_utils import GSM8K_INSTRUCTION, DataError, file_mode, make_rl_row_fn, write_parquet

SEED = 0
DATA_SOURCE = "openai/gsm8k"
# 2,000 train prompts = 16 steps of a 128-prompt batch; 200 val prompts keep validation ~1 min on 1 GPU.
RL_TRAIN, RL_VAL = 2000, 200
SFT_TRAIN, SFT_VAL = 2000, 200
# 30 rows: enough for the batch evaluator to show a spread of scores, small enough to read by eye.
TEST_ROWS = 30
# Share of SFT conversations with a follow-up question (multi-turn) and with a system message.
FOLLOW_UP_RATE, SYSTEM_RATE = 0.15, 0.10
RL_METHODS = ("grpo", "ppo", "dapo", "gspo")
SFT_SYSTEM = 'You are a careful math tutor. Show your steps and give the final answer after "####".'

NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Mark",
         "Sofia", "Omar", "Priya", "Liam", "Chen", "Maria", "Noah", "Aisha", "Diego", "Emma"]
ITEMS = [("apple", 1, 3), ("notebook", 2, 6), ("pencil", 1, 2), ("sandwich", 4, 9), ("book", 5, 15),
         ("toy car", 3, 12), ("cupcake", 2, 5), ("T-shirt", 6, 20), ("plant", 3, 10), ("ticket", 5, 25)]
THINGS = ["marbles", "stickers", "stamps", "seashells", "baseball cards", "beads"]


@dataclass(frozen=True)
class Problem:
    """A word problem: its template, the numbers drawn, the question, a worked solution and the answer."""

    template: str
    params: dict
    question: str
    solution: str
    answer: int


def _shopping(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    (item1, lo1, hi1), (item2, lo2, hi2) = rng.sample(ITEMS, 2)
    a, b = rng.randint(2, 6), rng.randint(2, 6)
    p, q = rng.randint(lo1, hi1), rng.randint(lo2, hi2)
    cost = a * p + b * q
    bill = next(x for x in (20, 50, 100, 200, 500) if x > cost)
    ans = bill - cost
    question = (f"{name} buys {a} {item1}s for ${p} each and {b} {item2}s for ${q} each. "
                f"{name} pays with a ${bill} bill. How much change, in dollars, does {name} get back?")
    solution = (f"The {item1}s cost {a} * {p} = {a * p} dollars.\n"
                f"The {item2}s cost {b} * {q} = {b * q} dollars.\n"
                f"Altogether {name} spends {a * p} + {b * q} = {cost} dollars.\n"
                f"The change is {bill} - {cost} = {ans} dollars.\n#### {ans}")
    return Problem("shopping", dict(a=a, p=p, b=b, q=q, bill=bill), question, solution, ans)


def _reading_rate(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    r, h, d = rng.randint(8, 40), rng.randint(2, 5), rng.randint(3, 14)
    ans = r * h * d
    question = (f"{name} reads {r} pages per hour and reads for {h} hours every day. "
                f"How many pages does {name} read in {d} days?")
    solution = (f"Each day {name} reads {r} * {h} = {r * h} pages.\n"
                f"In {d} days that is {r * h} * {d} = {ans} pages.\n#### {ans}")
    return Problem("rate", dict(r=r, h=h, d=d), question, solution, ans)


def _travel(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    v, t, w, s = rng.randint(30, 90), rng.randint(1, 4), rng.randint(20, 70), rng.randint(1, 3)
    ans = v * t + w * s
    question = (f"{name} drives at {v} km per hour for {t} hours, then at {w} km per hour for {s} hours. "
                f"How many kilometers does {name} drive in total?")
    solution = (f"First part: {v} * {t} = {v * t} km.\n"
                f"Second part: {w} * {s} = {w * s} km.\n"
                f"Total: {v * t} + {w * s} = {ans} km.\n#### {ans}")
    return Problem("travel", dict(v=v, t=t, w=w, s=s), question, solution, ans)


def _ages(rng: random.Random) -> Problem:
    older, younger = rng.sample(NAMES, 2)
    k, b, n = rng.randint(2, 4), rng.randint(3, 15), rng.randint(2, 10)
    a = k * b
    ans = (a + n) + (b + n)
    question = (f"{older} is {k} times as old as {younger}. {younger} is {b} years old. "
                f"What will be the sum of their ages in {n} years?")
    solution = (f"{older} is {k} * {b} = {a} years old.\n"
                f"In {n} years {older} will be {a} + {n} = {a + n} and {younger} will be {b} + {n} = {b + n}.\n"
                f"The sum is {a + n} + {b + n} = {ans}.\n#### {ans}")
    return Problem("ages", dict(k=k, b=b, n=n), question, solution, ans)


def _sum_difference(rng: random.Random) -> Problem:
    name, friend = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    a = rng.randint(30, 150)
    b = rng.randint(5, a - 10)
    c, d = rng.randint(3, 40), rng.randint(2, 25)
    ans = a - b + c + d
    question = (f"{name} has {a} {thing}. {name} gives {b} of them to {friend}, then finds {c} more, "
                f"and later gets {d} from a neighbor. How many {thing} does {name} have now?")
    solution = (f"After giving some away: {a} - {b} = {a - b}.\n"
                f"After finding more: {a - b} + {c} = {a - b + c}.\n"
                f"After the neighbor: {a - b + c} + {d} = {ans}.\n#### {ans}")
    return Problem("sum_difference", dict(a=a, b=b, c=c, d=d), question, solution, ans)


def _bakery(rng: random.Random) -> Problem:
    a, b = rng.randint(3, 12), rng.randint(6, 24)
    total = a * b
    # The rest after the morning must be even so "half of the rest" is a whole number.
    c = rng.randrange(2 - total % 2, total - 2, 2)
    rest = total - c
    half = rest // 2
    ans = rest - half
    question = (f"A bakery bakes {a} trays of cookies with {b} cookies on each tray. It sells {c} cookies in "
                f"the morning and half of the remaining cookies in the afternoon. How many cookies are left?")
    solution = (f"The bakery bakes {a} * {b} = {total} cookies.\n"
                f"After the morning {total} - {c} = {rest} remain.\n"
                f"In the afternoon it sells {rest} / 2 = {half}.\n"
                f"So {rest} - {half} = {ans} cookies are left.\n#### {ans}")
    return Problem("bakery", dict(a=a, b=b, c=c), question, solution, ans)


def _discount(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    item = rng.choice(["jacket", "pair of shoes", "backpack", "lamp", "board game"])
    d = rng.choice([10, 20, 25, 50])
    # A price that is a multiple of 20 makes every discount above a whole number of dollars.
    p, n = 20 * rng.randint(1, 10), rng.randint(2, 5)
    off = p * d // 100
    ans = (p - off) * n
    question = (f"A {item} costs ${p}. During a sale every {item} is {d}% off. "
                f"{name} buys {n} of them. How many dollars does {name} pay?")
    solution = (f"The discount is {p} * {d} / 100 = {off} dollars.\n"
                f"Each one costs {p} - {off} = {p - off} dollars.\n"
                f"For {n} of them: {p - off} * {n} = {ans} dollars.\n#### {ans}")
    return Problem("discount", dict(p=p, d=d, n=n), question, solution, ans)


def _sharing(rng: random.Random) -> Problem:
    n = rng.randint(2, 8)
    m, c = n * rng.randint(1, 4), rng.randint(5, 30)
    total = m * c
    ans = total // n
    thing = rng.choice(THINGS)
    question = (f"{n} friends buy {m} packs of {thing} with {c} in each pack and share them equally. "
                f"How many {thing} does each friend get?")
    solution = (f"There are {m} * {c} = {total} {thing}.\n"
                f"Each friend gets {total} / {n} = {ans}.\n#### {ans}")
    return Problem("sharing", dict(n=n, m=m, c=c), question, solution, ans)


def _saving(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    s, weeks, have = rng.randint(5, 30), rng.randint(3, 20), rng.randint(10, 80)
    target = have + s * weeks
    need = target - have
    question = (f"{name} wants a bike that costs ${target}. {name} already has ${have} and saves ${s} "
                f"every week. How many weeks will it take to have enough money?")
    solution = (f"{name} still needs {target} - {have} = {need} dollars.\n"
                f"At {s} dollars a week that takes {need} / {s} = {weeks} weeks.\n#### {weeks}")
    return Problem("saving", dict(target=target, have=have, s=s), question, solution, weeks)


TEMPLATES: dict[str, Callable[[random.Random], Problem]] = {
    "shopping": _shopping,
    "rate": _reading_rate,
    "travel": _travel,
    "ages": _ages,
    "sum_difference": _sum_difference,
    "bakery": _bakery,
    "discount": _discount,
    "sharing": _sharing,
    "saving": _saving,
}


def make_problem(rng: random.Random) -> Problem:
    """One problem from a template chosen by rng."""
    return TEMPLATES[rng.choice(sorted(TEMPLATES))](rng)


def make_problems(n: int, seed: int = SEED) -> list[Problem]:
    """n problems with distinct question texts; the same seed always gives the same list."""
    rng, seen, out = random.Random(seed), set(), []
    # 9 templates x thousands of number draws each: 4,430 distinct questions come in ~4,500 draws.
    for _ in range(n * 20):
        problem = make_problem(rng)
        if problem.question not in seen:
            seen.add(problem.question)
            out.append(problem)
            if len(out) == n:
                return out
    raise RuntimeError(f"only {len(out)} distinct problems in {n * 20} draws")


def _sft_messages(problem: Problem, rng: random.Random) -> list[dict]:
    msgs = [{"role": "system", "content": SFT_SYSTEM}] if rng.random() < SYSTEM_RATE else []
    msgs += [
        {"role": "user", "content": f"{problem.question} {GSM8K_INSTRUCTION}"},
        {"role": "assistant", "content": problem.solution},
    ]
    if rng.random() < FOLLOW_UP_RATE:
        k = rng.randint(2, 9)
        if rng.random() < 0.5:
            ask, step, value = f"What is that answer times {k}?", f"{problem.answer} * {k}", problem.answer * k
        else:
            ask, step, value = f"And if you add {k} to that answer?", f"{problem.answer} + {k}", problem.answer + k
        msgs += [
            {"role": "user", "content": ask},
            {"role": "assistant", "content": f"{step} = {value}.\n#### {value}"},
        ]
    return msgs


def build_all(seed: int = SEED) -> dict[str, list[dict]]:
    """Every bundled file's rows, keyed by path relative to the repository root."""
    problems = make_problems(RL_TRAIN + RL_VAL + SFT_TRAIN + SFT_VAL + TEST_ROWS, seed)
    # Disjoint slices: RL train | RL val | SFT train | SFT val | evaluator test set.
    cuts = [0, RL_TRAIN, RL_VAL, SFT_TRAIN, SFT_VAL, TEST_ROWS]
    bounds = [sum(cuts[: i + 1]) for i in range(len(cuts))]
    rl_train, rl_val, sft_train, sft_val, test = (problems[a:b] for a, b in zip(bounds, bounds[1:], strict=False))

    def evaluator_rows(part: list[Problem], prefix: str) -> list[dict]:
        return [
            {"id": f"{prefix}-{i:05d}", "prompt": p.question, "ground_truth": str(p.answer), "data_source": DATA_SOURCE}
            for i, p in enumerate(part)
        ]

    def rl_rows(part: list[Problem], split: str) -> list[dict]:
        build = make_rl_row_fn("plain", split=split, prompt_template="{prompt} " + GSM8K_INSTRUCTION)
        return [build(rec, i) for i, rec in enumerate(evaluator_rows(part, split))]

    out: dict[str, list[dict]] = {}
    train, val = rl_rows(rl_train, "train"), rl_rows(rl_val, "val")
    for method in RL_METHODS:
        out[f"{method}/data/train.parquet"] = train
        out[f"{method}/data/val.parquet"] = val
    rng = random.Random(seed + 1)
    out["sft/data/train.parquet"] = [{"messages": _sft_messages(p, rng)} for p in sft_train]
    out["sft/data/val.parquet"] = [{"messages": _sft_messages(p, rng)} for p in sft_val]
    test_rows = evaluator_rows(test, "test")
    for row in test_rows:
        row["prompt"] = f"{row['prompt']} {GSM8K_INSTRUCTION}"
    out["grpo/data/test.json"] = test_rows
    return out


RL_README = """# {method}/data

Bundled, synthetic grade-school math word problems (GSM8K-style: a short story, 2-4 arithmetic
steps, an integer answer) so the default `{method}` run needs no download.

| file | rows | what |
|---|---|---|
| train.parquet | {train:,} | training prompts |
| val.parquet | {val:,} | validation prompts, disjoint from train |
{extra}
Schema (verl's RL parquet, read by `verl.utils.dataset.rl_dataset.RLHFDataset`):

- `data_source` (str): `openai/gsm8k`: common/reward_functions.py (the default reward) and verl's
  own gsm8k scorer both compare the number after `####`
- `prompt` (list of {{role, content}}): one user turn, the question followed by
  `Let's think step by step and output the final answer after "####".`
- `ability` (str): `math`
- `reward_model` ({{style, ground_truth}}): `rule`, the integer answer as a string, e.g. `"72"`
- `extra_info` ({{split, index, id, question}})

grpo/, ppo/, dapo/ and gspo/ hold the same files, so the methods are compared on the same data.
Use your own data with `python -m common.data_utils rl IN.jsonl OUT.parquet` (see `--help`).

Regenerate (deterministic, seed {seed}):

    python -m common.make_bundled_data
"""

TEST_README_ROW = (
    "| test.json | {test} | batch evaluator set: a JSON list of {{id, prompt, ground_truth, data_source}}, "
    "disjoint from train and val |\n"
)

SFT_README = """# sft/data

Bundled, synthetic grade-school math conversations so the default `sft` run needs no download.

| file | rows | what |
|---|---|---|
| train.parquet | {train:,} | training conversations |
| val.parquet | {val:,} | validation conversations, disjoint from train |

Schema (the `messages` column verl's `MultiTurnSFTDataset` reads, `data.messages_key=messages`):

- `messages` (list of {{role, content}}): a user question ending in
  `Let's think step by step and output the final answer after "####".`, and an assistant
  step-by-step solution ending in `#### N`. About {follow:.0%} of conversations add a follow-up
  user question and a second assistant answer (multi-turn); about {system:.0%} start with a
  system message. The loss covers the assistant turns only.

The questions are disjoint from the RL methods' train/val/test sets.
Use your own data with `python -m common.data_utils sft IN.json OUT.parquet` (Alpaca, ShareGPT,
OpenAI messages or prompt/response; see `--help`).

Regenerate (deterministic, seed {seed}):

    python -m common.make_bundled_data
"""


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def readmes(seed: int = SEED) -> dict[str, str]:
    """README.md text of every data/ folder, keyed by relative path."""
    out = {}
    for method in RL_METHODS:
        extra = TEST_README_ROW.format(test=TEST_ROWS) if method == "grpo" else ""
        out[f"{method}/data/README.md"] = RL_README.format(
            method=method, train=RL_TRAIN, val=RL_VAL, extra=extra, seed=seed
        )
    out["sft/data/README.md"] = SFT_README.format(
        train=SFT_TRAIN, val=SFT_VAL, follow=FOLLOW_UP_RATE, system=SYSTEM_RATE, seed=seed
    )
    return out


def write_all(out_root: str | Path = ".", seed: int = SEED) -> list[Path]:
    """Write every bundled file under out_root (atomically); returns the paths written."""
    root, written = Path(out_root), []
    for rel, rows in build_all(seed).items():
        path = root / rel
        if path.suffix == ".json":
            _write_text_atomic(path, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        else:
            write_parquet(rows, path)
        written.append(path)
    for rel, text in readmes(seed).items():
        _write_text_atomic(root / rel, text)
        written.append(root / rel)
    return written


def check_all(out_root: str | Path = ".", seed: int = SEED) -> list[str]:
    """Paths under out_root whose rows differ from a fresh build (missing files included)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stale = []
    for rel, rows in build_all(seed).items():
        path = Path(out_root) / rel
        if not path.is_file():
            stale.append(f"{rel} (missing)")
        elif path.suffix == ".json":
            if json.loads(path.read_text(encoding="utf-8")) != rows:
                stale.append(rel)
        elif pq.read_table(path).to_pylist() != pa.Table.from_pylist(rows).to_pylist():
            stale.append(rel)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.make_bundled_data", description=__doc__.splitlines()[0])
    parser.add_argument("--out_root", default=str(Path(__file__).resolve().parents[1]),
                        help="repository root to write under (default: this repository)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default: {SEED})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files are stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = check_all(args.out_root, args.seed)
            for rel in stale:
                print(f"stale: {rel}", file=sys.stderr)
            print("bundled data up to date" if not stale else "run: python -m common.make_bundled_data")
            return 1 if stale else 0
        for path in write_all(args.out_root, args.seed):
            size = path.stat().st_size
            print(f"{path}  {size / 1024:,.1f} KiB")
        return 0
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
