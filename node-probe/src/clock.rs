//! Kernel times (`bpf_ktime_get_ns`, `CLOCK_MONOTONIC`) to wall-clock times.
//!
//! The offset between the two clocks is sampled by reading the monotonic clock, the wall clock
//! and the monotonic clock again, and taking the middle of the two monotonic readings, so its
//! error is at most half that read. It is sampled again every [`KernelClock::RESAMPLE_NS`]: the
//! wall clock is slewed by NTP (up to 500 ppm), so an offset kept for a second is off by at most
//! 0.5 ms, and a step of the wall clock is followed within a second. Only this host's clocks are
//! read; a guest's own clock never enters a span.

/// Reads the two clocks. A trait so that tests can drive time.
pub trait ClockSource: Send + Sync {
    /// `CLOCK_MONOTONIC`, in nanoseconds: what `bpf_ktime_get_ns` returns.
    fn monotonic_ns(&self) -> u64;
    /// Unix time, in nanoseconds.
    fn wall_ns(&self) -> u64;
}

/// The host's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClocks;

impl ClockSource for SystemClocks {
    fn monotonic_ns(&self) -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(nanos)
    }

    fn wall_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// The monotonic-to-wall offset, sampled again as time passes.
#[derive(Debug)]
pub struct KernelClock<S> {
    source: S,
    /// Wall minus monotonic, in nanoseconds.
    offset_ns: i128,
    sampled_at_ns: u64,
    /// Offset changes larger than [`KernelClock::STEP_NS`] seen so far.
    steps: u64,
}

impl<S: ClockSource> KernelClock<S> {
    /// How often the offset is sampled again.
    pub const RESAMPLE_NS: u64 = 1_000_000_000;
    /// A change of the offset larger than this between two samples is a step of the wall
    /// clock (NTP's slew alone moves it by at most 0.5 ms a second), and is counted.
    pub const STEP_NS: u64 = 10_000_000;

    /// A clock with a first sample taken now.
    pub fn new(source: S) -> Self {
        let (offset_ns, sampled_at_ns) = sample(&source);
        Self {
            source,
            offset_ns,
            sampled_at_ns,
            steps: 0,
        }
    }

    /// The monotonic clock now, sampling the offset again when it is due.
    pub fn now_monotonic_ns(&mut self) -> u64 {
        let now = self.source.monotonic_ns();
        if now.saturating_sub(self.sampled_at_ns) >= Self::RESAMPLE_NS {
            self.resample();
        }
        now
    }

    /// Samples the offset now.
    pub fn resample(&mut self) {
        let (offset_ns, sampled_at_ns) = sample(&self.source);
        if offset_ns.abs_diff(self.offset_ns) > u128::from(Self::STEP_NS) {
            self.steps += 1;
        }
        self.offset_ns = offset_ns;
        self.sampled_at_ns = sampled_at_ns;
    }

    /// The Unix time of a kernel timestamp.
    pub fn to_unix_ns(&self, ktime_ns: u64) -> u64 {
        let unix = i128::from(ktime_ns) + self.offset_ns;
        u64::try_from(unix.max(0)).unwrap_or(u64::MAX)
    }

    /// Steps of the wall clock seen (see [`KernelClock::STEP_NS`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The clocks it reads.
    pub fn source(&self) -> &S {
        &self.source
    }
}

/// One offset sample and the monotonic time it stands for.
fn sample<S: ClockSource>(source: &S) -> (i128, u64) {
    let before = source.monotonic_ns();
    let wall = source.wall_ns();
    let after = source.monotonic_ns();
    let middle = before + after.saturating_sub(before) / 2;
    (i128::from(wall) - i128::from(middle), middle)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Clocks a test sets: monotonic from 0, wall at a fixed distance that the test can move.
    #[derive(Clone, Default)]
    pub struct TestClocks {
        pub mono: Arc<AtomicU64>,
        pub wall_minus_mono: Arc<AtomicU64>,
    }

    impl ClockSource for TestClocks {
        fn monotonic_ns(&self) -> u64 {
            self.mono.load(Ordering::Relaxed)
        }
        fn wall_ns(&self) -> u64 {
            self.mono.load(Ordering::Relaxed) + self.wall_minus_mono.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn system_clocks_agree_with_std_within_a_millisecond() {
        let clock = KernelClock::new(SystemClocks);
        let mono = SystemClocks.monotonic_ns();
        let converted = clock.to_unix_ns(mono);
        let wall = SystemClocks.wall_ns();
        assert!(
            wall.abs_diff(converted) < 1_000_000,
            "{wall} vs {converted}"
        );
        // std's Instant is CLOCK_MONOTONIC on Linux too: a second reading does not go back.
        assert!(SystemClocks.monotonic_ns() >= mono);
    }

    #[test]
    fn the_offset_follows_the_wall_clock_once_resampled() {
        let clocks = TestClocks::default();
        clocks.mono.store(5_000_000_000, Ordering::Relaxed);
        clocks
            .wall_minus_mono
            .store(1_700_000_000_000_000_000, Ordering::Relaxed);
        let mut clock = KernelClock::new(clocks.clone());
        assert_eq!(clock.to_unix_ns(6_000_000_000), 1_700_000_006_000_000_000);
        // The wall clock steps by a minute; within the resample interval the old offset holds.
        clocks
            .wall_minus_mono
            .store(1_700_000_060_000_000_000, Ordering::Relaxed);
        clocks.mono.store(5_500_000_000, Ordering::Relaxed);
        clock.now_monotonic_ns();
        assert_eq!(clock.to_unix_ns(6_000_000_000), 1_700_000_006_000_000_000);
        clocks.mono.store(6_000_000_001, Ordering::Relaxed);
        assert_eq!(clock.now_monotonic_ns(), 6_000_000_001);
        assert_eq!(clock.to_unix_ns(6_000_000_000), 1_700_000_066_000_000_000);
        assert_eq!(clock.steps(), 1);
        assert_eq!(clock.to_unix_ns(0), 1_700_000_060_000_000_000);
    }
}
