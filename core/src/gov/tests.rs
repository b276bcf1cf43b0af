//! The proposal lifecycle, each voting-power mode on hand-computed examples, delegation
//! with override and stake moving during the vote, and the treasury.
//!
//! The chain: root stakes A-hot 400 TAO (alice), B-hot 300 (bob), C-hot 200 (charlie),
//! D-hot 100 (dave), and eve nominates A-hot with 50. Total stake power 1,050 TAO.

use std::collections::BTreeMap;

use super::*;
use crate::amount::RAO_PER_TAO;
use crate::genesis::Genesis;
use crate::ledger::{apply_changes, apply_coinbase, params_in_force};
use crate::subnet::root::root_register;
use crate::subnet::stake::{add_stake, remove_stake};
use crate::Keypair;

const TAO: u64 = RAO_PER_TAO;

fn key(name: &str) -> AccountId {
    Keypair::dev(name).account()
}

struct Chain {
    st: BTreeMap<Vec<u8>, Vec<u8>>,
    genesis: ChainParams,
    height: u64,
}

impl Chain {
    fn new(gov: GovParams) -> Chain {
        let mut g = Genesis::dev();
        g.gov = gov;
        let mut st = BTreeMap::new();
        apply_changes(&mut st, &g.build().unwrap().changes);
        let mut c = Chain {
            st,
            genesis: g.params(),
            height: 0,
        };
        for (cold, hot, tao) in [
            ("alice", "A-hot", 400),
            ("bob", "B-hot", 300),
            ("charlie", "C-hot", 200),
            ("dave", "D-hot", 100),
        ] {
            c.block(|o, p, now| {
                root_register(o, &p.subnets, now, &key(cold), &key(hot)).unwrap();
                add_stake(o, &key(cold), &key(hot), 0, tao * TAO, None).unwrap();
            });
        }
        c.block(|o, _, _| {
            add_stake(o, &key("eve"), &key("A-hot"), 0, 50 * TAO, None).unwrap();
        });
        c
    }

    fn params(&self) -> ChainParams {
        params_in_force(&self.st, &self.genesis).unwrap()
    }

    /// One block: the coinbase, then `txs` (run under the parameters in force).
    fn block<T>(&mut self, txs: impl FnOnce(&mut Overlay<'_>, &ChainParams, u64) -> T) -> T {
        self.height += 1;
        let mut o = Overlay::new(&self.st);
        apply_coinbase(&mut o, &self.genesis, self.height, &key("producer")).unwrap();
        let params = params_in_force(&o, &self.genesis).unwrap();
        let out = txs(&mut o, &params, self.height);
        assert!(o.take_refused().is_none());
        let changes = o.into_changes();
        apply_changes(&mut self.st, &changes);
        assert!(
            state::supply(&self.st).unwrap().is_conserved(),
            "block {}",
            self.height
        );
        out
    }

    fn until(&mut self, height: u64) {
        while self.height < height {
            self.block(|_, _, _| ());
        }
    }

    fn propose(&mut self, who: &str, action: Action, emergency: bool) -> Result<u64, GovFailure> {
        self.block(|o, p, now| o.atomic(|o| propose(o, p, now, &key(who), action, emergency)))
    }

    fn vote(&mut self, id: u64, votes: &[(&str, Choice)]) -> Vec<Result<(), GovFailure>> {
        self.block(|o, p, now| {
            votes
                .iter()
                .map(|(who, c)| o.atomic(|o| vote(o, p, now, &key(who), id, *c)))
                .collect()
        })
    }

    fn proposal(&self, id: u64) -> Proposal {
        proposal(&self.st, id).unwrap().unwrap()
    }

    fn free(&self, who: &AccountId) -> u64 {
        state::account(&self.st, who).unwrap().free
    }

    /// Run to the tally of `id` and return its status.
    fn close(&mut self, id: u64) -> Status {
        let p = self.proposal(id);
        self.until(p.voting_ends + 1);
        self.proposal(id).status
    }
}

fn fee_change(value: u64) -> Action {
    Action::SetChainParam {
        name: "base_fee_rao".into(),
        value,
    }
}

fn rule(r: Result<impl std::fmt::Debug, GovFailure>) -> GovError {
    match r {
        Err(GovFailure::Rule(e)) => e,
        other => panic!("expected a rule error, got {other:?}"),
    }
}

use Choice::*;

#[test]
fn a_fee_change_passes_and_takes_effect_at_the_announced_block_with_the_deposit_returned() {
    let mut c = Chain::new(GovParams::dev());
    let alice_free = c.free(&key("alice"));
    let id = c.propose("alice", fee_change(5_000_000), false).unwrap();
    let p = c.proposal(id);
    assert_eq!(p.status, Status::Voting);
    assert_eq!(p.voting_ends, p.submitted_at + 20);
    assert_eq!(p.enact_at, p.voting_ends + 5);
    assert_eq!(c.free(&key("alice")), alice_free - 10 * TAO, "deposit held");
    assert_eq!(c.free(&deposit_account()), 10 * TAO);
    c.vote(id, &[("A-hot", Yes), ("B-hot", Yes)]);
    // Stake: yes = 450 + 300 of 1,050.
    assert_eq!(c.close(id), Status::Passed);
    let t = c.proposal(id).tally.unwrap();
    assert_eq!(
        (t.yes, t.no, t.turnout, t.total),
        (750 * TAO, 0, 750 * TAO, 1_050 * TAO)
    );
    assert_eq!(
        c.free(&key("alice")),
        alice_free,
        "deposit returned on passing"
    );
    // Not before the announced block.
    c.until(p.enact_at - 1);
    assert_eq!(c.params().base_fee_rao, 100_000);
    c.until(p.enact_at);
    assert_eq!(
        c.params().base_fee_rao,
        5_000_000,
        "in force from the enactment block"
    );
    assert_eq!(c.proposal(id).status, Status::Enacted { block: p.enact_at });
    assert!(registry(&c.st).unwrap().live.is_empty());
}

#[test]
fn proposing_needs_stake_power_and_a_valid_action() {
    let mut c = Chain::new(GovParams::dev());
    // ferdie holds TAO but no stake.
    assert!(matches!(
        rule(c.propose("ferdie", fee_change(1), false)),
        GovError::NotEnoughStake { has: 0, .. }
    ));
    // eve's 50 TAO nomination is enough with a 1 TAO threshold; a hotkey's delegated stake
    // counts for it too.
    let mut gov = GovParams::dev();
    gov.proposal_min_stake_rao = 100 * TAO;
    let mut c2 = Chain::new(gov);
    assert!(matches!(
        rule(c2.propose("eve", fee_change(1), false)),
        GovError::NotEnoughStake { has, .. } if has == 50 * TAO
    ));
    c2.propose("A-hot", fee_change(1), false).unwrap_err(); // no free TAO for the deposit
    assert_eq!(
        rule(c.propose("alice", fee_change(2_000_000_000_000), false)),
        GovError::ParameterOutOfRange {
            name: "base_fee_rao",
            value: 2_000_000_000_000,
            range: "0..=1000000000000"
        }
    );
    assert!(matches!(
        rule(c.propose(
            "alice",
            Action::SetChainParam {
                name: "chain_id".into(),
                value: 1
            },
            false
        )),
        GovError::UnknownParameter(_)
    ));
    assert!(matches!(
        rule(c.propose("alice", Action::SetValidators { validators: vec![] }, false)),
        GovError::InvalidAction(_)
    ));
}

#[test]
fn no_quorum_rejected_and_vetoed_proposals() {
    let mut c = Chain::new(GovParams::dev());
    let alice_free = c.free(&key("alice"));
    let burned0 = state::supply(&c.st).unwrap().burned;
    // Quorum: D-hot alone is 100 of 1,050 (< 33.4%).
    let a = c.propose("alice", fee_change(1), false).unwrap();
    // Rejected: 450 yes against 500 no.
    let b = c.propose("alice", fee_change(2), false).unwrap();
    // Vetoed: 300 + 200 no-with-veto of 950 cast (> 33.4%).
    let v = c.propose("alice", fee_change(3), false).unwrap();
    c.vote(a, &[("D-hot", Yes)]);
    c.vote(b, &[("A-hot", Yes), ("B-hot", No), ("C-hot", No)]);
    c.vote(
        v,
        &[("A-hot", Yes), ("B-hot", NoWithVeto), ("C-hot", NoWithVeto)],
    );
    assert!(matches!(c.close(a), Status::Rejected { reason } if reason.starts_with("no quorum")));
    assert!(matches!(c.close(b), Status::Rejected { reason } if reason.starts_with("yes")));
    assert_eq!(c.close(v), Status::Vetoed);
    // Two deposits returned, the vetoed one burned.
    assert_eq!(c.free(&key("alice")), alice_free - 10 * TAO);
    assert_eq!(state::supply(&c.st).unwrap().burned, burned0 + 10 * TAO);
    assert_eq!(c.free(&deposit_account()), 0);
    c.until(c.height + 10);
    assert_eq!(c.params().base_fee_rao, 100_000, "nothing enacted");
    // Votes after the end are refused.
    assert!(matches!(
        rule(c.vote(a, &[("B-hot", Yes)]).remove(0)),
        GovError::VotingClosed { .. }
    ));
}

#[test]
fn the_emergency_track_is_shorter_and_needs_two_thirds() {
    let mut c = Chain::new(GovParams::dev());
    let e = c.propose("alice", fee_change(7), true).unwrap();
    let n = c.propose("alice", fee_change(7), false).unwrap();
    let p = c.proposal(e);
    assert_eq!(
        (p.voting_ends - p.submitted_at, p.enact_at - p.voting_ends),
        (5, 1)
    );
    // 450 + 200 yes against 400 no... = 650 / 1,050 = 61.9%: enough for the normal track,
    // not for the emergency one (66.7%).
    for id in [e, n] {
        c.vote(
            id,
            &[("A-hot", Yes), ("C-hot", Yes), ("B-hot", No), ("D-hot", No)],
        );
    }
    assert!(matches!(c.close(e), Status::Rejected { .. }));
    assert_eq!(c.close(n), Status::Passed);
    // With B-hot too, the emergency track passes and (delay 1) is enacted in the very
    // block that tallies it, the first after its vote.
    let e2 = c.propose("alice", fee_change(9), true).unwrap();
    c.vote(e2, &[("A-hot", Yes), ("B-hot", Yes)]);
    let at = c.proposal(e2).voting_ends + 1;
    assert_eq!(c.close(e2), Status::Enacted { block: at });
    assert_eq!(c.height, at);
    assert_eq!(c.params().base_fee_rao, 9);
}

#[test]
fn a_nominator_overrides_its_hotkey_and_power_is_read_when_the_vote_closes() {
    let mut c = Chain::new(GovParams::dev());
    let id = c.propose("alice", fee_change(11), false).unwrap();
    // eve (50 on A-hot) votes no: A-hot keeps 400, eve's 50 count against.
    c.vote(id, &[("A-hot", Yes), ("B-hot", No), ("eve", No)]);
    let p = c.proposal(id);
    let t = tally(&c.st, &c.params(), &p, c.height).unwrap();
    assert_eq!((t.yes, t.no), (400 * TAO, 350 * TAO));
    // Before the vote closes eve stakes 500 more on A-hot: her no now weighs 550, and A-hot
    // still only votes what its other nominators (alice) hold.
    c.block(|o, _, _| {
        add_stake(o, &key("eve"), &key("A-hot"), 0, 500 * TAO, None).unwrap();
    });
    assert!(matches!(c.close(id), Status::Rejected { .. }));
    let t = c.proposal(id).tally.unwrap();
    assert_eq!((t.yes, t.no, t.voters), (400 * TAO, 850 * TAO, 3));
    // And the other way: eve unstakes everything during a vote, and her no weighs nothing.
    let id = c.propose("alice", fee_change(12), false).unwrap();
    c.vote(id, &[("A-hot", Yes), ("B-hot", No), ("eve", No)]);
    c.block(|o, _, _| {
        let alpha = crate::subnet::stake::stake_of(o, 0, &key("A-hot"), &key("eve")).unwrap();
        remove_stake(o, &key("eve"), &key("A-hot"), 0, alpha, None).unwrap();
    });
    assert_eq!(c.close(id), Status::Passed);
    let t = c.proposal(id).tally.unwrap();
    assert_eq!((t.yes, t.no), (400 * TAO, 300 * TAO));
    // A changed vote replaces the earlier one and counts once.
    let id = c.propose("alice", fee_change(13), false).unwrap();
    c.vote(id, &[("B-hot", Yes)]);
    c.vote(id, &[("B-hot", No)]);
    assert_eq!(c.proposal(id).voters, 1);
    assert_eq!(votes(&c.st, id).unwrap(), vec![(key("B-hot"), No)]);
}

fn modes_case(mode: PowerMode, senate_size: u16) -> (Chain, u64) {
    let mut gov = GovParams::dev();
    gov.voting_power = mode;
    gov.senate_size = senate_size;
    let mut c = Chain::new(gov);
    let id = c.propose("alice", fee_change(21), false).unwrap();
    (c, id)
}

#[test]
fn quadratic_voting_on_a_hand_computed_example() {
    // yes = sqrt(400e9) = 632,455; no = sqrt(300e9) + sqrt(50e9) = 547,722 + 223,606.
    let (mut c, id) = modes_case(PowerMode::Quadratic, 12);
    c.vote(id, &[("A-hot", Yes), ("B-hot", No), ("eve", No)]);
    assert!(
        matches!(c.close(id), Status::Rejected { .. }),
        "stake mode would pass it"
    );
    let t = c.proposal(id).tally.unwrap();
    assert_eq!((t.yes, t.no), (632_455, 547_722 + 223_606));
    // The quorum reads linear stake: 750 of 1,050.
    assert_eq!((t.turnout, t.total), (750 * TAO, 1_050 * TAO));
}

#[test]
fn one_vote_per_validator_on_a_hand_computed_example() {
    let (mut c, id) = modes_case(PowerMode::Validator, 12);
    let mut r = c.vote(id, &[("A-hot", Yes), ("B-hot", No), ("eve", No)]);
    assert_eq!(rule(r.remove(2)), GovError::NoVotingPower("validator"));
    // 1 yes, 1 no of 4 seats: turnout 50%, approval 50% is not more than half.
    assert!(matches!(c.close(id), Status::Rejected { .. }));
    let t = c.proposal(id).tally.unwrap();
    assert_eq!((t.yes, t.no, t.turnout, t.total), (1, 1, 2, 4));
    let id = c.propose("alice", fee_change(22), false).unwrap();
    c.vote(id, &[("A-hot", Yes), ("B-hot", Yes), ("D-hot", No)]);
    assert_eq!(c.close(id), Status::Passed);
}

#[test]
fn the_legacy_senate_needs_more_than_half_of_its_seats() {
    // Three seats: A (450), B (300), C (200); D is not a senator.
    let (mut c, id) = modes_case(PowerMode::Senate, 3);
    let mut r = c.vote(id, &[("A-hot", Yes), ("D-hot", Yes)]);
    assert_eq!(rule(r.remove(1)), GovError::NoVotingPower("senate"));
    assert!(
        matches!(c.close(id), Status::Rejected { reason } if reason.contains("1 of 3 senators"))
    );
    let id = c.propose("alice", fee_change(23), false).unwrap();
    c.vote(id, &[("A-hot", Yes), ("C-hot", Yes), ("B-hot", No)]);
    assert_eq!(c.close(id), Status::Passed);
}

#[test]
fn the_treasury_takes_its_share_keeps_supply_conserved_and_pays_only_by_proposal() {
    let mut gov = GovParams::dev();
    gov.treasury_ppm = 100_000; // 10%
    let mut c = Chain::new(gov);
    // Every block so far paid 0.1 TAO of its 1 TAO emission to the treasury.
    let blocks = c.height;
    assert_eq!(c.free(&treasury_account()), blocks * TAO / 10);
    let dest = key("ferdie");
    let before = c.free(&dest);
    let spend = c
        .propose(
            "alice",
            Action::TreasurySpend {
                dest,
                amount: TAO / 2,
            },
            false,
        )
        .unwrap();
    let too_much = c
        .propose(
            "alice",
            Action::TreasurySpend {
                dest,
                amount: 1_000 * TAO,
            },
            false,
        )
        .unwrap();
    for id in [spend, too_much] {
        c.vote(id, &[("A-hot", Yes), ("B-hot", Yes)]);
    }
    let at = c.proposal(too_much).enact_at;
    c.until(at);
    assert_eq!(
        c.proposal(spend).status,
        Status::Enacted {
            block: c.proposal(spend).enact_at
        }
    );
    assert_eq!(c.free(&dest), before + TAO / 2);
    assert!(matches!(
        c.proposal(too_much).status,
        Status::Failed { reason, .. } if reason.contains("treasury holds")
    ));
    assert_eq!(c.free(&treasury_account()), c.height * TAO / 10 - TAO / 2);
    let s = state::supply(&c.st).unwrap();
    assert!(s.is_conserved());
}

#[test]
fn a_hyperparameter_and_a_validator_set_are_enacted_into_state() {
    let mut c = Chain::new(GovParams::dev());
    c.block(|o, p, now| {
        crate::subnet::register_network(o, &p.subnets, now, TAO, &key("bob"), &key("B-owner"))
            .unwrap();
    });
    let hyper = c
        .propose(
            "alice",
            Action::SetHyperparameter {
                netuid: 1,
                name: "kappa".into(),
                value: 40_000,
            },
            false,
        )
        .unwrap();
    let set = vec![(key("bob"), 3), (key("charlie"), 1)];
    let vals = c
        .propose(
            "alice",
            Action::SetValidators {
                validators: set.clone(),
            },
            false,
        )
        .unwrap();
    for id in [hyper, vals] {
        c.vote(id, &[("A-hot", Yes), ("B-hot", Yes)]);
    }
    let e = c.proposal(vals).enact_at;
    c.until(e);
    assert_eq!(
        crate::subnet::subnet(&c.st, 1)
            .unwrap()
            .unwrap()
            .hyper
            .kappa,
        40_000
    );
    let at = |c: &Chain, h: u64| validator_set_at(&c.st, &c.genesis, h).unwrap().unwrap();
    let old = c.genesis.validator_set().unwrap();
    let new = crate::consensus::ValidatorSet::new(
        set.iter()
            .map(|(id, power)| crate::consensus::Validator {
                id: *id,
                power: *power,
            })
            .collect(),
    )
    .unwrap();
    // From the state after E: E + 1 is still certified by the old set, E + 2 by the new.
    assert_eq!((at(&c, e + 1), at(&c, e + 2)), (old.clone(), new.clone()));
    c.until(e + 1);
    assert_eq!((at(&c, e + 1), at(&c, e + 2)), (old, new.clone()));
    assert_eq!(
        c.params().authorities,
        vec![key("alice")],
        "not yet in the parameters"
    );
    c.until(e + 2);
    let p = c.params();
    assert_eq!(p.authorities, vec![key("bob"), key("charlie")]);
    assert_eq!(p.authority_power, vec![3, 1]);
    assert_eq!(at(&c, e + 3), new);
    // The history answers for any height, so old certificates still check.
    let later = c.height + 10;
    c.until(later);
    assert_eq!(
        (at(&c, e + 1), at(&c, e + 2)),
        (c.genesis.validator_set().unwrap(), new)
    );
    assert_eq!(validator_history(&c.st).unwrap().len(), 1);
}

/// The documented layout (docs/wire-format.md): a vote is the common prefix, variant 22,
/// the proposal id and the choice's u32, then the tip.
#[test]
fn a_vote_encodes_as_documented() {
    let tx = crate::Transaction {
        chain_id: 7,
        signer: key("bob"),
        nonce: 3,
        call: crate::Call::Vote {
            proposal: 9,
            choice: Choice::NoWithVeto,
        },
        tip: 5,
    };
    let mut want = 7u64.to_le_bytes().to_vec();
    want.extend_from_slice(&key("bob").0);
    want.extend_from_slice(&3u64.to_le_bytes());
    want.extend_from_slice(&22u32.to_le_bytes());
    want.extend_from_slice(&9u64.to_le_bytes());
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(&5u64.to_le_bytes());
    assert_eq!(crate::codec::canonical(&tx), want);
    let text = crate::Call::Propose {
        action: Action::Text { text: "hi".into() },
        emergency: true,
    };
    let mut want = 21u32.to_le_bytes().to_vec();
    want.extend_from_slice(&4u32.to_le_bytes());
    want.extend_from_slice(&2u64.to_le_bytes());
    want.extend_from_slice(b"hi");
    want.push(1);
    assert_eq!(crate::codec::canonical(&text), want);
}
