// Row softmax of scale * x. period > 0: row r keeps columns 0..=r % period (causal
// attention, one period x period block per head); masked columns are written as 0.
// Bindings: 0 params, 1 x, 2 out. Dispatch: one group per row.

struct Params { rows: u32, cols: u32, period: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

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
    var valid = p.cols;
    if (p.period > 0u) {
        valid = min(p.cols, row % p.period + 1u);
    }
    var m = LOWEST;
    for (var j = i; j < valid; j += WG) {
        m = max(m, x[base + j] * p.scale);
    }
    m = wg_max(i, m);
    var s = 0.0;
    for (var j = i; j < valid; j += WG) {
        s += exp(x[base + j] * p.scale - m);
    }
    s = wg_sum(i, s);
    for (var j = i; j < p.cols; j += WG) {
        if (j < valid) {
            out[base + j] = exp(x[base + j] * p.scale - m) / s;
        } else {
            out[base + j] = 0.0;
        }
    }
}
