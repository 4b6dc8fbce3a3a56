"""The kopf operator (installed as ``kubecircus.operator``; never importable as plain ``operator``)."""
