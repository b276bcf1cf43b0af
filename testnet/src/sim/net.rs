//! The simulated network: a seeded discrete-event queue with per-link latency and jitter,
//! loss, duplication (reordering follows from jitter), and partitions.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use agora_core::consensus::Timeout;

use crate::rng::Rng;

/// What travels between simulated nodes.
#[derive(Debug, Clone)]
pub enum Packet {
    /// An encoded consensus message (or bytes pretending to be one).
    Consensus(Vec<u8>),
    /// Sync: "send me your finalized blocks from `from` on" (request-response: reliable).
    SyncRequest { from: u64 },
}

#[derive(Debug, Clone)]
pub enum Event {
    Deliver {
        to: usize,
        from: usize,
        packet: Packet,
    },
    Timer {
        node: usize,
        generation: u64,
        timeout: Timeout,
    },
    /// A leader's block time has come: build the block for `(height, round)`.
    Build {
        node: usize,
        generation: u64,
        height: u64,
        round: u32,
    },
    /// A byzantine node's own clock (replaying, sending garbage).
    Tick {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    /// Nodes in different groups cannot reach each other until `Heal`.
    Partition {
        groups: Vec<u8>,
    },
    Heal,
    /// A client submits a transfer to `node`'s mempool.
    Submit {
        node: usize,
    },
}

/// Link behaviour for one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Probability that a consensus packet is lost.
    pub loss: f64,
    /// Probability that a delivered consensus packet arrives twice.
    pub duplicate: f64,
}

pub struct Net {
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    free: Vec<usize>,
    seq: u64,
    pub now_ms: u64,
    pub link: LinkModel,
    /// Partition group of each node; equal groups can talk.
    groups: Vec<u8>,
    /// Extra one-way delay of each directed link (from * nodes + to), drawn per run: links
    /// differ, as they do between real machines.
    link_extra_ms: Vec<u64>,
    pub sent: u64,
    pub lost: u64,
}

impl Net {
    pub fn new(nodes: usize, link: LinkModel) -> Self {
        Net {
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            seq: 0,
            now_ms: 0,
            link,
            groups: vec![0; nodes],
            link_extra_ms: vec![0; nodes * nodes],
            sent: 0,
            lost: 0,
        }
    }

    pub fn at(&mut self, time_ms: u64, event: Event) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.events[i] = Some(event);
                i
            }
            None => {
                self.events.push(Some(event));
                self.events.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((time_ms, self.seq, slot)));
    }

    pub fn after(&mut self, delay_ms: u64, event: Event) {
        let t = self.now_ms.saturating_add(delay_ms);
        self.at(t, event);
    }

    /// The next event in time order (ties in scheduling order), advancing the clock.
    pub fn pop(&mut self) -> Option<(u64, Event)> {
        let Reverse((t, _, slot)) = self.queue.pop()?;
        self.now_ms = t;
        let event = self.events[slot].take();
        self.free.push(slot);
        event.map(|e| (t, e))
    }

    /// Give every directed link its own extra delay, up to `max_ms`.
    pub fn vary_links(&mut self, rng: &mut Rng, max_ms: u64) {
        for d in &mut self.link_extra_ms {
            *d = rng.next_u64() % (max_ms + 1);
        }
    }

    fn link_delay(&self, from: usize, to: usize) -> u64 {
        let n = self.groups.len();
        self.link.delay_ms + self.link_extra_ms.get(from * n + to).copied().unwrap_or(0)
    }

    pub fn partition(&mut self, groups: Vec<u8>) {
        self.groups = groups;
    }

    pub fn heal(&mut self) {
        self.groups.iter_mut().for_each(|g| *g = 0);
    }

    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.groups[a] == self.groups[b]
    }

    /// Send `packet` from `from` to `to` through the link model.
    pub fn send(&mut self, rng: &mut Rng, from: usize, to: usize, packet: Packet) {
        self.sent += 1;
        if !self.connected(from, to) {
            self.lost += 1;
            return;
        }
        let reliable = matches!(packet, Packet::SyncRequest { .. });
        if !reliable && rng.unit() < self.link.loss {
            self.lost += 1;
            return;
        }
        let copies = if !reliable && rng.unit() < self.link.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.link.jitter_ms > 0 {
                rng.next_u64() % (self.link.jitter_ms + 1)
            } else {
                0
            };
            self.after(
                self.link_delay(from, to) + jitter,
                Event::Deliver {
                    to,
                    from,
                    packet: packet.clone(),
                },
            );
        }
    }

    /// A reliable stream (sync responses): partitions still cut it, loss does not.
    pub fn send_reliable(&mut self, from: usize, to: usize, packet: Packet) {
        self.sent += 1;
        if !self.connected(from, to) {
            self.lost += 1;
            return;
        }
        self.after(
            self.link_delay(from, to),
            Event::Deliver { to, from, packet },
        );
    }
}
