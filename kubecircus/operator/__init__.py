"""The kopf operator: handlers, reconcile decisions, manifest builders, the scheduler loop."""
