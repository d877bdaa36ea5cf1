"""The one JSON parser for request bodies: `Decimal` for every non-integer number (an amount
never passes through a binary float), no NaN or Infinity, and a bounded nesting depth (a
deeply nested body would exhaust the stack of whatever walks it next)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, NoReturn

from coffer.errors import BodyRefused

MAX_DEPTH = 32
_SIGNIFICANT = re.compile(rb'[\[\]{}"\\]')
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def _refuse_constant(name: str) -> NoReturn:
    raise json.JSONDecodeError(f"{name} is not a number", name, 0)


def nesting_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit`, found in one linear pass over the
    bytes (brackets inside strings do not count) before any recursive parser sees them."""
    depth = 0
    in_string = False
    escaped_until = -1
    for match in _SIGNIFICANT.finditer(body):
        position = match.start()
        if position < escaped_until:
            continue
        char = body[position]
        if in_string:
            if char == _BACKSLASH:
                escaped_until = position + 2
            elif char == _QUOTE:
                in_string = False
        elif char == _QUOTE:
            in_string = True
        elif char in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif char in _CLOSERS:
            depth -= 1
    return False


def loads(body: bytes) -> Any:
    """Parse a request body; 422 `json_too_deep` past MAX_DEPTH levels, JSONDecodeError (a
    ValueError) when it is not JSON."""
    if nesting_depth_exceeds(body, MAX_DEPTH):
        raise BodyRefused(
            422, "json_too_deep", f"The JSON body nests deeper than {MAX_DEPTH} levels"
        )
    return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
