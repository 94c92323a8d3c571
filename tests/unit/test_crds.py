"""Static checks of the CRD YAML in manifests/crds/.

The embedded API server registers resource types from these files, and users apply the
seed's ReplicationSource/ReplicationDestination YAML unchanged, so the schemas must be
structural, self-consistent and accept that YAML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CRD_DIR = Path(__file__).resolve().parents[2] / "manifests" / "crds"

# (group, plural) -> kind, scope, served versions, storage version, shortNames
EXPECTED: dict[tuple[str, str], dict[str, Any]] = {
    ("cluster.open-cluster-management.io", "managedclusters"): {
        "kind": "ManagedCluster",
        "scope": "Cluster",
        "versions": ["v1"],
        "storage": "v1",
        "shortNames": ["mcl", "mcls"],
    },
    ("addon.open-cluster-management.io", "managedclusteraddons"): {
        "kind": "ManagedClusterAddOn",
        "scope": "Namespaced",
        "versions": ["v1alpha1", "v1beta1"],
        "storage": "v1alpha1",
        "shortNames": ["mca", "mcas"],
    },
    ("addon.open-cluster-management.io", "clustermanagementaddons"): {
        "kind": "ClusterManagementAddOn",
        "scope": "Cluster",
        "versions": ["v1alpha1", "v1beta1"],
        "storage": "v1alpha1",
        "shortNames": ["cma", "cmas"],
    },
    ("addon.open-cluster-management.io", "addondeploymentconfigs"): {
        "kind": "AddOnDeploymentConfig",
        "scope": "Namespaced",
        "versions": ["v1alpha1", "v1beta1"],
        "storage": "v1alpha1",
        "shortNames": None,
    },
    ("work.open-cluster-management.io", "manifestworks"): {
        "kind": "ManifestWork",
        "scope": "Namespaced",
        "versions": ["v1"],
        "storage": "v1",
        "shortNames": None,
    },
    ("work.open-cluster-management.io", "appliedmanifestworks"): {
        "kind": "AppliedManifestWork",
        "scope": "Cluster",
        "versions": ["v1"],
        "storage": "v1",
        "shortNames": None,
    },
    ("volsync.backube", "replicationsources"): {
        "kind": "ReplicationSource",
        "scope": "Namespaced",
        "versions": ["v1alpha1"],
        "storage": "v1alpha1",
        "shortNames": None,
    },
    ("volsync.backube", "replicationdestinations"): {
        "kind": "ReplicationDestination",
        "scope": "Namespaced",
        "versions": ["v1alpha1"],
        "storage": "v1alpha1",
        "shortNames": None,
    },
    ("snapshot.storage.k8s.io", "volumesnapshots"): {
        "kind": "VolumeSnapshot",
        "scope": "Namespaced",
        "versions": ["v1"],
        "storage": "v1",
        "shortNames": ["vs"],
    },
    ("snapshot.storage.k8s.io", "volumesnapshotclasses"): {
        "kind": "VolumeSnapshotClass",
        "scope": "Cluster",
        "versions": ["v1"],
        "storage": "v1",
        "shortNames": ["vsclass", "vsclasses"],
    },
    ("snapshot.storage.k8s.io", "volumesnapshotcontents"): {
        "kind": "VolumeSnapshotContent",
        "scope": "Cluster",
        "versions": ["v1"],
        "storage": "v1",
        "shortNames": ["vsc", "vscs"],
    },
}

PRINTER_TYPES = {"string", "integer", "number", "boolean", "date"}
SCHEMA_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"


# --------------------------------------------------------------------------- loading
def _load_all() -> dict[Path, dict[str, Any]]:
    docs: dict[Path, dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        with path.open() as fh:
            doc = yaml.safe_load(fh)
        assert isinstance(doc, dict), path
        docs[path] = doc
    return docs


DOCS = _load_all()
CRD_PATHS = sorted(DOCS)


def _crd(group: str, plural: str) -> dict[str, Any]:
    return DOCS[CRD_DIR / f"{group}_{plural}.yaml"]


def _schema(group: str, plural: str, version: str) -> dict[str, Any]:
    for v in _crd(group, plural)["spec"]["versions"]:
        if v["name"] == version:
            schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(version)


def _versions() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, doc in DOCS.items():
        for v in doc["spec"]["versions"]:
            yield f"{path.name}:{v['name']}", v


VERSION_PARAMS = list(_versions())


def _children(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Schema nodes directly below `node` that must themselves be structural."""
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
    items = node.get("items")
    if isinstance(items, dict):
        yield f"{path}[]", items
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield f"{path}{{*}}", extra


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for child_path, child in _children(node, path):
        yield from _walk(child, child_path)


# --------------------------------------------------------------------------- a small validator
def _type_ok(value: Any, typ: str) -> bool:
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    if typ == "string":
        return isinstance(value, str)
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typ == "boolean":
        return isinstance(value, bool)
    raise AssertionError(f"unknown schema type {typ!r}")


def validate(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """Errors from checking `value` against a structural schema node (types, enums, patterns,
    bounds, required, and unknown fields, which a real apiserver would prune or reject)."""
    errors: list[str] = []
    if node.get(INT_OR_STRING):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            return [f"{path}: {value!r} is not an int-or-string"]
        if isinstance(value, str) and "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {node['pattern']}")
        return errors
    typ = node.get("type")
    if typ is None:
        assert node.get(PRESERVE), f"{path}: node without type"
        return errors
    if not _type_ok(value, typ):
        return [f"{path}: {value!r} is not of type {typ}"]
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{path}: {value!r} not in enum {node['enum']}")
    if typ == "string":
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {node['pattern']}")
        if "maxLength" in node and len(value) > node["maxLength"]:
            errors.append(f"{path}: longer than {node['maxLength']}")
        if "minLength" in node and len(value) < node["minLength"]:
            errors.append(f"{path}: shorter than {node['minLength']}")
    if typ in ("integer", "number"):
        if "minimum" in node and value < node["minimum"]:
            errors.append(f"{path}: {value} < minimum {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            errors.append(f"{path}: {value} > maximum {node['maximum']}")
    if typ == "array":
        if "minItems" in node and len(value) < node["minItems"]:
            errors.append(f"{path}: fewer than {node['minItems']} items")
        for i, item in enumerate(value):
            errors.extend(validate(item, node["items"], f"{path}[{i}]"))
    if typ == "object":
        for req in node.get("required", []):
            if req not in value:
                errors.append(f"{path}: missing required field {req!r}")
        props = node.get("properties")
        extra = node.get("additionalProperties")
        for key, child in value.items():
            if props is not None and key in props:
                errors.extend(validate(child, props[key], f"{path}.{key}"))
            elif isinstance(extra, dict):
                errors.extend(validate(child, extra, f"{path}.{key}"))
            elif props is not None and not node.get(PRESERVE):
                errors.append(f"{path}: unknown field {key!r}")
    return errors


def _resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    """Follow a printer-column JSONPath through the schema. Returns the leaf node, or None if
    the path leaves the declared schema (metadata is free-form and resolves to itself)."""
    node = schema
    segments = re.findall(r"\.([A-Za-z0-9_]+)|(\[[^\]]*\])", json_path)
    for name, bracket in segments:
        if bracket:
            if node.get("type") != "array":
                return None
            node = node["items"]
            continue
        if node.get("type") == "object" and "properties" not in node and name != "metadata":
            return node if node.get(PRESERVE) else None
        props: dict[str, dict[str, Any]] = node.get("properties", {})
        if name not in props:
            return None
        node = props[name]
        if name == "metadata" and node == {"type": "object"}:
            return node
    return node


# --------------------------------------------------------------------------- inventory
def test_every_expected_crd_file_exists_and_nothing_else() -> None:
    expected = {f"{g}_{p}.yaml" for g, p in EXPECTED}
    assert {p.name for p in CRD_PATHS} == expected


@pytest.mark.parametrize("path", CRD_PATHS, ids=lambda p: p.name)
def test_crd_identity(path: Path) -> None:
    doc = DOCS[path]
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
    assert doc["kind"] == "CustomResourceDefinition"
    spec = doc["spec"]
    names = spec["names"]
    group, plural = spec["group"], names["plural"]
    assert doc["metadata"]["name"] == f"{plural}.{group}"
    assert path.name == f"{group}_{plural}.yaml"
    exp = EXPECTED[(group, plural)]
    assert names["kind"] == exp["kind"]
    assert names["singular"] == exp["kind"].lower()
    assert names["listKind"] == exp["kind"] + "List"
    assert names.get("shortNames") == exp["shortNames"]
    assert spec["scope"] == exp["scope"]
    assert [v["name"] for v in spec["versions"]] == exp["versions"]
    assert all(v["served"] is True for v in spec["versions"])
    storage = [v["name"] for v in spec["versions"] if v["storage"]]
    assert storage == [exp["storage"]]
    if len(spec["versions"]) > 1:
        assert spec["conversion"] == {"strategy": "None"}


@pytest.mark.parametrize("path", CRD_PATHS, ids=lambda p: p.name)
def test_file_starts_with_provenance_header(path: Path) -> None:
    head = path.read_text().splitlines()[:8]
    assert head[0].startswith("# CustomResourceDefinition:")
    assert any("own words" in line for line in head)


# --------------------------------------------------------------------------- structural schemas
@pytest.mark.parametrize(("label", "version"), VERSION_PARAMS, ids=[p[0] for p in VERSION_PARAMS])
def test_top_level_schema_shape(label: str, version: dict[str, Any]) -> None:
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["type"] == "object"
    props = schema["properties"]
    assert props["apiVersion"]["type"] == "string"
    assert props["kind"]["type"] == "string"
    assert props["metadata"] == {"type": "object"}
    # the status subresource exists exactly where a status field does
    has_status = "status" in props
    assert ("subresources" in version and version["subresources"].get("status") == {}) == has_status
    if has_status:
        assert props["status"]["type"] == "object"
    if "spec" in props:
        assert props["spec"]["type"] == "object"


@pytest.mark.parametrize(("label", "version"), VERSION_PARAMS, ids=[p[0] for p in VERSION_PARAMS])
def test_every_schema_node_is_typed(label: str, version: dict[str, Any]) -> None:
    schema = version["schema"]["openAPIV3Schema"]
    checked = 0
    for path, node in _walk(schema):
        checked += 1
        if node.get(INT_OR_STRING):
            assert node.get("anyOf") == [{"type": "integer"}, {"type": "string"}], path
            assert "type" not in node, path
            continue
        if node.get(PRESERVE) and "type" not in node:
            continue
        assert node.get("type") in SCHEMA_TYPES, f"{label}{path}: missing or bad type"
        if node["type"] == "array":
            assert isinstance(node.get("items"), dict), f"{label}{path}: array without items"
        assert not ("properties" in node and isinstance(node.get("additionalProperties"), dict)), path
        for req in node.get("required", []):
            assert req in node.get("properties", {}), f"{label}{path}: required {req!r} undeclared"
        if "pattern" in node:
            re.compile(node["pattern"])
        # structural rule: oneOf/anyOf branches (other than int-or-string) carry no types or properties
        for key in ("oneOf", "anyOf", "allOf"):
            for branch in node.get(key, []):
                assert set(branch) <= {"required"}, f"{label}{path}: non-structural {key}"
    assert checked > 3


@pytest.mark.parametrize(("label", "version"), VERSION_PARAMS, ids=[p[0] for p in VERSION_PARAMS])
def test_defaults_conform_to_their_node(label: str, version: dict[str, Any]) -> None:
    schema = version["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if "default" not in node:
            continue
        assert validate(node["default"], node, path) == [], f"{label}{path}"


def test_known_defaults() -> None:
    mc = _schema("cluster.open-cluster-management.io", "managedclusters", "v1")
    assert mc["properties"]["spec"]["properties"]["leaseDurationSeconds"]["default"] == 60
    rs = _schema("volsync.backube", "replicationsources", "v1alpha1")["properties"]["spec"]["properties"]
    assert rs["rsync"]["properties"]["port"]["default"] == 22
    assert rs["rsync"]["properties"]["serviceType"]["default"] == "ClusterIP"
    assert rs["rsyncTLS"]["properties"]["port"]["default"] == 8000
    assert rs["restic"]["properties"]["pruneIntervalDays"]["default"] == 7
    assert rs["restic"]["properties"]["cacheCapacity"]["default"] == "1Gi"
    rd = _schema("volsync.backube", "replicationdestinations", "v1alpha1")["properties"]["spec"]["properties"]
    assert rd["rsync"]["properties"]["volumeMode"]["default"] == "Filesystem"


def test_defaults_checker_catches_bad_defaults() -> None:
    assert validate("sixty", {"type": "integer", "default": "sixty"}) != []
    assert validate("Maybe", {"type": "string", "enum": ["A", "B"]}) != []
    assert (
        validate(
            "lots",
            {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                INT_OR_STRING: True,
                "pattern": r"^[0-9]+Gi$",
            },
        )
        != []
    )


# --------------------------------------------------------------------------- printer columns
@pytest.mark.parametrize(("label", "version"), VERSION_PARAMS, ids=[p[0] for p in VERSION_PARAMS])
def test_printer_columns(label: str, version: dict[str, Any]) -> None:
    schema = version["schema"]["openAPIV3Schema"]
    columns = version.get("additionalPrinterColumns", [])
    assert columns, label
    assert len({c["name"] for c in columns}) == len(columns)
    for col in columns:
        assert set(col) <= {"name", "type", "jsonPath", "description", "priority", "format"}, col
        assert col["jsonPath"].startswith("."), col
        assert col["type"] in PRINTER_TYPES, col
        for flt in re.findall(r"\[\?\((.*?)\)\]", col["jsonPath"]):
            assert re.fullmatch(r'@\.type=="[A-Za-z]+"', flt), col
        leaf = _resolve(schema, col["jsonPath"])
        assert leaf is not None, f"{label}: {col['jsonPath']} is not in the schema"
        if col["type"] == "boolean":
            assert leaf["type"] == "boolean", col
        if col["type"] == "date" and col["jsonPath"] != ".metadata.creationTimestamp":
            assert leaf.get("format") == "date-time", col


def _columns(group: str, plural: str, version: str) -> list[tuple[str, str, str]]:
    for v in _crd(group, plural)["spec"]["versions"]:
        if v["name"] == version:
            return [(c["name"], c["jsonPath"], c["type"]) for c in v["additionalPrinterColumns"]]
    raise KeyError(version)


def test_ocm_printer_columns() -> None:
    assert _columns("cluster.open-cluster-management.io", "managedclusters", "v1") == [
        ("Hub Accepted", ".spec.hubAcceptsClient", "boolean"),
        ("Managed Cluster URLs", ".spec.managedClusterClientConfigs[*].url", "string"),
        ("Joined", '.status.conditions[?(@.type=="ManagedClusterJoined")].status', "string"),
        ("Available", '.status.conditions[?(@.type=="ManagedClusterConditionAvailable")].status', "string"),
        ("Age", ".metadata.creationTimestamp", "date"),
    ]
    for version in ("v1alpha1", "v1beta1"):
        assert _columns("addon.open-cluster-management.io", "managedclusteraddons", version) == [
            ("Available", '.status.conditions[?(@.type=="Available")].status', "string"),
            ("Degraded", '.status.conditions[?(@.type=="Degraded")].status', "string"),
            ("Progressing", '.status.conditions[?(@.type=="Progressing")].status', "string"),
            ("Age", ".metadata.creationTimestamp", "date"),
        ]


def test_volsync_printer_columns() -> None:
    sync = [  # VolSync's: date-times as strings (a `date` column shows <invalid> for a future nextSyncTime)
        ("Last sync", ".status.lastSyncTime", "string"),
        ("Duration", ".status.lastSyncDuration", "string"),
        ("Next sync", ".status.nextSyncTime", "string"),
    ]
    assert _columns("volsync.backube", "replicationsources", "v1alpha1") == [
        ("Source", ".spec.sourcePVC", "string"),
        *sync,
    ]
    assert _columns("volsync.backube", "replicationdestinations", "v1alpha1") == sync


def test_volumesnapshot_printer_columns() -> None:
    names = [c[0] for c in _columns("snapshot.storage.k8s.io", "volumesnapshots", "v1")]
    assert names == [
        "ReadyToUse",
        "SourcePVC",
        "SourceSnapshotContent",
        "RestoreSize",
        "SnapshotClass",
        "SnapshotContent",
        "CreationTime",
        "Age",
    ]


def test_multi_version_crds_share_one_schema() -> None:
    for path, doc in DOCS.items():
        versions = doc["spec"]["versions"]
        first = versions[0]
        for other in versions[1:]:
            assert other["schema"] == first["schema"], path.name
            assert other.get("additionalPrinterColumns") == first.get("additionalPrinterColumns"), path.name


# --------------------------------------------------------------------------- schedule pattern
GOOD_SCHEDULES = [
    "*/3 * * * *",
    "*/6 * * * *",
    "0 1 * * 1-5",
    "@hourly",
    "15,45 */2 1-15 * *",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "0 0 1 1 *",
    "59 23 31 12 6",
    "0-30/5 8-18 * * MON-FRI",
    "0 0 * JAN,JUL sun",
]
BAD_SCHEDULES = [
    "bogus",
    "* * *",
    "61 * * * * *x",
    "61 * * * *",
    "* 24 * * *",
    "* * 32 * *",
    "* * * 13 *",
    "@every 5m",
    "TZ=UTC 0 * * * *",
    "CRON_TZ=UTC 0 * * * *",
    "",
    "* * * * * *",
    "*/0 * * * *",
    "@reboot",
    "1--2 * * * *",
    "0 0 1 1 * extra",
]


@pytest.mark.parametrize("plural", ["replicationsources", "replicationdestinations"])
def test_schedule_pattern(plural: str) -> None:
    node = _schema("volsync.backube", plural, "v1alpha1")["properties"]["spec"]["properties"]["trigger"]
    schedule = node["properties"]["schedule"]
    assert schedule["type"] == "string"
    pattern = schedule["pattern"]
    assert pattern.startswith("^") and pattern.endswith("$")
    for good in GOOD_SCHEDULES:
        assert re.search(pattern, good), f"should accept {good!r}"
    for bad in BAD_SCHEDULES:
        assert not re.search(pattern, bad), f"should reject {bad!r}"
    assert node["properties"]["manual"]["type"] == "string"


# --------------------------------------------------------------------------- the seed's YAML
SEED_RD = """
apiVersion: volsync.backube/v1alpha1
kind: ReplicationDestination
metadata:
  name: rd-b
  namespace: dest-ns
spec:
  rsync:
    serviceType: LoadBalancer
    copyMethod: Snapshot
    capacity: 2Gi
    accessModes: [ReadWriteOnce]
    storageClassName: gp2-csi
    volumeSnapshotClassName: csi-aws-vsc
"""

SEED_RS = """
apiVersion: volsync.backube/v1alpha1
kind: ReplicationSource
metadata:
  name: rs-a
  namespace: source-ns
spec:
  sourcePVC: app-data
  trigger:
    schedule: "*/3 * * * *"
  rsync:
    sshKeys: volsync-rsync-dst-src-rd-b
    address: 10.0.0.17
    copyMethod: Snapshot
    storageClassName: gp2-csi
    volumeSnapshotClassName: gp2-csi
"""

SEED_MCA = """
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata:
  name: volsync
  namespace: managed-cluster-1
spec: {}
"""

SEED_OBJECTS = [
    ("volsync.backube", "replicationdestinations", "v1alpha1", SEED_RD),
    ("volsync.backube", "replicationsources", "v1alpha1", SEED_RS),
    ("addon.open-cluster-management.io", "managedclusteraddons", "v1alpha1", SEED_MCA),
]


@pytest.mark.parametrize(
    ("group", "plural", "version", "text"), SEED_OBJECTS, ids=[o[1] for o in SEED_OBJECTS]
)
def test_seed_objects_are_accepted(group: str, plural: str, version: str, text: str) -> None:
    obj = yaml.safe_load(text)
    crd = _crd(group, plural)
    assert obj["apiVersion"] == f"{group}/{version}"
    assert obj["kind"] == crd["spec"]["names"]["kind"]
    assert validate(obj, _schema(group, plural, version)) == []


def test_seed_rs_with_another_documented_schedule_is_accepted() -> None:
    obj = yaml.safe_load(SEED_RS)
    obj["spec"]["trigger"]["schedule"] = "*/6 * * * *"
    obj["spec"]["rsync"]["copyMethod"] = "Clone"
    assert validate(obj, _schema("volsync.backube", "replicationsources", "v1alpha1")) == []


def test_validator_rejects_what_a_server_would() -> None:
    schema = _schema("volsync.backube", "replicationdestinations", "v1alpha1")
    obj = yaml.safe_load(SEED_RD)
    obj["spec"]["rsync"]["bogusField"] = 1
    obj["spec"]["rsync"]["copyMethod"] = "Copy"
    obj["spec"]["rsync"]["serviceType"] = "ExternalName"
    obj["spec"]["rsync"]["capacity"] = "two gigs"
    obj["spec"]["rsync"]["port"] = 70000
    obj["spec"]["rsync"]["accessModes"] = []
    errors = validate(obj, schema)
    joined = "\n".join(errors)
    assert len(errors) == 6, joined
    for fragment in ("bogusField", "Copy", "ExternalName", "two gigs", "70000", "fewer than 1"):
        assert fragment in joined


def test_seed_status_queries_exist_in_rd_schema() -> None:
    # kubectl get replicationdestination ... --template={{.status.rsync.address}} etc.
    schema = _schema("volsync.backube", "replicationdestinations", "v1alpha1")
    for path in (".status.rsync.address", ".status.rsync.sshKeys", ".status.latestImage.name"):
        leaf = _resolve(schema, path)
        assert leaf is not None and leaf["type"] == "string", path


def test_rd_status_example_is_accepted() -> None:
    status: dict[str, Any] = {
        "conditions": [
            {
                "type": "Synchronizing",
                "status": "False",
                "reason": "WaitingForSchedule",
                "message": "Waiting for next scheduled synchronization",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "lastSyncTime": "2026-01-01T00:00:00Z",
        "lastSyncDuration": "1m2.5s",
        "nextSyncTime": "2026-01-01T00:03:00Z",
        "latestMoverStatus": {"result": "Successful", "logs": "sent 1 bytes"},
        "latestImage": {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": "volsync-rd-b-dst-20260101000000",
        },
        "rsync": {"address": "10.0.0.17", "sshKeys": "volsync-rsync-dst-src-rd-b"},
    }
    schema = _schema("volsync.backube", "replicationdestinations", "v1alpha1")
    assert validate(status, schema["properties"]["status"], ".status") == []
    status["latestMoverStatus"]["result"] = "Succeeded"
    assert validate(status, schema["properties"]["status"], ".status") != []


# --------------------------------------------------------------------------- other kinds
def test_manifestwork_manifests_are_embedded_resources() -> None:
    schema = _schema("work.open-cluster-management.io", "manifestworks", "v1")
    item = schema["properties"]["spec"]["properties"]["workload"]["properties"]["manifests"]["items"]
    assert item == {"type": "object", PRESERVE: True, "x-kubernetes-embedded-resource": True}
    work = {
        "spec": {
            "workload": {
                "manifests": [
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "volsync-system"}}
                ]
            },
            "deleteOption": {
                "propagationPolicy": "SelectivelyOrphan",
                "selectivelyOrphans": {
                    "orphaningRules": [{"group": "", "resource": "namespaces", "name": "volsync-system"}]
                },
            },
            "manifestConfigs": [
                {
                    "resourceIdentifier": {
                        "group": "apps",
                        "resource": "deployments",
                        "name": "volsync",
                        "namespace": "volsync-system",
                    },
                    "feedbackRules": [{"type": "WellKnownStatus"}],
                }
            ],
        },
        "status": {
            "resourceStatus": {
                "manifests": [
                    {
                        "resourceMeta": {
                            "ordinal": 0,
                            "group": "apps",
                            "version": "v1",
                            "kind": "Deployment",
                            "resource": "deployments",
                            "name": "volsync",
                            "namespace": "volsync-system",
                        },
                        "statusFeedback": {
                            "values": [
                                {"name": "ReadyReplicas", "fieldValue": {"type": "Integer", "integer": 1}}
                            ]
                        },
                        "conditions": [],
                    }
                ]
            }
        },
    }
    assert validate(work, schema) == []


def test_volumesnapshot_class_and_snapshot() -> None:
    vsc = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": "csi-aws-vsc"},
        "driver": "ebs.csi.aws.com",
        "deletionPolicy": "Delete",
        "parameters": {"tagSpecification_1": "k=v"},
    }
    class_schema = _schema("snapshot.storage.k8s.io", "volumesnapshotclasses", "v1")
    assert validate(vsc, class_schema) == []
    del vsc["driver"]
    vsc["deletionPolicy"] = "Keep"
    assert len(validate(vsc, class_schema)) == 2

    snap_schema = _schema("snapshot.storage.k8s.io", "volumesnapshots", "v1")
    source = snap_schema["properties"]["spec"]["properties"]["source"]
    assert source["oneOf"] == [
        {"required": ["persistentVolumeClaimName"]},
        {"required": ["volumeSnapshotContentName"]},
    ]
    snap = {
        "spec": {"source": {"persistentVolumeClaimName": "app-data"}, "volumeSnapshotClassName": "c"},
        "status": {
            "readyToUse": True,
            "restoreSize": "2Gi",
            "creationTime": "2026-01-01T00:00:00Z",
            "boundVolumeSnapshotContentName": "snapcontent-1",
        },
    }
    assert validate(snap, snap_schema) == []


def test_addondeploymentconfig_has_no_status() -> None:
    for version in ("v1alpha1", "v1beta1"):
        schema = _schema("addon.open-cluster-management.io", "addondeploymentconfigs", version)
        assert "status" not in schema["properties"]
        adc = {
            "spec": {
                "customizedVariables": [{"name": "LOG_LEVEL", "value": "2"}],
                "nodePlacement": {
                    "nodeSelector": {"node-role": "infra"},
                    "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
                },
                "registries": [{"source": "quay.io/backube", "mirror": "mirror.local/backube"}],
                "resourceRequirements": [
                    {"containerID": "*:*:*", "resources": {"limits": {"memory": "512Mi"}}}
                ],
            }
        }
        assert validate(adc, schema) == []


@pytest.mark.parametrize("plural", ["replicationsources", "replicationdestinations"])
def test_rsync_carries_volsyncs_mover_config(plural: str) -> None:
    rsync = _schema("volsync.backube", plural, "v1alpha1")["properties"]["spec"]["properties"]["rsync"]["properties"]
    assert rsync["moverServiceAccount"]["type"] == "string"
    assert rsync["moverPodLabels"]["additionalProperties"] == {"type": "string"}
    assert set(rsync["moverResources"]["properties"]) == {"limits", "requests", "claims"}
    context = rsync["moverSecurityContext"]
    assert PRESERVE not in context  # typed, so a wrong type is refused rather than kept
    assert {name: context["properties"][name]["type"] for name in (
        "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile")} == {
        "runAsUser": "integer", "runAsGroup": "integer", "runAsNonRoot": "boolean", "fsGroup": "integer",
        "supplementalGroups": "array", "seccompProfile": "object"}
    assert set(rsync["moverAffinity"]["properties"]) == {"nodeAffinity", "podAffinity", "podAntiAffinity"}
