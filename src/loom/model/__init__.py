"""Model shapes (presets), construction and loading. Models are plain transformers Llama models."""
