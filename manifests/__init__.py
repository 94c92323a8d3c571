"""The YAML this project ships, as package data: `CRD_DIR` holds every CRD the clusters serve.

Launchers (the embedded default, the test harness) hand `CRD_DIR` to the API server with
`--crd-dir`; the API server itself knows no directory of ours.
"""

from pathlib import Path

CRD_DIR = Path(__file__).resolve().parent / "crds"
