"""What authorization costs: the embedded API server with authentication on, RBAC vs AlwaysAllow, same run.

    .venv/bin/python bench/authz.py [--objects 3000] [--list-runs 30] [--rounds 6] [--quick] [--keep] [--calibrate]

Starts two real `volsync-apiserver` processes on 127.0.0.1, both with the server's default
authentication (HTTPS, bearer tokens), one with `--authorization-mode RBAC` and one with
`--authorization-mode AlwaysAllow`. In each, as the admin: namespace `bench-authz`, a ServiceAccount
`bencher` bound to the default ClusterRole `edit` there, and ~500 bindings of other subjects (250
RoleBindings in `bench-authz` to users/groups/other accounts with view/edit/admin, 250
ClusterRoleBindings to users with view), so the authorizer has something to search. Then, as the
ServiceAccount's own token (TokenRequest; NOT the admin, whose group `system:masters` short-circuits):

- creates/s: N ConfigMaps (~200 bytes of data) sequentially on one keep-alive client;
- uncached creates/s: N/5 more, as the same account but impersonated by the admin with a group
  made up per request, so the RBAC authorizer cannot reuse a compiled (user, groups, namespace)
  entry: what a decision costs when its cache does not help (both modes pay the impersonation);
- list latency: GET of the ConfigMaps (whole body read), median and p99 of `--list-runs`.

The two servers are measured alternately in `--rounds` slices (creates) and one list at a time
(lists), the order flipping every slice, so load from other work on the machine falls on both
alike. Before timing, a sanity check: the account's list of Secrets is 403 under RBAC and 200 under
AlwaysAllow (the modes differ; the token works).

Prints the table and `authz cost: writes W, lists L` where W = creates/s RBAC / AlwaysAllow (the
budget of issue 9: >= 0.90) and L = median list latency RBAC / AlwaysAllow (budget <= 1.10); the
server CPU per operation of each mode is given too (less sensitive to noise than wall time).
Writes JSON to bench/results/authz-<UTC timestamp>.json. Only 127.0.0.1 is contacted.

`--calibrate` runs the same procedure with AlwaysAllow on both sides (an A/A run) and prints the
same ratios as `noise floor`: how far two identical servers differ on this machine at this load. A
cost ratio is meaningful only beyond that (on a shared 2-core machine, wall-time ratios of an A/A run
were seen 0.7-1.3; server CPU per operation stays within a few percent).
"""

from __future__ import annotations

import argparse
import os
import ssl
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from common import (
    ROOT,
    ServerProcess,
    check,
    http_client,
    machine_facts,
    percentile,
    render_table,
    scratch,
    start_apiserver,
    threads_cpu,
    utc_stamp,
    write_results,
)

# bench/apiserver.py (the module next to this one, not the `apiserver` package: sys.path[0] is bench/)
from apiserver import configmap, timed_get

NS = "bench-authz"
ACCOUNT = "bencher"
OTHER_ROLE_BINDINGS = 250
OTHER_CLUSTER_ROLE_BINDINGS = 250
MODES = ("RBAC", "AlwaysAllow")


@dataclass
class AuthServer:
    """One `volsync-apiserver` with authentication on (its default), cluster `hub`, in `mode`."""

    data_dir: Path
    mode: str
    process: ServerProcess | None = None
    url: str = ""
    ca: str = ""
    admin_token: str = ""

    def start(self) -> AuthServer:
        self.process, self.url = start_apiserver(self.data_dir, ("hub",), "--authorization-mode", self.mode,
                                                 insecure=False)
        if not self.url.startswith("https://"):
            raise RuntimeError(f"apiserver is not serving HTTPS: {self.url}")
        self.ca = str(self.process.ready["ca"])
        config = yaml.safe_load(Path(self.process.ready["kubeconfig"]).read_text())
        self.admin_token = config["users"][0]["user"]["token"]
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self, token: str) -> httpx.Client:
        return http_client(self.url, verify=ssl.create_default_context(cafile=self.ca),
                           headers={"Authorization": f"Bearer {token}"})

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(15)
            self.process = None


def _binding(kind: str, name: str, role: str, subject: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if kind == "ClusterRoleBinding" else {"name": name, "namespace": NS}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [subject]}


def _other_subject(i: int) -> dict[str, str]:
    if i % 3 == 0:
        return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": f"team-{i}"}
    if i % 3 == 1:
        return {"kind": "ServiceAccount", "name": f"other-{i}", "namespace": NS}
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": f"user-{i}"}


def prepare(server: AuthServer) -> str:
    """As the admin: the namespace, the account bound to `edit`, the other bindings; the account's token."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    with server.client(server.admin_token) as c:
        check(c.post("/api/v1/namespaces", json={"metadata": {"name": NS}}), 201)
        check(c.post(f"/api/v1/namespaces/{NS}/serviceaccounts", json={"metadata": {"name": ACCOUNT}}), 201)
        for i in range(OTHER_ROLE_BINDINGS):
            body = _binding("RoleBinding", f"other-{i}", ("view", "edit", "admin")[i % 3], _other_subject(i))
            check(c.post(f"{rbac}/namespaces/{NS}/rolebindings", json=body), 201)
        for i in range(OTHER_CLUSTER_ROLE_BINDINGS):
            subject = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": f"cluster-user-{i}"}
            check(c.post(f"{rbac}/clusterrolebindings", json=_binding("ClusterRoleBinding", f"other-{i}", "view",
                                                                        subject)), 201)
        mine = _binding("RoleBinding", "bencher-edit", "edit", {"kind": "ServiceAccount", "name": ACCOUNT,
                                                                "namespace": NS})
        check(c.post(f"{rbac}/namespaces/{NS}/rolebindings", json=mine), 201)
        answer = check(c.post(f"/api/v1/namespaces/{NS}/serviceaccounts/{ACCOUNT}/token",
                               json={"spec": {"expirationSeconds": 7200}}), 201)
    token: str = answer["status"]["token"]
    return token


def sanity(server: AuthServer, token: str) -> int:
    """The status of the account's cluster-wide list of Secrets: 403 under RBAC (its `edit` is in one
    namespace), 200 under AlwaysAllow."""
    with server.client(token) as c:
        return c.get("/api/v1/secrets").status_code


@dataclass
class Side:
    """One mode's server, its account's token and client, and what was measured."""

    server: AuthServer
    token: str
    client: httpx.Client
    admin: httpx.Client
    create_s: float = 0.0
    cold_s: float = 0.0
    cold_created: int = 0
    created: int = 0
    create_cpu_s: float = 0.0
    list_ms: list[float] = field(default_factory=list)
    list_cpu_s: float = 0.0


def create_slice(side: Side, indexes: range) -> None:
    path = f"/api/v1/namespaces/{NS}/configmaps"
    cpu0, t0 = threads_cpu(side.server.pid), time.perf_counter()
    for i in indexes:
        check(side.client.post(path, json=configmap(i, NS)), 201)
    side.create_s += time.perf_counter() - t0
    side.create_cpu_s += threads_cpu(side.server.pid) - cpu0
    side.created += len(indexes)


def cold_slice(side: Side, indexes: range) -> None:
    """Creates as the account, impersonated by the admin with a group made up per request, so no two
    requests share the authorizer's compiled (user, groups, namespace) entry: every decision is cold."""
    path = f"/api/v1/namespaces/{NS}/configmaps"
    t0 = time.perf_counter()
    for i in indexes:
        headers = [("Impersonate-User", f"system:serviceaccount:{NS}:{ACCOUNT}"),
                   ("Impersonate-Group", "system:serviceaccounts"),
                   ("Impersonate-Group", f"system:serviceaccounts:{NS}"),
                   ("Impersonate-Group", f"cold-{i}")]
        check(side.admin.post(path, json=configmap(i, NS), headers=headers), 201)
    side.cold_s += time.perf_counter() - t0
    side.cold_created += len(indexes)


def list_once(side: Side, want: int) -> None:
    cpu0 = threads_cpu(side.server.pid)
    elapsed, count, _ = timed_get(side.client, f"/api/v1/namespaces/{NS}/configmaps", {})
    side.list_cpu_s += threads_cpu(side.server.pid) - cpu0
    if count != want:
        raise RuntimeError(f"{side.server.mode}: listed {count} ConfigMaps, expected {want}")
    side.list_ms.append(elapsed * 1000)


def measure(sides: list[Side], n: int, rounds: int, list_runs: int) -> None:
    """Creates in alternating slices, then alternating lists (of the n and what the namespace already
    held: its kube-root-ca.crt)."""
    path = f"/api/v1/namespaces/{NS}/configmaps"
    held = {id(side): len(check(side.client.get(path), 200)["items"]) for side in sides}
    for side in sides:  # warm both (code paths, connection, TLS) outside the clock
        check(side.client.post(f"/api/v1/namespaces/{NS}/configmaps", json=configmap(n, NS) | {
            "metadata": {"name": "warm-up", "namespace": NS}}), 201)
        side.client.get(f"/api/v1/namespaces/{NS}/configmaps").raise_for_status()
    step = -(-n // rounds)
    for k, start in enumerate(range(0, n, step)):
        for side in sides if k % 2 == 0 else reversed(sides):
            create_slice(side, range(start, min(n, start + step)))
    cold = max(rounds, n // 5)
    for side in sides:
        cold_slice(side, range(n + 1, n + 2))  # warm the impersonation path outside the clock
    step = -(-cold // rounds)
    for k, start in enumerate(range(n + 2, n + 2 + cold, step)):
        for side in sides if k % 2 == 0 else reversed(sides):
            cold_slice(side, range(start, min(n + 2 + cold, start + step)))
    for side in sides:
        check(side.client.delete(f"/api/v1/namespaces/{NS}/configmaps/warm-up"), 200)
    for k in range(list_runs):
        for side in sides if k % 2 == 0 else reversed(sides):
            list_once(side, n + 1 + cold + held[id(side)])


def summary(side: Side) -> dict[str, Any]:
    return {
        "mode": side.server.mode,
        "creates_per_s": side.created / side.create_s,
        "create_server_cpu_us": 1e6 * side.create_cpu_s / side.created,
        "cold_creates_per_s": side.cold_created / side.cold_s,
        "list_median_ms": statistics.median(side.list_ms),
        "list_p99_ms": percentile(side.list_ms, 99),
        "list_server_cpu_ms": 1e3 * side.list_cpu_s / len(side.list_ms),
        "list_ms_runs": side.list_ms,
    }


def render(on: dict[str, Any], off: dict[str, Any], n: int) -> tuple[str, dict[str, float]]:
    ratios = {"writes": on["creates_per_s"] / off["creates_per_s"],
              "lists": on["list_median_ms"] / off["list_median_ms"],
              "lists_p99": on["list_p99_ms"] / off["list_p99_ms"],
              "cold_writes": on["cold_creates_per_s"] / off["cold_creates_per_s"],
              "write_server_cpu": on["create_server_cpu_us"] / off["create_server_cpu_us"],
              "list_server_cpu": on["list_server_cpu_ms"] / off["list_server_cpu_ms"]}
    rows = [("mode", "creates/s", "srv CPU/create", "list median", "list p99", "srv CPU/list")]
    for r in (on, off):
        rows.append((r["mode"], f"{r['creates_per_s']:,.0f}", f"{r['create_server_cpu_us']:,.0f} µs",
                     f"{r['list_median_ms']:,.1f} ms", f"{r['list_p99_ms']:,.1f} ms",
                     f"{r['list_server_cpu_ms']:,.1f} ms"))
    lines = ["", f"authorization benchmark: {n:,} ConfigMaps as a ServiceAccount bound to `edit` among "
             f"{OTHER_ROLE_BINDINGS + OTHER_CLUSTER_ROLE_BINDINGS} other bindings"]
    lines += render_table(rows)
    lines.append(f"server CPU on/off: creates {ratios['write_server_cpu']:.2f}, lists {ratios['list_server_cpu']:.2f};"
                 f" list p99 on/off {ratios['lists_p99']:.2f}")
    lines.append("uncached decisions (impersonated, a new group per request): creates/s "
                 f"{on['cold_creates_per_s']:,.0f} on, {off['cold_creates_per_s']:,.0f} off, "
                 f"on/off {ratios['cold_writes']:.2f}")
    lines.append(f"authz cost: writes {ratios['writes']:.2f}, lists {ratios['lists']:.2f}"
                 "  (creates/s RBAC/AlwaysAllow, budget >= 0.90; median list latency RBAC/AlwaysAllow, budget <= 1.10)")
    return "\n".join(lines), ratios


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    modes = ("AlwaysAllow", "AlwaysAllow") if args.calibrate else MODES
    servers = [AuthServer(work / f"{i}-{mode.lower()}", mode) for i, mode in enumerate(modes)]
    sides: list[Side] = []
    try:
        for server in servers:
            print(f"starting the apiserver with --authorization-mode {server.mode} ...", flush=True)
            server.start()
            token = prepare(server)
            sides.append(Side(server, token, server.client(token), server.client(server.admin_token)))
        checks = {f"{i}-{side.server.mode}": sanity(side.server, side.token) for i, side in enumerate(sides)}
        expected = {f"{i}-{mode}": 403 if mode == "RBAC" else 200 for i, mode in enumerate(modes)}
        if checks != expected:
            raise RuntimeError(f"the modes do not answer as they must (account lists Secrets cluster-wide): {checks}")
        print(f"measuring {args.objects} creates in {args.rounds} alternating slices and {args.list_runs} lists "
              "per mode ...", flush=True)
        measure(sides, args.objects, args.rounds, args.list_runs)
        return {"on": summary(sides[0]), "off": summary(sides[1]), "sanity": checks}
    finally:
        for side in sides:
            side.client.close()
            side.admin.close()
        for server in servers:
            server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=None, help="ConfigMaps per mode (default 3000; quick 500)")
    p.add_argument("--list-runs", type=int, default=None, help="lists per mode (default 30; quick 15)")
    p.add_argument("--rounds", type=int, default=6, help="alternating create slices per mode")
    p.add_argument("--quick", action="store_true", help="500 objects, 15 lists (< 1 min)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    p.add_argument("--calibrate", action="store_true", help="A/A: AlwaysAllow on both sides, the noise floor")
    args = p.parse_args(argv)
    args.objects = args.objects or (500 if args.quick else 3000)
    args.list_runs = args.list_runs or (15 if args.quick else 30)
    if args.objects < args.rounds:
        p.error("--objects must be at least --rounds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_facts("httpx", "uvicorn", "starlette", "httptools", "uvloop")
    t0 = time.perf_counter()
    with scratch("volsync-bench-authz-", args.keep) as work:
        result = run(args, work)
    text, ratios = render(result["on"], result["off"], args.objects)
    if args.calibrate:  # both sides AlwaysAllow: the same figures are the noise floor, not a cost
        text = text.replace("authz cost:", "noise floor (A/A, both AlwaysAllow; not a cost):").replace(
            "(creates/s RBAC/AlwaysAllow, budget >= 0.90; median list latency RBAC/AlwaysAllow, budget <= 1.10)",
            "(first server / second server)")
    print(text)
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    stamp = utc_stamp()
    doc = {"timestamp": stamp, "config": {"objects": args.objects, "list_runs": args.list_runs,
                                          "rounds": args.rounds, "quick": args.quick, "calibrate": args.calibrate,
                                          "other_bindings": OTHER_ROLE_BINDINGS + OTHER_CLUSTER_ROLE_BINDINGS},
           "machine": machine, "ratios": ratios, **result, "total_s": time.perf_counter() - t0}
    out = write_results(f"authz{'-calibrate' if args.calibrate else ''}", doc, stamp)
    print(f"\ntotal {doc['total_s']:.1f} s; results written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
