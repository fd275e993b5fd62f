#!/usr/bin/python3
"""Matrix-product peer for bench/gemm_vs_openblas.mjs: numpy (OpenBLAS) and PyTorch on the CPU.

A long-lived worker (torch takes seconds to import): reads one JSON request per stdin line,
    {"lib": "numpy" | "torch", "m": M, "n": N, "k": K, "threads": T, "repeat": R, "trans": "NN"}
times R calls of C = op(A) @ op(B) in float32 after a warm-up and answers one JSON line
    {"lib": ..., "ms": [per-call milliseconds], "cpu_ms": [per-call CPU milliseconds of the process], "threads": T}.
The first line it prints describes the BLAS in use (threadpoolctl's view: library, version,
kernel architecture), so the report can say which OpenBLAS kernel ran.

Thread counts: numpy through threadpoolctl (OpenBLAS) when it is installed, else through
OpenBLAS's own openblas_set_num_threads (found with ctypes in the library numpy loaded: numpy's
wheels bundle a "scipy_openblas" build with prefixed names); torch through torch.set_num_threads
(and the same BLAS limit, in case torch calls OpenBLAS too).

The driver runs it twice: with Debian's interpreter (Debian's OpenBLAS, and torch) and with the
first python3 on PATH (here a pyenv Python whose numpy wheel bundles a newer OpenBLAS with its
AVX-512 kernels), both with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (they slow OpenBLAS down on
this machine).
"""

import contextlib
import ctypes
import json
import sys
import time

import numpy as np

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # a bare interpreter (the bundled-OpenBLAS peer): OpenBLAS's own calls below
    threadpool_info = threadpool_limits = None

try:
    import torch
except ImportError:  # numpy alone still gives the OpenBLAS figures
    torch = None


def loaded_openblas():
    """The OpenBLAS shared library numpy loaded, with its thread and description calls, or None."""
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure the BLAS is loaded
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "openblas" in path.lower() and ".so" in path:
                paths.add(path)
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_", "64_"), ("", ""), ("", "64_")):
            try:
                setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
                corename = getattr(lib, f"{prefix}openblas_get_corename{suffix}")
                config = getattr(lib, f"{prefix}openblas_get_config{suffix}")
            except AttributeError:
                continue
            corename.restype = config.restype = ctypes.c_char_p
            return {"path": path, "set_threads": setter, "corename": corename, "config": config}
    return None


OPENBLAS = None if threadpool_info is not None else loaded_openblas()


def blas_info():
    if threadpool_info is not None:
        return [
            {key: lib.get(key) for key in ("internal_api", "version", "architecture", "threading_layer", "filepath")}
            for lib in threadpool_info()
            if lib.get("user_api") == "blas"
        ]
    if OPENBLAS is None:
        return []
    config = OPENBLAS["config"]().decode()
    return [
        {
            "internal_api": "openblas",
            "version": config.split()[1] if len(config.split()) > 1 else config,
            "architecture": OPENBLAS["corename"]().decode(),
            "threading_layer": "pthreads",
            "filepath": OPENBLAS["path"],
        }
    ]


@contextlib.contextmanager
def blas_threads(n):
    if threadpool_limits is not None:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    else:
        if OPENBLAS is not None:
            OPENBLAS["set_threads"](n)
        yield


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
    with blas_threads(threads):
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
        ms, cpu_ms = [], []
        for _ in range(repeat):
            c0 = time.process_time()
            t0 = time.perf_counter()
            for _ in range(inner):
                call()
            ms.append((time.perf_counter() - t0) * 1e3 / inner)
            cpu_ms.append((time.process_time() - c0) * 1e3 / inner)
    return {"lib": lib, "ms": ms, "cpu_ms": cpu_ms, "threads": threads}


def main():
    print(
        json.dumps({"blas": blas_info(), "numpy": np.__version__, "torch": torch.__version__ if torch else None}),
        flush=True,
    )
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
