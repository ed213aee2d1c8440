"""Several interchangeable nodes: live state and coordination in Redis (docs/cluster.md)."""
