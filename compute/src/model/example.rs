//! Small random models written as safetensors files, in the layouts the loaders read:
//! what the tests run and what `agora compute example-model` writes for trying
//! `agora compute run` without downloading anything.

use crate::model::weights::{write, Named};
use crate::{ComputeError, Mat};

/// Random values in [-scale, scale).
fn random(rows: usize, cols: usize, seed: u64, scale: f32) -> Vec<f32> {
    Mat::random(rows, cols, seed)
        .data
        .into_iter()
        .map(|v| v * scale)
        .collect()
}

/// [`write`] for tensors built here (owned names and values).
fn write_owned(
    owned: &[(String, Vec<usize>, Vec<f32>)],
    metadata: &[(&str, &str)],
) -> Result<Vec<u8>, ComputeError> {
    let named: Vec<Named<'_>> = owned
        .iter()
        .map(|(n, s, d)| (n.as_str(), s.clone(), d.as_slice()))
        .collect();
    write(&named, metadata)
}

/// An MLP with the given widths (`[in, hidden..., out]`), PyTorch layout
/// (`layers.<i>.weight`: out × in), weights scaled by 1/sqrt(fan-in).
pub fn mlp(widths: &[usize], activation: &str, seed: u64) -> Result<Vec<u8>, ComputeError> {
    let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (i, pair) in widths.windows(2).enumerate() {
        let (inp, out) = (pair[0], pair[1]);
        let s = 1.0 / (inp.max(1) as f32).sqrt();
        let seed = seed.wrapping_add(i as u64 * 2);
        owned.push((
            format!("layers.{i}.weight"),
            vec![out, inp],
            random(out, inp, seed, s),
        ));
        owned.push((
            format!("layers.{i}.bias"),
            vec![out],
            random(1, out, seed + 1, 0.1),
        ));
    }
    write_owned(&owned, &[("activation", activation)])
}

/// A GPT-2-layout transformer with random weights (std ~0.02-0.3, LayerNorm gains
/// near 1) and the given shape; `n_head` goes into the metadata.
pub fn gpt(
    vocab: usize,
    d: usize,
    n_head: usize,
    n_ctx: usize,
    n_layer: usize,
    seed: u64,
) -> Result<Vec<u8>, ComputeError> {
    let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut next = seed;
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        next = next.wrapping_add(1);
        let n: usize = shape.iter().product();
        let data = random(1, n, next, scale)
            .into_iter()
            .map(|v| v + offset)
            .collect();
        owned.push((name, shape, data));
    };
    add("wte.weight".into(), vec![vocab, d], 0.5, 0.0);
    add("wpe.weight".into(), vec![n_ctx, d], 0.2, 0.0);
    let w = 1.0 / (d as f32).sqrt();
    for l in 0..n_layer {
        let h = format!("h.{l}");
        for ln in ["ln_1", "ln_2"] {
            add(format!("{h}.{ln}.weight"), vec![d], 0.1, 1.0);
            add(format!("{h}.{ln}.bias"), vec![d], 0.1, 0.0);
        }
        add(format!("{h}.attn.c_attn.weight"), vec![d, 3 * d], w, 0.0);
        add(format!("{h}.attn.c_attn.bias"), vec![3 * d], 0.05, 0.0);
        add(format!("{h}.attn.c_proj.weight"), vec![d, d], w, 0.0);
        add(format!("{h}.attn.c_proj.bias"), vec![d], 0.05, 0.0);
        add(format!("{h}.mlp.c_fc.weight"), vec![d, 4 * d], w, 0.0);
        add(format!("{h}.mlp.c_fc.bias"), vec![4 * d], 0.05, 0.0);
        add(
            format!("{h}.mlp.c_proj.weight"),
            vec![4 * d, d],
            w / 2.0,
            0.0,
        );
        add(format!("{h}.mlp.c_proj.bias"), vec![d], 0.05, 0.0);
    }
    add("ln_f.weight".into(), vec![d], 0.1, 1.0);
    add("ln_f.bias".into(), vec![d], 0.1, 0.0);
    let heads = n_head.to_string();
    write_owned(
        &owned,
        &[("n_head", &heads), ("layer_norm_epsilon", "1e-5")],
    )
}
