"""Child processes seen from /proc (Linux), for tests that kill a process and check what it
started ended with it."""

from __future__ import annotations

from pathlib import Path


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid``."""
    found: list[int] = []
    for child in children_of(pid):
        found += [child, *descendants(child)]
    return found


def alive(pid: int) -> bool:
    """``pid`` still runs (a zombie has ended; its parent may be gone and never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
