"""An embedded Kubernetes-compatible API server that real kubectl and the official client accept."""
