//! `espctl ports`: the ports espd runs, from the file it publishes beside the SA database
//! (`SADB.ports`, JSON; espd's `port_status` module describes it): MAC, link state, MTU,
//! addresses and the device's counters per port, the exception TAP last with its kernel
//! interface. Read-only; the file is espd's, replaced whole every second while it runs and
//! removed when it stops.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::columns;

/// The file beside the SA database at `sadb`.
pub(crate) fn path_for(sadb: &Path) -> PathBuf {
    let mut p = sadb.as_os_str().to_owned();
    p.push(".ports");
    PathBuf::from(p)
}

/// What `espctl ports` prints for the SA database at `sadb`.
pub(crate) fn show(sadb: &Path, as_json: bool) -> Result<String, String> {
    let path = path_for(sadb);
    let text = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{}: no such file: espd is not running with this SA database (sadb.path)", path.display())
        }
        _ => format!("{}: {e}", path.display()),
    })?;
    let file: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not the ports file espd writes: {e}", path.display()))?;
    let pid = file.get("pid").and_then(Value::as_u64).unwrap_or(0);
    // espd removes the file when it stops; one that is still there after espd was killed is
    // shown as last written.
    let running = pid != 0 && Path::new(&format!("/proc/{pid}")).exists();
    let ports = file.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    if as_json {
        return Ok(json!({"espd_running": running, "pid": pid, "ports": ports}).to_string());
    }
    let n = |p: &Value, k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
    let s = |p: &Value, k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            let addrs: Vec<&str> = p
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let link = match p.get("link_up").and_then(Value::as_bool) {
                Some(true) => match n(p, "speed_mbps") {
                    0 => "up".to_string(),
                    m => format!("up {m}M"),
                },
                Some(false) => "down".to_string(),
                None => "?".to_string(),
            };
            vec![
                n(p, "id").to_string(),
                s(p, "name"),
                s(p, "device"),
                s(p, "interface"),
                s(p, "role"),
                s(p, "mac"),
                link,
                match n(p, "mtu") {
                    0 => String::new(),
                    m => m.to_string(),
                },
                addrs.join(","),
                n(p, "rx_packets").to_string(),
                n(p, "tx_packets").to_string(),
                n(p, "rx_bytes").to_string(),
                n(p, "tx_bytes").to_string(),
                n(p, "rx_missed").to_string(),
                (n(p, "rx_errors").saturating_add(n(p, "tx_errors")).saturating_add(n(p, "rx_nombuf")))
                    .to_string(),
            ]
        })
        .collect();
    let mut out = String::new();
    if !running {
        out += &format!("espd not running (pid {pid}); ports as last written\n");
    }
    out += &columns::render(
        &[
            "id",
            "name",
            "device",
            "interface",
            "role",
            "mac",
            "link",
            "mtu",
            "addresses",
            "rx-packets",
            "tx-packets",
            "rx-bytes",
            "tx-bytes",
            "missed",
            "errors",
        ],
        &rows,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"pid": PID, "updated_unix": 1, "ports": [
      {"id": 0, "name": "outside", "device": "net_af_packet0", "role": "outside",
       "mac": "02:00:00:00:01:01", "link_up": true, "speed_mbps": 10000, "mtu": 1500,
       "addresses": ["198.18.0.1/24", "2001:db8::1/64"], "interface": null,
       "rx_packets": 12, "tx_packets": 9, "rx_bytes": 1480, "tx_bytes": 1100,
       "rx_missed": 0, "rx_errors": 1, "tx_errors": 0, "rx_nombuf": 2},
      {"id": 2, "name": "exception", "device": "net_tap0", "role": "exception",
       "mac": "02:00:00:00:01:01", "link_up": false, "speed_mbps": 0, "mtu": 0,
       "addresses": [], "interface": "espgw0",
       "rx_packets": 3, "tx_packets": 4, "rx_bytes": 300, "tx_bytes": 400,
       "rx_missed": 0, "rx_errors": 0, "tx_errors": 0, "rx_nombuf": 0}]}"#;

    #[test]
    fn table_and_json_from_the_published_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sadb");
        let text = SAMPLE.replace("PID", &std::process::id().to_string());
        std::fs::write(path_for(&db), text).unwrap();
        let t = show(&db, false).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("id  name       device          interface  role       mac"), "{t}");
        let words: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            words,
            [
                "0",
                "outside",
                "net_af_packet0",
                "-",
                "outside",
                "02:00:00:00:01:01",
                "up",
                "10000M",
                "1500",
                "198.18.0.1/24,2001:db8::1/64",
                "12",
                "9",
                "1480",
                "1100",
                "0",
                "3"
            ]
        );
        assert!(lines[2].contains("espgw0") && lines[2].contains(" down "), "{t}");
        let j: Value = serde_json::from_str(&show(&db, true).unwrap()).unwrap();
        assert_eq!(j["espd_running"], true);
        assert_eq!(j["ports"][1]["interface"], "espgw0");
    }

    #[test]
    fn a_dead_espd_is_said_and_a_missing_or_bad_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sadb");
        let err = show(&db, false).unwrap_err();
        assert!(err.contains("sadb.ports: no such file: espd is not running"), "{err}");
        std::fs::write(path_for(&db), SAMPLE.replace("PID", "0")).unwrap();
        assert!(show(&db, false).unwrap().starts_with("espd not running (pid 0); ports as last written\n"));
        std::fs::write(path_for(&db), "{\"ports\": 5").unwrap();
        assert!(show(&db, false).unwrap_err().contains("not the ports file espd writes"));
        // Odd but valid JSON shows what it can, never panics.
        std::fs::write(path_for(&db), "{\"ports\": [1, {\"id\": \"x\"}, null]}").unwrap();
        assert_eq!(show(&db, false).unwrap().lines().count(), 5, "note, header, three rows");
    }
}
