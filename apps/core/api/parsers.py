"""The API's only request parser: JSON, refusing what PostgreSQL cannot store or we cannot
serve back, and nesting deeper than any contract shape needs."""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# The contract's deepest shapes (credential scopes and secrets, cluster bodies) nest a handful
# of levels; 64 leaves room for free-form JSON while every later recursive walk (validation,
# error flattening, encryption, rendering) stays far from Python's recursion limit.
MAX_JSON_DEPTH = 64

# NUL: PostgreSQL text cannot hold it. A lone UTF-16 surrogate (`"\ud800"` without its pair):
# Python accepts it, but it cannot be encoded as UTF-8, so storing, encrypting or rendering it
# later fails. Valid pairs are already combined into one code point by the decoder.
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


def _refuse(text: str) -> None:
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        raise ParseError("strings must not contain NUL (\\u0000) characters")
    raise ParseError("strings must not contain unpaired UTF-16 surrogates")


def check_json_value(data: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ParseError if `data` nests deeper than `max_depth` or any string (keys included)
    holds NUL or a lone surrogate. Iterative, so the check itself cannot overflow the stack."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _refuse(value)
        elif isinstance(value, dict | list):
            if depth > max_depth:
                raise ParseError(f"JSON nests deeper than {max_depth} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _refuse(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


class StrictJSONParser(JSONParser):
    """JSON bodies nested at most MAX_JSON_DEPTH levels whose strings contain neither NUL nor a
    lone surrogate: such input is a 400 at the door instead of a 500 deep in a service, a
    serializer or a later reveal."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # The decoder itself gave up (thousands of levels): same answer as a shallower excess.
            raise ParseError(f"JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
        check_json_value(data)
        return data
