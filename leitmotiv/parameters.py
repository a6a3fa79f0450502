"""Declared parameters: a type, a default and a range, checked from the declaration.

The parameters of every implementation (:mod:`leitmotiv.implementation`) and the
settings (:mod:`leitmotiv.config`) are dataclass fields declared with
:func:`parameter`: the field's annotation is the type, the metadata the range.  One
checker reads both, so a wrong value gets the same message wherever it comes from
(a config file, the environment, Python), naming the key and what it accepts, and
``leitmotiv plugins`` shows the ranges.  This module imports nothing heavy, so the
command line can check settings before it loads any numerics.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bounds:
    """What values a parameter accepts beyond its type.

    Attributes
    ----------
    low, high : float, optional
        Least and greatest number allowed.
    low_open, high_open : bool
        Whether ``low`` (``high``) itself is excluded.
    choices : tuple of str, optional
        The text values allowed (for a parameter that takes text).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None

    def admits(self, value: Any) -> bool:
        """Whether ``value`` (already of the right type) is in range."""
        if isinstance(value, str):
            return self.choices is None or value in self.choices
        if isinstance(value, bool) or value is None:
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (
            value > self.high or (self.high_open and value == self.high)
        )

    def range_text(self) -> str:
        """The numeric range in words: ``>= 1``, ``> 0``, ``in [0.5, 1)``, or nothing."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parameter(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: Sequence[str] | None = None,
) -> Any:
    """Declare a parameter of an implementation: its default and its range.

    Use as a dataclass field, ``n_samples: int = parameter(5000, low=1)``; the type is
    the field's annotation (``int``, ``float``, ``str``, ``bool``, unions of them, and
    ``None``).  A field with a plain default is a parameter of any value of its type.
    """
    bounds = Bounds(low, high, low_open, high_open, None if choices is None else tuple(choices))
    return dataclasses.field(default=default, metadata={"bounds": bounds})


#: The words for each parameter type in messages and in ``leitmotiv plugins``.
_TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    str: "text",
    bool: "true or false",
    object: "any value",
}


def _accepted_types(annotation: Any) -> tuple[type, ...]:
    """The types a field's annotation allows (``type(None)`` for an optional one)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for arg in typing.get_args(annotation) for t in _accepted_types(arg))
    if annotation is None:
        return (type(None),)
    return (typing.get_origin(annotation) or annotation,)  # dict[str, X] -> dict


def _matches(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


@dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter, as :func:`parameter_specs` reads it from a class."""

    name: str
    types: tuple[type, ...]
    default: Any
    bounds: Bounds

    def describe(self) -> str:
        """What the parameter accepts, e.g. ``an integer >= 1``, ``'median' or 'min' or
        a number``."""
        words = []
        for kind in self.types:
            if kind is str and self.bounds.choices is not None:
                words.append(" or ".join(repr(c) for c in self.bounds.choices))
            elif kind in (int, float):
                words.append(f"{_TYPE_WORDS[kind]} {self.bounds.range_text()}".strip())
            else:
                words.append(_TYPE_WORDS.get(kind, "none" if kind is type(None) else kind.__name__))
        return " or ".join(words)

    def check(self, owner: str, value: Any, key: str | None = None) -> Any:
        """``value`` as stored (an integer given for a number becomes a float).

        Parameters
        ----------
        owner : str
            Where the value comes from, the start of the message.
        value
            The value given.
        key : str, optional
            The parameter as the message names it (default: ``parameter <name>``).

        Raises
        ------
        ValueError
            One message naming ``owner`` and the key, if the value has the wrong type
            or is out of range.
        """
        kind = next((t for t in self.types if _matches(value, t)), None)
        if kind is None or not self.bounds.admits(value):
            key = key or f"parameter {self.name}"
            raise ValueError(f"{owner}: {key} must be {self.describe()}, got {value!r}")
        return float(value) if kind is float else value


@functools.cache
def parameter_specs(cls: type) -> tuple[ParameterSpec, ...]:
    """The declared parameters of an implementation class, in field order.

    A class whose annotations cannot be resolved here (a name imported only for type
    checkers) has each parameter typed by its default (any type if that is None).
    """
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):
        hints = {}

    def annotation(f: dataclasses.Field) -> Any:
        if f.name in hints:
            return hints[f.name]
        return object if f.default in (None, dataclasses.MISSING) else type(f.default)

    return tuple(
        ParameterSpec(
            f.name, _accepted_types(annotation(f)), f.default, f.metadata.get("bounds", Bounds())
        )
        for f in dataclasses.fields(cls)
    )
