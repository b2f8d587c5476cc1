//! `boxctl completion SHELL` and `boxctl man --out DIR`: shell completions and man pages,
//! generated from the same clap definitions as the parser (`clap_complete`,
//! `clap_mangen`), so they cannot drift from the flags boxctl takes.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args as ClapArgs;

/// The options of `completion`.
#[derive(Debug, ClapArgs)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The options of `man`.
#[derive(Debug, ClapArgs)]
pub struct ManArgs {
    /// Directory to write `boxctl.1` and one `boxctl-SUBCOMMAND.1` per subcommand into
    /// (made if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Prints the completion script of `shell` for `command` (boxctl's).
pub fn completion(mut command: clap::Command, args: CompletionArgs) -> anyhow::Result<i32> {
    let name = command.get_name().to_owned();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    Ok(0)
}

/// Writes the man pages of `command` and of each of its subcommands.
pub fn man(command: clap::Command, args: ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("failed to make {}", args.out.display()))?;
    clap_mangen::generate_to(command, &args.out)
        .with_context(|| format!("failed to write man pages into {}", args.out.display()))?;
    Ok(0)
}
