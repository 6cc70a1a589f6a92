"""Tasks that come from files: the paper's released folders with PaLM's answers (:mod:`.paper`) and a user's
CSV/TSV/JSONL with a column mapping (:mod:`.custom`)."""
