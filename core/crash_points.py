"""Test hook: die with SIGKILL at a named point of a run, so crash recovery can be tested.

`SMO_TEST_KILL_AT=<point>` makes the process kill itself (kill -9: no cleanup, no exception
handler, exactly like an operator's kill or an out-of-memory kill) when it reaches that point.
Unset in every real deployment; the points are listed in README "Gates and publishing".
"""

from __future__ import annotations

import os
import signal

ENV = "SMO_TEST_KILL_AT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
