"""The YAML this project ships, as package data: `CRD_DIR` holds every CRD the clusters serve;
`HUB_DIR` the hub's install (kustomize): its Namespace, ServiceAccount and least RBAC
(`HUB_RBAC`: what the embedded default applies too, the hub running there as a process) and the
Deployment a real hub cluster runs.

Launchers (the embedded default, the test harness) hand `CRD_DIR` to the API server with
`--crd-dir`; the API server itself knows no directory of ours.
"""

from pathlib import Path

CRD_DIR = Path(__file__).resolve().parent / "crds"
HUB_DIR = Path(__file__).resolve().parent / "hub"
HUB_RBAC = (HUB_DIR / "namespace.yaml", HUB_DIR / "rbac.yaml")
