"""KFP pipelines of kfp-mlops (installed as ``kfp_mlops.pipelines``)."""
