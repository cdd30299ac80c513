"""Process -> job: which job a process on a GPU belongs to, read from ``/proc``.

Receives a pid and a ``/proc`` root (injectable: tests pass a folder of literal
files). Guarantees an answer keyed on (pid, start time), so a reused pid is
never taken for the process it replaced: the job named by the process's cgroup
(Slurm ``job_<id>``, a Kubernetes pod), else by its environment
(``BILLING_JOB_ID``, ``SLURM_JOB_ID``), else by its nearest ancestor's; None
when nothing names one (the usage is reported as unattributed, never billed).
The allocation decides what a job pays for; this only describes usage and
flags a process on a GPU its job does not hold.
"""

from __future__ import annotations

from pathlib import Path

from gpubill.agent.jobs import EXEC, SLURM, cgroup_job

ENV_EXEC_JOB = "BILLING_JOB_ID"  # `gpubill agent exec` sets it for the command it meters
ENV_JOB = ((ENV_EXEC_JOB, EXEC), ("SLURM_JOB_ID", SLURM))  # environment variable -> scheduler
MAX_ANCESTORS = 64
STAT_STATE, STAT_PPID, STAT_START = 0, 1, 19  # fields 3, 4 and 22 of /proc/<pid>/stat, after "(comm)"


def _stat(proc_root: Path, pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        text = (proc_root / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def start_time(proc_root: Path, pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when there is no such process."""
    f = _stat(Path(proc_root), pid)
    return int(f[STAT_START]) if f else None


def alive(proc_root: Path, pid: int, started: int | None) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` and has not exited."""
    f = _stat(Path(proc_root), pid)
    return bool(f) and f[STAT_STATE] not in ("Z", "X") and (started is None or int(f[STAT_START]) == started)


class Attributor:
    def __init__(self, proc_root: str | Path = "/proc"):
        self.root = Path(proc_root)
        self.cache: dict[tuple[int, int], tuple[str, str] | None] = {}

    def job_of(self, pid: int) -> tuple[str, str] | None:
        """(scheduler, job id) of ``pid``; None when unattributed or gone."""
        started = start_time(self.root, pid)
        if started is None:
            return None
        key = (pid, started)
        if key not in self.cache:
            self.cache[key] = self._resolve(pid)
        return self.cache[key]

    def _resolve(self, pid: int) -> tuple[str, str] | None:
        for _ in range(MAX_ANCESTORS):
            found = self._own(pid)
            f = _stat(self.root, pid)
            if found or not f or int(f[STAT_PPID]) <= 1:
                return found
            pid = int(f[STAT_PPID])
        return None

    def _own(self, pid: int) -> tuple[str, str] | None:
        d = self.root / str(pid)
        try:
            found = cgroup_job((d / "cgroup").read_text())
        except OSError:
            found = None
        return found or self._environ(d)

    @staticmethod
    def _environ(d: Path) -> tuple[str, str] | None:
        try:
            env = dict(v.split("=", 1) for v in (d / "environ").read_bytes().decode(errors="replace")
                       .split("\0") if "=" in v)
        except OSError:  # another user's process: no permission
            return None
        for var, scheduler in ENV_JOB:
            if env.get(var):
                return scheduler, env[var]
        return None
