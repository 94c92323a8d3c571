"""The kubelet's streaming API as the API server reaches it: container logs, exec (WebSocket
channel protocols v4/v5) and port-forward (SPDY/3.1, tunnelled in WebSocket messages).

`localcluster/node/kubeletserver.py` serves these over HTTPS with client certificates; the modules
here are the protocols, each usable on its own: `logs` (CRI log files to plain text), `channels`
(the remotecommand channel protocol of `kubectl exec`), `spdy` (a minimal SPDY/3.1 server session),
`portforward` (kubelet's stream-pair semantics on top of it) and `netns` (dialling inside a Pod's
network namespace).
"""
