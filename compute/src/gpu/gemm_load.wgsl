// Scalar tile loads for gemm.wgsl: any shape, any element type.

// Stage the K tile starting at `t` into buffer `buf`; zero outside the matrices.
fn load(buf: u32, t: u32, tid: u32, row0: u32, col0: u32, abase: u32, bbase: u32) {
    for (var q = 0u; q < A_LOADS; q++) {
        let e = tid + THREADS * q;
        // Consecutive invocations walk along k, contiguous in a row of A.
        let ar = e / TK;
        let ak = e % TK;
        var va = 0.0;
        if (row0 + ar < p.m && t + ak < p.k) {
            va = f32(a[abase + (row0 + ar) * p.lda + t + ak]);
        }
        sa[(buf * TK + ak) * SA + ar] = va;
    }
    for (var q = 0u; q < B_LOADS; q++) {
        let e = tid + THREADS * q;
        // Walk whichever index is contiguous in memory.
        var bk = e / TN;
        var bc = e % TN;
        if (p.trans_b != 0u) {
            bk = e % TK;
            bc = e / TK;
        }
        var vb = 0.0;
        if (t + bk < p.k && col0 + bc < p.n) {
            if (p.trans_b != 0u) {
                vb = f32(b[bbase + (col0 + bc) * p.ldb + t + bk]);
            } else {
                vb = f32(b[bbase + (t + bk) * p.ldb + col0 + bc]);
            }
        }
        sb[(buf * TK + bk) * SB + bc] = vb;
    }
}

