//! The host side of `describe` (features `describe` and `std`): fetch a
//! device's description, and check that a client stub speaks the same service.

use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use postcard_schema::schema::owned::{OwnedDataModelType, OwnedNamedType};
use serde::{Deserialize, Serialize};

use super::{CHUNK_OVERHEAD, Description, FLAG_IDEMPOTENT, Fingerprint, digest};
use crate::machine::builtin::DESCRIBE;
use crate::{Call, Error, Method};

/// The largest document [`fetch`] accepts from a device: far above any real
/// service, low enough that a confused device cannot make the host allocate
/// without bound.
pub const MAX_DOCUMENT: u32 = 1 << 20;

/// A service description as decoded from a device's document: owned, so that
/// it can be kept, printed and compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteDescription {
    /// The service's name.
    pub name: String,
    /// Its version, or `""`.
    pub version: String,
    /// Its methods, by id.
    pub methods: Vec<RemoteMethod>,
}

/// One method of a [`RemoteDescription`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteMethod {
    /// The method's name.
    pub name: String,
    /// Its id.
    pub id: u16,
    /// Flag bits ([`FLAG_IDEMPOTENT`]).
    pub flags: u8,
    /// The arguments, as a struct whose fields are the arguments in order.
    pub args: OwnedNamedType,
    /// The value it returns.
    pub ret: OwnedNamedType,
}

impl RemoteMethod {
    /// The method as a client calls it.
    pub fn method(&self) -> Method {
        Method { id: self.id, idempotent: self.flags & FLAG_IDEMPOTENT != 0 }
    }

    /// The argument list in Rust-like notation: `(a: i32, b: i32)`.
    pub fn args_text(&self) -> String {
        match &self.args.ty {
            OwnedDataModelType::Struct(fields) => {
                let fields: Vec<String> =
                    fields.iter().map(|field| format!("{}: {}", field.name, type_text(&field.ty))).collect();
                format!("({})", fields.join(", "))
            }
            _ => type_text(&self.args),
        }
    }

    /// The signature in Rust-like notation: `add(a: i32, b: i32) -> i32`.
    pub fn signature(&self) -> String {
        let ret = match self.ret.ty {
            OwnedDataModelType::Unit => String::new(),
            _ => format!(" -> {}", type_text(&self.ret)),
        };
        format!("{}{}{}", self.name, self.args_text(), ret)
    }
}

/// A type in postcard-schema's Rust-like notation.
pub fn type_text(ty: &OwnedNamedType) -> String {
    ty.to_pseudocode()
}

impl From<&Description> for RemoteDescription {
    fn from(description: &Description) -> Self {
        RemoteDescription {
            name: description.name.to_string(),
            version: description.version.to_string(),
            methods: description
                .methods
                .iter()
                .map(|m| RemoteMethod {
                    name: m.name.to_string(),
                    id: m.id,
                    flags: m.flags,
                    args: m.args.into(),
                    ret: m.ret.into(),
                })
                .collect(),
        }
    }
}

impl RemoteDescription {
    /// The fingerprint of this description, computed as a device computes it.
    pub fn fingerprint(&self) -> Fingerprint {
        digest(&(&self.name, &self.methods)).0
    }

    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&RemoteMethod> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// The first difference between this description (ours) and `device`'s,
    /// in words; `None` when the two agree on everything the fingerprint covers.
    pub fn first_difference(&self, device: &RemoteDescription) -> Option<String> {
        if self.name != device.name {
            return Some(format!("service: ours is `{}`, the device's is `{}`", self.name, device.name));
        }
        for ours in &self.methods {
            let Some(theirs) = device.methods.iter().find(|m| m.id == ours.id) else {
                return Some(format!("method `{}` (id {}): the device has no method with this id", ours.name, ours.id));
            };
            if let Some(difference) = method_difference(ours, theirs) {
                return Some(difference);
            }
        }
        if let Some(extra) = device.methods.iter().find(|m| !self.methods.iter().any(|o| o.id == m.id)) {
            return Some(format!("method `{}` (id {}): only the device has it", extra.name, extra.id));
        }
        if self.methods != device.methods {
            return Some("the methods are listed in a different order".to_string());
        }
        None
    }
}

fn method_difference(ours: &RemoteMethod, theirs: &RemoteMethod) -> Option<String> {
    let id = ours.id;
    if ours.name != theirs.name {
        return Some(format!("method id {id}: ours is `{}`, the device's is `{}`", ours.name, theirs.name));
    }
    let name = &ours.name;
    if ours.flags != theirs.flags {
        let idempotent = |m: &RemoteMethod| if m.method().idempotent { "idempotent" } else { "not idempotent" };
        return Some(format!(
            "method `{name}`: ours is {}, the device's is {} (flags {:#04x} and {:#04x})",
            idempotent(ours),
            idempotent(theirs),
            ours.flags,
            theirs.flags
        ));
    }
    if ours.args != theirs.args {
        return Some(format!(
            "method `{name}` arguments: ours are `{}`, the device's are `{}`",
            ours.args_text(),
            theirs.args_text()
        ));
    }
    if ours.ret != theirs.ret {
        return Some(format!(
            "method `{name}` returns: ours `{}`, the device's `{}`",
            type_text(&ours.ret),
            type_text(&theirs.ret)
        ));
    }
    None
}

/// Why a description could not be fetched, or does not match.
#[derive(Debug)]
#[non_exhaustive]
pub enum DescribeError {
    /// A `describe` call failed (a device without `describe` answers
    /// [`Status::Unimplemented`](crate::Status::Unimplemented)).
    Call(Error),
    /// The device's document is not a valid description.
    BadDocument(String),
    /// The device's service differs from ours.
    Incompatible {
        /// Our fingerprint.
        ours: Fingerprint,
        /// The device's.
        device: Fingerprint,
        /// The first difference, in words.
        first_difference: String,
    },
}

impl From<Error> for DescribeError {
    fn from(error: Error) -> Self {
        DescribeError::Call(error)
    }
}

impl core::fmt::Display for DescribeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DescribeError::Call(error) => write!(f, "describe failed: {error}"),
            DescribeError::BadDocument(why) => write!(f, "the device's description is not valid: {why}"),
            DescribeError::Incompatible { ours, device, first_difference } => {
                write!(f, "incompatible service (fingerprint {ours}, device {device}): {first_difference}")
            }
        }
    }
}

impl std::error::Error for DescribeError {}

/// One `describe` reply: fingerprint, document length, chunk.
type ChunkReply = (u64, u32, Vec<u8>);

const DESCRIBE_METHOD: Method = Method::idempotent(DESCRIBE);

/// The device's fingerprint: one `describe` call for no bytes of the document.
///
/// # Errors
/// [`DescribeError::Call`] when the call fails.
pub fn device_fingerprint<C: Call + ?Sized>(client: &mut C) -> Result<Fingerprint, DescribeError> {
    let (fingerprint, _, _): ChunkReply = client.call(DESCRIBE_METHOD, &(0u32, 0u16))?;
    Ok(Fingerprint(fingerprint))
}

/// Fetches and decodes the device's whole description, in chunks that fit the
/// client's receive buffer. Starts again (up to three times) when the
/// fingerprint changes midway, as when the device was updated in between.
///
/// # Errors
/// [`DescribeError::Call`] when a call fails; [`DescribeError::BadDocument`]
/// when the document does not decode, is larger than [`MAX_DOCUMENT`], or does
/// not match its fingerprint.
pub fn fetch<C: Call + ?Sized>(client: &mut C) -> Result<RemoteDescription, DescribeError> {
    let max = client.max_reply_len().saturating_sub(CHUNK_OVERHEAD).min(usize::from(u16::MAX)) as u16;
    if max == 0 {
        return Err(DescribeError::BadDocument("the client's receive buffer is too small to describe".into()));
    }
    'attempt: for _ in 0..3 {
        let mut document = Vec::new();
        let mut fingerprint = None;
        loop {
            let offset = document.len() as u32;
            let (fp, total, chunk): ChunkReply = client.call(DESCRIBE_METHOD, &(offset, max))?;
            if *fingerprint.get_or_insert(fp) != fp {
                continue 'attempt;
            }
            if total > MAX_DOCUMENT {
                return Err(DescribeError::BadDocument(format!("{total} bytes long, the limit is {MAX_DOCUMENT}")));
            }
            if chunk.len() > usize::from(max) || offset as usize + chunk.len() > total as usize {
                return Err(DescribeError::BadDocument("a chunk goes past what was asked for".into()));
            }
            if chunk.is_empty() && offset < total {
                return Err(DescribeError::BadDocument(format!("no bytes at offset {offset} of {total}")));
            }
            document.extend_from_slice(&chunk);
            if document.len() == total as usize {
                break;
            }
        }
        let description: RemoteDescription = crate::decode_exact(&document)
            .ok_or_else(|| DescribeError::BadDocument("the document does not decode".into()))?;
        let fingerprint = Fingerprint(fingerprint.unwrap_or_default());
        if description.fingerprint() != fingerprint {
            return Err(DescribeError::BadDocument(format!(
                "its fingerprint is {fingerprint}, its content's {}",
                description.fingerprint()
            )));
        }
        return Ok(description);
    }
    Err(DescribeError::BadDocument("it changed while being read, three times".into()))
}

/// Checks that the device serves the service `ours` describes: one call when
/// the fingerprints agree; otherwise the device's description is fetched and
/// the error names the first difference.
///
/// # Errors
/// [`DescribeError::Incompatible`] on a mismatch; the errors of [`fetch`].
pub fn check<C: Call + ?Sized>(client: &mut C, ours: &Description) -> Result<(), DescribeError> {
    let ours_fp = ours.fingerprint();
    let device_fp = device_fingerprint(client)?;
    if device_fp == ours_fp {
        return Ok(());
    }
    let device = fetch(client)?;
    let first_difference = RemoteDescription::from(ours)
        .first_difference(&device)
        .unwrap_or_else(|| "the fingerprints differ, the decoded descriptions do not".to_string());
    Err(DescribeError::Incompatible { ours: ours_fp, device: device_fp, first_difference })
}
