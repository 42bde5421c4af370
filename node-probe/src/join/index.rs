//! The sidecar spans received within the join window, by the 4-tuple of their upstream
//! connection. Bounded: when full, the oldest entry goes first.

use std::collections::{HashMap, VecDeque};

use super::sidecar::{SidecarSpan, Tuple};

/// Sidecar spans by tuple, each kept until its expiry.
#[derive(Debug)]
pub struct Index {
    by_tuple: HashMap<Tuple, Vec<SidecarSpan>>,
    /// `(expiry, tuple, span start)` in arrival order, which is expiry order.
    expiries: VecDeque<(u64, Tuple, u64)>,
    capacity: usize,
}

impl Index {
    /// An index of at most `capacity` spans.
    pub fn new(capacity: usize) -> Self {
        Self {
            by_tuple: HashMap::new(),
            expiries: VecDeque::new(),
            capacity,
        }
    }

    /// Adds a span, kept until `expires`; returns whether an older span was evicted to make
    /// room.
    pub fn insert(&mut self, span: SidecarSpan, expires: u64) -> bool {
        let evicted = self.expiries.len() >= self.capacity;
        if evicted {
            self.pop_oldest();
        }
        if self.capacity == 0 {
            return evicted;
        }
        self.expiries
            .push_back((expires, span.tuple, span.start_unix_nano));
        self.by_tuple.entry(span.tuple).or_default().push(span);
        evicted
    }

    /// The innermost span of `tuple` whose window covers `[start, end]` give or take `slack`.
    pub fn find(&self, tuple: &Tuple, start: u64, end: u64, slack: u64) -> Option<&SidecarSpan> {
        self.by_tuple
            .get(tuple)?
            .iter()
            .filter(|s| s.covers(start, end, slack))
            .max_by_key(|s| s.start_unix_nano)
    }

    /// Forgets what expired by `now`.
    pub fn expire(&mut self, now: u64) {
        while self.expiries.front().is_some_and(|(at, _, _)| *at <= now) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((_, tuple, start)) = self.expiries.pop_front() else {
            return;
        };
        if let Some(spans) = self.by_tuple.get_mut(&tuple) {
            if let Some(at) = spans.iter().position(|s| s.start_unix_nano == start) {
                spans.swap_remove(at);
            }
            if spans.is_empty() {
                self.by_tuple.remove(&tuple);
            }
        }
    }

    /// Spans held.
    pub fn len(&self) -> usize {
        self.expiries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.expiries.is_empty()
    }
}
