"""torch across ``os.fork``: a forked child runs torch on one thread, so it does not hang.

torch's intra-op thread pool (OpenMP) does not survive a fork: once the parent has run a parallel op, a
forked child that runs one waits forever for pool threads that were not copied. That is why Gymnasium's
``AsyncVectorEnv`` and SB3's ``SubprocVecEnv`` hung with the fork start method (their parent builds one
env to read its spaces, and that env's reset runs the surrogate). Importing this module registers, once
per process, a hook that sets one torch thread in every forked child (``os.register_at_fork``): a worker
process that holds one env wants one thread anyway. A child that wants more must be started with
``spawn`` (or ``forkserver``), not raise the count after the fork.
"""

from __future__ import annotations

import os

import torch


def _one_thread() -> None:
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):  # POSIX; a Windows child is always spawned
    os.register_at_fork(after_in_child=_one_thread)
