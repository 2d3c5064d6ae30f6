"""The preflight's checks, one module per subject; common/preflight.py runs them all.

    DRY_RUN=1 ./grpo/train.sh            # every check, as a table

Modules (each check is `name(plan, cfg, ctx) -> list[Result]`, or takes the config alone):
- result.py       Result (ok | warn | fail | skipped, with the knobs to change), gpus_in_run(cfg)
- batch.py        mini/micro batch arithmetic of the actor, log-prob passes, critic and SFT
- parallel.py     rollout tensor parallel vs GPUs and heads, Ulysses sequence parallel
- algorithm.py    advantage estimator and policy loss registered in verl, group size, rollout correction
- model.py        lengths against the model's positions, the memory estimate, the tokenizer
- data.py         data files, their schema and rows, prompt lengths with the chat template and its arguments
- reward.py       the reward function (imported, called on real rows), data sources, reward manager
- checkpoints.py  KEEP_BEST_METRIC / EXPORT_CHECKPOINT against the schedule and verl's metric names
- environment.py  legacy keys, loggers, output folder, versions, GPUs, Ray
"""
