"""Test support: real processes (the embedded API server) and real clients (kubectl, kubernetes)."""
