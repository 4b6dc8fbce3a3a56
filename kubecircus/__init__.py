"""kubecircus: runs CIRCUS CS plug-ins as isolated Kubernetes Pods."""

__version__ = "0.1.0"
