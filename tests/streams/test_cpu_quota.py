"""streams/cpu_quota.py: a container's CPU quota lowers the prepare pool's default size."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from streams.cpu_quota import QuotaGroup, cgroup_cpus, usable_cpus

ROOT = Path(__file__).resolve().parents[2]


def _proc(
    tmp_path: Path, cgroup: str, mounts: list[tuple[str, str, str, str]], files: dict[str, str]
) -> Path:
    """A fake /proc/self: `cgroup` lines, cgroup mounts (root, point under tmp_path, fs type,
    super options) in mountinfo form, and the cgroup files (path under tmp_path -> text)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    lines = ["22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"]
    for i, (root, point, kind, options) in enumerate(mounts):
        (tmp_path / point).mkdir(parents=True, exist_ok=True)
        lines.append(
            f"{30 + i} 22 0:{26 + i} {root} {tmp_path / point} rw,nosuid shared:{5 + i} - "
            f"{kind} {kind} {options}"
        )
    (proc / "mountinfo").write_text("\n".join(lines) + "\n")
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return proc


def test_v2_in_a_cgroup_namespace(tmp_path: Path) -> None:
    # Docker / Kubernetes with cgroup v2: the container sees its own cgroup as "/".
    proc = _proc(
        tmp_path,
        "0::/\n",
        [("/", "cg", "cgroup2", "rw,nsdelegate")],
        {"cg/cpu.max": "50000 100000\n"},
    )
    assert cgroup_cpus(proc) == 0.5
    assert usable_cpus(proc) == 1


def test_v2_without_a_limit(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "0::/\n", [("/", "cg", "cgroup2", "rw")], {"cg/cpu.max": "max 100000"})
    assert cgroup_cpus(proc) is None
    assert usable_cpus(proc) == len(os.sched_getaffinity(0))


def test_v2_a_parent_limit_binds(tmp_path: Path) -> None:
    # The worker's own cgroup has no limit; its parent (a pod, a systemd slice) has 1.5 CPUs.
    proc = _proc(
        tmp_path,
        "0::/kubepods/pod1/worker\n",
        [("/", "cg", "cgroup2", "rw")],
        {
            "cg/kubepods/cpu.max": "max 100000",
            "cg/kubepods/pod1/cpu.max": "150000 100000",
            "cg/kubepods/pod1/worker/cpu.max": "max 100000",
        },
    )
    assert cgroup_cpus(proc) == 1.5
    assert usable_cpus(proc) == min(2, len(os.sched_getaffinity(0)))


def test_v1_with_a_bind_mounted_sub_hierarchy(tmp_path: Path) -> None:
    # cgroup v1 without a namespace: the mount's root is the container's own cgroup, and
    # /proc/self/cgroup names it from the hierarchy's root.
    proc = _proc(
        tmp_path,
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
        [
            ("/docker/abc", "cg/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
            ("/docker/abc", "cg/memory", "cgroup", "rw,memory"),
        ],
        {
            "cg/cpu,cpuacct/cpu.cfs_quota_us": "250000\n",
            "cg/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            # the memory controller has nothing to say about CPUs
            "cg/memory/cpu.cfs_quota_us": "10000\n",
            "cg/memory/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpus(proc) == 2.5
    assert usable_cpus(proc) == min(3, len(os.sched_getaffinity(0)))


def test_v1_no_quota_and_unreadable_files_mean_no_limit(tmp_path: Path) -> None:
    proc = _proc(
        tmp_path,
        "4:cpu,cpuacct:/\n",
        [("/", "cg/cpu", "cgroup", "rw,cpu,cpuacct")],
        {"cg/cpu/cpu.cfs_quota_us": "-1\n", "cg/cpu/cpu.cfs_period_us": "100000\n"},
    )
    assert cgroup_cpus(proc) is None
    (tmp_path / "cg/cpu/cpu.cfs_quota_us").write_text("garbage")
    assert cgroup_cpus(proc) is None
    assert cgroup_cpus(tmp_path / "no-such-proc") is None


def test_the_prepare_pool_stays_at_one_child_under_half_a_cpu() -> None:
    """The real kernel: a process in a cgroup held to 0.5 CPUs reads its quota back, and the
    worker's settings then keep the prepare pool from growing (it would only take turns)."""
    try:
        group = QuotaGroup.create(f"dispatch-rl-test-{uuid.uuid4().hex[:8]}", 0.5)
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup here: {exc}")
    try:
        code = (
            "from streams.cpu_quota import cgroup_cpus, usable_cpus\n"
            "from streams.settings import Settings\n"
            "print(cgroup_cpus(), usable_cpus(), Settings().prepare_processes_limit())\n"
        )
        env: dict[str, Any] = {
            k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_RL_PREPARE")
        }
        out = subprocess.run(
            [sys.executable, "-c", code],
            preexec_fn=group.enter,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env | {"PYTHONPATH": str(ROOT)},
        )
        assert out.stdout.split() == ["0.5", "1", "1"]
        periods, _ = group.throttled()
        assert periods >= 1  # the quota was live while the child ran
    finally:
        group.remove()
    assert not group.path.exists()
