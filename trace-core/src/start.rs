//! Starting a span: continue the caller's trace or start a new one, and decide sampling once.

use crate::context::{SpanContext, TraceFlags};
use crate::id::{IdGenerator, SpanId};
use crate::sampling::Sampler;
use crate::w3c::TraceState;

/// The context of a span that has just started.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Started {
    /// The new span's context, with the sampling decision applied.
    pub context: SpanContext,
    /// The caller's span, when the trace was continued.
    pub parent_span_id: Option<SpanId>,
}

/// Starts a span under `parent` (the caller's context, when it is to be trusted), or as the
/// root of a new trace. A new trace ID is random, so the W3C Level 2 random flag is set; a
/// continued trace keeps the caller's trace ID, random flag and trace state.
/// `parent_sampled` is the caller's decision, which may arrive without a context (B3 `b3: 1`).
pub fn start_span(
    parent: Option<&SpanContext>,
    parent_sampled: Option<bool>,
    sampler: &Sampler,
    ids: &mut IdGenerator,
) -> Started {
    let span_id = ids.span_id();
    let (mut context, parent_span_id) = match parent.filter(|p| p.is_valid()) {
        Some(parent) => (
            SpanContext {
                trace_id: parent.trace_id,
                span_id,
                flags: parent.flags,
                trace_state: parent.trace_state.clone(),
            },
            Some(parent.span_id),
        ),
        None => (
            SpanContext {
                trace_id: ids.trace_id(),
                span_id,
                flags: TraceFlags::RANDOM,
                trace_state: TraceState::default(),
            },
            None,
        ),
    };
    let decision = sampler.decide(&context.trace_id, parent_sampled, parent.map(|_| &context));
    decision.apply(&mut context);
    Started {
        context,
        parent_span_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{SamplingConfig, SamplingMode};

    #[test]
    fn continues_a_valid_parent() {
        let sampler = SamplingConfig::default().build().unwrap();
        let mut ids = IdGenerator::from_seed(3);
        let parent = SpanContext {
            trace_id: ids.trace_id(),
            span_id: ids.span_id(),
            flags: TraceFlags::SAMPLED,
            trace_state: TraceState::parse(b"a=1").unwrap(),
        };
        let started = start_span(Some(&parent), Some(true), &sampler, &mut ids);
        assert_eq!(started.context.trace_id, parent.trace_id);
        assert_ne!(started.context.span_id, parent.span_id);
        assert_eq!(started.parent_span_id, Some(parent.span_id));
        assert_eq!(started.context.trace_state.as_str(), "a=1");
        assert!(started.context.is_sampled());
        assert!(!started.context.flags.is_random());
    }

    #[test]
    fn starts_a_random_root_when_there_is_no_parent() {
        let sampler = SamplingConfig {
            mode: SamplingMode::AlwaysOff,
            ..SamplingConfig::default()
        }
        .build()
        .unwrap();
        let mut ids = IdGenerator::from_seed(4);
        let started = start_span(None, None, &sampler, &mut ids);
        assert!(started.context.is_valid());
        assert!(started.context.flags.is_random());
        assert!(!started.context.is_sampled());
        assert_eq!(started.parent_span_id, None);
    }
}
