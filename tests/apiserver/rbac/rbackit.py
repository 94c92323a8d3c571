"""Helpers for the RBAC acceptance tests: one real `volsync-apiserver` with authentication (its default:
HTTPS, bearer tokens, `--authorization-mode RBAC`), driven by the real `/usr/bin/kubectl` as the admin
(group `system:masters`), as an impersonated user (`--as`, `--as-group`) or with a ServiceAccount's own
token (`--token`), and the parsers for what kubectl prints (`auth whoami`, `auth can-i [--list]`)."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support.apiserver import ApiServer

CLUSTER = "cluster1"
_COLUMNS = re.compile(r"\s{2,}")


def rbac_server(data_dir: Path) -> ApiServer:
    """A one-cluster server with kube-apiserver's default authentication and authorization."""
    return ApiServer(data_dir, clusters=(CLUSTER,), auth=True)


@dataclass
class Kube:
    """The running server and the ways a test calls it."""

    server: ApiServer

    def run(self, *args: str, token: str | None = None, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`kubectl ARGS` on the cluster, as the admin or, with `token`, as that token's owner."""
        auth = ("--token", token) if token is not None else ()
        return self.server.kubectl(*auth, *args, context=CLUSTER, check=check, input=input)

    def ok(self, *args: str, token: str | None = None, input: str | None = None) -> str:
        return self.run(*args, token=token, check=True, input=input).stdout

    def json(self, *args: str, token: str | None = None) -> Any:
        return json.loads(self.ok(*args, "-o", "json", token=token))

    def apply(self, manifest: Any) -> None:
        self.ok("apply", "-f", "-", input=json.dumps(manifest))

    def token(self, namespace: str, account: str, *args: str) -> str:
        """`kubectl create token ACCOUNT -n NAMESPACE ARGS` (as the admin)."""
        return self.ok("create", "token", account, "-n", namespace, *args).strip()

    def can_i(self, *args: str, token: str | None = None) -> tuple[str, int]:
        """`kubectl auth can-i ARGS`: (its stdout's first line, its exit code); when kubectl failed
        instead of answering, the first line is `ERROR <its stderr>` (a mismatch that says why)."""
        res = self.run("auth", "can-i", *args, token=token)
        lines = res.stdout.splitlines()
        assert res.returncode in (0, 1), f"can-i {args}: {res.returncode}\n{res.stdout}\n{res.stderr}"
        return (lines[0] if lines else f"ERROR {res.stderr.strip()}"), res.returncode

    def can_i_list(self, *args: str, token: str | None = None) -> set[tuple[str, ...]]:
        """The distinct rows of `kubectl auth can-i --list ARGS` (header checked and dropped)."""
        lines = self.ok("auth", "can-i", "--list", *args, token=token).splitlines()
        assert _COLUMNS.split(lines[0].strip()) == ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]
        return {list_row(line) for line in lines[1:] if line.strip()}

    def whoami(self, token: str | None = None) -> dict[str, str]:
        """`kubectl auth whoami` (the table form) as attribute -> value."""
        lines = self.ok("auth", "whoami", token=token).splitlines()
        assert _COLUMNS.split(lines[0].strip()) == ["ATTRIBUTE", "VALUE"], lines
        return dict(_COLUMNS.split(line.strip(), maxsplit=1) for line in lines[1:])

    def http_status(self, path: str, token: str) -> int:
        """The HTTP status of a raw GET with `token` (what kubectl turns into its messages)."""
        context = ssl.create_default_context(cafile=str(self.server.ca_file))
        with httpx.Client(trust_env=False, verify=context, timeout=30) as http:
            return http.get(self.server.cluster_url(CLUSTER) + path,
                            headers={"Authorization": f"Bearer {token}"}).status_code


def list_row(line: str) -> tuple[str, ...]:
    """One row of `can-i --list`: (resource, non-resource URLs, resource names, verbs); the first column
    is blank for a non-resource rule."""
    cells = _COLUMNS.split(line.strip())
    return ("", *cells) if line[:1] == " " else tuple(cells)


def role(namespace: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace}, "rules": rules}


def rule(verbs: list[str], resources: list[str], group: str = "", names: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


def sa_user(namespace: str, account: str) -> str:
    return f"system:serviceaccount:{namespace}:{account}"


def sa_groups(namespace: str) -> str:
    """The groups of a ServiceAccount as `kubectl auth whoami` prints them."""
    return f"[system:serviceaccounts system:serviceaccounts:{namespace} system:authenticated]"


def forbidden(user: str, verb: str, resource: str, namespace: str, group: str = "") -> str:
    """kube-apiserver's wording of an RBAC denial, as kubectl prints it."""
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (f'Error from server (Forbidden): {resource} is forbidden: User "{user}" cannot {verb} resource '
            f'"{resource}" in API group "{group}" {where}')
