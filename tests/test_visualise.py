"""Feature visualisation (harness.lenses.visualise) on a planted red detector whose optimum is known exactly:
the ascent raises the objective towards it and paints red where the unit looks, is bit-for-bit seeded, compares
with dataset frames through the same objective, and refuses bad requests by name before any ascent."""

import numpy as np
import pytest
import torch

from harness.errors import HarnessError, InterventionError, UnknownSiteError
from harness.heist.engine import render
from harness.heist.sampling import sample_levels
from harness.lenses.visualise import Objective, Visualisation, VisualisationError, colour_decorrelation, visualise
from harness.policy.models import CustomCNN, orthogonal_init
from harness.policy.runner import run

CHANNEL = 9
RED_VALUE, GREY_VALUE = 16.0, 8.0
"""conv4a[CHANNEL] on an all-red frame: relu(R - (G + B) / 2 + 1) = 2, doubled by each of the three L2 pools of
2x2; on grey, 1 doubled three times.  The bias keeps the ReLU passing gradient on every colour but pure cyan."""
BLOCK = (3, 5)
"""A conv4a map cell; through centre taps and three 2x2 pools it sees pixels rows 24-31, columns 40-47."""
COLOUR = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
"""A fixed invertible colour transform, so that these tests need no rendered levels."""
FAST = dict(restarts=2, steps=60, lr=0.1, colour=COLOUR)
REACHED = GREY_VALUE + 0.55 * (RED_VALUE - GREY_VALUE)
"""Where 60 steps must take the objective: past half way from grey to the optimum."""


def red_detector() -> CustomCNN:
    """Planted: a seeded orthogonal-init CustomCNN in which conv1a channel 0 is relu(R - (G + B) / 2 + 1) per pixel
    (centre tap), conv2a, conv2b and conv3a channel 0 and conv4a channel CHANNEL copy channel 0 of their input (centre
    tap, no bias) and nothing else feeds them: conv4a[CHANNEL] at map cell (r, c) is the redness of pixel block
    8r..8r+7, 8c..8c+7 after three L2 pools, RED_VALUE for red everywhere."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = orthogonal_init(CustomCNN()).eval()
    with torch.no_grad():
        model.conv1a.weight[0] = 0
        model.conv1a.weight[0, :, 3, 3] = torch.tensor([1.0, -0.5, -0.5])
        model.conv1a.bias[0] = 1.0
        for layer, out in ((model.conv2a, 0), (model.conv2b, 0), (model.conv3a, 0), (model.conv4a, CHANNEL)):
            layer.weight[out] = 0
            layer.weight[out, 0, 2, 2] = 1
            layer.bias[out] = 0
    return model


@pytest.fixture(scope="module")
def planted():
    return red_detector()


@pytest.fixture(scope="module")
def mean_red(planted):
    return visualise(planted, Objective(site="conv4a", channel=CHANNEL), seed=3, **FAST)


def redness(images: np.ndarray) -> np.ndarray:
    """Per pixel: red minus the mean of green and blue, in [-1, 1]."""
    rgb = images.astype(float) / 255
    return rgb[..., 0] - (rgb[..., 1] + rgb[..., 2]) / 2


def test_planted_unit_values_are_what_the_construction_says(planted):
    red = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    red[..., 0] = 255
    act = run(planted, np.concatenate([red, np.full_like(red, 128)]), cache=["conv4a"]).activations["conv4a"]
    assert torch.allclose(act[0, CHANNEL], torch.full((8, 8), RED_VALUE))
    assert torch.allclose(act[1, CHANNEL], torch.full((8, 8), GREY_VALUE))


def test_ascent_finds_the_planted_colour(planted, mean_red):
    assert isinstance(mean_red, Visualisation) and mean_red.images.shape == (2, 64, 64, 3)
    assert mean_red.images.dtype == np.uint8 and mean_red.trace.shape == (2, 60)
    assert (mean_red.trace[:, -5:].mean(1) > mean_red.trace[:, :5].mean(1) + 3).all()
    assert (mean_red.values > REACHED).all() and (mean_red.values <= RED_VALUE + 1e-4).all()
    assert (redness(mean_red.images).mean((1, 2)) > 0.5).all()
    # the reported values are the objective on the returned uint8 images, measured independently
    act = run(planted, mean_red.images, cache=["conv4a"]).activations["conv4a"][:, CHANNEL]
    np.testing.assert_allclose(mean_red.values, act.mean((1, 2)).double().numpy(), rtol=1e-6)
    assert mean_red.best == int(np.argmax(mean_red.values))
    assert mean_red.grid(upscale=2).shape == (128, 2 * 128 + 2, 3)


def test_ascent_finds_the_planted_position(planted):
    vis = visualise(planted, Objective(site="conv4a", channel=CHANNEL, position=BLOCK), seed=1, **FAST)
    red = redness(vis.images)
    inside = np.zeros((64, 64), dtype=bool)
    inside[8 * BLOCK[0]:8 * BLOCK[0] + 8, 8 * BLOCK[1]:8 * BLOCK[1] + 8] = True
    assert (red[:, inside].mean(1) > 0.5).all()
    assert (red[:, inside].mean(1) > red[:, ~inside].mean(1) + 0.4).all()
    assert (vis.values > GREY_VALUE + 1).all()


def test_same_seed_same_images_other_seed_other_images(planted, mean_red):
    again = visualise(planted, Objective(site="conv4a", channel=CHANNEL), seed=3, **FAST)
    assert np.array_equal(again.images, mean_red.images) and np.array_equal(again.trace, mean_red.trace)
    other = visualise(planted, Objective(site="conv4a", channel=CHANNEL), seed=4, restarts=2, steps=3, colour=COLOUR)
    assert not np.array_equal(other.images, mean_red.images[:, :, :])


def test_policy_and_threads_are_left_as_they_were(planted):
    planted.train()
    threads = torch.get_num_threads()
    visualise(planted, Objective(site="conv4a", channel=CHANNEL), restarts=1, steps=2, colour=COLOUR)
    assert planted.training and all(p.grad is None for p in planted.parameters())
    assert torch.get_num_threads() == threads
    planted.eval()


def test_fn_objective_and_dataset_comparison(planted):
    levels = sample_levels("calibration", 6, seed=0)
    vis = visualise(planted, Objective(site="conv4a", fn=lambda act: act[:, CHANNEL].amax((1, 2))), levels=levels,
                    top_n=4, restarts=1, steps=2, colour=COLOUR)
    maps = run(planted, render(levels), cache=["conv4a"]).activations["conv4a"][:, CHANNEL]
    np.testing.assert_allclose(vis.dataset_values, maps.amax((1, 2)).double().numpy(), rtol=1e-6)
    assert vis.dataset_best == pytest.approx(vis.dataset_values.max()) and vis.top is None
    channel = visualise(planted, Objective(site="conv4a", channel=CHANNEL), levels=levels, top_n=4, restarts=1,
                        steps=1, colour=COLOUR)
    assert channel.top.channel == CHANNEL and len(channel.top.levels) == 4
    np.testing.assert_allclose(channel.dataset_values, maps.mean((1, 2)).double().numpy(), rtol=1e-6)
    figure = channel.figure()  # the image above the four dataset patches, 128 px tiles, 8 white rows between
    assert figure.shape == (128 + 8 + 128, 4 * 128 + 3 * 2, 3) and (figure[128:136] == 255).all()
    assert np.array_equal(figure[136:], channel.top.grid) and vis.figure().shape == (128, 4 * 128 + 3 * 2, 3)


def test_colour_decorrelation_is_a_square_root_of_the_covariance():
    rng = np.random.default_rng(1)
    mixing = np.array([[0.9, 0.1, 0.0], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    frames = np.clip(rng.normal(size=(4, 64, 64, 3)) @ mixing.T * 40 + 128, 0, 255).astype(np.uint8)
    transform = colour_decorrelation(frames)
    cov = np.cov(frames.reshape(-1, 3).astype(float).T / 255)
    scale = np.linalg.norm(transform, axis=0).max()
    assert scale == pytest.approx(1.0)
    ratio = cov / (transform @ transform.T)
    np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-9)


@pytest.mark.parametrize("objective, error, words", [
    (dict(site="conv4", channel=0), UnknownSiteError, "did you mean 'conv4a'"),
    (dict(site="conv4a", channel=32), InterventionError, "out of range"),
    (dict(site="conv4a", channel=0, position=(8, 0)), InterventionError, "outside"),
    (dict(site="fc1", channel=0, position=(0, 0)), InterventionError, "flat"),
    (dict(site="conv4a", fn=lambda act: act.sum()), VisualisationError, "one value per image"),
])  # fmt: skip
def test_bad_objectives_are_named_before_any_ascent(planted, objective, error, words):
    with pytest.raises(error, match=words):
        visualise(planted, Objective(**objective), restarts=1, steps=1, colour=COLOUR)


@pytest.mark.parametrize("objective, kwargs, words", [
    (dict(site="conv4a", channel=0, fn=torch.sum), {}, "exactly one"),
    (dict(site="conv4a"), {}, "exactly one"),
    (dict(site="conv4a", channel="3"), {}, "int index"),
    (dict(site="conv4a", channel=1, position=(1,)), {}, "pair"),
    (dict(site="conv4a", channel=1), dict(restarts=0), "restarts"),
    (dict(site="conv4a", channel=1), dict(steps=2.5), "steps"),
    (dict(site="conv4a", channel=1), dict(lr=float("nan")), "lr"),
    (dict(site="conv4a", channel=1), dict(colour=np.ones((3, 3))), "invertible"),
])  # fmt: skip
def test_bad_requests_raise_visualisation_errors(planted, objective, kwargs, words):
    with pytest.raises(VisualisationError, match=words) as info:
        visualise(planted, Objective(**objective), **{"restarts": 1, "steps": 1, "colour": COLOUR, **kwargs})
    assert isinstance(info.value, HarnessError) and isinstance(info.value, ValueError)


def test_colour_decorrelation_refuses_float_frames():
    with pytest.raises(VisualisationError, match="uint8"):
        colour_decorrelation(np.zeros((1, 64, 64, 3)))
