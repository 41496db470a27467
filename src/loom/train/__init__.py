"""Training: one explicit loop (loop.py) and entry points that read top to bottom (pretrain.py)."""
