//! Figures as people read them, table cells that cannot break a table, and a figure next to
//! its threshold never rounded across it.

use std::time::Duration;

/// `x` with at most `decimals` decimals, trailing zeros dropped, and never `-0`.
pub(crate) fn number(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    if s.parse::<f64>().is_ok_and(|v| v == 0.0) {
        "0".to_owned()
    } else {
        s
    }
}

/// The value `number(x, decimals)` shows.
fn shown(x: f64, decimals: usize) -> f64 {
    number(x, decimals).parse().unwrap_or(x)
}

/// A rate as a percentage: `95 %`, `97.5 %`.
pub(crate) fn percent(rate: f64) -> String {
    format!("{} %", number(rate * 100.0, 1))
}

/// A threshold rate, with the decimals it has (up to 4): `95 %`, `95.04 %`.
pub(crate) fn percent_exact(rate: f64) -> String {
    format!("{} %", number(rate * 100.0, 4))
}

/// `actual` against "≥ `threshold`", with the decimals needed for the figures shown to
/// compare as the real ones do (94.96 % is never shown as 95 % next to "≥ 95 %").
pub(crate) fn percent_vs(actual: f64, threshold: f64) -> String {
    let (a, t) = (actual * 100.0, shown(threshold * 100.0, 4));
    let holds = actual >= threshold;
    (1..=6).find(|&d| (shown(a, d) >= t) == holds).map_or_else(
        || format!("{} %", number(a, 6)),
        |d| format!("{} %", number(a, d)),
    )
}

/// A duration as people read it, and the number of seconds it shows.
fn duration_shown(d: Duration) -> (String, f64) {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 && !d.is_zero() {
        (format!("{} µs", d.as_micros()), d.as_micros() as f64 / 1e6)
    } else if ms < 1000.0 {
        let v = shown(ms, 0);
        (format!("{} ms", number(ms, 0)), v / 1000.0)
    } else if d < Duration::from_secs(120) {
        let v = shown(d.as_secs_f64(), 1);
        (format!("{} s", number(d.as_secs_f64(), 1)), v)
    } else {
        let secs = d.as_secs();
        (format!("{} min {} s", secs / 60, secs % 60), secs as f64)
    }
}

/// A duration as people read it: `850 ms`, `2.5 s`, `3 min 20 s`.
pub(crate) fn duration(d: Duration) -> String {
    duration_shown(d).0
}

/// In milliseconds, to the microsecond: `1996 ms`, `1999.5 ms`.
fn duration_ms(d: Duration) -> (String, f64) {
    let ms = d.as_secs_f64() * 1000.0;
    (format!("{} ms", number(ms, 3)), shown(ms, 3) / 1000.0)
}

/// A bound, exactly: the readable form if it loses nothing, else in milliseconds.
pub(crate) fn duration_exact(d: Duration) -> String {
    let (text, secs) = duration_shown(d);
    if (secs - d.as_secs_f64()).abs() < 1e-9 {
        text
    } else {
        duration_ms(d).0
    }
}

fn duration_exact_secs(d: Duration) -> f64 {
    let (_, secs) = duration_shown(d);
    if (secs - d.as_secs_f64()).abs() < 1e-9 {
        secs
    } else {
        duration_ms(d).1
    }
}

/// `actual` against "< `bound`", precise enough for the figures shown to compare as the real
/// ones do (1.996 s is never shown as 2 s next to "< 2 s").
pub(crate) fn duration_vs(actual: Duration, bound: Duration) -> String {
    let holds = actual < bound;
    let b = duration_exact_secs(bound);
    let (text, secs) = duration_shown(actual);
    if (secs < b) == holds {
        return text;
    }
    let (text, secs) = duration_ms(actual);
    if (secs < b) == holds {
        text
    } else {
        format!("{} µs", actual.as_micros())
    }
}

/// A table cell: `|` escaped, line breaks as `<br>`, so a value never breaks its table.
pub(crate) fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace(['\n', '\r'], "<br>")
}

/// One line of a list: line breaks become spaces.
pub(crate) fn line(text: &str) -> String {
    text.replace("\r\n", " ").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_never_negative() {
        assert_eq!(number(-0.0, 0), "0");
        assert_eq!(number(-0.0001, 1), "0");
        assert_eq!(percent(-0.0), "0 %");
    }

    #[test]
    fn a_rate_just_under_its_threshold_shows_the_decimals_that_tell() {
        assert_eq!(percent_vs(0.9496, 0.95), "94.96 %");
        assert_eq!(percent_vs(0.95, 0.95), "95 %");
        assert_eq!(percent_vs(0.951, 0.95), "95.1 %");
        assert_eq!(percent_vs(0.94999, 0.95), "94.999 %");
        assert_eq!(percent_exact(0.9504), "95.04 %");
    }

    #[test]
    fn a_duration_just_under_its_bound_is_shown_under_it() {
        let ms = Duration::from_millis;
        assert_eq!(duration_vs(ms(1996), ms(2000)), "1996 ms");
        assert_eq!(duration_vs(ms(2000), ms(2000)), "2 s");
        assert_eq!(duration_vs(ms(2040), ms(2000)), "2 s");
        assert_eq!(duration_vs(ms(850), ms(2000)), "850 ms");
        assert_eq!(
            duration_vs(Duration::from_micros(999_600), ms(1000)),
            "999.6 ms"
        );
        assert_eq!(duration_exact(ms(2000)), "2 s");
        assert_eq!(duration_exact(ms(2050)), "2050 ms");
    }

    #[test]
    fn cells_escape_what_breaks_a_table() {
        assert_eq!(cell("a | b\nc\r\nd"), r"a \| b<br>c<br>d");
    }
}
