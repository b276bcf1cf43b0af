//! Stake moves, root staking, takes, serving, hyperparameter setters and dissolution.

use std::collections::BTreeMap;

use super::root::{root, root_register, root_stake, ROOT};
use super::serve::{serve, serve_info};
use super::stake::*;
use super::*;
use crate::amount::RAO_PER_TAO;
use crate::genesis::{ChainParams, Genesis};
use crate::ledger::apply_changes;
use crate::state::{account, supply};
use crate::Keypair;

const TAO: u64 = RAO_PER_TAO;

fn key(name: &str) -> AccountId {
    Keypair::dev(name).account()
}

/// Subnets 1 (owner alice/"owner") and 2 (owner dave/"owner2"), both started, with "val"
/// and "miner" registered by bob on subnet 1 and "val2" by bob on subnet 2.
fn two_subnets() -> (BTreeMap<Vec<u8>, Vec<u8>>, ChainParams) {
    let g = Genesis::dev();
    let mut st = BTreeMap::new();
    apply_changes(&mut st, &g.build().unwrap().changes);
    let mut o = Overlay::new(&st);
    register_network(&mut o, &g.subnets, 1, TAO, &key("alice"), &key("owner")).unwrap();
    register_network(&mut o, &g.subnets, 2, TAO, &key("dave"), &key("owner2")).unwrap();
    start_call(&mut o, 2, &key("alice"), 1).unwrap();
    start_call(&mut o, 2, &key("dave"), 2).unwrap();
    burned_register(&mut o, 3, &key("bob"), 1, &key("val"), None).unwrap();
    burned_register(&mut o, 3, &key("bob"), 1, &key("miner"), None).unwrap();
    burned_register(&mut o, 3, &key("bob"), 2, &key("val2"), None).unwrap();
    let changes = o.into_changes();
    apply_changes(&mut st, &changes);
    (st, g.params())
}

fn rule<T: std::fmt::Debug>(r: Result<T, TxFailure>) -> SubnetError {
    match r {
        Err(TxFailure::Rule(e)) => e,
        other => panic!("expected a rule error, got {other:?}"),
    }
}

#[test]
fn moving_stake_within_a_subnet_is_a_free_share_transfer() {
    let (st, _) = two_subnets();
    let mut o = Overlay::new(&st);
    let (alpha, _) = add_stake(&mut o, &key("charlie"), &key("val"), 1, 10 * TAO, None).unwrap();
    let pool = subnet(&o, 1).unwrap().unwrap().pool;
    let from = Position {
        netuid: 1,
        hotkey: key("val"),
        coldkey: key("charlie"),
    };
    let to = Position {
        hotkey: key("miner"),
        ..from
    };
    let (moved, fee) = move_position(&mut o, from, to, alpha / 4).unwrap();
    assert_eq!((moved, fee), (alpha / 4, 0));
    assert_eq!(subnet(&o, 1).unwrap().unwrap().pool, pool, "no swap");
    assert_eq!(
        stake_of(&o, 1, &key("miner"), &key("charlie")).unwrap(),
        alpha / 4
    );
    assert_eq!(
        stake_of(&o, 1, &key("val"), &key("charlie")).unwrap(),
        alpha - alpha / 4
    );
    assert_eq!(
        positions(&o, &key("charlie")).unwrap(),
        vec![(1, key("miner")), (1, key("val"))],
        "the coldkey index has both positions, in key order"
    );
    assert_eq!(
        rule(move_position(&mut o, from, from, 1)),
        SubnetError::SamePosition
    );
    assert!(matches!(
        rule(move_position(&mut o, from, to, alpha)),
        SubnetError::NotEnoughStake { .. }
    ));
    // Moving everything away drops the position from the index.
    let rest = stake_of(&o, 1, &key("val"), &key("charlie")).unwrap();
    move_position(&mut o, from, to, rest).unwrap();
    assert_eq!(
        positions(&o, &key("charlie")).unwrap(),
        vec![(1, key("miner"))]
    );
}

#[test]
fn swapping_stake_across_subnets_sells_then_buys_with_one_fee() {
    let (st, _) = two_subnets();
    let mut o = Overlay::new(&st);
    let (alpha, _) = add_stake(&mut o, &key("charlie"), &key("val"), 1, 10 * TAO, None).unwrap();
    let s0 = supply(&o).unwrap();
    let (p1, p2) = (
        subnet(&o, 1).unwrap().unwrap().pool,
        subnet(&o, 2).unwrap().unwrap().pool,
    );
    let from = Position {
        netuid: 1,
        hotkey: key("val"),
        coldkey: key("charlie"),
    };
    let to = Position { netuid: 2, ..from };
    let (got, fee) = move_position(&mut o, from, to, alpha).unwrap();
    assert!(got > 0 && fee > 0);
    let (q1, q2) = (
        subnet(&o, 1).unwrap().unwrap().pool,
        subnet(&o, 2).unwrap().unwrap().pool,
    );
    let sold = p1.tao - q1.tao;
    // One fee, on the sale's proceeds; the buy is fee-free so all the rest enters pool 2.
    assert_eq!(fee, sold * 33 / 65_535);
    assert_eq!(q2.tao - p2.tao, sold - fee);
    assert_eq!(stake_of(&o, 2, &key("val"), &key("charlie")).unwrap(), got);
    let s = supply(&o).unwrap();
    assert_eq!(s.staked, s0.staked - fee, "only the fee leaves the stake");
    // The ledger credits the fee to the proposer; here it is simply out of the stake.
    assert_eq!(s.free, s0.free + fee);
}

#[test]
fn root_stake_is_one_to_one_and_moves_into_subnets_with_the_fee_on_the_buy() {
    let (st, _) = two_subnets();
    let mut o = Overlay::new(&st);
    let before = account(&o, &key("charlie")).unwrap().free;
    let (alpha, fee) =
        add_stake(&mut o, &key("charlie"), &key("val"), ROOT, 50 * TAO, None).unwrap();
    assert_eq!((alpha, fee), (50 * TAO, 0), "root is 1:1 without a fee");
    assert_eq!(
        account(&o, &key("charlie")).unwrap().free,
        before - 50 * TAO
    );
    assert_eq!(root(&o).unwrap().total_stake, 50 * TAO);
    assert_eq!(root_stake(&o, &key("val")).unwrap(), 50 * TAO);
    let from = Position {
        netuid: ROOT,
        hotkey: key("val"),
        coldkey: key("charlie"),
    };
    let (got, fee) = move_position(&mut o, from, Position { netuid: 1, ..from }, 20 * TAO).unwrap();
    assert!(got > 0);
    assert_eq!(
        fee,
        20 * TAO * 33 / 65_535,
        "root origin: the fee is taken on the buy"
    );
    assert_eq!(root(&o).unwrap().total_stake, 30 * TAO);
    let (tao, fee) =
        remove_stake(&mut o, &key("charlie"), &key("val"), ROOT, 30 * TAO, None).unwrap();
    assert_eq!((tao, fee), (30 * TAO, 0));
    assert_eq!(root(&o).unwrap().total_stake, 0);
}

#[test]
fn transfer_stake_gives_a_position_to_another_coldkey_unless_disallowed() {
    let (st, _) = two_subnets();
    let mut o = Overlay::new(&st);
    let (alpha, _) = add_stake(&mut o, &key("charlie"), &key("val"), 1, 10 * TAO, None).unwrap();
    let from = Position {
        netuid: 1,
        hotkey: key("val"),
        coldkey: key("charlie"),
    };
    transfer_stake(&mut o, from, &key("eve"), 1, alpha / 2).unwrap();
    assert_eq!(
        stake_of(&o, 1, &key("val"), &key("eve")).unwrap(),
        alpha / 2
    );
    let mut sn = subnet(&o, 1).unwrap().unwrap();
    sn.hyper.transfer_allowed = false;
    put_subnet(&mut o, &sn);
    assert_eq!(
        rule(transfer_stake(&mut o, from, &key("eve"), 1, 1)),
        SubnetError::TransferDisallowed(1)
    );
}

#[test]
fn unstake_all_sells_every_position_on_the_hotkey() {
    let (st, _) = two_subnets();
    let mut o = Overlay::new(&st);
    let before = account(&o, &key("charlie")).unwrap().free;
    add_stake(&mut o, &key("charlie"), &key("val"), 1, 10 * TAO, None).unwrap();
    add_stake(&mut o, &key("charlie"), &key("val"), ROOT, 5 * TAO, None).unwrap();
    add_stake(&mut o, &key("charlie"), &key("miner"), 1, 3 * TAO, None).unwrap();
    let (tao, fee) = unstake_all(&mut o, &key("charlie"), &key("val")).unwrap();
    assert!(tao > 14 * TAO && fee > 0, "{tao}");
    assert_eq!(stake_of(&o, 1, &key("val"), &key("charlie")).unwrap(), 0);
    assert_eq!(root_stake(&o, &key("val")).unwrap(), 0);
    assert!(
        stake_of(&o, 1, &key("miner"), &key("charlie")).unwrap() > 0,
        "other hotkeys stay"
    );
    assert!(account(&o, &key("charlie")).unwrap().free < before);
    assert_eq!(
        rule(unstake_all(&mut o, &key("charlie"), &key("val"))),
        SubnetError::NoStakeOnHotkey(key("val"))
    );
}

#[test]
fn takes_go_up_slowly_and_down_freely_by_the_owner_only() {
    let (st, params) = two_subnets();
    let p = &params.subnets;
    let mut o = Overlay::new(&st);
    assert_eq!(take_of(&o, &key("val")).unwrap(), 11_796);
    assert_eq!(
        rule(change_take(
            &mut o,
            p,
            10,
            &key("eve"),
            &key("val"),
            100,
            false
        )),
        SubnetError::NotHotkeyOwner(key("val"))
    );
    assert_eq!(
        rule(change_take(
            &mut o,
            p,
            10,
            &key("bob"),
            &key("val"),
            11_796,
            true
        )),
        SubnetError::TakeNotIncreasing { current: 11_796 }
    );
    change_take(&mut o, p, 10, &key("bob"), &key("val"), 1_000, false).unwrap();
    assert_eq!(take_of(&o, &key("val")).unwrap(), 1_000);
    assert_eq!(
        rule(change_take(
            &mut o,
            p,
            11,
            &key("bob"),
            &key("val"),
            2_000,
            true
        )),
        SubnetError::TakeRateLimited {
            next: 10 + p.take_rate_limit
        }
    );
    let later = 10 + p.take_rate_limit;
    assert_eq!(
        rule(change_take(
            &mut o,
            p,
            later,
            &key("bob"),
            &key("val"),
            11_797,
            true
        )),
        SubnetError::TakeOutOfRange {
            min: 0,
            max: 11_796
        }
    );
    change_take(&mut o, p, later, &key("bob"), &key("val"), 5_000, true).unwrap();
    assert_eq!(take_of(&o, &key("val")).unwrap(), 5_000);
}

#[test]
fn root_registration_is_one_per_block_and_a_full_root_replaces_its_smallest_member() {
    let (st, mut params) = two_subnets();
    params.subnets.root_max_uids = 2;
    let p = &params.subnets;
    let mut o = Overlay::new(&st);
    root_register(&mut o, p, 10, &key("bob"), &key("val")).unwrap();
    assert_eq!(
        rule(root_register(&mut o, p, 10, &key("bob"), &key("val2"))),
        SubnetError::RootRegistrationsPerBlock
    );
    root_register(&mut o, p, 11, &key("bob"), &key("val2")).unwrap();
    add_stake(&mut o, &key("bob"), &key("val"), ROOT, 10 * TAO, None).unwrap();
    // "miner" has no root stake: it cannot displace val2 (0 stake, not strictly more).
    assert_eq!(
        rule(root_register(&mut o, p, 12, &key("bob"), &key("miner"))),
        SubnetError::RootFull { needed: 0 }
    );
    add_stake(&mut o, &key("bob"), &key("miner"), ROOT, TAO, None).unwrap();
    root_register(&mut o, p, 13, &key("bob"), &key("miner")).unwrap();
    let members: Vec<AccountId> = root(&o).unwrap().members.iter().map(|m| m.hotkey).collect();
    assert_eq!(members, vec![key("val"), key("miner")]);
    assert_eq!(
        rule(root_register(&mut o, p, 14, &key("eve"), &key("val"))),
        SubnetError::AlreadyRegistered(key("val"))
    );
}

#[test]
fn serve_stores_addresses_for_registered_hotkeys_with_a_rate_limit() {
    let (st, _) = two_subnets();
    let mut o = Overlay::new(&st);
    let addrs = vec!["/ip4/127.0.0.1/tcp/4001".to_string()];
    assert_eq!(
        rule(serve(&mut o, 10, &key("eve"), 1, &addrs)),
        SubnetError::NotRegistered(key("eve"))
    );
    serve(&mut o, 10, &key("val"), 1, &addrs).unwrap();
    assert_eq!(
        serve_info(&o, 1, &key("val")).unwrap().unwrap().addrs,
        addrs
    );
    assert_eq!(
        rule(serve(&mut o, 12, &key("val"), 1, &addrs)),
        SubnetError::ServeRateLimited { next: 15 }
    );
    assert!(matches!(
        rule(serve(&mut o, 20, &key("val"), 1, &[])),
        SubnetError::BadServeAddress(_)
    ));
    serve(&mut o, 20, &key("val"), 1, &["/dns4/a.b/tcp/1".to_string()]).unwrap();
}

#[test]
fn owners_set_hyperparameters_within_ranges_outside_the_freeze_window_and_rate_limit() {
    let (st, params) = two_subnets();
    let mut o = Overlay::new(&st);
    let sn = subnet(&o, 1).unwrap().unwrap();
    let tempo = sn.hyper.tempo; // dev: 30
    let next_epoch = sn.last_epoch_block + tempo;
    let open = next_epoch - params.subnets.admin_freeze_window - 1;
    let set = |o: &mut Overlay<'_>, who: &str, now: u64, name: &str, v: u64| {
        admin::set_hyperparameter(o, &params, now, &key(who), 1, name, v)
    };
    assert_eq!(
        rule(set(&mut o, "bob", open, "kappa", 1)),
        SubnetError::NotSubnetOwner
    );
    assert_eq!(
        rule(set(&mut o, "alice", open, "nonsense", 1)),
        SubnetError::UnknownHyperparameter("nonsense".into())
    );
    // alice is the dev chain's admin too; dave owns subnet 2 and is only its owner.
    let set2 = |o: &mut Overlay<'_>, now: u64, name: &str, v: u64| {
        admin::set_hyperparameter(o, &params, now, &key("dave"), 2, name, v)
    };
    let sn2 = subnet(&o, 2).unwrap().unwrap();
    let open2 = sn2.last_epoch_block + tempo - params.subnets.admin_freeze_window - 1;
    assert_eq!(
        rule(set2(&mut o, open2, "kappa", 1)),
        SubnetError::AdminOnlyHyperparameter("kappa")
    );
    assert!(matches!(
        rule(set2(&mut o, open2, "tempo", 100)),
        SubnetError::HyperparameterOutOfRange { name: "tempo", .. }
    ));
    assert!(matches!(
        rule(set2(&mut o, open2, "yuma3", 2)),
        SubnetError::HyperparameterOutOfRange { .. }
    ));
    assert_eq!(
        rule(set2(&mut o, open2 + 2, "immunity_period", 7)),
        SubnetError::AdminFreezeWindow {
            epoch: sn2.last_epoch_block + tempo
        }
    );
    set2(&mut o, open2, "immunity_period", 7).unwrap();
    assert_eq!(subnet(&o, 2).unwrap().unwrap().hyper.immunity_period, 7);
    assert_eq!(
        rule(set2(&mut o, open2 + 1, "immunity_period", 8)),
        SubnetError::HyperparameterRateLimited {
            name: "immunity_period",
            next: open2 + 2 * tempo
        }
    );
    // Another parameter is not limited by the first one's change.
    set2(&mut o, open2, "commit_reveal", 1).unwrap();
    assert!(subnet(&o, 2).unwrap().unwrap().hyper.commit_reveal);
    // The admin sets anything, any time, with wider ranges; a new tempo restarts the cycle.
    set(&mut o, "alice", next_epoch, "kappa", 40_000).unwrap();
    set(&mut o, "alice", next_epoch, "tempo", 10).unwrap();
    let sn = subnet(&o, 1).unwrap().unwrap();
    assert_eq!((sn.hyper.kappa, sn.hyper.tempo), (40_000, 10));
    assert_eq!(sn.last_epoch_block, next_epoch);
}

/// Every row the subnet `netuid` owns, of every per-subnet kind.
fn rows_of(st: &BTreeMap<Vec<u8>, Vec<u8>>, netuid: Netuid) -> usize {
    [b'u', b'h', b'k', b'x', b'c', b'v', b'e', b'y']
        .iter()
        .map(|kind| {
            let mut prefix = vec![*kind];
            prefix.extend_from_slice(&netuid.to_be_bytes());
            st.scan_prefix(&prefix).unwrap().len()
        })
        .sum()
}

#[test]
fn dissolving_pays_every_staker_over_blocks_within_the_row_budget_then_frees_the_netuid() {
    let (mut st, params) = two_subnets();
    let mut o = Overlay::new(&st);
    add_stake(&mut o, &key("charlie"), &key("val"), 1, 30 * TAO, None).unwrap();
    add_stake(&mut o, &key("eve"), &key("val"), 1, 10 * TAO, None).unwrap();
    add_stake(&mut o, &key("eve"), &key("val"), 2, 10 * TAO, None).unwrap();
    serve(&mut o, 5, &key("val"), 1, &["/ip4/127.0.0.1/tcp/1".into()]).unwrap();
    // 600 more stakers: more positions than two blocks' budget.
    let many: Vec<AccountId> = (0..600).map(|i| key(&format!("staker{i}"))).collect();
    for (i, c) in many.iter().enumerate() {
        let mut alice = account(&o, &key("alice")).unwrap();
        alice.free -= TAO;
        crate::state::put_account(&mut o, &key("alice"), &alice);
        crate::state::put_account(
            &mut o,
            c,
            &crate::state::Account {
                free: TAO,
                nonce: 0,
            },
        );
        let hotkey = if i % 2 == 0 { key("val") } else { key("miner") };
        add_stake(&mut o, c, &hotkey, 1, TAO / 2, None).unwrap();
    }
    let changes = o.into_changes();
    apply_changes(&mut st, &changes);
    let stakers: Vec<(AccountId, AccountId)> =
        [(key("charlie"), key("val")), (key("eve"), key("val"))]
            .into_iter()
            .chain(
                many.iter()
                    .enumerate()
                    .map(|(i, c)| (*c, if i % 2 == 0 { key("val") } else { key("miner") })),
            )
            .collect();
    let before: Vec<(u64, u64)> = stakers
        .iter()
        .map(|(c, h)| {
            (
                account(&st, c).unwrap().free,
                stake_of(&st, 1, h, c).unwrap(),
            )
        })
        .collect();
    let sn = subnet(&st, 1).unwrap().unwrap();
    let s0 = supply(&st).unwrap();
    let rows0 = rows_of(&st, 1);
    assert!(rows0 > 2 * dissolve::DISSOLVE_ROWS_PER_BLOCK);

    // The transaction: constant work, whatever the number of stakers.
    let mut o = Overlay::new(&st);
    let d = dissolve::dissolve(&mut o, 1, 10).unwrap();
    assert!(o.changes().len() <= 3, "{} writes", o.changes().len());
    assert_eq!(d.pot, sn.pool.tao + sn.pending_tao);
    let changes = o.into_changes();
    apply_changes(&mut st, &changes);
    assert_eq!(subnet(&st, 1).unwrap(), None, "out of the registry at once");
    assert_eq!(networks(&st).unwrap().netuids, vec![2]);
    let mut o = Overlay::new(&st);
    assert_eq!(
        rule(add_stake(
            &mut o,
            &key("charlie"),
            &key("val"),
            1,
            TAO,
            None
        )),
        SubnetError::NoSuchSubnet(1)
    );
    // Unstaking everything on the hotkey skips the dissolving subnet (paid by the
    // coinbase) and sells eve's position on subnet 2.
    let e0 = account(&o, &key("eve")).unwrap().free;
    unstake_all(&mut o, &key("eve"), &key("val")).unwrap();
    assert!(account(&o, &key("eve")).unwrap().free > e0);
    assert_eq!(stake_of(&o, 2, &key("val"), &key("eve")).unwrap(), 0);
    drop(o);
    assert!(supply(&st).unwrap().is_conserved());

    // The coinbase's share, block by block.
    let mut blocks = 0;
    let finished = loop {
        let mut o = Overlay::new(&st);
        let done = dissolve::step(&mut o).unwrap();
        let changes = o.into_changes();
        apply_changes(&mut st, &changes);
        blocks += 1;
        let left = rows_of(&st, 1);
        assert!(supply(&st).unwrap().is_conserved(), "block {blocks}");
        if let Some(f) = done.first() {
            assert_eq!(left, 0);
            break f.clone();
        }
        assert!(left > 0 && left < rows0, "block {blocks}: {left} rows left");
        assert!(blocks < 20);
    };
    assert_eq!(
        blocks,
        rows0.div_ceil(dissolve::DISSOLVE_ROWS_PER_BLOCK),
        "every block but the last used its whole budget"
    );
    assert_eq!(finished.netuid, 1);
    assert_eq!(finished.paid + finished.recycled, d.pot);
    let mut paid = 0;
    for ((c, _), (free0, alpha)) in stakers.iter().zip(&before) {
        let got = account(&st, c).unwrap().free - free0;
        assert_eq!(got, d.payout(*alpha), "floor of the pro-rata share");
        paid += got;
    }
    assert_eq!(paid, finished.paid);
    // Pro rata to alpha value: the payout ratio is the alpha ratio, to a rao.
    let ((ac, ae), (gc, ge)) = (
        (before[0].1, before[1].1),
        (d.payout(before[0].1), d.payout(before[1].1)),
    );
    assert!(
        ae > 0
            && (u128::from(gc) * u128::from(ae)).abs_diff(u128::from(ge) * u128::from(ac))
                <= u128::from(ac.max(ae))
    );
    // The protocol's share (pool alpha plus protocol alpha) and the dust are recycled.
    let protocol = d.payout(sn.pool.alpha + sn.protocol_alpha);
    assert!(
        finished.recycled >= protocol && finished.recycled <= protocol + stakers.len() as u64 + 1
    );
    let s = supply(&st).unwrap();
    assert!(s.is_conserved());
    assert_eq!(s.issued, s0.issued - finished.recycled);
    assert_eq!(s.staked, s0.staked - d.pot);
    assert!(dissolve::dissolving(&st).unwrap().is_empty());
    assert_eq!(positions(&st, &key("eve")).unwrap(), vec![(2, key("val"))]);
    assert_eq!(positions(&st, &key("charlie")).unwrap(), vec![]);
    assert_eq!(positions(&st, &many[0]).unwrap(), vec![]);
    // The netuid is free again.
    let mut o = Overlay::new(&st);
    let later = 20 + params.subnets.network_rate_limit;
    let netuid = register_network(
        &mut o,
        &params.subnets,
        later,
        TAO,
        &key("eve"),
        &key("eve-hot"),
    )
    .unwrap();
    assert_eq!(netuid, 1);
}

#[test]
fn a_full_registry_prunes_the_lowest_priced_subnet_past_its_immunity() {
    let (st, mut params) = two_subnets();
    params.subnets.subnet_limit = 2;
    let p = &params.subnets;
    let mut o = Overlay::new(&st);
    let mut sn2 = subnet(&o, 2).unwrap().unwrap();
    sn2.ema_price_rao /= 2;
    put_subnet(&mut o, &sn2);
    let early = 10;
    assert_eq!(
        rule(register_network(
            &mut o,
            p,
            early,
            TAO,
            &key("eve"),
            &key("eve-hot")
        )),
        SubnetError::NoSubnetToPrune,
        "both subnets are still immune"
    );
    let later = 2 + p.network_immunity_period;
    let netuid = register_network(&mut o, p, later, TAO, &key("eve"), &key("eve-hot")).unwrap();
    assert_eq!(
        netuid, 3,
        "the cheaper subnet 2 is being dissolved: its netuid stays reserved until its rows are gone"
    );
    assert_eq!(networks(&o).unwrap().netuids, vec![1, 3]);
    assert_eq!(subnet(&o, 2).unwrap(), None);
    let sn = subnet(&o, 3).unwrap().unwrap();
    assert_eq!(sn.owner_coldkey, key("eve"));
    assert_eq!(sn.n, 1);
    assert_eq!(dissolve::dissolving(&o).unwrap()[0].netuid, 2);
    dissolve::step(&mut o).unwrap();
    assert_eq!(uid_of(&o, 2, &key("val2")).unwrap(), None);
    assert!(dissolve::dissolving(&o).unwrap().is_empty());
    assert!(supply(&o).unwrap().is_conserved());
}
