"""The crisis-safety layer that sits in front of every counselor model.

``SafetyGuard`` checks the user's messages (patterns + a small classifier, English and
Chinese) before a model runs; on risk the caller answers with ``guard.crisis_message``,
a fixed text with hotline resources for the user's region, and flags the conversation.
"""

from psyinsight.counsel.safety.guard import SafetyConfig, SafetyGuard, SafetyResult
from psyinsight.counsel.safety.resources import CrisisResources, load_resources

__all__ = ["CrisisResources", "SafetyConfig", "SafetyGuard", "SafetyResult", "load_resources"]
