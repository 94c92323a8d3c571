"""Storage as a CSI driver provides it: a provisioner, snapshotter and reclaimer for the driver
`local.csi.volsync-addon.io`, backed by a reflink storage pool (see `driver.py`)."""
