use std::collections::BTreeMap;

use super::*;
use crate::amount::RAO_PER_TAO;
use crate::genesis::Genesis;
use crate::ledger::apply_changes;
use crate::state::{account, supply};
use crate::Keypair;

const TAO: u64 = RAO_PER_TAO;

fn genesis_state() -> (BTreeMap<Vec<u8>, Vec<u8>>, SubnetParams) {
    let g = Genesis::dev();
    let mut st = BTreeMap::new();
    apply_changes(&mut st, &g.build().unwrap().changes);
    (st, g.subnets)
}

fn key(name: &str) -> AccountId {
    Keypair::dev(name).account()
}

#[test]
fn register_network_locks_tao_seeds_the_pool_and_makes_the_owner_uid_0() {
    let (st, params) = genesis_state();
    let mut o = Overlay::new(&st);
    let before = account(&o, &key("alice")).unwrap().free;
    let netuid =
        register_network(&mut o, &params, 10, TAO, &key("alice"), &key("alice-hot")).unwrap();
    assert_eq!(netuid, 1);
    let sn = subnet(&o, 1).unwrap().unwrap();
    assert_eq!(sn.lock_rao, params.network_min_lock_rao);
    assert_eq!(
        sn.pool,
        Pool {
            tao: sn.lock_rao,
            alpha: sn.lock_rao
        },
        "first pool starts at 1 TAO/alpha"
    );
    assert_eq!(
        account(&o, &key("alice")).unwrap().free,
        before - sn.lock_rao
    );
    assert_eq!(uid_of(&o, 1, &key("alice-hot")).unwrap(), Some(0));
    assert_eq!(
        hotkey_owner(&o, &key("alice-hot")).unwrap(),
        Some(key("alice"))
    );
    let s = supply(&o).unwrap();
    assert!(s.is_conserved());
    assert_eq!(s.staked, sn.lock_rao);

    // The next lock doubles, then decays by floor(lock / interval) per block.
    let nets = networks(&o).unwrap();
    let interval = params.lock_reduction_interval;
    let per_block = sn.lock_rao / interval;
    assert_eq!(lock_cost(&nets, &params, 10, TAO), 2 * sn.lock_rao);
    assert_eq!(
        lock_cost(&nets, &params, 11, TAO),
        2 * sn.lock_rao - per_block
    );
    assert_eq!(
        lock_cost(&nets, &params, 10 + interval, TAO),
        2 * sn.lock_rao - per_block * interval
    );
    // After a halving the interval halves too, so the price decays twice as fast.
    assert_eq!(
        lock_cost(&nets, &params, 11, TAO / 2),
        2 * sn.lock_rao - sn.lock_rao / (interval / 2)
    );
    assert_eq!(
        lock_cost(&nets, &params, 10 + 10 * interval, TAO),
        params.network_min_lock_rao
    );

    // Rules: rate limit, someone else's hotkey, money.
    let mut strict = params.clone();
    strict.network_rate_limit = 100;
    assert_eq!(
        register_network(&mut o, &strict, 50, TAO, &key("bob"), &key("bob-hot")),
        Err(TxFailure::Rule(SubnetError::NetworkRateLimited {
            next: 110
        }))
    );
    assert_eq!(
        register_network(&mut o, &params, 50, TAO, &key("bob"), &key("alice-hot")),
        Err(TxFailure::Rule(SubnetError::HotkeyOwnedByOther(key(
            "alice-hot"
        ))))
    );
    assert!(matches!(
        register_network(&mut o, &params, 50, TAO, &key("pauper"), &key("pauper-hot")),
        Err(TxFailure::Rule(SubnetError::CannotAfford { .. }))
    ));
    let two = register_network(&mut o, &params, 50, TAO, &key("bob"), &key("bob-hot")).unwrap();
    assert_eq!(two, 2);
}

#[test]
fn start_call_is_owner_only_and_once() {
    let (st, params) = genesis_state();
    let mut o = Overlay::new(&st);
    register_network(&mut o, &params, 1, TAO, &key("alice"), &key("alice-hot")).unwrap();
    assert_eq!(
        start_call(&mut o, 5, &key("bob"), 1),
        Err(TxFailure::Rule(SubnetError::NotSubnetOwner))
    );
    assert_eq!(
        start_call(&mut o, 5, &key("alice"), 9),
        Err(TxFailure::Rule(SubnetError::NoSuchSubnet(9)))
    );
    start_call(&mut o, 5, &key("alice"), 1).unwrap();
    assert_eq!(
        subnet(&o, 1).unwrap().unwrap().first_emission_block,
        Some(6)
    );
    assert_eq!(
        start_call(&mut o, 6, &key("alice"), 1),
        Err(TxFailure::Rule(SubnetError::AlreadyStarted(1)))
    );
}

#[test]
fn burned_register_pays_into_the_pool_and_bumps_the_price() {
    let (st, params) = genesis_state();
    let mut o = Overlay::new(&st);
    register_network(&mut o, &params, 1, TAO, &key("alice"), &key("alice-hot")).unwrap();
    let sn0 = subnet(&o, 1).unwrap().unwrap();
    let before = account(&o, &key("bob")).unwrap().free;
    let (uid, fee) = burned_register(&mut o, 2, &key("bob"), 1, &key("m1"), None).unwrap();
    assert_eq!(uid, 1);
    let sn = subnet(&o, 1).unwrap().unwrap();
    assert_eq!(account(&o, &key("bob")).unwrap().free, before - sn0.burn);
    assert_eq!(sn.pool.tao, sn0.pool.tao + sn0.burn - fee);
    assert!(
        sn.pool.alpha < sn0.pool.alpha,
        "the bought alpha is destroyed"
    );
    assert_eq!(sn.alpha_out, 0);
    assert_eq!(sn.burn, sn0.burn * 126 / 100);
    assert_eq!(sn.n, 2);
    assert_eq!(
        burned_register(&mut o, 3, &key("bob"), 1, &key("m1"), None),
        Err(TxFailure::Rule(SubnetError::AlreadyRegistered(key("m1"))))
    );
    assert_eq!(
        burned_register(&mut o, 3, &key("bob"), 1, &key("m2"), Some(sn.burn - 1)),
        Err(TxFailure::Rule(SubnetError::BurnAboveLimit {
            price: sn.burn,
            limit: sn.burn - 1
        }))
    );
    assert_eq!(
        burned_register(&mut o, 3, &key("bob"), 0, &key("m2"), None),
        Err(TxFailure::Rule(SubnetError::RootNetuid))
    );
}

#[test]
fn a_full_subnet_replaces_its_lowest_emission_non_immune_neuron_never_the_owner() {
    let (st, mut params) = genesis_state();
    params.defaults.max_allowed_uids = 4;
    params.defaults.immunity_period = 10;
    params.defaults.min_non_immune_uids = 0;
    params.defaults.max_burn = TAO;
    let mut o = Overlay::new(&st);
    register_network(&mut o, &params, 1, TAO, &key("alice"), &key("alice-hot")).unwrap();
    for (i, m) in ["m1", "m2", "m3"].iter().enumerate() {
        burned_register(&mut o, 2 + i as u64, &key("bob"), 1, &key(m), None).unwrap();
    }
    // m2 earned least; everyone is past immunity at block 100.
    for (uid, emission) in [(0u16, 0u64), (1, 50), (2, 10), (3, 30)] {
        let mut nr = neuron(&o, 1, uid).unwrap().unwrap();
        nr.emission = emission;
        put_neuron(&mut o, 1, uid, &nr);
    }
    let mut v = neuron(&o, 1, 1).unwrap().unwrap();
    v.weights = vec![(2, 100), (3, 200)];
    put_neuron(&mut o, 1, 1, &v);
    let (uid, _) = burned_register(&mut o, 100, &key("bob"), 1, &key("m4"), None).unwrap();
    assert_eq!(
        uid, 2,
        "lowest emission, and the owner (emission 0) is exempt"
    );
    assert_eq!(uid_of(&o, 1, &key("m2")).unwrap(), None);
    assert_eq!(neuron(&o, 1, 2).unwrap().unwrap().hotkey, key("m4"));
    assert_eq!(
        neuron(&o, 1, 1).unwrap().unwrap().weights,
        vec![(3, 200)],
        "weights to the replaced uid are dropped"
    );
    // Everyone immune right after registering: nobody to replace.
    let mut o2 = Overlay::new(&st);
    register_network(&mut o2, &params, 1, TAO, &key("alice"), &key("alice-hot")).unwrap();
    for m in ["m1", "m2", "m3"] {
        burned_register(&mut o2, 2, &key("bob"), 1, &key(m), None).unwrap();
    }
    let mut strict = subnet(&o2, 1).unwrap().unwrap();
    strict.hyper.min_non_immune_uids = 10;
    put_subnet(&mut o2, &strict);
    let (uid, _) = burned_register(&mut o2, 3, &key("bob"), 1, &key("m4"), None).unwrap();
    assert_ne!(uid, 0, "the owner is never pruned");
}
