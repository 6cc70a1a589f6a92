"""Offline-safe environment for anything that imports gradio or huggingface_hub.

They read these variables at import time, so :func:`apply` must run before the first such import: no analytics,
no hub calls, no telemetry, and local requests never go through a proxy.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_DATASETS_OFFLINE": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def apply(force: bool = True) -> None:
    """Set the offline variables (``force=False`` keeps values the user set, e.g. HF_HUB_OFFLINE=0 to go online)."""
    for key, value in OFFLINE_ENV.items():
        if force:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
