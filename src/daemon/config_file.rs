//! `/etc/default/rccd`: the settings file both init systems hand to rccd (`--config`).
//!
//! The file is a shell-compatible subset (`KEY="value"`, `#` comments) so a SysV script
//! could still source it, but rccd reads it itself: one parser, errors with line numbers,
//! no shell in the systemd unit. Each setting becomes the command-line flags it stands for,
//! and flags typed on the command line win over the file's (see `merge`). No I/O here.

use std::fmt;

/// A setting rccd did not understand, with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub why: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// Every key and the flag it sets ("auto" or an empty value leave rccd's default).
const KEYS: &[(&str, &str)] = &[
    ("LISTEN", "--listen"),
    ("ALLOW", "--allow"),
    ("JOBS", "--jobs"),
    ("QUEUE", "--queue"),
    ("COMPILER_PATH", "--compiler-path"),
    ("TEMP_DIR", "--temp-dir"),
    ("THERMAL", "--no-thermal"),
    ("DISCOVERY", "--no-discovery"),
    ("THERMAL_ROOT", "--thermal-root"),
    ("CPUFREQ_ROOT", "--cpufreq-root"),
    ("MAX_TEMP", "--max-temp"),
    ("MARGIN", "--margin"),
    ("HYSTERESIS", "--hysteresis"),
    ("LOG_LEVEL", "--log-level"),
    ("MAX_CONNECTIONS", "--max-connections"),
    ("IDLE_TIMEOUT", "--idle-timeout"),
    ("JOB_TIMEOUT", "--job-timeout"),
    ("MAX_BODY_MIB", "--max-body-mib"),
];

/// The flags a settings file stands for, in file order.
pub fn parse(text: &str) -> Result<Vec<String>, Error> {
    let mut args = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let err = |why: String| Error { line, why };
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        let Some((key, value)) = l.split_once('=') else {
            return Err(err(format!("expected KEY=\"value\", found \"{l}\"")));
        };
        let key = key.trim();
        let Some(&(key, flag)) = KEYS.iter().find(|(k, _)| *k == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            return Err(err(format!(
                "unknown setting {key} (known: {})",
                known.join(", ")
            )));
        };
        if seen.contains(&key) {
            return Err(err(format!("{key} is set twice")));
        }
        seen.push(key);
        let value = unquote(value.trim()).map_err(|why| err(format!("{key}: {why}")))?;
        push_flags(&mut args, key, flag, &value).map_err(err)?;
    }
    Ok(args)
}

/// Appends the flags setting `key` (`flag`) to `value` stands for; `Err`: why it cannot.
fn push_flags(args: &mut Vec<String>, key: &str, flag: &str, value: &str) -> Result<(), String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    match key {
        "LISTEN" => {
            for w in &words {
                args.extend([flag.to_string(), w.to_string()]);
            }
        }
        "ALLOW" => {
            for w in &words {
                match *w {
                    "private" => args.push("--allow-private".into()),
                    "loopback" => {
                        args.extend(["--allow".into(), "127.0.0.0/8".into()]);
                        args.extend(["--allow".into(), "::1".into()]);
                    }
                    cidr => args.extend(["--allow".into(), cidr.to_string()]),
                }
            }
        }
        "DISCOVERY" => match value {
            "on" | "yes" | "true" => {}
            "off" | "no" | "false" => args.push(flag.to_string()),
            other => return Err(format!("DISCOVERY: \"{other}\" is not on or off")),
        },
        "THERMAL" => match value {
            "on" | "yes" | "true" => {}
            "off" | "no" | "false" => args.push(flag.to_string()),
            other => return Err(format!("THERMAL: \"{other}\" is not on or off")),
        },
        _ => match words[..] {
            [] | ["auto"] => {}
            [one] => args.extend([flag.to_string(), one.to_string()]),
            _ if key.ends_with("PATH") || key.ends_with("DIR") || key.ends_with("ROOT") => {
                args.extend([flag.to_string(), value.to_string()])
            }
            _ => return Err(format!("{key}: one value expected, found \"{value}\"")),
        },
    }
    Ok(())
}

/// `"a b"`, `'a b'` or `a`; no shell expansion, so none is silently skipped.
fn unquote(v: &str) -> Result<String, String> {
    let inner = if let Some(r) = v.strip_prefix('"') {
        r.strip_suffix('"').ok_or("unclosed \"")?
    } else if let Some(r) = v.strip_prefix('\'') {
        r.strip_suffix('\'').ok_or("unclosed '")?
    } else {
        v
    };
    if inner.contains(['$', '`', '\\']) || (!v.starts_with(['"', '\'']) && inner.contains('"')) {
        return Err("no shell expansion or escapes here; write the value out".into());
    }
    Ok(inner.to_string())
}

/// The flags a setting from the file stands for, grouped so that a command-line flag can
/// replace the file's whole setting (`--allow` on the command line replaces ALLOW, also
/// when ALLOW was "private").
fn group(flag: &str) -> &str {
    match flag {
        "--allow" | "--allow-private" => "--allow",
        f => f,
    }
}

/// Combines the file's flags with the command line's: the command line wins per setting.
pub fn merge(file: &[String], cli: &[String]) -> Vec<String> {
    let cli_groups: Vec<&str> = cli
        .iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| group(a.split('=').next().unwrap_or(a)))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < file.len() {
        let flag = &file[i];
        let takes_value = !matches!(
            flag.as_str(),
            "--allow-private" | "--no-thermal" | "--no-discovery"
        );
        let n = if takes_value { 2 } else { 1 };
        if !cli_groups.contains(&group(flag)) {
            out.extend(file[i..(i + n).min(file.len())].iter().cloned());
        }
        i += n;
    }
    out.extend(cli.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_means_what_it_says() {
        let text = include_str!("../../initscripts/rccd.default");
        let args = parse(text).unwrap();
        assert_eq!(
            args,
            [
                "--listen",
                "0.0.0.0:3633",
                "--allow-private",
                "--compiler-path",
                "/usr/local/bin:/usr/bin:/bin",
                "--margin",
                "5",
                "--log-level",
                "info"
            ]
        );
    }

    #[test]
    fn discovery_is_on_unless_the_file_says_off() {
        // The shipped file's DISCOVERY="on" is the default: no flag (checked above).
        assert_eq!(parse("DISCOVERY=off\n").unwrap(), ["--no-discovery"]);
        assert!(parse("DISCOVERY=on\n").unwrap().is_empty());
        assert!(parse("DISCOVERY=maybe\n").is_err());
        let merged = merge(
            &["--no-discovery".to_string()],
            &["--jobs".into(), "2".into()],
        );
        assert_eq!(merged, ["--no-discovery", "--jobs", "2"]);
    }

    #[test]
    fn every_form() {
        let text =
            "# comment\n\nexport LISTEN='127.0.0.1:1 [::1]:2'\nALLOW=\"loopback 10.0.0.0/8\"\n\
                    JOBS=4\nTHERMAL=off\nMAX_TEMP=\"75\"\nTEMP_DIR=\"/var/tmp/rcc jobs\"\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                "--listen",
                "127.0.0.1:1",
                "--listen",
                "[::1]:2",
                "--allow",
                "127.0.0.0/8",
                "--allow",
                "::1",
                "--allow",
                "10.0.0.0/8",
                "--jobs",
                "4",
                "--no-thermal",
                "--max-temp",
                "75",
                "--temp-dir",
                "/var/tmp/rcc jobs"
            ]
        );
    }

    #[test]
    fn mistakes_are_named_by_line() {
        for (text, line, want) in [
            ("JOBZ=4", 1, "unknown setting JOBZ"),
            ("\nJOBS", 2, "expected KEY"),
            ("JOBS=\"4", 1, "unclosed"),
            ("JOBS=4\nJOBS=5", 2, "set twice"),
            ("THERMAL=maybe", 1, "not on or off"),
            ("JOBS=\"4 5\"", 1, "one value"),
            ("LISTEN=\"$ADDR\"", 1, "no shell expansion"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn the_command_line_wins_per_setting() {
        let file = parse("LISTEN=\"0.0.0.0:3633\"\nALLOW=private\nJOBS=4\nTHERMAL=off").unwrap();
        let cli: Vec<String> = ["--allow", "10.1.0.0/16", "--jobs", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            merge(&file, &cli),
            [
                "--listen",
                "0.0.0.0:3633",
                "--no-thermal",
                "--allow",
                "10.1.0.0/16",
                "--jobs",
                "2"
            ]
        );
    }
}
