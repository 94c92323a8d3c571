"""The embedded clusters' network: Pod namespaces, Service forwarding and the "cloud" load balancer.

Everything lives inside one *fabric* network namespace per installation and the Pods' own
namespaces; nothing is ever added to the host's namespace, and nothing can reach off the machine.
"""
