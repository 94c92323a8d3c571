"""The embedded clusters' network: Pod namespaces, Service forwarding and the "cloud" load balancer.

Everything lives inside one *fabric* network namespace per installation and the Pods' own
namespaces; nothing is ever added to the host's namespace, and nothing can reach off the machine.

Wiring, in the cluster process (cluster k of the fleet, `kube`/`runtime` of that cluster):

    fabric.sweep_stale()                           # once, before ensure: what a crashed run left
    fab = Fabric(fabric_name(installation_id)).ensure()   # also holds the fabric's lock
    pods = PodNetwork(fab, ClusterNet(k), state_dir)      # the kubelet's `PodNetwork` seam
    proxy = ServiceProxy(runtime, kube, fab, ClusterNet(k))
    lb = CloudLoadBalancer(runtime, kube, ClusterNet(k))
    runtime.start() ... proxy.stop(); lb.stop(); runtime.stop()

Modules: `addressing` (the plan, pure), `fabric`, `podnet`, `servicerules` (pure: Services and
EndpointSlices to an nft table), `proxy` (the reconciler), `forwarder` (user space, for loopback
endpoints such as the API server's), `cloudlb`, `netcmd` (the one way to run ip/nft/sysctl).
"""
