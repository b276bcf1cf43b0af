// Per-row sum and max. Bindings: 0 params, 1 x, 2 out (one value per row).
// Dispatch: one group per row.

struct Params { rows: u32, cols: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn row_sum(
    @builtin(local_invocation_index) i: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    var s = 0.0;
    for (var j = i; j < p.cols; j += WG) {
        s += x[row * p.cols + j];
    }
    s = wg_sum(i, s);
    if (i == 0u) {
        out[row] = s;
    }
}

@compute @workgroup_size(64)
fn row_max(
    @builtin(local_invocation_index) i: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    var m = LOWEST;
    for (var j = i; j < p.cols; j += WG) {
        m = max(m, x[row * p.cols + j]);
    }
    m = wg_max(i, m);
    if (i == 0u) {
        out[row] = m;
    }
}
