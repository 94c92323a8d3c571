"""Benchmark: rsync over ssh through a Service address against the destination Pod's IP directly.

    .venv/bin/python bench/network.py [--size-mib 1024] [--runs 3]

Needs root (network namespaces, nft). Builds a fabric of its own with two embedded clusters'
Pod networks (`localcluster.network`): a server Pod in cluster 1 runs a real sshd on port 8022
(key auth), a client Pod in cluster 1 and another in cluster 2 run `rsync -a -e ssh`. The Service
rules are the service proxy's own (`plan_services` + `render_table`, applied with `nft -f` in the
fabric, as `ServiceProxy.reconcile` does) for a LoadBalancer Service ``22 -> 8022``. Cases:

- **direct**: cluster-1 client -> server Pod IP:8022 (the reference, same run);
- **clusterip**: cluster-1 client -> clusterIP:22 (DNAT in the fabric);
- **lb**: cluster-2 client -> the LoadBalancer address of cluster 1 (cross-cluster, DNAT).

One file of random bytes (1 GiB), copied into an emptied destination; `sync` (not timed) before
every timed run; the order of the cases rotates from run to run. Prints medians and the ratios
against direct (target <= 1.05): of the medians, and the median of each run's ratio to that run's
direct copy (steadier when other work shares the CPUs), for wall time and for the CPU seconds of
both ends. Everything is removed at the end, also after a failure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import scratch, until  # noqa: E402

from localcluster.network import netcmd  # noqa: E402
from localcluster.network.addressing import ClusterNet, fabric_name  # noqa: E402
from localcluster.network.fabric import Fabric, lock_path  # noqa: E402
from localcluster.network.podnet import PodNetwork  # noqa: E402
from localcluster.network.servicerules import plan_services, render_table  # noqa: E402

SSHD_PORT = 8022
SERVICE_IP, LB_IP = "10.1.128.10", "172.20.1.1"


def sshd_config(work: Path) -> Path:
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)], check=True)
    (work / "authorized_keys").write_text((work / "client.pub").read_text())
    (work / "authorized_keys").chmod(0o600)
    cfg = work / "sshd_config"
    cfg.write_text(f"Port {SSHD_PORT}\nListenAddress 0.0.0.0\nHostKey {work / 'host'}\n"
                   f"AuthorizedKeysFile {work / 'authorized_keys'}\nPidFile {work / 'sshd.pid'}\n"
                   "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
                   "StrictModes no\nSetEnv SHLVL=1\n")
    return cfg


def wait_port(client_ns: str, ip: str, port: int, deadline: float = 20) -> None:
    until(lambda: subprocess.run(["ip", "netns", "exec", client_ns, "socat", "-T1", "/dev/null",
                                  f"TCP:{ip}:{port},connect-timeout=1"], capture_output=True).returncode == 0,
          f"{ip}:{port} answers from {client_ns}", deadline, 0.05)


def reaped_cpu(pid: int) -> float:
    """CPU seconds of the reaped descendants of `pid` (sshd's sessions once they ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rsync_once(client_ns: str, work: Path, src: Path, dst: Path, ip: str, port: int,
               sshd_pid: int) -> tuple[float, float]:
    """One timed copy: (wall seconds, CPU seconds of the client's and the server's processes)."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    subprocess.run(["sync"], check=True)
    cpu0 = children_cpu() + reaped_cpu(sshd_pid)
    ssh = (f"ssh -p {port} -i {work / 'client'} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
           "-o LogLevel=ERROR -c aes128-gcm@openssh.com")
    start = time.monotonic()
    subprocess.run(["ip", "netns", "exec", client_ns, "rsync", "-a", "-e", ssh, f"{src}/", f"root@{ip}:{dst}/"],
                   check=True)
    elapsed = time.monotonic() - start
    if (dst / "data.bin").stat().st_size != (src / "data.bin").stat().st_size:
        raise RuntimeError("destination differs from the source")
    end = time.monotonic() + 10  # the server's session is reaped by sshd shortly after the client ends
    cpu = children_cpu() + reaped_cpu(sshd_pid) - cpu0
    while time.monotonic() < end and len(sessions(sshd_pid)) > 0:
        time.sleep(0.05)
        cpu = children_cpu() + reaped_cpu(sshd_pid) - cpu0
    return elapsed, cpu


def sessions(sshd_pid: int) -> list[str]:
    """The live children of sshd (sessions still running)."""
    return [c for c in Path(f"/proc/{sshd_pid}/task/{sshd_pid}/children").read_text().split() if c]


def program_service(fabric: Fabric, server_ip: str) -> None:
    """The LoadBalancer Service `bench/ssh` (22 -> 8022) as the service proxy programs it."""
    svc = {"metadata": {"namespace": "bench", "name": "ssh"},
           "spec": {"type": "LoadBalancer", "clusterIP": SERVICE_IP,
                    "ports": [{"name": "ssh", "port": 22, "targetPort": SSHD_PORT}]},
           "status": {"loadBalancer": {"ingress": [{"ip": LB_IP, "ipMode": "VIP"}]}}}
    eps = {"metadata": {"namespace": "bench", "name": "ssh-1", "labels": {"kubernetes.io/service-name": "ssh"}},
           "addressType": "IPv4", "ports": [{"name": "ssh", "port": SSHD_PORT, "protocol": "TCP"}],
           "endpoints": [{"addresses": [server_ip], "conditions": {"ready": True}}]}
    for net in (ClusterNet(1), ClusterNet(2)):
        services = [svc] if net.index == 1 else []
        netcmd.nft_apply(fabric.netns, render_table(net, plan_services(net, services, [eps], [])))


Samples = dict[str, list[tuple[float, float]]]


def measure(args: argparse.Namespace, fabric: Fabric, work: Path) -> Samples:
    c1 = PodNetwork(fabric, ClusterNet(1), work / "c1")
    c2 = PodNetwork(fabric, ClusterNet(2), work / "c2")
    server, client1, client2 = c1.attach("bench-server"), c1.attach("bench-client"), c2.attach("bench-client2")
    program_service(fabric, server.ip)
    src, dst = work / "src", work / "dst"
    src.mkdir()
    with (src / "data.bin").open("wb") as fh:
        for _ in range(args.size_mib):
            fh.write(os.urandom(1 << 20))
    ns = {k: Path(a.netns_path).name for k, a in (("server", server), ("c1", client1), ("c2", client2))}
    cfg = sshd_config(work)
    sshd = subprocess.Popen(["ip", "netns", "exec", ns["server"], "/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)],
                            stderr=(work / "sshd.log").open("wb"))
    try:
        cases = {"direct": (ns["c1"], server.ip, SSHD_PORT), "clusterip": (ns["c1"], SERVICE_IP, 22),
                 "lb": (ns["c2"], LB_IP, 22)}
        for client_ns, ip, port in cases.values():
            wait_port(client_ns, ip, port)
        times: Samples = {k: [] for k in cases}
        order = list(cases)
        for run in range(args.runs):
            for name in order[run % len(order):] + order[:run % len(order)]:
                client_ns, ip, port = cases[name]
                times[name].append(rsync_once(client_ns, work, src, dst, ip, port, sshd.pid))
                wall, cpu = times[name][-1]
                print(f"run {run + 1} {name:9s} {wall:7.2f} s wall {cpu:7.2f} s cpu", flush=True)
        return times
    finally:
        sshd.terminate()
        sshd.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    fabric = Fabric(fabric_name(f"bench-{uuid.uuid4()}"))
    with scratch("bench-network-") as work:
        try:
            fabric.ensure()
            times = measure(args, fabric, work)
        finally:
            fabric.remove()
            lock_path(fabric.name).unlink(missing_ok=True)
    report(args, times)
    return 0


def report(args: argparse.Namespace, times: Samples) -> None:
    walls = {k: [w for w, _ in v] for k, v in times.items()}
    cpus = {k: [c for _, c in v] for k, v in times.items()}
    direct_wall, direct_cpu = statistics.median(walls["direct"]), statistics.median(cpus["direct"])
    mb = args.size_mib * (1 << 20) / 1e6
    print(f"\n{args.size_mib} MiB, rsync -a over ssh, {args.runs} runs, median (min) seconds; load {os.getloadavg()}")
    for name in times:
        med, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        # the same run's direct copy is the closest reference on a shared machine: median of per-run ratios
        paired = statistics.median(w / d for w, d in zip(walls[name], walls["direct"], strict=True))
        print(f"  {name:9s} wall {med:7.2f} ({min(walls[name]):.2f})  {mb / med:6.1f} MB/s  "
              f"ratio {med / direct_wall:.3f} (per-run {paired:.3f}) | cpu {cpu:6.2f} ({min(cpus[name]):.2f}) "
              f"ratio {cpu / direct_cpu:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
