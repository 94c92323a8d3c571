"""The destination's lockdown holds against the mover Pod the agent runs (issue 10, acceptance point 2).

One embedded cluster (API server, node, controllers, network, storage) and a real `volsync-agent`
under its rendered RBAC. A ReplicationDestination (ClusterIP, Direct, into a PVC seeded with a few
files) makes the agent create its mover Job `volsync-rsync-dst-<rd>`: our sshd on 8022 behind the
Service `volsync-rsync-dst-<rd>` port 22. An attacker Pod in the same cluster (host root: real `ssh`,
`rsync`, `ssh-keygen`) mounts the Secret the user copies to the source side, with the source's key,
and attacks the Service's address:

- without the key: a password (sshd offers only publickey; the askpass program is never asked),
  a fresh ed25519 key, the right key as another user: "Permission denied (publickey)";
- with the key: a terminal is refused ("PTY allocation request failed"); other commands (`id`,
  `sh -c ...`, a login shell, `--rsync-path`) get the forced command's "Invalid command" and run
  nothing; forwarding (stdio `-W`, remote `-R`) is prohibited; rsync to `../`, to an absolute path
  (the mover's own `authorized_keys` directory), reading back (`--sender`) and `-R` are refused
  with the allow-list's messages, which the forced command also notes in the Pod's sshd log;
- the volume and the mover's work directory are untouched, and the iteration still runs.

The one admitted request, `rsync --server OPTIONS . .`, lands in `/data`; a symlink it sends to the
mover's work directory is munged (leads nowhere), and a second push writing through it stays in the
volume: the mover's `authorized_keys` is intact.

The destination Pod itself runs as rendered: uid 0, effective and bounding capabilities exactly
the eight of `agent.jobs.DESTINATION_CAPS`, no new privileges, a read-only root, no ServiceAccount
token mounted.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.agents import Agent
from support.fleet import LocalFleet, local_fleet
from support.trees import assert_trees_equal, snapshot_tree
from support.waiting import eventually

from agent import jobs, keysecrets
from movers import forced

pytestmark = pytest.mark.timeout(300)

NS = "lockdown"
RD = "rd-lock"
CLAIM = "recv"
DST = jobs.mover_name("destination", RD)  # the Job and the Service
SOURCE_SECRET = keysecrets.key_secret_names("destination", RD)[1]  # what the user copies to the source side
ATTACKER = "attacker"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ONLY_THE_VOLUME = "only 'rsync --server OPTIONS . .' is allowed: the destination is the volume itself"
DENIED = "Permission denied (publickey)"
CAP_NUMBERS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "SETGID": 6,
               "SETUID": 7, "SYS_CHROOT": 18, "AUDIT_WRITE": 29}
EROFS = 30

Obj = dict[str, Any]

RD_YAML = f"""\
apiVersion: volsync.backube/v1alpha1
kind: ReplicationDestination
metadata: {{name: {RD}, namespace: {NS}}}
spec:
  rsync: {{serviceType: ClusterIP, copyMethod: Direct, destinationPVC: {CLAIM}}}
"""
CLAIM_YAML = f"""\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {CLAIM}, namespace: {NS}}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
"""
ATTACKER_YAML = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: {ATTACKER}, namespace: {NS}}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: attacker
    image: python:3.12
    command: [sleep, "600"]
    volumeMounts: [{{name: keys, mountPath: /keys, readOnly: true}}]
  volumes: [{{name: keys, secret: {{secretName: {SOURCE_SECRET}, defaultMode: 0400}}}}]
"""
# Runs in the attacker Pod: [name, argv, extra env] steps from stdin, in order; {name: [rc, out, err]}
# into the file named by argv[1] (read back with a second exec, which may be repeated: the attacks may not)
RUNNER = """\
import json, os, subprocess, sys
results = {}
for name, argv, env in json.load(sys.stdin):
    done = subprocess.run(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)
    results[name] = [done.returncode, done.stdout, done.stderr]
with open(sys.argv[1], "w") as out:
    json.dump(results, out)
"""
END = "@@exit "  # the last line of `_read`'s output: the command's exit code
# Runs in the destination Pod: its processes' ids and capabilities, the token directory, the root's writability.
INSPECT = """\
import json, os
procs = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\\0")
        lines = open(f"/proc/{pid}/status").read().splitlines()
        status = dict(line.split(":\\t", 1) for line in lines if ":\\t" in line)
    except OSError:
        continue
    procs.append({"argv": argv, "uid": status["Uid"].split()[0], "eff": status["CapEff"], "bnd": status["CapBnd"],
                  "nnp": status["NoNewPrivs"]})
try:
    open("/probe-rootfs", "w").close()
    root = 0
except OSError as exc:
    root = exc.errno
mounts = [line for line in open("/proc/self/mountinfo") if "serviceaccount" in line]
print(json.dumps({"procs": procs, "token": os.path.exists(TOKEN_DIR), "root": root, "mounts": mounts}))
""".replace("TOKEN_DIR", repr(TOKEN_DIR))


@dataclass(frozen=True)
class Lockdown:
    """The running destination: its Service address, its Pod, the receiving volume's host directory."""

    fleet: LocalFleet
    address: str
    pod: str
    volume: Path

    def kubectl(self, *args: str, input: str | None = None) -> str:
        out: str = self.fleet.kubectl("-n", NS, *args, input=input).stdout
        return out

    def read(self, pod: str, container: str, *command: str) -> str:
        """The output of a command that only reads, run with `kubectl exec`, whole: it ends with a marker
        line, and a reading without it is taken again (once in some 25 runs, `kubectl exec` against the
        embedded node exited 0 with an empty stdout)."""
        wrapped = ["sh", "-c", f'"$@"; echo "{END}$?"', "sh", *command]

        def whole() -> str:
            out = self.kubectl("exec", pod, "-c", container, "--", *wrapped)
            body, _, code = out.rpartition(END)
            assert code.strip() == "0", f"{command} in {pod}: {out!r}"
            return body or "\n"

        text: str = eventually(whole, 30, interval=0.2, what=f"the whole output of {command} in {pod}")
        return text

    def run_in_attacker(self, steps: list[tuple[str, list[str], dict[str, str]]]) -> dict[str, tuple[int, str, str]]:
        results = f"/tmp/results-{uuid.uuid4().hex[:8]}.json"
        self.kubectl("exec", "-i", ATTACKER, "--", "python3", "-I", "-c", RUNNER, results, input=json.dumps(steps))
        out = self.read(ATTACKER, "attacker", "cat", results)
        return {name: (rc, stdout, stderr) for name, (rc, stdout, stderr) in json.loads(out).items()}

    def in_mover(self, *command: str) -> str:
        return self.read(self.pod, "rsync", *command)


def _volume_dir(fleet: LocalFleet) -> Path:
    volume = eventually(lambda: fleet.get("pvc", CLAIM, "-n", NS)["spec"].get("volumeName"), 30,
                        interval=0.2, what=f"PVC {CLAIM} bound")
    pv = fleet.get("pv", volume)["spec"]
    path = Path((pv.get("local") or pv.get("hostPath") or {})["path"])
    assert path.is_dir(), pv
    return path


def _seed(volume: Path) -> None:
    """What an earlier iteration left in the receiving volume (a file, a directory, a symlink)."""
    (volume / "sub").mkdir()
    (volume / "sub" / "kept.txt").write_text("from an earlier iteration\n")
    (volume / "top.txt").write_text("top\n")
    (volume / "link").symlink_to("sub/kept.txt")


def _listening_pod(fleet: LocalFleet) -> str:
    """The destination Job's running Pod once its sshd listens (its log says so), made by the agent."""
    job = fleet.get("job", DST, "-n", NS)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ReplicationDestination", job["metadata"]
    pods = fleet.get("pods", "-n", NS, "-l", f"job-name={DST}")["items"]
    for pod in pods:
        if (pod.get("status") or {}).get("phase") == "Running":
            name: str = pod["metadata"]["name"]
            log = fleet.kubectl("logs", name, "-n", NS, check=False).stdout
            return name if "sshd listening on" in log else ""
    return ""


@pytest.fixture(scope="module")
def lockdown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lockdown]:
    base = tmp_path_factory.mktemp("lockdown")
    with local_fleet(base, names=("cluster1",)) as fleet:
        agent = Agent(fleet.api, "cluster1", base / "agent").start()
        try:
            fleet.kubectl("create", "namespace", NS)
            fleet.apply(CLAIM_YAML)
            volume = _volume_dir(fleet)
            _seed(volume)
            fleet.apply(RD_YAML)
            address = eventually(lambda: (fleet.get("replicationdestination", RD, "-n", NS).get("status") or {})
                                 .get("rsync", {}).get("address"), 60, interval=0.2, what="the RD's address")
            pod = eventually(lambda: _listening_pod(fleet), 90, interval=0.3, what=f"a listening Pod of Job {DST}")
            fleet.apply(ATTACKER_YAML)
            fleet.kubectl("wait", "--for=condition=Ready", f"pod/{ATTACKER}", "-n", NS, "--timeout=60s", timeout=70)
            lock = Lockdown(fleet, address, pod, volume)
            _prepare_attacker(lock)
            yield lock
        finally:
            fleet.kubectl("delete", "namespace", NS, "--wait=false", check=False)
            agent.stop()


def _prepare_attacker(lock: Lockdown) -> None:
    """The attacker's files: the source key, a fresh key, the pinned host key, payloads, an askpass."""
    script = ("install -m 600 /keys/source /tmp/id_source && ssh-keygen -q -t ed25519 -N '' -f /tmp/id_other"
              f" && echo \"{lock.address} $(cat /keys/destination.pub)\" > /tmp/known_hosts"
              " && mkdir -p /tmp/payload /tmp/linked /tmp/through/escape"
              " && echo planted > /tmp/payload/authorized_keys"
              f" && ln -s {jobs.WORK_DIR} /tmp/linked/escape"
              " && echo 'through a link' > /tmp/through/escape/authorized_keys"
              " && printf '#!/bin/sh\\ntouch /tmp/asked\\necho hunter2\\n' > /tmp/askpass && chmod 700 /tmp/askpass")
    done = lock.run_in_attacker([("prepare", ["sh", "-c", script], {})])["prepare"]
    assert done[0] == 0, done


def _ssh(address: str, *options: str) -> list[str]:
    """ssh to the destination's Service, its host key pinned to the Secret's `destination.pub`."""
    return ["ssh", "-F", "/dev/null", "-p", "22", "-o", "UserKnownHostsFile=/tmp/known_hosts",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "ConnectTimeout=15", *options]


def _attacks(address: str) -> list[tuple[str, list[str], dict[str, str]]]:
    keyed = _ssh(address, "-o", "BatchMode=yes", "-i", "/tmp/id_source")
    rsh = " ".join(keyed)
    root = f"root@{address}"
    askpass = {"SSH_ASKPASS": "/tmp/askpass", "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
    return [
        ("password", [*_ssh(address, "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1",
                            "-o", "PreferredAuthentications=password,keyboard-interactive"), root, "true"], askpass),
        ("other key", [*_ssh(address, "-o", "BatchMode=yes", "-i", "/tmp/id_other"), root, "true"], {}),
        ("other user", [*keyed, f"nobody@{address}", "true"], {}),
        ("command", [*keyed, root, "id"], {}),
        ("shell command", [*keyed, root, "sh -c 'touch /data/pwned; id'"], {}),
        ("pty shell", [*keyed, "-tt", root], {}),
        ("login shell", [*keyed, "-T", root], {}),
        ("stdio forward", [*keyed, "-W", "127.0.0.1:8022", root], {}),
        ("remote forward", [*keyed, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:2222:127.0.0.1:22",
                            root], {}),
        ("rsync up", ["rsync", "-a", "-e", rsh, "/tmp/payload/", f"{root}:../"], {}),
        ("rsync absolute", ["rsync", "-a", "-e", rsh, "/tmp/payload/", f"{root}:{jobs.WORK_DIR}/"], {}),
        ("rsync read back", ["rsync", "-a", "-e", rsh, f"{root}:.", "/tmp/back/"], {}),
        ("rsync relative", ["rsync", "-aR", "-e", rsh, "/tmp/./payload/authorized_keys", f"{root}:."], {}),
        ("rsync path", ["rsync", "-a", "-e", rsh, "--rsync-path=sh -c id; rsync", "/tmp/payload/", f"{root}:."], {}),
        ("asked for a password", ["test", "-e", "/tmp/asked"], {}),
    ]


# name -> (exit code or None for any failure, what stderr holds)
REFUSED: dict[str, tuple[int | None, str]] = {
    "password": (255, DENIED),
    "other key": (255, DENIED),
    "other user": (255, DENIED),
    "command": (1, forced.INVALID),
    "shell command": (1, forced.INVALID),
    "pty shell": (255, "PTY allocation request failed on channel 0"),
    "login shell": (1, forced.INVALID),
    "stdio forward": (255, "administratively prohibited"),
    "remote forward": (255, "remote port forwarding failed"),
    "rsync up": (None, ONLY_THE_VOLUME),
    "rsync absolute": (None, ONLY_THE_VOLUME),
    "rsync read back": (None, forced.WRITE_ONLY),
    "rsync relative": (None, "option -R is not allowed"),
    "rsync path": (None, forced.INVALID),
}


def _work_dir(lock: Lockdown) -> tuple[set[str], str]:
    """The mover's work directory: its entries (but the growing log) and the digest of its authorized_keys."""
    listing = set(lock.in_mover("ls", "-A", jobs.WORK_DIR).split()) - {"sshd.log"}
    keys = lock.in_mover("cat", f"{jobs.WORK_DIR}/authorized_keys")
    return listing, hashlib.sha256(keys.encode()).hexdigest()


def _sshd_log(lock: Lockdown) -> str:
    return lock.in_mover("cat", f"{jobs.WORK_DIR}/sshd.log")


def _push(lock: Lockdown, name: str, tree: str) -> tuple[int, str, str]:
    """`rsync -a TREE/ root@ADDRESS:.` with the source's key: the one request the forced command admits."""
    rsh = " ".join(_ssh(lock.address, "-o", "BatchMode=yes", "-i", "/tmp/id_source"))
    return lock.run_in_attacker([(name, ["rsync", "-a", "-e", rsh, f"{tree}/", f"root@{lock.address}:."], {})])[name]


def test_the_mover_pod_refuses_everything_but_rsync_into_the_volume(lockdown: Lockdown) -> None:
    service = lockdown.fleet.get("service", DST, "-n", NS)["spec"]  # what the attacks aim at: the Service
    assert (service["clusterIP"], service["ports"][0]["port"], service["ports"][0]["targetPort"]) == (
        lockdown.address, 22, jobs.MOVER_PORT), service
    before, work_before, log_before = snapshot_tree(lockdown.volume), _work_dir(lockdown), _sshd_log(lockdown)

    results = lockdown.run_in_attacker(_attacks(lockdown.address))

    report = "\n".join(f"{name}: {rc} {out!r} {err!r}" for name, (rc, out, err) in results.items())
    for name, (code, message) in REFUSED.items():
        rc, out, err = results[name]
        assert rc != 0 and (code is None or rc == code) and message in err, f"{name}:\n{report}"
        assert "uid=" not in out, f"{name} ran a command:\n{report}"
    assert results["asked for a password"][0] == 1, "sshd offered password authentication:\n" + report
    assert_trees_equal(before, lockdown.volume)  # no refused attempt wrote, munged or deleted anything
    assert _work_dir(lockdown) == work_before  # nor touched the mover's own files
    logged = _sshd_log(lockdown)[len(log_before):]
    for note in (f"rsync refused: {ONLY_THE_VOLUME}", f"rsync refused: {forced.WRITE_ONLY}",
                 "rsync refused: option -R is not allowed", "invalid command refused"):
        assert note in logged, f"{note!r} not in the mover's sshd log:\n{logged[-3000:]}"
    assert "rsync accepted" not in logged
    job = lockdown.fleet.get("job", DST, "-n", NS)
    assert (job.get("status") or {}).get("active") == 1, job.get("status")  # the iteration still runs


def test_admitted_rsync_lands_in_the_volume_and_no_link_leads_out(lockdown: Lockdown) -> None:
    _, keys_before = _work_dir(lockdown)

    pushed = _push(lockdown, "rsync into the volume", "/tmp/payload")
    assert pushed[0] == 0, pushed
    assert (lockdown.volume / "authorized_keys").read_text() == "planted\n"  # into /data, nowhere else
    assert os.readlink(lockdown.volume / "link") == forced.PREFIX + "sub/kept.txt"  # munged while receiving

    linked = _push(lockdown, "a link to the work directory", "/tmp/linked")
    assert linked[0] == 0, linked
    assert os.readlink(lockdown.volume / "escape") == forced.PREFIX + jobs.WORK_DIR  # leads nowhere
    through = _push(lockdown, "a write through that link", "/tmp/through")

    assert _work_dir(lockdown)[1] == keys_before, through  # the mover's authorized_keys is intact
    assert (lockdown.volume / "escape" / "authorized_keys").read_text() == "through a link\n", through


def _mask(names: tuple[str, ...]) -> int:
    return sum(1 << CAP_NUMBERS[n] for n in names)


def test_the_mover_pod_runs_with_the_rendered_privileges_and_no_token(lockdown: Lockdown) -> None:
    pod = lockdown.fleet.get("pod", lockdown.pod, "-n", NS)
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == jobs.account_name("destination", RD)
    assert not [v for v in spec["volumes"] if "projected" in v or v["name"].startswith("kube-api-access")]
    assert all(m["mountPath"] != TOKEN_DIR for m in spec["containers"][0]["volumeMounts"])

    seen = json.loads(lockdown.in_mover("python3", "-I", "-c", INSPECT))

    assert seen["token"] is False and seen["mounts"] == [], seen
    assert seen["root"] == EROFS, seen  # readOnlyRootFilesystem
    wanted = _mask(jobs.DESTINATION_CAPS)
    # the mover (`[python] volsync-mover destination ...`, not the sandbox's init naming it) and its sshd
    mover = [p for p in seen["procs"] if any(a.endswith("volsync-mover") for a in p["argv"][:2])
             and "destination" in p["argv"][1:3]]
    sshd = [p for p in seen["procs"] if p["argv"][0].split()[0].rstrip(":").endswith("sshd")]  # its proctitle
    assert len(mover) == 1 and sshd, seen["procs"]
    for proc in (*mover, *sshd):
        assert proc["uid"] == "0" and proc["nnp"] == "1", proc
        assert (int(proc["eff"], 16), int(proc["bnd"], 16)) == (wanted, wanted), proc
