//! Subnet tasks as traits, and scores to weights.

/// The miner's side of a task.
pub trait MinerTask: Send + Sync {
    fn name(&self) -> &'static str;
    /// Answer a request's body (already admitted by the guard).
    fn answer(&self, request: &[u8]) -> Result<Vec<u8>, String>;
    /// Cheap enough (microseconds) to answer on the thread that received the query,
    /// without a hop to a worker thread.
    fn light(&self) -> bool {
        false
    }
}

/// The validator's side of a task.
pub trait ValidatorTask: Send + Sync {
    fn name(&self) -> &'static str;
    /// A request body for one round; `seed` makes it unpredictable to miners.
    fn request(&self, seed: u64) -> Vec<u8>;
    /// Score an answer in 0..=1: 0 for a wrong or unreadable answer, otherwise by latency.
    fn score(&self, request: &[u8], answer: &[u8], latency_ms: u64) -> f32;
    /// Cheap enough (microseconds) to score on the thread that received the answer.
    fn light(&self) -> bool {
        false
    }
}

/// The latency part of a correct answer's score: 1 at 0 ms, 1/2 at `half_ms`, falling
/// smoothly; a correct answer always scores above 0.
pub fn latency_score(latency_ms: u64, half_ms: u64) -> f32 {
    let half = half_ms.max(1) as f32;
    half / (half + latency_ms as f32)
}

/// Scores to `set_weights` values, deterministically: each score over the best one,
/// scaled to 65535 and rounded to nearest; all-zero scores give all-zero weights (nothing
/// to set). Non-finite or negative scores count as 0.
pub fn weights(scores: &[f32]) -> Vec<u16> {
    let clean: Vec<f32> = scores
        .iter()
        .map(|s| if s.is_finite() && *s > 0.0 { *s } else { 0.0 })
        .collect();
    let best = clean.iter().copied().fold(0.0f32, f32::max);
    if best <= 0.0 {
        return vec![0; scores.len()];
    }
    clean
        .iter()
        .map(|s| ((s / best) * 65535.0).round().clamp(0.0, 65535.0) as u16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_scores_and_zero_stays_zero() {
        assert_eq!(weights(&[0.5, 0.25, 0.0]), vec![65535, 32768, 0]);
        assert_eq!(weights(&[0.0, 0.0]), vec![0, 0]);
        assert_eq!(weights(&[f32::NAN, -1.0, 2.0]), vec![0, 0, 65535]);
        assert!(latency_score(0, 100) > latency_score(50, 100));
        assert!((latency_score(100, 100) - 0.5).abs() < 1e-6);
        assert!(latency_score(u64::MAX / 2, 100) > 0.0);
    }
}
