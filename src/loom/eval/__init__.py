"""Evaluation: language-model perplexity (lm.py)."""
