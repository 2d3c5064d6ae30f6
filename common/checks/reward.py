"""The reward: the function imports, takes verl's arguments and scores real rows; every data_source
has a scorer; the dapo reward manager's overlong buffer is sound.

Offers:
- call_with_timeout(fn, timeout): fn() in a daemon thread; TimeoutError if it does not return.
- made_up_responses(prompt_text, ground_truth): a right and a wrong response in the prompt's format.
- data_source_checks(plan, cfg, ctx): every data_source of the files has a scorer (verl's default
  dispatch, or the reward model).
- reward_target(cfg): the user's reward function (path, name, kwargs, time limit), behind the guard or not.
- reward_checks(plan, cfg, ctx): import the custom reward function (guarded), check its signature,
  run it on sample rows, then fuzz it (common/reward_guard.py) and print its cost per step.
- reward_manager_checks(plan, cfg, ctx): DAPO's overlong buffer (verl asserts it in its reward workers).
"""

from __future__ import annotations

import inspect
import os
import threading
import time

from common.checks.data import sample_table
from common.checks.environment import reachable_url
from common.checks.result import Result, file_problem


# Rows of the train file the reward function is tried on (x 2 made-up responses each).
REWARD_SAMPLE_ROWS = 4
# Seconds allowed to import the reward file and for one call of the reward function.
REWARD_IMPORT_TIMEOUT_S = float(os.environ.get("PREFLIGHT_REWARD_IMPORT_TIMEOUT", "60"))
REWARD_CALL_TIMEOUT_S = float(os.environ.get("PREFLIGHT_REWARD_CALL_TIMEOUT", "10"))


def call_with_timeout(fn, timeout: float):
    """Run fn in a daemon thread; raise TimeoutError if it does not return in time."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"did not return within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def made_up_responses(prompt_text: str, ground_truth: str) -> tuple[str, str]:
    """(a response with the ground truth in the format the prompt asks for, a wrong one).

    >>> made_up_responses('... output the final answer after "####".', "42")[0]
    'The answer is 42.\\n#### 42'
    """
    wrong = "I am not sure."
    if "####" in prompt_text:
        return f"The answer is {ground_truth}.\n#### {ground_truth}", f"{wrong}\n#### 1234567"
    if "<answer>" in prompt_text:
        return f"<think>work</think>\n<answer>{ground_truth}</answer>", "<think>work</think>\n<answer>1234567</answer>"
    if "boxed" in prompt_text:
        return f"The answer is \\boxed{{{ground_truth}}}.", "The answer is \\boxed{1234567}."
    return f"The answer is {ground_truth}.", wrong


def data_source_checks(plan, cfg, ctx) -> list[Result]:
    """Every data_source of the train and val files has a scorer."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = ctx.get("train_files_ok", []) + ctx.get("val_files_ok", [])
    if plan.trainer == "sft" or not files:
        return []
    sources: dict[str, dict] = {}
    for f in files:
        col = pq.read_table(f, columns=["data_source"]).column("data_source")
        for value in pc.unique(col).to_pylist():
            sources.setdefault(value, {"file": f})
    custom = (cfg.reward.get("custom_reward_function") or {}).get("path")
    if not custom and (cfg.reward.get("reward_model") or {}).get("enable"):
        model = cfg.reward.reward_model.get("model_path")
        return [Result.ok("reward", f"the reward model {model} scores every data_source ({sorted(sources)}); "
                    "its weights are not loaded here")]
    if not custom:
        from verl.utils.reward_score import default_compute_score

        missing = []
        for ds in sources:
            try:
                call_with_timeout(lambda ds=ds: default_compute_score(ds, "", "0"), REWARD_CALL_TIMEOUT_S)
            except NotImplementedError:
                missing.append(ds)
            except Exception:  # the dispatch found a scorer; it just disliked the made-up answer
                pass
        if missing:
            return [Result.fail("reward", f"data_source {missing} has no scorer in verl's default_compute_score "
                          "(gsm8k, MATH, math_dapo, aime*, code contests, geometry3k, search-R1 ...): set "
                          "REWARD_FUNC_PATH to a function that handles it, or fix the data_source column", "REWARD_FUNC_PATH")]
        return [Result.ok("reward", f"verl's default scorer handles every data_source: {sorted(sources)}")]
    ctx["data_sources"] = sources
    return []


def reward_checks(plan, cfg, ctx) -> list[Result]:
    """Import the custom reward function (guarded), check its signature and run it on sample rows."""
    if plan.trainer == "sft":
        return []
    path, name, kwargs, guard_timeout = reward_target(cfg)
    if not path:
        return []
    problem = file_problem(path)
    if problem:
        return [Result.fail("reward", f"REWARD_FUNC_PATH: {path} {problem} (relative paths are taken from the method folder)",
                            "REWARD_FUNC_PATH")]
    from verl.utils.import_utils import load_extern_object

    started = time.perf_counter()
    try:
        raw = call_with_timeout(lambda: load_extern_object(module_path=path, object_name=name), REWARD_IMPORT_TIMEOUT_S)
    except TimeoutError:
        return [Result.fail("reward", f"importing {path} took over {REWARD_IMPORT_TIMEOUT_S:g} s (slow import or side effects at "
                      "import time; verl imports it in every reward worker)", "REWARD_FUNC_PATH")]
    except AttributeError:
        return [Result.fail("reward", f"REWARD_FUNC_PATH={path} defines no function {name!r} (REWARD_FUNC_NAME)",
                            "REWARD_FUNC_NAME", "REWARD_FUNC_PATH")]
    except BaseException as exc:  # SyntaxError, ImportError, SystemExit at import ...
        cause = exc.__cause__ or exc.__context__ or exc  # verl wraps the real error in a RuntimeError
        return [Result.fail("reward", f"importing {path} failed: {type(cause).__name__}: {cause}", "REWARD_FUNC_PATH")]
    import_s = time.perf_counter() - started
    try:
        params = inspect.signature(raw).parameters
    except (TypeError, ValueError):
        params = {}
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    required = ("data_source", "solution_str", "ground_truth")
    missing = [p for p in required if p not in params]
    if params and (missing or ("extra_info" not in params and not has_var_kw)):
        return [Result.fail("reward", f"{path}:{name}{inspect.signature(raw)} does not take verl's arguments "
                      "(data_source, solution_str, ground_truth, extra_info=None, **kwargs)", "REWARD_FUNC_NAME")]
    is_async = inspect.iscoroutinefunction(raw)
    judge = kwargs.get("base_url")
    if judge and not reachable_url(str(judge)):
        # An API judge (ppo/api_reward.py) may well run only on the training cluster: say so, don't fail.
        return [Result.warn("reward", f"{name} imports and takes verl's arguments, but its judge at base_url={judge} does not "
                      "answer from here, so it was not called; start the judge or set JUDGE_BASE_URL", "REWARD_FUNC_PATH")]

    def call(ds, sol, gt, extra):
        if is_async:
            import asyncio

            return asyncio.run(raw(data_source=ds, solution_str=sol, ground_truth=gt, extra_info=extra, **kwargs))
        return raw(data_source=ds, solution_str=sol, ground_truth=gt, extra_info=extra, **kwargs)

    files = ctx.get("train_files_ok", [])
    if not files:
        return [Result.skip("reward", f"{name} imports ({import_s:.2f} s) but no train file to try it on")]
    table = sample_table(files, ["data_source", "prompt", "reward_model", "extra_info"], 512)
    rows = table.to_pylist()
    # One row per data_source first (every source must be scored), then more rows up to the sample size.
    chosen, seen = [], set()
    for row in rows:
        if row["data_source"] not in seen:
            seen.add(row["data_source"])
            chosen.append(row)
    for source in ctx.get("data_sources", {}):
        if source not in seen:  # a val-only source: try it with the first train row's answer
            chosen.append({**rows[0], "data_source": source})
            seen.add(source)
    chosen += [r for r in rows if r not in chosen][: max(0, REWARD_SAMPLE_ROWS - len(chosen))]
    keys, times, right_scores, wrong_scores = None, [], [], []
    for row in chosen:
        gt = (row.get("reward_model") or {}).get("ground_truth")
        prompt_text = " ".join(str(m.get("content", "")) for m in row.get("prompt") or [])
        good, bad = made_up_responses(prompt_text, str(gt))
        for response, bucket in ((good, right_scores), (bad, wrong_scores)):
            t0 = time.perf_counter()
            try:
                out = call_with_timeout(lambda: call(row["data_source"], response, gt, row.get("extra_info")), REWARD_CALL_TIMEOUT_S)
            except TimeoutError:
                return [Result.fail("reward", f"{name} took over {REWARD_CALL_TIMEOUT_S:g} s on one {row['data_source']!r} row", "REWARD_FUNC_PATH")]
            except (NotImplementedError, ValueError) as exc:
                return [Result.fail("reward", f"{name} cannot score data_source {row['data_source']!r}: {type(exc).__name__}: {exc}",
                              "REWARD_FUNC_PATH")]
            except Exception as exc:
                return [Result.fail("reward", f"{name} raised {type(exc).__name__}: {exc} on a {row['data_source']!r} row", "REWARD_FUNC_PATH")]
            times.append(time.perf_counter() - t0)
            if isinstance(out, dict):
                if "score" not in out:
                    return [Result.fail("reward", f"{name} returned a dict without 'score' (keys {sorted(out)})", "REWARD_FUNC_PATH")]
                if keys is None:
                    keys = sorted(out)
                elif sorted(out) != keys:
                    return [Result.fail("reward", f"{name} returned different keys on different rows ({keys} vs {sorted(out)}); "
                                  "verl takes the keys from the first sample, so every dict needs the same keys", "REWARD_FUNC_PATH")]
                out = out["score"]
            if isinstance(out, bool) or not isinstance(out, (int, float)):
                return [Result.fail("reward", f"{name} returned {type(out).__name__} ({out!r:.60}); verl needs a float or a dict with 'score'",
                              "REWARD_FUNC_PATH")]
            bucket.append(float(out))
    per_call_ms = 1000 * sum(times) / len(times)
    detail = (f"{name} imports in {import_s:.2f} s, {per_call_ms:.2f} ms per call over {len(times)} calls "
              f"({len(seen)} data_source(s)); returns {'dict ' + str(keys) if keys else 'float'}")
    fuzz = _fuzz(cfg, path, name, kwargs, guard_timeout, chosen, judge)
    if isinstance(fuzz, Result):
        return [fuzz]
    detail += fuzz
    if sum(right_scores) <= sum(wrong_scores):
        return [Result.warn("reward", detail + f"; the ground truth scored no higher than a wrong answer "
                      f"(mean {sum(right_scores) / len(right_scores):.2f} vs {sum(wrong_scores) / len(wrong_scores):.2f}): "
                      "check the answer format the function expects", "REWARD_FUNC_PATH")]
    return [Result.ok("reward", detail)]


def reward_target(cfg) -> tuple[str | None, str, dict, float | None]:
    """(path, name, kwargs, guard time limit) of the reward function verl calls for the user: with
    the reward guard (REWARD_GUARD=true) verl loads common/reward_guard.py and the user's function
    travels in its guard_* kwargs; without it, the custom function itself (time limit None)."""
    rcfg = cfg.reward.get("custom_reward_function") or {}
    kwargs = dict(rcfg.get("reward_kwargs") or {})
    if "guard_target_path" in kwargs:
        path = kwargs.pop("guard_target_path")
        name = kwargs.pop("guard_target_name", None) or "compute_score"
        timeout = float(kwargs.pop("guard_timeout_s", 0) or 0) or None
        return str(path), str(name), kwargs, timeout
    return rcfg.get("path"), rcfg.get("name") or "compute_score", kwargs, None


def _fuzz(cfg, path: str, name: str, kwargs: dict, timeout: float | None, rows: list[dict], judge) -> str | Result:
    """The fuzz (common/reward_guard.py): right and wrong answers for the sample rows, then an empty
    response, a 512 KB one, one cut inside LaTeX, repeated tags, non-ASCII, each under the time
    limit in a worker process. A raise, a time-out, NaN/inf, a non-number or changing keys fail the
    check. Returns the detail to add (the cost per step), or the failure."""
    if judge:
        return "; the fuzz is not sent to a live judge (hostile inputs would be paid calls)"
    from common.reward_guard import fuzz_reward

    limit = timeout or REWARD_CALL_TIMEOUT_S
    sample = [{"data_source": r["data_source"], "ground_truth": (r.get("reward_model") or {}).get("ground_truth"),
               "extra_info": r.get("extra_info")} for r in rows]
    report = fuzz_reward(None, sample, kwargs, limit, source=(path, name))
    if report.findings:
        found = "; ".join(f"{f.input_kind}: {f.kind}: {f.detail[:200]}" for f in report.findings[:4])
        more = f" (+{len(report.findings) - 4} more)" if len(report.findings) > 4 else ""
        return Result.fail("reward", f"{name} failed the fuzz ({report.calls} calls, {limit:g} s limit each): {found}{more}. "
                           "Under the reward guard each such call would score 0 in training; make the function return "
                           "a finite score with the same keys for any string", "REWARD_FUNC_PATH")
    per_step = int(cfg.data.train_batch_size) * int(cfg.actor_rollout_ref.rollout.n)
    workers = int(cfg.reward.get("num_workers") or 1)
    guarded = f"guarded, {timeout:g} s limit" if timeout else "not guarded (REWARD_GUARD=false)"
    return (f"; fuzz: {report.calls} calls incl. hostile inputs, slowest {report.max_ms:.0f} ms ({guarded}); "
            f"cost: {report.cost_line(per_step, workers=workers)}")


def reward_manager_checks(plan, cfg, ctx) -> list[Result]:
    """The dapo reward manager's overlong buffer: verl asserts these only when its reward workers start
    (experimental/reward_loop/reward_manager/dapo.py)."""
    if plan.trainer == "sft" or cfg.reward.reward_manager.get("name") != "dapo":
        return []
    kwargs = cfg.reward.get("reward_kwargs") or {}
    buffer = kwargs.get("overlong_buffer_cfg") or {}
    if not buffer.get("enable"):
        return [Result.ok("overlong shaping", "off (OVERLONG_SHAPING=false)")]
    length, max_resp = int(buffer.get("len") or 0), kwargs.get("max_resp_len")
    response = int(cfg.data.max_response_length)
    if length <= 0:
        return [Result.fail("overlong shaping", f"OVERLONG_BUFFER_LEN={length}: the buffer must be positive while shaping is "
                      "on (OVERLONG_SHAPING=false turns it off)", "OVERLONG_BUFFER_LEN", "OVERLONG_SHAPING")]
    if max_resp is None:
        return [Result.fail("overlong shaping", "reward.reward_kwargs.max_resp_len is not set: the dapo reward manager needs "
                      "the response length", "MAX_RESPONSE_LENGTH")]
    if length > int(max_resp):
        return [Result.fail("overlong shaping", f"OVERLONG_BUFFER_LEN={length} is longer than the response limit "
                      f"({max_resp} tokens)", "OVERLONG_BUFFER_LEN", "MAX_RESPONSE_LENGTH")]
    if int(max_resp) != response:
        return [Result.warn("overlong shaping", f"reward.reward_kwargs.max_resp_len={max_resp} differs from "
                      f"MAX_RESPONSE_LENGTH={response}: the penalty ramps against the wrong limit", "MAX_RESPONSE_LENGTH")]
    return [Result.ok("overlong shaping", f"penalty ramps over tokens {response - length + 1}-{response} "
                f"to -{buffer.get('penalty_factor')}")]
