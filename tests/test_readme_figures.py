"""Every figure the README and docs show comes from ``docs/results.json``, exactly, at today's defaults.

* The README's results block and ``docs/RESULTS.md`` must be byte for byte what ``bench report`` renders
  from ``docs/results.json``: a number changed by hand in either fails here.
* Prose outside the block (README, docs/design.md) states no measured figure at all: it cites the
  tables. A figure is a decimal (``0.94``), a ratio (``1.29×``, ``7x``) or a percentage (``92 %``);
  version numbers, model names and confidence levels are not figures.
* Every section shown was measured at the library's defaults of today (``defaults`` stamped by
  ``--save`` / ``bench all``, module ``bench.provenance``): changing a default without re-running what
  it affects fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from specprefill_langchain.bench.provenance import stale_sections
from specprefill_langchain.bench.report import README_END, README_START, readme_block, report_text

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DESIGN = ROOT / "docs" / "design.md"
RESULTS_MD = ROOT / "docs" / "RESULTS.md"
RESULTS = ROOT / "docs" / "results.json"

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
_INLINE = re.compile(r"`[^`\n]*`")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# A number not glued to a word, a dot, a hyphen or a slash on its left (Qwen2.5, 2.13.0, v1, a/2) ...
_LEFT = r"(?<![\w.\-/])"
_RATIO = re.compile(_LEFT + r"(\d+(?:\.\d+)?)\s?(?:×|x(?![\w]))")
# A confidence level ("95 % Wilson interval", "99 % CI") describes an interval; it is not a result.
_PERCENT = re.compile(_LEFT + r"(\d+(?:\.\d+)?)\s?%(?!\s+(?:Wilson|confidence|CI)\b)")
# ... and, for a bare decimal, not glued on its right either (0.5B, 2.5-coder, 2.13.0).
_DECIMAL = re.compile(_LEFT + r"(\d+\.\d+)(?![\w\-×%]|\.\d|\s?%|\s?×)")


def prose(text: str) -> str:
    """The text without the generated block, code blocks, inline code and HTML comments."""
    start, end = text.find(README_START), text.find(README_END)
    if 0 <= start < end:
        text = text[:start] + text[end + len(README_END) :]
    for pattern in (_FENCE, _INLINE, _COMMENT):
        text = pattern.sub(" ", text)
    return text


def figures(text: str) -> list[str]:
    """Each figure in ``text`` as written."""
    return [m.group(0) for p in (_RATIO, _PERCENT, _DECIMAL) for m in p.finditer(text)]


def block_of(readme: str) -> str:
    start, end = readme.find(README_START), readme.find(README_END)
    assert 0 <= start < end, "the README has no results block"
    return readme[start + len(README_START) : end]


def shown_sections(results: dict[str, Any]) -> list[str]:
    """The data sections of results.json that the report renders."""
    skip = {"machine", "command", "quick", "commands", "dates", "defaults", "plots", "failed"}
    return sorted(k for k, v in results.items() if k not in skip and isinstance(v, dict) and "error" not in v)


# --------------------------------------------------------------------------- the checks themselves
def test_figure_patterns() -> None:
    text = (
        "retention 0.75 → 0.88, 1.29× faster, 7x, 92 % and 50%, a 95 % Wilson interval. Qwen2.5-Coder-0.5B, "
        "torch 2.13.0, `keep 0.42` stays code, a/2.5 is a path, and the end of a sentence: 0.94."
    )
    assert sorted(figures(prose(text))) == sorted(["0.75", "0.88", "1.29×", "7x", "92 %", "50%", "0.94"])


def test_a_number_changed_by_hand_in_the_block_is_caught() -> None:
    results = json.loads(RESULTS.read_text())
    readme = README.read_text()
    block = block_of(readme)
    number = re.search(r"\| (\d\.\d{3}) \[", block)
    assert number is not None, "the block shows no rate to tamper with"
    tampered = block.replace(number.group(0), "| 0.999 [", 1)
    assert tampered != block
    assert tampered != readme_block(results, README.parent)  # what the real test below would see


# --------------------------------------------------------------------------- the repository
@pytest.mark.skipif(not RESULTS.is_file(), reason="docs/results.json is written by the benchmarks")
def test_readme_block_is_exactly_what_the_results_render() -> None:
    results = json.loads(RESULTS.read_text())
    assert block_of(README.read_text()) == readme_block(results, README.parent), (
        "the README's results block differs from docs/results.json: run `specprefill bench report` "
        "(never edit the block by hand)"
    )


@pytest.mark.skipif(not RESULTS.is_file(), reason="docs/results.json is written by the benchmarks")
def test_results_md_is_exactly_what_the_results_render() -> None:
    results = json.loads(RESULTS.read_text())
    assert RESULTS_MD.read_text() == report_text(results, RESULTS_MD.parent), (
        "docs/RESULTS.md differs from docs/results.json: run `specprefill bench report`"
    )


@pytest.mark.parametrize("path", [README, DESIGN], ids=["README", "design"])
def test_prose_states_no_figure_of_its_own(path: Path) -> None:
    found = figures(prose(path.read_text()))
    assert not found, (
        f"{path.name} states {found} outside the generated results block: cite the tables instead "
        "(or add the measurement to a benchmark)"
    )


@pytest.mark.skipif(not RESULTS.is_file(), reason="docs/results.json is written by the benchmarks")
def test_every_section_shown_was_measured_at_the_shipping_defaults() -> None:
    results = json.loads(RESULTS.read_text())
    stale = stale_sections(results, shown_sections(results))
    assert not stale, (
        f"sections {stale} were measured at other defaults than config.py's (or before defaults were "
        "recorded): re-run them (`bench all` / the section's command with --save docs/results.json)"
    )
