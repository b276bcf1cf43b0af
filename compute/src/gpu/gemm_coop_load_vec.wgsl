// Vector tile loads for gemm_coop.wgsl, 8 halves (one vec4<u32>, ATYPE) per load: for
// shapes whose A and B offsets, leading dimensions and batch strides are multiples of 8
// elements, as are k and (unless B is transposed) n, so a vector is wholly inside or
// wholly outside its matrix. Halves are little-endian: the low one of each u32 first.

const AV: u32 = TM * TK / 8u;
const BV: u32 = TK * TN / 8u;
const AR: u32 = (AV + THREADS - 1u) / THREADS;
const BR: u32 = (BV + THREADS - 1u) / THREADS;
var<private> ra: array<vec4<u32>, AR>;
var<private> rb: array<vec4<u32>, BR>;

fn fetch(t: u32, tid: u32, row0: u32, col0: u32, abase: u32, bbase: u32) {
    for (var q = 0u; q < AR; q++) {
        let e = tid + q * THREADS;
        let ar = e / (TK / 8u);
        let ak = (e % (TK / 8u)) * 8u;
        var v = vec4<u32>(0u);
        if (e < AV && row0 + ar < p.m && t + ak < p.k) {
            v = a[(abase + (row0 + ar) * p.lda + t + ak) / 8u];
        }
        ra[q] = v;
    }
    for (var q = 0u; q < BR; q++) {
        let e = tid + q * THREADS;
        var v = vec4<u32>(0u);
        if (p.trans_b != 0u) {
            // Vectors run along k, contiguous in a row of the stored (n x k) B.
            let bc = e / (TK / 8u);
            let bk = (e % (TK / 8u)) * 8u;
            if (e < BV && col0 + bc < p.n && t + bk < p.k) {
                v = b[(bbase + (col0 + bc) * p.ldb + t + bk) / 8u];
            }
        } else {
            let bk = e / (TN / 8u);
            let bc = (e % (TN / 8u)) * 8u;
            if (e < BV && t + bk < p.k && col0 + bc < p.n) {
                v = b[(bbase + (t + bk) * p.ldb + col0 + bc) / 8u];
            }
        }
        rb[q] = v;
    }
}

// The 8 halves of `v` in order (through f32, exactly: every f16 is an f32).
fn halves(v: vec4<u32>) -> array<f16, 8> {
    let h0 = vec2<f16>(unpack2x16float(v.x));
    let h1 = vec2<f16>(unpack2x16float(v.y));
    let h2 = vec2<f16>(unpack2x16float(v.z));
    let h3 = vec2<f16>(unpack2x16float(v.w));
    return array<f16, 8>(h0.x, h0.y, h1.x, h1.y, h2.x, h2.y, h3.x, h3.y);
}

fn stash(tid: u32) {
    for (var q = 0u; q < AR; q++) {
        let e = tid + q * THREADS;
        if (e < AV) {
            let at = (e / (TK / 8u)) * SA + (e % (TK / 8u)) * 8u;
            let h = halves(ra[q]);
            for (var i = 0u; i < 8u; i++) {
                sa[at + i] = h[i];
            }
        }
    }
    for (var q = 0u; q < BR; q++) {
        let e = tid + q * THREADS;
        if (e < BV) {
            let h = halves(rb[q]);
            if (p.trans_b != 0u) {
                let bc = e / (TK / 8u);
                let bk = (e % (TK / 8u)) * 8u;
                for (var i = 0u; i < 8u; i++) {
                    sb[(bk + i) * SB + bc] = h[i];
                }
            } else {
                let at = (e / (TN / 8u)) * SB + (e % (TN / 8u)) * 8u;
                for (var i = 0u; i < 8u; i++) {
                    sb[at + i] = h[i];
                }
            }
        }
    }
}
