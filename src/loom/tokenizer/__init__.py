"""Tokenizers: byte-level BPE and characters with byte fallback, saved as Hugging Face folders."""
