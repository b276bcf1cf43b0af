// Tensor-core gemm through cooperative matrices (wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX,
// Vulkan's VK_KHR_cooperative_matrix): the host's strided, batched
// C_z = alpha * A_z * op(B_z), row-major: f16 products, f32 accumulation, A and B stored as
// f16 or as f32 (rounded to f16 as they are staged; the host picks the loads).
// The same parameters, bindings, entry points and dispatch as gemm.wgsl, so it runs any
// `Gemm` the portable kernel runs, and stays the fallback everywhere else.
//
// A template: the host substitutes S (the side of the adapter's square f16 x f16 -> f32
// cooperative matrix, 8 or 16), SG (the adapter's subgroup size, fixed), WM x WN subgroups
// per workgroup, each owning FM x FN matrices of C, and TK (a multiple of S).
// A workgroup computes a TM x TN tile, TM = WM * FM * S, TN = WN * FN * S.
//
// - Tiles of A (TM x TK) and B (TK x TN) are staged in workgroup memory as f16, zero
//   outside the matrices (so ragged shapes need no special case), rows padded by 8 halves:
//   cooperative loads need 16-byte aligned rows, and the padding spreads rows over banks.
//   The next tile is read from global memory into registers while the current one is
//   multiplied. f16 operands of aligned shapes read 8 halves per load (as vec4<u32>),
//   everything else one element per load.
// - Each subgroup loads its FM matrices of A and FN of B per S-wide step of k and does
//   FM x FN multiply-adds into accumulators it keeps for the whole of k.
// - At the end each accumulator goes through the subgroup's own S x S slot of workgroup
//   memory, from which its invocations write C with alpha, the epilogue, and bounds checks:
//   elements outside C are never written, so NaN poisoning still shows unwritten output.
//
// Cooperative operations need the whole subgroup: every loop bound here is uniform.

enable f16;
enable wgpu_cooperative_matrix;

// COMMON: Params, bindings and biased() (gemm_common.wgsl)

const S: u32 = COOP_S;
const SG: u32 = COOP_SG;
const WM: u32 = COOP_WM;
const WN: u32 = COOP_WN;
const FM: u32 = COOP_FM;
const FN: u32 = COOP_FN;
const TK: u32 = COOP_TK;
const WARPS: u32 = WM * WN;
const THREADS: u32 = WARPS * SG;
const TM: u32 = WM * FM * S;
const TN: u32 = WN * FN * S;
const SA: u32 = TK + 8u;
const SB: u32 = TN + 8u;

var<workgroup> sa: array<f16, TM * SA>; // [TM][SA]
var<workgroup> sb: array<f16, TK * SB>; // [TK][SB]
var<workgroup> sc: array<f32, WARPS * S * S>; // [warp][S][S]

alias MatA = coop_matCOOP_SIDE<f16, A>;
alias MatB = coop_matCOOP_SIDE<f16, B>;
alias MatC = coop_matCOOP_SIDE<f32, C>;

// LOAD: `fetch` (global memory to registers) and `stash` (registers to the workgroup
// tiles), scalar (gemm_coop_load.wgsl) or, for aligned shapes, 8 halves at a time
// (gemm_coop_load_vec.wgsl), substituted by the host.

// The whole product for one workgroup. The host writes this entry point out three
// times, EPILOGUE as ``, `_bias` and `_bias_res`, with STORE (each output from its
// accumulated value `v`) as `p.alpha * v`, `biased(v, col)` and
// `residual[at] + biased(v, col)`: an entry point may only reference the bindings its
// layout has.
// BEGIN EPILOGUE
@compute @workgroup_size(THREADS, 1, 1)
fn mainEPILOGUE(
    @builtin(local_invocation_index) tid: u32,
    @builtin(subgroup_id) warp: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let abase = p.a_off + wid.z * p.a_bs;
    let bbase = p.b_off + wid.z * p.b_bs;
    let wr = (warp / WN) * FM * S; // this subgroup's first row and column in the tile
    let wc = (warp % WN) * FN * S;
    var acc: array<MatC, FM * FN>;
    for (var f = 0u; f < FM * FN; f++) {
        acc[f] = MatC();
    }
    var fa: array<MatA, FM>;
    var fb: array<MatB, FN>;
    fetch(0u, tid, row0, col0, abase, bbase);
    for (var t = 0u; t < p.k; t += TK) {
        stash(tid);
        workgroupBarrier();
        // The next tile's global loads are in flight while this one is multiplied.
        if (t + TK < p.k) {
            fetch(t + TK, tid, row0, col0, abase, bbase);
        }
        for (var kk = 0u; kk < TK; kk += S) {
            for (var i = 0u; i < FM; i++) {
                fa[i] = coopLoadT<MatA>(&sa[(wr + i * S) * SA + kk], SA);
            }
            for (var j = 0u; j < FN; j++) {
                fb[j] = coopLoadT<MatB>(&sb[kk * SB + wc + j * S], SB);
            }
            for (var i = 0u; i < FM; i++) {
                for (var j = 0u; j < FN; j++) {
                    acc[i * FN + j] = coopMultiplyAdd(fa[i], fb[j], acc[i * FN + j]);
                }
            }
        }
        workgroupBarrier();
    }
    let cbase = p.c_off + wid.z * p.c_bs;
    let slot = warp * S * S;
    for (var f = 0u; f < FM * FN; f++) {
        coopStoreT(acc[f], &sc[slot], S);
        workgroupBarrier();
        let r0 = row0 + wr + (f / FN) * S;
        let c0 = col0 + wc + (f % FN) * S;
        for (var e = lane; e < S * S; e += SG) {
            let r = r0 + e / S;
            let col = c0 + e % S;
            if (r < p.m && col < p.n) {
                let at = cbase + r * p.ldc + col;
                let v = sc[slot + e];
                c[at] = STORE;
            }
        }
        // The slot is rewritten by the next accumulator.
        workgroupBarrier();
    }
}
// END EPILOGUE
