//! `aya::Pod` for the types the agent reads from the kernel: the map key and value of
//! [`FLOWS`](crate::FLOWS) (through aya's `HashMap`) and the ring-buffer event.
#![allow(
    unsafe_code,
    reason = "aya::Pod is an unsafe marker trait: implementing it is the promise below"
)]

use crate::event::{EventHeader, PacketEvent};
use crate::flow::{FlowKey, FlowState, HalfFlow};

// SAFETY (each impl): the type is `#[repr(C)]`, `Copy` and `'static`, made only of integers and
// integer arrays (or such structs), with every padding byte an explicit field, which the layout
// tests in event.rs check. So every bit pattern is a valid value and no byte is uninitialised.
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for HalfFlow {}
unsafe impl aya::Pod for FlowState {}
unsafe impl aya::Pod for EventHeader {}
unsafe impl aya::Pod for PacketEvent {}
