"""CLI command groups, one module per area (see ``psyinsight.cli``)."""
