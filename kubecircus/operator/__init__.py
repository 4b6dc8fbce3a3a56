"""The kopf operator: handlers, reconcile decisions, manifest builders (operator issue)."""
