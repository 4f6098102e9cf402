"""Task-slot count read from configuration (Spark Connect safe: no sparkContext)."""
from __future__ import annotations

import os

from lakedoc.spark import task_slots


class _Conf:
    def __init__(self, master):
        self.master = master

    def get(self, key, default=None):
        return self.master if key == "spark.master" else default


class _Session:
    def __init__(self, master):
        self.conf = _Conf(master)


def test_task_slots_follow_the_local_master():
    assert task_slots(_Session("local[3]")) == 3
    assert task_slots(_Session("local[1]")) == 1
    assert task_slots(_Session("local")) == 1
    assert task_slots(_Session("local[*]")) == (os.cpu_count() or 1)
