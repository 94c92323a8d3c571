"""A non-editable install (a wheel) carries what the code finds at run time: the CRDs as package
data (`manifests.CRD_DIR`), the node's standalone shim, every top-level package of ours."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_crds_and_every_package(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("volsync_addon-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    crds = {p.name for p in (ROOT / "manifests" / "crds").glob("*.yaml")}
    assert crds and {f"manifests/crds/{n}" for n in crds} <= names
    hub = {p.name for p in (ROOT / "manifests" / "hub").glob("*.yaml")}
    assert {"rbac.yaml", "deployment.yaml", "kustomization.yaml"} <= hub
    assert {f"manifests/hub/{n}" for n in hub} <= names
    assert "localcluster/node/shim.py" in names and "manifests/__init__.py" in names
    tops = {n.split("/")[0] for n in names if not n.startswith("volsync_addon-")}
    assert tops == {"agent", "api", "apiserver", "embedded", "hub", "kube", "localcluster", "manifests", "movers",
                    "osutil"}


def test_the_hub_install_runs_the_project_image_of_this_version() -> None:
    """`kubectl apply -k manifests/hub` deploys the image `scripts/image` builds for this version."""
    import yaml

    from api.images import default_image
    from manifests import HUB_DIR

    [deployment] = [d for d in yaml.safe_load_all((HUB_DIR / "deployment.yaml").read_text())
                    if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == default_image()
