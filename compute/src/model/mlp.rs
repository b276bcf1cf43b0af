//! A multilayer perceptron in PyTorch's `nn.Linear` layout: tensors `<prefix>.<i>.weight`
//! (`out × in`) and optional `<prefix>.<i>.bias` (`out`), layers ordered by `i` (so both
//! `layers.0.weight` and an `nn.Sequential`'s `0.weight`, `2.weight` load). The activation
//! between layers is the metadata key `activation` (`relu`, the default, `gelu` or
//! `none`); the last layer's output is returned as is.

use crate::model::{weights::Weights, Linear};
use crate::{Activation, ComputeError, Mat, Ops};

pub struct Mlp<T> {
    pub layers: Vec<Linear<T>>,
    pub activation: Activation,
}

fn err(msg: impl Into<String>) -> ComputeError {
    ComputeError::Model(msg.into())
}

/// The layer index of a `....<i>.weight` name.
fn layer_index(name: &str) -> Option<(String, u64)> {
    let stem = name.strip_suffix(".weight")?;
    let idx = stem.rsplit('.').next()?.parse().ok()?;
    Some((stem.to_string(), idx))
}

impl Mlp<Mat> {
    pub fn load(w: &Weights<'_>) -> Result<Mlp<Mat>, ComputeError> {
        let activation = match w.metadata.get("activation").map(String::as_str) {
            None | Some("relu") => Activation::Relu,
            Some("gelu") => Activation::Gelu,
            Some("none") | Some("linear") => Activation::None,
            Some(other) => return Err(err(format!("unknown activation {other:?}"))),
        };
        let mut stems: Vec<(String, u64)> =
            w.names().iter().filter_map(|n| layer_index(n)).collect();
        stems.sort_by_key(|(_, i)| *i);
        if stems.is_empty() {
            return Err(err(
                "no layers: an MLP file holds <prefix>.<i>.weight tensors (out x in)",
            ));
        }
        let mut layers = Vec::new();
        for (stem, _) in &stems {
            let weight = w.mat(&format!("{stem}.weight"), None)?;
            if w.shape(&format!("{stem}.weight"))?.len() != 2 {
                return Err(err(format!("{stem}.weight must be 2-D (out x in)")));
            }
            let (out, inp) = (weight.rows, weight.cols);
            if let Some(prev) = layers.last().map(|l: &Linear<Mat>| l.w.cols) {
                if prev != inp {
                    return Err(err(format!(
                        "{stem}.weight takes {inp} inputs but the previous layer gives {prev}"
                    )));
                }
            }
            let bias_name = format!("{stem}.bias");
            let b = if w.has(&bias_name) {
                w.mat(&bias_name, Some((1, out)))?
            } else {
                Mat::zeros(1, out)
            };
            layers.push(Linear {
                w: transpose(&weight),
                b,
            });
        }
        Ok(Mlp { layers, activation })
    }
}

/// `in × out` from PyTorch's `out × in`, so the forward pass is `x · W`.
pub(crate) fn transpose(m: &Mat) -> Mat {
    let mut data = vec![0.0; m.data.len()];
    for (i, row) in m.row_iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            data[j * m.rows + i] = *v;
        }
    }
    Mat {
        rows: m.cols,
        cols: m.rows,
        data,
    }
}

impl<T> Mlp<T> {
    pub fn inputs(&self, ops: &impl Ops<Tensor = T>) -> usize {
        self.layers.first().map_or(0, |l| ops.shape(&l.w).0)
    }

    pub fn map<U>(
        &self,
        f: &mut impl FnMut(&T, super::Role) -> Result<U, ComputeError>,
    ) -> Result<Mlp<U>, ComputeError> {
        Ok(Mlp {
            layers: self
                .layers
                .iter()
                .map(|l| l.map(f))
                .collect::<Result<_, _>>()?,
            activation: self.activation,
        })
    }

    /// `batch × in` features to `batch × out` outputs.
    pub fn forward<O: Ops<Tensor = T>>(&self, ops: &O, x: &Mat) -> Result<Mat, ComputeError> {
        let want = self.inputs(ops);
        if x.cols != want {
            return Err(ComputeError::Shape(format!(
                "the model takes {want} features per row, the input has {}",
                x.cols
            )));
        }
        let mut h = ops.upload(x)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let act = if i + 1 == self.layers.len() {
                Activation::None
            } else {
                self.activation
            };
            h = ops.linear(&h, &layer.w, &layer.b, act)?;
        }
        ops.download_one(&h)
    }
}
