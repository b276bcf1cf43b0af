//! Every table (RocksDB column family) in one place. Integer keys are big-endian so that
//! byte order is numeric order.

/// A table of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Named rows: schema version, genesis hash, head height, state accumulator.
    Meta,
    /// height (u64 BE) -> encoded block.
    Blocks,
    /// block hash -> height (u64 BE).
    BlockIndex,
    /// height (u64 BE) -> encoded finality certificate of that block.
    Certs,
    /// tx hash -> height (u64 BE) || index (u32 BE).
    Txs,
    /// state key -> state value (the ledger: accounts, supply, ...).
    State,
    /// This validator's own signed consensus messages for undecided heights (the vote
    /// write-ahead log): height (u64 BE) || round (u32 BE) || slot (u8: 0 proposal,
    /// 1 prevote, 2 precommit) -> encoded message. Rows at or below the head are deleted
    /// in the commit batch.
    ConsensusWal,
}

impl Table {
    pub const ALL: [Table; 7] = [
        Table::Meta,
        Table::Blocks,
        Table::BlockIndex,
        Table::Certs,
        Table::Txs,
        Table::State,
        Table::ConsensusWal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Blocks => "blocks",
            Table::BlockIndex => "block_index",
            Table::Certs => "certs",
            Table::Txs => "txs",
            Table::State => "state",
            Table::ConsensusWal => "consensus_wal",
        }
    }
}

/// Rows of [`Table::Meta`].
pub mod meta {
    pub const SCHEMA_VERSION: &[u8] = b"schema_version";
    pub const GENESIS_HASH: &[u8] = b"genesis_hash";
    /// Height of the last committed (finalized) block.
    pub const HEAD: &[u8] = b"head";
    /// The lattice-hash accumulator of the state after the head block.
    pub const STATE_LTHASH: &[u8] = b"state_lthash";
}

/// Current on-disk schema. Bump on any change of table layout or encoding.
pub const SCHEMA_VERSION: u32 = 2;

pub fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

pub fn tx_location(height: u64, index: u32) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&height.to_be_bytes());
    v[8..].copy_from_slice(&index.to_be_bytes());
    v
}
