//! Calendar dates in cells: a column whose every value is an ISO 8601 date (or date and
//! time) is a number to the model, the days since 1970-01-01, rather than a category of
//! thousands of values that a new day never matches.

/// The days since 1970-01-01 (UTC; the time of day as a fraction, a UTC offset applied) of
/// a cell `YYYY-MM-DD` or `YYYY/MM/DD`, optionally followed by `T` or a space and
/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.fff`, then optionally `Z` or `+HH:MM` / `-HH:MM`.
/// `None` for anything else, an impossible date (February 30) included.
pub fn parse_date(cell: &str) -> Option<f64> {
    let b = cell.as_bytes();
    if b.len() < 10 || !(b[4] == b[7] && (b[4] == b'-' || b[4] == b'/')) {
        return None;
    }
    let year = digits(&b[0..4])?;
    let (month, day) = (digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut days = days_from_civil(year, month, day) as f64;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(days);
    }
    if !(rest[0] == b'T' || rest[0] == b' ') || rest.len() < 6 || rest[3] != b':' {
        return None;
    }
    let (hour, minute) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
    let mut seconds = 0.0;
    let mut at = 6;
    if rest.get(at) == Some(&b':') {
        seconds = digits(rest.get(at + 1..at + 3)?)? as f64;
        at += 3;
        if rest.get(at) == Some(&b'.') {
            let fraction = rest[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if fraction == 0 {
                return None;
            }
            let text = std::str::from_utf8(&rest[at..at + 1 + fraction]).ok()?;
            seconds += text.parse::<f64>().ok()?;
            at += 1 + fraction;
        }
    }
    if hour > 23 || minute > 59 || seconds >= 61.0 {
        return None;
    }
    let offset_minutes = match &rest[at..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let minutes = digits(&[*h1, *h2])? * 60 + digits(&[*m1, *m2])?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    days += ((hour * 60 + minute - offset_minutes) as f64 * 60.0 + seconds) / 86_400.0;
    Some(days)
}

/// The date of a day number [`parse_date`] gave (its whole days), as `YYYY-MM-DD`.
pub fn format_day(days: f64) -> String {
    let (y, m, d) = civil_from_days(days.floor() as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0')))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_since_1970_and_times_their_fraction() {
        assert_eq!(parse_date("1970-01-01"), Some(0.0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017.0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782.0));
        assert_eq!(parse_date("1969-12-31"), Some(-1.0));
        assert_eq!(parse_date("2024/02/29"), parse_date("2024-02-29"));
        assert_eq!(parse_date("1970-01-02T12:00"), Some(1.5));
        assert_eq!(parse_date("1970-01-02 06:00:00"), Some(1.25));
        let seconds = parse_date("1970-01-01T00:00:43.2").unwrap();
        assert!((seconds - 43.2 / 86_400.0).abs() < 1e-15, "{seconds}");
        assert_eq!(parse_date("1970-01-02T12:00:00Z"), Some(1.5));
        // 12:00 at UTC+02:00 is 10:00 UTC.
        let east = parse_date("1970-01-02T12:00:00+02:00").unwrap();
        assert!((east - (1.0 + 10.0 / 24.0)).abs() < 1e-12, "{east}");
        let polars = parse_date("2023-05-01 12:00:00.000000").unwrap();
        assert!((polars - (19_478.0 + 0.5)).abs() < 1e-12, "{polars}");
    }

    #[test]
    fn anything_but_a_real_date_is_not_one() {
        for cell in [
            "2023-02-29",
            "2023-13-01",
            "2023-00-10",
            "2023-04-31",
            "2023-04-1",
            "2023-04-01x",
            "2023-04/01",
            "01/04/2023",
            "20230401",
            "2023-04-01T25:00",
            "2023-04-01T12:00:00.",
            "2023-04-01T12:00+2",
            "2023",
            "",
            "yes",
        ] {
            assert_eq!(parse_date(cell), None, "{cell}");
        }
    }

    #[test]
    fn a_day_number_formats_back_to_its_date() {
        for cell in [
            "1970-01-01",
            "1969-12-31",
            "2000-02-29",
            "2024-12-31",
            "1900-03-01",
        ] {
            assert_eq!(format_day(parse_date(cell).unwrap()), cell);
        }
        assert_eq!(
            format_day(parse_date("2024-02-29T23:59").unwrap()),
            "2024-02-29"
        );
    }
}
