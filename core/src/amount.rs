//! TAO amounts: 1 TAO = 10^9 rao (PROTOCOL §1). Users type and read TAO with up to 9
//! decimals; the chain only ever sees integer rao.

/// rao per TAO.
pub const RAO_PER_TAO: u64 = 1_000_000_000;
/// Supply cap: 21,000,000 TAO in rao.
pub const MAX_SUPPLY_RAO: u64 = 21_000_000 * RAO_PER_TAO;

/// Why a TAO amount string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount {0:?} is not a number of TAO such as 1, 0.5 or 12.000000001")]
    NotANumber(String),
    #[error("amount {0:?} has more than 9 decimals: 1 rao (0.000000001 TAO) is the smallest unit")]
    TooPrecise(String),
    #[error("amount {0:?} is larger than the 21,000,000 TAO supply")]
    TooLarge(String),
}

/// Parse a decimal TAO amount ("1.5", "0.000000001", "21000000") into rao, exactly.
pub fn parse_tao(text: &str) -> Result<u64, AmountError> {
    let s = text.trim();
    let not_a_number = || AmountError::NotANumber(text.to_string());
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(not_a_number());
    }
    if frac.len() > 9 {
        return Err(AmountError::TooPrecise(text.to_string()));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| AmountError::TooLarge(text.to_string()))?
    };
    let frac_rao: u64 = if frac.is_empty() {
        0
    } else {
        let padded = format!("{frac:0<9}");
        padded.parse().map_err(|_| not_a_number())?
    };
    let rao = whole
        .checked_mul(RAO_PER_TAO)
        .and_then(|w| w.checked_add(frac_rao))
        .filter(|r| *r <= MAX_SUPPLY_RAO)
        .ok_or_else(|| AmountError::TooLarge(text.to_string()))?;
    Ok(rao)
}

/// Format rao as TAO with all 9 decimals, trailing zeros trimmed ("1.5", "0.000000001", "3").
pub fn format_tao(rao: u64) -> String {
    let whole = rao / RAO_PER_TAO;
    let frac = rao % RAO_PER_TAO;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats_exactly() {
        assert_eq!(parse_tao("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_tao("0.000000001"), Ok(1));
        assert_eq!(parse_tao(".25"), Ok(250_000_000));
        assert_eq!(parse_tao("21000000"), Ok(MAX_SUPPLY_RAO));
        assert_eq!(format_tao(1_500_000_000), "1.5");
        assert_eq!(format_tao(1), "0.000000001");
        assert_eq!(format_tao(7 * RAO_PER_TAO), "7");
    }

    #[test]
    fn refuses_bad_amounts_with_reasons() {
        assert!(matches!(
            parse_tao("1.0000000001"),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(parse_tao("-1"), Err(AmountError::NotANumber(_))));
        assert!(matches!(parse_tao("1e9"), Err(AmountError::NotANumber(_))));
        assert!(matches!(parse_tao(""), Err(AmountError::NotANumber(_))));
        assert!(matches!(parse_tao("."), Err(AmountError::NotANumber(_))));
        assert!(matches!(
            parse_tao("21000000.000000001"),
            Err(AmountError::TooLarge(_))
        ));
        assert!(matches!(
            parse_tao("99999999999999999999"),
            Err(AmountError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(rao in 0..=MAX_SUPPLY_RAO) {
            prop_assert_eq!(parse_tao(&format_tao(rao)), Ok(rao));
        }
    }
}

/// `a * b / c`, rounded down, in 128 bits so the product cannot overflow; saturates at
/// `u64::MAX`; 0 when `c` is 0. The money math's one multiply-divide.
pub fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    u128::from(a)
        .saturating_mul(u128::from(b))
        .checked_div(u128::from(c))
        .map_or(0, |x| u64::try_from(x).unwrap_or(u64::MAX))
}

/// `amount * part / 65_535`: a `u16` share (a take, a cut) of an amount, at most `amount`.
pub fn share_u16(amount: u64, part: u64) -> u64 {
    mul_div(amount, part.min(65_535), 65_535)
}

#[cfg(test)]
mod arithmetic_tests {
    use super::*;

    #[test]
    fn mul_div_cannot_overflow() {
        // amount * take overflows u64 for amounts over ~281,475 TAO; not here.
        assert_eq!(share_u16(u64::MAX, 65_535), u64::MAX);
        assert_eq!(share_u16(u64::MAX, 32_768), 9_223_512_776_490_647_552);
        assert_eq!(mul_div(10, 3, 4), 7);
        assert_eq!(mul_div(1, 1, 0), 0);
        assert_eq!(mul_div(u64::MAX, u64::MAX, 1), u64::MAX);
        assert!(share_u16(1_000, 70_000) <= 1_000);
    }
}
