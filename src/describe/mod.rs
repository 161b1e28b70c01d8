//! Self-description (feature `describe`): what a service offers, as the
//! built-in `describe` method reports it (PROTOCOL.md §3.2).
//!
//! The [`service!`](crate::service!) macro builds one [`Description`] per
//! service, in `const` context: the service's name and version and, for each
//! method, its name, id, flags and the [postcard-schema](postcard_schema)
//! schemas of its arguments and its value. It lives in flash; nothing is built
//! at run time.
//!
//! The *document* is the postcard encoding of the description. A server sends
//! it in chunks ([`Chunk`]) that fit its transmit buffer and the client's
//! receive buffer, encoding it again for each one: no buffer holds it whole.
//! The [`Fingerprint`] covers everything that decides whether two sides
//! understand each other's bytes: the service name and the methods, not the
//! version string.
//!
//! On the host (feature `std`), [`remote`] fetches a device's document, decodes
//! it, and compares it with a client's own description, naming the first
//! difference.

use serde::Serialize;
use serde::ser::{SerializeTuple, Serializer};

use postcard_schema::schema::NamedType;

#[cfg(feature = "std")]
pub mod remote;

/// `Method` flag bit: the method is idempotent.
pub const FLAG_IDEMPOTENT: u8 = 0x01;

/// A service as the `describe` built-in reports it. Built by
/// [`service!`](crate::service!) as the constant `DESCRIPTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Description {
    /// The service's name (the module name in the service definition).
    pub name: &'static str,
    /// The version declared in the definition, or `""`.
    pub version: &'static str,
    /// Every method, by id.
    pub methods: &'static [MethodDescription],
}

/// One method of a [`Description`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MethodDescription {
    /// The method's name.
    pub name: &'static str,
    /// Its id on the wire.
    pub id: u16,
    /// Flag bits: [`FLAG_IDEMPOTENT`]; the others are 0.
    pub flags: u8,
    /// The arguments, as a struct whose fields are the arguments in order (its
    /// postcard encoding is that of the argument tuple).
    pub args: &'static NamedType,
    /// The value the method returns.
    pub ret: &'static NamedType,
}

/// A 64-bit digest of a service's name and methods: CRC-64/XZ over the postcard
/// encoding of `(name, methods)`. Equal fingerprints mean both sides encode and
/// decode every method alike; it is not a cryptographic hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Fingerprint(pub u64);

impl core::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// CRC-64/XZ, bit by bit: describing is rare, and a table would cost 2 KiB of flash.
static CRC64: crc::Crc<u64, crc::NoTable> = crc::Crc::<u64, crc::NoTable>::new(&crc::CRC_64_XZ);

/// A postcard flavor that writes nothing: it digests and counts what passes.
struct Digest {
    digest: crc::Digest<'static, u64, crc::NoTable>,
    len: u32,
}

impl postcard::ser_flavors::Flavor for Digest {
    type Output = (u64, u32);

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.digest.update(&[byte]);
        self.len = self.len.wrapping_add(1);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<(u64, u32)> {
        Ok((self.digest.finalize(), self.len))
    }
}

/// The CRC-64/XZ and length of the postcard encoding of `value`.
pub(crate) fn digest<T: Serialize + ?Sized>(value: &T) -> (Fingerprint, u32) {
    let flavor = Digest { digest: CRC64.digest(), len: 0 };
    // Digest never fails; a value that cannot be serialized digests as nothing.
    let (crc, len) = postcard::serialize_with_flavor(value, flavor).unwrap_or((0, 0));
    (Fingerprint(crc), len)
}

/// The number of bytes postcard's varint takes for `n`.
const fn varint_len(mut n: u32) -> u32 {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

impl Description {
    /// The fingerprint of this description.
    pub fn fingerprint(&self) -> Fingerprint {
        digest(&(self.name, self.methods)).0
    }

    /// The fingerprint, and the length of the whole document.
    fn fingerprint_and_len(&self) -> (Fingerprint, u32) {
        let (fingerprint, len) = digest(&(self.name, self.methods));
        let version = self.version.len() as u32;
        (fingerprint, len + varint_len(version) + version)
    }

    /// The `describe` reply for the window `offset .. offset + max` of the
    /// document, cut to at most `room` chunk bytes.
    pub(crate) fn chunk(&'static self, offset: u32, max: u16, room: usize) -> Chunk {
        let (fingerprint, total) = self.fingerprint_and_len();
        let left = total.saturating_sub(offset);
        let len = left.min(u32::from(max)).min(u32::try_from(room).unwrap_or(u32::MAX));
        Chunk { fingerprint, total, offset, len, description: self }
    }
}

/// `methods` sorted by id, in `const` context: the document lists methods by
/// id, so reordering a service definition changes neither it nor the fingerprint.
pub const fn by_id<const N: usize>(mut methods: [MethodDescription; N]) -> [MethodDescription; N] {
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && methods[j - 1].id > methods[j].id {
            let earlier = methods[j - 1];
            methods[j - 1] = methods[j];
            methods[j] = earlier;
            j -= 1;
        }
        i += 1;
    }
    methods
}

/// The arguments of `describe`: where the wanted window of the document starts,
/// and at most how many of its bytes the client can take.
pub type DescribeArgs = (u32, u16);

/// Bytes of a `describe` reply besides the chunk: the fingerprint (up to 10) and
/// the total length and the chunk length (up to 5 each).
pub(crate) const CHUNK_OVERHEAD: usize = 20;

/// A `describe` reply: `(fingerprint: u64, total: u32, chunk: bytes)` in
/// postcard, the chunk being `document[offset .. offset + len]`.
pub(crate) struct Chunk {
    fingerprint: Fingerprint,
    total: u32,
    offset: u32,
    len: u32,
    description: &'static Description,
}

impl Serialize for Chunk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The chunk is written as postcard writes bytes (a varint length, then
        // the bytes), by encoding the document again and passing on its bytes
        // in the window: no buffer holds the document.
        let mut tuple = serializer.serialize_tuple(3 + self.len as usize)?;
        tuple.serialize_element(&self.fingerprint.0)?;
        tuple.serialize_element(&self.total)?;
        tuple.serialize_element(&self.len)?;
        let mut failed = None;
        let window = Window::<S> {
            tuple: &mut tuple,
            at: 0,
            start: self.offset,
            end: self.offset.saturating_add(self.len),
            failed: &mut failed,
        };
        if let Err(error) = postcard::serialize_with_flavor(self.description, window) {
            return Err(failed.unwrap_or_else(|| serde::ser::Error::custom(error)));
        }
        tuple.end()
    }
}

/// A postcard flavor passing the bytes in `start..end` to an outer serializer.
struct Window<'t, S: Serializer> {
    tuple: &'t mut S::SerializeTuple,
    at: u32,
    start: u32,
    end: u32,
    failed: &'t mut Option<S::Error>,
}

impl<S: Serializer> postcard::ser_flavors::Flavor for Window<'_, S> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if (self.start..self.end).contains(&self.at) {
            if let Err(error) = self.tuple.serialize_element(&byte) {
                *self.failed = Some(error);
                return Err(postcard::Error::SerializeBufferFull);
            }
        }
        self.at = self.at.wrapping_add(1);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(dead_code)]
mod tests {
    use super::*;
    use std::vec::Vec;

    crate::service! {
        pub mod probe {
            const VERSION: &str = "1.2.0";
            fn add(a: i32, b: i32) -> i32 = 2, idempotent;
            fn greet(name: &str) -> crate::heapless::String<8> = 1;
            fn reset() = 7;
        }
    }

    fn document() -> Vec<u8> {
        postcard::to_allocvec(&probe::DESCRIPTION).unwrap()
    }

    #[test]
    fn the_macro_describes_every_method() {
        let d = probe::DESCRIPTION;
        assert_eq!((d.name, d.version, d.methods.len()), ("probe", "1.2.0", 3));
        let names: Vec<_> = d.methods.iter().map(|m| (m.name, m.id)).collect();
        assert_eq!(names, [("greet", 1), ("add", 2), ("reset", 7)]);
        let add = d.methods[1];
        assert_eq!((add.name, add.id, add.flags), ("add", 2, FLAG_IDEMPOTENT));
        assert_eq!(d.methods[2].flags, 0);
        assert_eq!(*d.methods[2].ret, *<() as postcard_schema::Schema>::SCHEMA);
    }

    #[test]
    fn chunks_put_together_are_the_document() {
        let doc = document();
        let (_, total) = probe::DESCRIPTION.fingerprint_and_len();
        assert_eq!(total as usize, doc.len());
        for size in [1u16, 7, 64, 1000] {
            let mut joined = Vec::new();
            let mut offset = 0;
            loop {
                let chunk = probe::DESCRIPTION.chunk(offset, size, usize::MAX);
                let bytes = postcard::to_allocvec(&chunk).unwrap();
                let (fp, total, part): (u64, u32, Vec<u8>) = postcard::from_bytes(&bytes).unwrap();
                assert_eq!(fp, probe::DESCRIPTION.fingerprint().0);
                assert_eq!(total as usize, doc.len());
                if part.is_empty() {
                    break;
                }
                offset += part.len() as u32;
                joined.extend_from_slice(&part);
            }
            assert_eq!(joined, doc, "chunk size {size}");
        }
    }

    #[test]
    fn a_chunk_respects_the_room_given() {
        let chunk = probe::DESCRIPTION.chunk(0, 1000, 5);
        let bytes = postcard::to_allocvec(&chunk).unwrap();
        let (_, _, part): (u64, u32, Vec<u8>) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(part, document()[..5]);
        let past_the_end = probe::DESCRIPTION.chunk(10_000, 1000, 1000);
        let bytes = postcard::to_allocvec(&past_the_end).unwrap();
        let (_, _, part): (u64, u32, Vec<u8>) = postcard::from_bytes(&bytes).unwrap();
        assert!(part.is_empty());
    }

    #[test]
    fn the_fingerprint_ignores_the_version_and_sees_a_changed_type() {
        crate::service! {
            pub mod probe2 {
                const VERSION: &str = "9";
                fn add(a: i32, b: i32) -> i32 = 2, idempotent;
                fn greet(name: &str) -> crate::heapless::String<8> = 1;
                fn reset() = 7;
            }
        }
        crate::service! {
            pub mod probe3 {
                fn add(a: i32, b: u32) -> i32 = 2, idempotent;
                fn greet(name: &str) -> crate::heapless::String<8> = 1;
                fn reset() = 7;
            }
        }
        // Names differ, so compare with the name swapped in.
        let renamed = Description { name: "probe", ..probe2::DESCRIPTION };
        assert_eq!(renamed.fingerprint(), probe::DESCRIPTION.fingerprint());
        let changed = Description { name: "probe", ..probe3::DESCRIPTION };
        assert_ne!(changed.fingerprint(), probe::DESCRIPTION.fingerprint());
    }

    #[test]
    fn crc64_is_xz() {
        // The catalogue's check value for "123456789".
        assert_eq!(CRC64.checksum(b"123456789"), 0x995D_C9BB_DF19_39FA);
    }
}
