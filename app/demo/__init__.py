"""Demo data shipped with prefloop (see demo_data.jsonl)."""
