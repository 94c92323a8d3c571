"""The local deployer with a real API server and real `volsync-agent` processes: manifests applied,
one agent per cluster supervised (restart with backoff after kill -9), adopted by a later hub,
replaced when its arguments change, stopped by `remove`; stale pidfiles are ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.apiserver import ApiServer
from support.local_hub import CLUSTER, TOKEN, StubHub, agent_pids, manifests
from support.waiting import eventually

from hub.deployers import DeployState
from hub.deployers.local import LocalDeployer
from hub.deployers.supervisor import cmdline, supervisor_of

pytestmark = pytest.mark.timeout(180)
MCA = {"metadata": {"name": "volsync", "namespace": CLUSTER}}


def available(deployer: LocalDeployer) -> DeployState:
    def check() -> DeployState | None:
        state = deployer.state(CLUSTER)
        return state if state.available else None

    found = eventually(check, 60, what="agent available")
    assert found is not None
    return found


def new_pid(deployer: LocalDeployer, old: list[int]) -> int:
    """The pid of the agent that replaced those in `old` (polled)."""
    def check() -> int | None:
        pid = deployer.supervisor.status(CLUSTER).pid
        return pid if pid is not None and pid not in old else None

    found = eventually(check, 30, what="a new agent")
    assert found is not None
    return found


def pid_of(deployer: LocalDeployer) -> int:
    pid = deployer.supervisor.status(CLUSTER).pid
    assert pid is not None
    return pid


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_apply_puts_the_manifests_on_the_cluster_and_runs_the_agent(
        apiserver: ApiServer, stub_hub: StubHub, data_dir: Path) -> None:
    assert apiserver.kubectl("get", "crd", "replicationsources.volsync.backube", context=CLUSTER,
                             check=False).returncode != 0  # only the deployer brings them
    deployer = LocalDeployer(apiserver.kubeconfig, data_dir)
    try:
        state = deployer.apply(CLUSTER, MCA, manifests(stub_hub.url))
        assert state.applied is True
        available(deployer)
        pid = pid_of(deployer)
        assert agent_pids(data_dir) == [pid]
        assert (data_dir / "agents" / f"{CLUSTER}.pid").read_text().strip() == str(pid)
        argv = cmdline(pid)
        assert argv is not None
        token_file = Path(flag(argv, "--hub-token-file"))
        assert token_file.read_text() == TOKEN and token_file.stat().st_mode & 0o777 == 0o600
        assert flag(argv, "--hub-url") == stub_hub.url and flag(argv, "--context") == CLUSTER
        assert flag(argv, "--kubeconfig") == str(apiserver.kubeconfig.resolve())
        assert flag(argv, "--mover-image") == "volsync-agent:dev"  # the Deployment's image runs its movers
        assert "--data-root" not in argv and "--mover-host" not in argv  # the agent keeps no data of its own
        assert supervisor_of(pid) == str(data_dir.resolve() / "agents")
        # The agent reaches the hub with the token of the hub Secret.
        eventually(lambda: (f"/api/v1/agents/{CLUSTER}/heartbeat", f"Bearer {TOKEN}") in stub_hub.calls, 30,
                   what="heartbeat with the token")

        for kind, name in (("crd", "replicationsources.volsync.backube"),
                           ("crd", "replicationdestinations.volsync.backube"), ("namespace", "volsync-system"),
                           ("clusterrole", "volsync-agent"), ("clusterrolebinding", "volsync-agent")):
            obj = apiserver.get(kind, name, "--show-managed-fields", context=CLUSTER)
            assert [m["manager"] for m in obj["metadata"]["managedFields"]] == ["volsync-hub"]
        for kind, name in (("serviceaccount", "volsync-agent"), ("secret", "volsync-agent-hub")):
            apiserver.get(kind, name, "-n", "volsync-system", context=CLUSTER)
        # The Deployment is recorded, not applied: the process is the workload.
        assert apiserver.get("deployments", "-A", context=CLUSTER)["items"] == []
        recorded = deployer.deployment(CLUSTER)
        assert recorded is not None and recorded["kind"] == "Deployment"

        # Applying the same manifests again changes nothing.
        assert deployer.apply(CLUSTER, MCA, manifests(stub_hub.url)).available is True
        assert agent_pids(data_dir) == [pid]
    finally:
        deployer.close()
    assert agent_pids(data_dir) == []


def test_a_killed_agent_is_restarted_with_backoff(apiserver: ApiServer, stub_hub: StubHub, data_dir: Path) -> None:
    deployer = LocalDeployer(apiserver.kubeconfig, data_dir)
    try:
        deployer.apply(CLUSTER, MCA, manifests(stub_hub.url))
        available(deployer)
        pids = [pid_of(deployer)]
        for wait in (1.0, 2.0):  # the first restart after 1 s, the next after 2 s
            os.kill(pids[-1], signal.SIGKILL)
            killed = time.monotonic()
            new = new_pid(deployer, pids)
            assert time.monotonic() - killed >= wait
            pids.append(new)
            # /proc shows the new command line a moment after the spawn: poll, never sample once
            eventually(lambda: agent_pids(data_dir) == [pids[-1]], 10, what="exactly one agent")
        status = deployer.supervisor.status(CLUSTER)
        assert status.restarts == 2
        available(deployer)
        assert agent_pids(data_dir) == [pids[-1]]
    finally:
        deployer.close()
    assert agent_pids(data_dir) == []


def test_a_later_hub_adopts_the_running_agent(apiserver: ApiServer, stub_hub: StubHub, data_dir: Path) -> None:
    first = LocalDeployer(apiserver.kubeconfig, data_dir)
    try:
        first.apply(CLUSTER, MCA, manifests(stub_hub.url))
        available(first)
        pid = pid_of(first)
        with pytest.raises(RuntimeError, match="another hub"):
            LocalDeployer(apiserver.kubeconfig, data_dir)  # never two supervisors on one directory
    finally:
        first.close(stop_agents=False)
    assert agent_pids(data_dir) == [pid]  # left running

    second = LocalDeployer(apiserver.kubeconfig, data_dir)
    try:
        assert second.clusters() == [CLUSTER]
        assert second.supervisor.status(CLUSTER).pid == pid
        state = second.apply(CLUSTER, MCA, manifests(stub_hub.url))
        assert state.applied is True and state.available is True  # its ready line is on disk
        assert second.supervisor.status(CLUSTER).pid == pid and agent_pids(data_dir) == [pid]

        # Different arguments (the hub moved): the agent is replaced, never doubled.
        second.apply(CLUSTER, MCA, manifests(stub_hub.url + "/"))
        new = new_pid(second, [pid])
        assert cmdline(pid) is None
        argv = cmdline(new)
        assert argv is not None and flag(argv, "--hub-url") == stub_hub.url + "/"
        eventually(lambda: agent_pids(data_dir) == [new], 10, what="exactly one agent")
        available(second)
    finally:
        second.close()
    assert agent_pids(data_dir) == []


def test_remove_stops_the_agent_and_uninstalls(apiserver: ApiServer, stub_hub: StubHub, data_dir: Path) -> None:
    deployer = LocalDeployer(apiserver.kubeconfig, data_dir)
    try:
        deployer.apply(CLUSTER, MCA, manifests(stub_hub.url))
        available(deployer)
        pid = pid_of(deployer)
        deployer.remove(CLUSTER)
        assert cmdline(pid) is None and agent_pids(data_dir) == []
        agents = data_dir / "agents"
        assert not (agents / f"{CLUSTER}.pid").exists() and not (agents / f"{CLUSTER}.token").exists()
        assert deployer.clusters() == []
        assert deployer.state(CLUSTER).applied is None
        # What the work agent would remove goes; the CRDs stay (deletion-orphan), and with them replications.
        assert apiserver.kubectl("get", "clusterrole", "volsync-agent", context=CLUSTER, check=False).returncode
        apiserver.get("crd", "replicationsources.volsync.backube", context=CLUSTER)
        eventually(lambda: apiserver.kubectl("get", "ns", "volsync-system", context=CLUSTER,
                                             check=False).returncode != 0, 30, what="namespace gone")
        deployer.remove(CLUSTER)  # idempotent
    finally:
        deployer.close()


def test_a_stale_pidfile_is_ignored(apiserver: ApiServer, stub_hub: StubHub, data_dir: Path) -> None:
    agents = data_dir / "agents"
    agents.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (agents / f"{CLUSTER}.pid").write_text(f"{dead.pid}\n")
    (agents / "cluster9.pid").write_text(f"{os.getpid()}\n")  # alive, but not an agent: left alone
    deployer = LocalDeployer(apiserver.kubeconfig, data_dir)
    try:
        assert deployer.clusters() == []
        assert not (agents / f"{CLUSTER}.pid").exists() and not (agents / "cluster9.pid").exists()
        deployer.apply(CLUSTER, MCA, manifests(stub_hub.url))
        available(deployer)
        pid = pid_of(deployer)
        assert pid != dead.pid and agent_pids(data_dir) == [pid]
        assert (agents / f"{CLUSTER}.pid").read_text().strip() == str(pid)
    finally:
        deployer.close()
    assert agent_pids(data_dir) == []


def test_an_agent_without_a_pidfile_is_not_doubled(apiserver: ApiServer, stub_hub: StubHub, data_dir: Path) -> None:
    first = LocalDeployer(apiserver.kubeconfig, data_dir)
    try:
        first.apply(CLUSTER, MCA, manifests(stub_hub.url))
        available(first)
        stray = pid_of(first)
    finally:
        first.close(stop_agents=False)
    (data_dir / "agents" / f"{CLUSTER}.pid").unlink()  # as if the hub died between spawn and pidfile
    second = LocalDeployer(apiserver.kubeconfig, data_dir)
    try:
        assert cmdline(stray) is None and second.clusters() == []
        second.apply(CLUSTER, MCA, manifests(stub_hub.url))
        available(second)
        assert agent_pids(data_dir) == [pid_of(second)] != [stray]
    finally:
        second.close()
    assert agent_pids(data_dir) == []
