"""The hub: addon manager (cluster/addon controllers, deployers, health, REST API)."""
