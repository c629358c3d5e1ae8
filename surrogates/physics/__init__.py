"""The ground truth: cells as plain data, the steppable PyBaMM DFN and a plain-PyBaMM reference path.

Only the DFN and the reference import PyBaMM; the chemistry table does not.
"""
