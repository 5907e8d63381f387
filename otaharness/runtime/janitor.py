"""Folders removed once the process that made them ends, even when it is killed with SIGKILL.

A process killed outright runs no cleanup of its own, and ``otaharness serve``'s temporary folder
holds the TLS CAs' private keys, mosquitto's password file and the servers' databases (a load
run's device host: its stations' homes and trackers' keys): without this, every crashed serve
left them in /tmp. A small child process (``python -m
otaharness.runtime.janitor``) reads folder paths, one a line, from a pipe only its parent writes
to, and removes them once that pipe ends: the kernel closes the parent's end however the parent
ends. The child runs in a session of its own, so a signal to the parent's process group (Ctrl-C,
a kill of the group) reaches it only as that end of the pipe.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

STOP_TIMEOUT = 10.0  # real seconds: removing a serve's folder


class FolderJanitor:
    """Removes the folders given to :meth:`watch` when :meth:`close` is called or this process
    ends, however it ends."""

    def __init__(self) -> None:
        # Python's pipes are not inherited by other children (mosquitto): only this process
        # holds the writing end, so its end is the janitor's end of input.
        self._process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                         start_new_session=True)

    def watch(self, folder: Path) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{folder}\n".encode())
        self._process.stdin.flush()

    def close(self) -> None:
        """Remove the folders now and wait until they are gone."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def private_tempdir(prefix: str) -> tuple[Path, FolderJanitor]:
    """A new folder for everything this process puts in ``tempfile``'s folder from now on, and
    the janitor that removes it once the process ends (``close()`` it on a clean exit)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    janitor = FolderJanitor()
    janitor.watch(folder)
    tempfile.tempdir = str(folder)
    return folder, janitor


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's end of the pipe decides
    folders = [line.rstrip("\n") for line in sys.stdin]  # until the parent's end closes
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
