"""Running the real ``kapmonitor`` command as a separate process, as a user does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: the tests may run as root, whom a
    read-only file does not stop. ``setpriv`` drops the capabilities that bypass them."""
    if os.name != "posix" or os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): permissions cannot hold")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


def kapmonitor(
    *argv: str,
    as_user: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``kapmonitor ARGV`` in its own process; ``as_user``: without root's override of
    file permissions."""
    prefix = unprivileged() if as_user else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "kapmonitor", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
