"""The training and evaluation command lines refuse bad settings and output locations before any work, with a
usage message (exit status 2) instead of a traceback or a failure after the work is done."""

import re

import pytest

from harness.training import distill, evaluate, imitation, ppo, sae

POLICY = "fixtures/agents/customcnn_bc/policy.pt"


def usage_error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("main, argv, needle", [
    (imitation.main, ["--out", "{tmp}"], "--out .* is a folder"),
    (imitation.main, ["--out", "{tmp}/absent/p.pt"], "not an existing folder; create it first"),
    (ppo.main, ["--out", "{tmp}"], "--out .* is a folder"),
    (distill.main, ["--out", "{tmp}"], "--out .* is a folder"),
    (distill.main, ["--out", "{tmp}/absent/p.pt"], "not an existing folder; create it first"),
    (ppo.main, ["--out", "{tmp}/p.pt", "--threads", "0"], "--threads must be at least 1, got 0"),
    (evaluate.main, ["--policy", POLICY, "--json", "{tmp}"], "--json .* is a folder"),
    (evaluate.main, ["--policy", POLICY, "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (evaluate.main, ["--policy", POLICY, "--n", "100001"], "n must be in 1..100000 for range confirmation"),
    (evaluate.main, ["--compare", POLICY, POLICY, "--rollout-seed", "-3"], "--rollout-seed: must be an integer >= 0"),
    (sae.main, ["train", "--policy", POLICY, "--site", "conv9z", "--out", "{tmp}/s.pt"], "unknown site 'conv9z'"),
    (sae.main, ["train", "--policy", POLICY, "--site", "conv3a", "--out", "{tmp}/s.pt", "--topk", "0"],
     "--topk: must be an integer >= 1, got 0"),
    (sae.main, ["train", "--policy", POLICY, "--site", "conv3a", "--out", "{tmp}/s.pt", "--topk", "1000"],
     "k must be an int in 1..128"),
    (sae.main, ["train", "--policy", POLICY, "--site", "conv3a", "--out", "{tmp}/s.pt", "--batch-size", "0"],
     "--batch-size: must be an integer >= 1"),
    (sae.main, ["train", "--policy", POLICY, "--site", "conv3a", "--out", "{tmp}/no/s.pt"], "not an existing folder"),
    (sae.main, ["card", "--policy", POLICY, "--sae", "fixtures/saes/customcnn_bc_conv3a/sae.pt", "--out", "{tmp}"],
     "--out .* is a folder"),
])
def test_refused_before_any_work(main, argv, needle, tmp_path, capsys):
    err = usage_error(main, [a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert "Traceback" not in err
    assert re.search(needle, err), err
