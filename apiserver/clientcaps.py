"""Per-client caps: concurrent watches and in-flight requests per identity (user + cluster).

kube-apiserver bounds concurrency with max-requests-inflight and API Priority and Fairness; the
embedded server, where one process hosts the hub and every cluster, bounds each caller instead so
one client (a runaway script, a leaked token) cannot hold every connection or watch of the
process. A request over its caller's cap gets 429 TooManyRequests with a `Retry-After` header,
as kube-apiserver's own throttling answers (client-go and kubectl retry such answers by
themselves). The server is one asyncio loop, so the counters need no lock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from apiserver import errors

RETRY_AFTER_SECONDS = 1
DEFAULT_MAX_WATCHES = 256  # the hub's informers hold ~a dozen per cluster, an agent ~8, `kubectl get -w` one
DEFAULT_MAX_INFLIGHT = 128  # non-watch requests being served at once for one caller

Key = tuple[str, str]  # (cluster, user)


def is_watch(sub_path: str, query_watch: str | None) -> bool:
    """Whether a cluster-relative request is a watch (`?watch=true` or the legacy `/watch/` path)."""
    if (query_watch or "").lower() in ("true", "1"):
        return True
    parts = sub_path.split("/")
    # /api/v1/watch/...  or  /apis/<group>/<version>/watch/...
    return (len(parts) > 3 and parts[1] == "api" and parts[3] == "watch") or (
        len(parts) > 4 and parts[1] == "apis" and parts[4] == "watch")


@dataclass
class ClientCaps:
    max_watches: int = DEFAULT_MAX_WATCHES
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    watches: Counter[Key] = field(default_factory=Counter)
    inflight: Counter[Key] = field(default_factory=Counter)

    def acquire(self, key: Key, watch: bool) -> errors.ApiError | None:
        """Count one more request of `key`; the 429 to answer instead when it is over its cap."""
        counter, cap, what = ((self.watches, self.max_watches, "watches") if watch
                              else (self.inflight, self.max_inflight, "requests in flight"))
        if counter[key] >= cap:
            return too_many_requests(f"client {key[1]!r} has {counter[key]} {what} on cluster {key[0]!r} "
                                     f"(at most {cap})")
        counter[key] += 1
        return None

    def release(self, key: Key, watch: bool) -> None:
        counter = self.watches if watch else self.inflight
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]


def too_many_requests(why: str) -> errors.ApiError:
    """429 TooManyRequests, worded like kube-apiserver's throttling, with the reason appended."""
    return errors.ApiError(429, "TooManyRequests", f"Too many requests, please try again later: {why}",
                           {"retryAfterSeconds": RETRY_AFTER_SECONDS})
