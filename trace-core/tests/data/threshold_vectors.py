#!/usr/bin/env python3
"""Known-answer vectors for proportional sampling thresholds (`th`) at a given precision.

Written from the OpenTelemetry Collector's algorithm (pkg/sampling,
ProbabilityToThresholdWithPrecision), independently of the Rust implementation:
  - precision 0 means all 14 hex digits; probability 1 is threshold 0;
  - the precision is raised by one digit per leading hex `f` or `0` of the threshold: by
    trunc(e / -4) for the larger of the frexp exponents e of p and of 1 - p (a float64
    subtraction), and capped at 14;
  - threshold = 2^56 - round(p * 2^56), ties away from zero (Go's math.Round);
  - rounded half up at the last kept hex digit;
  - written as 14 hex digits with trailing zeros removed, "0" for 0.

Exact rational arithmetic stands in for Go's float64 product and math.Round: p * 2^56 is exact in
float64 (a power-of-two scaling), so rounding the exact rational is what Go computes. Python's own
floats are IEEE binary64, so 1 - p is Go's 1 - p, and math.frexp is Go's math.Frexp.

Before printing, it checks itself against the specification's table and the Collector's own test
cases. Each line: the probability's IEEE-754 bits (16 hex digits), its shortest decimal form, the
precision, and the expected `th` value.

Run: python3 threshold_vectors.py > threshold_vectors.txt
"""
import math
import random
import struct
from fractions import Fraction

HEX_DIGITS = 14
MAX_ADJUSTED_COUNT = 1 << 56


def trunc_div(a, b):
    """Integer division truncating toward zero, as Go's `/` on ints (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def round_half_away(x):
    """Nearest integer to a non-negative rational, halves away from zero."""
    return math.floor(x + Fraction(1, 2))


def threshold(p, precision):
    assert 2.0 ** -56 <= p <= 1.0
    if precision == 0:
        precision = HEX_DIGITS
    if p == 1.0:
        return 0
    _, exp_p = math.frexp(p)
    _, exp_r = math.frexp(1.0 - p)
    precision = min(HEX_DIGITS, max(precision + trunc_div(exp_p, -4),
                                    precision + trunc_div(exp_r, -4)))
    t = MAX_ADJUSTED_COUNT - round_half_away(Fraction(p) * MAX_ADJUSTED_COUNT)
    shift = 4 * (HEX_DIGITS - precision)
    if shift:
        t = ((t + (1 << (shift - 1))) >> shift) << shift
    return t


def tvalue(t):
    return "0" if t == 0 else ("%014x" % t).rstrip("0")


def th(p, precision):
    return tvalue(threshold(p, precision))


def bits(p):
    return struct.unpack("<Q", struct.pack("<d", p))[0]


def next_down(p):
    """The next float64 toward zero (positive p)."""
    return struct.unpack("<d", struct.pack("<Q", bits(p) - 1))[0]


# specification/trace/tracestate-probability-sampling.md, "Converting floating-point probability
# to threshold value": 1-in-N sampling at precision 3, 4 and 5.
SPEC_TABLE = [
    (1, "0", "0", "0"),
    (2, "8", "8", "8"),
    (3, "aab", "aaab", "aaaab"),
    (4, "c", "c", "c"),
    (5, "ccd", "cccd", "ccccd"),
    (8, "e", "e", "e"),
    (10, "e66", "e666", "e6666"),
    (16, "f", "f", "f"),
    (100, "fd71", "fd70a", "fd70a4"),
    (1000, "ffbe7", "ffbe77", "ffbe76d"),
    (10000, "fff972", "fff9724", "fff97247"),
    (100000, "ffff584", "ffff583a", "ffff583a5"),
    (1000000, "ffffef4", "ffffef39", "ffffef391"),
]

# pkg/sampling/probability_test.go, TestProbabilityToThresholdWithPrecision: the exact t-value
# at full precision, then rounded ones whose precision is their length less leading zeros.
COLLECTOR_ROUNDING = [
    (1 - 0x456789a * 2.0 ** -28, "456789a",
     ["45678a", "45679", "4568", "456", "45", "4"]),
    (1 - 0x456789a * 2.0 ** -40, "000456789a",
     ["00045678a", "00045679", "0004568", "000456", "00045", "0004"]),
    (1 - 0x789abcdef * 2.0 ** -40, "0789abcdef",
     ["0789abcdef", "0789abcdf", "0789abce", "0789abd", "0789ac", "0789b", "078a", "079", "08"]),
    (1 - 0x12345678 * 2.0 ** -32, "12345678",
     ["1234568", "123456", "12345", "1234", "123", "12", "1"]),
    (1 - 0x80801 * 2.0 ** -28, "0080801", ["00808", "008"]),
    (1.0, "0", ["0"]),
]


def self_check():
    for n, *expected in SPEC_TABLE:
        for precision, want in zip((3, 4, 5), expected):
            got = th(1.0 / n, precision)
            assert got == want, ("spec table", n, precision, got, want)
    for p, exact, rounded in COLLECTOR_ROUNDING:
        assert th(p, 0) == exact, (p, th(p, 0), exact)
        for want in rounded:
            precision = len(want.lstrip("0"))
            assert th(p, precision) == want, (p, precision, th(p, precision), want)
    # ExampleProbabilityToThresholdWithPrecision and ExampleProbabilityToThreshold_rounding.
    assert [th(k / 3.0, 3) for k in (1.0, 2.0, 3.0)] == ["aab", "555", "0"]
    assert th(1.0 / 3.0, 0) == "aaaaaaaaaaaaac"
    # ExampleProbabilityToThreshold_verysmall: precision 3, raised for the leading `f`s.
    assert [th(k * 2.0 ** -56, 3) for k in (1, 2, 3, 4, 8, 16)] == [
        "ffffffffffffff", "fffffffffffffe", "fffffffffffffd", "fffffffffffffc",
        "fffffffffffff8", "fffffffffffff"]
    # ExampleProbabilityToThreshold_limitedprecision: full precision, stepping down from 15/16,
    # 1/2, 1/4, 1/8 and 1/16 one float64 at a time.
    limited = {
        15 / 16: ["1", "10000000000008", "1000000000001", "10000000000018"],
        8 / 16: ["8", "80000000000004", "80000000000008", "8000000000000c"],
        4 / 16: ["c", "c0000000000002", "c0000000000004", "c0000000000006"],
        2 / 16: ["e", "e0000000000001", "e0000000000002", "e0000000000003"],
        1 / 16: ["f", "f", "f0000000000001", "f0000000000001"],
    }
    for start, wants in limited.items():
        p = start
        for want in wants:
            assert th(p, 0) == want, (start, p, th(p, 0), want)
            p = next_down(p)
    # The example in the specification's text: 1 % at 5 digits is 0xfd70a400000000.
    assert threshold(0.01, 5) == 0xFD70A400000000


def probabilities():
    named = [1.0, 0.5, 0.25, 0.125, 0.0625, 1 / 3, 2 / 3, 0.1, 0.2, 0.3, 0.75, 0.9, 0.01,
             0.001, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10, 1e-12, 1e-15, 0.99, 0.999, 0.9999,
             0.99999, 0.999999, 1 - 1e-10, 1 - 1e-15, 15 / 16, next_down(15 / 16),
             next_down(1 / 16), next_down(0.5), next_down(1.0)]
    named += [k * 2.0 ** -56 for k in (1, 2, 3, 4, 8, 16, 17, 255)]
    # p * 2^56 exactly halfway between two integers: rounding to even would differ on even n.
    named += [(n + 0.5) * 2.0 ** -56 for n in (1, 2, 3, 10, 2 ** 20, 2 ** 40 + 1, 2 ** 51 - 1, 2 ** 51)]
    # Exact powers of two, from 2^-1 down to the smallest threshold can express, and their
    # complements up to the largest float64 below 1.
    named += [2.0 ** -k for k in range(1, 57)]
    named += [1 - 2.0 ** -k for k in range(2, 54)]
    # Configured percentages reach the sampler as float32 / 100 in float64.
    for percentage in (0.01, 1.0, 10.0, 33.33, 50.0, 66.6, 99.99):
        f32 = struct.unpack("<f", struct.pack("<f", percentage))[0]
        named.append(f32 / 100.0)
    named += [p for p, _, _ in COLLECTOR_ROUNDING]
    rng = random.Random(20260701)
    drawn = [rng.random() for _ in range(12)]
    drawn += [2.0 ** -rng.uniform(0, 56) for _ in range(12)]
    drawn += [1 - 2.0 ** -rng.uniform(1, 53) for _ in range(12)]
    seen = set()
    out = []
    for p in named + drawn:
        p = max(p, 2.0 ** -56)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def main():
    self_check()
    print("# p_bits p precision th")
    for p in probabilities():
        for precision in range(0, HEX_DIGITS + 1):
            print("%016x %r %d %s" % (bits(p), p, precision, th(p, precision)))


if __name__ == "__main__":
    main()
