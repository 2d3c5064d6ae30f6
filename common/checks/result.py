"""One check's outcome, and what every check module shares.

Offers:
- Result(check, status, detail, knobs): status is ok | warn | fail | skipped; knobs name the
  config-block variables to change. Result.fail/warn/ok/skip build one.
- gpus_in_run(cfg): GPUs in the run (n_gpus_per_node x nnodes).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    check: str
    status: str  # ok | warn | fail | skipped
    detail: str
    knobs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @staticmethod
    def fail(check: str, detail: str, *knobs: str) -> Result:
        return Result(check, "fail", detail, list(knobs))

    @staticmethod
    def warn(check: str, detail: str, *knobs: str) -> Result:
        return Result(check, "warn", detail, list(knobs))

    @staticmethod
    def ok(check: str, detail: str) -> Result:
        return Result(check, "ok", detail)

    @staticmethod
    def skip(check: str, detail: str) -> Result:
        return Result(check, "skipped", detail)


def gpus_in_run(cfg) -> int:
    return int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
