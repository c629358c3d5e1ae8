"""Controllers that charge without learning: rule policies (CC-CV, multi-step CC, a stored profile played back;
:mod:`.rules`), the greedy oracle on the DFN's state (:mod:`.oracle`) and the tuned multi-stage protocols
(:mod:`.tuning`). They act through the env API (``predict(obs) -> action``), as a trained agent does."""

from agents.control.rules import CV_MARGIN, CCCVPolicy, MultiStepCCPolicy, ProfilePolicy, RulePolicy

__all__ = ["CV_MARGIN", "CCCVPolicy", "MultiStepCCPolicy", "ProfilePolicy", "RulePolicy"]
