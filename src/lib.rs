#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "std", test))]
extern crate std;

// So the docs that `service!` writes, which link to `wirecall::...`, resolve
// for the demo service defined inside the crate too.
extern crate self as wirecall;

// The logging shim comes first so every module can use its macros.
#[macro_use]
mod log;

/// In unit tests, `assert_eq!` on counters: checked only when feature `stats` keeps them.
#[cfg(test)]
macro_rules! assert_counted {
    ($($t:tt)*) => {
        if cfg!(feature = "stats") {
            assert_eq!($($t)*);
        }
    };
}

#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "describe")]
pub mod describe;
pub mod driver;
pub mod error;
pub mod link;
pub mod machine;
mod service;
#[cfg(feature = "sim")]
pub mod sim;
pub mod stats;
pub mod time;
pub mod wire;

pub use driver::{Call, Client, ClientHook, Completed, Event, Hooked, Peer, Server, Step, StreamError};
pub use error::{Error, Executed, Status};
pub use link::Link;
pub use machine::{Dispatch, Method, Refused, Replied, Responder, RetryPolicy, StreamEnd};
pub use time::{Clock, Instant};

#[cfg(feature = "std")]
pub use time::StdClock;

/// Re-exported: the I/O traits a [`Link`] is made of.
pub use embedded_io;

/// Re-exported: postcard-schema, whose [`Schema`](schema::Schema) trait every
/// argument and return type implements when feature `describe` is on. For your
/// own types: `#[derive(wirecall::schema::Schema)]` with
/// `#[postcard(crate = wirecall::schema)]`.
#[cfg(feature = "describe")]
pub use postcard_schema as schema;

/// Re-exported so service definitions can use `wirecall::heapless::String<N>`
/// with the serde support wirecall was built with.
pub use heapless;

/// Decodes a postcard value that must use every byte: trailing bytes mean the
/// two sides disagree about the type.
/// An event topic from a service definition (`event name: Type = id;`): its id
/// and, in the type, the payload's type, so sending and receiving are typed.
pub struct Topic<T: ?Sized> {
    /// The topic id on the wire.
    pub id: u16,
    payload: core::marker::PhantomData<fn() -> T>,
}

impl<T: ?Sized> Topic<T> {
    /// The topic `id`, carrying `T`s.
    pub const fn new(id: u16) -> Self {
        Topic { id, payload: core::marker::PhantomData }
    }
}

impl<T: ?Sized> Clone for Topic<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Topic<T> {}

impl<T: ?Sized> core::fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Topic({})", self.id)
    }
}

fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// Used by the code that [`service!`] generates; not a public API.
#[doc(hidden)]
pub mod __private {
    use crate::wire::MAX_APP_METHOD_ID;

    /// Decodes a request's argument tuple, refusing trailing bytes.
    ///
    /// # Errors
    /// [`Refused::BadArguments`](crate::Refused::BadArguments) when they do not decode exactly.
    pub fn decode_args<'a, T: serde::Deserialize<'a>>(args: &'a [u8]) -> Result<T, crate::Refused> {
        crate::decode_exact(args).ok_or(crate::Refused::BadArguments)
    }

    /// Fails compilation when two methods share an id or one uses a reserved id.
    pub const fn check_topics(ids: &[u16]) {
        let mut i = 0;
        while i < ids.len() {
            let mut j = i + 1;
            while j < ids.len() {
                assert!(ids[i] != ids[j], "wirecall::service!: two events share the same topic id");
                j += 1;
            }
            i += 1;
        }
    }

    pub const fn check_ids(ids: &[u16]) {
        let mut i = 0;
        while i < ids.len() {
            assert!(ids[i] <= MAX_APP_METHOD_ID, "wirecall::service!: method ids above 0xFEFF are reserved");
            let mut j = i + 1;
            while j < ids.len() {
                assert!(ids[i] != ids[j], "wirecall::service!: two methods share the same id");
                j += 1;
            }
            i += 1;
        }
    }
}
