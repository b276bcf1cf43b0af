//! Integration tests: the real binary, real RocksDB, real sockets on loopback.

mod compose;
mod compute;
mod dashboard;
mod dev_node;
mod fuzz;
mod gov;
mod harness;
mod market;
mod mempool;
mod network;
mod neurons;
mod rpc_errors;
mod sim;
mod subscribe;
mod testnet_up;
