"""Statistical evidence: intervals, tests and the noise model behind every published figure (numpy/scipy only)."""
