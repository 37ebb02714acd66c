//! Who is signed in, for every page: the session's state, the context pages read it from
//! ([`use_session`]), and the one way a 401 is handled: whichever page's call got it, the app
//! signs out and shows the sign-in form ([`use_sign_out_on_401`]).

use std::rc::Rc;

use shared::SessionInfo;
use yew::prelude::*;

use crate::api::{self, ApiError, Load};

/// Who is signed in: `Loaded(Ok(None))` shows the sign-in form.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionState {
    pub session: Load<Option<SessionInfo>>,
    /// A sign-out the server did not confirm: the cookie may still be valid, so say so.
    pub sign_out_error: Option<String>,
}

pub enum SessionAction {
    Checked(Result<Option<SessionInfo>, ApiError>),
    SignedIn(SessionInfo),
    /// Signed out here, or the server answered 401 (expired, revoked, signed out elsewhere).
    SignedOut,
    SignOutFailed(ApiError),
    Recheck,
}

impl Reducible for SessionState {
    type Action = SessionAction;

    fn reduce(self: Rc<Self>, action: SessionAction) -> Rc<Self> {
        let (session, sign_out_error) = match action {
            SessionAction::Checked(result) => (Load::Loaded(result), None),
            SessionAction::SignedIn(info) => (Load::Loaded(Ok(Some(info))), None),
            SessionAction::SignedOut => (Load::Loaded(Ok(None)), None),
            SessionAction::SignOutFailed(e) => (self.session.clone(), Some(e.to_string())),
            SessionAction::Recheck => (Load::Loading, None),
        };
        Rc::new(SessionState { session, sign_out_error })
    }
}

/// Who is signed in, from the page's context (`None` outside a signed-in page).
#[hook]
pub fn use_session() -> Option<Rc<SessionInfo>> {
    use_context::<Rc<SessionInfo>>()
}

/// Makes any 401 sign the app out, through `dispatcher`.
#[hook]
pub fn use_sign_out_on_401(dispatcher: UseReducerDispatcher<SessionState>) {
    use_effect_with((), move |_| {
        api::on_unauthorized(Callback::from(move |()| dispatcher.dispatch(SessionAction::SignedOut)));
    });
}
