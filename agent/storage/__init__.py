"""The local platform's storage: host directories behind PersistentVolumeClaims and VolumeSnapshots."""
