//! The machine's rules one by one, driven by hand: validator 0 is the machine under test,
//! the others are keys the test signs with.

use super::*;
use crate::block::{Block, FinalityCert, Header};
use crate::crypto::{AccountId, Hash, Keypair};

const CHAIN: u64 = 7;

struct Fixture {
    keys: Vec<Keypair>,
    set: ValidatorSet,
    m: Machine,
}

fn timeouts() -> Timeouts {
    Timeouts::for_block_time(100)
}

/// Validators sorted by id, with the given powers; the machine runs as `me`.
fn fixture(powers: &[u64], me: usize) -> Fixture {
    let mut keys: Vec<_> = (0..powers.len())
        .map(|i| Keypair::dev(&format!("v{i}")))
        .collect();
    keys.sort_by_key(Keypair::account);
    let set = ValidatorSet::new(
        keys.iter()
            .zip(powers)
            .map(|(k, &power)| Validator {
                id: k.account(),
                power,
            })
            .collect(),
    )
    .unwrap();
    let cfg = Config {
        chain_id: CHAIN,
        timeouts: timeouts(),
    };
    let m = Machine::new(cfg, set.clone(), Some(keys[me].clone()), 1);
    Fixture { keys, set, m }
}

fn block(height: u64, round: u32, proposer: AccountId, salt: u8) -> Block {
    Block {
        header: Header {
            chain_id: CHAIN,
            height,
            parent: Hash([salt; 32]),
            view: u64::from(round),
            timestamp_ms: 1,
            proposer,
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            parent_cert: Hash::ZERO,
        },
        txs: vec![],
        parent_cert: None,
    }
}

impl Fixture {
    fn key_of(&self, id: AccountId) -> &Keypair {
        self.keys.iter().find(|k| k.account() == id).unwrap()
    }

    fn leader(&self, round: u32) -> &Keypair {
        self.key_of(self.set.proposer(1, round))
    }

    fn proposal(&self, round: u32, valid_round: Option<u32>, salt: u8) -> Proposal {
        let k = self.leader(round);
        Proposal::sign(
            CHAIN,
            round,
            valid_round,
            block(1, round, k.account(), salt),
            k,
        )
    }

    fn vote(&self, who: usize, kind: VoteKind, round: u32, b: Option<Hash>) -> Message {
        Message::Vote(Vote::sign(CHAIN, kind, 1, round, b, &self.keys[who]))
    }

    fn feed(&mut self, input: Input) -> Vec<Effect> {
        self.m.handle(input)
    }

    fn msg(&mut self, m: Message) -> Vec<Effect> {
        self.feed(Input::Message(m))
    }

    /// Deliver a proposal and answer the verification it asks for.
    fn propose(&mut self, p: Proposal, valid: bool) -> Vec<Effect> {
        let h = p.block_hash();
        let mut out = self.msg(Message::Proposal(p));
        if out
            .iter()
            .any(|e| matches!(e, Effect::Verify(b) if b.hash() == h))
        {
            out.extend(self.feed(Input::Verified { block: h, valid }));
        }
        out
    }

    fn timeout(&mut self, round: u32, step: Step) -> Vec<Effect> {
        self.feed(Input::Timeout(Timeout {
            height: self.m.height(),
            round,
            step: Some(step),
        }))
    }
}

/// Votes this validator signed and sent, or sent again.
fn sent_votes(out: &[Effect]) -> Vec<(VoteKind, u32, Option<Hash>)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Vote(v)) | Effect::Relay(Message::Vote(v)) => {
                Some((v.kind, v.round, v.block))
            }
            _ => None,
        })
        .collect()
}

fn decision(out: &[Effect]) -> Option<(Block, FinalityCert)> {
    out.iter().find_map(|e| match e {
        Effect::Decide { block, cert } => Some((block.clone(), cert.clone())),
        _ => None,
    })
}

#[test]
fn quorum_arithmetic_uses_power_and_the_leader_rotates() {
    let f = fixture(&[5, 2, 2, 1], 0);
    assert_eq!(f.set.total_power(), 10);
    assert!(!f.set.is_quorum(6));
    assert!(f.set.is_quorum(7), "7/10 > 2/3");
    assert!(!f.set.is_one_third(3));
    assert!(f.set.is_one_third(4));
    let leaders: Vec<_> = (0..4).map(|r| f.set.proposer(1, r)).collect();
    let distinct: std::collections::BTreeSet<_> = leaders.iter().collect();
    assert_eq!(distinct.len(), 4, "four rounds, four leaders");
    assert_eq!(
        f.set.proposer(2, 0),
        f.set.proposer(1, 1),
        "next height starts one further"
    );
    // Exactly 2/3 is not a quorum: 3 validators of power 1, 2 of them.
    let three =
        ValidatorSet::equal(&f.keys[..3].iter().map(Keypair::account).collect::<Vec<_>>()).unwrap();
    assert!(!three.is_quorum(2) && three.is_quorum(3));
    assert!(ValidatorSet::new(vec![]).is_err());
    let dup = vec![
        Validator {
            id: f.keys[0].account(),
            power: 1,
        },
        Validator {
            id: f.keys[0].account(),
            power: 1,
        },
    ];
    assert!(matches!(
        ValidatorSet::new(dup),
        Err(ValidatorSetError::Duplicate(_))
    ));
}

#[test]
fn happy_path_prevotes_locks_precommits_and_decides_with_a_valid_certificate() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    let start = f.feed(Input::Start);
    assert!(start.iter().any(|e| matches!(
        e,
        Effect::Schedule {
            timeout: Timeout {
                step: Some(Step::Propose),
                ..
            },
            ..
        }
    )));
    let p = f.proposal(0, None, 1);
    let h = p.block_hash();
    let me_is_leader = f.leader(0).account() == f.keys[0].account();
    let out = if me_is_leader {
        f.feed(Input::Built {
            height: 1,
            round: 0,
            block: p.block.clone(),
        })
    } else {
        f.propose(p, true)
    };
    assert_eq!(sent_votes(&out), vec![(VoteKind::Prevote, 0, Some(h))]);
    assert_eq!(f.m.step(), Step::Prevote);
    // Two more prevotes for the block: a quorum of 3 of 4; the machine locks and precommits.
    let mut out = f.msg(f.vote(1, VoteKind::Prevote, 0, Some(h)));
    assert!(sent_votes(&out).is_empty());
    out.extend(f.msg(f.vote(2, VoteKind::Prevote, 0, Some(h))));
    assert_eq!(sent_votes(&out), vec![(VoteKind::Precommit, 0, Some(h))]);
    assert_eq!(f.m.step(), Step::Precommit);
    f.msg(f.vote(1, VoteKind::Precommit, 0, Some(h)));
    let out = f.msg(f.vote(3, VoteKind::Precommit, 0, Some(h)));
    let (b, cert) = decision(&out).expect("decided");
    assert_eq!(b.hash(), h);
    assert_eq!(cert.verify_for(CHAIN, &f.set, 1, &h), Ok(()));
    assert_eq!(cert.votes.len(), 3);
    assert_eq!(f.m.height(), 2, "moved to the next height");
    assert_eq!(f.m.round(), 0);
}

#[test]
fn timeouts_vote_nil_and_move_to_the_next_round_and_leader() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    f.feed(Input::Start);
    let out = f.timeout(0, Step::Propose);
    assert_eq!(sent_votes(&out), vec![(VoteKind::Prevote, 0, None)]);
    // A stale timeout (wrong round) does nothing.
    assert!(f.timeout(5, Step::Prevote).is_empty());
    f.msg(f.vote(1, VoteKind::Prevote, 0, None));
    let out = f.msg(f.vote(2, VoteKind::Prevote, 0, None));
    // A prevote quorum for nil: precommit nil.
    assert!(
        sent_votes(&out).contains(&(VoteKind::Precommit, 0, None)),
        "{out:?}"
    );
    f.msg(f.vote(1, VoteKind::Precommit, 0, None));
    let out = f.msg(f.vote(2, VoteKind::Precommit, 0, None));
    assert!(out.iter().any(|e| matches!(
        e,
        Effect::Schedule {
            timeout: Timeout {
                step: Some(Step::Precommit),
                round: 0,
                ..
            },
            ..
        }
    )));
    let out = f.timeout(0, Step::Precommit);
    assert_eq!(f.m.round(), 1);
    assert_ne!(f.m.leader(), f.set.proposer(1, 0));
    // Round 1's timeouts are longer than round 0's.
    let propose_after = out
        .iter()
        .find_map(|e| match e {
            Effect::Schedule {
                timeout:
                    Timeout {
                        step: Some(Step::Propose),
                        ..
                    },
                after_ms,
            } => Some(*after_ms),
            _ => None,
        })
        .unwrap();
    assert_eq!(propose_after, timeouts().propose_ms + timeouts().delta_ms);
}

#[test]
fn a_locked_validator_prevotes_nil_for_another_block_until_a_later_polka() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    f.feed(Input::Start);
    // Round 0: block A gets a prevote quorum; the machine locks on it.
    let a = f.proposal(0, None, 1);
    let ha = a.block_hash();
    if f.leader(0).account() == f.keys[0].account() {
        f.feed(Input::Built {
            height: 1,
            round: 0,
            block: a.block.clone(),
        });
    } else {
        f.propose(a.clone(), true);
    }
    f.msg(f.vote(1, VoteKind::Prevote, 0, Some(ha)));
    let out = f.msg(f.vote(2, VoteKind::Prevote, 0, Some(ha)));
    assert!(sent_votes(&out).contains(&(VoteKind::Precommit, 0, Some(ha))));
    // Precommits do not reach a quorum for A; the round times out.
    f.msg(f.vote(1, VoteKind::Precommit, 0, None));
    f.msg(f.vote(2, VoteKind::Precommit, 0, None));
    f.timeout(0, Step::Precommit);
    assert_eq!(f.m.round(), 1);
    // Round 1: a different block B with no valid round: locked on A, prevote nil.
    let b = f.proposal(1, None, 2);
    if f.leader(1).account() != f.keys[0].account() {
        let out = f.propose(b, true);
        assert_eq!(sent_votes(&out), vec![(VoteKind::Prevote, 1, None)]);
    }
    // Round 2: B backed by a prevote quorum in round 1 (a later polka than the lock):
    // the machine may prevote B.
    f.timeout(1, Step::Propose);
    let hb = f.proposal(1, None, 2).block_hash();
    for i in 1..4 {
        f.msg(f.vote(i, VoteKind::Prevote, 1, Some(hb)));
    }
    f.timeout(1, Step::Prevote);
    f.timeout(1, Step::Precommit);
    assert_eq!(f.m.round(), 2);
    let b2 = {
        let k = f.leader(2).clone();
        Proposal::sign(CHAIN, 2, Some(1), f.proposal(1, None, 2).block, &k)
    };
    assert_eq!(b2.block_hash(), hb, "same block re-proposed");
    if f.leader(2).account() != f.keys[0].account() {
        let out = f.propose(b2, true);
        assert_eq!(sent_votes(&out), vec![(VoteKind::Prevote, 2, Some(hb))]);
    }
}

#[test]
fn an_invalid_block_gets_a_nil_prevote() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    // Pick a round whose leader is someone else.
    f.feed(Input::Start);
    let mut round = 0;
    while f.leader(round).account() == f.keys[0].account() {
        f.timeout(round, Step::Propose);
        f.timeout(round, Step::Precommit);
        round += 1;
    }
    let out = f.propose(f.proposal(round, None, 9), false);
    assert_eq!(sent_votes(&out), vec![(VoteKind::Prevote, round, None)]);
}

#[test]
fn equivocation_is_reported_once_and_the_second_message_ignored() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    f.feed(Input::Start);
    f.msg(f.vote(1, VoteKind::Prevote, 0, Some(Hash([1; 32]))));
    let out = f.msg(f.vote(1, VoteKind::Prevote, 0, Some(Hash([2; 32]))));
    let ev: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Evidence(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].offender(), f.keys[1].account());
    assert!(
        f.msg(f.vote(1, VoteKind::Prevote, 0, Some(Hash([3; 32]))))
            .is_empty(),
        "reported once"
    );
    // Two different proposals from one leader for one round.
    let leader = f.leader(0).clone();
    if leader.account() != f.keys[0].account() {
        f.propose(f.proposal(0, None, 1), true);
        let out = f.msg(Message::Proposal(f.proposal(0, None, 2)));
        assert!(out
            .iter()
            .any(|e| matches!(e, Effect::Evidence(Evidence::DoubleProposal { .. }))));
    }
    // Forged and foreign votes are dropped without effect.
    let mut forged = Vote::sign(CHAIN, VoteKind::Prevote, 1, 0, None, &f.keys[2]);
    forged.signature[3] ^= 1;
    assert!(f.msg(Message::Vote(forged)).is_empty());
    let outsider = Vote::sign(
        CHAIN,
        VoteKind::Prevote,
        1,
        0,
        None,
        &Keypair::dev("mallory"),
    );
    assert!(f.msg(Message::Vote(outsider)).is_empty());
}

#[test]
fn a_restored_validator_never_signs_a_conflicting_vote_and_keeps_its_lock() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    let h = Hash([4; 32]);
    let own_prevote = Vote::sign(CHAIN, VoteKind::Prevote, 1, 0, Some(h), &f.keys[0]);
    let own_precommit = Vote::sign(CHAIN, VoteKind::Precommit, 1, 0, Some(h), &f.keys[0]);
    f.m.restore(vec![
        Message::Vote(own_prevote),
        Message::Vote(own_precommit),
    ]);
    f.feed(Input::Start);
    // Round 0 timeouts after restart: the prevote and precommit for round 0 were already
    // signed, so nothing new is signed for those slots.
    let out = f.timeout(0, Step::Propose);
    assert!(sent_votes(&out).is_empty(), "{out:?}");
    let out = f.feed(Input::Timeout(Timeout {
        height: 1,
        round: 0,
        step: None,
    }));
    // Retransmission resends exactly the restored votes (the prevote also as part of
    // the proof of the lock), and signs nothing new.
    let mut resent = sent_votes(&out);
    resent.sort();
    resent.dedup();
    assert_eq!(
        resent,
        vec![
            (VoteKind::Prevote, 0, Some(h)),
            (VoteKind::Precommit, 0, Some(h))
        ]
    );
    f.timeout(0, Step::Precommit);
    // Round 1: a new block without a valid round: the lock on h forces nil.
    if f.leader(1).account() != f.keys[0].account() {
        let out = f.propose(f.proposal(1, None, 5), true);
        assert_eq!(sent_votes(&out), vec![(VoteKind::Prevote, 1, None)]);
    }
}

#[test]
fn more_than_a_third_in_a_later_round_pulls_the_machine_forward() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    f.feed(Input::Start);
    f.msg(f.vote(1, VoteKind::Prevote, 5, None));
    assert_eq!(f.m.round(), 0, "one of four is not more than a third");
    f.msg(f.vote(2, VoteKind::Precommit, 5, None));
    assert_eq!(f.m.round(), 5);
    // Beyond the window: ignored.
    f.msg(f.vote(1, VoteKind::Prevote, 5 + ROUND_WINDOW + 1, None));
    f.msg(f.vote(2, VoteKind::Prevote, 5 + ROUND_WINDOW + 1, None));
    assert_eq!(f.m.round(), 5);
}

#[test]
fn a_validator_with_more_than_two_thirds_of_the_power_decides_alone() {
    let mut f = fixture(&[8, 1, 1, 1], 0);
    f.feed(Input::Start);
    let mut round = 0;
    while f.leader(round).account() != f.keys[0].account() {
        f.timeout(round, Step::Propose);
        f.timeout(round, Step::Prevote);
        f.timeout(round, Step::Precommit);
        round += 1;
    }
    let b = block(1, round, f.keys[0].account(), 3);
    let out = f.feed(Input::Built {
        height: 1,
        round,
        block: b.clone(),
    });
    let (decided, cert) = decision(&out).expect("8 of 11 power decides alone");
    assert_eq!(decided.hash(), b.hash());
    assert_eq!(cert.votes.len(), 1);
    assert_eq!(cert.verify(CHAIN, &f.set), Ok(()));
}

#[test]
fn a_handed_over_decision_is_taken_only_with_a_valid_certificate() {
    let mut f = fixture(&[1, 1, 1, 1], 3);
    f.feed(Input::Start);
    let k = f.keys[1].clone();
    let b = block(1, 0, k.account(), 7);
    let h = b.hash();
    let mut cert = FinalityCert {
        height: 1,
        round: 0,
        block_hash: h,
        votes: vec![],
    };
    for key in &f.keys[..3] {
        cert.votes.extend(
            FinalityCert {
                ..FinalityCert::sign_single(CHAIN, 1, h, key)
            }
            .votes,
        );
    }
    let mut short = cert.clone();
    short.votes.truncate(2);
    assert!(
        f.msg(Message::Decided(b.clone(), short)).is_empty(),
        "2 of 4 is no certificate"
    );
    let out = f.msg(Message::Decided(b.clone(), cert));
    assert!(out
        .iter()
        .any(|e| matches!(e, Effect::Verify(x) if x.hash() == h)));
    let out = f.feed(Input::Verified {
        block: h,
        valid: true,
    });
    assert_eq!(decision(&out).map(|(b, _)| b.hash()), Some(h));
    assert_eq!(f.m.height(), 2);
}

#[test]
fn messages_for_the_next_height_wait_and_others_are_dropped() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    f.feed(Input::Start);
    let next = Message::Vote(Vote::sign(CHAIN, VoteKind::Prevote, 2, 0, None, &f.keys[1]));
    assert!(f.msg(next).is_empty());
    let far = Message::Vote(Vote::sign(CHAIN, VoteKind::Prevote, 9, 0, None, &f.keys[1]));
    assert!(f.msg(far).is_empty());
    f.feed(Input::Committed { height: 1 });
    assert_eq!(f.m.height(), 2);
    assert_eq!(f.m.round(), 0);
}

/// A set scheduled for a later height takes over when the machine gets there (by
/// deciding or by sync), not before; one scheduled for a height already reached is ignored.
/// Under the new set a validator with more than two thirds decides alone, where it could
/// not before.
#[test]
fn a_scheduled_validator_set_decides_from_its_height_on() {
    let mut f = fixture(&[1, 1, 1, 1], 0);
    let me = f.keys[0].account();
    let heavy = ValidatorSet::new(
        f.keys
            .iter()
            .map(|k| Validator {
                id: k.account(),
                power: if k.account() == me { 10 } else { 1 },
            })
            .collect(),
    )
    .unwrap();
    f.m.schedule_validators(1, heavy.clone()); // height 1 is reached already: ignored
    f.m.schedule_validators(3, heavy.clone());
    f.feed(Input::Start);
    f.feed(Input::Committed { height: 1 });
    assert_eq!((f.m.height(), f.m.validators()), (2, &f.set));
    f.feed(Input::Committed { height: 2 });
    assert_eq!((f.m.height(), f.m.validators()), (3, &heavy));
    // Height 3: this validator (10 of 13) decides alone once it leads a round.
    let mut round = 0;
    while f.m.leader() != me {
        for step in [Step::Propose, Step::Prevote, Step::Precommit] {
            f.timeout(round, step);
        }
        round += 1;
    }
    let b = block(3, round, me, 9);
    let out = f.feed(Input::Built {
        height: 3,
        round,
        block: b.clone(),
    });
    let (decided, cert) = decision(&out).expect("10 of 13 decides alone");
    assert_eq!(decided.hash(), b.hash());
    assert_eq!(cert.verify(CHAIN, &heavy), Ok(()));
    assert!(
        cert.verify(CHAIN, &f.set).is_err(),
        "one vote of four is no quorum in the old set"
    );
    // The set stays for later heights.
    assert_eq!((f.m.height(), f.m.validators()), (4, &heavy));
}
