//! Scalar values written the way swanctl.conf writes them: durations
//! (`1h`, `30m`, `3600s`, `2d`, plain seconds), byte counts (`1g`, `500m`,
//! `64k`, plain bytes) and comma-separated lists.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Parses a swanctl time: an unsigned integer with an optional `s`, `m`,
/// `h` or `d` suffix (strongSwan's `settings_value_as_time`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let bad = || format!("invalid duration `{text}`: expected a number with an optional s, m, h or d suffix");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mul: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(mul).map(Duration::from_secs).ok_or_else(|| format!("duration `{text}` is too large"))
}

/// Parses a byte or packet count: an unsigned integer with an optional
/// `k`, `m` or `g` suffix (powers of 1024, as strongSwan's vici parser).
pub fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let bad = || format!("invalid count `{text}`: expected a number with an optional k, m or g suffix");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mul: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mul).ok_or_else(|| format!("count `{text}` is too large"))
}

/// Formats a duration the way swanctl writes it (largest exact unit).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s != 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s != 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s != 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A duration field: a TOML integer (seconds) or a swanctl time string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeValue(pub Duration);

impl<'de> Deserialize<'de> for TimeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TimeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 3600, \"3600s\", \"30m\", \"4h\" or \"2d\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimeValue, E> {
                u64::try_from(v)
                    .map(|s| TimeValue(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("invalid duration {v}: must not be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimeValue, E> {
                Ok(TimeValue(Duration::from_secs(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeValue, E> {
                parse_duration(v).map(TimeValue).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte or packet count field: a TOML integer or a string with a suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountValue(pub u64);

impl<'de> Deserialize<'de> for CountValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CountValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count such as 1000000, \"500m\" or \"1g\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CountValue, E> {
                u64::try_from(v)
                    .map(CountValue)
                    .map_err(|_| E::custom(format!("invalid count {v}: must not be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CountValue, E> {
                Ok(CountValue(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CountValue, E> {
                parse_count(v).map(CountValue).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A yes/no switch as swanctl.conf writes it: `yes` or `no` (a string), or
/// a TOML boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YesNo(pub bool);

/// Parses a swanctl yes/no value.
pub fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text.trim() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("invalid value `{text}`: expected yes or no (or a TOML true/false)")),
    }
}

impl<'de> Deserialize<'de> for YesNo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = YesNo;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("yes or no (or a TOML true/false)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<YesNo, E> {
                Ok(YesNo(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<YesNo, E> {
                parse_yes_no(v).map(YesNo).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A list: a TOML array of strings, or one string with comma-separated
/// items as swanctl.conf writes it (`"10.0.0.0/24, 10.1.0.0/24"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListValue(pub Vec<String>);

impl<'de> Deserialize<'de> for ListValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ListValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (comma-separated items) or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ListValue, E> {
                Ok(ListValue(split_list(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListValue, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    out.push(item.trim().to_owned());
                }
                Ok(ListValue(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Splits a swanctl comma-separated list, trimming blanks.
pub fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_swanctl_writes_them() {
        let cases: &[(&str, u64)] =
            &[("3600", 3600), ("3600s", 3600), ("30m", 1800), ("1h", 3600), ("2d", 172_800)];
        for (text, secs) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(*secs)), "{text}");
        }
        for bad in ["", "1x", "h", "-5", "1.5h", "1hh", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn counts_with_suffixes() {
        assert_eq!(parse_count("1000"), Ok(1000));
        assert_eq!(parse_count("64k"), Ok(65_536));
        assert_eq!(parse_count("1M"), Ok(1_048_576));
        assert_eq!(parse_count("2g"), Ok(2 << 30));
        assert!(parse_count("1t").is_err());
        assert!(parse_count("99999999999999999999g").is_err());
    }

    #[test]
    fn duration_formatting_picks_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(3960)), "66m");
        assert_eq!(format_duration(Duration::from_secs(14_400)), "4h");
        assert_eq!(format_duration(Duration::from_secs(172_800)), "2d");
    }

    #[test]
    fn yes_no_as_swanctl_writes_it() {
        assert_eq!(parse_yes_no("yes"), Ok(true));
        assert_eq!(parse_yes_no("no"), Ok(false));
        assert_eq!(parse_yes_no("true"), Ok(true));
        assert_eq!(parse_yes_no("false"), Ok(false));
        for bad in ["", "maybe", "Yes please", "1"] {
            assert!(parse_yes_no(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(split_list(" a, b ,,c "), vec!["a", "b", "c"]);
        assert!(split_list("").is_empty());
    }
}
