"""Gymnasium fast-charging environments (issue: the environment). Nothing is registered yet."""
