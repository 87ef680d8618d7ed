"""Multi-node training: run the trainer as a Kubeflow Trainer TrainJob or a training-operator PyTorchJob."""
