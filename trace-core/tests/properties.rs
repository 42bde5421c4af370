//! Property tests: every parser round-trips what the formatter writes, and no parser panics
//! on arbitrary bytes.

use proptest::prelude::*;
use trace_core::b3::{self, B3Context, B3Header, MultiHeaders, Sampling};
use trace_core::otlp::proto::common::v1::any_value::Value as AnyValue;
use trace_core::otlp::{
    decode_request, encode_request, encode_request_from_entries, encode_span_entry,
};
use trace_core::propagation::extract;
use trace_core::route::RouteGrouper;
use trace_core::sampling::{OtelTraceState, Threshold};
use trace_core::span::{KeyValue, Resource, Scope, Span, Value};
use trace_core::w3c::{TraceParent, TraceState};
use trace_core::{SpanContext, SpanId, TraceFlags, TraceId, sigv4};

fn trace_id() -> impl Strategy<Value = TraceId> {
    any::<[u8; 16]>()
        .prop_map(TraceId::from_bytes)
        .prop_filter("valid", TraceId::is_valid)
}

fn span_id() -> impl Strategy<Value = SpanId> {
    any::<[u8; 8]>()
        .prop_map(SpanId::from_bytes)
        .prop_filter("valid", SpanId::is_valid)
}

fn sampling() -> impl Strategy<Value = Option<Sampling>> {
    prop_oneof![
        Just(None),
        Just(Some(Sampling::Deny)),
        Just(Some(Sampling::Accept)),
        Just(Some(Sampling::Debug)),
    ]
}

fn tracestate_member() -> impl Strategy<Value = (String, String)> {
    (
        // Few first characters, so that lists often repeat a key.
        "[a-c0-2][a-z0-9_*/@-]{0,3}",
        "[ -+\\--<>-~]{0,30}[!-+\\--<>-~]",
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn traceparent_round_trips(trace_id in trace_id(), parent_id in span_id(), flags in 0u8..4) {
        let tp = TraceParent { trace_id, parent_id, flags: TraceFlags::from_wire(flags) };
        prop_assert_eq!(TraceParent::parse(&tp.to_bytes()), Ok(tp));
    }

    #[test]
    fn tracestate_round_trips(members in prop::collection::vec(tracestate_member(), 0..32)) {
        let joined = |separator: &str| members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(separator);
        let parsed = TraceState::parse(joined(" , ").as_bytes()).unwrap();
        // Duplicated keys included, the list is sent on as it came.
        prop_assert_eq!(parsed.as_str(), joined(","));
        for (k, _) in &members {
            let first = members.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            prop_assert_eq!(parsed.get(k), first);
        }
        prop_assert_eq!(TraceState::parse(parsed.as_str().as_bytes()).unwrap(), parsed);
    }

    #[test]
    fn b3_single_round_trips(trace_id in trace_id(), span_id in span_id(), parent in proptest::option::of(span_id()), sampling in sampling()) {
        let context = B3Context { trace_id, span_id, parent_span_id: parent.filter(|_| sampling.is_some()), sampling };
        prop_assert_eq!(b3::parse_single(context.single_header().as_bytes()), Ok(B3Header::Context(context)));
    }

    #[test]
    fn b3_multi_round_trips(trace_id in trace_id(), span_id in span_id(), parent in proptest::option::of(span_id()), sampling in sampling()) {
        let context = B3Context { trace_id, span_id, parent_span_id: parent, sampling };
        let headers = context.multi_headers();
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes());
        let multi = MultiHeaders {
            trace_id: get(b3::X_B3_TRACE_ID),
            span_id: get(b3::X_B3_SPAN_ID),
            parent_span_id: get(b3::X_B3_PARENT_SPAN_ID),
            sampled: get(b3::X_B3_SAMPLED),
            flags: get(b3::X_B3_FLAGS),
        };
        prop_assert_eq!(b3::parse_multi(&multi), Some(Ok(B3Header::Context(context))));
    }

    #[test]
    fn threshold_round_trips(value in 0u64..(1 << 56)) {
        let th = Threshold::parse(&format!("{value:014x}")).unwrap();
        prop_assert_eq!(Threshold::parse(&th.to_string()), Some(th));
    }

    #[test]
    fn hex_decoding_matches_a_naive_reference(text in "[0-9a-fA-Fgx. -]{32}") {
        let naive: Option<Vec<u8>> = text
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let lower = pair.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
                let pair = std::str::from_utf8(pair).ok()?;
                lower.then(|| u8::from_str_radix(pair, 16).ok()).flatten()
            })
            .collect();
        let ours = trace_core::hex::decode::<16>(text.as_bytes()).map(|b| b.to_vec());
        prop_assert_eq!(ours, naive);
    }

    #[test]
    fn hex_ids_round_trip(trace_id in any::<[u8; 16]>()) {
        let id = TraceId::from_bytes(trace_id);
        let naive: String = trace_id.iter().map(|b| format!("{b:02x}")).collect();
        prop_assert_eq!(&id.to_hex()[..], naive.as_bytes());
        prop_assert_eq!(TraceId::from_hex(&id.to_hex()), Some(id));
    }

    #[test]
    fn otlp_round_trips(trace_id in trace_id(), span_id in span_id(), name in ".{0,40}", start in any::<u64>(), attrs in prop::collection::vec(("[a-z.]{0,20}", attribute_value()), 0..20)) {
        let mut span = Span { name: name.clone().into(), start_unix_nano: start, ..Span::default() };
        span.context = SpanContext { trace_id, span_id, ..SpanContext::default() };
        span.attributes = attrs.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
        let mut buf = Vec::new();
        encode_request(&Resource::default(), &Scope::default(), &[span], &mut buf);
        let request = decode_request(&buf).unwrap();
        let decoded = &request.resource_spans[0].scope_spans[0].spans[0];
        prop_assert_eq!(&decoded.name, &name);
        prop_assert_eq!(decoded.trace_id.as_slice(), trace_id.as_bytes());
        prop_assert_eq!(decoded.start_time_unix_nano, start);
        prop_assert_eq!(decoded.attributes.len(), attrs.len());
        for (decoded, (key, value)) in decoded.attributes.iter().zip(&attrs) {
            prop_assert_eq!(&decoded.key, key);
            let decoded = decoded.value.as_ref().and_then(|v| v.value.as_ref());
            let expected = match value {
                Value::Str(s) => AnyValue::StringValue(s.to_string()),
                Value::Int(i) => AnyValue::IntValue(*i),
                Value::Bool(b) => AnyValue::BoolValue(*b),
                Value::Double(d) => AnyValue::DoubleValue(*d),
            };
            match (decoded, &expected) {
                (Some(AnyValue::DoubleValue(got)), AnyValue::DoubleValue(want)) => {
                    prop_assert_eq!(got.to_bits(), want.to_bits());
                }
                (got, want) => prop_assert_eq!(got, Some(want)),
            }
        }
    }
}

proptest! {
    #[test]
    fn span_entries_wrap_into_the_same_request(names in prop::collection::vec(".{0,300}", 0..5)) {
        let spans: Vec<Span> = names
            .iter()
            .map(|name| Span { name: name.clone().into(), ..Span::default() })
            .collect();
        let resource = Resource { attributes: vec![KeyValue::new("service.name", "edge")] };
        let mut whole = Vec::new();
        encode_request(&resource, &Scope::default(), &spans, &mut whole);
        let mut entries = Vec::new();
        for span in &spans {
            encode_span_entry(span, &mut entries);
        }
        let mut wrapped = Vec::new();
        encode_request_from_entries(&resource, &Scope::default(), &entries, &mut wrapped);
        prop_assert_eq!(wrapped, whole);
    }
}

/// Attribute values of every type, with strings both side of the one-byte length limit.
fn attribute_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,200}".prop_map(Value::from),
        any::<i64>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(Value::Double),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = TraceParent::parse(&bytes);
        let _ = TraceState::parse(&bytes);
        let _ = b3::parse_single(&bytes);
        let _ = b3::parse_multi(&MultiHeaders { trace_id: Some(&bytes), span_id: Some(&bytes), parent_span_id: Some(&bytes), sampled: Some(&bytes), flags: Some(&bytes) });
        let _ = sigv4::detect(Some(&bytes), Some(&bytes));
        let _ = sigv4::is_signed(Some(&bytes), Some(&bytes));
        let text = String::from_utf8_lossy(&bytes);
        let _ = OtelTraceState::parse(&text);
        let _ = Threshold::parse(&text);
        let _ = RouteGrouper::default().route(&text);
        let _ = RouteGrouper::new(&[text.as_ref()]);
        let _ = decode_request(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_near_valid_input(prefix in "(00|cc|ff)-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", suffix in ".{0,40}") {
        let value = format!("{prefix}{suffix}");
        let _ = TraceParent::parse(value.as_bytes());
        let _ = b3::parse_single(value.as_bytes());
        let headers = [("traceparent", value.as_str()), ("tracestate", suffix.as_str()), ("b3", value.as_str())];
        let _ = extract(&headers[..]);
    }
}
