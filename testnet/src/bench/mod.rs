//! Benchmarks of the chain's own machinery, beside the simulations: the ledger against raw
//! ed25519 (`agora bench`), one Yuma epoch against numpy (`agora sim bench`), and the
//! subnet market at scale (`agora bench-market`). They report through [`Report`], which
//! the CLI implements (text or `--json`).

pub mod ledger;
pub mod market;

/// Where a benchmark tells its progress and its result.
pub trait Report {
    /// A line while it runs (stderr in text mode, nothing with `--json`).
    fn progress(&self, line: &str);
    /// The result: `json` with `--json`, else `text`.
    fn result(&self, json: &serde_json::Value, text: &str);
    /// Whether the output is JSON.
    fn json(&self) -> bool;
}
