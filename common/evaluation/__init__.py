"""Evaluation of trained models: the pieces behind `./test.sh` (common/test_model.py).

Offers:
- inputs: load_rows(path) reads JSON, JSONL or verl RL parquet into EvalRow objects, and
  names every malformed row (InputError).
- checkpoint: resolve_model(path) turns a Hugging Face folder/id or a verl FSDP checkpoint
  (experiment folder, global_step_N, actor/) into a loadable Hugging Face folder, merging with
  verl.model_merger once and caching the result next to the checkpoint.
- generation: HFGenerator (transformers, batched, left padding, length-sorted) and
  VLLMGenerator (vLLM offline), both returning Sample objects; chat templates.
- scoring: load_reward(spec) loads a reward function; score_sample() normalises its result.
- report: summarize() (accuracy, pass@k, mean@k, ...) and write_report() to .xlsx or .json,
  atomically.
"""
