//! The same chain and fan-out shapes on a peer: treadle 0.2, an embeddable
//! Rust workflow engine over a petgraph DAG, with its SQLite store.
//!
//! treadle runs ready stages one after another inside `advance` and writes
//! each stage's state (in progress, then complete) as its own SQLite
//! transaction; [`sqlite_durability`] reports the journal mode and
//! `synchronous` level those transactions commit with.

use std::path::Path;
use std::time::{Duration, Instant};

use treadle::{SqliteStateStore, Stage, StageContext, StageOutcome, WorkItem, Workflow};

/// A stage that does nothing, like phasegate's `noop` agent.
#[derive(Debug)]
struct Noop(String);

#[async_trait::async_trait]
impl Stage for Noop {
    fn name(&self) -> &str {
        &self.0
    }

    async fn execute(&self, _item: &dyn WorkItem, _ctx: &mut StageContext) -> treadle::Result<StageOutcome> {
        Ok(StageOutcome::Complete)
    }
}

#[derive(Debug)]
struct Item(String);

impl WorkItem for Item {
    fn id(&self) -> &str {
        &self.0
    }
}

fn with_stages(count: usize) -> treadle::WorkflowBuilder {
    (0..count).fold(Workflow::builder(), |builder, i| builder.stage(format!("t{i}"), Noop(format!("t{i}"))))
}

/// `tasks` stages, each depending on the one before.
pub fn chain(tasks: usize) -> Workflow {
    (1..tasks)
        .fold(with_stages(tasks), |builder, i| builder.dependency(format!("t{i}"), format!("t{}", i - 1)))
        .build()
        .expect("valid chain")
}

/// `tasks` independent stages and a join depending on all of them.
pub fn fan_out(tasks: usize) -> Workflow {
    let builder = with_stages(tasks).stage("join", Noop("join".to_owned()));
    (0..tasks).fold(builder, |builder, i| builder.dependency("join", format!("t{i}"))).build().expect("valid fan-out")
}

/// Runs one work item through `workflow` on a fresh SQLite file in `dir`
/// until every stage is complete. `advance` stops after 100 levels of
/// progress (its recursion limit), so it is called until the item completes.
pub async fn run(workflow: &Workflow, dir: &Path) -> Duration {
    let mut store = SqliteStateStore::open(dir.join("treadle.db")).await.expect("sqlite store");
    let item = Item("item-1".to_owned());
    let started = Instant::now();
    let mut calls = 0;
    while !workflow.is_complete(item.id(), &store).await.expect("status") {
        calls += 1;
        assert!(calls <= 1_000, "treadle made no progress");
        // Past the recursion limit `advance` reports an error after the
        // progress it made is saved; the next call goes on from there.
        let _ = workflow.advance(&item, &mut store).await;
    }
    started.elapsed()
}

/// SQLite's journal mode and `synchronous` level as a connection to `file`
/// opened by the same library gets them: what treadle's writes commit with.
pub fn sqlite_durability(file: &Path) -> (String, i64) {
    let connection = rusqlite::Connection::open(file).expect("sqlite");
    let journal: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0)).expect("journal_mode");
    let synchronous: i64 = connection.query_row("PRAGMA synchronous", [], |row| row.get(0)).expect("synchronous");
    (journal, synchronous)
}
