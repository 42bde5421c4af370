use super::*;
use crate::sampling::RootSampler;

fn env(pairs: &[(&str, &str)]) -> Result<OtelEnv, FieldError> {
    read(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

fn ok(pairs: &[(&str, &str)]) -> OtelEnv {
    env(pairs).unwrap_or_else(|e| panic!("{pairs:?}: {e}"))
}

fn err(pairs: &[(&str, &str)]) -> FieldError {
    match env(pairs) {
        Ok(read) => panic!("{pairs:?} was accepted: {read:?}"),
        Err(e) => e,
    }
}

fn set<T>(variable: &'static str, value: T) -> Option<FromVar<T>> {
    Some(FromVar { variable, value })
}

#[test]
fn nothing_set_and_empty_values_override_nothing() {
    assert_eq!(ok(&[]), OtelEnv::default());
    let all_empty: Vec<(&str, &str)> = [
        SDK_DISABLED,
        SERVICE_NAME,
        RESOURCE_ATTRIBUTES,
        ENDPOINT,
        TRACES_ENDPOINT,
        PROTOCOL,
        TRACES_PROTOCOL,
        HEADERS,
        TRACES_HEADERS,
        TIMEOUT,
        TRACES_TIMEOUT,
        BSP_SCHEDULE_DELAY,
        BSP_EXPORT_TIMEOUT,
        BSP_MAX_QUEUE_SIZE,
        BSP_MAX_EXPORT_BATCH_SIZE,
        TRACES_SAMPLER,
        TRACES_SAMPLER_ARG,
        PROPAGATORS,
    ]
    .into_iter()
    .map(|name| (name, " "))
    .collect();
    assert_eq!(ok(&all_empty), OtelEnv::default());
}

#[test]
fn errors_name_the_per_signal_variable_when_that_one_was_set() {
    // Both set: the per-signal one is read, so its name is the one to fix.
    let e = err(&[(PROTOCOL, "grpc"), (TRACES_PROTOCOL, "udp")]);
    assert_eq!(e.field, TRACES_PROTOCOL);
    assert!(e.reason.contains("\"udp\""), "{e}");
    assert_eq!(err(&[(TRACES_PROTOCOL, "udp")]).field, TRACES_PROTOCOL);
    assert_eq!(err(&[(PROTOCOL, "udp")]).field, PROTOCOL);
    assert_eq!(err(&[(TRACES_TIMEOUT, "1s")]).field, TRACES_TIMEOUT);
    assert_eq!(err(&[(TIMEOUT, "1s")]).field, TIMEOUT);
    assert_eq!(err(&[(TRACES_HEADERS, "novalue")]).field, TRACES_HEADERS);
    assert_eq!(err(&[(HEADERS, "novalue")]).field, HEADERS);
    assert_eq!(
        err(&[(TRACES_ENDPOINT, "collector:4318")]).field,
        TRACES_ENDPOINT
    );
    assert_eq!(err(&[(ENDPOINT, "collector:4318")]).field, ENDPOINT);
    // A generic value that is never read cannot be wrong.
    assert!(env(&[(PROTOCOL, "udp"), (TRACES_PROTOCOL, "grpc")]).is_ok());
}

#[test]
fn the_per_signal_variable_wins_and_the_value_says_which_was_read() {
    let read = ok(&[
        (PROTOCOL, "http/protobuf"),
        (TRACES_PROTOCOL, "grpc"),
        (TIMEOUT, "100"),
        (TRACES_TIMEOUT, "200"),
        (HEADERS, "a=1,b=2"),
        (TRACES_HEADERS, "c=3"),
    ]);
    assert_eq!(read.protocol, set(TRACES_PROTOCOL, Protocol::Grpc));
    assert_eq!(
        read.timeout,
        set(TRACES_TIMEOUT, Timeout::After(Duration::from_millis(200)))
    );
    // Replaced as a whole, not merged.
    assert_eq!(
        read.headers,
        set(TRACES_HEADERS, vec![("c".into(), "3".into())])
    );
    // An empty per-signal variable is unset: the generic one applies.
    let read = ok(&[(PROTOCOL, "grpc"), (TRACES_PROTOCOL, "")]);
    assert_eq!(read.protocol, set(PROTOCOL, Protocol::Grpc));
}

#[test]
fn endpoints_keep_their_kind_for_the_url_rules() {
    let read = ok(&[(ENDPOINT, " http://collector:4318 ")]);
    let endpoint = read.endpoint.unwrap();
    assert_eq!(endpoint.variable, ENDPOINT);
    assert_eq!(
        endpoint.value.traces_url(Protocol::HttpProtobuf),
        "http://collector:4318/v1/traces"
    );
    let read = ok(&[
        (ENDPOINT, "http://base:4318"),
        (TRACES_ENDPOINT, "http://traces:4318/custom"),
    ]);
    let endpoint = read.endpoint.unwrap();
    assert_eq!(endpoint.variable, TRACES_ENDPOINT);
    assert_eq!(
        endpoint.value,
        Endpoint::Traces("http://traces:4318/custom".into())
    );
    assert_eq!(
        endpoint.value.traces_url(Protocol::HttpProtobuf),
        "http://traces:4318/custom"
    );
}

#[test]
fn protocols_are_case_insensitive_and_http_json_is_refused_clearly() {
    assert_eq!(
        ok(&[(PROTOCOL, "HTTP/Protobuf")]).protocol,
        set(PROTOCOL, Protocol::HttpProtobuf)
    );
    assert_eq!(
        ok(&[(PROTOCOL, "GRPC")]).protocol,
        set(PROTOCOL, Protocol::Grpc)
    );
    let e = err(&[(TRACES_PROTOCOL, "http/json")]);
    assert_eq!(e.field, TRACES_PROTOCOL);
    assert!(e.reason.contains("http/json is not supported"), "{e}");
}

#[test]
fn headers_are_percent_decoded() {
    let read = ok(&[(HEADERS, "authorization=Bearer%20x, team=edge")]);
    assert_eq!(
        read.headers,
        set(
            HEADERS,
            vec![
                ("authorization".into(), "Bearer x".into()),
                ("team".into(), "edge".into())
            ]
        )
    );
}

#[test]
fn timeouts_and_batch_settings() {
    let read = ok(&[
        (TIMEOUT, "0"),
        (BSP_SCHEDULE_DELAY, "250"),
        (BSP_EXPORT_TIMEOUT, "30000"),
        (BSP_MAX_QUEUE_SIZE, "4096"),
        (BSP_MAX_EXPORT_BATCH_SIZE, "128"),
    ]);
    assert_eq!(read.timeout, set(TIMEOUT, Timeout::Unlimited));
    assert_eq!(
        read.schedule_delay,
        set(BSP_SCHEDULE_DELAY, Duration::from_millis(250))
    );
    assert_eq!(
        read.export_timeout,
        set(
            BSP_EXPORT_TIMEOUT,
            Timeout::After(Duration::from_millis(30_000))
        )
    );
    assert_eq!(read.max_queue_size, set(BSP_MAX_QUEUE_SIZE, 4096));
    assert_eq!(
        read.max_export_batch_size,
        set(BSP_MAX_EXPORT_BATCH_SIZE, 128)
    );
    for variable in [
        BSP_SCHEDULE_DELAY,
        BSP_EXPORT_TIMEOUT,
        BSP_MAX_QUEUE_SIZE,
        BSP_MAX_EXPORT_BATCH_SIZE,
    ] {
        assert_eq!(err(&[(variable, "-1")]).field, variable);
    }
    assert_eq!(err(&[(BSP_MAX_QUEUE_SIZE, "0")]).field, BSP_MAX_QUEUE_SIZE);
    // "Must be less than or equal to OTEL_BSP_MAX_QUEUE_SIZE."
    let e = err(&[
        (BSP_MAX_QUEUE_SIZE, "64"),
        (BSP_MAX_EXPORT_BATCH_SIZE, "65"),
    ]);
    assert_eq!(e.field, BSP_MAX_EXPORT_BATCH_SIZE);
    assert!(
        env(&[
            (BSP_MAX_QUEUE_SIZE, "64"),
            (BSP_MAX_EXPORT_BATCH_SIZE, "64")
        ])
        .is_ok()
    );
}

#[test]
fn service_name_wins_over_the_resource_attribute_which_is_taken_out() {
    let attributes = "deployment.environment.name=prod,service.name=from%20attributes,team=edge";
    let read = ok(&[(RESOURCE_ATTRIBUTES, attributes)]);
    assert_eq!(
        read.service_name,
        set(RESOURCE_ATTRIBUTES, "from attributes".to_owned())
    );
    let expected = vec![
        ("deployment.environment.name".to_owned(), "prod".to_owned()),
        ("team".to_owned(), "edge".to_owned()),
    ];
    assert_eq!(
        read.resource_attributes,
        set(RESOURCE_ATTRIBUTES, expected.clone())
    );
    let read = ok(&[
        (RESOURCE_ATTRIBUTES, attributes),
        (SERVICE_NAME, "edge-fra1"),
    ]);
    assert_eq!(read.service_name, set(SERVICE_NAME, "edge-fra1".to_owned()));
    assert_eq!(read.resource_attributes, set(RESOURCE_ATTRIBUTES, expected));
    assert_eq!(
        err(&[(RESOURCE_ATTRIBUTES, "a=1,broken")]).field,
        RESOURCE_ATTRIBUTES
    );
}

fn sampler(pairs: &[(&str, &str)]) -> Option<SamplerChoice> {
    ok(pairs).sampler.map(|s| s.value)
}

#[test]
fn samplers_map_onto_the_sampling_modes() {
    let choice = |mode, parent_based, ratio| {
        Some(SamplerChoice {
            mode,
            parent_based,
            ratio,
        })
    };
    use SamplingMode::{AlwaysOff, AlwaysOn, Proportional};
    let cases = [
        ("always_on", choice(AlwaysOn, false, None)),
        ("always_off", choice(AlwaysOff, false, None)),
        ("traceidratio", choice(Proportional, false, Some(1.0))),
        ("parentbased_always_on", choice(AlwaysOn, true, None)),
        ("parentbased_always_off", choice(AlwaysOff, true, None)),
        (
            "parentbased_traceidratio",
            choice(Proportional, true, Some(1.0)),
        ),
        (
            "ParentBased_TraceIdRatio",
            choice(Proportional, true, Some(1.0)),
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(sampler(&[(TRACES_SAMPLER, name)]), expected, "{name}");
    }
    assert_eq!(
        sampler(&[
            (TRACES_SAMPLER, "traceidratio"),
            (TRACES_SAMPLER_ARG, "0.25")
        ]),
        choice(Proportional, false, Some(0.25))
    );
    for unsupported in [
        "jaeger_remote",
        "parentbased_jaeger_remote",
        "xray",
        "ratio",
    ] {
        assert_eq!(
            err(&[(TRACES_SAMPLER, unsupported)]).field,
            TRACES_SAMPLER,
            "{unsupported}"
        );
    }
    for bad in ["1.5", "-0.1", "NaN", "half"] {
        let e = err(&[(TRACES_SAMPLER, "traceidratio"), (TRACES_SAMPLER_ARG, bad)]);
        assert_eq!(e.field, TRACES_SAMPLER_ARG, "{bad}");
    }
}

#[test]
fn a_sampler_argument_without_a_ratio_sampler_is_ignored_with_a_warning() {
    let read = ok(&[(TRACES_SAMPLER_ARG, "0.5")]);
    assert_eq!(read.sampler, None);
    assert_eq!(read.warnings.len(), 1);
    assert_eq!(read.warnings[0].field, TRACES_SAMPLER_ARG);
    let read = ok(&[(TRACES_SAMPLER, "always_on"), (TRACES_SAMPLER_ARG, "0.5")]);
    assert_eq!(read.sampler.unwrap().value.ratio, None);
    assert_eq!(read.warnings.len(), 1);
}

#[test]
fn a_sampler_choice_is_applied_over_the_file_settings() {
    let mut config = SamplingConfig {
        mode: SamplingMode::HashSeed,
        percentage: 10.0,
        hash_seed: 22,
        parent_based: true,
        precision: 5,
    };
    let choice = sampler(&[
        (TRACES_SAMPLER, "traceidratio"),
        (TRACES_SAMPLER_ARG, "0.25"),
    ]);
    choice.unwrap().apply(&mut config);
    assert_eq!(config.mode, SamplingMode::Proportional);
    assert!(!config.parent_based);
    assert!((config.percentage - 25.0).abs() < 1e-4);
    assert_eq!((config.hash_seed, config.precision), (22, 5));
    assert!(matches!(
        config.build().unwrap().root,
        RootSampler::Proportional(_)
    ));
    // The ratio samplers' argument defaults to 1: everything, not the file's 10 %.
    let mut config = SamplingConfig {
        percentage: 10.0,
        ..SamplingConfig::default()
    };
    sampler(&[(TRACES_SAMPLER, "parentbased_traceidratio")])
        .unwrap()
        .apply(&mut config);
    assert!((config.percentage - 100.0).abs() < 1e-4);
    // always_on speaks of no percentage, so the file's stays.
    let mut config = SamplingConfig {
        percentage: 10.0,
        ..SamplingConfig::default()
    };
    sampler(&[(TRACES_SAMPLER, "always_on")])
        .unwrap()
        .apply(&mut config);
    assert!((config.percentage - 10.0).abs() < 1e-4);
}

fn propagators_of(value: &str) -> (Formats, Vec<FieldError>) {
    let read = ok(&[(PROPAGATORS, value)]);
    let formats = read.propagators.unwrap();
    assert_eq!(formats.variable, PROPAGATORS);
    (formats.value, read.warnings)
}

fn w3c_b3_b3multi(formats: Formats) -> (bool, bool, bool) {
    (formats.trace_context, formats.b3_single, formats.b3_multi)
}

#[test]
fn propagators_select_the_formats_written() {
    let cases = [
        ("tracecontext", (true, false, false)),
        ("b3", (false, true, false)),
        ("b3multi", (false, false, true)),
        ("tracecontext, b3 ,b3multi", (true, true, true)),
        ("TraceContext,tracecontext", (true, false, false)),
        ("none", (false, false, false)),
    ];
    for (value, expected) in cases {
        let (formats, warnings) = propagators_of(value);
        assert_eq!(w3c_b3_b3multi(formats), expected, "{value}");
        assert!(warnings.is_empty(), "{value}: {warnings:?}");
    }
}

#[test]
fn propagators_we_do_not_implement_are_ignored_with_a_warning() {
    // The specification's default list.
    let (formats, warnings) = propagators_of("tracecontext,baggage");
    assert_eq!(w3c_b3_b3multi(formats), (true, false, false));
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].field, PROPAGATORS);
    assert!(warnings[0].reason.contains("\"baggage\""));
    let (formats, warnings) = propagators_of("xray,jaeger,b3");
    assert_eq!(w3c_b3_b3multi(formats), (false, true, false));
    assert_eq!(warnings.len(), 2);
    // Nothing we know: nothing is written, as asked.
    let (formats, _) = propagators_of("baggage");
    assert_eq!(w3c_b3_b3multi(formats), (false, false, false));
    // none wins over the others, and says so.
    let (formats, warnings) = propagators_of("none,b3");
    assert_eq!(w3c_b3_b3multi(formats), (false, false, false));
    assert_eq!(warnings.len(), 1);
}

#[test]
fn sdk_disabled_is_a_boolean_that_only_true_sets() {
    assert!(ok(&[(SDK_DISABLED, "true")]).sdk_disabled);
    assert!(ok(&[(SDK_DISABLED, "True")]).sdk_disabled);
    let read = ok(&[(SDK_DISABLED, "false")]);
    assert!(!read.sdk_disabled && read.warnings.is_empty());
    let read = ok(&[(SDK_DISABLED, "1")]);
    assert!(!read.sdk_disabled);
    assert_eq!(read.warnings.len(), 1);
    assert_eq!(read.warnings[0].field, SDK_DISABLED);
}
