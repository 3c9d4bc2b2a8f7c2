//! # es-names
//!
//! The rules every textual identifier of the framework follows, defined once: es-core checks
//! them when an id is built at run time, es-macros checks the literals of `#[event(name = …)]`,
//! `#[aggregate(name = …)]` and `#[projection(name = …)]` at compile time, and a projection's
//! own name is checked in a constant. Applications never depend on this crate: es-core's id
//! types (`EventType`, `StreamId`, `ProjectionName`, …) are the API.
//!
//! ```
//! use es_names::{EVENT_TYPE, Violation};
//! assert_eq!(EVENT_TYPE.check("account.opened"), Ok(()));
//! assert_eq!(EVENT_TYPE.check("account opened"), Err(Violation::InvalidChar { at: 7 }));
//! assert_eq!(EVENT_TYPE.check(""), Err(Violation::Empty));
//! ```

#![no_std]

/// Which characters a name may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// ASCII letters and digits, and the listed ASCII punctuation.
    Ascii {
        /// The punctuation allowed besides letters and digits.
        punctuation: &'static [u8],
    },
    /// Any character but a control character (Unicode category `Cc`).
    NoControl,
}

impl Charset {
    /// Whether `c` is allowed.
    #[must_use]
    pub const fn allows(self, c: char) -> bool {
        match self {
            Self::Ascii { punctuation } => {
                if c.is_ascii_alphanumeric() {
                    return true;
                }
                if !c.is_ascii() {
                    return false;
                }
                let mut i = 0;
                while i < punctuation.len() {
                    if punctuation[i] as char == c {
                        return true;
                    }
                    i += 1;
                }
                false
            }
            // `char::is_control` is exactly `Cc`: U+0000–U+001F and U+007F–U+009F.
            Self::NoControl => !matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'),
        }
    }
}

/// The rules of one kind of name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// What the name is, for messages: `event type name`.
    pub what: &'static str,
    /// The longest name, in bytes.
    pub max_len: usize,
    /// The allowed characters.
    pub charset: Charset,
    /// The allowed characters in words, for messages.
    pub allowed: &'static str,
}

/// How a name breaks its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// The name is empty.
    Empty,
    /// The name is longer than the rule's `max_len` bytes.
    TooLong {
        /// The name's length, in bytes.
        len: usize,
    },
    /// The character starting at byte `at` is not allowed.
    InvalidChar {
        /// The byte offset of the first character not allowed.
        at: usize,
    },
}

impl Rule {
    /// Checks `name`; usable in constants, where a broken rule can stop the build.
    ///
    /// # Errors
    ///
    /// The first rule `name` breaks: empty, too long, or the first character not allowed.
    pub const fn check(&self, name: &str) -> Result<(), Violation> {
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return Err(Violation::Empty);
        }
        if bytes.len() > self.max_len {
            return Err(Violation::TooLong { len: bytes.len() });
        }
        let mut at = 0;
        while at < bytes.len() {
            let (c, len) = decode(bytes, at);
            if !self.charset.allows(c) {
                return Err(Violation::InvalidChar { at });
            }
            at += len;
        }
        Ok(())
    }

    /// Whether `name` follows the rule.
    #[must_use]
    pub const fn allows(&self, name: &str) -> bool {
        self.check(name).is_ok()
    }
}

/// The character starting at byte `at` of valid UTF-8, and its length in bytes.
const fn decode(bytes: &[u8], at: usize) -> (char, usize) {
    let first = bytes[at] as u32;
    let (len, mut code) = match first {
        0x00..=0x7f => (1, first),
        0xc0..=0xdf => (2, first & 0x1f),
        0xe0..=0xef => (3, first & 0x0f),
        _ => (4, first & 0x07),
    };
    let mut i = 1;
    while i < len {
        code = (code << 6) | (bytes[at + i] as u32 & 0x3f);
        i += 1;
    }
    match char::from_u32(code) {
        Some(c) => (c, len),
        // Unreachable for a `&str`; a replacement character is never allowed by an ASCII rule.
        None => ('\u{fffd}', len),
    }
}

/// `es_core::EventType`, the stored name of an event type: `account.opened`.
pub const EVENT_TYPE: Rule = Rule {
    what: "event type name",
    max_len: 128,
    charset: Charset::Ascii { punctuation: b"._-:/" },
    allowed: "event type names use ASCII letters, digits and '.', '_', '-', ':', '/'",
};

/// A stream category, the part of a stream id before the first `-`, and an aggregate's name.
pub const CATEGORY: Rule = Rule {
    what: "stream category",
    max_len: 64,
    charset: Charset::Ascii { punctuation: b"_." },
    allowed: "categories use ASCII letters, digits, '_' and '.' (a '-' ends the category)",
};

/// `es_core::StreamId`.
pub const STREAM: Rule = Rule {
    what: "stream id",
    max_len: 256,
    charset: Charset::NoControl,
    allowed: "stream ids may hold any character but control characters",
};

/// `es_core::TenantId`.
pub const TENANT: Rule = Rule {
    what: "tenant id",
    max_len: 64,
    charset: Charset::Ascii { punctuation: b"-_." },
    allowed: "tenant ids use ASCII letters, digits, '-', '_' and '.'",
};

/// `es_core::IdempotencyKey`.
pub const IDEMPOTENCY_KEY: Rule = Rule {
    what: "idempotency key",
    max_len: 128,
    charset: Charset::NoControl,
    allowed: "idempotency keys may hold any character but control characters",
};

/// `es_core::ProjectionName`: a projection's own name or one derived from it
/// (`balances.rebuild`).
pub const PROJECTION: Rule = Rule {
    what: "projection name",
    max_len: 128,
    charset: Charset::Ascii { punctuation: b"-_." },
    allowed: "projection names use ASCII letters, digits, '-', '_' and '.'",
};

/// The name a projection declares itself (`#[projection(name = …)]`, `Projection::NAME`): as
/// [`PROJECTION`], at most 64 bytes, leaving room for suffixes.
pub const PROJECTION_OWN: Rule = Rule { max_len: 64, ..PROJECTION };

/// A subject integration messages are published under (`bank.account.opened`): the characters
/// of its dot-separated tokens. That no token is empty (no leading, trailing or doubled `.`) is
/// checked beside this rule by `es_core::Subject`. Wildcards (`*`, `>`) are never allowed: a
/// message is published to one subject.
pub const SUBJECT: Rule = Rule {
    what: "subject",
    max_len: 255,
    charset: Charset::Ascii { punctuation: b"-_." },
    allowed: "subjects are '.'-separated tokens of ASCII letters, digits, '-' and '_'",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_rules() {
        assert_eq!(EVENT_TYPE.check("account.opened"), Ok(()));
        assert_eq!(EVENT_TYPE.check("a:b/c-d_e"), Ok(()));
        assert_eq!(EVENT_TYPE.check("bä"), Err(Violation::InvalidChar { at: 1 }));
        assert_eq!(CATEGORY.check("bank-account"), Err(Violation::InvalidChar { at: 4 }));
        assert_eq!(CATEGORY.check("bank_account.v2"), Ok(()));
        assert_eq!(TENANT.check("acme-1.eu_west"), Ok(()));
        assert_eq!(PROJECTION.check("balances; DROP"), Err(Violation::InvalidChar { at: 8 }));
    }

    #[test]
    fn lengths_are_bytes() {
        let long = [b'x'; 65];
        let long = core::str::from_utf8(&long).unwrap_or_default();
        assert_eq!(PROJECTION_OWN.check(long), Err(Violation::TooLong { len: 65 }));
        assert_eq!(PROJECTION.check(long), Ok(()));
        assert_eq!(PROJECTION_OWN.check(&long[..64]), Ok(()));
        assert_eq!(STREAM.check(""), Err(Violation::Empty));
    }

    #[test]
    fn no_control_matches_char_is_control() {
        for code in (0..0x3000).chain([0x1_f600, 0x10_ffff]) {
            if let Some(c) = char::from_u32(code) {
                assert_eq!(Charset::NoControl.allows(c), !c.is_control(), "{code:#x}");
            }
        }
        let mut buf = [0; 4];
        for c in ['a', 'é', '€', '😀', '\u{85}'] {
            let text = c.encode_utf8(&mut buf);
            assert_eq!(decode(text.as_bytes(), 0), (c, c.len_utf8()));
        }
        assert_eq!(STREAM.check("account-42/ä😀"), Ok(()));
        assert_eq!(STREAM.check("bad\nid"), Err(Violation::InvalidChar { at: 3 }));
    }
}
