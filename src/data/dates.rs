//! Calendar dates in cells: a column whose every value is a date (ISO 8601, or the
//! day-month-year and month-day-year forms spreadsheets write, with or without a time) is
//! a number to the model, the days since 1970-01-01, rather than a category of thousands
//! of values that a new day never matches; its weekday, month and hour are parts of it
//! ([`DatePart`]) that a trend in days cannot show.

use serde::{Deserialize, Serialize};

use crate::config::DateOrder;

/// The days since 1970-01-01 of `cell` read in `order` (`Auto` reads ISO).
pub fn parse_date_in(order: DateOrder, cell: &str) -> Option<f64> {
    match order {
        DateOrder::Auto | DateOrder::Ymd => parse_date(cell),
        DateOrder::Mdy => parse_spreadsheet_date(cell, false),
        DateOrder::Dmy => parse_spreadsheet_date(cell, true),
    }
}

/// A part of a date that gets 0/1 inputs of its own, one per value: customers buy, call
/// and leave by weekday, season and hour, which days since 1970 put on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePart {
    /// Monday (0) to Sunday (6).
    Weekday,
    /// January (0) to December (11).
    Month,
    /// The hour of the day (0-23; UTC where the cell gave an offset).
    Hour,
}

impl DatePart {
    /// The part's name in `preprocess.json` and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            DatePart::Weekday => "weekday",
            DatePart::Month => "month",
            DatePart::Hour => "hour",
        }
    }

    /// How many values (inputs) the part has.
    pub fn values(self) -> usize {
        match self {
            DatePart::Weekday => 7,
            DatePart::Month => 12,
            DatePart::Hour => 24,
        }
    }

    /// The part's value (0-based) of a day number [`parse_date`] gave.
    pub fn of(self, days: f64) -> usize {
        let day = days.floor();
        match self {
            // 1970-01-01 was a Thursday.
            DatePart::Weekday => (day as i64 + 3).rem_euclid(7) as usize,
            DatePart::Month => civil_from_days(day as i64).1 as usize - 1,
            DatePart::Hour => (((days - day) * 24.0).floor() as usize).min(23),
        }
    }
}

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

/// The days since 1970-01-01 of a spreadsheet date: day, month and four-digit year
/// separated by the same `/`, `.` or `-` (`day_first`: `8/11/2016`, else `11/8/2016`),
/// or a two-digit year after `/` (`11/8/16`: 00-29 are 2000-2029 and 30-99 are 1930-1999,
/// Excel's rule; not after `.`, where `4.2.15` is more likely a version than a date),
/// optionally followed by a space and `H:MM`, `H:MM:SS` (or `.fff` seconds) and an
/// optional ` AM` / ` PM`. `None` for anything else, an impossible date included.
pub fn parse_spreadsheet_date(cell: &str, day_first: bool) -> Option<f64> {
    let (date, time) = match cell.split_once(' ') {
        Some((date, time)) => (date, Some(time.trim())),
        None => (cell, None),
    };
    let sep = date.bytes().find(|b| matches!(b, b'/' | b'.' | b'-'))?;
    let mut fields = date.split(sep as char);
    let (a, b, year) = (fields.next()?, fields.next()?, fields.next()?);
    let short_year = year.len() == 2 && sep == b'/';
    if fields.next().is_some() || a.len() > 2 || b.len() > 2 || !(year.len() == 4 || short_year) {
        return None;
    }
    let (a, b, mut year) = (
        digits(a.as_bytes())?,
        digits(b.as_bytes())?,
        digits(year.as_bytes())?,
    );
    if short_year {
        year += if year < 30 { 2000 } else { 1900 };
    }
    let (month, day) = if day_first { (b, a) } else { (a, b) };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day) as f64;
    match time {
        None => Some(days),
        Some(time) => Some(days + clock(time)? / 86_400.0),
    }
}

/// Seconds since midnight of `H:MM`, `H:MM:SS` or `H:MM:SS.fff`, optionally followed by
/// `AM` or `PM` (then the hour is 1-12).
fn clock(time: &str) -> Option<f64> {
    let upper = time.to_ascii_uppercase();
    let (time, meridiem) = match upper.strip_suffix("AM").or(upper.strip_suffix("PM")) {
        Some(rest) => (rest.trim_end(), Some(upper.ends_with("PM"))),
        None => (upper.as_str(), None),
    };
    let mut fields = time.split(':');
    let hour = fields.next().filter(|h| (1..=2).contains(&h.len()))?;
    let minute = fields.next().filter(|m| m.len() == 2)?;
    let seconds = match fields.next() {
        None => 0.0,
        Some(s) if s.len() >= 2 && s.as_bytes()[..2].iter().all(u8::is_ascii_digit) => {
            if s.len() > 2 && !(s.as_bytes()[2] == b'.' && s.len() > 3) {
                return None;
            }
            s.parse::<f64>().ok()?
        }
        Some(_) => return None,
    };
    if fields.next().is_some() {
        return None;
    }
    let (mut hour, minute) = (digits(hour.as_bytes())?, digits(minute.as_bytes())?);
    if let Some(pm) = meridiem {
        if !(1..=12).contains(&hour) {
            return None;
        }
        hour = hour % 12 + if pm { 12 } else { 0 };
    }
    if hour > 23 || minute > 59 || seconds >= 61.0 {
        return None;
    }
    Some((hour * 60 + minute) as f64 * 60.0 + seconds)
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
    fn spreadsheet_dates_read_in_their_order() {
        let iso = |c| parse_date(c).unwrap();
        assert_eq!(
            parse_date_in(DateOrder::Mdy, "11/8/2016"),
            Some(iso("2016-11-08"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Dmy, "8/11/2016"),
            Some(iso("2016-11-08"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Dmy, "08.11.2016"),
            Some(iso("2016-11-08"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Dmy, "08-11-2016"),
            Some(iso("2016-11-08"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Auto, "2016-11-08"),
            Some(iso("2016-11-08"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Mdy, "11/8/2016 14:30"),
            Some(iso("2016-11-08T14:30"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Mdy, "11/8/2016 2:30:00 PM"),
            Some(iso("2016-11-08T14:30"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Mdy, "11/8/2016 12:05 am"),
            Some(iso("2016-11-08T00:05"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Mdy, "11/8/16"),
            Some(iso("2016-11-08"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Dmy, "8/11/45 9:15"),
            Some(iso("1945-11-08T09:15"))
        );
        assert_eq!(
            parse_date_in(DateOrder::Mdy, "2/29/00"),
            Some(iso("2000-02-29"))
        );
        let fraction = parse_date_in(DateOrder::Dmy, "8.11.2016 00:00:01.5").unwrap();
        assert!((fraction - iso("2016-11-08") - 1.5 / 86_400.0).abs() < 1e-12);
        for (order, cell) in [
            (DateOrder::Mdy, "13/1/2016"),
            (DateOrder::Dmy, "1/13/2016"),
            (DateOrder::Mdy, "2/30/2016"),
            (DateOrder::Mdy, "2016-11-08"),
            (DateOrder::Ymd, "11/8/2016"),
            (DateOrder::Dmy, "4.2.15"),
            (DateOrder::Dmy, "4-2-15"),
            (DateOrder::Mdy, "11/8/116"),
            (DateOrder::Mdy, "2/29/30"),
            (DateOrder::Mdy, "11/8-2016"),
            (DateOrder::Mdy, "11/8/2016/1"),
            (DateOrder::Mdy, "11/8/2016 25:00"),
            (DateOrder::Mdy, "11/8/2016 13:00 PM"),
            (DateOrder::Mdy, "11/8/2016 10:3"),
            (DateOrder::Mdy, "11/8/2016 10:30:5x"),
            (DateOrder::Dmy, "1.5"),
            (DateOrder::Dmy, "12.5.3"),
        ] {
            assert_eq!(parse_date_in(order, cell), None, "{cell} as {order:?}");
        }
    }

    #[test]
    fn date_parts_are_the_weekday_month_and_hour() {
        // 2024-02-29 was a Thursday; 1970-01-01 too; 1969-12-29 a Monday.
        let day = parse_date("2024-02-29T23:59").unwrap();
        assert_eq!(DatePart::Weekday.of(day), 3);
        assert_eq!(DatePart::Month.of(day), 1);
        assert_eq!(DatePart::Hour.of(day), 23);
        assert_eq!(DatePart::Weekday.of(0.0), 3);
        assert_eq!(DatePart::Weekday.of(parse_date("1969-12-29").unwrap()), 0);
        assert_eq!(DatePart::Weekday.of(parse_date("2026-12-06").unwrap()), 6);
        assert_eq!(DatePart::Month.of(parse_date("1969-12-31").unwrap()), 11);
        assert_eq!(
            DatePart::Hour.of(parse_date("1970-01-02T06:00").unwrap()),
            6
        );
        assert_eq!(DatePart::Hour.of(-0.5), 12);
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
