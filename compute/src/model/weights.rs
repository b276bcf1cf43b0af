//! Reading tensors out of a safetensors file: f32, f16, bf16 and f64 become f32 [`Mat`]s
//! (1-D tensors as one row), with the file's `__metadata__` strings alongside.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use crate::{ComputeError, Mat};

fn err(msg: impl Into<String>) -> ComputeError {
    ComputeError::Model(msg.into())
}

/// The tensors of one safetensors file, converted to f32 on request.
pub struct Weights<'a> {
    st: SafeTensors<'a>,
    pub metadata: HashMap<String, String>,
}

impl<'a> Weights<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Weights<'a>, ComputeError> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        Ok(Weights { st, metadata })
    }

    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.st.names().into_iter().cloned().collect();
        n.sort();
        n
    }

    pub fn has(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>, ComputeError> {
        Ok(self.view(name)?.shape().to_vec())
    }

    fn view(&self, name: &str) -> Result<safetensors::tensor::TensorView<'_>, ComputeError> {
        self.st
            .tensor(name)
            .map_err(|_| err(format!("missing tensor {name:?}")))
    }

    /// The tensor as a matrix: 2-D as is, 1-D as a single row; checked against `expect`
    /// (rows, cols) when given.
    pub fn mat(&self, name: &str, expect: Option<(usize, usize)>) -> Result<Mat, ComputeError> {
        let v = self.view(name)?;
        let (rows, cols) = match *v.shape() {
            [n] => (1, n),
            [r, c] => (r, c),
            ref s => {
                return Err(err(format!(
                    "{name}: expected 1 or 2 dimensions, got {s:?}"
                )))
            }
        };
        if let Some((r, c)) = expect {
            if (rows, cols) != (r, c) {
                return Err(err(format!(
                    "{name}: expected shape {r}x{c}, found {:?}",
                    v.shape()
                )));
            }
        }
        let b = v.data();
        let data: Vec<f32> = match v.dtype() {
            Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F64 => b
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            other => return Err(err(format!("{name}: unsupported dtype {other:?}"))),
        };
        Mat::new(rows, cols, data)
    }
}

/// One tensor to write: name, shape (1-D or 2-D), row-major values.
pub type Named<'a> = (&'a str, Vec<usize>, &'a [f32]);

/// Serialise f32 tensors and metadata strings as a safetensors file (what tests and
/// `agora compute example-model` write).
pub fn write(tensors: &[Named<'_>], metadata: &[(&str, &str)]) -> Result<Vec<u8>, ComputeError> {
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(
                Dtype::F32,
                shape.clone(),
                bytemuck::cast_slice(data),
            )
            .map(|v| (name.to_string(), v))
            .map_err(|e| err(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    safetensors::serialize(views, &Some(meta)).map_err(|e| err(format!("serialize: {e}")))
}
