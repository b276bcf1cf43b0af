//! Signed transactions (PROTOCOL §2). `docs/wire-format.md` describes the bytes.
//!
//! Wire form: `version:u8 (=1) || Transaction || signature:[u8;64]`, where the signature is
//! ed25519 by `signer` over `blake3("agora/tx/v1" || encode(Transaction))` (32 bytes).
//! The transaction hash is `blake3(wire bytes)`.

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::codec::{self, CodecError, MAX_TX_BYTES};
use crate::crypto::{hash_with_domain, AccountId, Hash, Keypair};

/// Current transaction format version.
pub const TX_VERSION: u8 = 1;
/// Domain prefix of the signing payload.
pub const TX_SIGNING_DOMAIN: &[u8] = b"agora/tx/v1";

/// What a transaction does. Variant indices are part of the wire format: append only.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// Move `amount` rao of free balance from the signer to `dest`.
    Transfer { dest: AccountId, amount: u64 },
    /// Create a subnet owned by the signer (coldkey) with `hotkey` as uid 0, locking TAO.
    RegisterNetwork { hotkey: AccountId },
    /// Start a subnet's emissions and trading (owner only, once).
    StartCall { netuid: u16 },
    /// Register `hotkey` on a subnet by burning the current registration price.
    BurnedRegister { netuid: u16, hotkey: AccountId },
    /// Stake `amount` rao of TAO on `hotkey` in `netuid` (bought as alpha through the pool).
    AddStake {
        hotkey: AccountId,
        netuid: u16,
        amount: u64,
    },
    /// Unstake `amount` alpha rao from `hotkey` in `netuid` (sold for TAO through the pool).
    RemoveStake {
        hotkey: AccountId,
        netuid: u16,
        amount: u64,
    },
    /// Set the signing hotkey's weights on `netuid` (fee-free, rate limited).
    SetWeights {
        netuid: u16,
        uids: Vec<u16>,
        values: Vec<u16>,
        version_key: u64,
    },
    /// `AddStake` that never pays more than `limit_price` rao per alpha; with
    /// `allow_partial` it stakes what it can up to the limit, otherwise it fails.
    AddStakeLimit {
        hotkey: AccountId,
        netuid: u16,
        amount: u64,
        limit_price: u64,
        allow_partial: bool,
    },
    /// `RemoveStake` that never sells below `limit_price` rao per alpha.
    RemoveStakeLimit {
        hotkey: AccountId,
        netuid: u16,
        amount: u64,
        limit_price: u64,
        allow_partial: bool,
    },
    /// Join the root network (netuid 0) with `hotkey`.
    RootRegister { hotkey: AccountId },
    /// Move `amount` alpha of the signer's stake to another hotkey and/or subnet.
    MoveStake {
        origin_hotkey: AccountId,
        dest_hotkey: AccountId,
        origin_netuid: u16,
        dest_netuid: u16,
        amount: u64,
    },
    /// Give `amount` alpha of the signer's stake on `hotkey` to `dest_coldkey`.
    TransferStake {
        dest_coldkey: AccountId,
        hotkey: AccountId,
        origin_netuid: u16,
        dest_netuid: u16,
        amount: u64,
    },
    /// Move `amount` alpha of the signer's stake on `hotkey` to another subnet.
    SwapStake {
        hotkey: AccountId,
        origin_netuid: u16,
        dest_netuid: u16,
        amount: u64,
    },
    /// Unstake everything the signer holds on `hotkey`, on every subnet and root.
    UnstakeAll { hotkey: AccountId },
    /// Raise `hotkey`'s delegate take (u16 fraction of 65535; owner only, rate limited).
    IncreaseTake { hotkey: AccountId, take: u16 },
    /// Lower `hotkey`'s delegate take.
    DecreaseTake { hotkey: AccountId, take: u16 },
    /// Commit to weights by hash (fee-free); reveal them an epoch later.
    CommitWeights { netuid: u16, hash: Hash },
    /// Reveal committed weights (fee-free).
    RevealWeights {
        netuid: u16,
        uids: Vec<u16>,
        values: Vec<u16>,
        salt: Vec<u16>,
        version_key: u64,
    },
    /// Publish the signing hotkey's multiaddrs on a subnet (fee-free, rate limited).
    Serve { netuid: u16, addrs: Vec<String> },
    /// Set one subnet hyperparameter (the owner, or the chain admin).
    SetHyperparameter {
        netuid: u16,
        name: String,
        value: u64,
    },
    /// Dissolve a subnet, paying its stakers out of its pool (admin only).
    DissolveNetwork { netuid: u16 },
    /// Open a governance proposal (holds the deposit).
    Propose {
        action: crate::gov::Action,
        emergency: bool,
    },
    /// Vote on an open proposal; a later vote replaces an earlier one.
    Vote {
        proposal: u64,
        choice: crate::gov::Choice,
    },
}

impl Call {
    /// Weight setting and serving pay no fee (R§11); they are rate limited instead. Votes
    /// are free too (a validator's hotkey usually holds no TAO): only accounts with voting
    /// power may vote, a vote replaces the voter's earlier one, and the mempool caps
    /// fee-free calls per sender.
    pub fn is_fee_free(&self) -> bool {
        matches!(
            self,
            Call::SetWeights { .. }
                | Call::CommitWeights { .. }
                | Call::RevealWeights { .. }
                | Call::Serve { .. }
                | Call::Vote { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Call::Transfer { .. } => "transfer",
            Call::RegisterNetwork { .. } => "register_network",
            Call::StartCall { .. } => "start_call",
            Call::BurnedRegister { .. } => "burned_register",
            Call::AddStake { .. } => "add_stake",
            Call::RemoveStake { .. } => "remove_stake",
            Call::SetWeights { .. } => "set_weights",
            Call::AddStakeLimit { .. } => "add_stake_limit",
            Call::RemoveStakeLimit { .. } => "remove_stake_limit",
            Call::RootRegister { .. } => "root_register",
            Call::MoveStake { .. } => "move_stake",
            Call::TransferStake { .. } => "transfer_stake",
            Call::SwapStake { .. } => "swap_stake",
            Call::UnstakeAll { .. } => "unstake_all",
            Call::IncreaseTake { .. } => "increase_take",
            Call::DecreaseTake { .. } => "decrease_take",
            Call::CommitWeights { .. } => "commit_weights",
            Call::RevealWeights { .. } => "reveal_weights",
            Call::Serve { .. } => "serve",
            Call::SetHyperparameter { .. } => "set_hyperparameter",
            Call::DissolveNetwork { .. } => "dissolve_network",
            Call::Propose { .. } => "propose",
            Call::Vote { .. } => "vote",
        }
    }
}

/// The signed part of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Transaction {
    pub chain_id: u64,
    pub signer: AccountId,
    pub nonce: u64,
    pub call: Call,
    /// Extra rao paid to the block proposer on top of the fee.
    pub tip: u64,
}

impl Transaction {
    /// `blake3("agora/tx/v1" || encode(self))`: the 32 bytes the signer signs.
    pub fn signing_payload(&self) -> Hash {
        hash_with_domain(TX_SIGNING_DOMAIN, &[&codec::canonical(self)])
    }

    pub fn sign(self, key: &Keypair) -> SignedTransaction {
        let signature = key.sign(&self.signing_payload().0);
        SignedTransaction {
            version: TX_VERSION,
            tx: self,
            signature,
        }
    }
}

/// A transaction with its signature, as carried on the wire and in blocks.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SignedTransaction {
    pub version: u8,
    pub tx: Transaction,
    pub signature: [u8; 64],
}

impl SignedTransaction {
    /// The canonical bytes; a transaction over [`MAX_TX_BYTES`] encodes, and is refused
    /// by every node's stateless check (and by decoding).
    pub fn encode(&self) -> Vec<u8> {
        codec::canonical(self)
    }

    /// Decode untrusted bytes: size-limited, exact, known version only.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let stx: SignedTransaction = codec::decode::<_, MAX_TX_BYTES>(bytes, "transaction")?;
        if stx.version != TX_VERSION {
            return Err(CodecError::Malformed {
                what: "transaction",
                reason: format!(
                    "unknown version {}, this node speaks {TX_VERSION}",
                    stx.version
                ),
            });
        }
        Ok(stx)
    }

    /// `blake3(wire bytes)`.
    pub fn hash(&self) -> Hash {
        Hash(*blake3::hash(&self.encode()).as_bytes())
    }

    pub fn encoded_len(&self) -> usize {
        self.encode().len()
    }

    pub fn verify_signature(&self) -> bool {
        self.tx
            .signer
            .verify(&self.tx.signing_payload().0, &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(nonce: u64, amount: u64, tip: u64) -> SignedTransaction {
        Transaction {
            chain_id: 7,
            signer: Keypair::dev("alice").account(),
            nonce,
            call: Call::Transfer {
                dest: Keypair::dev("bob").account(),
                amount,
            },
            tip,
        }
        .sign(&Keypair::dev("alice"))
    }

    #[test]
    fn transfer_is_165_bytes_in_the_documented_layout() {
        let stx = sample(3, 5, 0);
        let bytes = stx.encode();
        assert_eq!(bytes.len(), 165);
        assert_eq!(bytes[0], TX_VERSION);
        assert_eq!(&bytes[1..9], &7u64.to_le_bytes());
        assert_eq!(&bytes[9..41], &stx.tx.signer.0);
        assert_eq!(&bytes[41..49], &3u64.to_le_bytes());
        assert_eq!(&bytes[49..53], &0u32.to_le_bytes());
        assert_eq!(&bytes[85..93], &5u64.to_le_bytes());
        assert_eq!(&bytes[93..101], &0u64.to_le_bytes());
        assert_eq!(&bytes[101..165], &stx.signature);
        assert!(stx.verify_signature());
    }

    #[test]
    fn unknown_version_and_unknown_call_are_malformed() {
        let mut bytes = sample(0, 1, 0).encode();
        bytes[0] = 2;
        assert!(SignedTransaction::decode(&bytes).is_err());
        let mut bytes = sample(0, 1, 0).encode();
        bytes[49] = 200;
        assert!(SignedTransaction::decode(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn encoding_round_trips(nonce: u64, amount: u64, tip: u64) {
            let stx = sample(nonce, amount, tip);
            let back = SignedTransaction::decode(&stx.encode()).unwrap();
            prop_assert_eq!(&back, &stx);
            prop_assert!(back.verify_signature());
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = SignedTransaction::decode(&bytes);
        }
    }
}
