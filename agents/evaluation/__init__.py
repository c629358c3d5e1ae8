"""The yardstick: the grid of start conditions (:mod:`.grid`), the committed reference table (:mod:`.references`,
built by :mod:`.build`), a policy's charges scored against it (:mod:`.scoring`) and the report (:mod:`.yardstick`)."""
