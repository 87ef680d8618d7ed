"""A/B deployment of registered model versions: manifests for KServe and Seldon, RBAC, local serving."""
