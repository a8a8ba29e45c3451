//! `kiln images`: the images of kiln's image store, one line each, as `docker images` lists
//! them (name, digest, age).

use std::io::Write;
use std::time::SystemTime;

use crate::cli::ImagesArgs;

/// `kiln images [-q] [--no-trunc]`.
pub fn images(args: &ImagesArgs) -> anyhow::Result<()> {
    let (_lock, storage) = super::open_storage(args.root.as_deref())?;
    let records = storage.images()?;
    let now = SystemTime::now();
    let rows: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            let digest = r.target.digest.to_string();
            let digest = if args.no_trunc {
                digest
            } else {
                r.target.digest.encoded().chars().take(12).collect()
            };
            let age = now
                .duration_since(r.created)
                .map(|d| format!("{} ago", super::du::human_duration(d)))
                .unwrap_or_else(|_| "just now".to_string());
            (r.name.clone(), digest, age)
        })
        .collect();
    std::io::stdout()
        .lock()
        .write_all(render(&rows, args.quiet).as_bytes())?;
    Ok(())
}

/// The listing: names only with `quiet`, else a table with a header.
fn render(rows: &[(String, String, String)], quiet: bool) -> String {
    if quiet {
        return rows.iter().map(|r| format!("{}\n", r.0)).collect();
    }
    let width = |f: fn(&(String, String, String)) -> &String, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (wn, wd) = (width(|r| &r.0, "NAME"), width(|r| &r.1, "DIGEST"));
    let mut out = format!("{:<wn$}   {:<wd$}   CREATED\n", "NAME", "DIGEST");
    for (name, digest, age) in rows {
        out.push_str(&format!("{name:<wn$}   {digest:<wd$}   {age}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_table_or_names() {
        let rows = vec![
            (
                "docker.io/library/app:1".to_string(),
                "0123456789ab".to_string(),
                "2 minutes ago".to_string(),
            ),
            (
                "x:2".to_string(),
                "ba9876543210".to_string(),
                "1 hour ago".to_string(),
            ),
        ];
        let cases = [
            (
                false,
                "NAME                      DIGEST         CREATED\n\
                 docker.io/library/app:1   0123456789ab   2 minutes ago\n\
                 x:2                       ba9876543210   1 hour ago\n",
            ),
            (true, "docker.io/library/app:1\nx:2\n"),
        ];
        for (quiet, want) in cases {
            assert_eq!(render(&rows, quiet), want, "quiet={quiet}");
        }
        assert_eq!(render(&[], false), "NAME   DIGEST   CREATED\n");
    }
}
