// out[i] = the f32 with bit pattern `value`: poisons outputs with NaN before a kernel runs.
// Bindings: 0 params, 1 out. Dispatch: 1-D grid of 256-wide groups (folded into y).

struct Params { n: u32, value: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i < p.n) {
        out[i] = bitcast<f32>(p.value);
    }
}
