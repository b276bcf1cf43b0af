//! Proof-of-compute: the validator sends a seed and a size; the miner generates A and B
//! (`Mat::random`, deterministic from the seed), returns C = A·B computed on its device;
//! the validator regenerates A and B and checks C with Freivalds' test (8 rounds, random
//! ±1 vectors from a secret the miner never sees), O(n²) instead of recomputing in O(n³).
//! A wrong product scores 0; a right one by latency.

use agora_compute::{freivalds, Backend, Mat};

use super::task::{latency_score, MinerTask, ValidatorTask};

/// Largest matrix side a request may ask for (a 4096² f32 product is 64 MiB, above the
/// response limit: 2048² is 16 MiB).
pub const MAX_N: u32 = 1024;
const ROUNDS: u32 = 8;

fn decode_request(request: &[u8]) -> Result<(u64, u32), String> {
    if request.len() != 12 {
        return Err(format!(
            "a compute request is 12 bytes, got {}",
            request.len()
        ));
    }
    let seed = u64::from_le_bytes(request[..8].try_into().map_err(|_| "seed")?);
    let n = u32::from_le_bytes(request[8..].try_into().map_err(|_| "size")?);
    if n == 0 || n > MAX_N {
        return Err(format!("size {n} outside 1..={MAX_N}"));
    }
    Ok((seed, n))
}

fn operands(seed: u64, n: u32) -> (Mat, Mat) {
    let n = n as usize;
    (
        Mat::random(n, n, seed),
        Mat::random(n, n, seed ^ 0x5DEE_CE66_D1CE_4E5B),
    )
}

/// The miner: multiplies on its backend (GPU or CPU twin). `fault_wrong` corrupts one
/// element of every product (for tests and demos of cheating).
pub struct ComputeMiner {
    pub backend: Backend,
    pub fault_wrong: bool,
}

impl MinerTask for ComputeMiner {
    fn name(&self) -> &'static str {
        "compute"
    }

    fn answer(&self, request: &[u8]) -> Result<Vec<u8>, String> {
        let (seed, n) = decode_request(request)?;
        let (a, b) = operands(seed, n);
        let mut c = self.backend.matmul(&a, &b).map_err(|e| e.to_string())?;
        if self.fault_wrong {
            let middle = c.data.len() / 2;
            if let Some(x) = c.data.get_mut(middle) {
                *x += 1.0;
            }
        }
        Ok(c.data.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// The validator: asks for an `n`×`n` product and checks it.
pub struct ComputeValidator {
    pub n: u32,
    /// Latency at which a correct answer scores 1/2.
    pub half_ms: u64,
    /// The Freivalds vectors' seed: secret to the validator.
    pub secret: u64,
}

impl ValidatorTask for ComputeValidator {
    fn name(&self) -> &'static str {
        "compute"
    }

    fn request(&self, seed: u64) -> Vec<u8> {
        let mut r = seed.to_le_bytes().to_vec();
        r.extend_from_slice(&self.n.clamp(1, MAX_N).to_le_bytes());
        r
    }

    fn score(&self, request: &[u8], answer: &[u8], latency_ms: u64) -> f32 {
        let Ok((seed, n)) = decode_request(request) else {
            return 0.0;
        };
        let side = n as usize;
        if answer.len() != side * side * 4 {
            return 0.0;
        }
        let data: Vec<f32> = answer
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let Ok(c) = Mat::new(side, side, data) else {
            return 0.0;
        };
        let (a, b) = operands(seed, n);
        match freivalds::check(
            &a,
            &b,
            &c,
            ROUNDS,
            self.secret ^ seed,
            freivalds::DEFAULT_TOLERANCE,
        ) {
            Ok(v) if v.accepted => latency_score(latency_ms, self.half_ms),
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_products_pass_and_tampered_or_malformed_ones_score_zero() {
        let v = ComputeValidator {
            n: 96,
            half_ms: 100,
            secret: 77,
        };
        let req = v.request(12345);
        let honest = ComputeMiner {
            backend: Backend::Cpu,
            fault_wrong: false,
        };
        let cheat = ComputeMiner {
            backend: Backend::Cpu,
            fault_wrong: true,
        };
        let good = honest.answer(&req).unwrap();
        assert!(v.score(&req, &good, 10) > 0.9);
        assert!(
            v.score(&req, &good, 10) > v.score(&req, &good, 500),
            "faster scores higher"
        );
        assert_eq!(v.score(&req, &cheat.answer(&req).unwrap(), 1), 0.0);
        assert_eq!(v.score(&req, &good[..good.len() - 4], 1), 0.0, "truncated");
        // An answer to another seed's request is wrong for this one.
        let other = honest.answer(&v.request(999)).unwrap();
        assert_eq!(v.score(&req, &other, 1), 0.0);
        assert!(honest.answer(&[0; 11]).is_err());
        let mut huge = 1u64.to_le_bytes().to_vec();
        huge.extend_from_slice(&(MAX_N + 1).to_le_bytes());
        assert!(honest.answer(&huge).is_err());
    }

    /// The same verdicts when the miner multiplies on the GPU (lavapipe in CI).
    #[test]
    fn gpu_products_pass_the_same_check() {
        let gpu = match agora_compute::gpu::Gpu::open(Some("gpu")) {
            Ok(g) => Backend::Gpu(Box::new(g)),
            Err(e) => panic!("no GPU adapter (install mesa-vulkan-drivers): {e}"),
        };
        let v = ComputeValidator {
            n: 64,
            half_ms: 100,
            secret: 5,
        };
        let req = v.request(42);
        let honest = ComputeMiner {
            backend: gpu,
            fault_wrong: false,
        };
        assert!(v.score(&req, &honest.answer(&req).unwrap(), 5) > 0.0);
        let cheat = ComputeMiner {
            backend: honest.backend,
            fault_wrong: true,
        };
        assert_eq!(v.score(&req, &cheat.answer(&req).unwrap(), 5), 0.0);
    }
}
