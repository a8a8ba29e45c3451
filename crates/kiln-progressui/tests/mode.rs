//! Parsing `--progress` values, `BUILDKIT_PROGRESS`, and resolving `auto`.

use kiln_progressui::{Colors, ManualClock, PrinterOptions, ProgressMode};

fn check_parse(input: &str, expected: Result<ProgressMode, &str>) -> Option<String> {
    let got = input.parse::<ProgressMode>().map_err(|e| e.to_string());
    let expected = expected.map_err(str::to_string);
    (got != expected).then(|| format!("{input:?}: got {got:?}, want {expected:?}"))
}

#[test]
fn parse() {
    let invalid = |v: &str| {
        format!("invalid progress mode {v:?}: valid values are auto, plain, tty, rawjson, quiet")
    };
    let cases: Vec<(&str, Result<ProgressMode, String>)> = vec![
        ("auto", Ok(ProgressMode::Auto)),
        ("plain", Ok(ProgressMode::Plain)),
        ("tty", Ok(ProgressMode::Tty)),
        ("rawjson", Ok(ProgressMode::RawJson)),
        ("quiet", Ok(ProgressMode::Quiet)),
        ("", Err(invalid(""))),
        ("none", Err(invalid("none"))),
        ("Plain", Err(invalid("Plain"))),
        ("json", Err(invalid("json"))),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(input, want)| {
            check_parse(input, want.as_ref().map(|m| *m).map_err(String::as_str))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    for mode in ProgressMode::ALL {
        assert_eq!(mode.to_string().parse::<ProgressMode>().ok(), Some(mode));
    }
}

/// (flag, `BUILDKIT_PROGRESS`, is a terminal, `TERM=dumb`, expected mode or error).
type Case = (
    ProgressMode,
    Option<&'static str>,
    bool,
    bool,
    Result<ProgressMode, &'static str>,
);

#[test]
fn env_default_and_resolution() {
    use ProgressMode::*;
    let cases: Vec<Case> = vec![
        (Auto, None, true, false, Ok(Tty)),
        (Auto, None, false, false, Ok(Plain)),
        (Auto, None, true, true, Ok(Plain)),
        (Auto, Some(""), true, false, Ok(Tty)),
        (Auto, Some("plain"), true, false, Ok(Plain)),
        (Auto, Some("rawjson"), false, false, Ok(RawJson)),
        (Plain, Some("tty"), true, false, Ok(Plain)),
        (Tty, None, true, true, Ok(Tty)),
        (
            Tty,
            None,
            false,
            false,
            Err("progress mode tty needs a terminal: the output is not one"),
        ),
        (
            Auto,
            Some("tty"),
            false,
            false,
            Err("progress mode tty needs a terminal: the output is not one"),
        ),
        (Quiet, None, false, false, Ok(Quiet)),
        (
            Auto,
            Some("fancy"),
            true,
            false,
            Err(
                "invalid progress mode \"fancy\": valid values are auto, plain, tty, rawjson, quiet",
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (flag, env, is_terminal, dumb, want) in cases {
        let got = flag
            .with_env_default(env)
            .and_then(|m| m.resolve(is_terminal, dumb))
            .map_err(|e| e.to_string());
        let want = want.map_err(str::to_string);
        if got != want {
            failures.push(format!(
                "{flag} {env:?} terminal={is_terminal} dumb={dumb}: got {got:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn env_options() {
    let clock = std::sync::Arc::new(ManualClock::new(std::time::SystemTime::UNIX_EPOCH));
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let base = PrinterOptions::new(true, 80, clock);

    let o = base
        .clone()
        .with_env(env(&[("NO_COLOR", "1"), ("BUILDKIT_COLORS", "run=red")]));
    assert_eq!(o.colors, Colors::none());
    let o = base.clone().with_env(env(&[("NO_COLOR", "")]));
    assert_eq!(o.colors, Colors::default());

    let o = base.clone().with_env(env(&[(
        "BUILDKIT_COLORS",
        "run=123,20,245:error=yellow:cancel=Light-Blue:warning=nope:bogus=red:x",
    )]));
    assert_eq!(
        o.colors,
        Colors {
            run: Some("38;2;123;20;245".into()),
            cancel: Some("94".into()),
            warning: Some("33".into()),
            error: Some("33".into()),
        }
    );

    let o = base
        .clone()
        .with_env(env(&[("TERM", "dumb"), ("BUILDKIT_TTY_LOG_LINES", "12")]));
    assert!(o.dumb_terminal);
    assert_eq!(o.log_lines, 12);
    let o = base
        .clone()
        .with_env(env(&[("TERM", "xterm"), ("BUILDKIT_TTY_LOG_LINES", "0")]));
    assert!(!o.dumb_terminal);
    assert_eq!(o.log_lines, 6);
}
