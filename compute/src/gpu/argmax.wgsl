// Per-row argmax: the first index of the row's largest value (rows holding NaN: any
// index). Bindings: 0 params, 1 x, 2 out (u32 per row). Dispatch: one group per row.

struct Params { rows: u32, cols: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> best_i: array<u32, 64>;

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
    var bv = LOWEST;
    var bi = 0xffffffffu;
    for (var j = i; j < p.cols; j += WG) {
        let v = x[row * p.cols + j];
        if (bi == 0xffffffffu || v > bv) {
            bv = v;
            bi = j;
        }
    }
    red[i] = bv;
    best_i[i] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (i < s) {
            let ov = red[i + s];
            let oi = best_i[i + s];
            if (oi != 0xffffffffu && (best_i[i] == 0xffffffffu || ov > red[i] || (ov == red[i] && oi < best_i[i]))) {
                red[i] = ov;
                best_i[i] = oi;
            }
        }
        workgroupBarrier();
    }
    if (i == 0u) {
        out[row] = best_i[0];
    }
}
