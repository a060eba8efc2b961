//! One chain per launch action. A launch-verify invocation that holds an
//! action writes its claim into an EC2 tag on the instance
//! ([`LAUNCH_CHAIN_TAG`]) at its first look, and reads it back from the
//! DescribeInstances every look makes anyway. A duplicate delivery (of the hook
//! notification, or of a continuation) or a late retry then finds out that
//! another invocation carries the action, and stops instead of living on as a
//! second chain until the verdict.
//!
//! The tag's value is `<hop>:<token>:<parent>:<hook>`: the writer's hop
//! (continuation attempt), its own random token, the token of its chain's
//! latest claim before it (`-` for none) and its lifecycle hook. The rules
//! ([`decide`]), for a tag of the invocation's own hook:
//! - a later hop has looked: this delivery is of an earlier hop (a duplicate,
//!   a late retry): stop;
//! - the token is one the chain knows (its own claims, and what the tag said
//!   before each of them, which a stale read may still show): claim if not
//!   claimed yet in this invocation, else carry on;
//! - a sibling (written from the same claim of the chain as this invocation
//!   starts from: a duplicate or a retry of this delivery, or of an ancestor's
//!   that crashed after its write), or any tag while the chain has never
//!   claimed: the newest wins, so an invocation that has not claimed yet
//!   claims, and one that has stops;
//! - any other token was written by a newer chain after this chain's latest
//!   claim: stop.
//!
//! The last writer's chain thus always carries on and every other stops at its
//! next look. A tag of another of our launch hooks on the same instance (each
//! holds its own action) belongs to the hook whose name sorts first; the other
//! runs unclaimed. The claim never gates the check: a write EC2 refuses
//! (the instance's 50 tags, a hook name too long for a tag value, a missing
//! permission) leaves the check going on unclaimed, logged.

use serde::{Deserialize, Serialize};

pub use crate::model::LAUNCH_CHAIN_TAG;

/// EC2's limit on a tag value (Unicode characters).
pub const TAG_VALUE_MAX: usize = 256;

/// How many known tokens a chain carries from hop to hop (the most recent):
/// enough to outlast a stale read, bounded in the continuation.
const KNOWN_MAX: usize = 16;

/// The claim read from (or written to) the instance's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTag {
    pub hop: u32,
    pub token: String,
    pub parent: Option<String>,
    pub hook: String,
}

impl ChainTag {
    /// Reads a tag value; `None` for a value this release did not write (then
    /// it is no claim, and is overwritten).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.splitn(4, ':');
        let hop = parts.next()?.parse().ok()?;
        let token = parts.next().filter(|t| !t.is_empty())?.to_owned();
        let parent = match parts.next()? {
            "" => return None,
            "-" => None,
            p => Some(p.to_owned()),
        };
        let hook = parts.next().filter(|h| !h.is_empty())?.to_owned();
        Some(ChainTag {
            hop,
            token,
            parent,
            hook,
        })
    }

    /// The tag value; `None` if it is longer than EC2 takes (a hook name of
    /// more than about 215 characters).
    pub fn value(&self) -> Option<String> {
        let v = format!(
            "{}:{}:{}:{}",
            self.hop,
            self.token,
            self.parent.as_deref().unwrap_or("-"),
            self.hook
        );
        (v.chars().count() <= TAG_VALUE_MAX).then_some(v)
    }
}

/// What a chain carries from hop to hop (in the continuation's memo).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainMemo {
    /// The token of this chain's latest claim that went through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<String>,
    /// Tokens that are not a newer chain: this chain's own claims and what the
    /// tag said before each (the most recent [`KNOWN_MAX`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<String>,
}

impl ChainMemo {
    pub fn is_empty(&self) -> bool {
        self.claimed.is_none() && self.known.is_empty()
    }

    fn knows(&self, token: &str) -> bool {
        self.known.iter().any(|k| k == token)
    }

    /// Records a claim that went through: `token` written over `before`.
    pub fn claimed(&mut self, token: &str, before: Option<&str>) {
        self.tried(token, before);
        self.claimed = Some(token.to_owned());
    }

    /// Records a write of `token` over `before` that may or may not have gone
    /// through (its answer was lost): a later read of either is not a newer
    /// chain.
    pub fn tried(&mut self, token: &str, before: Option<&str>) {
        for t in before.into_iter().chain([token]) {
            if !self.knows(t) {
                self.known.push(t.to_owned());
            }
        }
        if self.known.len() > KNOWN_MAX {
            self.known.drain(..self.known.len() - KNOWN_MAX);
        }
    }
}

/// The invocation that looks: its hook, hop and token, what its chain knows,
/// the parent it was handed (its chain's claim when it started), and whether
/// it has claimed yet.
#[derive(Debug, Clone, Copy)]
pub struct Me<'a> {
    pub hook: &'a str,
    pub hop: u32,
    pub token: &'a str,
    pub parent: Option<&'a str>,
    pub chain: &'a ChainMemo,
    pub claimed_now: bool,
}

/// What the look does about the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimStep {
    /// Write this invocation's claim (none yet, or the tag is ours to take).
    Claim,
    /// Carry on as the tag stands.
    Keep,
    /// Another invocation carries the action: stop without completing.
    Stop { by: String },
}

/// The claim decision for one look (see the module's rules).
pub fn decide(tag: Option<&ChainTag>, me: &Me<'_>) -> ClaimStep {
    let claim_or_keep = || {
        if me.claimed_now {
            ClaimStep::Keep
        } else {
            ClaimStep::Claim
        }
    };
    let Some(tag) = tag else {
        // No claim (or a stale read from before ours): take it.
        return claim_or_keep();
    };
    if tag.hook != me.hook {
        // Each of our launch hooks holds its own action on the instance: the
        // tag belongs to the hook whose name sorts first.
        return if tag.hook.as_str() < me.hook {
            ClaimStep::Keep
        } else {
            claim_or_keep()
        };
    }
    if tag.token == me.token {
        return ClaimStep::Keep;
    }
    if tag.hop > me.hop {
        return ClaimStep::Stop {
            by: format!("hop {}", tag.hop),
        };
    }
    if me.chain.knows(&tag.token) {
        return claim_or_keep();
    }
    // Written from the same claim as this invocation (at its hop or an earlier
    // one): a duplicate or retry of this delivery or of an ancestor's, such
    // as a crashed invocation whose Lambda retry this chain descends from.
    let sibling = tag.parent.as_deref() == me.parent;
    if sibling || me.chain.claimed.is_none() {
        // The newest of the invocations with an equal right wins.
        return if me.claimed_now {
            ClaimStep::Stop {
                by: tag.token.clone(),
            }
        } else {
            ClaimStep::Claim
        };
    }
    ClaimStep::Stop {
        by: tag.token.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(hop: u32, token: &str, parent: Option<&str>, hook: &str) -> ChainTag {
        ChainTag {
            hop,
            token: token.into(),
            parent: parent.map(Into::into),
            hook: hook.into(),
        }
    }

    fn chain(claimed: Option<&str>, known: &[&str]) -> ChainMemo {
        ChainMemo {
            claimed: claimed.map(Into::into),
            known: known.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    fn me<'a>(hop: u32, token: &'a str, chain: &'a ChainMemo, claimed_now: bool) -> Me<'a> {
        Me {
            hook: "launch",
            hop,
            token,
            parent: chain.claimed.as_deref(),
            chain,
            claimed_now,
        }
    }

    #[test]
    fn the_value_round_trips_and_foreign_values_are_no_claim() {
        let t = tag(7, "00ff", Some("a1"), "my-hook/x_y");
        let v = t.value().unwrap();
        assert_eq!(v, "7:00ff:a1:my-hook/x_y");
        assert_eq!(ChainTag::parse(&v), Some(t));
        let fresh = tag(0, "00ff", None, "h");
        assert_eq!(fresh.value().as_deref(), Some("0:00ff:-:h"));
        assert_eq!(ChainTag::parse("0:00ff:-:h"), Some(fresh));
        for bad in [
            "", "x:1:-:h", "1::-:h", "1:t::h", "1:t:-:", "1:t:-", "-1:t:-:h",
        ] {
            assert_eq!(ChainTag::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_value_longer_than_ec2_takes_is_not_written() {
        let long = "h".repeat(255);
        assert_eq!(tag(1, "0123456789abcdef", None, &long).value(), None);
        let fits = "h".repeat(200);
        assert!(tag(1, "0123456789abcdef", None, &fits).value().is_some());
    }

    #[test]
    fn a_fresh_chain_claims_an_untagged_instance_and_then_keeps_it() {
        let c = chain(None, &[]);
        assert_eq!(decide(None, &me(0, "a", &c, false)), ClaimStep::Claim);
        let mine = tag(0, "a", None, "launch");
        assert_eq!(decide(Some(&mine), &me(0, "a", &c, true)), ClaimStep::Keep);
        // A stale read that does not show the write yet.
        assert_eq!(decide(None, &me(0, "a", &c, true)), ClaimStep::Keep);
    }

    #[test]
    fn a_delivery_of_an_earlier_hop_stops_when_a_later_hop_has_looked() {
        // A duplicate hook notification (hop 0, a fresh chain) meets hop 3.
        let fresh = chain(None, &[]);
        let t = tag(3, "c3", Some("c2"), "launch");
        assert_eq!(
            decide(Some(&t), &me(0, "d", &fresh, false)),
            ClaimStep::Stop { by: "hop 3".into() }
        );
        // A late duplicate of hop 2's continuation.
        let c = chain(Some("c1"), &["c0", "c1"]);
        assert_eq!(
            decide(Some(&t), &me(2, "e", &c, false)),
            ClaimStep::Stop { by: "hop 3".into() }
        );
    }

    #[test]
    fn a_duplicate_of_the_same_delivery_takes_over_and_the_first_stops() {
        // Two deliveries of hop 0: the second claims over the first...
        let fresh = chain(None, &[]);
        let first = tag(0, "a", None, "launch");
        assert_eq!(
            decide(Some(&first), &me(0, "b", &fresh, false)),
            ClaimStep::Claim
        );
        // ...and the first stops at its next look.
        let second = tag(0, "b", None, "launch");
        assert_eq!(
            decide(Some(&second), &me(0, "a", &fresh, true)),
            ClaimStep::Stop { by: "b".into() }
        );
        // The same for two deliveries of one continuation (same parent).
        let c = chain(Some("p"), &["p"]);
        let sib = tag(4, "s", Some("p"), "launch");
        assert_eq!(decide(Some(&sib), &me(4, "t", &c, false)), ClaimStep::Claim);
        assert_eq!(
            decide(Some(&sib), &me(4, "t", &c, true)),
            ClaimStep::Stop { by: "s".into() }
        );
    }

    #[test]
    fn a_chain_stops_when_another_claimed_after_its_latest_claim() {
        // This chain claimed "a" at hop 2; a duplicate's chain wrote "x" since.
        let c = chain(Some("a"), &["z", "a"]);
        for t in [
            tag(0, "x", None, "launch"),
            tag(2, "x", Some("q"), "launch"),
            tag(3, "x", Some("q"), "launch"),
        ] {
            assert_eq!(
                decide(Some(&t), &me(3, "b", &c, false)),
                ClaimStep::Stop { by: "x".into() },
                "{t:?}"
            );
        }
    }

    #[test]
    fn a_stale_read_of_the_chains_own_claims_is_not_a_newer_chain() {
        let c = chain(Some("a2"), &["a0", "a1", "a2"]);
        for t in ["a0", "a1", "a2"] {
            let stale = tag(1, t, None, "launch");
            assert_eq!(
                decide(Some(&stale), &me(3, "a3", &c, false)),
                ClaimStep::Claim
            );
            assert_eq!(
                decide(Some(&stale), &me(3, "a3", &c, true)),
                ClaimStep::Keep
            );
        }
        // What the tag said before a claim (another chain's, older) too.
        let c = chain(Some("a"), &["old", "a"]);
        let stale = tag(0, "old", None, "launch");
        assert_eq!(decide(Some(&stale), &me(1, "b", &c, true)), ClaimStep::Keep);
    }

    #[test]
    fn a_write_whose_answer_was_lost_is_the_chains_own() {
        // Hop 5's CreateTags went through, its answer was lost.
        let mut c = chain(Some("t4"), &["t4"]);
        c.tried("t5", Some("t4"));
        assert_eq!(c.claimed.as_deref(), Some("t4"));
        let t = tag(5, "t5", Some("t4"), "launch");
        assert_eq!(decide(Some(&t), &me(6, "t6", &c, false)), ClaimStep::Claim);
        // Hop 6 has claimed since: a stale read of t5 is no newer chain.
        c.claimed("t6", Some("t5"));
        assert_eq!(decide(Some(&t), &me(6, "t6", &c, true)), ClaimStep::Keep);
    }

    /// Hop 4 wrote from claim "p" and crashed; its Lambda retry could not
    /// look (EC2 failing) and handed off: hop 6 of the retry's line, still
    /// from "p", takes the claim over.
    #[test]
    fn a_crashed_ancestors_write_is_a_sibling() {
        let c = chain(Some("p"), &["p"]);
        let crashed = tag(4, "x", Some("p"), "launch");
        assert_eq!(
            decide(Some(&crashed), &me(6, "y", &c, false)),
            ClaimStep::Claim
        );
    }

    #[test]
    fn a_chain_that_never_claimed_takes_over() {
        // Its parent's write was refused or never went through.
        let c = chain(None, &[]);
        let t = tag(1, "x", Some("q"), "launch");
        assert_eq!(decide(Some(&t), &me(2, "b", &c, false)), ClaimStep::Claim);
    }

    #[test]
    fn the_hook_that_sorts_first_holds_the_tag() {
        let c = chain(Some("a"), &["a"]);
        let earlier = tag(9, "x", None, "aaa-launch");
        assert_eq!(
            decide(Some(&earlier), &me(1, "b", &c, false)),
            ClaimStep::Keep
        );
        let later = tag(9, "x", None, "zzz-launch");
        assert_eq!(
            decide(Some(&later), &me(1, "b", &c, false)),
            ClaimStep::Claim
        );
        assert_eq!(decide(Some(&later), &me(1, "b", &c, true)), ClaimStep::Keep);
    }

    #[test]
    fn the_chain_knows_a_bounded_number_of_tokens() {
        let mut c = ChainMemo::default();
        assert!(c.is_empty());
        for i in 0..40 {
            let before = format!("t{i}");
            c.claimed(&format!("t{}", i + 1), Some(&before));
        }
        assert_eq!(c.known.len(), KNOWN_MAX);
        assert_eq!(c.claimed.as_deref(), Some("t40"));
        assert!(c.knows("t40") && c.knows("t39") && !c.knows("t1"));
    }
}
