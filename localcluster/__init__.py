"""What a real cluster provides and the embedded default must emulate: node, workload
controllers, network, storage and the launcher that starts and adopts them (see docs/architecture.md)."""
