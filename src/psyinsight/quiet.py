"""Quiet the libraries underneath: their progress bars and deprecation warnings on every
model load say nothing a user of psyinsight can act on.

Called once by the CLI before any heavy import. ``PSYINSIGHT_VERBOSE=1`` keeps them all,
for debugging a library. psyinsight's own bars (training, the build) are unaffected.
"""

from __future__ import annotations

import os
import warnings

VERBOSE_ENV = "PSYINSIGHT_VERBOSE"
LIBRARIES = ("transformers", "peft", "torch", "accelerate", "huggingface_hub", "datasets", "bert_score", "jieba", "sklearn")


def quiet_libraries() -> None:
    if os.environ.get(VERBOSE_ENV, "").lower() in {"1", "true", "yes"}:
        return
    # Read by huggingface_hub, transformers and datasets when they are imported.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for library in LIBRARIES:
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"{library}(\..*)?$")
    warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed in v\d.*", category=FutureWarning)
