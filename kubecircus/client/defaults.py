"""Names the client assumes unless told otherwise (the chart's release ``kubecircus``). Pure and
free of third-party imports: ``kubecircus.cli`` builds every parser with them, also in the worker
image, which has neither the Kubernetes client nor rich."""

SYSTEM_NAMESPACE = "kubecircus-system"
STORE_SERVICE = "kubecircus-minio"
ADMIN_SECRET = "kubecircus-objectstore"
STORE_PORT = 9000
INPUT_BUCKET = "dicom"
COMMANDS = ("submit", "status", "logs", "results", "cancel")
