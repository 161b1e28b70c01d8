//! JSON arguments in, JSON values out, through the schemas a device reports
//! (postcard-dyn does the translation).

use postcard_dyn::Value;
use wirecall::describe::remote::RemoteMethod;
use wirecall::schema::schema::owned::{OwnedDataModelType, OwnedDataModelVariant, OwnedNamedType};

/// Fails for a type postcard-dyn 0.2 cannot translate safely: it would panic
/// on `char` and on schemas, and a sequence of elements that take no bytes
/// (`[(); n]`) lets a few bytes claim billions of them. A device's schema
/// must never crash the tool or exhaust its memory. The recursion is bounded:
/// fetched documents nest at most 32 deep.
pub fn check_supported(ty: &OwnedNamedType) -> Result<(), String> {
    use OwnedDataModelType as T;
    let all = |types: &[OwnedNamedType]| types.iter().try_for_each(check_supported);
    match &ty.ty {
        T::Char | T::Schema => Err(format!("the JSON translation does not support the type `{}` yet", ty.name)),
        T::Seq(inner) if takes_no_bytes(inner) => {
            Err(format!("the JSON translation does not support `{}`: its elements take no bytes", ty.name))
        }
        T::Map { key, val } if takes_no_bytes(key) && takes_no_bytes(val) => {
            Err(format!("the JSON translation does not support `{}`: its entries take no bytes", ty.name))
        }
        T::Option(inner) | T::NewtypeStruct(inner) | T::Seq(inner) => check_supported(inner),
        T::Tuple(types) | T::TupleStruct(types) => all(types),
        T::Map { key, val } => check_supported(key).and_then(|()| check_supported(val)),
        T::Struct(fields) => fields.iter().try_for_each(|f| check_supported(&f.ty)),
        T::Enum(variants) => variants.iter().try_for_each(|v| match &v.ty {
            OwnedDataModelVariant::UnitVariant => Ok(()),
            OwnedDataModelVariant::NewtypeVariant(inner) => check_supported(inner),
            OwnedDataModelVariant::TupleVariant(types) => all(types),
            OwnedDataModelVariant::StructVariant(fields) => fields.iter().try_for_each(|f| check_supported(&f.ty)),
        }),
        _ => Ok(()),
    }
}

/// Whether a value of `ty` can encode in zero bytes.
fn takes_no_bytes(ty: &OwnedNamedType) -> bool {
    use OwnedDataModelType as T;
    match &ty.ty {
        T::Unit | T::UnitStruct => true,
        T::NewtypeStruct(inner) => takes_no_bytes(inner),
        T::Tuple(types) | T::TupleStruct(types) => types.iter().all(takes_no_bytes),
        T::Struct(fields) => fields.iter().all(|f| takes_no_bytes(&f.ty)),
        _ => false,
    }
}

/// Encodes `text`, a JSON array of the arguments in order or an object of them
/// by name, as `method`'s argument tuple.
///
/// # Errors
/// A message naming the argument that does not fit, for the user.
pub fn encode_args(method: &RemoteMethod, text: &str) -> Result<Vec<u8>, String> {
    let signature = method.signature();
    check_supported(&method.args)?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("the arguments are not JSON ({e})"))?;
    let OwnedDataModelType::Struct(fields) = &method.args.ty else {
        // Not what `service!` makes, but a schema all the same.
        return postcard_dyn::to_stdvec_dyn(&method.args, &value)
            .map_err(|_| format!("the arguments do not fit {signature}"));
    };
    let values: Vec<&Value> = match &value {
        Value::Array(items) if items.len() == fields.len() => items.iter().collect(),
        Value::Array(items) => {
            return Err(format!("{signature} takes {} arguments, not {}", fields.len(), items.len()));
        }
        Value::Object(map) => {
            if let Some(extra) = map.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                return Err(format!("{signature} has no argument `{extra}`"));
            }
            fields
                .iter()
                .map(|f| map.get(&f.name).ok_or_else(|| format!("missing argument `{}` of {signature}", f.name)))
                .collect::<Result<_, _>>()?
        }
        _ => return Err(format!("the arguments must be a JSON array or object, as in `call {} '[...]'`", method.name)),
    };
    // postcard encodes a struct as its fields one after the other: encoding
    // them one by one lets the error name the one that does not fit.
    let mut bytes = Vec::new();
    for (field, value) in fields.iter().zip(values) {
        let encoded = postcard_dyn::to_stdvec_dyn(&field.ty, value).map_err(|_| {
            format!("argument `{}` of {signature}: {value} does not fit {}", field.name, field.ty.to_pseudocode())
        })?;
        bytes.extend_from_slice(&encoded);
    }
    Ok(bytes)
}

/// Decodes a reply's value as `method`'s return type.
///
/// # Errors
/// When the bytes are not a value of that type, or are followed by more.
pub fn decode_value(method: &RemoteMethod, bytes: &[u8]) -> Result<Value, String> {
    check_supported(&method.ret)?;
    let wrong = || format!("the value does not decode as {}", method.ret.to_pseudocode());
    let value = postcard_dyn::from_slice_dyn(&method.ret, bytes).map_err(|_| wrong())?;
    // postcard-dyn ignores bytes left over; encoding the value again shows them.
    match postcard_dyn::to_stdvec_dyn(&method.ret, &value) {
        Ok(again) if again.len() == bytes.len() => Ok(value),
        _ => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wirecall::demo::demo;
    use wirecall::describe::remote::RemoteDescription;

    fn method(name: &str) -> RemoteMethod {
        RemoteDescription::from(&demo::DESCRIPTION).method(name).unwrap().clone()
    }

    #[test]
    fn arrays_and_objects_encode_alike() {
        let add = method("add");
        let expected = postcard::to_allocvec(&(2i32, 3i32)).unwrap();
        assert_eq!(encode_args(&add, "[2, 3]").unwrap(), expected);
        assert_eq!(encode_args(&add, r#"{"b": 3, "a": 2}"#).unwrap(), expected);
        let greet = method("greet");
        assert_eq!(encode_args(&greet, r#"["Ada"]"#).unwrap(), postcard::to_allocvec(&("Ada",)).unwrap());
        assert_eq!(encode_args(&method("bump"), "[]").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn arguments_that_do_not_fit_are_named() {
        let add = method("add");
        assert_eq!(encode_args(&add, "[2]").unwrap_err(), "add(a: i32, b: i32) -> i32 takes 2 arguments, not 1");
        assert_eq!(
            encode_args(&add, r#"[2, "x"]"#).unwrap_err(),
            r#"argument `b` of add(a: i32, b: i32) -> i32: "x" does not fit i32"#
        );
        assert_eq!(encode_args(&add, "[2, 4294967296]").unwrap_err().split(':').next(), Some("argument `b` of add(a"));
        assert_eq!(encode_args(&add, r#"{"a": 1}"#).unwrap_err(), "missing argument `b` of add(a: i32, b: i32) -> i32");
        assert_eq!(
            encode_args(&add, r#"{"a": 1, "c": 2}"#).unwrap_err(),
            "add(a: i32, b: i32) -> i32 has no argument `c`"
        );
        assert!(encode_args(&add, "2, 3").unwrap_err().starts_with("the arguments are not JSON"));
        assert!(encode_args(&add, "5").unwrap_err().starts_with("the arguments must be a JSON array or object"));
    }

    #[test]
    fn chars_are_refused_instead_of_crashing_postcard_dyn() {
        wirecall::service! {
            pub mod letters {
                fn next(c: char) -> Option<char> = 1;
            }
        }
        let method = RemoteDescription::from(&letters::DESCRIPTION).methods[0].clone();
        let refused = "the JSON translation does not support the type `char` yet";
        assert_eq!(encode_args(&method, r#"["a"]"#).unwrap_err(), refused);
        assert_eq!(decode_value(&method, &[1, 1, b'b']).unwrap_err(), refused);
        wirecall::service! {
            pub mod nothing {
                fn many() -> wirecall::heapless::Vec<(), 4> = 1;
            }
        }
        let method = RemoteDescription::from(&nothing::DESCRIPTION).methods[0].clone();
        // Five bytes that would claim 2^32 - 1 elements of nothing.
        let error = decode_value(&method, &[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
        assert!(error.ends_with("its elements take no bytes"), "{error}");
    }

    #[test]
    fn values_decode_exactly() {
        let greet = method("greet");
        let bytes = postcard::to_allocvec(&"Hello Ada").unwrap();
        assert_eq!(decode_value(&greet, &bytes).unwrap(), Value::String("Hello Ada".into()));
        let mut longer = bytes.clone();
        longer.push(7);
        assert!(decode_value(&greet, &longer).is_err());
        assert!(decode_value(&method("add"), &[]).is_err());
    }
}
