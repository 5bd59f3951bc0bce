"""Using a trained model: the one loaded-model adapter, predict, evaluate, layer tracing,
activation maps and embeddings."""
