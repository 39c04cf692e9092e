"""Starting, watching and stopping the local stack's server processes.

Each service runs in its own session (process group), with its console output
in a log file and its pid in a pid file under the state directory. Stopping
sends SIGTERM to the whole group, waits, then SIGKILLs what is left, and finally
sweeps any process that still refers to the state directory, so that
``rasd stack down`` leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from .errors import StackError


@dataclass(frozen=True)
class ProcessFiles:
    """Where a service keeps its pid and its console output."""

    pidfile: Path
    console: Path


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ("" if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def port_owner(port: int) -> str | None:
    """A description of who listens on 127.0.0.1:``port``, or None if it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        else:
            return None
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid:
                    with contextlib.suppress(psutil.Error):
                        proc = psutil.Process(conn.pid)
                        return f"pid {conn.pid} ({proc.name()})"
                return "another process"
    return "another process"


def is_listening(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def running_pid(files: ProcessFiles, marker: str) -> int | None:
    """The pid in the pid file if that process is alive and is ours (``marker`` in its
    command line), else None (a stale pid file is removed)."""
    try:
        pid = int(files.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE and marker in " ".join(proc.cmdline()):
            return pid
    except psutil.Error:
        pass
    files.pidfile.unlink(missing_ok=True)
    return None


def spawn(
    command: Sequence[str],
    files: ProcessFiles,
    env: Mapping[str, str],
    cwd: Path,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` detached in its own session and record its pid."""
    files.console.parent.mkdir(parents=True, exist_ok=True)
    with files.console.open("ab") as console:
        console.write(f"\n--- started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        console.flush()
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    files.pidfile.write_text(str(proc.pid))
    return proc


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def stop(pid: int, timeout: float = 60.0) -> None:
    """SIGTERM the process group of ``pid``, wait, then SIGKILL whatever remains."""
    procs = _tree(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)


def kill(pid: int) -> None:
    """SIGKILL the process group of ``pid`` at once (a crash, not a shutdown) and reap it."""
    procs = _tree(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to every process of the group of ``pid`` (SIGSTOP, SIGCONT)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), sig)
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def sweep(state_dir: str) -> list[int]:
    """Kill leftover JVMs of a service: java processes with an argument inside
    ``state_dir``. Only java: a `less` on one of its logs is left alone."""
    me = os.getpid()
    inside = state_dir.rstrip(os.sep) + os.sep
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        args = proc.info.get("cmdline") or []
        if proc.info["pid"] == me or not args or os.path.basename(args[0]) != "java":
            continue
        if any(inside in arg or arg.endswith(state_dir) for arg in args[1:]):
            found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(found, timeout=10)
    return [p.pid for p in found]


def memory(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in bytes, summed over the process tree of ``pid``."""
    rss = peak = 0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error, OSError):
            rss += proc.memory_info().rss
            status = Path(f"/proc/{proc.pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) * 1024
    return rss, max(peak, rss)


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes] | None,
    timeout: float,
    what: str,
    logs: Sequence[Path],
) -> None:
    """Poll ``ready()`` until it is true; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            raise StackError(
                f"{what} exited during startup (exit code {proc.returncode})", tails(logs)
            )
        time.sleep(0.5)
    raise StackError(f"{what} was not ready after {timeout:.0f}s", tails(logs))


def tails(logs: Sequence[Path], lines: int = 20) -> str:
    """The tails of those ``logs`` that exist, each under its file name."""
    parts = [f"==> {log} <==\n{text}" for log in logs if (text := tail(log, lines))]
    return "\n".join(parts)
