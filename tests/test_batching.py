"""engine/batching.py: the steps of an epoch grouped by length, and what the plan predicts of them."""

from __future__ import annotations

import random
import statistics

import pytest

from modelwiz.engine import batching, speed
from modelwiz.engine.data import _stats


def skewed_lengths(n: int, seed: int = 0) -> list[int]:
    """Token counts shaped like people's messages: most short, a long tail, truncated at 128."""
    rnd = random.Random(seed)
    return [min(128, max(3, int(rnd.lognormvariate(3.0, 0.7)))) for _ in range(n)]


@pytest.mark.parametrize("lengths", [None, skewed_lengths(1000)])
@pytest.mark.parametrize("per_step", [1, 7, 32])
def test_every_example_once_per_epoch_and_a_function_of_seed_and_epoch(lengths, per_step):
    n = 1000
    steps = batching.step_batches(n, per_step, 42, 0, lengths)
    flat = [i for s in steps for i in s]
    assert sorted(flat) == list(range(n))
    assert len(steps) == -(-n // per_step)
    assert all(len(s) == per_step for s in steps[:-1])  # only the last step may be short
    assert batching.step_batches(n, per_step, 42, 0, lengths) == steps  # a resumed run sees the same
    assert batching.step_batches(n, per_step, 42, 1, lengths) != steps
    assert batching.step_batches(n, per_step, 43, 0, lengths) != steps


def test_grouping_removes_most_padding_and_keeps_the_order_random():
    lengths = skewed_lengths(3000)
    plain = batching.step_batches(3000, 32, 7, 0)
    grouped = batching.step_batches(3000, 32, 7, 0, lengths)
    random_pad, grouped_pad = (batching.padded_fraction(b, lengths, 32) for b in (plain, grouped))
    assert random_pad > 2.0  # random batches: most of what is computed is padding
    assert grouped_pad < 1.1
    # the steps are not in length order: the longest-in-step figures are not monotone, and the
    # correlation of a step's place with its length is small
    tops = [max(lengths[i] for i in s) for s in grouped]
    ranks = sorted(range(len(tops)), key=lambda k: tops[k])
    place = list(range(len(tops)))
    rho = statistics.correlation(place, [float(ranks.index(k)) for k in place])
    assert abs(rho) < 0.3
    # with accumulation, the micro-batches of a step are neighbours by length as well
    micro_pad = batching.padded_fraction(batching.step_batches(3000, 64, 7, 0, lengths), lengths, 16)
    assert micro_pad < 1.1


def test_the_longest_step_is_the_third():
    lengths = skewed_lengths(500, seed=3)
    for epoch in range(3):
        steps = batching.step_batches(500, 16, 1, epoch, lengths)
        tops = [max(lengths[i] for i in s) for s in steps[:-1]]  # the last is short (500 = 31 x 16 + 4)
        assert tops[batching.LONGEST_AT] == max(tops)
    three = batching.step_batches(48, 16, 1, 0, lengths[:48])
    assert len(three) == 3 and max(lengths[i] for i in three[2]) == max(lengths[:48])


def test_eval_order_is_longest_first_and_covers_the_split():
    lengths = skewed_lengths(200)
    order = batching.eval_order(lengths, 200)
    assert sorted(order) == list(range(200))
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    assert batching.eval_order(None, 5) == [0, 1, 2, 3, 4]


def test_a_wrong_number_of_lengths_is_refused():
    with pytest.raises(ValueError):
        batching.step_batches(10, 2, 0, 0, [1, 2, 3])


@pytest.mark.parametrize("batch", [8, 32])
def test_the_predicted_padded_length_follows_the_batching(batch):
    """The plan's time is predicted at the expected longest text of a batch; measured here on data
    drawn from a known distribution, in words (the predictor's unit before tokens)."""
    rnd = random.Random(5)
    words = sorted(max(1, int(rnd.lognormvariate(2.8, 0.6))) for _ in range(4000))
    stats = _stats(words)
    rnd.shuffle(words)
    n = len(words)

    def predicted(window: int) -> float:
        tokens = speed.expected_padded_length(stats, batch, 10_000, sorted_window=window)
        assert tokens is not None
        return (tokens - speed.SPECIAL_TOKENS) / speed.TOKENS_PER_WORD

    def measured(steps: list[list[int]]) -> float:
        return statistics.mean(max(words[i] for i in s) for s in steps if len(s) == batch)

    plain = measured(batching.step_batches(n, batch, 0, 0))
    grouped = measured(batching.step_batches(n, batch, 0, 0, words))
    assert predicted(0) == pytest.approx(plain, rel=0.2)
    assert predicted(batch * batching.GROUP_WINDOW_STEPS) == pytest.approx(grouped, rel=0.2)
    assert grouped < 0.7 * plain
