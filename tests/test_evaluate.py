"""Evaluation: agreement with the oracle on its own states, and where a policy fails."""

import copy
from pathlib import Path

import pytest
import torch

from harness.training.evaluate import LOOP_WINDOW, compare, failures, main, oracle_agreement
from harness.policy.models import ImpalaCNN, load_policy
from harness.policy.rollouts import Episode, Rollouts, rollout
from harness.heist.sampling import sample_levels

SHIPPED_POLICY = Path(__file__).resolve().parent.parent / "fixtures" / "agents" / "customcnn_bc" / "policy.pt"

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


def test_failures_are_counted_by_locks_and_by_the_cells_the_agent_ended_on():
    levels = sample_levels("selection", 40, seed=0)
    locks = [len(level.locks) for level in levels]
    looping = tuple((i % 2, 0) for i in range(3 * LOOP_WINDOW))  # back and forth between two cells, after a detour
    wandering = tuple((i % 9, i // 9) for i in range(3 * LOOP_WINDOW))
    episodes = tuple(Episode(seed=level.current_level_seed, success=i % 3 != 0, steps=1000,
                             cells=wandering[:LOOP_WINDOW] + looping if i % 2 else wandering,
                             reached=()) for i, level in enumerate(levels))
    figures = failures(levels, Rollouts(episodes=episodes))
    assert sum(row["n"] for row in figures["by_locks"].values()) == len(levels)
    for k, row in figures["by_locks"].items():
        wins = [i % 3 != 0 for i, n in enumerate(locks) if n == k]
        assert row["n"] == len(wins) and row["success"] == sum(wins) / len(wins)
        assert row["ci_low"] <= row["success"] <= row["ci_high"]
    assert figures["failed"] == sum(i % 3 == 0 for i in range(len(levels)))
    # failed episodes: i = 0, 3, 6, ...; the odd ones loop over 2 cells, the even ones end on 100 distinct cells
    assert figures["distinct_cells_at_the_end"] == {"median": 51.0, "max": LOOP_WINDOW}


def test_compared_agents_play_the_drawn_levels_with_the_given_action_seed(tmp_path):
    """Each agent's figures are exactly those of its rollout, with the given action seed, on the levels drawn with the
    given seed, and two names for the same weights get the same figures.  The shipped agent solves some of these
    levels within the cut, so a wrong seed or a wrong draw would show."""
    policy = load_policy(SHIPPED_POLICY)
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(policy.state_dict(), first)
    torch.save(policy.state_dict(), second)
    levels = sample_levels("selection", 8, seed=1)
    played = {seed: rollout(policy, levels, sample=True, seed=seed, max_steps=60) for seed in (0, 1)}
    mean_steps = {seed: result.steps[result.success].mean() for seed, result in played.items()}
    assert mean_steps[0] != mean_steps[1], "both action seeds play alike: the check below could not tell them apart"
    for rollout_seed, expected in played.items():
        figures = compare([first, second], seeds="selection", n=8, seed=1, rollout_seed=rollout_seed,
                          max_steps=60)
        a, b = (figures["results"][str(path)] for path in (first, second))
        assert figures["rollout_seed"] == rollout_seed and "drawn with seed 1" in figures["levels"]
        assert a["success"] == expected.success.mean() and a["n"] == 8
        assert a["mean_steps_when_successful"] == mean_steps[rollout_seed]
        fields = ("success", "ci_low", "ci_high", "by_locks", "mean_steps_when_successful")
        assert {k: a[k] for k in fields} == {k: b[k] for k in fields}
        assert {k: row["n"] for k, row in a["by_locks"].items()} == \
            {k: sum(len(level.locks) == k for level in levels) for k in {len(level.locks) for level in levels}}


def test_the_rollout_seed_goes_with_compare_only(capsys):
    with pytest.raises(SystemExit):
        main(["--policy", "unused.pt", "--rollout-seed", "0"])
    assert "--rollout-seed goes with --compare" in capsys.readouterr().err


def test_the_command_names_a_missing_checkpoint_before_playing(model, tmp_path, capsys):
    torch.save(model.state_dict(), tmp_path / "a.pt")
    with pytest.raises(SystemExit):
        main(["--compare", str(tmp_path / "a.pt"), str(tmp_path / "typo.pt"), "--n", "2"])
    assert "no checkpoint file at" in capsys.readouterr().err


def test_the_command_refuses_an_unknown_seed_range_by_name(capsys):
    with pytest.raises(SystemExit):
        main(["--policy", "unused.pt", "--range", "validation"])
    assert "invalid choice: 'validation'" in capsys.readouterr().err


SHIPPED_IMPALA = SHIPPED_POLICY.parent.parent / "impala_bc" / "policy.pt"


def test_an_impala_agent_is_compared_as_itself_beside_a_custom_cnn_one():
    """The evaluation reads each checkpoint's architecture from its keys: the shipped IMPALA agent's figures are
    those of its own rollout on the same levels as the CustomCNN agent's."""
    impala = load_policy(SHIPPED_IMPALA)
    assert isinstance(impala, ImpalaCNN)
    levels = sample_levels("selection", 6, seed=2)
    figures = compare([SHIPPED_IMPALA, SHIPPED_POLICY], seeds="selection", n=6, seed=2, rollout_seed=0, max_steps=60)
    expected = rollout(impala, levels, sample=True, seed=0, max_steps=60)
    row = figures["results"][str(SHIPPED_IMPALA)]
    assert row["success"] == expected.success.mean() and row["n"] == 6
    assert row["sha256"] != figures["results"][str(SHIPPED_POLICY)]["sha256"]
