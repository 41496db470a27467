"""Text classification: fine-tune (tf-idf, MiniLM, any HF folder, LoRA), evaluate, predict, explain."""
