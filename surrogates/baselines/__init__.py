"""Baselines the surrogates must beat: the equivalent-circuit model fitted to the same data."""
