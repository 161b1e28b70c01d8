//! Client-side hooks: see every call a stub makes, and how it ended, for
//! logging, metrics or tracing, without touching the stubs.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Call;
use crate::error::Error;
use crate::machine::Method;

/// Hooks around the calls a client makes.
pub trait ClientHook {
    /// Called before `method` is called.
    fn before(&mut self, method: Method) {
        let _ = method;
    }

    /// Called when the call ended: `Ok` with a value, or its error, which says
    /// whether the handler ran ([`Error::executed`]).
    fn after(&mut self, method: Method, outcome: Result<(), &Error>) {
        let _ = (method, outcome);
    }
}

/// A [`Call`] whose calls pass through a hook: `demo::Client(Hooked::new(client, Timing))`.
pub struct Hooked<C, H> {
    /// The caller.
    pub inner: C,
    /// The hooks.
    pub hook: H,
}

impl<C, H> Hooked<C, H> {
    /// `inner`, its calls seen by `hook`.
    pub const fn new(inner: C, hook: H) -> Self {
        Hooked { inner, hook }
    }
}

impl<C: Call, H: ClientHook> Call for Hooked<C, H> {
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(&mut self, method: Method, args: &A) -> Result<R, Error> {
        self.hook.before(method);
        let result = self.inner.call(method, args);
        self.hook.after(method, result.as_ref().map(|_| ()));
        result
    }

    fn max_reply_len(&self) -> usize {
        self.inner.max_reply_len()
    }

    #[cfg(feature = "events")]
    fn send_oneway<A: Serialize + ?Sized>(&mut self, method: Method, args: &A) -> Result<(), Error> {
        self.hook.before(method);
        let result = self.inner.send_oneway(method, args);
        self.hook.after(method, result.as_ref().map(|_| ()));
        result
    }

    #[cfg(feature = "streams")]
    fn call_stream<A: Serialize + ?Sized, T: DeserializeOwned>(
        &mut self,
        method: Method,
        args: &A,
        on_item: &mut dyn FnMut(T) -> bool,
    ) -> Result<crate::StreamEnd, super::StreamError> {
        self.hook.before(method);
        let result = self.inner.call_stream(method, args, on_item);
        self.hook.after(method, result.as_ref().map(|_| ()).map_err(|e| &e.error));
        result
    }
}
