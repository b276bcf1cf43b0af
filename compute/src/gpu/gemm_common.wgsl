// What every gemm shares (gemm.wgsl, gemm_coop.wgsl; the host puts it where the file says
// COMMON): the parameters (the host's `Gemm`), the bindings, with A and B arrays of ATYPE
// and BTYPE, and the bias epilogue.

struct Params {
    m: u32, k: u32, n: u32, trans_b: u32,
    a_off: u32, lda: u32, a_bs: u32, alpha: f32,
    b_off: u32, ldb: u32, b_bs: u32, pad0: u32,
    c_off: u32, ldc: u32, c_bs: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<ATYPE>;
@group(0) @binding(2) var<storage, read> b: array<BTYPE>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;

// act(alpha * acc + bias[col]), the activation code in `pad0`.
fn biased(acc: f32, col: u32) -> f32 {
    let v = p.alpha * acc + bias[col];
    if (p.pad0 == 1u) {
        return max(v, 0.0);
    } else if (p.pad0 == 2u) {
        let t = clamp(0.7978846 * (v + 0.044715 * v * v * v), -15.0, 15.0);
        return 0.5 * v * (1.0 + tanh(t));
    }
    return v;
}
