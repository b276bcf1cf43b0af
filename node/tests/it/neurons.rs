//! Miners and validators as real processes against a dev node that serves the DHT: the
//! incentive they produce, and every refusal of the query protocol.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agora_core::{AccountId, Keypair};
use agora_p2p::query::{QueryAnswer, SignedQuery, SignedResponse};
use serde_json::{json, Value};

use crate::harness::*;

/// A dev node with a block clock (250 ms), 10-block epochs and the DHT on, a subnet
/// created and started by alice, and the hotkeys named registered on it.
struct Subnet {
    node: Node,
    url: String,
    w: PathBuf,
    dir: tempfile::TempDir,
}

impl Subnet {
    fn start(commit_reveal: bool, hotkeys: &[(&str, &str)]) -> Subnet {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("wallets");
        let genesis = subnet_genesis(dir.path(), commit_reveal);
        let node = Node::start(dir.path(), &genesis, Mode::IntervalDht, "1");
        let s = Subnet {
            url: node.url(),
            node,
            w,
            dir,
        };
        s.run(&["wallet", "regen", "--name", "alice", "--dev", "alice"]);
        s.run(&["wallet", "create", "--name", "alice", "--hotkey", "default"]);
        s.run(&["subnet", "create", "--name", "alice"]);
        s.run(&["subnet", "start", "--netuid", "1", "--name", "alice"]);
        for (wallet, hotkey) in hotkeys {
            if !s.w.join(wallet).exists() {
                s.run(&["wallet", "regen", "--name", wallet, "--dev", wallet]);
            }
            let dev = format!("{wallet}-{hotkey}");
            s.run(&[
                "wallet", "regen", "--name", wallet, "--hotkey", hotkey, "--dev", &dev,
            ]);
            s.run(&[
                "subnet", "register", "--netuid", "1", "--name", wallet, "--hotkey", hotkey,
            ]);
        }
        s
    }

    fn run(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        if !matches!(args[0], "wallet" | "compute") {
            all.extend_from_slice(&["--rpc-url", self.url.as_str()]);
        }
        cli_json(&self.w, &all)
    }

    /// bob stakes 100 TAO on his hotkey `val`.
    fn stake_validator(&self) {
        self.run(&[
            "stake", "add", "--netuid", "1", "--hotkey", "val", "--amount", "100", "--name", "bob",
        ]);
    }

    fn metagraph(&self) -> Value {
        self.node.ok("subnet_metagraph", json!({"netuid": 1}))
    }

    fn uid(&self, wallet: &str, hotkey: &str) -> u64 {
        let hot = hotkey_of(wallet, hotkey).account();
        self.metagraph()["neurons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| serde_json::from_value::<AccountId>(n["hotkey"].clone()).ok() == Some(hot))
            .map(|n| n["uid"].as_u64().unwrap())
            .unwrap()
    }

    /// `agora miner run` for `wallet/hotkey`, plus `extra` flags.
    fn miner(&self, wallet: &str, hotkey: &str, extra: &[&str]) -> Proc {
        let mut args = vec![
            "miner",
            "run",
            "--netuid",
            "1",
            "--name",
            wallet,
            "--hotkey",
            hotkey,
            "--p2p-addr",
            "/ip4/127.0.0.1/tcp/0",
            "--device",
            "cpu",
            "--rpc-url",
            &self.url,
        ];
        args.extend_from_slice(extra);
        let log = self.dir.path().join(format!("miner-{hotkey}.log"));
        Proc::start(&self.w, log, &args)
    }

    /// `agora validator run` for bob's hotkey `val`, plus `extra` flags.
    fn validator(&self, extra: &[&str]) -> Proc {
        let mut args = vec![
            "validator",
            "run",
            "--netuid",
            "1",
            "--name",
            "bob",
            "--hotkey",
            "val",
            "--p2p-addr",
            "/ip4/127.0.0.1/tcp/0",
            "--allow-private-addrs",
            "--rpc-url",
            &self.url,
        ];
        args.extend_from_slice(extra);
        Proc::start(&self.w, self.dir.path().join("validator.log"), &args)
    }

    fn status(&self, role: &str, wallet: &str, hotkey: &str) -> Option<Value> {
        let (code, out, _) = cli(
            &self.w,
            &[
                role, "status", "--netuid", "1", "--name", wallet, "--hotkey", hotkey, "--json",
            ],
        );
        (code == 0).then(|| serde_json::from_str(&out).unwrap())
    }
}

fn wait_for(what: &str, secs: u64, procs: &mut [&mut Proc], mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        for p in procs.iter_mut() {
            assert!(
                p.exited().is_none(),
                "{} exited:\n{}",
                p.log.display(),
                p.logs()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s\n{}",
            procs
                .iter()
                .map(|p| format!("--- {}\n{}", p.log.display(), tail(&p.logs())))
                .collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("finalized block"))
        .collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Issue 11's "done when": one validator and three miners (honest, slow, wrong) as
/// processes on a subnet with commit-reveal on. The validator finds them through the DHT,
/// scores them, commits and reveals; after two epochs of its revealed weights the honest
/// miner earns the most incentive and the cheater none, and the cheater's signed wrong
/// answers are kept as evidence that verifies.
#[test]
fn honest_miners_earn_and_a_cheater_earns_nothing() {
    let net = Subnet::start(
        true,
        &[
            ("bob", "val"),
            ("charlie", "honest"),
            ("charlie", "slow"),
            ("charlie", "cheat"),
        ],
    );
    net.stake_validator();
    let (honest, slow, cheat) = (
        net.uid("charlie", "honest"),
        net.uid("charlie", "slow"),
        net.uid("charlie", "cheat"),
    );
    let mut m1 = net.miner("charlie", "honest", &[]);
    let mut m2 = net.miner("charlie", "slow", &["--fault", "slow", "--slow-ms", "300"]);
    let mut m3 = net.miner("charlie", "cheat", &["--fault", "wrong"]);
    let evidence = net.dir.path().join("evidence");
    let mut v = net.validator(&[
        "--interval-blocks",
        "3",
        "--size",
        "64",
        "--evidence-dir",
        evidence.to_str().unwrap(),
    ]);
    // The first reveal lands an epoch after the first commit; then two epochs of incentive.
    let mut procs = [&mut m1, &mut m2, &mut m3, &mut v];
    let revealed_at = {
        let mut at = None;
        wait_for("weights revealed", 60, &mut procs, || {
            let m = net.metagraph();
            let w = &m["neurons"][1]["weights"];
            if w.as_array().is_some_and(|w| !w.is_empty()) {
                at = m["epoch_index"].as_u64();
            }
            at.is_some()
        });
        at.unwrap()
    };
    wait_for("two epochs of revealed weights", 30, &mut procs, || {
        net.metagraph()["epoch_index"].as_u64().unwrap() >= revealed_at + 2
    });
    let m = net.metagraph();
    let incentive = |uid: u64| m["neurons"][uid as usize]["incentive"].as_u64().unwrap();
    assert!(
        incentive(honest) > incentive(slow) && incentive(slow) > 0,
        "honest {} slow {}: {m}",
        incentive(honest),
        incentive(slow)
    );
    assert_eq!(incentive(cheat), 0, "{m}");

    // Status through the CLI: the validator's rounds, the miners' answers.
    let vs = net.status("validator", "bob", "val").unwrap();
    assert_eq!(vs["running"], true, "{vs}");
    assert!(vs["rounds"].as_u64().unwrap() >= 3, "{vs}");
    let outcomes = vs["last_round"]["outcomes"].as_array().unwrap();
    let verdict = |uid: u64| {
        outcomes
            .iter()
            .find(|o| o["uid"] == uid)
            .map(|o| o["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(verdict(honest).as_deref(), Some("ok"), "{vs}");
    assert_eq!(verdict(cheat).as_deref(), Some("wrong"), "{vs}");
    let ms = net.status("miner", "charlie", "honest").unwrap();
    assert!(ms["queries"]["answered"].as_u64().unwrap() >= 2, "{ms}");

    // The evidence: the validator's signed query and the cheater's signed wrong answer.
    let cheat_key: AccountId =
        serde_json::from_value(m["neurons"][cheat as usize]["hotkey"].clone()).unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(&evidence)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    for f in &files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        assert_eq!(doc["uid"], cheat, "only the cheater is wrong: {doc}");
        let q = SignedQuery::decode(&hex::decode(doc["query"].as_str().unwrap()).unwrap()).unwrap();
        let r = SignedResponse::decode(&hex::decode(doc["response"].as_str().unwrap()).unwrap())
            .unwrap();
        assert!(r.verify(&q, &cheat_key), "evidence must verify");
    }
}

/// Sign `body` as `key` for subnet 1's compute task at `block`.
fn query(chain_id: u64, nonce: u64, block: u64, key: &Keypair) -> SignedQuery {
    let mut body = 7u64.to_le_bytes().to_vec();
    body.extend_from_slice(&8u32.to_le_bytes());
    SignedQuery::sign(chain_id, 1, "compute", nonce, block, body, key)
}

/// A validator's swarm in the test: identity = `key`, dialing the miner directly.
async fn swarm_as(
    key: &Keypair,
    chain: &Value,
    miner: &agora_p2p::Multiaddr,
) -> agora_p2p::Libp2pNetwork {
    let (net, _events, _) = agora_p2p::Libp2pNetwork::start(agora_p2p::NetConfig {
        chain_id: chain["chain_id"].as_u64().unwrap(),
        genesis_hash: serde_json::from_value(chain["genesis_hash"].clone()).unwrap(),
        key_seed: key.seed(),
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootnodes: vec![miner.clone()],
        mdns: false,
        local: true,
    })
    .await
    .unwrap();
    net
}

async fn ask(
    net: &agora_p2p::Libp2pNetwork,
    peer: agora_p2p::PeerId,
    bytes: Vec<u8>,
) -> QueryAnswer {
    use agora_p2p::Network;
    QueryAnswer::decode(&net.query(peer, bytes).await.unwrap()).unwrap()
}

fn refused_kind(a: &QueryAnswer) -> &'static str {
    match a {
        QueryAnswer::Refused(r) => r.kind(),
        QueryAnswer::Answered(_) => "answered",
    }
}

/// Each refusal of the protocol against a real miner process, from real swarms: unsigned,
/// bad signature, stale, replayed, a caller without permit or stake, over the rate limit,
/// oversize, sent by a peer other than the signer. None reaches the task: the miner's
/// count of task calls equals the queries it answered.
#[test]
fn a_miner_refuses_bad_queries_before_any_work() {
    let net = Subnet::start(
        false,
        &[("bob", "val"), ("dave", "nostake"), ("charlie", "m")],
    );
    net.stake_validator();
    // Admission by stake (10 alpha) so the test need not wait for an epoch's permits.
    let mut miner = net.miner(
        "charlie",
        "m",
        &[
            "--rate-limit",
            "3",
            "--admit-stake",
            "10",
            "--window-blocks",
            "8",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let mut status = None;
    wait_for("miner status", 20, &mut [&mut miner], || {
        status = net.status("miner", "charlie", "m");
        status.is_some()
    });
    let status = status.unwrap();
    let addr: agora_p2p::Multiaddr = status["listen"][0].as_str().unwrap().parse().unwrap();
    let peer: agora_p2p::PeerId = status["peer_id"].as_str().unwrap().parse().unwrap();
    let chain = net.node.ok("chain_info", Value::Null);
    let chain_id = chain["chain_id"].as_u64().unwrap();
    let val = hotkey_of("bob", "val");
    let nostake = hotkey_of("dave", "nostake");
    net.node
        .wait_for_height(status["head"].as_u64().unwrap() + 1);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (answered, kinds) = rt.block_on(async {
        let v = swarm_as(&val, &chain, &addr).await;
        let stranger = swarm_as(&nostake, &chain, &addr).await;
        let head = net.node.height();
        let mut kinds = Vec::new();
        let mut answered = 0;
        let mut unsigned = query(chain_id, 1, head, &val);
        unsigned.signature = [0; 64];
        kinds.push(refused_kind(
            &ask(&v, peer, unsigned.encode().unwrap()).await,
        ));
        let mut forged = query(chain_id, 2, head, &val);
        forged.body[0] ^= 1;
        kinds.push(refused_kind(&ask(&v, peer, forged.encode().unwrap()).await));
        let stale = query(chain_id, 3, 1, &val);
        kinds.push(refused_kind(&ask(&v, peer, stale.encode().unwrap()).await));
        let not_admitted = query(chain_id, 4, head, &nostake);
        kinds.push(refused_kind(
            &ask(&stranger, peer, not_admitted.encode().unwrap()).await,
        ));
        // Signed by the validator, sent from another peer.
        let relayed = query(chain_id, 5, head, &val);
        kinds.push(refused_kind(
            &ask(&stranger, peer, relayed.encode().unwrap()).await,
        ));
        let oversize = vec![0u8; agora_p2p::query::QUERY_MAX_BYTES + 1024];
        kinds.push(refused_kind(&ask(&v, peer, oversize).await));
        // One good query is answered; the same again is a replay.
        let good = query(chain_id, 6, head, &val);
        match ask(&v, peer, good.encode().unwrap()).await {
            QueryAnswer::Answered(r) => {
                assert!(r.verify(&good, &status_hotkey(&status)));
                answered += 1;
            }
            other => panic!("{other:?}"),
        }
        kinds.push(refused_kind(&ask(&v, peer, good.encode().unwrap()).await));
        // A burst over 3 per second: some are rate limited.
        let mut burst = Vec::new();
        for nonce in 10..16 {
            let a = ask(
                &v,
                peer,
                query(chain_id, nonce, head, &val).encode().unwrap(),
            )
            .await;
            if matches!(a, QueryAnswer::Answered(_)) {
                answered += 1;
            }
            burst.push(refused_kind(&a));
        }
        assert!(burst.contains(&"rate_limited"), "{burst:?}");
        kinds.push("rate_limited");
        (answered, kinds)
    });
    assert_eq!(
        kinds,
        [
            "bad_signature",
            "bad_signature",
            "stale",
            "not_admitted",
            "not_from_caller",
            "oversize",
            "replayed",
            "rate_limited"
        ]
    );
    // The miner's own count, after its next status write.
    std::thread::sleep(Duration::from_millis(1500));
    let s = net.status("miner", "charlie", "m").unwrap();
    let q = &s["queries"];
    assert_eq!(q["task_calls"].as_u64(), Some(answered), "{s}");
    assert_eq!(q["answered"].as_u64(), Some(answered), "{s}");
    for kind in &kinds {
        assert!(q["refused"][kind].as_u64() >= Some(1), "{kind}: {s}");
    }
    assert_eq!(q["refused"]["bad_signature"].as_u64(), Some(2), "{s}");
    // The same counts on the miner's /metrics.
    let url = s["metrics"].as_str().unwrap();
    let port: u16 = url
        .trim_end_matches("/metrics")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let text = http_get(port, "/metrics").unwrap();
    let m = parse_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        m["agora_neuron_queries_total{kind=\"answered\"}"], answered as f64,
        "{text}"
    );
    assert_eq!(
        m["agora_neuron_refusals_total{kind=\"bad_signature\"}"],
        2.0
    );
    assert_eq!(m["agora_neuron_refusals_total{kind=\"oversize\"}"], 1.0);
}

fn status_hotkey(status: &Value) -> AccountId {
    serde_json::from_value(status["hotkey"].clone()).unwrap()
}

/// The key `Subnet::start` gave `wallet`'s hotkey `hotkey`.
fn hotkey_of(wallet: &str, hotkey: &str) -> Keypair {
    Keypair::dev(&format!("{wallet}-{hotkey}"))
}

/// The inference task through the binary: the owner names a model by hash, miners running
/// it answer batches, the validator recomputes a sample: the honest miner is `ok`, the
/// cheater `wrong`; a miner with another model file is refused at start.
#[test]
fn inference_miners_are_checked_against_the_subnets_model() {
    let net = Subnet::start(
        false,
        &[("bob", "val"), ("charlie", "honest"), ("charlie", "cheat")],
    );
    net.stake_validator();
    let dir = net.dir.path();
    let model = dir.join("gpt.safetensors");
    let other = dir.join("other.safetensors");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    for (file, seed) in [(&model, "1"), (&other, "2")] {
        net.run(&[
            "compute",
            "example-model",
            "gpt",
            "--out",
            &path(file),
            "--seed",
            seed,
        ]);
    }
    // An inference miner refuses to start before the owner names a model, and on a file
    // other than the one named.
    let refused = |file: &std::path::Path| {
        let args = [
            "miner",
            "run",
            "--netuid",
            "1",
            "--name",
            "charlie",
            "--hotkey",
            "honest",
            "--task",
            "inference",
            "--model",
            &path(file),
            "--rpc-url",
            &net.url,
        ];
        let (code, _, err) = cli(&net.w, &args);
        assert_ne!(code, 0, "{args:?}");
        err
    };
    let err = refused(&model);
    assert!(err.contains("names no model"), "{err}");
    let set = net.run(&[
        "subnet",
        "set-model",
        "--netuid",
        "1",
        "--name",
        "alice",
        "--model",
        &path(&model),
    ]);
    assert_eq!(set["status"], "finalized", "{set}");
    let err = refused(&other);
    assert!(err.contains("but subnet 1 runs"), "{err}");

    let inference = [
        "--task",
        "inference",
        "--model",
        &path(&model),
        "--admit-stake",
        "10",
    ];
    let mut honest = net.miner("charlie", "honest", &inference);
    let mut cheat_args = inference.to_vec();
    cheat_args.extend(["--fault", "wrong"]);
    let mut cheat = net.miner("charlie", "cheat", &cheat_args);
    let mut v = net.validator(&[
        "--interval-blocks",
        "2",
        "--task",
        "inference",
        "--model",
        &path(&model),
        "--device",
        "cpu",
        "--batch",
        "4",
        "--seq",
        "8",
    ]);
    let (honest_uid, cheat_uid) = (net.uid("charlie", "honest"), net.uid("charlie", "cheat"));
    let mut verdicts = (None, None);
    wait_for(
        "a round with both miners answering",
        40,
        &mut [&mut honest, &mut cheat, &mut v],
        || {
            let Some(s) = net.status("validator", "bob", "val") else {
                return false;
            };
            let of = |uid: u64| {
                s["last_round"]["outcomes"]
                    .as_array()?
                    .iter()
                    .find(|o| o["uid"] == uid)
                    .and_then(|o| o["verdict"].as_str().map(str::to_string))
            };
            verdicts = (of(honest_uid), of(cheat_uid));
            // A round in which both answered: a miner that started after the round's
            // query was signed refuses it as stale, which says nothing about its answers.
            let answered =
                |v: &Option<String>| v.as_deref().is_some_and(|v| v == "ok" || v == "wrong");
            answered(&verdicts.0) && answered(&verdicts.1)
        },
    );
    assert_eq!(verdicts.0.as_deref(), Some("ok"), "{verdicts:?}");
    assert_eq!(verdicts.1.as_deref(), Some("wrong"), "{verdicts:?}");
}
