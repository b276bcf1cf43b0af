// Scalar tile loads for gemm_coop.wgsl: any shape; A and B stored as f16 or f32 (ATYPE,
// BTYPE), rounded to f16 here.

const AR: u32 = (TM * TK + THREADS - 1u) / THREADS;
const BR: u32 = (TK * TN + THREADS - 1u) / THREADS;
var<private> ra: array<f16, AR>;
var<private> rb: array<f16, BR>;

// This invocation's share of the K tile starting at `t`, zero outside the matrices.
fn fetch(t: u32, tid: u32, row0: u32, col0: u32, abase: u32, bbase: u32) {
    for (var q = 0u; q < AR; q++) {
        // Consecutive invocations walk along k, contiguous in a row of A.
        let e = tid + q * THREADS;
        let ar = e / TK;
        let ak = e % TK;
        var v = f16(0.0);
        if (e < TM * TK && row0 + ar < p.m && t + ak < p.k) {
            v = f16(a[abase + (row0 + ar) * p.lda + t + ak]);
        }
        ra[q] = v;
    }
    for (var q = 0u; q < BR; q++) {
        // Walk whichever index is contiguous in memory.
        let e = tid + q * THREADS;
        var bk = e / TN;
        var bc = e % TN;
        if (p.trans_b != 0u) {
            bk = e % TK;
            bc = e / TK;
        }
        var v = f16(0.0);
        if (e < TK * TN && t + bk < p.k && col0 + bc < p.n) {
            if (p.trans_b != 0u) {
                v = f16(b[bbase + (col0 + bc) * p.ldb + t + bk]);
            } else {
                v = f16(b[bbase + (t + bk) * p.ldb + col0 + bc]);
            }
        }
        rb[q] = v;
    }
}

fn stash(tid: u32) {
    for (var q = 0u; q < AR; q++) {
        let e = tid + q * THREADS;
        if (e < TM * TK) {
            sa[(e / TK) * SA + e % TK] = ra[q];
        }
    }
    for (var q = 0u; q < BR; q++) {
        let e = tid + q * THREADS;
        if (e < TK * TN) {
            if (p.trans_b != 0u) {
                sb[(e % TK) * SB + e / TK] = rb[q];
            } else {
                sb[(e / TN) * SB + e % TN] = rb[q];
            }
        }
    }
}
