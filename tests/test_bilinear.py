"""Bilinear layers as quadratic forms (harness.lenses.bilinear), the KeepTopEigen intervention, and the distillation
trainer's engine-free pieces."""

import numpy as np
import pytest
import torch

from harness import Action, run
from harness.errors import CheckpointError, InterventionError, TrainingInputError, UnknownSiteError
from harness.lenses.bilinear import interaction, logit_difference
from harness.policy.interventions import KeepTopEigen
from harness.policy.models import BilinearCNN, CustomCNN, preprocess
from harness.training import distill


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BilinearCNN().eval()


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)


def test_interaction_reproduces_a_logit_difference_for_random_inputs(model):
    x = torch.randn(32, 32, 4, 4)
    form = interaction(model, logits=logit_difference(Action.UP, Action.DOWN))
    with torch.no_grad():
        logits = model.head(x)[0].double()
    torch.testing.assert_close(form(x), logits[:, Action.UP] - logits[:, Action.DOWN], rtol=1e-6, atol=1e-6)
    assert form.layer == "fc1" and form.input_shape == (32, 4, 4)
    torch.testing.assert_close(form.matrix, form.matrix.T)


def test_interaction_reproduces_a_probe_direction_on_the_layer_output(model):
    x, u = torch.randn(8, 512), torch.randn(512)
    form = interaction(model, direction=u)
    with torch.no_grad():
        expected = model.fc1(x).double() @ u.double()
    torch.testing.assert_close(form(x), expected, rtol=1e-6, atol=1e-5)
    assert form.offset == 0.0


def test_two_layer_model_has_the_form_at_its_last_layer_only():
    torch.manual_seed(1)
    deep = BilinearCNN((64, 32)).eval()
    h1 = torch.randn(8, 64)
    form = interaction(deep, logits=logit_difference(Action.LEFT))
    with torch.no_grad():
        expected = deep.logits_fc(deep.fc2(h1))[:, Action.LEFT].double()
    torch.testing.assert_close(form(h1), expected, rtol=1e-6, atol=1e-6)
    assert form.layer == "fc2" and form.input_shape == (64,)
    with pytest.raises(InterventionError, match="not a quadratic form of fc1's input: fc1 feeds the bilinear layer fc2"):
        interaction(deep, logits=logit_difference(Action.LEFT), layer="fc1")
    assert interaction(deep, direction=torch.ones(64), layer="fc1").input_shape == (32, 4, 4)


def test_eigendecomposition_reconstructs_the_matrix_sorted_by_magnitude(model):
    form = interaction(model, logits=logit_difference(Action.UP, Action.DOWN))
    eig = form.eigen()
    torch.testing.assert_close(eig.reconstruct(len(eig.values)), form.matrix, rtol=1e-9, atol=1e-9)
    assert bool((eig.values.abs().diff() <= 0).all())
    torch.testing.assert_close(eig.vectors.T @ eig.vectors, torch.eye(512, dtype=torch.float64), atol=1e-9, rtol=0)
    maps = eig.maps(3)
    assert maps.shape == (3, 32, 4, 4)
    np.testing.assert_array_equal(maps[1].ravel(), eig.vectors[:, 1].numpy())
    assert eig.channel_shares(0).sum() == pytest.approx(1.0)


def test_leading_eigenvector_finds_a_planted_channel():
    torch.manual_seed(2)
    planted = BilinearCNN((8,)).eval()
    with torch.no_grad():
        for linear in (planted.fc1.left, planted.fc1.right):
            linear.weight.mul_(0.01)
            linear.weight.view(8, 32, 16)[:, 5] = 1.0  # both factors read channel 5 strongly
    eig = interaction(planted, direction=torch.ones(8)).eigen()
    shares = eig.channel_shares(0)
    assert int(shares.argmax()) == 5 and shares[5] > 0.9


def test_keeping_every_eigencomponent_gives_the_clean_output(model, frames):
    form = interaction(model, logits=logit_difference(Action.UP, Action.DOWN))
    clean = run(model, frames)
    kept = run(model, frames, interventions=[form.keep_top(512)])
    torch.testing.assert_close(kept.logits, clean.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(kept.value, clean.value, rtol=0, atol=1e-5)


def test_keeping_the_top_k_gives_the_truncated_form(model, frames):
    form = interaction(model, logits=logit_difference(Action.UP, Action.DOWN))
    eig, k = form.eigen(), 5
    result = run(model, frames, interventions=[form.keep_top(k)], cache=["fc1.input"])
    x = result.activations["fc1.input"].double()
    expected = ((x @ eig.reconstruct(k)) * x).sum(1) + x @ form.linear + form.constant
    difference = (result.logits[:, Action.UP] - result.logits[:, Action.DOWN]).double()
    torch.testing.assert_close(difference, expected, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(difference, form(x).to(difference), atol=1e-3)  # truncation changed something


def test_keep_top_eigen_refuses_bad_data_and_models_without_the_layer(model, frames):
    form = interaction(model, logits=logit_difference(Action.UP))
    with pytest.raises(InterventionError, match="k must lie in 0..512"):
        form.keep_top(600)
    with pytest.raises(InterventionError, match="non-zero vector"):
        KeepTopEigen(site="fc1", direction=torch.zeros(512), values=torch.ones(1), vectors=torch.ones(512, 1),
                     linear=torch.zeros(512), constant=0.0)
    with pytest.raises(InterventionError, match="vectors .d_in, k., values .k,. and linear .d_in,. that agree"):
        KeepTopEigen(site="fc1", direction=torch.ones(512), values=torch.ones(2), vectors=torch.ones(512, 1),
                     linear=torch.zeros(512), constant=0.0)
    with pytest.raises(UnknownSiteError, match="fc1.input"):
        run(CustomCNN(), frames, interventions=[form.keep_top(3)])


def test_keep_top_eigen_hook_refuses_to_act_without_the_layers_input(model):
    hook = interaction(model, logits=logit_difference(Action.UP)).keep_top(3).bind(4)
    assert hook.input_site == "fc1.input"
    with pytest.raises(InterventionError, match="found no input at 'fc1.input' in this forward pass"):
        hook(torch.zeros(4, 512), slice(0, 4))


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"logits": torch.ones(15), "direction": torch.ones(512)}, InterventionError, "exactly one of"),
    ({}, InterventionError, "exactly one of"),
    ({"logits": torch.ones(14)}, InterventionError, r"shape \(15,\), got shape \(14,\)"),
    ({"direction": torch.zeros(512)}, InterventionError, "non-zero"),
    ({"direction": [1.0] * 512}, InterventionError, "tensor or numpy array, got list"),
    ({"logits": torch.ones(15), "layer": "fc9"}, UnknownSiteError, r"'fc9' is not a bilinear layer.*\('fc1',\)"),
])  # fmt: skip
def test_interaction_errors_name_what_is_wrong(model, kwargs, error, needle):
    with pytest.raises(error, match=needle):
        interaction(model, **kwargs)


def test_interaction_needs_a_bilinear_model_and_real_directions():
    with pytest.raises(CheckpointError, match="need a BilinearCNN .* got CustomCNN"):
        interaction(CustomCNN(), logits=logit_difference(Action.UP))
    with pytest.raises(InterventionError, match="pass two different actions"):
        logit_difference(Action.UP, Action.UP)
    with pytest.raises(InterventionError, match="integers 0..14, got 15"):
        logit_difference(15)
    with pytest.raises(InterventionError, match="conv-map input"):
        interaction(BilinearCNN((8, 4)), logits=logit_difference(Action.UP)).eigen().channel_shares(0)


def test_student_copies_the_teachers_conv_stack_frozen_and_trains_the_head():
    torch.manual_seed(3)
    teacher = CustomCNN().eval()
    student = distill.student_from(teacher, (16,))
    frames = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    features = run(teacher, frames, cache=["pool4"]).activations["pool4"]
    torch.testing.assert_close(run(student, frames, cache=["pool4"]).activations["pool4"], features)
    trainable = {name for name, p in student.named_parameters() if p.requires_grad}
    assert trainable == {f"{m}.{p}" for m in ("fc1.left", "fc1.right", "logits_fc", "value_fc") for p in ("weight", "bias")}
    teacher_logits = torch.randn(4, 15)
    loss, figures = distill.distillation_loss(student, features, teacher_logits, torch.zeros(4), 0.5)
    loss.backward()
    assert student.fc1.left.weight.grad is not None and student.conv1a.weight.grad is None
    assert set(figures) == {"kl", "argmax_agreement", "value_mse"} and figures["kl"] >= 0
    matched, _ = distill.distillation_loss(student, features, student.head(features)[0].detach(),
                                           student.head(features)[1].detach(), 0.5)
    assert matched.item() == pytest.approx(0.0, abs=1e-6)


def test_distill_command_refuses_bad_flags_and_teachers_before_any_work(tmp_path, capsys):
    impala = tmp_path / "impala.pt"
    from harness.policy.models import ImpalaCNN
    torch.save(ImpalaCNN().state_dict(), impala)
    for argv, needle in [
        (["--out", str(tmp_path / "s.pt"), "--teacher", str(impala)], "is a impala policy"),
        (["--out", str(tmp_path / "s.pt"), "--teacher", str(tmp_path / "none.pt")], "no checkpoint file"),
        (["--out", str(tmp_path / "s.pt"), "--part-played", "2"], "part_played is a share"),
        (["--out", str(tmp_path / "s.pt"), "--widths"], "widths needs at least one layer"),
        (["--out", str(tmp_path / "no" / "s.pt")], "not an existing folder"),
    ]:
        with pytest.raises(SystemExit):
            distill.main(argv)
        assert needle in capsys.readouterr().err
    with pytest.raises(TrainingInputError, match="threads must be at least 1"):
        distill.DistillConfig(threads=0)


def test_cache_holds_every_collection_rounded_up_to_whole_engine_steps():
    cfg = distill.DistillConfig(teacher_frames=100, iterations=2, frames_per_iteration=30, engines=64)
    assert distill.cache_capacity(cfg) == 128 + 2 * 64
    assert distill.cache_capacity(distill.DistillConfig(teacher_frames=128, iterations=0, engines=64)) == 128


@pytest.mark.slow
def test_distillation_runs_end_to_end_and_saves_a_loadable_student(tmp_path):
    out = tmp_path / "student.pt"
    distill.main(["--out", str(out), "--teacher-frames", "250", "--iterations", "2", "--frames-per-iteration", "100",
                  "--steps-per-iteration", "20", "--engines", "16", "--widths", "32"])  # counts not multiples of 16
    from harness.policy.models import load_policy
    student = load_policy(out)
    assert isinstance(student, BilinearCNN) and student.widths == (32,)
    log = distill.json.loads(distill.log_path(out).read_text())["iterations"]
    assert [it["player"] for it in log] == ["teacher", "student", "student"]
    assert log[-1]["cache_frames"] == 256 + 2 * 112
    logits, _ = student(preprocess(np.zeros((1, 64, 64, 3), dtype=np.uint8)))
    assert logits.shape == (1, 15)
