//! Board support for the Raspberry Pi Pico: UART0 on GP0/GP1 and a microsecond clock.
//!
//! rp2040-hal's UART implements embedded-io 0.7's `Read`, `Write` and
//! `ReadReady` itself (blocking reads and writes, polled readiness), so the
//! enabled peripheral is a `wirecall::Link` as it is: no adapter needed.
#![no_std]
#![deny(unsafe_code)]

pub mod clock;

use rp2040_hal::fugit::RateExtU32;
use rp2040_hal::gpio::{FunctionUart, Pin, Pins, PullDown, PullUp, bank0};
use rp2040_hal::uart::{DataBits, Enabled, StopBits, UartConfig, UartPeripheral};
use rp2040_hal::{Clock as _, Sio, Timer, Watchdog, clocks, pac};

pub use clock::Micros;

/// The second-stage bootloader for the Pico's W25Q16JV flash: the boot ROM
/// runs these first 256 bytes of flash, which set up execute-in-place.
// Placing a static in a named section is an `unsafe` attribute (a wrong
// section could break the image); `.boot2` is the one memory.x reserves.
#[allow(unsafe_code)]
#[unsafe(link_section = ".boot2")]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
pub const XTAL_HZ: u32 = 12_000_000;

/// UART0's rate; the frame is 8N1.
pub const BAUD: u32 = 115_200;

/// UART0's pins: GP0 transmits; GP1 receives, pulled up so that an unconnected
/// line idles high instead of reading as a break.
pub type Uart0Pins = (Pin<bank0::Gpio0, FunctionUart, PullDown>, Pin<bank0::Gpio1, FunctionUart, PullUp>);

/// UART0, enabled: the link wirecall serves on.
pub type Uart0 = UartPeripheral<Enabled, pac::UART0, Uart0Pins>;

/// Brings the board up: clocks from the crystal (125 MHz system clock), the
/// microsecond timer, and UART0 at [`BAUD`] 8N1 on GP0/GP1.
///
/// `None` if the peripherals were already taken or a clock did not start.
pub fn take() -> Option<(Uart0, Micros)> {
    let mut pac = pac::Peripherals::take()?;
    let mut watchdog = Watchdog::new(pac.WATCHDOG);
    let clocks = clocks::init_clocks_and_plls(
        XTAL_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    )
    .ok()?;
    let timer = Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);

    let sio = Sio::new(pac.SIO);
    let pins = Pins::new(pac.IO_BANK0, pac.PADS_BANK0, sio.gpio_bank0, &mut pac.RESETS);
    let uart_pins: Uart0Pins = (pins.gpio0.into_function(), pins.gpio1.into_pull_type().into_function());
    let config = UartConfig::new(BAUD.Hz(), DataBits::Eight, None, StopBits::One);
    let uart = UartPeripheral::new(pac.UART0, uart_pins, &mut pac.RESETS)
        .enable(config, clocks.peripheral_clock.freq())
        .ok()?;
    Some((uart, Micros::new(timer)))
}

/// Stops here for good, sleeping: for start-up steps that cannot fail twice.
pub fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

/// What a panic does: a permanently undefined instruction, so the core faults
/// and stops (and a debugger attached through probe-rs shows where).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::asm::udf()
}
