//! `GET /api/events`: live events as Server-Sent Events. Each session's WhatsApp state comes
//! first, then
//! every job state change, WhatsApp state change and new QR code. A client that falls behind
//! gets a `lagged` event saying how many it missed (the job API has the truth).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::error::ApiError;
use crate::events::Event;

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated().route(
        Method::Get,
        "/events",
        "Live events (Server-Sent Events): whatsapp.state of every session first, then job.waiting, job.active, job.completed, job.failed, message.delivered, message.read, whatsapp.state, whatsapp.qr and session.cooldown; data is the event as JSON.",
        events,
    )
}

fn to_sse(e: &Event) -> SseEvent {
    SseEvent::default()
        .event(e.kind())
        .json_data(e)
        .unwrap_or_else(|_| SseEvent::default().comment("unserialisable event"))
}

async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // One permit per client, held by its stream: at most `server.max_event_streams` at once.
    let permit = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::Unavailable(
                "too_many_streams",
                "too many event streams are open (server.max_event_streams); try again later"
                    .into(),
            )
        })?;
    let first: std::collections::VecDeque<Event> = state.sessions.states_now().into();
    let rx = state.queue.events().subscribe();
    let stream = futures_util::stream::unfold(
        (first, rx, permit),
        |(mut first, mut rx, permit)| async move {
            if let Some(e) = first.pop_front() {
                return Some((Ok(to_sse(&e)), (first, rx, permit)));
            }
            match rx.recv().await {
                Ok(e) => Some((Ok(to_sse(&e)), (first, rx, permit))),
                Err(RecvError::Lagged(n)) => {
                    let ev = SseEvent::default()
                        .event("lagged")
                        .data(format!("{{\"type\":\"lagged\",\"missed\":{n}}}"));
                    Some((Ok(ev), (first, rx, permit)))
                }
                Err(RecvError::Closed) => None,
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
