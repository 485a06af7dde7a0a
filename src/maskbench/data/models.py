"""Loading pretrained encoders with the right head for a task kind, from the hub or a local path."""

from __future__ import annotations

import contextlib
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError
from torch import nn

from maskbench.io.errors import ConfigError
from maskbench.io.locations import resolve_model

# Weights are held in fp32 whatever dtype a checkpoint stores: transformers >= 5 loads a checkpoint in its stored
# dtype by default, and a bf16/fp16 checkpoint would otherwise train (Adam state, mask scores' gradients) and serve in
# half precision, silently. `--precision bf16` is autocast over these fp32 weights. Every load passes this.
WEIGHTS_DTYPE = torch.float32

HEAD_CLASSES = {
    "single": transformers.AutoModelForSequenceClassification,
    "pair": transformers.AutoModelForSequenceClassification,
    "tagging": transformers.AutoModelForTokenClassification,
    "multiple_choice": transformers.AutoModelForMultipleChoice,
}


#: the weight files ``from_pretrained`` reads from a local model folder, in the order it prefers them
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def weights_file(path: str | Path) -> Path | None:
    """The weight file that ``from_pretrained`` reads from a local model folder (None for a hub id or none)."""
    folder = Path(path)
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # torch's weights-only refusal says what it refused after a paragraph of advice
    detail = next((lines[i + 1] for i, line in enumerate(lines[:-1]) if line.endswith("WeightsUnpickler error:")),
                  None)
    return detail or (lines[0] if lines else type(error).__name__)


def _raised_reading_weights(error: BaseException) -> bool:
    """Whether ``error`` was raised while torch read a weight file (its loader or weights-only unpickler): a
    garbage file fails there with anything from UnpicklingError to IndexError."""
    return any(frame.filename.replace("\\", "/").endswith(("torch/serialization.py",
                                                            "torch/_weights_only_unpickler.py"))
               for frame in traceback.extract_tb(error.__traceback__))


@contextlib.contextmanager
def weights_load_errors(name: str, path: str | Path, what: str = "model") -> Iterator[None]:
    """Turn the errors of loading a model's files into one :class:`ConfigError`: a weight file that is not a valid
    weights-only pickle (``torch.load`` with ``weights_only=True`` refuses it, or fails reading it) or not valid
    safetensors, naming the file; a missing or unreadable folder (OSError, ValueError)."""
    try:
        yield
    except Exception as error:
        if isinstance(error, (pickle.UnpicklingError, SafetensorError)) or _raised_reading_weights(error):
            weights = weights_file(path) or path
            expected = ("a state dict saved by torch.save (tensors only)" if str(weights).endswith(".bin")
                        else "safetensors written by save_pretrained")
            raise ConfigError(f"{weights}: cannot load the weights of {what} {name!r}: not a valid weights file "
                              f"({type(error).__name__}: {_first_line(error)}); expected {expected}") from None
        if isinstance(error, (OSError, ValueError)):
            raise ConfigError(f"cannot load {what} {name!r}: {str(error).splitlines()[0]}") from None
        raise

def load_model(name: str, kind: str, label_names: list[str] | tuple[str, ...]) -> nn.Module:
    """A pretrained encoder with a freshly initialised head for ``kind``.

    Parameters the checkpoint does not contain (the new head) are recorded in ``model.maskbench_new_parameters``
    so that a saved mask directory can store them.
    """
    if kind not in HEAD_CLASSES:
        raise ConfigError(f"unknown task kind {kind!r}; expected one of {sorted(HEAD_CLASSES)}")
    path = resolve_model(name)
    kwargs = {}
    if kind != "multiple_choice":
        kwargs = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                  "label2id": {label: i for i, label in enumerate(label_names)}}
    with weights_load_errors(name, path):
        model, info = HEAD_CLASSES[kind].from_pretrained(path, output_loading_info=True, dtype=WEIGHTS_DTYPE,
                                                            **kwargs)
    model.maskbench_new_parameters = sorted(info.get("missing_keys", ()))
    return model


def model_config(name: str) -> transformers.PretrainedConfig:
    """The model's configuration only (cheap: no weights are read)."""
    try:
        return transformers.AutoConfig.from_pretrained(resolve_model(name))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load model {name!r}: {str(error).splitlines()[0]}") from None


def load_tokenizer(name: str) -> transformers.PreTrainedTokenizerBase:
    path = resolve_model(name)
    try:
        # RoBERTa's byte-level BPE needs a prefix space to tokenise pre-split words (tagging tasks)
        model_type = model_config(name).model_type
        kwargs = {"add_prefix_space": True} if model_type in ("roberta", "xlm-roberta") else {}
        return transformers.AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load tokenizer of {name!r}: {str(error).splitlines()[0]}") from None
