"""Offline by default: the program itself (``workbench …``, ``python app.py``), not only ``make``, keeps off the hub.

gradio and huggingface_hub read these variables at import time, so :func:`apply` runs before the first such import,
at the start of every entry point (the CLI's ``main``, ``app.py``, ``workbench serve``). No analytics, no telemetry,
and local requests never go through a proxy, always; the hub stays off limits unless the user opts in with the CLI's
``--online`` flag or ``WORKBENCH_ONLINE=1`` (an explicit ``HF_HUB_OFFLINE=0`` is also kept, as before).

>>> env = {}
>>> apply(env=env)["HF_HUB_OFFLINE"], apply(online=True, env={})["HF_HUB_OFFLINE"]
('1', '0')
>>> apply(env={"WORKBENCH_ONLINE": "1"})["HF_HUB_OFFLINE"]
'0'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, MutableMapping

ONLINE_ENV = "WORKBENCH_ONLINE"
#: Always set: nothing is reported anywhere, and requests to this machine skip any proxy.
PRIVATE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
#: The hub switches: "1" offline (the default), "0" when the user opted in.
HUB_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
OFFLINE_ENV = {**PRIVATE_ENV, **dict.fromkeys(HUB_ENV, "1")}  # what `make` exports too
_TRUE = ("1", "true", "yes", "on")


def wants_online(env: MutableMapping[str, str] | None = None) -> bool:
    """Whether ``WORKBENCH_ONLINE`` opts in to the hub."""
    env = os.environ if env is None else env
    return env.get(ONLINE_ENV, "").strip().lower() in _TRUE


def apply(online: bool | None = None, env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set the environment for this process and the jobs it starts (``env``: another mapping, for tests).

    ``online`` None reads ``WORKBENCH_ONLINE``. Offline, the hub variables are set to "1" unless the user set them
    (``HF_HUB_OFFLINE=0`` stays an opt-in); online, they are set to "0" whatever the environment said."""
    env = os.environ if env is None else env
    online = wants_online(env) if online is None else online
    env.update(PRIVATE_ENV)
    for key in HUB_ENV:
        if online:
            env[key] = "0"
        else:
            env.setdefault(key, "1")
    if online:
        env[ONLINE_ENV] = "1"  # jobs started from here are online too
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def is_offline(env: MutableMapping[str, str] | None = None) -> bool:
    """The hub is off limits: the workbench's default, library calls included. Only an explicit opt-in goes online
    (``HF_HUB_OFFLINE=0``, ``WORKBENCH_ONLINE=1`` or the CLI's ``--online``, which sets both).

    >>> is_offline({}), is_offline({"WORKBENCH_ONLINE": "1"}), is_offline({"HF_HUB_OFFLINE": "0"})
    (True, False, False)
    """
    env = os.environ if env is None else env
    if env.get("WORKBENCH_ONLINE", "").strip().lower() in _TRUE:
        return False
    return env.get("HF_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def assumed_offline() -> Iterator[None]:
    """Within the block, code that reads the variables at call time (the pretrained catalog's availability) answers
    as if offline: ``workbench models --online`` says what would still work without the hub."""
    saved = {key: os.environ.get(key) for key in (*HUB_ENV, "WORKBENCH_ONLINE")}
    os.environ.update(dict.fromkeys(HUB_ENV, "1"))
    os.environ.pop("WORKBENCH_ONLINE", None)  # the opt-in would win over the hub's variables (is_offline)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
