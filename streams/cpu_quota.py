"""How many CPUs this process may use: its CPU affinity, and its cgroup's CPU quota.

A worker in a container (Kubernetes `resources.limits.cpu`, `docker run --cpus`) sees every
core of the host in `os.sched_getaffinity`, but the kernel's CFS bandwidth control lets its
cgroup run only `quota / period` CPUs' worth. A prepare pool sized from the affinity alone then
grows to processes that only take turns on the same quota. Measured with
`bench/stream_throughput.py --worker-cpus 0.5` (each worker held to half a CPU), runs
interleaved: the pool grown to 2 children (`DISPATCH_RL_PREPARE_PROCESSES_MAX=2`, what the
affinity alone gave) cost 3.15-3.23 ms of CPU per 10x3 dispatch and did 155-159 dispatches/s,
one child 2.63-2.69 ms and 183-189/s.

The quota is read as the kernel applies it: cgroup v2 `cpu.max` ("max 100000" or "50000
100000") or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none), of the process's own cgroup
and of every ancestor visible in the mount (a parent's limit binds its children), the least
one winning. Paths come from `/proc/self/cgroup` and `/proc/self/mountinfo`, so a cgroup
namespace (the container sees its own cgroup as "/") and a bind-mounted sub-hierarchy (mount
root "/docker/<id>") both resolve. Anything unreadable counts as no limit: this only ever
lowers a default, it never fails a start.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path, PurePosixPath

PROC_SELF = Path("/proc/self")


def _mounts(proc: Path) -> list[tuple[str, Path, str, set[str]]]:
    """(root inside the hierarchy, mount point, fs type, super options) of each cgroup mount."""
    found = []
    for line in (proc / "mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[3], Path(fields[4]), tail[0], set(tail[2].split(","))))
    return found


def _chain(mount_root: str, mount_point: Path, cgroup_path: str) -> list[Path]:
    """The cgroup's directory under the mount, then each ancestor's up to the mount point."""
    path, root = PurePosixPath(cgroup_path), PurePosixPath(mount_root)
    try:
        relative = path.relative_to(root)
    except ValueError:  # the cgroup is outside what is mounted: the mount's own limits only
        relative = PurePosixPath(".")
    leaf = mount_point / relative
    return [leaf, *(p for p in leaf.parents if p.is_relative_to(mount_point))]


def _v2(directory: Path) -> float | None:
    quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
    if quota == "max":
        return None
    return int(quota) / int(period or 100_000)


def _v1(directory: Path) -> float | None:
    quota = int((directory / "cpu.cfs_quota_us").read_text())
    if quota < 0:
        return None
    return quota / int((directory / "cpu.cfs_period_us").read_text())


def cgroup_cpus(proc: Path = PROC_SELF) -> float | None:
    """CPUs' worth this process's cgroups let it run (quota / period, the least along its
    cgroup path), or None: no quota, or none readable."""
    try:
        mounts = _mounts(proc)
        memberships = (proc / "cgroup").read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in memberships:
        _, controllers, cgroup_path = line.split(":", 2)
        for mount_root, mount_point, kind, options in mounts:
            if kind == "cgroup2" and controllers == "":
                read = _v2
            elif kind == "cgroup" and "cpu" in controllers.split(",") and "cpu" in options:
                read = _v1
            else:
                continue
            for directory in _chain(mount_root, mount_point, cgroup_path):
                with contextlib.suppress(OSError, ValueError, ZeroDivisionError):
                    if (limit := read(directory)) is not None:
                        limits.append(limit)
    return min(limits) if limits else None


def usable_cpus(proc: Path = PROC_SELF) -> int:
    """Whole CPUs this process can keep busy: its affinity, lowered to its cgroup's CPU quota
    rounded up (a quota of 1.5 CPUs still runs two processes at once, part of the time)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    quota = cgroup_cpus(proc)
    if quota is None:
        return cores
    return max(1, min(cores, math.ceil(quota - 1e-9)))


class QuotaGroup:
    """A cgroup of its own with a CPU quota, for benchmarks and tests that stand in for a host
    (or a container) of that many CPUs on this one: `bench/stream_throughput.py --worker-cpus`.
    Needs write access to the cgroup file system (root, outside a container); `create` raises
    `PermissionError` / `FileNotFoundError` otherwise."""

    PERIOD_US = 100_000
    """The kernel's default CFS period: the group runs `cpus * 100 ms` of CPU per 100 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, name: str, cpus: float, proc: Path = PROC_SELF) -> QuotaGroup:
        mounts = _mounts(proc)
        quota = round(cpus * cls.PERIOD_US)
        for _, point, kind, _ in mounts:  # v2 where its cpu controller is there
            if kind == "cgroup2" and "cpu" in (point / "cgroup.controllers").read_text().split():
                if "cpu" not in (point / "cgroup.subtree_control").read_text().split():
                    (point / "cgroup.subtree_control").write_text("+cpu")
                (point / name).mkdir()
                (point / name / "cpu.max").write_text(f"{quota} {cls.PERIOD_US}")
                return cls(point / name)
        for _, point, kind, options in mounts:
            if kind == "cgroup" and "cpu" in options:
                (point / name).mkdir()
                (point / name / "cpu.cfs_period_us").write_text(str(cls.PERIOD_US))
                (point / name / "cpu.cfs_quota_us").write_text(str(quota))
                return cls(point / name)
        raise FileNotFoundError("no cgroup file system with the cpu controller is mounted")

    def enter(self) -> None:
        """Move this process into the group (its children after that start in it): for
        `subprocess.Popen(preexec_fn=group.enter)`."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def throttled(self) -> tuple[int, int]:
        """(CFS periods so far, periods in which the quota ran out and the group was held)."""
        lines = (self.path / "cpu.stat").read_text().splitlines()
        stat = {k: int(v) for k, v in (line.split() for line in lines)}
        return stat.get("nr_periods", 0), stat.get("nr_throttled", 0)

    def remove(self) -> None:
        """Remove the group (once its processes have exited; a leftover one is harmless)."""
        with contextlib.suppress(OSError):
            self.path.rmdir()
