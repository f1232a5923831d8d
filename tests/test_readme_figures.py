"""The README states no measured figure that the benchmark results do not hold.

Figures belong in the generated block (between the ``bench-results`` markers, rewritten from
``docs/results.json`` by ``bench report``); prose elsewhere cites those tables. This test finds every
decimal figure (``0.94``), ratio (``1.29×``, ``7x``) and percentage (``92 %``) in the README outside
that block, code blocks and inline code, and fails for one that no number in ``docs/results.json``
rounds to at the printed precision. Version numbers and model names (``2.13.0``, ``Qwen2.5``,
``0.5B``) are not figures, nor is a confidence level (``95 % Wilson interval``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specprefill_langchain.bench.report import README_END, README_START

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
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
_NUMBER_IN_TEXT = re.compile(r"\d+(?:\.\d+)?")


def prose(text: str) -> str:
    """The README without the generated block, code blocks, inline code and HTML comments."""
    start, end = text.find(README_START), text.find(README_END)
    if 0 <= start < end:
        text = text[:start] + text[end + len(README_END) :]
    for pattern in (_FENCE, _INLINE, _COMMENT):
        text = pattern.sub(" ", text)
    return text


def figures(text: str) -> list[tuple[str, float, float]]:
    """(as written, value as a fraction or ratio, rounding tolerance) for each figure in ``text``."""
    found: list[tuple[str, float, float]] = []

    def tol(digits: str, scale: float = 1.0) -> float:
        places = len(digits.split(".")[1]) if "." in digits else 0
        return 0.5 * 10.0**-places * scale + 1e-9

    for m in _RATIO.finditer(text):
        found.append((m.group(0), float(m.group(1)), tol(m.group(1))))
    for m in _PERCENT.finditer(text):
        found.append((m.group(0), float(m.group(1)) / 100, tol(m.group(1), 0.01)))
    for m in _DECIMAL.finditer(text):
        found.append((m.group(0), float(m.group(1)), tol(m.group(1))))
    return found


def numbers(node: Any) -> Iterator[float]:
    """Every number in a JSON document, including those written inside strings (commands, versions)."""
    if isinstance(node, bool):
        return
    if isinstance(node, int | float):
        yield float(node)
    elif isinstance(node, str):
        yield from (float(x) for x in _NUMBER_IN_TEXT.findall(node))
    elif isinstance(node, dict):
        for value in node.values():
            yield from numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from numbers(value)


def unbacked(readme: str, results: Any) -> list[str]:
    known = sorted(set(numbers(results)))
    return [
        shown
        for shown, value, tolerance in figures(prose(readme))
        if not any(abs(value - k) <= tolerance or abs(value * 100 - k) <= tolerance * 100 for k in known)
    ]


def test_figure_patterns() -> None:
    text = (
        "retention 0.75 → 0.88, 1.29× faster, 7x, 92 % and 50%, a 95 % Wilson interval. Qwen2.5-Coder-0.5B, "
        "torch 2.13.0, "
        "`keep 0.42` stays code, a/2.5 is a path, and the end of a sentence: 0.94."
    )
    shown = sorted(s for s, _, _ in figures(prose(text)))
    assert shown == sorted(["0.75", "0.88", "1.29×", "7x", "92 %", "50%", "0.94"])


def test_unbacked_figures_are_caught() -> None:
    readme = f"Speed-up 6.8× and retention 0.917, 92 %.\n{README_START}\n0.123 inside\n{README_END}\nAlso 3.7×."
    results = {"speedup": 6.82, "fidelity": [{"retention": 0.91666}], "share": 0.921}
    assert unbacked(readme, results) == ["3.7×"]


@pytest.mark.skipif(not RESULTS.is_file(), reason="docs/results.json is written by `bench all`")
def test_readme_prose_restates_no_unmeasured_figure() -> None:
    bad = unbacked(README.read_text(), json.loads(RESULTS.read_text()))
    assert not bad, (
        f"README.md states {bad} outside the generated results block, and docs/results.json holds no such "
        "number: cite the tables (or add the measurement to `bench all`) instead of restating figures."
    )
