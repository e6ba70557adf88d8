"""Evaluation: agreement with the oracle on its own states."""

import copy

import torch

from harness.evaluate import oracle_agreement
from harness.sampling import sample_levels

UP = 5


def test_a_policy_that_always_goes_up_agrees_exactly_where_the_oracle_says_up(model):
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.fc3.weight.zero_()
        model.fc3.bias.zero_()
        model.fc3.bias[UP] = 10.0
    levels = sample_levels("selection", 6, seed=0)
    figures = oracle_agreement(model, levels, steps=20, seed=1)
    assert 0 < sum(band["n"] for band in figures["by_distance"].values()) <= figures["n"]  # on the target: no band
    assert 0 < figures["agreement"] < 1
    assert abs(figures["agreement"] - figures["label_share"][UP]) < 1e-9
    assert oracle_agreement(model, levels, steps=20, seed=1) == figures  # seeded: the same states again
