//! Wall-clock formatting without a clock: unix seconds + a POSIX TZ string -> `%Y-%m-%dT%H:%M:%S%z`.
//!
//! The reference device formats timestamps with the configured POSIX timezone (`network.time.timezone`,
//! e.g. `CET-1CEST,M3.5.0,M10.5.0/3`); the core receives unix time from the board and does the same here.

use alloc::format;
use alloc::string::{String, ToString};

/// A parsed POSIX TZ rule: a standard offset and an optional daylight-saving rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZone {
    /// Seconds east of UTC in standard time (POSIX `CET-1` -> +3600).
    std_offset: i32,
    dst: Option<Dst>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Dst {
    offset: i32,
    start: Rule,
    end: Rule,
}

/// `Mm.w.d/time`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`, at local `time` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    month: u32,
    week: u32,
    weekday: u32,
    time: i32,
}

/// Why a TZ string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TzError(pub String);

impl TimeZone {
    /// UTC, the zone used when none is configured.
    pub const UTC: TimeZone = TimeZone {
        std_offset: 0,
        dst: None,
    };

    /// Parses a POSIX TZ string (`std offset [dst [offset] [,Mm.w.d[/time],Mm.w.d[/time]]]`).
    pub fn parse(tz: &str) -> Result<TimeZone, TzError> {
        let mut p = Parser {
            s: tz.as_bytes(),
            i: 0,
        };
        if tz.is_empty() {
            return Ok(TimeZone::UTC);
        }
        p.name()?;
        let std_offset = -p.offset()?;
        if p.done() {
            return Ok(TimeZone {
                std_offset,
                dst: None,
            });
        }
        p.name()?;
        let dst_offset = if p.peek().is_some_and(|c| c != b',') {
            -p.offset()?
        } else {
            std_offset + 3600
        };
        // A DST name without rules: the POSIX default is US rules; we require explicit rules.
        if !p.eat(b',') {
            return Err(TzError(
                "daylight-saving rules missing (expected ',Mm.w.d,Mm.w.d')".to_string(),
            ));
        }
        let start = p.rule()?;
        if !p.eat(b',') {
            return Err(TzError("daylight-saving end rule missing".to_string()));
        }
        let end = p.rule()?;
        if !p.done() {
            return Err(TzError(format!("unexpected text at position {}", p.i)));
        }
        Ok(TimeZone {
            std_offset,
            dst: Some(Dst {
                offset: dst_offset,
                start,
                end,
            }),
        })
    }

    /// Offset from UTC (seconds east) in force at `unix` seconds.
    pub fn offset_at(&self, unix: i64) -> i32 {
        let Some(dst) = &self.dst else {
            return self.std_offset;
        };
        let (year, _, _) = civil_from_days(unix.div_euclid(86_400));
        // Transition instants in UTC: start is given in standard local time, end in DST local time.
        let start = rule_local_seconds(&dst.start, year) - i64::from(self.std_offset);
        let end = rule_local_seconds(&dst.end, year) - i64::from(dst.offset);
        let in_dst = if start < end {
            unix >= start && unix < end
        } else {
            unix >= start || unix < end
        };
        if in_dst {
            dst.offset
        } else {
            self.std_offset
        }
    }

    /// `%Y-%m-%dT%H:%M:%S%z`, e.g. `2024-02-02T16:59:24+0100`.
    pub fn format(&self, unix: i64) -> String {
        let offset = self.offset_at(unix);
        let local = unix + i64::from(offset);
        let (y, m, d) = civil_from_days(local.div_euclid(86_400));
        let secs = local.rem_euclid(86_400);
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{sign}{:02}{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            abs / 3600,
            abs / 60 % 60
        )
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn name(&mut self) -> Result<(), TzError> {
        let start = self.i;
        if self.eat(b'<') {
            while let Some(c) = self.peek() {
                self.i += 1;
                if c == b'>' {
                    return Ok(());
                }
            }
            return Err(TzError("unterminated '<' zone name".to_string()));
        }
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        if self.i - start < 3 {
            return Err(TzError(format!(
                "zone name at position {start} must have at least 3 letters"
            )));
        }
        Ok(())
    }
    fn number(&mut self) -> Result<i32, TzError> {
        let start = self.i;
        let mut n: i32 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            n = n.saturating_mul(10).saturating_add(i32::from(c - b'0'));
            self.i += 1;
        }
        if self.i == start {
            return Err(TzError(format!("number expected at position {start}")));
        }
        Ok(n)
    }
    /// `[+-]hh[:mm[:ss]]` in seconds, POSIX sign (positive = west of UTC).
    fn offset(&mut self) -> Result<i32, TzError> {
        let neg = if self.eat(b'-') {
            true
        } else {
            self.eat(b'+');
            false
        };
        let secs = self.hms()?;
        if secs > 24 * 3600 {
            return Err(TzError("offset larger than 24 hours".to_string()));
        }
        Ok(if neg { -secs } else { secs })
    }
    fn hms(&mut self) -> Result<i32, TzError> {
        // Saturating: `UTC99999999:99999999` must be refused as too large, not wrap into a small offset.
        let mut secs = self.number()?.saturating_mul(3600);
        if self.eat(b':') {
            secs = secs.saturating_add(self.number()?.saturating_mul(60));
            if self.eat(b':') {
                secs = secs.saturating_add(self.number()?);
            }
        }
        Ok(secs)
    }
    fn rule(&mut self) -> Result<Rule, TzError> {
        if !self.eat(b'M') {
            return Err(TzError(format!(
                "only 'Mm.w.d' rules are supported (position {})",
                self.i
            )));
        }
        let month = self.number()?;
        let week = if self.eat(b'.') { self.number()? } else { -1 };
        let weekday = if self.eat(b'.') { self.number()? } else { -1 };
        if !(1..=12).contains(&month) || !(1..=5).contains(&week) || !(0..=6).contains(&weekday) {
            return Err(TzError(
                "rule must be Mm.w.d with m 1..12, w 1..5, d 0..6".to_string(),
            ));
        }
        let time = if self.eat(b'/') { self.hms()? } else { 7200 };
        Ok(Rule {
            month: month as u32,
            week: week as u32,
            weekday: weekday as u32,
            time,
        })
    }
}

/// Local seconds since the epoch at which `rule` fires in `year`.
fn rule_local_seconds(rule: &Rule, year: i64) -> i64 {
    let first = days_from_civil(year, rule.month, 1);
    let first_weekday = weekday(first);
    let mut day = 1
        + (i64::from(rule.weekday) - first_weekday).rem_euclid(7)
        + 7 * (i64::from(rule.week) - 1);
    let month_len = days_in_month(year, rule.month);
    while day > month_len {
        day -= 7;
    }
    (first + day - 1) * 86_400 + i64::from(rule.time)
}

/// Day of week of a day number (0 = Sunday); 1970-01-01 was a Thursday.
fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

fn days_in_month(year: i64, month: u32) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian date of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CET: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

    #[test]
    fn utc_formats_epoch() {
        assert_eq!(TimeZone::UTC.format(0), "1970-01-01T00:00:00+0000");
    }

    #[test]
    fn cet_winter_matches_reference_example() {
        // 2024-02-02T15:59:24Z is 16:59:24 in CET, the spec's example.
        let tz = TimeZone::parse(CET).unwrap();
        assert_eq!(tz.format(1_706_889_564), "2024-02-02T16:59:24+0100");
    }

    #[test]
    fn cet_summer_uses_dst_offset() {
        let tz = TimeZone::parse(CET).unwrap();
        // 2024-07-01T12:00:00Z
        assert_eq!(tz.format(1_719_835_200), "2024-07-01T14:00:00+0200");
    }

    #[test]
    fn dst_starts_last_sunday_of_march_at_two() {
        let tz = TimeZone::parse(CET).unwrap();
        // 2024-03-31T01:00:00Z = 02:00 CET -> switch to CEST.
        assert_eq!(tz.offset_at(1_711_846_800 - 1), 3600);
        assert_eq!(tz.offset_at(1_711_846_800), 7200);
    }

    #[test]
    fn dst_ends_last_sunday_of_october_at_three() {
        let tz = TimeZone::parse(CET).unwrap();
        // 2024-10-27T01:00:00Z = 03:00 CEST -> back to CET.
        assert_eq!(tz.offset_at(1_729_990_800 - 1), 7200);
        assert_eq!(tz.offset_at(1_729_990_800), 3600);
    }

    #[test]
    fn southern_hemisphere_dst_wraps_the_year() {
        let tz = TimeZone::parse("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!(tz.offset_at(1_704_067_200), 11 * 3600); // 2024-01-01: summer
        assert_eq!(tz.offset_at(1_719_835_200), 10 * 3600); // 2024-07-01: winter
    }

    #[test]
    fn negative_offsets_and_minutes() {
        let tz = TimeZone::parse("NST3:30").unwrap();
        assert_eq!(tz.format(0), "1969-12-31T20:30:00-0330");
        let tz = TimeZone::parse("<+0545>-5:45").unwrap();
        assert_eq!(tz.format(0), "1970-01-01T05:45:00+0545");
    }

    #[test]
    fn rejects_garbage() {
        assert!(TimeZone::parse("X").is_err());
        assert!(TimeZone::parse("CET-1CEST").is_err());
        assert!(TimeZone::parse("CET-1CEST,J60,J300").is_err());
        assert!(TimeZone::parse("CET-1CEST,M13.5.0,M10.5.0").is_err());
        assert!(TimeZone::parse("CET-1 trailing").is_err());
        // Huge numbers saturate and are refused; 1193047 hours would wrap an i32 into 31 min 44 s.
        for huge in [
            "UTC1193047",
            "UTC99999999",
            "UTC1:99999999",
            "UTC1:1:9999999999",
        ] {
            assert!(TimeZone::parse(huge).is_err(), "{huge}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 59, 60, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
