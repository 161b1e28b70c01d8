//! The one logging shim: protocol events go to `defmt`, to `log`, or nowhere.
//!
//! With feature `defmt` events go to defmt (also when `log` is enabled too, as
//! `--all-features` does: defmt wins, so nothing is logged twice); with only
//! `log`, to the log crate. With neither, the macros still consume their
//! arguments, so no "unused variable" warnings appear in any configuration.
//! Format strings use plain `{}` so that both back ends accept them.

macro_rules! wc_debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::debug!($($arg)*);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        log::debug!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        {
            let _ = __consume!($($arg)*);
        }
    }};
}

macro_rules! wc_warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::warn!($($arg)*);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        log::warn!($($arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        {
            let _ = __consume!($($arg)*);
        }
    }};
}

/// Evaluates (by reference) every argument of a log call and discards it.
#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! __consume {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {
        ($(&$arg,)*)
    };
}
