//! The `service!` macro: one definition, a handler trait, a dispatcher and a client stub.

/// Defines a service: a module holding the handler trait, the dispatcher and the
/// typed client stub, all from one list of methods with stable numeric ids.
///
/// ```
/// wirecall::service! {
///     /// A greeter.
///     pub mod greeter {
///         const VERSION: &str = "1.0.0"; // optional
///         /// Says hello to `name`.
///         fn greet(name: &str) -> wirecall::heapless::String<32> = 1;
///         /// Adds two numbers. Running it twice is harmless.
///         fn add(a: i32, b: i32) -> i32 = 2, idempotent;
///         /// Forgets everything (no return value).
///         fn reset() = 3;
///     }
/// }
/// ```
///
/// generates, in `mod greeter`:
///
/// - `trait Service`: one `&mut self` method per definition, to implement on the server,
///   and `set_deadline`, called before each (non-stream) handler with the call's deadline when its
///   request carried a time budget (a no-op unless you implement it; so no method of
///   the service may be called `set_deadline`);
/// - `struct Dispatcher<S: Service>(pub S)`: implements [`Dispatch`](crate::Dispatch),
///   so a [`Server`](crate::Server) can answer with it;
/// - `struct Client<C: Call>(pub C)`: one method per definition, e.g.
///   `greet(&mut self, name: &str) -> Result<String<32>, wirecall::Error>`, over any
///   [`Call`](crate::Call) such as a [`Client`](crate::Client);
/// - `mod ids`: one `u16` constant per method (`ids::greet == 1`);
/// - `mod methods`: one [`Method`](crate::Method) constant per method (id and idempotency);
/// - `NAME` (the module name), `VERSION` (as declared, or `""`) and `METHODS`
///   (`(name, Method)` pairs, in definition order);
/// - with feature `describe`: `DESCRIPTION`, what the built-in `describe`
///   reports (every argument and return type must implement
///   [`wirecall::schema::Schema`](crate::schema::Schema)), and on the stub, with
///   feature `std` too, `check_compatible()`, which compares the device's
///   fingerprint with this definition's before any call.
///
/// `idempotent` after the id declares that running the method twice does no more
/// than running it once. It changes one thing: when the server can no longer say
/// whether a call ran (it restarted, or the answer left its reply cache), the
/// client makes the call again instead of reporting the outcome unknown.
/// Retransmissions of an unanswered request are safe for every method, idempotent
/// or not: they reuse the call's sequence number and the server never runs it twice.
///
/// Your own argument and return types derive serde's traits and, with feature
/// `describe` (on by default), postcard-schema's `Schema`, through wirecall's
/// re-export:
///
/// ```
/// # #[cfg(feature = "describe")]
/// # mod example {
/// #[derive(serde::Serialize, serde::Deserialize, wirecall::schema::Schema)]
/// #[postcard(crate = wirecall::schema)]
/// pub struct Reading {
///     pub millivolts: u16,
///     pub channel: u8,
/// }
///
/// wirecall::service! {
///     pub mod adc {
///         fn read(channel: u8) -> Option<Reading> = 1;
///     }
/// }
/// # }
/// # fn main() {}
/// ```
///
/// Rules, checked at compile time: ids are `u16` literals, distinct, and at most
/// [`MAX_APP_METHOD_ID`](crate::wire::MAX_APP_METHOD_ID) (higher ids are reserved
/// for built-in methods). Arguments may borrow (`&str`, `&[u8]`): the server
/// decodes them in place. Return types must own their data. Application errors
/// are values: declare `-> Result<T, E>` and the caller gets `Ok(Err(e))`, which
/// says the handler ran. The module sees the items of its parent (`use super::*`).
#[macro_export]
macro_rules! service {
    (
        $(#[$mod_meta:meta])*
        $vis:vis mod $module:ident {
            $(const VERSION: &str = $version:expr;)?
            $(
                $(#[$meta:meta])*
                fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? = $id:literal $(, $flag:ident)?;
            )*
            $(
                event $event:ident : $event_ty:ty = $event_id:literal;
            )*
        }
    ) => {
        $(#[$mod_meta])*
        $vis mod $module {
            #![allow(unused_imports)]
            use super::*;

            /// Method ids, one constant per method.
            #[allow(non_upper_case_globals)]
            pub mod ids {
                $( #[doc = concat!("Id of `", stringify!($name), "`.")] pub const $name: u16 = $id; )*
            }

            /// Methods as clients call them: id and idempotency.
            #[allow(non_upper_case_globals)]
            pub mod methods {
                $( #[doc = concat!("`", stringify!($name), "`.")] pub const $name: $crate::Method = $crate::__method!($id $(, $flag)?); )*
            }

            /// Event topics, one constant per `event`: what the server emits and
            /// clients decode (feature `events`).
            #[allow(non_upper_case_globals)]
            pub mod events {
                use super::*;
                $( #[doc = concat!("Topic `", stringify!($event), "`.")] pub const $event: $crate::Topic<$event_ty> = $crate::Topic::new($event_id); )*
            }

            const _: () = $crate::__private::check_ids(&[$($id),*]);
            const _: () = $crate::__private::check_topics(&[$($event_id),*]);

            /// The service's name.
            pub const NAME: &str = stringify!($module);

            /// The service's version, as declared (`const VERSION: &str = "...";`), or `""`.
            pub const VERSION: &str = $crate::__version!($($version)?);

            $crate::__describe! { $( $name ( $($arg : $ty),* ) $(-> $ret)? [$($flag)?] ; )* }

            /// `(name, method)` of every method, in definition order.
            pub const METHODS: &[(&str, $crate::Method)] = &[$((stringify!($name), methods::$name)),*];

            /// The handlers: implement this on the server.
            pub trait Service {
                $(
                    $crate::__handler! { [$($flag)?] $(#[$meta])* fn $name ( $($arg : $ty),* ) $(-> $ret)? }
                )*

                /// Called before each handler with the call's deadline on the
                /// server's clock, `None` when the request carried no budget:
                /// keep it to read how much time the handler has left.
                fn set_deadline(&mut self, deadline: ::core::option::Option<$crate::Instant>) {
                    let _ = deadline;
                }
            }

            /// Answers requests by calling the handlers of the `Service` it holds.
            pub struct Dispatcher<S>(pub S);

            impl<S: Service> $crate::Dispatch for Dispatcher<S> {
                #[inline]
                fn dispatch(
                    &mut self,
                    method: u16,
                    args: &[u8],
                    responder: $crate::Responder<'_>,
                ) -> ::core::result::Result<$crate::Replied, $crate::Refused> {
                    $(
                        if method == $id {
                            return $crate::__dispatch_arm!([$($flag)?] self, args, responder, $name ( $($arg : $ty),* ));
                        }
                    )*
                    let _ = (args, responder);
                    Err($crate::Refused::UnknownMethod)
                }

                $crate::__next_item! { $( [$($flag)?] $id $name ( $($arg : $ty),* ) ; )* }

                $crate::__dispatch_description!();
            }

            /// The typed client stub: each method makes one remote call.
            pub struct Client<C>(pub C);

            impl<C: $crate::Call> Client<C> {
                $(
                    $crate::__stub! { [$($flag)?] $(#[$meta])* fn $name ( $($arg : $ty),* ) $(-> $ret)? }
                )*

                $crate::__check_compatible!();
            }
        }
    };
}

/// A handler in the `Service` trait, by the method's flag.
#[doc(hidden)]
#[macro_export]
macro_rules! __handler {
    ([stream] $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        $(#[$meta])*
        ///
        /// A stream: called for item `index` = 0, 1, 2, … as the client's credit
        /// allows, with the call's arguments each time; `None` ends the stream.
        fn $name(&mut self $(, $arg: $ty)*, index: u32) -> ::core::option::Option<$ret>;
    };
    ([stream] $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* )) => {
        compile_error!(concat!("stream method `", stringify!($name), "` needs an item type: `-> Item`"));
    };
    ([oneway] $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        compile_error!(concat!("one-way method `", stringify!($name), "` cannot return a value"));
    };
    ([$($flag:ident)?] $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)?) => {
        $(#[$meta])*
        fn $name(&mut self $(, $arg: $ty)*) -> $crate::__ret!($($ret)?);
    };
}

/// A dispatcher's answer to a new call of one method, by its flag.
#[doc(hidden)]
#[macro_export]
macro_rules! __dispatch_arm {
    ([stream] $this:ident, $args:ident, $responder:ident, $name:ident ( $($arg:ident : $ty:ty),* )) => {{
        if !$responder.can_stream() {
            Err($crate::Refused::Unavailable)
        } else {
            // Checked now, decoded again for every item.
            let _: ($($ty,)*) = $crate::__private::decode_args($args)?;
            Ok($responder.stream())
        }
    }};
    ([$($flag:ident)?] $this:ident, $args:ident, $responder:ident, $name:ident ( $($arg:ident : $ty:ty),* )) => {{
        let ($($arg,)*): ($($ty,)*) = $crate::__private::decode_args($args)?;
        Service::set_deadline(&mut $this.0, $responder.deadline());
        let value = $this.0.$name($($arg),*);
        Ok($responder.reply(&value))
    }};
}

/// With feature `streams`: the dispatcher's `next_item`, for its stream methods.
#[cfg(feature = "streams")]
#[doc(hidden)]
#[macro_export]
macro_rules! __next_item {
    ( $( [$($flag:ident)?] $id:literal $name:ident ( $($arg:ident : $ty:ty),* ) ; )* ) => {
        fn next_item(
            &mut self,
            method: u16,
            args: &[u8],
            index: u32,
            responder: $crate::Responder<'_>,
        ) -> ::core::option::Option<$crate::Replied> {
            $( $crate::__next_item_arm!([$($flag)?] self, method, args, index, responder, $id $name ( $($arg : $ty),* )); )*
            let _ = (method, args, index, responder);
            None
        }
    };
}

/// Without feature `streams`: nothing.
#[cfg(not(feature = "streams"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __next_item {
    ($($t:tt)*) => {};
}

/// One stream method's case in `next_item`; nothing for other methods.
#[doc(hidden)]
#[macro_export]
macro_rules! __next_item_arm {
    ([stream] $this:ident, $method:ident, $args:ident, $index:ident, $responder:ident, $id:literal $name:ident ( $($arg:ident : $ty:ty),* )) => {
        if $method == $id {
            let ($($arg,)*): ($($ty,)*) = $crate::__private::decode_args($args).ok()?;
            let item = $this.0.$name($($arg,)* $index)?;
            return Some($responder.reply(&item));
        }
    };
    ([$($flag:ident)?] $($rest:tt)*) => {};
}

/// A method of the client stub, by the method's flag.
#[doc(hidden)]
#[macro_export]
macro_rules! __stub {
    ([stream] $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        $crate::__stream_stub! { $(#[$meta])* fn $name ( $($arg : $ty),* ) -> $ret }
    };
    ([oneway] $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* )) => {
        $crate::__oneway_stub! { $(#[$meta])* fn $name ( $($arg : $ty),* ) }
    };
    ([$($flag:ident)?] $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)?) => {
        $(#[$meta])*
        ///
        /// # Errors
        /// When no value came back; [`wirecall::Error::executed`] says
        /// whether the handler ran.
        pub fn $name(&mut self $(, $arg: $ty)*) -> ::core::result::Result<$crate::__ret!($($ret)?), $crate::Error> {
            $crate::Call::call(&mut self.0, methods::$name, &($($arg,)*))
        }
    };
}

/// With feature `streams`: a stream method's stub.
#[cfg(feature = "streams")]
#[doc(hidden)]
#[macro_export]
macro_rules! __stream_stub {
    ($(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        $(#[$meta])*
        ///
        /// A stream: `on_item` gets each item as it arrives; returning `false`
        /// cancels the rest.
        ///
        /// # Errors
        /// [`wirecall::StreamError`]: how many items arrived before the stream
        /// broke, and why. A stream that ended has an `Ok` [`wirecall::StreamEnd`]
        /// saying how many items the server sent and how many arrived.
        pub fn $name(
            &mut self
            $(, $arg: $ty)*,
            mut on_item: impl FnMut($ret) -> bool,
        ) -> ::core::result::Result<$crate::StreamEnd, $crate::StreamError> {
            $crate::Call::call_stream(&mut self.0, methods::$name, &($($arg,)*), &mut on_item)
        }
    };
}

/// Without feature `streams`: an error.
#[cfg(not(feature = "streams"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __stream_stub {
    ($(#[$meta:meta])* fn $name:ident $($rest:tt)*) => {
        compile_error!(concat!("stream method `", stringify!($name), "` needs wirecall's feature `streams`"));
    };
}

/// With feature `events`: a one-way method's stub.
#[cfg(feature = "events")]
#[doc(hidden)]
#[macro_export]
macro_rules! __oneway_stub {
    ($(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* )) => {
        $(#[$meta])*
        ///
        /// One-way: `Ok` once the request is on the link; no answer comes, so
        /// whether it ran is not known.
        ///
        /// # Errors
        /// When the request could not be sent whole.
        pub fn $name(&mut self $(, $arg: $ty)*) -> ::core::result::Result<(), $crate::Error> {
            $crate::Call::send_oneway(&mut self.0, methods::$name, &($($arg,)*))
        }
    };
}

/// Without feature `events`: an error.
#[cfg(not(feature = "events"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __oneway_stub {
    ($(#[$meta:meta])* fn $name:ident $($rest:tt)*) => {
        compile_error!(concat!("one-way method `", stringify!($name), "` needs wirecall's feature `events`"));
    };
}

/// The describe flags of a method's flag.
#[doc(hidden)]
#[macro_export]
macro_rules! __flags {
    () => {
        0
    };
    (idempotent) => {
        $crate::describe::FLAG_IDEMPOTENT
    };
    (oneway) => {
        $crate::describe::FLAG_ONEWAY
    };
    (stream) => {
        $crate::describe::FLAG_STREAM
    };
}

/// A method's [`Method`](crate::Method) from its id and optional flag.
#[doc(hidden)]
#[macro_export]
macro_rules! __method {
    ($id:literal) => {
        $crate::Method::new($id)
    };
    ($id:literal, idempotent) => {
        $crate::Method::idempotent($id)
    };
    ($id:literal, oneway) => {
        $crate::Method::new($id)
    };
    ($id:literal, stream) => {
        $crate::Method::new($id)
    };
    ($id:literal, $other:ident) => {
        compile_error!(concat!(
            "unknown method flag `",
            stringify!($other),
            "`: the flags are `idempotent`, `oneway` and `stream`"
        ))
    };
}

/// The return type of a method: its declared type, or `()`.
#[doc(hidden)]
#[macro_export]
macro_rules! __ret {
    () => {
        ()
    };
    ($ret:ty) => {
        $ret
    };
}

/// The version string of a service: declared, or empty.
#[doc(hidden)]
#[macro_export]
macro_rules! __version {
    () => {
        ""
    };
    ($version:expr) => {
        $version
    };
}

/// With feature `describe`: the service's `DESCRIPTION` constant.
#[cfg(feature = "describe")]
#[doc(hidden)]
#[macro_export]
macro_rules! __describe {
    ( $( $name:ident ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)? [$($flag:ident)?] ; )* ) => {
        /// What the built-in `describe` reports about this service (PROTOCOL.md §3.2).
        pub const DESCRIPTION: $crate::describe::Description = $crate::describe::Description {
            name: NAME,
            version: VERSION,
            methods: &$crate::describe::by_id([$(
                $crate::describe::MethodDescription {
                    name: stringify!($name),
                    id: ids::$name,
                    flags: $crate::__flags!($($flag)?),
                    args: &$crate::schema::schema::NamedType {
                        name: stringify!($name),
                        ty: &$crate::schema::schema::DataModelType::Struct(&[$(
                            &$crate::schema::schema::NamedValue {
                                name: stringify!($arg),
                                ty: <$ty as $crate::schema::Schema>::SCHEMA,
                            }
                        ),*]),
                    },
                    ret: <$crate::__ret!($($ret)?) as $crate::schema::Schema>::SCHEMA,
                }
            ),*]),
        };

        const __DOCUMENT_LEN: usize = DESCRIPTION.document_len();

        /// `DESCRIPTION` encoded, with its fingerprint: what the server sends
        /// (computed at compile time; a firmware holds only these bytes).
        pub const DOCUMENT: $crate::describe::Document = $crate::describe::Document {
            bytes: &DESCRIPTION.document::<__DOCUMENT_LEN>(),
            fingerprint: DESCRIPTION.fingerprint(),
        };
    };
}

/// Without feature `describe`: nothing.
#[cfg(not(feature = "describe"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __describe {
    ($($t:tt)*) => {};
}

/// With feature `describe`: the dispatcher's `description`.
#[cfg(feature = "describe")]
#[doc(hidden)]
#[macro_export]
macro_rules! __dispatch_description {
    () => {
        fn document(&self) -> ::core::option::Option<&'static $crate::describe::Document> {
            ::core::option::Option::Some(&DOCUMENT)
        }
    };
}

/// Without feature `describe`: nothing.
#[cfg(not(feature = "describe"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __dispatch_description {
    () => {};
}

/// With features `describe` and `std`: the stub's `check_compatible`.
#[cfg(all(feature = "describe", feature = "std"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __check_compatible {
    () => {
        /// Checks that the device serves this service: one `describe` call
        /// comparing fingerprints; on a mismatch the error names the first
        /// difference (see [`wirecall::describe::remote::check`]).
        ///
        /// # Errors
        /// [`DescribeError::Incompatible`]($crate::describe::remote::DescribeError::Incompatible)
        /// on a mismatch, or why the device could not be asked.
        pub fn check_compatible(&mut self) -> ::core::result::Result<(), $crate::describe::remote::DescribeError> {
            $crate::describe::remote::check(&mut self.0, &DESCRIPTION)
        }
    };
}

/// Otherwise: nothing.
#[cfg(not(all(feature = "describe", feature = "std")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __check_compatible {
    () => {};
}
