//! Sampling: one decision per trace, made where the trace starts and followed downstream.

mod consistent;
mod hash_seed;

pub use consistent::{OT_KEY, OtelTraceState, Threshold, randomness};
pub use hash_seed::HashSeedSampler;

use crate::config::{FieldError, check_ranges};
use crate::context::SpanContext;
use crate::id::TraceId;

/// How a trace that starts here is sampled.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum RootSampler {
    /// Keep every trace.
    AlwaysOn,
    /// Keep no trace.
    AlwaysOff,
    /// The Collector's `hash_seed` mode.
    HashSeed(HashSeedSampler),
    /// Consistent probability sampling, recording `th` in the `ot` tracestate member.
    Proportional(Threshold),
}

/// The sampling policy of a component.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Sampler {
    /// Decides for traces that start here, and for callers that sent no decision.
    pub root: RootSampler,
    /// Follow the caller's decision when it sent one.
    pub parent_based: bool,
}

/// The outcome of a sampling decision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision {
    /// Whether the trace is kept.
    pub sampled: bool,
    /// The threshold to record in `ot=th:…`, for proportional root decisions.
    threshold: Option<Threshold>,
}

impl Sampler {
    /// Decides for a span whose caller sent `parent_sampled` (`None` for no decision) and,
    /// when continuing a trace, `trace_state`.
    #[inline]
    pub fn decide(
        &self,
        trace_id: &TraceId,
        parent_sampled: Option<bool>,
        context: Option<&SpanContext>,
    ) -> Decision {
        if let (true, Some(sampled)) = (self.parent_based, parent_sampled) {
            return Decision {
                sampled,
                threshold: None,
            };
        }
        match self.root {
            RootSampler::AlwaysOn => Decision::keep(true),
            RootSampler::AlwaysOff => Decision::keep(false),
            RootSampler::HashSeed(sampler) => Decision::keep(sampler.should_sample(trace_id)),
            RootSampler::Proportional(threshold) => {
                let ot = context
                    .map(|c| OtelTraceState::from_trace_state(&c.trace_state))
                    .unwrap_or_default();
                let sampled = threshold.should_sample(randomness(trace_id, &ot));
                Decision {
                    sampled,
                    threshold: Some(threshold),
                }
            }
        }
    }
}

impl Decision {
    const fn keep(sampled: bool) -> Self {
        Self {
            sampled,
            threshold: None,
        }
    }

    /// Records this decision in `context`: the sampled flag, and for a proportional decision
    /// the `th` field (set when sampled, erased when not, as the specification asks).
    pub fn apply(&self, context: &mut SpanContext) {
        context.flags = context.flags.with_sampled(self.sampled);
        let Some(threshold) = self.threshold else {
            return;
        };
        let mut ot = OtelTraceState::from_trace_state(&context.trace_state);
        ot.threshold = self.sampled.then_some(threshold);
        ot.store(&mut context.trace_state);
    }
}

/// Which root sampler to use.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SamplingMode {
    /// The Collector's `hash_seed` mode (the default: agents and Collectors that share a seed
    /// keep the same traces).
    #[default]
    HashSeed,
    /// OpenTelemetry consistent probability sampling.
    Proportional,
    /// Keep everything.
    AlwaysOn,
    /// Keep nothing.
    AlwaysOff,
}

/// Sampling settings, as they appear in every component's configuration.
///
/// ```toml
/// [sampling]
/// mode = "hash_seed"      # hash_seed | proportional | always_on | always_off
/// percentage = 10.0       # 0 to 100
/// hash_seed = 22          # shared by every agent and Collector that must agree
/// parent_based = true     # follow a trusted caller's decision
/// precision = 4           # proportional mode: significant hex digits of `th`
/// ```
#[derive(Clone, Copy, PartialEq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
pub struct SamplingConfig {
    /// The root sampler.
    pub mode: SamplingMode,
    /// Percentage of traces to keep, 0 to 100.
    pub percentage: f32,
    /// The seed of `hash_seed` mode.
    pub hash_seed: u32,
    /// Follow the caller's decision when it sent one.
    pub parent_based: bool,
    /// Significant hex digits of the proportional threshold, 1 to 14.
    pub precision: u8,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            mode: SamplingMode::default(),
            percentage: 100.0,
            hash_seed: 0,
            parent_based: true,
            precision: 4,
        }
    }
}

impl SamplingConfig {
    /// Checks every field and builds the sampler. Errors name the field within this section,
    /// e.g. `percentage`; callers nest them with [`FieldError::within`].
    pub fn build(&self) -> Result<Sampler, FieldError> {
        if !(0.0..=100.0).contains(&self.percentage) {
            return Err(FieldError::new(
                "percentage",
                format!("must be between 0 and 100, got {}", self.percentage),
            ));
        }
        check_ranges(&[("precision", u64::from(self.precision), 1, 14)])?;
        let root = match self.mode {
            SamplingMode::AlwaysOn => RootSampler::AlwaysOn,
            SamplingMode::AlwaysOff => RootSampler::AlwaysOff,
            SamplingMode::HashSeed => {
                RootSampler::HashSeed(HashSeedSampler::new(self.percentage, self.hash_seed))
            }
            SamplingMode::Proportional if self.percentage == 0.0 => RootSampler::AlwaysOff,
            SamplingMode::Proportional => RootSampler::Proportional(Threshold::from_probability(
                f64::from(self.percentage) / 100.0,
                self.precision,
            )),
        };
        Ok(Sampler {
            root,
            parent_based: self.parent_based,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::w3c::TraceState;

    fn config(mode: SamplingMode, percentage: f32) -> SamplingConfig {
        SamplingConfig {
            mode,
            percentage,
            ..SamplingConfig::default()
        }
    }

    #[test]
    fn refuses_bad_settings_and_names_the_field() {
        let err = config(SamplingMode::HashSeed, 101.0).build().unwrap_err();
        assert_eq!(err.field, "percentage");
        assert!(
            err.within("sampling")
                .to_string()
                .starts_with("sampling.percentage")
        );
        assert!(config(SamplingMode::HashSeed, f32::NAN).build().is_err());
        let err = SamplingConfig {
            precision: 0,
            ..SamplingConfig::default()
        }
        .build()
        .unwrap_err();
        assert_eq!(err.field, "precision");
    }

    #[test]
    fn parent_based_follows_the_caller() {
        let sampler = config(SamplingMode::AlwaysOff, 0.0).build().unwrap();
        let id = TraceId::from_bytes([1; 16]);
        assert!(sampler.decide(&id, Some(true), None).sampled);
        assert!(!sampler.decide(&id, None, None).sampled);
        let root_only = Sampler {
            parent_based: false,
            ..sampler
        };
        assert!(!root_only.decide(&id, Some(true), None).sampled);
    }

    #[test]
    fn proportional_records_and_erases_th() {
        let sampler = config(SamplingMode::Proportional, 50.0).build().unwrap();
        // Randomness is the low 56 bits: 0x80.. is kept at 50%, 0x7f.. is not.
        let kept = TraceId::from_hex(b"0000000000000000ff80000000000000").unwrap();
        let dropped = TraceId::from_hex(b"00000000000000000f7fffffffffffff").unwrap();
        let mut context = SpanContext {
            trace_id: kept,
            trace_state: TraceState::parse(b"other=1").unwrap(),
            ..SpanContext::default()
        };
        let decision = sampler.decide(&kept, None, Some(&context));
        assert!(decision.sampled);
        decision.apply(&mut context);
        assert_eq!(context.trace_state.as_str(), "ot=th:8,other=1");
        assert!(context.is_sampled());

        let decision = sampler.decide(&dropped, None, Some(&context));
        assert!(!decision.sampled);
        decision.apply(&mut context);
        assert_eq!(context.trace_state.as_str(), "other=1");
        assert!(!context.is_sampled());
    }

    #[test]
    fn proportional_prefers_explicit_randomness() {
        let sampler = config(SamplingMode::Proportional, 50.0).build().unwrap();
        let low = TraceId::from_hex(b"00000000000000000000000000000001").unwrap();
        let context = SpanContext {
            trace_state: TraceState::parse(b"ot=rv:ffffffffffffff").unwrap(),
            ..SpanContext::default()
        };
        assert!(!sampler.decide(&low, None, None).sampled);
        assert!(sampler.decide(&low, None, Some(&context)).sampled);
    }
}
