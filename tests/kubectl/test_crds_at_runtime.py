"""A CustomResourceDefinition applied at run time: served at once, discovered by kubectl, deleted with its objects.

kubectl caches discovery per server URL; the server's discovery changes under the same URL when a
CRD arrives, and kubectl refreshes its cache when a resource name is not found in it.
"""

from __future__ import annotations

import uuid

import pytest
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl


def crd(group: str) -> str:
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    kind: Gadget
    plural: gadgets
    singular: gadget
    shortNames: [gdg]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{type: integer, minimum: 1}}
              colour: {{type: string, default: grey}}
          status:
            type: object
            properties:
              ready: {{type: boolean}}
    additionalPrinterColumns:
    - {{name: Size, type: integer, jsonPath: .spec.size}}
    - {{name: Colour, type: string, jsonPath: .spec.colour}}
    - {{name: Ready, type: boolean, jsonPath: .status.ready}}
"""


def gadget(group: str, name: str, namespace: str, size: int | str) -> str:
    return f"""\
apiVersion: {group}/v1
kind: Gadget
metadata:
  name: {name}
  namespace: {namespace}
spec:
  size: {size}
"""


@pytest.fixture
def group() -> str:
    return f"t{uuid.uuid4().hex[:8]}.example.com"


def test_new_crd_is_served_and_discovered(apiserver: ApiServer, namespace: str, group: str) -> None:
    plural = f"gadgets.{group}"
    unknown = apiserver.kubectl("get", plural, "-n", namespace, check=False, context="cluster1")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == 'error: the server doesn\'t have a resource type "gadgets"'

    out = apiserver.apply_yaml(crd(group), context="cluster1").stdout
    assert out.strip() == f"customresourcedefinition.apiextensions.k8s.io/{plural} created"
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/{plural}", "--timeout=10s", context="cluster1")

    # Same URL, new discovery: kubectl finds the type (its cache said it did not exist).
    empty = apiserver.kubectl("get", plural, "-n", namespace, context="cluster1")
    assert empty.stderr.strip() == f"No resources found in {namespace} namespace."
    out = apiserver.apply_yaml(gadget(group, "g1", namespace, 3), context="cluster1").stdout
    assert out.strip() == f"gadget.{group}/g1 created"

    listed = apiserver.kubectl("get", plural, "-n", namespace, context="cluster1").stdout
    assert [r.split() for r in listed.splitlines()] == [["NAME", "SIZE", "COLOUR", "READY"], ["g1", "3", "grey"]]
    apiserver.kubectl("patch", plural, "g1", "-n", namespace, "--subresource=status", "--type=merge",
                      "-p", '{"status":{"ready":true}}', context="cluster1")
    rows = [r.split() for r in apiserver.kubectl("get", plural, "g1", "-n", namespace,
                                                 context="cluster1").stdout.splitlines()]
    assert rows[1] == ["g1", "3", "grey", "true"]

    resources = apiserver.kubectl("api-resources", "--api-group", group, context="cluster1").stdout.splitlines()
    assert resources[1].split() == ["gadgets", "gdg", f"{group}/v1", "true", "Gadget"]

    # The new schema is enforced.
    res = apiserver.kubectl("apply", "-f", "-", input=gadget(group, "g2", namespace, 0), check=False,
                            context="cluster1")
    assert res.returncode == 1
    assert "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1" in res.stderr


def test_deleting_a_crd_deletes_its_objects(apiserver: ApiServer, namespace: str, group: str) -> None:
    plural = f"gadgets.{group}"
    apiserver.apply_yaml(crd(group), context="cluster1")
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/{plural}", "--timeout=10s", context="cluster1")
    for name in ("g1", "g2"):
        apiserver.apply_yaml(gadget(group, name, namespace, 1), context="cluster1")
    names = apiserver.kubectl("get", plural, "-n", namespace, "-o", "name", context="cluster1").stdout.split()
    assert names == [f"gadget.{group}/g1", f"gadget.{group}/g2"]

    out = apiserver.kubectl("delete", "crd", plural, context="cluster1").stdout
    assert out.strip() == f'customresourcedefinition.apiextensions.k8s.io "{plural}" deleted'
    gone = apiserver.kubectl("get", "crd", plural, check=False, context="cluster1")
    assert gone.returncode == 1
    assert "(NotFound)" in gone.stderr

    # Defining the type again shows that the objects went with it, not just out of sight.
    apiserver.apply_yaml(crd(group), context="cluster1")
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/{plural}", "--timeout=10s", context="cluster1")
    again = apiserver.kubectl("get", plural, "-A", context="cluster1")
    assert again.stdout == ""
    assert again.stderr.strip() == "No resources found"
