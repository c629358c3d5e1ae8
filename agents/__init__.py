"""Stable-baselines3 agents and CC-CV / multi-step CC baselines (issue: agents). Empty so far."""
