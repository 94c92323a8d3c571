"""Official-client factory: one `ApiClient` from a kubeconfig/context, in-cluster config, or $KUBECONFIG."""

from __future__ import annotations

import kubernetes


def load(kubeconfig: str | None = None, context: str | None = None) -> kubernetes.client.ApiClient:
    """An ApiClient for the given kubeconfig and context; without either, in-cluster config when
    running in a pod, else the default kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    if kubeconfig or context:
        return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call,no-any-return]
            config_file=kubeconfig, context=context)
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        return kubernetes.client.ApiClient()
    except kubernetes.config.ConfigException:
        return kubernetes.config.new_client_from_config()  # type: ignore[no-untyped-call,no-any-return]


def close(api: kubernetes.client.ApiClient) -> None:
    api.close()  # type: ignore[no-untyped-call]
