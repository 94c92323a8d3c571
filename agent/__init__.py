"""The per-cluster agent: replication controller, movers, platforms, hub reporter."""
