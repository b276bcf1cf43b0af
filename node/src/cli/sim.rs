//! `agora sim`: the economics offline.

use std::path::PathBuf;

use agora_core::epoch::{parse_input_reader, run_epoch};
use agora_testnet::scenario::{to_csv, Scenario};
use anyhow::Context;
use clap::Subcommand;

use super::Out;

#[derive(Subcommand, Debug)]
pub enum SimCmd {
    /// Run one Yuma epoch from a JSON case and print the results as JSON.
    Epoch {
        /// Input case: the epoch's fields as an object, or {"input": {...}}.
        #[arg(long)]
        input: PathBuf,
        /// Also write the output JSON here.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Run a seeded multi-epoch scenario and show each validator's dividends per epoch.
    Epochs {
        /// Scenario file (TOML or JSON); see testnet/scenarios/.
        #[arg(long)]
        scenario: PathBuf,
        /// Write per-epoch, per-validator rows as CSV to this file ("-" for stdout).
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Run a seeded governance economy under both emission regimes (root_weights and
    /// dynamic TAO) on the real state machine, and show how concentrated power is after
    /// every epoch: governance power, root stake, subnet validators.
    Governance {
        /// Scenario file (TOML or JSON); see testnet/scenarios/gov-*.toml.
        #[arg(long)]
        scenario: PathBuf,
        /// Write one row per (regime, epoch, distribution) as CSV here ("-" for stdout).
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Time one epoch at several sizes against a numpy float64 implementation.
    Bench(agora_testnet::bench::ledger::EpochBenchArgs),
    /// Seeded simulation of the BFT network: real consensus machines and block pipelines
    /// over a simulated network with faults and byzantine nodes, judged by independent
    /// checkers (agreement, validity, supply, liveness after every heal).
    Consensus(super::sim_consensus::ConsensusArgs),
}

pub fn run(cmd: SimCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        SimCmd::Epoch { input, output } => {
            // Read straight into typed structures (no JSON value tree, no copy of the
            // text in memory), and written as serialized: memory stays near the parsed
            // (sparse) size whatever the file's.
            let file = std::fs::File::open(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            let reader = std::io::BufReader::with_capacity(1 << 20, file);
            let case = parse_input_reader(reader).map_err(|e| {
                if e.field == "(json)" {
                    anyhow::anyhow!("{} is not valid JSON: {}", input.display(), e.problem)
                } else {
                    anyhow::anyhow!("invalid epoch input {}: {e}", input.display())
                }
            })?;
            let result = run_epoch(&case);
            drop(case);
            use std::io::Write;
            let write = |to: &mut dyn Write| -> anyhow::Result<()> {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, to);
                serde_json::to_writer(&mut w, &result)?;
                w.write_all(b"\n")?;
                w.flush()?;
                Ok(())
            };
            if let Some(path) = output {
                let mut f = std::fs::File::create(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                write(&mut f).with_context(|| format!("writing {}", path.display()))?;
            }
            // The output is JSON either way; --json changes nothing here.
            write(&mut std::io::stdout().lock())?;
            Ok(())
        }
        SimCmd::Governance { scenario, csv } => governance(&scenario, csv.as_deref(), out),
        SimCmd::Epochs { scenario, csv } => {
            let text = std::fs::read_to_string(&scenario)
                .with_context(|| format!("reading {}", scenario.display()))?;
            let s = Scenario::parse(&text)?;
            let names: Vec<String> = s.validators.iter().map(|v| v.name.clone()).collect();
            if !out.json {
                let mut header = format!("{:>5}", "epoch");
                for n in &names {
                    header.push_str(&format!(" {:>12}", truncate(n, 12)));
                }
                println!("{header}   (validator emission per epoch, alpha)");
            }
            let records = s.run(|r| {
                if !out.json {
                    let mut line = format!("{:>5}", r.epoch);
                    for v in &r.validators {
                        line.push_str(&format!(" {:>12.4}", v.validator_emission_rao as f64 / 1e9));
                    }
                    println!("{line}");
                }
            });
            let totals: Vec<serde_json::Value> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let rao: u128 = records.iter().filter_map(|r| r.validators.get(i)).map(|v| u128::from(v.validator_emission_rao)).sum();
                    let stake: u128 = records.iter().filter_map(|r| r.validators.get(i)).map(|v| u128::from(v.stake_tao)).sum();
                    serde_json::json!({
                        "validator": name,
                        "strategy": s.validators[i].strategy,
                        "total_emission_rao": rao as u64,
                        "alpha_per_1000_tao_stake_per_epoch": if stake == 0 { 0.0 } else { rao as f64 / 1e9 / stake as f64 * 1000.0 },
                    })
                })
                .collect();
            if out.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"epochs": records, "totals": totals})
                    )?
                );
            } else {
                println!("\ntotals (yield = alpha per 1000 TAO of stake per epoch):");
                for t in &totals {
                    println!(
                        "  {:<14} {:<9} {:>14.4} alpha   yield {:.4}",
                        t["validator"].as_str().unwrap_or(""),
                        t["strategy"].as_str().unwrap_or(""),
                        t["total_emission_rao"].as_u64().unwrap_or(0) as f64 / 1e9,
                        t["alpha_per_1000_tao_stake_per_epoch"]
                            .as_f64()
                            .unwrap_or(0.0)
                    );
                }
            }
            if let Some(path) = csv {
                let text = to_csv(&records);
                if path.as_os_str() == "-" {
                    print!("{text}");
                } else {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    out.progress(&format!("wrote {}", path.display()));
                }
            }
            Ok(())
        }
        SimCmd::Bench(args) => agora_testnet::bench::ledger::run_epoch_bench(args, &out),
        SimCmd::Consensus(args) => super::sim_consensus::run(args, out),
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn governance(
    scenario: &std::path::Path,
    csv: Option<&std::path::Path>,
    out: Out,
) -> anyhow::Result<()> {
    use agora_testnet::gov_sim::GovScenario;
    let text = std::fs::read_to_string(scenario)
        .with_context(|| format!("reading {}", scenario.display()))?;
    let s = GovScenario::parse(&text)
        .with_context(|| format!("invalid governance scenario {}", scenario.display()))?;
    let started = std::time::Instant::now();
    let figures = s.run(|f| {
        if !out.json {
            eprintln!(
                "{} epoch {}/{} (block {})",
                f.regime, f.epoch, s.epochs, f.block
            );
        }
    })?;
    let (root, dtao): (Vec<_>, Vec<_>) = figures.iter().partition(|f| f.regime == "root_weights");
    if let Some(path) = csv {
        let mut text = String::from(
            "regime,epoch,block,distribution,holders,nakamoto_third,nakamoto_half,top5_share,gini,hhi\n",
        );
        for f in &figures {
            for (what, c) in [("governance", &f.governance), ("root_stake", &f.root_stake)] {
                text.push_str(&format!(
                    "{},{},{},{what},{},{},{},{:.6},{:.6},{:.6}\n",
                    f.regime,
                    f.epoch,
                    f.block,
                    c.holders,
                    c.nakamoto_third,
                    c.nakamoto_half,
                    c.top5_share,
                    c.gini,
                    c.hhi
                ));
            }
        }
        if path == std::path::Path::new("-") {
            print!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if out.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"epochs": figures}))?
        );
        return Ok(());
    }
    println!(
        "governance power (stake mode) and root stake after each epoch; {} validators, {} delegators, {} subnets ({:.1} s)",
        s.whale_stake_tao.len() + usize::from(s.followers),
        s.delegators,
        s.subnets,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:>5}  | {:^36} | {:^48}",
        "", "root_weights (before dTAO)", "dtao"
    );
    println!(
        "{:>5}  | {:>7} {:>5} {:>6} {:>14} | {:>7} {:>5} {:>6} {:>14} {:>10}",
        "epoch",
        "top-5",
        "N1/2",
        "gini",
        "root top-5",
        "top-5",
        "N1/2",
        "gini",
        "root top-5",
        "subnet top-5"
    );
    for (r, d) in root.iter().zip(&dtao) {
        println!(
            "{:>5}  | {:>6.1}% {:>5} {:>6.3} {:>13.1}% | {:>6.1}% {:>5} {:>6.3} {:>13.1}% {:>11.1}%",
            r.epoch,
            r.governance.top5_share * 100.0,
            r.governance.nakamoto_half,
            r.governance.gini,
            r.root_stake.top5_share * 100.0,
            d.governance.top5_share * 100.0,
            d.governance.nakamoto_half,
            d.governance.gini,
            d.root_stake.top5_share * 100.0,
            d.subnet_validators_top5_mean * 100.0,
        );
    }
    Ok(())
}
