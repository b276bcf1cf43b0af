use serde_json::Value;

use crate::harness::*;

fn case() -> String {
    format!("{}/../testnet/cases/two-validators.json", manifest_dir())
}

fn scenario() -> String {
    format!(
        "{}/../testnet/scenarios/copier-vs-honest.toml",
        manifest_dir()
    )
}

#[test]
fn sim_epoch_prints_the_documented_output_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.json");
    let (code, stdout, err) = cli(
        dir.path(),
        &[
            "sim",
            "epoch",
            "--input",
            &case(),
            "--output",
            out_path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "consensus",
        "incentive",
        "dividends",
        "validator_trust",
        "stake_weight",
        "bonds",
        "server_emission",
        "validator_emission",
        "emission",
        "validator_permit",
        "active",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    assert_eq!(v["bonds"].as_array().unwrap().len(), 4);
    let total: u64 = v["emission"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    // I32F32 proportions resolve 2^-32, so each of the 4 floors may drop up to E * 2^-32
    // (~69 rao here); that dust is not redistributed, as in subtensor.
    assert!(
        (295_200_000_000 - 4 * 70..=295_200_000_000).contains(&total),
        "{total}"
    );
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap().trim(),
        stdout.trim()
    );

    // Wrapped in {"input": ...} gives the same result.
    let wrapped = dir.path().join("wrapped.json");
    let case: Value = serde_json::from_str(&std::fs::read_to_string(case()).unwrap()).unwrap();
    std::fs::write(&wrapped, serde_json::json!({"input": case}).to_string()).unwrap();
    let (_, again, _) = cli(
        dir.path(),
        &["sim", "epoch", "--input", wrapped.to_str().unwrap()],
    );
    assert_eq!(again, stdout);

    let mut bad = case.clone();
    bad["weights"][1] = serde_json::json!([0, 1]);
    std::fs::write(&wrapped, bad.to_string()).unwrap();
    let (code, _, err) = cli(
        dir.path(),
        &["sim", "epoch", "--input", wrapped.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("weights[1]") && err.contains("ragged"),
        "{err}"
    );
}

#[test]
fn sim_epochs_prints_a_table_and_writes_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("run.csv");
    let (code, stdout, err) = cli(
        dir.path(),
        &[
            "sim",
            "epochs",
            "--scenario",
            &scenario(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("copier") && stdout.contains("totals"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("epoch,validator,strategy,stake_tao"));
    assert_eq!(text.lines().count(), 1 + 40 * 7);
    let v = cli_json(dir.path(), &["sim", "epochs", "--scenario", &scenario()]);
    assert_eq!(v["epochs"].as_array().unwrap().len(), 40);
    assert_eq!(v["totals"].as_array().unwrap().len(), 7);
}

/// `agora sim governance`: both regimes side by side, a CSV with a row per regime, epoch
/// and distribution, and JSON; a bad scenario names its problem.
#[test]
fn sim_governance_prints_both_regimes_and_writes_csv() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!("{}/../testnet/scenarios/gov-flat.toml", manifest_dir());
    let short = dir.path().join("short.toml");
    let text = std::fs::read_to_string(&scenario).unwrap();
    std::fs::write(&short, text.replace("epochs = 30", "epochs = 3")).unwrap();
    let csv = dir.path().join("out.csv");
    let (code, stdout, err) = cli(
        dir.path(),
        &[
            "sim",
            "governance",
            "--scenario",
            short.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("root_weights (before dTAO)") && stdout.contains("dtao"),
        "{stdout}"
    );
    assert!(err.contains("dtao epoch 3/3"), "progress on stderr: {err}");
    let rows: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        rows[0],
        "regime,epoch,block,distribution,holders,nakamoto_third,nakamoto_half,top5_share,gini,hhi"
    );
    assert_eq!(rows.len(), 1 + 2 * 3 * 2, "{rows:?}");
    let (code, stdout, err) = cli(
        dir.path(),
        &[
            "sim",
            "governance",
            "--scenario",
            short.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["epochs"].as_array().unwrap().len(), 6);
    std::fs::write(&short, "seed = 1\n").unwrap();
    let (code, _, err) = cli(
        dir.path(),
        &["sim", "governance", "--scenario", short.to_str().unwrap()],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("invalid governance scenario") && err.contains("missing field"),
        "{err}"
    );
}
