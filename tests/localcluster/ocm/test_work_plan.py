"""The work agent's pure parts, without a server: the JSONPath subset and feedback values, manifest
configs, removal planning, and the status it writes (reasons, aggregation, transition times)."""

from __future__ import annotations

from typing import Any

import pytest

from kube.objects import condition
from kube.rest import Obj
from localcluster.ocm import feedback
from localcluster.ocm.workplan import (
    CREATE_ONLY,
    SERVER_SIDE_APPLY,
    AppliedResource,
    ManifestConfig,
    ManifestId,
    config_for,
    deletable,
    hub_hash,
    plan_removal,
)
from localcluster.ocm.workstatus import ManifestOutcome, work_status

DEPLOYMENT: Obj = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns", "generation": 3},
    "spec": {"replicas": 2},
    "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
               "availableReplicas": 2, "conditions": [{"type": "Available", "status": "True"},
                                                      {"type": "Progressing", "status": "True"}],
               "labels": {"a.b/c": "x"}, "ratio": 0.5, "items": [{"n": 1}, {"n": 2}, {"n": 3}]},
}


@pytest.mark.parametrize("path, want", [
    (".status.readyReplicas", [2]),
    ("{.status.readyReplicas}", [2]),
    ("$.status.replicas", [2]),
    ('.status.conditions[?(@.type=="Available")].status', ["True"]),
    (".status.conditions[?(@.type=='Progressing')].status", ["True"]),
    ('.status.conditions[?(@.type!="Available")].type', ["Progressing"]),
    (".status.conditions[0].type", ["Available"]),
    (".status.conditions[-1].type", ["Progressing"]),
    (".status.conditions[*].type", ["Available", "Progressing"]),
    (".status.items[?(@.n >= 2)].n", [2, 3]),
    (".status.items[?(@.n)].n", [1, 2, 3]),
    (".status.labels['a.b/c']", ["x"]),
    ('.metadata["name"]', ["web"]),
    (".status.missing", []),
    (".status.conditions[7]", []),
    ('.status.items[?(@.n == "1")].n', []),
])
def test_jsonpath_subset(path: str, want: list[Any]) -> None:
    assert feedback.evaluate(DEPLOYMENT, path) == want


@pytest.mark.parametrize("path", ["status", ".status[", ".status.conditions[?(@.type ~ 1)]", ".a..b", "",
                                  ".status.items[?(@.n == nope)]"])
def test_an_unsupported_path_is_a_path_error(path: str) -> None:
    with pytest.raises(feedback.PathError):
        feedback.evaluate(DEPLOYMENT, path)


def test_field_values_are_typed_as_ocm_types_them() -> None:
    assert feedback.field_value(3) == {"type": "Integer", "integer": 3}
    assert feedback.field_value("x") == {"type": "String", "string": "x"}
    assert feedback.field_value(True) == {"type": "Boolean", "boolean": True}
    assert feedback.field_value(0.5) == {"type": "JsonRaw", "jsonRaw": "0.5"}
    assert feedback.field_value({"b": 1, "a": [2]}) == {"type": "JsonRaw", "jsonRaw": '{"a":[2],"b":1}'}


def test_well_known_status_and_json_paths_with_a_message_per_bad_value() -> None:
    rules: list[Obj] = [{"type": "WellKnownStatus"}, {"type": "JSONPaths", "jsonPaths": [
        {"name": "avail", "path": '.status.conditions[?(@.type=="Available")].status'},
        {"name": "all", "path": ".status.items[*].n"},
        {"name": "missing", "path": ".status.nothing"},
        {"name": "bad", "path": ".status["},
        {"name": "avail", "path": ".status.replicas"}]}]
    got = feedback.collect(DEPLOYMENT, rules)
    assert {v["name"]: v["fieldValue"] for v in got.values} == {
        "ReadyReplicas": {"type": "Integer", "integer": 2}, "Replicas": {"type": "Integer", "integer": 2},
        "AvailableReplicas": {"type": "Integer", "integer": 2}, "avail": {"type": "String", "string": "True"},
        "all": {"type": "JsonRaw", "jsonRaw": "[1,2,3]"}}
    assert len(got.errors) == 3
    assert "missing: no value at .status.nothing" in got.errors
    assert any(e.startswith("bad: unclosed '['") for e in got.errors)
    assert any("'avail' is empty or repeated" in e for e in got.errors)


def test_well_known_status_of_jobs_pods_and_other_kinds() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "status": {"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True"}]}}
    pod = {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "False"}]}}
    rules = [{"type": "WellKnownStatus"}]
    assert [v["name"] for v in feedback.collect(job, rules).values] == ["JobComplete", "JobSucceeded"]
    assert {v["name"]: v["fieldValue"]["string"] for v in feedback.collect(pod, rules).values} == {
        "PodReady": "False", "PodPhase": "Running"}
    other = feedback.collect({"apiVersion": "v1", "kind": "ConfigMap"}, rules)
    assert other.values == () and "no well-known status fields for kind ConfigMap" in other.errors[0]
    # a Deployment without ready Pods has no readyReplicas: left out, not an error
    bare = feedback.collect({"apiVersion": "apps/v1", "kind": "Deployment", "status": {"replicas": 1}}, rules)
    assert [v["name"] for v in bare.values] == ["Replicas"] and bare.errors == ()


def test_manifest_configs_match_by_resource_identifier_with_wildcards() -> None:
    spec = {"manifestConfigs": [
        {"resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": "ns"},
         "updateStrategy": {"type": "ServerSideApply", "serverSideApply": {"fieldManager": "me", "force": True}}},
        {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "*", "namespace": "*"},
         "updateStrategy": {"type": "CreateOnly"}, "feedbackRules": [{"type": "WellKnownStatus"}]}]}
    assert config_for(spec, "apps", "deployments", "ns", "web") == ManifestConfig(SERVER_SIDE_APPLY, "me", True)
    assert config_for(spec, "", "configmaps", "x", "y").strategy == CREATE_ONLY
    assert config_for(spec, "", "configmaps", "x", "y").feedback_rules == ({"type": "WellKnownStatus"},)
    assert config_for(spec, "apps", "deployments", "ns", "other") == ManifestConfig()
    ssa = config_for({"manifestConfigs": [{"resourceIdentifier": {"resource": "secrets", "name": "s"},
                                           "updateStrategy": {"type": "ServerSideApply"}}]}, "", "secrets", "", "s")
    assert (ssa.field_manager, ssa.force) == ("work-agent", False)


def _res(name: str, resource: str = "configmaps", uid: str = "u") -> AppliedResource:
    return AppliedResource("", "v1", resource, "ns", name, f"{uid}-{name}")


def test_removal_keeps_what_the_delete_option_orphans_and_what_another_work_records() -> None:
    gone = [_res("a"), _res("b"), _res("c")]
    assert plan_removal(gone, None, set()).delete == tuple(gone)
    assert plan_removal(gone, {"propagationPolicy": "Orphan"}, set()).delete == ()
    selective = {"propagationPolicy": "SelectivelyOrphan", "selectivelyOrphans": {"orphaningRules": [
        {"group": "", "resource": "configmaps", "namespace": "ns", "name": "b"}]}}
    plan = plan_removal(gone, selective, {("", "configmaps", "ns", "c", "u-c")})
    assert [r.name for r in plan.delete] == ["a"] and [r.name for r in plan.forget] == ["b", "c"]


def test_only_the_object_we_applied_and_no_one_owns_is_deletable() -> None:
    res = _res("a")
    assert deletable({"metadata": {"uid": "u-a"}}, res)
    assert not deletable(None, res)
    assert not deletable({"metadata": {"uid": "other"}}, res)  # recreated by someone else
    assert not deletable({"metadata": {"uid": "u-a", "ownerReferences": [{"uid": "x"}]}}, res)


def test_manifest_identity_problems_and_hub_hash() -> None:
    assert ManifestId.of({"kind": "ConfigMap"}).problem() == "the manifest has no apiVersion, metadata.name"
    assert ManifestId.of({"apiVersion": "v1", "kind": "X", "metadata": {"name": "n"}}).problem() == ""
    assert ManifestId.of({"apiVersion": "apps/v1", "kind": "D", "metadata": {"name": "n"}}).group == "apps"
    assert hub_hash("https://a") != hub_hash("https://b") and len(hub_hash("https://a")) == 64


def _outcome(ordinal: int, live: Obj | None, applied: bool = True, message: str = "") -> ManifestOutcome:
    ident = ManifestId.of(live or {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"m{ordinal}"}})
    return ManifestOutcome(ordinal, ident, "x", ManifestConfig(feedback_rules=({"type": "WellKnownStatus"},)),
                           applied, message, live)


def test_work_status_aggregates_and_keeps_transition_times() -> None:
    work: Obj = {"metadata": {"generation": 4}}
    rolling = {**DEPLOYMENT, "status": {**DEPLOYMENT["status"], "readyReplicas": 1}}
    first = work_status(work, [_outcome(0, rolling), _outcome(1, None, False, "namespaces \"x\" not found")],
                        "2026-01-01T00:00:00Z")
    conds = {c["type"]: c for c in first["conditions"]}
    assert {t: (c["status"], c["reason"]) for t, c in conds.items()} == {
        "Applied": ("False", "AppliedManifestWorkFailed"), "Available": ("False", "ResourcesNotAvailable"),
        "Progressing": ("True", "ResourcesProgressing"), "Degraded": ("False", "ResourcesNotDegraded")}
    assert 'namespaces "x" not found' in conds["Applied"]["message"]
    assert all(c["observedGeneration"] == 4 for c in first["conditions"])
    failed = first["resourceStatus"]["manifests"][1]
    assert (condition(failed["conditions"], "StatusFeedbackSynced") or {})["status"] == "False"
    done = work_status({**work, "status": first}, [_outcome(0, DEPLOYMENT), _outcome(1, None, False, "again")],
                       "2026-01-01T00:01:00Z")
    times = {c["type"]: c["lastTransitionTime"] for c in done["conditions"]}
    assert times["Progressing"] == "2026-01-01T00:01:00Z"  # moved: True -> False
    assert times["Applied"] == times["Available"] == "2026-01-01T00:00:00Z"  # unchanged status
    entry = done["resourceStatus"]["manifests"][0]
    assert [c["type"] for c in entry["conditions"]] == ["Applied", "Available", "StatusFeedbackSynced",
                                                        "Progressing", "Degraded"]
    assert (condition(entry["conditions"], "Applied") or {})["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert work_status({**work, "status": done}, [_outcome(0, DEPLOYMENT), _outcome(1, None, False, "again")],
                       "2026-01-01T00:02:00Z") == done  # nothing changed: nothing to write


def test_entries_that_are_not_objects_are_skipped_and_named() -> None:
    spec: Obj = {"manifestConfigs": ["bad", {"resourceIdentifier": {"resource": "configmaps", "name": "*"},
                                             "feedbackRules": [7, {"type": "WellKnownStatus"}]}],
                 "deleteOption": {"propagationPolicy": "SelectivelyOrphan",
                                  "selectivelyOrphans": {"orphaningRules": ["x", {"resource": "configmaps",
                                                                                  "namespace": "ns", "name": "a"}]}}}
    assert config_for(spec, "", "configmaps", "", "c").feedback_rules == ({"type": "WellKnownStatus"},)
    assert [r.name for r in plan_removal([_res("a"), _res("b")], spec["deleteOption"], set()).delete] == ["b"]
    from_json: list[Any] = [3]  # the rules as a work's JSON may hold them
    assert feedback.collect(DEPLOYMENT, from_json).errors == ("feedback rule 3 is not an object",)
    status = work_status({"metadata": {"generation": 1}, "spec": spec}, [_outcome(0, DEPLOYMENT)], "t")
    applied = condition(status["conditions"], "Applied") or {}
    assert (applied["status"], applied["reason"]) == ("False", "AppliedManifestWorkFailed")
    for named in ("manifestConfigs[0] is not an object: 'bad'", "manifestConfigs[1].feedbackRules[0]",
                  "orphaningRules[0] is not an object: 'x'"):
        assert named in applied["message"]
