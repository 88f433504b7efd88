"""raygems: find the best fine-tuned checkpoint for a task among many, under a fixed evaluation budget."""
from __future__ import annotations

__version__ = "0.1.0"
