//! Pacing, driven one worker step at a time with a clock the test moves: every rule holds back
//! exactly what it should, until when it should, naming itself; and the bundled pacing plugin
//! (a real component) passes the same tests as the built-in rules.

use std::sync::Arc;
use std::time::Duration;

use wa_gateway::config::{Config, PacingOverrides, PluginHook};
use wa_gateway::db::Db;
use wa_gateway::hooks::{Builtin, Hooks};
use wa_gateway::queue::{JobState, NewJob, Queue, Step};
use wa_gateway::time::Clock;

use crate::helpers::test_config;
use crate::steps::{queue_on, sandbox_lane};

/// 2026-12-01T12:00:00Z.
const T0: i64 = 1_796_126_400_000;
const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Who decides: the built-in rules, or the bundled plugin with no config of its own.
#[derive(Debug, Clone, Copy)]
enum Rulebook {
    Builtin,
    Plugin,
}

const BOTH: [Rulebook; 2] = [Rulebook::Builtin, Rulebook::Plugin];

fn hooks(book: Rulebook, config: &Config) -> Arc<dyn Hooks> {
    match book {
        Rulebook::Builtin => Arc::new(Builtin),
        Rulebook::Plugin => {
            let host = wa_gateway::plugins::PluginHost::new().unwrap();
            let pacing = crate::plugins::plugin("pacing", PluginHook::Pace, "pacing.wasm", &[]);
            Arc::new(
                wa_gateway::plugins::PluginHooks::load(host, &[pacing], &config.base_dir).unwrap(),
            )
        }
    }
}

/// Every rule off, then what the test sets: the session's own rules, so that the built-in
/// rules and the plugin (whose defaults are the documented ones) see the same.
fn rules(set: impl FnOnce(&mut PacingOverrides)) -> PacingOverrides {
    let mut own = PacingOverrides {
        enabled: Some(true),
        gap: Some("0s".into()),
        per_minute: Some(0),
        per_hour: Some(0),
        per_day: Some(0),
        per_recipient_per_hour: Some(0),
        first_contact_per_day: Some(0),
        warmup: Some(vec![]),
        quiet_hours: Some("off".into()),
        timezone: Some("UTC".into()),
        typing: Some("off".into()),
        cooldown: Some("1h".into()),
    };
    set(&mut own);
    own
}

struct Paced {
    dir: tempfile::TempDir,
    config: Config,
    queue: Arc<Queue>,
    db: Db,
    clock: Clock,
    book: Rulebook,
}

impl Paced {
    async fn new(book: Rulebook, own: PacingOverrides) -> Paced {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(dir.path());
        Paced::open(dir, config, Clock::manual(T0), book, own).await
    }

    /// A queue on the database in `dir`, its `default` lane paced by `own`.
    async fn open(
        dir: tempfile::TempDir,
        config: Config,
        clock: Clock,
        book: Rulebook,
        own: PacingOverrides,
    ) -> Paced {
        let (queue, db) = queue_on(&dir, &config, hooks(book, &config), clock.clone()).await;
        let p = Paced {
            dir,
            config,
            queue,
            db,
            clock,
            book,
        };
        p.pace("default", &own).await;
        p
    }

    async fn pace(&self, session: &str, own: &PacingOverrides) {
        let lane = match self.queue.lane(session) {
            Some(l) => l,
            None => sandbox_lane(&self.queue, &self.db, &self.config, session).await,
        };
        lane.set_pacing(Some(self.config.pacing.resolve(own).unwrap()));
    }

    /// The same database and clock after a restart.
    async fn restart(self, own: PacingOverrides) -> Paced {
        let Paced {
            dir,
            config,
            queue,
            db,
            clock,
            book,
        } = self;
        drop(queue);
        drop(db);
        Paced::open(dir, config, clock, book, own).await
    }

    async fn enqueue(&self, session: &str, n: u32, number: &str, priority: i64) {
        let job = NewJob {
            id: format!("job_{n}"),
            session: session.into(),
            message_id: format!("msg_{n}"),
            number: number.into(),
            chat_id: format!("{number}@c.us"),
            message: format!("text {n}"),
            template: None,
            priority,
            media: None,
            ignore_opt_out: false,
            now: self.clock.now_ms(),
        };
        self.queue.enqueue(job).await.unwrap();
    }

    async fn step(&self, session: &str) -> Step {
        self.queue.try_execute_one(session).await.unwrap()
    }

    /// Asserts the next step sends `job` (completed).
    async fn sends(&self, session: &str, job: &str) {
        let step = self.step(session).await;
        assert_eq!(
            step,
            Step::Ran {
                job_id: job.into(),
                state: Some(JobState::Completed)
            },
            "{:?} at +{}s",
            self.book,
            (self.clock.now_ms() - T0) / SEC
        );
    }

    /// Asserts the next step is held back until `until` by `reason`.
    async fn held(&self, session: &str, until: i64, reason: &str) {
        let step = self.step(session).await;
        assert_eq!(
            step,
            Step::Paced {
                until,
                reason: reason.into()
            },
            "{:?} at +{}s",
            self.book,
            (self.clock.now_ms() - T0) / SEC
        );
    }

    fn advance_to(&self, at: i64) {
        let now = self.clock.now_ms();
        assert!(at >= now);
        self.clock.advance(Duration::from_millis((at - now) as u64));
    }

    async fn job(&self, id: &str) -> wa_gateway::db::jobs::JobRow {
        wa_gateway::db::jobs::get(&self.db.read, id)
            .await
            .unwrap()
            .unwrap()
    }
}

fn number(i: u32) -> String {
    format!("628571111{:04}", 1000 + i)
}

#[tokio::test]
async fn gaps_fall_inside_the_range_and_are_not_all_equal() {
    for book in BOTH {
        let p = Paced::new(book, rules(|r| r.gap = Some("3s..8s".into()))).await;
        for i in 0..12 {
            p.enqueue("default", i, &number(i), 1).await;
        }
        p.sends("default", "job_0").await;
        let mut last = p.clock.now_ms();
        let mut gaps = Vec::new();
        for i in 1..12 {
            let Step::Paced { until, reason } = p.step("default").await else {
                panic!("{book:?}: job {i} went without a gap");
            };
            assert_eq!(reason, "gap");
            gaps.push(until - last);
            // A second before the gap ends, still held; at its end, sent.
            p.advance_to(until - SEC);
            p.held("default", until, "gap").await;
            p.advance_to(until);
            p.sends("default", &format!("job_{i}")).await;
            last = until;
        }
        assert!(
            gaps.iter().all(|g| (3 * SEC..8 * SEC).contains(g)),
            "{book:?}: {gaps:?}"
        );
        let first = gaps[0];
        assert!(
            gaps.iter().any(|g| *g != first),
            "{book:?}: all gaps equal: {gaps:?}"
        );
    }
}

#[tokio::test]
async fn each_cap_holds_exactly_the_sends_over_it_until_its_window_lets_one_go() {
    for book in BOTH {
        for (rule, window, set) in [
            (
                "per_minute",
                MIN,
                (|r: &mut PacingOverrides| r.per_minute = Some(3)) as fn(&mut PacingOverrides),
            ),
            ("per_hour", HOUR, |r: &mut PacingOverrides| {
                r.per_hour = Some(3)
            }),
            ("per_day", DAY, |r: &mut PacingOverrides| {
                r.per_day = Some(3)
            }),
        ] {
            let p = Paced::new(book, rules(set)).await;
            for i in 0..5 {
                p.enqueue("default", i, &number(i), 1).await;
            }
            // Three sends a second apart, then the fourth waits for the first to leave the window.
            for i in 0..3 {
                p.sends("default", &format!("job_{i}")).await;
                p.clock.advance(Duration::from_secs(1));
            }
            p.held("default", T0 + window, rule).await;
            let job = p.job("job_3").await;
            assert_eq!(
                (job.status, job.attempts),
                (JobState::Waiting, 0),
                "no attempt spent"
            );
            assert_eq!(
                p.queue.next_attempt(&job),
                (T0 + window, Some(rule.to_string()))
            );
            p.advance_to(T0 + window);
            p.sends("default", "job_3").await;
            p.held("default", T0 + SEC + window, rule).await;
            p.advance_to(T0 + SEC + window);
            p.sends("default", "job_4").await;
            assert_eq!(p.step("default").await, Step::Idle);
        }
    }
}

#[tokio::test]
async fn the_warmup_ramps_by_day_then_per_day_applies() {
    for book in BOTH {
        let own = rules(|r| {
            r.warmup = Some(vec![2, 3]);
            r.per_day = Some(4);
        });
        let p = Paced::new(book, own).await;
        p.queue.lane("default").unwrap().set_linked(Some(T0));
        for i in 0..20 {
            p.enqueue("default", i, &number(i), 1).await;
        }
        let mut sent = 0;
        // Day 0: two; day 1: three; day 2 and on: per_day (four).
        for (day, cap, rule) in [
            (0, 2, "warmup"),
            (1, 3, "warmup"),
            (2, 4, "per_day"),
            (3, 4, "per_day"),
        ] {
            p.advance_to(T0 + day * DAY);
            for _ in 0..cap {
                p.sends("default", &format!("job_{sent}")).await;
                sent += 1;
            }
            p.held("default", T0 + (day + 1) * DAY, rule).await;
        }
    }
}

#[tokio::test]
async fn quiet_hours_across_midnight_in_a_non_utc_time_zone() {
    for book in BOTH {
        let own = rules(|r| {
            r.quiet_hours = Some("21:00-08:00".into());
            r.timezone = Some("Asia/Jakarta".into());
        });
        let p = Paced::new(book, own).await;
        // 12:00 UTC is 19:00 in Jakarta (UTC+7): sent.
        p.enqueue("default", 0, &number(0), 1).await;
        p.sends("default", "job_0").await;
        // 15:30 UTC is 22:30 there: held until 08:00 there, 01:00 UTC the next day.
        p.advance_to(1_796_139_000_000);
        p.enqueue("default", 1, &number(1), 0).await;
        p.held("default", 1_796_173_200_000, "quiet_hours").await;
        // Just after midnight there, still quiet; high priority too.
        p.advance_to(1_796_173_200_000 - 7 * HOUR);
        p.held("default", 1_796_173_200_000, "quiet_hours").await;
        p.advance_to(1_796_173_200_000);
        p.sends("default", "job_1").await;
    }
}

#[tokio::test]
async fn recipient_and_first_contact_caps_hold_only_their_messages() {
    for book in BOTH {
        let own = rules(|r| {
            r.per_recipient_per_hour = Some(2);
            r.first_contact_per_day = Some(2);
        });
        let p = Paced::new(book, own).await;
        let (a, b, c, d) = (number(1), number(2), number(3), number(4));
        p.enqueue("default", 1, &a, 1).await;
        p.enqueue("default", 2, &a, 1).await;
        p.enqueue("default", 3, &a, 1).await; // a's third within the hour
        p.enqueue("default", 4, &b, 1).await; // the second first contact
        p.enqueue("default", 5, &c, 1).await; // a third first contact
        p.enqueue("default", 6, &a, 1).await; // a's fourth
        p.sends("default", "job_1").await;
        p.clock.advance(Duration::from_secs(1));
        p.sends("default", "job_2").await;
        // job_3 (a) and job_5 (c) are held, each on its own; b goes in the same step.
        p.sends("default", "job_4").await;
        let held3 = p.job("job_3").await;
        assert_eq!(
            (held3.run_at, held3.paced.as_deref()),
            (T0 + HOUR, Some("per_recipient_per_hour"))
        );
        p.clock.advance(Duration::from_secs(1));
        // Nothing else may go: c is a third first contact, a's fourth is over a's cap.
        assert_eq!(p.step("default").await, Step::Idle);
        let held5 = p.job("job_5").await;
        assert_eq!(
            (held5.run_at, held5.paced.as_deref()),
            (T0 + DAY, Some("first_contact_per_day"))
        );
        assert_eq!(held5.attempts, 0);
        assert_eq!(
            p.job("job_6").await.paced.as_deref(),
            Some("per_recipient_per_hour")
        );
        // d is a first contact too; a number the session has written to is not.
        p.enqueue("default", 7, &d, 1).await;
        p.enqueue("default", 8, &b, 1).await;
        p.sends("default", "job_8").await;
        assert_eq!(
            p.job("job_7").await.paced.as_deref(),
            Some("first_contact_per_day")
        );
        p.advance_to(T0 + HOUR);
        p.sends("default", "job_3").await;
    }
}

#[tokio::test]
async fn high_priority_skips_the_gap_but_never_a_cap() {
    for book in BOTH {
        let own = rules(|r| {
            r.gap = Some("10s".into());
            r.per_minute = Some(2);
        });
        let p = Paced::new(book, own).await;
        for i in 0..3 {
            p.enqueue("default", i, &number(i), 0).await;
        }
        p.enqueue("default", 9, &number(9), 1).await;
        p.sends("default", "job_0").await;
        p.sends("default", "job_1").await;
        p.held("default", T0 + MIN, "per_minute").await;
        p.advance_to(T0 + MIN);
        p.sends("default", "job_2").await;
        // Normal priority waits for the gap.
        p.held("default", T0 + MIN + 10 * SEC, "gap").await;
    }
}

#[tokio::test]
async fn a_rate_limited_send_rests_the_session_for_its_cooldown() {
    for book in BOTH {
        let p = Paced::new(book, rules(|_| {})).await;
        let mut events = p.queue.events().subscribe();
        // Sandbox: ...0004 is rate-limited (a permanent failure by the design's table).
        p.enqueue("default", 0, "6281200000004", 1).await;
        p.enqueue("default", 1, &number(1), 1).await;
        assert_eq!(
            p.step("default").await,
            Step::Ran {
                job_id: "job_0".into(),
                state: Some(JobState::Failed)
            }
        );
        let until = T0 + HOUR;
        let Step::Paced { until: got, reason } = p.step("default").await else {
            panic!("{book:?}: not cooling down");
        };
        assert_eq!(got, until);
        assert!(reason.starts_with("rate-limited"), "{reason}");
        let view = p.queue.pacing_view("default").await;
        assert_eq!((view.state, view.reason.is_some()), ("cooldown", true));
        let mut cooled = 0;
        while let Ok(e) = events.try_recv() {
            cooled += usize::from(e.kind() == "session.cooldown");
        }
        assert_eq!(cooled, 1, "one session.cooldown event");
        // It ends on time (that it outlasts a restart: sessions.rs, over HTTP).
        p.advance_to(until - SEC);
        assert!(matches!(p.step("default").await, Step::Paced { .. }));
        p.advance_to(until);
        p.sends("default", "job_1").await;
    }
}

#[tokio::test]
async fn a_pace_plugin_that_loops_or_traps_falls_back_to_the_built_in_rules() {
    for mode in ["loop", "panic"] {
        let dir = tempfile::tempdir().unwrap();
        let config = test_config(dir.path());
        let clock = Clock::manual(T0);
        let host = wa_gateway::plugins::PluginHost::new().unwrap();
        let mut hostile = crate::plugins::plugin(
            "hostile",
            PluginHook::Pace,
            "pacing.wasm",
            &[("mode", mode)],
        );
        hostile.path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("plugins/fixtures/hostile.wasm");
        let hooks = Arc::new(
            wa_gateway::plugins::PluginHooks::load(host, &[hostile], &config.base_dir).unwrap(),
        );
        let (queue, db) = queue_on(&dir, &config, hooks.clone(), clock.clone()).await;
        let p = Paced {
            dir,
            config,
            queue,
            db,
            clock,
            book: Rulebook::Plugin,
        };
        p.pace("default", &rules(|r| r.per_minute = Some(1))).await;
        p.enqueue("default", 0, &number(0), 1).await;
        p.enqueue("default", 1, &number(1), 1).await;
        // The plugin fails on every call; the built-in rules decide, and no job is lost.
        p.sends("default", "job_0").await;
        p.held("default", T0 + MIN, "per_minute").await;
        p.advance_to(T0 + MIN);
        p.sends("default", "job_1").await;
        assert!(hooks.list()[0].failures() >= 3, "{mode}");
    }
}

#[tokio::test]
async fn two_sessions_with_different_rules_pace_on_their_own() {
    for book in BOTH {
        let p = Paced::new(book, rules(|r| r.per_minute = Some(1))).await;
        p.pace("second", &rules(|r| r.per_minute = Some(3))).await;
        for i in 0..4 {
            p.enqueue("default", i, &number(i), 1).await;
            p.enqueue("second", 10 + i, &number(i), 1).await;
        }
        p.sends("default", "job_0").await;
        p.held("default", T0 + MIN, "per_minute").await;
        for i in 0..3 {
            p.sends("second", &format!("job_{}", 10 + i)).await;
        }
        p.held("second", T0 + MIN, "per_minute").await;
    }
}

#[tokio::test]
async fn a_restart_keeps_the_windows() {
    for book in BOTH {
        let own = rules(|r| r.per_hour = Some(2));
        let p = Paced::new(book, own.clone()).await;
        for i in 0..3 {
            p.enqueue("default", i, &number(i), 1).await;
        }
        p.sends("default", "job_0").await;
        p.clock.advance(Duration::from_secs(60));
        p.sends("default", "job_1").await;
        let p = p.restart(own).await;
        p.held("default", T0 + HOUR, "per_hour").await;
        p.advance_to(T0 + HOUR);
        p.sends("default", "job_2").await;
    }
}
