//! The ring buffer's reader: each record decoded with the common crate's safe decoder and
//! handed on without ever waiting, because a reader that blocks fills the ring and the kernel
//! then loses events for every connection.

use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use node_probe_common::{EVENTS_POLL_MS, PacketEvent};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use super::Stats;

/// Records read per wake-up before the task yields to the runtime's other work. The ring
/// holds about 6,000; a quarter of that keeps a busy ring from monopolising a worker.
const BATCH: usize = 1_536;

/// An event as the kernel wrote it, or `None` for a record this build cannot read: of
/// another size, or naming a kind, direction or prefix range this build does not know.
pub(crate) fn decode(record: &[u8]) -> Option<PacketEvent> {
    if record.len() != size_of::<PacketEvent>() {
        return None;
    }
    let event = PacketEvent::decode(record)?;
    let header = &event.header;
    (header.kind().is_some() && header.direction().is_some() && event.prefix().is_some())
        .then_some(event)
}

/// The ring, registered with the runtime's reactor (which must be entered).
pub(crate) fn register(ring: RingBuf<MapData>) -> std::io::Result<AsyncFd<RingBuf<MapData>>> {
    #[allow(unsafe_code, reason = "tokio's fd registration is unsafe; see SAFETY")]
    // SAFETY: the RingBuf owns its map's file descriptor: it stays open, and `as_raw_fd`
    // returns that same descriptor, for as long as the AsyncFd owns the RingBuf.
    let registered = unsafe { AsyncFd::register(ring) };
    registered.map_err(std::io::Error::from)
}

/// Reads `ring` until `stop` changes, then reads what is left and returns.
pub(crate) async fn run(
    mut ring: AsyncFd<RingBuf<MapData>>,
    events: mpsc::Sender<PacketEvent>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    // The programs wake this reader only when the ring is filling (EVENTS_WAKEUP_BYTES); below
    // that it reads on this timer.
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(EVENTS_POLL_MS));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                while !drain(ring.get_mut(), &events, &stats, BATCH) {
                    tokio::task::yield_now().await;
                }
            }
            ready = ring.readable_mut() => {
                let mut guard = match ready {
                    Ok(guard) => guard,
                    Err(error) => {
                        tracing::error!(%error, "polling the ring buffer failed; no more events");
                        return;
                    }
                };
                if drain(guard.get_inner_mut(), &events, &stats, BATCH) {
                    // Empty: wait for the kernel's next wake-up.
                    guard.clear_ready();
                } else {
                    tokio::task::yield_now().await;
                }
            }
            _ = stop.changed() => break,
        }
    }
    // The links are detached by now: what is in the ring is all there will be.
    drain(ring.get_mut(), &events, &stats, usize::MAX);
}

/// Reads up to `limit` records; whether the ring is empty.
fn drain(
    ring: &mut RingBuf<MapData>,
    events: &mpsc::Sender<PacketEvent>,
    stats: &Stats,
    limit: usize,
) -> bool {
    for _ in 0..limit {
        let Some(record) = ring.next() else {
            return true;
        };
        stats.count(&stats.ring_records);
        let Some(event) = decode(&record) else {
            stats.count(&stats.undecodable);
            continue;
        };
        // Full or closed alike: the event is dropped and counted, never waited for.
        if events.try_send(event).is_err() {
            stats.count(&stats.channel_dropped);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_probe_common::{Direction, EventKind, PREFIX_LEN};

    /// A record laid out as the kernel writes it (offsets from node-probe-common's layout
    /// tests): a request start whose payload is `payload`, at `start` in the prefix.
    fn record(kind: u8, direction: u8, start: u16, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 144 + PREFIX_LEN];
        bytes[..8].copy_from_slice(&7u64.to_ne_bytes());
        bytes[132..136].copy_from_slice(&(payload.len() as u32).to_ne_bytes());
        bytes[136] = kind;
        bytes[137] = direction;
        bytes[140..142].copy_from_slice(&start.to_ne_bytes());
        bytes[142..144].copy_from_slice(&(payload.len() as u16).to_ne_bytes());
        let at = 144 + usize::from(start);
        bytes[at..at + payload.len()].copy_from_slice(payload);
        bytes
    }

    #[test]
    fn a_record_of_the_kernel_decodes() {
        let bytes = record(1, 2, 10, b"GET / HTTP/1.1\r\n\r\n");
        let event = decode(&bytes).unwrap();
        assert_eq!(event.header.ktime_ns, 7);
        assert_eq!(event.header.kind(), Some(EventKind::RequestStart));
        assert_eq!(event.header.direction(), Some(Direction::ToWorkload));
        assert_eq!(event.prefix(), Some(&b"GET / HTTP/1.1\r\n\r\n"[..]));
    }

    #[test]
    fn records_this_build_cannot_read_are_refused() {
        let good = record(1, 2, 0, b"GET / HTTP/1.1\r\n\r\n");
        assert!(decode(&good[..good.len() - 1]).is_none(), "short");
        let mut long = good.clone();
        long.push(0);
        assert!(decode(&long).is_none(), "long");
        assert!(decode(&record(0, 2, 0, b"")).is_none(), "no kind");
        assert!(decode(&record(7, 2, 0, b"")).is_none(), "unknown kind");
        assert!(decode(&record(1, 3, 0, b"")).is_none(), "unknown direction");
        let mut past_end = good;
        past_end[140..142].copy_from_slice(&(PREFIX_LEN as u16).to_ne_bytes());
        assert!(decode(&past_end).is_none(), "prefix range past the array");
        for len in 0..=size_of::<PacketEvent>() {
            let _ = decode(&vec![0xff; len]);
        }
    }
}
