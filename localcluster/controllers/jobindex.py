"""Indexed Jobs (`completionMode: Indexed`), pure: each Pod runs one completion index in
`0..completions-1`, carried as the `batch.kubernetes.io/job-completion-index` annotation and label,
in the hostname `<job>-<index>` and in `JOB_COMPLETION_INDEX` (from that annotation), as upstream
sets them. Succeeded indexes are kept in `status.completedIndexes` ("0-2,5"), so they are counted
once by construction.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

from kube import objects
from kube.rest import Obj
from localcluster.controllers import pods as podfacts

INDEX = "batch.kubernetes.io/job-completion-index"


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def index_of(pod: Obj, completions: int) -> int | None:
    value = objects.annotations_of(pod).get(INDEX) or objects.labels_of(pod).get(INDEX)
    if value is None or not value.isdigit() or int(value) >= completions:
        return None
    return int(value)


def parse_ranges(text: object) -> set[int]:
    out: set[int] = set()
    for part in str(text or "").split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            out.update(range(int(low), int(high or low) + 1))
    return out


def format_ranges(indexes: Iterable[int]) -> str:
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(set(indexes)):
        if run and i != run[-1] + 1:
            parts.append(_run(run))
            run = []
        run.append(i)
    if run:
        parts.append(_run(run))
    return ",".join(parts)


def _run(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def completed(status: Obj, succeeded: Sequence[Obj], completions: int) -> set[int]:
    """Indexes done so far: those recorded, plus those of Succeeded Pods."""
    found = {index_of(p, completions) for p in succeeded}
    return parse_ranges(status.get("completedIndexes")) | {i for i in found if i is not None}


def next_indexes(completions: int, done: set[int], active: Sequence[Obj], count: int) -> list[int]:
    """The lowest `count` indexes neither completed nor running."""
    running = {index_of(p, completions) for p in active}
    return [i for i in range(completions) if i not in done and i not in running][:count]


def indexed_pod(job: Obj, template: Obj, labels: dict[str, str], index: int) -> Obj:
    """The Pod for one index: annotation, label, hostname and the JOB_COMPLETION_INDEX variable."""
    name = objects.name_of(job)
    template = copy.deepcopy(template)
    tmeta = template.setdefault("metadata", {})
    tmeta["annotations"] = {**(tmeta.get("annotations") or {}), INDEX: str(index)}
    spec = template.setdefault("spec", {})
    spec.setdefault("hostname", f"{name}-{index}")
    env = {"name": "JOB_COMPLETION_INDEX",
           "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.annotations['{INDEX}']"}}}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not any(e.get("name") == env["name"] for e in container.get("env") or []):
            container["env"] = [*(container.get("env") or []), env]
    return podfacts.pod_from_template(template, job, generate_name=f"{name}-{index}-",
                                      extra_labels={**labels, INDEX: str(index)})
