// Row layer normalisation: (x - mean) / sqrt(var + eps) * gamma + beta, two passes.
// Bindings: 0 params, 1 x, 2 gamma, 3 beta, 4 out. Dispatch: one group per row.

struct Params { rows: u32, cols: u32, eps: f32, pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) i: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let n = f32(p.cols);
    var s = 0.0;
    for (var j = i; j < p.cols; j += WG) {
        s += x[base + j];
    }
    let mean = wg_sum(i, s) / n;
    var v = 0.0;
    for (var j = i; j < p.cols; j += WG) {
        let d = x[base + j] - mean;
        v += d * d;
    }
    let inv = 1.0 / sqrt(wg_sum(i, v) / n + p.eps);
    for (var j = i; j < p.cols; j += WG) {
        out[base + j] = (x[base + j] - mean) * inv * gamma[j] + beta[j];
    }
}
