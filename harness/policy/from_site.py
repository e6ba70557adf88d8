"""Running a policy from one site onward: the layers before the site are skipped, so many interventions at a late
site (each conv4a channel zeroed in turn, hundreds of random channel sets for a null) cost only the layers after it.

    acts = run(policy, frames, cache=["conv4a"]).activations["conv4a"]            # one full pass
    zero = Zero(site=Site("conv4a", channels=(6,)))
    run_from(policy, "conv4a", acts, interventions=[zero]).probs                 # the same as
    run(policy, frames, interventions=[zero]).probs                               # this, at a fraction of the cost

How: a forward pass on one blank frame records when each module starts and ends.  For the duration of the run,
every module whose one call ends before the site's module starts, and the site's module itself, is replaced by a
stub that returns zeros of the shape it gave; the site's output is then set to ``activations`` by a
:class:`~harness.policy.interventions.Patch`, so the runner's fired-check still applies, and the interventions
given run after it.  A module that also runs after the site (a shared dropout) is not stubbed.  An intervention
or cache at a site that runs before ``site`` would only see stub zeros, so it is refused; so is a site that values
computed before it can bypass (inside a residual block, an SAE latent spliced with its error term): one
observation run with two different random stubs must give the same logits.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import count

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import InterventionError
from harness.policy.interventions import Intervention, Patch
from harness.policy.models import FRAME_SHAPE, preprocess
from harness.policy.runner import RunResult, run
from harness.policy.sites import Site, site_module

__all__ = ["run_from"]


def run_from(policy: nn.Module, site: str, activations: Tensor, *, interventions: Sequence[Intervention] = (),
             cache: Sequence[str | Site] = (), batch_size: int = 256) -> RunResult:
    """:func:`~harness.policy.runner.run` from ``site`` onward: ``activations`` ``(N, *shape)`` stand for the
    site's output on N observations (cached by an earlier ``run``), ``interventions`` and ``cache`` apply at
    ``site`` (after ``activations`` are set) or later sites.  Returns what ``run`` on those observations would,
    up to float rounding."""
    module = site_module(policy, site)
    if module._forward_hooks:
        raise InterventionError(f"site {site!r} already has forward hooks (an SAE spliced there?); they would run "
                                "before run_from sets its activations and be overwritten; use run()")
    stubs, downstream = _schedule(policy, module)  # stubs: the site's module included
    for name in [iv.site.name for iv in interventions] + [s.name if isinstance(s, Site) else s for s in cache]:
        if site_module(policy, name) is not module and site_module(policy, name) not in downstream:
            raise InterventionError(f"site {name!r} does not run after {site!r}, which run_from starts at, so it "
                                    "would see no real activations; intervene there with run(), or start earlier")
    _check_cut(policy, site, stubs, activations)
    frames = np.zeros((len(activations), *FRAME_SHAPE), np.uint8)
    with _stubbed(stubs):
        return run(policy, frames, interventions=[Patch(site=Site(site), source=activations), *interventions],
                   cache=cache, batch_size=batch_size)


def _schedule(policy: nn.Module, module: nn.Module) -> tuple[dict[nn.Module, Tensor], set[nn.Module]]:
    """On one blank frame: the modules called once and ending before ``module`` starts, with their tensor output
    (a stub's template; ``module`` included), and the modules that start only after ``module`` ends."""
    clock, starts, ends, outputs = count(), {}, {}, {}

    def started(m: nn.Module, _args) -> None:
        starts.setdefault(m, []).append(next(clock))

    def ended(m: nn.Module, _args, out) -> None:
        ends.setdefault(m, []).append(next(clock))
        outputs[m] = out

    handles = [h for m in policy.modules() if m is not policy
               for h in (m.register_forward_pre_hook(started), m.register_forward_hook(ended))]
    device = next(policy.parameters()).device
    was_training = policy.training
    try:
        policy.eval()
        with torch.no_grad():
            policy(preprocess(np.zeros((1, *FRAME_SHAPE), np.uint8)).to(device))
    finally:
        policy.train(was_training)
        for handle in handles:
            handle.remove()
    if len(starts.get(module, [])) != 1:
        raise InterventionError(f"run_from needs a site whose module runs once per forward pass; {module} ran "
                                f"{len(starts.get(module, []))} times")
    begin, end = starts[module][0], ends[module][0]
    stubs = {m: outputs[m] for m, times in ends.items()
             if isinstance(outputs[m], Tensor) and (m is module or (len(times) == 1 and times[0] < begin))}
    return stubs, {m for m, times in starts.items() if min(times) > end}


def _check_cut(policy: nn.Module, site: str, stubs: dict[nn.Module, Tensor], activations: Tensor) -> None:
    """Refuse a site that values computed before it can bypass (a residual skip around it, an SAE's error term):
    on one observation, stubs that return two different random fills must give the same logits."""
    frame = np.zeros((1, *FRAME_SHAPE), np.uint8)
    logits = []
    for seed in (1, 2):
        with _stubbed(stubs, torch.Generator().manual_seed(seed)):
            logits.append(run(policy, frame, interventions=[Patch(site=Site(site), source=activations[:1])]).logits)
    if not torch.equal(*logits):
        raise InterventionError(
            f"values computed before {site!r} reach the outputs without passing through it (a residual skip around "
            "it, or an SAE spliced there with its error term), so run_from cannot start there; start at a site "
            "every path goes through (a block's output: conv4a, stack3.res2, fc.relu ...) or use run()"
        )


@contextmanager
def _stubbed(templates: dict[nn.Module, Tensor], fill: torch.Generator | None = None) -> Iterator[None]:
    """Each module of ``templates`` returns zeros (or random values from ``fill``) shaped like its template, batch
    from its input, instead of computing; the modules are restored on exit."""
    try:
        for m, template in templates.items():
            m.forward = _stub(template, fill)
        yield
    finally:
        for m in templates:
            m.__dict__.pop("forward", None)


def _stub(template: Tensor, fill: torch.Generator | None):
    def forward(first: Tensor, *_args, **_kwargs) -> Tensor:
        shape = (len(first), *template.shape[1:])
        if fill is None:  # one zero broadcast to the shape: nothing to allocate, whatever the batch
            return template.new_zeros((1,) * len(shape)).expand(shape)
        return torch.randn(shape, generator=fill, dtype=template.dtype).to(template.device)

    return forward
