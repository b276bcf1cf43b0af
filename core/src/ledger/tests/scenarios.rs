//! Market scenarios on whole blocks: price-driven emission shares, commit-reveal, root
//! stake and its dividends, and the legacy `root_weights` emission mode.

use super::*;
use crate::codec::encode_value;
use crate::subnet::{self, root, stake, weights, EmissionMode};

const TAO: u64 = 1_000_000_000;

fn k(name: &str) -> Keypair {
    Keypair::dev(name)
}

fn hk(name: &str) -> AccountId {
    k(name).account()
}

/// A chain whose calls are signed with the signers' next nonces.
struct Market {
    c: Chain,
}

impl Market {
    fn new(tune: impl FnOnce(&mut ChainParams)) -> Self {
        let mut c = Chain::dev();
        tune(&mut c.params);
        Market { c }
    }

    fn signed(&self, calls: Vec<(&str, Call)>) -> Vec<SignedTransaction> {
        let mut used = BTreeMap::<AccountId, u64>::new();
        calls
            .into_iter()
            .map(|(who, call)| {
                let key = k(who);
                let n = used.entry(key.account()).or_insert(0);
                let tx = Transaction {
                    chain_id: self.c.params.chain_id,
                    signer: key.account(),
                    nonce: self.c.acc(&key).nonce + *n,
                    call,
                    tip: 0,
                }
                .sign(&key);
                *n += 1;
                tx
            })
            .collect()
    }

    /// One block with these calls, all of which must be included.
    fn ok(&mut self, calls: Vec<(&str, Call)>) {
        let txs = self.signed(calls);
        let rejected = self.c.produce(txs);
        assert!(rejected.is_empty(), "{rejected:?}");
    }

    /// One block with a call that must fail; returns its error kind.
    fn fails(&mut self, who: &str, call: Call) -> &'static str {
        let txs = self.signed(vec![(who, call)]);
        let rejected = self.c.produce(txs);
        assert_eq!(rejected.len(), 1);
        rejected[0].1.kind()
    }

    fn idle(&mut self, blocks: u64) {
        for _ in 0..blocks {
            self.c.produce(vec![]);
        }
    }

    fn sn(&self, netuid: u16) -> subnet::Subnet {
        subnet::subnet(&self.c.state, netuid).unwrap().unwrap()
    }

    fn until_epoch(&mut self, netuid: u16, index: u64) {
        while self.sn(netuid).epoch_index < index {
            self.c.produce(vec![]);
        }
    }

    fn put_subnet(&mut self, sn: &subnet::Subnet) {
        self.c
            .state
            .insert(subnet::keys::subnet(sn.netuid), encode_value(sn).unwrap());
    }
}

/// Subnets 1 (owner charlie, hotkey "own1") and 2 (owner dave, "own2"), started, with
/// validator `v{n}` (bob) and miners `m{n}a`, `m{n}b` (eve) on each.
fn two_subnets(m: &mut Market) {
    m.ok(vec![(
        "charlie",
        Call::RegisterNetwork { hotkey: hk("own1") },
    )]);
    m.ok(vec![("dave", Call::RegisterNetwork { hotkey: hk("own2") })]);
    m.ok(vec![
        ("charlie", Call::StartCall { netuid: 1 }),
        ("dave", Call::StartCall { netuid: 2 }),
    ]);
    for n in [1u16, 2] {
        let reg = |h: String| Call::BurnedRegister {
            netuid: n,
            hotkey: hk(&h),
        };
        m.ok(vec![
            ("bob", reg(format!("v{n}"))),
            ("eve", reg(format!("m{n}a"))),
            ("eve", reg(format!("m{n}b"))),
        ]);
    }
}

#[test]
fn stake_flowing_into_one_subnet_raises_its_price_and_then_its_emission_share() {
    let mut m = Market::new(|p| {
        // A fast price EMA (0.2 per block, no ramp) so the effect shows within a test.
        p.subnets.ema_alpha_ppb = 200_000_000;
        p.subnets.ema_halving_blocks = 1;
    });
    two_subnets(&mut m);
    // Both pools at 0.5 TAO per alpha (below the EMA's 1 TAO cap), EMAs equal.
    for n in [1u16, 2] {
        let mut sn = m.sn(n);
        sn.pool.alpha = sn.pool.tao * 2;
        sn.ema_price_rao = TAO / 2;
        m.put_subnet(&sn);
    }
    let tao_in = |m: &mut Market| {
        let before = (m.sn(1).pool.tao, m.sn(2).pool.tao);
        m.idle(1);
        (m.sn(1).pool.tao - before.0, m.sn(2).pool.tao - before.1)
    };
    let (a, b) = tao_in(&mut m);
    assert!(
        a.abs_diff(b) <= 1,
        "equal EMAs split the emission evenly: {a} vs {b}"
    );
    // Stakers pour 200 TAO into subnet 1.
    m.ok(vec![(
        "ferdie",
        Call::AddStake {
            hotkey: hk("v1"),
            netuid: 1,
            amount: 200 * TAO,
        },
    )]);
    assert!(m.sn(1).pool.price_rao() > m.sn(2).pool.price_rao());
    m.idle(20);
    let (s1, s2) = (m.sn(1), m.sn(2));
    assert!(
        s1.ema_price_rao > s2.ema_price_rao,
        "{} vs {}",
        s1.ema_price_rao,
        s2.ema_price_rao
    );
    let (a, b) = tao_in(&mut m);
    assert!(
        a > b * 3 / 2,
        "subnet 1 now takes the larger share: {a} vs {b}"
    );
    let share = a as f64 / (a + b) as f64;
    let ema_share = s1.ema_price_rao as f64 / (s1.ema_price_rao + s2.ema_price_rao) as f64;
    assert!(
        (share - ema_share).abs() < 0.01,
        "{share} vs EMA share {ema_share}"
    );
}

#[test]
fn commit_reveal_hides_weights_until_the_reveal_epoch_and_rejects_a_wrong_salt() {
    let mut m = Market::new(|p| {
        p.subnets.defaults.tempo = 6;
        p.subnets.defaults.weights_rate_limit = 1;
        p.subnets.admin_freeze_window = 2;
    });
    two_subnets(&mut m);
    m.ok(vec![
        (
            "charlie",
            Call::SetHyperparameter {
                netuid: 1,
                name: "commit_reveal".into(),
                value: 1,
            },
        ),
        (
            "bob",
            Call::AddStake {
                hotkey: hk("v1"),
                netuid: 1,
                amount: 100 * TAO,
            },
        ),
    ]);
    let now = m.sn(1).epoch_index;
    m.until_epoch(1, now + 1); // v1 earns its validator permit
    let set = Call::SetWeights {
        netuid: 1,
        uids: vec![3],
        values: vec![1],
        version_key: 0,
    };
    assert_eq!(m.fails("v1", set), "commit_reveal_enabled");
    let (uids, values, salt) = (vec![3u16], vec![1u16], vec![7u16, 8]);
    let hash = weights::commit_hash(&hk("v1"), 1, &uids, &values, &salt, 0);
    m.ok(vec![("v1", Call::CommitWeights { netuid: 1, hash })]);
    let committed_in = m.sn(1).epoch_index;
    let reveal = |salt: Vec<u16>| Call::RevealWeights {
        netuid: 1,
        uids: uids.clone(),
        values: values.clone(),
        salt,
        version_key: 0,
    };
    assert_eq!(m.fails("v1", reveal(salt.clone())), "reveal_too_early");
    assert!(
        subnet::neuron(&m.c.state, 1, 1)
            .unwrap()
            .unwrap()
            .weights
            .is_empty(),
        "nothing is visible before the reveal"
    );
    m.until_epoch(1, committed_in + 1);
    // The epoch ran with the weights still hidden: no miner earned incentive.
    assert_eq!(
        subnet::neuron(&m.c.state, 1, 3).unwrap().unwrap().incentive,
        0
    );
    assert_eq!(m.fails("v1", reveal(vec![7, 9])), "no_matching_commit");
    m.ok(vec![("v1", reveal(salt.clone()))]);
    assert_eq!(
        subnet::neuron(&m.c.state, 1, 1).unwrap().unwrap().weights,
        vec![(3, u16::MAX)]
    );
    assert!(weights::commits(&m.c.state, 1, &hk("v1"))
        .unwrap()
        .is_empty());
    m.until_epoch(1, committed_in + 2);
    assert_eq!(
        subnet::neuron(&m.c.state, 1, 3).unwrap().unwrap().incentive,
        u16::MAX,
        "the revealed weights pay m1b"
    );
    // A commit not revealed in its reveal epoch expires.
    let hash = weights::commit_hash(&hk("v1"), 1, &uids, &values, &salt, 0);
    m.ok(vec![("v1", Call::CommitWeights { netuid: 1, hash })]);
    let e = m.sn(1).epoch_index;
    m.until_epoch(1, e + 2);
    assert_eq!(m.fails("v1", reveal(salt)), "reveal_expired");
}

#[test]
fn root_stake_counts_in_stake_weight_and_earns_root_dividends() {
    let mut m = Market::new(|p| {
        p.subnets.defaults.tempo = 6;
        p.subnets.defaults.weights_rate_limit = 1;
    });
    two_subnets(&mut m);
    // ferdie nominates v1 on root only: v1 has no alpha stake at all.
    m.ok(vec![
        (
            "ferdie",
            Call::AddStake {
                hotkey: hk("v1"),
                netuid: 0,
                amount: 1_000 * TAO,
            },
        ),
        ("bob", Call::RootRegister { hotkey: hk("v1") }),
    ]);
    assert_eq!(
        m.fails(
            "v1",
            Call::SetWeights {
                netuid: 0,
                uids: vec![1],
                values: vec![1],
                version_key: 0
            }
        ),
        "root_weights_disabled"
    );
    let e = m.sn(1).epoch_index;
    m.until_epoch(1, e + 1);
    let v1 = subnet::neuron(&m.c.state, 1, 1).unwrap().unwrap();
    assert!(v1.validator_permit && v1.stake_weight > 0, "{v1:?}");
    m.ok(vec![(
        "v1",
        Call::SetWeights {
            netuid: 1,
            uids: vec![2, 3],
            values: vec![1, 1],
            version_key: 0,
        },
    )]);
    assert!(
        m.sn(1).pending_root > 0,
        "root's share of the validator emission waits"
    );
    let before = stake::stake_of(&m.c.state, 0, &hk("v1"), &hk("ferdie")).unwrap();
    let root_before = root::root(&m.c.state).unwrap().total_stake;
    let e = m.sn(1).epoch_index;
    m.until_epoch(1, e + 2);
    let after = stake::stake_of(&m.c.state, 0, &hk("v1"), &hk("ferdie")).unwrap();
    assert!(
        after > before,
        "root dividends compound as root stake: {before} -> {after}"
    );
    assert_eq!(
        root::root(&m.c.state).unwrap().total_stake - root_before,
        after - before,
        "ferdie is v1's only root nominator"
    );
    assert!(
        stake::stake_of(&m.c.state, 1, &hk("v1"), &hk("bob")).unwrap() > 0,
        "the take is paid to the hotkey's owner as subnet alpha"
    );
}

#[test]
fn legacy_root_weights_mode_pays_subnets_by_root_weights() {
    let mut m = Market::new(|p| {
        p.subnets.emission_mode = EmissionMode::RootWeights;
        p.subnets.root_tempo = 5;
        p.subnets.defaults.tempo = 10;
        p.subnets.defaults.weights_rate_limit = 1;
    });
    two_subnets(&mut m);
    // Validators' stake in legacy mode is TAO on root.
    m.ok(vec![
        ("bob", Call::RootRegister { hotkey: hk("v1") }),
        (
            "ferdie",
            Call::AddStake {
                hotkey: hk("v1"),
                netuid: 0,
                amount: 1_000 * TAO,
            },
        ),
        (
            "ferdie",
            Call::AddStake {
                hotkey: hk("v2"),
                netuid: 0,
                amount: 500 * TAO,
            },
        ),
    ]);
    m.ok(vec![(
        "v1",
        Call::SetWeights {
            netuid: 0,
            uids: vec![1, 2],
            values: vec![3, 1],
            version_key: 0,
        },
    )]);
    while root::root(&m.c.state).unwrap().emission_ppb.is_empty() {
        m.idle(1);
    }
    let ppb = root::root(&m.c.state).unwrap().emission_ppb;
    assert_eq!(ppb.len(), 2);
    let (p1, p2) = (ppb[0].1, ppb[1].1);
    assert!(
        p1.abs_diff(3 * p2) <= 3,
        "3:1 root weights give a 3:1 split: {ppb:?}"
    );
    // Each subnet's validators weight their miners; owners are paid 18% as free TAO.
    let owners = (m.c.acc(&k("charlie")).free, m.c.acc(&k("dave")).free);
    let (e1, e2) = (m.sn(1).epoch_index, m.sn(2).epoch_index);
    m.until_epoch(1, e1 + 1);
    m.until_epoch(2, e2 + 1);
    let weights = |n: u16| Call::SetWeights {
        netuid: n,
        uids: vec![2],
        values: vec![1],
        version_key: 0,
    };
    m.ok(vec![("v1", weights(1)), ("v2", weights(2))]);
    let (e1, e2) = (m.sn(1).epoch_index, m.sn(2).epoch_index);
    let start = (m.c.acc(&k("charlie")).free, m.c.acc(&k("dave")).free);
    let start_root = (
        root::root_stake(&m.c.state, &hk("m1a")).unwrap(),
        root::root_stake(&m.c.state, &hk("m2a")).unwrap(),
    );
    m.until_epoch(1, e1 + 10);
    m.until_epoch(2, e2 + 10);
    let got = (
        m.c.acc(&k("charlie")).free - start.0,
        m.c.acc(&k("dave")).free - start.1,
    );
    assert!(owners.0 <= start.0 && got.0 > 0 && got.1 > 0);
    let ratio = got.0 as f64 / got.1 as f64;
    assert!(
        (2.7..3.3).contains(&ratio),
        "owner cuts follow the root weights: {ratio}"
    );
    let miners = (
        root::root_stake(&m.c.state, &hk("m1a")).unwrap() - start_root.0,
        root::root_stake(&m.c.state, &hk("m2a")).unwrap() - start_root.1,
    );
    assert!(
        miners.0 > miners.1 && miners.1 > 0,
        "incentive is paid as root TAO stake: {miners:?}"
    );
    for n in [1u16, 2] {
        let sn = m.sn(n);
        assert_eq!(
            (sn.pending_server, sn.pending_validator, sn.pending_owner),
            (0, 0, 0),
            "no alpha is minted in root_weights mode"
        );
    }
    assert!(supply(&m.c.state).unwrap().is_conserved());
}
