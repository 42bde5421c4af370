//! hash_seed sampling against vectors computed by `data/hash_seed_vectors.py`, an independent
//! implementation of the Collector's algorithm (its own FNV-1a and float32 arithmetic).

use trace_core::TraceId;
use trace_core::sampling::{HashSeedSampler, SamplingConfig, SamplingMode};

const VECTORS: &str = include_str!("data/hash_seed_vectors.txt");

struct Vector {
    trace_id: TraceId,
    seed: u32,
    percentage: f32,
    sampled: bool,
}

fn vectors() -> Vec<Vector> {
    VECTORS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 6, "{line}");
            Vector {
                trace_id: TraceId::from_hex(fields[0].as_bytes()).unwrap(),
                seed: fields[1].parse().unwrap(),
                percentage: fields[2].parse().unwrap(),
                sampled: fields[5] == "1",
            }
        })
        .collect()
}

#[test]
fn every_vector_matches() {
    let vectors = vectors();
    assert!(vectors.len() >= 400);
    assert!(vectors.iter().any(|v| v.sampled) && vectors.iter().any(|v| !v.sampled));
    for v in &vectors {
        let sampler = HashSeedSampler::new(v.percentage, v.seed);
        assert_eq!(
            sampler.should_sample(&v.trace_id),
            v.sampled,
            "trace {} seed {} percentage {}",
            v.trace_id,
            v.seed,
            v.percentage
        );
    }
}

#[test]
fn configuration_path_decides_the_same() {
    for v in vectors() {
        let sampler = SamplingConfig {
            mode: SamplingMode::HashSeed,
            percentage: v.percentage,
            hash_seed: v.seed,
            parent_based: false,
            ..SamplingConfig::default()
        }
        .build()
        .unwrap();
        assert_eq!(
            sampler.decide(&v.trace_id, Some(!v.sampled), None).sampled,
            v.sampled
        );
    }
}
