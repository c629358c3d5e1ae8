"""Held-out DFN sequences (shipped beside this file) and the open-loop comparison against them."""
