//! JSON arguments in, JSON values out, through the schemas a device reports
//! (postcard-dyn does the translation).

use postcard_dyn::Value;
use wirecall::describe::remote::{RemoteMethod, type_text};
use wirecall::schema::schema::owned::OwnedDataModelType;

/// Encodes `text`, a JSON array of the arguments in order or an object of them
/// by name, as `method`'s argument tuple.
///
/// # Errors
/// A message naming the argument that does not fit, for the user.
pub fn encode_args(method: &RemoteMethod, text: &str) -> Result<Vec<u8>, String> {
    let signature = method.signature();
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
            format!("argument `{}` of {signature}: {value} does not fit {}", field.name, type_text(&field.ty))
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
    let wrong = || format!("the value does not decode as {}", type_text(&method.ret));
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
