"""A claim's declaration (the ``claim`` marker's keywords) and whether it applies to the policy under test.

``architectures=["custom_cnn", ...]`` (names of :data:`~harness.policy.models.ARCHITECTURES`; default all) says
which architectures a claim is about; ``saes=["last_conv"]`` (sites or roles, :mod:`harness.policy.roles`) the SAEs
it needs.  :func:`applied` decides, once the policy is loaded, whether the claim applies to it, and names the
sites the claim declared by role after the ones they resolve to::

    spec, reason = applied(spec, policy, sae_sites={"conv4a"})  # reason: why it does not apply, or None
"""

import math
import numbers
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from harness.claims.records import BOUND_KEYWORDS, FAMILIES, Bound
from harness.errors import ClaimError
from harness.policy.models import ARCHITECTURES, architecture_of
from harness.policy.roles import ROLE_NAMES, is_role, role_site

__all__ = ["CONFIRMATION", "UNITS", "ClaimSpec", "applied"]

CONFIRMATION = "confirmation"
"""The seed range every confirmatory claim is tested on."""
UNITS = ("levels", "pairs", "episodes", "latents", "restarts", "states", "channels")
"""What a claim's ``n`` may count (``unit=``, default ``"levels"``)."""
OPTIONAL = ("family", "selected_on", "unit", "architectures", "saes")
"""The declaration's optional keywords."""


def _names(value: Any) -> Any:
    """A name or names as a tuple (``"conv4a"`` -> ``("conv4a",)``); anything else as given, for validation."""
    return (value,) if isinstance(value, str) else tuple(value) if isinstance(value, Iterable) else value


def _check_applies(architectures: Any, saes: Any, problem: Callable[[str], ClaimError]) -> None:
    if architectures is not None:
        if not isinstance(architectures, tuple) or not architectures:
            raise problem(f"architectures must name at least one of {sorted(ARCHITECTURES)}, got {architectures!r}")
        unknown = [a for a in architectures if a not in ARCHITECTURES]
        if unknown:
            raise problem(f"architectures {unknown} are unknown; use names of {sorted(ARCHITECTURES)} (or declare "
                          "none: the claim applies to all)")
    if not isinstance(saes, tuple) or not all(isinstance(s, str) and s for s in saes):
        raise problem(f"saes must name the sites or roles ({', '.join(ROLE_NAMES)}) the claim needs an SAE on, got "
                      f"{saes!r}")


@dataclass(frozen=True, kw_only=True)
class ClaimSpec:
    """A claim's declaration: what it states, about which sites, which bound, on which sample (``n`` counted in
    ``unit``), in which family, and (``selected_on``) the seed range its unit was chosen on, if it chose one;
    ``architectures`` it applies to (None: all) and the sites or roles it needs an SAE on (``saes``)."""

    id: str
    statement: str
    sites: tuple[str, ...]
    metric: str
    bound: Bound
    seeds: str
    n: int
    family: str = "confirmatory"
    selected_on: str | None = None
    unit: str = "levels"
    architectures: tuple[str, ...] | None = None
    saes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        def problem(text: str) -> ClaimError:
            return ClaimError(f"claim {self.id!r}: {text}")

        if not isinstance(self.id, str) or not self.id or any(c.isspace() for c in self.id):
            raise ClaimError(f"claim id {self.id!r} must be a non-empty string without spaces")
        for name in ("statement", "metric", "seeds"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise problem(f"{name} must be a non-empty string")
        if not isinstance(self.sites, tuple) or not self.sites or not all(isinstance(s, str) and s for s in self.sites):
            raise problem(f"sites must name at least one site, got {self.sites!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise problem(f"n must be a positive int (the planned number of levels), got {self.n!r}")
        if self.family not in FAMILIES:
            raise problem(f"family {self.family!r} is unknown; use one of {FAMILIES}")
        if self.family == "confirmatory" and self.seeds != CONFIRMATION:
            raise problem(
                f"a confirmatory claim is tested on seeds={CONFIRMATION!r}, not {self.seeds!r} (choose units on "
                "selected_on='selection'); declare family='exploratory' to test on another range"
            )
        if self.unit not in UNITS:
            raise problem(f"unit {self.unit!r} is unknown; use one of {UNITS}")
        if not math.isfinite(self.bound.threshold):
            raise problem(f"the bound must be a finite number, got {self.bound.threshold!r}")
        if self.bound.direction == "equivalence" and self.bound.threshold <= 0:
            raise problem(f"equivalent_within needs a positive margin, got {self.bound.threshold!r}")
        _check_applies(self.architectures, self.saes, problem)
        if self.selected_on is not None:
            if not isinstance(self.selected_on, str) or not self.selected_on.strip():
                raise problem(f"selected_on must name a seed range, got {self.selected_on!r}")
            if self.selected_on == self.seeds:
                raise problem(
                    f"selected_on and seeds are both {self.seeds!r}; choose the unit on one range and test it on "
                    "another (e.g. selected_on='selection', seeds='confirmation')"
                )

    @property
    def seed_ranges(self) -> tuple[str, ...]:
        """The ranges this claim may draw levels from: its ``seeds``, then ``selected_on`` if declared."""
        return (self.seeds,) if self.selected_on is None else (self.seeds, self.selected_on)

    @classmethod
    def declare(cls, **declaration: Any) -> "ClaimSpec":
        """Build from the marker's keywords, naming the claim and what is wrong when the declaration is bad."""
        name = repr(declaration.get("id", "<no id>"))
        bounds = {k: declaration.pop(k) for k in BOUND_KEYWORDS if k in declaration}
        if len(bounds) != 1:
            raise ClaimError(
                f"claim {name}: declare exactly one bound of {sorted(BOUND_KEYWORDS)}, got {sorted(bounds) or 'none'}"
            )
        ((keyword, threshold),) = bounds.items()
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise ClaimError(f"claim {name}: {keyword} must be a number, got {threshold!r}")
        required = ("id", "statement", "sites", "metric", "seeds", "n")
        missing = [k for k in required if k not in declaration]
        unknown = sorted(set(declaration) - {*required, *OPTIONAL})
        if missing or unknown:
            problems = [f"{label} {', '.join(keys)}" for label, keys in (("missing", missing), ("unknown", unknown))
                        if keys]  # fmt: skip
            raise ClaimError(
                f"claim {name}: {'; '.join(problems)} (a claim declares {', '.join(required)}, one bound, and "
                f"optionally {', '.join(OPTIONAL)})"
            )
        names = {key: _names(declaration.pop(key)) for key in ("sites", "architectures", "saes") if key in declaration}
        return cls(**declaration, **names, bound=Bound(direction=BOUND_KEYWORDS[keyword], threshold=float(threshold)))


def _resolved(name: str, policy: nn.Module) -> str:
    """A declared site with its role (the longest one it starts with) replaced by the site it resolves to in
    ``policy``: ``last_conv.sae.latents:selected`` -> ``conv4a.sae.latents:selected``."""
    site, colon, units = name.partition(":")
    role = max((r for r in ROLE_NAMES if site == r or site.startswith(r + ".")), key=len, default=None)
    return name if role is None else role_site(policy, role) + site[len(role):] + colon + units


def applied(spec: ClaimSpec, policy: nn.Module, *, sae_sites: Collection[str]) -> tuple[ClaimSpec, str | None]:
    """``spec`` with its sites named as they resolve in ``policy`` (as declared when the claim is about other
    architectures), and why it does not apply to ``policy`` (its architecture is not one the claim declares, or an
    SAE it needs is not among ``sae_sites``), or None.  A role that does not resolve in ``policy`` raises
    :class:`~harness.errors.UnknownSiteError`."""
    architecture = architecture_of(policy)
    if spec.architectures is not None and architecture not in spec.architectures:
        return spec, f"applies to {', '.join(spec.architectures)}; the policy under test is {architecture}"
    resolved = replace(spec, sites=tuple(_resolved(name, policy) for name in spec.sites))
    for need in spec.saes:
        site = role_site(policy, need) if is_role(need) else need
        if site not in sae_sites:
            named = f"{need} ({site} in this {architecture} policy)" if site != need else site
            return resolved, (f"needs an SAE on {named}, and none is loaded for this policy: pass --sae {site}=PATH "
                              "(the ini's heist_saes go with its heist_policy only)")
    return resolved, None
