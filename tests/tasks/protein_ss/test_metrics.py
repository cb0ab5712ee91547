"""SOV'99 on hand-worked chains."""

import pytest

from lstmkit.tasks.protein_ss.metrics import segments, sov


def test_segments_are_runs():
    assert segments("CCHHE") == [("C", 0, 1), ("H", 2, 3), ("E", 4, 4)]


def test_identical_is_one_and_disjoint_is_zero():
    assert sov("CHHHEEC", "CHHHEEC") == 1.0
    assert sov("HHHH", "EEEE") == 0.0


def test_allowance_forgives_a_shifted_boundary():
    # H: overlap 3, extent 4, allowance 1 -> 4/4 x 4; C: 3/3 x 2 and 2/2 x 2; norm 8.
    assert sov("CCHHHHCC", "CCCHHHCC") == pytest.approx(1.0)


def test_a_broken_helix_scores_each_piece_against_the_whole():
    # Two partners of length 1 inside a helix of 4: each 1/4 x 4; the norm counts 4 twice.
    assert sov("HHHH", "HCCH") == pytest.approx(0.25)
    assert sov("HHHH", "HCCH") < sov("HHHH", "HHCH")
