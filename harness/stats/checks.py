"""Input checks shared by the statistics: each returns its argument in a canonical form (int, float, 1-D array,
generator) or raises :class:`~harness.errors.StatisticsError` naming the argument and what to pass instead."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from harness.errors import StatisticsError


def is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_int(value: object, name: str, *, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise StatisticsError(f"{name} must be an int, got {value!r} ({type(value).__name__}); pass a whole number")
    if value < minimum:
        raise StatisticsError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_real(value: object, name: str, *, positive: bool = False) -> float:
    if not is_number(value) or not math.isfinite(value) or (positive and value <= 0):
        kind = "a positive finite number" if positive else "a finite number"
        raise StatisticsError(f"{name} must be {kind}, got {value!r}")
    return float(value)


def check_unit(value: object, name: str, *, example: str, closed: bool = False) -> float:
    """A number in (0, 1), or in [0, 1] when ``closed``."""
    inside = is_number(value) and ((0 <= value <= 1) if closed else (0 < value < 1))
    if not inside:
        bounds = "in [0, 1]" if closed else "strictly between 0 and 1"
        raise StatisticsError(f"{name} must be a number {bounds}, got {value!r}; e.g. {name}={example}")
    return float(value)


def check_confidence(confidence: object) -> float:
    return check_unit(confidence, "confidence", example="0.95")


def check_alpha(alpha: object) -> float:
    return check_unit(alpha, "alpha", example="0.05")


def check_power(power: object) -> float:
    return check_unit(power, "power", example="0.8")


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise StatisticsError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value  # type: ignore[return-value]


def check_unit_name(unit: object) -> str:
    """The name of the independent unit a statistic counts (levels, pairs, episodes, latents...)."""
    if not isinstance(unit, str) or not unit.strip() or not unit.replace(" ", "").replace("-", "").isalpha():
        raise StatisticsError(f"unit must name the independent units in words, e.g. unit='episodes', got {unit!r}")
    return unit


def as_vector(values: object, name: str, *, min_size: int = 1) -> np.ndarray:
    """A 1-D array of finite floats, one value per unit."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise StatisticsError(f"{name} must be one-dimensional (one value per level), got shape {array.shape}")
    if array.size < min_size:
        raise StatisticsError(f"{name} has {array.size} values but needs at least {min_size}; collect more levels")
    if array.dtype.kind not in "iuf":
        raise StatisticsError(f"{name} must hold numbers, got dtype {array.dtype}; pass floats, one per level")
    array = array.astype(float)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise StatisticsError(f"{name} holds NaN or infinite values (first at index {bad[0]}); drop or fix those")
    return array


def as_binary(values: object, name: str) -> np.ndarray:
    """A non-empty 1-D boolean array; 0/1 numbers are accepted."""
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise StatisticsError(f"{name} must be a non-empty 1-D array, one outcome per level; got shape {array.shape}")
    if array.dtype == bool:
        return array
    if array.dtype.kind in "iuf" and np.all((array == 0) | (array == 1)):
        return array.astype(bool)
    raise StatisticsError(f"{name} must hold booleans or 0/1 (one outcome per level); found other values or NaN")


def as_indices(values: object, name: str, *, size: int, min_size: int) -> np.ndarray:
    """Distinct integer indices in [0, size)."""
    array = np.asarray(values)
    if array.size == 0 and min_size == 0:
        return np.empty(0, dtype=np.intp)
    if array.ndim != 1 or array.size < min_size or array.dtype.kind not in "iu":
        raise StatisticsError(f"{name} must be a 1-D sequence of at least {min_size} int indices, got {values!r}")
    if array.min() < 0 or array.max() >= size:
        raise StatisticsError(f"{name} must lie in [0, {size}), got {values!r}")
    if np.unique(array).size != array.size:
        raise StatisticsError(f"{name} must not repeat an index, got {values!r}")
    return array.astype(np.intp)


def rng_from(seed: object) -> np.random.Generator:
    if seed is None or isinstance(seed, (bool, float)):
        raise StatisticsError(f"seed must be an int or a numpy Generator, got {seed!r}; pass a fixed int, e.g. seed=0")
    try:
        return np.random.default_rng(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise StatisticsError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}") from error
