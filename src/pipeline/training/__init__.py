"""Fine-tuning: tokenization, batching, the model, the training loop, checkpoints and warm start."""
