//! `agora-compute`: machine-learning work on any GPU vendor through wgpu, with a CPU
//! implementation of every kernel as fallback and test oracle.
//!
//! Planned (issue 5): device layer, WGSL kernels (matmul, softmax, layernorm, reductions,
//! cosine similarity, cross-entropy, Freivalds check), safetensors models, benchmarks.
//! Nothing is implemented yet: this crate is a table of contents until that issue.
