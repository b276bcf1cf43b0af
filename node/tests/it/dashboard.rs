//! The dashboard in a real headless browser (Debian's `chromium`): it renders with no
//! errors and shows the same height, subnet prices and metagraph values as the RPC; a
//! screenshot is kept under the target directory (`<target>/artifacts/dashboard.png`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::*;
use crate::market::Market;

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!("no chromium: scripts/install-deps installs Debian's `chromium` package");
}

/// The attribute values `name="..."` of elements carrying `marker`, in document order.
fn attrs(dom: &str, marker: &str, name: &str) -> Vec<String> {
    dom.match_indices(marker)
        .filter_map(|(i, _)| {
            let tag_start = dom[..i].rfind('<')?;
            let tag_end = i + dom[i..].find('>')?;
            let tag = &dom[tag_start..tag_end];
            let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
            let end = tag[at..].find('"')?;
            Some(tag[at..at + end].to_string())
        })
        .collect()
}

fn artifacts() -> PathBuf {
    // BIN is <target>/<profile>/agora.
    let dir = PathBuf::from(BIN)
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_dashboard_shows_what_the_rpc_says() {
    let market = Market::start(&[
        ("alice", &["default"][..]),
        ("bob", &["val"][..]),
        ("charlie", &["m1", "m2"][..]),
    ]);
    let run = |args: &[&str]| market.run(args);
    run(&["subnet", "create", "--name", "alice"]);
    run(&["subnet", "start", "--netuid", "1", "--name", "alice"]);
    for (w, h) in [("bob", "val"), ("charlie", "m1"), ("charlie", "m2")] {
        run(&[
            "subnet", "register", "--netuid", "1", "--name", w, "--hotkey", h,
        ]);
    }
    run(&[
        "stake", "add", "--netuid", "1", "--hotkey", "val", "--amount", "100", "--name", "bob",
    ]);
    let m = market.wait_epoch(0);
    let epoch = m["epoch_index"].as_u64().unwrap();
    run(&[
        "weights",
        "set",
        "--netuid",
        "1",
        "--name",
        "bob",
        "--hotkey",
        "val",
        "--uids",
        "2,3",
        "--weights",
        "1,3",
    ]);
    market.wait_epoch(epoch);
    // A governance proposal with one vote: the page lists it with its tally so far.
    run(&[
        "gov",
        "propose",
        "text",
        "hello from the dashboard test",
        "--name",
        "bob",
    ]);
    run(&["gov", "vote", "0", "yes", "--name", "bob"]);

    let url = format!("http://127.0.0.1:{}/dashboard", market.node.port);
    let browser = chromium();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            &url,
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{browser} failed:\n{log}");
    assert!(
        dom.contains("data-ready=\"true\""),
        "the page never finished loading:\n{dom}\n{log}"
    );
    // No error on the page (its own error box) nor in the browser's console.
    let errors = dom
        .split("id=\"errors\"")
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .map(|(_, rest)| rest.split("</div>").next().unwrap_or("").to_string())
        .unwrap();
    assert!(errors.trim().is_empty(), "errors on the page: {errors}");
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("rror") || l.contains("Uncaught")))
        .collect();
    assert!(console.is_empty(), "console errors: {console:?}");

    // The same height, subnet price and metagraph as the RPC (manual sealing: nothing moves).
    let head = market.node.height();
    assert_eq!(
        attrs(&dom, "id=\"height\"", "data-height"),
        [head.to_string()]
    );
    let list = market.node.ok("subnet_list", Value::Null);
    assert_eq!(
        list["height"],
        json!(head),
        "the list names the height it read"
    );
    let price = list["subnets"][0]["price_rao"].as_u64().unwrap() as f64 / 1e9;
    let shown: f64 = attrs(&dom, "data-netuid=\"1\"", "data-price")[0]
        .parse()
        .unwrap();
    assert!((shown - price).abs() < 1e-9, "{shown} vs {price}");
    let text = http_get(market.node.port, "/metrics").unwrap();
    let metrics = parse_metrics(&text).unwrap();
    let gauge = metrics["agora_subnet_price_tao{netuid=\"1\"}"];
    assert!((gauge - price).abs() < 1e-9, "metrics: {gauge} vs {price}");
    // Governance: the proposal, open, and the concentration figures the RPC gives.
    assert_eq!(
        attrs(&dom, "data-proposal=", "data-status"),
        ["voting"],
        "{dom}"
    );
    let conc = market.node.ok("gov_concentration", Value::Null);
    assert_eq!(
        attrs(&dom, "data-what=\"governance power\"", "data-holders"),
        [conc["governance"]["holders"].to_string()]
    );
    assert_eq!(
        attrs(&dom, "data-what=\"root stake\"", "data-nakamoto-half"),
        [conc["root_stake"]["nakamoto_half"].to_string()]
    );
    let history = market
        .node
        .ok("subnet_history", json!({"netuid": 1, "limit": 8}));
    assert!(
        !history.as_array().unwrap().is_empty(),
        "the node samples every head: {history}"
    );
    let mg = market.node.ok("subnet_metagraph", json!({"netuid": 1}));
    let uids = attrs(&dom, "data-incentive=", "data-uid");
    let incentives = attrs(&dom, "data-incentive=", "data-incentive");
    assert_eq!(uids.len(), mg["neurons"].as_array().unwrap().len(), "{dom}");
    for (uid, inc) in uids.iter().zip(&incentives) {
        let u: usize = uid.parse().unwrap();
        assert_eq!(inc, &mg["neurons"][u]["incentive"].to_string(), "uid {u}");
    }
    assert!(
        incentives.iter().any(|i| i != "0"),
        "incentive flowed: {incentives:?}"
    );

    let shot = artifacts().join("dashboard.png");
    let status = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,1400",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "{}",
        shot.display()
    );
}
