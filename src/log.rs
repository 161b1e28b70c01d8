//! The one logging shim: protocol events go to `defmt`, to `log`, or nowhere.
//!
//! With neither feature the macros still consume their arguments, so no
//! "unused variable" warnings appear in either configuration.

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("the `defmt` and `log` features are mutually exclusive: choose one");

macro_rules! wc_debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::debug!($($arg)*);
        #[cfg(feature = "log")]
        log::debug!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        {
            let _ = (__consume!($($arg)*));
        }
    }};
}

macro_rules! wc_warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::warn!($($arg)*);
        #[cfg(feature = "log")]
        log::warn!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        {
            let _ = (__consume!($($arg)*));
        }
    }};
}

/// Evaluates (by reference) every argument of a log call and discards it.
macro_rules! __consume {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {
        ($(&$arg,)*)
    };
}
