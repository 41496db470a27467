"""Applications built on the backend contract."""
