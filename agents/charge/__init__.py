"""One charge: where it starts (:mod:`.start`), its trace on an env (:mod:`.rollout`), the typed record of what it
achieved and the one definition of a broken limit (:mod:`.record`), and its figure (:mod:`.figures`).

The bottom of ``agents``: the controllers, the yardstick, the ageing and the RL training all speak these words.
"""

from agents.charge.record import (ChargeResult, WorstExcess, charge_row, interval_slack, limit_slack, minutes, summarize,
                                  within_limits)
from agents.charge.rollout import TRACE_KEYS, rollout
from agents.charge.start import Start, point_key

__all__ = ["ChargeResult", "WorstExcess", "charge_row", "interval_slack", "limit_slack", "minutes", "summarize",
           "within_limits", "TRACE_KEYS", "rollout", "Start", "point_key"]
