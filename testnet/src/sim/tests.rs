use super::*;

fn happy(nodes: usize) -> SimConfig {
    SimConfig {
        nodes,
        byzantine: 0,
        faults: false,
        ..SimConfig::default()
    }
}

#[test]
fn the_happy_path_finalizes_in_three_message_delays() {
    for nodes in [1, 4, 7] {
        let r = run(&happy(nodes), 1);
        assert!(r.ok(), "{:?}", r.violations);
        assert!(r.finalized >= 10, "{nodes} nodes: {}", r.finalized);
        assert_eq!(r.highest_round, 0, "no round ever failed");
        if nodes > 1 {
            // Proposal at 0, prevotes arrive at 2d, precommits at 3d: decided at 3d.
            assert_eq!(
                (r.latency_p50_d, r.latency_max_d),
                (3.0, 3.0),
                "{nodes} nodes"
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let cfg = SimConfig::default();
    let a = run(&cfg, 42);
    let b = run(&cfg, 42);
    let c = run(&cfg, 43);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.finalized, b.finalized);
    assert_eq!(a.messages_sent, b.messages_sent);
    assert_ne!(a.trace_hash, c.trace_hash);
}

/// Fixed seeds plus a few drawn at random (printed, so a failure can be replayed).
#[test]
fn faults_and_one_byzantine_in_four_never_break_a_checker() {
    let random: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seeds: Vec<u64> = (0..40)
        .chain((0..4).map(|i| random.wrapping_add(i) % 1_000_000_000))
        .collect();
    let cfg = SimConfig::default();
    for seed in seeds {
        let r = run(&cfg, seed);
        assert!(
            r.ok(),
            "seed {seed} ({:?}): {:?}\nreplay: agora sim consensus --nodes 4 --byzantine 1 --seed {seed}",
            r.behaviours,
            r.violations
        );
    }
}

#[test]
fn seven_validators_with_two_byzantine_survive_faults() {
    let cfg = SimConfig {
        nodes: 7,
        byzantine: 2,
        ..SimConfig::default()
    };
    for seed in 100..115 {
        let r = run(&cfg, seed);
        assert!(
            r.ok(),
            "seed {seed} ({:?}): {:?}",
            r.behaviours,
            r.violations
        );
    }
}

#[test]
fn each_misbehaviour_is_survived_and_leaves_its_trace() {
    let mut evidence = 0;
    let mut malformed = 0;
    for b in MISBEHAVIOURS {
        let cfg = SimConfig {
            behaviour: Some(b),
            ..SimConfig::default()
        };
        for seed in 0..6 {
            let r = run(&cfg, seed);
            assert!(r.ok(), "{b:?} seed {seed}: {:?}", r.violations);
            if b == Behaviour::DoubleVoter {
                evidence += r.evidence;
            }
            if b == Behaviour::Garbage {
                malformed += r.malformed_dropped;
            }
        }
    }
    assert!(evidence > 0, "double votes were never reported as evidence");
    assert!(malformed > 0, "garbage was never seen and dropped");
}

/// The checkers can fail: with a third of the power or more, equivocators fork the chain
/// and the agreement checker says so.
#[test]
fn equivocators_at_a_third_of_the_power_fork_the_chain_and_are_caught() {
    let cfg = SimConfig {
        nodes: 4,
        byzantine: 2,
        behaviour: Some(Behaviour::Equivocator),
        allow_unsafe: true,
        ..SimConfig::default()
    };
    assert_eq!(
        check_config(&SimConfig {
            allow_unsafe: false,
            ..cfg.clone()
        }),
        Err(SimError::Unsafe {
            byzantine: 2,
            nodes: 4
        })
    );
    let forked = (0..10)
        .map(|seed| run(&cfg, seed))
        .filter(|r| r.violations.iter().any(|v| v.starts_with("agreement")))
        .count();
    assert!(forked > 0, "no fork found in 10 seeds");
    // And one equivocator of four (below the bound) never forks.
    let safe = SimConfig {
        byzantine: 1,
        allow_unsafe: false,
        ..cfg
    };
    for seed in 0..10 {
        assert!(run(&safe, seed).ok());
    }
}

/// The validity and supply checkers reject a chain that breaks their rules (a checker
/// that cannot fail proves nothing).
#[test]
fn validity_and_supply_checkers_reject_a_doctored_store() {
    use agora_core::state::{keys, Account};
    use agora_storage::{ChainStore, KvStore, MemStore, WriteBatch};
    let cfg = happy(1);
    let genesis = genesis(&cfg);
    let kv = std::sync::Arc::new(MemStore::new());
    let store = ChainStore::open(kv.clone(), &genesis).unwrap();
    let mut pipeline = agora_storage::Pipeline::new(store.clone(), genesis.params()).unwrap();
    let key = validator_key(0);
    for t in 1..=3 {
        let b = pipeline
            .propose(key.account(), t * 1000, 0, vec![])
            .unwrap()
            .block;
        let cert = agora_core::FinalityCert::sign_single(
            genesis.chain_id,
            b.header.height,
            b.hash(),
            &key,
        );
        pipeline.commit(&b.hash(), &cert).unwrap();
    }
    assert!(check::validity(&genesis, 0, &store).is_empty());
    assert!(check::supply(&genesis, 0, &store).is_empty());
    // Mint a rao out of thin air: the supply checker notices.
    let who = user_key(0).account();
    let mut acc = agora_core::state::account(&store, &who).unwrap();
    acc.free += 1;
    let mut batch = WriteBatch::default();
    batch.put(
        agora_storage::tables::Table::State,
        keys::account(&who),
        agora_core::codec::encode_value::<Account>(&acc).unwrap(),
    );
    kv.write(batch).unwrap();
    assert!(!check::supply(&genesis, 0, &store).is_empty());
    // Swap block 2's certificate for one by a non-validator: the validity checker notices.
    let b2 = store.block_by_height(2).unwrap().unwrap();
    let forged = agora_core::FinalityCert::sign_single(
        genesis.chain_id,
        2,
        b2.hash(),
        &Keypair::dev("mallory"),
    );
    let mut batch = WriteBatch::default();
    batch.put(
        agora_storage::tables::Table::Certs,
        agora_storage::tables::height_key(2).to_vec(),
        agora_core::codec::canonical(&forged),
    );
    kv.write(batch).unwrap();
    let v = check::validity(&genesis, 0, &store);
    assert!(v.iter().any(|m| m.contains("not a quorum")), "{v:?}");
}
