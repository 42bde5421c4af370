//! TCP sequence-number order (RFC 9293 §3.4): modulo 2³², so "after" means less than half the
//! space ahead.

/// Whether `a` is after `b` in sequence space.
#[inline(always)]
pub const fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_wraps_around() {
        assert!(seq_after(2, 1));
        assert!(!seq_after(1, 1));
        assert!(!seq_after(1, 2));
        assert!(seq_after(3, u32::MAX - 3));
        assert!(!seq_after(u32::MAX - 3, 3));
        assert!(seq_after(0x7fff_ffff, 0));
        assert!(!seq_after(0x8000_0000, 0));
    }
}
