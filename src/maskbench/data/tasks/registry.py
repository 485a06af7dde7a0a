"""The task registry: what each task is, where its data comes from, and how to load it.

Every task loads as a :class:`datasets.DatasetDict` with splits ``train``, ``dev`` and, where a labelled test set
exists, ``test``. Columns by kind (nothing else is kept):

- ``single``: ``text``, ``label``
- ``pair``: ``text``, ``text_pair``, ``label``
- ``tagging``: ``tokens`` (list of words), ``tags`` (one label id per word)
- ``multiple_choice``: ``context`` (= sent1), ``endings`` (4 strings, each sent2 + " " + ending), ``label``

Labels are :class:`datasets.ClassLabel` ids into :attr:`TaskSpec.label_names`. Data comes from the original
files under a data directory (argument, or ``$MASKBENCH_DATA_DIR``) when the task's sub-directory is there,
otherwise from the Hugging Face hub. Dev splits that the sources lack are carved from train by
:func:`maskbench.data.tasks.readers.carve` (seeded permutation, seed :data:`~maskbench.data.tasks.readers.SPLIT_SEED`),
identically for local and hub data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from maskbench.data.tasks import readers
from maskbench.io.errors import ConfigError, DataError
from maskbench.io.locations import DATA_DIR_ENV, resolve_data_dir

Reader = Callable[[Path], DatasetDict]
Converter = Callable[[Dataset, "TaskSpec"], Dataset]


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub dataset and how its splits and columns map onto a task's."""

    path: str
    name: str | None
    splits: dict[str, str]  # our split -> hub split
    convert: Converter  # one hub split -> our columns and label ids
    dev_holdout: int | float | None = None  # carve dev from the converted train split: rows, or a fraction


@dataclass(frozen=True)
class TaskSpec:
    """One task: its kind, labels, metric and data sources."""

    name: str
    kind: str  # "single" | "pair" | "tagging" | "multiple_choice"
    label_names: tuple[str, ...]
    metric: str  # "accuracy" | "matthews" | "seqeval_f1" | "word_accuracy"
    hub: HubSource | None
    reader: Reader | None  # reads the original files in <data_dir>/<local_dir>
    local_dir: str
    has_test: bool  # a labelled test split exists
    description: str  # source, splits, and how missing splits are carved
    partial_reader: Reader | None = None  # offline stand-in when files are missing; only with allow_partial

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


# --- hub converters --------------------------------------------------------------------------------------


def _label_mapper(feature: object, spec: TaskSpec, where: str, aliases: Mapping[str, str]) -> Callable[[int], int]:
    """Hub label id -> our label id, by ClassLabel name where the hub has names, else by value."""
    feature = getattr(feature, "feature", feature)  # per-token labels: the list's item feature
    if isinstance(feature, ClassLabel):
        ours = {name: i for i, name in enumerate(spec.label_names)}
        unknown = [n for n in feature.names if aliases.get(n, n) not in ours]
        if unknown:
            raise DataError(f"{where}: hub label(s) {unknown} are not labels of {spec.name!r}: {spec.label_names}")
        table = [ours[aliases.get(n, n)] for n in feature.names]
    else:
        table = list(range(spec.num_labels))

    def to_ours(hub_id: int) -> int:
        if not 0 <= hub_id < len(table):  # -1 marks an unlabelled row (GLUE and SWAG test splits)
            raise DataError(f"{where}: label {hub_id} is outside 0..{len(table) - 1}")
        return table[hub_id]

    return to_ours


def _map(ds: Dataset, batch: Callable[[dict[str, list]], dict[str, list]], spec: TaskSpec) -> Dataset:
    """Replace every hub column by the batch function's columns, typed as the task's schema."""
    features = readers.features_for(spec.kind, spec.label_names)
    return ds.map(batch, batched=True, remove_columns=ds.column_names, features=features)


def _where(ds: Dataset) -> str:
    return f"hub dataset {ds.info.dataset_name or '?'} ({ds.info.config_name or 'default'}, split {ds.split})"


def _classification(text: str, label: str, text_pair: str | None = None, **aliases: str) -> Converter:
    """Single-sentence or pair classification columns; ``aliases`` rename hub label names to ours."""

    def convert(ds: Dataset, spec: TaskSpec) -> Dataset:
        to_ours = _label_mapper(ds.features[label], spec, _where(ds), aliases)

        def batch(rows: dict[str, list]) -> dict[str, list]:
            out = {"text": rows[text], "label": [to_ours(v) for v in rows[label]]}
            if text_pair is not None:
                out["text_pair"] = rows[text_pair]
            return out

        return _map(ds, batch, spec)

    return convert


def _tagging(tokens: str, tags: str) -> Converter:
    """Word tagging columns: a token list and one tag per token."""

    def convert(ds: Dataset, spec: TaskSpec) -> Dataset:
        to_ours = _label_mapper(ds.features[tags], spec, _where(ds), {})

        def batch(rows: dict[str, list]) -> dict[str, list]:
            return {"tokens": rows[tokens], "tags": [[to_ours(t) for t in seq] for seq in rows[tags]]}

        return _map(ds, batch, spec)

    return convert


def _swag(ds: Dataset, spec: TaskSpec) -> Dataset:
    """allenai/swag 'regular': sent1, sent2, ending0..3, label -> context, endings, label."""
    to_ours = _label_mapper(ds.features["label"], spec, _where(ds), {})

    def batch(rows: dict[str, list]) -> dict[str, list]:
        endings = [
            [f"{sent2} {rows[f'ending{i}'][j]}" for i in range(4)] for j, sent2 in enumerate(rows["sent2"])
        ]
        return {"context": rows["sent1"], "endings": endings, "label": [to_ours(v) for v in rows["label"]]}

    return _map(ds, batch, spec)


# --- the registry ----------------------------------------------------------------------------------------

_GLUE_NOTE = "GLUE test labels are hidden, so there is no test split"


def _glue(name: str, title: str, kind: str, labels: tuple[str, ...], metric: str, convert: Converter,
          reader: Reader, sizes: str, partial_reader: Reader | None = None, note: str = "") -> TaskSpec:  # fmt: skip
    """A GLUE task: hub config ``name`` (dev = 'validation'), local ``<name>/train.tsv`` and ``dev.tsv``."""
    return TaskSpec(
        name=name, kind=kind, label_names=labels, metric=metric,
        hub=HubSource("nyu-mll/glue", name, {"train": "train", "dev": "validation"}, convert),
        reader=reader, local_dir=name, has_test=False, partial_reader=partial_reader,
        description=f"{title} (GLUE): {sizes}; {_GLUE_NOTE}.{note}",
    )  # fmt: skip


def _specs() -> list[TaskSpec]:
    seed = readers.SPLIT_SEED
    return [
        _glue("sst2", "SST-2", "single", readers.BINARY_SENTIMENT, "accuracy",
              _classification("sentence", "label"), readers.read_sst2, "train.tsv 67,349 / dev.tsv 872"),
        _glue("mrpc", "MRPC", "pair", readers.MRPC_LABELS, "accuracy",
              _classification("sentence1", "label", "sentence2"), readers.read_mrpc, "train.tsv 3,668 / dev.tsv 408"),
        _glue("cola", "CoLA", "single", readers.COLA_LABELS, "matthews",
              _classification("sentence", "label"), readers.read_cola,
              "train.tsv 8,551 / dev.tsv 1,043 (in-domain + out-of-domain dev)"),
        _glue("rte", "RTE", "pair", readers.NLI_LABELS, "accuracy",
              _classification("sentence1", "label", "sentence2"), readers.read_rte, "train.tsv 2,490 / dev.tsv 277"),
        _glue("qnli", "QNLI", "pair", readers.NLI_LABELS, "accuracy",
              _classification("question", "label", "sentence"), readers.read_qnli,
              "train 104,743 (hub only; not in the offline copy) / dev.tsv 5,463",
              partial_reader=readers.read_qnli_partial,
              note=f" Offline smoke tests only (allow_partial=True): dev.tsv split into train (80%) and dev "
                   f"({readers.QNLI_PARTIAL_DEV_FRACTION:.0%}) by a seeded carve (seed {seed})."),
        TaskSpec(
            name="sem", kind="single", label_names=readers.BINARY_SENTIMENT, metric="accuracy", hub=None,
            reader=readers.read_sem, local_dir="sem", has_test=True,
            description="SemEval-2016 Task 4B tweets, local files only: train.tsv 4,346 / dev.tsv 1,325 / "
                        "test.tsv 10,551; devtest.tsv (1,417) is not used, matching the paper's split sizes.",
        ),
        TaskSpec(
            name="trec", kind="single", label_names=readers.TREC_LABELS, metric="accuracy",
            hub=HubSource("CogComp/trec", None, {"train": "train", "test": "test"},
                          _classification("text", "coarse_label"), dev_holdout=readers.TREC_DEV_SIZE),
            reader=readers.read_trec, local_dir="trec", has_test=True,
            description=f"TREC-6 (coarse classes): train.txt 5,452 / test.txt 500; dev = {readers.TREC_DEV_SIZE} "
                        f"questions carved from train (seed {seed}), leaving 4,904 for train.",
        ),
        TaskSpec(
            name="ag_news", kind="single", label_names=readers.AG_NEWS_LABELS, metric="accuracy",
            hub=HubSource("fancyzhx/ag_news", None, {"train": "train", "test": "test"},
                          _classification("text", "label"), dev_holdout=readers.AG_NEWS_DEV_FRACTION),
            reader=readers.read_ag_news, local_dir="ag_news", has_test=True,
            description=f"AG News (text = title + ' ' + description): test 7,600; dev = "
                        f"{readers.AG_NEWS_DEV_FRACTION:.0%} of train carved (seed {seed}): 120,000 -> 96,000 train"
                        f" / 24,000 dev. Offline without train.csv, train_subset_5k.csv -> 4,000 train / 1,000 dev.",
        ),
        TaskSpec(
            name="pos", kind="tagging", label_names=readers.PTB_TAGS, metric="word_accuracy", hub=None,
            reader=readers.read_ptb_sample, local_dir="pos", has_test=True,
            description="Penn Treebank POS, NLTK 10% WSJ sample (local only; the paper used the licensed full WSJ):"
                        " treebank/combined/*.mrg without -NONE- elements, split by document: wsj_0001-0139 train,"
                        " 0140-0169 dev, 0170-0199 test (78/11/11% of words, like WSJ sections 0-18/19-21/22-24).",
        ),
        TaskSpec(
            name="conll2003", kind="tagging", label_names=readers.CONLL_NER_LABELS, metric="seqeval_f1",
            hub=HubSource("eriktks/conll2003", None, {"train": "train", "dev": "validation", "test": "test"},
                          _tagging("tokens", "ner_tags")),
            reader=readers.read_conll2003, local_dir="conll2003", has_test=True,
            description="CoNLL-2003 English NER (IOB2): train 14,041 / dev 3,250 / test 3,453 sentences; "
                        "-DOCSTART- lines dropped.",
        ),
        TaskSpec(
            name="swag", kind="multiple_choice", label_names=readers.SWAG_LABELS, metric="accuracy",
            hub=HubSource("allenai/swag", "regular", {"train": "train", "dev": "validation"}, _swag),
            reader=readers.read_swag, local_dir="swag", has_test=False,
            description="SWAG 'regular': train 73,546 / dev 20,006 (swagaf train.csv / val.csv); test labels are "
                        "hidden. context = sent1, endings = sent2 + ' ' + ending_i.",
        ),
        TaskSpec(
            name="imdb", kind="single", label_names=readers.BINARY_SENTIMENT, metric="accuracy",
            hub=HubSource("stanfordnlp/imdb", None, {"train": "train", "test": "test"},
                          _classification("text", "label", neg="negative", pos="positive"),
                          dev_holdout=readers.IMDB_DEV_SIZE),
            reader=readers.read_imdb, local_dir="imdb", has_test=True,
            description=f"IMDB reviews (aclImdb; for generalisation tests): test 25,000; dev = "
                        f"{readers.IMDB_DEV_SIZE:,} carved from the 25,000 train reviews (seed {seed}), "
                        "leaving 22,500.",
        ),
    ]  # fmt: skip


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _specs()}


def get_task(name: str) -> TaskSpec:
    """The spec of task ``name``; unknown names raise :class:`ConfigError` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; expected one of: {', '.join(TASKS)}") from None


def local_task_dir(spec: TaskSpec, data_dir: str | Path | None = None) -> Path | None:
    """The directory :func:`load` reads ``spec``'s original files from, or None when it loads from the hub.

    The task's sub-directory of ``data_dir`` (else of ``$MASKBENCH_DATA_DIR``) where it exists; a ``data_dir``
    passed explicitly must contain it (:class:`DataError` otherwise).
    """
    root = resolve_data_dir(data_dir)
    task_dir = root / spec.local_dir if root is not None else None
    if task_dir is not None and task_dir.is_dir() and spec.reader is not None:
        return task_dir
    if data_dir is not None:
        raise DataError(f"task {spec.name!r}: data directory {task_dir} does not exist")
    return None


def hub_source(spec: TaskSpec, data_dir: str | Path | None = None) -> HubSource:
    """Where :func:`load` fetches ``spec`` from when it has no local files; :class:`DataError` (with how to
    provide the files) for a task that only exists as local files."""
    if spec.hub is None:
        raise DataError(f"task {spec.name!r} has no hub source; {_offline_hint(spec, resolve_data_dir(data_dir))}")
    return spec.hub


def _offline_hint(spec: TaskSpec, root: Path | None) -> str:
    return (f"for offline use set ${DATA_DIR_ENV} or pass --data-dir to a directory containing '{spec.local_dir}/'"
            + (f" (not found in {root})" if root is not None else ""))


def load(name: str, data_dir: str | Path | None = None, allow_partial: bool = False) -> DatasetDict:
    """Load task ``name`` from ``<data_dir>/<local_dir>`` if it exists, else from the hub.

    A ``data_dir`` passed explicitly must contain the task's directory. ``allow_partial`` lets a task whose
    local copy lacks files use its offline stand-in (:attr:`TaskSpec.partial_reader`; QNLI only), for smoke
    tests, never for results.
    """
    spec = get_task(name)
    task_dir = local_task_dir(spec, data_dir)
    if task_dir is not None:
        try:
            return spec.reader(task_dir)
        except readers.MissingFileError:
            if allow_partial and spec.partial_reader is not None:
                return spec.partial_reader(task_dir)
            raise
    return _load_hub(spec, hub_source(spec, data_dir), resolve_data_dir(data_dir))


def _load_hub(spec: TaskSpec, hub: HubSource, root: Path | None) -> DatasetDict:
    try:
        raw = datasets.load_dataset(hub.path, hub.name)
    except Exception as e:  # the hub client raises many types (network, auth, missing repo, ...)
        raise DataError(f"task {spec.name!r}: could not load {hub.path!r} from the hub ({e}); "
                        f"{_offline_hint(spec, root)}") from e
    missing = [s for s in hub.splits.values() if s not in raw]
    if missing:
        raise DataError(f"task {spec.name!r}: hub dataset {hub.path!r} has no split(s) {missing}")
    splits = {ours: hub.convert(raw[theirs], spec) for ours, theirs in hub.splits.items()}
    if hub.dev_holdout is not None:
        return readers.carve_dev(splits, hub.dev_holdout)
    return DatasetDict(splits)


__all__ = ["DATA_DIR_ENV", "TASKS", "HubSource", "TaskSpec", "get_task", "hub_source", "load", "local_task_dir",
           "resolve_data_dir"]
