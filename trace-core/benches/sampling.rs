//! One sampling decision, per mode.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use trace_core::IdGenerator;
use trace_core::sampling::{SamplingConfig, SamplingMode};

fn decisions(c: &mut Criterion) {
    let mut ids = IdGenerator::from_seed(1);
    let trace_ids: Vec<_> = (0..1024).map(|_| ids.trace_id()).collect();
    let mut group = c.benchmark_group("sampling_decision");
    for (name, mode) in [
        ("hash_seed", SamplingMode::HashSeed),
        ("proportional", SamplingMode::Proportional),
    ] {
        let sampler = SamplingConfig {
            mode,
            percentage: 10.0,
            hash_seed: 22,
            parent_based: true,
            ..SamplingConfig::default()
        }
        .build()
        .expect("valid");
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                sampler.decide(black_box(&trace_ids[i]), None, None)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
