//! Whether an event's `data` is JSON every receiver can read.
//!
//! `data` is kept and delivered byte for byte, so the request parse only checks its syntax.
//! Syntax alone lets through what common parsers refuse: a number beyond a double's range
//! (`1e400`: Go's `encoding/json` and serde fail), a lone UTF-16 surrogate (`"\ud800"`: not
//! Unicode, refused by serde and by I-JSON, RFC 7493) and nesting deeper than 127 levels
//! (serde's recursion limit; the operator API's event view could not show it). [`readable`]
//! reads every value as a parser that builds them would, without building anything.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Containers (objects and arrays) one inside another that serde reads; one more is refused.
pub const MAX_DEPTH: usize = 127;

/// `Err` saying what a receiver's JSON parser would refuse in `data`, and where (`line 1 column
/// 9`).
pub fn readable(data: &str) -> Result<(), String> {
    serde_json::from_str::<Read>(data)
        .map(|_| ())
        .map_err(|e| explain(&e))
}

/// The message for `name` (`data`, `events[2].data`, `--data`) holding a value `readable`
/// refused for `why`: the server and the CLI say it alike.
pub fn refusal(name: &str, why: &str) -> String {
    format!("{name} has a value JSON parsers refuse: {why}")
}

/// serde_json's sentences, said in terms of the input: a lone surrogate reads as "unexpected
/// end of hex escape".
fn explain(e: &serde_json::Error) -> String {
    let at = format!("line {} column {}", e.line(), e.column());
    let text = e.to_string();
    if text.contains("hex escape") || text.contains("surrogate") {
        format!("a \\u escape of half a UTF-16 surrogate pair, not a character, at {at}")
    } else if text.contains("number out of range") {
        format!("a number beyond the range of a double at {at}")
    } else if text.contains("recursion limit") {
        format!("objects and arrays nested more than {MAX_DEPTH} deep at {at}")
    } else {
        text
    }
}

/// A JSON value read in full (numbers converted, strings unescaped) and dropped. Not serde's
/// `IgnoredAny`: serde_json skips those unread, which is the check this exists to make.
struct Read;

impl<'de> Deserialize<'de> for Read {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ReadVisitor)
    }
}

struct ReadVisitor;

impl<'de> Visitor<'de> for ReadVisitor {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Read, E> {
        Ok(Read)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Read, E> {
        Ok(Read)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Read, E> {
        Ok(Read)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Read, E> {
        Ok(Read)
    }
    fn visit_str<E>(self, _: &str) -> Result<Read, E> {
        Ok(Read)
    }
    fn visit_unit<E>(self) -> Result<Read, E> {
        Ok(Read)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Read, A::Error> {
        while seq.next_element::<Read>()?.is_some() {}
        Ok(Read)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        // Keys are strings: read as such (escapes included), the value in full.
        while map.next_key::<Key>()?.is_some() {
            map.next_value::<Read>()?;
        }
        Ok(Read)
    }
}

/// An object's key, unescaped and dropped.
struct Key;

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ReadVisitor).map(|_| Key)
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn ordinary_json_is_readable() {
        for ok in [
            r#"{}"#,
            r#"{"a":[1,-2,3.5,1e300,-0,18446744073709551615,true,null,"x\u00e9\ud83d\ude00"]}"#,
            r#"{"k\n":{"deep":[[[{"x":""}]]]}}"#,
        ] {
            assert_eq!(readable(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn what_parsers_refuse_is_named() {
        assert_eq!(
            readable(r#"{"n":1e400}"#).unwrap_err(),
            "a number beyond the range of a double at line 1 column 10"
        );
        let surrogate = r"a \u escape of half a UTF-16 surrogate pair, not a character";
        for lone in [r#"{"s":"\ud800"}"#, r#"{"s":"\ud800x"}"#, r#"{"\udc00":1}"#] {
            let e = readable(lone).unwrap_err();
            assert!(e.starts_with(surrogate), "{lone}: {e}");
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let deep = readable(&deep).unwrap_err();
        assert!(
            deep.starts_with("objects and arrays nested more than 127 deep"),
            "{deep}"
        );
    }

    #[test]
    fn nesting_up_to_serdes_limit_is_readable() {
        // The object itself is one level: 126 arrays inside it make 127.
        let data = format!("{{\"a\":{}1{}}}", "[".repeat(126), "]".repeat(126));
        assert_eq!(readable(&data), Ok(()));
        let data = format!("{{\"a\":{}1{}}}", "[".repeat(127), "]".repeat(127));
        assert!(readable(&data).is_err());
    }
}
