// Elementwise kernels over n values of a rows x cols matrix.
//   bias_act: out = act(x + y[i % cols]), act 0 none, 1 ReLU, 2 GELU (tanh form, argument
//             clamped to +-15 like the CPU twin)
//   add:      out = x + y
// Bindings: 0 params, 1 x, 2 y, 3 out. Dispatch: 1-D grid of 256-wide groups.

struct Params { n: u32, cols: u32, act: u32, pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat(li: u32, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

@compute @workgroup_size(256)
fn bias_act(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat(li, wid, nwg);
    if (i >= p.n) {
        return;
    }
    let v = x[i] + y[i % p.cols];
    if (p.act == 1u) {
        out[i] = max(v, 0.0);
    } else if (p.act == 2u) {
        let t = clamp(0.7978846 * (v + 0.044715 * v * v * v), -15.0, 15.0);
        out[i] = 0.5 * v * (1.0 + tanh(t));
    } else {
        out[i] = v;
    }
}

@compute @workgroup_size(256)
fn add(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat(li, wid, nwg);
    if (i < p.n) {
        out[i] = x[i] + y[i];
    }
}
