//! The `patron` binary: parse arguments, run, turn errors into one line and an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A bug must still end in one line and exit status 1, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {}{location}; please report it",
            message.lines().next().unwrap_or("")
        );
    }));
    patron::backend::tune_allocator();
    let cli = cli::Cli::parse();
    // A server's thread waits on its connections for its whole life: run on the compute
    // pool, it would take a worker away from scoring.
    let on_pool = !cli.serves();
    let run = || match on_pool {
        true => patron::backend::on_compute_pool(|| cli::run(cli)),
        false => cli::run(cli),
    };
    match std::panic::catch_unwind(run) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
        Err(_) => ExitCode::from(1),
    }
}
