"""The object store, as kubecircus uses it: a thin layer over the ``minio`` client (S3 + STS).

Nothing here is MinIO-specific except ``admin.py`` (bucket and user set-up for the bundled
store): any S3-compatible store with STS AssumeRole can stand in. ``layout`` and ``policy`` are
pure (key names, the namespace rule, session policies); ``client`` and ``sts`` do the I/O.
"""
