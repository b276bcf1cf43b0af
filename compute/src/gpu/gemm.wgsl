// Strided, batched C_z = alpha * A_z * op(B_z) (the host's `Gemm`), row-major. AELEM and
// BELEM, the element types of A and B, are f32, or f16 where the adapter has SHADER_F16
// (the host substitutes them and prepends `enable f16;`): f16 x f16 for `matmul_f16`, f32
// activations x f16 weights for models uploaded with half weights. Accumulation is always
// f32.
//
// A template: the host substitutes WGX x WGY invocations per workgroup, each computing an
// RM x RN block of C, so a workgroup computes a TM x TN tile (TM = WGY * RM, TN = WGX * RN),
// walking K in steps of TK. Variants are chosen per adapter by a timed autotune.
//
// - Tiles of A and B are staged in workgroup memory, double-buffered: while the tile for
//   step s is multiplied, the tile for s + 1 is loaded into the other buffer, so each step
//   needs one barrier instead of two.
// - Each tile row is padded by one element (stride TM + 1, TN + 1), so that the stores of
//   consecutive invocations (which walk k for A) fall in different banks.
// - An invocation's rows and columns are strided by WGY and WGX (row lid.y + i * WGY,
//   column lid.x + j * WGX): consecutive invocations read consecutive workgroup-memory
//   words (no bank conflicts) and write consecutive words of C (coalesced).
// - Every load and store is bounds-checked, so any shape works; each output element is
//   the sum over k in increasing order whatever the variant.
//
// Three entry points: `main` writes alpha * A * op(B); `main_bias` (a linear layer in one
// pass) writes act(alpha * A * op(B) + bias[col]) with act in `pad0`: 0 none, 1 ReLU, 2 GELU
// (tanh form, argument clamped to +-15, as `bias_act` and the CPU twin); `main_bias_res`
// adds a residual laid out like C to that (a transformer block's skip connection).
//
// Bindings: 0 params (uniform), 1 A (read), 2 B (read), 3 C (read_write), 4 bias (read,
// `main_bias*` only), 5 residual (read, `main_bias_res` only); A and B are arrays of AELEM and BELEM, or of vec4<f32> in the aligned
// variant. Dispatch: (ceil(n / TN), ceil(m / TM), batch).

// COMMON: Params, bindings and biased() (gemm_common.wgsl)

const WX: u32 = WGXu;
const WY: u32 = WGYu;
const BM: u32 = RMu;
const BN: u32 = RNu;
const TK: u32 = TKu;
const TM: u32 = WY * BM;
const TN: u32 = WX * BN;
const THREADS: u32 = WX * WY;
const SA: u32 = TM + 1u;
const SB: u32 = TN + 1u;
const A_LOADS: u32 = (TM * TK) / THREADS;
const B_LOADS: u32 = (TN * TK) / THREADS;

var<workgroup> sa: array<f32, 2u * TK * SA>; // [buffer][TK][SA]
var<workgroup> sb: array<f32, 2u * TK * SB>; // [buffer][TK][SB]

// LOAD: the scalar loads (gemm_load.wgsl) or, for aligned shapes, vec4 ones
// (gemm_load_vec4.wgsl), substituted by the host.

// This invocation's RM x RN block of the workgroup's tile of A * op(B).
fn tile(lid: vec3<u32>, wid: vec3<u32>) -> array<array<f32, BN>, BM> {
    let tid = lid.y * WX + lid.x;
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let abase = p.a_off + wid.z * p.a_bs;
    let bbase = p.b_off + wid.z * p.b_bs;
    var acc: array<array<f32, BN>, BM>;
    for (var i = 0u; i < BM; i++) {
        for (var j = 0u; j < BN; j++) {
            acc[i][j] = 0.0;
        }
    }
    var ra: array<f32, BM>;
    var rb: array<f32, BN>;
    let steps = (p.k + TK - 1u) / TK;
    if (steps > 0u) {
        load(0u, 0u, tid, row0, col0, abase, bbase);
    }
    workgroupBarrier();
    for (var s = 0u; s < steps; s++) {
        let cur = s % 2u;
        if (s + 1u < steps) {
            // The other buffer was last read in step s - 1, before the barrier below it.
            load(1u - cur, (s + 1u) * TK, tid, row0, col0, abase, bbase);
        }
        for (var kk = 0u; kk < TK; kk++) {
            let ai = (cur * TK + kk) * SA + lid.y;
            let bi = (cur * TK + kk) * SB + lid.x;
            for (var i = 0u; i < BM; i++) {
                ra[i] = sa[ai + i * WY];
            }
            for (var j = 0u; j < BN; j++) {
                rb[j] = sb[bi + j * WX];
            }
            for (var i = 0u; i < BM; i++) {
                for (var j = 0u; j < BN; j++) {
                    acc[i][j] += ra[i] * rb[j];
                }
            }
        }
        workgroupBarrier();
    }
    return acc;
}

// The three entry points: the host writes this one out once for each, EPILOGUE as ``,
// `_bias` and `_bias_res`, STORE (what an output gets from its accumulated `v`) as
// `p.alpha * v`, `biased(v, col)` and `residual[at] + biased(v, col)`, so each references
// only the bindings its layout has.
// BEGIN EPILOGUE
@compute @workgroup_size(WX, WY, 1)
fn mainEPILOGUE(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let acc = tile(lid, wid);
    let cbase = p.c_off + wid.z * p.c_bs;
    for (var i = 0u; i < BM; i++) {
        let r = wid.y * TM + lid.y + i * WY;
        if (r < p.m) {
            for (var j = 0u; j < BN; j++) {
                let col = wid.x * TN + lid.x + j * WX;
                if (col < p.n) {
                    let at = cbase + r * p.ldc + col;
                    let v = acc[i][j];
                    c[at] = STORE;
                }
            }
        }
    }
}
// END EPILOGUE
