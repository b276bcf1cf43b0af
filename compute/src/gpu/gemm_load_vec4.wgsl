// vec4 tile loads for gemm.wgsl, f32 only, used when every A and B offset, leading
// dimension and batch stride is a multiple of 4, and so is k (and n unless B is
// transposed): each load brings 4 consecutive elements along the contiguous index, so a
// vector is either wholly inside the matrix or wholly outside it.

const A_VECS: u32 = (TM * TK) / 4u;
const B_VECS: u32 = (TN * TK) / 4u;
const A_VLOADS: u32 = (A_VECS + THREADS - 1u) / THREADS;
const B_VLOADS: u32 = (B_VECS + THREADS - 1u) / THREADS;
const KV: u32 = TK / 4u;
const NV: u32 = TN / 4u;

// Stage the K tile starting at `t` into buffer `buf`; zero outside the matrices.
fn load(buf: u32, t: u32, tid: u32, row0: u32, col0: u32, abase: u32, bbase: u32) {
    for (var q = 0u; q < A_VLOADS; q++) {
        let e = tid + THREADS * q;
        if (e < A_VECS) {
            // Along k, contiguous in a row of A.
            let ar = e / KV;
            let ak = (e % KV) * 4u;
            var va = vec4<f32>(0.0);
            if (row0 + ar < p.m && t + ak < p.k) {
                va = a[(abase + (row0 + ar) * p.lda + t + ak) / 4u];
            }
            for (var i = 0u; i < 4u; i++) {
                sa[(buf * TK + ak + i) * SA + ar] = va[i];
            }
        }
    }
    for (var q = 0u; q < B_VLOADS; q++) {
        let e = tid + THREADS * q;
        if (e < B_VECS) {
            if (p.trans_b != 0u) {
                // B stored n x k: along k.
                let bc = e / KV;
                let bk = (e % KV) * 4u;
                var vb = vec4<f32>(0.0);
                if (t + bk < p.k && col0 + bc < p.n) {
                    vb = b[(bbase + (col0 + bc) * p.ldb + t + bk) / 4u];
                }
                for (var i = 0u; i < 4u; i++) {
                    sb[(buf * TK + bk + i) * SB + bc] = vb[i];
                }
            } else {
                // Along n.
                let bk = e / NV;
                let bc = (e % NV) * 4u;
                var vb = vec4<f32>(0.0);
                if (t + bk < p.k && col0 + bc < p.n) {
                    vb = b[(bbase + (t + bk) * p.ldb + col0 + bc) / 4u];
                }
                for (var i = 0u; i < 4u; i++) {
                    sb[(buf * TK + bk) * SB + bc + i] = vb[i];
                }
            }
        }
    }
}
