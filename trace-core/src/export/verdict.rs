//! What an export's outcome means, per the OTLP specification (`specification/protocol/otlp.md`,
//! "Failures" and "Throttling", for OTLP/HTTP and OTLP/gRPC).
//!
//! - OTLP/HTTP: any 2xx is success; 429, 502, 503 and 504 are retryable; every other status is a
//!   permanent rejection. A 429 or 503 may carry `Retry-After`, which the client honours.
//! - OTLP/gRPC: `OK` is success; `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`,
//!   `UNAVAILABLE` and `DATA_LOSS` are retryable; `RESOURCE_EXHAUSTED` is retryable only when the
//!   server says recovery is possible by sending a `RetryInfo`, whose delay is honoured; every
//!   other code is permanent.
//! - No response at all (refused connection, reset, timeout) is transient: retried.

/// How an export request ended, as the transport saw it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Delivery {
    /// An OTLP/HTTP response.
    Http {
        /// The status code.
        status: u16,
        /// The `Retry-After` delay in milliseconds, when the response carried one.
        retry_after_ms: Option<u64>,
    },
    /// An OTLP/gRPC status.
    Grpc {
        /// The status code (`tonic::Code as i32`).
        code: i32,
        /// The delay of a `google.rpc.RetryInfo` in the status details, in milliseconds.
        retry_info_ms: Option<u64>,
    },
    /// No response: the connection failed, was reset, or timed out; or the host refused to send.
    NoResponse,
}

/// What to do with the spans of an export.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// The collector has them.
    Accepted,
    /// Send them again later; `throttle_ms` is the server's own delay, when it gave one.
    Retryable {
        /// The server's throttling delay.
        throttle_ms: Option<u64>,
    },
    /// The collector refused them for good: sending them again cannot help.
    Rejected,
}

/// gRPC status codes the OTLP specification names.
mod grpc_code {
    pub const OK: i32 = 0;
    pub const CANCELLED: i32 = 1;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
}

impl Delivery {
    /// The verdict the OTLP specification gives this outcome.
    pub fn verdict(self) -> Verdict {
        use grpc_code::*;
        match self {
            Self::Http { status, .. } if (200..300).contains(&status) => Verdict::Accepted,
            Self::Http {
                status: 429 | 503,
                retry_after_ms,
            } => Verdict::Retryable {
                throttle_ms: retry_after_ms,
            },
            Self::Http {
                status: 502 | 504, ..
            } => Verdict::Retryable { throttle_ms: None },
            Self::Http { .. } => Verdict::Rejected,
            Self::Grpc { code: OK, .. } => Verdict::Accepted,
            Self::Grpc {
                code:
                    CANCELLED | DEADLINE_EXCEEDED | ABORTED | OUT_OF_RANGE | UNAVAILABLE | DATA_LOSS,
                retry_info_ms,
            } => Verdict::Retryable {
                throttle_ms: retry_info_ms,
            },
            Self::Grpc {
                code: RESOURCE_EXHAUSTED,
                retry_info_ms: Some(delay),
            } => Verdict::Retryable {
                throttle_ms: Some(delay),
            },
            Self::Grpc { .. } => Verdict::Rejected,
            Self::NoResponse => Verdict::Retryable { throttle_ms: None },
        }
    }
}

/// The delay of a `Retry-After` value in milliseconds. Only the delay-seconds form is read: an
/// HTTP-date needs a clock this crate does not have, and the caller's own backoff applies then.
pub fn retry_after_ms(value: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok()?.checked_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> Verdict {
        Delivery::Http {
            status,
            retry_after_ms: None,
        }
        .verdict()
    }

    fn grpc(code: i32, retry_info_ms: Option<u64>) -> Verdict {
        Delivery::Grpc {
            code,
            retry_info_ms,
        }
        .verdict()
    }

    const RETRY: Verdict = Verdict::Retryable { throttle_ms: None };

    #[test]
    fn http_statuses_follow_the_otlp_specification() {
        for status in [200, 202, 204] {
            assert_eq!(http(status), Verdict::Accepted, "{status}");
        }
        for status in [429, 502, 503, 504] {
            assert_eq!(http(status), RETRY, "{status}");
        }
        for status in [400, 401, 403, 404, 413, 500, 501, 505, 301] {
            assert_eq!(http(status), Verdict::Rejected, "{status}");
        }
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_only() {
        let hinted = |status| {
            Delivery::Http {
                status,
                retry_after_ms: Some(3000),
            }
            .verdict()
        };
        let throttled = Verdict::Retryable {
            throttle_ms: Some(3000),
        };
        assert_eq!(hinted(429), throttled);
        assert_eq!(hinted(503), throttled);
        assert_eq!(hinted(502), RETRY);
        assert_eq!(hinted(400), Verdict::Rejected);
    }

    #[test]
    fn grpc_codes_follow_the_otlp_specification() {
        assert_eq!(grpc(0, None), Verdict::Accepted);
        for code in [1, 4, 10, 11, 14, 15] {
            assert_eq!(grpc(code, None), RETRY, "code {code}");
        }
        // UNKNOWN, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
        // FAILED_PRECONDITION, UNIMPLEMENTED, INTERNAL, UNAUTHENTICATED.
        for code in [2, 3, 5, 6, 7, 9, 12, 13, 16] {
            assert_eq!(grpc(code, None), Verdict::Rejected, "code {code}");
        }
        assert_eq!(grpc(8, None), Verdict::Rejected, "RESOURCE_EXHAUSTED alone");
        assert_eq!(
            grpc(8, Some(250)),
            Verdict::Retryable {
                throttle_ms: Some(250)
            }
        );
        assert_eq!(
            grpc(14, Some(40)),
            Verdict::Retryable {
                throttle_ms: Some(40)
            }
        );
    }

    #[test]
    fn no_response_is_retried() {
        assert_eq!(Delivery::NoResponse.verdict(), RETRY);
    }

    #[test]
    fn retry_after_reads_delay_seconds() {
        assert_eq!(retry_after_ms(b"120"), Some(120_000));
        assert_eq!(retry_after_ms(b" 0 "), Some(0));
        assert_eq!(retry_after_ms(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_ms(b"-1"), None);
        assert_eq!(retry_after_ms(b""), None);
        assert_eq!(retry_after_ms(b"99999999999999999999"), None);
        assert_eq!(retry_after_ms(&[0xff, b'1']), None);
    }
}
