"""The ground truth: cells as plain data, the steppable PyBaMM DFN and a plain-PyBaMM reference path.

Cells are YAML files (``cells/<name>.yml`` shipped, the user's own in ``$CELLGYM_CELLS``) read by
:mod:`.chemistry` without PyBaMM; :mod:`.cell_check` checks a new one against PyBaMM before a build.
Only the DFN, the reference and the cell check import PyBaMM; the chemistry table does not.
"""
