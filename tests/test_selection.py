"""Chunks, chunk scores and budgeted selection on hand-made tensors (no model)."""

from __future__ import annotations

import pytest
import torch

from specprefill_langchain.selection import chunk_scores, make_chunks, select_chunks


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- make_chunks
def _check_tiling(chunks: list[tuple[int, int]], n: int) -> None:
    assert chunks[0][0] == 0 and chunks[-1][1] == n
    assert all(a < b for a, b in chunks)
    assert all(chunks[i][1] == chunks[i + 1][0] for i in range(len(chunks) - 1))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [4, 7, 32])
def test_make_chunks_tiles_and_respects_lengths(seed, target) -> None:
    """With a word boundary or better after every token, every chunk lies in [target//2, 2*target]."""
    g = _gen(seed)
    n = int(torch.randint(1, 400, (1,), generator=g))
    breaks = torch.randint(2, 5, (n,), generator=g)
    chunks = make_chunks(breaks, target)
    _check_tiling(chunks, n)
    lo, hi = max(1, target // 2), 2 * target
    lengths = [b - a for a, b in chunks]
    assert all(length <= hi for length in lengths)
    if n >= lo:
        assert all(length >= lo for length in lengths)  # the tail too
    assert make_chunks(breaks.clone(), target) == chunks


def test_make_chunks_never_cuts_where_not_allowed() -> None:
    g = _gen(20)
    for _ in range(20):
        n = int(torch.randint(1, 300, (1,), generator=g))
        breaks = torch.randint(0, 5, (n,), generator=g)
        breaks[torch.rand(n, generator=g) < 0.6] = 0  # long runs that must stay together
        chunks = make_chunks(breaks, 8)
        _check_tiling(chunks, n)
        assert all(int(breaks[b - 1]) >= 2 for _, b in chunks[:-1])  # never inside a character or a word


def test_make_chunks_prefers_stronger_boundaries() -> None:
    breaks = torch.full((100,), 2)
    breaks[20] = 3  # a line end after token 20: chunk of 21 beats a word break at the target 32
    assert make_chunks(breaks, 32)[0] == (0, 21)
    breaks[40] = 4  # a record end, still within 2*target, beats the line end
    assert make_chunks(breaks, 32)[0] == (0, 41)
    inside = torch.ones(100, dtype=torch.long)
    inside[50] = 2  # a word break beats cutting inside a word even far from the target
    assert make_chunks(inside, 32)[0] == (0, 51)


def test_make_chunks_nearest_to_target_and_ties_go_shorter() -> None:
    breaks = torch.full((100,), 2)
    breaks[[19, 29]] = 3
    assert make_chunks(breaks, 32)[0] == (0, 30)
    breaks = torch.full((100,), 2)
    breaks[[27, 35]] = 3  # lengths 28 and 36 are both 4 from the target
    assert make_chunks(breaks, 32)[0] == (0, 28)


def test_make_chunks_tail_is_not_a_sliver() -> None:
    assert make_chunks(torch.full((70,), 2), 32) == [(0, 32), (32, 70)]
    assert make_chunks(torch.full((10,), 2), 32) == [(0, 10)]  # whole span shorter than target//2
    assert make_chunks(torch.full((60,), 2), 32) == [(0, 60)]  # the span end beats word breaks


def test_make_chunks_tail_still_splits_at_line_ends_near_the_target() -> None:
    lines = torch.full((60,), 2)
    lines[[14, 29, 44]] = 3
    assert make_chunks(lines, 32) == [(0, 30), (30, 60)]
    lines[15] = 4  # a record end beats the span end and the line ends
    assert make_chunks(lines, 32) == [(0, 16), (16, 60)]  # a cut at 45 would leave a 15-token sliver


def test_make_chunks_runs_without_a_word_boundary_stay_whole() -> None:
    zeros = torch.zeros(50, dtype=torch.long)
    assert make_chunks(zeros, 8) == [(0, 50)]
    zeros[30] = 1  # a cut inside a word (a URL, base64) is no way out of a long run
    assert make_chunks(zeros, 8) == [(0, 50)]
    zeros[30] = 2  # the first word boundary past the window ends the chunk, longer than 2*target
    assert make_chunks(zeros, 8) == [(0, 31), (31, 50)]
    zeros[45] = 3  # a line end 15 tokens on: within the window of the next chunk
    assert make_chunks(zeros, 8) == [(0, 31), (31, 46), (46, 50)]
    zeros[45] = 0
    zeros[47] = 3  # a cut at 48 would leave a 2-token sliver: the chunk swallows the tail instead
    assert make_chunks(zeros, 8) == [(0, 31), (31, 50)]
    # A 40-token URL after a few words: its chunk takes it whole (41 tokens, over 2*target = 16).
    url = torch.full((100,), 2)
    url[10:50] = 1
    chunks = make_chunks(url, 8)
    assert chunks[:3] == [(0, 8), (8, 51), (51, 59)]
    assert all(not 10 < b < 51 for _, b in chunks)
    assert make_chunks(torch.zeros(0, dtype=torch.long), 8) == []
    assert make_chunks(torch.tensor(()), 8) == []  # an empty tuple becomes a float tensor


def test_make_chunks_errors() -> None:
    with pytest.raises(ValueError, match=r"1-D tensor \(N,\), got shape \(2, 3\)"):
        make_chunks(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer break levels"):
        make_chunks(torch.zeros(4))
    with pytest.raises(ValueError, match="target=0"):
        make_chunks(torch.zeros(4, dtype=torch.long), 0)


# --------------------------------------------------------------------------- chunk_scores
def test_chunk_scores_is_the_mean_of_each_chunk() -> None:
    g = _gen(30)
    s = torch.rand(200, generator=g) * 1e-3
    chunks = make_chunks(torch.randint(1, 5, (200,), generator=g), 16)
    out = chunk_scores(s, chunks)
    assert out.shape == (len(chunks),) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.stack([s[a:b].mean() for a, b in chunks]))
    assert chunk_scores(s, []).shape == (0,)


def test_chunk_scores_errors() -> None:
    with pytest.raises(ValueError, match=r"0 <= start < end <= 5"):
        chunk_scores(torch.zeros(5), [(0, 3), (3, 6)])
    with pytest.raises(ValueError, match=r"0 <= start < end"):
        chunk_scores(torch.zeros(5), [(2, 2)])
    with pytest.raises(ValueError, match=r"1-D \(N,\), got shape \(1, 5\)"):
        chunk_scores(torch.zeros(1, 5), [(0, 1)])


# --------------------------------------------------------------------------- select_chunks
def test_select_chunks_picks_highest_first_and_skips_what_does_not_fit() -> None:
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7])
    lengths = torch.tensor([10, 10, 30, 10])
    assert select_chunks(scores, lengths, 20).tolist() == [False, True, False, True]
    # 0.5 (30 tokens) no longer fits after 0.9 and 0.7, but the shorter 0.1 does.
    assert select_chunks(scores, lengths, 35).tolist() == [True, True, False, True]


def test_select_chunks_ties_go_to_the_earlier_chunk() -> None:
    keep = select_chunks(torch.tensor([0.5, 0.2, 0.5, 0.5]), torch.tensor([4, 4, 4, 4]), 8)
    assert keep.tolist() == [True, False, True, False]


def test_select_chunks_budget_edges_and_never_over() -> None:
    g = _gen(40)
    scores = torch.rand(50, generator=g)
    lengths = torch.randint(1, 40, (50,), generator=g)
    total = int(lengths.sum())
    assert not select_chunks(scores, lengths, 0).any()
    assert not select_chunks(scores, lengths, -5).any()
    assert select_chunks(scores, lengths, total).all()
    assert select_chunks(scores, lengths, total + 100).all()
    for budget in range(0, total, 37):
        keep = select_chunks(scores, lengths, budget)
        assert keep.dtype == torch.bool
        assert int(lengths[keep].sum()) <= budget
        assert torch.equal(keep, select_chunks(scores, lengths, budget))
        # Greedy: the budget left only shrinks, so every dropped chunk is longer than what is left.
        left = budget - int(lengths[keep].sum())
        assert all(int(length) > left for length in lengths[~keep])


def test_select_chunks_nan_scores_rank_last_and_shape_errors() -> None:
    keep = select_chunks(torch.tensor([float("nan"), 0.1]), torch.tensor([5, 5]), 5)
    assert keep.tolist() == [False, True]
    with pytest.raises(ValueError, match=r"scores \(3,\) and lengths \(2,\)"):
        select_chunks(torch.zeros(3), torch.ones(2, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        select_chunks(torch.zeros(2), torch.tensor([1, -1]), 4)
