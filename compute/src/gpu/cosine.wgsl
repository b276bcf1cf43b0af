// Cosine similarity of row r of a with row r of b (0 when either is all zeros).
// Bindings: 0 params, 1 a, 2 b, 3 out (one value per row). Dispatch: one group per row.

struct Params { rows: u32, cols: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
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
    var d = 0.0;
    var na = 0.0;
    var nb = 0.0;
    for (var j = i; j < p.cols; j += WG) {
        let x = a[row * p.cols + j];
        let y = b[row * p.cols + j];
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    d = wg_sum(i, d);
    na = sqrt(wg_sum(i, na));
    nb = sqrt(wg_sum(i, nb));
    if (i == 0u) {
        if (na == 0.0 || nb == 0.0) {
            out[row] = 0.0;
        } else {
            out[row] = d / (na * nb);
        }
    }
}
