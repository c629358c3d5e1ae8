"""Ground-truth ageing: what a charge costs the cell on the degradation DFN (:mod:`.cycle`), the same charge over
life (:mod:`.life`), policies measured resumably (:mod:`.measure`), their tables and figures (:mod:`.report`), and the measurement end
to end (:mod:`.pipeline`)."""
