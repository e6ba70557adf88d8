"""Named activation sites: where in a policy an activation is read or edited.

Naming scheme
-------------
A site is the output of one submodule, named after the layer that computes it:

* ``conv3a``: the conv output before its ReLU (where SAEs are hooked), ``conv3a.relu``: after the ReLU;
* ``pool3``, ``fc1``, ``fc1.relu``, ...; the heads are always ``logits`` and ``value`` (value shaped ``(1,)``).
* IMPALA: ``stack1.conv``, ``stack1.pool``, ``stack1.res1.input.relu``, ``stack1.res1.conv0``,
  ``stack1.res1.conv0.relu``, ``stack1.res1.conv1``, ``stack1.res1`` (block output, after the skip),
  ``stack3.relu``, ``fc``, ``fc.relu``, ``logits``, ``value``.
* Roles, names for what a site is for that each architecture resolves to its own site: ``mid_conv``,
  ``last_conv``, ``last_conv.relu``, ``pre_head`` (:mod:`harness.policy.roles`); ``Site("last_conv")`` is
  ``conv4a`` in CustomCNN and ``stack3.res2`` in IMPALA.

Each model declares its sites in a ``SITES`` mapping (site name -> submodule path).  :class:`Site` refers to a
site and optionally selects channels and/or spatial positions of it.

Extending
---------
Any :class:`HookPoint` registered anywhere under the model is a site too, under the name it was built with.  An
SAE spliced into ``conv3a`` adds its own sites by owning ``HookPoint("conv3a.sae.latents")`` (and so on),
calling it on its latents in ``forward`` and being registered as a submodule of the policy.
"""

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import InterventionError, UnknownSiteError
from harness.policy.models import FRAME_SHAPE
from harness.policy.roles import ROLE_NAMES, is_role, role_site

__all__ = ["HookPoint", "Site", "hooked", "selection_mask", "select", "site_module", "site_modules", "sites"]


class HookPoint(nn.Identity):
    """A parameter-free identity module whose output is the site ``name``; how new sites are added."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def extra_repr(self) -> str:
        return repr(self.name)


@dataclass(frozen=True)
class Site:
    """A site name, optionally restricted to ``channels`` (indices) and/or ``positions`` ((row, col) pairs).

    With both given the selection is every listed channel at every listed position.  For flat sites
    (``fc1``, ``logits``) ``channels`` indexes features and ``positions`` must be ``None``.
    """

    name: str
    _: KW_ONLY
    channels: tuple[int, ...] | None = None
    positions: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        for field, example in (("channels", "(5,)"), ("positions", "((2, 3),)")):
            if isinstance(getattr(self, field), int | str):
                raise InterventionError(f"Site {self.name!r}: {field} must be a sequence, e.g. {field}={example}")
        if self.channels is not None:
            channels = tuple(_index(self.name, "channels", c) for c in self.channels)
            if not channels or min(channels) < 0 or len(set(channels)) != len(channels):
                raise InterventionError(
                    f"Site {self.name!r}: channels must be distinct non-negative indices, got {self.channels!r}"
                )
            object.__setattr__(self, "channels", channels)
        if self.positions is not None:
            positions = tuple((_index(self.name, "positions", r), _index(self.name, "positions", c))
                              for r, c in self.positions)
            if not positions or min(min(p) for p in positions) < 0 or len(set(positions)) != len(positions):
                raise InterventionError(
                    f"Site {self.name!r}: positions must be distinct (row, col) pairs >= 0, got {self.positions!r}"
                )
            object.__setattr__(self, "positions", positions)



def _index(site: str, field: str, value: object) -> int:
    """An index as given, never rounded: 1.7 is refused rather than silently read as 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InterventionError(f"Site {site!r}: {field} must be integer indices, got {value!r}")
    return int(value)

def site_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every site of ``model``: its declared ``SITES`` plus any :class:`HookPoint` under it."""
    declared = getattr(model, "SITES", None)
    if declared is None:
        raise UnknownSiteError(f"{type(model).__name__} declares no SITES; use a harness model or add SITES")
    table = {name: model.get_submodule(path) for name, path in declared.items()}
    for module in model.modules():
        if isinstance(module, HookPoint):
            if module.name in table:
                raise UnknownSiteError(f"two sites are named {module.name!r}; give the HookPoint another name")
            table[module.name] = module
    return table


def _resolve(model: nn.Module, table: dict[str, nn.Module], name: str) -> nn.Module:
    """The module of site ``name``, or of the site a role names (:mod:`harness.policy.roles`); an unknown name
    raises :class:`UnknownSiteError` with the nearest names, roles included."""
    if name in table:
        return table[name]
    if is_role(name):
        return table[role_site(model, name)]
    module = dict(model.named_modules()).get(name)
    aliases = [site for site, m in table.items() if module is not None and m is module]
    near = aliases or difflib.get_close_matches(name, [*table, *ROLE_NAMES], n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(map(repr, near))}?" if near else f"valid sites: {', '.join(table)}"
    raise UnknownSiteError(f"unknown site {name!r}; {hint}")


def site_module(model: nn.Module, name: str) -> nn.Module:
    """The module behind site (or role) ``name`` of ``model``; an unknown name raises :class:`UnknownSiteError`
    with the nearest names."""
    return _resolve(model, site_modules(model), name)


@contextmanager
def hooked(model: nn.Module, hooks: Sequence[tuple[str, Callable[[Tensor], Tensor]]]) -> Iterator[None]:
    """Install forward hooks ``(site name, fn(output) -> new output)`` in order; remove them all on exit.

    Hooks on the same site run in the given order, each seeing the previous one's output.  Removal happens in
    ``finally``, so an exception inside the forward pass leaves the model clean.
    """
    table = site_modules(model)
    modules = [_resolve(model, table, name) for name, _ in hooks]
    handles = []
    try:
        for module, (_, fn) in zip(modules, hooks, strict=True):
            handles.append(module.register_forward_hook(lambda _m, _a, out, fn=fn: fn(out)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def sites(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Site names in forward order with their per-example shapes for a 64x64 frame.

    Sites whose module does not run in the forward pass are left out (they have no shape).
    """
    shapes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str) -> Callable[[Tensor], Tensor]:
        def record(out: Tensor) -> Tensor:
            shapes[name] = tuple(out.shape[1:])
            return out

        return record

    frame = torch.zeros((1, FRAME_SHAPE[2], *FRAME_SHAPE[:2]), device=next(model.parameters()).device)
    with hooked(model, [(name, recorder(name)) for name in site_modules(model)]), torch.no_grad():
        model(frame)
    return shapes


@lru_cache(maxsize=256)
def selection_mask(site: Site, shape: tuple[int, ...]) -> Tensor | None:
    """Boolean mask of the units ``site`` selects in one example's activation of ``shape``; ``None``: all.

    Raises :class:`InterventionError` when a channel or position lies outside ``shape``.
    """
    if site.channels is None and site.positions is None:
        return None
    if site.channels is not None and max(site.channels) >= shape[0]:
        raise InterventionError(
            f"site {site.name!r} has {shape[0]} channels; channel {max(site.channels)} is out of range"
        )
    channels = torch.zeros(shape[0], dtype=torch.bool)
    channels[list(site.channels) if site.channels is not None else slice(None)] = True
    if site.positions is None:
        return channels.view(-1, *(1,) * (len(shape) - 1)).expand(shape)
    if len(shape) != 3:
        raise InterventionError(f"site {site.name!r} is flat (shape {shape}); select features with channels only")
    bad = [p for p in site.positions if p[0] >= shape[1] or p[1] >= shape[2]]
    if bad:
        raise InterventionError(f"site {site.name!r} is {shape[1]}x{shape[2]}; positions {bad} are outside it")
    positions = torch.zeros(shape[1:], dtype=torch.bool)
    rows, cols = zip(*site.positions, strict=True)
    positions[list(rows), list(cols)] = True
    return channels[:, None, None] & positions


def select(site: Site, act: Tensor) -> Tensor:
    """The selected part of a batch of activations ``(N, *shape)``, compact.

    Shapes: full site ``(N, *shape)``; channels only ``(N, k, H, W)`` (or ``(N, k)`` for flat sites);
    positions only ``(N, C, P)``; both ``(N, k, P)``, positions in the order given.
    """
    selection_mask(site, tuple(act.shape[1:]))  # validates the selection against the shape
    if site.channels is not None:
        act = act[:, list(site.channels)]
    if site.positions is not None:
        rows, cols = zip(*site.positions, strict=True)
        act = act[:, :, list(rows), list(cols)]
    return act
