"""Data movers: rsync over a locked-down OpenSSH connection, independent of Kubernetes."""
