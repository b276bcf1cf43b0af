//! `agora sim consensus`: many seeds of the consensus simulation, a summary, and for every
//! failing seed the one command that replays it bit for bit.

use std::time::Instant;

use agora_testnet::sim::{self, Behaviour, SimConfig, SimReport};
use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::Out;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BehaviourArg {
    Silent,
    DoubleVoter,
    Equivocator,
    Replayer,
    Garbage,
}

impl BehaviourArg {
    fn behaviour(self) -> Behaviour {
        match self {
            BehaviourArg::Silent => Behaviour::Silent,
            BehaviourArg::DoubleVoter => Behaviour::DoubleVoter,
            BehaviourArg::Equivocator => Behaviour::Equivocator,
            BehaviourArg::Replayer => Behaviour::Replayer,
            BehaviourArg::Garbage => Behaviour::Garbage,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BehaviourArg::Silent => "silent",
            BehaviourArg::DoubleVoter => "double-voter",
            BehaviourArg::Equivocator => "equivocator",
            BehaviourArg::Replayer => "replayer",
            BehaviourArg::Garbage => "garbage",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ConsensusArgs {
    /// Validators (equal power).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// How many of them are byzantine (must stay under a third without --allow-unsafe).
    #[arg(long, default_value_t = 1)]
    pub byzantine: usize,
    /// Every byzantine node behaves so (default: each draws one from the seed).
    #[arg(long, value_enum)]
    pub behaviour: Option<BehaviourArg>,
    /// How many seeds to run, from --first-seed on.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Run exactly this seed (a replay).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Blocks every honest node must finalize after the last fault heals.
    #[arg(long, default_value_t = 10)]
    pub heights: u64,
    /// One-way network delay d in ms.
    #[arg(long, default_value_t = 50)]
    pub delay_ms: u64,
    /// No jitter, loss, duplication, partitions or crashes (the happy path).
    #[arg(long)]
    pub no_faults: bool,
    /// Run byzantine power at or above a third (the checkers should find violations).
    #[arg(long)]
    pub allow_unsafe: bool,
}

impl ConsensusArgs {
    fn config(&self) -> SimConfig {
        SimConfig {
            nodes: self.nodes,
            byzantine: self.byzantine,
            behaviour: self.behaviour.map(BehaviourArg::behaviour),
            heights: self.heights,
            delay_ms: self.delay_ms,
            faults: !self.no_faults,
            allow_unsafe: self.allow_unsafe,
            ..SimConfig::default()
        }
    }

    /// The command that replays `seed` exactly.
    fn replay(&self, seed: u64) -> String {
        let mut cmd = format!(
            "agora sim consensus --nodes {} --byzantine {} --heights {} --delay-ms {}",
            self.nodes, self.byzantine, self.heights, self.delay_ms
        );
        if let Some(b) = self.behaviour {
            cmd.push_str(&format!(" --behaviour {}", b.name()));
        }
        if self.no_faults {
            cmd.push_str(" --no-faults");
        }
        if self.allow_unsafe {
            cmd.push_str(" --allow-unsafe");
        }
        cmd.push_str(&format!(" --seed {seed}"));
        cmd
    }
}

pub fn run(args: ConsensusArgs, out: Out) -> anyhow::Result<()> {
    let cfg = args.config();
    sim::check_config(&cfg)?;
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first_seed..args.first_seed.saturating_add(args.seeds)).collect(),
    };
    if seeds.is_empty() {
        bail!("--seeds must be at least 1");
    }
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total = seeds.len();
    let mut reports: Vec<SimReport> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (seeds, cfg, done) = (&seeds, &cfg, &done);
                scope.spawn(move || {
                    seeds
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|&s| {
                            let r = sim::run(cfg, s);
                            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            if n % 50 == 0 && n < total {
                                out.progress(&format!("  {n}/{total} seeds"));
                            }
                            r
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    reports.sort_by_key(|r| r.seed);
    let wall = started.elapsed().as_secs_f64();

    let failed: Vec<&SimReport> = reports.iter().filter(|r| !r.ok()).collect();
    let blocks: u64 = reports.iter().map(|r| r.finalized).sum();
    let mut p50: Vec<f64> = reports.iter().map(|r| r.latency_p50_d).collect();
    p50.sort_by(f64::total_cmp);
    let median_latency = p50.get(p50.len() / 2).copied().unwrap_or(0.0);
    let summary = json!({
        "config": cfg,
        "seeds": reports.len(),
        "passed": reports.len() - failed.len(),
        "failed": failed.len(),
        "blocks_finalized": blocks,
        "partitions": reports.iter().map(|r| u64::from(r.partitions)).sum::<u64>(),
        "crashes": reports.iter().map(|r| u64::from(r.crashes)).sum::<u64>(),
        "evidence": reports.iter().map(|r| r.evidence as u64).sum::<u64>(),
        "malformed_dropped": reports.iter().map(|r| r.malformed_dropped).sum::<u64>(),
        "highest_round": reports.iter().map(|r| r.highest_round).max().unwrap_or(0),
        "median_latency_d": median_latency,
        "wall_s": wall,
        "simulated_blocks_per_s": if wall > 0.0 { blocks as f64 / wall } else { 0.0 },
        "failures": failed.iter().map(|r| json!({
            "seed": r.seed,
            "behaviours": r.behaviours,
            "violations": r.violations,
            "replay": args.replay(r.seed),
        })).collect::<Vec<_>>(),
        "reports": if args.seed.is_some() { json!(reports) } else { json!(null) },
    });
    out.print(&summary, || {
        let mut text = format!(
            "{} seeds: {} passed, {} failed  ({} nodes, {} byzantine, faults {})\n\
             finalized {} blocks, {} partitions, {} crashes, {} evidence, {} malformed dropped, highest round {}\n\
             proposal to finality: median {:.2} d;  {:.0} simulated blocks per second ({:.1} s)",
            reports.len(),
            reports.len() - failed.len(),
            failed.len(),
            cfg.nodes,
            cfg.byzantine,
            if cfg.faults { "on" } else { "off" },
            blocks,
            summary["partitions"],
            summary["crashes"],
            summary["evidence"],
            summary["malformed_dropped"],
            summary["highest_round"],
            median_latency,
            summary["simulated_blocks_per_s"].as_f64().unwrap_or(0.0),
            wall
        );
        for r in &failed {
            text.push_str(&format!("\nFAILED seed {} ({:?}):", r.seed, r.behaviours));
            for v in r.violations.iter().take(3) {
                text.push_str(&format!("\n  {v}"));
            }
            text.push_str(&format!("\n  replay: {}", args.replay(r.seed)));
        }
        if let [one] = reports.as_slice() {
            text.push_str(&format!("\ntrace {}", one.trace_hash));
        }
        text
    });
    if !failed.is_empty() {
        bail!(
            "{} of {} seeds broke a checker",
            failed.len(),
            reports.len()
        );
    }
    Ok(())
}
