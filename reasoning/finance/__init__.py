"""Finance scorers: claim denial risk and revenue leakage (SPEC §5)."""
