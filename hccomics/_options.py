"""Checks for string options (``Literal`` values) at public boundaries."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from hccomics.errors import OptionError

_MAX_SHOWN = 12


def check_option(name: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise with a "did you mean" hint.

    Examples
    --------
    >>> check_option("profile", "demo", ("smoke", "demo", "full"))
    'demo'
    >>> check_option("profile", "demos", ("smoke", "demo", "full"))
    Traceback (most recent call last):
    ...
    hccomics.errors.OptionError: profile='demos' is not one of 'smoke', 'demo', 'full'; did you mean 'demo'?
    """
    allowed = tuple(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    shown = ", ".join(repr(a) for a in allowed[:_MAX_SHOWN])
    if len(allowed) > _MAX_SHOWN:
        shown += f" (and {len(allowed) - _MAX_SHOWN} more)"
    msg = f"{name}={value!r} is not one of {shown}"
    same_case = [a for a in allowed if a.lower() == str(value).lower()]
    close = same_case or difflib.get_close_matches(str(value), allowed, n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    raise OptionError(msg)
