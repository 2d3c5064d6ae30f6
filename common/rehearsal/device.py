"""Run verl's engines on the CPU in this process: a CPU platform for verl and a one-rank process group.

    from common.rehearsal.device import use_cpu, process_group
    use_cpu()                      # before anything imports verl.workers
    with process_group():          # gloo, world size 1, a free port
        ...build verl's workers...

Offers:
- PlatformCPU: a verl platform (verl.plugin.platform, registered as "cpu") whose device is the
  CPU. verl 0.9.1 registers nvidia, huawei and amd only and falls back to "nvidia" when it sees no
  accelerator (plugin/platform/platform_manager.py, _detect_platform_name), so every
  `.to(get_device_id())` would ask for CUDA. PlatformBase's docstring names CPU as a platform a
  backend may add; this is that backend, through verl's own registry (PlatformRegistry.register).
- use_cpu(): selects it (VERL_PLATFORM=cpu) and makes verl's engine registry hand out the FSDP
  engine classes a GPU launch uses (VERL_ENGINE_DEVICE=cuda: FSDPEngineWithLMHead and
  FSDPEngineWithValueHead are registered for device=["cuda", "npu"] only,
  workers/engine/fsdp/transformer_impl.py:1143 and :1594). Returns the notes to print.
- use_cuda(): the GPU rehearsal (REHEARSAL_DEVICE=cuda) keeps verl's own platform; checks there is one.
- process_group(device): torch.distributed with rank 0 of 1 on a free local port (gloo; on a GPU also
  NCCL), torn down on exit; verl's workers find it initialised and use it (utils/distributed.py,
  initialize_global_process_group_ray returns early when one exists).
"""

from __future__ import annotations

import contextlib
import os
import socket
import types
from contextlib import contextmanager

CPU_PLATFORM = "cpu"


def _zero(*_args, **_kwargs) -> int:
    return 0


def _nothing(*_args, **_kwargs) -> None:
    return None


def _mem_get_info(*_args, **_kwargs) -> tuple[int, int]:
    import psutil

    memory = psutil.virtual_memory()
    return memory.available, memory.total


class _CpuDeviceModule(types.ModuleType):
    """What verl calls on get_torch_device() (torch.cuda on a GPU): torch.cpu's functions, plus the
    memory statistics CUDA has and the CPU lacks (0: nothing is allocated on a device)."""

    _ZERO = {"memory_allocated", "memory_reserved", "max_memory_allocated", "max_memory_reserved"}
    _NOTHING = {"empty_cache", "reset_peak_memory_stats", "ipc_collect", "set_per_process_memory_fraction",
                "manual_seed", "manual_seed_all"}

    def __getattr__(self, name):
        import torch

        if hasattr(torch.cpu, name):
            return getattr(torch.cpu, name)
        if name in self._ZERO:
            return _zero
        if name in self._NOTHING:
            return _nothing
        if name == "mem_get_info":
            return _mem_get_info
        if name == "get_device_name":  # verl's flops counter looks the name up (utils/flops_counter.py)
            return lambda *_args: "CPU"
        if name == "get_rng_state":
            return torch.get_rng_state
        if name == "set_rng_state":
            return torch.set_rng_state
        raise AttributeError(f"the CPU device module has no {name!r}")


def _register_platform():
    """Define and register PlatformCPU once (verl's registry is process-wide)."""
    import torch

    from verl.plugin.platform.platform_base import PlatformBase
    from verl.plugin.platform.platform_manager import PlatformRegistry

    existing = PlatformRegistry.get(CPU_PLATFORM)
    if existing is not None:
        return existing
    device_module = _CpuDeviceModule("verl_posttrain_cpu_device")

    class PlatformCPU(PlatformBase):
        """The CPU as verl's device: gloo collectives, no CUDA runtime, no profiler ranges."""

        @property
        def device_name(self) -> str:
            return "cpu"

        @property
        def vendor_name(self) -> str:
            return "cpu"

        @property
        def device_module(self):
            return device_module

        def is_available(self) -> bool:
            return True

        def current_device(self):
            # verl passes this to .to(...) and torch.device(...): "cpu", not an index.
            return torch.device("cpu")

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index) -> None:
            return None

        def synchronize(self, device_index=None) -> None:
            return None

        def manual_seed(self, seed: int) -> None:
            torch.manual_seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings: str) -> None:
            return None

        def empty_cache(self) -> None:
            return None

        def get_device_capability(self, device_index: int = 0):
            return None, None

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            return "CUDA_VISIBLE_DEVICES"

        @contextmanager
        def nvtx_range(self, msg: str):
            yield

        def profiler_start(self) -> None:
            return None

        def profiler_stop(self) -> None:
            return None

        def ray_resource_name(self) -> str:
            return "CPU"

        def ray_noset_envvars(self) -> list[str]:
            return []

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self):
            return None

    PlatformRegistry.register(platform=CPU_PLATFORM)(PlatformCPU)
    return PlatformCPU


def use_cpu() -> list[str]:
    """Point verl at the CPU platform; call before verl.workers is imported. Returns notes."""
    os.environ["VERL_PLATFORM"] = CPU_PLATFORM
    os.environ["VERL_ENGINE_DEVICE"] = "cuda"
    _register_platform()
    from verl.plugin.platform.platform_manager import get_platform

    platform = get_platform()
    if platform.device_name != "cpu":
        raise RuntimeError(
            f"verl's platform was chosen before the rehearsal could select the CPU ({platform.device_name}); "
            "run the rehearsal in a fresh process"
        )
    _unpinned_offload()
    return [
        "device: CPU through a verl platform plugin (VERL_PLATFORM=cpu); verl's own FSDP engine classes "
        "(VERL_ENGINE_DEVICE=cuda selects them in verl's engine registry)",
        "offload: CPUOffloadPolicy(pin_memory=True) -> pin_memory=False for forward-only engines (the reference "
        "model; transformer_impl.py _build_fsdp_module): pinned host memory needs an accelerator, and on the CPU "
        "the parameters already live in host memory",
    ]


def _unpinned_offload() -> None:
    """verl's FSDP2 engine offloads forward-only models with CPUOffloadPolicy(pin_memory=True); torch
    can only pin host memory when an accelerator exists. Same policy, unpinned."""
    from dataclasses import dataclass

    from verl.workers.engine.fsdp import transformer_impl

    base = transformer_impl.CPUOffloadPolicy
    if getattr(base, "_rehearsal_unpinned", False):
        return

    @dataclass
    class UnpinnedCPUOffloadPolicy(base):
        _rehearsal_unpinned = True

        def __post_init__(self):
            self.pin_memory = False

    transformer_impl.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process_group(device: str = "cpu"):
    """torch.distributed, rank 0 of 1, for the duration of the block: gloo on the CPU; on a GPU
    gloo for CPU tensors and NCCL for CUDA ones, as verl's own initialize_global_process_group_ray."""
    import torch.distributed as dist

    backend = "gloo" if device == "cpu" else "cpu:gloo,cuda:nccl"
    if device != "cpu":
        import torch

        torch.cuda.set_device(0)
    port = free_port()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend, rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{port}")
    try:
        yield
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def use_cuda() -> list[str]:
    """REHEARSAL_DEVICE=cuda: verl's own CUDA platform, nothing replaced."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("REHEARSAL_DEVICE=cuda but torch sees no CUDA device (use REHEARSAL_DEVICE=cpu)")
    return [f"device: {torch.cuda.get_device_name(0)} (verl's own CUDA platform; nothing changed for the device)"]
