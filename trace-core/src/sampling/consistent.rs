//! OpenTelemetry consistent probability sampling: 56-bit randomness compared against a
//! rejection threshold, with the threshold carried as `th` in the `ot` tracestate member.

use core::fmt;

use crate::id::TraceId;
use crate::w3c::TraceState;

/// 2^56: the number of distinct randomness values.
const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
const HEX_DIGITS: usize = 14;
/// The smallest probability a threshold can express: one randomness value in 2^56 is kept.
const MIN_PROBABILITY: f64 = 1.0 / MAX_ADJUSTED_COUNT as f64;
/// The tracestate key OpenTelemetry owns.
pub const OT_KEY: &str = "ot";

/// A rejection threshold in `[0, 2^56]`: a trace is sampled when its randomness is at least
/// the threshold. 0 samples everything.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Threshold(u64);

impl Threshold {
    /// Samples everything (`th:0`).
    pub const ALWAYS: Self = Self(0);

    /// The threshold for probability `p`, rounded to `precision` significant hex digits the
    /// way the Collector's `ProbabilityToThresholdWithPrecision` rounds it, bit for bit.
    ///
    /// Leading `f` digits (`p` near 0) and leading `0` digits (`p` near 1) are not significant:
    /// each adds a digit, so 1 % at precision 4 is `fd70a`. As in the Collector, precision 0
    /// means all 14 digits, and precision never exceeds 14. The Collector refuses a `p` outside
    /// `[2^-56, 1]` and then samples everything; here a `p` below 2^-56 is raised to it, and a
    /// `p` above 1 or NaN samples everything.
    pub fn from_probability(p: f64, precision: u8) -> Self {
        if p.is_nan() || p >= 1.0 {
            return Self::ALWAYS;
        }
        let p = p.max(MIN_PROBABILITY);
        let requested = match precision {
            0 => HEX_DIGITS,
            digits => usize::from(digits),
        };
        // Frexp exponents here are at most 1 (for `1 - p` rounded up to 1.0), and Go's integer
        // division truncates toward zero, so every count is 0 or more; Rust's `/` truncates too.
        let leading = |x: f64| (frexp_exponent(x) / -4).unsigned_abs() as usize;
        let digits = (requested + leading(p).max(leading(1.0 - p))).min(HEX_DIGITS);
        // p < 1, so `scaled` < 2^56; the product is exact and `round` breaks ties away from
        // zero, like Go's `math.Round`.
        let scaled = (p * MAX_ADJUSTED_COUNT as f64).round() as u64;
        let threshold = MAX_ADJUSTED_COUNT.saturating_sub(scaled);
        let shift = 4 * (HEX_DIGITS - digits);
        match shift.checked_sub(1) {
            None => Self(threshold),
            Some(below) => {
                let half = 1u64 << below;
                Self(((threshold + half) >> shift) << shift)
            }
        }
    }

    /// Parses a `th` value: 1 to 14 lowercase hex digits with trailing zeros omitted.
    pub fn parse(tvalue: &str) -> Option<Self> {
        if tvalue.is_empty() || tvalue.len() > HEX_DIGITS {
            return None;
        }
        let mut value = 0u64;
        for byte in tvalue.bytes() {
            value = (value << 4) | u64::from(crate::hex::digit(byte)?);
        }
        Some(Self(value << (4 * (HEX_DIGITS - tvalue.len()))))
    }

    /// Whether a trace with this randomness is sampled.
    #[inline]
    pub fn should_sample(self, randomness: u64) -> bool {
        randomness >= self.0
    }

    /// The sampling probability this threshold stands for.
    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED_COUNT - self.0) as f64 / MAX_ADJUSTED_COUNT as f64
    }
}

impl fmt::Display for Threshold {
    /// The `th` encoding: 14 hex digits with trailing zeros removed, `0` for always.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        let digits = format!("{:014x}", self.0);
        f.write_str(digits.trim_end_matches('0'))
    }
}

/// The fields of the `ot` tracestate member this crate uses, and the rest kept verbatim.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct OtelTraceState {
    /// `th`, when present and well-formed.
    pub threshold: Option<Threshold>,
    /// `rv`, explicit randomness, when present and well-formed (14 hex digits).
    pub randomness: Option<u64>,
    /// Other `key:value` fields, in order.
    rest: Vec<String>,
}

impl OtelTraceState {
    /// Reads the `ot` member of `trace_state`. Malformed `th` or `rv` fields are ignored.
    pub fn from_trace_state(trace_state: &TraceState) -> Self {
        trace_state.get(OT_KEY).map(Self::parse).unwrap_or_default()
    }

    /// Parses an `ot` value such as `th:c;rv:0123456789abcd`.
    pub fn parse(value: &str) -> Self {
        let mut out = Self::default();
        for field in value.split(';').filter(|f| !f.is_empty()) {
            match field.split_once(':') {
                Some(("th", th)) => out.threshold = Threshold::parse(th),
                Some(("rv", rv)) if rv.len() == HEX_DIGITS => {
                    out.randomness = u64::from_str_radix(rv, 16)
                        .ok()
                        .filter(|_| rv.bytes().all(|b| crate::hex::digit(b).is_some()));
                }
                Some(("rv", _)) => {}
                _ => out.rest.push(field.to_owned()),
            }
        }
        out
    }

    /// Writes this back into `trace_state` as its first member, or removes the member when it
    /// has nothing left or cannot be written.
    pub fn store(&self, trace_state: &mut TraceState) {
        let value = self.to_string();
        if value.is_empty() || trace_state.insert_first(OT_KEY, &value).is_err() {
            trace_state.remove(OT_KEY);
        }
    }
}

impl fmt::Display for OtelTraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fields = Vec::with_capacity(2 + self.rest.len());
        if let Some(th) = self.threshold {
            fields.push(format!("th:{th}"));
        }
        if let Some(rv) = self.randomness {
            fields.push(format!("rv:{rv:014x}"));
        }
        fields.extend(self.rest.iter().cloned());
        f.write_str(&fields.join(";"))
    }
}

/// The binary exponent `e` of `x = m * 2^e` with `m` in `[0.5, 1)`, as Go's `math.Frexp`
/// returns it, for the positive normal numbers `from_probability` passes (2^-56 and up).
fn frexp_exponent(x: f64) -> i32 {
    // 11 bits of biased exponent; 1022 rather than IEEE's bias of 1023 because the mantissa
    // is taken in [0.5, 1) rather than [1, 2).
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1022
}

/// The randomness of a trace: explicit `rv` when present, else the trace ID's low 56 bits.
pub fn randomness(trace_id: &TraceId, ot: &OtelTraceState) -> u64 {
    ot.randomness.unwrap_or_else(|| trace_id.randomness())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frexp_exponent_matches_go() {
        assert_eq!(frexp_exponent(1.0), 1);
        assert_eq!(frexp_exponent(0.5), 0);
        assert_eq!(frexp_exponent(0.999), 0);
        assert_eq!(frexp_exponent(0.01), -6);
        assert_eq!(frexp_exponent(MIN_PROBABILITY), -55);
    }

    #[test]
    fn out_of_range_probabilities_do_not_panic() {
        assert_eq!(Threshold::from_probability(f64::NAN, 4), Threshold::ALWAYS);
        assert_eq!(Threshold::from_probability(2.0, 4), Threshold::ALWAYS);
        let min = "ffffffffffffff";
        for p in [0.0, -1.0, f64::MIN_POSITIVE, MIN_PROBABILITY / 2.0] {
            assert_eq!(Threshold::from_probability(p, 4).to_string(), min, "{p}");
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        for th in ["0", "8", "c", "e666", "fd71", "ffffffffffffff"] {
            assert_eq!(Threshold::parse(th).unwrap().to_string(), th);
        }
        assert_eq!(Threshold::parse(""), None);
        assert_eq!(Threshold::parse("E666"), None);
        assert_eq!(Threshold::parse("fffffffffffffff"), None);
    }

    #[test]
    fn decision_compares_randomness_with_threshold() {
        let half = Threshold::parse("8").unwrap();
        assert!(half.should_sample(0x80_0000_0000_0000));
        assert!(!half.should_sample(0x7f_ffff_ffff_ffff));
        assert!(Threshold::ALWAYS.should_sample(0));
        assert!((half.probability() - 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn ot_member_keeps_unknown_fields_and_rewrites_th() {
        let mut ts = TraceState::parse(b"vendor=x,ot=th:8;rv:0123456789abcd;zz:keep").unwrap();
        let mut ot = OtelTraceState::from_trace_state(&ts);
        assert_eq!(ot.threshold, Threshold::parse("8"));
        assert_eq!(ot.randomness, Some(0x0001_2345_6789_abcd));
        ot.threshold = Some(Threshold::parse("c").unwrap());
        ot.store(&mut ts);
        assert_eq!(ts.as_str(), "ot=th:c;rv:0123456789abcd;zz:keep,vendor=x");
        let empty = OtelTraceState::default();
        empty.store(&mut ts);
        assert_eq!(ts.as_str(), "vendor=x");
    }
}
