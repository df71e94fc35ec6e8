"""Checks of an architecture's fields: types, ranges, and a bound on the memory and work they ask for.

A module's fields come from code or from a weight file's header, which anyone may have written: each
is checked where the module is made (`check`, from the module's `__post_init__`), before anything is
traced or allocated, and an error names the field. The bounds keep a header from asking for more than
a real network of the family needs (torchvision's largest are well inside them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

MAX_INPUT_SIZE = 1024  # pixels a side: 20x ImageNet's 224 in area
MAX_WIDTH = 8192  # channels or units of one layer
MAX_CLASSES = 100_000
MAX_LAYERS = 256  # convolutions or blocks in all


def _fail(field: str, value: Any, want: str) -> None:
    raise ValueError(f"{field} must be {want}, got {value!r}")


def integer(low: int, high: int) -> Callable[[str, Any], None]:
    """A checker: an int (not a bool) in [low, high]."""

    def check(field: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            _fail(field, value, f"an integer in [{low}, {high}]")

    return check


def flag(field: str, value: Any) -> None:
    """A checker: a bool."""
    if not isinstance(value, bool):
        _fail(field, value, "true or false")


def fraction(field: str, value: Any) -> None:
    """A checker: a float in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        _fail(field, value, "a number in [0, 1)")


def counts(low: int, high: int, max_length: int) -> Callable[[str, Any], None]:
    """A checker: a non-empty sequence of at most `max_length` ints in [low, high]."""
    one = integer(low, high)

    def check(field: str, value: Any) -> None:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not 0 < len(value) <= max_length:
            _fail(field, value, f"a list of 1 to {max_length} integers")
        for i, v in enumerate(value):
            one(f"{field}[{i}]", v)

    return check


def input_size(stride: int) -> Callable[[str, Any], None]:
    """A checker: a side in pixels, a multiple of the network's total stride, at most MAX_INPUT_SIZE."""

    def check(field: str, value: Any) -> None:
        integer(stride, MAX_INPUT_SIZE)(field, value)
        if value % stride:
            _fail(field, value, f"a multiple of {stride} (the network's total stride)")

    return check


def check(module: Any, checkers: dict[str, Callable[[str, Any], None]]) -> None:
    """Run each field's checker on `module`'s value of it; a `ValueError` names the first bad field."""
    for field, checker in checkers.items():
        checker(field, getattr(module, field))
