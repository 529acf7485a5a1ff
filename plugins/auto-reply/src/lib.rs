//! auto-reply: answers received messages, and puts senders who write a stop keyword on the
//! session's opt-out list.
//!
//! Config (all optional): `stop_keywords = "STOP,UNSUBSCRIBE,BERHENTI"` (a message that is one
//! of them, in any case, opts its sender out; default `STOP,UNSUBSCRIBE`), `stop_reply = "You
//! will get no more messages. Send START to undo."` (the confirmation; empty for none),
//! `reply = "Thanks, we got your message."` (the answer to everything else; empty for none),
//! and `keyword_<WORD> = "<answer>"` (the answer to a message that is WORD, e.g.
//! `keyword_HOURS = "We are open 8-17."`).

// wit-bindgen flattens the `received` record into the export's arguments.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "responder", path: "../../wit" });

/// What to do about a message, from the plugin's config.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub reply: Option<String>,
    pub opt_out: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// The decision for `text` under `get`'s config.
pub fn decide(text: &str, get: impl Fn(&str) -> Option<String>) -> Decision {
    let word = text.trim().to_uppercase();
    let stops = get("stop_keywords").unwrap_or_else(|| "STOP,UNSUBSCRIBE".into());
    if !word.is_empty()
        && stops
            .split(',')
            .any(|k| k.trim().eq_ignore_ascii_case(&word))
    {
        return Decision {
            reply: non_empty(get("stop_reply")).or_else(|| {
                get("stop_reply")
                    .is_none()
                    .then(|| "You will get no more messages from us.".to_string())
            }),
            opt_out: Some(word),
        };
    }
    if !word.is_empty()
        && let Some(answer) = non_empty(get(&format!("keyword_{word}")))
    {
        return Decision {
            reply: Some(answer),
            opt_out: None,
        };
    }
    Decision {
        reply: non_empty(get("reply")),
        opt_out: None,
    }
}

struct Plugin;

impl Guest for Plugin {
    fn on_message(message: Received) -> Answer {
        let d = decide(&message.text, wa_gateway::plugin::host::config);
        Answer {
            reply: d.reply,
            opt_out: d.opt_out,
        }
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(k: &str) -> Option<String> {
        match k {
            "reply" => Some("Thanks, we got your message.".into()),
            "keyword_HOURS" => Some("We are open 8-17.".into()),
            "stop_keywords" => Some("STOP, berhenti".into()),
            _ => None,
        }
    }

    #[test]
    fn stop_opts_out_keywords_answer_and_the_rest_gets_the_reply() {
        let stop = decide("  stop ", cfg);
        assert_eq!(stop.opt_out.as_deref(), Some("STOP"));
        assert!(stop.reply.is_some(), "a STOP is confirmed by default");
        assert_eq!(decide("Berhenti", cfg).opt_out.as_deref(), Some("BERHENTI"));
        assert_eq!(
            decide("hours", cfg),
            Decision {
                reply: Some("We are open 8-17.".into()),
                opt_out: None
            }
        );
        assert_eq!(
            decide("do you ship to Bali? stop by later", cfg)
                .reply
                .as_deref(),
            Some("Thanks, we got your message.")
        );
        assert_eq!(decide("hello", |_| None), Decision::default());
        let quiet = |k: &str| (k == "stop_reply").then(String::new);
        assert_eq!(
            decide("STOP", quiet).reply,
            None,
            "an empty stop_reply confirms nothing"
        );
    }
}
