"""Evaluation of trained models: the pieces behind `./test.sh` (common/test_model.py).

Offers:
- inputs: load_rows(path) reads JSON, JSONL or verl RL parquet into EvalRow objects, and
  names every malformed row (InputError).
- checkpoint: resolve_model(path) turns a Hugging Face folder/id or a verl FSDP checkpoint
  (run or experiment folder, global_step_N, actor/) into a loadable Hugging Face folder, merging
  with verl.model_merger once and caching the result next to the checkpoint (checked before each
  use, merged again when incomplete); run_chat_template_kwargs() reads a run's template arguments.
- generation: HFGenerator (transformers, batched, left padding, length-sorted) and
  VLLMGenerator (vLLM offline), both returning Sample objects; chat templates.
- scoring: make_reward(spec, timeout_s) loads a reward function into a killable worker
  process; score_one() scores one response, a failure being that row's error.
- metrics: pass@k, maj@k, percentiles and group_metrics() over a group of prompts.
- report: the Summary / Results / Compare tables and write_report() to .xlsx or .json, atomically.
"""
