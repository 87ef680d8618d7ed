"""Train: a PyTorch tabular model with MLflow tracking, checkpoint/resume, GPU and DDP."""
