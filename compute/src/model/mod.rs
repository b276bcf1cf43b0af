//! Models loaded from safetensors files and run on either backend: an [`mlp::Mlp`] and a
//! decoder-only transformer ([`gpt::Gpt`], GPT-2's layout). Weights load to host
//! matrices ([`Model<Mat>`]), move to a backend once with [`Model::upload`], and then run
//! any number of batches with [`Model::forward`]; the forward pass is the same generic
//! code on the GPU and the CPU.
//!
//! ```no_run
//! use agora_compute::{gpu::Gpu, model::{Input, Model}, Mat};
//! let host = Model::load("mlp.safetensors".as_ref())?;
//! let gpu = Gpu::open(None)?;
//! let on_gpu = host.upload(&gpu)?;
//! let out = on_gpu.forward(&gpu, &Input::Features(Mat::random(8, host.inputs(), 1)))?;
//! # Ok::<(), agora_compute::ComputeError>(())
//! ```

pub mod example;
pub mod gpt;
pub mod mlp;
pub mod weights;

use std::path::Path;

use crate::{ComputeError, Mat, Ops};
use gpt::Gpt;
pub use gpt::Positions;
use mlp::Mlp;
use weights::Weights;

/// What a tensor of a model is for, when it is moved to a backend: product weights
/// (linear layers' `w` and the LM head) may be stored as f16; everything else stays f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Weight,
    Other,
}

/// `x · w + b` with `w: in × out` and `b: 1 × out`.
pub struct Linear<T> {
    pub w: T,
    pub b: T,
}

impl<T> Linear<T> {
    fn map<U>(
        &self,
        f: &mut impl FnMut(&T, Role) -> Result<U, ComputeError>,
    ) -> Result<Linear<U>, ComputeError> {
        Ok(Linear {
            w: f(&self.w, Role::Weight)?,
            b: f(&self.b, Role::Other)?,
        })
    }
}

/// A loaded model; `T` is where its weights live (`Mat` on the host, or a backend's
/// tensor after [`Model::upload`]).
pub enum Model<T> {
    Mlp(Mlp<T>),
    Gpt(Gpt<T>),
}

/// What a model runs on: rows of features (MLP) or token sequences (transformer; the
/// sequences of one batch may differ in length).
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Features(Mat),
    Tokens(Vec<Vec<u32>>),
}

impl Input {
    /// Read a `.npy` or JSON file (by extension; anything but `.npy` is parsed as JSON):
    /// for a transformer (`tokens`), non-negative integer ids, one sequence per row (JSON
    /// rows may differ in length); otherwise numbers, one row of features per row. A 1-D
    /// array is one row.
    pub fn read(path: &Path, tokens: bool) -> Result<Input, ComputeError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ComputeError::Input(format!("reading {}: {e}", path.display())))?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        {
            Self::from_npy(&bytes, tokens)
        } else {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                ComputeError::Input(format!("{} is not UTF-8 JSON", path.display()))
            })?;
            Self::from_json(text, tokens)
        }
    }

    pub fn from_npy(bytes: &[u8], tokens: bool) -> Result<Input, ComputeError> {
        let a = crate::npy::read(bytes)?;
        let (rows, cols) = match a.shape[..] {
            [n] => (1, n),
            [r, c] => (r, c),
            _ => {
                return Err(ComputeError::Input(
                    "a 0-dimensional array is not an input".into(),
                ))
            }
        };
        let values: Vec<f64> = match a.values {
            crate::npy::Values::Int(v) => v.into_iter().map(|x| x as f64).collect(),
            crate::npy::Values::Float(_) if tokens => {
                return Err(ComputeError::Input(
                    "token ids must be an integer array (e.g. int64)".into(),
                ))
            }
            crate::npy::Values::Float(v) => v,
        };
        let rows: Vec<Vec<f64>> = values
            .chunks(cols.max(1))
            .take(rows)
            .map(<[f64]>::to_vec)
            .collect();
        Self::from_rows(rows, tokens)
    }

    pub fn from_json(text: &str, tokens: bool) -> Result<Input, ComputeError> {
        let bad = |m: &str| ComputeError::Input(format!("JSON input: {m}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let arr = v.as_array().ok_or_else(|| bad("expected an array"))?;
        let number = |x: &serde_json::Value| x.as_f64().ok_or_else(|| bad("expected numbers"));
        let rows = if arr.iter().all(serde_json::Value::is_array) && !arr.is_empty() {
            arr.iter()
                .map(|r| r.as_array().into_iter().flatten().map(number).collect())
                .collect::<Result<Vec<Vec<f64>>, _>>()?
        } else {
            vec![arr.iter().map(number).collect::<Result<Vec<f64>, _>>()?]
        };
        Self::from_rows(rows, tokens)
    }

    fn from_rows(rows: Vec<Vec<f64>>, tokens: bool) -> Result<Input, ComputeError> {
        if tokens {
            let id = |x: &f64| -> Result<u32, ComputeError> {
                if x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(x) {
                    Ok(*x as u32)
                } else {
                    Err(ComputeError::Input(format!(
                        "token id {x} is not a non-negative integer"
                    )))
                }
            };
            return Ok(Input::Tokens(
                rows.iter()
                    .map(|r| r.iter().map(id).collect())
                    .collect::<Result<_, _>>()?,
            ));
        }
        let cols = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != cols) {
            return Err(ComputeError::Input(format!(
                "feature rows differ in length: row 0 has {cols}, row {i} has {}",
                r.len()
            )));
        }
        let data = rows.concat().into_iter().map(|x| x as f32).collect();
        Ok(Input::Features(Mat::new(rows.len(), cols, data)?))
    }
}

/// What `agora compute run` prints about a model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub kind: &'static str,
    pub parameters: usize,
    pub layers: usize,
    pub inputs: usize,
    pub outputs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpt: Option<gpt::GptConfig>,
}

impl Model<Mat> {
    pub fn load(path: &Path) -> Result<Model<Mat>, ComputeError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ComputeError::Model(format!("reading {}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// A transformer when the file has `wte.weight`, else an MLP.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model<Mat>, ComputeError> {
        let w = Weights::parse(bytes)?;
        if Gpt::is_gpt(&w) {
            Ok(Model::Gpt(Gpt::load(&w)?))
        } else {
            Ok(Model::Mlp(Mlp::load(&w)?))
        }
    }

    /// Features per input row (MLP) or the model width (transformer).
    pub fn inputs(&self) -> usize {
        self.summary().inputs
    }

    pub fn summary(&self) -> Summary {
        match self {
            Model::Mlp(m) => Summary {
                kind: "mlp",
                parameters: m
                    .layers
                    .iter()
                    .map(|l| l.w.data.len() + l.b.data.len())
                    .sum(),
                layers: m.layers.len(),
                inputs: m.layers.first().map_or(0, |l| l.w.rows),
                outputs: m.layers.last().map_or(0, |l| l.w.cols),
                gpt: None,
            },
            Model::Gpt(g) => Summary {
                kind: "gpt",
                parameters: g.parameters(),
                layers: g.config.n_layer,
                inputs: g.config.d_model,
                outputs: g.config.vocab,
                gpt: Some(g.config),
            },
        }
    }

    /// Copy the weights to `ops`' backend, once; the result runs any number of batches.
    pub fn upload<O: Ops>(&self, ops: &O) -> Result<Model<O::Tensor>, ComputeError> {
        self.map(&mut |m: &Mat, _| ops.upload(m))
    }

    /// [`Model::upload`] with the product weights (linear layers and the LM head) stored
    /// as f16 where the backend can ([`Ops::upload_weight`]): half their memory and
    /// traffic; activations, biases and norms stay f32, and products accumulate in f32.
    pub fn upload_half<O: Ops>(&self, ops: &O) -> Result<Model<O::Tensor>, ComputeError> {
        self.map(&mut |m: &Mat, role| match role {
            Role::Weight => ops.upload_weight(m, true),
            Role::Other => ops.upload(m),
        })
    }
}

impl<T> Model<T> {
    pub fn map<U>(
        &self,
        f: &mut impl FnMut(&T, Role) -> Result<U, ComputeError>,
    ) -> Result<Model<U>, ComputeError> {
        Ok(match self {
            Model::Mlp(m) => Model::Mlp(m.map(f)?),
            Model::Gpt(g) => Model::Gpt(g.map(f)?),
        })
    }

    /// Run a batch: one `batch × outputs` matrix for an MLP, one `len × vocab` matrix of
    /// logits per sequence for a transformer.
    pub fn forward<O: Ops<Tensor = T>>(
        &self,
        ops: &O,
        input: &Input,
    ) -> Result<Vec<Mat>, ComputeError> {
        self.forward_positions(ops, input, Positions::All)
    }

    /// [`Model::forward`] choosing which positions of a transformer to compute logits for
    /// (an MLP ignores it): `Last` gives one `1 × vocab` matrix per sequence.
    pub fn forward_positions<O: Ops<Tensor = T>>(
        &self,
        ops: &O,
        input: &Input,
        positions: Positions,
    ) -> Result<Vec<Mat>, ComputeError> {
        match (self, input) {
            (Model::Mlp(m), Input::Features(x)) => Ok(vec![m.forward(ops, x)?]),
            (Model::Gpt(g), Input::Tokens(seqs)) => g.forward(ops, seqs, positions),
            (Model::Mlp(_), Input::Tokens(_)) => Err(ComputeError::Shape(
                "an MLP takes rows of features, not token ids".into(),
            )),
            (Model::Gpt(_), Input::Features(_)) => Err(ComputeError::Shape(
                "a transformer takes token ids, not features".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
