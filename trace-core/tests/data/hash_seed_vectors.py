#!/usr/bin/env python3
"""Known-answer vectors for the Collector's probabilistic sampler in hash_seed mode.

Written from the algorithm's description, independently of the Rust implementation:
  - 32-bit FNV-1a over the seed's 4 little-endian bytes, then the 16 trace-ID bytes;
  - keep the low 14 bits;
  - sample when that value is below uint32(percentage * 163.84), the product computed in
    32-bit float (IEEE binary32, round to nearest even) and truncated toward zero.

float32 arithmetic: the exact product of two binary32 values fits in a binary64 mantissa, so
rounding the binary64 product once to binary32 (struct 'f') gives the binary32 product.

Run: python3 hash_seed_vectors.py > hash_seed_vectors.txt
"""
import random
import struct


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fnv1a32(data):
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def scaled_rate(percentage):
    return int(f32(f32(percentage) * f32(163.84)))


def sampled(trace_id, seed, percentage):
    h = fnv1a32(struct.pack("<I", seed) + trace_id)
    return (h & 0x3FFF) < scaled_rate(percentage)


def main():
    assert fnv1a32(b"a") == 0xE40C292C and fnv1a32(b"foobar") == 0xBF9CF968
    rng = random.Random(20261121)
    seeds = [0, 1, 22, 0xDEADBEEF, 0xFFFFFFFF]
    percentages = [0.0, 0.01, 1.0, 10.0, 25.0, 33.33, 50.0, 66.6, 99.99, 100.0]
    print("# trace_id seed percentage hash14 scaled_rate sampled")
    for seed in seeds:
        for percentage in percentages:
            for _ in range(8):
                trace_id = bytes(rng.getrandbits(8) for _ in range(16))
                h14 = fnv1a32(struct.pack("<I", seed) + trace_id) & 0x3FFF
                print(trace_id.hex(), seed, repr(percentage), h14, scaled_rate(percentage),
                      int(sampled(trace_id, seed, percentage)))
    # Boundary cases: a hash exactly one below the rate (kept) and exactly at it (dropped).
    for seed, percentage in [(22, 33.33), (0xDEADBEEF, 10.0), (1, 0.01)]:
        rate = scaled_rate(percentage)
        for target in (rate - 1, rate):
            while True:
                trace_id = bytes(rng.getrandbits(8) for _ in range(16))
                h14 = fnv1a32(struct.pack("<I", seed) + trace_id) & 0x3FFF
                if h14 == target:
                    break
            print(trace_id.hex(), seed, repr(percentage), h14, rate,
                  int(sampled(trace_id, seed, percentage)))


if __name__ == "__main__":
    main()
