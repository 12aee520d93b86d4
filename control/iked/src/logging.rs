//! Logging: `tracing` with a level per subsystem, like strongSwan's
//! `charondebug` (`ike 2, knl 1`). Events pick their subsystem by target
//! (`tracing::info!(target: "ike", ...)`); the first `::` segment of the
//! target is looked up, anything else gets the default level.
//!
//! strongSwan's numeric levels map as: -1 → off, 0 and 1 → info (SA up/down
//! and errors), 2 and 3 → debug (control flow), 4 → trace (raw data).
//! Level 5 (private: secrets) is refused: secrets are only ever written to
//! the key log.
//!
//! Every event that passes the filter also goes to `ikectl log` followers
//! through a broadcast channel.

use crate::ctl::protocol::LogRecord;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;

/// strongSwan's subsystems that this daemon logs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subsystem {
    /// `dmn`: the daemon itself (start, signals, control socket).
    Dmn,
    /// `ike`: IKE SAs and exchanges.
    Ike,
    /// `cfg`: configuration loading and lookups.
    Cfg,
    /// `net`: IKE datagrams sent and received.
    Net,
    /// `enc`: message encoding and decoding.
    Enc,
    /// `knl`: SA and policy installation in the dataplane.
    Knl,
}

impl Subsystem {
    /// All subsystems.
    pub const ALL: [Subsystem; 6] = [Self::Dmn, Self::Ike, Self::Cfg, Self::Net, Self::Enc, Self::Knl];
    /// Their names, which are also the `tracing` targets.
    pub const NAMES: [&'static str; 6] = ["dmn", "ike", "cfg", "net", "enc", "knl"];

    /// The target string.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dmn => "dmn",
            Self::Ike => "ike",
            Self::Cfg => "cfg",
            Self::Net => "net",
            Self::Enc => "enc",
            Self::Knl => "knl",
        }
    }

    /// By name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Per-subsystem levels. Equal when every subsystem gets the same level,
/// however it was written.
#[derive(Debug, Clone)]
pub struct LogLevels {
    /// For subsystems not listed and for other targets.
    pub default: LevelFilter,
    levels: BTreeMap<Subsystem, LevelFilter>,
}

impl Default for LogLevels {
    fn default() -> Self {
        Self { default: LevelFilter::INFO, levels: BTreeMap::new() }
    }
}

impl PartialEq for LogLevels {
    fn eq(&self, other: &Self) -> bool {
        self.default == other.default && Subsystem::ALL.iter().all(|s| self.get(*s) == other.get(*s))
    }
}

impl Eq for LogLevels {}

impl LogLevels {
    /// Sets one subsystem's level.
    pub fn set(&mut self, sub: Subsystem, level: LevelFilter) {
        self.levels.insert(sub, level);
    }

    /// The level in force for a subsystem.
    pub fn get(&self, sub: Subsystem) -> LevelFilter {
        self.levels.get(&sub).copied().unwrap_or(self.default)
    }

    /// The level in force for a `tracing` target.
    pub fn for_target(&self, target: &str) -> LevelFilter {
        let head = target.split("::").next().unwrap_or(target);
        Subsystem::from_name(head).map_or(self.default, |s| self.get(s))
    }

    /// Whether an event with this metadata is logged.
    pub fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.for_target(meta.target())
    }
}

/// A strongSwan numeric level.
pub fn level_from_number(n: i64) -> Result<LevelFilter, String> {
    Ok(match n {
        -1 => LevelFilter::OFF,
        0 | 1 => LevelFilter::INFO,
        2 | 3 => LevelFilter::DEBUG,
        4 => LevelFilter::TRACE,
        5 => {
            return Err("level 5 (private) would log secrets; they are only written with --keylog".to_owned())
        }
        _ => return Err(format!("invalid level {n} (strongSwan levels -1..4)")),
    })
}

/// A level by name.
pub fn level_from_name(s: &str) -> Result<LevelFilter, String> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "off" | "silent" => LevelFilter::OFF,
        "error" => LevelFilter::ERROR,
        "warn" | "warning" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        other => {
            return Err(format!("invalid level `{other}` (off, error, warn, info, debug, trace or -1..4)"))
        }
    })
}

/// Capacity of the `ikectl log` channel; slow followers miss lines (and are
/// told how many) rather than slowing the daemon.
pub const FOLLOW_CAPACITY: usize = 1024;

/// Changes levels at run time (SIGHUP) and hands out `ikectl log` streams.
#[derive(Debug, Clone)]
pub struct LogHandle {
    levels: Arc<RwLock<LogLevels>>,
    follow: broadcast::Sender<LogRecord>,
}

impl LogHandle {
    /// Replaces the levels.
    pub fn set_levels(&self, levels: LogLevels) {
        if let Ok(mut l) = self.levels.write() {
            *l = levels;
        }
        tracing::callsite::rebuild_interest_cache();
    }

    /// The levels in force.
    pub fn levels(&self) -> LogLevels {
        self.levels.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// A stream of every record logged from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogRecord> {
        self.follow.subscribe()
    }
}

/// The filter shared by the output and follow layers.
fn filter(levels: &Arc<RwLock<LogLevels>>) -> FilterFn<impl Fn(&Metadata<'_>) -> bool + Clone> {
    let levels = Arc::clone(levels);
    FilterFn::new(move |meta| levels.read().map(|l| l.enabled(meta)).unwrap_or(true))
}

/// The subscriber: stderr output plus the follow channel, both filtered by
/// `levels`. Use [`init`] to install it globally.
pub fn subscriber(levels: LogLevels) -> (impl Subscriber + Send + Sync, LogHandle) {
    let shared = Arc::new(RwLock::new(levels));
    let (follow, _) = broadcast::channel(FOLLOW_CAPACITY);
    let handle = LogHandle { levels: Arc::clone(&shared), follow: follow.clone() };
    // Colours only on a terminal, not in the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_filter(filter(&shared));
    let follower = FollowLayer { tx: follow }.with_filter(filter(&shared));
    (Registry::default().with(output).with(follower), handle)
}

/// Installs the global subscriber.
pub fn init(levels: LogLevels) -> Result<LogHandle, String> {
    let (sub, handle) = subscriber(levels);
    tracing::subscriber::set_global_default(sub).map_err(|e| e.to_string())?;
    Ok(handle)
}

/// Sends each event to `ikectl log` followers.
struct FollowLayer {
    tx: broadcast::Sender<LogRecord>,
}

impl<S: Subscriber> Layer<S> for FollowLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let meta = event.metadata();
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        let time = crate::ctl::protocol::time_ms(std::time::SystemTime::now());
        let subsystem = meta.target().split("::").next().unwrap_or("").to_owned();
        // A send error only means the last follower left.
        let _ = self.tx.send(LogRecord {
            time_ms: time,
            level: meta.level().to_string(),
            subsystem,
            message: v.finish(),
        });
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields.trim_start().to_owned()
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_levels_follow_charondebug() {
        assert_eq!(level_from_number(-1), Ok(LevelFilter::OFF));
        assert_eq!(level_from_number(1), Ok(LevelFilter::INFO));
        assert_eq!(level_from_number(2), Ok(LevelFilter::DEBUG));
        assert_eq!(level_from_number(4), Ok(LevelFilter::TRACE));
        assert_eq!(
            level_from_number(5),
            Err("level 5 (private) would log secrets; they are only written with --keylog".to_owned())
        );
        assert!(level_from_number(9).is_err());
        assert_eq!(level_from_name("Debug"), Ok(LevelFilter::DEBUG));
        assert!(level_from_name("loud").is_err());
    }

    #[test]
    fn targets_map_to_subsystems_by_first_segment() {
        let mut l = LogLevels::default();
        l.set(Subsystem::Ike, LevelFilter::TRACE);
        l.set(Subsystem::Knl, LevelFilter::OFF);
        assert_eq!(l.for_target("ike"), LevelFilter::TRACE);
        assert_eq!(l.for_target("ike::engine::phase1"), LevelFilter::TRACE);
        // `iked` is not `ike`: no prefix confusion.
        assert_eq!(l.for_target("iked::ctl"), LevelFilter::INFO);
        assert_eq!(l.for_target("knl"), LevelFilter::OFF);
        assert_eq!(l.for_target("cfg"), LevelFilter::INFO);
    }

    #[tokio::test]
    async fn followers_see_what_the_levels_let_through() {
        let mut levels = LogLevels::default();
        levels.set(Subsystem::Net, LevelFilter::OFF);
        let (sub, handle) = subscriber(levels.clone());
        let mut rx = handle.subscribe();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(target: "ike", peer = "192.0.2.1", "IKE SA established");
            tracing::info!(target: "net", "received packet");
            tracing::debug!(target: "cfg", "too detailed");
            levels.set(Subsystem::Cfg, LevelFilter::DEBUG);
            handle.set_levels(levels.clone());
            tracing::debug!(target: "cfg", "now shown");
        });
        let first = rx.recv().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.subsystem, "ike");
        assert_eq!(first.level, "INFO");
        assert_eq!(first.message, "IKE SA established peer=192.0.2.1");
        let second = rx.recv().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((second.subsystem.as_str(), second.message.as_str()), ("cfg", "now shown"));
        assert!(rx.try_recv().is_err());
    }
}
