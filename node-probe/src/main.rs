//! The node agent binary.

fn main() {}
