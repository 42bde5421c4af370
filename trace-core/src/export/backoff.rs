//! Exponential backoff with jitter between export attempts.

/// The longest a server's throttling hint is followed. A collector asking for more would have a
/// retrying batch hold buffer room for minutes; past this the batch is retried anyway.
pub const MAX_THROTTLE_MS: u64 = 60_000;

/// Delays between attempts: `initial_ms`, doubling per failure up to `max_ms`, each spread by
/// ±50 % jitter so that proxies that failed together do not retry together.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Backoff {
    /// The delay after the first failure.
    pub initial_ms: u64,
    /// The longest delay.
    pub max_ms: u64,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 5 s: the figures the OpenTelemetry SDKs use for OTLP retries
    /// (1 s initial there; the edge's batches are smaller and a first retry sooner is cheap).
    fn default() -> Self {
        Self {
            initial_ms: 100,
            max_ms: 5_000,
        }
    }
}

impl Backoff {
    /// The delay before the attempt after `failures` failures (1 for the first retry).
    /// `random` is any uniformly random number; the server's `throttle_ms`, when it sent one,
    /// replaces the computed delay (bounded by [`MAX_THROTTLE_MS`]).
    pub fn delay_ms(&self, failures: u32, random: u64, throttle_ms: Option<u64>) -> u64 {
        if let Some(hint) = throttle_ms {
            return hint.min(MAX_THROTTLE_MS);
        }
        let doublings = failures.saturating_sub(1).min(32);
        let base = self
            .initial_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_ms)
            .max(1);
        // Uniform in [base/2, base*3/2], never above max_ms.
        let spread = base / 2;
        let jitter = random % (2 * spread + 1);
        (base - spread)
            .saturating_add(jitter)
            .min(self.max_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_within_the_jitter() {
        let backoff = Backoff {
            initial_ms: 100,
            max_ms: 1_000,
        };
        for (failures, base) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let low = backoff.delay_ms(failures, 0, None);
            let high = backoff.delay_ms(failures, u64::MAX - 1, None);
            assert_eq!(low, base / 2, "failures {failures}");
            assert!(
                high <= (base * 3 / 2).min(1000),
                "failures {failures}: {high}"
            );
            assert!(high > low, "jitter spreads the delay");
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let backoff = Backoff::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut x = 1u64;
        for _ in 0..1000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let delay = backoff.delay_ms(3, x, None);
            assert!((200..=600).contains(&delay), "{delay}");
            seen.insert(delay);
        }
        assert!(seen.len() > 100, "only {} distinct delays", seen.len());
    }

    #[test]
    fn a_throttling_hint_replaces_the_delay_within_its_bound() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay_ms(1, 7, Some(2_500)), 2_500);
        assert_eq!(backoff.delay_ms(9, 7, Some(0)), 0);
        assert_eq!(backoff.delay_ms(1, 7, Some(u64::MAX)), MAX_THROTTLE_MS);
    }

    #[test]
    fn degenerate_settings_do_not_overflow() {
        let zero = Backoff {
            initial_ms: 0,
            max_ms: 0,
        };
        assert_eq!(zero.delay_ms(5, u64::MAX, None), 1);
        let huge = Backoff {
            initial_ms: u64::MAX,
            max_ms: u64::MAX,
        };
        assert!(huge.delay_ms(u32::MAX, u64::MAX, None) > 0);
    }
}
