"""The sampler's determinants: ablate.wavefunction.small_det against one batched LAPACK LU; prints JSON.

    python benchmarks/small_det.py                      # n = 4 ... 20, 512 float32 matrices
    python benchmarks/small_det.py --sizes 10,14 --batch 1024

Median milliseconds of a jitted sign/log|det| over ``--batch`` random n x n matrices (the quick
network's 128 walkers x 4 determinants by default), ours with the elimination written out
(``small_det.eliminate``, at every size) against ``jnp.linalg.slogdet``. ``MAX_UNROLLED`` is 16:
ours was ahead at every size timed (4 to 20), and the tests compare it with LAPACK up to 16.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time


def median_ms(fn, a, repeats: int) -> float:
    fn(a)[1].block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(a)[1].block_until_ready()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="4,8,10,12,14,16,20")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args(argv)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ablate.wavefunction import small_det

    unrolled = jax.jit(small_det.eliminate)
    lapack = jax.jit(jnp.linalg.slogdet)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        a = jnp.asarray(np.random.default_rng(n).normal(size=(args.batch, n, n)), jnp.float32)
        ours, theirs = median_ms(unrolled, a, args.repeats), median_ms(lapack, a, args.repeats)
        rows.append({"n": n, "small_det_ms": round(ours, 3), "lapack_ms": round(theirs, 3),
                     "ratio": round(ours / theirs, 3), "used_by_the_sampler": n <= small_det.MAX_UNROLLED})
    print(json.dumps({"benchmark": "small_det", "date": datetime.date.today().isoformat(),
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
                      "batch": args.batch, "dtype": "float32", "max_unrolled": small_det.MAX_UNROLLED,
                      "sizes": rows}))


if __name__ == "__main__":
    main()
