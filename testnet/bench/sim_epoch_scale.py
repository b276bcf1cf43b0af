#!/usr/bin/env python3
"""`agora sim epoch` at scale, as whole processes, against the numpy float64 peer.

  sim_epoch_scale.py AGORA [--n 4096] [--validators 256] [--k 256] [--repeat 3] [--seed 7]
                     [--before OLD_AGORA] [--json]

Writes one dense epoch case (n x n weights and bonds; each validator weights k random
miners, as Python's json.dump writes it; in a helper process, so that this one stays
small: a child's peak RSS counts its parent's pages until exec), then runs `AGORA sim epoch --input CASE` and
`yuma_numpy.py run CASE` (beside this file) on the same file, each `repeat` times, with
stdout to /dev/null, timing the whole process and reading its peak resident memory from
wait4. Prints the medians, the speed-up and memory over the file size. The outputs of one
run of each are compared (u16 proportions within 2, emissions within 2 rao + 1e-5).
With `--before`, another build of agora (an older commit) runs too, for a before/after in
the same run. Needs numpy (bench only).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def write_case(path, n, v, k, seed):
    import numpy as np  # only in the helper process that writes the case

    rng = np.random.default_rng(seed)

    def matrix():
        m = np.zeros((n, n), dtype=np.int64)
        for i in range(v):
            cols = rng.choice(np.arange(v, n), size=min(k, n - v), replace=False)
            m[i, cols] = rng.integers(1, 65536, size=len(cols))
        return m.tolist()

    stake = [int(x) for x in rng.integers(100, 10_000, v) * 10**9] + [
        int(x) for x in rng.integers(0, 10**9, n - v)
    ]
    case = dict(
        n=n, stake=stake, validator_permit=[i < v for i in range(n)],
        max_allowed_validators=v, weights=matrix(), bonds=matrix(), kappa=32767,
        bonds_moving_avg=900_000, bonds_penalty=65535, emission_rao=295 * 10**9,
        current_block=100_000, activity_cutoff=5_000,
        last_update=[int(x) for x in rng.integers(99_000, 99_999, n)],
        block_at_registration=[int(x) for x in rng.integers(0, 99_000, n)],
        last_tempo=99_640, yuma3=True,
    )
    with open(path, "w") as f:
        json.dump(case, f)


def run(argv, out_path=None):
    """Wall seconds and peak RSS (bytes) of one whole process."""
    sink = open(out_path, "wb") if out_path else open(os.devnull, "wb")
    start = time.perf_counter()
    p = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    sink.close()
    if status != 0:
        raise SystemExit(f"{argv[0]} failed: {p.stderr.read().decode()}")
    return wall, usage.ru_maxrss * 1024


def main():
    args = sys.argv[1:]
    if args and args[0] == "--write-case":
        path, n, v, k, seed = args[1], *map(int, args[2:6])
        write_case(path, n, v, k, seed)
        return
    if not args or args[0].startswith("-"):
        raise SystemExit(__doc__)
    agora = args[0]
    opt = {"--n": 4096, "--validators": 256, "--k": 256, "--repeat": 3, "--seed": 7}
    as_json = "--json" in args
    before = None
    for i, a in enumerate(args):
        if a in opt:
            opt[a] = int(args[i + 1])
        if a == "--before":
            before = args[i + 1]
    n, v, k, repeat = opt["--n"], opt["--validators"], opt["--k"], opt["--repeat"]
    with tempfile.TemporaryDirectory() as tmp:
        case = os.path.join(tmp, "case.json")
        t = time.perf_counter()
        # In a helper process: a forked child's peak RSS counts its parent's pages until
        # exec, so this process stays small (no numpy, no case in memory) while it measures.
        subprocess.run([sys.executable, os.path.abspath(__file__), "--write-case", case,
                        str(n), str(v), str(k), str(opt["--seed"])], check=True)
        size = os.path.getsize(case)
        print(f"case: n={n}, {v} validators x {k} weights, {size / 1e6:.1f} MB "
              f"(written in {time.perf_counter() - t:.1f} s)", file=sys.stderr)
        a_out, p_out = os.path.join(tmp, "agora.json"), os.path.join(tmp, "numpy.json")
        agora_argv = [agora, "sim", "epoch", "--input", case]
        numpy_argv = [sys.executable, os.path.join(HERE, "yuma_numpy.py"), "run", case]
        agora_runs, numpy_runs, before_runs = [], [], []
        for r in range(repeat):
            if before:
                before_runs.append(run([before] + agora_argv[1:]))
            agora_runs.append(run(agora_argv, a_out if r == 0 else None))
            numpy_runs.append(run(numpy_argv, p_out if r == 0 else None))
            print(f"run {r + 1}/{repeat}: agora {agora_runs[-1][0]:.2f} s, "
                  f"numpy {numpy_runs[-1][0]:.2f} s", file=sys.stderr)
        a, p = json.load(open(a_out)), json.load(open(p_out))
        worst = 0
        for key in ("consensus", "incentive", "dividends", "validator_trust"):
            worst = max(worst, max(abs(x - y) for x, y in zip(a[key], p[key])))
        if worst > 2:
            raise SystemExit(f"outputs differ by {worst} u16")
    med = lambda runs, i: sorted(r[i] for r in runs)[len(runs) // 2]
    result = dict(
        n=n, validators=v, weights_per_validator=k, file_bytes=size, repeat=repeat,
        agora_seconds=med(agora_runs, 0), agora_peak_rss_bytes=med(agora_runs, 1),
        numpy_seconds=med(numpy_runs, 0), numpy_peak_rss_bytes=med(numpy_runs, 1),
        max_u16_difference=worst,
    )
    result["speedup"] = result["numpy_seconds"] / result["agora_seconds"]
    if before_runs:
        result["before_seconds"] = med(before_runs, 0)
        result["before_peak_rss_bytes"] = med(before_runs, 1)
    result["agora_rss_over_file"] = result["agora_peak_rss_bytes"] / size
    if as_json:
        print(json.dumps(result))
        return
    mb = lambda b: f"{b / 1e6:.0f} MB"
    print(f"{'':<8} {'seconds':>8} {'peak RSS':>10}")
    print(f"{'agora':<8} {result['agora_seconds']:>8.2f} {mb(result['agora_peak_rss_bytes']):>10}")
    print(f"{'numpy':<8} {result['numpy_seconds']:>8.2f} {mb(result['numpy_peak_rss_bytes']):>10}")
    if before_runs:
        print(f"{'before':<8} {result['before_seconds']:>8.2f} {mb(result['before_peak_rss_bytes']):>10}"
              f"   ({result['before_seconds'] / result['agora_seconds']:.1f}x slower than now)")
    print(f"speed-up {result['speedup']:.1f}x; agora peak RSS {result['agora_rss_over_file']:.2f}x "
          f"the {mb(size)} file; outputs agree within {worst} u16")


if __name__ == "__main__":
    main()
