#!/usr/bin/env python3
"""A login flood against the real gateway: N wrong-password logins at once (unknown emails, so
each one costs a dummy argon2id check), with the per-address throttle raised so that the flood
reaches the password hashing, as a distributed attack would. Samples the gateway's RSS and thread
count every 20 ms and prints the peaks, the answers by status, /health latency during the flood,
and RSS 15 s later.

    bench/login-flood.py target/release/wa-gateway [N=200]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def rss_and_threads(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["Threads"])


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/wa-gateway"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    work = tempfile.mkdtemp()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with open(os.path.join(work, "gateway.toml"), "w") as f:
        f.write(f'[server]\nbind = "127.0.0.1:{port}"\n[storage]\ndata_dir = "{work}/data"\n'
                f'[auth]\nlogin_max_failures = 100000\n[whatsapp.sandbox]\ndelay = "0ms"\n'
                f'outbox = "{work}/data/outbox.jsonl"\n[log]\nlevel = "warn"\n')
    gw = subprocess.Popen([binary, "serve", "--config", os.path.join(work, "gateway.toml")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    idle_rss, idle_threads = rss_and_threads(gw.pid)

    peak = [idle_rss, idle_threads]
    health = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            r, t = rss_and_threads(gw.pid)
            peak[0], peak[1] = max(peak[0], r), max(peak[1], t)
            time.sleep(0.02)

    def probe_health():
        while not done.is_set():
            t0 = time.monotonic()
            try:
                urllib.request.urlopen(base + "/health", timeout=30)
                health.append(time.monotonic() - t0)
            except Exception:
                pass
            time.sleep(0.05)

    statuses = {}
    lock = threading.Lock()
    start = threading.Barrier(n)

    def login(i):
        body = json.dumps({"email": f"flood{i}@example.com", "password": "wrong password"}).encode()
        req = urllib.request.Request(base + "/api/auth/login", body, {"content-type": "application/json"})
        start.wait()
        try:
            urllib.request.urlopen(req, timeout=120)
            code = 200
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception:
            code = "error"
        with lock:
            statuses[code] = statuses.get(code, 0) + 1

    watchers = [threading.Thread(target=sample), threading.Thread(target=probe_health)]
    for w in watchers:
        w.start()
    t0 = time.monotonic()
    clients = [threading.Thread(target=login, args=(i,)) for i in range(n)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    took = time.monotonic() - t0
    done.set()
    for w in watchers:
        w.join()
    time.sleep(15)
    later_rss, _ = rss_and_threads(gw.pid)
    gw.terminate()
    gw.wait()
    health.sort()
    mib = lambda b: f"{b / 2**20:.0f} MiB"
    print(f"{n} wrong-password logins at once against {binary}")
    print(f"  answers: {dict(sorted(statuses.items(), key=str))} in {took:.1f} s")
    print(f"  RSS: idle {mib(idle_rss)}, peak {mib(peak[0])}, 15 s later {mib(later_rss)}")
    print(f"  threads: idle {idle_threads}, peak {peak[1]}")
    if health:
        print(f"  /health during the flood: p50 {health[len(health) // 2] * 1000:.1f} ms, "
              f"max {health[-1] * 1000:.1f} ms ({len(health)} probes)")


if __name__ == "__main__":
    main()
