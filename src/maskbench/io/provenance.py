"""What every result file records: versions and device (the hash of the configuration that produced it is
:func:`maskbench.training.settings.config_hash`)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def versions() -> dict[str, str]:
    import datasets
    import numpy
    import torch
    import transformers

    from maskbench import __version__

    return {"maskbench": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "numpy": numpy.__version__, "python": platform.python_version()}


def device_name(device: "torch.device") -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    # the kernels torch picked (e.g. AVX2, AVX512): runs are bit-reproducible only where they are the same
    capability = torch.backends.cpu.get_cpu_capability()
    return f"cpu ({platform.processor() or platform.machine()}, {capability}, {torch.get_num_threads()} threads)"
