// Shared by the row kernels: one 64-wide workgroup per row (rows folded into a 2-D grid),
// each invocation striding over the row, then a tree reduction in workgroup memory.

const WG: u32 = 64u;
var<workgroup> red: array<f32, 64>;

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

fn wg_sum(i: u32, v: f32) -> f32 {
    red[i] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (i < s) {
            red[i] = red[i] + red[i + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn wg_max(i: u32, v: f32) -> f32 {
    red[i] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (i < s) {
            red[i] = max(red[i], red[i + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

const LOWEST: f32 = -3.4028235e38;
