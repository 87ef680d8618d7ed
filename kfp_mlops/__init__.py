"""kfp-mlops: Kubeflow Pipelines components for the whole ML lifecycle.

Components live in ``kfp_mlops.components.<name>`` and pipelines in
``kfp_mlops.pipelines.<name>``.
"""

from kfp_mlops._version import __version__

__all__ = ["__version__"]
