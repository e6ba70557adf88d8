"""Site roles: a site named by what it is for, so one claim runs on every architecture.

A role is a site name that every architecture resolves to its own site (:func:`role_site`); anywhere a site name
is taken (``Site("last_conv", channels=(6,))``, ``run(policy, frames, cache=["mid_conv"])``, ``AddDirection``,
``Objective``) a role may stand instead, and results are keyed by the name given::

    acts = run(policy, frames, cache=["last_conv"]).activations["last_conv"]  # conv4a, or IMPALA's stack3.res2

=================  ===============  ===============  ==========================================================
role               custom_cnn       impala           what it is
=================  ===============  ===============  ==========================================================
``mid_conv``       ``conv3a``       ``stack2.res2``  the middle conv block's output before its ReLU, 32 x 16 x 16
``last_conv``      ``conv4a``       ``stack3.res2``  the last conv block's output before its ReLU, 32 x 8 x 8
``last_conv.relu`` ``conv4a.relu``  ``stack3.relu``  the same after the ReLU, the last map before the flatten
``pre_head``       ``fc2.relu``     ``fc.relu``      the vector the policy and value heads read (512; 256)
=================  ===============  ===============  ==========================================================

``bilinear_cnn`` has CustomCNN's conv stack and site names, so its conv roles are CustomCNN's; its ``pre_head`` is
its last bilinear layer (``fc1`` with the default single layer), whose product the heads read.

Why these IMPALA sites are the counterparts: IMPALA's three stacks each end in two residual blocks, and a stack's
output is its second block's output (``stackN.res2``, after the skip).  ``stack3.res2`` is the last spatial map
the network computes, as ``conv4a`` is CustomCNN's, with the same shape (32 channels at 8 x 8) and also before
the ReLU that the fully connected layer reads after (``stack3.relu``, as ``conv4a.relu``; CustomCNN then pools to
4 x 4, IMPALA flattens the 8 x 8 map).  ``stack2.res2`` is the map one block earlier, at 16 x 16 like ``conv3a``.
IMPALA has no ReLU of ``stack2.res2`` (``stack3.conv`` reads it directly), so there is no ``mid_conv.relu``.

A model outside :data:`~harness.policy.models.ARCHITECTURES`, or of an architecture without a table here (a planted
model with CustomCNN's site names, a new architecture), resolves a role to the one site it declares among the
role's sites in the tables; none or several is an :class:`~harness.errors.UnknownSiteError` naming the roles and
architectures.
"""

from collections.abc import Callable, Mapping
from types import MappingProxyType

from torch import nn

from harness.errors import CheckpointError, UnknownSiteError
from harness.policy.models import ARCHITECTURES, architecture_of

__all__ = ["ROLES", "ROLE_NAMES", "is_role", "role_site"]

def _last_bilinear_layer(model: nn.Module) -> str:
    """BilinearCNN's last bilinear layer (``fc1`` with the default one layer): its layer count varies."""
    return model.bilinear_layers[-1]


ROLES: Mapping[str, Mapping[str, str | Callable[[nn.Module], str]]] = MappingProxyType({
    "custom_cnn": MappingProxyType(
        {"mid_conv": "conv3a", "last_conv": "conv4a", "last_conv.relu": "conv4a.relu", "pre_head": "fc2.relu"}
    ),
    "impala": MappingProxyType(
        {"mid_conv": "stack2.res2", "last_conv": "stack3.res2", "last_conv.relu": "stack3.relu", "pre_head": "fc.relu"}
    ),
    "bilinear_cnn": MappingProxyType(
        {"mid_conv": "conv3a", "last_conv": "conv4a", "last_conv.relu": "conv4a.relu",
         "pre_head": _last_bilinear_layer}
    ),
})  # fmt: skip
"""Role -> site, per architecture (see the module docstring for why each IMPALA site is the counterpart); a
function of the model where the site depends on the checkpoint (BilinearCNN's layer count)."""

ROLE_NAMES = tuple(dict.fromkeys(role for table in ROLES.values() for role in table))
"""Every role, in depth order."""


def is_role(name: str) -> bool:
    """Whether ``name`` is a role (``"last_conv"``) rather than a site name."""
    return name in ROLE_NAMES


def role_site(model: nn.Module, role: str) -> str:
    """The site that ``role`` names in ``model``: ``role_site(ImpalaCNN(), "last_conv") == "stack3.res2"``.

    Raises :class:`~harness.errors.UnknownSiteError` naming the roles and architectures when ``role`` is no role or
    does not resolve in this model."""
    if role not in ROLE_NAMES:
        raise UnknownSiteError(f"{role!r} is no role; roles: {', '.join(ROLE_NAMES)}")
    try:
        architecture = architecture_of(model)
    except CheckpointError:
        architecture = None
    table = ROLES.get(architecture)
    if table is not None and role in table:
        site = table[role]
        return site(model) if callable(site) else site
    declared = getattr(model, "SITES", {})
    named = {name: t[role] for name, t in ROLES.items() if isinstance(t.get(role), str)}
    found = sorted({site for site in named.values() if site in declared})
    if len(found) == 1:
        return found[0]
    which = f"architecture {architecture}" if architecture else f"none of the architectures {sorted(ARCHITECTURES)}"
    sites = ", ".join(f"{site} in {name}" for name, site in named.items())
    raise UnknownSiteError(
        f"role {role!r} does not resolve in {type(model).__name__} ({which}): the role is {sites}, and this model "
        f"declares {'several' if found else 'none'} of those sites; roles: {', '.join(ROLE_NAMES)}; add the architecture "
        "to harness.policy.roles.ROLES, or name a site"
    )
