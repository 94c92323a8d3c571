"""The reporter's HTTP side: POSTs to the hub with the agent token, and what the hub's answers mean.

`HubSession.post` sends one request with the token read from the token file (a 401 re-reads the
file and retries at once if the token changed) and says when to come back: connection errors, 5xx
and a 429 naming no report (busy; after its `Retry-After`) step through the back-off, 401/403 wait
the last step; any other answer resets the back-off and goes to the caller. `refused_reports` reads
which reports a 413/429 of the hub's caps names.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("volsync.agent.reporting")


def refused_reports(resp: httpx.Response) -> dict[int, str]:
    """The reports a 413/429 names, by index in the batch: `detail[].loc == ["body", "reports", i]`."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        return {}
    found: dict[int, str] = {}
    for error in detail if isinstance(detail, list) else []:
        loc = error.get("loc") if isinstance(error, dict) else None
        if isinstance(loc, list) and len(loc) == 3 and loc[:2] == ["body", "reports"] and isinstance(loc[2], int):
            found[loc[2]] = str(error.get("msg") or "")
    return found


def retry_after(resp: httpx.Response) -> float:
    """The seconds of a `Retry-After` header (0 when absent or not a number of seconds)."""
    try:
        return max(0.0, float(resp.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0


class HubSession:
    """POSTs to `/api/v1/agents/{cluster}/...` with the back-off state of the hub's reachability."""

    def __init__(self, client: httpx.Client, cluster: str, *, token_file: Path | None,
                 backoff: tuple[float, ...], now: float) -> None:
        self.client, self.cluster, self.token_file, self.backoff = client, cluster, token_file, backoff
        self.retry_at = now  # monotonic: nothing is sent before then
        self._failures = 0
        self._problem = ""
        self._token = self._read_token()

    def post(self, what: str, body: dict[str, Any], now: float) -> httpx.Response | None:
        """POST to the hub; None when it has to be retried later (the retry time is set)."""
        url = f"/api/v1/agents/{self.cluster}/{what}"
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            try:
                resp = self.client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                self.away(now, f"the hub is unreachable ({type(exc).__name__}: {exc})")
                return None
            if resp.status_code == 401 and attempt == 0:
                token = self._read_token()
                if token != self._token:
                    log.info("the agent token in %s changed; retrying with it", self.token_file)
                    self._token = token
                    continue
            break
        if resp.status_code in (401, 403):
            why = "is not valid" if resp.status_code == 401 else f"is not for cluster {self.cluster}"
            self.away(now, f"the hub says the agent token (from {self.token_file}) {why} "
                            f"({resp.status_code}); retrying every {self.backoff[-1]:g}s", slow=True)
            return None
        if resp.status_code >= 500:
            self.away(now, f"the hub failed ({resp.status_code} {resp.text[:200]})")
            return None
        if resp.status_code == 429 and not refused_reports(resp):
            self.away(now, f"the hub is busy ({resp.status_code} {resp.text[:200]})", at_least=retry_after(resp))
            return None
        self._failures = 0
        self.retry_at = now
        if self._problem:
            log.info("the hub is reachable again")
            self._problem = ""
        return resp

    def away(self, now: float, problem: str, *, slow: bool = False, at_least: float = 0.0) -> None:
        delay = self.backoff[-1] if slow else self.backoff[min(self._failures, len(self.backoff) - 1)]
        delay = min(max(delay, at_least), self.backoff[-1])
        self._failures += 1
        self.retry_at = now + delay
        if problem != self._problem:
            log.warning("%s; keeping the latest state of each replication until it is back", problem)
            self._problem = problem

    def _read_token(self) -> str:
        if self.token_file is None:
            return ""
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            log.warning("cannot read the agent token file %s: %s", self.token_file, exc.strerror)
            return ""
