// y = M v (or |M| v with absolute = 1), the O(n^2) step of Freivalds' check. Each
// invocation keeps a Kahan-compensated partial sum, so the f32 result's error does not
// grow with the row length; the 64 partials are then tree-summed.
//
// `one` is 1.0 from the host. Multiplying by it stops shader compilers from folding the
// compensation `(t - s) - term` to 0 (naga emits no NoContraction, and Mesa's NIR does
// fold it), since they cannot know the uniform's value.
// Bindings: 0 params, 1 M (rows x cols), 2 v (cols), 3 y (rows). Dispatch: one group per row.

struct Params { rows: u32, cols: u32, absolute: u32, one: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

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
    var s = 0.0;
    var comp = 0.0;
    for (var j = i; j < p.cols; j += WG) {
        var e = m[row * p.cols + j];
        if (p.absolute != 0u) {
            e = abs(e);
        }
        let term = e * v[j] - comp;
        let t = s + term;
        comp = (t * p.one - s) - term;
        s = t;
    }
    s = wg_sum(i, s);
    if (i == 0u) {
        y[row] = s;
    }
}
