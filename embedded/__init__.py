"""The composition root of the embedded default: the one place that wires the emulated platform
(`apiserver`, `localcluster`) to the hub. `volsync-hub` without `--kubeconfig` starts here."""
