"""LoRA training: recipes, the loss weights, batching, chat templates and the run."""
