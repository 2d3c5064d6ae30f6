"""One check's outcome, and what every check module shares.

Offers:
- Result(check, status, detail, knobs): status is ok | warn | fail | skipped; knobs name the
  config-block variables to change. Result.fail/warn/ok/skip build one.
- gpus_in_run(cfg): GPUs in the run (n_gpus_per_node x nnodes).
- file_problem(path): why path is not a readable file (missing, a folder, a name too long ...), or None.
"""

from __future__ import annotations

import os
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


def file_problem(path) -> str | None:
    """'does not exist', 'is a folder, not a file' or 'cannot be read (...)' for path; None when it is a file."""
    import stat

    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            return "is a folder, not a file"
        with open(path, "rb"):
            return None
    except (FileNotFoundError, NotADirectoryError):
        return "does not exist"
    except OSError as exc:  # a name too long, a folder on the way that may not be entered, no read permission
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
