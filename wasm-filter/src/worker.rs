//! What one worker's requests share with its root context: the checked settings, which do not
//! change, and the mutable state beside them (IDs, the span buffer and its callouts, counters).
//! Requests and the root both depend on this module, and it on neither.

use trace_core::IdGenerator;
use trace_core::span::Resource;

use crate::config::Settings;
use crate::export::ExportCallouts;
use crate::metrics::Metrics;

/// The state of one worker, shared by its root and its requests.
pub struct Worker {
    /// The checked configuration.
    pub settings: Settings,
    /// The resource every export request carries.
    pub resource: Resource,
    /// Span and trace IDs, and the randomness of retry delays.
    pub ids: IdGenerator,
    /// Finished spans and the export callouts in flight.
    pub exports: ExportCallouts,
    /// Counters.
    pub metrics: Metrics,
}
