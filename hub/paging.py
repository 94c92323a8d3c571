"""Paging of the REST API's lists (pure), Kubernetes style: `limit` and an opaque `continue` token.

A list is sorted by a stable key (`views.sort_key` for replications, the name for clusters). A
page holds at most `limit` items after the key the token carries; when more remain, the response
carries a token for the next page in the `X-Continue` header (the body stays a bare JSON list, so a
caller that does not page sees no change). The token is base64url of `{"v": 1, "list", "after"}`:
opaque to callers, and checked on the way back (a bad one, or one of another list, is a 400); its
shape is checked before it is parsed, so a forged token cannot nest deeper than the one list. As
with Kubernetes, pages are not a snapshot: an item added or removed meanwhile may or may not show.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
Key = tuple[str, ...]

CONTINUE_HEADER = "X-Continue"
MAX_LIMIT = 10_000
MAX_TOKEN_CHARS = 4096
_STRING = r'"(?:[^"\\]|\\.)*"'  # a JSON string (no nesting inside)
TOKEN_SHAPE = re.compile(rf'\{{"v":1,"list":{_STRING},"after":\[(?:{_STRING}(?:,{_STRING})*)?\]\}}')


class BadContinue(ValueError):
    """The `continue` token is not one this hub handed out for this list."""


def encode(listing: str, after: Key) -> str:
    raw = json.dumps({"v": 1, "list": listing, "after": list(after)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(listing: str, token: str) -> Key:
    """The key a token says to continue after; BadContinue when it is not a token for `listing`."""
    if len(token) > MAX_TOKEN_CHARS:
        raise BadContinue("the continue token is too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not TOKEN_SHAPE.fullmatch(raw):  # before parsing: a forged token could nest past the recursion limit
            raise ValueError("not the shape of a continue token")
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadContinue("the continue token is not valid; start again without it") from None
    after = data.get("after") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("v") != 1 or data.get("list") != listing
            or not isinstance(after, list) or not all(isinstance(part, str) for part in after)):
        raise BadContinue(f"the continue token is not one of the {listing} list; start again without it")
    return tuple(after)


def page(items: Sequence[T], key: Callable[[T], Key], listing: str, limit: int | None,
         token: str | None) -> tuple[list[T], str | None]:
    """The page of `items` (sorted by `key`) after `token`, at most `limit` long; and the next token."""
    keys = [key(item) for item in items]
    start = bisect.bisect_right(keys, decode(listing, token)) if token else 0
    end = len(items) if limit is None else min(len(items), start + limit)
    chosen = list(items[start:end])
    return chosen, (encode(listing, keys[end - 1]) if end < len(items) and chosen else None)
