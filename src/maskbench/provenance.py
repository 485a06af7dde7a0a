"""What every result file records: versions, device, and a hash of the configuration that produced it."""

from __future__ import annotations

import hashlib
import json
import platform
from typing import Any

import torch


def versions() -> dict[str, str]:
    import datasets
    import numpy
    import transformers

    from maskbench import __version__

    return {"maskbench": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "numpy": numpy.__version__, "python": platform.python_version()}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def config_hash(config: dict[str, Any]) -> str:
    """Short stable hash of a JSON-serialisable configuration."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
