// Strided, batched C_z = alpha * A_z * op(B_z) (the host's `Gemm`), row-major. ELEM is f32,
// or f16 where the adapter has SHADER_F16 (the host substitutes it and prepends
// `enable f16;`); accumulation is always f32.
//
// Register-blocked: each 16x16 workgroup computes a 64x64 tile of C, each invocation a
// 4x4 block of it, walking K in steps of 16 with the A and B tiles staged in workgroup
// memory (2 x 4 KiB). Every load and store is bounds-checked, so any shape works.
//
// Bindings: 0 params (uniform), 1 A (read), 2 B (read), 3 C (read_write).
// Dispatch: (ceil(n / 64), ceil(m / 64), batch).

struct Params {
    m: u32, k: u32, n: u32, trans_b: u32,
    a_off: u32, lda: u32, a_bs: u32, alpha: f32,
    b_off: u32, ldb: u32, b_bs: u32, pad0: u32,
    c_off: u32, ldc: u32, c_bs: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<ELEM>;
@group(0) @binding(2) var<storage, read> b: array<ELEM>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> sa: array<f32, 1024>; // [TK][TM]
var<workgroup> sb: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let tid = lid.y * 16u + lid.x;
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let abase = p.a_off + wid.z * p.a_bs;
    let bbase = p.b_off + wid.z * p.b_bs;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var t = 0u; t < p.k; t += TK) {
        for (var q = 0u; q < 4u; q++) {
            let e = tid + 256u * q;
            // A: consecutive invocations walk along k, contiguous in a row of A.
            let ar = e / TK;
            let ak = e % TK;
            var va = 0.0;
            if (row0 + ar < p.m && t + ak < p.k) {
                va = f32(a[abase + (row0 + ar) * p.lda + t + ak]);
            }
            sa[ak * TM + ar] = va;
            // B: walk whichever index is contiguous in memory.
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
            sb[bk * TN + bc] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ai = kk * TM + lid.y * 4u;
            let bi = kk * TN + lid.x * 4u;
            let a4 = vec4<f32>(sa[ai], sa[ai + 1u], sa[ai + 2u], sa[ai + 3u]);
            let b4 = vec4<f32>(sb[bi], sb[bi + 1u], sb[bi + 2u], sb[bi + 3u]);
            acc[0] += a4.x * b4;
            acc[1] += a4.y * b4;
            acc[2] += a4.z * b4;
            acc[3] += a4.w * b4;
        }
        workgroupBarrier();
    }
    let cbase = p.c_off + wid.z * p.c_bs;
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        if (r < p.m) {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + lid.x * 4u + j;
                if (col < p.n) {
                    c[cbase + r * p.ldc + col] = p.alpha * acc[i][j];
                }
            }
        }
    }
}
