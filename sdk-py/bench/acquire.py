"""acquire.py: the Python client's acquire round trip: N lease.acquire + lease.release of one port.

Connects to the broker at $FIXTURE_BROKER_URL (one connection), does WARMUP round trips
that are not counted, then N timed ones, each an acquire of ``{"p": {"kind": "port"}}``
followed by the release of that lease, and prints one JSON line:

    {"client": "python", "n": N, "p50_us": ..., "p99_us": ..., "mean_us": ...}

N and WARMUP come from the arguments (``python acquire.py [N] [WARMUP]``, default 2000 and
200) or $FXB_BENCH_N / $FXB_BENCH_WARMUP. Percentiles are nearest-rank.
"""

import json
import math
import os
import sys
import time
from typing import List

import fixture_broker


def percentile(sorted_us: List[float], p: float) -> float:
    """The nearest-rank p-th percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_us)))
    return sorted_us[rank - 1]


def main(argv: List[str]) -> int:
    if not os.environ.get("FIXTURE_BROKER_URL"):
        print("acquire.py: set FIXTURE_BROKER_URL to a running broker (ws://127.0.0.1:PORT)", file=sys.stderr)
        return 2
    n = int(argv[1]) if len(argv) > 1 else int(os.environ.get("FXB_BENCH_N", "2000"))
    warmup = int(argv[2]) if len(argv) > 2 else int(os.environ.get("FXB_BENCH_WARMUP", "200"))
    if n < 1 or warmup < 0:
        print("acquire.py: N must be at least 1 and WARMUP at least 0", file=sys.stderr)
        return 2
    spec = {"p": {"kind": "port"}}
    times: List[float] = []
    with fixture_broker.connect(client="bench-acquire-py") as client:
        for i in range(warmup + n):
            t0 = time.perf_counter_ns()
            lease = client.acquire(spec)
            lease.release()
            t1 = time.perf_counter_ns()
            if i >= warmup:
                times.append((t1 - t0) / 1000.0)
    times.sort()
    print(json.dumps({
        "client": "python",
        "n": n,
        "p50_us": round(percentile(times, 50), 1),
        "p99_us": round(percentile(times, 99), 1),
        "mean_us": round(sum(times) / len(times), 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
