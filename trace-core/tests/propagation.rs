//! Extraction and injection across formats: detection order, B3 single and multi, fallbacks.

use trace_core::b3::{B3Error, X_B3_FLAGS, X_B3_SAMPLED};
use trace_core::propagation::{
    Format, Formats, HeaderSource, INJECTED_HEADERS, Problem, carries_context, extract, inject,
};
use trace_core::w3c::{TraceParentError, TraceStateError};
use trace_core::{SpanContext, SpanId, TraceFlags, TraceId};

const W3C: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const B3_SPAN: &str = "e457b5a2e4d86bd1";

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn w3c_wins_over_b3() {
    let single = format!("{B3_TRACE}-{B3_SPAN}-1");
    let incoming = extract(&headers(&[("b3", &single), ("traceparent", W3C)])[..]);
    assert_eq!(incoming.format, Some(Format::TraceContext));
    assert_eq!(
        incoming.parent.unwrap().trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[test]
fn a_bad_traceparent_falls_back_to_b3_and_is_reported() {
    let single = format!("{B3_TRACE}-{B3_SPAN}-1");
    let bad = W3C.replace("-01", "-0g");
    let incoming = extract(&headers(&[("traceparent", &bad), ("b3", &single)])[..]);
    assert_eq!(incoming.format, Some(Format::B3Single));
    assert_eq!(incoming.parent.unwrap().trace_id.to_string(), B3_TRACE);
    assert_eq!(
        incoming.problem,
        Some(Problem::TraceParent(TraceParentError::Flags))
    );
}

#[test]
fn a_bad_tracestate_keeps_the_parent_and_is_reported() {
    let incoming = extract(&headers(&[("traceparent", W3C), ("tracestate", "foo=1,@foo=2")])[..]);
    let parent = incoming.parent.unwrap();
    assert!(parent.trace_state.is_empty());
    assert_eq!(
        incoming.problem,
        Some(Problem::TraceState(TraceStateError::Key))
    );
}

#[test]
fn b3_single_forms() {
    let debug = format!("{B3_TRACE}-{B3_SPAN}-d");
    let incoming = extract(&headers(&[("B3", &debug)])[..]);
    assert_eq!(incoming.sampled, Some(true));
    assert!(incoming.debug);

    let deferred = format!("{B3_TRACE}-{B3_SPAN}");
    let incoming = extract(&headers(&[("b3", &deferred)])[..]);
    assert!(incoming.parent.is_some());
    assert_eq!(incoming.sampled, None);

    let incoming = extract(&headers(&[("b3", "0")])[..]);
    assert_eq!(incoming.format, Some(Format::B3Single));
    assert!(incoming.parent.is_none());
    assert_eq!(incoming.sampled, Some(false));
}

#[test]
fn b3_multi_forms() {
    let incoming = extract(
        &headers(&[
            ("X-B3-TraceId", "64fe8b2a57d3eff7"),
            ("X-B3-SpanId", B3_SPAN),
            ("X-B3-Sampled", "1"),
        ])[..],
    );
    assert_eq!(incoming.format, Some(Format::B3Multi));
    assert_eq!(
        incoming.parent.unwrap().trace_id.to_string(),
        "000000000000000064fe8b2a57d3eff7"
    );
    assert_eq!(incoming.sampled, Some(true));

    let incoming = extract(&headers(&[("x-b3-flags", "1")])[..]);
    assert!(incoming.debug && incoming.parent.is_none());
}

#[test]
fn duplicated_b3_headers_are_rejected() {
    let single = format!("{B3_TRACE}-{B3_SPAN}-1");
    let incoming = extract(&headers(&[("b3", &single), ("b3", &single)])[..]);
    assert!(incoming.parent.is_none());
    assert_eq!(incoming.problem, Some(Problem::B3(B3Error::Duplicated)));
    let incoming = extract(
        &headers(&[
            ("x-b3-traceid", B3_TRACE),
            ("x-b3-spanid", B3_SPAN),
            ("x-b3-spanid", B3_SPAN),
        ])[..],
    );
    assert_eq!(incoming.problem, Some(Problem::B3(B3Error::Duplicated)));
}

#[test]
fn nothing_in_nothing_out() {
    let incoming = extract(&headers(&[("x-request-id", "abc")])[..]);
    assert_eq!(incoming, Default::default());
}

fn context() -> SpanContext {
    SpanContext {
        trace_id: TraceId::from_hex(B3_TRACE.as_bytes()).unwrap(),
        span_id: SpanId::from_hex(B3_SPAN.as_bytes()).unwrap(),
        flags: TraceFlags::SAMPLED,
        trace_state: trace_core::w3c::TraceState::parse(b"ot=th:8").unwrap(),
    }
}

#[test]
fn inject_writes_w3c_always_and_b3_as_asked() {
    let mut out = Vec::new();
    inject(&context(), None, false, Formats::default(), |n, v| {
        out.push((n, v.to_owned()))
    });
    assert_eq!(
        out,
        [
            ("traceparent", format!("00-{B3_TRACE}-{B3_SPAN}-01")),
            ("tracestate", "ot=th:8".to_owned()),
        ]
    );

    let parent = SpanId::from_hex(b"05e3ac9a4f6e3b90").unwrap();
    let formats = Formats::default()
        .with_incoming(Some(Format::B3Multi))
        .with_incoming(Some(Format::B3Single));
    let mut out = Vec::new();
    inject(&context(), Some(parent), false, formats, |n, v| {
        out.push((n, v.to_owned()))
    });
    let names: Vec<&str> = out.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "traceparent",
            "tracestate",
            "b3",
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-parentspanid",
            X_B3_SAMPLED
        ]
    );
    assert!(names.iter().all(|n| INJECTED_HEADERS.contains(n)));
    assert!(INJECTED_HEADERS.contains(&X_B3_FLAGS));
    assert_eq!(out[2].1, format!("{B3_TRACE}-{B3_SPAN}-1-05e3ac9a4f6e3b90"));
}

#[test]
fn a_b3_debug_request_is_forwarded() {
    let single = format!("{B3_TRACE}-{B3_SPAN}-d");
    let incoming = extract(&headers(&[("b3", &single)])[..]);
    let mut out = Vec::new();
    inject(
        &context(),
        None,
        incoming.debug,
        Formats::default().with_incoming(incoming.format),
        |n, v| out.push((n, v.to_owned())),
    );
    assert_eq!(
        out.last().unwrap(),
        &("b3", format!("{B3_TRACE}-{B3_SPAN}-d"))
    );
}

#[test]
fn w3c_can_be_configured_away_but_a_w3c_caller_is_answered_in_w3c() {
    let b3_only = Formats {
        trace_context: false,
        b3_single: true,
        b3_multi: false,
    };
    let names = |formats: Formats| {
        let mut names = Vec::new();
        inject(&context(), None, false, formats, |n, _| names.push(n));
        names
    };
    assert_eq!(names(b3_only), ["b3"]);
    let none = Formats {
        b3_single: false,
        ..b3_only
    };
    assert!(names(none).is_empty());
    assert_eq!(
        names(none.with_incoming(Some(Format::TraceContext))),
        ["traceparent", "tracestate"]
    );
}

#[test]
fn what_is_injected_extracts_back() {
    let formats = Formats {
        b3_single: true,
        b3_multi: true,
        ..Formats::default()
    };
    for format in [Format::TraceContext, Format::B3Single, Format::B3Multi] {
        let mut out: Vec<(String, String)> = Vec::new();
        inject(&context(), None, false, formats, |n, v| {
            out.push((n.to_owned(), v.to_owned()))
        });
        let only: Vec<(String, String)> = out
            .into_iter()
            .filter(|(n, _)| match format {
                Format::TraceContext => n.starts_with("trace"),
                Format::B3Single => n == "b3",
                Format::B3Multi => n.starts_with("x-b3"),
            })
            .collect();
        let incoming = extract(&only[..]);
        assert_eq!(incoming.format, Some(format));
        let parent = incoming.parent.unwrap();
        assert_eq!(parent.trace_id, context().trace_id);
        assert_eq!(parent.span_id, context().span_id);
        assert_eq!(incoming.sampled, Some(true));
    }
}

/// Records the header names `extract` asks for.
struct AskedFor(std::cell::RefCell<Vec<String>>, Vec<(&'static str, String)>);

impl HeaderSource for AskedFor {
    fn for_each_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        self.0.borrow_mut().push(name.to_owned());
        for (_, value) in self.1.iter().filter(|(n, _)| *n == name) {
            f(value.as_bytes());
        }
    }
}

#[test]
fn extract_reads_only_the_propagation_headers() {
    let b3_multi = vec![
        ("x-b3-traceid", B3_TRACE.to_owned()),
        ("x-b3-spanid", B3_SPAN.to_owned()),
        ("x-b3-flags", "1".to_owned()),
    ];
    for headers in [Vec::new(), b3_multi] {
        let asked = AskedFor(Default::default(), headers);
        extract(&asked);
        let asked = asked.0.into_inner();
        assert!(!asked.is_empty());
        assert!(
            asked.iter().all(|n| INJECTED_HEADERS.contains(&n.as_str())),
            "{asked:?}"
        );
        assert!(
            asked
                .iter()
                .all(|n| carries_context([n.as_str()].into_iter()))
        );
    }
    assert!(!carries_context(["host", "user-agent"].into_iter()));
}
