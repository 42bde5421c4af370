//! `major.minor[.patch]` versions of Kuma and Envoy, compared by their numbers.

use crate::FieldError;

/// A release version; a missing patch number reads as 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// A version without a patch number.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self {
            major,
            minor,
            patch: 0,
        }
    }

    /// Parses `1.38.2`, `1.38` or `v2.14.3`, and refuses one older than `oldest`.
    pub fn parse(field: &str, text: &str, oldest: Version) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                field,
                format!("{text:?} is not a major.minor[.patch] version"),
            )
        };
        let digits = text.strip_prefix('v').unwrap_or(text);
        let mut parts = digits.split('.').map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                Err(bad())
            } else {
                p.parse::<u32>().map_err(|_| bad())
            }
        });
        let major = parts.next().ok_or_else(bad)??;
        let minor = parts.next().ok_or_else(bad)??;
        let patch = parts.next().transpose()?.unwrap_or(0);
        if parts.next().is_some() {
            return Err(bad());
        }
        let version = Self {
            major,
            minor,
            patch,
        };
        if version < oldest {
            return Err(FieldError::new(
                field,
                format!(
                    "{text} is older than the oldest supported, {}.{}",
                    oldest.major, oldest.minor
                ),
            ));
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares() {
        let oldest = Version::new(1, 30);
        let v = Version::parse("f", "1.38.2", oldest).unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 38, 2));
        assert_eq!(
            Version::parse("f", "v1.33", oldest).unwrap(),
            Version::new(1, 33)
        );
        assert!(Version::parse("f", "1.33", oldest).unwrap() >= Version::new(1, 33));
        assert!(Version::parse("f", "1.32.9", oldest).unwrap() < Version::new(1, 33));
        for bad in ["", "1", "1.x", "1.2.3.4", "1..2", "-1.2", "1.2 "] {
            assert_eq!(
                Version::parse("f", bad, oldest).unwrap_err().field,
                "f",
                "{bad:?}"
            );
        }
        assert!(
            Version::parse("f", "1.29.9", oldest)
                .unwrap_err()
                .reason
                .contains("older")
        );
    }
}
