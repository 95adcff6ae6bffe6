"""Scoring predictions: metrics, the LLM judge, human-rating agreement, the paper's table."""
