"""Fixtures the plugin gives any repository (``policy``, ``saes``, ``sample_levels``, ``level_sampler``) and
select-then-confirm through a whole run; the README's claim run from an empty directory outside this repository."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from test_plugin import CONFTEST, PLUGIN, QUIET, REPO, run, saved, subprocess_env  # noqa: F401 (a fixture)

pytest_plugins = ["pytester"]

FAKE_SAMPLER = """

    @pytest.fixture(autouse=True)
    def fake_levels(monkeypatch):
        from harness.heist import sampling

        def draw(seeds, n, *, seed, where=None, mode="easy"):
            return [(seeds, n, mode)]
        monkeypatch.setattr(sampling, "sample_levels", draw)
"""


@pytest.fixture
def claims(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST + FAKE_SAMPLER)
    return pytester


def test_the_selected_unit_lands_in_the_run_report(claims):
    claims.makepyfile(
        """
        from conftest import declare

        @declare("CH-chosen", selected_on="selection")
        def test_chooses(claim, interval):
            claim.select(channel=6)
            claim.check(interval(0.2, 0.3))

        @declare("CH-forgot", selected_on="selection")
        def test_forgets_to_select(claim, interval):
            claim.check(interval(0.2, 0.3))
        """
    )
    result = run(claims, "--claims-run", "r1")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["CH-chosen*SUPPORTED*channel=6"])
    data = saved(claims)
    rows = {r["id"]: r for r in data["claims"]}
    assert (rows["CH-chosen"]["selected_on"], rows["CH-chosen"]["selected"]) == ("selection", {"channel": 6})
    assert rows["CH-forgot"]["verdict"] == "error" and "selected nothing" in rows["CH-forgot"]["message"]
    assert data["run"]["seed_ranges"] == ["confirmation", "selection"]


def test_sample_levels_defaults_to_the_declaration_and_keeps_to_its_ranges(claims):
    """Issue 19 item 6: a claim draws only its own ranges, its confirmation levels only after claim.select, and a
    selection fixture (level_sampler) never draws confirmation levels."""
    claims.makepyfile(
        """
        import pytest
        from conftest import declare
        from harness.errors import ClaimError, SamplingError

        @pytest.fixture(scope="module")
        def peeking_selection(level_sampler):
            return level_sampler("confirmation", 8)

        @declare("S-select", selected_on="selection")
        def test_selecting_claim(claim, interval, sample_levels):
            assert sample_levels("selection", mode="hard") == [("selection", 64, "hard")]
            with pytest.raises(ClaimError, match="draws its 'confirmation' levels before claim.select"):
                sample_levels()
            with pytest.raises(ClaimError, match="only from its seeds='confirmation' and selected_on='selection'"):
                sample_levels("calibration")
            claim.select(channel=1)
            assert sample_levels() == [("confirmation", 64, "easy")]
            assert sample_levels(n=8) == [("confirmation", 8, "easy")]
            claim.check(interval(0.2, 0.3))

        @declare("S-plain")
        def test_plain_claim(claim, interval, sample_levels):
            with pytest.raises(ClaimError, match="may draw only from its seeds='confirmation'$"):
                sample_levels("selection", 3)
            claim.check(interval(0.2, 0.3))

        def test_without_a_claim(sample_levels):
            assert sample_levels("calibration", 3) == [("calibration", 3, "easy")]
            with pytest.raises(SamplingError, match="needs seeds and n"):
                sample_levels(n=3)

        def test_selection_never_sees_confirmation(request):
            with pytest.raises(ClaimError, match="level_sampler draws for selection fixtures"):
                request.getfixturevalue("peeking_selection")
        """
    )
    run(claims).assert_outcomes(passed=4)


def test_level_sampler_draws_with_the_run_sampling_seed(pytester):
    pytester.makepyfile(
        """
        from harness.heist.sampling import sample_levels as draw_levels

        def test_draw(level_sampler, sample_levels):
            want = [lv.current_level_seed for lv in draw_levels("selection", 3, seed=5)]
            assert [lv.current_level_seed for lv in level_sampler("selection", 3)] == want
            assert [lv.current_level_seed for lv in sample_levels("selection", 3)] == want
        """
    )
    run(pytester, "--sampling-seed", "5").assert_outcomes(passed=1)


def test_models_without_a_path_fail_naming_the_option(pytester):
    pytester.makepyfile("def test_policy(policy):\n    pass\n\ndef test_saes(saes):\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines_random(
        ["*no policy to test: pass --policy PATH*", "*no SAEs to test: pass --sae SITE=PATH*"]
    )
    missing = run(pytester, "--policy", "nowhere.pt", "--sae", "conv3a=gone.pt")
    missing.stdout.fnmatch_lines_random(
        ["*policy checkpoint *nowhere.pt does not exist*", "*SAE checkpoints missing: conv3a=*gone.pt*"]
    )


def test_ini_defaults_are_relative_to_the_ini_file(pytester):
    pytester.makeini(
        """
        [pytest]
        heist_policy = models/agent.pt
        heist_saes = conv3a=models/a.pt conv4a=models/b.pt
        """
    )
    pytester.makepyfile(
        """
        def test_options(claims_options, pytestconfig):
            ini_dir, here = pytestconfig.inipath.parent, pytestconfig.invocation_params.dir
            assert claims_options.policy == ini_dir / "models" / "agent.pt"
            assert dict(claims_options.saes) == {"conv3a": ini_dir / "models/a.pt", "conv4a": here / "mine.pt"}
        """
    )
    run(pytester, "--sae", "conv4a=mine.pt").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nheist_saes = conv3a\n")
    bad = run(pytester)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*heist_saes 'conv3a': give SITE=PATH*"])


def readme_claim(n: int) -> str:
    """The example claim of the README's section "Writing a claim", with its n replaced."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Writing a claim"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert re.search(r"\bn=\d+", code), "the README's claim declares no n"
    return re.sub(r"\bn=\d+", f"n={n}", code)


def test_the_readme_claim_runs_outside_the_repository(tmp_path):
    assert not tmp_path.resolve().is_relative_to(REPO)
    (tmp_path / "test_readme_claim.py").write_text(readme_claim(n=64), encoding="utf-8")
    policy = REPO / "fixtures" / "agents" / "customcnn_bc" / "policy.pt"
    # --policy=PATH, not --policy PATH: pytest picks its rootdir before plugins add options, so a separate PATH
    # would be read as a test path and make this repository the rootdir (pytest issue 8846)
    command = [sys.executable, "-m", "pytest", *PLUGIN, *QUIET, f"--policy={policy}", "--claims-run", "readme"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # where the package is not installed; the same copy where it is
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]  # 1: a refuted claim fails its test
    (row,) = json.loads((tmp_path / "reports" / "readme" / "claims.json").read_text())["claims"]
    assert row["verdict"] in ("supported", "refuted", "inconclusive"), row["message"]
    assert row["n"] == 64 and len(row["checksums"]["policy"]) == 64


SELECTION = """
    from pathlib import Path


    def select():
        with open(Path(__file__).parent / "calls.txt", "a") as calls:
            calls.write("computed ")
        return {"ranked": [6, 17, 5], "spread": [0.5]}
"""
SELECTING = """
    import pytest
    from selection import select


    @pytest.fixture(scope="module")
    def chosen(selection_cache):
        return selection_cache("up", select)


    def test_selection(chosen):
        assert chosen == {"ranked": [6, 17, 5], "spread": [0.5]}
"""


@pytest.mark.usefixtures("subprocess_env")
def test_a_selection_is_computed_once_per_model_seed_and_source(pytester):
    """Issue 21 E: the selection cache serves every xdist worker and later runs, and a new sampling seed or an
    edited selection file computes it again."""
    pytest.importorskip("xdist")
    pytester.makepyfile(selection=SELECTION, test_a=SELECTING, test_b=SELECTING)
    calls = pytester.path / "calls.txt"
    both = pytester.runpytest_subprocess(*PLUGIN, *QUIET, "-n", "2", "test_a.py", "test_b.py")
    both.assert_outcomes(passed=2)
    assert calls.read_text().split() == ["computed"]  # two modules, two workers, one computation
    run(pytester, "test_a.py").assert_outcomes(passed=1)
    assert calls.read_text().split() == ["computed"]  # a later run reads the cache
    run(pytester, "test_a.py", "--sampling-seed", "3").assert_outcomes(passed=1)
    assert len(calls.read_text().split()) == 2
    pytester.makepyfile(selection=textwrap.dedent(SELECTION) + "# edited\n")
    run(pytester, "test_a.py").assert_outcomes(passed=1)
    assert len(calls.read_text().split()) == 3


ARCHITECTURE_CLAIMS = """
    import numpy as np
    import pytest

    from harness import run
    from harness.stats import clopper_pearson_interval


    def declare(claim_id, **extra):
        return pytest.mark.claim(id=claim_id, statement=f"{claim_id} holds.", metric="share", seeds="confirmation",
                                 n=64, lower_bound_above=0.1, **{"sites": ["last_conv:selected"], **extra})


    def supported(claim):
        claim.check(clopper_pearson_interval(60, 64, confidence=claim.confidence))


    @declare("A-any", sites=["last_conv:selected", "mid_conv", "last_conv.sae.latents", "policy"])
    def test_any(claim, policy):
        frames = np.zeros((1, 64, 64, 3), np.uint8)
        assert run(policy, frames, cache=["last_conv"]).activations["last_conv"].shape == (1, 32, 8, 8)
        supported(claim)


    @declare("A-custom", architectures=["custom_cnn"])
    def test_custom(claim, policy):
        supported(claim)


    @declare("A-sae", saes=["last_conv"])
    def test_sae(claim, saes):
        assert saes["last_conv"].config.site == "conv4a"
        supported(claim)


    @declare("A-typo", family="exploratory")
    def test_typo(claim, policy):
        run(policy, np.zeros((1, 64, 64, 3), np.uint8), cache=["last_cnv"])
"""


@pytest.fixture
def checkpoints(tmp_path):
    """A fresh CustomCNN and ImpalaCNN checkpoint, and an SAE on CustomCNN's conv4a."""
    import torch

    from harness.lenses.sae import save_sae
    from harness.lenses.sae.model import ConvSAEConfig, build_sae
    from harness.policy.models import CustomCNN, ImpalaCNN

    paths = {name: tmp_path / f"{name}.pt" for name in ("custom", "impala", "sae")}
    torch.manual_seed(0)
    for name, model in (("custom", CustomCNN()), ("impala", ImpalaCNN())):
        torch.save(model.state_dict(), paths[name])
    save_sae(build_sae(ConvSAEConfig(site="conv4a", channels=32)), paths["sae"])
    return paths


def rows_by_id(pytester: pytest.Pytester, run_name: str) -> dict:
    return {row["id"]: row for row in saved(pytester, run_name)["claims"]}


def test_claims_resolve_roles_and_skip_where_they_do_not_apply(pytester, checkpoints):
    """Issue 20 item 4: on IMPALA the roles name IMPALA's sites, the CustomCNN-only claim and the one needing an SAE
    are skipped with their reasons (rows, not errors), and the skipped claims are outside their family's m."""
    pytester.makepyfile(test_arch=ARCHITECTURE_CLAIMS)
    impala = run(pytester, f"--policy={checkpoints['impala']}", "--claims-run", "impala", "-rs")
    impala.assert_outcomes(passed=1, skipped=2, errors=1)
    impala.stdout.fnmatch_lines(["*skipped:*", "*A-custom: applies to custom_cnn; the policy under test is impala*"])
    rows = rows_by_id(pytester, "impala")
    assert rows["A-any"]["verdict"] == "supported"
    assert rows["A-any"]["sites"] == ["stack3.res2:selected", "stack2.res2", "stack3.res2.sae.latents", "policy"]
    assert rows["A-custom"]["verdict"] == "skipped"
    assert rows["A-custom"]["message"] == "applies to custom_cnn; the policy under test is impala"
    assert rows["A-sae"]["verdict"] == "skipped" and rows["A-sae"]["sites"] == ["stack3.res2:selected"]
    assert rows["A-sae"]["message"].startswith("needs an SAE on last_conv (stack3.res2 in this impala policy), and "
                                               "none is loaded for this policy: pass --sae stack3.res2=PATH")
    assert rows["A-typo"]["verdict"] == "error" and "did you mean 'last_conv'" in rows["A-typo"]["message"]
    assert rows["A-any"]["family_size"] == 1 and rows["A-any"]["confidence"] == pytest.approx(0.95)
    assert rows["A-any"]["p_holm"] == rows["A-any"]["p_value"]  # Holm over a family of one, skipped rows left out

    custom = run(pytester, f"--policy={checkpoints['custom']}", "--claims-run", "custom")
    custom.assert_outcomes(passed=2, skipped=1, errors=1)
    rows = rows_by_id(pytester, "custom")
    assert rows["A-any"]["sites"] == ["conv4a:selected", "conv3a", "conv4a.sae.latents", "policy"]
    assert rows["A-custom"]["verdict"] == "supported" and rows["A-custom"]["family_size"] == 2
    assert rows["A-sae"]["verdict"] == "skipped" and "pass --sae conv4a=PATH" in rows["A-sae"]["message"]

    with_sae = run(pytester, f"--policy={checkpoints['custom']}", f"--sae=conv4a={checkpoints['sae']}",
                   "--claims-run", "with-sae")
    with_sae.assert_outcomes(passed=3, errors=1)
    assert {row["id"]: row["family_size"] for row in saved(pytester, "with-sae")["claims"]} == {
        "A-any": 3, "A-custom": 3, "A-sae": 3, "A-typo": 1}


def test_a_claim_declares_known_architectures_and_sae_sites(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.claim(id="A-bad", statement="s", sites=["last_conv"], metric="m", seeds="confirmation", n=8,
                           lower_bound_above=0.1, architectures=["resnet"])
        def test_bad(claim):
            pass

        @pytest.mark.claim(id="A-bad-sae", statement="s", sites=["last_conv"], metric="m", seeds="confirmation", n=8,
                           lower_bound_above=0.1, saes=[3])
        def test_bad_sae(claim):
            pass
        """
    )
    result = run(pytester, "--claims-run", "bad")
    result.assert_outcomes(errors=2)
    rows = rows_by_id(pytester, "bad")
    assert "claim 'A-bad': architectures ['resnet'] are unknown; use names of [" in rows["A-bad"]["message"]
    assert "saes must name the sites or roles (mid_conv, last_conv, last_conv.relu, pre_head)" in (
        rows["A-bad-sae"]["message"])


def test_the_ini_saes_go_with_the_ini_policy_only(pytester, checkpoints):
    """SAEs trained on the ini's policy are not used with another --policy; the same file, or a copy, keeps them."""
    import shutil

    shutil.copy(checkpoints["custom"], pytester.path / "agent.pt")
    shutil.copy(checkpoints["custom"], pytester.path / "copy.pt")
    shutil.copy(checkpoints["sae"], pytester.path / "sae.pt")
    pytester.makeini("[pytest]\nheist_policy = agent.pt\nheist_saes = conv4a=sae.pt\n")
    pytester.makepyfile(
        """
        def test_saes(claims_options):
            print("SAES", sorted(claims_options.saes))
        """
    )
    for policy, expected in ((None, "['conv4a']"), ("copy.pt", "['conv4a']"), (str(checkpoints["impala"]), "[]")):
        result = run(pytester, "-s", *(() if policy is None else (f"--policy={policy}",)))
        assert f"SAES {expected}" in result.stdout.str(), (policy, result.stdout.str())
