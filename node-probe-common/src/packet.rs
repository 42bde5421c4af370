//! What the parsers read a frame through, so that the same code runs in the kernel and in host
//! tests.

/// A frame that can be read only in fixed-size pieces.
///
/// The verifier accepts `bpf_skb_load_bytes` only with a length it can prove constant, so a load
/// has a compile-time size `N` and a run-time offset, and there is no slicing. The eBPF crate
/// implements [`Packet::load`] for aya's `TcContext` with `TcContext::load`, and
/// [`Packet::load_into`] with the helper itself, because
/// `TcContext::load_bytes` clamps the length at run time, which is what the verifier refuses:
///
/// ```text
/// impl Packet for TcContext {
///     fn len(&self) -> usize { TcContext::len(self) as usize }
///     fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
///         TcContext::load::<[u8; N]>(self, offset).ok()
///     }
///     fn load_into<const N: usize>(&self, offset: usize, out: &mut [u8; N]) -> bool {
///         let Ok(offset) = u32::try_from(offset) else { return false };
///         // SAFETY: `out` is N writable bytes; the helper checks the skb's bounds.
///         unsafe {
///             bpf_skb_load_bytes(self.skb.skb as *const _, offset, out.as_mut_ptr().cast(), N as u32) == 0
///         }
///     }
/// }
/// ```
///
/// The helper copies from non-linear skb data too, which virtio segments are, so no
/// `bpf_skb_pull_data` is needed. Large copies go straight to their destination through
/// `load_into` (the 192-byte prefix into the ring-buffer entry): built on the BPF stack
/// instead, the four prefix windows alone would overflow its 512 bytes.
#[allow(
    clippy::len_without_is_empty,
    reason = "the parsers ask only for the length; an is_empty nobody calls would be dead code"
)]
pub trait Packet {
    /// The frame's length in bytes, from the start of the Ethernet header (`skb->len`).
    fn len(&self) -> usize;

    /// Copies the `N` bytes at `offset` into `out`; `false` (and `out` unspecified) when they
    /// are not all inside the frame.
    fn load_into<const N: usize>(&self, offset: usize, out: &mut [u8; N]) -> bool;

    /// The `N` bytes at `offset`, or `None` when they are not all inside the frame. For
    /// headers, which are small; see [`Packet::load_into`] for larger copies. (Not provided
    /// on top of `load_into`: zeroing the array first costs a `memset` call on bpf.)
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
}

impl Packet for [u8] {
    #[inline(always)]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    #[inline(always)]
    fn load_into<const N: usize>(&self, offset: usize, out: &mut [u8; N]) -> bool {
        match self.load::<N>(offset) {
            Some(bytes) => {
                *out = bytes;
                true
            }
            None => false,
        }
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.get(offset..)?.first_chunk::<N>().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_bounded_by_the_frame() {
        let frame: &[u8] = &[1, 2, 3, 4];
        assert_eq!(frame.load::<2>(2), Some([3, 4]));
        assert_eq!(frame.load::<3>(2), None);
        assert_eq!(frame.load::<0>(4), Some([]));
        assert_eq!(frame.load::<1>(usize::MAX), None);
        let mut out = [9; 3];
        assert!(frame.load_into(1, &mut out));
        assert_eq!(out, [2, 3, 4]);
        assert!(!frame.load_into(2, &mut out));
    }
}
