use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::block::Block;
use crate::crypto::Keypair;
use crate::genesis::Genesis;
use crate::state::{account, supply, Account};
use crate::tx::Transaction;

mod scenarios;

struct Chain {
    params: ChainParams,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    lthash: LtHash,
    head: Header,
    proposer: Keypair,
}

impl Chain {
    fn dev() -> Self {
        let g = Genesis::dev();
        let built = g.build().unwrap();
        let mut state = BTreeMap::new();
        apply_changes(&mut state, &built.changes);
        Chain {
            params: g.params(),
            state,
            lthash: built.lthash,
            head: built.block.header,
            proposer: Keypair::dev("alice"),
        }
    }

    fn proposal(&self) -> Proposal {
        Proposal {
            proposer: self.proposer.account(),
            timestamp_ms: self.head.timestamp_ms + 1000,
            view: 0,
            parent_cert: (self.head.height > 0).then(|| {
                FinalityCert::sign_single(
                    self.params.chain_id,
                    self.head.height,
                    self.head.hash(),
                    &self.proposer,
                )
            }),
        }
    }

    fn build(&self, txs: Vec<SignedTransaction>) -> BuiltBlock {
        build_block(
            &self.state,
            &self.lthash,
            &self.params,
            &self.head,
            self.proposal(),
            txs,
        )
        .unwrap()
    }

    fn commit(&mut self, ex: ExecutedBlock) {
        apply_changes(&mut self.state, &ex.changes);
        self.lthash = ex.lthash;
        self.head = ex.block.header;
    }

    /// Tests change `params` between blocks; execution reads the parameters in force from
    /// the state, so write them there first (through the state root, as an enacted
    /// governance change would).
    fn sync_params(&mut self) {
        if crate::gov::chain_params(&self.state).unwrap().as_ref() == Some(&self.params) {
            return;
        }
        let mut changes = crate::state::Changes::new();
        changes.insert(
            crate::state::keys::PARAMS.to_vec(),
            Some(crate::codec::encode_value(&self.params).unwrap()),
        );
        self.lthash.apply(&self.state, &changes).unwrap();
        apply_changes(&mut self.state, &changes);
    }

    fn produce(&mut self, txs: Vec<SignedTransaction>) -> Vec<(Hash, TxError)> {
        self.sync_params();
        let built = self.build(txs);
        // Every block the producer builds must re-execute to the same result elsewhere.
        let again = execute_block(
            &self.state,
            &self.lthash,
            &self.params,
            &self.head,
            built.executed.block.clone(),
        )
        .unwrap();
        assert_eq!(again.lthash, built.executed.lthash);
        self.commit(built.executed);
        built.rejected
    }

    fn acc(&self, k: &Keypair) -> Account {
        account(&self.state, &k.account()).unwrap()
    }

    fn transfer(&self, from: &Keypair, to: &Keypair, amount: u64, nonce: u64) -> SignedTransaction {
        Transaction {
            chain_id: self.params.chain_id,
            signer: from.account(),
            nonce,
            call: Call::Transfer {
                dest: to.account(),
                amount,
            },
            tip: 0,
        }
        .sign(from)
    }
}

/// Signs calls with each signer's next nonce, counting the ones it already signed.
fn signer(chain_id: u64) -> impl FnMut(&Keypair, Call) -> SignedTransaction {
    let mut nonces = std::collections::BTreeMap::<AccountId, u64>::new();
    move |k: &Keypair, call: Call| {
        let n = nonces.entry(k.account()).or_insert(0);
        let tx = Transaction {
            chain_id,
            signer: k.account(),
            nonce: *n,
            call,
            tip: 0,
        }
        .sign(k);
        *n += 1;
        tx
    }
}

#[test]
fn transfer_moves_funds_pays_fee_to_proposer_and_mints_emission() {
    let mut c = Chain::dev();
    let (bob, charlie) = (Keypair::dev("bob"), Keypair::dev("charlie"));
    let before = (c.acc(&bob), c.acc(&charlie), c.acc(&c.proposer));
    let tx = c.transfer(&bob, &charlie, 5_000, 0);
    let fee = c.params.fee(tx.encoded_len());
    assert!(c.produce(vec![tx]).is_empty());
    assert_eq!(c.acc(&bob).free, before.0.free - 5_000 - fee);
    assert_eq!(c.acc(&bob).nonce, 1);
    assert_eq!(c.acc(&charlie).free, before.1.free + 5_000);
    assert_eq!(c.acc(&c.proposer).free, before.2.free + fee + 1_000_000_000);
    let s = supply(&c.state).unwrap();
    assert!(s.is_conserved());
    assert_eq!(s.issued, 6_000_000 * 1_000_000_000 + 1_000_000_000);
}

#[test]
fn every_bad_transaction_is_rejected_with_its_reason_and_changes_nothing() {
    let mut c = Chain::dev();
    let (bob, charlie) = (Keypair::dev("bob"), Keypair::dev("charlie"));
    let good = c.transfer(&bob, &charlie, 1, 0);
    assert!(c.produce(vec![good.clone()]).is_empty());
    let snapshot = (c.acc(&bob), c.acc(&charlie));

    let mut bad_sig = c.transfer(&bob, &charlie, 1, 1);
    bad_sig.signature[3] ^= 0x10;
    let mut wrong_chain = c.transfer(&bob, &charlie, 1, 1);
    wrong_chain.tx.chain_id += 1;
    let wrong_chain = wrong_chain.tx.sign(&bob);
    let future = c.transfer(&bob, &charlie, 1, 9);
    let broke = c.transfer(&Keypair::dev("nobody"), &charlie, 1, 0);
    let zero = c.transfer(&bob, &charlie, 0, 1);
    let everything = c.transfer(&bob, &charlie, snapshot.0.free, 1);

    let rejected = c.produce(vec![
        good.clone(),
        bad_sig,
        wrong_chain,
        future,
        broke,
        zero,
        everything,
    ]);
    let kinds: Vec<_> = rejected.iter().map(|(_, e)| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "stale_nonce",
            "bad_signature",
            "wrong_chain_id",
            "future_nonce",
            "insufficient_funds",
            "zero_amount",
            "insufficient_funds"
        ]
    );
    assert_eq!((c.acc(&bob), c.acc(&charlie)), snapshot);

    let huge = SignedTransaction::decode(&vec![0u8; MAX_TX_BYTES + 1]).unwrap_err();
    assert!(matches!(TxError::from(huge.clone()).kind(), "oversize"));
    assert_eq!(
        check_stateless(&c.params, &good, MAX_TX_BYTES + 1)
            .unwrap_err()
            .kind(),
        "oversize"
    );
    assert_eq!(
        TxError::from(SignedTransaction::decode(&[1, 2, 3]).unwrap_err()).kind(),
        "malformed"
    );
}

#[test]
fn tampered_blocks_are_refused() {
    let mut c = Chain::dev();
    let (bob, charlie) = (Keypair::dev("bob"), Keypair::dev("charlie"));
    c.produce(vec![]);
    let built = c.build(vec![c.transfer(&bob, &charlie, 10, 0)]);
    let good: Block = built.executed.block;
    let exec = |b: Block| execute_block(&c.state, &c.lthash, &c.params, &c.head, b);

    let mut b = good.clone();
    b.header.state_root = Hash([1; 32]);
    assert!(matches!(exec(b), Err(BlockError::StateRootMismatch { .. })));
    let mut b = good.clone();
    b.txs[0].tx.call = Call::Transfer {
        dest: charlie.account(),
        amount: 11,
    };
    assert!(matches!(exec(b), Err(BlockError::TxRootMismatch { .. })));
    let mut b = good.clone();
    b.txs[0].signature[0] ^= 1;
    b.header.tx_root = tx_root(&b.txs);
    assert!(matches!(
        exec(b),
        Err(BlockError::InvalidTx {
            index: 0,
            error: TxError::BadSignature,
            ..
        })
    ));
    // The header commits to the certificate it carries: dropping or swapping it is caught
    // even before the certificate itself is checked.
    let mut b = good.clone();
    b.parent_cert = None;
    assert!(matches!(
        exec(b),
        Err(BlockError::ParentCertMismatch { .. })
    ));
    let mut b = good.clone();
    b.parent_cert = None;
    b.header.parent_cert = Hash::ZERO;
    assert!(matches!(exec(b), Err(BlockError::BadParentCertificate(_))));
    let mut b = good.clone();
    let other =
        FinalityCert::sign_single(c.params.chain_id, c.head.height, Hash([3; 32]), &c.proposer);
    b.header.parent_cert = other.hash();
    b.parent_cert = Some(other);
    assert!(
        matches!(exec(b), Err(BlockError::BadParentCertificate(e)) if e.contains("expected height"))
    );
    let mut b = good.clone();
    b.header.proposer = bob.account();
    assert!(matches!(exec(b), Err(BlockError::NotAnAuthority(_))));
    assert!(exec(good).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random transfer sequences (valid or not) conserve supply after every block, the
    /// supply's free total equals the sum of balances, and replaying the same blocks on a
    /// fresh chain gives the same state root.
    #[test]
    fn random_transfers_conserve_supply(
        ops in proptest::collection::vec((0usize..6, 0usize..6, 0u64..3_000_000_000_000_000, 0u64..3, any::<bool>()), 1..60),
        block_size in 1usize..8,
    ) {
        let names = ["alice", "bob", "charlie", "dave", "eve", "zed"];
        let keys: Vec<_> = names.iter().map(|n| Keypair::dev(n)).collect();
        let mut c = Chain::dev();
        let mut nonces = [0u64; 6];
        let mut blocks = Vec::new();
        for chunk in ops.chunks(block_size) {
            let txs: Vec<_> = chunk.iter().map(|&(from, to, amount, skew, tip)| {
                let nonce = nonces[from] + skew.saturating_sub(1); // sometimes stale/future
                nonces[from] += 1;
                let mut tx = c.transfer(&keys[from], &keys[to], amount, nonce.saturating_sub(u64::from(skew == 0)));
                if tip { tx.tx.tip = 7; tx = tx.tx.sign(&keys[from]); }
                tx
            }).collect();
            let built = c.build(txs);
            blocks.push(built.executed.block.clone());
            c.commit(built.executed);
            for (i, k) in keys.iter().enumerate() { nonces[i] = c.acc(k).nonce; }
            let s = supply(&c.state).unwrap();
            prop_assert!(s.is_conserved());
            // Every funded account: the six above plus ferdie (funded at genesis, never used).
            let sum: u64 = keys.iter().chain([&Keypair::dev("ferdie")]).map(|k| c.acc(k).free).sum();
            prop_assert_eq!(sum, s.free);
        }
        let mut replay = Chain::dev();
        for b in blocks {
            let ex = execute_block(&replay.state, &replay.lthash, &replay.params, &replay.head, b).unwrap();
            replay.commit(ex);
        }
        prop_assert_eq!(replay.lthash.root(), c.lthash.root());
    }
}

#[test]
fn subnet_calls_run_through_blocks_and_conserve_supply() {
    let mut c = Chain::dev();
    let (alice, bob) = (Keypair::dev("alice"), Keypair::dev("bob"));
    let call = |c: &Chain, from: &Keypair, nonce: u64, call: Call| {
        Transaction {
            chain_id: c.params.chain_id,
            signer: from.account(),
            nonce,
            call,
            tip: 0,
        }
        .sign(from)
    };
    let hot = Keypair::dev("alice-hot").account();
    let txs = vec![
        call(&c, &alice, 0, Call::RegisterNetwork { hotkey: hot }),
        call(&c, &bob, 0, Call::StartCall { netuid: 1 }),
    ];
    let rejected = c.produce(txs);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].1.kind(), "not_subnet_owner");
    let proposer_before = c.acc(&c.proposer).free;
    let miner = Keypair::dev("miner").account();
    let txs = vec![
        call(&c, &alice, 1, Call::StartCall { netuid: 1 }),
        call(
            &c,
            &bob,
            0,
            Call::BurnedRegister {
                netuid: 1,
                hotkey: miner,
            },
        ),
        call(
            &c,
            &bob,
            1,
            Call::BurnedRegister {
                netuid: 1,
                hotkey: miner,
            },
        ),
    ];
    let rejected = c.produce(txs);
    assert_eq!(
        rejected.iter().map(|(_, e)| e.kind()).collect::<Vec<_>>(),
        ["already_registered"]
    );
    let s = supply(&c.state).unwrap();
    assert!(s.is_conserved());
    assert!(s.staked > 0);
    // The proposer got the block emission, both tx fees and the registration's swap fee.
    let gained = c.acc(&c.proposer).free - proposer_before;
    assert!(
        gained > 1_000_000_000 + 2 * c.params.base_fee_rao,
        "{gained}"
    );
    assert_eq!(crate::subnet::uid_of(&c.state, 1, &miner).unwrap(), Some(1));
}

/// The market end to end, through blocks: a subnet is created and started, a validator and
/// two miners register, the validator is staked, the first epoch grants its permit, it sets
/// weights, and the next epoch pays the better miner more incentive and the validator
/// dividends as growing stake. Supply is conserved after every block.
#[test]
fn a_subnet_pays_incentive_and_dividends_after_an_epoch() {
    use crate::subnet::{self, stake};
    let mut c = Chain::dev();
    let names = ["alice", "bob", "charlie", "dave", "eve", "ferdie"];
    let accounts: Vec<Keypair> = names.iter().map(|n| Keypair::dev(n)).collect();
    let mut call = signer(c.params.chain_id);
    let check = |c: &Chain| {
        let s = supply(&c.state).unwrap();
        assert!(s.is_conserved(), "{s:?}");
        let hot_free: u64 = ["owner", "val", "m1", "m2"]
            .iter()
            .map(|h| c.acc(&Keypair::dev(h)).free)
            .sum();
        let free: u64 = accounts.iter().map(|k| c.acc(k).free).sum::<u64>() + hot_free;
        assert_eq!(
            free, s.free,
            "free balances add up to the supply's free total"
        );
    };
    let (alice, bob, charlie, dave) = (&accounts[0], &accounts[1], &accounts[2], &accounts[3]);
    let hk = |n: &str| Keypair::dev(n).account();
    let block = |c: &mut Chain, txs: Vec<SignedTransaction>| {
        let rejected = c.produce(txs);
        assert!(rejected.is_empty(), "{rejected:?}");
        check(c);
    };
    block(
        &mut c,
        vec![call(
            alice,
            Call::RegisterNetwork {
                hotkey: hk("owner"),
            },
        )],
    );
    block(
        &mut c,
        vec![
            call(alice, Call::StartCall { netuid: 1 }),
            call(
                bob,
                Call::BurnedRegister {
                    netuid: 1,
                    hotkey: hk("val"),
                },
            ),
            call(
                charlie,
                Call::BurnedRegister {
                    netuid: 1,
                    hotkey: hk("m1"),
                },
            ),
            call(
                dave,
                Call::BurnedRegister {
                    netuid: 1,
                    hotkey: hk("m2"),
                },
            ),
        ],
    );
    block(
        &mut c,
        vec![call(
            bob,
            Call::AddStake {
                hotkey: hk("val"),
                netuid: 1,
                amount: 1_000 * 1_000_000_000,
            },
        )],
    );
    let staked = stake::stake_of(&c.state, 1, &hk("val"), &bob.account()).unwrap();
    assert!(staked > 0);
    // Run to the first epoch (dev tempo 30): the validator earns its permit.
    while subnet::subnet(&c.state, 1).unwrap().unwrap().epoch_index == 0 {
        block(&mut c, vec![]);
    }
    let val = subnet::neuron(&c.state, 1, 1).unwrap().unwrap();
    assert!(val.validator_permit, "{val:?}");
    let sn = subnet::subnet(&c.state, 1).unwrap().unwrap();
    assert!(sn.pool.tao > sn.lock_rao, "block emission entered the pool");
    // Weights: m2 (uid 3) three times m1 (uid 2). Set by the hotkey, fee-free.
    let val_key = Keypair::dev("val");
    block(
        &mut c,
        vec![call(
            &val_key,
            Call::SetWeights {
                netuid: 1,
                uids: vec![2, 3],
                values: vec![1, 3],
                version_key: 0,
            },
        )],
    );
    while subnet::subnet(&c.state, 1).unwrap().unwrap().epoch_index == 1 {
        block(&mut c, vec![]);
    }
    let m1 = subnet::neuron(&c.state, 1, 2).unwrap().unwrap();
    let m2 = subnet::neuron(&c.state, 1, 3).unwrap().unwrap();
    let val = subnet::neuron(&c.state, 1, 1).unwrap().unwrap();
    assert!(
        m2.incentive > m1.incentive && m1.incentive > 0,
        "{} vs {}",
        m2.incentive,
        m1.incentive
    );
    assert!(val.dividends > 0);
    assert!(
        stake::stake_of(&c.state, 1, &hk("m2"), &dave.account()).unwrap()
            > stake::stake_of(&c.state, 1, &hk("m1"), &charlie.account()).unwrap()
    );
    assert!(
        stake::stake_of(&c.state, 1, &hk("val"), &bob.account()).unwrap() > staked,
        "dividends grew the nominator's stake"
    );
    assert!(
        stake::stake_of(&c.state, 1, &hk("owner"), &alice.account()).unwrap() > 0,
        "owner cut"
    );
}

#[derive(Debug, Clone)]
enum MarketOp {
    Network(usize, usize),
    Start(usize, u16),
    Register(usize, u16, usize),
    Stake(usize, usize, u16, u64),
    /// coldkey, which of its positions, fraction in ppm
    Unstake(usize, usize, u32),
    Weights(usize, u16, Vec<(u16, u16)>),
    RootRegister(usize, usize),
    /// coldkey, which of its positions, to (hotkey, netuid), fraction in ppm
    Move(usize, usize, (usize, u16), u32),
    /// coldkey, to coldkey, which of its positions, to netuid, fraction in ppm
    Transfer(usize, usize, usize, u16, u32),
    /// coldkey, which of its positions (its hotkey)
    UnstakeAll(usize, usize),
    Dissolve(u16),
    Idle(u8),
}

fn market_op() -> impl Strategy<Value = MarketOp> {
    let netuid = 1u16..4;
    let any_netuid = 0u16..4; // root included
    let pos = (0usize..8, any_netuid.clone());
    prop_oneof![
        2 => (0usize..4, 0usize..8).prop_map(|(c, h)| MarketOp::Network(c, h)),
        2 => (0usize..4, netuid.clone()).prop_map(|(c, n)| MarketOp::Start(c, n)),
        4 => (0usize..4, netuid.clone(), 0usize..8).prop_map(|(c, n, h)| MarketOp::Register(c, n, h)),
        4 => (0usize..4, 0usize..8, any_netuid.clone(), 1u64..5_000_000_000_000).prop_map(|(c, h, n, a)| MarketOp::Stake(c, h, n, a)),
        2 => (0usize..4, 0usize..16, 1u32..=1_000_000).prop_map(|(c, i, f)| MarketOp::Unstake(c, i, f)),
        3 => (0usize..8, netuid.clone(), proptest::collection::vec((0u16..6, 1u16..u16::MAX), 1..4)).prop_map(|(h, n, w)| MarketOp::Weights(h, n, w)),
        1 => (0usize..4, 0usize..8).prop_map(|(c, h)| MarketOp::RootRegister(c, h)),
        3 => (0usize..4, 0usize..16, pos, 1u32..=1_000_000).prop_map(|(c, i, t, f)| MarketOp::Move(c, i, t, f)),
        2 => (0usize..4, 0usize..4, 0usize..16, any_netuid, 1u32..=1_000_000).prop_map(|(c, d, i, n, f)| MarketOp::Transfer(c, d, i, n, f)),
        1 => (0usize..4, 0usize..16).prop_map(|(c, i)| MarketOp::UnstakeAll(c, i)),
        1 => netuid.prop_map(MarketOp::Dissolve),
        3 => (1u8..6).prop_map(MarketOp::Idle),
    ]
}

/// The `i`-th (mod count) stake position of `cold` and `frac` ppm of its value (at least 1).
fn position(c: &Chain, cold: &Keypair, i: usize, frac: u32) -> Option<(u16, AccountId, u64)> {
    use crate::subnet::stake;
    let all = stake::positions(&c.state, &cold.account()).unwrap();
    let (n, h) = *all.get(i % all.len().max(1))?;
    let value = stake::stake_of(&c.state, n, &h, &cold.account()).unwrap();
    Some((
        n,
        h,
        (u128::from(value) * u128::from(frac) / 1_000_000).max(1) as u64,
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Randomised market runs (registrations, stake, unstake, moves across subnets and root,
    /// transfers, unstake_all, root registration, weights, epochs, dissolutions and pruning):
    /// after every block supply is conserved, free balances add up to the free supply,
    /// staked TAO is exactly pool TAO + root stake + pending TAO, every subnet's alpha
    /// outside its pool is exactly held + pending + protocol-owned, and every block replays
    /// to the same state root (checked in `produce`).
    #[test]
    fn market_invariants_hold_after_every_block(ops in proptest::collection::vec(market_op(), 5..50)) {
        use crate::subnet::{self, stake};
        let mut c = Chain::dev();
        c.params.subnets.defaults.tempo = 4;
        c.params.subnets.defaults.weights_rate_limit = 1;
        c.params.subnets.network_min_lock_rao = 10 * 1_000_000_000;
        // Three subnets at most, immune for 20 blocks: later registrations prune one.
        c.params.subnets.subnet_limit = 3;
        c.params.subnets.network_immunity_period = 20;
        let colds: Vec<Keypair> = ["alice", "bob", "charlie", "dave"].iter().map(|n| Keypair::dev(n)).collect();
        let hots: Vec<Keypair> = (0..8).map(|i| Keypair::dev(&format!("hot{i}"))).collect();
        let chain_id = c.params.chain_id;
        // A realistic start: two started subnets with registered, staked neurons.
        let mut prelude = vec![
            MarketOp::Network(0, 0), MarketOp::Idle(1), MarketOp::Network(1, 1),
            MarketOp::Start(0, 1), MarketOp::Start(1, 2), MarketOp::Idle(1),
            MarketOp::Register(2, 1, 2), MarketOp::Register(3, 1, 3), MarketOp::Register(2, 2, 4),
            MarketOp::Stake(2, 2, 1, 500_000_000_000), MarketOp::Stake(3, 3, 1, 200_000_000_000), MarketOp::Stake(2, 4, 2, 300_000_000_000),
            MarketOp::Move(2, 0, (3, 2), 300_000), MarketOp::Transfer(3, 1, 0, 1, 500_000),
            MarketOp::Idle(5),
            MarketOp::Weights(2, 1, vec![(1, 10), (2, 20)]), MarketOp::Weights(4, 2, vec![(0, 5), (1, 9)]), MarketOp::Idle(4),
            // Root stake on a validator makes root dividends flow.
            MarketOp::RootRegister(2, 2), MarketOp::Stake(3, 2, 0, 400_000_000_000), MarketOp::Idle(6),
        ];
        prelude.extend(ops);
        for chunk in prelude.chunks(3) {
            let mut pending = std::collections::BTreeMap::<AccountId, u64>::new();
            let mut sign = |c: &Chain, k: &Keypair, call: Call| {
                let extra = pending.entry(k.account()).or_insert(0);
                let nonce = c.acc(k).nonce + *extra;
                *extra += 1;
                Transaction { chain_id, signer: k.account(), nonce, call, tip: 0 }.sign(k)
            };
            let mut txs = Vec::new();
            let mut idle = 0;
            for op in chunk {
                let tx = match op.clone() {
                    MarketOp::Network(ci, h) => sign(&c, &colds[ci], Call::RegisterNetwork { hotkey: hots[h].account() }),
                    MarketOp::Start(ci, n) => sign(&c, &colds[ci], Call::StartCall { netuid: n }),
                    MarketOp::Register(ci, n, h) => sign(&c, &colds[ci], Call::BurnedRegister { netuid: n, hotkey: hots[h].account() }),
                    MarketOp::Stake(ci, h, n, a) => sign(&c, &colds[ci], Call::AddStake { hotkey: hots[h].account(), netuid: n, amount: a }),
                    MarketOp::Unstake(ci, i, f) => {
                        let Some((n, h, a)) = position(&c, &colds[ci], i, f) else { continue };
                        sign(&c, &colds[ci], Call::RemoveStake { hotkey: h, netuid: n, amount: a })
                    }
                    MarketOp::Weights(h, n, w) => {
                        let (uids, values): (Vec<u16>, Vec<u16>) = w.into_iter().unzip();
                        sign(&c, &hots[h], Call::SetWeights { netuid: n, uids, values, version_key: 0 })
                    }
                    MarketOp::RootRegister(ci, h) => sign(&c, &colds[ci], Call::RootRegister { hotkey: hots[h].account() }),
                    MarketOp::Move(ci, i, (h2, n2), f) => {
                        let Some((n, h, a)) = position(&c, &colds[ci], i, f) else { continue };
                        sign(&c, &colds[ci], Call::MoveStake { origin_hotkey: h, dest_hotkey: hots[h2].account(), origin_netuid: n, dest_netuid: n2, amount: a })
                    }
                    MarketOp::Transfer(ci, di, i, n2, f) => {
                        let Some((n, h, a)) = position(&c, &colds[ci], i, f) else { continue };
                        sign(&c, &colds[ci], Call::TransferStake { dest_coldkey: colds[di].account(), hotkey: h, origin_netuid: n, dest_netuid: n2, amount: a })
                    }
                    MarketOp::UnstakeAll(ci, i) => {
                        let Some((_, h, _)) = position(&c, &colds[ci], i, 1) else { continue };
                        sign(&c, &colds[ci], Call::UnstakeAll { hotkey: h })
                    }
                    MarketOp::Dissolve(n) => sign(&c, &colds[0], Call::DissolveNetwork { netuid: n }),
                    MarketOp::Idle(k) => { idle += k; continue; }
                };
                txs.push(tx);
            }
            let mut blocks = vec![txs];
            blocks.extend((0..idle).map(|_| Vec::new()));
            for txs in blocks {
                c.produce(txs);
                let s = supply(&c.state).unwrap();
                prop_assert!(s.is_conserved(), "{:?}", s);
                let free: u64 = colds.iter().chain(&hots).chain([&Keypair::dev("eve"), &Keypair::dev("ferdie")]).map(|k| c.acc(k).free).sum();
                prop_assert_eq!(free, s.free);
                // Staked TAO is exactly pool TAO + root stake + pending TAO.
                let rootnet = subnet::root::root(&c.state).unwrap();
                let root_sum: u64 = hots.iter().map(|h| stake::hotkey_alpha(&c.state, 0, &h.account()).unwrap().total_alpha).sum();
                prop_assert_eq!(root_sum, rootnet.total_stake);
                let mut staked = rootnet.total_stake;
                for n in subnet::networks(&c.state).unwrap().netuids {
                    let sn = subnet::subnet(&c.state, n).unwrap().unwrap();
                    staked += sn.pool.tao + sn.pending_tao;
                    // Every minted alpha outside the pool is held by a hotkey, pending, or
                    // protocol-owned: exactly.
                    let held: u64 = hots.iter().map(|h| stake::hotkey_alpha(&c.state, n, &h.account()).unwrap().total_alpha).sum();
                    let pending = sn.pending_server + sn.pending_validator + sn.pending_owner + sn.pending_root;
                    prop_assert_eq!(sn.alpha_out, held + pending + sn.protocol_alpha, "subnet {}", n);
                    prop_assert!(sn.pool.alpha.saturating_add(sn.alpha_out) <= crate::MAX_SUPPLY_RAO);
                }
                // A subnet being dissolved keeps its unpaid pot staked until the payout ends.
                for d in subnet::dissolve::dissolving(&c.state).unwrap() {
                    staked += d.pot - d.paid;
                }
                prop_assert_eq!(staked, s.staked);
            }
        }
    }
}

/// Two staked validators set weights; one keeps doing so, the other goes silent. Once the
/// silent one's last update is older than the activity cutoff its dividends drop to 0.
#[test]
fn a_validator_that_stops_setting_weights_loses_dividends_after_the_cutoff() {
    use crate::subnet;
    let mut c = Chain::dev();
    c.params.subnets.defaults.tempo = 4;
    c.params.subnets.defaults.weights_rate_limit = 1;
    c.params.subnets.defaults.activity_cutoff_factor_milli = 2_500; // cutoff = 10 blocks
    let mut tx = signer(c.params.chain_id);
    let (alice, bob, charlie) = (
        Keypair::dev("alice"),
        Keypair::dev("bob"),
        Keypair::dev("charlie"),
    );
    let (v1, v2, m) = (Keypair::dev("v1"), Keypair::dev("v2"), Keypair::dev("m"));
    let ok = |c: &mut Chain, txs: Vec<SignedTransaction>| assert!(c.produce(txs).is_empty());
    ok(
        &mut c,
        vec![tx(
            &alice,
            Call::RegisterNetwork {
                hotkey: Keypair::dev("own").account(),
            },
        )],
    );
    ok(
        &mut c,
        vec![
            tx(&alice, Call::StartCall { netuid: 1 }),
            tx(
                &bob,
                Call::BurnedRegister {
                    netuid: 1,
                    hotkey: v1.account(),
                },
            ),
            tx(
                &charlie,
                Call::BurnedRegister {
                    netuid: 1,
                    hotkey: v2.account(),
                },
            ),
            tx(
                &alice,
                Call::BurnedRegister {
                    netuid: 1,
                    hotkey: m.account(),
                },
            ),
        ],
    );
    ok(
        &mut c,
        vec![
            tx(
                &bob,
                Call::AddStake {
                    hotkey: v1.account(),
                    netuid: 1,
                    amount: 500_000_000_000,
                },
            ),
            tx(
                &charlie,
                Call::AddStake {
                    hotkey: v2.account(),
                    netuid: 1,
                    amount: 500_000_000_000,
                },
            ),
        ],
    );
    let epoch = |c: &Chain| subnet::subnet(&c.state, 1).unwrap().unwrap().epoch_index;
    let dividends = |c: &Chain, uid| subnet::neuron(&c.state, 1, uid).unwrap().unwrap().dividends;
    while epoch(&c) < 1 {
        ok(&mut c, vec![]);
    }
    let weights = Call::SetWeights {
        netuid: 1,
        uids: vec![3],
        values: vec![1],
        version_key: 0,
    };
    ok(
        &mut c,
        vec![tx(&v1, weights.clone()), tx(&v2, weights.clone())],
    );
    let start = epoch(&c);
    while epoch(&c) < start + 1 {
        ok(&mut c, vec![]);
    }
    assert!(
        dividends(&c, 1) > 0 && dividends(&c, 2) > 0,
        "both active validators earn"
    );
    // v1 keeps setting weights every 2 blocks; v2 stays silent for well over the cutoff.
    for i in 0..30 {
        let txs = if i % 2 == 0 {
            vec![tx(&v1, weights.clone())]
        } else {
            vec![]
        };
        ok(&mut c, txs);
    }
    let n2 = subnet::neuron(&c.state, 1, 2).unwrap().unwrap();
    assert!(!n2.active, "v2 is past the activity cutoff");
    assert_eq!(dividends(&c, 2), 0);
    assert_eq!(dividends(&c, 1), u16::MAX);
}
