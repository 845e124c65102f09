//! Subcommands every service shares: `<service> dlq list|replay <id>`.

use clap::Subcommand;

use crate::bus::Bus;
use crate::config::RuntimeArgs;
use crate::dead_letter::DeadLetters;

/// `<service> dlq …`: inspect and replay the service's dead letters.
#[derive(Debug, Clone, Subcommand)]
pub enum DlqAction {
    /// List dead letters, newest first.
    List {
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Include the ones already replayed.
        #[arg(long)]
        all: bool,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish a dead letter again to its subject and mark it replayed.
    Replay {
        /// The dead letter's id (from `dlq list`).
        id: i64,
    },
}

/// Runs a `dlq` action against `<schema>.dead_letters`, printing to stdout.
///
/// Errors: Postgres unreachable, no such dead letter, or (replay) NATS unreachable.
pub async fn run_dlq(
    service: &str,
    schema: &str,
    rt: &RuntimeArgs,
    action: DlqAction,
) -> anyhow::Result<()> {
    let pool = crate::db::connect(&rt.database_url, schema, 2).await?;
    let dead = DeadLetters::new(pool, schema);
    match action {
        DlqAction::List { limit, all, json } => {
            let rows = dead.list(limit, !all).await?;
            if json {
                for r in &rows {
                    println!("{}", serde_json::to_string(r)?);
                }
            } else if rows.is_empty() {
                println!("no dead letters{}", if all { "" } else { " waiting" });
            } else {
                println!(
                    "{:>6}  {:<20}  {:<36}  {:>8}  reason",
                    "id", "created_at", "subject", "attempts"
                );
                for r in &rows {
                    let created = r
                        .created_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    let replayed = if r.replayed_at.is_some() {
                        " (replayed)"
                    } else {
                        ""
                    };
                    println!(
                        "{:>6}  {created:<20}  {:<36}  {:>8}  {}{replayed}",
                        r.id, r.subject, r.attempts, r.reason
                    );
                }
            }
        }
        DlqAction::Replay { id } => {
            let bus = Bus::connect(&rt.nats_url, &rt.nats_subject_prefix, service).await?;
            let dl = dead.replay(&bus, id).await?;
            println!("dead letter {} replayed to {}", dl.id, dl.subject);
        }
    }
    Ok(())
}
