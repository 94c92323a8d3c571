"""Wire contracts: typed models of our CRDs, the OCM objects we touch, and the hub REST schemas."""
