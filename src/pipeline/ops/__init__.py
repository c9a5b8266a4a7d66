"""Operating the pipeline: the retraining decision and notifications."""
