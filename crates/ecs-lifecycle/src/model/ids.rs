//! The names of things, each its own type: an instance id cannot be passed
//! where a task ARN is expected. They are plain strings on the wire (`serde`
//! transparent), and read as `&str` wherever a string is all that is needed.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// One string newtype, with what every name needs: construction from strings,
/// `&str` access, display, comparison with string literals, and `Borrow<str>`
/// (so that maps keyed by it are looked up by `&str`).
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }

        impl From<&$name> for String {
            fn from(n: &$name) -> String {
                n.0.clone()
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl PartialEq<&$name> for $name {
            fn eq(&self, other: &&$name) -> bool {
                self.0 == other.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

name_type!(
    /// An EC2 instance id (`i-` and 8 or 17 hex digits; see
    /// [`crate::model::is_instance_id`]).
    InstanceId
);

name_type!(
    /// An ECS cluster, by name or ARN (the API takes either; metrics use the
    /// name, [`crate::report::cluster_name`]).
    Cluster
);

name_type!(
    /// A container instance's ARN (`arn:aws:ecs:<region>:<account>:container-instance/...`).
    ContainerInstanceArn
);

name_type!(
    /// A task's ARN (`arn:aws:ecs:<region>:<account>:task/...`).
    TaskArn
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_strings_on_the_wire() {
        let id = InstanceId::new("i-0123456789abcdef0");
        assert_eq!(
            serde_json::to_string(&id).ok().as_deref(),
            Some("\"i-0123456789abcdef0\"")
        );
        let back: Result<InstanceId, _> = serde_json::from_str("\"i-0123456789abcdef0\"");
        assert_eq!(back.ok(), Some(id.clone()));
        assert_eq!(id, "i-0123456789abcdef0");
        assert_eq!(id.len(), 19, "read as a &str");
    }

    #[test]
    fn maps_keyed_by_a_name_are_looked_up_by_str() {
        let mut m = std::collections::HashMap::new();
        m.insert(TaskArn::new("arn:aws:ecs:us-east-1:1:task/c/1"), 1);
        assert_eq!(m.get("arn:aws:ecs:us-east-1:1:task/c/1"), Some(&1));
    }
}
