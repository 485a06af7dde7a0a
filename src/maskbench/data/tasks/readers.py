"""Readers for the original task files, as distributed (GLUE TSVs, TREC, AG News CSV, SemEval TSV,
CoNLL-2003, Penn Treebank ``.mrg``, swagaf CSV, the aclImdb tarball).

Every reader takes the task's directory and returns a :class:`datasets.DatasetDict` whose columns follow the
contract of :mod:`maskbench.data.tasks.registry` (``text``/``text_pair``/``label``, ``tokens``/``tags`` or
``context``/``endings``/``label``). Problems in a file raise :class:`DataError` naming the file, the line and
the offending value.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets import Sequence as ListOf  # a List feature on datasets>=4, Sequence before

from maskbench.io.errors import DataError

logger = logging.getLogger(__name__)

SPLIT_SEED = 0
"""Seed of every carved split (dev carved from train, or QNLI's offline stand-in train)."""

BINARY_SENTIMENT = ("negative", "positive")
MRPC_LABELS = ("not_equivalent", "equivalent")
COLA_LABELS = ("unacceptable", "acceptable")
NLI_LABELS = ("entailment", "not_entailment")  # GLUE hub order: 0 = entailment
TREC_LABELS = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")
CONLL_NER_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
SWAG_LABELS = ("0", "1", "2", "3")
# The 45 Penn Treebank POS tags (36 word tags + 9 punctuation tags, brackets written -LRB-/-RRB- as in the
# treebank files); -NONE- (empty elements) is not a tag of any word and is dropped by the reader.
PTB_TAGS = tuple(
    sorted(
        """CC CD DT EX FW IN JJ JJR JJS LS MD NN NNS NNP NNPS PDT POS PRP PRP$ RB RBR RBS RP SYM TO UH
        VB VBD VBG VBN VBP VBZ WDT WP WP$ WRB # $ '' `` , -LRB- -RRB- . :""".split()
    )
)

TREC_DEV_SIZE = 548  # the paper's TREC dev size (about 10% of the 5,452 training questions)
AG_NEWS_DEV_FRACTION = 0.2  # the paper's 24,000 of 120,000 AG training rows
IMDB_DEV_SIZE = 2_500  # 10% of the 25,000 training reviews
QNLI_PARTIAL_DEV_FRACTION = 0.2  # share of QNLI dev.tsv kept as dev when train is carved from it

# Penn Treebank sample (NLTK, wsj_0001-wsj_0199): document-level split by file number. The ranges give about
# 78/11/11% of the words, the proportions of the paper's WSJ sections 0-18 / 19-21 / 22-24.
POS_FILE_SPLITS = {"train": range(1, 140), "dev": range(140, 170), "test": range(170, 200)}


class MissingFileError(DataError):
    """A split file (or directory) a reader needs does not exist."""

    def __init__(self, path: Path, hint: str = "") -> None:
        super().__init__(f"missing data file {path}" + (f"; {hint}" if hint else ""))
        self.path = path


def features_for(kind: str, label_names: Sequence[str]) -> Features:
    """The column schema of one task kind; labels are :class:`ClassLabel` so their names travel with the data."""
    label = ClassLabel(names=list(label_names))
    if kind == "single":
        return Features({"text": Value("string"), "label": label})
    if kind == "pair":
        return Features({"text": Value("string"), "text_pair": Value("string"), "label": label})
    if kind == "tagging":
        return Features({"tokens": ListOf(Value("string")), "tags": ListOf(label)})
    if kind == "multiple_choice":
        return Features({"context": Value("string"), "endings": ListOf(Value("string"), length=4), "label": label})
    raise ValueError(f"unknown task kind {kind!r}")


def carve(ds: Dataset, holdout: int | float, seed: int = SPLIT_SEED) -> tuple[Dataset, Dataset]:
    """Split ``ds`` into ``(rest, held_out)`` with a seeded permutation; both keep the original row order.

    ``holdout`` is a row count, or a fraction of ``len(ds)`` (rounded to the nearest row).
    """
    n_hold = round(holdout * len(ds)) if isinstance(holdout, float) else holdout
    if not 0 < n_hold < len(ds):
        raise DataError(f"cannot hold out {n_hold} of {len(ds)} rows")
    perm = np.random.default_rng(seed).permutation(len(ds))
    return ds.select(np.sort(perm[n_hold:])), ds.select(np.sort(perm[:n_hold]))


def carve_dev(splits: Mapping[str, Dataset], holdout: int | float) -> DatasetDict:
    """Return train/dev/(test) with ``dev`` carved from ``splits['train']`` by :func:`carve`."""
    train, dev = carve(splits["train"], holdout)
    return DatasetDict({"train": train, "dev": dev, **{k: v for k, v in splits.items() if k not in ("train", "dev")}})


class _LabelIds:
    """Maps the raw label strings of a file to label ids, reporting unknown values with file and line."""

    def __init__(self, raw_labels: Sequence[str]) -> None:
        self._ids = {raw: i for i, raw in enumerate(raw_labels)}

    def __call__(self, raw: str, path: Path | str, line: int) -> int:
        try:
            return self._ids[raw]
        except KeyError:
            raise DataError(
                f"{path}:{line}: unknown label {raw!r}; expected one of: {', '.join(self._ids)}"
            ) from None


def _read_text(path: Path, encoding: str = "utf-8-sig") -> str:
    """The whole file; missing or empty files are errors. ``utf-8-sig`` drops the BOM of the MRPC files."""
    if not path.is_file():
        raise MissingFileError(path)
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        hint = "; the file looks like UTF-16, save it as UTF-8" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise DataError(f"{path}:{line}: not valid {encoding} text (byte {data[e.start]:#04x} at offset "
                        f"{e.start}: {e.reason}){hint}") from None
    if not text.strip():
        raise DataError(f"{path} is empty")
    return text


def _csv_rows(path: Path, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-blank record of a CSV/TSV file (line number where it ends)."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter, quoting=quoting)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. a field beyond the size limit: an unbalanced quote swallowed the lines after it
            raise DataError(f"{path}:{reader.line_num}: unreadable record ({e}); an unbalanced quote or a missing "
                            f"line break?") from None
        if fields:
            yield reader.line_num, fields


def _dataset(kind: str, label_names: Sequence[str], columns: Mapping[str, list], path: Path) -> Dataset:
    """The parsed columns of ``path`` as a Dataset with the kind's schema (and its column order)."""
    if not next(iter(columns.values())):
        raise DataError(f"{path} holds no examples")
    features = features_for(kind, label_names)
    return Dataset.from_dict({name: columns[name] for name in features}, features=features)


# --- GLUE-style TSV files (SST-2, MRPC, CoLA, RTE, QNLI, SemEval) ---------------------------------------


@dataclass(frozen=True)
class TsvLayout:
    """Where our columns sit in one TSV layout; ``raw_labels[i]`` is the file's spelling of label ``i``."""

    kind: str
    label_names: tuple[str, ...]
    raw_labels: tuple[str, ...]
    columns: int
    text: int
    label: int
    text_pair: int | None = None
    header: tuple[str, ...] | None = None
    trailing_tab: bool = False  # rows may end in one extra, empty field (SemEval-2016 test.tsv does)


def read_tsv(path: Path, layout: TsvLayout) -> Dataset:
    """One TSV split. Fields are never quoted: GLUE texts contain stray ``"`` that must stay literal."""
    label_id = _LabelIds(layout.raw_labels)
    cols: dict[str, list] = {"text": [], "label": []}
    if layout.text_pair is not None:
        cols["text_pair"] = []
    rows = _csv_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE)
    for line, fields in rows:
        if layout.header is not None and line == 1:
            if tuple(fields) != layout.header:
                raise DataError(f"{path}:1: expected header {layout.header}, found {tuple(fields)}")
            continue
        if layout.trailing_tab and len(fields) == layout.columns + 1 and fields[-1] == "":
            fields.pop()
        if len(fields) != layout.columns:
            raise DataError(f"{path}:{line}: expected {layout.columns} tab-separated fields, found {len(fields)}")
        cols["text"].append(fields[layout.text])
        if layout.text_pair is not None:
            cols["text_pair"].append(fields[layout.text_pair])
        cols["label"].append(label_id(fields[layout.label], path, line))
    return _dataset(layout.kind, layout.label_names, cols, path)


def _read_tsv_splits(task_dir: Path, layout: TsvLayout, files: Mapping[str, str]) -> DatasetDict:
    return DatasetDict({split: read_tsv(task_dir / name, layout) for split, name in files.items()})


_GLUE_FILES = {"train": "train.tsv", "dev": "dev.tsv"}
SST2_TSV = TsvLayout("single", BINARY_SENTIMENT, ("0", "1"), columns=2, text=0, label=1, header=("sentence", "label"))
MRPC_TSV = TsvLayout(
    "pair", MRPC_LABELS, ("0", "1"), columns=5, text=3, text_pair=4, label=0,
    header=("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
)  # fmt: skip
COLA_TSV = TsvLayout("single", COLA_LABELS, ("0", "1"), columns=4, text=3, label=1)  # source, label, mark, sentence
RTE_TSV = TsvLayout(
    "pair", NLI_LABELS, NLI_LABELS, columns=4, text=1, text_pair=2, label=3,
    header=("index", "sentence1", "sentence2", "label"),
)  # fmt: skip
QNLI_TSV = TsvLayout(
    "pair", NLI_LABELS, NLI_LABELS, columns=4, text=1, text_pair=2, label=3,
    header=("index", "question", "sentence", "label"),
)  # fmt: skip
SEM_TSV = TsvLayout("single", BINARY_SENTIMENT, BINARY_SENTIMENT, columns=4, text=3, label=2, trailing_tab=True)


def read_sst2(task_dir: Path) -> DatasetDict:
    """SST-2: GLUE train.tsv / dev.tsv (test.tsv is unlabelled)."""
    return _read_tsv_splits(task_dir, SST2_TSV, _GLUE_FILES)


def read_mrpc(task_dir: Path) -> DatasetDict:
    """MRPC: GLUE train.tsv / dev.tsv (test.tsv is unlabelled)."""
    return _read_tsv_splits(task_dir, MRPC_TSV, _GLUE_FILES)


def read_cola(task_dir: Path) -> DatasetDict:
    """CoLA: train.tsv / dev.tsv (GLUE dev = in-domain + out-of-domain dev)."""
    return _read_tsv_splits(task_dir, COLA_TSV, _GLUE_FILES)


def read_rte(task_dir: Path) -> DatasetDict:
    """RTE: GLUE train.tsv / dev.tsv (test.tsv is unlabelled)."""
    return _read_tsv_splits(task_dir, RTE_TSV, _GLUE_FILES)


def read_qnli(task_dir: Path) -> DatasetDict:
    """QNLI: GLUE train.tsv / dev.tsv; the offline copy lacks train.tsv (see :func:`read_qnli_partial`)."""
    train = task_dir / "train.tsv"
    if not train.is_file():
        raise MissingFileError(
            train,
            "QNLI train is hub-only in the offline copy: load QNLI from the hub, or pass allow_partial=True "
            "to carve a smoke-test train split from dev.tsv",
        )
    return _read_tsv_splits(task_dir, QNLI_TSV, _GLUE_FILES)


def read_qnli_partial(task_dir: Path) -> DatasetDict:
    """Offline smoke-test stand-in for QNLI: train and dev both carved from dev.tsv (not for results)."""
    rest, dev = carve(read_tsv(task_dir / "dev.tsv", QNLI_TSV), QNLI_PARTIAL_DEV_FRACTION)
    return DatasetDict({"train": rest, "dev": dev})


def read_sem(task_dir: Path) -> DatasetDict:
    """SemEval-2016 4B: train.tsv / dev.tsv / test.tsv (devtest.tsv is not used)."""
    return _read_tsv_splits(task_dir, SEM_TSV, {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"})


# --- TREC ------------------------------------------------------------------------------------------------


def read_trec_file(path: Path) -> Dataset:
    """One TREC file of ``COARSE:fine question`` lines; the label is the coarse class."""
    if not path.is_file():
        raise MissingFileError(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # The CogComp originals (train_5500.label, TREC_10.label) are Latin-1, not UTF-8.
        text = data.decode("latin-1")
    label_id = _LabelIds(TREC_LABELS)
    cols: dict[str, list] = {"text": [], "label": []}
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        label, _, question = line.partition(" ")
        coarse, colon, fine = label.partition(":")
        if not (colon and fine and question.strip()):
            raise DataError(f"{path}:{line_no}: expected 'COARSE:fine question', found {line[:60]!r}")
        cols["text"].append(question.strip())
        cols["label"].append(label_id(coarse, path, line_no))
    return _dataset("single", TREC_LABELS, cols, path)


def read_trec(task_dir: Path) -> DatasetDict:
    """TREC-6: train.txt (dev carved from it) and test.txt."""
    splits = {"train": read_trec_file(task_dir / "train.txt"), "test": read_trec_file(task_dir / "test.txt")}
    return carve_dev(splits, TREC_DEV_SIZE)


# --- AG News ---------------------------------------------------------------------------------------------

AG_NEWS_HEADER = ("Class Index", "Title", "Description")


def read_ag_news_csv(path: Path) -> Dataset:
    """An AG News CSV in the original layout: ``class (1-4), title, description``, header optional."""
    label_id = _LabelIds(("1", "2", "3", "4"))
    cols: dict[str, list] = {"text": [], "label": []}
    for line, fields in _csv_rows(path):
        if line == 1 and tuple(fields) == AG_NEWS_HEADER:
            continue
        if len(fields) != 3:
            raise DataError(f"{path}:{line}: expected 3 comma-separated fields, found {len(fields)}")
        cols["text"].append(f"{fields[1]} {fields[2]}")  # as the hub builds it: title + " " + description
        cols["label"].append(label_id(fields[0], path, line))
    return _dataset("single", AG_NEWS_LABELS, cols, path)


def read_ag_news_subset(path: Path) -> Dataset:
    """The 5k train subset in the hub's layout: ``"text",label`` with labels 0-3, no header."""
    label_id = _LabelIds(("0", "1", "2", "3"))
    cols: dict[str, list] = {"text": [], "label": []}
    for line, fields in _csv_rows(path):
        if len(fields) != 2:
            raise DataError(f"{path}:{line}: expected 2 comma-separated fields, found {len(fields)}")
        cols["text"].append(fields[0])
        cols["label"].append(label_id(fields[1], path, line))
    return _dataset("single", AG_NEWS_LABELS, cols, path)


def read_ag_news(task_dir: Path) -> DatasetDict:
    """AG News: train.csv if present, else train_subset_5k.csv (dev carved from it), and test.csv."""
    full = task_dir / "train.csv"
    if full.is_file():
        train = read_ag_news_csv(full)
    else:
        train = read_ag_news_subset(task_dir / "train_subset_5k.csv")
        logger.warning("ag_news: %s has no train.csv; using the %d-row train subset", task_dir, len(train))
    return carve_dev({"train": train, "test": read_ag_news_csv(task_dir / "test.csv")}, AG_NEWS_DEV_FRACTION)


MAX_TOKEN_CHARS = 1000  # a longer "token" is a file in another format (or one without line breaks)
IOB1_CONVERTED = "IOB1 tags converted to IOB2"

# --- CoNLL-2003 ------------------------------------------------------------------------------------------


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB2 tags of an IOB1 sentence: an ``I-X`` that starts an entity becomes ``B-X`` (nothing else changes)."""
    result = []
    for i, tag in enumerate(tags):
        previous = tags[i - 1] if i else "O"
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        result.append(tag)
    return result


def _iob_scheme(path: Path, sentences: Sequence[Sequence[tuple[int, str]]]) -> str:
    """``"IOB2"`` or ``"IOB1"`` for a file's sentences of ``(line, tag)``; a mix of both is a :class:`DataError`.

    IOB2 starts every entity with ``B-``; IOB1 (the original CoNLL-2003 release) starts entities with ``I-`` and
    uses ``B-`` only between two adjacent entities of the same type.
    """
    first_i_start = first_b_start = None
    for sentence in sentences:
        for i, (line, tag) in enumerate(sentence):
            previous = sentence[i - 1][1] if i else "O"
            if tag.startswith("I-") and previous[2:] != tag[2:] and first_i_start is None:
                first_i_start = (line, tag, previous)
            elif tag.startswith("B-") and previous[2:] != tag[2:] and first_b_start is None:
                first_b_start = (line, tag)
    if first_i_start is None:
        return "IOB2"
    line, tag, previous = first_i_start
    if first_b_start is not None:
        raise DataError(f"{path}:{line}: tag {tag} starts an entity (after {previous}) although the file starts "
                        f"entities with B- (line {first_b_start[0]}: {first_b_start[1]}); expected IOB2 tags")
    return "IOB1"


def read_conll_file(path: Path) -> Dataset:
    """``token POS chunk NER`` lines, a blank line between sentences; ``-DOCSTART-`` lines are dropped.

    Tags are IOB2 (the hub's and the offline copy's scheme). A file in IOB1 (the original release: entities start
    with ``I-``) is detected and converted to IOB2 (:func:`iob1_to_iob2`), which is logged and recorded in the
    split's ``info.description``; a file that mixes both schemes is refused with the line of the first stray tag.
    """
    label_id = _LabelIds(CONLL_NER_LABELS)
    sentences: list[list[str]] = []
    tagged: list[list[tuple[int, str]]] = []  # (line, raw tag) per token
    tokens: list[str] = []
    tags: list[tuple[int, str]] = []
    for line_no, line in enumerate(_read_text(path).split("\n"), start=1):
        fields = line.split()
        if fields and fields[0] == "-DOCSTART-":
            continue
        if fields:
            if len(fields) != 4:
                raise DataError(f"{path}:{line_no}: expected 4 space-separated fields, found {len(fields)}")
            if len(fields[0]) > MAX_TOKEN_CHARS:
                raise DataError(f"{path}:{line_no}: token of {len(fields[0])} characters (at most {MAX_TOKEN_CHARS} "
                                f"expected); is this a CoNLL file?")
            label_id(fields[3], path, line_no)
            tokens.append(fields[0])
            tags.append((line_no, fields[3]))
        elif tokens:
            sentences.append(tokens)
            tagged.append(tags)
            tokens, tags = [], []
    if tokens:  # the files need not end with a blank line
        sentences.append(tokens)
        tagged.append(tags)
    scheme = _iob_scheme(path, tagged)
    raw = [[tag for _, tag in sentence] for sentence in tagged]
    if scheme == "IOB1":
        raw = [iob1_to_iob2(sentence) for sentence in raw]
        logger.warning("%s: IOB1 tags (entities starting with I-) converted to IOB2", path)
    cols = {"tokens": sentences, "tags": [[label_id(tag, path, 0) for tag in sentence] for sentence in raw]}
    dataset = _dataset("tagging", CONLL_NER_LABELS, cols, path)
    if scheme == "IOB1":
        dataset.info.description = f"{path.name}: {IOB1_CONVERTED}"
    return dataset


def read_conll2003(task_dir: Path) -> DatasetDict:
    """CoNLL-2003 English NER: train.txt / dev.txt / test.txt."""
    return DatasetDict({s: read_conll_file(task_dir / f"{s}.txt") for s in ("train", "dev", "test")})


# --- Penn Treebank (.mrg) --------------------------------------------------------------------------------

_MRG_TOKEN = re.compile(r"[()]|[^\s()]+")
_MRG_NAME = re.compile(r"wsj_(\d{4})\.mrg")


def read_mrg(path: Path) -> list[tuple[list[str], list[int]]]:
    """Tagged sentences ``(words, tag ids)`` of one bracketed-tree file; ``-NONE-`` elements are dropped.

    Each top-level bracket is one sentence; a pre-terminal is a bracket holding exactly a tag and a word.
    """
    tag_id = _LabelIds(PTB_TAGS)
    sentences: list[tuple[list[str], list[int]]] = []
    stack: list[list] = []
    words: list[str] = []
    tags: list[int] = []
    for line_no, line in enumerate(_read_text(path).split("\n"), start=1):
        for token in _MRG_TOKEN.findall(line):
            if token == "(":
                stack.append([])
            elif token == ")":
                if not stack:
                    raise DataError(f"{path}:{line_no}: unbalanced ')'")
                node = stack.pop()
                if len(node) == 2 and all(isinstance(x, str) for x in node):
                    tag, word = node
                    if tag != "-NONE-":
                        words.append(word)
                        tags.append(tag_id(tag, path, line_no))
                if stack:
                    stack[-1].append(node)
                elif words:
                    sentences.append((words, tags))
                    words, tags = [], []
            elif stack:
                stack[-1].append(token)
            else:
                raise DataError(f"{path}:{line_no}: text {token!r} outside any bracket")
    if stack:
        raise DataError(f"{path}: unbalanced '(' at end of file")
    return sentences


def read_ptb_sample(task_dir: Path) -> DatasetDict:
    """The NLTK Penn Treebank sample in ``treebank/combined/``, split by file number (:data:`POS_FILE_SPLITS`)."""
    combined = task_dir / "treebank" / "combined"
    files = sorted(combined.glob("wsj_*.mrg")) if combined.is_dir() else []
    if not files:
        raise MissingFileError(combined / "wsj_*.mrg")
    cols: dict[str, dict[str, list]] = {s: {"tokens": [], "tags": []} for s in POS_FILE_SPLITS}
    for path in files:
        match = _MRG_NAME.fullmatch(path.name)
        number = int(match.group(1)) if match else -1
        split = next((s for s, numbers in POS_FILE_SPLITS.items() if number in numbers), None)
        if split is None:
            raise DataError(f"{path}: not a file of the treebank sample (expected wsj_0001.mrg .. wsj_0199.mrg)")
        for words, tags in read_mrg(path):
            cols[split]["tokens"].append(words)
            cols[split]["tags"].append(tags)
    return DatasetDict({s: _dataset("tagging", PTB_TAGS, c, combined) for s, c in cols.items()})


# --- SWAG (swagaf CSV) -----------------------------------------------------------------------------------

_SWAG_COLUMNS = ("sent1", "sent2", "ending0", "ending1", "ending2", "ending3", "label")


def read_swag_csv(path: Path) -> Dataset:
    """A swagaf ``train.csv``/``val.csv``; columns are found by header name (the files lead with an index column)."""
    label_id = _LabelIds(SWAG_LABELS)
    cols: dict[str, list] = {"context": [], "endings": [], "label": []}
    rows = _csv_rows(path)
    _, header = next(rows)
    missing = [c for c in _SWAG_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
    at = {c: header.index(c) for c in _SWAG_COLUMNS}
    for line, fields in rows:
        if len(fields) != len(header):
            raise DataError(f"{path}:{line}: expected {len(header)} comma-separated fields, found {len(fields)}")
        sent2 = fields[at["sent2"]]
        cols["context"].append(fields[at["sent1"]])
        cols["endings"].append([f"{sent2} {fields[at[f'ending{i}']]}" for i in range(4)])
        cols["label"].append(label_id(fields[at["label"]], path, line))
    return _dataset("multiple_choice", SWAG_LABELS, cols, path)


def read_swag(task_dir: Path) -> DatasetDict:
    """SWAG (regular): train.csv and val.csv (test.csv is unlabelled)."""
    return DatasetDict({"train": read_swag_csv(task_dir / "train.csv"), "dev": read_swag_csv(task_dir / "val.csv")})


# --- IMDB (aclImdb tarball) ------------------------------------------------------------------------------

IMDB_ARCHIVE = "aclImdb_train_test.tar.gz"
_IMDB_MEMBER = re.compile(r"aclImdb/(train|test)/(neg|pos)/(\d+)_\d+\.txt")
_IMDB_LABEL = {"neg": 0, "pos": 1}  # folder -> index in BINARY_SENTIMENT


def read_imdb(task_dir: Path) -> DatasetDict:
    """IMDB from the aclImdb tarball, streamed (nothing is extracted); dev carved from train.

    Reviews are ordered by label, then review id, so the row order does not depend on the archive's.
    """
    archive = task_dir / IMDB_ARCHIVE
    if not archive.is_file():
        raise MissingFileError(archive)
    found: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = _IMDB_MEMBER.fullmatch(member.name)
                if not (match and member.isfile()):
                    continue
                split, polarity, review_id = match.groups()
                handle = tar.extractfile(member)
                assert handle is not None  # regular files always have contents
                try:
                    review = handle.read().decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"{archive}: {member.name} is not UTF-8 ({e})") from e
                found[split].append((_IMDB_LABEL[polarity], int(review_id), review))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: unreadable archive ({e})") from e
    splits = {}
    for split, reviews in found.items():
        if not reviews:
            raise MissingFileError(archive / f"aclImdb/{split}/{{neg,pos}}/*.txt")
        reviews.sort()
        cols = {"text": [r for _, _, r in reviews], "label": [label for label, _, _ in reviews]}
        splits[split] = _dataset("single", BINARY_SENTIMENT, cols, archive)
    return carve_dev(splits, IMDB_DEV_SIZE)
