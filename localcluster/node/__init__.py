"""The embedded cluster's node: the kubelet (`kubelet.Node`: registration, scheduling, Pod lifecycle
through the pure `podplans`/`podstatus`, executed by `podsync`) on top of the container runtime
(`runtime`, `shim`, `sandbox`, `images`, `layout`: Pods as bubblewrap sandboxes whose state lives in
files) and the Pod network seam (`netseam`); `kubeletserver` serves logs, exec and port-forward."""
