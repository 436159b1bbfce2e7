"""HealthOS models: offline training, evaluation and export (scikit-learn, ONNX, MLflow)."""
