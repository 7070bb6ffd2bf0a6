"""Run inside an api container: start gunicorn, print how many workers it forked.

Fed to ``python -`` by test_gunicorn_workers.py.
"""

import os
import signal
import subprocess
import time
import urllib.request


def children(pid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            count += ppid == pid
    return count


master = subprocess.Popen(
    ["gunicorn", "-c", "api/gunicorn.conf.py", "api.main:app"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen("http://127.0.0.1:8000/health/live", timeout=1)
        break
    except OSError:
        time.sleep(0.2)
# Count until the number holds steady for two seconds.
last, steady_since = -1, time.monotonic()
while time.monotonic() < deadline:
    now = children(master.pid)
    if now != last:
        last, steady_since = now, time.monotonic()
    elif time.monotonic() - steady_since >= 2:
        break
    time.sleep(0.2)
print(f"workers={last}", flush=True)
master.send_signal(signal.SIGTERM)
master.wait(timeout=30)
