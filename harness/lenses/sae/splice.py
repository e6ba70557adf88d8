"""Splicing: an SAE replaces its site inside a ``with spliced(policy, sae):`` block, and its latents (and error
term) become sites that interventions reach."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from torch import nn

from harness.errors import SAEError
from harness.lenses.sae.model import SAE
from harness.policy.sites import hooked, sites


@contextmanager
def spliced(policy: nn.Module, sae: SAE, *, error_term: bool = True) -> Iterator[SAE]:
    """Route the output of ``sae.config.site`` through ``sae`` inside the block; yields the SAE.

    The SAE is registered under the policy (so its hook points are sites) and a forward hook on the site replaces
    the output with :meth:`SAE.splice`; both are removed on exit, also when the block raises.  Hooks that
    :func:`harness.policy.runner.run` puts on the site itself run after the splice and see what the network downstream
    sees.  One SAE per site at a time.
    """
    site = sae.config.site
    name = "sae_" + site.replace(".", "_")
    if name in dict(policy.named_children()):
        raise SAEError(f"an SAE is already spliced at {site!r}; leave its spliced() block first")
    shapes = sites(policy)
    policy.add_module(name, sae)
    try:
        with hooked(policy, [(site, partial(sae.splice, error_term=error_term))]):
            shape = shapes.get(site)
            if shape is None or shape[0] != sae.config.channels:
                found = "is not computed in the forward pass" if shape is None else f"is shaped {shape}"
                raise SAEError(f"the SAE takes {sae.config.channels} channels at {site!r}, but that site of "
                               f"{type(policy).__name__} {found}; load the SAE trained on this policy's site")
            yield sae
    finally:
        delattr(policy, name)
