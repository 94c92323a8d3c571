"""The YAML this project ships, as package data: `CRD_DIR` holds every CRD the clusters serve;
`HUB_DIR` the hub's install for an OCM hub cluster (`kubectl apply -k`; its kustomization.yaml is
the one list): Namespace, ServiceAccount and least RBAC, the hub Deployment and its LoadBalancer
Service, the ClusterManagementAddOn `volsync` and its default AddOnDeploymentConfig.

`HUB_RBAC` is the part the embedded default applies too (Namespace, ServiceAccount, RBAC only: its
hub runs as a host process with that ServiceAccount's token, not as the Deployment).

Launchers (the embedded default, the test harness) hand `CRD_DIR` to the API server with
`--crd-dir`; the API server itself knows no directory of ours.
"""

from pathlib import Path

CRD_DIR = Path(__file__).resolve().parent / "crds"
HUB_DIR = Path(__file__).resolve().parent / "hub"
HUB_RBAC = (HUB_DIR / "namespace.yaml", HUB_DIR / "rbac.yaml")
