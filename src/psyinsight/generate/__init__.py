"""Generating counselor turns with a trained adapter, and parsing them."""
