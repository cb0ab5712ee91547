"""The segment overlap score SOV (Zemla et al. 1999, "SOV'99") for one chain."""

from __future__ import annotations

import itertools


def segments(states) -> list[tuple[object, int, int]]:
    """Runs of one state as (state, first index, last index)."""
    runs, start = [], 0
    for state, group in itertools.groupby(states):
        length = len(list(group))
        runs.append((state, start, start + length - 1))
        start += length
    return runs


def sov(true_states, predicted_states) -> float:
    """SOV'99 in [0, 1] over all states: every pair of an observed and a predicted
    segment of the same state that overlap scores (overlap + allowance) / extent x the
    observed length; observed segments without a partner count only in the norm.
    Returns 1.0 for an empty chain."""
    if len(true_states) != len(predicted_states):
        raise ValueError("true and predicted states must have the same length")
    observed, predicted = segments(true_states), segments(predicted_states)
    score, norm = 0.0, 0
    for state, start, end in observed:
        length = end - start + 1
        partners = [(s, e) for p_state, s, e in predicted if p_state == state and s <= end and e >= start]
        if not partners:
            norm += length
        for p_start, p_end in partners:
            overlap = min(end, p_end) - max(start, p_start) + 1
            extent = max(end, p_end) - min(start, p_start) + 1
            allowance = min(extent - overlap, overlap, length // 2, (p_end - p_start + 1) // 2)
            score += (overlap + allowance) / extent * length
            norm += length
    return score / norm if norm else 1.0
