//! Phone numbers in E.164 (`+` and 7 to 15 digits, no leading zero), the account identifier.

use std::fmt;

/// A phone number in E.164, e.g. `+79991234567`. Spaces, dashes, dots and parentheses are
/// dropped on the way in (`+7 (999) 123-45-67` is accepted); anything else is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

/// Why a string is not a phone number.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("phone must be in E.164 format, e.g. +79991234567")]
pub struct PhoneError;

impl Phone {
    /// Drops spaces (also no-break), dashes, dots and parentheses, then requires `+` and 7 to 15
    /// digits not starting with 0.
    ///
    /// Errors: [`PhoneError`] for anything else.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '\u{a0}'))
            .collect();
        let digits = compact.strip_prefix('+').ok_or(PhoneError)?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(compact))
        } else {
            Err(PhoneError)
        }
    }

    /// The number, e.g. `+79991234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_normalized_or_refused() {
        assert_eq!(
            Phone::parse(" +7 (999) 123-45-67 ").unwrap().as_str(),
            "+79991234567"
        );
        assert_eq!(
            Phone::parse("+14155550123").unwrap().as_str(),
            "+14155550123"
        );
        for bad in [
            "89991234567",
            "+0123456789",
            "+7999",
            "+7999123456789012",
            "+7abc1234567",
            "",
        ] {
            assert_eq!(Phone::parse(bad), Err(PhoneError), "{bad}");
        }
    }
}
