"""Instruction tasks: training examples, their prompts, and retrieval for the RAG task."""
