"""What a klusterlet does on an embedded managed cluster (the work agent applies the hub's
ManifestWorks; the registration agent keeps the ManagedCluster and its lease), and the OCM
hub-side cluster manager run by the hub cluster's process."""
