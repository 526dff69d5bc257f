"""The benchmark plumbing's own accounting: a process tree's CPU is counted whole, including a
worker that has exited and been reaped inside the window (a store worker, a forked helper)."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.bench.common import CpuMeter, process_tree

# a parent that starts a child burning about 0.4 s of CPU, reaps it, then idles
BURN = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nt=time.process_time()\\nwhile time.process_time()-t<0.4: pass"])
print("started", flush=True)
child.wait()
print("reaped", flush=True)
time.sleep(30)
"""


def test_cpu_meter_counts_a_reaped_child_of_the_tree():
    parent = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "started"
        meter = CpuMeter({"tree": parent.pid}).start()
        assert len(process_tree(parent.pid)) == 2  # the parent and its burning child
        assert parent.stdout.readline().strip() == "reaped"
        time.sleep(0.1)
        meter.stop()
        wall = meter.wall_s
        used = meter.cores["tree"] * wall
        assert 0.2 <= used <= 1.0, used  # the child's burn, now in the parent's cutime
        assert meter.cores["busy"] * wall >= used * 0.9  # the machine saw it too
    finally:
        parent.kill()
        parent.wait()
