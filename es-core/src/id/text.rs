//! The one validation routine shared by every textual identifier.

use std::sync::Arc;

use super::{IdError, IdKind};

/// The rules of one kind of textual identifier: the rule itself lives in `es-names`, shared
/// with the compile-time checks of es-macros.
pub(crate) struct Rules {
    pub(crate) kind: IdKind,
    pub(crate) rule: es_names::Rule,
}

impl Rules {
    pub(crate) fn check(&self, value: &str) -> Result<(), IdError> {
        use es_names::Violation;
        match self.rule.check(value) {
            Ok(()) => Ok(()),
            Err(Violation::Empty) => Err(IdError::Empty { kind: self.kind }),
            Err(Violation::TooLong { len }) => {
                Err(IdError::TooLong { kind: self.kind, len, max: self.rule.max_len })
            }
            Err(Violation::InvalidChar { at }) => Err(IdError::InvalidChar {
                kind: self.kind,
                value: value.to_owned(),
                found: value[at..].chars().next().unwrap_or_default(),
                at,
                allowed: self.rule.allowed,
            }),
        }
    }

    pub(crate) fn make(&self, value: &str) -> Result<Arc<str>, IdError> {
        self.check(value)?;
        Ok(Arc::from(value))
    }
}

/// Implements the common surface of a validated `Arc<str>` identifier: `new`, `as_str`, `Display`,
/// `AsRef<str>`, `FromStr`, `TryFrom<&str>`/`TryFrom<String>`, and serde that validates on input.
macro_rules! text_id {
    ($ty:ident, $rules:expr) => {
        impl $ty {
            /// Validates `value` and builds the identifier.
            pub fn new(value: impl AsRef<str>) -> Result<Self, $crate::id::IdError> {
                $rules.make(value.as_ref()).map(Self)
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::convert::AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::id::IdError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::new(value)
            }
        }

        impl ::std::convert::TryFrom<&str> for $ty {
            type Error = $crate::id::IdError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl ::std::convert::TryFrom<String> for $ty {
            type Error = $crate::id::IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::new(text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use text_id;
