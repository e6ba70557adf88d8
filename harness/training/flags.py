"""Command lines built from config dataclasses: one ``--flag`` per field, so that every setting of a run can be
given on the command line that its card records; and the checks every command makes before any work (where its
outputs go)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import TrainingInputError


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, for ``--help``."""
    try:
        body = ast.parse(inspect.getsource(cls)).body[0].body
    except (OSError, TypeError):  # no source shipped: options without help texts
        return {}
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = after.value.value
    return docs


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *,
                     choices: Mapping[str, Sequence[str]] = types.MappingProxyType({})) -> None:
    """One flag per field of the dataclass ``cls`` (``--num-envs`` for ``num_envs``), defaulting to the field's
    default, with the field's docstring as help: ``bool`` fields get ``--x/--no-x``, ``X | None`` fields take an
    ``X``, ``tuple[X, ...]`` fields take any number of ``X`` (none for an empty tuple); ``choices`` by field name."""
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        option, doc = f"--{field.name.replace('_', '-')}", docs.get(field.name, "").replace("%", "%%")
        kind = hints[field.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if kind is bool:
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=field.default, help=doc)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(option, type=typing.get_args(kind)[0], nargs="*", default=field.default, help=doc)
        else:
            parser.add_argument(option, type=kind, default=field.default, help=doc, choices=choices.get(field.name))


def config_from_args(cls: type, args: Mapping[str, object]):
    """An instance of the dataclass ``cls`` from parsed flags named after its fields (lists become tuples)."""
    return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in args.items()})


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Refuse an output location before any work, not after it: ``path`` must not be a folder, its folder must
    exist and be writable (and the file, if it exists).  ``what`` names the option, e.g. ``"--out"``."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        problem = "is a folder; give a file name inside it"
    elif not folder.is_dir():
        problem = f"is in {folder}, which is not an existing folder; create it first"
    elif not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        problem = "cannot be written (no permission)"
    else:
        return
    raise TrainingInputError(f"{what} {path} {problem}")


def at_least(minimum: int):
    """An argparse ``type`` for integers >= ``minimum``, so that ``--seed -1`` is a usage error, not a traceback
    from deep inside numpy after the work has started."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in its message
    return parse
