"""How the command line's strings become our parameters' values, and how its arguments are
shown: typer's own conversion, made lighter (`Command`, `Group`; cli.py's commands use them).

typer 0.29 converts each option's string through a pydantic TypeAdapter built on every run:
importing pydantic and building them was about 35 ms of each run. Our parameters (str, int,
bool, Path and lists of them) are converted directly instead, through typer's own hook.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a valid integer.") from None


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("", "0", "false", "f", "no", "n", "off"):
        return False
    raise typer.BadParameter(f"{value!r} is not a valid boolean.")


#: How our parameters' values are made from the command line's strings.
_CONVERT: dict[object, Callable[[Any], Any]] = {
    str: str, int: _to_int, bool: _to_bool, Path: Path}


@functools.cache
def plain_class() -> type | None:
    """A typer RuntimeParam that converts str, int, bool and Path values (and lists of
    them) directly. typer 0.29 builds a pydantic TypeAdapter for every parameter of the
    command, on every run: importing pydantic and building them was about 35 ms of each
    run (8% of a small capture's whole run), for conversions as simple as int("4"). None
    where typer has no such hook (another version): typer converts as it always did."""
    try:
        from typer._coercion import RuntimeParam
    except ImportError:
        return None

    @dataclass(frozen=True)
    class Plain(RuntimeParam):
        convert: Callable[[Any], Any] = str
        many: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.many:
                return [self.convert(v) for v in value]
            return self.convert(value)

    return Plain


def _plain_runtime_param(descriptor: Any) -> Any | None:
    """The Plain converter of a parameter whose type is one of `_CONVERT`'s (or a list
    of one) and that asks typer for nothing more (a parser, a range, a file to open);
    else None."""
    plain = plain_class()
    annotation = descriptor.annotation
    many = get_origin(annotation) is list
    element = get_args(annotation)[0] if many else annotation
    info = descriptor.parameter_info
    if (plain is None or element not in _CONVERT or descriptor.file_annotation is not None
            or any(getattr(info, name, None) is not None
                   for name in ("parser", "click_type", "min", "max"))):
        return None
    return plain(parameter_info=info, annotation=annotation, convert=_CONVERT[element],
                 many=many)


def _runtime_param(param: Any, typers: Callable[[], Any]) -> Any:
    """A parameter's converter: `_plain_runtime_param`'s where it can, else typer's."""
    runtime = getattr(param, "_runtime_param", None)
    if runtime is None:
        runtime = _plain_runtime_param(param.type_descriptor)
        if runtime is None:
            return typers()
        param._runtime_param = runtime
    return runtime


class _PlainOption(TyperOption):
    def get_runtime_param(self) -> Any:
        return _runtime_param(self, super().get_runtime_param)


class _PlainArgument(TyperArgument):
    """An argument shown as its metavar (``CAPTURE_OR_DIR...``), without braces or the
    Python type (``<list[Path]>``) in the usage line and the help."""

    def get_runtime_param(self) -> Any:
        return _runtime_param(self, super().get_runtime_param)

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        return [self.display_name_raw]


def _plain(param: Any) -> Any:
    """``param`` converted by `_runtime_param` (arguments also shown plainly)."""
    if isinstance(param, TyperArgument):
        param.__class__ = _PlainArgument
    elif isinstance(param, TyperOption):
        param.__class__ = _PlainOption
    return param


class _PlainParams:
    """A command or group whose parameters, its help option too, are `_plain`."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _plain(param)

    def get_help_option(self, ctx: Any) -> Any:
        return _plain(super().get_help_option(ctx))  # type: ignore[misc]


class Command(_PlainParams, TyperCommand):
    pass


class Group(_PlainParams, TyperGroup):
    pass
