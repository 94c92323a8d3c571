"""Request bodies: read under a size cap, decode by media type, bound what the decoded value costs.

Every body a client sends passes through here before anything looks at it:

* `read_body` reads the stream with a running count and answers 413 as soon as `MAX_BODY` is
  passed, whether the client sent `Content-Length` or a chunked (or otherwise streamed) body;
  the rest is never buffered.
* `decode` accepts only the media types the verb takes (kube-apiserver's list: JSON, YAML and
  protobuf for create/update/delete options; merge, JSON, strategic and apply patches for
  PATCH); anything else is 415, so a web page cannot post `text/plain` or a form into the API.
  A create or update without `Content-Type` is JSON, as in kube-apiserver: the official Python
  client sends its creates that way. (A page can send such a body too; what stops it is the
  bearer token a browser never adds by itself.)
* JSON and YAML values may nest at most `MAX_DEPTH` levels (deeper is 400: the rest of the
  server walks objects recursively); `NaN` and infinities are refused, as Go's decoder does.
* YAML anchors and aliases may not expand the document past `ALIAS_RATIO` times the body's size
  (counting nodes and scalar text, plus a small allowance): the "billion laughs" body of
  kube-apiserver's CVE-2019-11253, or a long string aliased a thousand times, is a 413, decided
  on the composed node graph before anything is built. Timestamps stay strings, sets become maps
  and non-string keys become strings, as sigs.k8s.io/yaml turns YAML into JSON.
* `decode_async` runs large bodies in a worker thread, so decoding one request never stalls the
  event loop that serves every other cluster.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

import yaml
from starlette.requests import ClientDisconnect, Request

from apiserver import errors, protobuf

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's MaxRequestBodyBytes
MAX_DEPTH = 100  # nesting levels of objects/arrays; our deepest CRD (ManifestWork) uses 23
# A YAML document with every alias expanded may weigh (one unit per node plus its scalar's length,
# which is about its size as JSON) at most this multiple of the body's size, plus the allowance.
ALIAS_RATIO, ALIAS_ALLOWANCE = 4, 64 * 1024
INLINE_DECODE = 16 * 1024  # bodies up to this size are decoded on the event loop

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

JSON = "application/json"
YAML = "application/yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

OBJECT_TYPES = (JSON, YAML, protobuf.PROTOBUF, "")  # "": no Content-Type, taken as JSON
PATCH_TYPES = (JSON_PATCH, MERGE, APPLY, STRATEGIC)


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def too_large() -> errors.ApiError:
    return errors.ApiError(413, "RequestEntityTooLarge", f"the request body is too large (limit {MAX_BODY} bytes)")


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole body, or 413 as soon as more than `limit` bytes are announced or received."""
    announced = request.headers.get("content-length")
    if announced is not None:
        if not announced.strip().isdigit():
            raise errors.bad_request(f"invalid Content-Length: {announced!r}")
        if int(announced) > limit:
            raise too_large()
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise too_large()
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise errors.bad_request("the client went away before the request body was complete") from exc
    return b"".join(chunks)


async def decode_async(content_type: str, body: bytes, accepted: tuple[str, ...]) -> Any:
    """`decode`, in a worker thread when the body is large enough to take noticeable time."""
    if len(body) <= INLINE_DECODE:
        return decode(content_type, body, accepted)
    return await asyncio.to_thread(decode, content_type, body, accepted)


def decode(content_type: str, body: bytes, accepted: tuple[str, ...]) -> Any:
    """Decode `body` by its media type, which must be one of `accepted`; 400/413/415 on bad input."""
    if len(body) > MAX_BODY:
        raise too_large()
    media = media_type(content_type)
    if media not in accepted:
        raise errors.unsupported_media_type(tuple(a for a in accepted if a))
    if media == protobuf.PROTOBUF:
        try:
            return protobuf.decode(body)
        except (protobuf.ProtobufError, RecursionError) as exc:
            raise errors.bad_request(f"unable to decode protobuf body: {exc}") from exc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.bad_request(f"the request body is not valid UTF-8: {exc}") from exc
    if media in (YAML, APPLY):
        return _yaml(text, len(body))
    return _json(text)


# ---------------------------------------------------------------- JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _json(text: str) -> Any:
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise _too_deep() from exc
    except ValueError as exc:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
    _check_depth(value, 0)
    if _SURROGATE_ESCAPE.search(text):
        value = _without_surrogates(value)
    return value


def _without_surrogates(value: Any) -> Any:
    """Lone UTF-16 surrogates (`"\\ud800"`) become U+FFFD, as Go's decoder does: they cannot be
    stored or sent as UTF-8."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    return value


def _text(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _too_deep() -> errors.ApiError:
    return errors.bad_request(f"the request body nests deeper than {MAX_DEPTH} levels")


def _check_depth(value: Any, depth: int) -> None:
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _too_deep()
        for v in value.values():
            if isinstance(v, dict | list):
                _check_depth(v, depth + 1)
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise _too_deep()
        for v in value:
            if isinstance(v, dict | list):
                _check_depth(v, depth + 1)


# ---------------------------------------------------------------- YAML


class _Loader(yaml.CSafeLoader):
    """libyaml's parser (its own nesting limit) with constructors that keep values JSON-shaped."""


def _as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _set_as_map(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, None]:
    return dict.fromkeys(loader.construct_mapping(node))  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_Loader.add_constructor("tag:yaml.org,2002:binary", _as_text)
_Loader.add_constructor("tag:yaml.org,2002:set", _set_as_map)


def _yaml(text: str, size: int) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, ALIAS_RATIO * size + ALIAS_ALLOWANCE)
        value = loader.construct_document(node)
    except (yaml.YAMLError, RecursionError, TypeError, ValueError) as exc:
        raise errors.bad_request(f"error converting YAML to JSON: {exc}") from exc
    finally:
        loader.dispose()
    return _jsonable(value, 0)


def _check_expansion(root: yaml.Node, budget: int) -> None:
    """Refuse a node graph whose tree, with every alias expanded, weighs more than `budget` (a unit
    per node plus scalar lengths), nests past `MAX_DEPTH` levels, or refers to itself. Iterative and
    memoised: linear in the graph."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded weight, depth)
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if not children_done:
            if key in sizes:
                continue
            if key in visiting:
                raise errors.bad_request("error converting YAML to JSON: an alias refers to its own anchor")
            visiting.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
            continue
        visiting.discard(key)
        count, depth = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0), 0
        for child in _children(node):
            child_count, child_depth = sizes[id(child)]
            count += child_count
            depth = max(depth, child_depth + 1)
        if count > budget:
            raise errors.ApiError(
                413, "RequestEntityTooLarge",
                f"error converting YAML to JSON: anchors and aliases expand it to more than {budget} bytes",
            )  # fmt: skip
        if depth > MAX_DEPTH:
            raise _too_deep()
        sizes[key] = (count, depth)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _jsonable(value: Any, depth: int) -> Any:
    """A fresh JSON-shaped tree (aliases no longer shared): string keys, finite numbers only."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _too_deep()
        return {_key(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise _too_deep()
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise errors.bad_request(f"error converting YAML to JSON: {value} is not a valid JSON number")
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, int | float):
        return value
    raise errors.bad_request(f"error converting YAML to JSON: unsupported value of type {type(value).__name__}")


def _key(k: Any) -> str:
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    if isinstance(k, str | int | float):
        return _text(str(k))
    raise errors.bad_request(f"error converting YAML to JSON: unsupported mapping key of type {type(k).__name__}")
