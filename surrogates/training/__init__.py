"""One training loop for surrogates and diagnostics, with small task objects for what differs."""
