import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import CheckpointError, InterventionError, SAEError, UnknownSiteError
from harness.policy.interventions import Clamp, Patch, Zero
from harness.policy.models import CustomCNN, ImpalaCNN, load_policy
from harness.policy.runner import run
from harness.lenses.sae import (
    DEAD_FREQUENCY,
    DENSE_FREQUENCY,
    SAE,
    ConvSAE,
    ConvSAEConfig,
    SAEConfig,
    TopKSAE,
    TopKSAEConfig,
    action_agreement,
    build_sae,
    dead_fraction,
    dense_fraction,
    firing_rates,
    fraction_of_variance_unexplained,
    kl_divergence,
    l0,
    latent_maxima,
    load_sae,
    sae_latents,
    save_sae,
    spliced,
    training_record,
)
from harness.policy.sites import Site, sites
from harness.training.sae import SAETrainingConfig, main, train_sae
from harness.training.sae_data import agent_frames, collect_frames, normalising_scale


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)


@pytest.fixture
def sae():
    torch.manual_seed(1)
    module = ConvSAE(ConvSAEConfig(site="conv3a", channels=32, expansion=2, scale=1.5))
    with torch.no_grad():
        module.conv_enc.bias.normal_()
    return module.eval()


def clean(model: nn.Module) -> bool:
    """No hook anywhere and no SAE left under the model."""
    return all(not m._forward_hooks for m in model.modules()) and not any(
        isinstance(m, ConvSAE | TopKSAE) for m in model.modules())


# ------------------------------------------------------------------------------------------------ metrics
def test_l0_and_firing_rates_match_direct_counts():
    z = torch.relu(torch.randn(3, 5, 4, 2))
    z[:, 0] = 0.0  # latent 0 never fires
    z[:, 1] = 1.0  # latent 1 fires everywhere
    per_position = [int((z[n, :, h, w] > 0).sum()) for n in range(3) for h in range(4) for w in range(2)]
    assert l0(z) == pytest.approx(np.mean(per_position))
    rates = firing_rates(z)
    direct = [float((z[:, i] > 0).float().mean()) for i in range(5)]
    assert rates.tolist() == pytest.approx(direct)
    assert dead_fraction(rates) == pytest.approx(np.mean([r <= DEAD_FREQUENCY for r in direct])) and rates[0] == 0
    assert dense_fraction(rates) == pytest.approx(np.mean([r > DENSE_FREQUENCY for r in direct]))


def test_fraction_of_variance_unexplained_matches_its_formula():
    x, x_hat = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    rows = x.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    rows_hat = x_hat.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    direct = ((rows - rows_hat) ** 2).sum() / ((rows - rows.mean(0)) ** 2).sum()
    assert fraction_of_variance_unexplained(x, x_hat) == pytest.approx(direct)
    assert fraction_of_variance_unexplained(x, x) == 0.0
    assert fraction_of_variance_unexplained(x, x.mean((0, 2, 3), keepdim=True).expand_as(x)) == pytest.approx(1.0)


def test_kl_and_agreement_match_direct_computation():
    clean_logits, other = torch.randn(7, 15), torch.randn(7, 15)
    p, q = clean_logits.softmax(-1).double(), other.softmax(-1).double()
    assert kl_divergence(clean_logits, other) == pytest.approx(float((p * (p / q).log()).sum(-1).mean()), rel=1e-5)
    assert kl_divergence(clean_logits, clean_logits) == pytest.approx(0.0, abs=1e-7)
    agree = np.mean([int(clean_logits[i].argmax() == other[i].argmax()) for i in range(7)])
    assert action_agreement(clean_logits, other) == pytest.approx(agree)


# ------------------------------------------------------------------------------------------------ architectures
def test_weights_are_the_1x1_convs_of_the_checkpoint_layout(sae):
    shapes = {k: tuple(v.shape) for k, v in sae.state_dict().items()}
    assert shapes == {"conv_enc.weight": (64, 32, 1, 1), "conv_enc.bias": (64,),
                      "conv_dec.weight": (32, 64, 1, 1), "conv_dec.bias": (32,)}
    x = torch.randn(2, 32, 16, 16).to(memory_format=torch.channels_last)
    with torch.no_grad():
        z = sae.encode(x)
        torch.testing.assert_close(z, torch.relu(sae.conv_enc(x * 1.5)))
        torch.testing.assert_close(sae.decode(z), sae.conv_dec(z) / 1.5)
        torch.testing.assert_close(sae(x), sae.decode(z))
    torch.testing.assert_close(sae.conv_dec.weight.flatten(1).norm(dim=0), torch.ones(64))  # fresh: unit columns


def test_topk_passes_exactly_the_k_largest_latents():
    torch.manual_seed(0)
    topk = TopKSAE(TopKSAEConfig(site="conv3a", channels=8, expansion=4, k=3))
    x = torch.randn(5, 8, 4, 4)
    with torch.no_grad():
        topk.conv_enc.bias.fill_(100.0)  # every pre-activation positive: exactly k pass
        z, pre = topk.encode(x), topk.conv_enc(x)
    assert ((z > 0).sum(1) == 3).all()
    kept = z.topk(3, dim=1).values.sort(1).values
    torch.testing.assert_close(kept, pre.topk(3, dim=1).values.sort(1).values)
    with torch.no_grad():
        topk.conv_enc.bias.fill_(0.0)
        assert ((topk.encode(x) > 0).sum(1) <= 3).all()


def test_the_base_classes_are_refused_with_the_names_to_use():
    with pytest.raises(SAEError, match="ConvSAEConfig or TopKSAEConfig"):
        SAEConfig(site="conv3a", channels=8)
    with pytest.raises(SAEError, match="build_sae"):
        SAE(ConvSAEConfig(site="conv3a", channels=8))


@pytest.mark.parametrize("bad", [{"k": 0}, {"k": 33}, {"expansion": 0}, {"scale": -1.0}, {"site": ""}])
def test_configs_validate_and_are_frozen(bad):
    with pytest.raises(SAEError):
        TopKSAEConfig(**{"site": "conv3a", "channels": 8, "k": 3} | bad)
    config = ConvSAEConfig(site="conv3a", channels=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.l1 = 1.0
    with pytest.raises(TypeError):
        ConvSAEConfig("conv3a", 8)


# ------------------------------------------------------------------------------------------------ loading
SHIPPED_SAES = sorted(Path(__file__).resolve().parents[1].glob("fixtures/saes/*/sae.pt"))


@pytest.mark.parametrize("path", SHIPPED_SAES, ids=lambda p: p.parent.name)
def test_shipped_checkpoints_load_bit_identically(path, tmp_path):
    stored = torch.load(path, map_location="cpu", weights_only=True)
    sae = load_sae(path)
    assert sae.config.to_dict() == stored["config"] and not sae.training
    assert sae.state_dict().keys() == stored["model_state_dict"].keys()
    for name, weight in sae.state_dict().items():
        assert torch.equal(weight, stored["model_state_dict"][name]), name
    save_sae(sae, tmp_path / "again.pt", training=training_record(path))
    again = torch.load(tmp_path / "again.pt", map_location="cpu", weights_only=True)
    assert again["training"] == stored["training"] and again["config"] == stored["config"]
    assert all(torch.equal(again["model_state_dict"][k], v) for k, v in stored["model_state_dict"].items())


def test_there_are_shipped_checkpoints_to_check():
    assert [p.parent.name for p in SHIPPED_SAES] == ["customcnn_bc_conv3a", "customcnn_bc_conv4a",
                                                     "impala_bc_stack2.res2", "impala_bc_stack3.res2"]


def test_researcher_checkpoint_loads_with_the_site_passed(tmp_path, sae):
    optimizer = torch.optim.Adam(sae.parameters())
    sae(torch.randn(1, 32, 2, 2)).sum().backward()
    optimizer.step()
    path = tmp_path / "researcher.pt"
    torch.save({"model_state_dict": sae.state_dict(), "step": 1200, "optimizer_state_dict": optimizer.state_dict()},
               path)
    loaded = load_sae(path, site="conv3a")
    assert type(loaded) is ConvSAE and loaded.config == ConvSAEConfig(site="conv3a", channels=32, expansion=2, l1=None)
    assert loaded.config.scale == 1.0 and loaded.config.sparsity() == "L1 penalty, coefficient not recorded"
    for key, value in sae.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    with pytest.raises(SAEError, match="does not record its site.*pass site="):
        load_sae(path)


def test_our_checkpoint_round_trips_config_and_refuses_another_site(tmp_path):
    topk = build_sae(TopKSAEConfig(site="conv4a", channels=32, expansion=3, k=5, scale=0.7))
    save_sae(topk, tmp_path / "s.pt", training={"command": "x", "history": [{"step": 1, "loss": 0.5}]})
    loaded = load_sae(tmp_path / "s.pt")
    assert type(loaded) is TopKSAE and loaded.config == topk.config and not loaded.training
    assert load_sae(tmp_path / "s.pt", site="conv4a").config.k == 5
    with pytest.raises(SAEError, match="trained on site 'conv4a', not 'conv3a'"):
        load_sae(tmp_path / "s.pt", site="conv3a")


def test_malformed_checkpoints_raise_checkpoint_errors(tmp_path, sae):
    state = sae.state_dict()
    torch.save({"model_state_dict": {k: v for k, v in state.items() if k != "conv_dec.bias"}}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="missing conv_dec.bias"):
        load_sae(tmp_path / "a.pt", site="conv3a")
    torch.save({"model_state_dict": state, "config": {"architecture": "gated", "site": "conv3a"}}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="architecture 'gated'"):
        load_sae(tmp_path / "b.pt")


# ------------------------------------------------------------------------------------------------ splicing
def test_error_term_splice_reproduces_the_clean_policy(model, frames, sae):
    reference = run(model, frames, cache=["fc1"])
    with spliced(model, sae, error_term=True):
        shapes = sites(model)
        inside = run(model, frames, cache=[sae.latent_site, sae.error_site, "fc1"])
    assert shapes[sae.latent_site] == (64, 16, 16) and shapes[sae.error_site] == (32, 16, 16)
    torch.testing.assert_close(inside.logits, reference.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(inside.activations["fc1"], reference.activations["fc1"], rtol=1e-5, atol=1e-5)
    assert (inside.activations[sae.latent_site] > 0).any()
    assert clean(model)


def test_without_the_error_term_the_policy_sees_the_reconstruction(model, frames, sae):
    reference = run(model, frames, cache=["conv3a"])
    with spliced(model, sae, error_term=False):
        inside = run(model, frames, cache=["conv3a"])
        with pytest.raises(InterventionError, match="never fired.*conv3a.sae.error"):
            run(model, frames, interventions=[Zero(site=sae.error_site)])
    with torch.no_grad():
        torch.testing.assert_close(inside.activations["conv3a"], sae(reference.activations["conv3a"]))
    assert not torch.allclose(inside.logits, reference.logits, atol=1e-3)
    assert clean(model)


def test_sae_latents_of_a_batch_match_the_spliced_latent_site(model, frames, sae):
    with spliced(model, sae):
        direct = run(model, frames, cache=[sae.latent_site]).activations[sae.latent_site]
    maps = sae_latents(model, sae, frames, batch_size=3)  # two chunks
    torch.testing.assert_close(maps, direct)
    torch.testing.assert_close(sae_latents(model, sae, frames, reduce="sum", batch_size=3), direct.sum((2, 3)))
    peaks = sae_latents(model, sae, frames, reduce="max")
    torch.testing.assert_close(peaks, direct.amax((2, 3)))
    frame_rates = firing_rates(peaks)  # the fraction of frames on which each latent fires anywhere
    assert frame_rates.tolist() == pytest.approx((direct.amax((2, 3)) > 0).float().mean(0).tolist())
    assert dense_fraction(frame_rates, above=0.5) == pytest.approx(float((frame_rates > 0.5).float().mean()))
    with pytest.raises(SAEError, match="reduce"):
        sae_latents(model, sae, frames, reduce="mean")


def test_zero_and_clamp_of_a_latent_change_the_logits(model, frames, sae):
    maxima = latent_maxima(model, sae, frames)
    latent = int(maxima.argmax())
    with spliced(model, sae):
        base = run(model, frames, cache=[sae.latent_site])
        zeroed = run(model, frames, interventions=[Zero(site=Site(sae.latent_site, channels=(latent,)))])
        clamped = run(model, frames, interventions=[
            Clamp(site=Site(sae.latent_site, channels=(latent,)), value=3 * float(maxima[latent]))])
    assert maxima[latent] == base.activations[sae.latent_site][:, latent].max()
    assert (zeroed.logits - base.logits).abs().max() > 1e-4
    assert (clamped.logits - base.logits).abs().max() > 1e-4
    with pytest.raises(UnknownSiteError, match="conv3a.sae.latents"):  # not spliced: no such site
        run(model, frames, interventions=[Zero(site=sae.latent_site)])
    assert clean(model)


def test_patching_latents_between_levels_keeps_the_target_error(model, frames, sae):
    source, target = frames[:2], frames[2:]
    with spliced(model, sae):
        donor = run(model, source, cache=[sae.latent_site]).activations[sae.latent_site]
        patched = run(model, target, interventions=[Patch(site=sae.latent_site, source=donor)], cache=["conv3a"])
    x = run(model, target, cache=["conv3a"]).activations["conv3a"]
    with torch.no_grad():
        expected = sae.decode(donor) + x - sae(x)
    torch.testing.assert_close(patched.activations["conv3a"], expected, rtol=1e-5, atol=1e-5)


def test_flat_sites_splice_the_same_way(model, frames):
    torch.manual_seed(0)
    flat = ConvSAE(ConvSAEConfig(site="fc1", channels=256, expansion=1))
    reference = run(model, frames)
    with spliced(model, flat):
        inside = run(model, frames, cache=[flat.latent_site])
    assert inside.activations[flat.latent_site].shape == (4, 256)
    torch.testing.assert_close(inside.logits, reference.logits, rtol=1e-5, atol=1e-5)


def test_hooks_and_module_are_removed_even_when_the_block_raises(model, frames, sae):
    with pytest.raises(RuntimeError, match="boom"), spliced(model, sae):
        run(model, frames)
        raise RuntimeError("boom")
    assert clean(model)
    with spliced(model, sae), pytest.raises(SAEError, match="already spliced"), spliced(model, sae):
        pass
    assert clean(model)


def test_splicing_into_a_site_of_another_width_raises(model, frames):
    narrow = ConvSAE(ConvSAEConfig(site="conv1a", channels=32))
    with pytest.raises(SAEError, match="takes 32 channels at 'conv1a'.*\\(16, 64, 64\\)"), spliced(model, narrow):
        pass
    assert clean(model)
    with pytest.raises(UnknownSiteError, match="did you mean 'conv3a'"), spliced(
            model, ConvSAE(ConvSAEConfig(site="conv3", channels=32))):
        pass
    assert clean(model)


# ------------------------------------------------------------------------------------------------ training
def synthetic(n: int = 4000, seed: int = 0) -> torch.Tensor:
    """Rows of 8 channels, each a sparse non-negative mix of 6 fixed directions."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(6, 8, generator=g)
    codes = torch.rand(n, 6, generator=g) * (torch.rand(n, 6, generator=g) < 0.25)
    return codes @ directions + 0.01 * torch.randn(n, 8, generator=g)


def quiet(_: str) -> None:
    pass


def test_training_lowers_the_loss_and_normalises_inputs():
    data = 3.0 * synthetic()
    scale = normalising_scale(data)
    assert (data * scale).square().sum(1).mean() == pytest.approx(8.0, rel=1e-4)
    torch.manual_seed(0)
    sae = build_sae(ConvSAEConfig(site="conv3a", channels=8, expansion=2, l1=1e-3, scale=scale))
    result = train_sae(sae, data, training=SAETrainingConfig(steps=150, batch_size=256, lr=3e-3, log_every=50,
                                                             resample_every=None), log=quiet)
    assert [row["step"] for row in result.history] == [50, 100, 150]
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    with torch.no_grad():
        assert fraction_of_variance_unexplained(data, sae(data)) < 0.2
    assert not sae.training


@pytest.mark.parametrize("resample_every", [None, 20])
@pytest.mark.parametrize("config", [ConvSAEConfig(site="conv3a", channels=8, expansion=2, l1=1e-3),
                                    TopKSAEConfig(site="conv3a", channels=8, expansion=2, k=2)])
def test_resampling_revives_a_dead_latent(resample_every, config):
    data = synthetic()
    torch.manual_seed(0)
    sae = build_sae(dataclasses.replace(config, scale=normalising_scale(data)))
    with torch.no_grad():
        sae.conv_enc.bias[0] = -100.0  # latent 0 never fires
    result = train_sae(sae, data, training=SAETrainingConfig(steps=60, batch_size=128, resample_every=resample_every,
                                                             log_every=60), log=quiet)
    with torch.no_grad():
        fires = bool(firing_rates(sae.encode(data))[0] > 0)
    assert fires == (resample_every is not None)
    assert (result.resampled >= 1) == (resample_every is not None)


def test_training_refuses_rows_of_the_wrong_width():
    sae = build_sae(ConvSAEConfig(site="conv3a", channels=8))
    with pytest.raises(SAEError, match=r"rows \(P >= 1, 8\)"):
        train_sae(sae, torch.zeros(10, 4), training=SAETrainingConfig(steps=1), log=quiet)


# ------------------------------------------------------------------------------------------------ data and commands
def test_agent_frames_are_the_frames_the_policy_played(model):
    from harness.heist.engine import generate, render

    levels = generate([21, 22])
    seen = agent_frames(model, levels, seed=0, max_steps=3)
    assert seen.shape == (6, 64, 64, 3) and seen.dtype == np.uint8
    assert (seen[:2] == render(levels)).all()  # the first step sees the start of both episodes


def test_collected_frames_mix_level_starts_and_the_agents_own_episodes(model):
    from harness.heist.engine import render
    from harness.heist.sampling import sample_levels

    lines: list[str] = []
    frames = collect_frames(model, "training", 7, seed=4, played=0.5, max_steps=2, log=lines.append)
    starts = sample_levels("training", 4, seed=4)[:3]
    assert frames.shape == (7, 64, 64, 3) and (frames[:3] == render(starts)).all()
    assert len(lines) == 2 and lines[-1].startswith("played 2 levels, 4/4 frames")  # 2 levels x 2 steps


@pytest.mark.slow
def test_train_and_card_commands_end_to_end(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(CustomCNN().state_dict(), tmp_path / "policy.pt")
    out = tmp_path / "saes" / "conv4a.pt"
    out.parent.mkdir()  # the command refuses an output folder that does not exist (issue 19 item 13)
    main(["train", "--policy", str(tmp_path / "policy.pt"), "--site", "conv4a", "--out", str(out), "--topk", "4",
          "--expansion", "2", "--frames", "8", "--max-episode-steps", "2", "--positions-per-frame", "5",
          "--steps", "4", "--batch-size", "16", "--resample-every", "2", "--seed", "3"])
    sae = load_sae(out)
    assert type(sae) is TopKSAE and sae.config.site == "conv4a" and sae.config.k == 4 and sae.config.latents == 64
    assert "step 4/4" in capsys.readouterr().out
    main(["card", "--policy", str(tmp_path / "policy.pt"), "--sae", str(out), "--frames", "8", "--levels", "2",
          "--max-steps", "2"])
    card = (out.parent / "card.md").read_text()
    assert "python -m harness.training.sae train --policy" in card and "TopK, k=4" in card
    assert f"**training threads**: {torch.get_num_threads()} " in card
    for row in ("L0", "fraction of variance unexplained", "dead latents", "SAE, no error term", "zero ablation",
                "mean ablation"):
        assert row in card


@pytest.mark.parametrize("site", ["stack3.res2", "stack2.res2"])
def test_an_impala_policy_gets_saes_on_its_residual_stream_by_the_same_commands(tmp_path, capsys, site, frames):
    """IMPALA's sites (a residual block's output, signed: no ReLU after the sum) train, load, splice exactly and
    get a card the same way as CustomCNN's conv sites."""
    torch.manual_seed(0)
    torch.save(ImpalaCNN().state_dict(), tmp_path / "impala.pt")
    out = tmp_path / f"{site}.pt"
    main(["train", "--policy", str(tmp_path / "impala.pt"), "--site", site, "--out", str(out), "--expansion", "2",
          "--frames", "6", "--max-episode-steps", "2", "--positions-per-frame", "5", "--steps", "3",
          "--batch-size", "16", "--seed", "1"])
    sae = load_sae(out)
    assert type(sae) is ConvSAE and sae.config.site == site and sae.config.channels == 32
    policy = load_policy(tmp_path / "impala.pt")
    reference = run(policy, frames, cache=[site])
    assert (reference.activations[site] < 0).any()  # the residual stream is signed
    with spliced(policy, sae, error_term=True):
        inside = run(policy, frames)
    torch.testing.assert_close(inside.logits, reference.logits, rtol=1e-5, atol=1e-5)
    assert clean(policy)
    main(["card", "--policy", str(tmp_path / "impala.pt"), "--sae", str(out), "--frames", "6", "--levels", "2",
          "--max-steps", "2"])
    card = (tmp_path / "card.md").read_text()
    assert f"# SAE card: {site} (conv, 64 latents)" in card and "fraction of variance unexplained" in card
