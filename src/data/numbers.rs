//! Numbers as people write them in spreadsheets and exports: currency signs, thousands
//! groups, percentages and the decimal comma.

use crate::config::DecimalMark;
use crate::data::ReadOptions;

/// Parse a cleaned numeric cell: a plain number, or one written for people the way
/// spreadsheets and BI exports write money and shares: a leading currency sign (`$`, `€`,
/// `£`, `¥`), thousands in groups of three (commas, spaces or Swiss apostrophes:
/// `1'234.50`) and a trailing `%` (`"$84,835.00"`,
/// `"-€12"`, `"45.3%"` reads 45.3). Without this such a column was a category whose
/// every value is new, left out as an identifier.
pub fn parse_number(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().or_else(|| formatted_number(v, b'.'))
}

/// Parse a cleaned numeric cell written with a decimal comma, as European spreadsheets
/// write numbers: `1,5`, `-0,25`, `1.234,56` or `1 234,56` (thousands points or spaces,
/// no-break ones too, in groups of three), `12`, with the currency signs and `%` of
/// [`parse_number`].
pub fn parse_comma_number(v: &str) -> Option<f64> {
    formatted_number(v, b',')
}

/// A cell's number read with its column's decimal mark: a comma or a point.
pub fn parse_number_in(decimal_comma: bool, v: &str) -> Option<f64> {
    if decimal_comma {
        parse_comma_number(v)
    } else {
        parse_number(v)
    }
}

/// Whether a number column's cells are read with a decimal comma: `data.decimal = ","`
/// says so, or under `"auto"` every present value reads with a comma and not every one
/// reads with a point (`1,234` alone stays 1234).
pub fn reads_with_comma(cells: &[Option<&str>], read: &ReadOptions, mark: DecimalMark) -> bool {
    match mark {
        DecimalMark::Point => false,
        DecimalMark::Comma => true,
        DecimalMark::Auto => {
            let present = || cells.iter().filter_map(|c| read.clean(*c));
            present().any(|v| parse_number(v).is_none())
                && present().all(|v| parse_comma_number(v).is_some())
        }
    }
}

/// The number a formatted cell writes (see [`parse_number`]) with `point` (`.` or `,`)
/// as its decimal mark and the other as its thousands separator, or `None`. With a point,
/// a plain number is `str::parse`'s to read, so a cell without a currency sign, `%` or
/// thousands groups is not one here.
fn formatted_number(v: &str, point: u8) -> Option<f64> {
    let point = if point == b',' { ',' } else { '.' };
    let (negative, rest) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let rest = rest.trim_start();
    let (currency, rest) = match rest.strip_prefix(['$', '€', '£', '¥']) {
        Some(rest) => (true, rest.trim_start()),
        None => (false, rest),
    };
    // "$-5" as well as "-$5".
    let (negative, rest) = match rest.strip_prefix('-') {
        Some(rest) if currency && !negative => (true, rest),
        _ => (negative, rest),
    };
    // "12,5 %" and "12,50 €", as written where the comma is the decimal mark.
    let (percent, rest) = match rest.strip_suffix('%') {
        Some(rest) => (true, rest.trim_end()),
        None => (false, rest),
    };
    let (currency, rest) = match rest.strip_suffix('€') {
        Some(rest) if !currency => (true, rest.trim_end()),
        _ => (currency, rest),
    };
    let (whole, fraction) = rest.split_once(point).unwrap_or((rest, ""));
    // Thousands: `,` before a decimal point, `.` before a comma; or with either mark a
    // space as French and ISO write them (`1 234,56`, often a no-break space), or an
    // apostrophe as Swiss spreadsheets do (`1'234.50`).
    let group = match whole.chars().find(|c| !c.is_ascii_digit()) {
        Some(c @ (' ' | '\u{a0}' | '\u{202f}' | '\'' | '\u{2019}')) => c,
        _ if point == ',' => '.',
        _ => ',',
    };
    let groups: Vec<&str> = whole.split(group).collect();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let grouped = groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
        && groups.iter().all(|g| digits(g));
    // With a decimal point, `str::parse` has read the plain numbers already.
    let plain = point == ',' && !rest.ends_with(point);
    if !(currency || percent || grouped || plain)
        || whole.is_empty()
        || !digits(fraction)
        || !(grouped || digits(whole))
    {
        return None;
    }
    let x: f64 = format!("{}.{fraction}0", groups.concat()).parse().ok()?;
    Some(if negative { -x } else { x })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_shares_and_thousands_read_as_numbers_and_codes_do_not() {
        for (cell, x) in [
            ("1.5", 1.5),
            ("-2e3", -2000.0),
            ("$84,835.00", 84835.0),
            ("$ 12", 12.0),
            ("-€12.5", -12.5),
            ("$-7", -7.0),
            ("£1,000,000", 1e6),
            ("45.3%", 45.3),
            ("-3 %", -3.0),
            ("12,345", 12345.0),
            ("1,234.75", 1234.75),
            ("1'234.50", 1234.5),
            ("-1\u{2019}000\u{2019}000", -1e6),
            ("1 234.5", 1234.5),
            ("12\u{a0}345", 12345.0),
        ] {
            assert_eq!(parse_number(cell), Some(x), "{cell}");
        }
        for cell in [
            "1,5",
            "12,34",
            "1,2345",
            ",123",
            "$",
            "%",
            "$abc",
            "1.2.3",
            "2024-01-05",
            "--5",
            "€-",
            "12$",
            "1,234,56",
            "1'23.5",
            "O'Neil",
            "555 1234",
            "1 2 3",
            "$1,2",
            "A1",
            "$1.5e3",
        ] {
            assert_eq!(parse_number(cell), None, "{cell}");
        }
    }

    #[test]
    fn numbers_with_a_decimal_comma_read_as_european_spreadsheets_write_them() {
        for (cell, x) in [
            ("1,5", 1.5),
            ("-0,25", -0.25),
            ("1.234,56", 1234.56),
            ("12", 12.0),
            ("1.234", 1234.0),
            ("1.000.000", 1e6),
            ("€ 1.234,50", 1234.5),
            ("1 234,5", 1234.5),
            ("12\u{a0}345\u{a0}678", 12345678.0),
            ("1\u{202f}000,25 €", 1000.25),
            ("12,50 €", 12.5),
            ("-12,5 %", -12.5),
        ] {
            assert_eq!(parse_comma_number(cell), Some(x), "{cell}");
        }
        for cell in [
            "1.5",
            "1,2,3",
            "12,",
            ",5",
            "1.23,4",
            "1e5",
            "2024-01-05",
            "08.11.2016",
            "abc",
            "1 234.567,5",
            "12 34,5",
            "1 2",
        ] {
            assert_eq!(parse_comma_number(cell), None, "{cell}");
        }
        assert_eq!(parse_number("12.50 €"), Some(12.5));
    }
}
