#!/usr/bin/env python3
"""Yuma epoch (R§6.2-6.8, sparse-path semantics) as vectorised numpy float64.

An independent implementation of the same algorithm as agora-core's fixed-point epoch:
  yuma_numpy.py run CASE.json            outputs like `agora sim epoch` (float64, floored to u16/rao)
  yuma_numpy.py bench CASE.json REPEAT   time the epoch on a case with sparse rows; prints JSON
  yuma_numpy.py crosscheck AGORA N SEED  N random cases through both; fail beyond +-2 u16 / 2 rao + 1e-5 E
Needs numpy (bench/CI only; never the node).
"""
import json
import subprocess
import sys
import tempfile
import time

import numpy as np

U16 = 65535.0
DEFAULTS = dict(kappa=32767, bonds_moving_avg=900_000, bonds_penalty=65535, stake_threshold=0,
                emission_rao=0, current_block=0, activity_cutoff=5000, max_allowed_validators=128,
                yuma3=False, liquid_alpha=False, alpha_low=45875, alpha_high=58982,
                alpha_sigmoid_steepness=1000, owner_uid=None)


def normalize(x):
    s = x.sum()
    return x / s if s != 0 else x


def col_normalize(m):
    s = m.sum(axis=0)
    return np.divide(m, s, out=m.copy(), where=s != 0)


def weighted_median_cols(stake, w, kappa):
    """c_j with stake(score < c) <= 1 - kappa < stake(score <= c), over rows with stake > 0."""
    rows = stake > 0
    if not rows.any():
        return np.zeros(w.shape[1])
    s = normalize(stake[rows])
    scores = w[rows]
    minority = s.sum() - kappa
    order = np.argsort(scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    cum = np.cumsum(s[order], axis=0)
    idx = np.argmax(cum > minority, axis=0)
    none = ~(cum > minority).any(axis=0)
    med = sorted_scores[idx, np.arange(w.shape[1])]
    med[none] = sorted_scores[-1, none]
    return med


def epoch(c):
    n = c["n"]
    stake = np.asarray(c["stake"], dtype=np.float64)
    owner = c.get("owner_uid")
    is_owner = np.zeros(n, dtype=bool)
    if owner is not None:
        is_owner[owner] = True
    last_update = np.asarray(c["last_update"], dtype=np.float64)
    bar = np.asarray(c["block_at_registration"], dtype=np.float64)
    inactive = last_update + c["activity_cutoff"] < c["current_block"]
    stake = np.where((stake < c["stake_threshold"]) & ~is_owner, 0.0, stake)
    S = normalize(stake)
    old_permit = np.asarray(c["validator_permit"], dtype=bool) | is_owner
    k = c["max_allowed_validators"]
    new_permit = S != 0
    if n >= k:
        order = np.argsort(S, kind="stable")
        new_permit[order[: n - k]] = False
    new_permit |= is_owner
    active_S = normalize(np.where(inactive | ~old_permit, 0.0, S))

    W = c["W"].copy()
    W[~old_permit] = 0
    diag = np.arange(n)
    keep_self = W[diag, diag] * is_owner
    W[diag, diag] = keep_self
    W[last_update[:, None] <= bar[None, :]] = 0
    W = np.divide(W, W.sum(axis=1, keepdims=True), out=W, where=W.sum(axis=1, keepdims=True) > 0)

    kappa = c["kappa"] / U16
    C = weighted_median_cols(active_S, W, kappa)
    Wc = np.minimum(W, C[None, :])
    VT = Wc.sum(axis=1)
    I = normalize(active_S @ Wc)

    beta = c["bonds_penalty"] / U16
    Wb = W + beta * (Wc - W)
    recent = bar >= c["last_tempo"]
    alpha = 1.0 - c["bonds_moving_avg"] / 1e6
    B_old = c["B"].copy()
    B_old[:, recent] = 0
    if c["yuma3"]:
        B_old = B_old / U16
        if c["liquid_alpha"] and (C != 0).any():
            lo, hi = c["alpha_low"] / U16, c["alpha_high"] / U16
            steep = c["alpha_sigmoid_steepness"] / 100.0
            buy = np.clip(Wb - C[None, :], 0, 1)
            sell = np.clip(B_old - Wb, 0, 1)
            d = np.where(Wb >= B_old, buy, sell)
            sig = 1.0 / (1.0 + np.exp(np.clip(-steep * (d - 0.5), -20, 20)))
            a = np.clip(lo + sig * (hi - lo), lo, hi)
            B = np.where(Wb > 0, np.minimum(1.0, (1 - a) * B_old + np.maximum(0, a * Wb)), 0.0)
        else:
            B = alpha * Wb + (1 - alpha) * B_old
        D = normalize((col_normalize(B) @ I) * active_S)
        B_store = B
    else:
        B_old = col_normalize(B_old)
        dB = col_normalize(Wb * active_S[:, None])
        B = col_normalize(alpha * dB + (1 - alpha) * B_old)
        D = normalize(B @ I)
        mx = B.max(axis=0)
        B_store = np.divide(B, mx, out=B.copy(), where=mx != 0)

    comb = I + D
    esum = comb.sum()
    srv = I / esum if esum != 0 else I
    val = D / esum if esum != 0 else D
    combn = normalize(comb)
    if esum == 0:
        fb = S if not active_S.any() else active_S
        val, combn = fb, fb
    E = c["emission_rao"]
    u16 = lambda x: np.floor(np.asarray(x) * U16 + 1e-12).astype(np.int64).clip(0, 65535)
    bonds = np.where(new_permit[:, None], u16(B_store), 0)
    return dict(consensus=u16(C).tolist(), incentive=u16(I).tolist(), dividends=u16(D).tolist(),
                validator_trust=u16(VT).tolist(), stake_weight=u16(S).tolist(), bonds=bonds.tolist(),
                server_emission=np.floor(srv * E).astype(np.int64).tolist(),
                validator_emission=np.floor(val * E).astype(np.int64).tolist(),
                emission=np.floor(combn * E).astype(np.int64).tolist(),
                validator_permit=new_permit.tolist(), active=(~inactive).tolist())


def prepare(raw):
    c = dict(DEFAULTS)
    c.update(raw.get("input", raw))
    n = c["n"]
    c.setdefault("validator_permit", [False] * n)
    c.setdefault("last_update", [0] * n)
    c.setdefault("block_at_registration", [0] * n)
    c.setdefault("last_tempo", max(0, c["current_block"] - 360))
    c.pop("active", None)
    for key, dst in (("weights", "W"), ("bonds", "B")):
        m = np.zeros((n, n))
        if key in c:
            m[:, :] = np.asarray(c[key], dtype=np.float64)
        for i, row in enumerate(c.get(key + "_sparse", [])):
            for j, v in row:
                m[i, j] = v
        c[dst] = m
    return c


def crosscheck(agora, count, seed):
    rng = np.random.default_rng(seed)
    worst = 0
    for case_no in range(count):
        n = int(rng.integers(2, 12))
        v = int(rng.integers(1, n + 1))
        w = (rng.random((n, n)) < 0.6) * rng.integers(0, 65536, (n, n))
        w[v:] = 0
        case = dict(n=n, stake=[int(x) for x in rng.integers(0, 10**13, n)],
                    validator_permit=[bool(x) for x in rng.random(n) < 0.8],
                    max_allowed_validators=int(rng.integers(1, n + 2)), weights=w.tolist(),
                    bonds=((rng.random((n, n)) < 0.5) * rng.integers(0, 65536, (n, n))).tolist(),
                    kappa=int(rng.choice([32767, 40000, 20000])), bonds_penalty=int(rng.choice([65535, 0, 30000])),
                    bonds_moving_avg=int(rng.choice([900_000, 500_000])), emission_rao=int(rng.integers(1, 10**12)),
                    current_block=1000, activity_cutoff=300,
                    last_update=[int(x) for x in rng.integers(600, 1000, n)],
                    block_at_registration=[int(x) for x in rng.integers(0, 900, n)], last_tempo=800,
                    yuma3=bool(rng.random() < 0.5), liquid_alpha=bool(rng.random() < 0.3))
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(case, f)
        got = json.loads(subprocess.run([agora, "sim", "epoch", "--input", f.name], check=True,
                                        capture_output=True, text=True).stdout)
        want = epoch(prepare(case))
        E = case["emission_rao"]
        for key in ("consensus", "incentive", "dividends", "validator_trust", "stake_weight"):
            d = max(abs(a - b) for a, b in zip(got[key], want[key]))
            worst = max(worst, d)
            assert d <= 2, f"case {case_no} {key}: {got[key]} vs {want[key]}\n{json.dumps(case)}"
        gb, wb = np.asarray(got["bonds"]), np.asarray(want["bonds"])
        assert np.abs(gb - wb).max() <= 2, f"case {case_no} bonds: {gb} vs {wb}\n{json.dumps(case)}"
        for key in ("server_emission", "validator_emission", "emission"):
            d = max(abs(a - b) for a, b in zip(got[key], want[key]))
            assert d <= 2 + 1e-5 * E, f"case {case_no} {key}: {got[key]} vs {want[key]}\n{json.dumps(case)}"
        for key in ("validator_permit", "active"):
            assert got[key] == want[key], f"case {case_no} {key}: {got[key]} vs {want[key]}"
    print(f"ok: {count} random epochs agree with numpy float64 (worst u16 difference {worst})")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "run":
        print(json.dumps(epoch(prepare(json.load(open(sys.argv[2]))))))
    elif mode == "bench":
        c = prepare(json.load(open(sys.argv[2])))
        times = []
        for _ in range(int(sys.argv[3])):
            t = time.perf_counter()
            epoch(c)
            times.append(time.perf_counter() - t)
        print(json.dumps({"median_s": float(np.median(times)), "numpy": np.__version__}))
    elif mode == "crosscheck":
        crosscheck(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(__doc__)
