"""Command lines built from config dataclasses: one ``--flag`` per field, so that every setting of a run can be
given on the command line that its card records."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import types
import typing
from collections.abc import Mapping, Sequence


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
