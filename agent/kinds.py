"""The VolSync kinds the agent serves, as `Resource` descriptors (the wire names live in their CRDs)."""

from kube.rest import Resource

REPLICATION_SOURCES = Resource("volsync.backube", "v1alpha1", "replicationsources", "ReplicationSource")
REPLICATION_DESTINATIONS = Resource("volsync.backube", "v1alpha1", "replicationdestinations", "ReplicationDestination")
