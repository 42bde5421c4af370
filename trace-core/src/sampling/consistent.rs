//! OpenTelemetry consistent probability sampling: 56-bit randomness compared against a
//! rejection threshold, with the threshold carried as `th` in the `ot` tracestate member.

use core::fmt;

use crate::id::TraceId;
use crate::w3c::TraceState;

/// 2^56: the number of distinct randomness values.
const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
const HEX_DIGITS: usize = 14;
/// The tracestate key OpenTelemetry owns.
pub const OT_KEY: &str = "ot";

/// A rejection threshold in `[0, 2^56]`: a trace is sampled when its randomness is at least
/// the threshold. 0 samples everything.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Threshold(u64);

impl Threshold {
    /// Samples everything (`th:0`).
    pub const ALWAYS: Self = Self(0);

    /// The threshold for probability `p` in `(0, 1]`, rounded to `precision` significant hex
    /// digits (1 to 14) the way the Collector rounds it. Probabilities below 2^-56 are raised
    /// to 2^-56.
    pub fn from_probability(p: f64, precision: u8) -> Self {
        let p = p.clamp(1.0 / MAX_ADJUSTED_COUNT as f64, 1.0);
        if p >= 1.0 {
            return Self::ALWAYS;
        }
        let mut precision = u32::from(precision.clamp(1, HEX_DIGITS as u8));
        // Leading zero digits of the rejection probability do not count towards precision.
        let mut reject = 1.0 - p;
        while reject * 16.0 < 1.0 && precision < HEX_DIGITS as u32 {
            reject *= 16.0;
            precision += 1;
        }
        let scaled = (p * MAX_ADJUSTED_COUNT as f64).round() as u64;
        let unrounded = MAX_ADJUSTED_COUNT - scaled.min(MAX_ADJUSTED_COUNT);
        let shift = 4 * (HEX_DIGITS as u32 - precision);
        if shift == 0 {
            return Self(unrounded);
        }
        let half = 1u64 << (shift - 1);
        Self(((unrounded + half) >> shift) << shift)
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

/// The randomness of a trace: explicit `rv` when present, else the trace ID's low 56 bits.
pub fn randomness(trace_id: &TraceId, ot: &OtelTraceState) -> u64 {
    ot.randomness.unwrap_or_else(|| trace_id.randomness())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_the_specification_examples() {
        // Examples from the OpenTelemetry tracestate probability sampling specification.
        assert_eq!(Threshold::from_probability(1.0, 4).to_string(), "0");
        assert_eq!(Threshold::from_probability(0.5, 4).to_string(), "8");
        assert_eq!(Threshold::from_probability(0.25, 4).to_string(), "c");
        assert_eq!(Threshold::from_probability(0.1, 4).to_string(), "e666");
        assert_eq!(Threshold::from_probability(0.01, 4).to_string(), "fd71");
        assert_eq!(
            Threshold::from_probability(1.0 / 3.0, 4).to_string(),
            "aaab"
        );
        assert_eq!(Threshold::from_probability(0.001, 4).to_string(), "ffbe");
        assert_eq!(Threshold::from_probability(0.001, 5).to_string(), "ffbe7");
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
