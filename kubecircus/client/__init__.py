"""The ``kubecircus`` commands for people: submit a folder of DICOM files to a plug-in, follow the
job, read its log and fetch its results, without writing a manifest.

One module per concern: ``errors`` (one-line failures and exit codes), ``jobs`` (job names,
bodies, the status table: pure), ``kubeapi`` (kubeconfig, namespace, the PluginJob API),
``store`` (reaching the object store, through a port-forward when needed), ``transfer``
(parallel upload and download with a progress bar), ``follow`` (a job until it ends) and
``commands`` (the subcommands and their parser).
"""
