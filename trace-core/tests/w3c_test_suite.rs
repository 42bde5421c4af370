//! The W3C Trace Context test suite (w3c/trace-context `test/test.py`), case by case.
//!
//! Ported from `test/test.py` at commit acab820be9db7b3433668baa5cdd43f57f4c4be0 (2026-06-30,
//! "Fix tracestate key grammar tests (#584)"): the revision where keys with `@` anywhere after
//! the first character are inherited and the old `tenant@system` part lengths are gone. Every
//! test of `TraceContextTest`, `AdvancedTest` and `TraceContext2Test` is here, under its name.
//!
//! The suite drives a service over HTTP and checks the headers it sends onward. Here the
//! "service" is trace-core's own path through a hop: `extract` the incoming headers, `start_span`
//! under the parent, `inject` for the next hop. Each test keeps the suite's name and its
//! assertions.

use std::collections::HashSet;

use trace_core::IdGenerator;
use trace_core::propagation::{Formats, extract, inject};
use trace_core::sampling::SamplingConfig;
use trace_core::start::start_span;
use trace_core::w3c::{TraceParent, TraceState};

const TRACE: &str = "12345678901234567890123456789012";
const PARENT: &str = "1234567890123456";

/// What the service sends onward for `headers`: its traceparent and tracestate.
fn forward(headers: &[(&str, &str)]) -> (TraceParent, TraceState) {
    forward_many(headers, 1).remove(0)
}

/// What the service sends on each of `count` calls it makes while serving one request with
/// `headers`, as the suite's `make_request(headers, count)` asks of it.
fn forward_many(headers: &[(&str, &str)], count: usize) -> Vec<(TraceParent, TraceState)> {
    let incoming = extract(headers);
    let sampler = SamplingConfig::default().build().unwrap();
    let mut ids = IdGenerator::from_seed(0x5eed);
    (0..count)
        .map(|_| {
            let started = start_span(
                incoming.parent.as_ref(),
                incoming.sampled,
                &sampler,
                &mut ids,
            );
            let mut out: Vec<(&str, String)> = Vec::new();
            inject(
                &started.context,
                started.parent_span_id,
                incoming.debug,
                Formats::default(),
                |name, value| out.push((name, value.to_owned())),
            );
            outgoing(&out)
        })
        .collect()
}

/// The traceparent and tracestate of one outgoing call, read as the suite's harness reads them.
fn outgoing(out: &[(&str, String)]) -> (TraceParent, TraceState) {
    let traceparents: Vec<&String> = out
        .iter()
        .filter(|(n, _)| *n == "traceparent")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(traceparents.len(), 1, "expect one traceparent header");
    let traceparent =
        TraceParent::parse(traceparents[0].as_bytes()).expect("outgoing traceparent is valid");
    let tracestate = TraceState::parse_values(
        out.iter()
            .filter(|(n, _)| *n == "tracestate")
            .map(|(_, v)| v.as_bytes()),
    )
    .expect("outgoing tracestate is valid");
    (traceparent, tracestate)
}

fn tp(flags: &str) -> String {
    format!("00-{TRACE}-{PARENT}-{flags}")
}

fn trace_id(headers: &[(&str, &str)]) -> String {
    forward(headers).0.trace_id.to_string()
}

fn assert_restarts(value: &str) {
    let id = trace_id(&[("traceparent", value)]);
    assert_ne!(id, TRACE, "{value:?} must start a new trace");
    assert!(!id.contains('.'));
}

fn assert_continues(value: &str) {
    assert_eq!(
        trace_id(&[("traceparent", value)]),
        TRACE,
        "{value:?} must continue the trace"
    );
}

#[test]
fn test_both_traceparent_and_tracestate_missing() {
    let (traceparent, _) = forward(&[]);
    assert!(traceparent.trace_id.is_valid());
}

#[test]
fn test_traceparent_included_tracestate_missing() {
    let (traceparent, _) = forward(&[("traceparent", &tp("01"))]);
    assert_eq!(traceparent.trace_id.to_string(), TRACE);
    assert_ne!(traceparent.parent_id.to_string(), PARENT);
}

#[test]
fn test_traceparent_duplicated() {
    let id = trace_id(&[
        (
            "traceparent",
            "00-12345678901234567890123456789011-1234567890123456-01",
        ),
        ("traceparent", &tp("01")),
    ]);
    assert_ne!(id, "12345678901234567890123456789011");
    assert_ne!(id, TRACE);
}

#[test]
fn test_traceparent_header_name() {
    assert_ne!(trace_id(&[("trace-parent", &tp("01"))]), TRACE);
    assert_ne!(trace_id(&[("trace.parent", &tp("01"))]), TRACE);
}

#[test]
fn test_traceparent_header_name_valid_casing() {
    for name in ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"] {
        assert_eq!(trace_id(&[(name, &tp("01"))]), TRACE, "{name}");
    }
}

#[test]
fn test_traceparent_version_0x00() {
    assert_restarts(&format!("{}.", tp("01")));
    assert_restarts(&format!("{}-what-the-future-will-be-like", tp("01")));
}

#[test]
fn test_traceparent_version_0xcc() {
    assert_continues(&format!("cc-{TRACE}-{PARENT}-01"));
    assert_continues(&format!(
        "cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"
    ));
    assert_restarts(&format!(
        "cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like"
    ));
}

#[test]
fn test_traceparent_version_0xff() {
    assert_restarts(&format!("ff-{TRACE}-{PARENT}-01"));
}

#[test]
fn test_traceparent_version_illegal_characters() {
    assert_restarts(&format!(".0-{TRACE}-{PARENT}-01"));
    assert_restarts(&format!("0.-{TRACE}-{PARENT}-01"));
}

#[test]
fn test_traceparent_version_too_long() {
    assert_restarts(&format!("000-{TRACE}-{PARENT}-01"));
    assert_restarts(&format!("0000-{TRACE}-{PARENT}-01"));
}

#[test]
fn test_traceparent_version_too_short() {
    assert_restarts(&format!("0-{TRACE}-{PARENT}-01"));
}

#[test]
fn test_traceparent_trace_id_all_zero() {
    let id = trace_id(&[(
        "traceparent",
        "00-00000000000000000000000000000000-1234567890123456-01",
    )]);
    assert_ne!(id, "00000000000000000000000000000000");
}

#[test]
fn test_traceparent_trace_id_illegal_characters() {
    assert_restarts("00-.2345678901234567890123456789012-1234567890123456-01");
    assert_restarts("00-1234567890123456789012345678901.-1234567890123456-01");
}

#[test]
fn test_traceparent_trace_id_too_long() {
    let id = trace_id(&[(
        "traceparent",
        "00-123456789012345678901234567890123-1234567890123456-01",
    )]);
    assert_ne!(id, TRACE);
    assert_ne!(id, "23456789012345678901234567890123");
}

#[test]
fn test_traceparent_trace_id_too_short() {
    assert_restarts("00-1234567890123456789012345678901-1234567890123456-01");
}

#[test]
fn test_traceparent_parent_id_all_zero() {
    assert_restarts(&format!("00-{TRACE}-0000000000000000-01"));
}

#[test]
fn test_traceparent_parent_id_illegal_characters() {
    assert_restarts(&format!("00-{TRACE}-.234567890123456-01"));
    assert_restarts(&format!("00-{TRACE}-123456789012345.-01"));
}

#[test]
fn test_traceparent_parent_id_too_long() {
    assert_restarts(&format!("00-{TRACE}-12345678901234567-01"));
}

#[test]
fn test_traceparent_parent_id_too_short() {
    assert_restarts(&format!("00-{TRACE}-123456789012345-01"));
}

#[test]
fn test_traceparent_trace_flags_illegal_characters() {
    assert_restarts(&tp(".0"));
    assert_restarts(&tp("0."));
}

#[test]
fn test_traceparent_trace_flags_too_long() {
    assert_restarts(&tp("001"));
}

#[test]
fn test_traceparent_trace_flags_too_short() {
    assert_restarts(&tp("1"));
}

#[test]
fn test_traceparent_ows_handling() {
    for value in [
        format!(" {}", tp("01")),
        format!("\t{}", tp("01")),
        format!("{} ", tp("01")),
        format!("{}\t", tp("01")),
        format!("\t {} \t", tp("01")),
    ] {
        assert_continues(&value);
    }
}

#[test]
fn test_tracestate_included_traceparent_missing() {
    let (_, one) = forward(&[("tracestate", "foo=1")]);
    let (_, two) = forward(&[("tracestate", "foo=1,bar=2")]);
    assert_eq!(one.len(), two.len());
    assert!(one.is_empty());
}

#[test]
fn test_tracestate_included_traceparent_included() {
    let (traceparent, tracestate) =
        forward(&[("traceparent", &tp("00")), ("tracestate", "foo=1,bar=2")]);
    assert_eq!(traceparent.trace_id.to_string(), TRACE);
    assert_eq!(tracestate.get("foo"), Some("1"));
    assert_eq!(tracestate.get("bar"), Some("2"));
}

#[test]
fn test_tracestate_header_name() {
    for name in ["trace-state", "trace.state"] {
        let (_, tracestate) = forward(&[("traceparent", &tp("00")), (name, "foo=1")]);
        assert_eq!(tracestate.get("foo"), None, "{name}");
    }
}

#[test]
fn test_tracestate_header_name_valid_casing() {
    for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
        let (_, tracestate) = forward(&[("traceparent", &tp("00")), (name, "foo=1")]);
        assert_eq!(tracestate.get("foo"), Some("1"), "{name}");
    }
}

#[test]
fn test_tracestate_empty_header() {
    let (traceparent, tracestate) = forward(&[("traceparent", &tp("00")), ("tracestate", "")]);
    assert_eq!(traceparent.trace_id.to_string(), TRACE);
    assert!(tracestate.is_empty());
    for headers in [
        [
            ("traceparent", tp("00")),
            ("tracestate", "foo=1".into()),
            ("tracestate", String::new()),
        ],
        [
            ("traceparent", tp("00")),
            ("tracestate", String::new()),
            ("tracestate", "foo=1".into()),
        ],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (traceparent, tracestate) = forward(&headers);
        assert_eq!(traceparent.trace_id.to_string(), TRACE);
        assert_eq!(tracestate.get("foo"), Some("1"));
    }
}

#[test]
fn test_tracestate_multiple_headers_different_keys() {
    let (traceparent, tracestate) = forward(&[
        ("traceparent", &tp("00")),
        ("tracestate", "foo=1,bar=2"),
        ("tracestate", "rojo=1,congo=2"),
        ("tracestate", "baz=3"),
    ]);
    assert_eq!(traceparent.trace_id.to_string(), TRACE);
    assert_eq!(tracestate.as_str(), "foo=1,bar=2,rojo=1,congo=2,baz=3");
}

#[test]
fn test_tracestate_duplicated_keys() {
    // The tracestate is inherited; each duplicated key is kept as-is or one of it is dropped.
    for (headers, either) in [
        (vec![("tracestate", "foo=1,foo=1")], ["foo=1", "foo=1"]),
        (vec![("tracestate", "foo=1,foo=2")], ["foo=1", "foo=2"]),
        (
            vec![("tracestate", "foo=1"), ("tracestate", "foo=1")],
            ["foo=1", "foo=1"],
        ),
        (
            vec![("tracestate", "foo=1"), ("tracestate", "foo=2")],
            ["foo=1", "foo=2"],
        ),
    ] {
        let parent = tp("00");
        let mut all = vec![("traceparent", parent.as_str())];
        all.extend(headers.iter().copied());
        let (traceparent, tracestate) = forward(&all);
        assert_eq!(traceparent.trace_id.to_string(), TRACE);
        let sent = tracestate.as_str();
        assert!(
            either.iter().any(|member| sent.contains(member)),
            "{headers:?} sent {sent:?}"
        );
    }
}

#[test]
fn test_tracestate_all_allowed_characters() {
    let key: String = ('a'..='z').chain('0'..='9').chain("_-*/".chars()).collect();
    let key_with_vendor = format!("{key}@a-z0-9_-*/");
    let value: String = (0x20u8..=0x2b)
        .chain(0x2d..=0x3c)
        .chain(0x3e..=0x7e)
        .map(char::from)
        .collect();
    for key in [key, key_with_vendor] {
        let member = format!("{key}={value}");
        let (_, tracestate) = forward(&[("traceparent", &tp("00")), ("tracestate", &member)]);
        assert_eq!(tracestate.get(&key), Some(value.as_str()));
    }
}

#[test]
fn test_tracestate_ows_handling() {
    for value in [
        "foo=1 \t , \t bar=2, \t baz=3",
        "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
    ] {
        let (_, tracestate) = forward(&[("traceparent", &tp("00")), ("tracestate", value)]);
        assert_eq!(tracestate.as_str(), "foo=1,bar=2,baz=3", "{value:?}");
    }
    for value in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
        let (traceparent, tracestate) =
            forward(&[("traceparent", &tp("00")), ("tracestate", value)]);
        assert_eq!(traceparent.trace_id.to_string(), TRACE);
        assert_eq!(tracestate.get("foo"), Some("1"), "{value:?}");
    }
}

#[test]
fn test_tracestate_key_illegal_characters() {
    for (value, key) in [
        ("foo =1", "foo "),
        ("FOO=1", "FOO"),
        ("foo.bar=1", "foo.bar"),
    ] {
        let (_, tracestate) = forward(&[("traceparent", &tp("00")), ("tracestate", value)]);
        assert_eq!(tracestate.get(key), None);
        assert!(tracestate.is_empty());
    }
}

#[test]
fn test_tracestate_key_illegal_vendor_format() {
    // Keys that follow the key grammar are inherited, at signs and all.
    for key in ["foo@", "foo@@bar", "foo@bar@baz"] {
        let value = format!("{key}=1,bar=2");
        let (_, tracestate) = forward(&[("traceparent", &tp("00")), ("tracestate", &value)]);
        assert_eq!(tracestate.get(key), Some("1"), "{value}");
        assert_eq!(tracestate.get("bar"), Some("2"), "{value}");
    }
    // A key may not start with one.
    let (_, tracestate) = forward(&[("traceparent", &tp("00")), ("tracestate", "@foo=1,bar=2")]);
    assert_eq!(tracestate.get("bar"), None);
}

#[test]
fn test_tracestate_member_count_limit() {
    let group = |range: std::ops::RangeInclusive<u32>| {
        range
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let parent = tp("00");
    let (a, b, c) = (group(1..=10), group(11..=20), group(21..=30));
    let ok_tail = group(31..=32);
    let (_, tracestate) = forward(&[
        ("traceparent", &parent),
        ("tracestate", &a),
        ("tracestate", &b),
        ("tracestate", &c),
        ("tracestate", &ok_tail),
    ]);
    assert_eq!(tracestate.get("bar01"), Some("01"));
    assert_eq!(tracestate.len(), 32);
    let too_many = group(31..=33);
    let (_, tracestate) = forward(&[
        ("traceparent", &parent),
        ("tracestate", &a),
        ("tracestate", &b),
        ("tracestate", &c),
        ("tracestate", &too_many),
    ]);
    assert_eq!(tracestate.get("bar01"), None);
}

#[test]
fn test_tracestate_key_length_limit() {
    // 256 characters in all, at signs included, is a key; 257 is not.
    for key in [
        "z".repeat(256),
        "t".repeat(241) + "@" + &"v".repeat(14),
        "t".repeat(242) + "@v",
        "t@".to_owned() + &"v".repeat(15),
    ] {
        let member = format!("{key}=1");
        let (_, tracestate) = forward(&[
            ("traceparent", &tp("00")),
            ("tracestate", "foo=1"),
            ("tracestate", &member),
        ]);
        assert_eq!(tracestate.get("foo"), Some("1"), "{}", &key[..20]);
        assert_eq!(tracestate.get(&key), Some("1"), "{}", &key[..20]);
    }
    let member = "z".repeat(257) + "=1";
    let (_, tracestate) = forward(&[
        ("traceparent", &tp("00")),
        ("tracestate", "foo=1"),
        ("tracestate", &member),
    ]);
    assert_eq!(tracestate.get("foo"), None);
}

#[test]
fn test_tracestate_value_illegal_characters() {
    let (_, tracestate) = forward(&[("traceparent", &tp("00")), ("tracestate", "foo=bar=baz")]);
    assert_eq!(tracestate.get("foo"), None);
    let (_, tracestate) = forward(&[("traceparent", &tp("00")), ("tracestate", "foo=,bar=3")]);
    assert_eq!(tracestate.get("foo"), None);
    assert_eq!(tracestate.get("bar"), None);
}

#[test]
fn test_multiple_requests_with_valid_traceparent() {
    let sent = forward_many(&[("traceparent", &tp("01"))], 3);
    let trace_ids: HashSet<String> = sent.iter().map(|(t, _)| t.trace_id.to_string()).collect();
    let parent_ids: HashSet<String> = sent.iter().map(|(t, _)| t.parent_id.to_string()).collect();
    assert_eq!(trace_ids.len(), 1);
    assert!(trace_ids.contains(TRACE));
    assert_eq!(parent_ids.len(), 3);
}

#[test]
fn test_multiple_requests_without_traceparent() {
    let sent = forward_many(&[], 3);
    let parent_ids: HashSet<String> = sent.iter().map(|(t, _)| t.parent_id.to_string()).collect();
    assert_eq!(parent_ids.len(), 3);
}

#[test]
fn test_multiple_requests_with_illegal_traceparent() {
    let sent = forward_many(
        &[(
            "traceparent",
            "00-00000000000000000000000000000000-1234567890123456-01",
        )],
        3,
    );
    let trace_ids: HashSet<String> = sent.iter().map(|(t, _)| t.trace_id.to_string()).collect();
    let parent_ids: HashSet<String> = sent.iter().map(|(t, _)| t.parent_id.to_string()).collect();
    assert!(!trace_ids.contains("00000000000000000000000000000000"));
    assert_eq!(parent_ids.len(), 3);
}

#[test]
fn test_propagates_random_flag() {
    let (traceparent, _) = forward(&[("traceparent", &tp("02"))]);
    assert_eq!(traceparent.trace_id.to_string(), TRACE);
    assert_ne!(traceparent.parent_id.to_string(), PARENT);
    assert!(traceparent.flags.is_random(), "random flag not set");
}
