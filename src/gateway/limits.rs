//! Caps on what the gateway (or, in the simulator, a client) sizes on the wire.
//!
//! Every value decoded from a message is checked against [`ValueLimits`] before it is
//! copied out of the message: an array or string past a cap is refused with a message
//! that names the cap, for that value alone. Free text that only explains something (an
//! MXAccess diagnostic, a refusal message) is cut to [`MAX_PEER_TEXT`] bytes instead.

/// Caps on one decoded value. The bridge sets them from `[limits]`; the simulator
/// applies [`ValueLimits::DEFAULT`] to what its clients write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueLimits {
    /// Elements in one array (a sparse array's total length included), and bytes in
    /// an opaque `bytes` value.
    pub max_array_length: usize,
    /// Bytes (UTF-8) in one string, alone or as an array element.
    pub max_string_length: usize,
}

impl ValueLimits {
    /// The `[limits]` defaults: 100,000 elements, 65,536 bytes.
    pub const DEFAULT: ValueLimits = ValueLimits {
        max_array_length: 100_000,
        max_string_length: 65_536,
    };

    /// Refuses an array of `n` elements (`what` names it: "array", "sparse array").
    pub(crate) fn check_array(&self, what: &str, n: u64) -> Result<(), String> {
        if n > self.max_array_length as u64 {
            return Err(format!(
                "{what} of {n} elements exceeds [limits] max_array_length {}",
                self.max_array_length
            ));
        }
        Ok(())
    }

    /// Refuses a string of `len` bytes.
    pub(crate) fn check_string(&self, len: usize) -> Result<(), String> {
        if len > self.max_string_length {
            return Err(format!(
                "string of {len} bytes exceeds [limits] max_string_length {}",
                self.max_string_length
            ));
        }
        Ok(())
    }
}

impl Default for ValueLimits {
    fn default() -> Self {
        ValueLimits::DEFAULT
    }
}

/// The longest explanatory text kept from the gateway (MXAccess diagnostics, refusal
/// and error messages), in bytes. Longer text is cut at a character boundary and ends
/// with "…".
pub const MAX_PEER_TEXT: usize = 1024;

/// `text` cut to [`MAX_PEER_TEXT`] bytes.
pub(crate) fn peer_text(text: &str) -> String {
    if text.len() <= MAX_PEER_TEXT {
        return text.to_string();
    }
    let mut end = MAX_PEER_TEXT - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_peer_text_is_cut_at_a_character_boundary() {
        assert_eq!(peer_text("short"), "short");
        let long = "é".repeat(MAX_PEER_TEXT);
        let cut = peer_text(&long);
        assert!(cut.len() <= MAX_PEER_TEXT, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn caps_name_the_limit() {
        let l = ValueLimits::DEFAULT;
        assert_eq!(
            l.check_array("array", u64::from(u32::MAX)).unwrap_err(),
            "array of 4294967295 elements exceeds [limits] max_array_length 100000"
        );
        assert!(l.check_array("array", 100_000).is_ok());
        assert_eq!(
            l.check_string(65_537).unwrap_err(),
            "string of 65537 bytes exceeds [limits] max_string_length 65536"
        );
    }
}
