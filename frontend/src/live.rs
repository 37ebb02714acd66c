//! The live feed: one WebSocket to the bff that follows every job change and/or one job's events,
//! reopened with capped, jittered backoff whenever it drops, for as long as the component using it
//! is mounted. Where the WebSocket cannot open twice in a row while the network is up (a proxy
//! that refuses upgrades), the same messages come over Server-Sent Events (`/api/v1/live`), and
//! where those do not get through either, by polling (`/api/v1/live/poll` for a job's events, the
//! list reloaded for the grid); the connection badge says which.
//!
//! A followed job's events resume from the last cursor received, so after any drop the page gets
//! every event it has not seen, exactly once (the server's cursor protocol), without reloading.

use futures::channel::mpsc;
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
    /// Over the WebSocket.
    Live,
    /// Over Server-Sent Events: the WebSocket cannot connect (a proxy refuses upgrades).
    LiveSse,
    /// Neither gets through: the page asks every few seconds.
    Polling,
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
            Connection::LiveSse => "sse",
            Connection::Polling => "polling",
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
            crate::ui::spawn(async move {
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

/// Pauses between attempts: about 1 s, 2 s, 4 s, 8 s, then 15 s, so a restarting bff is not
/// hammered by every open browser, yet comes back within 15 s of being up. Each pause is drawn
/// between half and all of that (jitter), so browsers that lost the server together do not
/// come back in step.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const MAX_MS: u32 = 15_000;

    /// The pause for `random` in [0, 1).
    fn next_ms_with(&mut self, random: f64) -> u32 {
        let ms = 1_000u32.saturating_mul(1 << self.failures.min(4)).min(Self::MAX_MS);
        self.failures = self.failures.saturating_add(1);
        (f64::from(ms) * (0.5 + 0.5 * random.clamp(0.0, 1.0))) as u32
    }

    fn next_ms(&mut self) -> u32 {
        self.next_ms_with(js_sys::Math::random())
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

/// Failed opens in a row (with the network up) before the next way is tried.
const FALLBACK_AFTER: u32 = 2;

/// How often the page asks when polling.
const POLL_MS: u32 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    WebSocket,
    Sse,
    Poll,
}

async fn run(mut subscription: Subscription, on_feed: Callback<Feed>, on_state: Callback<Connection>) {
    let mut backoff = Backoff::default();
    let mut way = Way::WebSocket;
    let mut failed = 0;
    loop {
        let opened_at = js_sys::Date::now();
        let opened = match way {
            Way::WebSocket => websocket(&mut subscription, &on_feed, &on_state).await,
            Way::Sse => sse(&mut subscription, &on_feed, &on_state).await,
            Way::Poll => {
                poll(&mut subscription, &on_feed, &on_state).await;
                continue;
            }
        };
        if opened {
            failed = 0;
            if js_sys::Date::now() - opened_at >= STABLE_MS {
                backoff.reset();
            }
        } else {
            // A refused upgrade or stream hides its HTTP status: ask whether the session still
            // holds (the page signs out if not).
            crate::api::recheck_session().await;
            if online() {
                failed += 1;
            }
            if failed >= FALLBACK_AFTER {
                failed = 0;
                way = if way == Way::WebSocket { Way::Sse } else { Way::Poll };
                warn(&format!(
                    "live feed: falling back to {}",
                    if way == Way::Sse { "SSE" } else { "polling" }
                ));
                continue;
            }
        }
        on_state.emit(if online() { Connection::Reconnecting } else { Connection::Offline });
        TimeoutFuture::new(backoff.next_ms()).await;
    }
}

/// One WebSocket, until it drops; whether it opened.
async fn websocket(
    subscription: &mut Subscription,
    on_feed: &Callback<Feed>,
    on_state: &Callback<Connection>,
) -> bool {
    // An attempt that neither opens nor fails (a network that swallows packets) is given up.
    let attempt = futures::future::select(Box::pin(connect(subscription)), TimeoutFuture::new(CONNECT_MS));
    let Some(mut socket) = (match attempt.await {
        futures::future::Either::Left((socket, _)) => socket,
        futures::future::Either::Right(_) => None,
    }) else {
        return false;
    };
    on_state.emit(Connection::Live);
    on_feed.emit(Feed::Resync);
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message {
            handle(&text, subscription, on_feed);
        }
    }
    true
}

enum SseEvent {
    Open,
    Message(String),
    Error,
}

/// An EventSource that is closed when dropped (the browser would otherwise reconnect it by
/// itself, from the cursor it was opened with).
struct EventStream {
    source: web_sys::EventSource,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.source.close();
    }
}

fn open_event_stream(url: &str) -> Option<(EventStream, mpsc::UnboundedReceiver<SseEvent>)> {
    let source = web_sys::EventSource::new(url).ok()?;
    let (tx, rx) = mpsc::unbounded();
    let handler = |make: fn(JsValue) -> SseEvent| {
        let tx = tx.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let _ = tx.unbounded_send(make(e));
        })
    };
    let on_open = handler(|_| SseEvent::Open);
    let on_message = handler(|e| {
        let data = js_sys::Reflect::get(&e, &JsValue::from_str("data")).ok().and_then(|d| d.as_string());
        SseEvent::Message(data.unwrap_or_default())
    });
    let on_error = handler(|_| SseEvent::Error);
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Some((EventStream { source, _handlers: vec![on_open, on_message, on_error] }, rx))
}

/// One SSE stream, until it fails; whether it opened.
async fn sse(
    subscription: &mut Subscription,
    on_feed: &Callback<Feed>,
    on_state: &Callback<Connection>,
) -> bool {
    let mut query = Vec::new();
    if subscription.jobs {
        query.push(("jobs", "true".to_string()));
    }
    if let Some((id, cursor)) = &subscription.job {
        query.push(("job", id.to_string()));
        if let Some(c) = cursor {
            query.push(("cursor", c.clone()));
        }
    }
    let Some((_stream, mut events)) =
        open_event_stream(&format!("/api/v1/live?{}", crate::route::query_string(query)))
    else {
        return false;
    };
    let first = futures::future::select(events.next(), TimeoutFuture::new(CONNECT_MS)).await;
    if !matches!(first, futures::future::Either::Left((Some(SseEvent::Open), _))) {
        return false;
    }
    on_state.emit(Connection::LiveSse);
    on_feed.emit(Feed::Resync);
    while let Some(event) = events.next().await {
        match event {
            SseEvent::Message(text) => handle(&text, subscription, on_feed),
            SseEvent::Open => {}
            SseEvent::Error => break,
        }
    }
    true
}

/// One round of polling: the grid reloads its list, a followed job gets its state and new events.
async fn poll(subscription: &mut Subscription, on_feed: &Callback<Feed>, on_state: &Callback<Connection>) {
    on_state.emit(if online() { Connection::Polling } else { Connection::Offline });
    if subscription.jobs {
        on_feed.emit(Feed::Resync);
    }
    if let Some(id) = subscription.job.as_ref().map(|(id, _)| *id) {
        loop {
            let cursor = subscription.job.as_ref().and_then(|(_, c)| c.clone());
            let Ok(answer) = crate::api::live_poll(id, cursor.as_deref()).await else { break };
            for message in answer.messages {
                dispatch(message, subscription, on_feed);
            }
            if !answer.more {
                break;
            }
        }
    }
    TimeoutFuture::new(POLL_MS).await;
}

fn handle(text: &str, subscription: &mut Subscription, on_feed: &Callback<Feed>) {
    match crate::json::from_str::<ServerMessage>(text) {
        Ok(message) => dispatch(message, subscription, on_feed),
        Err(e) => warn(&format!("live feed: unreadable message: {e}")),
    }
}

fn dispatch(message: ServerMessage, subscription: &mut Subscription, on_feed: &Callback<Feed>) {
    match message {
        ServerMessage::Job { job } => on_feed.emit(Feed::Job(Box::new(job))),
        ServerMessage::Resync => on_feed.emit(Feed::Resync),
        ServerMessage::Error { detail } => warn(&format!("live feed: {detail}")),
        ServerMessage::Events { job_id, cursor, events } => {
            if let Some((followed, at)) = &mut subscription.job {
                if *followed == job_id {
                    // The next connection resumes after what this message brought.
                    *at = Some(cursor);
                    on_feed.emit(Feed::Events(events));
                }
            }
        }
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
    fn backoff_doubles_up_to_fifteen_seconds_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let longest: Vec<u32> = (0..7).map(|_| b.next_ms_with(0.999_999)).collect();
        assert_eq!(longest, [999, 1_999, 3_999, 7_999, 14_999, 14_999, 14_999]);
        b.reset();
        let shortest: Vec<u32> = (0..5).map(|_| b.next_ms_with(0.0)).collect();
        assert_eq!(shortest, [500, 1_000, 2_000, 4_000, 7_500], "half of each at the least");
        b.reset();
        assert_eq!(b.next_ms_with(0.5), 750);
    }
}
