//! The live feed: one WebSocket to the bff that follows every job change and/or one job's events,
//! reopened with capped backoff whenever it drops, for as long as the component using it is mounted.
//!
//! A followed job's events resume from the last cursor received, so after any drop the page gets
//! every event it has not seen, exactly once (the server's cursor protocol), without reloading.

use futures::future::abortable;
use futures::{SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State};
use gloo_timers::future::TimeoutFuture;
use shared::{ClientMessage, Job, JobCursor, JobEvent, ServerMessage};
use wasm_bindgen::prelude::*;
use yew::prelude::*;

/// What the person sees about the feed: whether the rows move by themselves right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// The first attempt, before anything is known.
    Connecting,
    Live,
    /// The socket dropped; another attempt follows after a pause.
    Reconnecting,
    /// The socket dropped and the browser says it has no network; attempts go on regardless,
    /// since `navigator.onLine` is only a hint.
    Offline,
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Live => "live",
            Connection::Reconnecting => "reconnecting",
            Connection::Offline => "offline",
        }
    }
}

/// What the feed tells the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    /// A job was created or changed: its whole current state.
    Job(Box<Job>),
    /// New events of the followed job, in arrival order (not Ansible's).
    Events(Vec<JobEvent>),
    /// Changes may have been missed, so the list must be fetched anew: the socket has just
    /// subscribed (again), or the server said it skipped some (`resync`).
    Resync,
}

/// What a page follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Every job's changes (the grid).
    pub jobs: bool,
    /// One job's events, from this cursor (`None`: from its first event), and its changes.
    pub job: Option<(i64, Option<String>)>,
}

/// Connects to the live feed while the calling component is mounted and `subscription` is given,
/// and reports what arrives to `on_feed`. Only the first `on_feed` is used: pass a callback that
/// stays valid (a dispatcher). A new subscription (another job) starts a new socket; the cursor
/// given with a job is read once, after that the feed keeps its own.
#[hook]
pub fn use_live_feed(subscription: Option<Subscription>, on_feed: Callback<Feed>) -> Connection {
    let connection = use_state_eq(|| Connection::Connecting);
    let set_connection = connection.setter();
    let key = subscription.as_ref().map(|s| (s.jobs, s.job.as_ref().map(|(id, _)| *id)));
    use_effect_with(key, move |_| {
        let handle = subscription.map(|subscription| {
            let on_state = Callback::from(move |c| set_connection.set(c));
            let (task, handle) = abortable(run(subscription, on_feed, on_state));
            wasm_bindgen_futures::spawn_local(async move {
                // Aborted on unmount (sign-out, another page): dropping the socket closes it.
                let _ = task.await;
            });
            handle
        });
        move || {
            if let Some(handle) = handle {
                handle.abort();
            }
        }
    });
    // The browser knows at once when its network goes; a socket may take minutes to notice.
    let online = use_state_eq(online);
    {
        let online = online.clone();
        use_effect_with((), move |_| {
            let update = Closure::<dyn Fn()>::new(move || online.set(self::online()));
            let window = web_sys::window();
            for event in ["online", "offline"] {
                if let Some(w) = &window {
                    let _ = w.add_event_listener_with_callback(event, update.as_ref().unchecked_ref());
                }
            }
            move || {
                for event in ["online", "offline"] {
                    if let Some(w) = &window {
                        let _ = w.remove_event_listener_with_callback(event, update.as_ref().unchecked_ref());
                    }
                }
            }
        });
    }
    if *online {
        *connection
    } else {
        Connection::Offline
    }
}

/// Pauses between attempts: 1 s, 2 s, 4 s, 8 s, then 15 s, so a restarting bff is not hammered by
/// every open browser, yet comes back within 15 s of being up.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const MAX_MS: u32 = 15_000;

    fn next_ms(&mut self) -> u32 {
        let ms = 1_000u32.saturating_mul(1 << self.failures.min(4)).min(Self::MAX_MS);
        self.failures = self.failures.saturating_add(1);
        ms
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A connection that stayed up this long was a real one; one that drops sooner (a bff that accepts
/// and then closes, say) keeps growing the pause instead of retrying every second.
const STABLE_MS: f64 = 10_000.0;

/// How long an attempt to open the socket may take.
const CONNECT_MS: u32 = 10_000;

async fn run(mut subscription: Subscription, on_feed: Callback<Feed>, on_state: Callback<Connection>) {
    let mut backoff = Backoff::default();
    loop {
        // An attempt that neither opens nor fails (a network that swallows packets) is given up.
        let attempt =
            futures::future::select(Box::pin(connect(&subscription)), TimeoutFuture::new(CONNECT_MS));
        let opened = match attempt.await {
            futures::future::Either::Left((socket, _)) => socket,
            futures::future::Either::Right(_) => None,
        };
        match opened {
            Some(mut socket) => {
                let opened_at = js_sys::Date::now();
                on_state.emit(Connection::Live);
                on_feed.emit(Feed::Resync);
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        handle(&text, &mut subscription, &on_feed);
                    }
                }
                if js_sys::Date::now() - opened_at >= STABLE_MS {
                    backoff.reset();
                }
            }
            // A WebSocket hides the HTTP status of a refused upgrade: ask whether the session
            // still holds (the page signs out if not).
            None => crate::api::recheck_session().await,
        }
        on_state.emit(if online() { Connection::Reconnecting } else { Connection::Offline });
        TimeoutFuture::new(backoff.next_ms()).await;
    }
}

fn handle(text: &str, subscription: &mut Subscription, on_feed: &Callback<Feed>) {
    match serde_json::from_str::<ServerMessage>(text) {
        Ok(ServerMessage::Job { job }) => on_feed.emit(Feed::Job(Box::new(job))),
        Ok(ServerMessage::Resync) => on_feed.emit(Feed::Resync),
        Ok(ServerMessage::Error { detail }) => warn(&format!("live feed: {detail}")),
        Ok(ServerMessage::Events { job_id, cursor, events }) => {
            if let Some((followed, at)) = &mut subscription.job {
                if *followed == job_id {
                    // The next socket resumes after what this message brought.
                    *at = Some(cursor);
                    on_feed.emit(Feed::Events(events));
                }
            }
        }
        Err(e) => warn(&format!("live feed: unreadable message: {e}")),
    }
}

/// Opens the socket and subscribes; `None` when it did not open.
async fn connect(subscription: &Subscription) -> Option<WebSocket> {
    let mut socket = WebSocket::open(&feed_url()?).ok()?;
    let job_events = subscription
        .job
        .iter()
        .map(|(job_id, cursor)| JobCursor { job_id: *job_id, cursor: cursor.clone() })
        .collect();
    let subscribe = ClientMessage::Subscribe { jobs: subscription.jobs, job_events };
    let subscribe = serde_json::to_string(&subscribe).ok()?;
    // The send waits for the socket to open or fail; a failed one accepts and drops the message.
    socket.send(Message::Text(subscribe)).await.ok()?;
    matches!(socket.state(), State::Open).then_some(socket)
}

/// `ws(s)://<this host>/api/v1/ws`: same origin, so the session cookie authenticates it.
fn feed_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}/api/v1/ws", location.host().ok()?))
}

fn online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

fn warn(message: &str) {
    web_sys::console::warn_1(&message.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_fifteen_seconds_and_resets() {
        let mut b = Backoff::default();
        let pauses: Vec<u32> = (0..7).map(|_| b.next_ms()).collect();
        assert_eq!(pauses, [1_000, 2_000, 4_000, 8_000, 15_000, 15_000, 15_000]);
        b.reset();
        assert_eq!(b.next_ms(), 1_000);
    }
}
