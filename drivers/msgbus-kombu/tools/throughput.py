"""Quick throughput check of the rabbit:// driver (not a test; see benchmarks/ for the real one).

    python drivers/msgbus-kombu/tools/throughput.py [--url URL] [--seconds 2] [--profile]

Starts an RPC server in a child process, then measures sequential calls, calls from 8 and 32
threads, and casts (counted once the server processed them) from this process. ``--profile``
writes a cProfile of the client's sequential calls to /tmp/msgbus-kombu-client.prof.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import subprocess
import sys
import threading
import time
import uuid

import msgbus


class Endpoint:
    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def echo(self, ctxt, value):
        return value

    def tick(self, ctxt):
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_count(self, ctxt, n):
        with self.cond:
            self.cond.wait_for(lambda: self.count >= n, 60)
            return self.count


def serve(url: str, topic: str) -> None:
    transport = msgbus.get_rpc_transport(url=url)
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server="s1"),
                                   [Endpoint()])
    server.start()
    print("READY", flush=True)
    sys.stdin.read()
    server.stop()
    server.wait()
    transport.cleanup()


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().decode().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def rate(fn, seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="rabbit://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--only", default="first,seq,t8,t32,casts")
    args = parser.parse_args()
    if args.serve:
        serve(args.url, args.serve)
        return
    topic = f"tput-{uuid.uuid4().hex[:8]}"
    server = subprocess.Popen([sys.executable, __file__, "--url", args.url, "--serve", topic],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdout.readline().strip() == b"READY"
    only = args.only.split(",")
    try:
        if "first" in only:
            times = []
            for _ in range(5):
                start = time.perf_counter()
                t = msgbus.get_rpc_transport(url=args.url)
                msgbus.get_rpc_client(t, msgbus.Target(topic=topic), timeout=30).call(
                    {}, "echo", value=1)
                times.append(time.perf_counter() - start)
                t.cleanup()
            print(f"first call ms: {sorted(times)[2] * 1e3:.1f}")
        transport = msgbus.get_rpc_transport(url=args.url)
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=30)
        payload = "x" * 16
        for _ in range(50):
            client.call({}, "echo", value=payload)
        if "seq" in only:
            cpu = time.process_time()
            server_cpu = proc_cpu(server.pid)
            prof = cProfile.Profile() if args.profile else None
            if prof:
                prof.enable()
            r = rate(lambda: client.call({}, "echo", value=payload), args.seconds)
            if prof:
                prof.disable()
                prof.dump_stats("/tmp/msgbus-kombu-client.prof")
            cpu = time.process_time() - cpu
            server_cpu = proc_cpu(server.pid) - server_cpu
            calls = r * args.seconds
            print(f"sequential calls/s: {r:.0f} (cpu/call: client {cpu / calls * 1e6:.0f}us, "
                  f"server {server_cpu / calls * 1e6:.0f}us)")
        for threads in (8, 32):
            if f"t{threads}" not in only:
                continue
            stop = time.perf_counter() + args.seconds
            def work():
                n = 0
                while time.perf_counter() < stop:
                    client.call({}, "echo", value=payload)
                    n += 1
                return n
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                total = sum(pool.map(lambda _: work(), range(threads)))
            print(f"{threads} threads calls/s: {total / (time.perf_counter() - start):.0f}")
        if "casts" in only:
            base = client.call({}, "wait_count", n=0)
            sent = 0
            start = time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                for _ in range(100):
                    client.cast({}, "tick")
                sent += 100
            client.call({}, "wait_count", n=base + sent)
            print(f"casts/s: {sent / (time.perf_counter() - start):.0f}")
        transport.cleanup()
    finally:
        server.stdin.close()
        server.wait(30)


if __name__ == "__main__":
    main()
