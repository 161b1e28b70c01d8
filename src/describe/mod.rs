//! Self-description (feature `describe`): what a service offers, as the
//! built-in `describe` method reports it (PROTOCOL.md §3.2).
//!
//! The [`service!`](crate::service!) macro builds one [`Description`] per
//! service: the service's name and version and, for each method, its name, id,
//! flags and the [postcard-schema](postcard_schema) schemas of its arguments
//! and its value. From it, at compile time, it encodes the *document* the
//! server sends ([`Document`]: the postcard encoding of the description) and
//! its [`Fingerprint`]. A firmware holds those bytes and nothing else: no
//! schema tree, no serializer for it, no CRC-64 code. `describe` copies a
//! window of the bytes into a reply.
//!
//! The fingerprint covers everything that decides whether two sides understand
//! each other's bytes: the service name and the methods, not the version string.
//!
//! On the host (feature `std`), [`remote`] fetches a device's document, decodes
//! it, and compares it with a client's own description, naming the first
//! difference.

use serde::Serialize;

use postcard_schema::schema::{DataModelType, DataModelVariant, NamedType, NamedValue};

#[cfg(feature = "std")]
pub mod remote;

/// `Method` flag bit: the method is idempotent.
pub const FLAG_IDEMPOTENT: u8 = 0x01;

/// A method flag: one-way (never answered).
pub const FLAG_ONEWAY: u8 = 0x02;

/// A method flag: a stream; its return schema is the item's.
pub const FLAG_STREAM: u8 = 0x04;

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

/// What a server sends for `describe`: the encoded description and its
/// fingerprint, computed at compile time. Built by
/// [`service!`](crate::service!) as the constant `DOCUMENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Document {
    /// The postcard encoding of the [`Description`] (PROTOCOL.md §3.2).
    pub bytes: &'static [u8],
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

/// CRC-64/XZ, bit by bit (it runs at compile time on a firmware, and only on
/// hosts at run time).
const CRC64: crc::Crc<u64, crc::NoTable> = crc::Crc::<u64, crc::NoTable>::new(&crc::CRC_64_XZ);

impl Description {
    /// The length of the encoded document.
    pub const fn document_len(&self) -> usize {
        let mut empty = [];
        self.encode_into(&mut empty).0
    }

    /// The encoded document, for `N` = [`document_len`](Self::document_len).
    ///
    /// # Panics
    /// If `N` is not the document's length: at compile time, in the `const`
    /// that [`service!`](crate::service!) defines.
    pub const fn document<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        let (len, _) = self.encode_into(&mut bytes);
        assert!(len == N, "wirecall: the describe document is not N bytes long");
        bytes
    }

    /// The fingerprint of this description.
    pub const fn fingerprint(&self) -> Fingerprint {
        let mut empty = [];
        self.encode_into(&mut empty).1
    }

    /// Encodes the document into `out` (as much as fits), digesting all but
    /// the version; returns the whole length and the fingerprint.
    const fn encode_into(&self, out: &mut [u8]) -> (usize, Fingerprint) {
        let mut e = Encoder { out, len: 0, digest: CRC64.digest(), digesting: true };
        e.str(self.name);
        e.digesting = false;
        e.str(self.version);
        e.digesting = true;
        e.varint(self.methods.len() as u64);
        let mut i = 0;
        while i < self.methods.len() {
            let method = &self.methods[i];
            e.str(method.name);
            e.varint(method.id as u64);
            e.byte(method.flags);
            e.named_type(method.args);
            e.named_type(method.ret);
            i += 1;
        }
        let Encoder { len, digest, .. } = e;
        (len, Fingerprint(digest.finalize()))
    }
}

/// Writes postcard's encoding of a description in `const` context, where
/// serde cannot run. `tests::const_encoding_is_postcards` checks it against
/// postcard for every kind of type.
struct Encoder<'o> {
    out: &'o mut [u8],
    len: usize,
    digest: crc::Digest<'static, u64, crc::NoTable>,
    digesting: bool,
}

impl Encoder<'_> {
    const fn byte(&mut self, byte: u8) {
        if self.len < self.out.len() {
            self.out[self.len] = byte;
        }
        self.len += 1;
        if self.digesting {
            self.digest.update(&[byte]);
        }
    }

    const fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.byte((n as u8) | 0x80);
            n >>= 7;
        }
        self.byte(n as u8);
    }

    const fn str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        self.varint(bytes.len() as u64);
        let mut i = 0;
        while i < bytes.len() {
            self.byte(bytes[i]);
            i += 1;
        }
    }

    const fn named_type(&mut self, ty: &NamedType) {
        self.str(ty.name);
        self.data_model_type(ty.ty);
    }

    const fn named_types(&mut self, types: &[&NamedType]) {
        self.varint(types.len() as u64);
        let mut i = 0;
        while i < types.len() {
            self.named_type(types[i]);
            i += 1;
        }
    }

    const fn named_values(&mut self, values: &[&NamedValue]) {
        self.varint(values.len() as u64);
        let mut i = 0;
        while i < values.len() {
            self.str(values[i].name);
            self.named_type(values[i].ty);
            i += 1;
        }
    }

    /// The tag is the variant's position in `DataModelType` (serde's variant index).
    const fn data_model_type(&mut self, ty: &DataModelType) {
        use DataModelType as T;
        match ty {
            T::Bool => self.byte(0),
            T::I8 => self.byte(1),
            T::U8 => self.byte(2),
            T::I16 => self.byte(3),
            T::I32 => self.byte(4),
            T::I64 => self.byte(5),
            T::I128 => self.byte(6),
            T::U16 => self.byte(7),
            T::U32 => self.byte(8),
            T::U64 => self.byte(9),
            T::U128 => self.byte(10),
            T::Usize => self.byte(11),
            T::Isize => self.byte(12),
            T::F32 => self.byte(13),
            T::F64 => self.byte(14),
            T::Char => self.byte(15),
            T::String => self.byte(16),
            T::ByteArray => self.byte(17),
            T::Option(inner) => {
                self.byte(18);
                self.named_type(inner);
            }
            T::Unit => self.byte(19),
            T::UnitStruct => self.byte(20),
            T::NewtypeStruct(inner) => {
                self.byte(21);
                self.named_type(inner);
            }
            T::Seq(inner) => {
                self.byte(22);
                self.named_type(inner);
            }
            T::Tuple(types) => {
                self.byte(23);
                self.named_types(types);
            }
            T::TupleStruct(types) => {
                self.byte(24);
                self.named_types(types);
            }
            T::Map { key, val } => {
                self.byte(25);
                self.named_type(key);
                self.named_type(val);
            }
            T::Struct(fields) => {
                self.byte(26);
                self.named_values(fields);
            }
            T::Enum(variants) => {
                self.byte(27);
                self.varint(variants.len() as u64);
                let mut i = 0;
                while i < variants.len() {
                    self.str(variants[i].name);
                    match variants[i].ty {
                        DataModelVariant::UnitVariant => self.byte(0),
                        DataModelVariant::NewtypeVariant(inner) => {
                            self.byte(1);
                            self.named_type(inner);
                        }
                        DataModelVariant::TupleVariant(types) => {
                            self.byte(2);
                            self.named_types(types);
                        }
                        DataModelVariant::StructVariant(fields) => {
                            self.byte(3);
                            self.named_values(fields);
                        }
                    }
                    i += 1;
                }
            }
            T::Schema => self.byte(28),
        }
    }
}

/// The CRC-64/XZ of the postcard encoding of `value`, at run time
/// (for descriptions decoded on a host).
#[cfg(feature = "std")]
pub(crate) fn digest<T: Serialize + ?Sized>(value: &T) -> Fingerprint {
    let bytes = postcard::to_extend(value, std::vec::Vec::new()).unwrap_or_default();
    Fingerprint(CRC64.checksum(&bytes))
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
pub const CHUNK_OVERHEAD: usize = 20;

impl Document {
    /// The `describe` reply for the window `offset .. offset + max` of the
    /// document, cut to at most `room` bytes: `(fingerprint, total, chunk)`.
    pub fn chunk(&self, offset: u32, max: u16, room: usize) -> (u64, u32, &'static [u8]) {
        let bytes = self.bytes;
        let start = (offset as usize).min(bytes.len());
        let end = start.saturating_add(usize::from(max).min(room)).min(bytes.len());
        (self.fingerprint.0, bytes.len() as u32, bytes.get(start..end).unwrap_or(&[]))
    }
}

#[cfg(test)]
#[allow(dead_code)]
mod tests {
    use super::*;
    use postcard_schema::Schema;
    use serde::Deserialize;
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
    fn the_macro_describes_every_method_by_id() {
        let d = probe::DESCRIPTION;
        assert_eq!((d.name, d.version, d.methods.len()), ("probe", "1.2.0", 3));
        let names: Vec<_> = d.methods.iter().map(|m| (m.name, m.id)).collect();
        assert_eq!(names, [("greet", 1), ("add", 2), ("reset", 7)]);
        let add = d.methods[1];
        assert_eq!((add.name, add.id, add.flags), ("add", 2, FLAG_IDEMPOTENT));
        assert_eq!(d.methods[2].flags, 0);
        assert_eq!(*d.methods[2].ret, *<() as Schema>::SCHEMA);
    }

    #[test]
    fn the_document_is_postcards_encoding_and_the_fingerprint_skips_the_version() {
        assert_eq!(probe::DOCUMENT.bytes, document().as_slice());
        let without_version = postcard::to_allocvec(&(probe::DESCRIPTION.name, probe::DESCRIPTION.methods)).unwrap();
        assert_eq!(probe::DOCUMENT.fingerprint, Fingerprint(CRC64.checksum(&without_version)));
        assert_eq!(probe::DESCRIPTION.fingerprint(), probe::DOCUMENT.fingerprint);
    }

    /// Every kind of type postcard-schema knows, to check the const encoder's tags.
    #[derive(Serialize, Deserialize, Schema)]
    struct Everything {
        b: bool,
        i: (i8, i16, i32, i64, i128),
        u: (u8, u16, u32, u64, u128),
        floats: (f32, f64),
        c: char,
        s: crate::heapless::String<4>,
        o: Option<u8>,
        unit: (),
        unit_struct: UnitStruct,
        newtype: Newtype,
        seq: crate::heapless::Vec<u16, 4>,
        array: [u8; 3],
        tuple_struct: TupleStruct,
        e: Enum,
    }
    #[derive(Serialize, Deserialize, Schema)]
    struct UnitStruct;
    #[derive(Serialize, Deserialize, Schema)]
    struct Newtype(u8);
    #[derive(Serialize, Deserialize, Schema)]
    struct TupleStruct(u8, i8);
    #[derive(Serialize, Deserialize, Schema)]
    enum Enum {
        Unit,
        Newtype(u8),
        Tuple(u8, u8),
        Struct { x: u8 },
    }

    const MAP: NamedType = NamedType {
        name: "Map",
        ty: &DataModelType::Map { key: <u8 as Schema>::SCHEMA, val: <bool as Schema>::SCHEMA },
    };
    const SCHEMA: NamedType = NamedType { name: "Schema", ty: &DataModelType::Schema };
    const BYTES: NamedType = NamedType { name: "Bytes", ty: &DataModelType::ByteArray };
    const USIZE: NamedType = NamedType { name: "usize", ty: &DataModelType::Usize };
    const ISIZE: NamedType = NamedType { name: "isize", ty: &DataModelType::Isize };

    const ALL: Description = Description {
        name: "all",
        version: "",
        methods: &[MethodDescription {
            name: "m",
            id: 0x1234,
            flags: 1,
            args: Everything::SCHEMA,
            ret: &NamedType { name: "t", ty: &DataModelType::Tuple(&[&MAP, &SCHEMA, &BYTES, &USIZE, &ISIZE]) },
        }],
    };
    const ALL_LEN: usize = ALL.document_len();
    const ALL_DOCUMENT: [u8; ALL_LEN] = ALL.document::<ALL_LEN>();

    #[test]
    fn const_encoding_is_postcards() {
        assert_eq!(&ALL_DOCUMENT[..], &postcard::to_allocvec(&ALL).unwrap()[..]);
    }

    #[test]
    fn chunks_put_together_are_the_document() {
        let doc = document();
        for size in [1u16, 7, 64, 1000] {
            let mut joined = Vec::new();
            loop {
                let (fp, total, part) = probe::DOCUMENT.chunk(joined.len() as u32, size, usize::MAX);
                assert_eq!((fp, total as usize), (probe::DOCUMENT.fingerprint.0, doc.len()));
                if part.is_empty() {
                    break;
                }
                joined.extend_from_slice(part);
            }
            assert_eq!(joined, doc, "chunk size {size}");
        }
        assert_eq!(probe::DOCUMENT.chunk(0, 1000, 5).2, &doc[..5], "the room given is respected");
        assert_eq!(probe::DOCUMENT.chunk(u32::MAX, u16::MAX, usize::MAX).2, &[] as &[u8]);
    }

    #[test]
    fn the_fingerprint_ignores_the_version_and_order_and_sees_a_changed_type() {
        crate::service! {
            pub mod probe2 {
                const VERSION: &str = "9";
                fn reset() = 7;
                fn greet(name: &str) -> crate::heapless::String<8> = 1;
                fn add(a: i32, b: i32) -> i32 = 2, idempotent;
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
