"""Research over engine output: pure functions that score and study what the engine read."""
