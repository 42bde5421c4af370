//! Span status and `error.type` of an HTTP span, per its kind.
//!
//! The stable HTTP semantic conventions:
//! - 1xx to 3xx leave the status unset;
//! - 4xx is an error for a CLIENT (the request it sent failed) and leaves a SERVER's status
//!   unset (the caller's mistake is not the server's failure);
//! - 5xx is an error for both, and so is any code outside 100..=599, which nobody can
//!   interpret;
//! - an error caused by the status code gets `error.type` = the code as text and no status
//!   description, since the code already says why;
//! - an exchange that failed (no connection, no response, a response cut short) is an error,
//!   with `error.type` naming the failure, even after a 1xx to 3xx code; only a SERVER's 4xx
//!   stays unset, which the conventions require without exception.

use std::borrow::Cow;

use crate::semconv;
use crate::span::{Span, SpanKind, Value};

/// `error.type` of an exchange that ended without any response and without a more precise
/// name for the failure.
pub const NO_RESPONSE: &str = "no_response";

/// Whether a response with `code` makes a span of `kind` an error.
pub fn is_error(kind: SpanKind, code: u16) -> bool {
    match code {
        100..=399 => false,
        400..=499 => kind == SpanKind::Client,
        _ => true,
    }
}

/// Records a complete response: `http.response.status_code`, and for an error code (see
/// [`is_error`]) the error status and `error.type` = the code.
pub fn set_response_status(span: &mut Span, code: u16) {
    span.set_attribute(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code));
    if is_error(span.kind, code) {
        span.set_attribute(semconv::ERROR_TYPE, Value::Str(code_text(code)));
        span.set_error("");
    }
}

/// Records a failed exchange: the span is an error with `error_type` (low-cardinality, such
/// as `connect_error` or [`NO_RESPONSE`]) as `error.type` and as the status description.
/// `status` is the code that was sent or received before the failure, if any; after a 4xx a
/// SERVER span is not an error, and gets no `error.type`.
pub fn set_failure(span: &mut Span, status: Option<u16>, error_type: impl Into<Cow<'static, str>>) {
    if let Some(code) = status {
        span.set_attribute(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code));
        if (400..=499).contains(&code) && span.kind != SpanKind::Client {
            return;
        }
    }
    let error_type = error_type.into();
    span.set_attribute(semconv::ERROR_TYPE, Value::Str(error_type.clone()));
    span.set_error(error_type);
}

/// The text of every code from 400 to 599, made at compile time, so that the error a status
/// code causes costs no allocation.
static ERROR_CODES: [[u8; 3]; 200] = error_codes();

#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time, where an index out of range fails the build"
)]
const fn error_codes() -> [[u8; 3]; 200] {
    let mut table = [[0; 3]; 200];
    let mut i = 0;
    while i < table.len() {
        let code = 400 + i;
        // Each digit is below 10, so the casts cannot truncate.
        table[i] = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        i += 1;
    }
    table
}

/// `code` as text: borrowed for 400 to 599, written out for the rare others.
fn code_text(code: u16) -> Cow<'static, str> {
    let digits = usize::from(code)
        .checked_sub(400)
        .and_then(|i| ERROR_CODES.get(i))
        .and_then(|digits| core::str::from_utf8(digits).ok());
    match digits {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(code.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_text_matches_display() {
        for code in 0..=1000 {
            assert_eq!(code_text(code), code.to_string());
        }
        assert!(matches!(code_text(404), Cow::Borrowed(_)));
        assert!(matches!(code_text(599), Cow::Borrowed(_)));
    }

    #[test]
    fn error_classes_per_kind() {
        for (code, server, client) in [
            (100, false, false),
            (200, false, false),
            (399, false, false),
            (400, false, true),
            (404, false, true),
            (499, false, true),
            (500, true, true),
            (599, true, true),
            (600, true, true),
            (99, true, true),
            (0, true, true),
        ] {
            assert_eq!(is_error(SpanKind::Server, code), server, "SERVER {code}");
            assert_eq!(is_error(SpanKind::Client, code), client, "CLIENT {code}");
        }
    }
}
