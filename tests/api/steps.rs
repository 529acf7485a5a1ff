//! The queue driven one worker step at a time (`Queue::try_execute_one`), with no dispatcher
//! running: the rules that decide what goes out, and in which order, without waiting on time.

use std::sync::Arc;

use wa_gateway::config::{Config, Dur};
use wa_gateway::db::Db;
use wa_gateway::hooks::{Builtin, Hooks};
use wa_gateway::queue::{DefaultConcurrency, JobState, Lane, NewJob, Queue, SettingsChange, Step};
use wa_gateway::time::Clock;

use crate::helpers::test_config;

/// A queue on a fresh database with the sandbox driver (no delay) and no dispatcher.
async fn queue_alone(tweak: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Arc<Queue>, Db) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let (queue, db) = queue_on(&dir, &config, Arc::new(Builtin), Clock::system()).await;
    (dir, queue, db)
}

/// A queue on the database in `dir` (a restart when one was there), with these hooks and this
/// clock, and a `default` lane on the sandbox driver.
pub async fn queue_on(
    dir: &tempfile::TempDir,
    config: &Config,
    hooks: Arc<dyn Hooks>,
    clock: Clock,
) -> (Arc<Queue>, Db) {
    let _ = dir;
    std::fs::create_dir_all(config.data_dir()).unwrap();
    let (db, _writer) = Db::open(&wa_gateway::db::Store::of(config)).await.unwrap();
    // No heartbeat runs here: a lease long enough for any test, renewed once.
    let node = wa_gateway::cluster::Node::new(
        config.cluster.node_id(&config.data_dir()).unwrap(),
        std::time::Duration::from_secs(3600),
        "steps".into(),
    );
    node.renew(&db).await.unwrap();
    let queue = Queue::new(
        db.clone(),
        &config.queue,
        hooks,
        wa_gateway::queue::Wiring {
            events: wa_gateway::events::Events::new(),
            outbox: None,
            metrics: Arc::new(wa_gateway::metrics::Metrics::default()),
            clock,
            node,
            notifier: None,
            poll: config.cluster.poll.0,
        },
    )
    .await
    .unwrap();
    sandbox_lane(&queue, &db, config, "default").await;
    (queue, db)
}

/// Opens a lane for `session` on the sandbox driver (no delay).
/// A lane of `session` with a sandbox driver, run by this queue's node: it holds the session's
/// lease (no ownership loop runs here; the lease is long enough for any test).
pub async fn sandbox_lane(
    queue: &Arc<Queue>,
    db: &Db,
    config: &Config,
    session: &str,
) -> Arc<Lane> {
    let (name, node, now) = (
        session.to_string(),
        config.cluster.node_id(&config.data_dir()).unwrap(),
        wa_gateway::time::now_ms(),
    );
    let epoch = db
        .writer
        .exec(wa_gateway::db::Durability::Durable, move |c| {
            Box::pin(async move {
                wa_gateway::db::owners::take(c, &name, &node, now, now + 3_600_000).await
            })
        })
        .await
        .unwrap()
        .expect("a free session");
    let sender = Arc::new(
        wa_gateway::whatsapp::sandbox::Sandbox::new(
            session,
            std::time::Duration::ZERO,
            &config.data_dir().join("outbox.jsonl"),
        )
        .unwrap(),
    );
    let lane = queue.open_lane(session, DefaultConcurrency::Queue);
    lane.set_sender(Some(sender));
    lane.set_owned(Some((epoch, now)));
    lane
}

fn job(n: u32, number: &str, priority: i64) -> NewJob {
    NewJob {
        id: format!("job_{n}"),
        session: "default".into(),
        message_id: format!("msg_{n}"),
        number: number.into(),
        chat_id: format!("{number}@c.us"),
        message: format!("text {n}"),
        template: None,
        priority,
        media: None,
        ignore_opt_out: false,
        now: wa_gateway::time::now_ms(),
    }
}

fn ran(id: &str, state: JobState) -> Step {
    Step::Ran {
        job_id: id.into(),
        state: Some(state),
    }
}

#[tokio::test]
async fn a_paused_queue_claims_nothing_and_sends_in_order_once_resumed() {
    let (_dir, queue, db) = queue_alone(|_| {}).await;
    let paused = SettingsChange {
        paused: Some(true),
        ..Default::default()
    };
    queue.update_settings(paused).await.unwrap();
    queue.enqueue(job(1, "6281234567890", 2)).await.unwrap();
    queue.enqueue(job(2, "6281234567891", 0)).await.unwrap();
    queue.enqueue(job(3, "6281234567892", 1)).await.unwrap();
    assert_eq!(
        queue.try_execute_one("default").await.unwrap(),
        Step::Paused
    );
    let row = wa_gateway::db::jobs::get(&db.read, "job_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status, row.attempts), (JobState::Waiting, 0));

    let resumed = SettingsChange {
        paused: Some(false),
        ..Default::default()
    };
    queue.update_settings(resumed).await.unwrap();
    // High priority (rank 0) first, then normal, then low; one step each.
    assert_eq!(
        queue.try_execute_one("default").await.unwrap(),
        ran("job_2", JobState::Completed)
    );
    assert_eq!(
        queue.try_execute_one("default").await.unwrap(),
        ran("job_3", JobState::Completed)
    );
    assert_eq!(
        queue.try_execute_one("default").await.unwrap(),
        ran("job_1", JobState::Completed)
    );
    assert_eq!(queue.try_execute_one("default").await.unwrap(), Step::Idle);
    let c = queue.counts();
    assert_eq!((c.waiting, c.active, c.completed), (0, 0, 3));
}

#[tokio::test]
async fn a_retryable_failure_waits_for_its_backoff_and_a_permanent_one_fails_at_once() {
    let (_dir, queue, _db) = queue_alone(|c| {
        c.queue.backoff_base = Dur::secs(3600);
        c.queue.backoff_max = Dur::secs(3600);
    })
    .await;
    // Sandbox numbers: ...0001 times out twice (retryable), ...0000 is not registered.
    queue.enqueue(job(1, "6281200000001", 1)).await.unwrap();
    queue.enqueue(job(2, "6281200000000", 1)).await.unwrap();
    assert_eq!(
        queue.try_execute_one("default").await.unwrap(),
        ran("job_1", JobState::Waiting)
    );
    assert_eq!(
        queue.try_execute_one("default").await.unwrap(),
        ran("job_2", JobState::Failed)
    );
    // The retry is an hour away: nothing is due now.
    assert_eq!(queue.try_execute_one("default").await.unwrap(), Step::Idle);
    let c = queue.counts();
    assert_eq!((c.waiting, c.failed), (1, 1));
}
