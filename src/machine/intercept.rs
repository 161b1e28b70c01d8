//! Interceptors: hooks around every call a server answers, for authorisation,
//! logging and metrics, without touching the service's handlers.
//!
//! An [`Interceptor`] sees each new call before anything runs ([`before`]) and
//! may refuse it; the client then gets a status that proves the call did not
//! run (PERMISSION_DENIED, UNAUTHENTICATED, UNAVAILABLE). It sees each answer
//! afterwards ([`after`]). Built-in methods (ping, describe, stats) pass
//! through it too. A call the server refuses itself (a request too large for
//! its buffer, a spent time budget) does not reach `before`, but its refusal
//! reaches `after`. Repeats answered from the reply cache reach neither: they
//! are the same call, answered once.
//!
//! [`before`]: Interceptor::before
//! [`after`]: Interceptor::after

use super::server::{Dispatch, Refused, Replied, Responder};

/// Hooks around the calls a server answers.
pub trait Interceptor {
    /// Called before `method` runs, with its encoded arguments. An error
    /// refuses the call before dispatch.
    ///
    /// # Errors
    /// The refusal the client gets.
    fn before(&mut self, method: u16, args: &[u8]) -> Result<(), Refused> {
        let _ = (method, args);
        Ok(())
    }

    /// Called once `method` was answered: `Ok` when it ran and replied, the
    /// refusal otherwise.
    fn after(&mut self, method: u16, outcome: Result<(), Refused>) {
        let _ = (method, outcome);
    }
}

/// A dispatcher whose calls pass through an interceptor first:
/// `Server::new(link, Intercepted::new(demo::Dispatcher(board), Audit), clock)`.
pub struct Intercepted<D, I> {
    /// The service's dispatcher.
    pub service: D,
    /// The hooks.
    pub interceptor: I,
}

impl<D, I> Intercepted<D, I> {
    /// `service`, its calls seen by `interceptor`.
    pub const fn new(service: D, interceptor: I) -> Self {
        Intercepted { service, interceptor }
    }
}

impl<D: Dispatch, I: Interceptor> Dispatch for Intercepted<D, I> {
    fn dispatch(&mut self, method: u16, args: &[u8], responder: Responder<'_>) -> Result<Replied, Refused> {
        self.service.dispatch(method, args, responder)
    }

    #[cfg(feature = "describe")]
    fn document(&self) -> Option<&'static crate::describe::Document> {
        self.service.document()
    }

    #[cfg(feature = "streams")]
    fn next_item(&mut self, method: u16, args: &[u8], index: u32, responder: Responder<'_>) -> Option<Replied> {
        self.service.next_item(method, args, index, responder)
    }

    fn admit(&mut self, method: u16, args: &[u8]) -> Result<(), Refused> {
        self.interceptor.before(method, args)?;
        self.service.admit(method, args)
    }

    fn answered(&mut self, method: u16, outcome: Result<(), Refused>) {
        self.service.answered(method, outcome);
        self.interceptor.after(method, outcome);
    }
}
