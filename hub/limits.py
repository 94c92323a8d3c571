"""What one agent may put on the hub (pure): the REST API's limits and the per-cluster report caps.

A cluster keeps at most `max_replications` reports (one per ReplicationSource/-Destination) and one
report takes at most `max_report_bytes` as stored (the ConfigMap's `data.report`), so one agent
cannot fill the hub API: a batch with a report over the size is a 413, a batch that would store more
replications than the cap a 429. Either refuses the whole batch (nothing is stored) and lists each
offending report as `{"type", "loc": ["body", "reports", i], "msg"}` (the shape of a 422), so the
agent can set those aside and send the rest again. Updates of stored replications and deletions are
never refused by the count; a deletion in the batch frees its place first.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from api.hub import MAX_REPORT_BYTES, ReplicationReport, ReportBatch
from hub import reports

MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_REPLICATIONS = 1000
DEFAULT_MAX_REPORT_BYTES = 64 * 1024
MIN_REPORT_BYTES = 1024
DEFAULT_HEARTBEAT_SKEW_SECONDS = 300.0
DEFAULT_AGENT_IN_FLIGHT = 2  # an agent sends one request at a time; one more for a retry racing its answer
DEFAULT_ADMIN_IN_FLIGHT = 8


@dataclass(frozen=True)
class RestLimits:
    """The hub's REST limits (`volsync-hub` flags); see the module docstring."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_replications: int = DEFAULT_MAX_REPLICATIONS  # per cluster
    max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES  # per report, as stored
    heartbeat_skew_seconds: float = DEFAULT_HEARTBEAT_SKEW_SECONDS
    agent_in_flight: int = DEFAULT_AGENT_IN_FLIGHT  # requests in flight per agent token; more is a 429
    admin_in_flight: int = DEFAULT_ADMIN_IN_FLIGHT  # requests in flight with the admin token; more is a 429

    def __post_init__(self) -> None:
        if not MIN_REPORT_BYTES <= self.max_report_bytes <= MAX_REPORT_BYTES:
            raise ValueError(f"the report size cap must be within {MIN_REPORT_BYTES}..{MAX_REPORT_BYTES} bytes")
        if (self.max_replications < 1 or self.max_body_bytes < 1 or self.heartbeat_skew_seconds <= 0
                or self.agent_in_flight < 1 or self.admin_in_flight < 1):
            raise ValueError("REST limits must be positive")


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """`volsync-hub`'s flags for the REST limits (defaults shown in --help)."""
    parser.add_argument("--max-replications", type=int, default=DEFAULT_MAX_REPLICATIONS,
                        help="replications the hub keeps per cluster; more is a 429 (default: %(default)s)")
    parser.add_argument("--max-report-bytes", type=int, default=DEFAULT_MAX_REPORT_BYTES,
                        help=f"size of one stored report, {MIN_REPORT_BYTES}..{MAX_REPORT_BYTES}; more is a 413 "
                        "(default: %(default)s)")
    parser.add_argument("--heartbeat-skew-seconds", type=float, default=DEFAULT_HEARTBEAT_SKEW_SECONDS,
                        help="how far a heartbeat's sentAt may be from the hub's clock (default: %(default)ss)")
    parser.add_argument("--agent-in-flight", type=int, default=DEFAULT_AGENT_IN_FLIGHT,
                        help="requests one agent token may have in flight; more is a 429 (default: %(default)s)")
    parser.add_argument("--admin-in-flight", type=int, default=DEFAULT_ADMIN_IN_FLIGHT,
                        help="requests the admin token may have in flight; more is a 429 (default: %(default)s)")


def limits_from_args(args: argparse.Namespace) -> RestLimits:
    try:
        return RestLimits(max_replications=args.max_replications, max_report_bytes=args.max_report_bytes,
                          heartbeat_skew_seconds=args.heartbeat_skew_seconds, agent_in_flight=args.agent_in_flight,
                          admin_in_flight=args.admin_in_flight)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None


@dataclass(frozen=True)
class BatchRefusal:
    """A batch refused whole: 413 (a report too large) or 429 (too many replications)."""

    status: int
    errors: list[dict[str, Any]]


def stored_size(cluster: str, report: ReplicationReport) -> int:
    """The bytes a report takes on the hub: its ConfigMap's `data.report`."""
    return len(reports.report_configmap(cluster, report)["data"]["report"])


def _error(kind: str, index: int, msg: str) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", "reports", index], "msg": msg}


def check_batch(cluster: str, batch: ReportBatch, stored: set[str], limits: RestLimits) -> BatchRefusal | None:
    """Whether a batch fits the cluster's caps, given the report ConfigMap names already `stored` for it."""
    too_large = []
    for i, report in enumerate(batch.reports):
        if not report.deleted and (size := stored_size(cluster, report)) > limits.max_report_bytes:
            too_large.append(_error("report_too_large", i, f"{report.role} {report.namespace}/{report.name} takes "
                                    f"{size} bytes; the hub stores at most {limits.max_report_bytes} per report"))
    if too_large:
        return BatchRefusal(413, too_large)
    names = [reports.configmap_name(r.role, r.namespace, r.name) for r in batch.reports]
    present = set(stored) - {n for n, r in zip(names, batch.reports, strict=True) if r.deleted}
    over = []
    for i, (name, report) in enumerate(zip(names, batch.reports, strict=True)):
        if report.deleted or name in present:
            continue
        if len(present) >= limits.max_replications:
            over.append(_error("too_many_replications", i, f"{report.role} {report.namespace}/{report.name} "
                               f"would be replication {len(present) + 1} of cluster {cluster}; the hub keeps at "
                               f"most {limits.max_replications} per cluster (volsync-hub --max-replications)"))
        else:
            present.add(name)
    return BatchRefusal(429, over) if over else None
