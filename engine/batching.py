"""Which examples each optimizer step trains on, and the order evaluation reads them in.

Text batches are padded to their longest member (dynamic padding), so a batch of one long text
and 31 short ones costs as much as 32 long ones. Drawn at random, a batch's longest member sits
near the top of the data's length distribution: on the demo tickets (median 22 tokens, longest
64) random batches of 32 hold 2.4 times the real tokens, the rest padding.

Grouping by length (`[train] group_by_length`; `auto` turns it on for text once an epoch has
engine/plan.py's GROUP_MIN_STEPS steps, as on small data it cost accuracy) keeps the shuffle's
randomness where it can and removes most of the padding:

1. the epoch's examples are shuffled as before (a function of seed and epoch, so a resumed run
   sees the batches the original would have);
2. they are cut into windows of `GROUP_WINDOW_STEPS` steps' worth, and each window is sorted by
   length (ties keep their shuffled order), then cut into steps: a step holds texts of similar
   length, and its micro-batches (gradient accumulation) too;
3. the steps are shuffled again (seed, epoch), so the model does not see lengths in order (a
   short step, when the examples do not divide evenly, stays last);
4. the epoch's longest step is put at `LONGEST_AT`, the process's third step: out-of-memory
   shows within seconds, and the step whose peak the trainer measures (engine/trainer.py) is the
   one nearest the plan's prediction (made at max_length).

On the demo (batch 32, seed 42) this pads 7% over the real tokens instead of 144%. The same windowed sort is what
transformers' `group_by_length` does (windows of 50 batches); the step shuffle and the longest
step's place are this module's. Evaluation needs no randomness: its examples are read longest
first, in batches of neighbours, and the predictions put back in the split's order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

GROUP_WINDOW_STEPS = 50  # steps' worth of examples sorted by length together
LONGEST_AT = 2  # the epoch's longest step: the third (engine/trainer.py measures that step's peak)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of an epoch: a function of (seed, epoch) only, so a resumed
    run sees exactly the batches the original would have."""
    import torch

    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(n, generator=g).tolist()


def step_batches(n: int, per_step: int, seed: int, epoch: int, lengths: Sequence[int] | None = None) -> list[list[int]]:
    """The example indices of each optimizer step of an epoch (`per_step` examples each, the
    last step possibly fewer). Without `lengths`: consecutive slices of the shuffled order. With
    them (one per example): grouped by length as the module says."""
    order = epoch_order(n, seed, epoch)
    per_step = max(1, int(per_step))
    if lengths is None:
        return [order[s : s + per_step] for s in range(0, n, per_step)]
    if len(lengths) != n:
        raise ValueError(f"{len(lengths)} lengths for {n} examples")
    window = per_step * GROUP_WINDOW_STEPS
    steps: list[list[int]] = []
    for w in range(0, n, window):
        chunk = sorted(order[w : w + window], key=lambda i: -lengths[i])  # stable: ties stay shuffled
        steps += [chunk[s : s + per_step] for s in range(0, len(chunk), per_step)]
    short = [steps.pop()] if len(steps) > 1 and len(steps[-1]) < per_step else []
    random.Random(f"{seed}/{epoch}/steps").shuffle(steps)
    if steps:
        longest = max(range(len(steps)), key=lambda s: (max(lengths[i] for i in steps[s]), -s))
        at = min(LONGEST_AT, len(steps) - 1)
        steps[at], steps[longest] = steps[longest], steps[at]
    return steps + short  # a short step stays last, as without grouping


def eval_order(lengths: Sequence[int] | None, n: int) -> list[int]:
    """The order evaluation reads the split in: longest first when lengths are known (a batch of
    neighbours pads little), else as it is."""
    if lengths is None:
        return list(range(n))
    return sorted(range(n), key=lambda i: -lengths[i])


def padded_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int], micro: int) -> float:
    """Tokens computed (each micro-batch padded to its longest) over real tokens, for `batches`
    read in micro-batches of `micro`: 1.0 is no padding at all."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = 0
    for b in batches:
        for s in range(0, len(b), micro):
            part = b[s : s + micro]
            padded += max(lengths[i] for i in part) * len(part)
    return padded / real if real else math.nan
