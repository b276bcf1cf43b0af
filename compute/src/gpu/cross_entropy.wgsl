// Cross-entropy per row: logsumexp(x_row) - x_row[target]. Targets are checked against
// the column count on the host. Bindings: 0 params, 1 logits, 2 targets (u32), 3 out.
// Dispatch: one group per row.

struct Params { rows: u32, cols: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

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
    var m = LOWEST;
    for (var j = i; j < p.cols; j += WG) {
        m = max(m, x[base + j]);
    }
    m = wg_max(i, m);
    var s = 0.0;
    for (var j = i; j < p.cols; j += WG) {
        s += exp(x[base + j] - m);
    }
    s = wg_sum(i, s);
    if (i == 0u) {
        out[row] = m + log(s) - x[base + targets[row]];
    }
}
