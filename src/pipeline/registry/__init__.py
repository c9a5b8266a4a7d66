"""MLflow tracking and the Model Registry: runs, the promotion gate, aliases, versions, model cards."""
