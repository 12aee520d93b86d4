//! Decode arbitrary bytes as an ikectl response line, as `ikectl` does (lossy UTF-8,
//! trailing whitespace trimmed, then JSON), and print it as `ikectl` would. It must never
//! panic; an accepted response re-encodes to a line that decodes to the same response.
#![no_main]

use iked::ctl::{format, Reply, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data.trim_ascii_end());
    let Ok(resp) = serde_json::from_str::<Response>(&raw) else { return };
    let line = serde_json::to_string(&resp).expect("a response serializes");
    let again: Response = serde_json::from_str(&line).expect("a re-encoded response parses");
    assert_eq!(again, resp);
    let _ = match &resp.reply {
        Reply::Sas { ike_sas } => format::list_sas(ike_sas),
        Reply::Conns { connections } => format::list_conns(connections),
        Reply::Stats(s) => format::stats(s),
        Reply::Loaded(s) => format::load_summary(s),
        Reply::Certs { certificates, crls } => format::list_certs(certificates, crls),
        Reply::Log(r) => format::log_line(r),
        Reply::Done { message } => message.clone(),
        Reply::LogLagged { missed } => missed.to_string(),
        Reply::Pols { policies } => format::list_pols(policies),
        Reply::Event(r) => format::event_line(r),
        Reply::EventsLagged { missed } => missed.to_string(),
        Reply::Error(e) => e.to_string(),
    };
});
