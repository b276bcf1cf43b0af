//! Inference: the subnet names a safetensors model by the blake3 hash of its bytes (its
//! owner hotkey serves the entry `/agora-model/blake3/<hex>`, set with `agora subnet
//! set-model`); miners load that file and answer batches; the validator recomputes a
//! random sample of the rows itself and compares.
//!
//! A request is a seed, a batch size and (for transformers) a sequence length; both sides
//! generate the same inputs from the seed (an MLP: `batch` rows of features in [-1, 1); a
//! transformer: `batch` sequences of token ids). The answer is one row per input: an MLP's
//! outputs, a transformer's logits at the last position, as `rows u32, cols u32, f32...`
//! (little endian). The validator picks [`SAMPLE`] rows with its secret (the miner cannot
//! know which), recomputes them on its own device, and accepts when every sampled row is
//! within tolerance: the largest absolute difference at most `1e-3 × max(1, largest
//! |value| of the row)` (GPU and CPU results differ by ~1e-5 of the largest logit).
//! Anything else scores 0; a correct answer scores by latency.

use agora_compute::gpu::{Gpu, GpuMat};
use agora_compute::model::{Input, Model};
use agora_compute::{Backend, Cpu, Mat};
use agora_core::Hash;

use super::task::{latency_score, MinerTask, ValidatorTask};

/// The served path naming a subnet's model: this prefix, then the hash in hex.
pub const MODEL_ENTRY_PREFIX: &str = "/agora-model/blake3/";
/// Rows per request at most.
pub const MAX_BATCH: u32 = 64;
/// Tokens per sequence at most (and at most the model's context).
pub const MAX_SEQ: u32 = 256;
/// Rows the validator recomputes per answer.
pub const SAMPLE: usize = 2;
/// Relative tolerance of a sampled row (see the module doc).
pub const TOLERANCE: f32 = 1e-3;

/// The blake3 hash of a model file, as the subnet names it.
pub fn model_hash(bytes: &[u8]) -> Hash {
    Hash(*blake3::hash(bytes).as_bytes())
}

/// The subnet entry naming `hash`.
pub fn model_entry(hash: &Hash) -> String {
    format!("{MODEL_ENTRY_PREFIX}{}", hex::encode(hash.0))
}

/// The model hash in a served entry, if it is one.
pub fn parse_model_entry(entry: &str) -> Option<Hash> {
    let hex = entry.strip_prefix(MODEL_ENTRY_PREFIX)?;
    let bytes: [u8; 32] = hex::decode(hex).ok()?.try_into().ok()?;
    Some(Hash(bytes))
}

/// A model loaded on a device.
pub struct Loaded {
    host: Model<Mat>,
    device: Device,
    pub hash: Hash,
}

enum Device {
    Cpu,
    Gpu(Box<Gpu>, Box<Model<GpuMat>>),
}

impl Loaded {
    /// Parse `bytes` and upload the weights to `backend` once.
    pub fn open(bytes: &[u8], backend: Backend) -> Result<Loaded, String> {
        let host = Model::from_bytes(bytes).map_err(|e| e.to_string())?;
        let device = match backend {
            Backend::Cpu => Device::Cpu,
            Backend::Gpu(g) => {
                let on = host.upload(g.as_ref()).map_err(|e| e.to_string())?;
                Device::Gpu(g, Box::new(on))
            }
        };
        Ok(Loaded {
            host,
            device,
            hash: model_hash(bytes),
        })
    }

    fn tokens(&self) -> bool {
        self.host.summary().gpt.is_some()
    }

    /// The model's context (transformers) or unbounded.
    fn max_seq(&self) -> u32 {
        self.host.summary().gpt.map_or(MAX_SEQ, |c| {
            u32::try_from(c.n_ctx).unwrap_or(MAX_SEQ).min(MAX_SEQ)
        })
    }

    /// One output row per input: MLP outputs, or a transformer's last-position logits.
    fn rows(&self, input: &Input) -> Result<Vec<Vec<f32>>, String> {
        // Only the last position's logits are computed and read back.
        let last = agora_compute::model::Positions::Last;
        let out = match &self.device {
            Device::Cpu => self.host.forward_positions(&Cpu, input, last),
            Device::Gpu(g, m) => m.forward_positions(g.as_ref(), input, last),
        }
        .map_err(|e| e.to_string())?;
        Ok(match input {
            Input::Features(_) => out
                .first()
                .map(|m| m.row_iter().map(<[f32]>::to_vec).collect())
                .unwrap_or_default(),
            Input::Tokens(_) => out
                .iter()
                .filter_map(|m| m.row_iter().last().map(<[f32]>::to_vec))
                .collect(),
        })
    }

    /// The inputs of rows `which` of the batch a request names.
    fn inputs(&self, req: &Request, which: &[usize]) -> Input {
        if self.tokens() {
            let vocab = self.host.summary().outputs.max(1) as u64;
            Input::Tokens(
                which
                    .iter()
                    .map(|&i| sequence(req.seed, i, req.seq as usize, vocab))
                    .collect(),
            )
        } else {
            let all = Mat::random(req.batch as usize, self.host.inputs(), req.seed);
            let data = which
                .iter()
                .flat_map(|&i| all.row_iter().nth(i).unwrap_or(&[]).to_vec())
                .collect();
            Input::Features(
                Mat::new(which.len(), all.cols, data).unwrap_or_else(|_| Mat::zeros(0, 0)),
            )
        }
    }
}

/// Token ids of sequence `i` of a request: a xorshift stream of the seed and the row.
fn sequence(seed: u64, i: usize, len: usize, vocab: u64) -> Vec<u32> {
    let mut s = (seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F)) | 1;
    (0..len.max(1))
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            u32::try_from(s % vocab).unwrap_or(0)
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    seed: u64,
    batch: u32,
    seq: u32,
}

fn decode_request(bytes: &[u8], max_seq: u32) -> Result<Request, String> {
    if bytes.len() != 16 {
        return Err(format!(
            "an inference request is 16 bytes, got {}",
            bytes.len()
        ));
    }
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let seed = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| "seed")?);
    let (batch, seq) = (word(8), word(12));
    if batch == 0 || batch > MAX_BATCH {
        return Err(format!("batch {batch} outside 1..={MAX_BATCH}"));
    }
    if seq == 0 || seq > max_seq {
        return Err(format!("sequence length {seq} outside 1..={max_seq}"));
    }
    Ok(Request { seed, batch, seq })
}

fn encode_rows(rows: &[Vec<f32>]) -> Vec<u8> {
    let cols = rows.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(8 + rows.len() * cols * 4);
    out.extend_from_slice(&u32::try_from(rows.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&u32::try_from(cols).unwrap_or(0).to_le_bytes());
    for r in rows {
        out.extend(r.iter().flat_map(|x| x.to_le_bytes()));
    }
    out
}

/// (rows, cols, values) of an answer, if well formed.
fn decode_rows(bytes: &[u8]) -> Option<(usize, usize, Vec<f32>)> {
    let rows = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let cols = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let body = bytes.get(8..)?;
    if body.len() != rows.checked_mul(cols)?.checked_mul(4)? {
        return None;
    }
    let values = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((rows, cols, values))
}

/// The miner: runs the subnet's model on its device. `fault_wrong` shifts the first value
/// of every row (cheating the validator can catch whichever rows it samples).
pub struct InferenceMiner {
    pub model: Loaded,
    pub fault_wrong: bool,
}

impl MinerTask for InferenceMiner {
    fn name(&self) -> &'static str {
        "inference"
    }

    fn answer(&self, request: &[u8]) -> Result<Vec<u8>, String> {
        let req = decode_request(request, self.model.max_seq())?;
        let all: Vec<usize> = (0..req.batch as usize).collect();
        let mut rows = self.model.rows(&self.model.inputs(&req, &all))?;
        if self.fault_wrong {
            for r in &mut rows {
                if let Some(x) = r.first_mut() {
                    *x += 1.0;
                }
            }
        }
        Ok(encode_rows(&rows))
    }
}

/// The validator: asks for `batch` rows (sequences of `seq` tokens for a transformer) and
/// recomputes [`SAMPLE`] of them.
pub struct InferenceValidator {
    pub model: Loaded,
    pub batch: u32,
    pub seq: u32,
    /// Latency at which a correct answer scores 1/2.
    pub half_ms: u64,
    /// Chooses the sampled rows: secret to the validator.
    pub secret: u64,
}

impl ValidatorTask for InferenceValidator {
    fn name(&self) -> &'static str {
        "inference"
    }

    fn request(&self, seed: u64) -> Vec<u8> {
        let mut r = seed.to_le_bytes().to_vec();
        r.extend_from_slice(&self.batch.clamp(1, MAX_BATCH).to_le_bytes());
        r.extend_from_slice(&self.seq.clamp(1, self.model.max_seq()).to_le_bytes());
        r
    }

    fn score(&self, request: &[u8], answer: &[u8], latency_ms: u64) -> f32 {
        let Ok(req) = decode_request(request, self.model.max_seq()) else {
            return 0.0;
        };
        let Some((rows, cols, values)) = decode_rows(answer) else {
            return 0.0;
        };
        if rows != req.batch as usize || cols == 0 {
            return 0.0;
        }
        // The sampled rows: distinct, from the secret and the seed.
        let mut pick = (self.secret ^ req.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut which: Vec<usize> = Vec::new();
        while which.len() < SAMPLE.min(rows) {
            pick ^= pick << 13;
            pick ^= pick >> 7;
            pick ^= pick << 17;
            let i = (pick % rows as u64) as usize;
            if !which.contains(&i) {
                which.push(i);
            }
        }
        let Ok(mine) = self.model.rows(&self.model.inputs(&req, &which)) else {
            return 0.0;
        };
        let agree = which.iter().zip(&mine).all(|(&i, want)| {
            let got = &values[i * cols..(i + 1) * cols];
            want.len() == cols && within(got, want)
        });
        if agree {
            latency_score(latency_ms, self.half_ms)
        } else {
            0.0
        }
    }
}

/// `got` within tolerance of `want` (see the module doc); NaN never is.
fn within(got: &[f32], want: &[f32]) -> bool {
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .all(|(g, w)| (g - w).abs() <= TOLERANCE * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_compute::model::example;

    fn pair(bytes: &[u8], miner: Backend) -> (InferenceMiner, InferenceValidator) {
        (
            InferenceMiner {
                model: Loaded::open(bytes, miner).unwrap(),
                fault_wrong: false,
            },
            InferenceValidator {
                model: Loaded::open(bytes, Backend::Cpu).unwrap(),
                batch: 8,
                seq: 5,
                half_ms: 100,
                secret: 99,
            },
        )
    }

    fn verdicts(bytes: &[u8], other: &[u8], miner: Backend) {
        let (mut m, v) = pair(bytes, miner);
        let req = v.request(4242);
        let good = m.answer(&req).unwrap();
        assert!(v.score(&req, &good, 10) > 0.9, "an honest answer passes");
        assert_eq!(
            v.score(&v.request(1), &good, 10),
            0.0,
            "another seed's answer"
        );
        assert_eq!(v.score(&req, &good[..good.len() - 4], 10), 0.0, "truncated");
        // NaN everywhere (a single NaN row may not be among those sampled).
        let all_nan: Vec<u8> = good[..8]
            .iter()
            .copied()
            .chain(good[8..].chunks(4).flat_map(|_| f32::NAN.to_le_bytes()))
            .collect();
        assert_eq!(v.score(&req, &all_nan, 10), 0.0, "NaN");
        m.fault_wrong = true;
        assert_eq!(v.score(&req, &m.answer(&req).unwrap(), 10), 0.0, "cheat");
        // A miner running another model is wrong.
        let stranger = InferenceMiner {
            model: Loaded::open(other, Backend::Cpu).unwrap(),
            fault_wrong: false,
        };
        assert_eq!(v.score(&req, &stranger.answer(&req).unwrap(), 10), 0.0);
        assert!(m.answer(&[0; 15]).is_err());
        let mut huge = 1u64.to_le_bytes().to_vec();
        huge.extend_from_slice(&(MAX_BATCH + 1).to_le_bytes());
        huge.extend_from_slice(&1u32.to_le_bytes());
        assert!(m.answer(&huge).is_err());
    }

    #[test]
    fn mlp_and_transformer_answers_are_checked_on_a_sample() {
        let mlp = example::mlp(&[12, 16, 4], "relu", 1).unwrap();
        verdicts(
            &mlp,
            &example::mlp(&[12, 16, 4], "relu", 2).unwrap(),
            Backend::Cpu,
        );
        let gpt = example::gpt(50, 16, 2, 16, 2, 3).unwrap();
        verdicts(
            &gpt,
            &example::gpt(50, 16, 2, 16, 2, 4).unwrap(),
            Backend::Cpu,
        );
        let entry = model_entry(&model_hash(&gpt));
        assert!(entry.len() <= 128, "fits a served address");
        assert_eq!(parse_model_entry(&entry), Some(model_hash(&gpt)));
        assert_eq!(parse_model_entry("/ip4/1.2.3.4/tcp/1"), None);
    }

    /// A miner on the GPU (lavapipe in CI) passes a validator recomputing on the CPU.
    #[test]
    fn gpu_miners_pass_a_cpu_validator() {
        let gpu = || match Gpu::open(Some("gpu")) {
            Ok(g) => Backend::Gpu(Box::new(g)),
            Err(e) => panic!("no GPU adapter (install mesa-vulkan-drivers): {e}"),
        };
        let gpt = example::gpt(50, 16, 2, 16, 2, 3).unwrap();
        verdicts(&gpt, &example::gpt(50, 16, 2, 16, 2, 4).unwrap(), gpu());
        let mlp = example::mlp(&[12, 16, 4], "gelu", 1).unwrap();
        verdicts(&mlp, &example::mlp(&[12, 16, 4], "gelu", 2).unwrap(), gpu());
    }
}
