"""The machine a benchmark ran on, for the JSON reports of bench/*.py (imported as ``machine`` when a
script runs as ``python bench/NAME.py``: its folder is first on sys.path)."""
from __future__ import annotations

import os
from pathlib import Path


def machine() -> dict:
    """CPU count, CPU model (/proc/cpuinfo), RAM and load average, for the JSON report."""
    info = {"cpu_count": os.cpu_count(), "cpu_model": "", "ram_gib": 0.0, "loadavg": list(os.getloadavg())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


class ProcessTree:
    """Samples this process and its descendants from /proc (Linux) in a thread: CPU seconds and peak
    RSS per process, grouped as ``driver`` (this process), ``jvm`` (java), ``python_worker`` (PySpark
    daemon and workers), ``child`` (what workers fork, e.g. the memory-capped extraction) and ``other``.

        with ProcessTree() as tree:
            ...                      # the measured work
        tree.summary()               # {"cpu_s": {group: s}, "peak_rss_mb": {group: MB}, ...}

    CPU seconds are counted from ``__enter__`` (user + system, reaped children included, so a ``child``'s
    CPU is in its parent's), and a process that started earlier only contributes what it used inside the
    window. Peak RSS is the largest sampled RSS of one process of the group. Off Linux it reports nothing.
    """

    GROUPS = ("driver", "jvm", "python_worker", "child", "other")

    def __init__(self, interval_s: float = 0.5):
        import threading

        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start_cpu: dict[int, float] = {}
        self._cpu: dict[int, float] = {}
        self._rss: dict[int, float] = {}
        self._group: dict[int, str] = {}
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page_mb = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / 2**20

    def _stat(self, pid: int):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = raw[raw.rindex(")") + 2:].split()
        ppid = int(fields[1])
        cpu = sum(int(x) for x in fields[11:15]) / self._tick  # utime stime cutime cstime
        rss_mb = int(fields[21]) * self._page_mb
        return ppid, cpu, rss_mb

    def _classify(self, pid: int, parent_group: str | None) -> str:
        if pid == os.getpid():
            return "driver"
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = ""
        if "java" in cmd.split(" ")[0]:
            return "jvm"
        if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
            return "python_worker"
        if parent_group == "python_worker":
            # a forked worker keeps the daemon's command line: a worker; a grandchild: a child
            return "python_worker" if "pyspark" in cmd else "child"
        if parent_group in ("child",):
            return "child"
        return "other"

    def _sample(self, first: bool = False) -> None:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = self._stat(int(entry))
                if st:
                    stats[int(entry)] = st
        # descendants of this process
        mine = {os.getpid()}
        changed = True
        while changed:
            changed = False
            for pid, (ppid, _, _) in stats.items():
                if pid not in mine and ppid in mine:
                    mine.add(pid)
                    changed = True
        for pid in sorted(mine):
            ppid, cpu, rss = stats.get(pid, (0, 0.0, 0.0))
            if pid not in self._group:
                parent = self._group.get(ppid)
                group = self._classify(pid, parent)
                # a pyspark worker forked by the daemon: the daemon's children are workers; theirs are children
                if parent == "python_worker" and group == "python_worker" and self._group.get(
                        stats.get(ppid, (0,))[0]) == "python_worker":
                    group = "child"
                self._group[pid] = group
                self._start_cpu[pid] = cpu if first else 0.0
            self._cpu[pid] = cpu
            self._rss[pid] = max(self._rss.get(pid, 0.0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self):
        if Path("/proc/self/stat").exists():
            self._sample(first=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            self._sample()

    def summary(self) -> dict:
        cpu = {g: 0.0 for g in self.GROUPS}
        peak = {g: 0.0 for g in self.GROUPS}
        count = {g: 0 for g in self.GROUPS}
        for pid, group in self._group.items():
            if group != "child":  # a child's CPU is in its parent's once reaped (cutime): not counted twice
                cpu[group] += max(0.0, self._cpu.get(pid, 0.0) - self._start_cpu.get(pid, 0.0))
            peak[group] = max(peak[group], self._rss.get(pid, 0.0))
            count[group] += 1
        cpu.pop("child")
        return {"cpu_s": {g: round(v, 1) for g, v in cpu.items()},
                "peak_rss_mb": {g: round(v) for g, v in peak.items()},
                "processes_seen": count, "interval_s": self.interval_s}
