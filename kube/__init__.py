"""Kubernetes plumbing with no domain knowledge, and the embedded API server."""
