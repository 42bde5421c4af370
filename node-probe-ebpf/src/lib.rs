//! The TC eBPF programs of node-probe, built for `bpfel-unknown-none`.
//!
//! Not implemented yet: the crate holds no program. Setup builds it for the BPF target so that
//! the eBPF toolchain is proven on every machine before programs land here.
#![no_std]
