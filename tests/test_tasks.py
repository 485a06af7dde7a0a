"""Task registry and original-format readers: split sizes, column contract, errors, carving, hub conversion."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import datasets
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from conftest import DATA_DIR, needs_data
from maskbench.data.tasks import TASKS, TaskSpec, get_task, load, readers, resolve_data_dir
from maskbench.io.errors import ConfigError, DataError

FIXTURES = Path(__file__).parent / "fixtures"

COLUMNS = {
    "single": ["text", "label"],
    "pair": ["text", "text_pair", "label"],
    "tagging": ["tokens", "tags"],
    "multiple_choice": ["context", "endings", "label"],
}
# Split sizes of the offline copies (QNLI with allow_partial=True; SWAG from the test fixture).
SIZES = {
    "sst2": {"train": 67_349, "dev": 872},
    "mrpc": {"train": 3_668, "dev": 408},
    "cola": {"train": 8_551, "dev": 1_043},
    "rte": {"train": 2_490, "dev": 277},
    "qnli": {"train": 4_370, "dev": 1_093},
    "sem": {"train": 4_346, "dev": 1_325, "test": 10_551},
    "trec": {"train": 4_904, "dev": 548, "test": 500},
    "ag_news": {"train": 4_000, "dev": 1_000, "test": 7_600},
    "pos": {"train": 3_068, "dev": 433, "test": 413},
    "conll2003": {"train": 14_041, "dev": 3_250, "test": 3_453},
    "imdb": {"train": 22_500, "dev": 2_500, "test": 25_000},
    "swag": {"train": 12, "dev": 6},
}

_loaded: dict[str, DatasetDict] = {}


def load_offline(name: str) -> DatasetDict:
    """Each offline task is read once per test session (SST-2 and IMDB are the slow ones)."""
    if name not in _loaded:
        root = FIXTURES if name == "swag" else DATA_DIR
        _loaded[name] = load(name, root, allow_partial=True)
    return _loaded[name]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


# --- registry -------------------------------------------------------------------------------------------


def test_registry_lists_the_paper_tasks() -> None:
    assert set(TASKS) == set(SIZES)
    for name, spec in TASKS.items():
        assert isinstance(spec, TaskSpec) and spec.name == name and get_task(name) is spec
        assert spec.kind in COLUMNS
        assert spec.metric in {"accuracy", "matthews", "seqeval_f1", "word_accuracy"}
        assert spec.num_labels == len(spec.label_names) == len(set(spec.label_names)) >= 2
        assert spec.reader is not None and spec.local_dir and spec.description
        assert spec.has_test == ("test" in SIZES[name])
    assert get_task("rte").label_names == ("entailment", "not_entailment")
    assert get_task("conll2003").label_names[:3] == ("O", "B-PER", "I-PER")
    assert len(get_task("pos").label_names) == 45 and "-NONE-" not in get_task("pos").label_names


def test_unknown_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'sst5'; expected one of: sst2, mrpc"):
        get_task("sst5")
    with pytest.raises(ConfigError):
        load("sst5")


def test_resolve_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MASKBENCH_DATA_DIR", raising=False)
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("MASKBENCH_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("elsewhere") == Path("elsewhere")


# --- offline data: sizes and column contract -----------------------------------------------------------


@pytest.mark.parametrize("name", [n if n == "swag" else pytest.param(n, marks=needs_data) for n in SIZES])
def test_offline_split_sizes_and_columns(name: str) -> None:
    spec = get_task(name)
    dd = load_offline(name)
    assert {split: len(ds) for split, ds in dd.items()} == SIZES[name]
    for split, ds in dd.items():
        assert ds.column_names == COLUMNS[spec.kind], split
        if spec.kind == "tagging":
            assert all(len(tokens) == len(tags) > 0 for tokens, tags in zip(ds["tokens"], ds["tags"]))
            assert all(isinstance(w, str) and w for tokens in ds["tokens"] for w in tokens)
            labels = [t for tags in ds["tags"] for t in tags]
        else:
            labels = ds["label"]
        assert set(labels) <= set(range(spec.num_labels)), split
        if split == "train":
            assert len(set(labels)) == spec.num_labels  # every label is used
        if spec.kind == "multiple_choice":
            assert all(isinstance(c, str) and c for c in ds["context"])
            assert all(len(e) == 4 and all(isinstance(x, str) for x in e) for e in ds["endings"])
        elif spec.kind in ("single", "pair"):
            text_columns = COLUMNS[spec.kind][:-1]
            assert all(isinstance(t, str) and t for c in text_columns for t in ds[c]), split


@needs_data
def test_row_contents() -> None:
    mrpc = load_offline("mrpc")["train"][0]
    assert mrpc["label"] == 1 and mrpc["text"].startswith("Amrozi accused")
    assert mrpc["text_pair"].startswith("Referring")
    assert load_offline("rte")["train"][0]["label"] == 1  # not_entailment
    trec_test = load_offline("trec")["test"][0]
    assert trec_test == {"text": "How far is it from Denver to Aspen ?", "label": readers.TREC_LABELS.index("NUM")}
    ag_test = load_offline("ag_news")["test"][0]
    assert ag_test["label"] == 2 and ag_test["text"].startswith("Fears for T N pension after talks Unions")
    conll = load_offline("conll2003")["train"][0]
    names = get_task("conll2003").label_names
    assert conll["tokens"][:3] == ["EU", "rejects", "German"] and [names[t] for t in conll["tags"][:3]] == [
        "B-ORG", "O", "B-MISC",
    ]  # fmt: skip
    swag = load_offline("swag")["train"][0]
    assert swag["context"] == "Members of the procession walk down the street holding small horn brass instruments."
    assert swag["endings"][0] == "A drum line passes by walking down the street playing their instruments."


@needs_data
def test_pos_sample_split_and_traces() -> None:
    dd = load_offline("pos")
    assert {s: sum(map(len, ds["tokens"])) for s, ds in dd.items()} == {"train": 73_842, "dev": 10_627, "test": 9_615}
    first = dd["train"][0]
    assert first["tokens"][:2] == ["Pierre", "Vinken"]
    assert [get_task("pos").label_names[t] for t in first["tags"][:2]] == ["NNP", "NNP"]
    # -NONE- elements (traces such as *-1, *T*-2, 0) are gone.
    assert not any(w.startswith("*") for ds in dd.values() for tokens in ds["tokens"] for w in tokens)


# --- carving --------------------------------------------------------------------------------------------


def test_carve_partitions_deterministically() -> None:
    ds = Dataset.from_dict({"i": list(range(100))})
    rest, held = readers.carve(ds, 0.2)
    assert len(held) == 20 and sorted([*rest["i"], *held["i"]]) == list(range(100))
    assert held["i"] == sorted(held["i"])  # original order kept
    assert readers.carve(ds, 0.2)[1]["i"] == held["i"]
    assert readers.carve(ds, 20, seed=1)[1]["i"] != held["i"]
    with pytest.raises(DataError):
        readers.carve(ds, 100)


@needs_data
@pytest.mark.parametrize(("name", "source"), [("trec", "train.txt"), ("ag_news", "train_subset_5k.csv")])
def test_carved_dev_is_deterministic_and_from_train(name: str, source: str) -> None:
    first, again = load(name, DATA_DIR), load(name, DATA_DIR)
    assert first["dev"]["text"] == again["dev"]["text"] and first["train"]["text"] == again["train"]["text"]
    read = readers.read_trec_file if name == "trec" else readers.read_ag_news_subset
    original = read(DATA_DIR / name / source)
    rows = Counter(zip(original["text"], original["label"]))
    carved = Counter(zip(first["train"]["text"], first["train"]["label"]))
    carved.update(zip(first["dev"]["text"], first["dev"]["label"]))
    assert carved == rows  # train and dev partition the original rows


@needs_data
def test_imdb_dev_is_carved_from_train() -> None:
    dd = load_offline("imdb")
    assert Counter(dd["dev"]["label"]) + Counter(dd["train"]["label"]) == Counter({0: 12_500, 1: 12_500})
    assert Counter(dd["test"]["label"]) == Counter({0: 12_500, 1: 12_500})
    assert "<br />" in "".join(dd["test"]["text"][:50])  # raw review text, as on the hub


# --- partial data and data-dir resolution ----------------------------------------------------------------


@needs_data
def test_qnli_without_train_needs_allow_partial() -> None:
    with pytest.raises(DataError, match=r"qnli/train\.tsv.*hub-only.*allow_partial"):
        load("qnli", DATA_DIR)
    dd = load_offline("qnli")
    dev = readers.read_tsv(DATA_DIR / "qnli" / "dev.tsv", readers.QNLI_TSV)
    assert sorted([*dd["train"]["text"], *dd["dev"]["text"]]) == sorted(dev["text"])
    assert load("qnli", DATA_DIR, allow_partial=True)["dev"]["text"] == dd["dev"]["text"]


@needs_data
def test_missing_split_file_is_named(tmp_path: Path) -> None:
    task_dir = tmp_path / "rte"
    task_dir.mkdir()
    shutil.copyfile(DATA_DIR / "rte" / "train.tsv", task_dir / "train.tsv")
    with pytest.raises(DataError, match=rf"missing data file {task_dir / 'dev.tsv'}"):
        load("rte", tmp_path)


def test_explicit_data_dir_must_hold_the_task(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"{tmp_path / 'sst2'} does not exist"):
        load("sst2", tmp_path)


def test_hub_failure_points_to_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(path: str, name: str | None = None, **kwargs: object) -> DatasetDict:
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("MASKBENCH_DATA_DIR", str(tmp_path))  # set, but without a sst2/ directory
    with pytest.raises(DataError, match=r"nyu-mll/glue.*Couldn't reach.*MASKBENCH_DATA_DIR.*--data-dir"):
        load("sst2")
    monkeypatch.delenv("MASKBENCH_DATA_DIR")
    with pytest.raises(DataError, match=r"'pos' has no hub source.*MASKBENCH_DATA_DIR"):
        load("pos")


# --- malformed files -------------------------------------------------------------------------------------


def test_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "sst2" / "train.tsv", "sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n")
    write(tmp_path / "sst2" / "dev.tsv", "sentence\tlabel\nfine\t1\n")
    with pytest.raises(DataError, match=r"sst2/train\.tsv:3: expected 2 tab-separated fields, found 3"):
        load("sst2", tmp_path)


def test_stray_quotes_stay_literal(tmp_path: Path) -> None:
    write(tmp_path / "sst2" / "train.tsv", 'sentence\tlabel\n"quoted\t1\nplain "mid" text\t0\n')
    write(tmp_path / "sst2" / "dev.tsv", "sentence\tlabel\nfine\t1\n")
    assert load("sst2", tmp_path)["train"]["text"] == ['"quoted', 'plain "mid" text']


def test_mrpc_bom_header_and_wrong_header(tmp_path: Path) -> None:
    header = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    write(tmp_path / "mrpc" / "train.tsv", header + "1\t1\t2\tA cat sat.\tA cat was sitting.\n")
    write(tmp_path / "mrpc" / "dev.tsv", header.replace("Quality", "Label") + "0\t3\t4\tX.\tY.\n")
    with pytest.raises(DataError, match=r"dev\.tsv:1: expected header"):
        load("mrpc", tmp_path)


@pytest.mark.parametrize(
    ("name", "files", "bad_file", "line", "value"),
    [
        ("rte", {"train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tC.\tD.\tmaybe\n",
                 "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n"}, "train.tsv", 3, "maybe"),
        ("cola", {"train.tsv": "gj04\t1\t\tOk.\n", "dev.tsv": "gj04\t2\t*\tBad.\n"}, "dev.tsv", 1, "2"),
        ("sem", {"train.tsv": "1\tt\tneutral\ttweet\n", "dev.tsv": "", "test.tsv": ""}, "train.tsv", 1, "neutral"),
        ("trec", {"train.txt": "NUM:dist How far ?\nXYZ:foo What ?\n", "test.txt": "HUM:ind Who ?\n"},
         "train.txt", 2, "XYZ"),
        ("ag_news", {"train_subset_5k.csv": '"a b",0\n"c d",4\n', "test.csv": "1,t,d\n"},
         "train_subset_5k.csv", 2, "4"),
        ("conll2003", {"train.txt": "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nx NN I-NP B-FOO\n",
                       "dev.txt": "", "test.txt": ""}, "train.txt", 4, "B-FOO"),
        ("pos", {"treebank/combined/wsj_0001.mrg": "( (S (NP (NNP Pierre) )\n  (VP (XYZ joins) ) ))\n"},
         "treebank/combined/wsj_0001.mrg", 2, "XYZ"),
        ("swag", {"train.csv": ",sent1,sent2,ending0,ending1,ending2,ending3,label\n0,A.,B,c,d,e,f,4\n",
                  "val.csv": ""}, "train.csv", 2, "4"),
    ],
)  # fmt: skip
def test_unknown_label_names_file_line_and_value(
    tmp_path: Path, name: str, files: dict[str, str], bad_file: str, line: int, value: str
) -> None:
    for rel, text in files.items():
        write(tmp_path / name / rel, text)
    with pytest.raises(DataError, match=rf"{name}/{bad_file}:{line}: unknown label '{value}'"):
        load(name, tmp_path)


@pytest.mark.parametrize(
    ("name", "files", "message"),
    [
        ("trec", {"train.txt": "How far is it ?\n", "test.txt": "HUM:ind Who ?\n"}, r"train\.txt:1: expected 'COARSE"),
        ("conll2003", {"train.txt": "EU NNP B-ORG\n", "dev.txt": "", "test.txt": ""}, r"train\.txt:1: expected 4"),
        ("ag_news", {"train_subset_5k.csv": '"a",0\n', "test.csv": "1,only title\n"}, r"test\.csv:1: expected 3"),
        ("swag", {"train.csv": ",sent1,sent2,ending0,ending1,ending2,ending3,label\n0,A.,B,c,d,e,f\n", "val.csv": ""},
         r"train\.csv:2: expected 8 comma-separated fields, found 7"),
        ("swag", {"train.csv": "sent1,sent2,label\nA.,B,0\n", "val.csv": ""}, r"train\.csv:1: header lacks"),
        ("pos", {"treebank/combined/wsj_0001.mrg": "( (S (NNP Pierre) )\n"}, r"wsj_0001\.mrg: unbalanced"),
        ("pos", {"treebank/combined/wsj_0250.mrg": "( (S (NNP Pierre) ))\n"}, r"not a file of the treebank sample"),
        ("sst2", {"train.tsv": "", "dev.tsv": ""}, r"train\.tsv is empty"),
        ("sst2", {"train.tsv": "sentence\tlabel\n", "dev.tsv": ""}, r"train\.tsv holds no examples"),
    ],
)  # fmt: skip
def test_malformed_files(tmp_path: Path, name: str, files: dict[str, str], message: str) -> None:
    for rel, text in files.items():
        write(tmp_path / name / rel, text)
    with pytest.raises(DataError, match=message):
        load(name, tmp_path)


def test_ag_news_prefers_full_train_csv(tmp_path: Path) -> None:
    rows = "".join(f'"{1 + i % 4}","Title {i}","Body {i}"\n' for i in range(10))
    write(tmp_path / "ag_news" / "train.csv", rows)  # original layout, no header
    write(tmp_path / "ag_news" / "test.csv", 'Class Index,Title,Description\n3,"T, t",D\n')
    dd = load("ag_news", tmp_path)
    assert {s: len(ds) for s, ds in dd.items()} == {"train": 8, "dev": 2, "test": 1}
    assert dd["test"][0] == {"text": "T, t D", "label": 2}


def test_trec_reads_latin1_originals(tmp_path: Path) -> None:
    lines = "".join(f"LOC:city Which sister\xf0city {i} ?\n" for i in range(600))
    write(tmp_path / "trec" / "train.txt", lines, encoding="latin-1")
    write(tmp_path / "trec" / "test.txt", "HUM:ind Who ?\n")
    dd = load("trec", tmp_path)
    assert len(dd["dev"]) == 548 and dd["train"][0]["text"].startswith("Which sister\xf0city")


def test_imdb_archive_errors(tmp_path: Path) -> None:
    (tmp_path / "imdb").mkdir()
    with pytest.raises(DataError, match=r"missing data file .*aclImdb_train_test\.tar\.gz"):
        load("imdb", tmp_path)
    write(tmp_path / "imdb" / readers.IMDB_ARCHIVE, "not a tarball")
    with pytest.raises(DataError, match=r"unreadable archive"):
        load("imdb", tmp_path)


# --- hub conversion (load_dataset replaced by in-memory hub-shaped data) --------------------------------


def fake_hub(monkeypatch: pytest.MonkeyPatch, expected: tuple[str, str | None], data: DatasetDict) -> None:
    def load_dataset(path: str, name: str | None = None, **kwargs: object) -> DatasetDict:
        assert (path, name) == expected
        return data

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv("MASKBENCH_DATA_DIR", raising=False)


def test_hub_labels_map_by_name_and_dev_is_carved(monkeypatch: pytest.MonkeyPatch) -> None:
    hub_order = ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]  # an older hub ordering of the coarse classes
    features = Features({"text": Value("string"), "coarse_label": ClassLabel(names=hub_order),
                         "fine_label": Value("int64")})  # fmt: skip
    train = Dataset.from_dict(
        {"text": [f"q{i}" for i in range(600)], "coarse_label": [i % 6 for i in range(600)], "fine_label": [0] * 600},
        features=features,
    )
    test = train.select(range(6))
    fake_hub(monkeypatch, ("CogComp/trec", None), DatasetDict({"train": train, "test": test}))
    dd = load("trec")
    assert {s: len(ds) for s, ds in dd.items()} == {"train": 52, "dev": 548, "test": 6}
    assert [readers.TREC_LABELS[x] for x in dd["test"]["label"]] == hub_order
    assert dd["test"].column_names == ["text", "label"]
    assert dd["dev"]["text"] == load("trec")["dev"]["text"]


def test_hub_label_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    split = Dataset.from_dict({"text": [f"r{i}" for i in range(2_600)], "label": [i % 2 for i in range(2_600)]},
                              features=features)  # fmt: skip
    hub = DatasetDict({"train": split, "test": split, "unsupervised": split})
    fake_hub(monkeypatch, ("stanfordnlp/imdb", None), hub)
    dd = load("imdb")
    assert {s: len(ds) for s, ds in dd.items()} == {"train": 100, "dev": 2_500, "test": 2_600}
    assert dd["test"].features["label"].names == ["negative", "positive"] and dd["test"]["label"][:2] == [0, 1]


def test_hub_tagging_and_multiple_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    names = list(readers.CONLL_NER_LABELS)
    features = Features(
        {"id": Value("string"), "tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))}
    )
    split = Dataset.from_dict({"id": ["0"], "tokens": [["EU", "rejects"]], "ner_tags": [[3, 0]]}, features=features)
    hub = DatasetDict({"train": split, "validation": split, "test": split})
    fake_hub(monkeypatch, ("eriktks/conll2003", None), hub)
    assert load("conll2003")["dev"][0] == {"tokens": ["EU", "rejects"], "tags": [3, 0]}

    row = {"video-id": ["v"], "fold-ind": ["1"], "startphrase": ["A. B"], "sent1": ["A."], "sent2": ["B"],
           "gold-source": ["gold"], **{f"ending{i}": [f"e{i}."] for i in range(4)}}  # fmt: skip
    swag = DatasetDict({"train": Dataset.from_dict({**row, "label": [2]}),
                        "validation": Dataset.from_dict({**row, "label": [1]})})  # fmt: skip
    fake_hub(monkeypatch, ("allenai/swag", "regular"), swag)
    assert load("swag")["train"][0] == {"context": "A.", "endings": ["B e0.", "B e1.", "B e2.", "B e3."], "label": 2}


def test_hub_unlabelled_rows_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]),
                         "idx": Value("int32")})  # fmt: skip
    split = Dataset.from_dict({"sentence": ["a", "b"], "label": [1, -1], "idx": [0, 1]}, features=features)
    fake_hub(monkeypatch, ("nyu-mll/glue", "sst2"), DatasetDict({"train": split, "validation": split}))
    with pytest.raises(DataError, match=r"label -1 is outside 0\.\.1"):
        load("sst2")
