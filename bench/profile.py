"""CPU profiles of the bench's services: py-spy samples each running process from outside.

py-spy pauses a process for an instant per sample, reads its Python stacks and leaves out
threads that are idle, so a profile shows where CPU goes — not waits, as a wall-clock
profiler inside the process does (an asyncio service waits most of the time). Sampling
without pausing (`--nonblocking`) was tried: it read torn stacks and idle threads as busy.
Raw samples (one line per distinct stack, `;`-joined frames and a count) are summed here
into the functions with the most CPU, inclusive and self.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE_HZ = 100
_FRAME = re.compile(r"(.*) \((.*):\d+\)$")
# py-spy's idle detection does not work on this machine: threads waiting for work are left
# out here by where they wait (a thread pool's idle workers, threading waits, selectors)
IDLE_LEAVES = (
    "_worker (concurrent/futures/thread.py",
    "wait (threading.py",
    "select (selectors.py",
)


def py_spy() -> str:
    """The py-spy installed beside this interpreter (a dev dependency)."""
    return str(Path(sys.executable).with_name("py-spy"))


def attach(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling a process into `out` (raw stacks) until it ends or gets SIGINT."""
    cmd = [py_spy(), "record", "-p", str(pid), "-r", str(RATE_HZ)]
    cmd += ["-f", "raw", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def short(frame: str) -> str:
    """`fn (file)`, the file relative to site-packages or the repository."""
    m = _FRAME.match(frame)
    if m is None:
        return frame
    fn, file = m.groups()
    file = re.sub(r".*site-packages/", "", file)
    file = re.sub(r".*/((services|shared|bench)/)", r"\1", file)
    return f"{fn} ({file})"


def summarise(raw: Path, top: int = 60) -> str:
    """Inclusive and self shares of the CPU samples, the top functions of each."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [short(f) for f in stack.split(";")]
        if frames[-1].startswith(IDLE_LEAVES):
            idle += n
            continue
        total += n
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    if total == 0:
        return f"{raw.name}: no samples\n"
    lines = [
        f"{raw.stem}: {total} samples of busy stacks (the shares below; {idle} idle left out). "
        "Code a greenlet runs (SQLAlchemy's async bridge) shows as stacks of its own."
    ]
    for title, counts in (("inclusive", inclusive), ("self", own)):
        lines.append(f"--- {title}")
        lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in counts.most_common(top)]
    return "\n".join(lines) + "\n"


def render(directory: Path) -> None:
    """A `<label>.summary.txt` beside each `<label>.raw.txt`."""
    for raw in sorted(directory.glob("*.raw.txt")):
        raw.with_name(raw.name.replace(".raw.txt", ".summary.txt")).write_text(summarise(raw))
