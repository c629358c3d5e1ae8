"""The data pipeline: randomized protocols, sharded generation on the DFN, and reading datasets (no PyBaMM)."""
