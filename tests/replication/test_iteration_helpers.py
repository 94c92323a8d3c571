"""agent/iterations.py and agent/keysecrets.py helpers, kube/objects.py naming: keys, movers, cleanup."""

from __future__ import annotations

import zlib
from datetime import timedelta

import pytest
from support.replication_objects import (
    MAIN_KEYS,
    NS,
    RS_UID,
    T0,
    b64,
    pvc,
    rd,
    rs,
    secret,
    snapshot,
)

from agent import source
from agent.iterations import Context, cleanup_actions, mover_error, schedule_error
from agent.keysecrets import generated_keys, key_secret_names, secret_problem
from agent.plans import Delete, Ensure, GenerateKeys, Plan
from api.volsync import ReplicationSpec
from kube import objects
from kube.objects import short_name
from kube.rest import PVCS, SECRETS, VOLUME_SNAPSHOTS

# ------------------------------------------------------------------------------------ short_name


def test_short_name_keeps_names_up_to_63() -> None:
    assert short_name("a" * 63) == "a" * 63


def test_short_name_hashes_the_full_name() -> None:
    name = "volsync-" + "a" * 57 + "xyz" + "-src"
    out = short_name(name)
    digest = f"{zlib.crc32(name.encode()):08x}"
    assert len(out) <= 63
    assert out.endswith("-" + digest)
    assert out.startswith("volsync-aaaa")


def test_short_name_never_leaves_a_dash_before_the_hash() -> None:
    name = "a" * 53 + "-" * 20
    out = short_name(name)
    assert "--" not in out
    assert len(out) <= 63


@pytest.mark.parametrize("role", ["source", "destination"])
def test_key_secret_names(role: str) -> None:
    side = "dst" if role == "destination" else "src"
    assert key_secret_names(role, "x") == (
        f"volsync-rsync-{side}-main-x",
        f"volsync-rsync-{side}-src-x",
        f"volsync-rsync-{side}-dest-x",
    )
    long = key_secret_names(role, "n" * 60)
    assert all(len(n) <= 63 for n in long)
    assert len(set(long)) == 3


def test_pit_names_of_distinct_long_sources_differ() -> None:
    a, b = "q" * 59 + "1", "q" * 59 + "2"
    assert source.pit_name(a) != source.pit_name(b)
    assert len(source.pit_name(a)) <= 63


# ------------------------------------------------------------------------------------ movers


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({}, "a replication method must be specified - enabled movers: ['rsync']"),
        ({"rsync": {}, "restic": {}}, "only one replication method can be supplied"),
        ({"rclone": {}}, "replication method 'rclone' is not supported by this agent - enabled movers: ['rsync']"),
        ({"rsync": {}}, None),
    ],
)
def test_mover_error(sections: dict[str, dict[str, str]], message: str | None) -> None:
    assert mover_error(ReplicationSpec.parse({"spec": sections})) == message


def test_schedule_error() -> None:
    assert schedule_error(ReplicationSpec.parse({"spec": {"trigger": {"schedule": "@daily"}}})) is None
    assert schedule_error(ReplicationSpec.parse({"spec": {}})) is None
    err = schedule_error(ReplicationSpec.parse({"spec": {"trigger": {"schedule": "@every 5m"}}}))
    assert err is not None and "'@every 5m'" in err


# ------------------------------------------------------------------------------------ Secrets


def test_secret_problem() -> None:
    needed = ("source", "destination.pub")
    assert secret_problem(None, "k", needed) == "ssh keys Secret 'k' not found"
    assert secret_problem(secret("k"), "k", needed) == "ssh keys Secret 'k' is missing keys: source, destination.pub"
    assert secret_problem(secret("k", data={"source": "", "destination.pub": b64("x")}), "k", needed) == (
        "ssh keys Secret 'k' is missing keys: source"
    )
    assert "invalid base64 in 'destination.pub'" in (
        secret_problem(secret("k", data={"source": b64("x"), "destination.pub": "not base64!"}), "k", needed) or ""
    )
    assert secret_problem(secret("k", keys=needed), "k", needed) is None
    no_data = secret("k")
    del no_data["data"]
    assert secret_problem(no_data, "k", needed) == "ssh keys Secret 'k' is missing keys: source, destination.pub"


def test_generated_keys_first_asks_for_the_authority() -> None:
    ctx = Context.of(rs(ssh_keys=None), T0, "source")
    actions, ready = generated_keys(ctx, {})
    assert ready is False
    assert actions == [
        GenerateKeys(NS, "volsync-rsync-src-main-app", ctx.obj, {"app.kubernetes.io/created-by": "volsync"})
    ]


def test_generated_keys_ready_once_all_three_exist() -> None:
    ctx = Context.of(rd(), T0, "destination")
    main, src, dest = key_secret_names("destination", "backup")
    secrets = {main: secret(main, keys=MAIN_KEYS), src: secret(src), dest: secret(dest)}
    assert generated_keys(ctx, secrets) == ([], True)


def test_generated_keys_from_an_incomplete_authority_copy_empty_values() -> None:
    """Current behaviour, pinned so a change is deliberate: VolSync (§3.1) deletes and regenerates an
    authority that lost a key; we copy empty values into the split Secrets."""
    ctx = Context.of(rd(), T0, "destination")
    main, src, dest = key_secret_names("destination", "backup")
    actions, ready = generated_keys(ctx, {main: secret(main, keys=("source",))})
    assert ready is False
    made = {a.obj["metadata"]["name"]: a.obj["data"] for a in actions if isinstance(a, Ensure)}
    assert all(a.resource is SECRETS for a in actions if isinstance(a, Ensure))
    assert made[src]["source"] == b64("value of source")
    assert made[src]["destination.pub"] == ""
    assert made[dest]["destination"] == ""


# ------------------------------------------------------------------------------------ cleanup


def test_cleanup_actions_skip_objects_being_deleted_and_carry_resource_versions() -> None:
    leftovers = (
        (VOLUME_SNAPSHOTS, snapshot("a", resource_version="5")),
        (PVCS, pvc("b", resource_version="6")),
        (PVCS, pvc("c", deleting=True)),
    )
    assert cleanup_actions(leftovers) == [
        Delete(VOLUME_SNAPSHOTS, NS, "a", "5"),
        Delete(PVCS, NS, "b", "6"),
    ]


def test_cleanup_without_a_resource_version_has_no_precondition() -> None:
    obj = pvc("b")
    del obj["metadata"]["resourceVersion"]
    assert cleanup_actions(((PVCS, obj),)) == [Delete(PVCS, NS, "b", "")]


def test_owner_reference_points_at_the_rs() -> None:
    ref = objects.owner_ref(rs())
    assert ref == {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationSource",
        "name": "app",
        "uid": RS_UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_plan_wait_keeps_the_earliest() -> None:
    p = Plan().wait(10)
    assert p.requeue_after == 10
    assert p.wait(30).requeue_after == 10
    assert p.wait(2).requeue_after == 2


def test_retry_time_backs_off_and_caps() -> None:
    assert source.retry_time(T0, 0) == T0 + timedelta(seconds=2)
    assert source.retry_time(T0, 1) == T0 + timedelta(seconds=2)
    assert source.retry_time(T0, 3) == T0 + timedelta(seconds=8)
    assert source.retry_time(T0, 20) == T0 + timedelta(seconds=300)
