"""The agent's reporter: replication status to the hub, never in replication's way (docs/hub.md).

The controller calls `observe(role, obj)` after it writes an RS/RD status and `forget(role, ns,
name)` when one is gone. Both only touch memory under a lock: a report (`{role, namespace, name,
sequence, observedAt, deleted, spec, status}`) is queued when the object's spec or status differs
from what was last observed, and only the latest state per object is kept, so while the hub is away
the queue is bounded by the number of replications. A background thread (`start`) runs `tick`,
which tests call directly with a fake clock:

- heartbeat `POST /api/v1/agents/{cluster}/heartbeat` every `renew_interval` (the hub's answer
  `renewIntervalSeconds` wins);
- `POST /api/v1/agents/{cluster}/reports` in batches of at most `batch_size`;
- every `resend_interval`, every known object again (the hub may have lost or missed one).

Sequences increase per object and across restarts: the first is the current time in milliseconds
(or, with `sequence_file`, one past the highest this agent ever sent, if that is larger), and each
report sent takes the next. A sequence is given when a report is first sent, so a retry resends it
unchanged (the hub answers `stale` for what it already has).

Failures: connection errors and 5xx retry with `backoff` (1 s doubling to 60 s), keeping only the
latest state per object; 401 re-reads the token file (rotation) and retries at once if the token
changed, else slowly (the last backoff step), as does 403. A 429 naming no report (the agent, or
its cluster's other batch, is busy on the hub) retries after its `Retry-After` (at least the backoff
step, at most its last). The hub's caps (413: a report too large,
429: more replications than the cluster may keep) list the reports at fault: those wait one
`resend_interval` (a newer state of theirs too) and the rest of the batch goes again at once; a 413
for the body as a whole halves the batch size. Any other 4xx drops the batch (logged once per
batch). Problems are logged once per change, never with the token; a refused heartbeat (e.g. a
clock too far from the hub's) is logged and tried again at the next heartbeat.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent.hubsession import HubSession, refused_reports
from kube.clock import Clock, rfc3339
from osutil.files import write_private

log = logging.getLogger("volsync.agent.reporting")

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (role, namespace, name)
DEFAULT_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
SPEC_FIELDS = ("sourcePVC", "trigger", "paused", "rsync")
ANNOTATION_DOMAIN = "volsync-addon.io/"
MAX_TOMBSTONES = 10_000


def report_spec(obj: Obj) -> Obj:
    """What the hub needs of a spec (the trigger for RPO; the rest to show what replicates where)."""
    spec = obj.get("spec") or {}
    return {k: copy.deepcopy(spec[k]) for k in SPEC_FIELDS if k in spec}


def report_annotations(obj: Obj) -> dict[str, str]:
    """The object's annotations in our domain (per-replication RPO, the peer): the hub reads those."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {k: str(v) for k, v in annotations.items() if k.startswith(ANNOTATION_DOMAIN)}


@dataclass
class _Entry:
    report: Obj
    sequence: int | None = None
    parked_until: float = 0.0  # monotonic; the hub's caps refused it: not sent again before then


MIN_RENEW_INTERVAL = 0.1  # seconds


class Reporter:
    def __init__(
        self,
        client: httpx.Client,
        cluster: str,
        *,
        agent_id: str,
        clock: Clock,
        token_file: Path | None = None,
        sequence_file: Path | None = None,
        version: str = "",
        renew_interval: float = 60.0,
        resend_interval: float = 300.0,
        backoff: tuple[float, ...] = DEFAULT_BACKOFF,
        batch_size: int = 500,
    ) -> None:
        self.client, self.cluster, self.agent_id, self.clock = client, cluster, agent_id, clock
        self.token_file, self.sequence_file, self.version = token_file, sequence_file, version
        self.renew_interval, self.resend_interval = renew_interval, resend_interval
        self.backoff, self.batch_size = backoff, batch_size
        self._lock = threading.Lock()  # the queue, shared with the controller's threads
        self._io = threading.Lock()  # one tick at a time
        self._known: dict[Key, Obj] = {}  # latest {spec, status} per live object
        self._pending: dict[Key, _Entry] = {}  # latest report per object not yet accepted
        self._tombstones: dict[Key, None] = {}  # objects reported deleted (oldest first)
        now = clock.monotonic()
        self._next_heartbeat, self._next_resend = now, now + resend_interval
        self._hub = HubSession(client, cluster, token_file=token_file, backoff=backoff, now=now)
        self._next_sequence = max(int(clock.now().timestamp() * 1000), self._persisted_sequence())
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        clock.on_advance(self._wake.set)

    # -- the controller's side (never blocks on the hub) ----------------------------------------------
    def observe(self, role: str, obj: Obj) -> None:
        """The object's current spec and status; queued for the hub when they changed."""
        meta = obj.get("metadata") or {}
        key = (role, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        content = {"spec": report_spec(obj), "status": copy.deepcopy(obj.get("status") or {})}
        if annotations := report_annotations(obj):
            content["annotations"] = annotations
        with self._lock:
            self._tombstones.pop(key, None)
            if self._known.get(key) == content:
                return
            self._known[key] = content
            self._queue(key, content, deleted=False)
        self._wake.set()

    def forget(self, role: str, namespace: str, name: str) -> None:
        """The object is gone: the hub gets a `deleted` report (once)."""
        key = (role, namespace, name)
        with self._lock:
            if key in self._tombstones:
                return
            self._tombstones[key] = None
            if len(self._tombstones) > MAX_TOMBSTONES:
                del self._tombstones[next(iter(self._tombstones))]
            self._known.pop(key, None)
            self._queue(key, {"spec": {}, "status": {}}, deleted=True)
        self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _queue(self, key: Key, content: Obj, *, deleted: bool) -> None:
        role, namespace, name = key
        report = {"role": role, "namespace": namespace, "name": name, "observedAt": rfc3339(self.clock.now()),
                  "deleted": deleted, **content}
        previous = self._pending.get(key)
        self._pending[key] = _Entry(report, parked_until=previous.parked_until if previous else 0.0)

    def _sendable(self, now: float) -> list[tuple[Key, _Entry]]:
        """Queued reports not set aside by the hub's caps (call with the lock held)."""
        return [(key, entry) for key, entry in self._pending.items() if entry.parked_until <= now]

    # -- the loop -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hub-reporter", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 15.0) -> None:
        """Stop the thread (what is still queued is not sent: the next agent reports it again)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                delay = self.tick()
            except Exception:  # the reporter must outlive any surprise
                log.exception("hub reporter failed")
                delay = self.backoff[0]
            self._wake.wait(delay)

    def tick(self) -> float:
        """Do what is due now (resend, heartbeat, batches); seconds until something is due again."""
        with self._io:
            now = self.clock.monotonic()
            if now >= self._hub.retry_at:
                if now >= self._next_resend:
                    self._next_resend = now + self.resend_interval
                    with self._lock:
                        for key, content in self._known.items():
                            if key not in self._pending:
                                self._queue(key, content, deleted=False)
                if now >= self._next_heartbeat:
                    self._heartbeat(now)
                while now >= self._hub.retry_at and self._send_batch():
                    pass
            with self._lock:
                queued = bool(self._sendable(now))
                parked = min((e.parked_until for e in self._pending.values()), default=float("inf"))
            if now < self._hub.retry_at:
                return self._hub.retry_at - now
            return 0.0 if queued else max(0.0, min(self._next_heartbeat, self._next_resend, parked) - now)

    def _heartbeat(self, now: float) -> None:
        body = {"agentId": self.agent_id, "version": self.version, "sentAt": rfc3339(self.clock.now())}
        resp = self._hub.post("heartbeat", body, now)
        if resp is None:
            return
        self._next_heartbeat = now + self.renew_interval
        if resp.is_success:
            try:
                renew = float(resp.json().get("renewIntervalSeconds") or 0)
            except (ValueError, AttributeError):
                renew = 0.0
            if renew > 0:  # the hub decides the cadence; a floor keeps a bad value from flooding it
                self.renew_interval = max(renew, MIN_RENEW_INTERVAL)
                self._next_heartbeat = now + self.renew_interval
        else:
            log.warning("the hub refused the heartbeat: %d %s", resp.status_code, resp.text[:200])

    def _send_batch(self) -> bool:
        """Send up to `batch_size` queued reports; True when some were settled (sent or dropped)."""
        with self._lock:
            batch = self._sendable(self.clock.monotonic())[: self.batch_size]
            for _, entry in batch:
                if entry.sequence is None:
                    entry.sequence = self._next_sequence
                    self._next_sequence += 1
            high = self._next_sequence
        if not batch:
            return False
        self._persist_sequence(high)
        reports = [{**entry.report, "sequence": entry.sequence} for _, entry in batch]
        resp = self._hub.post("reports", {"agentId": self.agent_id, "reports": reports}, self.clock.monotonic())
        if resp is None:
            return False
        settled = batch if resp.is_success else self._refused(batch, resp)
        with self._lock:
            for key, entry in settled:
                if self._pending.get(key) is entry:  # not replaced by a newer state meanwhile
                    del self._pending[key]
        return True

    def _refused(self, batch: list[tuple[Key, _Entry]], resp: httpx.Response) -> list[tuple[Key, _Entry]]:
        """What a refused batch settles: nothing when the hub's caps named reports (those are set aside, the
        rest goes again) or when a too-large body can be split; else the whole batch (dropped)."""
        named = refused_reports(resp) if resp.status_code in (413, 429) else {}
        named = {i: msg for i, msg in named.items() if 0 <= i < len(batch)}
        if named:
            until = self.clock.monotonic() + self.resend_interval
            with self._lock:
                for i in named:
                    batch[i][1].parked_until = until
            log.warning("the hub refused %d of %d reports (%d: %s); they wait %gs, the others are sent again",
                        len(named), len(batch), resp.status_code, next(iter(named.values()))[:300],
                        self.resend_interval)
            return []
        if resp.status_code == 413 and len(batch) > 1:
            self.batch_size = max(1, len(batch) // 2)
            log.warning("the hub refused a batch of %d reports as too large; batches of %d from now on",
                        len(batch), self.batch_size)
            return []
        key = batch[0][0]
        log.warning("the hub refused %d reports (%d %s), dropped; the first: %s %s/%s", len(batch),
                    resp.status_code, resp.text[:300], *key)
        return batch

    # -- sequences --------------------------------------------------------------------------------------
    def _persisted_sequence(self) -> int:
        if self.sequence_file is None:
            return 0
        try:
            return int(self.sequence_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _persist_sequence(self, high: int) -> None:
        """Record the next unused sequence before any report carrying a lower one leaves."""
        if self.sequence_file is None:
            return
        try:
            write_private(self.sequence_file, f"{high}\n")
        except OSError as exc:
            log.warning("cannot record the report sequence in %s: %s", self.sequence_file, exc.strerror)
