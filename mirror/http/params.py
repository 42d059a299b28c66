"""Query parameters of `mirror serve`'s routes, as Starlette gives them (a list of (name, value) pairs)."""

from __future__ import annotations


def last(params: list[tuple[str, str]], name: str) -> str | None:
    """The value of `name`, the last one when it is given several times; None when it is not given."""
    value = None
    for k, v in params:
        if k == name:
            value = v
    return value
