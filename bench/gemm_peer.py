#!/usr/bin/python3
"""Matrix-product peer for bench/gemm_vs_openblas.mjs: numpy (OpenBLAS) and PyTorch on the CPU.

A long-lived worker (torch takes seconds to import): reads one JSON request per stdin line,
    {"lib": "numpy" | "torch", "m": M, "n": N, "k": K, "threads": T, "repeat": R, "trans": "NN"}
times R calls of C = op(A) @ op(B) in float32 after a warm-up and answers one JSON line
    {"lib": ..., "ms": [per-call milliseconds], "threads": T}.
The first line it prints describes the BLAS in use (threadpoolctl's view: library, version,
kernel architecture), so the report can say which OpenBLAS kernel ran.

Thread counts: numpy through threadpoolctl (OpenBLAS), torch through torch.set_num_threads (and
the same BLAS limit, in case torch calls OpenBLAS too).

Run it with Debian's interpreter, with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (they slow
OpenBLAS down on this machine); the driver does both.
"""

import json
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

try:
    import torch
except ImportError:  # numpy alone still gives the OpenBLAS figures
    torch = None


def operands(lib, m, n, k, trans):
    rng = np.random.default_rng(1)
    a = rng.random((k, m) if trans[0] == "T" else (m, k), dtype=np.float32) - 0.5
    b = rng.random((n, k) if trans[1] == "T" else (k, n), dtype=np.float32) - 0.5
    if lib == "torch":
        a, b = torch.from_numpy(a), torch.from_numpy(b)
    opa = a.T if trans[0] == "T" else a
    opb = b.T if trans[1] == "T" else b
    return opa, opb


def measure(req):
    lib, m, n, k = req["lib"], req["m"], req["n"], req["k"]
    threads, repeat, trans = req["threads"], req["repeat"], req.get("trans", "NN")
    with threadpool_limits(limits=threads, user_api="blas"):
        if lib == "torch":
            if torch is None:
                return {"lib": lib, "error": "torch is not installed"}
            torch.set_num_threads(threads)
        a, b = operands(lib, m, n, k, trans)
        if lib == "torch":
            out = torch.empty((m, n), dtype=torch.float32)
            call = lambda: torch.matmul(a, b, out=out)  # noqa: E731
        else:
            out = np.empty((m, n), dtype=np.float32)
            call = lambda: np.matmul(a, b, out=out)  # noqa: E731
        spent, once = 0.0, 0.0
        while spent < 0.2:  # warm-up: clocks, caches, BLAS threads
            t0 = time.perf_counter()
            call()
            once = time.perf_counter() - t0
            spent += once
        inner = 1 if once >= 1e-3 else int(1e-3 / max(once, 1e-9)) + 1  # samples of >= 1 ms
        ms = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(inner):
                call()
            ms.append((time.perf_counter() - t0) * 1e3 / inner)
    return {"lib": lib, "ms": ms, "threads": threads}


def main():
    info = [
        {key: lib.get(key) for key in ("internal_api", "version", "architecture", "threading_layer", "filepath")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    print(json.dumps({"blas": info, "numpy": np.__version__, "torch": torch.__version__ if torch else None}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            reply = measure(json.loads(line))
        except Exception as exc:  # report, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
