//! Which outgoing bubble is ours. The driver knows where its message must appear (the bubble
//! that came after Enter in this chat, by `data-id` or by position), so that is the first
//! signal; the text, read as WhatsApp Web renders it (see `READ` in `page.rs`), is the second.
//! Pure functions over what the page reported, so the rules are tested without a browser.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Deserialize;

/// The newest outgoing bubbles of the open chat, as the page reported them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Snapshot {
    /// How many outgoing bubbles the chat shows.
    pub count: usize,
    /// The newest of them (at most a few dozen), oldest first.
    pub bubbles: Vec<Bubble>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Bubble {
    /// Position among the chat's outgoing bubbles.
    pub index: usize,
    /// `data-id` (`true_<chat>@c.us_<id>`), where the page has one.
    pub id: Option<String>,
    /// The status icon's `data-icon` (`msg-time`, `msg-check`, ...).
    pub icon: Option<String>,
    /// Its text reads as the text we send (rendering-proof comparison).
    pub same: bool,
    /// Its time as the bubble shows it (`HH:MM, DD/MM/YYYY`).
    pub time: Option<String>,
    /// Within the look-first window.
    pub recent: bool,
}

/// How the driver knew a bubble was its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// It appeared after Enter and reads as our text.
    PositionAndText,
    /// It is the only bubble that appeared after Enter, though its text reads differently.
    Position,
    /// A retry found our text already in the chat (look-first).
    Text,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::PositionAndText => "position and text",
            Signal::Position => "position",
            Signal::Text => "text (look-first)",
        }
    }
}

/// The bubble the driver follows until it shows a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Ours {
    pub id: Option<String>,
    pub index: usize,
    pub signal: Signal,
}

impl Ours {
    fn of(b: &Bubble, signal: Signal) -> Ours {
        Ours {
            id: b.id.clone(),
            index: b.index,
            signal,
        }
    }

    /// This bubble in a later snapshot: by `data-id` where it has one, else by position.
    pub fn find<'a>(&self, now: &'a Snapshot) -> Option<&'a Bubble> {
        match &self.id {
            Some(id) => now.bubbles.iter().find(|b| b.id.as_deref() == Some(id)),
            None => now.bubbles.iter().find(|b| b.index == self.index),
        }
    }
}

/// The bubbles of `now` that appeared after `before` was taken, oldest first.
pub fn new_since<'a>(before: &Snapshot, now: &'a Snapshot) -> Vec<&'a Bubble> {
    let before_ids: HashSet<&str> = before
        .bubbles
        .iter()
        .filter_map(|b| b.id.as_deref())
        .collect();
    // The newest bubble we saw before, found again by its id: everything after it is new,
    // even if older messages were loaded above it meanwhile.
    let anchor = now
        .bubbles
        .iter()
        .filter(|b| b.id.as_deref().is_some_and(|id| before_ids.contains(id)))
        .map(|b| b.index)
        .max();
    now.bubbles
        .iter()
        .filter(|b| match anchor {
            Some(a) => b.index > a && !b.id.as_deref().is_some_and(|id| before_ids.contains(id)),
            None => b.index >= before.count,
        })
        .collect()
}

/// Our bubble after Enter: the first new one that reads as our text; else the new one, if
/// exactly one appeared. None while it is not there (or is ambiguous).
pub fn after_enter(before: &Snapshot, now: &Snapshot) -> Option<Ours> {
    let new = new_since(before, now);
    if let Some(b) = new.iter().find(|b| b.same) {
        return Some(Ours::of(b, Signal::PositionAndText));
    }
    match new.as_slice() {
        [only] => Some(Ours::of(only, Signal::Position)),
        _ => None,
    }
}

/// Look-first before a retry: the bubble an earlier attempt of this job saw appear (a file
/// without a caption has no text to find), else the newest recent bubble with our text that no
/// other job claimed. A bubble with a clock counts: the earlier attempt did press Enter.
pub fn already_sent(now: &Snapshot, claims: &Claims, job_id: &str) -> Option<Ours> {
    let mine = |b: &&Bubble| b.id.as_deref().and_then(|id| claims.owner(id)) == Some(job_id);
    now.bubbles
        .iter()
        .rev()
        .find(mine)
        .or_else(|| {
            now.bubbles.iter().rev().find(|b| {
                b.same
                    && b.recent
                    && b.id
                        .as_deref()
                        .is_none_or(|id| claims.owner(id).is_none_or(|j| j == job_id))
            })
        })
        .map(|b| Ours::of(b, Signal::Text))
}

/// Which job each recently sent bubble belongs to, so that a retry of one message never takes
/// another message's bubble with the same text for its own. Bounded: the oldest are forgotten.
#[derive(Debug, Default)]
pub struct Claims {
    owners: HashMap<String, String>,
    order: VecDeque<String>,
}

const MAX_CLAIMS: usize = 1024;

impl Claims {
    pub fn claim(&mut self, bubble_id: &str, job_id: &str) {
        if self
            .owners
            .insert(bubble_id.to_string(), job_id.to_string())
            .is_none()
        {
            self.order.push_back(bubble_id.to_string());
        }
        while self.order.len() > MAX_CLAIMS {
            if let Some(old) = self.order.pop_front() {
                self.owners.remove(&old);
            }
        }
    }

    pub fn owner(&self, bubble_id: &str) -> Option<&str> {
        self.owners.get(bubble_id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(index: usize, id: Option<&str>, same: bool) -> Bubble {
        Bubble {
            index,
            id: id.map(str::to_string),
            icon: Some("msg-time".into()),
            same,
            time: None,
            recent: true,
        }
    }

    fn snap(count: usize, bubbles: Vec<Bubble>) -> Snapshot {
        Snapshot { count, bubbles }
    }

    #[test]
    fn the_bubble_after_enter_is_ours_by_id_even_when_its_text_reads_differently() {
        let before = snap(2, vec![b(0, Some("a"), true), b(1, Some("b"), false)]);
        let now = snap(
            3,
            vec![
                b(0, Some("a"), true),
                b(1, Some("b"), false),
                b(2, Some("c"), false),
            ],
        );
        let ours = after_enter(&before, &now).unwrap();
        assert_eq!(ours.id.as_deref(), Some("c"));
        assert_eq!(ours.signal, Signal::Position);
        // An older bubble with the same text is never taken for ours.
        assert_ne!(ours.id.as_deref(), Some("a"));
    }

    #[test]
    fn without_ids_the_position_after_the_old_count_decides() {
        let before = snap(2, vec![b(0, None, true), b(1, None, false)]);
        assert_eq!(after_enter(&before, &before), None, "nothing new yet");
        let now = snap(
            3,
            vec![b(0, None, true), b(1, None, false), b(2, None, true)],
        );
        let ours = after_enter(&before, &now).unwrap();
        assert_eq!((ours.index, ours.signal), (2, Signal::PositionAndText));
        assert_eq!(ours.find(&now), Some(&now.bubbles[2]));
    }

    #[test]
    fn older_messages_loaded_above_do_not_count_as_new() {
        let before = snap(1, vec![b(0, Some("x"), false)]);
        // Two older bubbles appeared above "x", and ours after it.
        let now = snap(
            4,
            vec![
                b(0, Some("o1"), true),
                b(1, Some("o2"), true),
                b(2, Some("x"), false),
                b(3, Some("ours"), true),
            ],
        );
        let new: Vec<_> = new_since(&before, &now).iter().map(|b| b.index).collect();
        assert_eq!(new, vec![3]);
        assert_eq!(
            after_enter(&before, &now).unwrap().id.as_deref(),
            Some("ours")
        );
    }

    #[test]
    fn two_new_bubbles_without_our_text_are_ambiguous() {
        let before = snap(0, vec![]);
        let now = snap(2, vec![b(0, None, false), b(1, None, false)]);
        assert_eq!(after_enter(&before, &now), None);
        let now = snap(2, vec![b(0, None, false), b(1, None, true)]);
        assert_eq!(after_enter(&before, &now).unwrap().index, 1);
    }

    #[test]
    fn look_first_takes_the_newest_recent_match_not_claimed_by_another_job() {
        let mut claims = Claims::default();
        let now = snap(
            3,
            vec![
                b(0, Some("a"), true),
                b(1, Some("b"), true),
                b(2, Some("c"), false),
            ],
        );
        assert_eq!(
            already_sent(&now, &claims, "job-1").unwrap().id.as_deref(),
            Some("b")
        );
        claims.claim("b", "job-2");
        assert_eq!(
            already_sent(&now, &claims, "job-1").unwrap().id.as_deref(),
            Some("a")
        );
        assert_eq!(
            already_sent(&now, &claims, "job-2").unwrap().id.as_deref(),
            Some("b"),
            "a job finds its own bubble"
        );
        let mut old = now.clone();
        old.bubbles.iter_mut().for_each(|b| b.recent = false);
        assert_eq!(already_sent(&old, &claims, "job-1"), None);
    }

    #[test]
    fn claims_forget_the_oldest_past_their_bound() {
        let mut claims = Claims::default();
        for i in 0..MAX_CLAIMS + 10 {
            claims.claim(&format!("bubble-{i}"), "job");
        }
        assert_eq!(claims.owner("bubble-0"), None);
        assert_eq!(
            claims.owner(&format!("bubble-{}", MAX_CLAIMS + 9)),
            Some("job")
        );
        assert_eq!(claims.owners.len(), MAX_CLAIMS);
    }
}
