"""How many NVIDIA GPUs this machine has, asked the way verl's launch will see them.

    .venv/bin/python -c "from common.gpus import detect_gpus; print(detect_gpus())"

Offers:
- detect_gpus() -> (count, how): GPUs listed by `nvidia-smi -L`, narrowed by CUDA_VISIBLE_DEVICES,
  and a few words on how the count was found (shown in the dry run and the preflight).
"""

from __future__ import annotations

import os
import shutil
import subprocess


def detect_gpus() -> tuple[int, str]:
    """(number of NVIDIA GPUs visible, how it was found). CUDA_VISIBLE_DEVICES narrows the count."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0, "nvidia-smi not found"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 0, f"nvidia-smi failed: {exc}"
    count = sum(1 for line in out.splitlines() if line.startswith("GPU "))
    if visible is not None and visible.strip() != "":
        count = min(count, len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))
    return count, f"nvidia-smi lists {count} GPU(s)"
