//! A decoder-only transformer in GPT-2's layout (the tensor names of Hugging Face's
//! `gpt2` safetensors, optionally prefixed `transformer.`): `wte` (vocab × d), `wpe`
//! (context × d), per block `h.<i>.ln_1`, `attn.c_attn` (d × 3d, Conv1D: in × out),
//! `attn.c_proj` (d × d), `ln_2`, `mlp.c_fc` (d × 4d), `mlp.c_proj` (4d × d), then `ln_f`;
//! the LM head is `lm_head.weight` if present, else tied to `wte`. Pre-norm blocks,
//! causal multi-head attention, GELU (tanh form). Metadata: `n_head` (default d / 64) and
//! `layer_norm_epsilon` (default 1e-5).
//!
//! Batched: all sequences' rows are stacked for the dense layers; attention runs per
//! sequence as one batched gemm over heads reading Q, K, V straight out of the QKV matrix.

use std::sync::Arc;

use crate::model::{weights::Weights, Linear, Role};
use crate::{Activation, ComputeError, Gemm, Mat, Ops, View};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GptConfig {
    pub n_layer: usize,
    pub n_head: usize,
    pub d_model: usize,
    pub vocab: usize,
    pub n_ctx: usize,
    pub eps: f32,
}

pub struct Norm<T> {
    pub gamma: T,
    pub beta: T,
}

pub struct Block<T> {
    pub ln_1: Norm<T>,
    pub attn: Linear<T>,
    pub proj: Linear<T>,
    pub ln_2: Norm<T>,
    pub fc: Linear<T>,
    pub fc_proj: Linear<T>,
}

pub struct Gpt<T> {
    pub config: GptConfig,
    /// Host copies for the embedding lookup, which runs before upload.
    wte_host: Arc<Mat>,
    wpe_host: Arc<Mat>,
    /// The LM head, `vocab × d` (multiplied transposed); a copy of `wte` when tied.
    head: T,
    tied: bool,
    blocks: Vec<Block<T>>,
    ln_f: Norm<T>,
}

fn err(msg: impl Into<String>) -> ComputeError {
    ComputeError::Model(msg.into())
}

impl Gpt<Mat> {
    pub fn is_gpt(w: &Weights<'_>) -> bool {
        w.has("wte.weight") || w.has("transformer.wte.weight")
    }

    pub fn load(w: &Weights<'_>) -> Result<Gpt<Mat>, ComputeError> {
        let prefix = if w.has("wte.weight") {
            ""
        } else {
            "transformer."
        };
        let name = |n: &str| format!("{prefix}{n}");
        let wte = w.mat(&name("wte.weight"), None)?;
        let (vocab, d) = (wte.rows, wte.cols);
        let wpe = w.mat(&name("wpe.weight"), None)?;
        if wpe.cols != d {
            return Err(err(format!("wpe has width {}, wte {d}", wpe.cols)));
        }
        let meta = |k: &str| w.metadata.get(k).map(|v| v.trim().to_string());
        let n_head = match meta("n_head") {
            Some(v) => v
                .parse()
                .map_err(|_| err(format!("metadata n_head {v:?} is not a number")))?,
            None if d % 64 == 0 => d / 64,
            None => {
                return Err(err(format!(
                    "width {d} is not a multiple of 64: put n_head in the file's metadata"
                )))
            }
        };
        if n_head == 0 || d % n_head != 0 {
            return Err(err(format!("{n_head} heads do not divide width {d}")));
        }
        let eps = match meta("layer_norm_epsilon") {
            Some(v) => v
                .parse()
                .map_err(|_| err(format!("metadata layer_norm_epsilon {v:?} is not a number")))?,
            None => 1e-5,
        };
        let norm = |n: &str| -> Result<Norm<Mat>, ComputeError> {
            Ok(Norm {
                gamma: w.mat(&name(&format!("{n}.weight")), Some((1, d)))?,
                beta: w.mat(&name(&format!("{n}.bias")), Some((1, d)))?,
            })
        };
        let linear = |n: &str, inp: usize, out: usize| -> Result<Linear<Mat>, ComputeError> {
            Ok(Linear {
                w: w.mat(&name(&format!("{n}.weight")), Some((inp, out)))?,
                b: w.mat(&name(&format!("{n}.bias")), Some((1, out)))?,
            })
        };
        let mut blocks = Vec::new();
        while w.has(&name(&format!("h.{}.ln_1.weight", blocks.len()))) {
            let h = format!("h.{}", blocks.len());
            blocks.push(Block {
                ln_1: norm(&format!("{h}.ln_1"))?,
                attn: linear(&format!("{h}.attn.c_attn"), d, 3 * d)?,
                proj: linear(&format!("{h}.attn.c_proj"), d, d)?,
                ln_2: norm(&format!("{h}.ln_2"))?,
                fc: linear(&format!("{h}.mlp.c_fc"), d, 4 * d)?,
                fc_proj: linear(&format!("{h}.mlp.c_proj"), 4 * d, d)?,
            });
        }
        let tied = !w.has("lm_head.weight");
        let head = if tied {
            wte.clone()
        } else {
            w.mat("lm_head.weight", Some((vocab, d)))?
        };
        Ok(Gpt {
            config: GptConfig {
                n_layer: blocks.len(),
                n_head,
                d_model: d,
                vocab,
                n_ctx: wpe.rows,
                eps,
            },
            wte_host: Arc::new(wte),
            wpe_host: Arc::new(wpe),
            head,
            tied,
            blocks,
            ln_f: norm("ln_f")?,
        })
    }

    /// Weights and biases, counting a tied head once.
    pub fn parameters(&self) -> usize {
        let mut n = self.wpe_host.data.len() + self.head.data.len();
        if !self.tied {
            n += self.wte_host.data.len();
        }
        let norm = |x: &Norm<Mat>| x.gamma.data.len() + x.beta.data.len();
        let lin = |x: &Linear<Mat>| x.w.data.len() + x.b.data.len();
        for b in &self.blocks {
            n += norm(&b.ln_1) + norm(&b.ln_2);
            n += lin(&b.attn) + lin(&b.proj) + lin(&b.fc) + lin(&b.fc_proj);
        }
        n + norm(&self.ln_f)
    }
}

/// The two products of one sequence's causal attention, batched over heads, for a
/// sequence of `t` tokens starting at row `start` of the `rows × 3d` QKV matrix:
/// `Q_h · K_hᵀ / √dh` into a dense `heads·t × t` score matrix, and `P_h · V_h` into the
/// sequence's rows of the `rows × d` output, head `h` in columns `h·dh..`. Q, K and V are
/// read in place through strided views.
pub(crate) fn attention_gemms(start: usize, t: usize, d: usize, heads: usize) -> (Gemm, Gemm) {
    let dh = d / heads;
    let head_view = |col: usize| View {
        offset: start * 3 * d + col,
        ld: 3 * d,
        batch_stride: dh,
    };
    let qk = Gemm {
        m: t,
        k: dh,
        n: t,
        batch: heads,
        trans_b: true,
        alpha: 1.0 / (dh as f32).sqrt(),
        a: head_view(0),
        b: head_view(d),
        c: View::dense(t, t),
    };
    let pv = Gemm {
        m: t,
        k: t,
        n: dh,
        batch: heads,
        trans_b: false,
        alpha: 1.0,
        a: View::dense(t, t),
        b: head_view(2 * d),
        c: View {
            offset: start * d,
            ld: d,
            batch_stride: dh,
        },
    };
    (qk, pv)
}

impl<T> Norm<T> {
    fn map<U>(
        &self,
        f: &mut impl FnMut(&T, Role) -> Result<U, ComputeError>,
    ) -> Result<Norm<U>, ComputeError> {
        Ok(Norm {
            gamma: f(&self.gamma, Role::Other)?,
            beta: f(&self.beta, Role::Other)?,
        })
    }
}

impl<T> Gpt<T> {
    pub fn map<U>(
        &self,
        f: &mut impl FnMut(&T, Role) -> Result<U, ComputeError>,
    ) -> Result<Gpt<U>, ComputeError> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    ln_1: b.ln_1.map(f)?,
                    attn: b.attn.map(f)?,
                    proj: b.proj.map(f)?,
                    ln_2: b.ln_2.map(f)?,
                    fc: b.fc.map(f)?,
                    fc_proj: b.fc_proj.map(f)?,
                })
            })
            .collect::<Result<_, ComputeError>>()?;
        Ok(Gpt {
            config: self.config,
            wte_host: self.wte_host.clone(),
            wpe_host: self.wpe_host.clone(),
            head: f(&self.head, Role::Weight)?,
            tied: self.tied,
            blocks,
            ln_f: self.ln_f.map(f)?,
        })
    }

    /// Token embeddings plus positions, every sequence's rows stacked.
    fn embed(&self, seqs: &[Vec<u32>]) -> Result<Mat, ComputeError> {
        let c = &self.config;
        let mut data = Vec::new();
        for (s, seq) in seqs.iter().enumerate() {
            if seq.is_empty() || seq.len() > c.n_ctx {
                return Err(ComputeError::Shape(format!(
                    "sequence {s} has {} tokens; the model takes 1 to {}",
                    seq.len(),
                    c.n_ctx
                )));
            }
            for (pos, tok) in seq.iter().enumerate() {
                let t = *tok as usize;
                if t >= c.vocab {
                    return Err(ComputeError::Shape(format!(
                        "sequence {s}: token {t} outside the vocabulary of {}",
                        c.vocab
                    )));
                }
                let te = &self.wte_host.data[t * c.d_model..(t + 1) * c.d_model];
                let pe = &self.wpe_host.data[pos * c.d_model..(pos + 1) * c.d_model];
                data.extend(te.iter().zip(pe).map(|(a, b)| a + b));
            }
        }
        Mat::new(data.len() / c.d_model.max(1), c.d_model, data)
    }

    /// Logits for every sequence: `len × vocab` for every position, or `1 × vocab` for the
    /// last one only ([`Positions::Last`]: the LM head, by far the widest product, then runs
    /// on one row per sequence, and only those rows are read back).
    pub fn forward<O: Ops<Tensor = T>>(
        &self,
        ops: &O,
        seqs: &[Vec<u32>],
        positions: Positions,
    ) -> Result<Vec<Mat>, ComputeError> {
        let c = self.config;
        let (d, heads) = (c.d_model, c.n_head);
        let rows: usize = seqs.iter().map(Vec::len).sum();
        let mut x = ops.upload(&self.embed(seqs)?)?;
        for b in &self.blocks {
            let h = ops.layernorm(&x, &b.ln_1.gamma, &b.ln_1.beta, c.eps)?;
            let qkv = ops.linear(&h, &b.attn.w, &b.attn.b, Activation::None)?;
            let mut att = ops.alloc(rows, d)?;
            let mut start = 0;
            for seq in seqs {
                let t = seq.len();
                let (qk, pv) = attention_gemms(start, t, d, heads);
                let mut scores = ops.alloc(heads * t, t)?;
                ops.gemm_into(&qkv, &qkv, &mut scores, &qk)?;
                let p = ops.softmax(&scores, 1.0, Some(t))?;
                ops.gemm_into(&p, &qkv, &mut att, &pv)?;
                start += t;
            }
            x = ops.linear_residual(&att, &b.proj.w, &b.proj.b, &x)?;
            let h = ops.layernorm(&x, &b.ln_2.gamma, &b.ln_2.beta, c.eps)?;
            let f = ops.linear(&h, &b.fc.w, &b.fc.b, Activation::Gelu)?;
            x = ops.linear_residual(&f, &b.fc_proj.w, &b.fc_proj.b, &x)?;
        }
        let h = ops.layernorm(&x, &self.ln_f.gamma, &self.ln_f.beta, c.eps)?;
        if positions == Positions::Last {
            // One row per sequence: its last position's hidden state times the head.
            let mut logits = ops.alloc(seqs.len(), c.vocab)?;
            let mut start = 0;
            for (i, seq) in seqs.iter().enumerate() {
                let last = start + seq.len().max(1) - 1;
                let mut lm = Gemm::dense(1, d, c.vocab);
                lm.trans_b = true;
                lm.a = View {
                    offset: last * d,
                    ..View::dense(1, d)
                };
                lm.b = View::dense(c.vocab, d);
                lm.c = View {
                    offset: i * c.vocab,
                    ..View::dense(1, c.vocab)
                };
                ops.gemm_into(&h, &self.head, &mut logits, &lm)?;
                start += seq.len();
            }
            let all = ops.download_one(&logits)?;
            return all
                .data
                .chunks(c.vocab.max(1))
                .map(|row| Mat::new(1, c.vocab, row.to_vec()))
                .collect();
        }
        let mut logits = ops.alloc(rows, c.vocab)?;
        let mut lm = Gemm::dense(rows, d, c.vocab);
        lm.trans_b = true;
        lm.b = View::dense(c.vocab, d);
        ops.gemm_into(&h, &self.head, &mut logits, &lm)?;
        let all = ops.download_one(&logits)?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut at = 0;
        for seq in seqs {
            let n = seq.len() * c.vocab;
            out.push(Mat::new(seq.len(), c.vocab, all.data[at..at + n].to_vec())?);
            at += n;
        }
        Ok(out)
    }
}

/// Which positions' logits a transformer's forward computes and reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Positions {
    /// The last position of each sequence (what next-token use needs).
    #[default]
    Last,
    /// Every position.
    All,
}
