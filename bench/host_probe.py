"""Does the host itself pause? A real-time probe to run beside `bench/stream_throughput.py`.

At SCHED_FIFO priority (root; else at normal priority, and it says so) it sleeps 5 ms at a
time for `--seconds`, and every 20 ms writes 100 bytes to a file in `--dir` (timing the write)
and reads /proc/stat (steal, idle) and /proc/pressure/{cpu,io}. A process at that priority gets
a core before any normal one: a long gap in its sleeps means the whole host stalled (the
hypervisor, the kernel), a slow write means the disk did; gaps of the bench's own processes
without either are waits for a core. Prints the longest gap and write, the steal and the idle
share, and the gaps over `--report-ms` with their wall-clock times (to set against
`--stages`' stamps).

    python bench/host_probe.py --seconds 90 &
    python bench/stream_throughput.py ... --stages
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def _cpu_ticks() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def _pressure_total_us(kind: str, line: str) -> int:
    try:
        text = Path(f"/proc/pressure/{kind}").read_text()
    except OSError:
        return 0
    for row in text.splitlines():
        if row.startswith(line):
            return int(row.rsplit("total=", 1)[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--report-ms", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        priority = "SCHED_FIFO 50"
    except (PermissionError, AttributeError):
        priority = "normal (no permission for SCHED_FIFO: gaps include waits for a core)"
    path = args.dir / f"host-probe-{os.getpid()}"
    gaps: list[tuple[float, float]] = []
    longest_gap = longest_write = 0.0
    first = _cpu_ticks()
    cpu_some = _pressure_total_us("cpu", "some")
    io_full = _pressure_total_us("io", "full")
    start = time.time()
    last = time.monotonic()
    n = 0
    with open(path, "ab", buffering=0) as out:
        while time.time() - start < args.seconds:
            time.sleep(0.005)
            now = time.monotonic()
            gap, last = now - last, now
            longest_gap = max(longest_gap, gap)
            if gap * 1000 >= args.report_ms:
                gaps.append((time.time() - gap, gap))
            n += 1
            if n % 4 == 0:
                t = time.monotonic()
                out.write(b"x" * 100)
                longest_write = max(longest_write, time.monotonic() - t)
                last = time.monotonic()
    path.unlink(missing_ok=True)
    ticks = [b - a for a, b in zip(first, _cpu_ticks(), strict=False)]
    total = sum(ticks) or 1
    # user nice system idle iowait irq softirq steal: fields 0-7 of the cpu line (proc(5))
    began = time.strftime("%H:%M:%S", time.gmtime(start))
    cpu_s = (_pressure_total_us("cpu", "some") - cpu_some) / 1e6
    io_s = (_pressure_total_us("io", "full") - io_full) / 1e6
    print(
        f"host probe ({priority}), {args.seconds:g} s from {began} UTC: "
        f"longest gap {longest_gap * 1000:.1f} ms, longest write {longest_write * 1000:.2f} ms; "
        f"idle {ticks[3] / total:.1%}, iowait {ticks[4] / total:.1%}, "
        f"steal {ticks[7] / total:.1%}; cpu pressure (some) {cpu_s:.2f} s, "
        f"io pressure (full) {io_s:.2f} s"
    )
    for at, gap in gaps:
        stamp = time.strftime("%H:%M:%S", time.gmtime(at)) + f"{at % 1:.3f}"[1:]
        print(f"  gap {gap * 1000:.1f} ms at {stamp} UTC")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
