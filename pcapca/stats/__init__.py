"""``pcapca stats``: one pass of aggregates, the report and its plots."""
