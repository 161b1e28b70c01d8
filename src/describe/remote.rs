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
                    fields.iter().map(|field| format!("{}: {}", field.name, field.ty.to_pseudocode())).collect();
                format!("({})", fields.join(", "))
            }
            _ => self.args.to_pseudocode(),
        }
    }

    /// The signature in Rust-like notation: `add(a: i32, b: i32) -> i32`.
    pub fn signature(&self) -> String {
        let ret = match self.ret.ty {
            OwnedDataModelType::Unit => String::new(),
            _ => format!(" -> {}", self.ret.to_pseudocode()),
        };
        format!("{}{}{}", self.name, self.args_text(), ret)
    }
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
        digest(&(&self.name, &self.methods))
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
            ours.ret.to_pseudocode(),
            theirs.ret.to_pseudocode()
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
        let description = decode_document(&document)?;
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

/// Decodes a whole document (PROTOCOL.md §3.2), as [`fetch`] does: checked
/// for nesting depth first, then decoded exactly (no bytes left over).
///
/// # Errors
/// [`DescribeError::BadDocument`] when it is not a valid document.
pub fn decode_document(document: &[u8]) -> Result<RemoteDescription, DescribeError> {
    check_depth(document).map_err(|why| DescribeError::BadDocument(why.into()))?;
    crate::decode_exact(document).ok_or_else(|| DescribeError::BadDocument("the document does not decode".into()))
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

/// The deepest a type in a fetched description may nest (`Option<Option<u8>>`
/// is 3 deep). Decoding a schema is recursive: the limit keeps a hostile or
/// broken device from exhausting the host's stack.
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// Walks a document (PROTOCOL.md §3.2) without building anything, checking
/// that each type nests at most [`MAX_SCHEMA_DEPTH`] deep. Its recursion is
/// bounded by that limit.
fn check_depth(document: &[u8]) -> Result<(), &'static str> {
    let mut walk = Walk { rest: document };
    walk.string()?; // name
    walk.string()?; // version
    for _ in 0..walk.varint()? {
        walk.string()?; // method name
        walk.varint()?; // id
        walk.byte()?; // flags
        walk.named_type(1)?; // args
        walk.named_type(1)?; // ret
    }
    Ok(())
}

struct Walk<'a> {
    rest: &'a [u8],
}

impl<'a> Walk<'a> {
    /// One postcard value off the front.
    fn take<T: Deserialize<'a>>(&mut self) -> Result<T, &'static str> {
        let (value, rest) =
            postcard::take_from_bytes(self.rest).map_err(|_| "a value in the document is cut short or invalid")?;
        self.rest = rest;
        Ok(value)
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        self.take()
    }

    fn varint(&mut self) -> Result<u32, &'static str> {
        self.take()
    }

    fn string(&mut self) -> Result<(), &'static str> {
        self.take::<&str>().map(drop)
    }

    fn named_type(&mut self, depth: usize) -> Result<(), &'static str> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err("a type nests deeper than MAX_SCHEMA_DEPTH");
        }
        self.string()?;
        match self.varint()? {
            0..=17 | 19 | 20 | 28 => Ok(()),
            18 | 21 | 22 => self.named_type(depth + 1),
            23 | 24 => self.each(|walk| walk.named_type(depth + 1)),
            25 => {
                self.named_type(depth + 1)?;
                self.named_type(depth + 1)
            }
            26 => self.each(|walk| {
                walk.string()?;
                walk.named_type(depth + 1)
            }),
            27 => self.each(|walk| {
                walk.string()?;
                match walk.varint()? {
                    0 => Ok(()),
                    1 => walk.named_type(depth + 1),
                    2 => walk.each(|walk| walk.named_type(depth + 1)),
                    3 => walk.each(|walk| {
                        walk.string()?;
                        walk.named_type(depth + 1)
                    }),
                    _ => Err("an enum variant has an unknown kind"),
                }
            }),
            _ => Err("a type has an unknown kind"),
        }
    }

    /// A length, then that many items. Each item takes at least one byte, so a
    /// huge length ends at the end of the document, not in a long loop.
    fn each(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), &'static str>) -> Result<(), &'static str> {
        for _ in 0..self.varint()? {
            item(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_options(depth: usize) -> std::vec::Vec<u8> {
        // name "s", version "", one method "m" id 1 flags 0, args: `depth` nested
        // Options around a u8, ret: unit.
        let mut doc = std::vec![1, b's', 0, 1, 1, b'm', 1, 0];
        for _ in 0..depth - 1 {
            doc.extend_from_slice(&[1, b'o', 18]);
        }
        doc.extend_from_slice(&[2, b'u', b'8', 2]);
        doc.extend_from_slice(&[2, b'(', b')', 19]);
        doc
    }

    #[test]
    fn the_depth_walk_agrees_with_the_decoder() {
        let doc = nested_options(MAX_SCHEMA_DEPTH);
        assert_eq!(check_depth(&doc), Ok(()));
        let decoded: RemoteDescription = crate::decode_exact(&doc).unwrap();
        assert_eq!(decoded.methods[0].ret.ty, OwnedDataModelType::Unit);
        assert!(check_depth(&nested_options(MAX_SCHEMA_DEPTH + 1)).is_err());
        // Deep enough to overflow a recursive decoder's stack: refused without recursing.
        assert!(check_depth(&nested_options(1_000_000)).is_err());
        for cut in 0..doc.len() {
            assert!(check_depth(&doc[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn the_depth_walk_accepts_every_real_description() {
        let doc = postcard::to_allocvec(&crate::demo::demo::DESCRIPTION).unwrap();
        assert_eq!(check_depth(&doc), Ok(()));
    }
}
