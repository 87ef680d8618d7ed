"""KFP components of kfp-mlops (installed as ``kfp_mlops.components``)."""
