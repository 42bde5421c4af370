//! Proportional-sampling thresholds (`th`) at a given precision, against three sources:
//!
//! - vectors computed by `data/threshold_vectors.py`, an independent implementation of the
//!   Collector's algorithm (exact rational arithmetic, its own rounding and truncation);
//! - the OpenTelemetry specification's own examples, listed here;
//! - the Collector's test cases for `ProbabilityToThresholdWithPrecision`, listed here.

use trace_core::sampling::{SamplingConfig, SamplingMode, Threshold};
use trace_core::{SpanContext, TraceFlags, TraceId};

const VECTORS: &str = include_str!("data/threshold_vectors.txt");

fn th(p: f64, precision: u8) -> String {
    Threshold::from_probability(p, precision).to_string()
}

struct Vector {
    p: f64,
    precision: u8,
    th: String,
}

fn vectors() -> Vec<Vector> {
    VECTORS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "{line}");
            let p = f64::from_bits(u64::from_str_radix(fields[0], 16).unwrap());
            // The decimal form is for reading; it must name the same float as the bits.
            assert_eq!(fields[1].parse::<f64>().unwrap(), p, "{line}");
            Vector {
                p,
                precision: fields[2].parse().unwrap(),
                th: fields[3].to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_vector_matches() {
    let vectors = vectors();
    assert!(vectors.len() >= 2700, "{} vectors", vectors.len());
    for precision in 0..=14 {
        assert!(vectors.iter().any(|v| v.precision == precision));
    }
    let mut wrong = Vec::new();
    for v in &vectors {
        let got = th(v.p, v.precision);
        if got != v.th {
            wrong.push(format!(
                "p {:?} precision {}: got {got}, want {}",
                v.p, v.precision, v.th
            ));
        }
        assert_eq!(
            Threshold::parse(&v.th).map(|t| t.to_string()),
            Some(v.th.clone())
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        vectors.len(),
        wrong.join("\n")
    );
}

/// OpenTelemetry specification, `specification/trace/tracestate-probability-sampling.md`
/// (commit 1377f53b2bc0683c45169b8f20fd973eb4d59419), section "Converting floating-point
/// probability to threshold value": the table of 1-in-N sampling at precision 3, 4 and 5.
#[test]
fn specification_table_of_one_in_n() {
    let table: [(u32, [&str; 3]); 13] = [
        (1, ["0", "0", "0"]),
        (2, ["8", "8", "8"]),
        (3, ["aab", "aaab", "aaaab"]),
        (4, ["c", "c", "c"]),
        (5, ["ccd", "cccd", "ccccd"]),
        (8, ["e", "e", "e"]),
        (10, ["e66", "e666", "e6666"]),
        (16, ["f", "f", "f"]),
        (100, ["fd71", "fd70a", "fd70a4"]),
        (1000, ["ffbe7", "ffbe77", "ffbe76d"]),
        (10000, ["fff972", "fff9724", "fff97247"]),
        (100000, ["ffff584", "ffff583a", "ffff583a5"]),
        (1000000, ["ffffef4", "ffffef39", "ffffef391"]),
    ];
    for (n, expected) in table {
        for (precision, want) in (3..=5).zip(expected) {
            assert_eq!(
                th(1.0 / f64::from(n), precision),
                want,
                "1-in-{n} at {precision}"
            );
        }
    }
}

/// The same document, section "Rejection Threshold (`T`)": 1 % with 5 digits of precision is
/// 0xfd70a400000000, sent as `ot=th:fd70a4`.
#[test]
fn specification_text_example_of_one_percent() {
    let threshold = Threshold::from_probability(0.01, 5);
    assert_eq!(threshold, Threshold::parse("fd70a400000000").unwrap());
    assert_eq!(threshold.to_string(), "fd70a4");
}

/// opentelemetry-collector-contrib `pkg/sampling/probability_test.go` (commit
/// 92609d1b552e14d19f7e208b4f090cc111cab1d8), `TestProbabilityToThresholdWithPrecision`: the
/// exact t-value, then rounded ones whose precision is their length less leading zeros.
#[test]
fn collector_rounding_cases() {
    let cases: [(f64, &str, &[&str]); 6] = [
        (
            1.0 - f64::from(0x456_789a_u32) / 2f64.powi(28),
            "456789a",
            &["45678a", "45679", "4568", "456", "45", "4"],
        ),
        (
            1.0 - f64::from(0x456_789a_u32) / 2f64.powi(40),
            "000456789a",
            &[
                "00045678a",
                "00045679",
                "0004568",
                "000456",
                "00045",
                "0004",
            ],
        ),
        (
            1.0 - 0x7_89ab_cdef_u64 as f64 / 2f64.powi(40),
            "0789abcdef",
            &[
                "0789abcdef",
                "0789abcdf",
                "0789abce",
                "0789abd",
                "0789ac",
                "0789b",
                "078a",
                "079",
                "08",
            ],
        ),
        (
            1.0 - f64::from(0x1234_5678_u32) / 2f64.powi(32),
            "12345678",
            &["1234568", "123456", "12345", "1234", "123", "12", "1"],
        ),
        (
            1.0 - f64::from(0x8_0801_u32) / 2f64.powi(28),
            "0080801",
            &["00808", "008"],
        ),
        (1.0, "0", &["0"]),
    ];
    for (p, exact, rounded) in cases {
        assert_eq!(th(p, 14), exact, "{p}");
        assert_eq!(th(p, 0), exact, "precision 0 is full precision, {p}");
        for want in rounded {
            let precision = want.trim_start_matches('0').len() as u8;
            assert_eq!(th(p, precision), *want, "{p} at {precision}");
        }
    }
}

/// The same file's examples: `ExampleProbabilityToThresholdWithPrecision`,
/// `ExampleProbabilityToThreshold_rounding`, `_verysmall` and `_limitedprecision`.
#[test]
fn collector_examples() {
    let thirds: Vec<String> = [1.0, 2.0, 3.0].iter().map(|k| th(k / 3.0, 3)).collect();
    assert_eq!(thirds, ["aab", "555", "0"]);
    assert_eq!(th(1.0 / 3.0, 14), "aaaaaaaaaaaaac");

    let very_small: Vec<String> = [1.0, 2.0, 3.0, 4.0, 8.0, 16.0]
        .iter()
        .map(|k| th(k / 2f64.powi(56), 3))
        .collect();
    assert_eq!(
        very_small,
        [
            "ffffffffffffff",
            "fffffffffffffe",
            "fffffffffffffd",
            "fffffffffffffc",
            "fffffffffffff8",
            "fffffffffffff"
        ]
    );

    let next_down = |p: f64| f64::from_bits(p.to_bits() - 1);
    let limited: [(f64, [&str; 4]); 5] = [
        (
            15.0 / 16.0,
            ["1", "10000000000008", "1000000000001", "10000000000018"],
        ),
        (
            0.5,
            ["8", "80000000000004", "80000000000008", "8000000000000c"],
        ),
        (
            0.25,
            ["c", "c0000000000002", "c0000000000004", "c0000000000006"],
        ),
        (
            0.125,
            ["e", "e0000000000001", "e0000000000002", "e0000000000003"],
        ),
        (0.0625, ["f", "f", "f0000000000001", "f0000000000001"]),
    ];
    for (start, wants) in limited {
        let mut p = start;
        for want in wants {
            assert_eq!(th(p, 14), want, "{p:?}");
            p = next_down(p);
        }
    }
}

/// The example end to end: a 1 % proportional sampler at the default precision 4
/// writes `ot=th:fd70a` on the traces it keeps.
#[test]
fn configured_one_percent_writes_fd70a() {
    let sampler = SamplingConfig {
        mode: SamplingMode::Proportional,
        percentage: 1.0,
        parent_based: false,
        ..SamplingConfig::default()
    }
    .build()
    .unwrap();
    let kept = TraceId::from_hex(b"000000000000000000ffffffffffffff").unwrap();
    let mut context = SpanContext {
        trace_id: kept,
        flags: TraceFlags::RANDOM,
        ..SpanContext::default()
    };
    let decision = sampler.decide(&kept, None, Some(&context));
    assert!(decision.sampled);
    decision.apply(&mut context);
    assert_eq!(context.trace_state.as_str(), "ot=th:fd70a");
}
