"""Model, losses, metrics, model_fn and the estimator-style runner."""
