"""States the policy visits (harness.policy.visits): exactly n, the predicate holds, seeded, and each one is really
reached by replaying its recorded actions from the seed's generated level."""

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import SamplingError
from harness.heist.engine import generate, render
from harness.heist.sampling import SEED_RANGES
from harness.policy.rollouts import play
from harness.policy.visits import visited_states, visited_together


class Drifter(nn.Module):
    """A cheap policy: logits from the mean colour of the frame, favouring the four moves (so episodes move)."""

    SITES: dict[str, str] = {}

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.colour = nn.Linear(3, 15)
        self.bias = torch.full((15,), -4.0)
        self.bias[[1, 3, 5, 7]] = 0.0  # left, down, up, right

    def forward(self, x):
        logits = self.colour(x.mean((2, 3))) * 0.1 + self.bias
        return logits, logits[:, 0]


@pytest.fixture(scope="module")
def drifter():
    return Drifter().eval()


def moved(level) -> bool:
    return level.agent.vx != 0 or level.agent.vy != 0


def replayed(visits):
    """The state each visit's actions reach from its seed's generated level, played in one batch."""
    levels = generate([v.seed for v in visits])
    index = {v.seed: v for v in visits}
    taken: dict[int, int] = {}

    def choose(frames, live):
        out = []
        for level in live:
            step = taken.get(level.current_level_seed, 0)
            taken[level.current_level_seed] = step + 1
            actions = index[level.current_level_seed].actions
            out.append(actions[step] if step < len(actions) else 4)
        return np.array(out)

    steps = [v.step for v in visits]
    return [e.snapshot for e in play(levels, choose, snapshot_at=steps, max_steps=max(steps) + 1).episodes]


def test_exactly_n_states_where_the_predicate_holds_and_replay_reaches_them(drifter):
    visits = visited_states(drifter, "calibration", 12, seed=3, where=moved, per_episode=3, max_step=30)
    assert len(visits) == 12
    assert all(moved(v.level) for v in visits)
    assert all(v.seed in SEED_RANGES["calibration"] and len(v.actions) == v.step <= 30 for v in visits)
    per_episode = {}
    for v in visits:
        per_episode[v.seed] = per_episode.get(v.seed, 0) + 1
    assert max(per_episode.values()) <= 3 and len(per_episode) >= 4
    first = [v for v in visits if v.seed == visits[0].seed]
    assert [v.step for v in first] == sorted(v.step for v in first)
    # one visit per seed replayed (a replay plays one episode per level)
    one_each = list({v.seed: v for v in visits}.values())
    for visit, state in zip(one_each, replayed(one_each)):
        assert state.to_bytes() == visit.level.to_bytes(), f"seed {visit.seed} step {visit.step}"
    frames = render([v.level for v in visits])
    assert frames.shape == (12, 64, 64, 3)


def test_seeded(drifter):
    a = visited_states(drifter, "calibration", 6, seed=5, per_episode=2, max_step=12)
    b = visited_states(drifter, "calibration", 6, seed=5, per_episode=2, max_step=12)
    c = visited_states(drifter, "calibration", 6, seed=6, per_episode=2, max_step=12)
    key = lambda vs: [(v.seed, v.step, v.actions) for v in vs]  # noqa: E731
    assert key(a) == key(b)
    assert [v.level.to_bytes() for v in a] == [v.level.to_bytes() for v in b]
    assert key(a) != key(c)


def test_every_kth_step(drifter):
    visits = visited_states(drifter, "calibration", 8, seed=0, every=5, per_episode=4, max_step=20)
    assert all(v.step % 5 == 0 for v in visits)


def test_together_gives_one_state_per_predicate_from_one_episode(drifter):
    early, late = (lambda s: not moved(s)), moved
    tuples = visited_together(drifter, "calibration", 5, seed=1, where=[early, late], max_step=15)
    assert len(tuples) == 5
    for a, b in tuples:
        assert a.seed == b.seed and early(a.level) and late(b.level)
        assert a.actions == b.actions[:a.step] or b.actions == a.actions[:b.step]  # one episode


def test_until_stops_an_episode_for_good(drifter):
    """Once the agent moves the episode stops: no candidate from then on, although most states move later."""
    visits = visited_states(drifter, "calibration", 6, seed=2, until=moved, per_episode=6, max_step=10)
    assert all(not moved(v.level) for v in visits)
    assert len({v.seed for v in visits}) >= 2


def test_rare_predicate_raises_sampling_error(drifter):
    with pytest.raises(SamplingError, match="only 0 visited states"):
        visited_states(drifter, "calibration", 3, seed=0, where=lambda s: False, max_step=3, max_episodes=8)
    with pytest.raises(SamplingError, match="each of the 2 predicates"):
        visited_together(drifter, "calibration", 3, seed=0, where=[moved, lambda s: False], max_step=3,
                         max_episodes=8)


@pytest.mark.parametrize("bad", [dict(n=0), dict(every=0), dict(per_episode=0), dict(max_step=1000),
                                 dict(max_episodes=0), dict(n=2.5)])
def test_bad_requests_are_refused(drifter, bad):
    args = dict(n=2, every=1, per_episode=1, max_step=5) | bad
    with pytest.raises(SamplingError):
        visited_states(drifter, "calibration", args.pop("n"), seed=0, **args)
    with pytest.raises(SamplingError):
        visited_states(drifter, "no such range", 2, seed=0)
