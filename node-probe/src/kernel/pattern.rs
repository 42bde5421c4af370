//! Which interfaces the probe attaches to: names matched against glob patterns (`tap*`,
//! `fc-*`) in which `*` stands for any run of characters and nothing else is special.

use super::StartError;

/// The configured interface-name patterns.
#[derive(Clone, Debug)]
pub(crate) struct Patterns(Vec<String>);

impl Patterns {
    /// Checks each pattern: not empty, printable ASCII without spaces or `/` (what an
    /// interface name can hold).
    pub(crate) fn new(patterns: &[String]) -> Result<Self, StartError> {
        if patterns.is_empty() {
            return Err(StartError::NoPatterns);
        }
        for pattern in patterns {
            let valid =
                !pattern.is_empty() && pattern.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
            if !valid {
                return Err(StartError::BadPattern(pattern.clone()));
            }
        }
        Ok(Self(patterns.to_vec()))
    }

    /// Whether `name` matches any pattern.
    pub(crate) fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|pattern| glob(pattern, name))
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (also none).
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    // `split` always yields a first part, the text before any `*`.
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let Some(mut last) = parts.next() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    // Each part between two stars matches at its first occurrence: taking the earliest
    // leaves the most room for what follows, so this never misses a match.
    for next in parts {
        match rest.split_once(last) {
            Some((_, after)) => rest = after,
            None => return false,
        }
        last = next;
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run() {
        assert!(glob("tap*", "tap0"));
        assert!(glob("tap*", "tap"));
        assert!(glob("fc-*", "fc-vm12-tap"));
        assert!(!glob("fc-*", "fc"));
        assert!(!glob("tap*", "xtap0"));
        assert!(glob("*", ""));
        assert!(glob("*-tap", "vm1-tap"));
        assert!(!glob("*-tap", "vm1-tap0"));
        assert!(glob("vm*-*-tap", "vm1-a-b-tap"));
        assert!(!glob("vm*-*-tap", "vm1-tap"));
        assert!(glob("a*a", "aa"));
        assert!(!glob("a*a", "a"));
        assert!(glob("a**b", "ab"));
        assert!(glob("eth0", "eth0"));
        assert!(!glob("eth0", "eth00"));
    }

    #[test]
    fn glob_agrees_with_a_backtracking_matcher() {
        fn reference(p: &[u8], n: &[u8]) -> bool {
            match (p.first(), n.first()) {
                (None, _) => n.is_empty(),
                (Some(b'*'), _) => {
                    reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..]))
                }
                (Some(a), Some(b)) => a == b && reference(&p[1..], &n[1..]),
                (Some(_), None) => false,
            }
        }
        let alphabet = ["", "a", "b", "*"];
        let mut patterns = vec![String::new()];
        for _ in 0..4 {
            patterns = patterns
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
        }
        let names: Vec<String> = patterns.iter().map(|p| p.replace('*', "ab")).collect();
        for p in &patterns {
            for n in &names {
                assert_eq!(
                    glob(p, n),
                    reference(p.as_bytes(), n.as_bytes()),
                    "{p:?} {n:?}"
                );
            }
        }
    }

    #[test]
    fn patterns_are_checked() {
        assert!(Patterns::new(&[]).is_err());
        assert!(Patterns::new(&["".into()]).is_err());
        assert!(Patterns::new(&["tap 0".into()]).is_err());
        assert!(Patterns::new(&["a/b".into()]).is_err());
        let patterns = Patterns::new(&["tap*".into(), "fc-*".into()]).unwrap();
        assert!(patterns.matches("tap3") && patterns.matches("fc-1") && !patterns.matches("eth0"));
    }
}
