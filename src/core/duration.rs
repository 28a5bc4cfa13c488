//! Seconds given by a user (Python floats, JSON numbers, CLI flags) → `Duration`, without the
//! panics of `Duration::from_secs_f64` (NaN, negative, overflow) and without durations so long
//! that `Instant::now() + d` overflows.

use std::time::Duration;

/// What "forever" means for a timeout or wait: 100 years. Larger values (1e300, +inf) are
/// clamped to it, so any accepted duration can be added to an `Instant` safely.
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `secs` as a `Duration`: NaN and negative values are refused with a message naming `what`
/// and the value; anything above [`FOREVER`] (including +inf) becomes [`FOREVER`].
pub fn from_secs(what: &str, secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs < 0.0 {
        return Err(format!(
            "{what} must be a non-negative number of seconds, got {secs}"
        ));
    }
    Ok(Duration::try_from_secs_f64(secs)
        .unwrap_or(FOREVER)
        .min(FOREVER))
}

/// Like [`from_secs`], but zero is refused too (timeouts: a zero timeout could never succeed).
pub fn positive_secs(what: &str, secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!(
            "{what} must be a positive number of seconds, got {secs}"
        ));
    }
    from_secs(what, secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_never_panic() {
        for v in [f64::NAN, -1.0, -0.0001, f64::NEG_INFINITY] {
            let e = from_secs("timeout", v).unwrap_err();
            assert!(e.starts_with("timeout must be"), "{e}");
        }
        assert_eq!(from_secs("t", -0.0).unwrap(), Duration::ZERO);
        assert_eq!(from_secs("t", 0.0).unwrap(), Duration::ZERO);
        assert_eq!(from_secs("t", 1.5).unwrap(), Duration::from_millis(1500));
        assert_eq!(from_secs("t", 1e300).unwrap(), FOREVER);
        assert_eq!(from_secs("t", f64::INFINITY).unwrap(), FOREVER);
        assert_eq!(from_secs("t", f64::MAX).unwrap(), FOREVER);
        assert!(positive_secs("t", 0.0).is_err());
        assert!(positive_secs("t", f64::NAN).is_err());
        assert_eq!(positive_secs("t", 1e300).unwrap(), FOREVER);
        // Safe to add to now.
        let _ = std::time::Instant::now() + from_secs("t", 1e300).unwrap();
    }
}
