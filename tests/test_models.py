import hashlib

import numpy as np
import pytest
import torch

from harness.errors import CheckpointError, ObservationError
from harness.policy.models import (ARCHITECTURES, BilinearCNN, CustomCNN, ImpalaCNN, architecture_of,
                                   checkpoint_sha256, load_policy, preprocess)
from harness.policy.sites import sites

CUSTOM_KEYS = {
    "conv1a.weight": (16, 3, 7, 7), "conv1a.bias": (16,),
    "conv2a.weight": (32, 16, 5, 5), "conv2a.bias": (32,),
    "conv2b.weight": (32, 32, 5, 5), "conv2b.bias": (32,),
    "conv3a.weight": (32, 32, 5, 5), "conv3a.bias": (32,),
    "conv4a.weight": (32, 32, 5, 5), "conv4a.bias": (32,),
    "fc1.weight": (256, 512), "fc1.bias": (256,),
    "fc2.weight": (512, 256), "fc2.bias": (512,),
    "fc3.weight": (15, 512), "fc3.bias": (15,),
    "value_fc.weight": (1, 512), "value_fc.bias": (1,),
}  # fmt: skip


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)


def test_custom_cnn_state_dict_keys_and_shapes_are_exactly_the_checkpoint_layout():
    state = CustomCNN().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == CUSTOM_KEYS


def test_custom_cnn_modules_in_the_documented_order():
    model = CustomCNN()
    assert isinstance(model.pool1, torch.nn.LPPool2d) and model.pool1.norm_type == 2
    assert model.conv1a.padding == (3, 3) and model.conv2a.padding == (2, 2)
    assert model.dropout_conv.p == model.dropout_fc.p == 0.01


def test_impala_key_names_follow_stacks_and_blocks():
    keys = set(ImpalaCNN().state_dict())
    assert {"stack1.conv.weight", "stack2.res1.conv0.weight", "stack3.res2.conv1.bias"} <= keys
    assert {"fc.weight", "logits.weight", "value.weight"} <= keys
    assert ImpalaCNN().state_dict()["fc.weight"].shape == (256, 2048)


@pytest.mark.parametrize("architecture", [CustomCNN, ImpalaCNN, BilinearCNN])
def test_forward_returns_logits_and_value(architecture, frames):
    with torch.no_grad():
        logits, value = architecture().eval()(preprocess(frames))
    assert logits.shape == (4, 15) and value.shape == (4,)
    assert logits.dtype == value.dtype == torch.float32


def test_preprocess_scales_to_unit_range_nchw(frames):
    x = preprocess(frames)
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x, torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(preprocess(torch.from_numpy(frames)), x)


def test_preprocess_maps_0_and_255_to_0_and_1():
    frames = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    frames[1] = 255
    x = preprocess(frames)
    assert x[0].max() == 0 and x[1].min() == 1


@pytest.mark.parametrize(
    ("frames", "needle"),
    [
        (np.zeros((2, 64, 64, 3), dtype=np.float32), "uint8"),
        (np.zeros((2, 3, 64, 64), dtype=np.uint8), "(N, 64, 64, 3)"),
        (np.zeros((64, 64, 3), dtype=np.uint8), "frames[None]"),
        ([[0]], "numpy array or torch tensor"),
    ],
)
def test_preprocess_rejects_other_dtypes_and_shapes(frames, needle):
    with pytest.raises(ObservationError) as info:
        preprocess(frames)
    assert needle in str(info.value)


def test_model_given_raw_frames_says_to_preprocess(frames):
    with pytest.raises(ObservationError, match="preprocess"):
        CustomCNN()(torch.from_numpy(frames))


@pytest.mark.parametrize(
    ("architecture", "wrap"),
    [
        (CustomCNN, lambda s: s),
        (CustomCNN, lambda s: {"model_state_dict": s, "step": 3}),
        (ImpalaCNN, lambda s: {"state_dict": s}),
    ],
)
def test_load_policy_round_trip(tmp_path, frames, architecture, wrap):
    model = architecture().eval()
    path = tmp_path / "policy.pt"
    torch.save(wrap(model.state_dict()), path)
    loaded = load_policy(path)
    assert type(loaded) is architecture and not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(preprocess(frames)), model(preprocess(frames)))


def test_bilinear_cnn_shares_the_conv_stack_keys_and_sites_and_is_bilinear_after_it(frames):
    model, custom = BilinearCNN().eval(), CustomCNN().eval()
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if k.startswith("conv")} == {
        k: v for k, v in CUSTOM_KEYS.items() if k.startswith("conv")}
    assert {k: tuple(v.shape) for k, v in state.items() if not k.startswith("conv")} == {
        "fc1.left.weight": (512, 512), "fc1.left.bias": (512,), "fc1.right.weight": (512, 512),
        "fc1.right.bias": (512,), "logits_fc.weight": (15, 512), "logits_fc.bias": (15,),
        "value_fc.weight": (1, 512), "value_fc.bias": (1,)}
    conv_sites = [s for s in sites(custom) if not s.startswith("fc") and s not in ("logits", "value")]
    assert list(sites(model))[:len(conv_sites)] == conv_sites
    assert list(sites(model))[len(conv_sites):] == ["fc1.input", "fc1.left", "fc1.right", "fc1", "logits", "value"]
    x = torch.randn(3, 32, 4, 4)
    with torch.no_grad():  # no ReLU: the head is (W x + b) * (V x + c), then linear heads
        h = model.fc1.left(x.flatten(1)) * model.fc1.right(x.flatten(1))
        torch.testing.assert_close(model.head(x)[0], model.logits_fc(h))


def test_load_policy_detects_a_bilinear_checkpoint_and_its_widths(tmp_path, frames):
    model = BilinearCNN((24, 8)).eval()
    path = tmp_path / "bilinear.pt"
    torch.save(model.state_dict(), path)
    loaded = load_policy(path)
    assert type(loaded) is BilinearCNN and loaded.widths == (24, 8) and architecture_of(loaded) == "bilinear_cnn"
    with torch.no_grad():
        torch.testing.assert_close(loaded(preprocess(frames)), model(preprocess(frames)))
    assert "fc2.left" in sites(loaded)
    with pytest.raises(CheckpointError, match="layer fc1: missing fc1.weight"):
        load_policy(path, architecture="custom_cnn")
    with pytest.raises(CheckpointError, match="at least one bilinear layer"):
        BilinearCNN(())


def test_load_policy_explicit_architecture(tmp_path):
    path = tmp_path / "impala.pt"
    torch.save(ImpalaCNN().state_dict(), path)
    assert isinstance(load_policy(path, architecture="impala"), ImpalaCNN)
    with pytest.raises(CheckpointError, match="layer conv1a: missing conv1a.weight"):
        load_policy(path, architecture="custom_cnn")
    with pytest.raises(CheckpointError, match="choose one of"):
        load_policy(path, architecture="resnet")


def test_architecture_of_names_each_architecture_and_refuses_other_models():
    assert {architecture_of(cls()) for cls in ARCHITECTURES.values()} == set(ARCHITECTURES)
    with pytest.raises(CheckpointError, match="Linear is not one of the harness's architectures"):
        architecture_of(torch.nn.Linear(2, 2))


def test_missing_key_names_the_layer(tmp_path):
    state = CustomCNN().state_dict()
    del state["conv3a.bias"]
    torch.save(state, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match=r"layer conv3a: missing conv3a.bias, expected shape \(32,\)"):
        load_policy(tmp_path / "p.pt")


def test_wrong_shape_names_layer_and_both_shapes(tmp_path):
    state = CustomCNN().state_dict()
    state["fc1.weight"] = torch.zeros(256, 2048)
    torch.save(state, tmp_path / "p.pt")
    expected = r"layer fc1: fc1.weight expected shape \(256, 512\), found \(256, 2048\)"
    with pytest.raises(CheckpointError, match=expected):
        load_policy(tmp_path / "p.pt")


def test_unexpected_key_is_reported(tmp_path):
    state = CustomCNN().state_dict()
    state["conv5a.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="layer conv5a: unexpected key conv5a.weight"):
        load_policy(tmp_path / "p.pt")


def test_pickled_objects_are_refused_weights_only(tmp_path):
    torch.save(CustomCNN(), tmp_path / "whole_model.pt")  # a pickled module, not a state_dict
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_policy(tmp_path / "whole_model.pt")


def test_truncated_file_is_refused(tmp_path):
    torch.save(CustomCNN().state_dict(), tmp_path / "p.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "p.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_policy(tmp_path / "cut.pt")


def test_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file at .*absent.pt"):
        load_policy(tmp_path / "absent.pt")


def test_non_state_dict_is_refused(tmp_path):
    torch.save({"step": 3}, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        load_policy(tmp_path / "p.pt")


def test_checkpoint_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "p.pt"
    torch.save(CustomCNN().state_dict(), path)
    assert checkpoint_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("content, needle", [(b"hello world\n", "neither a zip archive .* nor a pickle"),
                                             (bytes(range(7, 256)) * 4, "neither a zip archive")])
def test_text_and_random_bytes_are_named_not_a_checkpoint(tmp_path, content, needle):
    (tmp_path / "p.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=needle):
        load_policy(tmp_path / "p.pt")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad):
    state = CustomCNN().state_dict()
    state["fc2.weight"][0, 0] = bad
    torch.save(state, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match=r"NaN or infinite weights in: fc2.weight \(1 of 131072 values\)"):
        load_policy(tmp_path / "p.pt")


def test_integer_weights_are_refused_not_cast(tmp_path):
    state = CustomCNN().state_dict()
    state["fc3.bias"] = torch.zeros(15, dtype=torch.int64)
    torch.save(state, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="layer fc3: fc3.bias expected floating point, found torch.int64"):
        load_policy(tmp_path / "p.pt")


def test_legacy_pickle_format_still_loads(tmp_path):
    state = CustomCNN().state_dict()
    torch.save(state, tmp_path / "p.pt", _use_new_zipfile_serialization=False)
    torch.testing.assert_close(load_policy(tmp_path / "p.pt").state_dict()["fc3.bias"], state["fc3.bias"])
