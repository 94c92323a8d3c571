"""api/volsync.py: go_duration (VolSync's lastSyncDuration) and the typed spec/status views."""

from __future__ import annotations

from typing import Any

import pytest

from api.volsync import (
    ImageRef,
    MoverStatus,
    ReplicationSpec,
    ReplicationStatus,
    RsyncSpec,
    Trigger,
    VolumeOptions,
    go_duration,
)

Obj = dict[str, Any]

# ------------------------------------------------------------------------------------ go_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-3, "0s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (0.25, "250ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59, "59s"),
        (60, "1m0s"),
        (62.5, "1m2.5s"),
        (90, "1m30s"),
        (3599, "59m59s"),
        (3600, "1h0m0s"),
        (3725, "1h2m5s"),
        (3600 * 30 + 1, "30h0m1s"),  # Go has no days
        (7322.25, "2h2m2.25s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


# ------------------------------------------------------------------------------------ specs


def test_parse_an_rs_spec() -> None:
    obj = {
        "spec": {
            "sourcePVC": "data",
            "trigger": {"schedule": "*/3 * * * *", "manual": "now"},
            "paused": True,
            "rsync": {
                "sshKeys": "keys",
                "address": "my.host.com",
                "port": 2222,
                "copyMethod": "Snapshot",
                "capacity": "2Gi",
                "storageClassName": "gp2-csi",
                "volumeSnapshotClassName": "csi-aws-vsc",
                "accessModes": ["ReadWriteOnce"],
            },
        }
    }
    spec = ReplicationSpec.parse(obj)
    assert spec.trigger == Trigger(schedule="*/3 * * * *", manual="now")
    assert spec.paused is True
    assert spec.movers == ("rsync",)
    assert spec.source_pvc == "data"
    assert spec.rsync == RsyncSpec(
        volume=VolumeOptions("Snapshot", "2Gi", "gp2-csi", ("ReadWriteOnce",), "csi-aws-vsc"),
        ssh_keys="keys",
        address="my.host.com",
        port=2222,
    )


def test_parse_an_rd_spec() -> None:
    obj = {
        "spec": {
            "rsync": {
                "serviceType": "LoadBalancer",
                "copyMethod": "Snapshot",
                "capacity": "2Gi",
                "accessModes": ["ReadWriteOnce"],
                "destinationPVC": "mine",
                "cleanupTempPVC": True,
                "volumeMode": "Block",
                "serviceAnnotations": {"a": "b"},
            }
        }
    }
    rsync = ReplicationSpec.parse(obj).rsync
    assert rsync is not None
    assert rsync.service_type == "LoadBalancer"
    assert rsync.destination_pvc == "mine"
    assert rsync.cleanup_temp_pvc is True
    assert rsync.volume_mode == "Block"
    assert rsync.service_annotations == {"a": "b"}


@pytest.mark.parametrize("obj", [{}, {"spec": None}, {"spec": "nonsense"}, {"spec": []}], ids=str)
def test_parse_a_missing_or_odd_spec(obj: Obj) -> None:
    spec = ReplicationSpec.parse(obj)
    assert spec == ReplicationSpec(trigger=Trigger(), paused=False, movers=(), rsync=None, source_pvc=None)


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (None, Trigger()),
        ({}, Trigger()),
        ("*/5 * * * *", Trigger()),  # not an object
        ({"schedule": "", "manual": ""}, Trigger()),  # "" means unset (VolSync)
        ({"schedule": 5, "manual": 7}, Trigger()),
        ({"manual": "x"}, Trigger(manual="x")),
    ],
)
def test_parse_odd_triggers(trigger: Any, expected: Trigger) -> None:
    assert ReplicationSpec.parse({"spec": {"trigger": trigger}}).trigger == expected


def test_parse_odd_rsync_fields() -> None:
    obj = {
        "spec": {
            "sourcePVC": "",
            "paused": "true",  # only a real boolean pauses
            "rsync": {
                "port": True,  # a bool is not a port
                "capacity": 5,  # an integer quantity
                "accessModes": ["ReadWriteOnce", 3, None],
                "copyMethod": "",
                "serviceType": "",
                "cleanupTempPVC": "true",
                "serviceAnnotations": ["not", "a", "map"],
            },
        }
    }
    spec = ReplicationSpec.parse(obj)
    assert spec.paused is False
    assert spec.source_pvc is None
    rsync = spec.rsync
    assert rsync is not None
    assert rsync.port is None
    assert rsync.volume.capacity == "5"
    assert rsync.volume.access_modes == ("ReadWriteOnce",)
    assert rsync.volume.copy_method is None
    assert rsync.service_type == "ClusterIP"
    assert rsync.cleanup_temp_pvc is False
    assert rsync.service_annotations is None


def test_parse_empty_service_annotations_is_not_none() -> None:
    rsync = ReplicationSpec.parse({"spec": {"rsync": {"serviceAnnotations": {}}}}).rsync
    assert rsync is not None and rsync.service_annotations == {}


def test_parse_bool_capacity_is_ignored() -> None:
    rsync = ReplicationSpec.parse({"spec": {"rsync": {"capacity": False}}}).rsync
    assert rsync is not None and rsync.volume.capacity is None


@pytest.mark.parametrize(
    ("sections", "movers"),
    [
        ({"rsync": {}}, ("rsync",)),
        ({"rsync": None}, ()),  # a null section is no mover
        ({"rsync": "yes"}, ()),
        ({"external": {}, "rsync": {}}, ("rsync", "external")),
        ({"restic": {}, "rclone": {}}, ("rclone", "restic")),
        ({"unknownMover": {}}, ()),
    ],
)
def test_parse_mover_sections(sections: Obj, movers: tuple[str, ...]) -> None:
    spec = ReplicationSpec.parse({"spec": sections})
    assert spec.movers == movers
    assert (spec.rsync is not None) == ("rsync" in movers)


# ------------------------------------------------------------------------------------ statuses


def test_parse_a_status() -> None:
    obj = {
        "status": {
            "lastSyncTime": "2026-03-02T10:00:00Z",
            "lastSyncStartTime": "2026-03-02T10:01:00Z",
            "lastSyncDuration": "1m2s",
            "nextSyncTime": "2026-03-02T10:03:00Z",
            "lastManualSync": "m",
            "latestImage": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "s"},
            "conditions": [{"type": "Synchronizing", "status": "True"}, "junk", None],
        }
    }
    st = ReplicationStatus.parse(obj)
    assert st.last_sync_time == "2026-03-02T10:00:00Z"
    assert st.last_sync_start_time == "2026-03-02T10:01:00Z"
    assert st.last_sync_duration == "1m2s"
    assert st.next_sync_time == "2026-03-02T10:03:00Z"
    assert st.last_manual_sync == "m"
    assert st.latest_image == ImageRef(kind="VolumeSnapshot", name="s", api_group="snapshot.storage.k8s.io")
    assert st.conditions == ({"type": "Synchronizing", "status": "True"},)
    assert st.condition("Synchronizing") == {"type": "Synchronizing", "status": "True"}
    assert st.condition("Other") is None


@pytest.mark.parametrize("obj", [{}, {"status": None}, {"status": "x"}, {"status": {"conditions": "x"}}], ids=str)
def test_parse_a_missing_or_odd_status(obj: Obj) -> None:
    assert ReplicationStatus.parse(obj) == ReplicationStatus()


@pytest.mark.parametrize(
    "raw", [None, "s", {}, {"kind": "VolumeSnapshot"}, {"kind": "VolumeSnapshot", "name": ""}], ids=str
)
def test_image_ref_without_a_name_is_none(raw: Any) -> None:
    assert ImageRef.parse(raw) is None


def test_image_ref_round_trip() -> None:
    raw = {"apiGroup": "", "kind": "PersistentVolumeClaim", "name": "p"}
    ref = ImageRef.parse(raw)
    assert ref is not None and ref.to_dict() == raw


def test_empty_status_strings_are_unset() -> None:
    st = ReplicationStatus.parse({"status": {"lastSyncStartTime": "", "lastManualSync": ""}})
    assert st.last_sync_start_time is None and st.last_manual_sync is None


def test_mover_status_rendering() -> None:
    assert MoverStatus("Successful").to_dict() == {"result": "Successful"}
    assert MoverStatus("Failed", "boom").to_dict() == {"result": "Failed", "logs": "boom"}
