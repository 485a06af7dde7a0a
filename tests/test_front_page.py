"""The front pages hold no hand-typed result number: results live in generated blocks equal to a fresh render from
the committed records (maskbench.results.frontpage), and every other number with a decimal point in README.md and
workflow/README.md is a named constant, not a result.

Checked against the old code: on the integration branch README.md has no generated block and types the demo's and
the reference's numbers by hand (80.8, +1.0, 0.63 ...), so both tests of the pages fail there."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import REPO
from maskbench.io.errors import ConfigError
from maskbench.results import frontpage

PAGES_CHECKED = ["README.md", "workflow/README.md"]
#: numbers with a decimal point that may stand outside a generated block: none is a result
ALLOWED = {
    "2004.12406": "the paper's arXiv id",
    "3.10": "the minimum Python version",
    "0.02": "init_scale, the authors' score initialisation constant",
    "0.01": "threshold, the authors' constant",
    "−0.02": "the lower end of the initial score range, −init_scale",
    "0.58": "(c + τ)/s − c for s = 5 %: arithmetic on the constants above",
    "8.9": "71,368,704 bits / 8 in MB: the size of bert-base's packed masks, arithmetic",
    "12.9": "the CUDA version the GPU environment pins (workflow/envs/maskbench-cuda.yaml), a software version",
}
NUMBER = re.compile(r"(?<![\w.])[+−-]?\d[\d,]*\.\d+(?![\w.])")


def _outside_blocks(text: str) -> str:
    """A page without its generated blocks, code (fenced and inline) and link targets."""
    text = frontpage._BLOCK.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    text = re.sub(r"`[^`]*`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def test_every_generated_block_is_a_fresh_render_of_the_committed_records():
    fresh = frontpage.render_blocks(REPO)
    for page, names in frontpage.PAGES.items():
        blocks = frontpage.generated_blocks((REPO / page).read_text(encoding="utf-8"))
        assert list(blocks) == names, page
        for name in names:
            assert blocks[name] == fresh[name], \
                f"{page}: block {name} is out of date: run python -m maskbench.cli step front-page '{{}}'"


@pytest.mark.parametrize("page", PAGES_CHECKED)
def test_no_result_number_outside_the_generated_blocks(page):
    text = _outside_blocks((REPO / page).read_text(encoding="utf-8"))
    found = {match[0] for match in NUMBER.finditer(text)}
    assert found <= set(ALLOWED), f"{page}: numbers typed by hand (generate them or remove them): " \
                                  f"{sorted(found - set(ALLOWED))}"
    assert "at full scale" not in (REPO / page).read_text(encoding="utf-8")


def test_the_readme_says_which_model_the_committed_results_are_and_lists_every_task():
    from maskbench.data.tasks import TASKS

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "offline MiniLM" in readme and "has *not* been run here" in readme
    tasks = frontpage.generated_blocks(readme)["tasks"]
    for name, spec in TASKS.items():
        assert f"| `{name}` |" in tasks and spec.description.replace("|", "\\|") in tasks, name


def test_the_number_check_catches_a_hand_typed_score():
    page = "Masking reaches 80.8 ± 0.2 on SST-2.\n" + frontpage.BEGIN.format(name="tasks") + "\n91.2\n" \
        + frontpage.END.format(name="tasks")
    assert {match[0] for match in NUMBER.finditer(_outside_blocks(page))} == {"80.8", "0.2"}


def test_rewrite_replaces_only_the_blocks_and_refuses_an_unknown_one():
    page = f"intro 1.5\n{frontpage.BEGIN.format(name='tasks')}\nold\n{frontpage.END.format(name='tasks')}\nend\n"
    assert frontpage.rewrite(page, {"tasks": "new\n"}) == page.replace("old\n", "new\n")
    with pytest.raises(ConfigError, match="unknown generated block 'tasks'"):
        frontpage.rewrite(page, {"other": ""}, "README.md")


def test_the_step_rewrites_a_stale_block_and_check_refuses_it(tmp_path):
    for part in ("config", "results"):
        (tmp_path / part).symlink_to(REPO / part)
    for page in frontpage.PAGES:
        if page.startswith("results/"):
            continue
        shutil.copyfile(REPO / page, tmp_path / page)
    # results/reference/README.md is read through the symlink: write a stale copy of README.md only
    readme = tmp_path / "README.md"
    readme.write_text(frontpage.rewrite(readme.read_text(encoding="utf-8"),
                                        {"reference-gaps": "80.8 by hand\n", "tasks": "none\n"}))
    pages = dict(frontpage.PAGES)
    with pytest.raises(ConfigError, match="out of date in README.md"):
        frontpage.write_front_page(str(tmp_path), check=True)
    assert frontpage.write_front_page(str(tmp_path)) == ["README.md"]
    assert readme.read_text(encoding="utf-8") == (REPO / "README.md").read_text(encoding="utf-8")
    assert frontpage.PAGES == pages
