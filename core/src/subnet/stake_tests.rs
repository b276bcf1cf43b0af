use std::collections::BTreeMap;

use super::stake::*;
use super::weights::set_weights;
use super::*;
use crate::amount::RAO_PER_TAO;
use crate::genesis::Genesis;
use crate::ledger::apply_changes;
use crate::state::{account, supply};
use crate::Keypair;

const TAO: u64 = RAO_PER_TAO;

fn key(name: &str) -> AccountId {
    Keypair::dev(name).account()
}

/// A started subnet 1 owned by alice (hotkey "owner"), with "val" registered by bob.
fn started() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let g = Genesis::dev();
    let mut st = BTreeMap::new();
    apply_changes(&mut st, &g.build().unwrap().changes);
    let mut o = Overlay::new(&st);
    register_network(&mut o, &g.subnets, 1, TAO, &key("alice"), &key("owner")).unwrap();
    start_call(&mut o, 1, &key("alice"), 1).unwrap();
    burned_register(&mut o, 2, &key("bob"), 1, &key("val"), None).unwrap();
    burned_register(&mut o, 2, &key("bob"), 1, &key("miner"), None).unwrap();
    let changes = o.into_changes();
    apply_changes(&mut st, &changes);
    st
}

#[test]
fn staking_buys_alpha_and_unstaking_sells_it_back_conserving_supply() {
    let st = started();
    let mut o = Overlay::new(&st);
    let before = account(&o, &key("charlie")).unwrap().free;
    let sn0 = subnet(&o, 1).unwrap().unwrap();
    let (alpha, fee) = add_stake(&mut o, &key("charlie"), &key("val"), 1, 10 * TAO, None).unwrap();
    assert!(alpha > 0 && fee > 0);
    assert_eq!(
        account(&o, &key("charlie")).unwrap().free,
        before - 10 * TAO
    );
    assert_eq!(
        stake_of(&o, 1, &key("val"), &key("charlie")).unwrap(),
        alpha
    );
    let sn = subnet(&o, 1).unwrap().unwrap();
    assert_eq!(sn.alpha_out, sn0.alpha_out + alpha);
    assert!(sn.pool.price_rao() > sn0.pool.price_rao());
    let (tao_back, fee2) =
        remove_stake(&mut o, &key("charlie"), &key("val"), 1, alpha, None).unwrap();
    assert!(tao_back < 10 * TAO && tao_back > 9 * TAO, "{tao_back}");
    assert!(fee2 > 0);
    assert_eq!(stake_of(&o, 1, &key("val"), &key("charlie")).unwrap(), 0);
    assert_eq!(
        account(&o, &key("charlie")).unwrap().free,
        before - 10 * TAO + tao_back
    );
    // Supply totals already count both fees as free: the ledger credits them to the proposer.
    let s = supply(&o).unwrap();
    assert!(s.is_conserved());

    assert!(matches!(
        remove_stake(&mut o, &key("charlie"), &key("val"), 1, 1, None),
        Err(TxFailure::Rule(SubnetError::NotEnoughStake { .. }))
    ));
    assert!(matches!(
        add_stake(&mut o, &key("charlie"), &key("val"), 1, 1_000, None),
        Err(TxFailure::Rule(SubnetError::StakeTooSmall { .. }))
    ));
    assert!(matches!(
        add_stake(&mut o, &key("charlie"), &key("nobody"), 1, TAO, None),
        Err(TxFailure::Rule(SubnetError::HotkeyNotFound(_)))
    ));
}

#[test]
fn dividends_to_a_hotkey_grow_every_nominator_pro_rata() {
    let st = started();
    let mut o = Overlay::new(&st);
    let (a, _) = add_stake(&mut o, &key("charlie"), &key("val"), 1, 30 * TAO, None).unwrap();
    let (b, _) = add_stake(&mut o, &key("dave"), &key("val"), 1, 10 * TAO, None).unwrap();
    distribute_to_nominators(&mut o, 1, &key("val"), a + b).unwrap(); // double the pool
    let ca = stake_of(&o, 1, &key("val"), &key("charlie")).unwrap();
    let cb = stake_of(&o, 1, &key("val"), &key("dave")).unwrap();
    assert!(
        ca.abs_diff(2 * a) <= 1 && cb.abs_diff(2 * b) <= 1,
        "{ca} {cb} vs {a} {b}"
    );
}

#[test]
fn set_weights_follows_the_validation_order() {
    let st = started();
    let mut o = Overlay::new(&st);
    // Rate limited right after registration (last_update = registration block 2, limit 5).
    assert!(matches!(
        set_weights(&mut o, 3, &key("val"), 1, &[2], &[1], 0),
        Err(TxFailure::Rule(SubnetError::WeightsRateLimited { next: 7 }))
    ));
    // No permit yet (permits come from the epoch), but a pure self-weight is allowed.
    assert_eq!(
        set_weights(&mut o, 10, &key("val"), 1, &[2], &[1], 0),
        Err(TxFailure::Rule(SubnetError::NoValidatorPermit))
    );
    set_weights(&mut o, 10, &key("val"), 1, &[1], &[7], 0).unwrap();
    // The owner may always set weights.
    set_weights(&mut o, 10, &key("owner"), 1, &[1, 2], &[1, 3], 0).unwrap();
    assert_eq!(
        neuron(&o, 1, 0).unwrap().unwrap().weights,
        vec![(1, 21_845), (2, 65_535)]
    );
    let mut v = neuron(&o, 1, 1).unwrap().unwrap();
    v.validator_permit = true;
    v.last_update = 0;
    put_neuron(&mut o, 1, 1, &v);
    assert_eq!(
        set_weights(&mut o, 20, &key("val"), 1, &[2, 2], &[1, 1], 0),
        Err(TxFailure::Rule(SubnetError::DuplicateUids))
    );
    assert_eq!(
        set_weights(&mut o, 20, &key("val"), 1, &[9], &[1], 0),
        Err(TxFailure::Rule(SubnetError::UnknownUid(9)))
    );
    assert_eq!(
        set_weights(&mut o, 20, &key("val"), 1, &[2], &[1, 2], 0),
        Err(TxFailure::Rule(SubnetError::WeightsLengthMismatch {
            uids: 1,
            values: 2
        }))
    );
    assert_eq!(
        set_weights(&mut o, 20, &key("nobody"), 1, &[2], &[1], 0),
        Err(TxFailure::Rule(SubnetError::NotRegistered(key("nobody"))))
    );
    set_weights(&mut o, 20, &key("val"), 1, &[2], &[5], 0).unwrap();
    assert_eq!(
        neuron(&o, 1, 1).unwrap().unwrap().weights,
        vec![(2, 65_535)]
    );
}

#[test]
fn limit_prices_fill_partially_or_refuse() {
    let st = started();
    let mut o = Overlay::new(&st);
    let price = subnet(&o, 1).unwrap().unwrap().pool.price_rao();
    let tight = Limit {
        price_rao: price + price / 100,
        allow_partial: false,
    };
    assert_eq!(
        add_stake(
            &mut o,
            &key("charlie"),
            &key("val"),
            1,
            500 * TAO,
            Some(tight)
        ),
        Err(TxFailure::Rule(SubnetError::SlippageTooHigh))
    );
    let before = account(&o, &key("charlie")).unwrap().free;
    let partial = Limit {
        allow_partial: true,
        ..tight
    };
    let (alpha, _) = add_stake(
        &mut o,
        &key("charlie"),
        &key("val"),
        1,
        500 * TAO,
        Some(partial),
    )
    .unwrap();
    let spent = before - account(&o, &key("charlie")).unwrap().free;
    assert!(spent < 500 * TAO && alpha > 0, "spent {spent}");
    let after = subnet(&o, 1).unwrap().unwrap().pool.price_rao();
    assert!(
        after <= tight.price_rao + tight.price_rao / 1_000_000 + 2,
        "{after} > {}",
        tight.price_rao
    );
    // Selling with a floor just below the price stops early too.
    let floor = Limit {
        price_rao: after - after / 200,
        allow_partial: true,
    };
    let (tao, _) =
        remove_stake(&mut o, &key("charlie"), &key("val"), 1, alpha, Some(floor)).unwrap();
    assert!(tao > 0);
    assert!(
        stake_of(&o, 1, &key("val"), &key("charlie")).unwrap() > 0,
        "part of the stake stays"
    );
}
