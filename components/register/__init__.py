"""Register: the MLflow model registry behind an evaluation gate against the champion."""
